//! Detection rules written in Rhai: `fn detect(event, history)`, one rule a file.
//!
//! Every `*.rhai` file of the rules folder (`scripts/detect/` by default) is a rule named after
//! its file stem. The engine calls `detect(event, history)` for each transaction: `event` is the
//! whole event (every JSON field) plus `_time` (event time, milliseconds since the epoch), read
//! through a handle that behaves as the map (see [`EventView`]), `history` an array of the
//! customer's previous events (same shape), oldest first, at most [`super::HISTORY`]. It returns:
//!
//! | returns | means |
//! | --- | --- |
//! | `()` or `false` | no alert |
//! | `true` or a string | an alert naming this event (the string is the reason) |
//! | `#{ reason: "...", events: [transaction ids] }` | an alert naming those events |
//!
//! Rules run in the same sandbox as scenarios (operation, depth and size limits of
//! [`crate::script::limits`]), on one engine built once; each file is compiled once, and again
//! only when it changes. A file that fails to compile keeps its previous version running. Each
//! rule keeps Rhai's function-resolution cache from one call to the next, as scenarios do (see
//! `crate::script::calls`), rather than starting every call with an empty one as `call_fn` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, ImmutableString, Map, Position, AST};

use super::{Finding, History, Payload, Rule, Seen};
use crate::analyze::transaction::{Position as Place, Transaction};
use crate::script::calls::EventCalls;
use crate::script::event_view::{self, EventView};
use crate::script::{
    sandboxed_engine, FastFunction, FastPathUse, ScriptError, ScriptErrorKind, SourceFile,
};

/// The contract function of a detection rule.
pub const CONTRACT: &str = "detect";

/// The sandboxed engine rules run on: the scenarios' sandbox (see [`sandboxed_engine`]).
fn build_engine(dir: &Path) -> Engine {
    let mut engine = sandboxed_engine(dir, CONTRACT);
    event_view::register(&mut engine);
    engine
}

/// One compiled rule.
pub struct ScriptRule {
    name: String,
    engine: Arc<Engine>,
    ast: AST,
    source: SourceFile,
    /// The calls' runtime state and function-resolution cache.
    calls: EventCalls,
    /// `detect` compiled for the fast path, when it can be: a call it gives up is made again
    /// on the interpreter.
    fast: Option<FastFunction>,
}

impl ScriptRule {
    /// Compiles `text` as the rule at `path`.
    fn compile(engine: Arc<Engine>, path: &Path, text: &str) -> Result<Self, ScriptError> {
        let source = SourceFile {
            path: path.to_path_buf(),
            text: Arc::from(text),
        };
        let ast = engine.compile(text).map_err(|e| source.syntax_error(&e))?;
        if !defines_detect(&ast) {
            return Err(source.missing(
                "detect(event, history)",
                "a detection rule defines `fn detect(event, history)` returning (), true, a reason string or #{ reason, events }",
            ));
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "rule".into());
        let calls = Self::calls(&engine, &ast, text);
        let fast = FastFunction::build(&ast, CONTRACT, 2);
        Ok(Self {
            name,
            engine,
            ast,
            source,
            calls,
            fast,
        })
    }

    /// A fresh call state for the rule. The cache is kept across calls unless the rule may
    /// `import` a module (inside a function: rules run without their top level), whose functions
    /// could then share a name with the rule's (see `crate::script::calls`).
    fn calls(engine: &Engine, ast: &AST, text: &str) -> EventCalls {
        EventCalls::new(engine, ast, &[]).keep_cache(!text.contains("import"))
    }

    /// The same compiled rule with a call state of its own, for another thread.
    pub fn fork(&self) -> Self {
        Self {
            name: self.name.clone(),
            engine: self.engine.clone(),
            ast: self.ast.clone(),
            source: self.source.clone(),
            calls: Self::calls(&self.engine, &self.ast, &self.source.text),
            fast: FastFunction::build(&self.ast, CONTRACT, 2),
        }
    }

    /// How its calls run: on the fast path (calls so far, and those given up to the
    /// interpreter), or on the interpreter alone.
    pub fn fast_path(&self) -> FastPathUse {
        self.fast
            .as_ref()
            .map_or(FastPathUse::NotCompiled, FastFunction::usage)
    }

