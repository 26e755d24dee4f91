//! JSON text into Rhai values, as rhai's own serde support reads it, with fewer copies: what
//! `sim analyze` reads a message into for the detection rules (see [`super::event_view`]).

pub mod scan;

use std::fmt;

use rhai::{Array, Dynamic, Identifier, ImmutableString, Map, INT};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON object as the Rhai map rhai's own serde support makes of it
/// (`serde_json::from_slice::<Dynamic>`), `None` when `payload` is not JSON or not an object.
/// Built with fewer copies: keys and strings are taken from the text as they are read, and a
/// map's entries are gathered and then built in one go (the producer writes keys in order, which
/// a B-tree builds fastest), where Rhai's reads each key into a `String` and inserts entries one
/// by one: 43,000 instructions an event against 24,600 (callgrind, darooghe), and the same map,
/// which a test holds it to.
pub fn json_map(payload: &[u8]) -> Option<Map> {
    json_value(payload)?.try_cast::<Map>()
}

/// One JSON value (of any kind) as the `Dynamic` rhai's serde support makes of it, `None` when
/// `text` is not one JSON value.
pub fn json_value(text: &[u8]) -> Option<Dynamic> {
    let mut reader = serde_json::Deserializer::from_slice(text);
    let value = JsonValue.deserialize(&mut reader).ok()?;
    reader.end().ok()?;
    Some(value)
}

/// Reads a JSON value as a `Dynamic` (see [`json_map`]).
#[derive(Clone, Copy)]
struct JsonValue;

impl<'de> DeserializeSeed<'de> for JsonValue {
    type Value = Dynamic;

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<Dynamic, D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonValue {
    type Value = Dynamic;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Dynamic, E> {
        Ok(Dynamic::from_bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Dynamic, E> {
        Ok(Dynamic::from_int(v))
    }

    // As Rhai: an integer beyond its range is a float.
    fn visit_u64<E>(self, v: u64) -> Result<Dynamic, E> {
        Ok(INT::try_from(v).map_or_else(|_| Dynamic::from_float(v as f64), Dynamic::from_int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Dynamic, E> {
        Ok(Dynamic::from_float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Dynamic, E> {
        Ok(Dynamic::from(ImmutableString::from(v)))
    }

    fn visit_unit<E>(self) -> Result<Dynamic, E> {
        Ok(Dynamic::UNIT)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Dynamic, A::Error> {
        let mut array = Array::with_capacity(items.size_hint().unwrap_or(0));
        while let Some(item) = items.next_element_seed(self)? {
            array.push(item);
        }
        Ok(Dynamic::from_array(array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Dynamic, A::Error> {
        let mut pairs: Vec<(Identifier, Dynamic)> = Vec::with_capacity(24);
        while let Some(key) = entries.next_key_seed(JsonKey)? {
            pairs.push((key, entries.next_value_seed(self)?));
        }
        // A key written twice keeps its last value, as inserting one by one would.
        Ok(Dynamic::from_map(pairs.into_iter().collect()))
    }
}

/// Reads a JSON object's key as a map key, without a `String` first.
struct JsonKey;

impl<'de> DeserializeSeed<'de> for JsonKey {
    type Value = Identifier;

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<Identifier, D::Error> {
        reader.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for JsonKey {
    type Value = Identifier;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Identifier, E> {
        Ok(Identifier::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_read_into_the_map_rhai_makes_of_it() {
        let documents = [
            r#"{"b": 1, "a": "x", "c": {"z": null, "y": [1, -2, 3.5, "s", true, {"k": []}]}}"#,
            r#"{"big": 18446744073709551615, "neg": -9223372036854775808, "f": 1e300, "e": 0.1}"#,
            r#"{"twice": 1, "other": 2, "twice": "last"}"#,
            r#"{"escaped \"key\"": "line\nbreak \u00e9 \ud83d\ude00", "": ""}"#,
            r#"{"a_key_longer_than_twenty_three_bytes_to_box": {"nested": {"deeper": {}}}}"#,
            r#"{}"#,
        ];
        for document in documents {
            let ours = json_map(document.as_bytes()).expect(document);
            let rhai: Dynamic = serde_json::from_str(document).unwrap();
            assert_eq!(
                format!("{:?}", Dynamic::from_map(ours)),
                format!("{rhai:?}"),
                "{document}"
            );
        }
        for not_an_object in ["[1]", "3", "\"s\"", "{\"a\": 1} x", "{\"a\": }", ""] {
            assert!(
                json_map(not_an_object.as_bytes()).is_none(),
                "{not_an_object}"
            );
        }
    }
}
