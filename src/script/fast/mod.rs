//! The fast path of `event(ctx)`, of follow-ups and of detection rules ([`FastFunction`]): the
//! functions of the script and of the modules it imports, compiled once from Rhai's syntax tree
//! into nodes whose variables are frame slots, whose calls are resolved, and whose helpers
//! (`rand_int`, `pick`, `uuid`, ...) are called directly, so an event skips Rhai's per-node
//! dispatch, scope searches, function resolution and argument copies.
//!
//! It covers what events are mostly made of (docs/scripting.md lists it): `let`, assignments,
//! `if`, `switch`, `for`, `while`, `return`, literals, maps, arrays, interpolation, operators on
//! numbers and strings, reads of maps, arrays, pools, the frozen state and `ctx`, the script's
//! and its modules' functions and the common helpers. A function using anything else (`loop`,
//! `do`, a string method, ...) is not compiled: an event whose path reaches it is given up, and a
//! fast path that gives up too many events turns itself off.
//!
//! The interpreter stays the reference. Whenever the fast path meets a value it does not handle,
//! or anything that would be an error (a bad argument, an overflow, a size or depth limit), it
//! gives the event up ([`Bail`]) before anything left the worker: the event's random stream
//! is rewound and Rhai makes the event from the start, so the same draws give the same event,
//! and an error is Rhai's own error, with its position. Nothing the fast path does is visible
//! beside its result: the helpers it calls draw random numbers, read the memory and schedule
//! follow-ups, and what an event given up scheduled is dropped before the interpreter runs it.

mod compile;
mod eval;
mod natives;
mod sizes;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rhai::{Dynamic, Map, AST, INT};

use super::context::EventContext;
use super::draws::SharedRng;
use super::follow_up::FollowUps;
use super::memory::Memory;
use super::FastPathUse;

use compile::{Compiled, Vocabulary};

/// The fast path gave the event up: the interpreter makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bail;

/// A scenario's compiled functions, with the handles its helpers draw from and report to.
pub struct FastPath {
    program: Program,
    /// The index of `event(ctx)` among the compiled functions.
    event: usize,
    /// The last event's `ctx`, given the next event's time and number rather than made anew:
    /// a new one was an `EventContext` with two shared handles counted up and down (atomic
    /// operations) and a value boxed twice, about 115 ns an event here.
    kept_ctx: Dynamic,
}

/// Compiled functions, what their helpers use, and how often their calls were given up.
struct Program {
    compiled: Compiled,
    helpers: natives::Helpers,
    seq_read: Arc<AtomicBool>,
    /// Frames kept from one call to the next.
    frames: eval::Frames,
    /// Events' maps given back, for the next events' map literals.
    spares: eval::SpareMaps,
    /// Calls run, and calls given up, since it started.
    runs: u64,
    bails: u64,
}

/// After this many calls, a fast path that gave up more than a quarter of them is turned off:
/// its events would be made twice, for nothing.
const TRIAL_EVENTS: u64 = 200;

impl Program {
    fn new(compiled: Compiled, helpers: natives::Helpers, seq_read: Arc<AtomicBool>) -> Self {
        Self {
            compiled,
            helpers,
            seq_read,
            frames: eval::Frames::default(),
            spares: eval::SpareMaps::default(),
            runs: 0,
            bails: 0,
        }
    }

    /// Calls compiled function `index` with `args`.
    fn run<const N: usize>(&mut self, index: usize, args: [Dynamic; N]) -> Result<Dynamic, Bail> {
        self.run_keeping_first(index, args).0
    }

    /// Calls compiled function `index` with `args`; gives back what its first parameter holds
    /// when the call ends as well.
    fn run_keeping_first<const N: usize>(
        &mut self,
        index: usize,
        args: [Dynamic; N],
    ) -> (Result<Dynamic, Bail>, Dynamic) {
        let slots = self.compiled.functions[index].slots;
        let args = self.frames.with_args(slots, args);
        let mut run = eval::Run::new(&self.compiled, &self.helpers, &self.seq_read)
            .with_frames(std::mem::take(&mut self.frames))
            .with_spares(std::mem::take(&mut self.spares));
        let (result, first) = run.call_keeping_first(index, args);
        (self.frames, self.spares) = run.into_kept();
        self.runs += 1;
        self.bails += u64::from(result.is_err());
        (result, first)
    }

    fn counts(&self) -> (u64, u64) {
        (self.runs, self.bails)
    }

    /// False once it gave up more than a quarter of [`TRIAL_EVENTS`] calls or more.
    fn pays(&self) -> bool {
        self.runs < TRIAL_EVENTS || self.bails * 4 <= self.runs
    }

    /// On, or turned off, with the calls run and given up.
    fn usage(&self) -> FastPathUse {
        let (events, given_up) = self.counts();
        if self.pays() {
            FastPathUse::On { events, given_up }
        } else {
            FastPathUse::TurnedOff { events, given_up }
        }
    }
}

impl FastPath {
    /// Compiles the functions of the script `ast` and of the `modules` it imports (by alias)
    /// that can be; `None` when `event(ctx)` cannot be.
    pub fn build(
        ast: &AST,
        modules: &[(String, AST)],
        rng: SharedRng,
        memory: Memory,
        follow_ups: FollowUps,
        seq_read: Arc<AtomicBool>,
    ) -> Option<Self> {
        let compiled = Compiled::from_ast(ast, modules, Vocabulary::Scenario);
        let event = compiled.runnable("event", 1)?;
        let helpers = natives::Helpers {
            rng,
            memory,
            follow_ups,
        };
        Some(Self {
            program: Program::new(compiled, helpers, seq_read),
            event,
            kept_ctx: Dynamic::UNIT,
        })
    }

