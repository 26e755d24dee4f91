//! The Confluent Schema Registry: the client `sim` registers its schema with, and the registry
//! `sim run` serves itself when none is configured (as it runs a broker of its own).
//!
//! - [`store`]: the registry's state and rules (subjects, versions, ids, compatibility), with
//!   no HTTP in it.
//! - [`server`]: that store behind the registry's REST API, on a local port.
//! - [`client`]: registering a schema under a subject and reading back its id, asking
//!   whether a new version may follow, and fetching a schema by id.
//! - [`evolution`]: which field of a new version breaks which compatibility rule.
//!
//! Subjects follow TopicNameStrategy: a topic's values are registered under `<topic>-value`.

pub mod client;
pub mod evolution;
pub mod server;
pub mod store;

pub use client::{Credentials, RegistryClient};
pub use server::EmbeddedRegistry;
pub use store::{Compatibility, Store, StoreError};

use crate::settings::{Origin, SubjectStrategy};

/// The media type of the registry's requests and answers.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The environment variable with the registry's basic-auth credentials, `user:password`. Only
/// the environment carries it, so it is never in a config file or a process listing, and `sim`
/// never prints it.
pub const AUTH_ENV: &str = "SCHEMA_REGISTRY_AUTH";

/// The subject a topic's values are registered under (TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The subject of the values of `topic` written with the record `record` (its full name), as
/// `strategy` names it.
pub fn subject(strategy: SubjectStrategy, topic: &str, record: &str) -> String {
    match strategy {
        SubjectStrategy::Topic => value_subject(topic),
        SubjectStrategy::Record => record.to_string(),
        SubjectStrategy::TopicRecord => format!("{topic}-{record}"),
    }
}

/// A URL fit to print: credentials written into it (`http://user:secret@host`) are masked.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

/// A registry as the user configured it: its URL (credentials masked) and where it came from.
/// Boxed in errors, which stay small.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The URL, credentials masked.
    pub url: String,
    /// Where it was configured.
    pub origin: Origin,
}

impl Endpoint {
    /// The registry at `url` (masked here), configured from `origin`.
    pub fn new(url: &str, origin: Origin) -> Box<Self> {
        Box::new(Self {
            url: redacted(url),
            origin,
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (from {})", self.url, self.origin)
    }
}

/// Why the registry could not be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RegistryError {
    /// No answer from the registry's address.
    #[error("cannot reach the schema registry at {at}: {reason}")]
    #[diagnostic(
        code(sim::registry::unreachable),
        help("check the URL and that the registry is up; without --schema-registry and SCHEMA_REGISTRY_URL, sim run and sim backfill serve an embedded registry, for as long as they run")
    )]
    Unreachable {
        /// The registry.
        at: Box<Endpoint>,
        /// The transport's message.
        reason: String,
    },
    /// The registry answered with an error.
    #[error("the schema registry at {at} refused subject {subject}: HTTP {status}{}: {message}", error_code.map(|c| format!(", error {c}")).unwrap_or_default())]
    #[diagnostic(
        code(sim::registry::refused),
        help("409 means the schema is incompatible with the subject's earlier versions; 401 and 403 mean credentials are missing or wrong (SCHEMA_REGISTRY_AUTH=user:password)")
    )]
    Refused {
        /// The registry.
        at: Box<Endpoint>,
        /// The subject.
        subject: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error code, if it gave one.
        error_code: Option<i64>,
        /// The registry's message, or the body.
        message: String,
    },
    /// The registry answered a schema lookup by id with an error other than "not found".
    #[error("the schema registry at {at} refused to give schema id {id}: HTTP {status}{}: {message}", error_code.map(|c| format!(", error {c}")).unwrap_or_default())]
    #[diagnostic(
        code(sim::registry::lookup),
        help("401 and 403 mean credentials are missing or wrong (SCHEMA_REGISTRY_AUTH=user:password)")
    )]
    LookupRefused {
        /// The registry.
        at: Box<Endpoint>,
        /// The schema id asked for.
        id: u32,
        /// The HTTP status.
        status: u16,
        /// The registry's error code, if it gave one.
        error_code: Option<i64>,
        /// The registry's message, or the body.
        message: String,
    },
    /// The registry's answer is not what the API documents.
    #[error("the schema registry at {at} gave an answer sim cannot read: {reason}")]
    #[diagnostic(code(sim::registry::bad_answer))]
    BadAnswer {
        /// The registry.
        at: Box<Endpoint>,
        /// What was wrong.
        reason: String,
    },
    /// `SCHEMA_REGISTRY_AUTH` is not `user:password` (its value is not repeated).
    #[error("environment variable {AUTH_ENV} must be user:password")]
    #[diagnostic(code(sim::registry::auth))]
    BadCredentials,
    /// The embedded registry could not start.
    #[error("cannot start the embedded schema registry: {0}")]
    #[diagnostic(code(sim::registry::embedded))]
    Embedded(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_masked() {
        assert_eq!(
            redacted("https://alice:s3cret@registry:8081/x"),
            "https://alice:***@registry:8081/x"
        );
        assert_eq!(redacted("http://127.0.0.1:8081"), "http://127.0.0.1:8081");
        assert_eq!(
            value_subject("darooghe.transactions"),
            "darooghe.transactions-value"
        );
    }
}
