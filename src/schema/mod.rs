//! A scenario's declared event schema and the check of events against it.
//!
//! The schema is the `schema` entry of `config()`: a map from field name to its type, either as a
//! word (`amount: "int"`) or as a map with more to say:
//!
//! ```rhai
//! schema: #{
//!     amount: #{ type: "int", min: 0 },
//!     status: #{ type: "string", values: ["approved", "declined"] },
//!     failure_reason: #{ type: "string", nullable: true },
//!     location: #{ type: "map", fields: #{ lat: "float", lng: "float" } },
//!     note: #{ type: "string", required: false },
//! }
//! ```
//!
//! Types: `int`, `float` (an integer is accepted), `number`, `string`, `bool`, `map`, `array`,
//! `any`. Fields are required and not nullable unless said otherwise; a field the schema does not
//! name is a violation, so a typo in the script shows up.

use std::collections::BTreeMap;
use std::fmt;

use rhai::{Dynamic, Map};

mod json_schema;

/// The type a field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// An integer.
    Int,
    /// A float, or an integer.
    Float,
    /// Either.
    Number,
    /// A string.
    String,
    /// A boolean.
    Bool,
    /// A map (nested object).
    Map,
    /// An array.
    Array,
    /// Anything.
    Any,
}

impl FieldType {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "int" | "integer" => Self::Int,
            "float" => Self::Float,
            "number" => Self::Number,
            "string" => Self::String,
            "bool" | "boolean" => Self::Bool,
            "map" | "object" => Self::Map,
            "array" => Self::Array,
            "any" => Self::Any,
            _ => return None,
        })
    }

    fn accepts(self, value: &Dynamic) -> bool {
        match self {
            Self::Int => value.is_int(),
            Self::Float | Self::Number => value.is_float() || value.is_int(),
            Self::String => value.is_string(),
            Self::Bool => value.is_bool(),
            Self::Map => value.is_map(),
            Self::Array => value.is_array(),
            Self::Any => true,
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            Self::Int => "int",
            Self::Float => "float",
            Self::Number => "number",
            Self::String => "string",
            Self::Bool => "bool",
            Self::Map => "map",
            Self::Array => "array",
            Self::Any => "any",
        };
        f.write_str(word)
    }
}

/// What one field must be.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// Its type.
    pub ty: FieldType,
    /// Whether the field must be present.
    pub required: bool,
    /// Whether `()` (JSON null) is allowed.
    pub nullable: bool,
    /// The only values allowed, if limited.
    pub values: Option<Vec<String>>,
    /// Smallest allowed number.
    pub min: Option<f64>,
    /// Largest allowed number.
    pub max: Option<f64>,
    /// The schema of a nested map.
    pub fields: Option<Schema>,
}

/// The fields of an event (or of a nested map).
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Each field's spec, by name.
    pub fields: BTreeMap<String, FieldSpec>,
}

/// One way an event breaks its schema or an invariant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The field, dotted for nested ones (`location.lat`), or empty for a whole-event invariant.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            // As `sim check` names it, so every command says the same.
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
}

fn text(value: &Dynamic) -> String {
    value
        .clone()
        .into_string()
        .unwrap_or_else(|_| value.to_string())
}

fn number(value: &Dynamic) -> Option<f64> {
    value
        .as_float()
        .ok()
        .or_else(|| value.as_int().ok().map(|i| i as f64))
}

impl Schema {
    /// Reads a schema from `config().schema`; the error says which field is malformed.
    pub fn from_map(map: &Map) -> Result<Self, String> {
        let mut fields = BTreeMap::new();
        for (name, spec) in map {
            fields.insert(
                name.to_string(),
                FieldSpec::from_dynamic(spec).map_err(|e| format!("schema field `{name}`: {e}"))?,
            );
        }
        Ok(Self { fields })
    }

    /// Checks `event`, adding each violation to `out`.
    pub fn validate(&self, event: &Map, out: &mut Vec<Violation>) {
        self.validate_at("", event, out);
    }

    fn validate_at(&self, prefix: &str, event: &Map, out: &mut Vec<Violation>) {
        let path = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            }
        };
        for (name, spec) in &self.fields {
            match event.get(name.as_str()) {
                None if spec.required => out.push(Violation {
                    field: path(name),
                    message: "required field is missing".into(),
                }),
                None => {}
                Some(value) => spec.validate(&path(name), value, out),
            }
        }
        for name in event.keys() {
            if !self.fields.contains_key(name.as_str()) {
                out.push(Violation {
                    field: path(name),
                    message: "field is not in the schema".into(),
                });
            }
        }
    }
}

