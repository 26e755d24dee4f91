//! Calling a scenario's per-event functions (`event(ctx)`, follow-ups `name(ctx, data)`) with
//! Rhai's function-resolution cache kept from one event to the next.
//!
//! `Engine::call_fn` starts every call with an empty cache, so each event resolved every function
//! it called again: a walk over the script's library, the engine's, every imported module, and,
//! for a helper taking `Dynamic` arguments, each combination of argument types, about a tenth of
//! darooghe's time. Here each worker keeps one runtime state and one cache for its engine, and
//! runs the call as a one-statement script (`event(ctx)`) over them, the arguments in its scope.
//! What `call_fn` did per call is done here per call as well: the operation count starts at zero
//! (the per-event limit holds), and the error of the called function is unwrapped the same way.
//!
//! The cache is dropped whenever the engine's functions change (see [`EventCalls::reset`]).
//! This uses Rhai's `internals` (`Caches`, `GlobalRuntimeState`, `eval_statements_raw`).
//!
//! Kept only where that cannot change what a call does. Rhai keys the cache by a function's name
//! and arity, not by the module it was looked up from, so where the script and a module it
//! imports (or two modules) both define `f` with the same number of parameters, the `f` first
//! resolved in one is reused in the other. Within one call Rhai does that itself, the same way
//! whoever makes the event; across events the outcome would depend on what the worker made
//! before, hence on the number of workers. So a scenario with such a pair of functions
//! ([`shared_names`]) resolves afresh at each event, as `call_fn` does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rhai::{Caches, Dynamic, Engine, EvalAltResult, GlobalRuntimeState, Module, Scope, AST};

/// The runtime state and the cache one worker's per-event calls share.
pub struct EventCalls {
    global: GlobalRuntimeState,
    caches: Caches,
    scope: Scope<'static>,
    /// The call statement of each function, by name.
    statements: HashMap<String, AST>,
    /// Whether the cache is kept from one event to the next (see the module doc).
    persistent: bool,
}

/// The names of the arguments in the call statements' scope.
const CTX: &str = "ctx";
const DATA: &str = "data";

impl EventCalls {
    /// A fresh state for `engine`, whose script functions are those of `ast` and of the
    /// `modules` it imports.
    pub fn new(engine: &Engine, ast: &AST, modules: &[&Module]) -> Self {
        let mut global = engine.new_global_runtime_state();
        global.lib.push(ast.shared_lib().clone());
        Self {
            global,
            caches: Caches::new(),
            scope: Scope::new(),
            statements: HashMap::new(),
            persistent: shared_names(ast, modules).is_empty(),
        }
    }

    /// Forgets the resolved functions: after the engine's functions changed (getters registered
    /// for the state's properties).
    pub fn reset(&mut self) {
        self.caches = Caches::new();
    }

    /// A fresh runtime state for `engine`, whose script functions are those of `ast`: after a
    /// debugger was registered on it (the state holds the debugger, see `profile.rs`).
    pub fn restart(&mut self, engine: &Engine, ast: &AST) {
        self.global = engine.new_global_runtime_state();
        self.global.lib.push(ast.shared_lib().clone());
        self.reset();
    }

    /// Calls the script function `function(ctx)`, or `function(ctx, data)` with `data`.
    pub fn call(
        &mut self,
        engine: &Engine,
        function: &str,
        ctx: Dynamic,
        data: Option<Dynamic>,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let arity = if data.is_some() { 2 } else { 1 };
        if !self.statements.contains_key(function) {
            let statement = compile_call(engine, function, arity)?;
            self.statements.insert(function.to_string(), statement);
        }
        let statement = &self.statements[function];
        if !self.persistent {
            self.caches = Caches::new();
        }
        self.scope.push(CTX, ctx);
        if let Some(data) = data {
            self.scope.push(DATA, data);
        }
        // As `call_fn` starts each call: no operations counted, at the top level.
        self.global.num_operations = 0;
        self.global.level = 0;
        self.global.scope_level = 0;
        #[allow(deprecated)] // The one public way to evaluate with a cache of one's own.
        let result = engine.eval_statements_raw(
            &mut self.global,
            &mut self.caches,
            &mut self.scope,
            statement.statements(),
        );
        self.scope.clear();
        // The called function's own error, as `call_fn` gives it: not wrapped in the call, and a
        // system error (too many operations, a value too large) without the call statement's
        // position, which Rhai gives it (`call_fn` has no call site to give).
        result.map_err(|err| match *err {
            EvalAltResult::ErrorInFunctionCall(name, _, inner, _) if name == function => inner,
            mut other if other.is_system_exception() => {
                other.set_position(rhai::Position::NONE);
                Box::new(other)
            }
            _ => err,
        })
    }
}

/// `function(ctx)` or `function(ctx, data)`, compiled against a scope holding the arguments.
fn compile_call(engine: &Engine, function: &str, arity: usize) -> Result<AST, Box<EvalAltResult>> {
    let mut scope = Scope::new();
    scope.push(CTX, ());
    if arity == 2 {
        scope.push(DATA, ());
    }
    let text = if arity == 2 {
        format!("{function}({CTX}, {DATA})")
    } else {
        format!("{function}({CTX})")
    };
    engine
        .compile_with_scope(&scope, text)
        .map_err(|err| err.into())
}

/// The script functions (`name/arity`) defined in more than one of: the script (`ast`), the
/// `modules` it imports, and the modules those import.
pub fn shared_names(ast: &AST, modules: &[&Module]) -> BTreeSet<String> {
    let mut places: BTreeMap<String, usize> = BTreeMap::new();
    let mut count = |names: BTreeSet<String>| {
        for name in names {
            *places.entry(name).or_default() += 1;
        }
    };
    count(
        ast.iter_functions()
            .map(|f| format!("{}/{}", f.name, f.params.len()))
            .collect(),
    );
    let mut pending: Vec<&Module> = modules.to_vec();
    while let Some(module) = pending.pop() {
        count(
            module
                .iter_script_fn_info()
                .map(|(_, _, name, arity, _)| format!("{name}/{arity}"))
                .collect(),
        );
        pending.extend(module.iter_sub_modules().map(|(_, sub)| &**sub));
    }
    places
        .into_iter()
        .filter(|&(_, count)| count > 1)
        .map(|(name, _)| name)
        .collect()
}
