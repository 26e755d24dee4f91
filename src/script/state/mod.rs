//! The scenario state, frozen: what `setup` returned (and the settings), made into values that
//! events read without copying and that the sandbox does not walk.
//!
//! Rhai enforces the sandbox's size limits by walking a value whenever a native function returns
//! it or may have changed it. A plain state made `ctx.state` (a native getter) walk the whole
//! state at every read, a million customers per read if they sat in an array, and made a `pick()`
//! from a plain array walk the array. So when `setup` returns, [`freeze`] turns every map of the
//! state into a [`StateMap`] and every array into a [`Pool`]: native values whose copy is a
//! reference-count increment and which the size checks count as one value. The limits still hold
//! for everything a script builds: the state was checked as `setup` built it, and is read-only.
//!
//! Both keep the read API of maps and arrays, so a script written for plain values reads them as
//! before: `state.customers`, `m[key]`, `m.len()`, `key in m`, `m.keys()`, `for x in pool`,
//! `pool.filter(...)`. They are read-only where they sit (`ctx.state.list.push(x)` is refused, as
//! for any constant); a variable holding one can be changed like any map or array, and the change
//! is its own (the map or array is copied at the first change).
//!
//! [`thaw`] turns them back into plain maps and arrays where they leave the script: in the events
//! `event(ctx)` returns, so the schema check, a script's `check` and the Avro writer see plain
//! values. The JSON writer reads them where they are ([`read_frozen`]), so an event bound for it
//! is only made a plain map itself ([`thaw_outer`]): the same bytes, without copying each record
//! an event carries.
//!
//! Properties (`customer.id`) are read through a getter registered for each key found in the
//! state's small maps and in the settings ([`PropertyNames`]): Rhai looks a getter up by its hash,
//! while a property without one goes through an error value and then the indexer, several times
//! slower. Keys of large maps (look-up tables, read as `table[key]`) get no getter; a property
//! read of them still works, through the indexer.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, Identifier, ImmutableString, Map, NativeCallContext, INT,
};

use super::pool::{read, Pool};
use crate::encode::Plain;

mod entries;

pub use entries::{Entries, HashedKey};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// A read-only map of the scenario state (see the module doc).
#[derive(Clone, Default)]
pub struct StateMap {
    entries: Arc<Entries>,
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries.iter()).finish()
    }
}

impl StateMap {
    /// The value under `key`, or `()` (as a map gives for a missing property).
    pub fn get(&self, key: &str) -> Dynamic {
        self.entries.get(key).map_or(Dynamic::UNIT, read)
    }

    /// The value under `key`, or `()`, as [`Self::get`] gives it.
    pub fn get_hashed(&self, key: &HashedKey) -> Dynamic {
        self.entries.get_hashed(key).map_or(Dynamic::UNIT, read)
    }

    /// Its entries.
    pub fn entries(&self) -> &Entries {
        &self.entries
    }
}

/// Maps with at most this many entries are records (a customer, a plan) whose keys are read as
/// properties; larger ones are look-up tables.
const RECORD_SIZE: usize = 64;
/// The most property getters a scenario registers.
const MAX_PROPERTIES: usize = 4096;

/// The property names read through getters: keys of the small maps of the state and settings.
#[derive(Debug, Clone, Default)]
pub struct PropertyNames {
    names: BTreeSet<ImmutableString>,
    /// Those already registered on the engine.
    registered: BTreeSet<ImmutableString>,
}

impl PropertyNames {
    /// Notes the keys of a map of `len` entries, unless it is a look-up table.
    fn note<'k>(&mut self, len: usize, keys: impl Iterator<Item = &'k Identifier>) {
        if len > RECORD_SIZE {
            return;
        }
        for key in keys {
            if self.names.len() >= MAX_PROPERTIES {
                return;
            }
            if is_identifier(key) && !self.names.contains(key.as_str()) {
                self.names.insert(key.as_str().into());
            }
        }
    }

    /// Registers a getter on `engine` for each name noted and not registered yet.
    pub fn register(&mut self, engine: &mut Engine) {
        for name in &self.names {
            if self.registered.contains(name) {
                continue;
            }
            let key = name.clone();
            engine.register_get(name.as_str(), move |map: &mut StateMap| map.get(&key));
        }
        self.registered.clone_from(&self.names);
    }

    /// Forgets which names are registered: for a new engine (a fork).
    pub fn for_new_engine(&self) -> Self {
        Self {
            names: self.names.clone(),
            registered: BTreeSet::new(),
        }
    }
}