impl FieldSpec {
    fn from_dynamic(spec: &Dynamic) -> Result<Self, String> {
        let word_spec = |word: &str| {
            FieldType::parse(word)
                .map(|ty| FieldSpec {
                    ty,
                    required: true,
                    nullable: false,
                    values: None,
                    min: None,
                    max: None,
                    fields: None,
                })
                .ok_or_else(|| format!("unknown type `{word}`"))
        };
        if spec.is_string() {
            return word_spec(&text(spec));
        }
        let Some(map) = spec.read_lock::<Map>() else {
            return Err("expected a type name or a map".into());
        };
        let ty = map
            .get("type")
            .map(text)
            .ok_or_else(|| "missing `type`".to_string())?;
        let mut field = word_spec(&ty)?;
        let flag = |key: &str, default: bool| -> Result<bool, String> {
            map.get(key)
                .map(|v| {
                    v.as_bool()
                        .map_err(|_| format!("`{key}` must be true or false"))
                })
                .unwrap_or(Ok(default))
        };
        field.required = flag("required", true)?;
        field.nullable = flag("nullable", false)?;
        field.min = map.get("min").and_then(number);
        field.max = map.get("max").and_then(number);
        if let Some(values) = map.get("values") {
            let values = values
                .read_lock::<rhai::Array>()
                .ok_or_else(|| "`values` must be an array".to_string())?;
            field.values = Some(values.iter().map(text).collect());
        }
        if let Some(nested) = map.get("fields") {
            let nested = nested
                .read_lock::<Map>()
                .ok_or_else(|| "`fields` must be a map".to_string())?;
            field.fields = Some(Schema::from_map(&nested)?);
        }
        Ok(field)
    }

    fn validate(&self, path: &str, value: &Dynamic, out: &mut Vec<Violation>) {
        let mut fail = |message: String| {
            out.push(Violation {
                field: path.to_string(),
                message,
            })
        };
        if value.is_unit() {
            if !self.nullable {
                fail(format!("is null, expected {}", self.ty));
            }
            return;
        }
        if !self.ty.accepts(value) {
            fail(format!("is {}, expected {}", value.type_name(), self.ty));
            return;
        }
        if let Some(values) = &self.values {
            let value = text(value);
            if !values.contains(&value) {
                fail(format!("`{value}` is not one of {}", values.join(", ")));
            }
        }
        if let Some(x) = number(value) {
            if let Some(min) = self.min.filter(|min| x < *min) {
                fail(format!("{x} is below the minimum {min}"));
            }
            if let Some(max) = self.max.filter(|max| x > *max) {
                fail(format!("{x} is above the maximum {max}"));
            }
        }
        if let (Some(schema), Some(map)) = (&self.fields, value.read_lock::<Map>()) {
            schema.validate_at(path, &map, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn eval_map(engine: &rhai::Engine, source: &str) -> Map {
        engine.eval::<Map>(source).unwrap()
    }

    fn violations(schema: &str, event: &str) -> Vec<String> {
        let engine = rhai::Engine::new();
        let schema = Schema::from_map(&eval_map(&engine, schema)).unwrap();
        let mut out = Vec::new();
        schema.validate(&eval_map(&engine, event), &mut out);
        out.iter().map(ToString::to_string).collect()
    }

    pub(super) const SCHEMA: &str = r#"#{
        amount: #{ type: "int", min: 0 },
        status: #{ type: "string", values: ["approved", "declined"] },
        reason: #{ type: "string", nullable: true },
        note: #{ type: "string", required: false },
        location: #{ type: "map", fields: #{ lat: "float", lng: "float" } },
    }"#;

    #[test]
    fn a_valid_event_has_no_violations() {
        let event =
            r#"#{ amount: 5, status: "approved", reason: (), location: #{ lat: 1.0, lng: 2 } }"#;
        assert!(violations(SCHEMA, event).is_empty());
    }

    #[test]
    fn each_kind_of_violation_is_named_with_its_field() {
        let event =
            r#"#{ amount: -5, status: "lost", location: #{ lat: "north", lng: 2.0 }, extra: 1 }"#;
        let found = violations(SCHEMA, event);
        let expect = [
            "`amount`: -5 is below the minimum 0",
            "`status`: `lost` is not one of approved, declined",
            "`reason`: required field is missing",
            "`location.lat`: is string, expected float",
            "`extra`: field is not in the schema",
        ];
        for message in expect {
            assert!(
                found.iter().any(|f| f == message),
                "{message} not in {found:?}"
            );
        }
        assert_eq!(found.len(), expect.len(), "{found:?}");
    }

    #[test]
    fn null_is_refused_unless_nullable() {
        let found = violations(
            SCHEMA,
            r#"#{ amount: (), status: "approved", reason: (), location: #{ lat: 1.0, lng: 1.0 } }"#,
        );
        assert_eq!(found, ["`amount`: is null, expected int"]);
    }

    #[test]
    fn a_malformed_schema_names_the_field() {
        let engine = rhai::Engine::new();
        let err = Schema::from_map(&eval_map(&engine, r#"#{ amount: "integr" }"#)).unwrap_err();
        assert_eq!(err, "schema field `amount`: unknown type `integr`");
    }
}
