//! Running compiled [`Node`]s: one frame of slots per call, values as Rhai's `Dynamic`.

use std::sync::atomic::AtomicBool;

use rhai::{Array, Dynamic, ImmutableString, Map, INT};

use super::super::api::SharedRng;
use super::super::context::EventContext;
use super::super::limits;
use super::super::pool::Pool;
use super::super::state::StateMap;
use super::compile::{Compiled, Node};
use super::natives;
use super::Bail;

/// Why a node's evaluation stopped early.
enum Flow {
    /// Give the event up to the interpreter.
    Bail,
    /// `return value`: ends the function.
    Return(Dynamic),
}

impl From<Bail> for Flow {
    fn from(_: Bail) -> Self {
        Flow::Bail
    }
}

type Step = Result<Dynamic, Flow>;

/// One event's run: the budget it has and where it draws from.
pub struct Run<'a> {
    compiled: &'a Compiled,
    rng: &'a SharedRng,
    seq_read: &'a AtomicBool,
    /// Calls in progress.
    depth: usize,
    /// Calls and operators so far, against the sandbox's per-call budget.
    operations: u64,
}

impl<'a> Run<'a> {
    /// A run of `compiled` drawing from `rng`, raising `seq_read` when `ctx.seq` is read.
    pub fn new(compiled: &'a Compiled, rng: &'a SharedRng, seq_read: &'a AtomicBool) -> Self {
        Self {
            compiled,
            rng,
            seq_read,
            depth: 0,
            operations: 0,
        }
    }

    /// Calls compiled function `index` with `args`.
    pub fn call(&mut self, index: usize, mut args: Vec<Dynamic>) -> Result<Dynamic, Bail> {
        let function = &self.compiled.functions[index];
        let body = function.body.as_ref().ok_or(Bail)?;
        // The interpreter reports a runaway recursion, with its limit and position.
        if self.depth >= limits::CALL_DEPTH {
            return Err(Bail);
        }
        self.depth += 1;
        args.resize(function.slots.max(args.len()), Dynamic::UNIT);
        let result = self.eval(body, &mut args);
        self.depth -= 1;
        match result {
            Ok(value) | Err(Flow::Return(value)) => Ok(value),
            Err(Flow::Bail) => Err(Bail),
        }
    }

    fn count(&mut self) -> Result<(), Flow> {
        self.operations += 1;
        if self.operations > limits::CALL_OPERATIONS {
            return Err(Flow::Bail);
        }
        Ok(())
    }

    fn eval_all(&mut self, nodes: &[Node], frame: &mut [Dynamic]) -> Result<Vec<Dynamic>, Flow> {
        nodes.iter().map(|n| self.eval(n, frame)).collect()
    }

    fn eval(&mut self, node: &Node, frame: &mut [Dynamic]) -> Step {
        match node {
            Node::Const(value) => Ok(value.clone()),
            Node::Var(slot) => Ok(frame[*slot].clone()),
            Node::Let(slot, value) => {
                frame[*slot] = self.eval(value, frame)?.flatten();
                Ok(Dynamic::UNIT)
            }
            Node::Block(statements) => {
                let mut value = Dynamic::UNIT;
                for statement in statements {
                    value = self.eval(statement, frame)?;
                }
                Ok(value)
            }
            Node::If(condition, then, otherwise) => {
                let condition = self
                    .eval(condition, frame)?
                    .as_bool()
                    .map_err(|_| Flow::Bail)?;
                self.eval(if condition { then } else { otherwise }, frame)
            }
            Node::Return(value) => Err(Flow::Return(self.eval(value, frame)?)),
            Node::Array(items) => {
                let items: Array = self
                    .eval_all(items, frame)?
                    .into_iter()
                    .map(Dynamic::flatten)
                    .collect();
                Ok(Dynamic::from_array(items))
            }
            Node::Map(template, entries) => {
                let mut map = template.clone();
                for (key, value) in entries {
                    let value = self.eval(value, frame)?.flatten();
                    if let Some(slot) = map.get_mut(key) {
                        *slot = value;
                    }
                }
                Ok(Dynamic::from_map(map))
            }
            Node::Interpolated(parts) => {
                let mut text = String::new();
                for part in parts {
                    append(&mut text, &self.eval(part, frame)?)?;
                    if text.len() > limits::STRING_SIZE {
                        return Err(Flow::Bail);
                    }
                }
                Ok(Dynamic::from(text))
            }
            Node::Property(base, name) => {
                let base = self.eval(base, frame)?;
                self.property(&base, name)
            }
            Node::Index(base, index) => {
                let base = self.eval(base, frame)?;
                let index = self.eval(index, frame)?;
                index_of(&base, &index)
            }
            Node::Native(native, args) => {
                self.count()?;
                let mut args = self.eval_all(args, frame)?;
                Ok(natives::call(*native, &mut args, self.rng)?)
            }
            Node::Script(index, args) => {
                self.count()?;
                let args = self.eval_all(args, frame)?;
                Ok(self.call(*index, args)?)
            }
            Node::And(operands) => {
                for operand in operands {
                    if !self
                        .eval(operand, frame)?
                        .as_bool()
                        .map_err(|_| Flow::Bail)?
                    {
                        return Ok(Dynamic::FALSE);
                    }
                }
                Ok(Dynamic::TRUE)
            }
            Node::Or(operands) => {
                for operand in operands {
                    if self
                        .eval(operand, frame)?
                        .as_bool()
                        .map_err(|_| Flow::Bail)?
                    {
                        return Ok(Dynamic::TRUE);
                    }
                }
                Ok(Dynamic::FALSE)
            }
            Node::Coalesce(operands) => {
                let mut value = Dynamic::UNIT;
                for operand in operands {
                    value = self.eval(operand, frame)?;
                    if !value.is_unit() {
                        break;
                    }
                }
                Ok(value)
            }
        }
    }