/// Whether `key` can be written as a property (`x.key`).
pub(super) fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Freezes `value` (see the module doc), noting the keys of its small maps in `names`. Maps and
/// arrays come out read-only, so that Rhai refuses to change them in place.
pub fn freeze(value: Dynamic, names: &mut PropertyNames) -> Dynamic {
    let value = value.flatten();
    if value.is_map() {
        let mut map = value.cast::<Map>();
        names.note(map.len(), map.keys());
        for item in map.values_mut() {
            *item = freeze(std::mem::take(item), names);
        }
        Dynamic::from(StateMap {
            entries: Arc::new(Entries::from_map(map)),
        })
        .into_read_only()
    } else if value.is_array() {
        let items: Vec<Dynamic> = value
            .cast::<Array>()
            .into_iter()
            .map(|item| freeze(item, names))
            .collect();
        Dynamic::from(Pool::from_items(items)).into_read_only()
    } else if value.is::<Pool>() {
        let mut pool = value.cast::<Pool>();
        if pool.items().iter().any(needs_freezing) {
            for item in pool.items_mut() {
                *item = freeze(std::mem::take(item), names);
            }
        } else {
            // Already frozen (a pool read from the state and put back, say): note its names.
            pool.items()
                .iter()
                .for_each(|item| note_frozen(item, names));
        }
        Dynamic::from(pool).into_read_only()
    } else {
        note_frozen(&value, names);
        value
    }
}

fn needs_freezing(value: &Dynamic) -> bool {
    value.is_map() || value.is_array()
}

/// Notes the names of an already frozen map, and of those inside it.
fn note_frozen(value: &Dynamic, names: &mut PropertyNames) {
    if let Some(map) = value.read_lock::<StateMap>() {
        names.note(map.entries().len(), map.entries().keys());
        for item in map.entries().values() {
            note_frozen(item, names);
        }
    }
}

/// Pools and maps with more than this many items are shared by [`private_copy`], not copied: a
/// copy per worker would multiply a large state's memory by the workers, and items picked at
/// random from many are seldom counted by two cores at once.
const SHARED_ABOVE: usize = 4096;

/// A copy of the frozen `value` that shares nothing with it but its large pools and maps (over
/// [`SHARED_ABOVE`] items): every other state map, pool and string inside is made again. Each
/// worker reads a copy of its own (see `Scenario::fork`): a read of the state copies a record
/// or a string by counting one more reference to it, and two cores counting references to the
/// same values take each other's cache lines at every count (darooghe with two workers: 0.92 x
/// the CPU time, `farm-bench`).
pub fn private_copy(value: &Dynamic) -> Dynamic {
    let mut copy = if let Some(map) = value.read_lock::<StateMap>() {
        if map.entries().len() > SHARED_ABOVE {
            value.clone()
        } else {
            Dynamic::from(StateMap {
                entries: Arc::new(map.entries().copied(private_copy)),
            })
        }
    } else if let Some(pool) = value.read_lock::<Pool>() {
        if pool.len() > SHARED_ABOVE {
            value.clone()
        } else {
            Dynamic::from(Pool::from_items(
                pool.items().iter().map(private_copy).collect(),
            ))
        }
    } else if let Some(text) = value.read_lock::<ImmutableString>() {
        Dynamic::from(ImmutableString::from(text.as_str()))
    } else {
        value.clone()
    };
    copy.set_tag(value.tag());
    if value.is_read_only() {
        copy.into_read_only()
    } else {
        copy
    }
}

/// Turns the frozen values inside `value` back into plain maps and arrays, deeply; plain values
/// are left where they are, so an event with nothing frozen in it costs one look at each field.
pub fn thaw(mut value: Dynamic) -> Dynamic {
    // Only a native value (or a shared one) can be frozen: a plain map, the event itself, is
    // not asked for the two types' ids.
    if value.is_variant() || value.is_shared() {
        if let Some(map) = value.read_lock::<StateMap>() {
            return Dynamic::from_map(map.entries().thawed(thaw));
        }
        if let Some(pool) = value.read_lock::<Pool>() {
            let plain: Array = pool.items().iter().cloned().map(thaw).collect();
            return Dynamic::from_array(plain);
        }
    }
    if value.is_map() {
        if let Some(mut map) = value.write_lock::<Map>() {
            map.values_mut().for_each(thaw_in_place);
        }
    } else if value.is_array() {
        if let Some(mut items) = value.write_lock::<Array>() {
            items.iter_mut().for_each(thaw_in_place);
        }
    }
    value
}

