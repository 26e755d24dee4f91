//! Writing an event map as an Avro datum, framed in the Confluent wire format.
//!
//! The schema is compiled once (see [`super::plan`]) into a small tree of nodes that the writer
//! walks beside the event: values go straight from Rhai's `Dynamic`s into the output buffer, with no
//! intermediate `apache_avro::types::Value`. Record fields are matched to the event's entries in
//! step (a derived schema lists fields in the order the event map keeps its keys), falling back
//! to a lookup by name, so a record costs one comparison a field.

use apache_avro::Schema as Avro;
use rhai::{Array, Blob, Dynamic, ImmutableString, Map};

use super::plan::{Compiler, Field, Node};

/// The first byte of a message in the Confluent wire format.
pub const WIRE_MAGIC: u8 = 0;

/// Writes events with one schema and its registered id.
#[derive(Debug, Clone)]
pub struct AvroWriter {
    root: Node,
    records: Vec<Vec<Field>>,
    schema_id: u32,
}

/// Where a value did not fit, built on the way out of the recursion: only failures pay for it.
struct Fault {
    path: Vec<String>,
    message: String,
}

impl Fault {
    fn new(message: String) -> Self {
        Self {
            path: Vec::new(),
            message,
        }
    }

    fn at(mut self, step: &str) -> Self {
        self.path.push(step.to_string());
        self
    }

    fn render(self) -> String {
        let path: Vec<String> = self.path.into_iter().rev().collect();
        if path.is_empty() {
            self.message
        } else {
            format!("`{}` {}", path.join("."), self.message)
        }
    }
}

impl AvroWriter {
    /// A writer of `schema` (a record) whose messages carry `schema_id`. Types it cannot write
    /// from an event (decimals, durations) are refused here, once.
    pub fn new(schema: &Avro, schema_id: u32) -> Result<Self, String> {
        let mut compiler = Compiler::default();
        let root = compiler.node(schema)?;
        if !matches!(root, Node::Record(_)) {
            return Err("the schema's top level must be a record".into());
        }
        Ok(Self {
            root,
            records: compiler.records,
            schema_id,
        })
    }

