//! Turning what `event(ctx)` returned into Kafka records: the key field and the value, in JSON
//! (the default) or in Avro's Confluent wire format (`--encoding avro`, see [`crate::avro`]).

use std::sync::Arc;

use rhai::{Dynamic, Map};

use crate::avro::{AvroError, AvroWriter, EventSchema};

mod json;

/// An event that cannot be encoded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EncodeError {
    /// The event lacks the key field.
    #[error("event {seq} has no `{field}` field to use as the message key")]
    #[diagnostic(
        code(sim::event::missing_key),
        help("add the field to the event, or choose another with the key_field setting")
    )]
    MissingKey {
        /// The key field setting.
        field: String,
        /// The arrival's sequence number.
        seq: i64,
    },
    /// The ground-truth field `_fraud` is neither a pattern name nor `()`.
    #[error("event {seq} has `_fraud` of type {found}; it must be a fraud pattern's name or ()")]
    #[diagnostic(code(sim::event::bad_label))]
    BadLabel {
        /// The arrival's sequence number.
        seq: i64,
        /// The type found.
        found: String,
    },
    /// A value JSON cannot hold.
    #[error("event {seq} cannot be encoded as JSON: {message}")]
    #[diagnostic(code(sim::event::encode))]
    Json {
        /// The arrival's sequence number.
        seq: i64,
        /// Which field, and what it holds.
        message: String,
    },
    /// The event does not fit the Avro schema.
    #[error("event {seq} does not fit the Avro schema: {message}")]
    #[diagnostic(
        code(sim::avro::encode),
        help("the schema is derived from config().schema (or is config().avro_schema); `sim check` shows where events break the declared schema, `sim schema` prints the Avro one")
    )]
    Avro {
        /// The arrival's sequence number.
        seq: i64,
        /// Which field, and how.
        message: String,
    },
}

/// How message values are written.
#[derive(Debug, Clone, Default)]
pub enum ValueFormat {
    /// A JSON object.
    #[default]
    Json,
    /// Avro in the Confluent wire format, with a registered schema.
    Avro(Arc<AvroWriter>),
}

