//! The transaction as a Rhai detection rule sees it: a read-only handle on the event's map.
//!
//! A rule (`sim analyze`'s `scripts/detect/`) is called once per transaction with the event and
//! the customer's last events. Passing them as Rhai maps copied every map (every field, the
//! nested `location` and `device_info`) for every rule and every event: 21 deep copies a rule, most
//! of `sim analyze`'s time with the shipped rules. An [`EventView`] is the map behind an `Arc`, so
//! handing it to a rule copies a pointer; it is built once, when the transaction is read, and the
//! history keeps the same handle.
//!
//! In a script it reads like the map it wraps: `event.amount`, `event["amount"]`,
//! `event.location.lat`, a missing field is `()`, and `keys()`, `values()`, `len()`, `"f" in
//! event`, `to_map()` work. Writing a field (`event.amount = 0`) copies the map first
//! (copy on write), so a rule's change stays in its own call, as it did with a map passed by
//! value. `type_of(event)` is `"Event"`.
//!
//! It lives with the scripting layer, not with the analyzer, because the fast path reads it too
//! (`event.amount` without Rhai's indexer call).

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use rhai::{Array, Dynamic, Engine, Identifier, ImmutableString, Map};

use super::json::scan::{object_fields, FieldSpan, Fields};
use super::json::{json_map, json_value};

/// The event's map, shared by the history and every rule call (see the module doc).
#[derive(Debug, Clone)]
pub struct EventView(Arc<Record>);

/// What a handle holds: the fields known without reading the JSON text, the others each read
/// from the text the first time a rule asks for it, and the whole map, read only when a rule
/// asks for all of it (`keys()`, `to_map()`, ...) or writes.
///
/// The analyzer hands over the fields rules read on most events (`_time`, `amount`,
/// `payment_method`), decoded when it read the transaction; a rule that reads only those never
/// pays for the map, which was most of the cost of an event for rules (callgrind, darooghe). A
/// rule that reads another (`location`, `transaction_id`) pays for that field's value alone.
#[derive(Debug, Clone)]
struct Record {
    /// By name; each as the map read from the text would have it.
    known: Vec<(&'static str, Dynamic)>,
    /// The JSON object the fields are read from.
    text: Cow<'static, [u8]>,
    /// Where the text's top-level fields are: as the caller's scan found them, or found by a
    /// scan on the first read of a field not known; `None` inside when they cannot be found one
    /// by one (a key with an escape): the map is read instead.
    spans: OnceLock<Option<Vec<FieldSpan>>>,
    /// The value of each field of `spans`, in the same order, each read the first time a rule
    /// asks for it.
    values: OnceLock<Vec<OnceLock<Dynamic>>>,
    /// The whole map, the known fields included.
    map: OnceLock<Map>,
}

impl EventView {
    /// A handle on `map`.
    pub fn new(map: Map) -> Self {
        Self(Arc::new(Record {
            known: Vec::new(),
            text: Cow::Borrowed(b"{}"),
            spans: OnceLock::new(),
            values: OnceLock::new(),
            map: OnceLock::from(map),
        }))
    }

