//! The sandbox's size limits on the fast path: items of arrays, entries of maps and bytes of
//! strings, counted through a value as Rhai counts them (`calc_data_sizes`), and the totals of
//! the variables a function grows, kept so that a `push` or `m[k] = v` costs the size of what it
//! adds, not a walk of everything already there.
//!
//! Rhai walks the whole variable after each such change, so a `setup` that pushes n customers
//! does n²/2 steps: 9 s for 16,000 customers of the seed port. The totals kept here give the
//! same verdict, change by change.

use rhai::{Array, Blob, Dynamic, ImmutableString, Map};

use super::super::limits;

/// Items of arrays, entries of maps and bytes of strings, counted through a value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    arrays: usize,
    maps: usize,
    strings: usize,
}

impl Sizes {
    /// The totals of `value` as Rhai counts them when it checks a variable: an array's items
    /// and a map's entries, and all they hold.
    pub fn of(value: &Dynamic) -> Self {
        let mut totals = Self::default();
        match value.read_lock::<Blob>() {
            // On its own a BLOB counts its bytes; held in an array or a map, one more.
            Some(blob) => totals.arrays = blob.len(),
            None => totals.add_held(value),
        }
        totals
    }

    /// The totals of `items`, as [`Sizes::of`] an array holding them.
    pub fn of_array(items: &Array) -> Self {
        let mut totals = Self::default();
        totals.add_array(items);
        totals
    }

    /// The totals of `map`, as [`Sizes::of`] a map holding its entries.
    pub fn of_map(map: &Map) -> Self {
        let mut totals = Self {
            maps: map.len(),
            ..Self::default()
        };
        map.values().for_each(|value| totals.add_held(value));
        totals
    }

    /// What `value` adds to an array it is an item of: one item, and what it holds.
    pub fn as_item(value: &Dynamic) -> Self {
        let mut totals = Self::held(value);
        totals.arrays += 1;
        totals
    }

    /// What `value` adds to a map it is an entry of: one entry, and what it holds.
    pub fn as_entry(value: &Dynamic) -> Self {
        let mut totals = Self::held(value);
        totals.maps += 1;
        totals
    }

    /// What `value` holds, counted as an item or an entry does.
    fn held(value: &Dynamic) -> Self {
        let mut totals = Self::default();
        totals.add_held(value);
        totals
    }

    /// These totals with `added` in and `removed` out.
    pub fn changed(self, added: Self, removed: Self) -> Self {
        Self {
            arrays: self.arrays + added.arrays - removed.arrays,
            maps: self.maps + added.maps - removed.maps,
            strings: self.strings + added.strings - removed.strings,
        }
    }

    /// Whether the sandbox's limits allow these totals.
    pub fn within_limits(self) -> bool {
        self.arrays <= limits::ARRAY_SIZE
            && self.maps <= limits::MAP_SIZE
            && self.strings <= limits::STRING_SIZE
    }

    fn add_array(&mut self, items: &Array) {
        self.arrays += items.len();
        items.iter().for_each(|item| self.add_held(item));
    }

    fn add_held(&mut self, value: &Dynamic) {
        if let Some(items) = value.read_lock::<Array>() {
            self.add_array(&items);
        } else if let Some(map) = value.read_lock::<Map>() {
            self.maps += map.len();
            map.values().for_each(|item| self.add_held(item));
        } else if let Some(text) = value.read_lock::<ImmutableString>() {
            self.strings += text.len();
        } else if let Some(blob) = value.read_lock::<Blob>() {
            self.arrays += 1 + blob.len();
        }
    }
}

/// Whether the arrays, maps and strings in `items` (counted through, as Rhai counts them) are
/// within the sandbox's limits.
pub fn array_within_limits(items: &Array) -> bool {
    Sizes::of_array(items).within_limits()
}

/// The totals of the variables the running functions changed in place, by call depth and slot.
/// A variable given a new value is forgotten ([`KnownSizes::forget`]), as are a call's own when
/// it returns ([`KnownSizes::leave`]); few are known at once, so a list serves.
#[derive(Debug, Default)]
pub struct KnownSizes(Vec<(usize, usize, Sizes)>);

impl KnownSizes {
    /// The totals of the variable in `slot` of the call at `depth`, if known.
    pub fn get(&self, depth: usize, slot: usize) -> Option<Sizes> {
        self.0
            .iter()
            .find(|(d, s, _)| (*d, *s) == (depth, slot))
            .map(|(.., sizes)| *sizes)
    }

