//! `Pool`: a large, read-mostly collection for scenario state (customers, merchants).
//!
//! Rhai checks the size limits of the sandbox by walking a value's whole structure, and it does so
//! after every native call on an array (`push`, `pick`, `len`). With a plain array of a million
//! customers, each event would pay for a walk over a million maps, and building the array would
//! take quadratic time. A `Pool` is a native value that Rhai does not walk: picking from it costs
//! the same at any size, and cloning it (as `ctx.state` hands it out) is a reference-count bump.
//! Its elements are still checked one by one as they are added.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext, INT};

use super::api::SharedRng;
use super::limits;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// An immutable-once-shared list of values, picked from by index.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    items: Arc<Vec<Dynamic>>,
}

impl Pool {
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

    fn get(&self, index: INT) -> Fallible<Dynamic> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.items.get(i))
            .cloned()
            .ok_or_else(|| format!("pool index {index} out of range 0..{}", self.len()).into())
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
        })
        .register_fn("push", |pool: &mut Pool, item: Dynamic| pool.push(item))
        // Read-only functions take the pool by value (a reference-count increment): Rhai then
        // knows they do not change it and skips writing it back through a property chain
        // (`ctx.state.customers.pick()`), which costs more than the pick itself.
        .register_fn("len", |pool: Pool| pool.len() as INT)
        .register_get("len", |pool: &mut Pool| pool.len() as INT)
        .register_fn("is_empty", |pool: Pool| pool.is_empty())
        .register_indexer_get(|pool: &mut Pool, index: INT| pool.get(index));
    // pool.pick_zipf(s) -> an element by Zipf popularity: the k-th with probability
    // proportional to 1 / k^s (s = 1: the first is twice as popular as the second).
    let r = rng.clone();
    engine.register_fn(
        "pick_zipf",
        move |pool: Pool, s: Dynamic| -> Fallible<Dynamic> {
            let s = s
                .as_float()
                .or_else(|_| s.as_int().map(|i| i as f64))
                .map_err(|t| format!("pick_zipf: exponent must be a number, got {t}"))?;
            if pool.is_empty() {
                return Err("pick_zipf: the pool is empty".into());
            }
            let zipf = rand_distr::Zipf::new(pool.len() as f64, s)
                .map_err(|e| format!("pick_zipf: {e}"))?;
            let rank: f64 = rand_distr::Distribution::sample(&zipf, &mut *crate::sync::lock(&r));
            Ok(pool.items[(rank as usize).clamp(1, pool.len()) - 1].clone())
        },
    );
    // pool.pick() -> one element, uniformly.
    let r = rng.clone();
    engine.register_fn("pick", move |pool: Pool| -> Fallible<Dynamic> {
        if pool.is_empty() {
            return Err("pick: the pool is empty".into());
        }
        let index = rand::Rng::random_range(&mut *crate::sync::lock(&r), 0..pool.len());
        Ok(pool.items[index].clone())
    });
}
