//! Where a scenario's time goes: its script functions, the native helpers they call and their
//! lines, timed through Rhai's debugger interface, for `sim bench`.
//!
//! [`Scenario::attach_profiler`] registers a debugger on one scenario's engine that steps into
//! every statement and expression. At each step it reads the clock and charges the time since
//! the previous step to where the previous step was: its line (self time), the function on top
//! of the call stack (self time) and every function on the stack (inclusive time, once each, so
//! recursion is not counted twice). Each function's return is one call. Time between the return
//! of the outermost function and the next step (encoding the event, the timeline, the next
//! event's set-up) is no script's: the engine's.
//!
//! A native helper called by name (`pick_zipf`, `iso8601`, a property getter) is on the call
//! stack too, with no step of its own: from the step before it to its return, the time is its
//! own, and its caller's line's. Operators and map or array indexing are not calls: their time is
//! their line's and function's.
//!
//! Stepping costs time (Rhai's callback, the clock, the tally), and a profiled scenario runs three
//! to four times slower; that cost is kept out of the figures as far as it can be: the clock is
//! read again as each callback ends, so the tally's bookkeeping is charged to nothing, and the
//! shortest span seen (a step that does nothing: what Rhai's debugger and a clock read cost) is
//! taken off every span. The shares are estimates, good for finding where the time goes.
//!
//! Engines without a registered debugger pay only Rhai's check for one at each step (see
//! docs/scripting.md for what it measured as): only `sim bench` registers one, on an engine of
//! its own.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::debugger::{CallStackFrame, DebuggerCommand, DebuggerEvent};
use rhai::ImmutableString;

use super::imports::module_file;
use super::Scenario;
use crate::sync::lock;

/// A script function: the source it is defined in (`None` for the scenario script, a module's
/// import path otherwise) and its name.
type FunctionKey = (Option<ImmutableString>, ImmutableString);

/// A line: the source it is in and its number.
type LineKey = (Option<ImmutableString>, usize);

/// Time charged to a place, and in how many spans (from the end of one step's or return's
/// callback to the next callback).
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    time: Duration,
    spans: u64,
}

impl Spent {
    fn add(&mut self, time: Duration) {
        self.time += time;
        self.spans += 1;
    }

    /// The time less `floor` a span: without what Rhai's debugger costs a step.
    fn net(&self, floor: Duration) -> Duration {
        let floor = floor.saturating_mul(u32::try_from(self.spans).unwrap_or(u32::MAX));
        self.time.saturating_sub(floor)
    }
}

/// One function's tally.
#[derive(Default, Clone, Copy)]
struct Calls {
    /// Calls that returned.
    calls: u64,
    /// In its own steps.
    own: Spent,
    /// While on the stack.
    total: Spent,
}

/// What the debugger callback tallies, behind a lock (one worker runs it, so it is never
/// contended).
#[derive(Default)]
struct Tally {
    functions: HashMap<FunctionKey, usize>,
    /// By the index in `functions`.
    times: Vec<Calls>,
    lines: HashMap<LineKey, Spent>,
    /// The time charged to any script step.
    script: Spent,
    /// The shortest span: the cost of a step that does nothing, Rhai's debugger's and the clock's.
    floor: Option<Duration>,
    /// Time in the callback's own bookkeeping, charged to nothing.
    bookkeeping: Duration,
    /// When the previous callback ended; `None` between events (no script running).
    last: Option<Instant>,
    /// The call stack at the previous step, as indices in `functions`, outermost first.
    stack: Vec<usize>,
    /// Where the previous step was.
    line: LineKey,
}

impl Tally {
    fn function(&mut self, frame: &CallStackFrame) -> usize {
        let key = (frame.source.clone(), frame.fn_name.clone());
        let next = self.functions.len();
        let index = *self.functions.entry(key).or_insert(next);
        if index == next {
            self.times.push(Calls::default());
        }
        index
    }

    /// Charges the time since the previous step to where it was.
    fn charge(&mut self, now: Instant) {
        let Some(last) = self.last else {
            return;
        };
        let spent = now.saturating_duration_since(last);
        self.floor = Some(self.floor.map_or(spent, |floor| floor.min(spent)));
        self.script.add(spent);
        self.lines.entry(self.line.clone()).or_default().add(spent);
        if let Some(&top) = self.stack.last() {
            self.times[top].own.add(spent);
        }
        for (depth, &index) in self.stack.iter().enumerate() {
            // Once a function, however often it is on the stack (recursion).
            if !self.stack[..depth].contains(&index) {
                self.times[index].total.add(spent);
            }
        }
    }

    fn step(&mut self, frames: &[CallStackFrame], source: Option<&str>, line: usize) {
        let now = Instant::now();
        self.charge(now);
        self.follow(frames);
        let source = match (source, frames.last()) {
            // The source as the frame holds it: no new string a step.
            (Some(_), Some(frame)) => frame.source.clone(),
            (Some(source), None) => Some(source.into()),
            (None, _) => None,
        };
        self.line = (source, line);
        self.resume(now, true);
    }