    /// `base.name` on a map, a map of the state or `ctx`.
    fn property(&self, base: &Dynamic, name: &ImmutableString) -> Step {
        if let Some(ctx) = base.read_lock::<EventContext>() {
            return match name.as_str() {
                "time" => Ok(Dynamic::from_int(ctx.time)),
                "seq" => {
                    natives::seq_read(self.seq_read);
                    Ok(Dynamic::from_int(ctx.seq))
                }
                "state" => Ok(ctx.state.clone().into_read_only()),
                "settings" => Ok(ctx.settings.clone().into_read_only()),
                _ => Err(Flow::Bail),
            };
        }
        if let Some(map) = base.read_lock::<StateMap>() {
            return Ok(map.get(name));
        }
        if let Some(map) = base.read_lock::<Map>() {
            return Ok(map.get(name.as_str()).cloned().unwrap_or(Dynamic::UNIT));
        }
        Err(Flow::Bail)
    }
}

/// `base[index]`: a map (of the state or not) by key, an array or a pool by position (a
/// negative one from the end).
fn index_of(base: &Dynamic, index: &Dynamic) -> Step {
    if let Some(key) = index.read_lock::<ImmutableString>() {
        if let Some(map) = base.read_lock::<StateMap>() {
            return Ok(map.get(&key));
        }
        if let Some(map) = base.read_lock::<Map>() {
            return Ok(map.get(key.as_str()).cloned().unwrap_or(Dynamic::UNIT));
        }
        return Err(Flow::Bail);
    }
    let position = index.as_int().map_err(|_| Flow::Bail)?;
    if let Some(pool) = base.read_lock::<Pool>() {
        let at = position_in(position, pool.len()).ok_or(Flow::Bail)?;
        return Ok(super::super::pool::read(&pool.items()[at]));
    }
    if let Some(array) = base.read_lock::<Array>() {
        let at = position_in(position, array.len()).ok_or(Flow::Bail)?;
        return Ok(array[at].clone());
    }
    Err(Flow::Bail)
}

/// Where `index` points in a sequence of `len`; a negative index counts from the end.
fn position_in(index: INT, len: usize) -> Option<usize> {
    let at = if index < 0 {
        index.checked_add(len as INT)?
    } else {
        index
    };
    usize::try_from(at).ok().filter(|&i| i < len)
}

/// Appends a part of an interpolated string, as Rhai writes it, for the types the fast path
/// knows.
fn append(text: &mut String, part: &Dynamic) -> Result<(), Flow> {
    if let Some(s) = part.read_lock::<ImmutableString>() {
        text.push_str(&s);
    } else if let Ok(i) = part.as_int() {
        text.push_str(&i.to_string());
    } else if let Ok(c) = part.as_char() {
        text.push(c);
    } else if let Ok(b) = part.as_bool() {
        text.push_str(if b { "true" } else { "false" });
    } else {
        return Err(Flow::Bail);
    }
    Ok(())
}
