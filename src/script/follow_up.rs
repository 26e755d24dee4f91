//! Follow-up events a script schedules: `ctx.follow_up(delay_ms, "function", data)`.
//!
//! At `ctx.time + delay_ms` the engine calls the script's `function(ctx, data)`, which returns
//! events like `event(ctx)` does (a map, an array of maps, or `()`): a retry 30 s after a
//! decline, the next payment of a card-testing run. The timeline emits them in time order with
//! the Poisson arrivals, in real and in virtual time.

use std::sync::{Arc, Mutex};

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, INT};

use super::context::EventContext;

/// One scheduled call.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// When, in milliseconds since the epoch.
    pub at_ms: INT,
    /// The script function to call.
    pub function: ImmutableString,
    /// What to pass it.
    pub data: Dynamic,
    /// The call's identity, which names its random stream: given by the pipeline, derived from
    /// the event that scheduled it (see [`crate::rng::follow_up_id`]).
    pub id: u64,
}

/// Calls scheduled by the script and not yet taken by the pipeline.
#[derive(Debug, Clone, Default)]
pub struct FollowUps {
    queue: Arc<Mutex<Vec<Scheduled>>>,
}

impl FollowUps {
    /// Takes everything scheduled since the last take.
    pub fn take(&self) -> Vec<Scheduled> {
        std::mem::take(&mut *crate::sync::lock(&self.queue))
    }
}

/// Registers `ctx.follow_up(delay_ms, function, data)`.
pub fn register(engine: &mut Engine, follow_ups: &FollowUps) {
    let queue = follow_ups.queue.clone();
    engine.register_fn(
        "follow_up",
        move |ctx: &mut EventContext,
              delay_ms: INT,
              function: ImmutableString,
              data: Dynamic|
              -> Result<(), Box<EvalAltResult>> {
            if delay_ms < 0 {
                return Err(format!("follow_up: delay {delay_ms} ms is negative").into());
            }
            crate::sync::lock(&queue).push(Scheduled {
                at_ms: ctx.time.saturating_add(delay_ms),
                function,
                data: data.flatten(),
                id: 0,
            });
            Ok(())
        },
    );
}
