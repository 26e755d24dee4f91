//! The Avro schema of a scenario's events: the scenario's own, or derived from its declared
//! schema.
//!
//! Derivation rules (mirrored in docs/avro.md):
//!
//! - The record is named after the topic (that is what TopicNameStrategy registers it under):
//!   the last dot-separated part of the topic, in UpperCamelCase, a plural `s` dropped, is the
//!   name; the parts before it are the namespace (`sim` when there are none). So
//!   `darooghe.transactions` gives `darooghe.Transaction`, `sim.events` gives `sim.Event`.
//! - Fields keep the declared order (by name, as the JSON encoding writes them).
//! - `int` is `long`, `float` and `number` are `double`, `string` is `string`, `bool` is
//!   `boolean`; a `map` with `fields` is a nested record named after its field in UpperCamelCase
//!   (`device_info` gives `DeviceInfo`), in the namespace of the record that holds it followed by
//!   that record's name in lower case (`darooghe.transaction.DeviceInfo`).
//! - A `string` with `values` is an enum named like a nested record, its symbols in the declared
//!   order, when every value is an Avro name (letters, digits and `_`, not starting with a digit);
//!   otherwise it stays a `string`.
//! - `nullable: true` or `required: false` makes the field a union with `null` first and
//!   `default: null`; a missing optional field is written as null.
//! - `any`, `array` and a `map` without `fields` have no Avro type: the error names the field, and
//!   the way out is the scenario's own schema, `config().avro_schema`.

use apache_avro::Schema as Avro;
use serde_json::{json, Map as JsonMap, Value as Json};

use super::{AvroError, AvroWriter};
use crate::schema::{FieldSpec, FieldType, Schema};

/// A record's full name: namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordName {
    /// The namespace, dotted.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl RecordName {
    /// The name of a record or enum nested in this record, for the field `field`.
    fn nested(&self, field: &str) -> RecordName {
        RecordName {
            namespace: format!("{}.{}", self.namespace, self.name.to_ascii_lowercase()),
            name: upper_camel(field),
        }
    }
}

/// Where the schema came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaSource {
    /// Derived from `config().schema`.
    Derived,
    /// The scenario's own `config().avro_schema`.
    Script,
}

/// The Avro schema a scenario's events are written with.
#[derive(Debug, Clone)]
pub struct EventSchema {
    /// The schema, parsed by apache-avro.
    pub schema: Avro,
    /// Its JSON text, as registered.
    pub json: String,
    /// Where it came from.
    pub source: SchemaSource,
}

impl EventSchema {
    /// A writer of this schema whose messages carry `schema_id` (0 for one not registered, to
    /// check events against); refused, naming `scenario`, for types it cannot write.
    pub fn writer(&self, schema_id: u32, scenario: &str) -> Result<AvroWriter, AvroError> {
        AvroWriter::new(&self.schema, schema_id).map_err(|message| AvroError::Invalid {
            scenario: scenario.to_string(),
            message,
        })
    }

    /// The schema of `scenario`'s events on `topic`: its own Avro schema (`own`, JSON text) when
    /// it has one, else one derived from its declared schema.
    pub fn for_scenario(
        scenario: &str,
        declared: Option<&Schema>,
        own: Option<&str>,
        topic: &str,
    ) -> Result<Self, AvroError> {
        let (text, source) = match (own, declared) {
            (Some(text), _) => (text.trim().to_string(), SchemaSource::Script),
            (None, Some(declared)) => {
                let derived = derive(scenario, declared, &record_name(topic))?;
                (derived.to_string(), SchemaSource::Derived)
            }
            (None, None) => {
                return Err(AvroError::NoSchema {
                    scenario: scenario.to_string(),
                })
            }
        };
        let schema = Avro::parse_str(&text).map_err(|err| AvroError::Invalid {
            scenario: scenario.to_string(),
            message: err.to_string(),
        })?;
        if !matches!(schema, Avro::Record(_)) {
            return Err(AvroError::NotARecord {
                scenario: scenario.to_string(),
                found: format!("{:?}", apache_avro::schema::SchemaKind::from(&schema)),
            });
        }
        // A derived schema is registered as apache-avro writes it (`type` and `name` first); a
        // scenario's own as the scenario wrote it.
        let json = match source {
            SchemaSource::Derived => serde_json::to_string(&schema).unwrap_or(text),
            SchemaSource::Script => text,
        };
        Ok(Self {
            schema,
            json,
            source,
        })
    }

