//! Running compiled [`Node`]s: one frame of slots per call, values as Rhai's `Dynamic`.

use std::borrow::Cow;
use std::sync::atomic::AtomicBool;

use rhai::{Array, Dynamic, ImmutableString, Map, INT};

use super::super::context::EventContext;
use super::super::event_view::EventView;
use super::super::limits;
use super::super::pool::Pool;
use super::super::state::{HashedKey, StateMap};
use super::compile::{is_pure_chain, switch_hash, Compiled, Each, Node};
use super::natives::{self, Generator, Helpers, Mutator, Native};
use super::sizes::{array_within_limits, KnownSizes, Sizes};
use super::Bail;
use crate::sync::lock;

/// The bytes an interpolated text has room for before it grows.
const INTERPOLATED_ROOM: usize = 32;

/// How deep script calls may nest on the fast path, well within the sandbox's limit.
const MAX_DEPTH: usize = 16;

/// Why a node's evaluation stopped early.
enum Flow {
    /// Give the event up to the interpreter.
    Bail,
    /// `return value`: ends the function.
    Return(Dynamic),
    /// `break`: ends the loop.
    Break,
    /// `continue`: ends the iteration.
    Continue,
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
    helpers: &'a Helpers,
    /// The helpers' generator, locked while the run lasts (see [`Generator`]).
    rng: Generator<'a>,
    seq_read: &'a AtomicBool,
    /// Calls in progress.
    depth: usize,
    /// Calls and operators so far, against `budget`.
    operations: u64,
    /// The operations the sandbox allows the call: an event's, or `setup`'s.
    budget: u64,
    /// The totals of the variables grown in place (`push`, `m[k] = v`), so the limits are
    /// checked on what each change adds.
    known: KnownSizes,
    /// Frames of calls that ended, emptied, for the next calls: a call's frame is then made
    /// without an allocation (see [`Frames`]).
    frames: Frames,
    /// Events' maps given back once encoded, for map literals with the same keys.
    spares: SpareMaps,
}

/// Emptied frames kept for the next calls, between events too: a script function's call (or a
/// rule's, or `map`'s closure's) allocated its frame and freed it after, about 150 instructions
/// a call (valgrind).
#[derive(Debug, Default)]
pub struct Frames(Vec<Vec<Dynamic>>);

impl Frames {
    /// An empty frame with room for `slots` values.
    fn take(&mut self, slots: usize) -> Vec<Dynamic> {
        let mut frame = self.0.pop().unwrap_or_default();
        frame.reserve(slots);
        frame
    }

    /// `frame` emptied, kept for a later call; as many as calls can nest, at most.
    #[inline(always)]
    fn give_back(&mut self, mut frame: Vec<Dynamic>) {
        // Emptied value by value: dropping a `Dynamic` is an out-of-line call whatever it holds,
        // and most slots hold numbers, booleans or `()` (see `discard`). Darooghe 54,026 ->
        // 53,886 instructions an event, the seed port 35,120 -> 35,001; `drain` cost more.
        while let Some(value) = frame.pop() {
            discard(value);
        }
        if self.0.len() <= MAX_DEPTH {
            self.0.push(frame);
        }
    }

    /// A frame holding `args`, with room for `slots` values.
    pub fn with_args(
        &mut self,
        slots: usize,
        args: impl IntoIterator<Item = Dynamic>,
    ) -> Vec<Dynamic> {
        let mut frame = self.take(slots);
        frame.extend(args);
        frame
    }
}

/// Maps of events already encoded, given back to be filled again: an event's map literal
/// cloned its template (a `BTreeMap` of 17 keys is three nodes, each key copied), and the map
/// was freed node by node once encoded. A map is taken only by a literal with exactly its keys,
/// and each of its values is then replaced, so what the literal gives is the same map.
#[derive(Debug, Default)]
pub struct SpareMaps(Vec<Map>);

/// The most spare maps kept: an arrival makes a few events at most.
const MAX_SPARE_MAPS: usize = 4;

impl SpareMaps {
    /// Keeps `map` for a later literal with its keys, if there is room.
    pub fn give(&mut self, map: Map) {
        if self.0.len() < MAX_SPARE_MAPS {
            self.0.push(map);
        }
    }

    /// A kept map with exactly the keys of `template`, its values still the old ones.
    pub(super) fn take_like(&mut self, template: &Map) -> Option<Map> {
        let same_keys = |map: &Map| {
            map.len() == template.len() && map.keys().zip(template.keys()).all(|(a, b)| a == b)
        };
        let at = self.0.iter().position(same_keys)?;
        Some(self.0.swap_remove(at))
    }
}

impl<'a> Run<'a> {
    /// A run of `compiled` with `helpers`, raising `seq_read` when `ctx.seq` is read.
    pub fn new(compiled: &'a Compiled, helpers: &'a Helpers, seq_read: &'a AtomicBool) -> Self {
        Self {
            compiled,
            helpers,
            rng: Generator::new(lock(&helpers.rng)),
            seq_read,
            depth: 0,
            operations: 0,
            budget: limits::CALL_OPERATIONS,
            known: KnownSizes::default(),
            frames: Frames::default(),
            spares: SpareMaps::default(),
        }
    }