    /// A handle on the JSON object `text` whose fields `known` are already decoded (each as
    /// [`json_map`] would read it; a field not in the text, such as `_time`, is added to the
    /// map); the rest is read when first needed, from `spans` when the caller's scan of the
    /// text found where its fields are ([`object_fields`]), else from a scan then. `None` when
    /// `text` is not an object. The caller has read `text` as JSON: a text that turns out not
    /// to be gives the known fields only.
    pub fn lazy(
        text: Cow<'_, [u8]>,
        spans: Option<Vec<FieldSpan>>,
        known: Vec<(&'static str, Dynamic)>,
    ) -> Option<Self> {
        let first = text.iter().find(|b| !b.is_ascii_whitespace());
        (first == Some(&b'{')).then(|| {
            Self(Arc::new(Record {
                known,
                text: Cow::Owned(text.into_owned()),
                spans: spans.map_or_else(OnceLock::new, |spans| OnceLock::from(Some(spans))),
                values: OnceLock::new(),
                map: OnceLock::new(),
            }))
        })
    }

    /// The field `name`, `()` when there is none (as a map read with
    /// `fail_on_invalid_map_property(false)` gives).
    pub fn get(&self, name: &str) -> Dynamic {
        self.with_field(name, Dynamic::clone)
    }

    /// Calls `f` with the field `name` (`()` when there is none), borrowed: reading
    /// `event.location.lat` copies no map.
    pub fn with_field<R>(&self, name: &str, f: impl FnOnce(&Dynamic) -> R) -> R {
        let record = &*self.0;
        if let Some(map) = record.map.get() {
            return f(map.get(name).unwrap_or(&Dynamic::UNIT));
        }
        if let Some((_, value)) = record.known.iter().find(|(key, _)| *key == name) {
            return f(value);
        }
        let Some(spans) = record.spans() else {
            return f(record.map().get(name).unwrap_or(&Dynamic::UNIT));
        };
        // A key written twice has its last value, as in the map.
        let text = &record.text;
        let Some(index) = spans
            .iter()
            .rposition(|span| &text[span.key.range()] == name.as_bytes())
        else {
            return f(&Dynamic::UNIT);
        };
        let values = record
            .values
            .get_or_init(|| spans.iter().map(|_| OnceLock::new()).collect());
        let read = &values[index];
        match read.get() {
            Some(value) => f(value),
            None => match json_value(&text[spans[index].value.range()]) {
                Some(value) => f(read.get_or_init(|| value)),
                // Not a value after all (the text was not JSON): as the map would have it.
                None => f(record.map().get(name).unwrap_or(&Dynamic::UNIT)),
            },
        }
    }

    /// The whole map.
    pub fn map(&self) -> &Map {
        self.0.map()
    }

    /// Sets the field `name`: on a copy of the map when another handle shares it.
    fn set(&mut self, name: &str, value: Dynamic) {
        let record = Arc::make_mut(&mut self.0);
        record.map();
        if let Some(map) = record.map.get_mut() {
            map.insert(name.into(), value);
        }
    }
}

impl Record {
    /// Where the text's fields are, scanned for the first time they are asked for unless the
    /// caller gave them; `None` when they cannot be read one by one.
    fn spans(&self) -> Option<&[FieldSpan]> {
        self.spans
            .get_or_init(|| match object_fields(&self.text) {
                Ok(Fields::Object(spans)) => Some(spans),
                _ => None,
            })
            .as_deref()
    }

