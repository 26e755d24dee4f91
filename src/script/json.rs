//! JSON text into Rhai values, as rhai's own serde support reads it, with fewer copies: what
//! `sim analyze` reads a message into for the detection rules (see [`super::event_view`]).

use std::fmt;
use std::ops::Range;

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

/// Where each top-level field of the JSON object `text` sits: its key's bytes (between the
/// quotes) and its value's, in the order written, without reading any value.
///
/// For a text already read as a JSON object (this checks only what it needs to find the
/// fields): a rule asking for one field then reads that field's value alone with
/// [`json_value`], instead of the whole object. `None` when the text is not shaped as an object
/// or a key holds an escape (`\"`), whose bytes are not the key: the caller reads the whole map.
pub fn object_fields(text: &[u8]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
    let mut fields = Vec::with_capacity(24);
    let mut at = skip_space(text, 0);
    if text.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(text, at + 1);
    if text.get(at) == Some(&b'}') {
        return Some(fields);
    }
    loop {
        if text.get(at) != Some(&b'"') {
            return None;
        }
        let key = at + 1..string_end(text, at)?;
        if text[key.clone()].contains(&b'\\') {
            return None;
        }
        at = skip_space(text, key.end + 1);
        if text.get(at) != Some(&b':') {
            return None;
        }
        let start = skip_space(text, at + 1);
        let end = value_end(text, start)?;
        fields.push((key, start..end));
        at = skip_space(text, end);
        match text.get(at) {
            Some(b',') => at = skip_space(text, at + 1),
            Some(b'}') => return Some(fields),
            _ => return None,
        }
    }
}

fn skip_space(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        at += 1;
    }
    at
}

/// The position of the quote closing the string whose opening quote is at `open`.
fn string_end(text: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    loop {
        match text.get(at)? {
            b'"' => return Some(at),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

/// The position just past the value starting at `start`: a string, an object or array (nested
/// ones and strings inside skipped whole), or a scalar (up to the next delimiter).
fn value_end(text: &[u8], start: usize) -> Option<usize> {
    match text.get(start)? {
        b'"' => Some(string_end(text, start)? + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = start;
            loop {
                match text.get(at)? {
                    b'"' => at = string_end(text, at)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let mut at = start;
            while !matches!(
                text.get(at),
                None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            ) {
                at += 1;
            }
            (at > start).then_some(at)
        }
    }
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

    #[test]
    fn each_field_read_alone_is_the_entry_of_the_whole_map() {
        let documents = [
            r#"{"b": 1, "a": "x", "c": {"z": null, "y": [1, -2, 3.5, "s}", true, {"k": []}]}}"#,
            r#" { "big" :18446744073709551615,"neg":-9223372036854775808 , "f": 1e300, "e": 0.1 } "#,
            r#"{"twice": 1, "other": 2, "twice": "last"}"#,
            r#"{"s": "quote \" brace } bracket ] comma ,", "t": "\\", "after": [[], {}]}"#,
            r#"{"": "", "u": "\u00e9\ud83d\ude00", "n": null, "yes": true, "no": false}"#,
            "{\n\t\"tabbed\"\r\n:\n[1,\n2]\n}",
            r#"{}"#,
        ];
        for document in documents {
            let map = json_map(document.as_bytes()).expect(document);
            let fields = object_fields(document.as_bytes()).expect(document);
            let mut read = Map::new();
            for (key, value) in fields {
                let name = std::str::from_utf8(&document.as_bytes()[key]).unwrap();
                let value = json_value(&document.as_bytes()[value]).expect(document);
                read.insert(name.into(), value);
            }
            assert_eq!(
                format!("{:?}", Dynamic::from_map(read)),
                format!("{:?}", Dynamic::from_map(map)),
                "{document}"
            );
        }
        // A key with an escape is not its bytes: the whole map is read instead.
        assert!(object_fields(br#"{"a\"b": 1}"#).is_none());
        for not_an_object in [
            "[1]",
            "3",
            "",
            "{\"a\" 1}",
            "{\"a\": 1 \"b\": 2}",
            "{\"a\": ",
        ] {
            assert!(
                object_fields(not_an_object.as_bytes()).is_none(),
                "{not_an_object}"
            );
        }
    }
}
