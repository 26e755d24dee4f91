//! Fraud detection: per-customer history, the native default rules, and rules written in Rhai.
//!
//! Each transaction is checked against every rule with the customer's previous transactions (the
//! last [`HISTORY`], oldest first). Messages are keyed by customer, so one customer's events are
//! in one partition, in order, and one consumer sees all of them. A rule that fires makes an
//! [`Alert`] naming the customer, the rule, the reason and the events that triggered it.
//!
//! - [`native`]: the seed's rules, in Rust: `velocity` (5 transactions of one customer within a
//!   minute) and `high_value` (3 of a customer's last 10 above 1,000,000 rials).
//! - [`script`]: rules a user writes in Rhai (`fn detect(event, history)`), loaded from a folder
//!   and hot-reloaded.
//! - [`EventView`]: the transaction as a Rhai rule sees it, a read-only handle on its map.
//! - [`pool`]: the rules on several cores, customers split between worker threads, the verdicts
//!   put back in the order one core gives them.
//! - [`watch`]: the rules folder over a run: loaded at start, watched, reloaded on a save.

pub mod native;
pub mod pool;
pub mod script;
pub mod watch;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use serde::Serialize;

use super::transaction::{Position, Transaction};
pub use crate::script::event_view::EventView;
use crate::script::json::scan::FieldSpan;
use crate::script::ScriptError;

/// Previous transactions of a customer kept for the rules.
pub const HISTORY: usize = 20;

/// A message's value as the rules read it: its JSON text and, when the consumer's read found
/// them, where its top-level fields lie, so that a rule reading a field the analyzer did not
/// decode finds it without scanning the text again (see [`EventView`]).
#[derive(Debug, Clone)]
pub struct Payload<'a> {
    /// The value (for Avro, the event decoded to JSON).
    pub text: Cow<'a, [u8]>,
    /// Its top-level fields, when known.
    pub fields: Option<Vec<FieldSpan>>,
}

impl Payload<'_> {
    /// The same payload, owning its text (to hand it to another thread).
    pub fn into_owned(self) -> Payload<'static> {
        Payload {
            text: Cow::Owned(self.text.into_owned()),
            fields: self.fields,
        }
    }
}

impl<'a> From<&'a [u8]> for Payload<'a> {
    /// `text`, its fields to be found if a rule asks for one.
    fn from(text: &'a [u8]) -> Self {
        Self {
            text: Cow::Borrowed(text),
            fields: None,
        }
    }
}

/// A transaction as the rules see it: the decoded fields, and for Rhai rules the whole event.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The decoded transaction.
    pub tx: Transaction,
    /// The whole event as Rhai rules see it (its map with `_time`, event time in ms, added), an
    /// [`EventView`] in a shared `Dynamic`, so that putting it into a rule's history copies no
    /// more than a reference count; only when Rhai rules are loaded (building it costs more than
    /// the native rules together).
    pub event: Option<rhai::Dynamic>,
}

impl Seen {
    /// The event's shared handle for a Rhai rule, `()` when it has none.
    pub fn handle(&self) -> rhai::Dynamic {
        self.event.clone().unwrap_or(rhai::Dynamic::UNIT)
    }
}

/// What a rule found: why, and which events (the current one and earlier ones) triggered it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// A human-readable reason.
    pub reason: String,
    /// The triggering events.
    pub events: Vec<Position>,
}

/// A detection rule.
pub trait Rule: Send {
    /// The rule's name, as alerts and scores show it.
    fn name(&self) -> &str;
    /// Checks `event` given the customer's previous transactions, oldest first.
    fn check(&mut self, event: &Seen, history: &History) -> Result<Option<Finding>, ScriptError>;
}

/// A customer's previous transactions, oldest first, at most [`HISTORY`].
#[derive(Debug, Default)]
pub struct History {
    events: VecDeque<Seen>,
    /// While Rhai rules are loaded, the same events' shared handles as one read-only, shared
    /// Rhai array, kept in step with `events`: every rule's call takes it as `history` for the
    /// cost of a reference count, where an array made for each call copied 20 handles a rule.
    /// Read-only, so that no rule changes it (a write gives a fast-path call up, and the
    /// interpreter's calls get an array of their own).
    array: Option<rhai::Dynamic>,
}