    /// The same run making its frames from `frames` (kept from earlier runs).
    pub fn with_frames(mut self, frames: Frames) -> Self {
        self.frames = frames;
        self
    }

    /// The same run filling its map literals into `spares` where their keys match.
    pub fn with_spares(mut self, spares: SpareMaps) -> Self {
        self.spares = spares;
        self
    }

    /// The frames and spare maps it kept, for the next run.
    pub fn into_kept(self) -> (Frames, SpareMaps) {
        (self.frames, self.spares)
    }

    /// The same run with `budget` operations allowed instead of an event's.
    pub fn with_budget(mut self, budget: u64) -> Self {
        self.budget = budget;
        self
    }

    /// Calls compiled function `index` with `args`.
    pub fn call(&mut self, index: usize, args: Vec<Dynamic>) -> Result<Dynamic, Bail> {
        let (result, frame) = self.call_keeping(index, args);
        self.frames.give_back(frame);
        result
    }

    /// [`Self::call`], giving back what the first parameter holds when the call ends as well
    /// (`()` for a function without parameters).
    pub fn call_keeping_first(
        &mut self,
        index: usize,
        args: Vec<Dynamic>,
    ) -> (Result<Dynamic, Bail>, Dynamic) {
        let (result, mut frame) = self.call_keeping(index, args);
        let first = frame.first_mut().map(std::mem::take).unwrap_or_default();
        self.frames.give_back(frame);
        (result, first)
    }

    /// [`Self::call`], giving the call's frame back to the caller rather than to the kept
    /// frames: the caller takes its lent values out first.
    #[inline(always)]
    fn call_keeping(
        &mut self,
        index: usize,
        mut args: Vec<Dynamic>,
    ) -> (Result<Dynamic, Bail>, Vec<Dynamic>) {
        let function = &self.compiled.functions[index];
        let Some(body) = function.body.as_ref() else {
            return (Err(Bail), args);
        };
        // Deeper calls are the interpreter's: it reports a runaway recursion, with its limit
        // and position, and a thread's stack holds its 64 levels where it might not hold ours.
        if self.depth >= MAX_DEPTH {
            return (Err(Bail), args);
        }
        self.depth += 1;
        // Made, not cloned: a clone of `()` is an out-of-line call a slot.
        // Pushed one by one: `resize_with` was left out of line in `lending`'s copy.
        while args.len() < function.slots {
            args.push(Dynamic::UNIT);
        }
        let result = self.eval(body, &mut args);
        self.known.leave(self.depth);
        self.depth -= 1;
        let result = match result {
            Ok(value) | Err(Flow::Return(value)) => Ok(value),
            Err(Flow::Bail | Flow::Break | Flow::Continue) => Err(Bail),
        };
        (result, args)
    }

    /// [`Node::Lending`]: calls script function `index` with `args`, the variables lent to it
    /// ([`Node::Lent`]) moved into its frame once every argument is read, and moved back once
    /// it ends, however it ends. Out of [`Self::eval`], which stays small for other calls.
    #[inline(never)]
    fn lending(&mut self, index: usize, args: &[Node], frame: &mut [Dynamic]) -> Step {
        let slots = self.compiled.functions[index].slots.max(args.len());
        let mut callee = self.frames.take(slots);
        for arg in args {
            callee.push(match arg {
                Node::Lent(_) => {
                    self.count()?;
                    Dynamic::UNIT
                }
                _ => self.operand(arg, frame)?,
            });
        }
        // Swapped, not assigned: an assignment drops the `()` it replaces, an out-of-line call.
        let swap_lent = |callee: &mut [Dynamic], frame: &mut [Dynamic]| {
            for (i, arg) in args.iter().enumerate() {
                if let Node::Lent(slot) = *arg {
                    std::mem::swap(&mut callee[i], &mut frame[slot]);
                }
            }
        };
        swap_lent(&mut callee, frame);
        let (result, mut callee) = self.call_keeping(index, callee);
        swap_lent(&mut callee, frame);
        self.frames.give_back(callee);
        Ok(result?)
    }

    fn count(&mut self) -> Result<(), Flow> {
        self.operations += 1;
        if self.operations > self.budget {
            return Err(Flow::Bail);
        }
        Ok(())
    }

    /// A node's value, a variable, a constant or a variable's property read here rather than
    /// by a call of [`Self::eval`], whose entry and exit cost more than the read. Used where
    /// most of them are, a script function's arguments and a map literal's values: for
    /// variables and constants, darooghe 55,463 -> 54,968 instructions an event, the seed port
    /// 35,611 -> 35,569; for properties, 52,820 -> 52,569 and 34,578 -> 34,467. At `let` and
    /// conditions too, `eval` grew: darooghe 55,255, the seed port 35,721.
    #[inline(always)]
    fn operand(&mut self, node: &Node, frame: &mut [Dynamic]) -> Step {
        match node {
            Node::Var(slot) => {
                self.count()?;
                Ok(frame[*slot].clone())
            }
            Node::Const(value) => {
                self.count()?;
                Ok(value.clone())
            }
            Node::Last(slot) => {
                self.count()?;
                Ok(self.last_read(*slot, frame))
            }
            Node::Property(base, name, None) => match **base {
                Node::Var(slot) => {
                    self.count()?;
                    self.property(&frame[slot], name)
                }
                _ => self.eval(node, frame),
            },
            _ => self.eval(node, frame),
        }
    }

