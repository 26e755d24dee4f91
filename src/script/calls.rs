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
//! and arity (and argument types), not by where the call was made, while what a name means
//! depends on it: inside a module's function, that module's functions come first; elsewhere they
//! are not seen, and the same name may be the script's function or a native one. Within one call
//! Rhai reuses what it resolved, the same way whoever makes the event; across events the outcome
//! would depend on what the worker made before, hence on the number of workers. So after each
//! event every resolution that can depend on the place of the call is forgotten
//! (`forget_local_resolutions`): those of calls to a name and arity that an imported module
//! defines, and those that found a module's function. What stays resolves the same from
//! anywhere: the engine's native functions and the script's own functions, the bulk of a
//! scenario's calls; a script without modules keeps all.

use std::collections::HashMap;

use rhai::{
    Caches, Dynamic, Engine, EvalAltResult, FnResolutionCacheEntry, GlobalRuntimeState, Module,
    RhaiFunc, Scope, Stmt, AST,
};

/// The runtime state and the cache one worker's per-event calls share.
pub struct EventCalls {
    global: GlobalRuntimeState,
    caches: Caches,
    scope: Scope<'static>,
    /// The call statement of each function, by name.
    statements: HashMap<String, AST>,
    /// The hashes of calls whose meaning depends on where they are made (see the module doc);
    /// `None` when they could not be read, and every resolution is then forgotten.
    module_hashes: Option<Vec<u64>>,
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
            module_hashes: module_function_hashes(engine, modules),
        }
    }

    /// Keeps the cache across calls only if `keep` (and nothing else forbids it): off for a
    /// script whose imports are not known in advance (a detection rule may `import` inside a
    /// function), where a name could resolve in more than one place.
    pub fn keep_cache(mut self, keep: bool) -> Self {
        if !keep {
            self.module_hashes = None;
        }
        self
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
        self.forget_local_resolutions();
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

impl EventCalls {
    /// Forgets the resolutions that depend on where the call was made (see the module doc).
    fn forget_local_resolutions(&mut self) {
        if self.caches.fn_resolution_caches_len() == 0 {
            return;
        }
        let Some(module_hashes) = &self.module_hashes else {
            self.caches = Caches::new();
            return;
        };
        if module_hashes.is_empty() {
            return;
        }
        let cache = &mut self.caches.fn_resolution_cache_mut().dict;
        for hash in module_hashes {
            cache.remove(hash);
        }
        // A closure of a module (`|x| ...`) resolved under its generated name.
        cache.retain(|_, entry| {
            !matches!(
                entry,
                Some(FnResolutionCacheEntry {
                    func: RhaiFunc::Script { env: Some(_), .. },
                    ..
                })
            )
        });
    }
}

/// The hashes under which Rhai resolves a call of a script function defined in one of
/// `modules` (or the modules they import): what a call to its name and arity may mean
/// differently in another place. Rhai does not export its hash function, so each is read off a
/// call compiled for the purpose (`name(0, 0)`); `None` if one cannot be. Sorted, to be searched
/// at every event.
fn module_function_hashes(engine: &Engine, modules: &[&Module]) -> Option<Vec<u64>> {
    let mut hashes = Vec::new();
    let mut pending: Vec<&Module> = modules.to_vec();
    while let Some(module) = pending.pop() {
        for (_, _, name, arity, _) in module.iter_script_fn_info() {
            // Closures (`|x| ...`) are functions with generated names, called only through
            // their pointer: no other place can mean something else by them.
            if !super::state::is_identifier(name) {
                continue;
            }
            let args = vec!["0"; arity].join(", ");
            let call = engine.compile(format!("{name}({args})")).ok()?;
            let Some(Stmt::FnCall(call, _)) = call.statements().first() else {
                return None;
            };
            hashes.push(call.hashes.script());
        }
        pending.extend(module.iter_sub_modules().map(|(_, sub)| &**sub));
    }
    hashes.sort_unstable();
    hashes.dedup();
    Some(hashes)
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