    /// Keeps `sizes` as the totals of the variable in `slot` of the call at `depth`.
    pub fn set(&mut self, depth: usize, slot: usize, sizes: Sizes) {
        match self
            .0
            .iter_mut()
            .find(|(d, s, _)| (*d, *s) == (depth, slot))
        {
            Some(known) => known.2 = sizes,
            None => self.0.push((depth, slot, sizes)),
        }
    }

    /// Forgets the totals of the variable in `slot` of the call at `depth`: it was given a new
    /// value, or changed in a way not counted here.
    #[inline]
    pub fn forget(&mut self, depth: usize, slot: usize) {
        if !self.0.is_empty() {
            self.0.retain(|(d, s, _)| (*d, *s) != (depth, slot));
        }
    }

    /// Forgets the totals of the call at `depth`, which returned (and of any deeper).
    #[inline]
    pub fn leave(&mut self, depth: usize) {
        if !self.0.is_empty() {
            self.0.retain(|(d, ..)| *d < depth);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rhai's own count of one kind: the smallest limit of that kind it accepts `value` under
    /// (its limit 0 means none, so a count of 0 reads as 1).
    fn rhai_count(value: &Dynamic, limit: fn(&mut rhai::Engine, usize)) -> usize {
        (1..10_000)
            .find(|&n| {
                let mut engine = rhai::Engine::new();
                limit(&mut engine, n);
                engine.ensure_data_size_within_limits(value).is_ok()
            })
            .unwrap()
    }

    fn value() -> Dynamic {
        let mut inner = Map::new();
        inner.insert("name".into(), "Shiraz".into());
        inner.insert("codes".into(), Dynamic::from_blob(vec![1, 2, 3]));
        inner.insert(
            "near".into(),
            Dynamic::from_array(vec!["Tabriz".into(), Dynamic::from_int(3)]),
        );
        let mut outer = Map::new();
        outer.insert("city".into(), Dynamic::from_map(inner.clone()));
        outer.insert("label".into(), "twelve bytes".into());
        Dynamic::from_array(vec![
            Dynamic::from_map(outer),
            Dynamic::from_map(inner),
            "x".into(),
            Dynamic::from_array(vec![Dynamic::from_int(1), Dynamic::from_int(2)]),
        ])
    }

    #[test]
    fn values_are_counted_as_rhai_counts_them() {
        let value = value();
        let ours = Sizes::of(&value);
        let arrays = rhai_count(&value, |e, n| {
            e.set_max_array_size(n);
        });
        let maps = rhai_count(&value, |e, n| {
            e.set_max_map_size(n);
        });
        let strings = rhai_count(&value, |e, n| {
            e.set_max_string_size(n);
        });
        assert_eq!((arrays, maps, strings), (18, 8, 37));
        assert_eq!(
            ours,
            Sizes {
                arrays,
                maps,
                strings
            }
        );
        // A BLOB on its own counts its bytes only.
        let blob = Dynamic::from_blob(vec![0; 5]);
        assert_eq!(
            rhai_count(&blob, |e, n| {
                e.set_max_array_size(n);
            }),
            5
        );
        assert_eq!(Sizes::of(&blob).arrays, 5);
    }

    #[test]
    fn a_change_counted_gives_the_totals_of_a_walk() {
        let value = value();
        let mut items = value.clone().into_array().unwrap();
        let before = Sizes::of(&value);
        let added = Dynamic::from_map(Map::from_iter([("k".into(), "vvv".into())]));
        let removed = items[1].clone();
        items[1] = added.clone();
        let after = before.changed(Sizes::as_item(&added), Sizes::as_item(&removed));
        assert_eq!(after, Sizes::of_array(&items));
    }

    #[test]
    fn known_totals_are_forgotten_with_their_variable_or_call() {
        let mut known = KnownSizes::default();
        let sizes = Sizes::of(&value());
        known.set(1, 0, sizes);
        known.set(1, 2, sizes);
        known.set(2, 0, sizes);
        known.forget(1, 2);
        assert_eq!(known.get(1, 2), None);
        assert_eq!(known.get(1, 0), Some(sizes));
        known.leave(2);
        assert_eq!(known.get(2, 0), None);
        assert_eq!(known.get(1, 0), Some(sizes));
    }
}
