//! Scoring detection against the ground truth the simulator writes (the `fraud_pattern` header).
//!
//! Scores are per event: an alert *flags* the events it names.
//!
//! - Precision of a rule: of the events it flagged, the share that are fraud.
//! - Recall of a rule: of all fraud events, the share it flagged.
//! - Per pattern: of the fraud events of that pattern, the share flagged by any rule (recall),
//!   and by each rule. A pattern has no precision of its own (a false alarm belongs to no
//!   pattern); each rule's flags are broken down by pattern instead (`flagged_by_pattern`).
//! - Detection delay, in event time: a *case* is one customer hit by one pattern; its delay runs
//!   from its first fraud event to the first alert naming any of its events.

use std::collections::{BTreeMap, VecDeque};

use foldhash::HashMap;

use serde::{Deserialize, Serialize};

use super::detect::{Alert, HISTORY};
use super::transaction::{Position, Transaction};

#[derive(Debug, Default)]
struct RuleTally {
    /// Its place among the rules, for [`RuleBits`].
    index: usize,
    alerts: u64,
    /// Events it flagged, each counted once.
    flagged: u64,
    flagged_fraud: u64,
    flagged_by_pattern: BTreeMap<String, u64>,
}

/// How many of a customer's flagged events the score remembers, to count each event once
/// however many alerts name it.
///
/// An alert names events among its customer's last `HISTORY + 1` (its own event and the
/// history the rules saw: `detect::alert` keeps no other, whatever the rule returned), and
/// alerts are counted in the order of their events (the detection pool gives them back in that
/// order). So an event
/// `p` named again was first flagged by an alert no older than `p`'s own event and at most
/// `HISTORY` events after it; every event first flagged since then lies within `HISTORY` events
/// of `p` on either side: at most `2 * HISTORY` others. Remembering the last `2 * HISTORY + 1`
/// flagged events of each customer therefore tells apart every event that can still be named,
/// where remembering every flagged event grew without end on a long stream (two to three set
/// entries an alert).
const FLAGS_KEPT: usize = 2 * HISTORY + 1;

/// One flagged event, and the rules that flagged it.
#[derive(Debug)]
struct Flag {
    position: Position,
    rules: RuleBits,
}

/// A set of rule indices: a word for the first 64 rules, more only beyond.
#[derive(Debug, Default)]
struct RuleBits {
    low: u64,
    high: Vec<u64>,
}

impl RuleBits {
    /// Adds rule `index`; whether it was new.
    fn insert(&mut self, index: usize) -> bool {
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        let slot = if word == 0 {
            &mut self.low
        } else {
            if self.high.len() < word {
                self.high.resize(word, 0);
            }
            &mut self.high[word - 1]
        };
        let new = *slot & bit == 0;
        *slot |= bit;
        new
    }
}

#[derive(Debug)]
struct Case {
    first_ms: i64,
    detected_ms: Option<i64>,
}

/// Running scores.
#[derive(Debug, Default)]
pub struct Score {
    events: u64,
    labelled: bool,
    fraud_by_pattern: BTreeMap<String, u64>,
    rules: BTreeMap<String, RuleTally>,
    /// Events flagged by any rule, each counted once.
    flagged_any: u64,
    /// Each customer's last flagged events (see [`FLAGS_KEPT`]), oldest first.
    recent_flags: HashMap<String, VecDeque<Flag>>,
    detected_by_pattern: BTreeMap<String, u64>,
    cases: HashMap<(String, String), Case>,
}

/// Precision and recall of one rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleScore {
    /// Alerts it raised.
    pub alerts: u64,
    /// Events it flagged.
    pub flagged: u64,
    /// Of them, fraud.
    pub true_positives: u64,
    /// Flagged legitimate events.
    pub false_positives: u64,
    /// true positives / flagged (null when it flagged nothing).
    pub precision: Option<f64>,
    /// true positives / fraud events (null when there is no fraud).
    pub recall: Option<f64>,
    /// Its true positives by pattern.
    pub flagged_by_pattern: BTreeMap<String, u64>,
}

/// Detection delay statistics, seconds of event time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delay {
    /// Mean.
    pub mean_s: f64,
    /// Median: the middle delay, or the mean of the two middle ones for an even number of
    /// cases.
    pub median_s: f64,
    /// Largest.
    pub max_s: f64,
}

