//! Per-core speed of fraud detection alone: the rules `sim analyze` runs on each transaction,
//! without Kafka around them.
//!
//! Makes EVENTS (default 200,000) darooghe events with `sim sample --seed 1`, reads them as
//! transactions, then runs them, in turn for REPEATS rounds (default 3), through the detector on
//! one thread: with the native rules only; with the Rhai rules of `scripts/detect/` (or
//! RULES_FOLDER) as well; and once more with the Rhai rules' fast path off (every call on Rhai's
//! interpreter). Prints, for each, the median µs per event, events per second and alerts (the
//! same with the fast path or without), and the Rhai rules' own cost (the difference).
//! `examples/analyze_throughput.rs` measures the whole consumer; this isolates the rules, whose
//! cost is what a rule author controls. It measures; it asserts nothing.
//!
//! ```text
//! cargo run --release --example rule_speed [-- EVENTS [REPEATS [RULES_FOLDER]]]
//! ```

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "support/mod.rs"]
mod support;

use sim::analyze::detect::script::ScriptRules;
use sim::analyze::detect::{Detector, Rule};
use sim::script::FastPathUse;
use support::{build_sim, uptime, Failure};

/// The allocator `sim` itself runs on (see `src/main.rs`), so the figures are `sim analyze`'s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Which rules a round runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rules {
    /// The native rules only.
    Native,
    /// The Rhai rules too, on the fast path.
    Rhai,
    /// The Rhai rules too, every call on Rhai's interpreter.
    Interpreted,
}

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let events: u64 = match args.next() {
        Some(n) => n.replace('_', "").parse()?,
        None => 200_000,
    };
    let repeats: usize = match args.next() {
        Some(n) => n.parse()?,
        None => 3,
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sim = build_sim(root)?;
    let output = Command::new(&sim)
        .args(["sample", "scripts/darooghe.rhai", "-n", &events.to_string()])
        .args(["--seed", "1", "--now", "2024-01-15T10:00:00Z"])
        .current_dir(root)
        .output()?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    let transactions = support::transactions(&output.stdout, usize::MAX)?;
    let count = transactions.len() as f64;
    println!(
        "{} darooghe events (sim sample --seed 1); {}",
        transactions.len(),
        uptime()
    );

    let detect = args
        .next()
        .map_or_else(|| root.join("scripts/detect"), Into::into);
    let mut native = Vec::new();
    let mut rhai = Vec::new();
    let mut interpreted = Vec::new();
    let mut fast_paths = Vec::new();
    for _ in 0..repeats {
        let runs = [
            (Rules::Native, &mut native),
            (Rules::Rhai, &mut rhai),
            (Rules::Interpreted, &mut interpreted),
        ];
        for (rules, seconds) in runs {
            let scripts = match rules {
                Rules::Native => ScriptRules::none(),
                Rules::Rhai => ScriptRules::load(&detect)?.0,
                Rules::Interpreted => ScriptRules::load(&detect)?.0.interpreted(),
            };
            let mut detector = Detector::new(scripts);
            let mut alerts = 0usize;
            let start = Instant::now();
            for (tx, payload) in &transactions {
                let verdict = detector.observe(tx.clone(), payload.clone());
                if let Some((rule, err)) = verdict.errors.first() {
                    return Err(format!("{rule}: {err}").into());
                }
                alerts += verdict.alerts.len();
            }
            seconds.push((start.elapsed().as_secs_f64(), alerts));
            if rules == Rules::Rhai {
                fast_paths = detector
                    .scripts_mut()
                    .rules_mut()
                    .map(|rule| (rule.name().to_string(), rule.fast_path()))
                    .collect();
            }
        }
    }
    let median = |runs: &mut Vec<(f64, usize)>| {
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        runs[runs.len() / 2]
    };
    let (native, native_alerts) = median(&mut native);
    let (rhai, rhai_alerts) = median(&mut rhai);
    let (slow, slow_alerts) = median(&mut interpreted);
    let row = |label: &str, seconds: f64, alerts: usize| {
        println!(
            "{label:<32} {:>8.2} µs/event {:>10.0} events/s {alerts:>7} alerts",
            seconds / count * 1e6,
            count / seconds
        );
    };
    row("native rules", native, native_alerts);
    row("native + Rhai rules", rhai, rhai_alerts);
    row("the same, interpreter only", slow, slow_alerts);
    println!(
        "{:<32} {:>8.2} µs/event, {:.2} on the interpreter alone (medians of {repeats})",
        "the Rhai rules' own cost",
        (rhai - native) / count * 1e6,
        (slow - native) / count * 1e6
    );
    for (rule, fast) in fast_paths {
        match fast {
            FastPathUse::On { events, given_up } => {
                println!("fast path of {rule}: {events} calls, {given_up} given up to Rhai")
            }
            _ => println!("fast path of {rule}: off (Rhai runs every call)"),
        }
    }
    Ok(())
}