    /// The record's full name (`darooghe.Transaction`), which RecordNameStrategy registers under.
    pub fn full_name(&self) -> String {
        match &self.schema {
            Avro::Record(record) => record.name.fullname(None),
            _ => String::new(),
        }
    }

    /// The schema as indented JSON, for people (`sim schema`).
    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(&self.schema).unwrap_or_else(|_| self.json.clone())
    }
}

/// The record name the events of `topic` get (see the module's rules).
pub fn record_name(topic: &str) -> RecordName {
    let (namespace, last) = match topic.rsplit_once('.') {
        Some((namespace, last)) => (namespace, last),
        None => ("", topic),
    };
    let mut name = upper_camel(last);
    if name.len() > 1 && name.ends_with('s') && !name.ends_with("ss") {
        name.pop();
    }
    let namespace: Vec<String> = namespace
        .split('.')
        .filter(|part| !part.is_empty())
        .map(avro_identifier)
        .collect();
    RecordName {
        namespace: if namespace.is_empty() {
            "sim".to_string()
        } else {
            namespace.join(".")
        },
        name: if name.is_empty() {
            "Event".into()
        } else {
            name
        },
    }
}

/// The Avro schema (JSON) derived from a scenario's declared schema.
pub fn derive(scenario: &str, declared: &Schema, name: &RecordName) -> Result<Json, AvroError> {
    record(scenario, "", declared, name)
}

fn record(
    scenario: &str,
    path: &str,
    schema: &Schema,
    name: &RecordName,
) -> Result<Json, AvroError> {
    let mut fields = Vec::with_capacity(schema.fields.len());
    for (field, spec) in &schema.fields {
        let dotted = if path.is_empty() {
            field.clone()
        } else {
            format!("{path}.{field}")
        };
        let ty = field_type(scenario, &dotted, field, spec, name)?;
        let mut entry = JsonMap::new();
        entry.insert("name".into(), Json::from(field.as_str()));
        if spec.nullable || !spec.required {
            entry.insert("type".into(), json!(["null", ty]));
            entry.insert("default".into(), Json::Null);
        } else {
            entry.insert("type".into(), ty);
        }
        fields.push(Json::Object(entry));
    }
    Ok(json!({
        "type": "record",
        "name": name.name,
        "namespace": name.namespace,
        "fields": fields,
    }))
}

fn field_type(
    scenario: &str,
    path: &str,
    field: &str,
    spec: &FieldSpec,
    parent: &RecordName,
) -> Result<Json, AvroError> {
    let underivable = || AvroError::Underivable {
        scenario: scenario.to_string(),
        field: path.to_string(),
        ty: spec.ty.to_string(),
    };
    Ok(match spec.ty {
        FieldType::Int => json!("long"),
        FieldType::Float | FieldType::Number => json!("double"),
        FieldType::Bool => json!("boolean"),
        FieldType::String => match &spec.values {
            Some(values) if !values.is_empty() && values.iter().all(|v| is_avro_name(v)) => {
                let name = parent.nested(field);
                json!({
                    "type": "enum",
                    "name": name.name,
                    "namespace": name.namespace,
                    "symbols": values,
                })
            }
            _ => json!("string"),
        },
        FieldType::Map => match &spec.fields {
            Some(nested) => record(scenario, path, nested, &parent.nested(field))?,
            None => return Err(underivable()),
        },
        FieldType::Array | FieldType::Any => return Err(underivable()),
    })
}