/// Recall and delay for one pattern.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatternScore {
    /// Fraud events of this pattern.
    pub events: u64,
    /// Of them, flagged by some rule.
    pub detected: u64,
    /// detected / events.
    pub recall: Option<f64>,
    /// Recall of each rule on this pattern.
    pub recall_by_rule: BTreeMap<String, f64>,
    /// Cases (customer, pattern).
    pub cases: u64,
    /// Cases with at least one event flagged.
    pub cases_detected: u64,
    /// Delay from a case's first fraud event to its first alert (detected cases).
    pub delay: Option<Delay>,
}

/// The `detection` part of the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Whether any message carried a `fraud_pattern` header (otherwise nothing is scored).
    pub labelled: bool,
    /// Transactions seen.
    pub events: u64,
    /// Of them, fraud.
    pub fraud_events: u64,
    /// Flagged by any rule.
    pub flagged: u64,
    /// Per rule.
    pub rules: BTreeMap<String, RuleScore>,
    /// Per pattern.
    pub patterns: BTreeMap<String, PatternScore>,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

impl Score {
    /// Starts with every rule listed, so a rule that never fires still shows with zero alerts.
    pub fn new(rules: &[String]) -> Self {
        let mut score = Self::default();
        for rule in rules {
            if !score.rules.contains_key(rule) {
                score.add_rule(rule.clone());
            }
        }
        score
    }

    /// Lists `rule`, with the next index.
    fn add_rule(&mut self, rule: String) {
        let index = self.rules.len();
        self.rules.insert(
            rule,
            RuleTally {
                index,
                ..RuleTally::default()
            },
        );
    }

    /// Counts a transaction (before its alerts are recorded).
    pub fn observe(&mut self, tx: &Transaction) {
        self.events += 1;
        if let Some(pattern) = &tx.pattern {
            self.labelled = true;
            *self.fraud_by_pattern.entry(pattern.clone()).or_default() += 1;
            self.cases
                .entry((tx.customer_id.clone(), pattern.clone()))
                .or_insert(Case {
                    first_ms: tx.time_ms,
                    detected_ms: None,
                });
        }
    }

    /// Records an alert's flags.
    pub fn record(&mut self, alert: &Alert) {
        // The rule's name is copied for a key only the first time it alerts.
        if !self.rules.contains_key(&alert.rule) {
            self.add_rule(alert.rule.clone());
        }
        let tally = self.rules.get_mut(&alert.rule).expect("inserted above");
        tally.alerts += 1;
        let flags = super::value_for(&mut self.recent_flags, &alert.customer_id);
        for event in &alert.events {
            let position = Position {
                partition: event.partition,
                offset: event.offset,
            };
            let (flag, first_overall) = match flags.iter().position(|f| f.position == position) {
                Some(i) => (&mut flags[i], false),
                None => {
                    if flags.len() == FLAGS_KEPT {
                        flags.pop_front();
                    }
                    flags.push_back(Flag {
                        position,
                        rules: RuleBits::default(),
                    });
                    (flags.back_mut().expect("pushed above"), true)
                }
            };
            let first_for_rule = flag.rules.insert(tally.index);
            tally.flagged += u64::from(first_for_rule);
            self.flagged_any += u64::from(first_overall);
            let Some(pattern) = &event.pattern else {
                continue;
            };
            if first_for_rule {
                tally.flagged_fraud += 1;
                *tally.flagged_by_pattern.entry(pattern.clone()).or_default() += 1;
            }
            if first_overall {
                *self.detected_by_pattern.entry(pattern.clone()).or_default() += 1;
            }
            if let Some(case) = self
                .cases
                .get_mut(&(alert.customer_id.clone(), pattern.clone()))
            {
                case.detected_ms.get_or_insert(alert.time_ms);
            }
        }
    }

    /// Alerts raised so far, per rule.
    pub fn alerts_by_rule(&self) -> BTreeMap<String, u64> {
        self.rules
            .iter()
            .map(|(k, t)| (k.clone(), t.alerts))
            .collect()
    }

    /// Whether any transaction carried the ground truth.
    pub fn labelled(&self) -> bool {
        self.labelled
    }

    /// Each rule's score so far. Cheaper than [`Score::detection`] (no per-pattern delays), so
    /// the metrics endpoint's figures can be refreshed a few times a second.
    pub fn rule_scores(&self) -> BTreeMap<String, RuleScore> {
        let fraud: u64 = self.fraud_by_pattern.values().sum();
        self.rules
            .iter()
            .map(|(name, t)| {
                let flagged = t.flagged;
                (
                    name.clone(),
                    RuleScore {
                        alerts: t.alerts,
                        flagged,
                        true_positives: t.flagged_fraud,
                        false_positives: flagged - t.flagged_fraud,
                        precision: ratio(t.flagged_fraud, flagged),
                        recall: ratio(t.flagged_fraud, fraud),
                        flagged_by_pattern: t.flagged_by_pattern.clone(),
                    },
                )
            })
            .collect()
    }