    /// The id the registry gave the schema.
    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }

    /// Appends `event` to `out` in the wire format: the magic byte, the schema id (four bytes,
    /// big-endian), then the Avro binary encoding. The error names the field that did not fit.
    pub fn write(&self, event: &Map, out: &mut Vec<u8>) -> Result<(), String> {
        out.push(WIRE_MAGIC);
        out.extend_from_slice(&self.schema_id.to_be_bytes());
        let Node::Record(index) = self.root else {
            unreachable!("checked in new")
        };
        self.record(index, event, out).map_err(Fault::render)
    }

    fn record(&self, index: usize, map: &Map, out: &mut Vec<u8>) -> Result<(), Fault> {
        let fields = &self.records[index];
        let mut entries = map.iter().peekable();
        let mut found = 0;
        for field in fields {
            let value = entries
                .next_if(|(key, _)| key.as_str() == field.name)
                .map(|(_, value)| value)
                .or_else(|| map.get(field.name.as_str()));
            match (value, field.null_branch) {
                (Some(value), _) => {
                    found += 1;
                    self.value(&field.node, value, out)
                        .map_err(|f| f.at(&field.name))?;
                }
                (None, Some(branch)) => write_long(branch as i64, out),
                (None, None) if matches!(field.node, Node::Null) => {}
                (None, None) => {
                    return Err(
                        Fault::new("is missing, and the Avro schema requires it".into())
                            .at(&field.name),
                    )
                }
            }
        }
        if found < map.len() {
            let extra = map
                .keys()
                .find(|key| !fields.iter().any(|f| f.name == key.as_str()))
                .map_or_else(String::new, |key| key.to_string());
            return Err(Fault::new("is not in the Avro schema".into()).at(&extra));
        }
        Ok(())
    }

    fn value(&self, node: &Node, value: &Dynamic, out: &mut Vec<u8>) -> Result<(), Fault> {
        let mismatch = |expected: &str| {
            Fault::new(format!(
                "is {} `{}`, expected {expected}",
                value.type_name(),
                shown(value)
            ))
        };
        match node {
            Node::Null if value.is_unit() => {}
            Node::Null => return Err(mismatch("null")),
            Node::Boolean => out.push(u8::from(value.as_bool().map_err(|_| mismatch("boolean"))?)),
            Node::Int => {
                let int = value.as_int().map_err(|_| mismatch("int"))?;
                let int = i32::try_from(int)
                    .map_err(|_| Fault::new(format!("{int} does not fit an Avro int")))?;
                write_long(i64::from(int), out);
            }
            Node::Long => write_long(value.as_int().map_err(|_| mismatch("long"))?, out),
            Node::Float => {
                let x = number(value).ok_or_else(|| mismatch("float"))?;
                out.extend_from_slice(&(x as f32).to_le_bytes());
            }
            Node::Double => {
                let x = number(value).ok_or_else(|| mismatch("double"))?;
                out.extend_from_slice(&x.to_le_bytes());
            }
            Node::String => {
                let text = value
                    .read_lock::<ImmutableString>()
                    .ok_or_else(|| mismatch("string"))?;
                write_bytes(text.as_bytes(), out);
            }
            Node::Bytes => write_bytes(&bytes(value).ok_or_else(|| mismatch("bytes"))?, out),
            Node::Fixed(size) => {
                let bytes = bytes(value).ok_or_else(|| mismatch("fixed"))?;
                if bytes.len() != *size {
                    return Err(Fault::new(format!(
                        "has {} bytes, expected {size}",
                        bytes.len()
                    )));
                }
                out.extend_from_slice(&bytes);
            }
            Node::Enum(symbols) => {
                let text = value
                    .read_lock::<ImmutableString>()
                    .ok_or_else(|| mismatch("an enum symbol"))?;
                let index = symbols
                    .iter()
                    .position(|s| s == text.as_str())
                    .ok_or_else(|| {
                        Fault::new(format!(
                            "is `{}`, not one of {}",
                            text.as_str(),
                            symbols.join(", ")
                        ))
                    })?;
                write_long(index as i64, out);
            }
            Node::Array(items) => {
                let array = value
                    .read_lock::<Array>()
                    .ok_or_else(|| mismatch("array"))?;
                if !array.is_empty() {
                    write_long(array.len() as i64, out);
                    for (i, item) in array.iter().enumerate() {
                        self.value(items, item, out)
                            .map_err(|f| f.at(&i.to_string()))?;
                    }
                }
                write_long(0, out);
            }
            Node::Map(values) => {
                let map = value.read_lock::<Map>().ok_or_else(|| mismatch("map"))?;
                if !map.is_empty() {
                    write_long(map.len() as i64, out);
                    for (key, item) in map.iter() {
                        write_bytes(key.as_bytes(), out);
                        self.value(values, item, out).map_err(|f| f.at(key))?;
                    }
                }
                write_long(0, out);
            }
            Node::Union(branches) => {
                let index = self.branch(branches, value).ok_or_else(|| {
                    Fault::new(format!(
                        "is {}, which no branch of its union takes",
                        value.type_name()
                    ))
                })?;
                write_long(index as i64, out);
                self.value(&branches[index], value, out)?;
            }
            Node::Record(index) => {
                let map = value.read_lock::<Map>().ok_or_else(|| mismatch("record"))?;
                self.record(*index, &map, out)?;
            }
        }
        Ok(())
    }

    /// The branch of a union that writes `value`: the first that takes its type as it is, else
    /// the first that takes it converted (an integer written as a double).
    fn branch(&self, branches: &[Node], value: &Dynamic) -> Option<usize> {
        let exact = |node: &Node| match node {
            Node::Null => value.is_unit(),
            Node::Boolean => value.is_bool(),
            Node::Int | Node::Long => value.is_int(),
            Node::Float | Node::Double => value.is_float(),
            Node::String | Node::Bytes | Node::Fixed(_) => value.is_string() || value.is_blob(),
            Node::Enum(symbols) => value
                .read_lock::<ImmutableString>()
                .is_some_and(|text| symbols.iter().any(|s| s == text.as_str())),
            Node::Array(_) => value.is_array(),
            Node::Map(_) | Node::Record(_) => value.is_map(),
            Node::Union(_) => false,
        };
        branches.iter().position(exact).or_else(|| {
            branches
                .iter()
                .position(|node| matches!(node, Node::Float | Node::Double) && value.is_int())
        })
    }
}

