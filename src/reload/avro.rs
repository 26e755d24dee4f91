//! The Avro schema across reloads (`--encoding avro`): a reloaded scenario may change the schema
//! of its events (`config().schema`, or its own `config().avro_schema`).
//!
//! An edit that keeps the schema registers nothing and writes with the running id. One that
//! changes it is checked by the registry (the embedded one or a configured one alike) against
//! the subject's compatibility level, so a real registry's own rules apply: compatible, it is
//! registered and the new revision's encoder carries the new id, swapped in with the scenario at
//! the same event boundary; incompatible, the edit is refused as any broken edit is, naming the
//! field and the rule it breaks, and the running revision keeps its schema.

use std::sync::Arc;

use apache_avro::Schema as Avro;

use super::ReloadError;
use crate::avro::{AvroError, AvroWriter, EventSchema};
use crate::encode::{EventEncoder, ValueFormat};
use crate::registry::evolution::explain;
use crate::registry::{subject, RegistryClient};
use crate::scenario::Prepared;
use crate::settings::SubjectStrategy;

/// A schema registered during a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    /// The subject it is registered under.
    pub subject: String,
    /// Its id: messages of the new revision carry it.
    pub id: u32,
}

/// What the reloader knows of the Avro schema: the registry, and the schema of the last
/// revision it handed over with the writer for it.
pub struct SchemaEvolution {
    client: RegistryClient,
    strategy: SubjectStrategy,
    key_field: String,
    schema: Avro,
    canonical: String,
    writer: Arc<AvroWriter>,
}

impl SchemaEvolution {
    /// Starts from `schema`, registered with `client` and written by `writer`; events are keyed
    /// by `key_field` and subjects named by `strategy`.
    pub fn new(
        client: RegistryClient,
        strategy: SubjectStrategy,
        key_field: &str,
        schema: &Avro,
        writer: Arc<AvroWriter>,
    ) -> Self {
        Self {
            client,
            strategy,
            key_field: key_field.to_string(),
            canonical: schema.canonical_form(),
            schema: schema.clone(),
            writer,
        }
    }

    /// The schema of a new version, read before its sample consumes it.
    pub fn schema_of(prepared: &Prepared) -> Result<EventSchema, AvroError> {
        prepared.avro_schema()
    }

    /// An encoder that writes with `schema` (under no registered id), for the new version's
    /// sample: an event the schema does not fit fails the sample, and so the edit.
    pub fn sample_encoder(
        &self,
        scenario: &str,
        schema: &EventSchema,
    ) -> Result<EventEncoder, AvroError> {
        EventEncoder::unregistered_avro(&self.key_field, schema, scenario)
    }

    /// The encoder of a new version written with `schema` on `topic`: the running one when the
    /// schema is unchanged; else, if the registry allows the change, one with the newly
    /// registered id (and the change, to report). From then on `schema` is the one edits are
    /// compared with.
    pub fn encoder_for(
        &mut self,
        scenario: &str,
        topic: &str,
        schema: EventSchema,
    ) -> Result<(EventEncoder, Option<SchemaChange>), ReloadError> {
        if schema.schema.canonical_form() == self.canonical {
            return Ok((self.encoder(), None));
        }
        let subject = subject(self.strategy, topic, &schema.full_name());
        let refusals = self.client.incompatibilities(&subject, &schema.json)?;
        if !refusals.is_empty() {
            let level = self.client.compatibility_level(&subject)?;
            let explained = explain(&self.schema, &schema.schema, level);
            return Err(ReloadError::IncompatibleSchema {
                subject,
                level: level.to_string(),
                reasons: if explained.is_empty() {
                    refusals
                } else {
                    explained
                },
            });
        }
        let id = self.client.register(&subject, &schema.json)?;
        self.writer = Arc::new(schema.writer(id, scenario)?);
        self.canonical = schema.schema.canonical_form();
        self.schema = schema.schema;
        Ok((self.encoder(), Some(SchemaChange { subject, id })))
    }

    fn encoder(&self) -> EventEncoder {
        EventEncoder::with_format(&self.key_field, ValueFormat::Avro(self.writer.clone()))
    }
}