    /// The scores so far.
    pub fn detection(&self) -> Detection {
        let fraud: u64 = self.fraud_by_pattern.values().sum();
        let rules = self.rule_scores();
        let patterns = self
            .fraud_by_pattern
            .iter()
            .map(|(pattern, &events)| (pattern.clone(), self.pattern_score(pattern, events)))
            .collect();
        Detection {
            labelled: self.labelled,
            events: self.events,
            fraud_events: fraud,
            flagged: self.flagged_any,
            rules,
            patterns,
        }
    }

    /// The delay of each detected case, in seconds of event time, per pattern: what the
    /// report's delay chart bins.
    pub fn delays_by_pattern(&self) -> BTreeMap<String, Vec<f64>> {
        let mut delays: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for ((_, pattern), case) in &self.cases {
            if let Some(detected) = case.detected_ms {
                let seconds = (detected - case.first_ms) as f64 / 1000.0;
                delays.entry(pattern.clone()).or_default().push(seconds);
            }
        }
        delays.values_mut().for_each(|d| d.sort_by(f64::total_cmp));
        delays
    }

    fn pattern_score(&self, pattern: &str, events: u64) -> PatternScore {
        let detected = self.detected_by_pattern.get(pattern).copied().unwrap_or(0);
        let recall_by_rule = self
            .rules
            .iter()
            .map(|(rule, t)| {
                let hit = t.flagged_by_pattern.get(pattern).copied().unwrap_or(0);
                (rule.clone(), hit as f64 / events.max(1) as f64)
            })
            .collect();
        let cases: Vec<&Case> = self
            .cases
            .iter()
            .filter(|((_, p), _)| p == pattern)
            .map(|(_, c)| c)
            .collect();
        let mut delays: Vec<f64> = cases
            .iter()
            .filter_map(|c| c.detected_ms.map(|d| (d - c.first_ms) as f64 / 1000.0))
            .collect();
        delays.sort_by(f64::total_cmp);
        let delay = (!delays.is_empty()).then(|| Delay {
            mean_s: delays.iter().sum::<f64>() / delays.len() as f64,
            median_s: median(&delays),
            max_s: delays[delays.len() - 1],
        });
        PatternScore {
            events,
            detected,
            recall: ratio(detected, events),
            recall_by_rule,
            cases: cases.len() as u64,
            cases_detected: delays.len() as u64,
            delay,
        }
    }
}

