//! Per-entity memory the engine keeps for a scenario: `remember(key, value)`, `recall(key)`.
//!
//! A scenario that needs state across events (a customer's recent transactions, a card's last
//! location) keeps it here rather than in script variables, because the engine owns it: a hot
//! reload hands the running version's memory to the new one, so an edit does not forget what
//! the stream has done so far.
//!
//! Events may be made by several workers at once, ahead of their turn (see
//! `pipeline::workers`). So an event never writes the shared store directly: it works on a
//! *journal*. `recall` reads the event's own writes first, then the committed store, and notes
//! the key it read; `remember` and `forget` go to the journal. The pipeline commits journals in
//! sequence order, and re-makes an event whose reads another event changed before its turn. The
//! result is what one worker making the events one by one would have made.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, INT};

use super::limits;

type Store = HashMap<ImmutableString, Dynamic>;

/// What one event did to memory, and what it read.
#[derive(Debug, Default)]
pub struct Journal {
    /// Keys written, with their new values (`None`: forgotten).
    pub writes: HashMap<ImmutableString, Option<Dynamic>>,
    /// Keys read from the committed store (not from the event's own writes).
    pub reads: Vec<ImmutableString>,
    /// Whether the event read the size of the whole memory (`memory_size`).
    pub read_all: bool,
}

impl Journal {
    /// Whether the event read anything that a write to `written` changed.
    pub fn read_any_of(&self, written: &std::collections::HashSet<ImmutableString>) -> bool {
        if written.is_empty() {
            return false;
        }
        self.read_all || self.reads.iter().any(|key| written.contains(key))
    }
}

/// The memory of one scenario: the committed store (shared by its workers and handed on at a
/// reload) and this worker's journal of the event being made.
#[derive(Debug, Clone)]
pub struct Memory {
    store: Arc<RwLock<Store>>,
    journal: Arc<Mutex<Journal>>,
    /// The most keys the store may hold (setting `max_remembered`), shared by the workers.
    cap: Arc<AtomicUsize>,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            store: Arc::default(),
            journal: Arc::default(),
            cap: Arc::new(AtomicUsize::new(limits::MAP_SIZE)),
        }
    }
}

impl Memory {
    /// Sets the most keys the store may hold (the `max_remembered` setting).
    pub fn set_cap(&self, keys: usize) {
        self.cap.store(keys, AtomicOrdering::Relaxed);
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        crate::sync::lock(&self.journal)
    }

    fn read_store(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        crate::sync::read(&self.store)
    }

    fn write_store(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        crate::sync::write(&self.store)
    }

    /// A memory of its own holding a copy of what this one remembers, for a trial run whose
    /// writes must not reach this one.
    pub fn copy(&self) -> Memory {
        Memory {
            store: Arc::new(RwLock::new(self.read_store().clone())),
            journal: Arc::default(),
            cap: Arc::new(AtomicUsize::new(self.cap.load(AtomicOrdering::Relaxed))),
        }
    }

    /// A handle on the same store with a journal of its own, for another worker.
    pub fn for_worker(&self) -> Memory {
        Memory {
            store: self.store.clone(),
            journal: Arc::default(),
            cap: self.cap.clone(),
        }
    }

    /// Starts the journal of a new event. A journal nobody took (a scenario driven directly,
    /// outside a pipeline) is committed first, so such a caller sees one event after another.
    pub fn begin(&self) {
        let mut left = std::mem::take(&mut *self.journal());
        self.commit(&mut left);
    }

    /// Takes the journal of the event just made.
    pub fn take_journal(&self) -> Journal {
        std::mem::take(&mut *self.journal())
    }

    /// Applies an event's writes to the committed store.
    pub fn commit(&self, journal: &mut Journal) {
        if journal.writes.is_empty() {
            return;
        }
        let mut store = self.write_store();
        for (key, value) in journal.writes.drain() {
            match value {
                Some(value) => store.insert(key, value),
                None => store.remove(&key),
            };
        }
    }

    /// Moves everything `other` remembers into this memory, replacing what it held.
    pub fn take_over(&self, other: &Memory) {
        if Arc::ptr_eq(&self.store, &other.store) {
            return;
        }
        let taken = std::mem::take(&mut *other.write_store());
        *self.write_store() = taken;
    }

    /// How many keys are remembered (committed).
    pub fn len(&self) -> usize {
        self.read_store().len()
    }

    /// Whether nothing is remembered (committed).
    pub fn is_empty(&self) -> bool {
        self.read_store().is_empty()
    }

    pub(super) fn recall(&self, key: ImmutableString) -> Dynamic {
        let mut journal = self.journal();
        if let Some(written) = journal.writes.get(&key) {
            return written.clone().unwrap_or(Dynamic::UNIT);
        }
        let value = self.read_store().get(&key).cloned();
        journal.reads.push(key);
        value.unwrap_or(Dynamic::UNIT)
    }

    pub(super) fn remember(
        &self,
        key: ImmutableString,
        value: Option<Dynamic>,
    ) -> Result<(), String> {
        let mut journal = self.journal();
        if value.is_some() && !journal.writes.contains_key(&key) {
            let store = self.read_store();
            let cap = self.cap.load(AtomicOrdering::Relaxed);
            if store.len() + journal.writes.len() >= cap && !store.contains_key(&key) {
                return Err(format!(
                    "remember: the memory holds {cap} keys, its cap (setting max_remembered); forget() keys no longer needed, or raise MAX_REMEMBERED"
                ));
            }
        }
        journal.writes.insert(key, value);
        Ok(())
    }

    fn size(&self) -> usize {
        let mut journal = self.journal();
        journal.read_all = true;
        let store = self.read_store();
        let mut size = store.len();
        for (key, value) in &journal.writes {
            match (value.is_some(), store.contains_key(key)) {
                (true, false) => size += 1,
                (false, true) => size -= 1,
                _ => {}
            }
        }
        size
    }
}

/// Registers `remember`, `recall`, `forget` and `memory_size` over `memory`.
pub fn register(engine: &mut Engine, memory: &Memory) {
    // remember(key, value): keeps `value` under `key` (a customer id, say) across events.
    let m = memory.clone();
    engine.register_fn(
        "remember",
        move |key: ImmutableString, value: Dynamic| -> Result<(), Box<EvalAltResult>> {
            m.remember(key, Some(value.flatten()))
                .map_err(|message| message.into())
        },
    );
    // recall(key) -> what was remembered under `key`, or () if nothing.
    let m = memory.clone();
    engine.register_fn("recall", move |key: ImmutableString| m.recall(key));
    // forget(key): drops what was remembered under `key`.
    let m = memory.clone();
    engine.register_fn("forget", move |key: ImmutableString| {
        // Forgetting adds no key, so it cannot break the size limit.
        let _ = m.remember(key, None);
    });
    // memory_size() -> how many keys are remembered.
    let m = memory.clone();
    engine.register_fn("memory_size", move || m.size() as INT);
}
