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

use std::collections::HashMap;

use rhai::{Caches, Dynamic, Engine, EvalAltResult, GlobalRuntimeState, Scope, AST};

/// The runtime state and the cache one worker's per-event calls share.
pub struct EventCalls {
    global: GlobalRuntimeState,
    caches: Caches,
    scope: Scope<'static>,
    /// The call statement of each function, by name.
    statements: HashMap<String, AST>,
}

/// The names of the arguments in the call statements' scope.
const CTX: &str = "ctx";
const DATA: &str = "data";

impl EventCalls {
    /// A fresh state for `engine`, whose script functions are those of `ast`.
    pub fn new(engine: &Engine, ast: &AST) -> Self {
        let mut global = engine.new_global_runtime_state();
        global.lib.push(ast.shared_lib().clone());
        Self {
            global,
            caches: Caches::new(),
            scope: Scope::new(),
            statements: HashMap::new(),
        }
    }

    /// Forgets the resolved functions: after the engine's functions changed (getters registered
    /// for the state's properties).
    pub fn reset(&mut self) {
        self.caches = Caches::new();
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
        // The called function's own error, as `call_fn` gives it, not wrapped in the call.
        result.map_err(|err| match *err {
            EvalAltResult::ErrorInFunctionCall(name, _, inner, _) if name == function => inner,
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
