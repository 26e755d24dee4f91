//! The helpers and operators the fast path calls directly. Each does what the function Rhai
//! would resolve for the same arguments does, drawing from the same generator the same way (see
//! `api.rs` and `pool.rs`); for arguments it does not handle, or that would be an error, it
//! gives the event up to the interpreter ([`Bail`]).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::MutexGuard;

use rhai::{Array, Dynamic, ImmutableString, Map, FLOAT, INT};

use super::super::context::EventContext;
use super::super::draws::{self, numeric, Number, SharedRng};
use super::super::follow_up::FollowUps;
use super::super::limits;
use super::super::memory::Memory;
use super::super::pool::{self, Pool};
use super::super::state::StateMap;
use super::sizes::array_within_limits;
use super::Bail;
use crate::rng::SimRng;

/// A native function the fast path knows.
#[derive(Debug, Clone, Copy)]
pub enum Native {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `a % b`.
    Rem,
    /// `-a`.
    Neg,
    /// `!a`.
    Not,
    /// `a == b`.
    Eq,
    /// `a != b`.
    Ne,
    /// `a < b`.
    Lt,
    /// `a <= b`.
    Le,
    /// `a > b`.
    Gt,
    /// `a >= b`.
    Ge,
    /// `rand_float()`.
    RandFloat,
    /// `rand_float(lo, hi)`.
    RandFloatIn,
    /// `rand_int(lo, hi)`.
    RandInt,
    /// `chance(p)`.
    Chance,
    /// `uuid()`.
    Uuid,
    /// `iso8601(ms)`.
    Iso8601,
    /// `items.pick()`, on an array or a pool of the state.
    Pick,
    /// `pool.pick_zipf(s)`.
    PickZipf,
    /// `pick_weighted(#{ key: weight })`, or `pick_weighted(items, weights)`.
    PickWeighted,
    /// `normal(mean, sd)`.
    Normal,
    /// `log_normal(mu, sigma)`.
    LogNormal,
    /// `exponential(rate)`.
    Exponential,
    /// `jitter(lat, lng, km)`.
    Jitter,
    /// `x.ln()`.
    Ln,
    /// `x.abs()`.
    Abs,
    /// `recall(key)`: what the scenario's memory holds under `key`.
    Recall,
    /// `follow_up(ctx, delay_ms, "function", data)`: schedules a later call.
    FollowUp,
    /// `x.round()`.
    Round,
    /// `x.floor()`.
    Floor,
    /// `x.ceiling()`.
    Ceiling,
    /// `x.to_int()`.
    ToInt,
    /// `x.to_float()`.
    ToFloat,
    /// `items.contains(value)` (and `value in items`): an array's item, a map's key, a
    /// string's substring.
    Contains,
    /// `x.is_empty()`, of an array, a map or a string.
    IsEmpty,
    /// `x.len()`, of an array, a map or a string.
    Len,
    /// `a ** b`, of a float to a float or to an integer.
    Pow,
    /// `sin`, `cos`, `asin`, `sqrt` and `to_radians` of a float.
    Float(fn(FLOAT) -> FLOAT),
    /// `remember(key, value)`: keeps `value` in the scenario's memory.
    Remember,
    /// `forget(key)`: drops what the memory holds under `key`.
    Forget,
}

impl Native {
    /// Whether it is one of the simulator's helpers (which draw, read the memory or schedule),
    /// not a function or operator of Rhai's own.
    pub fn is_helper(self) -> bool {
        matches!(
            self,
            Self::RandFloat
                | Self::RandFloatIn
                | Self::RandInt
                | Self::Chance
                | Self::Uuid
                | Self::Iso8601
                | Self::Pick
                | Self::PickZipf
                | Self::PickWeighted
                | Self::Normal
                | Self::LogNormal
                | Self::Exponential
                | Self::Jitter
                | Self::Recall
                | Self::FollowUp
                | Self::Remember
                | Self::Forget
        )
    }
}

/// A method that changes the variable it is called on (`list.push(x)`, `list.sort()`), or the
/// property of one (`record.list.push(x)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutator {
    /// `array.push(item)`.
    Push,
    /// `array.sort()`, of integers or of strings.
    Sort,
}

impl Mutator {
    /// The method `name` with `arity` arguments besides its object, if known.
    pub fn resolve(name: &str, arity: usize) -> Option<Self> {
        match (name, arity) {
            ("push", 1) => Some(Self::Push),
            ("sort", 0) => Some(Self::Sort),
            _ => None,
        }
    }