    /// A variable's value read for the last time ([`Node::Last`]): moved out of the frame, or
    /// copied if it is read-only, since a copy is read-write as the interpreter's variable is.
    /// (Asking first whether the value owns anything, to copy a number without asking whether
    /// it is read-only, cost darooghe more than it saved the seed port.)
    #[inline(always)]
    fn last_read(&mut self, slot: usize, frame: &mut [Dynamic]) -> Dynamic {
        let value = &mut frame[slot];
        if value.is_read_only() {
            return value.clone();
        }
        self.known.forget(self.depth, slot);
        std::mem::take(value)
    }

    fn eval_all(&mut self, nodes: &[Node], frame: &mut [Dynamic]) -> Result<Vec<Dynamic>, Flow> {
        nodes.iter().map(|n| self.eval(n, frame)).collect()
    }

    fn eval(&mut self, node: &Node, frame: &mut [Dynamic]) -> Step {
        // Every node counts, so the fast path never finishes what the interpreter, counting
        // its own way, would stop as too many operations: it gives up first.
        self.count()?;
        match node {
            Node::Const(value) => Ok(value.clone()),
            Node::Var(slot) => Ok(frame[*slot].clone()),
            Node::Take(slot) => {
                self.known.forget(self.depth, *slot);
                Ok(std::mem::take(&mut frame[*slot]))
            }
            Node::Last(slot) => Ok(self.last_read(*slot, frame)),
            // Only a script call's argument is lent, by `lending`; read anywhere else.
            Node::Lent(slot) => Ok(frame[*slot].clone()),
            Node::Let(slot, value) | Node::Assign(slot, value) => {
                let value = settled(self.eval(value, frame)?);
                self.known.forget(self.depth, *slot);
                discard(std::mem::replace(&mut frame[*slot], value));
                Ok(Dynamic::UNIT)
            }
            Node::Block(statements) => {
                let mut value = Dynamic::UNIT;
                for statement in statements {
                    let next = match statement {
                        // Bound here, not by a call of `eval`: a tenth of the nodes a darooghe
                        // event evaluates are `let`s, 54,968 -> 54,026 instructions an event
                        // (the seed port 35,569 -> 35,120).
                        Node::Let(slot, init) => {
                            self.count()?;
                            let init = settled(self.eval(init, frame)?);
                            self.known.forget(self.depth, *slot);
                            discard(std::mem::replace(&mut frame[*slot], init));
                            Dynamic::UNIT
                        }
                        other => self.eval(other, frame)?,
                    };
                    discard(std::mem::replace(&mut value, next));
                }
                Ok(value)
            }
            Node::If(condition, then, otherwise) => {
                let condition = truth(self.eval(condition, frame)?)?;
                self.eval(if condition { then } else { otherwise }, frame)
            }
            Node::Return(value) => Err(Flow::Return(self.eval(value, frame)?)),
            Node::Array(items) => {
                let items: Array = self.eval_all(items, frame)?.into_iter().map(flat).collect();
                Ok(Dynamic::from_array(items))
            }
            Node::Map(template, entries, order) => {
                let mut values = Vec::with_capacity(entries.len());
                for value in entries {
                    values.push(flat(self.operand(value, frame)?));
                }
                // The template's slots in key order, filled without a look-up each. What is
                // left (the template's `()`s, and the `()`s the values taken left) is discarded.
                let mut map = self
                    .spares
                    .take_like(template)
                    .unwrap_or_else(|| template.clone());
                for (slot, &entry) in map.values_mut().zip(order) {
                    discard(std::mem::replace(slot, std::mem::take(&mut values[entry])));
                }
                values.into_iter().for_each(discard);
                Ok(Dynamic::from_map(map))
            }
            Node::Interpolated(parts) => {
                // Room for most texts made so (a memory key, an id) at once: grown from empty,
                // the text was reallocated once a part or two in.
                let mut text = String::with_capacity(INTERPOLATED_ROOM);
                for part in parts {
                    append(&mut text, &self.eval(part, frame)?)?;
                    if text.len() > limits::STRING_SIZE {
                        return Err(Flow::Bail);
                    }
                }
                Ok(Dynamic::from(text))
            }
            Node::Property(base, name, folded) => {
                match folded.as_deref().and_then(|folded| folded.entry(frame)) {
                    // As the state map would give it (see `StateMap::get`).
                    Some(entry) => Ok(super::super::pool::read(entry)),
                    // A variable's property (`merchant.category`), read without the closures
                    // that read a longer chain in place.
                    None => match **base {
                        Node::Var(slot) => self.property(&frame[slot], name),
                        _ => self.property_of(base, name, frame),
                    },
                }
            }
            Node::Index(base, index) => {
                if let Node::Var(_) | Node::Const(_) = **base {
                    // Borrowed after the index: reading it has no effect.
                    let index = self.eval(index, frame)?;
                    let base = self.value(base, frame)?;
                    return index_of(&base, &index);
                }
                if is_pure_chain(base) {
                    // Read in place after the index, for the same reason: the table at the end
                    // of `ctx.state.categories[id]` is not copied for one look-up.
                    let index = self.eval(index, frame)?;
                    return self.in_place(base, frame, &mut |_, base| index_of(base, &index));
                }
                let base = match &**base {
                    Node::Property(inner, name, _) => self.property_of(inner, name, frame)?,
                    other => self.eval(other, frame)?,
                };
                let index = self.eval(index, frame)?;
                index_of(&base, &index)
            }
            Node::Native(native, args) => self.native(*native, args, frame),
            Node::NativeOnChain(native, args, chain) => {
                self.native_on_chain(*native, args, *chain, frame)
            }
            Node::Script(index, args) => {
                // The callee's frame, its arguments first, made at its size at once.
                let slots = self.compiled.functions[*index].slots.max(args.len());
                let mut callee = self.frames.take(slots);
                for arg in args {
                    callee.push(self.operand(arg, frame)?);
                }
                Ok(self.call(*index, callee)?)
            }
            Node::Lending(index, args) => self.lending(*index, args, frame),
            Node::And(operands) => {
                for operand in operands {
                    if !truth(self.eval(operand, frame)?)? {
                        return Ok(Dynamic::FALSE);
                    }
                }
                Ok(Dynamic::TRUE)
            }
            Node::Or(operands) => {
                for operand in operands {
                    if truth(self.eval(operand, frame)?)? {
                        return Ok(Dynamic::TRUE);
                    }
                }
                Ok(Dynamic::FALSE)
            }
            Node::SetProperty(slot, name, value) => {
                let value = flat(self.eval(value, frame)?);
                // A constant, or anything but a plain map, is the interpreter's to refuse or set.
                if frame[*slot].is_read_only() {
                    return Err(Flow::Bail);
                }
                let mut map = frame[*slot].write_lock::<Map>().ok_or(Flow::Bail)?;
                if map.len() >= limits::MAP_SIZE && !map.contains_key(name.as_str()) {
                    return Err(Flow::Bail);
                }
                map.insert(name.as_str().into(), value);
                self.known.forget(self.depth, *slot);
                Ok(Dynamic::UNIT)
            }
            Node::SetIndex(slot, index, value) => self.set_index(*slot, index, value, frame),
            Node::Mutate(slot, None, Mutator::Push, args) if args.len() == 1 => {
                let item = flat(self.eval(&args[0], frame)?);
                self.push(*slot, item, frame)
            }
            Node::Mutate(slot, key, mutator, args) => {
                let args = self.eval_all(args, frame)?;
                let target = &mut frame[*slot];
                // A constant, or anything but a plain map, is the interpreter's to refuse.
                if target.is_read_only() {
                    return Err(Flow::Bail);
                }
                let value = match key {
                    None => mutator.apply(target, args),
                    Some(key) => {
                        // A field of the variable changed: its totals are walked anew.
                        self.known.forget(self.depth, *slot);
                        let mut map = target.write_lock::<Map>().ok_or(Flow::Bail)?;
                        let field = map.get_mut(key.as_str()).ok_or(Flow::Bail)?;
                        mutator.apply(field, args)
                    }
                };
                value.ok_or(Flow::Bail)
            }
            Node::PickWeighted(table) => Ok(Dynamic::from(table.pick(&mut self.rng.borrow_mut()))),
            Node::Each(each, items, function, captured) => {
                self.each(*each, items, *function, captured, frame)
            }
            Node::ForEach(item, counter, items, body) => {
                let items = self.eval(items, frame)?;
                // A constant range (`0..100`) reaches here as a value, made once by Rhai.
                if let Some(range) = range_of(&items)? {
                    return self.count_loop(*item, *counter, range, body, frame);
                }
                let values = items_of(&items)?;
                for (i, value) in values.into_iter().enumerate() {
                    self.known.forget(self.depth, *item);
                    frame[*item] = value;
                    if self.iteration(*counter, i, body, frame)? {
                        break;
                    }
                }
                Ok(Dynamic::UNIT)
            }
            Node::ForRange(item, counter, bounds, inclusive, body) => {
                let lo = self
                    .eval(&bounds.0, frame)?
                    .as_int()
                    .map_err(|_| Flow::Bail)?;
                let hi = self
                    .eval(&bounds.1, frame)?
                    .as_int()
                    .map_err(|_| Flow::Bail)?;
                let hi = if *inclusive {
                    hi.checked_add(1).ok_or(Flow::Bail)?
                } else {
                    hi
                };
                self.count_loop(*item, *counter, lo..hi, body, frame)
            }
            Node::While(condition, body) => {
                while truth(self.eval(condition, frame)?)? {
                    if self.iteration(None, 0, body, frame)? {
                        break;
                    }
                }
                Ok(Dynamic::UNIT)
            }
            Node::Throw => Err(Flow::Bail),
            Node::Break => Err(Flow::Break),
            Node::Continue => Err(Flow::Continue),
            Node::Switch(value, cases, default) => {
                let value = self.eval(value, frame)?;
                // Rhai looks a value up by its hash; the fast path takes the plain kinds only.
                if !(value.is_string() || value.is_int() || value.is_bool() || value.is_char()) {
                    return Err(Flow::Bail);
                }
                let chosen = cases.get(switch_hash(&value)).unwrap_or(default);
                self.eval(chosen, frame)
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

    /// `name.push(item)` on a variable holding an array, checked against the limits by what
    /// the item adds to the array's totals.
    fn push(&mut self, slot: usize, item: Dynamic, frame: &mut [Dynamic]) -> Step {
        let target = &mut frame[slot];
        // A constant, or anything but a plain array, is the interpreter's to refuse.
        if target.is_read_only() {
            return Err(Flow::Bail);
        }
        let mut array = target.write_lock::<Array>().ok_or(Flow::Bail)?;
        let before = self
            .known
            .get(self.depth, slot)
            .unwrap_or_else(|| Sizes::of_array(&array));
        let after = before.changed(Sizes::as_item(&item), Sizes::default());
        if !after.within_limits() {
            return Err(Flow::Bail);
        }
        array.push(item);
        self.known.set(self.depth, slot, after);
        Ok(Dynamic::UNIT)
    }

    /// `name[index] = value` on a variable holding a map (by key) or an array (by position, a
    /// negative one from the end), checked against the limits by what the change adds and takes
    /// away.
    fn set_index(
        &mut self,
        slot: usize,
        index: &Node,
        value: &Node,
        frame: &mut [Dynamic],
    ) -> Step {
        let value = flat(self.eval(value, frame)?);
        let index = self.eval(index, frame)?;
        let target = &mut frame[slot];
        // A constant, the state, or anything but a plain map or array is the interpreter's.
        if target.is_read_only() {
            return Err(Flow::Bail);
        }
        let known = self.known.get(self.depth, slot);
        let after = if target.is_map() {
            let mut map = target.write_lock::<Map>().ok_or(Flow::Bail)?;
            let key = index.read_lock::<ImmutableString>().ok_or(Flow::Bail)?;
            let before = known.unwrap_or_else(|| Sizes::of_map(&map));
            let removed = map
                .get(key.as_str())
                .map(Sizes::as_entry)
                .unwrap_or_default();
            let after = before.changed(Sizes::as_entry(&value), removed);
            if !after.within_limits() {
                return Err(Flow::Bail);
            }
            map.insert(key.as_str().into(), value);
            after
        } else if target.is_array() {
            let mut array = target.write_lock::<Array>().ok_or(Flow::Bail)?;
            let position = index.as_int().map_err(|_| Flow::Bail)?;
            let at = position_in(position, array.len()).ok_or(Flow::Bail)?;
            let before = known.unwrap_or_else(|| Sizes::of_array(&array));
            let after = before.changed(Sizes::as_item(&value), Sizes::as_item(&array[at]));
            if !after.within_limits() {
                return Err(Flow::Bail);
            }
            array[at] = value;
            after
        } else {
            return Err(Flow::Bail);
        };
        self.known.set(self.depth, slot, after);
        Ok(Dynamic::UNIT)
    }

    /// `items.map(closure)` or `items.filter(closure)`, on an array or a pool of the state.
    fn each(
        &mut self,
        each: Each,
        items: &Node,
        function: usize,
        captured: &[Node],
        frame: &mut [Dynamic],
    ) -> Step {
        let items = self.eval(items, frame)?;
        // The state's pools take `map` and `filter` in a variable's copy only: on the state
        // itself the interpreter refuses them. An array's are pure: a constant one takes them.
        if items.is_read_only() && !items.is_array() {
            return Err(Flow::Bail);
        }
        let captured = self.eval_all(captured, frame)?;
        // What the closure captured is shared with the enclosing function in Rhai: a closure
        // that changes it is the interpreter's.
        let written = &self.compiled.functions[function].written;
        if (0..captured.len()).any(|slot| written.contains(&slot)) {
            return Err(Flow::Bail);
        }
        let values = items_of(&items)?;
        let mut out = Array::with_capacity(values.len());
        let slots = self.compiled.functions[function].slots;
        for item in values {
            // `filter` keeps the item it passed: a copy for the call. `map` keeps the value.
            let kept = (each == Each::Filter).then(|| item.clone());
            let mut args = self.frames.with_args(slots, captured.iter().cloned());
            args.push(item);
            let value = self.call(function, args)?;
            match kept {
                None => out.push(value),
                // Rhai keeps an item when the closure says `true`; anything else is not kept.
                Some(item) => {
                    if value.as_bool().map_err(|_| Flow::Bail)? {
                        out.push(item);
                    }
                }
            }
        }
        if !array_within_limits(&out) {
            return Err(Flow::Bail);
        }
        Ok(Dynamic::from_array(out))
    }

    /// `for i, counter in range { body }`.
    fn count_loop(
        &mut self,
        item: usize,
        counter: Option<usize>,
        range: std::ops::Range<INT>,
        body: &Node,
        frame: &mut [Dynamic],
    ) -> Step {
        for (i, value) in range.enumerate() {
            self.known.forget(self.depth, item);
            frame[item] = Dynamic::from_int(value);
            if self.iteration(counter, i, body, frame)? {
                break;
            }
        }
        Ok(Dynamic::UNIT)
    }

    /// One iteration of a loop's body, counted against the operations budget; whether the loop
    /// ends (`break`).
    fn iteration(
        &mut self,
        counter: Option<usize>,
        index: usize,
        body: &Node,
        frame: &mut [Dynamic],
    ) -> Result<bool, Flow> {
        self.count()?;
        if let Some(counter) = counter {
            self.known.forget(self.depth, counter);
            frame[counter] = Dynamic::from_int(index as INT);
        }
        match self.eval(body, frame) {
            Ok(_) | Err(Flow::Continue) => Ok(false),
            Err(Flow::Break) => Ok(true),
            Err(other) => Err(other),
        }
    }

    /// A node's value, borrowed when it is a variable or a constant (no copy).
    fn value<'f>(
        &mut self,
        node: &'f Node,
        frame: &'f mut [Dynamic],
    ) -> Result<Cow<'f, Dynamic>, Flow> {
        match node {
            Node::Var(slot) => Ok(Cow::Borrowed(&frame[*slot])),
            Node::Const(value) => Ok(Cow::Borrowed(value)),
            _ => self.eval(node, frame).map(Cow::Owned),
        }
    }

    /// Calls a native with its arguments borrowed where they are variables or constants. The
    /// others are evaluated first, in order: reading a variable or a constant has no effect, so
    /// the draws happen as they would in the order written.
    // Inlined into `eval`, as it was before `eval` grew: called out of line, the call costs the
    // seed port 1.1% more instructions an event (valgrind).
    #[inline(always)]
    fn native(&mut self, native: Native, args: &[Node], frame: &mut [Dynamic]) -> Step {
        let borrowed = |node: &Node| matches!(node, Node::Var(_) | Node::Const(_));
        if args.len() > 3 {
            let values = self.eval_all(args, frame)?;
            let refs: Vec<&Dynamic> = values.iter().collect();
            return Ok(natives::call(native, &refs, self.helpers, &self.rng)?);
        }
        if let [Node::Property(..), Node::Const(_)] | [Node::Const(_), Node::Property(..)] = args {
            return self.native_beside_constant(native, args, frame);
        }
        let mut owned: [Dynamic; 3] = Default::default();
        for (i, arg) in args.iter().enumerate() {
            if !borrowed(arg) {
                owned[i] = self.eval(arg, frame)?;
            }
        }
        let frame = &*frame;
        let mut refs: [&Dynamic; 3] = [&owned[0], &owned[1], &owned[2]];
        for (i, arg) in args.iter().enumerate() {
            match arg {
                Node::Var(slot) => refs[i] = &frame[*slot],
                Node::Const(value) => refs[i] = value,
                _ => {}
            }
        }
        let result = natives::call(native, &refs[..args.len()], self.helpers, &self.rng);
        // Only the values made here are dropped; the other slots hold `()`, which owns nothing
        // and is forgotten. Dropping all three was three out-of-line calls a native call, about
        // a hundred native calls a darooghe event.
        for (slot, arg) in owned.iter_mut().zip(args) {
            if !borrowed(arg) {
                discard(std::mem::take(slot));
            }
        }
        std::mem::forget(owned);
        Ok(result?)
    }

    /// A native called with a property chain read from a variable or a constant
    /// (`ctx.state.merchants.pick()`, `len(customer.orders)`): the chain read in place after
    /// the other arguments, as it has no effect, so that the map or pool it ends at is not
    /// copied for the call. Out of [`Self::eval`], which stays small.
    #[inline(never)]
    fn native_on_chain(
        &mut self,
        native: Native,
        args: &[Node],
        chain: usize,
        frame: &mut [Dynamic],
    ) -> Step {
        // Counted as the chain's node would have been.
        self.count()?;
        let in_frame = |node: &Node| matches!(node, Node::Var(_) | Node::Const(_));
        let mut owned: [Dynamic; 3] = Default::default();
        for (i, arg) in args.iter().enumerate() {
            if i != chain && !in_frame(arg) {
                owned[i] = self.eval(arg, frame)?;
            }
        }
        let frame = &*frame;
        let result = self.in_place(&args[chain], frame, &mut |run, value| {
            let mut refs: [&Dynamic; 3] = [&owned[0], &owned[1], &owned[2]];
            for (i, arg) in args.iter().enumerate() {
                match arg {
                    _ if i == chain => refs[i] = value,
                    Node::Var(slot) => refs[i] = &frame[*slot],
                    Node::Const(constant) => refs[i] = constant,
                    _ => {}
                }
            }
            Ok(natives::call(
                native,
                &refs[..args.len()],
                run.helpers,
                &run.rng,
            )?)
        });
        owned.into_iter().for_each(discard);
        result
    }

    /// A native called with a property and a constant (`event.location != ()`,
    /// `m.kind == "pos"`): the property read in place, so that comparing a map or a string copies
    /// neither. Out of [`Self::native`], which stays small for every other call.
    #[inline(never)]
    fn native_beside_constant(
        &mut self,
        native: Native,
        args: &[Node],
        frame: &mut [Dynamic],
    ) -> Step {
        // Counted as the property's node would have been.
        self.count()?;
        let (property, constant, first) = match args {
            [property, Node::Const(other)] => (property, other, true),
            [Node::Const(other), property] => (property, other, false),
            _ => return Err(Flow::Bail),
        };
        // `borrowed` reads a property chain where it lies.
        self.borrowed(property, frame, &mut |run, value| {
            let pair = if first {
                [value, constant]
            } else {
                [constant, value]
            };
            Ok(natives::call(native, &pair, run.helpers, &run.rng)?)
        })
    }

    /// `base.name`, the maps on the way read in place: `ctx.state.plans.gold.rate` copies the
    /// rate, not the state, the plans and the plan before it.
    fn property_of(&mut self, base: &Node, name: &HashedKey, frame: &mut [Dynamic]) -> Step {
        self.borrowed(base, frame, &mut |run, value| run.property(value, name))
    }

    /// Calls `f` with `node`'s value, borrowed where it is a variable, a constant, or a property
    /// of a map (of the state or not) or of `ctx` reached from one; made otherwise.
    fn borrowed(
        &mut self,
        node: &Node,
        frame: &mut [Dynamic],
        f: &mut dyn FnMut(&Self, &Dynamic) -> Step,
    ) -> Step {
        match node {
            // A chain read from a variable or a constant (a folded `ctx` entry among them) is
            // read where it lies, as `in_place` reads it.
            Node::Var(_) | Node::Const(_) => self.in_place(node, frame, f),
            _ if is_pure_chain(node) => self.in_place(node, frame, f),
            Node::Property(inner, name, _) => {
                self.borrowed(inner, frame, &mut |run, base| run.step_in(base, name, f))
            }
            _ => {
                let value = self.eval(node, frame)?;
                f(self, &value)
            }
        }
    }

    /// Calls `f` with the value of a variable, a constant, or a property chain read from one
    /// ([`is_pure_chain`]), read where it lies. Reading one has no effect and evaluates
    /// nothing, so the frame is only read. Anything else gives up.
    fn in_place(
        &self,
        node: &Node,
        frame: &[Dynamic],
        f: &mut dyn FnMut(&Self, &Dynamic) -> Step,
    ) -> Step {
        match node {
            Node::Var(slot) => f(self, &frame[*slot]),
            Node::Const(value) => f(self, value),
            Node::Property(inner, name, folded) => {
                if let Some(entry) = folded.as_deref().and_then(|folded| folded.entry(frame)) {
                    return f(self, entry);
                }
                // A variable's property: the step taken from the variable itself.
                if let Node::Var(slot) = **inner {
                    return self.step_in(&frame[slot], name, f);
                }
                self.in_place(inner, frame, &mut |run, base| run.step_in(base, name, f))
            }
            _ => Err(Flow::Bail),
        }
    }

    /// Calls `f` with `base.name`, borrowed from `base` where it is held there as it is read
    /// (a map's entry, `ctx.state`, `ctx.settings`, a rule's event's field). Only what a further step reads goes this
    /// way: a value a script keeps is made by [`Self::property`], which marks the state's
    /// values read-only.
    fn step_in(
        &self,
        base: &Dynamic,
        name: &HashedKey,
        f: &mut dyn FnMut(&Self, &Dynamic) -> Step,
    ) -> Step {
        if base.is_shared() {
            // A shared value is a detection rule's event (or its history): asked for first.
            let inner = unshared(base)?;
            if let Some(event) = inner.read_lock::<EventView>() {
                return event.with_field(name, |value| f(self, value));
            }
            return self.step_in(&inner, name, f);
        }
        // The commonest kind first: each failed `read_lock` of a native type asks the value
        // for its type id.
        if let Some(map) = base.read_lock::<StateMap>() {
            let entry = map.entries().get_hashed(name);
            return f(self, entry.unwrap_or(&Dynamic::UNIT));
        } else if let Some(ctx) = base.read_lock::<EventContext>() {
            match name.as_str() {
                "state" => return f(self, &ctx.state),
                "settings" => return f(self, &ctx.settings),
                _ => {}
            }
        } else if let Some(map) = base.read_lock::<Map>() {
            return f(self, map.get(name.as_str()).unwrap_or(&Dynamic::UNIT));
        } else if let Some(event) = base.read_lock::<EventView>() {
            return event.with_field(name, |value| f(self, value));
        }
        let value = self.property(base, name)?;
        f(self, &value)
    }

    /// `base.name` on a map, a map of the state or `ctx`.
    fn property(&self, base: &Dynamic, name: &HashedKey) -> Step {
        if base.is_shared() {
            // As in `step_in`: a rule's event first.
            let inner = unshared(base)?;
            if let Some(event) = inner.read_lock::<EventView>() {
                return Ok(event.get(name));
            }
            return self.property(&inner, name);
        }
        // As in `step_in`, the commonest kind first.
        if let Some(map) = base.read_lock::<StateMap>() {
            return Ok(map.get_hashed(name));
        }
        if let Some(ctx) = base.read_lock::<EventContext>() {
            return match name.as_str() {
                "time" => Ok(Dynamic::from_int(ctx.time)),
                "seq" => {
                    natives::seq_read(self.seq_read);
                    Ok(Dynamic::from_int(ctx.seq))
                }
                "state" => Ok((*ctx.state).clone().into_read_only()),
                "settings" => Ok((*ctx.settings).clone().into_read_only()),
                _ => Err(Flow::Bail),
            };
        }
        if let Some(map) = base.read_lock::<Map>() {
            return Ok(map.get(name.as_str()).cloned().unwrap_or(Dynamic::UNIT));
        }
        if let Some(event) = base.read_lock::<EventView>() {
            return Ok(event.get(name));
        }
        Err(Flow::Bail)
    }
}

/// A condition's value, which must be a boolean.
#[inline(always)]
fn truth(value: Dynamic) -> Result<bool, Flow> {
    let truth = value.as_bool().map_err(|_| Flow::Bail);
    discard(value);
    truth
}

/// Drops `value`, but forgets a `()`, a boolean or a number, which own nothing: dropping a
/// `Dynamic` is an out-of-line call whatever it holds, about ninety a seed port event
/// (valgrind). A shared value owns its cell, and is dropped.
#[inline(always)]
fn discard(value: Dynamic) {
    let owns_nothing = !value.is_shared()
        && (value.is_unit() || value.is_bool() || value.is_int() || value.is_float());
    if owns_nothing {
        std::mem::forget(value);
    }
}

/// A value as a variable holds it: a copy of its own (Rhai's `flatten`), except a detection
/// rule's shared event handle. Nothing on the fast path writes to one (a write gives the call
/// up), so sharing it is safe, and `let past = history[i]` copies a reference count, not the
/// handle.
fn settled(value: Dynamic) -> Dynamic {
    if value.is_shared() && value.is::<EventView>() {
        value
    } else {
        flat(value)
    }
}

/// Rhai's `flatten`: what a shared value holds, any other value as it is. Only a shared value
/// goes through the out-of-line call, which the other values, nearly all, skip: about thirty
/// calls a seed port event (valgrind).
#[inline(always)]
fn flat(value: Dynamic) -> Dynamic {
    if value.is_shared() {
        value.flatten()
    } else {
        value
    }
}

/// What a shared value (a rule's event handle, its history array) holds, locked once for the
/// read: each `read_lock::<T>()` on the shared value itself takes and releases its lock, and
/// finding which kind it holds tried up to four kinds, so four lock round trips a step.
fn unshared(value: &Dynamic) -> Result<impl std::ops::Deref<Target = Dynamic> + '_, Flow> {
    value.read_lock::<Dynamic>().ok_or(Flow::Bail)
}

