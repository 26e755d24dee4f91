//! Follow-up events a script schedules: `ctx.follow_up(delay_ms, "function", data)`.
//!
//! At `ctx.time + delay_ms` the engine calls the script's `function(ctx, data)`, which returns
//! events like `event(ctx)` does (a map, an array of maps, or `()`): a retry 30 s after a
//! decline, the next payment of a card-testing run. The timeline emits them in time order with
//! the Poisson arrivals, in real and in virtual time.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, Position, FLOAT, INT};

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
    /// The script's functions a follow-up can call (`fn name(ctx, data)`), known once the
    /// script is compiled: a call scheduled under another name fails where it is scheduled, with
    /// its line, not minutes later when it falls due.
    targets: Arc<OnceLock<BTreeSet<String>>>,
}

impl FollowUps {
    /// Takes everything scheduled since the last take.
    pub fn take(&self) -> Vec<Scheduled> {
        std::mem::take(&mut *crate::sync::lock(&self.queue))
    }

    /// How many calls are scheduled and not yet taken.
    pub(super) fn len(&self) -> usize {
        crate::sync::lock(&self.queue).len()
    }

    /// Drops the calls scheduled after the first `len`: those of an event the fast path gave
    /// up, which the interpreter schedules again.
    pub(super) fn truncate(&self, len: usize) {
        crate::sync::lock(&self.queue).truncate(len);
    }

    /// Names the functions a follow-up may call, once the script is compiled.
    pub fn set_targets(&self, targets: BTreeSet<String>) {
        let _ = self.targets.set(targets);
    }

    pub(super) fn schedule(
        &self,
        ctx: &EventContext,
        delay_ms: INT,
        function: ImmutableString,
        data: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        if delay_ms < 0 {
            return Err(format!("follow_up: delay {delay_ms} ms is negative").into());
        }
        if let Some(targets) = self.targets.get() {
            if !targets.contains(function.as_str()) {
                return Err(unknown_target(&function, targets).into());
            }
        }
        crate::sync::lock(&self.queue).push(Scheduled {
            at_ms: ctx.time.saturating_add(delay_ms),
            function,
            data: data.flatten(),
            id: 0,
        });
        Ok(())
    }
}

/// What to say of a follow-up scheduled under a name no `fn name(ctx, data)` has.
pub fn unknown_target(name: &str, targets: &BTreeSet<String>) -> String {
    let nearest = super::error::nearest(name, targets.iter().map(String::as_str))
        .map(|target| format!("; did you mean `{target}`?"))
        .unwrap_or_default();
    format!("follow_up: the script has no function `{name}(ctx, data)` to call{nearest}")
}

/// Registers `ctx.follow_up(delay_ms, function, data)`, the delay an integer or a float.
pub fn register(engine: &mut Engine, follow_ups: &FollowUps) {
    let this = follow_ups.clone();
    engine.register_fn(
        "follow_up",
        move |ctx: &mut EventContext, delay_ms: INT, function: ImmutableString, data: Dynamic| {
            this.schedule(ctx, delay_ms, function, data)
        },
    );
    let this = follow_ups.clone();
    engine.register_fn(
        "follow_up",
        move |ctx: &mut EventContext,
              delay_ms: FLOAT,
              function: ImmutableString,
              data: Dynamic|
              -> Result<(), Box<EvalAltResult>> {
            if !delay_ms.is_finite() {
                return Err(format!("follow_up: delay {delay_ms} ms is not a number").into());
            }
            this.schedule(ctx, delay_ms.round() as INT, function, data)
        },
    );
}

/// The follow-ups `text` schedules under a literal name (`ctx.follow_up(d, "retry", x)`), each
/// with the position of the name: these can be checked when the script is loaded.
pub fn literal_targets(text: &str) -> Vec<(String, Position)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("follow_up(") {
            if let Some((name, offset)) = second_argument_literal(&code[at + "follow_up(".len()..])
            {
                let column = at + "follow_up(".len() + offset + 1;
                found.push((name, Position::new(number as u16 + 1, column as u16)));
            }
        }
    }
    found
}

/// The second argument of a call whose arguments start `args`, when it is a string literal
/// on the same line: its text and its offset in `args`.
fn second_argument_literal(args: &str) -> Option<(String, usize)> {
    let mut depth = 0usize;
    let mut in_string = false;
    for (i, c) in args.char_indices() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => return None,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                let rest = &args[i + 1..];
                let start = i + 1 + (rest.len() - rest.trim_start().len());
                let literal = args[start..].strip_prefix('"')?;
                let end = literal.find('"')?;
                return Some((literal[..end].to_string(), start));
            }
            _ => {}
        }
    }
    None
}
