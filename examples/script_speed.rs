//! Per-core speed of a Rhai scenario against CPython making the same events.
//!
//! Runs, in turn, for REPEATS rounds (default 3; a multiple of the number of rows puts every row
//! in every place of a round equally often, as each round starts one row further along), each a
//! whole process writing EVENTS (default 100,000) JSON lines to /dev/null on one core:
//!
//! - `python3 benches/python_events.py -n EVENTS`: the seed's generator in CPython (`random`,
//!   `uuid4`, `isoformat`, `json.dumps`);
//! - `sim sample benches/seed_port.rhai -n EVENTS --workers 1`: the same generator ported to Rhai
//!   the natural way (plain arrays and maps in the state, literal arrays with `.pick()`);
//! - `sim sample scripts/darooghe.rhai -n EVENTS --workers 1`: the shipped scenario, which does more
//!   per event (Zipf popularity, log-normal amounts, commission plans, fraud patterns).
//!
//! and prints, for each, the median of the rounds in µs per event (the process's CPU time, user
//! plus system, over EVENTS, as `time` reports it; wall time beside it) and its speed as a multiple
//! of CPython's (CPython's µs/event over its own). Whole processes, so start-up (compiling the
//! script, `setup`, the check of a sample at start, Python's imports) is in the figure, as a user
//! would see it. It measures; it asserts nothing.
//!
//! With `SIM_BEFORE=PATH` (another build of `sim`, say of the commit before a change), its two
//! Rhai rows are run in the same rounds, so a before-and-after table comes from one run.
//!
//! ```text
//! cargo run --release --example script_speed [-- EVENTS [REPEATS]]
//! SIM_BEFORE=/tmp/sim-main cargo run --release --example script_speed
//! ```

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "support/mod.rs"]
mod support;

use support::{build_sim, uptime, Failure, SETTING_VARS};

/// One command to time: a label and its words.
struct Contender {
    label: &'static str,
    words: Vec<String>,
}

/// CPU and wall seconds of one run.
#[derive(Clone, Copy)]
struct Timing {
    cpu: f64,
    wall: f64,
}

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let events: u64 = match args.next() {
        Some(n) => n.replace('_', "").parse()?,
        None => 100_000,
    };
    let repeats: usize = match args.next() {
        Some(n) => n.parse()?,
        None => 3,
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sim = build_sim(root)?;
    let n = events.to_string();
    let sim_sample = |sim: &Path, script: &str| -> Vec<String> {
        [
            sim.display().to_string(),
            "sample".into(),
            script.into(),
            "-n".into(),
            n.clone(),
            "--workers".into(),
            "1".into(),
            "--seed".into(),
            "1".into(),
            "--now".into(),
            "2024-01-15T10:00:00Z".into(),
        ]
        .into()
    };
    let mut contenders = vec![
        Contender {
            label: "CPython (benches/python_events.py)",
            words: vec![
                "python3".into(),
                "benches/python_events.py".into(),
                "-n".into(),
                n.clone(),
            ],
        },
        Contender {
            label: "Rhai benches/seed_port.rhai",
            words: sim_sample(&sim, "benches/seed_port.rhai"),
        },
        Contender {
            label: "Rhai scripts/darooghe.rhai",
            words: sim_sample(&sim, "scripts/darooghe.rhai"),
        },
    ];
    if let Some(before) = std::env::var_os("SIM_BEFORE") {
        let before = std::path::PathBuf::from(before);
        contenders.push(Contender {
            label: "before: Rhai benches/seed_port.rhai",
            words: sim_sample(&before, "benches/seed_port.rhai"),
        });
        contenders.push(Contender {
            label: "before: Rhai scripts/darooghe.rhai",
            words: sim_sample(&before, "scripts/darooghe.rhai"),
        });
    }

    println!("load at start: {}", uptime());
    println!("{events} events a run, {repeats} rounds, medians; one core each\n");
    for contender in &contenders {
        println!("  {}", contender.words.join(" "));
    }
    let mut timings: Vec<Vec<Timing>> = vec![Vec::new(); contenders.len()];
    for round in 0..repeats {
        // Each round starts one contender further along, so no contender always runs last, on
        // a machine that has warmed up or slowed down over the round (with SIM_BEFORE, always
        // last once read 1.4 times slower than the same work first).
        for k in 0..contenders.len() {
            let i = (round + k) % contenders.len();
            timings[i].push(time_run(root, &contenders[i].words)?);
        }
        println!("  round {} done, load {}", round + 1, uptime());
    }
    let medians: Vec<Timing> = timings.iter().map(|runs| median(runs)).collect();
    let per_event = |seconds: f64| seconds * 1e6 / events as f64;
    let python = per_event(medians[0].cpu);
    println!(
        "\n{:<36} {:>12} {:>13} {:>11}",
        "what", "µs/event cpu", "µs/event wall", "× CPython"
    );
    for (contender, timing) in contenders.iter().zip(&medians) {
        let us = per_event(timing.cpu);
        println!(
            "{:<36} {:>12.2} {:>13.2} {:>10.2}×",
            contender.label,
            us,
            per_event(timing.wall),
            python / us
        );
    }
    println!("\nload at end: {}", uptime());
    Ok(())
}

/// Runs `words` once, its output to /dev/null, through bash's `time` for its CPU seconds.
fn time_run(root: &Path, words: &[String]) -> Result<Timing, Failure> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "TIMEFORMAT='%U %S'; time ( {} >/dev/null 2>/dev/null )",
        quoted.join(" ")
    );
    let mut command = Command::new("bash");
    command.args(["-c", &script]).current_dir(root);
    for var in SETTING_VARS {
        command.env_remove(var);
    }
    let started = Instant::now();
    let output = command.output()?;
    let wall = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(format!("`{}` failed ({})", words.join(" "), output.status).into());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let cpu: f64 = stderr
        .lines()
        .last()
        .ok_or("no timing from bash")?
        .split_whitespace()
        .map(str::parse::<f64>)
        .sum::<Result<f64, _>>()
        .map_err(|e| format!("bad timing line {stderr:?}: {e}"))?;
    Ok(Timing { cpu, wall })
}

/// The median of each figure, taken separately.
fn median(runs: &[Timing]) -> Timing {
    let mid = |mut xs: Vec<f64>| -> f64 {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    Timing {
        cpu: mid(runs.iter().map(|t| t.cpu).collect()),
        wall: mid(runs.iter().map(|t| t.wall).collect()),
    }
}
