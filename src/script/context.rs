//! `ctx`, the argument of `setup(ctx)` and `event(ctx)`.
//!
//! A native type with read-only properties rather than a Rhai map: building a map per event would
//! allocate, and copying the scenario state into it would cost in proportion to the pools. The
//! state and the settings are *frozen* (see `state/mod.rs`), so handing them to the script is a
//! reference-count increment whatever their size.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rhai::{Dynamic, Engine, INT};

/// What the engine tells a script function about the event being made.
#[derive(Debug, Clone)]
pub struct EventContext {
    /// Event time, milliseconds since the Unix epoch (UTC).
    pub time: INT,
    /// Sequence number of the arrival, from 0, continuing from backfill into live.
    pub seq: INT,
    /// What `setup` returned (`()` while `setup` itself runs), shared with the scenario.
    pub state: Arc<Dynamic>,
    /// Every resolved setting, by name, shared with the scenario.
    pub settings: Arc<Dynamic>,
}

impl EventContext {
    /// The `ctx` of the event at `time` numbered `seq`, sharing `state` and `settings`.
    pub fn new(time: INT, seq: INT, state: &Arc<Dynamic>, settings: &Arc<Dynamic>) -> Self {
        Self {
            time,
            seq,
            state: state.clone(),
            settings: settings.clone(),
        }
    }
}

/// Registers the `ctx` type and its properties. Reading `ctx.seq` raises `seq_read`: an event
/// made ahead of its turn, by another worker, may have been given a number that later changed
/// (a follow-up fell due before it), and only an event that read the number must be made again.
pub fn register(engine: &mut Engine, seq_read: &Arc<AtomicBool>) {
    let flag = seq_read.clone();
    engine
        .register_type_with_name::<EventContext>("Context")
        .register_get("time", |ctx: &mut EventContext| ctx.time)
        .register_get("seq", move |ctx: &mut EventContext| {
            flag.store(true, Ordering::Relaxed);
            ctx.seq
        })
        // Read-only, always: a copy of the context (`ctx` handed to a function) carries
        // read-write copies of its fields.
        .register_get("state", |ctx: &mut EventContext| {
            (*ctx.state).clone().into_read_only()
        })
        .register_get("settings", |ctx: &mut EventContext| {
            (*ctx.settings).clone().into_read_only()
        });
}
