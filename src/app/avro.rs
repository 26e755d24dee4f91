//! `--encoding avro` for a command: the scenario's Avro schema, the registry (the configured
//! one, or an embedded one started here), the id it gives the schema under its subject
//! (`<topic>-value` unless `subject_strategy` says otherwise), and the encoder that writes every
//! event with that id; and what hot reload needs to evolve that schema
//! ([`SchemaEvolution`]).

use std::sync::Arc;

use super::Notice;
use crate::avro::{AvroError, EventSchema};
use crate::encode::{EventEncoder, ValueFormat};
use crate::error::SimError;
use crate::registry::{redacted, subject, Credentials, EmbeddedRegistry, RegistryClient, AUTH_ENV};
use crate::reload::SchemaEvolution;
use crate::scenario::{Options, Prepared, ScenarioError};
use crate::settings::{ConfigFile, Encoding, Origin};
use crate::sink::SinkSpec;

/// Where the embedded registry listens: a free port on the loopback interface.
const EMBEDDED_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// What `--encoding avro` set up: the encoder, and the embedded registry it registered with
/// (kept running as long as the broker).
pub(super) struct AvroSetup {
    /// Writes events in the wire format with the registered id.
    pub encoder: EventEncoder,
    /// The embedded registry, when no registry was configured.
    pub registry: Option<EmbeddedRegistry>,
    /// The registry and the schema as they stand, for reloads that change the schema.
    pub evolution: SchemaEvolution,
}

/// With `--encoding avro`, an encoder that writes the scenario's Avro schema under no registered
/// id, for the check at start: a sample event the schema does not fit stops the start before
/// anything is registered. `None` for JSON.
pub(super) fn trial_encoder(prepared: &Prepared) -> Result<Option<EventEncoder>, SimError> {
    if prepared.settings.encoding != Encoding::Avro {
        return Ok(None);
    }
    let schema = prepared.avro_schema()?;
    Ok(Some(EventEncoder::unregistered_avro(
        &prepared.settings.key_field,
        &schema,
        prepared.scenario.name(),
    )?))
}

/// The schema registry's basic-auth credentials: `SCHEMA_REGISTRY_AUTH`, else the config file's
/// `schema_registry_auth`, else none.
fn registry_credentials(options: &Options) -> Result<Option<Credentials>, SimError> {
    let from_file = match &options.input.config_file {
        Some(path) => {
            ConfigFile::read(path)
                .map_err(ScenarioError::from)?
                .registry_auth
        }
        None => None,
    };
    let text = options.input.env.get(AUTH_ENV).cloned().or(from_file);
    Ok(text.map(|text| Credentials::parse(&text)).transpose()?)
}

/// The scenario's Avro schema as `options` resolve it: its own, or derived from its declared
/// schema, named after the topic.
pub(super) fn event_schema(prepared: &Prepared) -> Result<EventSchema, AvroError> {
    prepared.avro_schema()
}

/// Sets up the Avro encoding when the `encoding` setting asks for it; `None` for JSON.
pub(super) fn setup(
    options: &Options,
    prepared: &Prepared,
    notify: &mut dyn FnMut(Notice),
) -> Result<Option<AvroSetup>, SimError> {
    let settings = &prepared.settings;
    if settings.encoding != Encoding::Avro {
        return Ok(None);
    }
    if options.sink != SinkSpec::Kafka {
        return Err(AvroError::NotKafka.into());
    }
    if options.labels || options.meta {
        return Err(AvroError::ExtraFields.into());
    }
    let schema = event_schema(prepared)?;
    let (url, origin, registry) = match &settings.schema_registry {
        Some(url) => (url.clone(), settings.schema_registry_origin.clone(), None),
        None => {
            let registry = EmbeddedRegistry::start(EMBEDDED_LISTEN.into())?;
            let url = registry.url();
            notify(Notice::EmbeddedRegistry { url: url.clone() });
            (url, Origin::Default, Some(registry))
        }
    };
    let credentials = registry_credentials(options)?;
    let subject = subject(
        settings.subject_strategy,
        &settings.topic,
        &schema.full_name(),
    );
    let client = RegistryClient::new(&url, origin, credentials);
    let id = client.register(&subject, &schema.json)?;
    notify(Notice::SchemaRegistered {
        subject,
        id,
        url: redacted(&url),
    });
    let writer = Arc::new(schema.writer(id, prepared.scenario.name())?);
    Ok(Some(AvroSetup {
        encoder: EventEncoder::with_format(&settings.key_field, ValueFormat::Avro(writer.clone())),
        registry,
        evolution: SchemaEvolution::new(
            client,
            settings.subject_strategy,
            &settings.key_field,
            &schema.schema,
            writer,
        ),
    }))
}