    /// Applies the method to `target`, a plain value (not a constant, not of the state); `None`
    /// for a value it does not handle, or a change the sandbox's limits would refuse.
    pub fn apply(self, target: &mut Dynamic, args: Vec<Dynamic>) -> Option<Dynamic> {
        if target.is_read_only() {
            return None;
        }
        let mut array = target.write_lock::<Array>()?;
        match (self, <[Dynamic; 1]>::try_from(args)) {
            (Self::Push, Ok([item])) => {
                array.push(item.flatten());
                // Rhai checks the sizes of what a method changed; the totals of the array
                // (and whatever it holds) stay within the limits, or the interpreter reports it.
                array_within_limits(&array).then_some(Dynamic::UNIT)
            }
            (Self::Sort, Err(args)) if args.is_empty() => {
                if array.iter().all(Dynamic::is_int) {
                    array.sort_by_key(|item| item.as_int().unwrap_or_default());
                } else if array.iter().all(Dynamic::is_string) {
                    let mut keyed: Vec<(ImmutableString, Dynamic)> = array
                        .drain(..)
                        .map(|item| (string(&item).unwrap_or_default(), item))
                        .collect();
                    keyed.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
                    array.extend(keyed.into_iter().map(|(_, item)| item));
                } else {
                    return None;
                }
                Some(Dynamic::UNIT)
            }
            _ => None,
        }
    }
}

/// The native `name` with `arity` arguments (for a method, the object counts), if known.
pub fn resolve(name: &str, arity: usize) -> Option<Native> {
    Some(match (name, arity) {
        ("+", 2) => Native::Add,
        ("-", 2) => Native::Sub,
        ("*", 2) => Native::Mul,
        ("/", 2) => Native::Div,
        ("%", 2) => Native::Rem,
        ("-", 1) => Native::Neg,
        ("!", 1) => Native::Not,
        ("==", 2) => Native::Eq,
        ("!=", 2) => Native::Ne,
        ("<", 2) => Native::Lt,
        ("<=", 2) => Native::Le,
        (">", 2) => Native::Gt,
        (">=", 2) => Native::Ge,
        ("rand_float", 0) => Native::RandFloat,
        ("rand_float", 2) => Native::RandFloatIn,
        ("rand_int", 2) => Native::RandInt,
        ("chance", 1) => Native::Chance,
        ("uuid", 0) => Native::Uuid,
        ("iso8601", 1) => Native::Iso8601,
        ("pick", 1) => Native::Pick,
        ("pick_zipf", 2) => Native::PickZipf,
        ("pick_weighted", 1 | 2) => Native::PickWeighted,
        ("normal", 2) => Native::Normal,
        ("log_normal", 2) => Native::LogNormal,
        ("exponential", 1) => Native::Exponential,
        ("jitter", 3) => Native::Jitter,
        ("ln", 1) => Native::Ln,
        ("abs", 1) => Native::Abs,
        ("recall", 1) => Native::Recall,
        ("follow_up", 4) => Native::FollowUp,
        ("round", 1) => Native::Round,
        ("floor", 1) => Native::Floor,
        ("ceiling", 1) => Native::Ceiling,
        ("to_int", 1) => Native::ToInt,
        ("to_float", 1) => Native::ToFloat,
        ("**", 2) => Native::Pow,
        ("sin", 1) => Native::Float(FLOAT::sin),
        ("cos", 1) => Native::Float(FLOAT::cos),
        ("asin", 1) => Native::Float(FLOAT::asin),
        ("sqrt", 1) => Native::Float(FLOAT::sqrt),
        ("to_radians", 1) => Native::Float(FLOAT::to_radians),
        ("contains", 2) => Native::Contains,
        ("is_empty", 1) => Native::IsEmpty,
        ("len", 1) => Native::Len,
        ("remember", 2) => Native::Remember,
        ("forget", 1) => Native::Forget,
        _ => return None,
    })
}

/// Two numbers: both integers, or as floats when either is a float.
enum Pair {
    Ints(INT, INT),
    Floats(FLOAT, FLOAT),
}

fn pair(a: &Dynamic, b: &Dynamic) -> Option<Pair> {
    Some(match (numeric(a)?, numeric(b)?) {
        (Number::Int(x), Number::Int(y)) => Pair::Ints(x, y),
        (x, y) => Pair::Floats(x.as_float(), y.as_float()),
    })
}

/// An integer or a float, as a float.
fn float(value: &Dynamic) -> Option<FLOAT> {
    numeric(value).map(Number::as_float)
}

fn string(value: &Dynamic) -> Option<ImmutableString> {
    value.read_lock::<ImmutableString>().map(|s| s.clone())
}

