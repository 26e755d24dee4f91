//! Per-entity memory the engine keeps for a scenario: `remember(key, value)`, `recall(key)`.
//!
//! A scenario that needs state across events (a customer's recent transactions, a card's last
//! location) keeps it here rather than in script variables, because the engine owns it: a hot
//! reload hands the running version's memory to the new one, so an edit does not forget what
//! the stream has done so far.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, INT};

use super::limits;

/// The memory of one scenario version, shared with its helpers.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    entries: Arc<Mutex<HashMap<ImmutableString, Dynamic>>>,
}

impl Memory {
    fn lock(&self) -> MutexGuard<'_, HashMap<ImmutableString, Dynamic>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves everything `other` remembers into this memory, replacing what it held.
    pub fn take_over(&self, other: &Memory) {
        if Arc::ptr_eq(&self.entries, &other.entries) {
            return;
        }
        let taken = std::mem::take(&mut *other.lock());
        *self.lock() = taken;
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Registers `remember`, `recall` and `forget` over `memory`.
pub fn register(engine: &mut Engine, memory: &Memory) {
    // remember(key, value): keeps `value` under `key` (a customer id, say) across events.
    let m = memory.clone();
    engine.register_fn(
        "remember",
        move |key: ImmutableString, value: Dynamic| -> Result<(), Box<EvalAltResult>> {
            let mut entries = m.lock();
            if entries.len() >= limits::MAP_SIZE && !entries.contains_key(&key) {
                return Err(format!("remember: more than {} keys", limits::MAP_SIZE).into());
            }
            entries.insert(key, value.flatten());
            Ok(())
        },
    );
    // recall(key) -> what was remembered under `key`, or () if nothing.
    let m = memory.clone();
    engine.register_fn("recall", move |key: ImmutableString| -> Dynamic {
        m.lock().get(&key).cloned().unwrap_or(Dynamic::UNIT)
    });
    // forget(key): drops what was remembered under `key`.
    let m = memory.clone();
    engine.register_fn("forget", move |key: ImmutableString| {
        m.lock().remove(&key);
    });
    // memory_size() -> how many keys are remembered.
    let m = memory.clone();
    engine.register_fn("memory_size", move || m.lock().len() as INT);
}