/// A native value read as the plain map or array it stands for: a layer above keeps values
/// (the scenario state's frozen maps and pools) that the JSON writer can write where they lie,
/// without their being copied into plain ones first.
pub enum Plain<'a> {
    /// A map's entries, in the order a plain map keeps its keys.
    Map(&'a [(rhai::Identifier, Dynamic)]),
    /// An array's items.
    Array(&'a [Dynamic]),
}

/// Calls the writer with `value` read as [`Plain`], if it stands for a plain map or array, and
/// gives back what the writer gave; `None` for any other value.
pub type ReadPlain =
    fn(&Dynamic, &mut dyn FnMut(Plain<'_>) -> Result<(), String>) -> Option<Result<(), String>>;

/// How the layer that keeps native values standing for plain maps and arrays has them read.
#[derive(Debug, Clone, Copy)]
pub struct PlainValues {
    /// Reads one in place, for the JSON writer.
    pub read: ReadPlain,
    /// Makes one the plain value it stands for: a key is written as the plain value's text.
    pub thaw: fn(Dynamic) -> Dynamic,
}

/// Encodes events into reusable buffers, so the hot path allocates nothing once warmed up.
#[derive(Debug, Default)]
pub struct EventEncoder {
    key_field: String,
    format: ValueFormat,
    /// How the JSON writer reads native values that stand for plain maps and arrays.
    plain: Option<PlainValues>,
    /// The last event's key.
    pub key: Vec<u8>,
    /// The last event's value.
    pub payload: Vec<u8>,
}

impl Clone for EventEncoder {
    /// An encoder of the same kind, with buffers of its own.
    fn clone(&self) -> Self {
        let mut copy = Self::with_format(&self.key_field, self.format.clone());
        copy.plain = self.plain;
        copy
    }
}

impl EventEncoder {
    /// An encoder that keys events by `key_field`.
    pub fn new(key_field: &str) -> Self {
        Self::with_format(key_field, ValueFormat::Json)
    }

    /// An encoder that keys events by `key_field` and writes values as `format` says.
    pub fn with_format(key_field: &str, format: ValueFormat) -> Self {
        Self {
            key_field: key_field.to_string(),
            format,
            plain: None,
            key: Vec::with_capacity(64),
            payload: Vec::with_capacity(1024),
        }
    }

    /// An encoder writing Avro with `schema` under no registered id: for a sample checked
    /// before the schema is registered, where an event the schema does not fit fails.
    pub fn unregistered_avro(
        key_field: &str,
        schema: &EventSchema,
        scenario: &str,
    ) -> Result<Self, AvroError> {
        let writer = schema.writer(0, scenario)?;
        Ok(Self::with_format(
            key_field,
            ValueFormat::Avro(Arc::new(writer)),
        ))
    }

    /// Writes the native values `plain` reads as plain maps and arrays where they lie (JSON
    /// only: the Avro writer reads plain values).
    pub fn read_plain_with(&mut self, plain: PlainValues) {
        self.plain = Some(plain);
    }

    /// Whether it writes such values where they lie, so an event holding them need not be made
    /// plain for it.
    pub fn reads_in_place(&self) -> bool {
        matches!(self.format, ValueFormat::Json) && self.plain.is_some()
    }

    /// Encodes `event` into `self.key` and `self.payload`.
    pub fn encode(&mut self, event: &Map, seq: i64) -> Result<(), EncodeError> {
        self.key.clear();
        self.payload.clear();
        let key = event
            .get(self.key_field.as_str())
            .filter(|value| !value.is_unit())
            .ok_or_else(|| EncodeError::MissingKey {
                field: self.key_field.clone(),
                seq,
            })?;
        match self.plain.filter(|_| key.is_variant()) {
            Some(plain) => write_key(&(plain.thaw)(key.clone()), &mut self.key),
            None => write_key(key, &mut self.key),
        }
        match &self.format {
            ValueFormat::Json => {
                let plain = self.plain.map(|plain| plain.read);
                json::write_object(&mut self.payload, event, plain)
                    .map_err(|message| EncodeError::Json { seq, message })
            }
            ValueFormat::Avro(writer) => writer
                .write(event, &mut self.payload)
                .map_err(|message| EncodeError::Avro { seq, message }),
        }
    }
}

fn write_key(key: &Dynamic, out: &mut Vec<u8>) {
    use std::io::Write;
    if let Some(text) = key.read_lock::<rhai::ImmutableString>() {
        out.extend_from_slice(text.as_bytes());
    } else {
        // Numbers and other scalars key by their text, as kcat would show them.
        let _ = write!(out, "{key}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_key_and_the_json_value() {
        let mut event = Map::new();
        event.insert("customer_id".into(), "cust_7".into());
        event.insert("amount".into(), Dynamic::from_int(150_000));
        let mut encoder = EventEncoder::new("customer_id");
        encoder.encode(&event, 0).unwrap();
        assert_eq!(encoder.key, b"cust_7");
        let value: serde_json::Value = serde_json::from_slice(&encoder.payload).unwrap();
        assert_eq!(value["amount"], 150_000);
    }

    #[test]
    fn a_missing_key_field_is_an_error_naming_it() {
        let mut encoder = EventEncoder::new("customer_id");
        let err = encoder.encode(&Map::new(), 12).unwrap_err();
        assert_eq!(
            err.to_string(),
            "event 12 has no `customer_id` field to use as the message key"
        );
    }

    #[test]
    fn values_json_cannot_hold_are_refused_with_their_field() {
        let mut encoder = EventEncoder::new("customer_id");
        let mut event = Map::new();
        event.insert("customer_id".into(), "c".into());
        let mut place = Map::new();
        place.insert("lat".into(), Dynamic::from_float(f64::NAN));
        event.insert("place".into(), Dynamic::from_map(place));
        let err = encoder.encode(&event, 3).unwrap_err().to_string();
        assert!(
            err.contains("`lat` is NaN, which JSON cannot hold"),
            "{err}"
        );

        let mut event = Map::new();
        event.insert("customer_id".into(), "c".into());
        let rule = rhai::FnPtr::new("commission").unwrap();
        event.insert(
            "rules".into(),
            Dynamic::from_array(vec![Dynamic::from(rule)]),
        );
        let err = encoder.encode(&event, 4).unwrap_err().to_string();
        assert!(err.contains("`rules` is a function pointer"), "{err}");

        let mut event = Map::new();
        event.insert("customer_id".into(), "c".into());
        event.insert("fine".into(), Dynamic::from_float(1.5));
        encoder.encode(&event, 5).unwrap();
        assert_eq!(encoder.payload, br#"{"customer_id":"c","fine":1.5}"#);
    }
}