/// Calls `native` on `args` (already evaluated, in order).
pub fn call(
    native: Native,
    args: &[&Dynamic],
    helpers: &Helpers,
    rng: &Generator<'_>,
) -> Result<Dynamic, Bail> {
    value(native, args, helpers, rng).ok_or(Bail)
}

/// The helpers' generator, locked for a whole run: a lock and an unlock a draw were two
/// atomic operations, 16 ns a draw here (`sim sample` of a script drawing 40 floats an event:
/// 0.89 x the CPU time), which valgrind counts as two instructions. Nothing a run calls locks it
/// again: the fast path calls the helpers directly, never through the engine. In a cell because
/// reads in place hand their callbacks the run shared, and borrowed by the draws only.
pub type Generator<'a> = RefCell<MutexGuard<'a, SimRng>>;

/// What the helpers draw from and read: the scenario's generator and memory.
pub struct Helpers {
    /// The generator.
    pub rng: SharedRng,
    /// The memory (`remember`, `recall`).
    pub memory: Memory,
    /// The calls scheduled (`follow_up`).
    pub follow_ups: FollowUps,
}

/// What [`call`] gives, `None` to give up.
fn value(
    native: Native,
    args: &[&Dynamic],
    helpers: &Helpers,
    rng: &Generator<'_>,
) -> Option<Dynamic> {
    // Borrowed by the draws only.
    let rng = || rng.borrow_mut();
    match (native, args) {
        (Native::Add, [a, b]) => add(a, b),
        (Native::Sub, [a, b]) => match pair(a, b) {
            Some(Pair::Ints(x, y)) => x.checked_sub(y).map(Dynamic::from_int),
            Some(Pair::Floats(x, y)) => Some(Dynamic::from_float(x - y)),
            None => None,
        },
        (Native::Mul, [a, b]) => match pair(a, b) {
            Some(Pair::Ints(x, y)) => x.checked_mul(y).map(Dynamic::from_int),
            Some(Pair::Floats(x, y)) => Some(Dynamic::from_float(x * y)),
            None => None,
        },
        (Native::Div, [a, b]) => match pair(a, b) {
            Some(Pair::Ints(x, y)) => x.checked_div(y).map(Dynamic::from_int),
            Some(Pair::Floats(x, y)) => Some(Dynamic::from_float(x / y)),
            None => None,
        },
        (Native::Rem, [a, b]) => match pair(a, b) {
            Some(Pair::Ints(x, y)) => x.checked_rem(y).map(Dynamic::from_int),
            Some(Pair::Floats(x, y)) => Some(Dynamic::from_float(x % y)),
            None => None,
        },
        (Native::Neg, [a]) => match numeric(a)? {
            Number::Int(x) => x.checked_neg().map(Dynamic::from_int),
            Number::Float(x) => Some(Dynamic::from_float(-x)),
        },
        (Native::Not, [a]) => a.as_bool().ok().map(|b| Dynamic::from_bool(!b)),
        (Native::Eq, [a, b]) => equal(a, b).map(Dynamic::from_bool),
        (Native::Ne, [a, b]) => equal(a, b).map(|e| Dynamic::from_bool(!e)),
        (Native::Lt, [a, b]) => compare(a, b).map(|o| Dynamic::from_bool(o.is_lt())),
        (Native::Le, [a, b]) => compare(a, b).map(|o| Dynamic::from_bool(o.is_le())),
        (Native::Gt, [a, b]) => compare(a, b).map(|o| Dynamic::from_bool(o.is_gt())),
        (Native::Ge, [a, b]) => compare(a, b).map(|o| Dynamic::from_bool(o.is_ge())),
        (Native::RandFloat, []) => Some(Dynamic::from_float(draws::rand_float(&mut rng()))),
        (Native::RandFloatIn, [lo, hi]) => ok(draws::rand_float_in(&mut rng(), lo, hi)),
        (Native::RandInt, [lo, hi]) => ok(draws::rand_int(
            &mut rng(),
            lo.as_int().ok()?,
            hi.as_int().ok()?,
        )),
        (Native::Chance, [p]) => ok(draws::chance(&mut rng(), p)),
        (Native::Normal, [mean, sd]) => ok(draws::normal(&mut rng(), mean, sd)),
        (Native::LogNormal, [mu, sigma]) => ok(draws::log_normal(&mut rng(), mu, sigma)),
        (Native::Exponential, [rate]) => ok(draws::exponential(&mut rng(), rate)),
        (Native::Uuid, []) => Some(Dynamic::from(draws::uuid(&mut rng()))),
        (Native::Iso8601, [ms]) => ok(draws::iso8601(ms.as_int().ok()?)),
        (Native::Pick, [items]) => {
            if let Some(pool) = items.read_lock::<Pool>() {
                return ok(pool::pick_pool(&mut rng(), &pool));
            }
            ok(draws::pick(&mut rng(), &*items.read_lock::<Array>()?))
        }
        (Native::PickZipf, [pool, s]) => {
            ok(pool::pick_zipf(&mut rng(), &*pool.read_lock::<Pool>()?, s))
        }
        (Native::PickWeighted, [weights]) => ok(draws::pick_weighted_key(
            &mut rng(),
            &*weights.read_lock::<Map>()?,
        )),
        (Native::PickWeighted, [items, weights]) => ok(draws::pick_weighted_item(
            &mut rng(),
            &*items.read_lock::<Array>()?,
            &*weights.read_lock::<Array>()?,
        )),
        (Native::Jitter, [lat, lng, km]) => ok(draws::jitter(&mut rng(), lat, lng, km)),
        (Native::Recall, [key]) => {
            let key = key.read_lock::<ImmutableString>()?.clone();
            Some(helpers.memory.recall(key))
        }
        (Native::FollowUp, [ctx, delay, function, data]) => {
            let ctx = ctx.read_lock::<EventContext>()?;
            let delay = match numeric(delay)? {
                Number::Int(ms) => ms,
                Number::Float(ms) if ms.is_finite() => ms.round() as INT,
                Number::Float(_) => return None,
            };
            let function = function.read_lock::<ImmutableString>()?.clone();
            helpers
                .follow_ups
                .schedule(&ctx, delay, function, (*data).clone())
                .ok()
                .map(|()| Dynamic::UNIT)
        }
        (Native::Ln, [x]) => x.as_float().ok().map(|x| Dynamic::from_float(x.ln())),
        (Native::Abs, [x]) => match numeric(x)? {
            Number::Int(i) => i.checked_abs().map(Dynamic::from_int),
            Number::Float(f) => Some(Dynamic::from_float(f.abs())),
        },
        (Native::Round, [x]) => x.as_float().ok().map(|x| Dynamic::from_float(x.round())),
        (Native::Floor, [x]) => x.as_float().ok().map(|x| Dynamic::from_float(x.floor())),
        (Native::Ceiling, [x]) => x.as_float().ok().map(|x| Dynamic::from_float(x.ceil())),
        (Native::ToInt, [x]) => match numeric(x)? {
            Number::Int(i) => Some(Dynamic::from_int(i)),
            // Rhai refuses a float out of the integers' range.
            Number::Float(f) if f <= INT::MAX as FLOAT && f >= INT::MIN as FLOAT => {
                Some(Dynamic::from_int(f.trunc() as INT))
            }
            Number::Float(_) => None,
        },
        (Native::ToFloat, [x]) => float(x).map(Dynamic::from_float),
        (Native::Pow, [x, y]) => match (x.as_float().ok()?, numeric(y)?) {
            // Rhai raises a float to an integer power with `powi`, refusing one beyond an i32.
            (x, Number::Int(y)) => i32::try_from(y)
                .ok()
                .map(|y| Dynamic::from_float(x.powi(y))),
            (x, Number::Float(y)) => Some(Dynamic::from_float(x.powf(y))),
        },
        (Native::Float(f), [x]) => x.as_float().ok().map(|x| Dynamic::from_float(f(x))),
        (Native::Contains, [items, value]) => contains(items, value).map(Dynamic::from_bool),
        (Native::IsEmpty, [x]) => length(x).map(|n| Dynamic::from_bool(n == 0)),
        (Native::Len, [x]) => length(x).map(|n| Dynamic::from_int(n as INT)),
        (Native::Remember, [key, value]) => {
            let key = key.read_lock::<ImmutableString>()?.clone();
            let value = (*value).clone().flatten();
            helpers.memory.remember(key, Some(value)).ok()?;
            Some(Dynamic::UNIT)
        }
        (Native::Forget, [key]) => {
            let key = key.read_lock::<ImmutableString>()?.clone();
            // Forgetting adds no key, so it cannot break the memory's cap.
            let _ = helpers.memory.remember(key, None);
            Some(Dynamic::UNIT)
        }
        _ => None,
    }
}