    /// Runs `event(ctx)` with the `ctx` of the event at `time` numbered `seq` of the scenario
    /// with `state` and `settings`: what it returned, or [`Bail`] for the interpreter to make
    /// the event.
    pub fn event(
        &mut self,
        time: INT,
        seq: INT,
        state: &Arc<Dynamic>,
        settings: &Arc<Dynamic>,
    ) -> Result<Dynamic, Bail> {
        let ctx = self.context(time, seq, state, settings);
        let (result, ctx) = self.program.run_keeping_first(self.event, [ctx]);
        self.kept_ctx = ctx;
        result
    }

    /// The `ctx` of an event: the kept one given its time and number, if `event` left it
    /// in its parameter (a script that gave it a new value or moved it leaves something else),
    /// or a new one.
    fn context(
        &mut self,
        time: INT,
        seq: INT,
        state: &Arc<Dynamic>,
        settings: &Arc<Dynamic>,
    ) -> Dynamic {
        let mut ctx = std::mem::take(&mut self.kept_ctx);
        let kept = !ctx.is_shared() && !ctx.is_read_only() && {
            match ctx.write_lock::<EventContext>() {
                Some(mut kept) => {
                    kept.time = time;
                    kept.seq = seq;
                    if !Arc::ptr_eq(&kept.state, state) {
                        kept.state = state.clone();
                    }
                    if !Arc::ptr_eq(&kept.settings, settings) {
                        kept.settings = settings.clone();
                    }
                    true
                }
                None => false,
            }
        };
        if kept {
            return ctx;
        }
        Dynamic::from(EventContext::new(time, seq, state, settings))
    }

    /// Runs `setup(ctx)`, with the operations the sandbox allows `setup`: the state it
    /// returned, or [`Bail`] for the interpreter to run it. Not counted with the events.
    pub fn setup(&mut self, ctx: EventContext) -> Result<Dynamic, Bail> {
        let index = self.program.compiled.runnable("setup", 1).ok_or(Bail)?;
        let program = &self.program;
        let mut run = eval::Run::new(&program.compiled, &program.helpers, &program.seq_read)
            .with_budget(super::limits::SETUP_OPERATIONS);
        let state = run.call(index, vec![Dynamic::from(ctx)])?;
        // The state as a whole within the limits, or the interpreter says where it is not.
        if !sizes::Sizes::of(&state).within_limits() {
            return Err(Bail);
        }
        Ok(state)
    }

    /// Runs the follow-up `function(ctx, data)` the same way, if the script's `function` with two
    /// parameters is compiled; [`Bail`] otherwise.
    pub fn follow_up(
        &mut self,
        function: &str,
        ctx: EventContext,
        data: Dynamic,
    ) -> Result<Dynamic, Bail> {
        let index = self.program.compiled.runnable(function, 2).ok_or(Bail)?;
        self.program.run(index, [Dynamic::from(ctx), data])
    }

    /// Reads the entries of `state` and `settings` that the compiled functions read through
    /// `ctx` (see [`compile::Folded`]): call it whenever the scenario's state or settings are
    /// made anew.
    pub fn fold_context(&mut self, state: &Arc<Dynamic>, settings: &Arc<Dynamic>) {
        self.program.compiled.fold_context(state, settings);
    }

    /// Gives back an event's map once it is encoded, for a later event's map literal with the
    /// same keys to fill instead of building a map.
    pub fn recycle(&mut self, map: Map) {
        self.program.spares.give(map);
    }

    /// Events run on it, and of those given up to the interpreter, since it started.
    pub fn counts(&self) -> (u64, u64) {
        self.program.counts()
    }

    /// Whether the fast path pays: false once it gave up too many events to be worth trying.
    pub fn pays(&self) -> bool {
        self.program.pays()
    }

    /// On or turned off, with the events run and given up.
    pub fn usage(&self) -> FastPathUse {
        self.program.usage()
    }
}

/// One function of a script run on the engine's own functions only (no simulator helpers, no
/// memory, no follow-ups): a detection rule's `detect(event, history)`. What it cannot run, or
/// what would be an error, it gives up ([`Bail`]) for the interpreter to run the call; having
/// no effects, the call is simply made again there.
pub struct FastFunction {
    program: Program,
    index: usize,
}

impl FastFunction {
    /// Compiles the script `ast`'s function `name` with `arity` parameters, and the functions it
    /// calls, with Rhai's functions only; `None` when that function cannot be compiled.
    pub fn build(ast: &AST, name: &str, arity: usize) -> Option<Self> {
        let compiled = Compiled::from_ast(ast, &[], Vocabulary::Rhai);
        let index = compiled.runnable(name, arity)?;
        // Never drawn from nor written: a script compiled with `Vocabulary::Rhai` calls no
        // helper; the run takes them all the same.
        let rng = crate::rng::stream_rng(0, crate::rng::Stream::Script);
        let helpers = natives::Helpers {
            rng: Arc::new(std::sync::Mutex::new(rng)),
            memory: Memory::default(),
            follow_ups: FollowUps::default(),
        };
        Some(Self {
            program: Program::new(compiled, helpers, Arc::default()),
            index,
        })
    }

    /// Calls the function with `args`: its value, or [`Bail`] for the interpreter to call it.
    pub fn call<const N: usize>(&mut self, args: [Dynamic; N]) -> Result<Dynamic, Bail> {
        self.program.run(self.index, args)
    }

    /// Whether it pays: false once it gave up too many calls to be worth trying.
    pub fn pays(&self) -> bool {
        self.program.pays()
    }

    /// On or turned off, with the calls run and given up.
    pub fn usage(&self) -> FastPathUse {
        self.program.usage()
    }
}

#[cfg(test)]
mod tests;
