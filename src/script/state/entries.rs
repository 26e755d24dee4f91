//! The entries of a frozen map ([`super::StateMap`]), found by a hash of the key.
//!
//! Scripts read the state's records by property (`customer.home`, `merchant.category`,
//! `ctx.settings.declined_rate`), about twenty reads a darooghe event. In Rhai's map (a
//! `BTreeMap` of `SmartString`s) each read compared the key with several others byte by byte,
//! about 300 instructions a read with its copy (valgrind), and a look-up table's key
//! (`categories[merchant]`) about 450. Here the keys' 32-bit hashes are kept sorted beside them,
//! so a read hashes the key once, finds the hash among whole numbers (looked along in a record of
//! up to [`LOOK_ALONG`] keys, by halves in a larger map), and compares the one key whose hash
//! matches. A compiled script's property names carry their hashes ([`HashedKey`]), made once.

use std::fmt;
use std::hash::BuildHasher;
use std::ops::Deref;
use std::sync::OnceLock;

use foldhash::fast::FixedState;
use rhai::{Dynamic, Identifier, ImmutableString, Map};

/// Maps with at most this many keys have their hashes looked along, not searched by halves: as
/// few comparisons, and none mispredicted but the last.
const LOOK_ALONG: usize = 16;

/// A map's keys and values, in key order, with each key's hash.
#[derive(Debug, Clone, Default)]
pub struct Entries {
    /// Keys and values, sorted by key (the map's order).
    items: Vec<(Identifier, Dynamic)>,
    /// Each key's hash and its place in `items`, sorted.
    by_hash: Vec<(u32, u32)>,
    /// The plain map these entries become in an event ([`Self::thawed`]), made the first time
    /// one is asked for: a customer's `device` put in each of its events is built once, then
    /// copied (a copy of a built map is a third of building it from the entries; darooghe).
    plain: OnceLock<Map>,
}

impl Entries {
    /// The entries of `map`.
    pub fn from_map(map: Map) -> Self {
        let items: Vec<(Identifier, Dynamic)> = map.into_iter().collect();
        let by_hash = by_hash(&items);
        Self {
            items,
            by_hash,
            plain: OnceLock::new(),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Dynamic> {
        self.get_with(key, hash(key))
    }

    /// The value under a key whose hash was made once ([`HashedKey`]): a property name of a
    /// compiled script, read about twenty times a darooghe event.
    pub fn get_hashed(&self, key: &HashedKey) -> Option<&Dynamic> {
        self.get_with(&key.text, key.hash)
    }

    /// The value under `key`, whose hash is `hash`.
    #[inline(always)]
    fn get_with(&self, key: &str, hash: u32) -> Option<&Dynamic> {
        let first = if self.by_hash.len() <= LOOK_ALONG {
            self.by_hash.iter().take_while(|&&(h, _)| h < hash).count()
        } else {
            self.by_hash.partition_point(|&(h, _)| h < hash)
        };
        // Keys whose hashes collide are told apart by the comparison.
        self.by_hash[first..]
            .iter()
            .take_while(|&&(h, _)| h == hash)
            .map(|&(_, at)| &self.items[at as usize])
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    /// Sets `key` to `value`, in its place among the keys.
    pub fn insert(&mut self, key: &str, value: Dynamic) {
        match self.items.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(at) => self.items[at].1 = value,
            Err(at) => {
                self.items.insert(at, (key.into(), value));
                self.by_hash = by_hash(&self.items);
            }
        }
        self.plain = OnceLock::new();
    }

    /// Whether `key` is there.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Identifier> {
        self.items.iter().map(|(k, _)| k)
    }

    /// The values, in the keys' order.
    pub fn values(&self) -> impl Iterator<Item = &Dynamic> {
        self.items.iter().map(|(_, v)| v)
    }

    /// Its entries, in key order, as a slice (what a writer reads in place).
    pub fn items(&self) -> &[(Identifier, Dynamic)] {
        &self.items
    }

    /// The keys and values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Identifier, &Dynamic)> {
        self.items.iter().map(|(k, v)| (k, v))
    }

