//! The transaction as a Rhai detection rule sees it: a read-only handle on the event's map.
//!
//! A rule is called once per transaction with the event and the customer's last
//! [`super::HISTORY`] events. Passing them as Rhai maps copied every map (every field, the
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

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, ImmutableString, Map};

/// The event's map, shared by the history and every rule call (see the module doc).
#[derive(Debug, Clone)]
pub struct EventView(Arc<Map>);

impl EventView {
    /// A handle on `map`.
    pub fn new(map: Map) -> Self {
        Self(Arc::new(map))
    }

    /// The field `name`, `()` when there is none (as a map read with
    /// `fail_on_invalid_map_property(false)` gives).
    pub fn get(&self, name: &str) -> Dynamic {
        self.0.get(name).cloned().unwrap_or(Dynamic::UNIT)
    }

    /// The map itself.
    pub fn map(&self) -> &Map {
        &self.0
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
            Arc::make_mut(&mut event.0).insert(name.into(), value);
        })
        .register_fn("keys", |event: &mut EventView| -> Array {
            event.0.keys().map(|k| Dynamic::from(k.clone())).collect()
        })
        .register_fn("values", |event: &mut EventView| -> Array {
            event.0.values().cloned().collect()
        })
        .register_fn("len", |event: &mut EventView| event.0.len() as i64)
        .register_fn(
            "contains",
            |event: &mut EventView, name: ImmutableString| event.0.contains_key(name.as_str()),
        )
        .register_fn("to_map", |event: &mut EventView| event.0.as_ref().clone())
        .register_fn("to_string", |event: &mut EventView| {
            Dynamic::from_map(event.0.as_ref().clone()).to_string()
        })
        .register_fn("to_debug", |event: &mut EventView| {
            format!("{:?}", Dynamic::from_map(event.0.as_ref().clone()))
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
