//! The scenario script: compiled once, called per arrival.
//!
//! A [`Scenario`] owns one Rhai engine (built once, helpers registered once, sandbox limits set)
//! and the script's AST (compiled once). The engine calls the contract's functions without
//! re-running the script's top level:
//!
//! | function | when | returns |
//! | --- | --- | --- |
//! | `config()` | at load | a map of setting defaults |
//! | `setup(ctx)` | after settings resolve | the scenario state: pools and the like |
//! | `event(ctx)` | once per arrival | a map, an array of maps, or `()` |
//! | `rate(t)` or `rate(t, settings)` | optional, once per simulated minute | events per minute at `t` |

mod api;
pub(crate) mod calls;
mod context;
mod convert;
mod draws;
mod error;
pub mod event_view;
mod fast;
mod follow_up;
pub mod imports;
pub mod json;
mod memory;
mod pool;
mod profile;
mod state;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rhai::module_resolvers::FileModuleResolver;
use rhai::{CallFnOptions, Dynamic, Engine, FuncArgs, Map, Position, Scope, AST, INT};

pub use api::HELPERS;
pub use context::EventContext;
pub use error::{ScriptError, ScriptErrorKind, SourceFile};
pub use fast::{Bail, FastFunction};
pub use follow_up::Scheduled;
use imports::ModuleSource;
pub use memory::{Journal, Memory};
pub use pool::Pool;
pub use profile::{FunctionTime, LineTime, Profile, Profiler};
pub use state::{read_frozen, thaw, StateMap};

use crate::rng::{event_base, event_rng, stream_rng, SimRng, Stream};
use crate::schema::{Schema, Violation};
use crate::settings::{ScriptDefaults, Settings};

/// Sandbox limits. Setup builds the pools, so it may take many operations (a million customers
/// at a few dozen operations each); a single event must stay small, so a runaway loop in
/// `event` is stopped within a fraction of a second instead of stalling the stream.
pub mod limits {
    /// Operations one `setup` call may take.
    pub const SETUP_OPERATIONS: u64 = 500_000_000;
    /// Operations one `config`, `event` or `rate` call may take.
    pub const CALL_OPERATIONS: u64 = 1_000_000;
    /// Nested function calls.
    pub const CALL_DEPTH: usize = 64;
    /// Nesting of one expression, at top level and in functions.
    pub const EXPRESSION_DEPTH: usize = 128;
    /// Bytes in one string.
    pub const STRING_SIZE: usize = 1 << 20;
    /// Elements in one array: large enough for pools of millions.
    pub const ARRAY_SIZE: usize = 10_000_000;
    /// Entries in one map.
    pub const MAP_SIZE: usize = 1_000_000;
}

/// How much of the state's values in the events a scenario makes are made plain maps and
/// arrays again (see [`StateMap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thaw {
    /// All of them: for whatever reads events as plain values (the schema check, a script's
    /// `check`, the Avro writer, a caller of the API).
    Deep,
    /// Only the events themselves (a map, or an array of maps): the frozen values inside them
    /// are left for a writer that reads them in place ([`read_frozen`]), as the JSON writer does.
    Outer,
}

/// A loaded scenario script.
pub struct Scenario {
    engine: Engine,
    ast: AST,
    source: SourceFile,
    name: String,
    imports: Vec<ModuleSource>,
    rng: api::SharedRng,
    /// The generator whose streams events draw from, one an event.
    events: SimRng,
    /// Raised when the event being made reads `ctx.seq`.
    seq_read: Arc<AtomicBool>,
    memory: Memory,
    pools: pool::PoolCounter,
    follow_ups: follow_up::FollowUps,
    /// What `setup` returned, frozen (see `state/mod.rs`). Behind an `Arc`, so that each event's
    /// `ctx` shares it for a reference count: a frozen map in a `Dynamic` is a native value,
    /// which Rhai clones into two new boxes.
    state: Arc<Dynamic>,
    /// The resolved settings, frozen; shared as `state` is.
    settings: Arc<Dynamic>,
    /// The property names of the state and settings, read through getters (see `state/mod.rs`).
    properties: state::PropertyNames,
    /// Whether the script defines `rate(t)` (1) or `rate(t, settings)` (2).
    rate_arity: Option<usize>,
    /// How many arguments the script's `check` takes: `check(event)` or
    /// `check(event, settings)`; `None` without one.
    check_arity: Option<usize>,
    schema: Option<Schema>,
    /// The scenario's own Avro schema (`config().avro_schema`), as JSON text.
    avro_schema: Option<String>,
    scope: Scope<'static>,
    /// The per-event calls, with the function-resolution cache they share (see `calls.rs`).
    calls: calls::EventCalls,
    /// `event(ctx)` compiled, when it can be (see `fast/`); the interpreter makes the events
    /// otherwise, and those the fast path gives up.
    fast: Option<fast::FastPath>,
    /// Events run and given up when the fast path was turned off (it gave up too many).
    fast_turned_off: Option<(u64, u64)>,
    /// Whether the last `setup(ctx)` ran on the fast path.
    setup_compiled: bool,
}

