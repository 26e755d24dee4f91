//! Avro messages in the Confluent wire format (byte 0, the schema id as four big-endian bytes,
//! the Avro binary body) read back as the JSON event the JSON path reads.
//!
//! The encoding is told per message, so one topic may carry both: a value that starts with
//! byte 0 and has at least the five bytes of the header is Avro, anything else goes to the JSON
//! path. Each schema id is asked of the registry once, and the answer kept, found or not.
//!
//! The decoded record is turned into JSON bytes rather than straight into a
//! [`super::transaction::Transaction`]: the script rules read the whole event from the message
//! value as JSON, so they see an Avro event exactly as they see a JSON one, and the transaction
//! is read by the same code either way.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;
use serde::Serialize;

use crate::avro::WIRE_MAGIC;
use crate::registry::{RegistryClient, RegistryError};

/// The wire format's header: the magic byte and the schema id.
const HEADER_LEN: usize = 5;

/// How many messages of each encoding were read as transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Encodings {
    /// JSON values.
    pub json: u64,
    /// Avro values in the wire format.
    pub avro: u64,
}

/// Whether `payload` is framed in the Confluent wire format.
pub fn is_avro(payload: &[u8]) -> bool {
    payload.len() >= HEADER_LEN && payload[0] == WIRE_MAGIC
}

/// What an Avro message became.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// The event as a JSON object.
    Event(Vec<u8>),
    /// Why it cannot be read (the message is poison).
    Poison(String),
}

/// Reads wire-format messages with the writer schemas of one registry, if one is configured.
pub struct AvroReader {
    registry: Option<RegistryClient>,
    /// The schemas met so far by id, or why an id cannot be used.
    schemas: HashMap<u32, Result<Arc<Schema>, String>>,
}

impl AvroReader {
    /// A reader asking `registry` for schemas; without one every Avro message is poison.
    pub fn new(registry: Option<RegistryClient>) -> Self {
        Self {
            registry,
            schemas: HashMap::new(),
        }
    }

    /// Decodes `payload` (which [`is_avro`]). An unknown id, a missing registry or a body that
    /// does not fit its schema is [`Decoded::Poison`]; a registry that cannot be asked is an
    /// error, since every later Avro message would fail the same way.
    pub fn decode(&mut self, payload: &[u8]) -> Result<Decoded, RegistryError> {
        let mut id_bytes = [0u8; 4];
        id_bytes.copy_from_slice(&payload[1..HEADER_LEN]);
        let id = u32::from_be_bytes(id_bytes);
        let schema = match self.schema(id)? {
            Ok(schema) => schema,
            Err(reason) => return Ok(Decoded::Poison(reason)),
        };
        let mut body = &payload[HEADER_LEN..];
        let value = match apache_avro::from_avro_datum(&schema, &mut body, None) {
            Ok(value) => value,
            Err(err) => {
                return Ok(Decoded::Poison(format!(
                    "Avro body does not fit schema id {id}: {err}"
                )))
            }
        };
        if !body.is_empty() {
            return Ok(Decoded::Poison(format!(
                "Avro body longer than schema id {id} reads ({} bytes left over)",
                body.len()
            )));
        }
        Ok(match serde_json::Value::try_from(value) {
            Ok(json @ serde_json::Value::Object(_)) => {
                Decoded::Event(json.to_string().into_bytes())
            }
            Ok(_) => Decoded::Poison(format!("schema id {id} is not a record")),
            Err(err) => Decoded::Poison(format!(
                "Avro value of schema id {id} has no JSON form: {err}"
            )),
        })
    }

    /// The schema with `id`, asked of the registry the first time.
    fn schema(&mut self, id: u32) -> Result<Result<Arc<Schema>, String>, RegistryError> {
        if let Some(known) = self.schemas.get(&id) {
            return Ok(known.clone());
        }
        let Some(registry) = &self.registry else {
            return Ok(Err(format!(
                "Avro message (schema id {id}) but no schema registry is configured \
                 (--schema-registry URL or SCHEMA_REGISTRY_URL)"
            )));
        };
        let found = match registry.schema(id)? {
            None => Err(format!(
                "schema id {id} is not in the registry (error 40403)"
            )),
            Some(text) => Schema::parse_str(&text)
                .map(Arc::new)
                .map_err(|err| format!("schema id {id} from the registry does not parse: {err}")),
        };
        self.schemas.insert(id, found.clone());
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_told_by_its_first_byte_and_length() {
        assert!(is_avro(&[0, 0, 0, 0, 1]));
        assert!(!is_avro(&[0, 0, 0, 1]));
        assert!(!is_avro(b"{\"a\":1}"));
        assert!(!is_avro(b""));
    }

    #[test]
    fn without_a_registry_an_avro_message_is_poison_not_an_error() {
        let mut reader = AvroReader::new(None);
        match reader.decode(&[0, 0, 0, 0, 7, 2]).unwrap() {
            Decoded::Poison(reason) => {
                assert!(reason.contains("schema id 7"), "{reason}");
                assert!(reason.contains("no schema registry"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_known_schema_decodes_to_the_json_event() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"T","fields":[
                {"name":"amount","type":"long"},
                {"name":"status","type":{"type":"enum","name":"S","symbols":["approved","declined"]}},
                {"name":"note","type":["null","string"],"default":null}]}"#,
        )
        .unwrap();
        let mut reader = AvroReader::new(None);
        reader.schemas.insert(3, Ok(Arc::new(schema.clone())));
        let record = apache_avro::types::Value::Record(vec![
            ("amount".into(), apache_avro::types::Value::Long(150_000)),
            (
                "status".into(),
                apache_avro::types::Value::Enum(1, "declined".into()),
            ),
            (
                "note".into(),
                apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
            ),
        ]);
        let mut message = vec![0, 0, 0, 0, 3];
        message.extend(apache_avro::to_avro_datum(&schema, record).unwrap());
        let Decoded::Event(json) = reader.decode(&message).unwrap() else {
            panic!("not decoded")
        };
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"amount": 150000, "status": "declined", "note": null})
        );
        message.push(9);
        assert!(
            matches!(reader.decode(&message).unwrap(), Decoded::Poison(r) if r.contains("left over"))
        );
    }
}
