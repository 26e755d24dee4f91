//! A schema compiled for writing: apache-avro's `Schema` turned once into a small tree of
//! [`Node`]s, named references resolved, so the writer ([`super::encode`]) walks it beside an
//! event without looking anything up by name but the event's own fields.

use std::collections::HashMap;

use apache_avro::Schema as Avro;

/// A schema compiled for writing.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(Vec<String>),
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Vec<Node>),
    /// A record, by its place in the writer's table (records may refer to themselves).
    Record(usize),
}

/// One field of a record.
#[derive(Debug, Clone)]
pub(super) struct Field {
    pub(super) name: String,
    pub(super) node: Node,
    /// The branch that writes null, when the field may be left out of an event.
    pub(super) null_branch: Option<usize>,
}

/// Compiles apache-avro's schema into [`Node`]s, resolving named references.
#[derive(Default)]
pub(super) struct Compiler {
    /// Each record's fields, at the index its [`Node::Record`] holds.
    pub(super) records: Vec<Vec<Field>>,
    /// Named types seen so far, by full name.
    named: HashMap<String, Node>,
}

impl Compiler {
    pub(super) fn node(&mut self, schema: &Avro) -> Result<Node, String> {
        Ok(match schema {
            Avro::Null => Node::Null,
            Avro::Boolean => Node::Boolean,
            Avro::Int | Avro::Date | Avro::TimeMillis => Node::Int,
            Avro::Long
            | Avro::TimeMicros
            | Avro::TimestampMillis
            | Avro::TimestampMicros
            | Avro::TimestampNanos
            | Avro::LocalTimestampMillis
            | Avro::LocalTimestampMicros
            | Avro::LocalTimestampNanos => Node::Long,
            Avro::Float => Node::Float,
            Avro::Double => Node::Double,
            Avro::Bytes => Node::Bytes,
            Avro::String | Avro::Uuid => Node::String,
            Avro::Array(array) => Node::Array(Box::new(self.node(&array.items)?)),
            Avro::Map(map) => Node::Map(Box::new(self.node(&map.types)?)),
            Avro::Union(union) => Node::Union(
                union
                    .variants()
                    .iter()
                    .map(|v| self.node(v))
                    .collect::<Result<_, _>>()?,
            ),
            Avro::Enum(e) => {
                let node = Node::Enum(e.symbols.clone());
                self.named.insert(e.name.fullname(None), node.clone());
                node
            }
            Avro::Fixed(f) => {
                let node = Node::Fixed(f.size);
                self.named.insert(f.name.fullname(None), node.clone());
                node
            }
            Avro::Record(record) => {
                let index = self.records.len();
                self.records.push(Vec::new());
                self.named
                    .insert(record.name.fullname(None), Node::Record(index));
                let mut fields = Vec::with_capacity(record.fields.len());
                for field in &record.fields {
                    let node = self.node(&field.schema)?;
                    let null_branch = match &node {
                        Node::Union(branches) => {
                            branches.iter().position(|b| matches!(b, Node::Null))
                        }
                        _ => None,
                    };
                    fields.push(Field {
                        name: field.name.clone(),
                        node,
                        null_branch,
                    });
                }
                self.records[index] = fields;
                Node::Record(index)
            }
            Avro::Ref { name } => self
                .named
                .get(&name.fullname(None))
                .cloned()
                .ok_or_else(|| format!("unknown type `{}`", name.fullname(None)))?,
            other => {
                return Err(format!(
                    "sim cannot write Avro {:?} from an event",
                    apache_avro::schema::SchemaKind::from(other)
                ))
            }
        })
    }
}