impl History {
    /// The transactions, oldest first.
    pub fn events(&self) -> &VecDeque<Seen> {
        &self.events
    }

    /// The shared array Rhai rules take (see the field), when it is kept.
    pub fn array(&self) -> Option<&rhai::Dynamic> {
        self.array.as_ref()
    }

    /// Keeps the shared array from now on, or drops it (`keep` false: no Rhai rule left).
    fn keep_array(&mut self, keep: bool) {
        if !keep {
            self.array = None;
        } else if self.array.is_none() {
            let handles = self.events.iter().map(Seen::handle).collect();
            self.array = Some(shared_array(handles));
        }
    }

    /// Adds `seen` as the newest, dropping the oldest beyond [`HISTORY`].
    pub fn push(&mut self, seen: Seen) {
        let full = self.events.len() == HISTORY;
        if full {
            self.events.pop_front();
        }
        if let Some(mut array) = self
            .array
            .as_mut()
            .and_then(|a| a.write_lock::<rhai::Array>())
        {
            if full {
                drop(array.remove(0));
            }
            array.push(seen.handle());
        }
        self.events.push_back(seen);
    }
}

/// `handles` as a read-only array behind a shared handle.
fn shared_array(handles: rhai::Array) -> rhai::Dynamic {
    rhai::Dynamic::from_array(handles)
        .into_read_only()
        .into_shared()
}

/// One event an alert names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRef {
    /// Its `transaction_id`.
    pub transaction_id: String,
    /// Partition of the input topic.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
    /// Event time, ms since the epoch.
    pub time_ms: i64,
    /// Amount, rials.
    pub amount: i64,
    /// Ground truth (the `fraud_pattern` header), kept for scoring; never published.
    #[serde(skip)]
    pub pattern: Option<String>,
}

impl EventRef {
    fn of(tx: &Transaction) -> Self {
        Self {
            transaction_id: tx.transaction_id.clone(),
            partition: tx.position.partition,
            offset: tx.position.offset,
            time_ms: tx.time_ms,
            amount: tx.amount,
            pattern: tx.pattern.clone(),
        }
    }
}

/// A rule fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The rule.
    pub rule: String,
    /// The customer.
    pub customer_id: String,
    /// Event time of the transaction that completed the pattern, ms since the epoch.
    pub time_ms: i64,
    /// Why.
    pub reason: String,
    /// The events that triggered it, oldest first.
    pub events: Vec<EventRef>,
}

/// What checking one transaction gave.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Alerts raised: shared, as the batch that publishes them and the recent alerts shown keep
    /// them too (cloning each alert twice took 2 to 3% of the consumer thread, perf).
    pub alerts: Vec<Arc<Alert>>,
    /// Rules that failed on this event (Rhai runtime errors), with the error.
    pub errors: Vec<(String, ScriptError)>,
}

impl Verdict {
    /// No alert and no failure.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.errors.is_empty()
    }
}

/// The rules and the per-customer history they look at.
pub struct Detector {
    native: Vec<Box<dyn Rule>>,
    scripts: script::ScriptRules,
    history: HashMap<String, History>,
}

impl Detector {
    /// The default native rules plus `scripts` (possibly none).
    pub fn new(scripts: script::ScriptRules) -> Self {
        Self {
            native: native::defaults(),
            scripts,
            history: HashMap::new(),
        }
    }

    /// The same rules with no history, for another thread: the native rules, and the compiled
    /// Rhai rules with a call state of their own.
    pub fn fork(&self) -> Self {
        Self::new(self.scripts.fork())
    }

    /// Checks the events after this with the rules of `rules`; the histories stay.
    pub fn take_rules(&mut self, rules: Detector) {
        self.native = rules.native;
        self.scripts = rules.scripts;
    }

    /// The Rhai rules, e.g. to reload them.
    pub fn scripts_mut(&mut self) -> &mut script::ScriptRules {
        &mut self.scripts
    }