/// An event as the pipeline takes it: the event itself (a map, or an array of maps) made plain
/// where it is frozen, the state's maps and arrays inside it left as they are, for a writer that
/// reads them in place ([`read_frozen`]). Thawing them all copied, for every event, the records
/// an event carries (a customer's device, say): 5.1% of the seed port's instructions an event.
pub fn thaw_outer(value: Dynamic) -> Dynamic {
    let plain = if value.is_map() {
        true
    } else if value.is_array() {
        value
            .read_lock::<Array>()
            .is_some_and(|items| items.iter().all(Dynamic::is_map))
    } else {
        // `()`, a frozen map or array returned as it is, or anything a check refuses.
        false
    };
    if plain {
        value
    } else {
        thaw(value)
    }
}

/// Calls `write` with `value` read as the plain map or array it stands for, if it is a frozen
/// one ([`StateMap`], [`Pool`]; not through a shared value, whose content the writer reads
/// first): the encoder's [`crate::encode::ReadPlain`]. What it writes of it is what it would
/// write of the value [`thaw`] makes: the same keys in the same order, the same items.
pub fn read_frozen(
    value: &Dynamic,
    write: &mut dyn FnMut(Plain<'_>) -> Result<(), String>,
) -> Option<Result<(), String>> {
    if !value.is_variant() {
        return None;
    }
    if let Some(map) = value.read_lock::<StateMap>() {
        return Some(write(Plain::Map(map.entries().items())));
    }
    if let Some(pool) = value.read_lock::<Pool>() {
        return Some(write(Plain::Array(pool.items())));
    }
    None
}

fn thaw_in_place(value: &mut Dynamic) {
    // The kind's tag first: a string or a number (most fields) is not asked for its type id
    // (1,000 instructions a darooghe event, valgrind); a shared value is asked, as before, in
    // case it holds a state map.
    let frozen = || {
        (value.is_variant() || value.is_shared()) && (value.is::<StateMap>() || value.is::<Pool>())
    };
    if value.is_map() || value.is_array() || frozen() {
        *value = thaw(std::mem::take(value));
    }
}

/// Map functions that only read, offered on state maps: each runs Rhai's own map function on a
/// plain copy of the map. With the number of arguments after the map.
const MAP_READS: &[(&str, usize)] = &[
    ("keys", 0),
    ("values", 0),
    ("filter", 1),
    ("to_json", 0),
    ("pick_weighted", 0),
    ("to_string", 0),
    ("to_debug", 0),
];

/// Registers the `StateMap` type and its functions.
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<StateMap>("StateMap")
        // map[key], and map.key for keys without a getter: `()` when missing, as for maps.
        .register_indexer_get(|map: &mut StateMap, key: &str| map.get(key))
        // map[key] = value on a variable holding a copy: changes the copy (Rhai refuses it on
        // the state itself, which is read-only, since an index setter is not pure).
        .register_indexer_set(|map: &mut StateMap, key: &str, value: Dynamic| {
            Arc::make_mut(&mut map.entries).insert(key, value);
        })
        .register_fn("len", |map: StateMap| map.entries.len() as INT)
        .register_fn("is_empty", |map: StateMap| map.entries.is_empty())
        // `key in map`, `map.contains(key)`.
        .register_fn("contains", |map: StateMap, key: &str| {
            map.entries.contains_key(key)
        })
        .register_fn("get", |map: StateMap, key: &str| map.get(key));
    for &(name, arity) in MAP_READS {
        // The map is taken by value, so that Rhai knows it is not changed (and does not write it
        // back through a property chain).
        if arity == 0 {
            engine.register_fn(name, move |context: NativeCallContext, map: StateMap| {
                map_call(&context, name, &map, None)
            });
        } else {
            engine.register_fn(
                name,
                move |context: NativeCallContext, map: StateMap, arg: Dynamic| {
                    map_call(&context, name, &map, Some(arg))
                },
            );
        }
    }
}

/// Runs Rhai's map function `name` on a plain copy of `map` (and `arg`).
fn map_call(
    context: &NativeCallContext,
    name: &str,
    map: &StateMap,
    arg: Option<Dynamic>,
) -> Fallible<Dynamic> {
    let mut values = vec![Dynamic::from_map(map.entries().to_map())];
    values.extend(arg);
    let mut refs: Vec<&mut Dynamic> = values.iter_mut().collect();
    context.call_native_fn_raw(name, false, &mut refs)
}