/// An integer range value (`0..n`, `0..=n`) as a half-open range; `None` for anything else.
fn range_of(value: &Dynamic) -> Result<Option<std::ops::Range<INT>>, Flow> {
    if let Some(range) = value.read_lock::<std::ops::Range<INT>>() {
        return Ok(Some(range.clone()));
    }
    if let Some(range) = value.read_lock::<std::ops::RangeInclusive<INT>>() {
        let end = range.end().checked_add(1).ok_or(Flow::Bail)?;
        return Ok(Some(*range.start()..end));
    }
    Ok(None)
}

/// The items of an array, or of a pool of the state (each read as the pool gives it), to loop
/// over while the body may change the variable that held them.
fn items_of(items: &Dynamic) -> Result<Vec<Dynamic>, Flow> {
    if let Some(pool) = items.read_lock::<Pool>() {
        return Ok(pool.items().iter().map(super::super::pool::read).collect());
    }
    let array = items.read_lock::<Array>().ok_or(Flow::Bail)?;
    Ok(array.clone())
}

/// `base[index]`: a map (of the state or not) by key, an array or a pool by position (a
/// negative one from the end).
fn index_of(base: &Dynamic, index: &Dynamic) -> Step {
    if base.is_shared() {
        return index_of(&*unshared(base)?, index);
    }
    if let Some(key) = index.read_lock::<ImmutableString>() {
        if let Some(map) = base.read_lock::<StateMap>() {
            return Ok(map.get(&key));
        }
        if let Some(map) = base.read_lock::<Map>() {
            return Ok(map.get(key.as_str()).cloned().unwrap_or(Dynamic::UNIT));
        }
        if let Some(event) = base.read_lock::<EventView>() {
            return Ok(event.get(&key));
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
        // Written into the text, not made as a string of its own first.
        use std::fmt::Write;
        write!(text, "{i}").map_err(|_| Flow::Bail)?;
    } else if let Ok(c) = part.as_char() {
        text.push(c);
    } else if let Ok(b) = part.as_bool() {
        text.push_str(if b { "true" } else { "false" });
    } else if part.is_float() {
        // A float's `Display` is Rhai's own `to_string` of it (`FloatWrapper`): `3.0`, `1e-7`.
        use std::fmt::Write;
        write!(text, "{part}").map_err(|_| Flow::Bail)?;
    } else {
        return Err(Flow::Bail);
    }
    Ok(())
}