    /// Names of every rule, native first.
    pub fn rule_names(&self) -> Vec<String> {
        self.native
            .iter()
            .map(|r| r.name().to_string())
            .chain(self.scripts.names())
            .collect()
    }

    /// Checks `tx` (whose message value is `payload`) and adds it to its customer's history.
    pub fn observe(&mut self, tx: Transaction, payload: Payload<'_>) -> Verdict {
        let event = if self.scripts.is_empty() {
            None
        } else {
            script::event_view(&tx, payload).map(|view| rhai::Dynamic::from(view).into_shared())
        };
        let history = super::value_for(&mut self.history, &tx.customer_id);
        let seen = Seen { tx, event };
        history.keep_array(!self.scripts.is_empty());
        let mut verdict = Verdict::default();
        let rules = self
            .native
            .iter_mut()
            .map(|r| r.as_mut())
            .chain(self.scripts.rules_mut().map(|r| r as &mut dyn Rule));
        for rule in rules {
            match rule.check(&seen, history) {
                Ok(Some(finding)) => {
                    verdict
                        .alerts
                        .push(Arc::new(alert(rule.name(), &seen, history, finding)))
                }
                Ok(None) => {}
                Err(err) => verdict.errors.push((rule.name().to_string(), err)),
            }
        }
        history.push(seen);
        verdict
    }
}

fn alert(rule: &str, seen: &Seen, history: &History, finding: Finding) -> Alert {
    let mut events: Vec<EventRef> = history
        .events()
        .iter()
        .chain(std::iter::once(seen))
        .filter(|s| finding.events.contains(&s.tx.position))
        .map(|s| EventRef::of(&s.tx))
        .collect();
    if events.is_empty() {
        events.push(EventRef::of(&seen.tx));
    }
    Alert {
        rule: rule.to_string(),
        customer_id: seen.tx.customer_id.clone(),
        time_ms: seen.tx.time_ms,
        reason: finding.reason,
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::transaction::tests::tx;

    #[test]
    fn an_alert_names_only_events_of_the_history_and_the_event_itself() {
        // The score counts each flagged event once with a bounded memory because of this
        // (`score::FLAGS_KEPT`): a rule naming an older event, or another's, names nothing.
        let mut history = History::default();
        for i in 0..HISTORY as i64 + 5 {
            history.push(Seen {
                tx: tx("cust_9", 10, i, i),
                event: None,
            });
        }
        let seen = Seen {
            tx: tx("cust_9", 10, 100, 100),
            event: None,
        };
        let dropped = tx("cust_9", 10, 0, 0).position;
        let kept = history.events()[3].tx.position;
        let finding = Finding {
            reason: "r".into(),
            events: vec![dropped, kept, seen.tx.position],
        };
        let named: Vec<i64> = alert("rule", &seen, &history, finding)
            .events
            .iter()
            .map(|e| e.offset)
            .collect();
        assert_eq!(named, vec![kept.offset, 100]);
    }

    #[test]
    fn alerts_name_customer_rule_and_triggering_events() {
        let mut detector = Detector::new(script::ScriptRules::none());
        let mut alerts = Vec::new();
        for i in 0..5 {
            alerts.extend(
                detector
                    .observe(tx("cust_9", 10, i * 10, i), b"{}"[..].into())
                    .alerts,
            );
        }
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(
            (a.rule.as_str(), a.customer_id.as_str()),
            ("velocity", "cust_9")
        );
        let offsets: Vec<i64> = a.events.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
        assert_eq!(a.time_ms, 40_000);
    }

    #[test]
    fn customers_have_separate_histories() {
        let mut detector = Detector::new(script::ScriptRules::none());
        let mut alerts = 0;
        for i in 0..10 {
            let customer = if i % 2 == 0 { "a" } else { "b" };
            alerts += detector
                .observe(tx(customer, 10, i, i), b"{}"[..].into())
                .alerts
                .len();
        }
        // Five each within a minute: each customer's fifth event fires once.
        assert_eq!(alerts, 2);
    }
}