    fn interpret(
        &self,
        result: Dynamic,
        event: &Seen,
        history: &History,
    ) -> Result<Option<Finding>, ScriptError> {
        if result.is_unit() {
            return Ok(None);
        }
        let here = vec![event.tx.position];
        if let Ok(fired) = result.as_bool() {
            return Ok(fired.then(|| Finding {
                reason: format!("{} fired", self.name),
                events: here,
            }));
        }
        if result.is_string() {
            return Ok(Some(Finding {
                reason: result.to_string(),
                events: here,
            }));
        }
        let type_name = result.type_name();
        let Some(map) = result.try_cast::<Map>() else {
            return Err(self.source.bad_return(
                CONTRACT,
                Position::NONE,
                type_name,
                "(), a bool, a reason string or a map #{ reason, events }",
            ));
        };
        let reason = map
            .get("reason")
            .map(|r| r.to_string())
            .unwrap_or_else(|| format!("{} fired", self.name));
        let ids: Vec<String> = match map.get("events").and_then(|l| l.read_lock::<Array>()) {
            Some(list) => list.iter().map(|id| id.to_string()).collect(),
            None => Vec::new(),
        };
        let events: Vec<Place> = history
            .events()
            .iter()
            .chain(std::iter::once(event))
            .filter(|s| ids.contains(&s.tx.transaction_id))
            .map(|s| s.tx.position)
            .collect();
        Ok(Some(Finding {
            reason,
            events: if events.is_empty() { here } else { events },
        }))
    }
}

impl Rule for ScriptRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&mut self, event: &Seen, history: &History) -> Result<Option<Finding>, ScriptError> {
        if let Some(fast) = self.fast.as_mut().filter(|fast| fast.pays()) {
            // The shared handles themselves: the fast path reads an event and never writes it
            // (a write gives the call up), nor the read-only history array.
            let past = history.array().cloned().unwrap_or_else(|| {
                let handles: Array = history.events().iter().map(Seen::handle).collect();
                Dynamic::from_array(handles).into_read_only()
            });
            // A rule has no effects: a call the fast path gives up is made again below.
            if let Ok(result) = fast.call([event.handle(), past]) {
                return self.interpret(result, event, history);
            }
        }
        // A handle of its own for each event: a rule that writes a field (`event.amount = 0`)
        // copies the map, and the write stays in its call.
        let view = |s: &Seen| {
            s.event
                .as_ref()
                .and_then(|shared| shared.read_lock::<EventView>().map(|v| v.clone()))
                .map_or(Dynamic::UNIT, Dynamic::from)
        };
        let past: Array = history.events().iter().map(view).collect();
        // Shared, so that passing it into the call copies a pointer, not the array; it is made
        // afresh for each call, so a rule that changes it changes nothing outside its call.
        let past = Dynamic::from_array(past).into_shared();
        let result = self
            .calls
            .call(&self.engine, CONTRACT, view(event), Some(past))
            .map_err(|err| self.source.runtime_error(CONTRACT, err, Position::NONE))?;
        self.interpret(result, event, history)
    }
}

fn defines_detect(ast: &AST) -> bool {
    ast.iter_functions()
        .any(|f| f.name == CONTRACT && f.params.len() == 2)
}

/// Whether the script at `path` is a detection rule (defines `detect(event, history)`) rather
/// than a scenario; `sim check` uses it to pick the check.
pub fn is_detection_rule(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    build_engine(path.parent().unwrap_or(Path::new(".")))
        .compile(&text)
        .is_ok_and(|ast| defines_detect(&ast))
}

/// The event as rules see it, its map with `_time` added, or `None` when the value is not a JSON
/// object.
pub fn event_view(tx: &Transaction, payload: Payload<'_>) -> Option<EventView> {
    // The event time, and fields the transaction was read with that rules read on most events,
    // as the map read from the text would have them (the read refused a transaction whose
    // fields have other types). The rest, the other strings among them, are read from the text
    // when a rule first asks for them: making each string a Rhai string for every event, most
    // never read, was half of what an event cost before any rule ran (callgrind).
    let known = vec![
        ("_time", Dynamic::from_int(tx.time_ms)),
        ("amount", Dynamic::from_int(tx.amount)),
        (
            "payment_method",
            Dynamic::from(ImmutableString::from(&tx.method)),
        ),
    ];
    EventView::lazy(payload.text, payload.fields, known)
}