/// How a scenario's `setup(ctx)` ran (see `fast/`): `sim bench` reports it beside the start-up
/// time, as `setup` in its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupRun {
    /// The script has no `setup(ctx)`.
    None,
    /// On the fast path.
    Compiled,
    /// By the interpreter: it uses what the fast path does not cover, or the fast path gave it up.
    Interpreted,
}

/// How a scenario's events, or a detection rule's calls, are made (see `fast/`): `sim bench`
/// and `sim check` report it. For a rule, `events` counts its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum FastPathUse {
    /// `event(ctx)` (or `detect`) runs compiled: `events` run so far, `given_up` of them made
    /// again by the interpreter.
    On {
        /// Events (calls) run on the fast path.
        events: u64,
        /// Of those, the ones it gave up.
        given_up: u64,
    },
    /// It was compiled but gave up more than a quarter of its first events, and was turned off.
    TurnedOff {
        /// Events (calls) run on the fast path before it was turned off.
        events: u64,
        /// Of those, the ones it gave up.
        given_up: u64,
    },
    /// The function uses something the fast path does not cover: the interpreter makes every
    /// event (runs every call).
    NotCompiled,
}

/// What an event did besides returning events: the memory it read and wrote, the follow-ups it
/// scheduled, whether it read its sequence number.
#[derive(Debug, Default)]
pub struct Effects {
    /// Its memory journal.
    pub journal: Journal,
    /// The follow-ups it scheduled, in order.
    pub scheduled: Vec<Scheduled>,
    /// Whether it read `ctx.seq`.
    pub read_seq: bool,
}

/// The handles the native helpers of one engine share with its scenario.
struct Handles {
    rng: api::SharedRng,
    pools: pool::PoolCounter,
    memory: Memory,
    follow_ups: follow_up::FollowUps,
    seq_read: Arc<AtomicBool>,
}

