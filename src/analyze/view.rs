//! The live terminal view: one frame of text, redrawn in place by the command line about once a
//! second (top merchants, revenue by category, the current window, alerts per minute, consumer
//! lag per partition). The library only renders the frame; the binary decides where it goes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::aggregate::{sorted, Totals};
use super::analyzer::Analyzer;
use super::summary::iso;

/// What the view shows besides the analysis.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Messages consumed.
    pub consumed: u64,
    /// Messages per second over the last refresh.
    pub rate: f64,
    /// Consumer lag per assigned partition (from librdkafka's statistics; -1 when unknown).
    pub lag: BTreeMap<i32, i64>,
}

/// Renders one frame.
pub fn render(analyzer: &Analyzer, totals: &Totals, progress: &Progress) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sim analyze | consumed {} ({:.0}/s) | transactions {} | poison {} | alerts {}",
        progress.consumed,
        progress.rate,
        totals.transactions,
        analyzer.poison_total,
        analyzer.alerts_total
    );
    let lag: Vec<String> = progress
        .lag
        .iter()
        .map(|(p, l)| format!("p{p}: {l}"))
        .collect();
    let _ = writeln!(
        out,
        "lag        {}",
        if lag.is_empty() {
            "-".into()
        } else {
            lag.join("  ")
        }
    );
    let top: Vec<String> = totals
        .top_merchants(5)
        .iter()
        .map(|(m, c)| format!("{m} {c}"))
        .collect();
    let _ = writeln!(out, "merchants  {}", top.join("  "));
    let revenue: Vec<String> = sorted(&totals.category_revenue)
        .iter()
        .map(|(c, r)| format!("{c} {r}"))
        .collect();
    let _ = writeln!(out, "revenue    {}", revenue.join("  "));
    match analyzer.windows.current() {
        Some(w) => {
            let _ = writeln!(
                out,
                "window     {} .. {}: {} tx, sum {}, avg {:.0}, declined {:.1}%",
                iso(w.start_ms),
                iso(w.end_ms),
                w.count,
                w.amount_sum,
                w.average_amount(),
                w.decline_share() * 100.0
            );
        }
        None => {
            let _ = writeln!(out, "window     -");
        }
    }
    let per_minute: Vec<String> = analyzer
        .alerts_per_minute
        .iter()
        .rev()
        .take(5)
        .map(|(m, c)| format!("{} {c}", &iso(*m)[11..16]))
        .collect();
    let _ = writeln!(out, "alerts/min {}", per_minute.join("  "));
    for alert in analyzer.recent_alerts.iter().rev().take(3) {
        let _ = writeln!(
            out,
            "  {} {} {}: {}",
            iso(alert.time_ms),
            alert.rule,
            alert.customer_id,
            alert.reason
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::detect::{script::ScriptRules, Detector};
    use crate::analyze::transaction::tests::tx;
    use crate::analyze::window::WindowSpec;

    #[test]
    fn a_frame_shows_merchants_window_alerts_and_lag() {
        let mut analyzer = Analyzer::new(WindowSpec::default(), Detector::new(ScriptRules::none()));
        let mut totals = Totals::default();
        for i in 0..5 {
            let t = tx("c", 10, i, i);
            analyzer.record(&t, b"{}");
            totals.add(&t);
        }
        let progress = Progress {
            lag: [(0, 3), (1, -1)].into_iter().collect(),
            ..Progress::default()
        };
        let frame = render(&analyzer, &totals, &progress);
        assert!(frame.contains("merch_1 5"), "{frame}");
        assert!(frame.contains("p0: 3  p1: -1"), "{frame}");
        assert!(frame.contains("5 tx, sum 50"), "{frame}");
        assert!(frame.contains("velocity c"), "{frame}");
    }
}
