//! What a checked run exercised: for each function of the script, how often it was scheduled
//! and called, the events it made, and how many of those reached the script's `check`. A check
//! that never reached a follow-up function proves nothing about it; the coverage says so.

use std::collections::BTreeMap;

/// One function's share of a checked run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FunctionCoverage {
    /// `event`, or the follow-up function's name.
    pub function: String,
    /// Follow-ups scheduled to it (0 for `event`, which the timeline calls).
    pub scheduled: u64,
    /// Calls made.
    pub calls: u64,
    /// Events its calls returned.
    pub events: u64,
    /// Of those, events the script's `check` ran on.
    pub checked: u64,
}

/// The coverage of a run, function by function.
#[derive(Debug, Default)]
pub struct Coverage {
    by_function: BTreeMap<String, FunctionCoverage>,
}

impl Coverage {
    fn entry(&mut self, function: &str) -> &mut FunctionCoverage {
        self.by_function
            .entry(function.to_string())
            .or_insert_with(|| FunctionCoverage {
                function: function.to_string(),
                ..FunctionCoverage::default()
            })
    }

    /// Counts a follow-up scheduled to `function`.
    pub fn scheduled(&mut self, function: &str) {
        self.entry(function).scheduled += 1;
    }

    /// Counts a call of `function` that returned `events` events, checked or not.
    pub fn called(&mut self, function: &str, events: u64, checked: bool) {
        let entry = self.entry(function);
        entry.calls += 1;
        entry.events += events;
        if checked {
            entry.checked += events;
        }
    }

    /// Each function's coverage, `event` first, then the follow-ups by name.
    pub fn functions(self) -> Vec<FunctionCoverage> {
        let mut functions: Vec<FunctionCoverage> = self.by_function.into_values().collect();
        functions.sort_by_key(|f| (f.function != "event", f.function.clone()));
        functions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_function_and_lists_event_first() {
        let mut coverage = Coverage::default();
        coverage.called("event", 2, true);
        coverage.scheduled("retry");
        coverage.scheduled("retry");
        coverage.called("retry", 1, true);
        coverage.called("audit", 1, false);
        let functions = coverage.functions();
        let names: Vec<&str> = functions.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names, ["event", "audit", "retry"]);
        assert_eq!((functions[2].scheduled, functions[2].calls), (2, 1));
        assert_eq!((functions[1].events, functions[1].checked), (1, 0));
    }
}