    /// The same entries, each value copied by `copy` (see [`super::private_copy`]); the plain
    /// map is made again when first asked for.
    pub fn copied(&self, copy: impl Fn(&Dynamic) -> Dynamic) -> Self {
        Self {
            items: self
                .items
                .iter()
                .map(|(key, value)| (key.clone(), copy(value)))
                .collect(),
            by_hash: self.by_hash.clone(),
            plain: OnceLock::new(),
        }
    }

    /// A plain map of the same entries.
    pub fn to_map(&self) -> Map {
        self.items.iter().cloned().collect()
    }

    /// A plain map of the same entries, each value made plain by `thaw`: built the first time,
    /// a copy of that map after (the entries do not change but by [`Self::insert`], which
    /// forgets it).
    pub fn thawed(&self, thaw: impl Fn(Dynamic) -> Dynamic) -> Map {
        self.plain
            .get_or_init(|| {
                self.items
                    .iter()
                    .map(|(key, value)| (key.clone(), thaw(value.clone())))
                    .collect()
            })
            .clone()
    }
}

/// A key with its hash, made once: a property name a compiled script reads (`customer.home`),
/// looked up without hashing it at each read. It reads as the name itself.
#[derive(Clone)]
pub struct HashedKey {
    text: ImmutableString,
    hash: u32,
}

impl HashedKey {
    /// `text` and its hash.
    pub fn new(text: ImmutableString) -> Self {
        let hash = hash(&text);
        Self { text, hash }
    }
}

impl Deref for HashedKey {
    type Target = ImmutableString;

    fn deref(&self) -> &ImmutableString {
        &self.text
    }
}

impl fmt::Debug for HashedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// Each of `items`' keys' hash and place, sorted.
fn by_hash(items: &[(Identifier, Dynamic)]) -> Vec<(u32, u32)> {
    let mut by_hash: Vec<(u32, u32)> = (0..items.len())
        .map(|at| (hash(&items[at].0), at as u32))
        .collect();
    by_hash.sort_unstable();
    by_hash
}

