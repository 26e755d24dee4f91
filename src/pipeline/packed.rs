//! Follow-up data kept compact while it waits: a scheduled call's `data` (a payment spec with its
//! customer and merchant maps, say) is held as JSON bytes rather than as Rhai maps.
//!
//! A Rhai map is a B-tree whose every node reserves room for eleven entries, so a spec with a few
//! nested maps takes about 3 KiB; its JSON, about 400 bytes. A scenario that schedules payments
//! half an hour ahead keeps tens of thousands of them waiting at 10,000 events/s, so the form
//! they wait in decides how far memory grows. Only values that JSON gives back exactly are packed
//! (unit, booleans, integers, finite floats, strings, and arrays and maps of them); anything else
//! (a character, a pool, a timestamp) waits as it is.

use rhai::{Dynamic, Map};

/// A value waiting in the follow-up queue.
pub enum Packed {
    /// JSON bytes of a value that round-trips exactly.
    Json(Box<[u8]>),
    /// A value JSON would not give back as it was.
    Value(Dynamic),
}

impl Packed {
    /// Packs `value`, as JSON when that gives it back exactly.
    pub fn pack(value: Dynamic) -> Self {
        if round_trips(&value) {
            if let Ok(bytes) = serde_json::to_vec(&value) {
                return Packed::Json(bytes.into_boxed_slice());
            }
        }
        Packed::Value(value)
    }

    /// The value as it was packed.
    pub fn unpack(self) -> Dynamic {
        match self {
            Packed::Json(bytes) => serde_json::from_slice(&bytes)
                .expect("JSON written by serde_json from a value that round-trips"),
            Packed::Value(value) => value,
        }
    }
}

/// Whether JSON gives `value` back with the same types and contents.
fn round_trips(value: &Dynamic) -> bool {
    if value.is_unit() || value.is_bool() || value.is_int() || value.is_string() {
        true
    } else if let Ok(f) = value.as_float() {
        // JSON has no NaN or infinities; and a float must not come back as an integer, which
        // serde_json avoids by writing `1.0`.
        f.is_finite()
    } else if let Some(items) = value.read_lock::<rhai::Array>() {
        items.iter().all(round_trips)
    } else if let Some(map) = value.read_lock::<Map>() {
        map.values().all(round_trips)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::Engine;

    fn eval(script: &str) -> Dynamic {
        Engine::new().eval::<Dynamic>(script).unwrap()
    }

    #[test]
    fn packs_plain_values_as_json_and_gives_them_back_exactly() {
        let value = eval(
            r#"#{ id: "cust_7", amount: 1200000, rate: 1.0, when: -5, ok: true, none: (),
                  home: #{ lat: 35.7, lng: 51.4 }, list: [1, 2.5, "x", [], #{}] }"#,
        );
        let packed = Packed::pack(value.clone());
        assert!(matches!(packed, Packed::Json(_)));
        let back = packed.unpack();
        // Same contents and the same types (1.0 stays a float, () stays unit).
        assert_eq!(format!("{back:?}"), format!("{value:?}"));
        let map = back.cast::<Map>();
        assert!(map["rate"].is_float() && map["amount"].is_int() && map["none"].is_unit());
    }

    #[test]
    fn keeps_what_json_would_change_as_it_is() {
        for script in ["#{ c: 'x' }", "[1.0 / 0.0]", "#{ f: Fn(\"later\") }"] {
            let value = eval(script);
            let packed = Packed::pack(value.clone());
            assert!(matches!(packed, Packed::Value(_)), "{script}");
            assert_eq!(format!("{:?}", packed.unpack()), format!("{value:?}"));
        }
    }
}
