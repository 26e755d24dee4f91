//! The live view's figures: one [`Frame`] of what an operator watches (top merchants, revenue by
//! category, the latest windows, recent alerts, consumer lag per partition), taken by the run
//! loop about once a second. The library only gathers the figures; the binary decides how they
//! are drawn (`sim analyze`'s terminal dashboard).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::aggregate::{sorted, Totals};
use super::analyzer::Analyzer;
use super::detect::Alert;
use super::window::WindowStats;

/// Merchants listed by the view, the busiest first.
pub const TOP_MERCHANTS: usize = 8;
/// Alerts listed by the view, the newest first.
pub const SHOWN_ALERTS: usize = 10;

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

/// A window as the view lists it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowRow {
    /// The window's figures.
    pub stats: WindowStats,
    /// Whether it still takes events (the watermark has not passed its end and lateness).
    pub open: bool,
}

/// One frame of the live view: owned figures, so another thread can draw them while the run
/// loop goes on.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// Messages consumed, their rate, and the lag.
    pub progress: Progress,
    /// Transactions counted in the committed totals.
    pub transactions: u64,
    /// Poison messages, all told.
    pub poison: u64,
    /// Alerts raised, all told.
    pub alerts: u64,
    /// The busiest merchants and their transaction counts, busiest first.
    pub top_merchants: Vec<(String, u64)>,
    /// Revenue (rials) by category, by name.
    pub revenue: Vec<(String, i64)>,
    /// The latest tumbling windows, the newest last (the current one, and the one before).
    pub windows: Vec<WindowRow>,
    /// The latest alerts, the newest first.
    pub recent_alerts: Vec<Arc<Alert>>,
}

impl Frame {
    /// The figures of `analyzer` and the committed `totals` now.
    pub fn of(analyzer: &Analyzer, totals: &Totals, progress: Progress) -> Self {
        let tumbling: Vec<WindowRow> = analyzer
            .windows
            .tumbling()
            .map(|(stats, open)| WindowRow {
                stats: *stats,
                open,
            })
            .collect();
        Self {
            progress,
            transactions: totals.transactions,
            poison: analyzer.poison_total,
            alerts: analyzer.alerts_total,
            top_merchants: totals
                .top_merchants(TOP_MERCHANTS)
                .into_iter()
                .map(|(m, c)| (m.to_string(), c))
                .collect(),
            revenue: sorted(&totals.category_revenue).into_iter().collect(),
            windows: tumbling[tumbling.len().saturating_sub(2)..].to_vec(),
            recent_alerts: analyzer
                .recent_alerts
                .iter()
                .rev()
                .take(SHOWN_ALERTS)
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::detect::{script::ScriptRules, Detector};
    use crate::analyze::transaction::tests::tx;
    use crate::analyze::window::WindowSpec;

    #[test]
    fn a_frame_holds_merchants_windows_alerts_and_lag() {
        let mut analyzer = Analyzer::new(WindowSpec::default(), Detector::new(ScriptRules::none()));
        let mut totals = Totals::default();
        for i in 0..5 {
            let t = tx("c", 10, i, i);
            analyzer.record(&t, b"{}"[..].into());
            totals.add(&t);
        }
        let progress = Progress {
            lag: [(0, 3), (1, -1)].into_iter().collect(),
            ..Progress::default()
        };
        let frame = Frame::of(&analyzer, &totals, progress);
        assert_eq!(frame.top_merchants, vec![("merch_1".to_string(), 5)]);
        assert_eq!(frame.progress.lag.get(&0), Some(&3));
        let current = frame.windows.last().expect("a window");
        assert_eq!((current.stats.count, current.stats.amount_sum), (5, 50));
        assert_eq!(frame.recent_alerts[0].rule, "velocity");
        assert_eq!(frame.recent_alerts[0].customer_id, "c");
    }
}