    /// Makes the stack that of `frames`. Calls push a frame and returns are seen (`exit`), so
    /// the stack changed if its depth did.
    fn follow(&mut self, frames: &[CallStackFrame]) {
        if frames.len() != self.stack.len() {
            self.stack.clear();
            for frame in frames {
                let index = self.function(frame);
                self.stack.push(index);
            }
        }
    }

    /// Ends a callback that started at `now`: the next span starts here, when `running`.
    fn resume(&mut self, now: Instant, running: bool) {
        let end = Instant::now();
        self.bookkeeping += end.saturating_duration_since(now);
        self.last = running.then_some(end);
    }

    /// The function on top of `frames` returns.
    fn exit(&mut self, frames: &[CallStackFrame]) {
        let now = Instant::now();
        // A native helper was pushed after the last step and has no step of its own: the time
        // since is its own.
        self.follow(frames);
        self.charge(now);
        if let Some(index) = self.stack.pop() {
            self.times[index].calls += 1;
        }
        if let Some(frame) = frames.last() {
            // Back in the caller, at the call.
            let caller = frames.len().checked_sub(2).map(|i| &frames[i]);
            self.line = (
                caller.and_then(|f| f.source.clone()),
                frame.pos.line().unwrap_or(0),
            );
        }
        // The outermost function returned: what follows is the engine's.
        self.resume(now, !self.stack.is_empty());
    }
}

/// A handle on the profile of one scenario's engine: read it with [`Profiler::take`].
#[derive(Clone)]
pub struct Profiler {
    tally: Arc<Mutex<Tally>>,
    /// The script's functions (under `None`) and each module's (under its import path): any
    /// other function on the call stack is a native helper.
    script_functions: HashSet<(Option<String>, String)>,
    /// Import path to alias, for naming module functions as a script calls them.
    aliases: HashMap<String, String>,
    /// The files, for quoting the slowest lines: the script's (under `None`) and each module's.
    files: HashMap<Option<String>, (PathBuf, Arc<str>)>,
}

/// One function's share of a profiled run: a script function, or a native helper it calls.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FunctionTime {
    /// As a script calls it: `pay`, `money::commission` for one of a module, `pick_zipf` for a
    /// native helper, `.customers` for a property of the state.
    pub name: String,
    /// Whether it is a native helper (or a property of the state) rather than a script function.
    pub native: bool,
    /// Calls that returned.
    pub calls: u64,
    /// Time in its own steps (and in the operators they run).
    pub self_time: Duration,
    /// Time while it was on the call stack: its own and that of what it called.
    pub total_time: Duration,
}

/// One line's self time in a profiled run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LineTime {
    /// The file.
    pub file: PathBuf,
    /// Its 1-based line number.
    pub line: usize,
    /// The line's text, trimmed.
    pub text: String,
    /// Time in its steps.
    pub self_time: Duration,
}

/// What a profiled run showed: functions and lines, the most self time first. Times are net of
/// the profiler's cost (see [`Profile::profiler_time`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Profile {
    /// Every script function that ran.
    pub functions: Vec<FunctionTime>,
    /// Every line that ran.
    pub lines: Vec<LineTime>,
    /// Time in script steps, all told.
    pub script_time: Duration,
    /// What the profiler cost: its callbacks' bookkeeping, and the shortest span (a step that
    /// does nothing: Rhai's debugger and the clock) once a span, taken off every time above.
    pub profiler_time: Duration,
    /// The shortest span.
    pub span_floor: Duration,
}

impl Profiler {
    /// Forgets what was tallied so far (say, a warm-up).
    pub fn reset(&self) {
        *lock(&self.tally) = Tally::default();
    }

    /// What was tallied since the start or the last reset.
    pub fn take(&self) -> Profile {
        let tally = std::mem::take(&mut *lock(&self.tally));
        let floor = tally.floor.unwrap_or_default();
        let mut functions: Vec<FunctionTime> = tally
            .functions
            .iter()
            .map(|((source, name), &index)| {
                let Calls { calls, own, total } = tally.times[index];
                let native = !self.is_script_function(source.as_deref(), name);
                FunctionTime {
                    name: if native {
                        native_name(name)
                    } else {
                        self.qualified(source.as_deref(), name)
                    },
                    native,
                    calls,
                    self_time: own.net(floor),
                    total_time: total.net(floor),
                }
            })
            .collect();
        functions.sort_by(|a, b| b.self_time.cmp(&a.self_time).then(a.name.cmp(&b.name)));
        let mut lines: Vec<LineTime> = tally
            .lines
            .iter()
            .filter(|((_, line), _)| *line > 0)
            .filter_map(|((source, line), &self_time)| {
                let (file, text) = self.files.get(&source.as_deref().map(str::to_string))?;
                let text = text.lines().nth(line - 1).unwrap_or("").trim().to_string();
                Some(LineTime {
                    file: file.clone(),
                    line: *line,
                    text,
                    self_time: self_time.net(floor),
                })
            })
            .collect();
        lines.sort_by(|a, b| {
            b.self_time
                .cmp(&a.self_time)
                .then(a.file.cmp(&b.file))
                .then(a.line.cmp(&b.line))
        });
        Profile {
            functions,
            lines,
            script_time: tally.script.net(floor),
            profiler_time: tally.bookkeeping + (tally.script.time - tally.script.net(floor)),
            span_floor: floor,
        }
    }