/// Whether `text` is an Avro name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_avro_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` with every character an Avro name cannot hold replaced by `_`, and a leading digit
/// guarded.
fn avro_identifier(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `device_info` or `payment-events` in UpperCamelCase: `DeviceInfo`, `PaymentEvents`.
fn upper_camel(text: &str) -> String {
    let joined: String = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    avro_identifier(&joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(source: &str) -> Schema {
        let engine = rhai::Engine::new();
        Schema::from_map(&engine.eval::<rhai::Map>(source).unwrap()).unwrap()
    }

    #[test]
    fn record_names_come_from_the_topic() {
        let name = |topic| {
            let n = record_name(topic);
            format!("{}.{}", n.namespace, n.name)
        };
        assert_eq!(name("darooghe.transactions"), "darooghe.Transaction");
        assert_eq!(name("sim.events"), "sim.Event");
        assert_eq!(name("payments"), "sim.Payment");
        assert_eq!(name("shop.order-lines"), "shop.OrderLine");
        assert_eq!(name("acme.access"), "acme.Access");
        assert_eq!(name("9lives.cat_events"), "_9lives.CatEvent");
    }

    #[test]
    fn types_nullable_nested_and_enums_are_derived() {
        let schema = declared(
            r#"#{
                amount: #{ type: "int", min: 1 },
                status: #{ type: "string", values: ["approved", "declined"] },
                reason: #{ type: "string", nullable: true },
                note: #{ type: "string", required: false },
                code: #{ type: "string", values: ["in-store", "online"] },
                ok: "bool",
                score: "number",
                location: #{ type: "map", fields: #{ lat: "float", lng: "float" } },
            }"#,
        );
        let name = record_name("darooghe.transactions");
        let derived = derive("darooghe", &schema, &name).unwrap();
        let expected = json!({
            "type": "record", "name": "Transaction", "namespace": "darooghe",
            "fields": [
                { "name": "amount", "type": "long" },
                { "name": "code", "type": "string" },
                { "name": "location", "type": {
                    "type": "record", "name": "Location", "namespace": "darooghe.transaction",
                    "fields": [
                        { "name": "lat", "type": "double" },
                        { "name": "lng", "type": "double" },
                    ],
                } },
                { "name": "note", "type": ["null", "string"], "default": null },
                { "name": "ok", "type": "boolean" },
                { "name": "reason", "type": ["null", "string"], "default": null },
                { "name": "score", "type": "double" },
                { "name": "status", "type": {
                    "type": "enum", "name": "Status", "namespace": "darooghe.transaction",
                    "symbols": ["approved", "declined"],
                } },
            ],
        });
        assert_eq!(derived, expected);
        // What apache-avro accepts.
        Avro::parse_str(&derived.to_string()).unwrap();
    }

    #[test]
    fn fields_without_an_avro_type_are_named() {
        let schema = declared(r#"#{ place: #{ type: "map", fields: #{ tags: "array" } } }"#);
        let err = derive("s", &schema, &record_name("t")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "s: field `place.tags` of type array has no Avro type"
        );
    }

    #[test]
    fn the_scenarios_own_schema_wins_and_a_scenario_without_any_is_refused() {
        let own =
            r#"{"type": "record", "name": "Mine", "fields": [{"name": "a", "type": "long"}]}"#;
        let schema = EventSchema::for_scenario("s", None, Some(own), "t").unwrap();
        assert_eq!(schema.source, SchemaSource::Script);
        let err = EventSchema::for_scenario("s", None, None, "t").unwrap_err();
        assert!(matches!(err, AvroError::NoSchema { .. }), "{err}");
        let err = EventSchema::for_scenario("s", None, Some(r#""long""#), "t").unwrap_err();
        assert!(matches!(err, AvroError::NotARecord { .. }), "{err}");
        let err = EventSchema::for_scenario("s", None, Some("{"), "t").unwrap_err();
        assert!(matches!(err, AvroError::Invalid { .. }), "{err}");
    }
}