/// The median of sorted, non-empty `values`: the middle one, or the mean of the two middle ones.
fn median(values: &[f64]) -> f64 {
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::detect::EventRef;
    use crate::analyze::transaction::tests::tx;

    fn alert(rule: &str, customer: &str, at_s: i64, events: &[&Transaction]) -> Alert {
        Alert {
            rule: rule.into(),
            customer_id: customer.into(),
            time_ms: at_s * 1000,
            reason: String::new(),
            events: events
                .iter()
                .map(|t| EventRef {
                    transaction_id: t.transaction_id.clone(),
                    partition: t.position.partition,
                    offset: t.position.offset,
                    time_ms: t.time_ms,
                    amount: t.amount,
                    pattern: t.pattern.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn precision_recall_and_delay_per_rule_and_pattern() {
        let mut events: Vec<Transaction> = (0..6).map(|i| tx("a", 1, i * 10, i)).collect();
        for e in &mut events[..4] {
            e.pattern = Some("burst".into());
        }
        let mut score = Score::new(&["velocity".into(), "quiet".into()]);
        events.iter().for_each(|e| score.observe(e));
        // Flags two fraud events and one legitimate one, at 30 s; then one of them again.
        score.record(&alert(
            "velocity",
            "a",
            30,
            &[&events[2], &events[3], &events[4]],
        ));
        score.record(&alert("velocity", "a", 40, &[&events[3]]));
        let d = score.detection();
        assert!(d.labelled);
        assert_eq!((d.events, d.fraud_events, d.flagged), (6, 4, 3));
        let v = &d.rules["velocity"];
        assert_eq!(
            (v.alerts, v.flagged, v.true_positives, v.false_positives),
            (2, 3, 2, 1)
        );
        assert_eq!(v.precision, Some(2.0 / 3.0));
        assert_eq!(v.recall, Some(0.5));
        assert_eq!(d.rules["quiet"].precision, None);
        let p = &d.patterns["burst"];
        assert_eq!(
            (p.events, p.detected, p.cases, p.cases_detected),
            (4, 2, 1, 1)
        );
        assert_eq!(p.recall_by_rule["velocity"], 0.5);
        // First fraud event at 0 s, first alert at 30 s.
        assert_eq!(p.delay.as_ref().unwrap().max_s, 30.0);
    }

    #[test]
    fn the_median_delay_of_an_even_number_of_cases_is_the_mean_of_the_middle_two() {
        // Two customers hit by one pattern, detected 10 s and 30 s after their first fraud event.
        let mut a = tx("a", 1, 0, 0);
        let mut b = tx("b", 1, 0, 1);
        a.pattern = Some("burst".into());
        b.pattern = Some("burst".into());
        let mut score = Score::new(&["velocity".into()]);
        score.observe(&a);
        score.observe(&b);
        score.record(&alert("velocity", "a", 10, &[&a]));
        score.record(&alert("velocity", "b", 30, &[&b]));
        let delay = score.detection().patterns["burst"].delay.clone().unwrap();
        assert_eq!(
            (delay.median_s, delay.mean_s, delay.max_s),
            (20.0, 20.0, 30.0)
        );
    }

    #[test]
    fn an_event_named_by_every_alert_its_history_allows_is_flagged_once_per_rule() {
        // Each alert names its event and the whole history the rules saw (HISTORY before it),
        // the most overlap an alert can have; two rules alternate, a third names only the newest.
        let events: Vec<Transaction> = (0..200).map(|i| tx("a", 1, i, i)).collect();
        let mut score = Score::new(&["all".into(), "odd".into(), "newest".into()]);
        for (i, event) in events.iter().enumerate() {
            score.observe(event);
            let window: Vec<&Transaction> = events[i.saturating_sub(HISTORY)..=i].iter().collect();
            let rule = if i % 2 == 0 { "all" } else { "odd" };
            score.record(&alert(rule, "a", i as i64, &window));
            score.record(&alert("newest", "a", i as i64, &[event]));
        }
        let d = score.detection();
        assert_eq!(d.flagged, 200);
        // The even events' alerts name 0..=198 (the last, 198, names 178..=198); the odd ones'
        // 0..=199 (the first, 1, names 0 and 1).
        assert_eq!(d.rules["all"].flagged, 199);
        assert_eq!(d.rules["odd"].flagged, 200);
        assert_eq!(d.rules["newest"].flagged, 200);
        assert_eq!(d.rules["newest"].alerts, 200);
    }

    #[test]
    fn an_event_flagged_before_the_older_and_newer_events_around_it_is_still_known() {
        // Event 20 is flagged first; then the 20 events before it and the 20 after it, each for
        // the first time: 40 flags later, the alert of event 40 names event 20 again (still
        // within its history), and it must not count twice.
        let events: Vec<Transaction> = (0..41).map(|i| tx("a", 1, i, i)).collect();
        let mut score = Score::new(&["velocity".into()]);
        events.iter().for_each(|e| score.observe(e));
        score.record(&alert("velocity", "a", 20, &[&events[20]]));
        let older: Vec<&Transaction> = events[..20].iter().collect();
        score.record(&alert("velocity", "a", 20, &older));
        for event in &events[21..] {
            score.record(&alert("velocity", "a", event.time_ms / 1000, &[event]));
        }
        score.record(&alert("velocity", "a", 40, &[&events[20], &events[40]]));
        let d = score.detection();
        assert_eq!((d.flagged, d.rules["velocity"].flagged), (41, 41));
    }

    #[test]
    fn the_flags_remembered_for_a_customer_stay_bounded_on_a_long_stream() {
        let mut score = Score::new(&["velocity".into()]);
        for i in 0..10_000 {
            let event = tx("a", 1, i, i);
            score.observe(&event);
            score.record(&alert("velocity", "a", i, &[&event]));
        }
        assert_eq!(score.detection().rules["velocity"].flagged, 10_000);
        assert_eq!(score.recent_flags["a"].len(), FLAGS_KEPT);
    }

    #[test]
    fn rule_bits_tell_apart_rules_beyond_the_first_word() {
        let mut bits = RuleBits::default();
        assert!(bits.insert(3));
        assert!(bits.insert(70));
        assert!(bits.insert(131));
        assert!(!bits.insert(70));
        assert!(!bits.insert(3));
        assert!(bits.insert(6));
        assert!(!bits.insert(131));
    }

    #[test]
    fn unlabelled_input_is_not_scored_as_perfect() {
        let mut score = Score::new(&["velocity".into()]);
        score.observe(&tx("a", 1, 0, 0));
        let d = score.detection();
        assert!(!d.labelled);
        assert_eq!(d.rules["velocity"].recall, None);
    }
}
