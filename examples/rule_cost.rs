//! The detector's cost an event in instructions, for valgrind: `examples/rule_speed.rs` times
//! the rules, which a noisy machine blurs; this reads the first COUNT events of a JSON-lines FILE
//! and runs them through the detector once, so that callgrind's counts for two COUNTs give the
//! cost of one event (reading it as a transaction included), start-up left out.
//!
//! ```text
//! sim sample scripts/darooghe.rhai -n 20000 --seed 1 --now 2024-01-15T10:00:00Z > /tmp/events.jsonl
//! valgrind --tool=callgrind target/release/examples/rule_cost /tmp/events.jsonl 2000
//! valgrind --tool=callgrind target/release/examples/rule_cost /tmp/events.jsonl 6000
//! ```
//!
//! (the difference of the two totals over 4,000). With RULES_FOLDER the Rhai rules of that
//! folder run beside the native ones, by default those of `scripts/detect/`; with `none`, the
//! native rules alone. Prints the alerts raised.

use std::path::{Path, PathBuf};

#[path = "support/mod.rs"]
mod support;

use sim::analyze::detect::script::ScriptRules;
use sim::analyze::detect::Detector;
use support::Failure;

/// The allocator `sim` itself runs on (see `src/main.rs`), so the counts are `sim analyze`'s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: rule_cost FILE COUNT [RULES_FOLDER|none]";
    let file = args.next().ok_or(usage)?;
    let count: usize = args.next().ok_or(usage)?.parse()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = match args.next() {
        Some(none) if none == "none" => ScriptRules::none(),
        Some(folder) => ScriptRules::load(&PathBuf::from(folder))?.0,
        None => ScriptRules::load(&root.join("scripts/detect"))?.0,
    };
    let text = std::fs::read(&file)?;
    // The first COUNT lines only: reading each transaction is part of an event's cost.
    let transactions = support::transactions(&text, count)?;
    let mut detector = Detector::new(rules);
    let mut alerts = 0;
    let count = transactions.len();
    for (tx, payload) in transactions {
        alerts += detector.observe(tx, payload).alerts.len();
    }
    println!("{count} events, {alerts} alerts");
    Ok(())
}
