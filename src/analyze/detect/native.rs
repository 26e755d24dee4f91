//! The seed's fraud rules, in Rust: the defaults every analysis runs.
//!
//! Both fire on the transaction that completes the pattern, so an alert's time is when the
//! pattern became visible, and a legitimate transaction after a burst does not repeat an alert
//! it did not cause.

use super::{Finding, History, Rule, Seen};
use crate::script::ScriptError;

/// The default rules: velocity and high value, with the seed's thresholds.
pub fn defaults() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(Velocity::default()),
        Box::new(HighValue::default()),
    ]
}

/// `count` transactions of one customer within `within_ms` (the seed: 5 within a minute).
#[derive(Debug, Clone)]
pub struct Velocity {
    /// Transactions needed.
    pub count: usize,
    /// Span they must fit in (first to last strictly less than this).
    pub within_ms: i64,
}

impl Default for Velocity {
    fn default() -> Self {
        Self {
            count: 5,
            within_ms: 60_000,
        }
    }
}

impl Rule for Velocity {
    fn name(&self) -> &str {
        "velocity"
    }

    fn check(&mut self, event: &Seen, history: &History) -> Result<Option<Finding>, ScriptError> {
        let history = history.events();
        let earlier = self.count.saturating_sub(1);
        if self.count == 0 || history.len() < earlier {
            return Ok(None);
        }
        let first = history.len() - earlier;
        let start = history.get(first).unwrap_or(event);
        let span = event.tx.time_ms - start.tx.time_ms;
        if span >= self.within_ms {
            return Ok(None);
        }
        // Gathered only when the rule fires: most events do not.
        let window: Vec<&Seen> = history
            .iter()
            .skip(first)
            .chain(std::iter::once(event))
            .collect();
        Ok(Some(Finding {
            reason: format!(
                "{} transactions within {:.1} s (limit: {} within {} s)",
                window.len(),
                span as f64 / 1000.0,
                self.count,
                self.within_ms / 1000
            ),
            events: window.iter().map(|s| s.tx.position).collect(),
        }))
    }
}

/// At least `needed` of a customer's last `of_last` transactions above `threshold` rials, checked
/// when a transaction above the threshold arrives (the seed: 3 of the last 10 above 1,000,000).
#[derive(Debug, Clone)]
pub struct HighValue {
    /// Amount that counts as high, exclusive.
    pub threshold: i64,
    /// High-value transactions needed.
    pub needed: usize,
    /// Among this many latest transactions (the current one included).
    pub of_last: usize,
}

impl Default for HighValue {
    fn default() -> Self {
        Self {
            threshold: 1_000_000,
            needed: 3,
            of_last: 10,
        }
    }
}

impl Rule for HighValue {
    fn name(&self) -> &str {
        "high_value"
    }

    fn check(&mut self, event: &Seen, history: &History) -> Result<Option<Finding>, ScriptError> {
        let history = history.events();
        if event.tx.amount <= self.threshold || self.of_last == 0 {
            return Ok(None);
        }
        let skip = history.len().saturating_sub(self.of_last - 1);
        let high: Vec<&Seen> = history
            .iter()
            .skip(skip)
            .chain(std::iter::once(event))
            .filter(|s| s.tx.amount > self.threshold)
            .collect();
        if high.len() < self.needed {
            return Ok(None);
        }
        Ok(Some(Finding {
            reason: format!(
                "{} of the last {} transactions above {} rials",
                high.len(),
                (history.len() - skip + 1),
                self.threshold
            ),
            events: high.iter().map(|s| s.tx.position).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::transaction::tests::tx;

    fn run(rule: &mut dyn Rule, events: &[(i64, i64)]) -> Vec<Option<Finding>> {
        let mut history = History::default();
        events
            .iter()
            .enumerate()
            .map(|(i, &(amount, seconds))| {
                let seen = Seen {
                    tx: tx("c", amount, seconds, i as i64),
                    event: None,
                };
                let found = rule.check(&seen, &history).unwrap();
                history.push(seen);
                found
            })
            .collect()
    }

    #[test]
    fn velocity_fires_on_the_fifth_within_a_minute_only() {
        let fired = run(
            &mut Velocity::default(),
            &[(1, 0), (1, 10), (1, 20), (1, 30), (1, 59), (1, 200)],
        );
        let at: Vec<usize> = fired
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_some())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at, vec![4]);
        assert_eq!(fired[4].as_ref().unwrap().events.len(), 5);
        // Exactly a minute apart is not "within a minute".
        let edge = run(
            &mut Velocity::default(),
            &[(1, 0), (1, 1), (1, 2), (1, 3), (1, 60)],
        );
        assert!(edge.iter().all(Option::is_none));
    }

    #[test]
    fn high_value_needs_three_of_the_last_ten_and_fires_on_a_high_one() {
        let high = 1_000_001;
        let mut events = vec![(high, 0), (5, 100), (high, 200)];
        events.extend((0..7).map(|i| (5, 300 + i)));
        events.push((high, 1000)); // the first high one has left the last 10: no alert
        events.push((high, 1100)); // now three of the last ten: alert naming the three
        events.push((5, 1200)); // low: no alert, even though three are in the last ten
        let fired = run(&mut HighValue::default(), &events);
        let at: Vec<usize> = fired
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_some())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at, vec![11]);
        let offsets: Vec<i64> = fired[11]
            .as_ref()
            .unwrap()
            .events
            .iter()
            .map(|p| p.offset)
            .collect();
        assert_eq!(offsets, vec![2, 10, 11]);
        // Exactly 1,000,000 is not above it.
        let edge = run(
            &mut HighValue::default(),
            &[(1_000_000, 0), (1_000_000, 1), (1_000_000, 2)],
        );
        assert!(edge.iter().all(Option::is_none));
    }
}