/// A key's hash: the same in every run and thread (a fixed seed), as a record's hashes are
/// made once and read anywhere.
fn hash(key: &str) -> u32 {
    FixedState::with_seed(0).hash_one(key) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_of(keys: &[&str]) -> Map {
        keys.iter()
            .enumerate()
            .map(|(i, k)| ((*k).into(), Dynamic::from_int(i as i64)))
            .collect()
    }

    /// Every key found, and no other, in a record and in a look-up table, as the map finds
    /// them.
    #[test]
    fn every_key_is_found_as_the_map_finds_it_small_or_large() {
        for size in [0, 1, 2, 7, LOOK_ALONG, LOOK_ALONG + 1, 500] {
            let keys: Vec<String> = (0..size).map(|i| format!("k{i}")).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let map = map_of(&refs);
            let entries = Entries::from_map(map.clone());
            assert_eq!(entries.len(), map.len());
            for (key, value) in &map {
                assert_eq!(
                    entries.get(key).and_then(|v| v.as_int().ok()),
                    value.as_int().ok(),
                    "{key} of {size}"
                );
                let hashed = HashedKey::new(key.as_str().into());
                assert_eq!(
                    entries.get_hashed(&hashed).and_then(|v| v.as_int().ok()),
                    value.as_int().ok(),
                    "{key} of {size}, hashed once"
                );
            }
            for missing in ["", "k", "K0", "k0 ", &format!("k{size}")] {
                assert!(entries.get(missing).is_none(), "{missing} of {size}");
                let hashed = HashedKey::new(missing.into());
                assert!(entries.get_hashed(&hashed).is_none(), "{missing} of {size}");
            }
            assert!(entries
                .keys()
                .map(|k| k.as_str())
                .eq(map.keys().map(|k| k.as_str())));
            assert_eq!(entries.to_map().len(), map.len());
        }
    }

    /// The plain map is built once and copied after; an insert (on a script's copy) is in the
    /// next plain map, and the map it was copied from keeps its own.
    #[test]
    fn the_plain_map_follows_an_insert_and_only_on_the_copy() {
        let original = Entries::from_map(map_of(&["os", "app_version"]));
        let keys = |map: &Map| map.keys().map(|k| k.to_string()).collect::<Vec<_>>();
        let first = original.thawed(|v| v);
        assert_eq!(keys(&first), ["app_version", "os"]);
        assert_eq!(keys(&original.thawed(|v| v)), keys(&first));
        let mut copy = original.clone();
        copy.insert("model", Dynamic::from_int(7));
        copy.insert("os", Dynamic::from_int(9));
        let changed = copy.thawed(|v| v);
        assert_eq!(keys(&changed), ["app_version", "model", "os"]);
        assert_eq!(changed["os"].as_int(), Ok(9));
        assert_eq!(original.thawed(|v| v)["os"].as_int(), Ok(0));
    }

    /// Two keys whose 32-bit hashes are the same (found by trying keys until two collide) are
    /// both found, each with its own value, in a record and in a table.
    #[test]
    fn keys_whose_hashes_collide_are_told_apart() {
        let mut seen = std::collections::HashMap::new();
        let (a, b) = (0..)
            .map(|i| format!("key{i}"))
            .find_map(|key| {
                let earlier = seen.insert(hash(&key), key.clone())?;
                Some((earlier, key))
            })
            .expect("a collision among 32-bit hashes");
        assert_eq!(hash(&a), hash(&b));
        for padding in [0, 100] {
            let mut keys: Vec<String> = (0..padding).map(|i| format!("pad{i}")).collect();
            keys.extend([a.clone(), b.clone()]);
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let map = map_of(&refs);
            let entries = Entries::from_map(map.clone());
            for key in [&a, &b] {
                assert_eq!(
                    entries.get(key).and_then(|v| v.as_int().ok()),
                    map.get(key.as_str()).and_then(|v| v.as_int().ok()),
                    "{key} among {} keys",
                    keys.len()
                );
            }
        }
    }

    /// Keys that differ only past the first bytes, or by length, or not ASCII.
    #[test]
    fn keys_alike_are_told_apart() {
        let keys = [
            "a", "ab", "abc", "abd", "ba", "é", "e", "lat", "lng", "location", "loc",
        ];
        let entries = Entries::from_map(map_of(&keys));
        let map = map_of(&keys);
        for key in keys {
            assert_eq!(
                entries.get(key).and_then(|v| v.as_int().ok()),
                map.get(key).and_then(|v| v.as_int().ok()),
                "{key}"
            );
        }
    }

    /// A key added or replaced keeps the keys in order and found, small or large.
    #[test]
    fn an_insert_keeps_the_entries_in_order_and_found() {
        for size in [3, 32, 100] {
            let keys: Vec<String> = (0..size).map(|i| format!("k{i:03}")).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut entries = Entries::from_map(map_of(&refs));
            entries.insert("k001", Dynamic::from_int(-1));
            entries.insert("a new key", Dynamic::from_int(-2));
            entries.insert("zz", Dynamic::from_int(-3));
            assert_eq!(entries.len(), size + 2);
            assert_eq!(entries.get("k001").unwrap().as_int(), Ok(-1));
            assert_eq!(entries.get("a new key").unwrap().as_int(), Ok(-2));
            assert_eq!(entries.get("zz").unwrap().as_int(), Ok(-3));
            assert_eq!(entries.get("k000").unwrap().as_int(), Ok(0));
            let keys: Vec<&str> = entries.keys().map(|k| k.as_str()).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            assert_eq!(keys, sorted);
        }
    }
}