#[cfg(test)]
mod tests {
    use super::super::tests::set_up;
    use super::*;
    use crate::encode::EventEncoder;

    /// The event of `source` at sequence number 0, encoded as JSON.
    fn event_json(source: &str) -> serde_json::Value {
        let (mut scenario, _) = set_up(source, 1, &[]);
        let event = scenario.event(0, 0).unwrap().cast::<Map>();
        let mut encoder = EventEncoder::new("customer_id");
        encoder.encode(&event, 0).unwrap();
        serde_json::from_slice(&encoder.payload).unwrap()
    }

    fn event_error(source: &str) -> String {
        let (mut scenario, _) = set_up(source, 1, &[]);
        let err = scenario.event(0, 0).unwrap_err();
        format!("{:?}", miette::Report::new(err))
    }

    /// A state map put into an event by a property write, inside an array, or held by a variable
    /// a closure captured (shared in Rhai) comes out a plain map: the encoder writes plain maps
    /// only, and `thaw` now asks a field's tag before its type.
    #[test]
    fn a_state_map_written_into_an_event_or_an_array_comes_out_a_plain_map() {
        let json = event_json(
            r#"
            fn setup(ctx) { #{ home: #{ lat: 35.7, city: "Tehran" } } }
            fn event(ctx) {
                let home = ctx.state.home;
                let city = || home.city;
                let event = #{ customer_id: "c".to_upper(), city: city.call() };
                event.home = home;
                event.list = [home];
                event
            }
            "#,
        );
        assert_eq!(
            json["home"],
            serde_json::json!({"lat": 35.7, "city": "Tehran"})
        );
        assert_eq!(json["city"], "Tehran");
        assert_eq!(json["list"][0]["city"], "Tehran");
    }

    #[test]
    fn a_natural_script_reads_the_frozen_state_as_maps_and_arrays() {
        let json = event_json(
            r#"
            fn config() { #{ shop: "corner" } }
            fn setup(ctx) {
                let by_id = #{};
                for i in 0..100 { by_id[`m${i}`] = #{ category: if i % 2 == 0 { "food" } else { "retail" } }; }
                #{
                    cities: [#{ name: "Tehran", lat: 35.7 }, #{ name: "Shiraz", lat: 29.6 }],
                    by_id: by_id,
                    methods: ["pos", "online"],
                    weights: #{ a: 0, b: 1 },
                    nested: #{ deep: #{ list: [1, 2, 3] } },
                }
            }
            fn event(ctx) {
                let s = ctx.state;
                let names = [];
                for c in s.cities { names.push(c.name); }
                #{
                    customer_id: "c",
                    names: names,
                    south: s.cities.filter(|c| c.lat < 30.0).map(|c| c.name),
                    category: s.by_id["m3"].category,
                    missing: s.by_id["nope"],
                    tables: s.by_id.len(),
                    has: "m7" in s.by_id,
                    pos: "pos" in s.methods,
                    last: s.methods[-1],
                    at: s.methods.index_of("online"),
                    keys: s.weights.keys(),
                    picked: pick_weighted(s.weights),
                    sum: s.nested.deep.list.reduce(|sum, x| sum + x, 0),
                    shop: ctx.settings.shop,
                    types: [type_of(s.by_id), type_of(s.methods)],
                    whole: s.nested,
                }
            }
            "#,
        );
        assert_eq!(json["names"], serde_json::json!(["Tehran", "Shiraz"]));
        assert_eq!(json["south"], serde_json::json!(["Shiraz"]));
        assert_eq!(json["category"], "retail");
        assert!(json["missing"].is_null());
        assert_eq!(json["tables"], 100);
        assert_eq!(json["has"], true);
        assert_eq!(json["pos"], true);
        assert_eq!(json["last"], "online");
        assert_eq!(json["at"], 1);
        assert_eq!(json["keys"], serde_json::json!(["a", "b"]));
        assert_eq!(json["picked"], "b");
        assert_eq!(json["sum"], 6);
        assert_eq!(json["shop"], "corner");
        assert_eq!(json["types"], serde_json::json!(["StateMap", "Pool"]));
        // Frozen values in an event come out as plain JSON.
        assert_eq!(
            json["whole"],
            serde_json::json!({ "deep": { "list": [1, 2, 3] } })
        );
    }

    #[test]
    fn the_state_cannot_be_changed_in_place() {
        let setup = "fn setup(ctx) { #{ list: [1, 2], m: #{ a: #{ b: 1 } } } }\n";
        for change in [
            "ctx.state.list.push(3);",
            "ctx.state.list[0] = 5;",
            "ctx.state.m.a.b = 5;",
            "ctx.state.m.a = 5;",
        ] {
            let source = format!("{setup}fn event(ctx) {{ {change} #{{}} }}");
            let message = event_error(&source);
            assert!(
                message.contains("read-only") && message.contains("remember"),
                "{change}: {message}"
            );
        }
    }

    #[test]
    fn a_copy_of_the_state_in_a_variable_changes_alone() {
        let source = r#"
            fn setup(ctx) { #{ list: [1, 2], items: pool([#{ x: 1 }]) } }
            fn event(ctx) {
                let l = ctx.state.list;
                l.push(3);
                l[0] = 9;
                let c = ctx.state.items.pick();
                c.x = 7;
                c.y = 8;
                #{ l: l, c: c, list: ctx.state.list, item: ctx.state.items[0] }
            }
        "#;
        let (mut scenario, _) = set_up(source, 1, &[]);
        for seq in 0..2 {
            let event = scenario.event(0, seq).unwrap();
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["l"], serde_json::json!([9, 2, 3]));
            assert_eq!(json["c"], serde_json::json!({ "x": 7, "y": 8 }));
            assert_eq!(json["list"], serde_json::json!([1, 2]), "event {seq}");
            assert_eq!(json["item"], serde_json::json!({ "x": 1 }), "event {seq}");
        }
    }

    /// A worker reads a copy of the state of its own (two cores counting references to the same
    /// records took each other's cache lines), the same values, read-only like the first's, and
    /// sharing with it only its large pools.
    #[test]
    fn a_worker_reads_a_copy_of_the_state_of_its_own_sharing_only_large_pools() {
        let source = r#"
            fn setup(ctx) {
                let big = [];
                let table = #{};
                for i in 0..5000 { big.push(#{ i: i }); table[`k${i}`] = i; }
                #{ xs: [#{ v: 1, name: "first" }, #{ v: 2, name: "second" }], big: big, table: table }
            }
            fn event(ctx) { #{ v: ctx.state.xs[ctx.seq % 2].v, i: ctx.state.big[4999].i } }
        "#;
        let (scenario, _) = set_up(source, 1, &[]);
        let mut fork = scenario.fork().unwrap();
        let event = fork.event(0, 1).unwrap().cast::<Map>();
        assert_eq!(event["v"].as_int().unwrap(), 2);
        assert_eq!(event["i"].as_int().unwrap(), 4999);

        let field = |state: &Dynamic, key: &str| state.read_lock::<StateMap>().unwrap().get(key);
        let items = |pool: &Dynamic| pool.read_lock::<Pool>().unwrap().items().as_ptr();
        let (first, copy) = (&*scenario.state, &*fork.state);
        assert!(!std::ptr::eq(
            first.read_lock::<StateMap>().unwrap().entries(),
            copy.read_lock::<StateMap>().unwrap().entries(),
        ));
        let (xs, xs_copy) = (field(first, "xs"), field(copy, "xs"));
        assert_ne!(items(&xs), items(&xs_copy), "a small pool is copied");
        assert!(xs_copy.is_read_only());
        let record = |pool: &Dynamic| pool.read_lock::<Pool>().unwrap().items()[0].clone();
        let (name, name_copy) = (
            field(&record(&xs), "name"),
            field(&record(&xs_copy), "name"),
        );
        assert_eq!(name_copy.to_string(), "first");
        assert_ne!(
            name.into_immutable_string().unwrap().as_ptr(),
            name_copy.into_immutable_string().unwrap().as_ptr(),
            "a string is copied"
        );
        assert_eq!(
            items(&field(first, "big")),
            items(&field(copy, "big")),
            "a pool of more than SHARED_ABOVE items is shared"
        );
        let entries =
            |map: &Dynamic| std::ptr::from_ref(map.read_lock::<StateMap>().unwrap().entries());
        assert_eq!(
            entries(&field(first, "table")),
            entries(&field(copy, "table")),
            "a map of more than SHARED_ABOVE entries is shared"
        );
        assert!(!Arc::ptr_eq(&scenario.settings, &fork.settings));
    }
}
