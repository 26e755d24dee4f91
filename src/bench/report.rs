//! The figures `sim bench` reports, per event and as shares, ready to print or serialize.

use std::path::PathBuf;
use std::time::Duration;

use super::Profiled;
use crate::script::{FastPathUse, SetupRun};

/// The speed of one measured run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Speed {
    /// Script workers that made the events.
    pub workers: usize,
    /// Events made (arrivals' and follow-ups').
    pub events: u64,
    /// Wall seconds the run took.
    pub seconds: f64,
    /// Events a second.
    pub events_per_second: f64,
    /// Wall microseconds an event.
    pub micros_per_event: f64,
}

impl Speed {
    /// The speed of `events` made by `workers` workers in `elapsed`.
    pub fn new(workers: usize, events: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self {
            workers,
            events,
            seconds,
            events_per_second: events as f64 / seconds.max(1e-9),
            micros_per_event: seconds * 1e6 / (events.max(1) as f64),
        }
    }
}

/// How one core's time an event splits between the script and the engine (timeline, encoding
/// to JSON, scheduling), from the profiled run's engine time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ScriptShare {
    /// Microseconds an event in script steps: one core's figure less the engine's.
    pub script_micros: f64,
    /// Microseconds an event outside any script step, as the profiled run measured it.
    pub engine_micros: f64,
    /// The script's share of one core's time, 0 to 1.
    pub script_share: f64,
}

/// One function in the profiled run: a script function or a native helper it calls.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FunctionRow {
    /// As a script calls it: `pay`, `money::commission`; `pick_zipf` for a native helper.
    pub name: String,
    /// Whether it is a native helper (or a property of the state), not a script function.
    pub native: bool,
    /// Calls an event.
    pub calls_per_event: f64,
    /// Its own steps' share of the script's time, 0 to 1.
    pub self_share: f64,
    /// Its share of the script's time with what it calls, 0 to 1.
    pub total_share: f64,
}

/// One line in the profiled run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LineRow {
    /// The file.
    pub file: PathBuf,
    /// Its 1-based number.
    pub line: usize,
    /// Its text, trimmed.
    pub text: String,
    /// Its share of the script's time, 0 to 1.
    pub self_share: f64,
}

/// Everything `sim bench` found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BenchReport {
    /// The scenario script.
    pub script: PathBuf,
    /// The seed of the events.
    pub seed: u64,
    /// One worker.
    pub one_core: Speed,
    /// The `workers` setting's count, when more than one.
    pub workers: Option<Speed>,
    /// Seconds from reading the script to the first event: compiling it, its settings and its
    /// `setup(ctx)`.
    pub start_up_seconds: f64,
    /// How `setup(ctx)` ran.
    pub setup: SetupRun,
    /// How the one-worker run made its events (warm-up included): compiled, or interpreted.
    pub fast_path: FastPathUse,
    /// Script against engine, when profiled.
    pub split: Option<ScriptShare>,
    /// Events the profiled run made (0 when not profiled).
    pub profiled_events: u64,
    /// Microseconds an event in the profiled run, the profiler's own cost included.
    pub profiled_micros_per_event: f64,
    /// The profiler's cost a step, in nanoseconds, taken off every step's time: the shortest
    /// step seen (see [`crate::script::Profiler`]).
    pub profiler_nanos_per_step: f64,
    /// Script functions, the largest self share first.
    pub functions: Vec<FunctionRow>,
    /// Lines, the largest share first.
    pub lines: Vec<LineRow>,
}

fn share(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() {
        0.0
    } else {
        part.as_secs_f64() / whole.as_secs_f64()
    }
}

impl BenchReport {
    /// The report of the runs: `one_core`, `workers` (with how events were made, `fast_path`)
    /// and the profiled run.
    pub fn new(
        script: PathBuf,
        seed: u64,
        one_core: Speed,
        workers: Option<Speed>,
        start_up: (Duration, SetupRun),
        fast_path: FastPathUse,
        profiled: Option<Profiled>,
    ) -> Self {
        let mut report = Self {
            script,
            seed,
            one_core,
            workers,
            start_up_seconds: start_up.0.as_secs_f64(),
            setup: start_up.1,
            fast_path,
            split: None,
            profiled_events: 0,
            profiled_micros_per_event: 0.0,
            profiler_nanos_per_step: 0.0,
            functions: Vec::new(),
            lines: Vec::new(),
        };
        if let Some(profiled) = profiled {
            report.add_profile(profiled);
        }
        report
    }

    fn add_profile(&mut self, profiled: Profiled) {
        let Profiled {
            profile,
            events,
            elapsed,
        } = profiled;
        let per_event = |d: Duration| d.as_secs_f64() * 1e6 / (events.max(1) as f64);
        let engine_micros = per_event(
            elapsed
                .saturating_sub(profile.script_time)
                .saturating_sub(profile.profiler_time),
        );
        let script_micros = (self.one_core.micros_per_event - engine_micros).max(0.0);
        self.split = Some(ScriptShare {
            script_micros,
            engine_micros,
            script_share: script_micros / self.one_core.micros_per_event.max(1e-9),
        });
        self.profiled_events = events;
        self.profiled_micros_per_event = per_event(elapsed);
        self.profiler_nanos_per_step = profile.span_floor.as_secs_f64() * 1e9;
        let whole = profile.script_time;
        self.functions = profile
            .functions
            .into_iter()
            .map(|f| FunctionRow {
                name: f.name,
                native: f.native,
                calls_per_event: f.calls as f64 / events.max(1) as f64,
                self_share: share(f.self_time, whole),
                total_share: share(f.total_time, whole),
            })
            .collect();
        self.lines = profile
            .lines
            .into_iter()
            .map(|l| LineRow {
                file: l.file,
                line: l.line,
                text: l.text,
                self_share: share(l.self_time, whole),
            })
            .collect();
    }
}
