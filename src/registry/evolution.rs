//! Why one version of a record schema may not follow another, in words a person can act on.
//!
//! The registry answers whether a schema is compatible, and its reasons are written for the
//! registry's authors (`READER_FIELD_MISSING_DEFAULT_VALUE`, a JSON pointer). A reload that is
//! refused should rather name the field and the rule it breaks, so this compares the two
//! schemas the way schema resolution does: under BACKWARD the new schema reads what the old one
//! wrote, under FORWARD the old reads the new, FULL both ways. A reader's field the writer lacks
//! needs a default; a field both have must keep a type the reader can read the writer's as.

use apache_avro::schema::RecordSchema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema as Avro;

use super::Compatibility;

/// Which way data must be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// The new schema reads messages written with the old.
    Backward,
    /// The old schema reads messages written with the new.
    Forward,
}

impl Direction {
    /// The directions a level checks.
    fn of(level: Compatibility) -> &'static [Direction] {
        match level {
            Compatibility::None => &[],
            Compatibility::Backward | Compatibility::BackwardTransitive => &[Self::Backward],
            Compatibility::Forward | Compatibility::ForwardTransitive => &[Self::Forward],
            Compatibility::Full | Compatibility::FullTransitive => &[Self::Backward, Self::Forward],
        }
    }

    /// Who cannot read what, when this direction breaks.
    fn consequence(self) -> &'static str {
        match self {
            Self::Backward => "consumers on the new schema cannot read old messages",
            Self::Forward => "consumers on the old schema cannot read new messages",
        }
    }
}

/// The changes from `old` to `new` that `level` does not allow, one sentence each, naming the
/// field (dotted for nested records) and the rule: e.g. "adding `risk_level` without a default
/// breaks BACKWARD: consumers on the new schema cannot read old messages". Empty when no field
/// explains it (the caller then shows the registry's own reasons).
pub fn explain(old: &Avro, new: &Avro, level: Compatibility) -> Vec<String> {
    let mut reasons = Vec::new();
    for &direction in Direction::of(level) {
        let (reader, writer) = match direction {
            Direction::Backward => (new, old),
            Direction::Forward => (old, new),
        };
        let mut changes = Vec::new();
        compare(reader, writer, "", direction, &mut changes);
        reasons.extend(
            changes
                .into_iter()
                .map(|change| format!("{change} breaks {level}: {}", direction.consequence())),
        );
    }
    reasons
}

/// Collects what keeps `reader` from reading data written with `writer`, at `path`.
fn compare(reader: &Avro, writer: &Avro, path: &str, direction: Direction, out: &mut Vec<String>) {
    if reader.canonical_form() == writer.canonical_form() {
        return;
    }
    match (reader, writer) {
        (Avro::Record(reader), Avro::Record(writer)) => {
            compare_records(reader, writer, path, direction, out)
        }
        _ => {
            if SchemaCompatibility::can_read(writer, reader).is_err() {
                let (old, new) = match direction {
                    Direction::Backward => (writer, reader),
                    Direction::Forward => (reader, writer),
                };
                out.push(format!(
                    "changing `{path}` from {} to {}",
                    type_name(old),
                    type_name(new)
                ));
            }
        }
    }
}

fn compare_records(
    reader: &RecordSchema,
    writer: &RecordSchema,
    path: &str,
    direction: Direction,
    out: &mut Vec<String>,
) {
    for field in &reader.fields {
        let name = if path.is_empty() {
            field.name.clone()
        } else {
            format!("{path}.{}", field.name)
        };
        match writer.fields.iter().find(|w| w.name == field.name) {
            Some(written) => compare(&field.schema, &written.schema, &name, direction, out),
            None if field.default.is_none() => out.push(match direction {
                // The reader is the new schema: the field is new.
                Direction::Backward => format!("adding `{name}` without a default"),
                // The reader is the old schema: the new one dropped the field.
                Direction::Forward => format!("removing `{name}`, which has no default,"),
            }),
            None => {}
        }
    }
}

/// A type as a person names it: `long`, `null or string`, `MerchantCategory`.
fn type_name(schema: &Avro) -> String {
    match schema {
        Avro::Union(union) => union
            .variants()
            .iter()
            .map(type_name)
            .collect::<Vec<_>>()
            .join(" or "),
        Avro::Record(record) => record.name.name.clone(),
        Avro::Enum(enumeration) => enumeration.name.name.clone(),
        Avro::Fixed(fixed) => fixed.name.name.clone(),
        Avro::Ref { name } => name.name.clone(),
        Avro::Array(array) => format!("array of {}", type_name(&array.items)),
        Avro::Map(map) => format!("map of {}", type_name(&map.types)),
        other => other.canonical_form().trim_matches('"').to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> Avro {
        Avro::parse_str(&format!(
            r#"{{"type":"record","name":"Transaction","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    const AMOUNT: &str = r#"{"name":"amount","type":"long"}"#;
    const RISK: &str = r#"{"name":"risk_level","type":"string"}"#;
    const NOTE: &str = r#"{"name":"note","type":["null","string"],"default":null}"#;

    #[test]
    fn a_field_added_without_a_default_breaks_backward() {
        let old = schema(AMOUNT);
        let new = schema(&format!("{AMOUNT},{RISK}"));
        assert_eq!(
            explain(&old, &new, Compatibility::Backward),
            ["adding `risk_level` without a default breaks BACKWARD: consumers on the new schema cannot read old messages"]
        );
        assert!(explain(&old, &new, Compatibility::Forward).is_empty());
    }

    #[test]
    fn a_field_removed_without_a_default_breaks_forward_not_backward() {
        let old = schema(&format!("{AMOUNT},{RISK}"));
        let new = schema(AMOUNT);
        assert!(explain(&old, &new, Compatibility::Backward).is_empty());
        assert_eq!(
            explain(&old, &new, Compatibility::Full),
            ["removing `risk_level`, which has no default, breaks FULL: consumers on the old schema cannot read new messages"]
        );
    }

    #[test]
    fn a_type_changed_names_both_types() {
        let old = schema(AMOUNT);
        let new = schema(r#"{"name":"amount","type":"string"}"#);
        assert_eq!(
            explain(&old, &new, Compatibility::Backward),
            ["changing `amount` from long to string breaks BACKWARD: consumers on the new schema cannot read old messages"]
        );
        // A type that widens (int read as long) is not a break.
        let narrow = schema(r#"{"name":"amount","type":"int"}"#);
        assert!(explain(&narrow, &old, Compatibility::Backward).is_empty());
    }

    #[test]
    fn nested_fields_are_named_with_their_path_and_defaults_allow_change() {
        let location = |fields: &str| {
            format!(
                r#"{{"name":"location","type":{{"type":"record","name":"Location","fields":[{fields}]}}}}"#
            )
        };
        let old = schema(&location(r#"{"name":"lat","type":"double"}"#));
        let new = schema(&location(
            r#"{"name":"lat","type":"double"},{"name":"city","type":"string"}"#,
        ));
        assert_eq!(
            explain(&old, &new, Compatibility::BackwardTransitive),
            ["adding `location.city` without a default breaks BACKWARD_TRANSITIVE: consumers on the new schema cannot read old messages"]
        );
        let optional = schema(&format!("{AMOUNT},{NOTE}"));
        assert!(explain(&schema(AMOUNT), &optional, Compatibility::Full).is_empty());
        assert!(explain(&old, &new, Compatibility::None).is_empty());
    }
}
