//! `Pool`: a large, read-mostly collection for scenario state (customers, merchants).
//!
//! Rhai checks the size limits of the sandbox by walking a value's whole structure, and it does so
//! after every native call on an array (`push`, `pick`, `len`). With a plain array of a million
//! customers, each event would pay for a walk over a million maps, and building the array would
//! take quadratic time. A `Pool` is a native value that Rhai does not walk: picking from it costs
//! the same at any size, and cloning it (as `ctx.state` hands it out) is a reference-count bump.
//! Its elements are still checked one by one as they are added.
//!
//! Arrays in the scenario state become pools when `setup` returns (see `state/mod.rs`), so a pool also
//! reads like an array: `for x in pool`, `x in pool`, `pool[-1]`, and the array methods that read
//! (`filter`, `map`, `index_of`, `some`, ...).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext, FLOAT, INT};

use super::draws::SharedRng;
use super::limits;
use crate::rng::SimRng;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// An immutable-once-shared list of values, picked from by index.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    items: Arc<Vec<Dynamic>>,
}

impl Pool {
    /// A pool holding `items`.
    pub(crate) fn from_items(items: Vec<Dynamic>) -> Self {
        Self {
            items: Arc::new(items),
        }
    }

    /// Its elements.
    pub(crate) fn items(&self) -> &[Dynamic] {
        &self.items
    }

    /// Its elements, to change: copied first if another value shares them.
    pub(crate) fn items_mut(&mut self) -> &mut Vec<Dynamic> {
        Arc::make_mut(&mut self.items)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn push(&mut self, item: Dynamic) -> Fallible<()> {
        if self.items.len() >= limits::ARRAY_SIZE {
            return Err(format!("pool: more than {} elements", limits::ARRAY_SIZE).into());
        }
        Arc::make_mut(&mut self.items).push(item.flatten());
        Ok(())
    }

    /// Replaces element `index` (negative: from the end).
    fn set(&mut self, index: INT, item: Dynamic) -> Fallible<()> {
        let at = self.position(index)?;
        self.items_mut()[at] = item.flatten();
        Ok(())
    }

    /// Where element `index` is; a negative index counts from the end.
    fn position(&self, index: INT) -> Fallible<usize> {
        let len = self.len() as INT;
        let at = if index < 0 { index + len } else { index };
        usize::try_from(at)
            .ok()
            .filter(|&i| i < self.len())
            .ok_or_else(|| format!("pool index {index} out of range 0..{len}").into())
    }

    /// Element `index`; a negative index counts from the end, as for arrays.
    fn get(&self, index: INT) -> Fallible<Dynamic> {
        Ok(read(&self.items[self.position(index)?]))
    }
}

/// `for item in pool`: the elements in order, each a clone (a reference-count increment for maps
/// and arrays of the state).
impl IntoIterator for Pool {
    type Item = Dynamic;
    type IntoIter = PoolIter;

    fn into_iter(self) -> PoolIter {
        PoolIter {
            items: self.items,
            next: 0,
        }
    }
}

/// The iterator of a pool's elements.
pub struct PoolIter {
    items: Arc<Vec<Dynamic>>,
    next: usize,
}

impl Iterator for PoolIter {
    type Item = Dynamic;