    fn map(&self) -> &Map {
        self.map.get_or_init(|| {
            let mut map = json_map(&self.text).unwrap_or_default();
            for (key, value) in &self.known {
                map.insert((*key).into(), value.clone());
            }
            map
        })
    }
}

/// Registers the handle's type and functions on the rules' engine.
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<EventView>("Event")
        // A property with no getter of its own falls back to the indexer (Rhai does that), so
        // `event.amount` and `event["amount"]` both end here.
        .register_indexer_get(|event: &mut EventView, name: &str| event.get(name))
        .register_indexer_set(|event: &mut EventView, name: &str, value: Dynamic| {
            event.set(name, value)
        })
        .register_fn("keys", |event: &mut EventView| -> Array {
            // As strings, as a map's `keys()` gives them (a key itself is not a Rhai string).
            let key = |k: &Identifier| Dynamic::from(ImmutableString::from(k.as_str()));
            event.map().keys().map(key).collect()
        })
        .register_fn("values", |event: &mut EventView| -> Array {
            event.map().values().cloned().collect()
        })
        .register_fn("len", |event: &mut EventView| event.map().len() as i64)
        .register_fn(
            "contains",
            |event: &mut EventView, name: ImmutableString| event.map().contains_key(name.as_str()),
        )
        .register_fn("to_map", |event: &mut EventView| event.map().clone())
        .register_fn("to_string", |event: &mut EventView| {
            Dynamic::from_map(event.map().clone()).to_string()
        })
        .register_fn("to_debug", |event: &mut EventView| {
            format!("{:?}", Dynamic::from_map(event.map().clone()))
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut engine = Engine::new();
        engine.set_fail_on_invalid_map_property(false);
        register(&mut engine);
        engine
    }

    fn view() -> EventView {
        let map: Dynamic = serde_json::from_str(
            r#"{"amount": 5, "payment_method": "pos", "location": {"lat": 35.5, "lng": 51.0}}"#,
        )
        .unwrap();
        EventView::new(map.cast::<Map>())
    }

    #[test]
    fn a_rule_reads_the_handle_as_it_read_the_map() {
        let engine = engine();
        let mut scope = rhai::Scope::new();
        scope.push("event", view());
        let read = |script: &str, scope: &mut rhai::Scope| {
            engine
                .eval_with_scope::<Dynamic>(scope, script)
                .unwrap()
                .to_string()
        };
        assert_eq!(read("event.amount + 1", &mut scope), "6");
        assert_eq!(read(r#"event["payment_method"]"#, &mut scope), "pos");
        assert_eq!(read("event.location.lat", &mut scope), "35.5");
        assert_eq!(read("event.missing == ()", &mut scope), "true");
        assert_eq!(read(r#""amount" in event"#, &mut scope), "true");
        assert_eq!(read("event.keys().len()", &mut scope), "3");
        assert_eq!(read("type_of(event.to_map())", &mut scope), "map");
    }

    #[test]
    fn a_lazy_handle_reads_as_the_whole_map_and_reads_the_text_only_when_needed() {
        let text = br#" {"amount": 5, "payment_method": "pos", "location": {"lat": 35.5}}"#;
        let known = vec![
            ("amount", Dynamic::from_int(5)),
            ("_time", Dynamic::from_int(9)),
        ];
        let lazy = EventView::lazy(text[..].into(), None, known).unwrap();
        assert_eq!(lazy.get("amount").as_int(), Ok(5));
        assert_eq!(lazy.get("_time").as_int(), Ok(9));
        assert!(
            lazy.0.map.get().is_none(),
            "known fields read without the map"
        );
        assert_eq!(lazy.get("payment_method").to_string(), "pos");
        assert_eq!(lazy.get("missing").type_name(), "()");
        assert!(
            lazy.0.map.get().is_none(),
            "a field not known is read alone, without the map"
        );
        assert!(lazy.0.values.get().is_some());
        // An escaped key: the fields cannot be read one by one, the map is read instead.
        let escaped =
            EventView::lazy(br#"{"a\u0062": 1, "c": 2}"#[..].into(), None, Vec::new()).unwrap();
        assert_eq!(escaped.get("ab").as_int(), Ok(1));
        assert!(escaped.0.map.get().is_some());
        let engine = engine();
        let mut scope = rhai::Scope::new();
        scope.push("event", lazy.clone());
        let read = |script: &str, scope: &mut rhai::Scope| {
            engine
                .eval_with_scope::<Dynamic>(scope, script)
                .unwrap()
                .to_string()
        };
        assert_eq!(
            read("event.keys()", &mut scope),
            r#"["_time", "amount", "location", "payment_method"]"#
        );
        assert_eq!(read("event.location.lat", &mut scope), "35.5");
        assert_eq!(read("event._time = 1; event._time", &mut scope), "1");
        assert_eq!(
            lazy.get("_time").as_int(),
            Ok(9),
            "a write stays in its copy"
        );
        assert!(EventView::lazy(b" [1]"[..].into(), None, Vec::new()).is_none());

        // Where the fields are, as the caller's scan found them, is taken as given: the text is
        // not scanned again (here the spans say `a` is where `b`'s value is).
        let text = br#"{"a": 1, "b": 2}"#;
        let Ok(Fields::Object(mut spans)) = object_fields(text) else {
            panic!("an object");
        };
        spans[0].value = spans[1].value;
        let given = EventView::lazy(text[..].into(), Some(spans), Vec::new()).unwrap();
        assert_eq!(given.get("a").as_int(), Ok(2));
    }

    #[test]
    fn writing_a_field_copies_the_map_and_leaves_the_shared_one_alone() {
        let engine = engine();
        let shared = view();
        let mut scope = rhai::Scope::new();
        scope.push("event", shared.clone());
        let changed: i64 = engine
            .eval_with_scope(&mut scope, "event.amount = 7; event.amount")
            .unwrap();
        assert_eq!(changed, 7);
        assert_eq!(shared.get("amount").as_int(), Ok(5));
    }
}
