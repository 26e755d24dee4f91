//! Avro as an encoding of events: the schema a scenario's events are written with, and the
//! writer that encodes an event map straight into Avro's binary form, framed in the Confluent
//! wire format (byte 0, the schema id as four big-endian bytes, then the Avro body).
//!
//! The schema is either the scenario's own (`config().avro_schema`, a map or a JSON string) or
//! derived from its declared schema (`config().schema`, see [`crate::schema`]) by the rules of
//! [`schema::derive`]. Either way apache-avro parses it, so what is registered and what is
//! written is a schema Avro's own library accepts.

pub mod encode;
mod plan;
pub mod schema;

pub use encode::{AvroWriter, WIRE_MAGIC};
pub use schema::{derive, record_name, EventSchema, RecordName, SchemaSource};

/// Why a scenario has no usable Avro schema.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AvroError {
    /// Neither `config().schema` nor `config().avro_schema` is declared.
    #[error(
        "{scenario}: the scenario declares no schema, which --encoding avro and sim schema need"
    )]
    #[diagnostic(
        code(sim::avro::no_schema),
        help("declare the event's fields in config().schema (see docs/scripting.md), or give an Avro schema as config().avro_schema (see docs/avro.md)")
    )]
    NoSchema {
        /// The scenario.
        scenario: String,
    },
    /// A field of the declared schema has no Avro counterpart.
    #[error("{scenario}: field `{field}` of type {ty} has no Avro type")]
    #[diagnostic(
        code(sim::avro::underivable),
        help("give the field a type (int, float, number, string, bool, or map with fields), or write the Avro schema yourself as config().avro_schema")
    )]
    Underivable {
        /// The scenario.
        scenario: String,
        /// The field, dotted for nested ones.
        field: String,
        /// Its declared type.
        ty: String,
    },
    /// apache-avro refused the schema (the scenario's own, or one derived from odd names).
    #[error("{scenario}: the Avro schema is invalid: {message}")]
    #[diagnostic(code(sim::avro::invalid_schema))]
    Invalid {
        /// The scenario.
        scenario: String,
        /// apache-avro's message.
        message: String,
    },
    /// `--encoding avro` with a sink that writes JSON lines.
    #[error("--encoding avro writes Kafka messages; the stdout and file sinks write JSON lines")]
    #[diagnostic(
        code(sim::avro::not_kafka),
        help("use --sink kafka (the default of run and backfill), or --encoding json")
    )]
    NotKafka,
    /// `--encoding avro` with `--labels` or `--meta`, which add fields the schema does not have.
    #[error("--labels and --meta add fields that the Avro schema does not have")]
    #[diagnostic(
        code(sim::avro::extra_fields),
        help("with Avro the ground truth travels in the fraud_pattern header, and the script revision in scenario_revision")
    )]
    ExtraFields,
    /// The schema's top level is not a record, so an event map cannot be written with it.
    #[error("{scenario}: the Avro schema must be a record, not {found}")]
    #[diagnostic(code(sim::avro::not_a_record))]
    NotARecord {
        /// The scenario.
        scenario: String,
        /// What it is.
        found: String,
    },
}