/// What a (re)load of the rules folder did to one file.
#[derive(Debug)]
pub enum RuleChange {
    /// The rule at this path is (now) running.
    Loaded(PathBuf),
    /// The file is gone, and so is its rule.
    Removed(PathBuf),
    /// The file failed to compile; its previous version, if any, keeps running.
    Rejected(ScriptError),
}

/// The Rhai rules of one folder.
pub struct ScriptRules {
    dir: Option<PathBuf>,
    engine: Arc<Engine>,
    /// By path: the text compiled, and the rule.
    rules: BTreeMap<PathBuf, (String, ScriptRule)>,
}

impl ScriptRules {
    /// No Rhai rules.
    pub fn none() -> Self {
        Self {
            dir: None,
            engine: Arc::new(build_engine(Path::new("."))),
            rules: BTreeMap::new(),
        }
    }

    /// Loads every `*.rhai` in `dir`; a file that fails is reported, the others still load.
    pub fn load(dir: &Path) -> std::io::Result<(Self, Vec<RuleChange>)> {
        let mut rules = Self {
            dir: Some(dir.to_path_buf()),
            engine: Arc::new(build_engine(dir)),
            rules: BTreeMap::new(),
        };
        let changes = rules.reload()?;
        Ok((rules, changes))
    }

    /// Loads a single rule file (for `sim check` and tests).
    pub fn single(path: &Path) -> Result<Self, ScriptError> {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let engine = Arc::new(build_engine(&dir));
        let text = std::fs::read_to_string(path).map_err(|source| {
            ScriptError::from(ScriptErrorKind::Read {
                path: path.to_path_buf(),
                source,
            })
        })?;
        let rule = ScriptRule::compile(engine.clone(), path, &text)?;
        let mut rules = BTreeMap::new();
        rules.insert(path.to_path_buf(), (text, rule));
        Ok(Self {
            dir: None,
            engine,
            rules,
        })
    }

    /// Re-reads the folder: compiles new and changed files, drops removed ones. A file that
    /// fails keeps its previous version.
    pub fn reload(&mut self) -> std::io::Result<Vec<RuleChange>> {
        let Some(dir) = self.dir.clone() else {
            return Ok(Vec::new());
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "rhai") && p.is_file())
            .collect();
        files.sort();
        let mut changes = Vec::new();
        let gone: Vec<PathBuf> = self
            .rules
            .keys()
            .filter(|p| !files.contains(p))
            .cloned()
            .collect();
        for path in gone {
            self.rules.remove(&path);
            changes.push(RuleChange::Removed(path));
        }
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue; // mid-rename: the next change event reads it
            };
            if self.rules.get(&path).is_some_and(|(old, _)| *old == text) {
                continue;
            }
            match ScriptRule::compile(self.engine.clone(), &path, &text) {
                Ok(rule) => {
                    self.rules.insert(path.clone(), (text, rule));
                    changes.push(RuleChange::Loaded(path));
                }
                Err(err) => changes.push(RuleChange::Rejected(err)),
            }
        }
        Ok(changes)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules' names.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.rules.values().map(|(_, r)| r.name().to_string())
    }

    /// The same rules, every call made by the interpreter: the fast path's reference, to compare
    /// it with (`examples/rule_speed.rs`, the tests).
    pub fn interpreted(mut self) -> Self {
        for (_, rule) in self.rules.values_mut() {
            rule.fast = None;
        }
        self
    }

    /// The rules, to run them.
    pub fn rules_mut(&mut self) -> impl Iterator<Item = &mut ScriptRule> {
        self.rules.values_mut().map(|(_, r)| r)
    }

    /// The same rules with call states of their own, for another thread (see
    /// [`ScriptRule::fork`]).
    pub fn fork(&self) -> Self {
        Self {
            dir: self.dir.clone(),
            engine: self.engine.clone(),
            rules: self
                .rules
                .iter()
                .map(|(path, (text, rule))| (path.clone(), (text.clone(), rule.fork())))
                .collect(),
        }
    }
}