impl Handles {
    fn new(memory: Memory) -> Self {
        Self {
            rng: Arc::new(std::sync::Mutex::new(stream_rng(0, Stream::Script))),
            pools: pool::PoolCounter::default(),
            memory,
            follow_ups: follow_up::FollowUps::default(),
            seq_read: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// An engine with the sandbox every script runs in (scenarios and detection rules alike): the
/// limits, strict variables, no `eval`, modules resolved from `script_dir`, and `print`/`debug`
/// on standard error tagged with `tag`. No helpers are registered.
pub fn sandboxed_engine(script_dir: &Path, tag: &str) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits::CALL_OPERATIONS)
        .set_max_call_levels(limits::CALL_DEPTH)
        .set_max_expr_depths(limits::EXPRESSION_DEPTH, limits::EXPRESSION_DEPTH)
        .set_max_string_size(limits::STRING_SIZE)
        .set_max_array_size(limits::ARRAY_SIZE)
        .set_max_map_size(limits::MAP_SIZE)
        // No string interning: it pays for scripts that make the same strings again and again from
        // text (Rhai's interner shares them), but every new string an event makes (an id, a key)
        // costs a look-up, and once the interner is full an O(256) eviction scan.
        .set_max_strings_interned(0)
        // Undeclared variables are compile errors, so typos are caught before the first event.
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(false)
        .set_module_resolver(FileModuleResolver::new_with_path(script_dir));
    // `eval` would let a script compile code that escaped the checks done at load.
    engine.disable_symbol("eval");
    let print_tag = tag.to_string();
    // Script output goes to stderr, never stdout (which may carry events or a JSON summary);
    // failures are ignored.
    engine.on_print(move |text| {
        let _ = writeln!(std::io::stderr(), "[{print_tag}] {text}");
    });
    let tag = tag.to_string();
    engine.on_debug(move |text, _, pos| {
        let _ = writeln!(std::io::stderr(), "[{tag}:{pos}] {text}");
    });
    engine
}

/// Builds the engine every scenario runs on: the one constructor for production and tests.
fn build_engine(shared: &Handles, script_dir: &Path, name: &str) -> Engine {
    let mut engine = sandboxed_engine(script_dir, name);
    api::register(&mut engine, &shared.rng);
    pool::register(&mut engine, &shared.rng, &shared.pools);
    state::register(&mut engine);
    memory::register(&mut engine, &shared.memory);
    follow_up::register(&mut engine, &shared.follow_ups);
    context::register(&mut engine, &shared.seq_read);
    engine
}

/// Reads each module the script imports (see [`imports`]).
fn read_imports(source: &SourceFile, dir: &Path) -> Result<Vec<ModuleSource>, ScriptError> {
    imports::imports(&source.text)
        .into_iter()
        .map(|import| {
            let position = import.position();
            ModuleSource::read(dir, import)
                .map_err(|err| source.runtime_error("import", err, position))
        })
        .collect()
}

/// Compiles the modules and registers each under its alias; returns them.
fn register_imports(
    engine: &mut Engine,
    source: &SourceFile,
    modules: &[ModuleSource],
) -> Result<Vec<rhai::Shared<rhai::Module>>, ScriptError> {
    let mut compiled = Vec::with_capacity(modules.len());
    for module in modules {
        let one = module
            .compile(engine)
            .map_err(|err| source.runtime_error("import", err, module.import.position()))?;
        engine.register_static_module(module.import.alias.as_str(), one.clone());
        compiled.push(one);
    }
    Ok(compiled)
}

/// Where `function` is defined in `text`. Function positions are not exposed by the AST's
/// metadata; this finds the definition's line.
fn position_in(text: &str, function: &str) -> Position {
    let needle = format!("fn {function}(");
    text.lines()
        .position(|line| line.trim_start().starts_with(&needle))
        .map(|index| Position::new(index as u16 + 1, 1))
        .unwrap_or(Position::NONE)
}

/// The contract functions and the numbers of parameters the engine calls each with.
const CONTRACT: &[(&str, &[usize], &str)] = &[
    ("config", &[0], "config()"),
    ("setup", &[1], "setup(ctx)"),
    ("event", &[1], "event(ctx)"),
    ("rate", &[1, 2], "rate(t) or rate(t, settings)"),
    ("check", &[1, 2], "check(event) or check(event, settings)"),
];

/// Refuses a contract function defined only with parameters the engine never calls it with
/// (`fn check(event, settings, extra)`): it would be silently ignored.
fn check_signatures(source: &SourceFile, ast: &AST) -> Result<(), ScriptError> {
    for (name, arities, expected) in CONTRACT {
        let defined: Vec<usize> = ast
            .iter_functions()
            .filter(|f| f.name == *name)
            .map(|f| f.params.len())
            .collect();
        if let Some(&found) = defined.iter().find(|n| !arities.contains(n)) {
            if !defined.iter().any(|n| arities.contains(n)) {
                let position = position_in(&source.text, name);
                return Err(source.bad_signature(name, position, found, expected));
            }
        }
    }
    Ok(())
}

/// Refuses a follow-up scheduled under a literal name that no `fn name(ctx, data)` of the
/// script has, in the script or a module it imports, pointing at the name.
fn check_follow_up_names(
    source: &SourceFile,
    imports: &[ModuleSource],
    targets: &BTreeSet<String>,
) -> Result<(), ScriptError> {
    let dir = source.path.parent().unwrap_or(Path::new(""));
    let module_files = imports.iter().map(|module| SourceFile {
        path: imports::module_file(dir, &module.import.path),
        text: module.text.clone(),
    });
    for file in std::iter::once(source.clone()).chain(module_files) {
        for (name, position) in follow_up::literal_targets(&file.text) {
            if !targets.contains(&name) {
                let message = follow_up::unknown_target(&name, targets);
                return Err(file.unknown_follow_up(position, message));
            }
        }
    }
    Ok(())
}

impl Scenario {
    /// Reads and compiles the script at `path`.
    pub fn load(path: &Path) -> Result<Self, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|e| error::read_error(path, e))?;
        Self::from_source(path, &text)
    }

    /// Compiles `text` as the script at `path` (which names it in errors and resolves imports).
    pub fn from_source(path: &Path, text: &str) -> Result<Self, ScriptError> {
        let source = SourceFile {
            path: path.to_path_buf(),
            text: Arc::from(text),
        };
        Self::compile(source, Memory::default())
    }

    /// Another worker for this scenario: an engine of its own, with the script and its modules
    /// compiled again from the texts read at load (so nothing is read from disk, and the workers
    /// share no reference-counted code whose counters the cores would fight over), reading a
    /// copy of its own of the state `setup` built (`setup` is not run again) and of the
    /// settings, for the same reason (large pools shared, see [`state::private_copy`]), and
    /// sharing the memory.
    pub fn fork(&self) -> Result<Self, ScriptError> {
        self.fork_with(self.memory.for_worker())
    }

    /// A copy of this scenario for a trial run (the sample checked before a stream starts):
    /// like [`Scenario::fork`], but remembering into a copy of this one's memory, so nothing
    /// the trial does reaches the stream that follows.
    pub fn trial_copy(&self) -> Result<Self, ScriptError> {
        self.fork_with(self.memory.copy())
    }

    fn fork_with(&self, memory: Memory) -> Result<Self, ScriptError> {
        let mut worker = Self::compile_with(self.source.clone(), self.imports.clone(), memory)?;
        // Each worker reads copies of its own of the frozen state and settings, though they
        // are read-only: see `state::private_copy`.
        worker.state = Arc::new(state::private_copy(&self.state));
        worker.settings = Arc::new(state::private_copy(&self.settings));
        worker.fold_context();
        worker.properties = self.properties.for_new_engine();
        worker.properties.register(&mut worker.engine);
        worker.calls.reset();
        worker.schema = self.schema.clone();
        worker.avro_schema = self.avro_schema.clone();
        worker.events = self.events.clone();
        Ok(worker)
    }

    fn script_dir(source: &SourceFile) -> std::path::PathBuf {
        source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    fn compile(source: SourceFile, memory: Memory) -> Result<Self, ScriptError> {
        let imports = read_imports(&source, &Self::script_dir(&source))?;
        Self::compile_with(source, imports, memory)
    }

    fn compile_with(
        source: SourceFile,
        imports: Vec<ModuleSource>,
        memory: Memory,
    ) -> Result<Self, ScriptError> {
        let name = source
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        let dir = Self::script_dir(&source);
        let handles = Handles::new(memory);
        let mut engine = build_engine(&handles, &dir, &name);
        let ast = engine
            .compile(&*source.text)
            .map_err(|err| source.syntax_error(&err))?;
        let modules = register_imports(&mut engine, &source, &imports)?;
        let defines = |fn_name: &str, arity: usize| {
            ast.iter_functions()
                .any(|f| f.name == fn_name && f.params.len() == arity)
        };
        if !defines("event", 1) {
            // A detection rule given where a scenario goes: say where it belongs.
            let help = if defines("detect", 2) {
                "this is a detection rule (`fn detect(event, history)`): `sim analyze --rules DIR` runs the rules of its folder, `sim check` checks it; a scenario defines `fn event(ctx) { #{ ... } }`"
            } else {
                "every scenario defines `fn event(ctx) { #{ ... } }`, returning one event as a map"
            };
            return Err(source.missing("event(ctx)", help));
        }
        check_signatures(&source, &ast)?;
        let targets: BTreeSet<String> = ast
            .iter_functions()
            .filter(|f| f.params.len() == 2)
            .map(|f| f.name.to_string())
            .collect();
        check_follow_up_names(&source, &imports, &targets)?;
        handles.follow_ups.set_targets(targets);
        let modules: Vec<&rhai::Module> = modules.iter().map(|m| &**m).collect();
        let calls = calls::EventCalls::new(&engine, &ast, &modules);
        // The modules' syntax trees, compiled again from their texts for the fast path.
        let module_asts: Vec<(String, AST)> = imports
            .iter()
            .filter_map(|m| Some((m.import.alias.clone(), engine.compile(&*m.text).ok()?)))
            .collect();
        let fast = fast::FastPath::build(
            &ast,
            &module_asts,
            handles.rng.clone(),
            handles.memory.clone(),
            handles.follow_ups.clone(),
            handles.seq_read.clone(),
        );
        let rate_arity = [2, 1].into_iter().find(|&arity| defines("rate", arity));
        let check_arity = [2, 1].into_iter().find(|&arity| defines("check", arity));
        Ok(Self {
            engine,
            ast,
            source,
            name,
            imports,
            rng: handles.rng,
            events: event_base(0, 0),
            seq_read: handles.seq_read,
            memory: handles.memory,
            pools: handles.pools,
            follow_ups: handles.follow_ups,
            state: Arc::new(Dynamic::UNIT),
            settings: Arc::new(Dynamic::from(StateMap::default())),
            properties: state::PropertyNames::default(),
            rate_arity,
            check_arity,
            schema: None,
            avro_schema: None,
            scope: Scope::new(),
            calls,
            fast,
            fast_turned_off: None,
            setup_compiled: false,
        })
    }

    /// The scenario's name: the script's file stem.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The follow-up functions the script, or a module it imports, schedules under a literal
    /// name: what a check should reach.
    pub fn named_follow_ups(&self) -> BTreeSet<String> {
        std::iter::once(&self.source.text)
            .chain(self.imports.iter().map(|m| &m.text))
            .flat_map(|text| follow_up::literal_targets(text))
            .map(|(name, _)| name)
            .collect()
    }

    /// Whether the script defines `check(event)` (or `check(event, settings)`).
    pub fn has_check(&self) -> bool {
        self.check_arity.is_some()
    }

    /// Whether the script defines `rate(t)`.
    pub fn has_rate(&self) -> bool {
        self.rate_arity.is_some()
    }

    /// Calls a script function by name with the per-call sandbox limit: for contract functions
    /// and for tests of a script's rules (`commission`, `vat`).
    pub fn call(&mut self, function: &str, args: impl FuncArgs) -> Result<Dynamic, ScriptError> {
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        self.engine
            .call_fn_with_options::<Dynamic>(options, &mut self.scope, &self.ast, function, args)
            .map_err(|err| {
                let fallback = self.position_of(function);
                self.source.runtime_error(function, err, fallback)
            })
    }

    /// Calls `function(ctx)` or `function(ctx, data)` for one event, with the function cache
    /// kept across events (see `calls.rs`); errors as [`Scenario::call`] gives them.
    fn call_per_event(
        &mut self,
        function: &str,
        ctx: EventContext,
        data: Option<Dynamic>,
    ) -> Result<Dynamic, ScriptError> {
        self.calls
            .call(&self.engine, function, Dynamic::from(ctx), data)
            .map_err(|err| {
                let fallback = self.position_of(function);
                self.source.runtime_error(function, err, fallback)
            })
    }

    fn defines(&self, function: &str, arity: usize) -> bool {
        self.ast
            .iter_functions()
            .any(|f| f.name == function && f.params.len() == arity)
    }

    fn position_of(&self, function: &str) -> Position {
        position_in(&self.source.text, function)
    }

    /// The setting defaults from `config()`, or none when the script has no `config`.
    pub fn config(&mut self) -> Result<ScriptDefaults, ScriptError> {
        let mut defaults = ScriptDefaults {
            path: self.source.path.clone(),
            ..ScriptDefaults::default()
        };
        if !self.defines("config", 0) {
            return Ok(defaults);
        }
        let result = self.call("config", ())?;
        let Some(map) = result.clone().try_cast::<Map>() else {
            return Err(self.source.bad_return(
                "config",
                self.position_of("config"),
                result.type_name(),
                "a map of settings",
            ));
        };
        for (key, value) in map {
            if key == "schema" {
                self.schema = Some(self.read_schema(&value)?);
            } else if key == "avro_schema" {
                self.avro_schema = Some(self.read_avro_schema(&value)?);
            } else if key == "limits" {
                defaults.limits = convert::limits(&value).ok_or_else(|| {
                    self.source.bad_return(
                        "config",
                        self.position_of("config"),
                        &format!("limits of type {}", value.type_name()),
                        "limits as a map of setting names to [min] or [min, max]",
                    )
                })?;
            } else if let Some(raw) = convert::raw_value(&value) {
                defaults.values.push((key.to_string(), raw));
            } else {
                return Err(self.source.bad_return(
                    "config",
                    self.position_of("config"),
                    &format!("`{key}` of type {}", value.type_name()),
                    "settings that are numbers, strings, booleans or lists of them",
                ));
            }
        }
        Ok(defaults)
    }

    fn read_schema(&self, value: &Dynamic) -> Result<Schema, ScriptError> {
        let bad = |found: String| {
            self.source.bad_return(
                "config",
                self.position_of("config"),
                &found,
                "a schema map of field names to types (see docs/scripting.md)",
            )
        };
        let map = value
            .read_lock::<Map>()
            .ok_or_else(|| bad(format!("a schema of type {}", value.type_name())))?;
        Schema::from_map(&map).map_err(bad)
    }

    /// `config().avro_schema` as JSON text: a string as written, a map as JSON. apache-avro
    /// parses it when an Avro encoding needs it (see [`crate::avro`]).
    fn read_avro_schema(&self, value: &Dynamic) -> Result<String, ScriptError> {
        let bad = |found: String| {
            self.source.bad_return(
                "config",
                self.position_of("config"),
                &found,
                "an Avro schema as a map or a JSON string (see docs/avro.md)",
            )
        };
        if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
            return Ok(text.to_string());
        }
        if !value.is_map() {
            return Err(bad(format!("avro_schema of type {}", value.type_name())));
        }
        serde_json::to_string(value).map_err(|err| bad(format!("avro_schema ({err})")))
    }

    /// The scenario's own Avro schema (`config().avro_schema`) as JSON text, if it gives one.
    pub fn avro_schema(&self) -> Option<&str> {
        self.avro_schema.as_deref()
    }

    /// The event schema declared in `config()`, if any.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    /// Checks one event against the declared schema and the script's `check(event)`, which
    /// returns `()` or an empty array when the event holds, else a message or an array of them.
    pub fn check_event(
        &mut self,
        event: &Map,
        out: &mut Vec<Violation>,
    ) -> Result<(), ScriptError> {
        if let Some(schema) = &self.schema {
            schema.validate(event, out);
        }
        let event = Dynamic::from_map(event.clone());
        let result = match self.check_arity {
            None => return Ok(()),
            Some(2) => {
                let settings = (*self.settings).clone();
                self.call("check", (event, settings))?
            }
            Some(_) => self.call("check", (event,))?,
        };
        let invariant = |message: &Dynamic| Violation {
            field: String::new(),
            message: message.to_string(),
        };
        if let Some(messages) = result.read_lock::<rhai::Array>() {
            out.extend(messages.iter().map(invariant));
        } else if result.is_string() && !result.to_string().is_empty() {
            out.push(invariant(&result));
        }
        Ok(())
    }

    /// Seeds the script's generator, hands it the settings, and runs `setup(ctx)`; its result
    /// becomes `ctx.state` for every event.
    pub fn setup(
        &mut self,
        settings: &Settings,
        seed: u64,
        start_ms: INT,
    ) -> Result<(), ScriptError> {
        *crate::sync::lock(&self.rng) = stream_rng(seed, Stream::Script);
        self.events = event_base(seed, 0);
        self.pools.reset();
        let settings_map = Dynamic::from_map(convert::settings_map(settings));
        self.settings = Arc::new(state::freeze(settings_map, &mut self.properties));
        self.properties.register(&mut self.engine);
        self.calls.reset();
        self.memory.set_cap(settings.max_remembered);
        self.setup_compiled = false;
        if !self.defines("setup", 1) {
            self.state = Arc::new(Dynamic::UNIT);
            self.fold_context();
            return Ok(());
        }
        let ctx = self.context(start_ms, 0);
        self.memory.begin();
        // On the fast path when it can: there a `push` or `m[k] = v` costs what it adds, where
        // Rhai walks the whole variable after each (n²/2 steps for n customers).
        let queued = self.follow_ups.len();
        let fast = self.fast.as_mut().map(|fast| fast.setup(ctx.clone()));
        self.setup_compiled = matches!(fast, Some(Ok(_)));
        let result = match fast {
            Some(Ok(state)) => Ok(state),
            given_up => {
                if given_up.is_some() {
                    // The interpreter runs it from the same start: the same draws, nothing
                    // remembered or scheduled.
                    *crate::sync::lock(&self.rng) = stream_rng(seed, Stream::Script);
                    self.follow_ups.truncate(queued);
                    drop(self.memory.take_journal());
                    self.memory.begin();
                }
                self.engine.set_max_operations(limits::SETUP_OPERATIONS);
                let result = self.call("setup", (ctx,));
                self.engine.set_max_operations(limits::CALL_OPERATIONS);
                result
            }
        };
        // Frozen, so read-only: an event that changed the state would change what later events
        // see, and whether another worker saw it would depend on the number of workers. What
        // changes belongs in memory (`remember`).
        self.state = Arc::new(state::freeze(result?, &mut self.properties));
        self.fold_context();
        self.properties.register(&mut self.engine);
        self.calls.reset();
        // What setup remembered is there for the first event.
        self.memory.commit(&mut self.memory.take_journal());
        Ok(())
    }

    /// Lets the fast path read `ctx.state.name` and `ctx.settings.name` as the entries of this
    /// scenario's state and settings, read once.
    fn fold_context(&mut self) {
        if let Some(fast) = &mut self.fast {
            fast.fold_context(&self.state, &self.settings);
        }
    }

    /// Takes over what `previous` remembered (`remember`/`recall`), for a reload.
    pub fn take_memory_from(&self, previous: &Scenario) {
        self.memory.take_over(&previous.memory);
    }

    /// Moves the events' generator to that of the `generation`-th reload (see [`event_base`]), so
    /// a reloaded script does not replay its predecessor's draws; setup draws are unaffected, so
    /// unchanged pools come out the same.
    pub fn reseed_events(&mut self, seed: u64, generation: u64) {
        self.events = event_base(seed, generation);
    }

    /// Readies the engine for the event with identity `id`: its own random stream, a fresh
    /// memory journal, no sequence number read yet.
    fn start(&mut self, id: u64) {
        *crate::sync::lock(&self.rng) = event_rng(&self.events, id);
        self.memory.begin();
        self.seq_read.store(false, Ordering::Relaxed);
    }

    /// How the last `setup(ctx)` ran: on the fast path, by the interpreter, or not at all.
    pub fn setup_run(&self) -> SetupRun {
        if self.setup_compiled {
            SetupRun::Compiled
        } else if self.defines("setup", 1) {
            SetupRun::Interpreted
        } else {
            SetupRun::None
        }
    }

    /// How this scenario's events were made: on the fast path or by the interpreter.
    pub fn fast_path(&self) -> FastPathUse {
        match (&self.fast, self.fast_turned_off) {
            (Some(fast), _) => fast.usage(),
            (None, Some((events, given_up))) => FastPathUse::TurnedOff { events, given_up },
            (None, None) => FastPathUse::NotCompiled,
        }
    }

    /// What the event just made did besides returning events (see [`Effects`]); the pipeline
    /// commits its memory journal with [`Scenario::commit`] when its turn comes.
    pub fn take_effects(&mut self) -> Effects {
        Effects {
            journal: self.memory.take_journal(),
            scheduled: self.follow_ups.take(),
            read_seq: self.seq_read.load(Ordering::Relaxed),
        }
    }

    /// Applies an event's memory writes to the memory every worker reads.
    pub fn commit(&self, journal: &mut Journal) {
        self.memory.commit(journal);
    }

    fn context(&self, time: INT, seq: INT) -> EventContext {
        EventContext::new(time, seq, &self.state, &self.settings)
    }

    /// Runs `event(ctx)` for the arrival at `time_ms` with sequence number `seq`, returning what
    /// the script returned, checked to be a map, an array of maps, or `()`. The arrival's identity
    /// (which names its random stream) is its sequence number; see [`Scenario::arrival`].
    pub fn event(&mut self, time_ms: INT, seq: INT) -> Result<Dynamic, ScriptError> {
        self.arrival(time_ms, seq, seq as u64)
    }

    /// Runs `event(ctx)` for the arrival with identity `id`: the ordinal of the arrival on the
    /// timeline, independent of the follow-ups emitted between arrivals.
    pub fn arrival(&mut self, time_ms: INT, seq: INT, id: u64) -> Result<Dynamic, ScriptError> {
        self.arrival_as(time_ms, seq, id, Thaw::Deep)
    }

    /// [`Scenario::arrival`], with the state's values in the events thawed as `thaw` says.
    pub fn arrival_as(
        &mut self,
        time_ms: INT,
        seq: INT,
        id: u64,
        thaw: Thaw,
    ) -> Result<Dynamic, ScriptError> {
        self.start(id);
        let queued = self.follow_ups.len();
        if let Some(fast) = &mut self.fast {
            match fast.event(time_ms, seq, &self.state, &self.settings) {
                Ok(result) => return self.checked_events("event", result, thaw),
                // Given up: the interpreter makes the event from the same draws.
                Err(fast::Bail) => self.restart_after_bail(id, queued),
            }
        }
        let ctx = self.context(time_ms, seq);
        let result = self.call_per_event("event", ctx, None)?;
        self.checked_events("event", result, thaw)
    }

    /// Gives back an event's map once it is encoded: a later event's map literal with the same
    /// keys fills it again, on the fast path, instead of building a map (and this one being
    /// freed). Without the fast path it is dropped.
    pub fn recycle(&mut self, event: Map) {
        if let Some(fast) = &mut self.fast {
            fast.recycle(event);
        }
    }

    /// Runs a scheduled follow-up: `function(ctx, data)` at its time, checked like `event`.
    pub fn follow_up(&mut self, scheduled: Scheduled, seq: INT) -> Result<Dynamic, ScriptError> {
        self.follow_up_as(scheduled, seq, Thaw::Deep)
    }

    /// [`Scenario::follow_up`], with the state's values in the events thawed as `thaw` says.
    pub fn follow_up_as(
        &mut self,
        scheduled: Scheduled,
        seq: INT,
        thaw: Thaw,
    ) -> Result<Dynamic, ScriptError> {
        self.start(scheduled.id);
        let ctx = self.context(scheduled.at_ms, seq);
        let function = scheduled.function.to_string();
        let queued = self.follow_ups.len();
        if let Some(fast) = &mut self.fast {
            match fast.follow_up(&function, ctx.clone(), scheduled.data.clone()) {
                Ok(result) => return self.checked_events(&function, result, thaw),
                Err(fast::Bail) => self.restart_after_bail(scheduled.id, queued),
            }
        }
        let result = self.call_per_event(&function, ctx, Some(scheduled.data))?;
        self.checked_events(&function, result, thaw)
    }

    /// After the fast path gave an event up: turns it off if it does not pay, drops the calls
    /// the event scheduled past the first `queued` and what it wrote to the memory, and rewinds
    /// the event's random stream for the interpreter.
    fn restart_after_bail(&mut self, id: u64, queued: usize) {
        if let Some(fast) = self.fast.take_if(|fast| !fast.pays()) {
            self.fast_turned_off = Some(fast.counts());
        }
        self.follow_ups.truncate(queued);
        // Dropped, not committed: `start` would commit a journal left behind.
        drop(self.memory.take_journal());
        self.start(id);
    }

    fn checked_events(
        &self,
        function: &str,
        result: Dynamic,
        thaw: Thaw,
    ) -> Result<Dynamic, ScriptError> {
        // Maps and arrays of the state in the events become plain ones, for the encoder and the
        // checks that follow, or only the events themselves when the encoder reads the rest.
        let result = match thaw {
            Thaw::Deep => state::thaw(result),
            Thaw::Outer => state::thaw_outer(result),
        };
        let shape_ok = result.is_map()
            || result.is_unit()
            || (result.is_array()
                && result
                    .read_lock::<rhai::Array>()
                    .is_some_and(|items| items.iter().all(Dynamic::is_map)));
        if shape_ok {
            Ok(result)
        } else {
            Err(self.source.bad_return(
                function,
                self.position_of(function),
                result.type_name(),
                "a map (one event), an array of maps, or () to skip",
            ))
        }
    }

    /// Runs `rate(t)`: events per minute at `time_ms`.
    /// A script may define `rate(t, settings)` instead, to read its settings (`settings.rate`,
    /// a sale's hour) in the curve.
    pub fn rate(&mut self, time_ms: INT) -> Result<f64, ScriptError> {
        let result = if self.rate_arity == Some(2) {
            let settings = (*self.settings).clone();
            self.call("rate", (time_ms, settings))?
        } else {
            self.call("rate", (time_ms,))?
        };
        result
            .as_float()
            .or_else(|_| result.as_int().map(|i| i as f64))
            .map_err(|found| {
                self.source.bad_return(
                    "rate",
                    self.position_of("rate"),
                    found,
                    "a number of events per minute",
                )
            })
    }
}

#[cfg(test)]
pub(crate) mod tests;
