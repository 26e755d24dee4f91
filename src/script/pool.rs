//! `Pool`: a large, read-mostly collection for scenario state (customers, merchants).
//!
//! Rhai checks the size limits of the sandbox by walking a value's whole structure, and it does so
//! after every native call on an array (`push`, `pick`, `len`). With a plain array of a million
//! customers, each event would pay for a walk over a million maps, and building the array would
//! take quadratic time. A `Pool` is a native value that Rhai does not walk: picking from it costs
//! the same at any size, and cloning it (as `ctx.state` hands it out) is a reference-count bump.
//! Its elements are still checked one by one as they are added.

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

/// Registers the `Pool` type and its functions.
pub fn register(engine: &mut Engine, rng: &SharedRng) {
    engine
        .register_type_with_name::<Pool>("Pool")
        // pool() -> an empty pool; add with `pool.push(item)`.
        .register_fn("pool", Pool::default)
        // pool(count, |i| item) -> a pool of `count` items made by the closure, i from 0.
        .register_fn(
            "pool",
            |context: NativeCallContext, count: INT, make: FnPtr| -> Fallible<Pool> {
                let mut pool = Pool::default();
                for i in 0..count.max(0) {
                    let item: Dynamic = make.call_within_context(&context, (i,))?;
                    pool.push(item)?;
                }
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
        .register_fn("len", |pool: &mut Pool| pool.len() as INT)
        .register_get("len", |pool: &mut Pool| pool.len() as INT)
        .register_fn("is_empty", |pool: &mut Pool| pool.is_empty())
        .register_indexer_get(|pool: &mut Pool, index: INT| pool.get(index));
    // pool.pick() -> one element, uniformly.
    let r = rng.clone();
    engine.register_fn("pick", move |pool: &mut Pool| -> Fallible<Dynamic> {
        if pool.is_empty() {
            return Err("pick: the pool is empty".into());
        }
        let index = rand::Rng::random_range(&mut *super::api::lock(&r), 0..pool.len());
        Ok(pool.items[index].clone())
    });
}