/// Deterministic sample events for checking a rule, one every 7 seconds of event time: a few
/// customers paying small and large amounts in three cities, and every 40 events a card tester's
/// run of 8 small online payments cashed out with 2 large ones.
pub fn sample_events(count: u64) -> Vec<(Transaction, Vec<u8>)> {
    let amounts = [5_000, 30_000, 150_000, 900_000, 1_500_000, 3_000_000];
    let methods = ["online", "pos", "mobile", "nfc"];
    let places = [(35.6892, 51.3890), (36.2605, 59.6168), (29.5918, 52.5837)];
    (0..count)
        .map(|i| {
            let n = i as usize;
            let (lat, lng) = places[(n / 3) % places.len()];
            let probing = n % 40 >= 30;
            let tx = Transaction {
                transaction_id: format!("check-{i}"),
                customer_id: if probing {
                    "cust_tester".into()
                } else {
                    format!("cust_{}", n % 4)
                },
                merchant_id: format!("merch_{}", n % 5),
                category: "retail".into(),
                method: if probing {
                    "online"
                } else {
                    methods[n % methods.len()]
                }
                .into(),
                status: if n % 11 == 0 { "declined" } else { "approved" }.into(),
                amount: match n % 40 {
                    30..=37 => 20_000,
                    38 | 39 => 2_500_000,
                    _ => amounts[(n * 7) % amounts.len()],
                },
                time_ms: 1_705_312_800_000 + i as i64 * 7_000,
                pattern: None,
                position: Place { partition: 0, offset: i as i64 },
            };
            let payload = serde_json::json!({
                "transaction_id": tx.transaction_id,
                "timestamp": chrono::DateTime::from_timestamp_millis(tx.time_ms).map(|t| t.to_rfc3339()),
                "customer_id": tx.customer_id,
                "merchant_id": tx.merchant_id,
                "merchant_category": tx.category,
                "payment_method": tx.method,
                "amount": tx.amount,
                "status": tx.status,
                "location": { "lat": lat, "lng": lng },
                "device_info": { "os": "Android", "app_version": "2.4.1" },
            });
            (tx, payload.to_string().into_bytes())
        })
        .collect()
}

/// What `sim check` found running a rule over sample events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCheck {
    /// Sample events run.
    pub events: u64,
    /// Each failure, with the event's number.
    pub failures: Vec<(i64, String)>,
    /// How the rule's calls ran: compiled, or on the interpreter.
    pub fast_path: FastPathUse,
}