/// `a + b`: numbers, two strings or two arrays (within the sandbox's sizes).
fn add(a: &Dynamic, b: &Dynamic) -> Option<Dynamic> {
    // Numbers first, the most common; the three kinds exclude one another.
    if let Some(pair) = pair(a, b) {
        return match pair {
            Pair::Ints(x, y) => x.checked_add(y).map(Dynamic::from_int),
            Pair::Floats(x, y) => Some(Dynamic::from_float(x + y)),
        };
    }
    if let (Some(x), Some(y)) = (string(a), string(b)) {
        if x.len() + y.len() > limits::STRING_SIZE {
            return None;
        }
        return Some(Dynamic::from(x + y));
    }
    let (x, y) = (a.read_lock::<Array>()?, b.read_lock::<Array>()?);
    let joined: Array = x.iter().chain(y.iter()).cloned().collect();
    array_within_limits(&joined).then(|| Dynamic::from_array(joined))
}

/// `items.contains(value)`: an array's or a pool's item (by `==`), a map's key (of the state or
/// not), a string's substring; `None` for anything else, or an item whose equality with `value`
/// the fast path does not know.
fn contains(items: &Dynamic, value: &Dynamic) -> Option<bool> {
    if let Some(array) = items.read_lock::<Array>() {
        return holds(&array, value);
    }
    if let Some(map) = items.read_lock::<Map>() {
        return Some(map.contains_key(string(value)?.as_str()));
    }
    if let Some(map) = items.read_lock::<StateMap>() {
        return Some(map.entries().contains_key(string(value)?.as_str()));
    }
    if let Some(pool) = items.read_lock::<Pool>() {
        return holds(pool.items(), value);
    }
    let text = items.read_lock::<ImmutableString>()?;
    Some(text.contains(string(value)?.as_str()))
}