/// A value as a diagnostic quotes it: at most 40 characters, so a runaway string stays short.
fn shown(value: &Dynamic) -> String {
    const MOST: usize = 40;
    let text = value.to_string();
    match text.char_indices().nth(MOST) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

fn number(value: &Dynamic) -> Option<f64> {
    value
        .as_float()
        .ok()
        .or_else(|| value.as_int().ok().map(|i| i as f64))
}

fn bytes(value: &Dynamic) -> Option<Vec<u8>> {
    if let Some(blob) = value.read_lock::<Blob>() {
        return Some(blob.clone());
    }
    value
        .read_lock::<ImmutableString>()
        .map(|text| text.as_bytes().to_vec())
}

/// A long in Avro's zig-zag variable-length form.
fn write_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_long(bytes.len() as i64, out);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;

    fn writer(schema: &str) -> (Avro, AvroWriter) {
        let schema = Avro::parse_str(schema).unwrap();
        let writer = AvroWriter::new(&schema, 42).unwrap();
        (schema, writer)
    }

    fn event(source: &str) -> Map {
        rhai::Engine::new().eval::<Map>(source).unwrap()
    }

    fn decode(schema: &Avro, bytes: &[u8]) -> Value {
        assert_eq!(bytes[0], WIRE_MAGIC);
        assert_eq!(u32::from_be_bytes(bytes[1..5].try_into().unwrap()), 42);
        let mut body = &bytes[5..];
        let value = apache_avro::from_avro_datum(schema, &mut body, None).unwrap();
        assert!(body.is_empty(), "the body is read to its end");
        value
    }

    const SCHEMA: &str = r#"{"type": "record", "name": "T", "namespace": "n", "fields": [
        {"name": "amount", "type": "long"},
        {"name": "id", "type": "string"},
        {"name": "location", "type": {"type": "record", "name": "L", "fields": [
            {"name": "lat", "type": "double"}, {"name": "lng", "type": "double"}]}},
        {"name": "reason", "type": ["null", "string"], "default": null},
        {"name": "status", "type": {"type": "enum", "name": "S", "symbols": ["ok", "no"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "weights", "type": {"type": "map", "values": "double"}}
    ]}"#;

    #[test]
    fn the_wire_format_frames_a_body_apache_avro_decodes_to_the_same_values() {
        let (schema, writer) = writer(SCHEMA);
        let mut out = Vec::new();
        let e = event(
            r#"#{ amount: -150000, id: "tx_1", location: #{ lat: 35.7, lng: 51 },
                 reason: "limit", status: "no", tags: ["a", "b"], weights: #{ x: 0.5 } }"#,
        );
        writer.write(&e, &mut out).unwrap();
        let Value::Record(fields) = decode(&schema, &out) else {
            panic!("a record")
        };
        let get = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(get("amount"), Value::Long(-150_000));
        assert_eq!(get("id"), Value::String("tx_1".into()));
        assert_eq!(
            get("location"),
            Value::Record(vec![
                ("lat".into(), Value::Double(35.7)),
                ("lng".into(), Value::Double(51.0)),
            ])
        );
        assert_eq!(
            get("reason"),
            Value::Union(1, Box::new(Value::String("limit".into())))
        );
        assert_eq!(get("status"), Value::Enum(1, "no".into()));
        assert_eq!(
            get("tags"),
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())])
        );
        assert_eq!(
            get("weights"),
            Value::Map([("x".to_string(), Value::Double(0.5))].into())
        );
    }

    #[test]
    fn null_and_a_missing_optional_field_write_the_null_branch() {
        let (schema, writer) = writer(SCHEMA);
        for source in [
            r#"#{ amount: 1, id: "a", location: #{ lat: 0.0, lng: 0.0 }, reason: (), status: "ok", tags: [], weights: #{} }"#,
            r#"#{ amount: 1, id: "a", location: #{ lat: 0.0, lng: 0.0 }, status: "ok", tags: [], weights: #{} }"#,
        ] {
            let mut out = Vec::new();
            writer.write(&event(source), &mut out).unwrap();
            let Value::Record(fields) = decode(&schema, &out) else {
                panic!("a record")
            };
            assert_eq!(fields[3].1, Value::Union(0, Box::new(Value::Null)));
        }
    }

    #[test]
    fn values_that_do_not_fit_are_named_with_their_field() {
        let (_, writer) = writer(SCHEMA);
        let base = r#"amount: 1, id: "a", reason: (), tags: [], weights: #{}"#;
        let cases = [
            (
                format!(r#"#{{ {base}, location: #{{ lat: "x", lng: 0.0 }}, status: "ok" }}"#),
                "`location.lat` is string `x`, expected double",
            ),
            (
                format!(r#"#{{ {base}, location: #{{ lat: 0.0, lng: 0.0 }}, status: "maybe" }}"#),
                "`status` is `maybe`, not one of ok, no",
            ),
            (
                format!(
                    r#"#{{ {base}, location: #{{ lat: 0.0, lng: 0.0 }}, status: "ok", extra: 1 }}"#
                ),
                "`extra` is not in the Avro schema",
            ),
            (
                format!(r#"#{{ {base}, status: "ok" }}"#),
                "`location` is missing, and the Avro schema requires it",
            ),
        ];
        for (source, message) in cases {
            let err = writer.write(&event(&source), &mut Vec::new()).unwrap_err();
            assert_eq!(err, message);
        }
    }

    #[test]
    fn longs_use_the_zig_zag_varint() {
        let encoded = |n| {
            let mut out = Vec::new();
            write_long(n, &mut out);
            out
        };
        assert_eq!(encoded(0), [0]);
        assert_eq!(encoded(-1), [1]);
        assert_eq!(encoded(1), [2]);
        assert_eq!(encoded(64), [0x80, 1]);
        assert_eq!(encoded(i64::MIN).len(), 10);
    }
}