/// Checks the rule at `path` for `sim check`: compiles it and runs it over `count` sample events
/// (see [`sample_events`]).
pub fn check_rule(path: &Path, count: u64) -> Result<RuleCheck, ScriptError> {
    let mut detector = super::Detector::new(ScriptRules::single(path)?);
    let mut failures = Vec::new();
    for (tx, payload) in sample_events(count) {
        let offset = tx.position.offset;
        for (_, error) in detector.observe(tx, payload[..].into()).errors {
            failures.push((offset, error.to_string()));
        }
    }
    let fast_path = detector
        .scripts_mut()
        .rules_mut()
        .next()
        .map_or(FastPathUse::NotCompiled, |rule| rule.fast_path());
    Ok(RuleCheck {
        events: count,
        failures,
        fast_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::detect::Detector;

    fn rule_file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_rhai_rule_names_the_events_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = rule_file(
            dir.path(),
            "big_after_small.rhai",
            r#"
            fn detect(event, history) {
                if history.len() == 0 || event.amount < 1000000 { return (); }
                let last = history[history.len() - 1];
                if last.amount < 50000 && event._time - last._time < 60000 {
                    #{ reason: "large right after small", events: [last.transaction_id, event.transaction_id] }
                }
            }"#,
        );
        let mut detector = Detector::new(ScriptRules::single(&path).unwrap());
        let mut alerts = Vec::new();
        for (tx, payload) in sample_events(40) {
            alerts.extend(
                detector
                    .observe(tx, payload[..].into())
                    .alerts
                    .into_iter()
                    .filter(|a| a.rule == "big_after_small"),
            );
        }
        assert!(!alerts.is_empty());
        for a in &alerts {
            assert_eq!(a.events.len(), 2, "{a:?}");
            assert!(a.events[0].amount < 50_000 && a.events[1].amount >= 1_000_000);
            assert_eq!(a.reason, "large right after small");
        }
    }

    #[test]
    fn a_broken_edit_keeps_the_previous_rule_and_a_fix_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        rule_file(
            dir.path(),
            "always.rhai",
            "fn detect(event, history) { true }",
        );
        let (mut rules, changes) = ScriptRules::load(dir.path()).unwrap();
        assert!(matches!(changes.as_slice(), [RuleChange::Loaded(_)]));
        rule_file(
            dir.path(),
            "always.rhai",
            "fn detect(event, history) { true ",
        );
        let changes = rules.reload().unwrap();
        match changes.as_slice() {
            [RuleChange::Rejected(err)] => {
                assert!(err.to_string().contains("always.rhai:1"), "{err}")
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert_eq!(rules.names().collect::<Vec<_>>(), vec!["always"]);
        std::fs::remove_file(dir.path().join("always.rhai")).unwrap();
        assert!(matches!(
            rules.reload().unwrap().as_slice(),
            [RuleChange::Removed(_)]
        ));
        assert!(rules.is_empty());
    }

    #[test]
    fn a_file_without_detect_and_a_bad_return_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = rule_file(dir.path(), "nothing.rhai", "fn event(ctx) { 1 }");
        let err = ScriptRules::single(&path).err().expect("no detect()");
        assert!(err.to_string().contains("detect(event, history)"), "{err}");
        let path = rule_file(
            dir.path(),
            "number.rhai",
            "fn detect(event, history) { 42 }",
        );
        let mut detector = Detector::new(ScriptRules::single(&path).unwrap());
        let (tx, payload) = sample_events(1).remove(0);
        let verdict = detector.observe(tx, payload[..].into());
        assert_eq!(verdict.errors.len(), 1);
        assert!(is_detection_rule(&path));
    }

    #[test]
    fn the_shipped_rules_pass_their_check() {
        for rule in ["card_testing", "impossible_travel"] {
            let path =
                Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scripts/detect/{rule}.rhai"));
            assert!(is_detection_rule(&path));
            let check = check_rule(&path, 300).unwrap();
            assert_eq!((check.events, check.failures), (300, vec![]), "{rule}");
            let compiled = FastPathUse::On {
                events: 300,
                given_up: 0,
            };
            assert_eq!(check.fast_path, compiled, "{rule}");
        }
    }

    /// The alerts `rules` give over `count` sample events, and how each rule's calls ran.
    fn alerts_of(
        rules: ScriptRules,
        count: u64,
    ) -> (Vec<std::sync::Arc<super::super::Alert>>, Vec<FastPathUse>) {
        let mut detector = Detector::new(rules);
        let mut alerts = Vec::new();
        for (tx, payload) in sample_events(count) {
            let verdict = detector.observe(tx, payload[..].into());
            assert!(verdict.errors.is_empty(), "{:?}", verdict.errors);
            alerts.extend(verdict.alerts);
        }
        let fast = detector
            .scripts_mut()
            .rules_mut()
            .map(|rule| rule.fast_path())
            .collect();
        (alerts, fast)
    }

    #[test]
    fn the_shipped_rules_run_compiled_and_give_the_interpreter_s_alerts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/detect");
        let (fast, counts) = alerts_of(ScriptRules::load(&dir).unwrap().0, 3000);
        let (slow, _) = alerts_of(ScriptRules::load(&dir).unwrap().0.interpreted(), 3000);
        assert_eq!(fast, slow);
        for rule in ["card_testing", "impossible_travel"] {
            assert!(fast.iter().any(|a| a.rule == rule), "{rule} never fired");
        }
        // Every call of both rules made on the fast path, none given up.
        let compiled = FastPathUse::On {
            events: 3000,
            given_up: 0,
        };
        assert_eq!(counts, vec![compiled; 2]);
    }

    #[test]
    fn a_rule_calling_a_scenario_helper_gets_the_interpreter_s_error() {
        // Rules have Rhai's functions only; the fast path knows `rand_int` from scenarios, and
        // must not run it for a rule.
        let dir = tempfile::tempdir().unwrap();
        let path = rule_file(
            dir.path(),
            "random.rhai",
            "fn detect(event, history) { rand_int(1, 6) > 5 }",
        );
        let mut detector = Detector::new(ScriptRules::single(&path).unwrap());
        let (tx, payload) = sample_events(1).remove(0);
        let mut verdict = detector.observe(tx, payload[..].into());
        assert_eq!(verdict.errors.len(), 1);
        let error = format!("{:?}", miette::Report::new(verdict.errors.remove(0).1));
        assert!(error.contains("rand_int"), "{error}");
    }

    #[test]
    fn a_rule_that_writes_a_field_changes_nothing_outside_its_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = rule_file(
            dir.path(),
            "writes.rhai",
            r#"
            fn detect(event, history) {
                let before = history.filter(|past| past.amount == 0).len();
                event.amount = 0;
                // Through a variable too: the fast path keeps an event handle shared there.
                if history.len() > 0 { let last = history[history.len() - 1]; last.amount = 0; }
                if before > 0 { "a write leaked into the history" }
            }"#,
        );
        let (alerts, counts) = alerts_of(ScriptRules::single(&path).unwrap(), 50);
        assert!(alerts.iter().all(|a| a.rule != "writes"), "{alerts:?}");
        // The write is the interpreter's: every call was given up by the fast path.
        let given_up = FastPathUse::On {
            events: 50,
            given_up: 50,
        };
        assert_eq!(counts, vec![given_up]);
    }

    #[test]
    fn a_rule_that_changes_its_history_changes_nothing_outside_its_call() {
        // Rules share one history array, read-only: each change below is the interpreter's, on
        // an array of that call's own, and the next rule still sees the events alone.
        let dir = tempfile::tempdir().unwrap();
        rule_file(
            dir.path(),
            "a_changes.rhai",
            "fn detect(event, history) { history.push(1); if history.len() > 1 { history[0] = 2; } }",
        );
        rule_file(
            dir.path(),
            "b_reads.rhai",
            r#"
            fn detect(event, history) {
                // An item that is not an event (`1.transaction_id`) would be an error.
                let events = history.filter(|past| past.transaction_id != ()).len();
                let amounts = history.map(|past| past.amount).len();
                let last = if history.len() > 0 { history[-1].transaction_id } else { "" };
                if events != history.len() || amounts != events || last == event.transaction_id {
                    `history changed: ${events} events, ${amounts} amounts of ${history.len()}`
                }
            }"#,
        );
        let (rules, changes) = ScriptRules::load(dir.path()).unwrap();
        let rejected = |c: &RuleChange| matches!(c, RuleChange::Rejected(_));
        assert!(!changes.iter().any(rejected), "{changes:?}");
        let (alerts, counts) = alerts_of(rules, 300);
        let ours: Vec<&str> = alerts
            .iter()
            .filter(|a| a.rule.ends_with("_reads") || a.rule.ends_with("_changes"))
            .map(|a| a.reason.as_str())
            .collect();
        assert!(ours.is_empty(), "{ours:?}");
        // The writer's calls were the interpreter's; the reader ran compiled: a read-only array
        // takes `filter` and `map`, as in Rhai.
        assert_eq!(
            counts,
            vec![
                // Every write given up, until the fast path stopped trying.
                FastPathUse::TurnedOff {
                    events: 200,
                    given_up: 200
                },
                FastPathUse::On {
                    events: 300,
                    given_up: 0
                }
            ]
        );
    }

    #[test]
    fn a_runaway_rule_is_stopped_by_the_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let path = rule_file(
            dir.path(),
            "loop.rhai",
            "fn detect(event, history) { loop { } }",
        );
        let mut detector = Detector::new(ScriptRules::single(&path).unwrap());
        let (tx, payload) = sample_events(1).remove(0);
        let verdict = detector.observe(tx, payload[..].into());
        assert!(
            verdict.errors[0].1.to_string().contains("detect() failed"),
            "{}",
            verdict.errors[0].1
        );
    }
}