/// Whether one of `items` equals `value`, in order up to the first that does; `None` when an
/// item before it is one whose equality with `value` the fast path does not know.
fn holds(items: &[Dynamic], value: &Dynamic) -> Option<bool> {
    for item in items {
        if equal(item, value)? {
            return Some(true);
        }
    }
    Some(false)
}

/// The length of an array, a map, a pool or a map of the state, or a string (in characters,
/// as Rhai counts it).
fn length(value: &Dynamic) -> Option<usize> {
    if let Some(array) = value.read_lock::<Array>() {
        return Some(array.len());
    }
    if let Some(map) = value.read_lock::<Map>() {
        return Some(map.len());
    }
    if let Some(pool) = value.read_lock::<Pool>() {
        return Some(pool.len());
    }
    if let Some(map) = value.read_lock::<StateMap>() {
        return Some(map.entries().len());
    }
    Some(value.read_lock::<ImmutableString>()?.chars().count())
}

/// `a == b` for the types whose equality the fast path knows; `None` for the rest.
fn equal(a: &Dynamic, b: &Dynamic) -> Option<bool> {
    if a.is_unit() || b.is_unit() {
        // Rhai has no `==` between `()` and another type: such values are not equal.
        return Some(a.is_unit() && b.is_unit());
    }
    if a.is_bool() && b.is_bool() {
        return Some(a.as_bool().ok()? == b.as_bool().ok()?);
    }
    if a.is_string() && b.is_string() {
        return Some(string(a)? == string(b)?);
    }
    if let Some(pair) = pair(a, b) {
        return Some(match pair {
            Pair::Ints(x, y) => x == y,
            Pair::Floats(x, y) => x == y,
        });
    }
    // Values of two types Rhai has no `==` for (a map and `()`) are not equal; characters
    // and strings, and two values of one other type, are left to the interpreter.
    let plain = |v: &Dynamic| !v.is_char() && !v.is_string();
    (a.type_id() != b.type_id() && plain(a) && plain(b)).then_some(false)
}

/// The order of two numbers or two strings.
fn compare(a: &Dynamic, b: &Dynamic) -> Option<std::cmp::Ordering> {
    if a.is_string() && b.is_string() {
        return Some(string(a)?.as_str().cmp(string(b)?.as_str()));
    }
    match pair(a, b)? {
        Pair::Ints(x, y) => Some(x.cmp(&y)),
        // Rhai compares floats with `<` and `>`; a NaN compares false either way.
        Pair::Floats(x, y) => x.partial_cmp(&y),
    }
}

/// A helper's value, `None` when it failed (the interpreter then reports the error).
fn ok<T: rhai::Variant + Clone>(result: draws::Fallible<T>) -> Option<Dynamic> {
    result.ok().map(Dynamic::from)
}

/// Marks that the event read `ctx.seq` (see `context.rs`).
pub fn seq_read(flag: &AtomicBool) {
    flag.store(true, Ordering::Relaxed);
}
