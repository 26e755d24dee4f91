//! The declared schema as a JSON Schema (draft 2020-12): what `sim schema --format json-schema`
//! prints, for a consumer of the JSON events to validate against. It says what
//! [`Schema::validate`] checks: types, required fields, `values` as `enum`, `min` and `max`,
//! nullable fields as `[type, "null"]`, and no field the schema does not name.

use serde_json::{json, Value};

use super::{FieldSpec, FieldType, Schema};

impl Schema {
    /// The schema as a JSON Schema (draft 2020-12) object: what `sim schema --format
    /// json-schema` prints and a JSON consumer can validate against. Fields the schema does not
    /// name are refused (`additionalProperties: false`), as `sim check` refuses them.
    pub fn to_json_schema(&self) -> Value {
        let mut object = self.json_object();
        object["$schema"] = "https://json-schema.org/draft/2020-12/schema".into();
        object
    }

    fn json_object(&self) -> Value {
        let properties: serde_json::Map<String, Value> = self
            .fields
            .iter()
            .map(|(name, spec)| (name.clone(), spec.json_schema()))
            .collect();
        let required: Vec<&String> = self
            .fields
            .iter()
            .filter(|(_, spec)| spec.required)
            .map(|(name, _)| name)
            .collect();
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }
}

impl FieldSpec {
    fn json_schema(&self) -> Value {
        let mut schema = match (self.ty, &self.fields) {
            (FieldType::Map, Some(nested)) => nested.json_object(),
            (FieldType::Any, _) => json!({}),
            (ty, _) => {
                let word = match ty {
                    FieldType::Int => "integer",
                    FieldType::Float | FieldType::Number => "number",
                    FieldType::String => "string",
                    FieldType::Bool => "boolean",
                    FieldType::Map => "object",
                    FieldType::Array => "array",
                    FieldType::Any => unreachable!("matched above"),
                };
                json!({ "type": word })
            }
        };
        if let Some(values) = &self.values {
            let mut values: Vec<Value> = values.iter().map(|v| json!(v)).collect();
            if self.nullable {
                values.push(Value::Null);
            }
            schema["enum"] = values.into();
        }
        if let Some(min) = self.min {
            schema["minimum"] = min.into();
        }
        if let Some(max) = self.max {
            schema["maximum"] = max.into();
        }
        if self.nullable && self.ty != FieldType::Any {
            let ty = schema["type"].clone();
            schema["type"] = json!([ty, "null"]);
        }
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{eval_map, SCHEMA};
    use super::*;

    #[test]
    fn the_json_schema_has_types_ranges_enums_and_nullables() {
        let engine = rhai::Engine::new();
        let schema = Schema::from_map(&eval_map(&engine, SCHEMA)).unwrap();
        let json = schema.to_json_schema();
        assert_eq!(json["additionalProperties"], false);
        assert_eq!(
            json["required"],
            json!(["amount", "location", "reason", "status"])
        );
        let property = |name: &str| json["properties"][name].clone();
        assert_eq!(
            property("amount"),
            json!({ "type": "integer", "minimum": 0.0 })
        );
        assert_eq!(property("reason")["type"], json!(["string", "null"]));
        assert_eq!(property("status")["enum"], json!(["approved", "declined"]));
        assert_eq!(property("location")["properties"]["lat"]["type"], "number");
    }
}