    fn next(&mut self) -> Option<Dynamic> {
        let item = self.items.get(self.next).map(read);
        self.next += 1;
        item
    }
}

/// Array methods that only read, offered on pools: each runs Rhai's own array function on the
/// pool's elements as an array (a copy of the element handles), so it behaves exactly as on an
/// array. With the number of arguments after the pool.
const ARRAY_READS: &[(&str, usize)] = &[
    ("filter", 1),
    ("map", 1),
    ("reduce", 1),
    ("reduce", 2),
    ("reduce_rev", 1),
    ("reduce_rev", 2),
    ("some", 1),
    ("all", 1),
    ("find", 1),
    ("find", 2),
    ("find_map", 1),
    ("find_map", 2),
    ("index_of", 1),
    ("index_of", 2),
    ("extract", 1),
    ("extract", 2),
    ("get", 1),
    ("pick_weighted", 1),
    ("to_string", 0),
    ("to_debug", 0),
];

/// `value` as an argument for an array function: a pool as an array of its elements.
fn as_array_arg(value: Dynamic) -> Dynamic {
    match value.try_cast_result::<Pool>() {
        Ok(pool) => Dynamic::from_array(pool.items().to_vec()),
        Err(value) => value,
    }
}

/// Runs Rhai's array function `name` on `pool`'s elements and `args`.
fn array_call(
    context: &NativeCallContext,
    name: &str,
    pool: &Pool,
    args: impl IntoIterator<Item = Dynamic>,
) -> Fallible<Dynamic> {
    let mut values = vec![Dynamic::from_array(pool.items().to_vec())];
    values.extend(args.into_iter().map(as_array_arg));
    let mut refs: Vec<&mut Dynamic> = values.iter_mut().collect();
    context.call_native_fn_raw(name, false, &mut refs)
}

/// Registers the array methods of [`ARRAY_READS`] for pools. The pool is taken by value, so that
/// Rhai knows they do not change it (see `register`).
fn register_array_reads(engine: &mut Engine) {
    for &(name, arity) in ARRAY_READS {
        match arity {
            0 => engine.register_fn(name, move |context: NativeCallContext, pool: Pool| {
                array_call(&context, name, &pool, [])
            }),
            1 => engine.register_fn(
                name,
                move |context: NativeCallContext, pool: Pool, a: Dynamic| {
                    array_call(&context, name, &pool, [a])
                },
            ),
            _ => engine.register_fn(
                name,
                move |context: NativeCallContext, pool: Pool, a: Dynamic, b: Dynamic| {
                    array_call(&context, name, &pool, [a, b])
                },
            ),
        };
    }
}

/// Whether `a == b` as Rhai's `==` has it (`false` where `==` is not defined for the two).
fn equal(context: &NativeCallContext, a: &Dynamic, b: &Dynamic) -> bool {
    if let (Some(a), Some(b)) = (
        a.read_lock::<rhai::ImmutableString>(),
        b.read_lock::<rhai::ImmutableString>(),
    ) {
        return *a == *b;
    }
    context
        .call_native_fn::<bool>("==", (a.clone(), b.clone()))
        .unwrap_or(false)
}

/// `pool.pick()`: one element of a pool of the state, uniformly.
pub(crate) fn pick_pool(rng: &mut SimRng, pool: &Pool) -> Fallible<Dynamic> {
    if pool.is_empty() {
        return Err("pick: the pool is empty".into());
    }
    let index = rand::Rng::random_range(rng, 0..pool.len());
    Ok(read(&pool.items()[index]))
}

/// `pool.pick_zipf(s)`: an element by Zipf popularity, the k-th with probability proportional
/// to 1 / k^s.
pub(crate) fn pick_zipf(rng: &mut SimRng, pool: &Pool, s: &Dynamic) -> Fallible<Dynamic> {
    let s = s
        .as_float()
        .or_else(|_| s.as_int().map(|i| i as f64))
        .map_err(|t| format!("pick_zipf: exponent must be a number, got {t}"))?;
    if pool.is_empty() {
        return Err("pick_zipf: the pool is empty".into());
    }
    let zipf =
        rand_distr::Zipf::new(pool.len() as f64, s).map_err(|e| format!("pick_zipf: {e}"))?;
    let rank: f64 = rand_distr::Distribution::sample(&zipf, rng);
    let rank = (rank as usize).clamp(1, pool.len());
    Ok(read(&pool.items()[rank - 1]))
}

/// A copy of `value`, read out of a pool or the state: a frozen map or array (stored read-only,
/// see `state/mod.rs`) stays read-only, since a clone of a `Dynamic` is read-write; so Rhai refuses to
/// change it where it sits (`ctx.state.list.push(x)`) instead of changing a copy that is thrown
/// away. `let` and function parameters make it read-write, so a variable can change its own copy.
pub(crate) fn read(value: &Dynamic) -> Dynamic {
    let copy = value.clone();
    if value.is_read_only() {
        copy.into_read_only()
    } else {
        copy
    }
}

/// Counts the pools a `setup` builds, so the n-th pool's items draw from streams of their own.
#[derive(Debug, Clone, Default)]
pub struct PoolCounter(Arc<AtomicU64>);

impl PoolCounter {
    /// Starts counting again (at each `setup`).
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// The generator of item `index` of the `ordinal`-th pool: a stream of its own under the same
/// seed, so an item's draws depend on neither the pool's size nor anything drawn before it.
fn item_rng(base: &crate::rng::SimRng, ordinal: u64, index: u64) -> crate::rng::SimRng {
    let mut rng = base.clone();
    rng.set_stream((1 << 63) | (ordinal << 40) | (index & ((1 << 40) - 1)));
    rng.set_word_pos(0);
    rng
}

/// Registers the `Pool` type and its functions.
pub fn register(engine: &mut Engine, rng: &SharedRng, counter: &PoolCounter) {
    let (r, built) = (rng.clone(), counter.0.clone());
    engine
        .register_type_with_name::<Pool>("Pool")
        // pool() -> an empty pool; add with `pool.push(item)`.
        .register_fn("pool", Pool::default)
        // pool(count, |i| item) -> a pool of `count` items made by the closure, i from 0. Each
        // item draws from its own stream of the seed: customer 7 comes out the same whether the
        // pool holds a thousand customers or a million, and whatever pools were built before.
        .register_fn(
            "pool",
            move |context: NativeCallContext, count: INT, make: FnPtr| -> Fallible<Pool> {
                let ordinal = built.fetch_add(1, Ordering::Relaxed);
                let base = crate::sync::lock(&r).clone();
                let mut pool = Pool::default();
                for i in 0..count.max(0) {
                    *crate::sync::lock(&r) = item_rng(&base, ordinal, i as u64);
                    let item = make.call_within_context::<Dynamic>(&context, (i,));
                    let item = match item {
                        Ok(item) => item,
                        Err(err) => {
                            *crate::sync::lock(&r) = base;
                            return Err(err);
                        }
                    };
                    pool.push(item)?;
                }
                // The setup's own stream goes on as if the pool had drawn nothing.
                *crate::sync::lock(&r) = base;
                Ok(pool)
            },
        )
        // pool(array) -> a pool holding the array's elements.
        .register_fn("pool", |items: rhai::Array| -> Fallible<Pool> {
            let mut pool = Pool::default();
            for item in items {
                pool.push(item)?;
            }
            Ok(pool)
        });
    // Not pure: Rhai then refuses it on a read-only value, such as a pool of the state
    // (`ctx.state.customers.push(c)`), rather than change a copy that is thrown away.
    rhai::FuncRegistration::new("push")
        .with_purity(false)
        .register_into_engine(engine, |pool: &mut Pool, item: Dynamic| pool.push(item));
    engine
        // Read-only functions take the pool by value (a reference-count increment): Rhai then
        // knows they do not change it and skips writing it back through a property chain
        // (`ctx.state.customers.pick()`), which costs more than the pick itself.
        .register_fn("len", |pool: Pool| pool.len() as INT)
        .register_get("len", |pool: &mut Pool| pool.len() as INT)
        .register_fn("is_empty", |pool: Pool| pool.is_empty())
        .register_indexer_get(|pool: &mut Pool, index: INT| pool.get(index))
        // pool[i] = x on a variable holding a copy of a state array changes the copy (refused on
        // the state itself, which is read-only: an index setter is not pure).
        .register_indexer_set(|pool: &mut Pool, index: INT, item: Dynamic| pool.set(index, item))
        // `item in pool`, `pool.contains(item)`.
        .register_fn(
            "contains",
            |context: NativeCallContext, pool: Pool, item: Dynamic| {
                pool.items().iter().any(|x| equal(&context, x, &item))
            },
        )
        .register_iterator::<Pool>();
    register_array_reads(engine);
    // pool.pick_zipf(s) -> an element by Zipf popularity: the k-th with probability
    // proportional to 1 / k^s (s = 1: the first is twice as popular as the second).
    let r = rng.clone();
    let pick_zipf = move |pool: Pool, s: Dynamic| -> Fallible<Dynamic> {
        pick_zipf(&mut crate::sync::lock(&r), &pool, &s)
    };
    // With a float and an integer exponent as well: an exact match is found by Rhai's first
    // look-up (see `api::numeric1`).
    let f = pick_zipf.clone();
    engine.register_fn("pick_zipf", move |pool: Pool, s: FLOAT| f(pool, s.into()));
    let f = pick_zipf.clone();
    engine.register_fn("pick_zipf", move |pool: Pool, s: INT| f(pool, s.into()));
    engine.register_fn("pick_zipf", pick_zipf);
    // pool.pick() -> one element, uniformly.
    let r = rng.clone();
    engine.register_fn("pick", move |pool: Pool| {
        pick_pool(&mut crate::sync::lock(&r), &pool)
    });
}