    /// Whether `name` is a function of the script (`source` is `None`) or of the module imported
    /// from `source`, or a closure of either.
    fn is_script_function(&self, source: Option<&str>, name: &str) -> bool {
        name.starts_with("anon$")
            || self
                .script_functions
                .contains(&(source.map(str::to_string), name.to_string()))
    }

    /// `name`, or `alias::name` for a function of the module imported from `source`. A closure
    /// is named `<closure>`.
    fn qualified(&self, source: Option<&str>, name: &str) -> String {
        let name = if name.starts_with("anon$") {
            "<closure>"
        } else {
            name
        };
        match source {
            None => name.to_string(),
            Some(path) => {
                let alias = self.aliases.get(path).cloned().unwrap_or_else(|| {
                    Path::new(path)
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| path.to_string())
                });
                format!("{alias}::{name}")
            }
        }
    }
}

/// A native helper's name; a property getter (`get$customers`) as the property it reads.
fn native_name(name: &str) -> String {
    match name.strip_prefix("get$") {
        Some(property) => format!(".{property}"),
        None => name.to_string(),
    }
}

impl Scenario {
    /// Times this scenario's script functions and lines from now on (see the module doc), on
    /// this engine only: its forks are not profiled.
    pub fn attach_profiler(&mut self) -> Profiler {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let seen = tally.clone();
        #[allow(deprecated)] // Rhai marks its debugger interface volatile, not deprecated.
        self.engine.register_debugger(
            |_, debugger| debugger,
            move |context, event, _node, source, position| {
                let frames = context.global_runtime_state().debugger().call_stack();
                let mut tally = lock(&seen);
                match event {
                    DebuggerEvent::FunctionExitWithValue(_)
                    | DebuggerEvent::FunctionExitWithError(_) => tally.exit(frames),
                    _ => tally.step(frames, source, position.line().unwrap_or(0)),
                }
                Ok(DebuggerCommand::StepInto)
            },
        );
        // The per-event calls' runtime state holds the debugger: made anew to have one.
        self.calls.restart(&self.engine, &self.ast);
        // The profiler watches the interpreter: every event goes through it.
        self.fast = None;
        let dir = Self::script_dir(&self.source);
        let mut files = HashMap::new();
        files.insert(None, (self.source.path.clone(), self.source.text.clone()));
        let mut aliases = HashMap::new();
        let mut script_functions: HashSet<(Option<String>, String)> = self
            .ast
            .iter_functions()
            .map(|f| (None, f.name.to_string()))
            .collect();
        for module in &self.imports {
            let path = module.import.path.to_string();
            // Compiled at load already, so it compiles; only its function names are wanted.
            if let Ok(ast) = self.engine.compile(&*module.text) {
                script_functions.extend(
                    ast.iter_functions()
                        .map(|f| (Some(path.clone()), f.name.to_string())),
                );
            }
            files.insert(
                Some(path.clone()),
                (module_file(&dir, &path), module.text.clone()),
            );
            aliases.insert(path, module.import.alias.to_string());
        }
        Profiler {
            tally,
            script_functions,
            aliases,
            files,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The profile of `events` events of the script `source`.
    fn profiled(source: &str, events: i64) -> Profile {
        let mut scenario = Scenario::from_source(Path::new("profiled.rhai"), source).unwrap();
        let profiler = scenario.attach_profiler();
        for seq in 0..events {
            let event = scenario.event(0, seq).unwrap();
            assert!(event.is_map());
        }
        profiler.take()
    }

    fn function<'a>(profile: &'a Profile, name: &str) -> &'a FunctionTime {
        profile
            .functions
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", profile.functions))
    }

    #[test]
    fn recursion_counts_every_call_and_its_time_once() {
        let profile = profiled(
            "fn fact(n) { if n <= 1 { 1 } else { n * fact(n - 1) } }\n\
             fn event(ctx) { #{ customer_id: `c${fact(5)}` } }",
            10,
        );
        let fact = function(&profile, "fact");
        let event = function(&profile, "event");
        assert_eq!((fact.calls, event.calls), (50, 10));
        assert!(!fact.native && !event.native);
        assert!(fact.total_time <= event.total_time, "{profile:?}");
        assert!(event.total_time <= profile.script_time, "{profile:?}");
    }

    #[test]
    fn native_helpers_and_closures_are_named_as_called() {
        let profile = profiled(
            "fn event(ctx) { #{ customer_id: uuid(), n: [1, 2].map(|x| x + 1) } }",
            10,
        );
        let uuid = function(&profile, "uuid");
        assert!(uuid.native);
        assert_eq!(uuid.calls, 10);
        let closure = function(&profile, "<closure>");
        assert!(!closure.native);
        assert_eq!(closure.calls, 20);
        let line = &profile.lines[0];
        assert_eq!(
            (line.file.as_path(), line.line),
            (Path::new("profiled.rhai"), 1)
        );
    }
}
