//! Registering a schema with a Confluent-compatible schema registry, and fetching one by id.
//!
//! A producer makes one blocking request at start-up (`POST /subjects/{subject}/versions`): the
//! registry answers with the schema's id, new or already there, and every message carries that
//! id. When a reloaded scenario changes its schema, the registry is asked for the subject's
//! compatibility level and whether the new schema may follow the latest version, and then to
//! register it. A consumer asks for each id it meets once (`GET /schemas/ids/{id}`). Basic-auth
//! credentials come from `SCHEMA_REGISTRY_AUTH` only and are never printed; `https://` URLs use
//! the system's TLS (OpenSSL) and its root certificates.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use ureq::Agent;

use super::{Compatibility, Endpoint, RegistryError, CONTENT_TYPE};
use crate::settings::Origin;

/// The registry's error code for an id it has no schema for.
const SCHEMA_NOT_FOUND: i64 = 40403;

/// How long one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Basic-auth credentials, `user:password`. Its `Debug` does not show the password.
#[derive(Clone)]
pub struct Credentials(String);

impl Credentials {
    /// Reads `user:password`; the error does not repeat the value.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        match text.split_once(':') {
            Some((user, _)) if !user.is_empty() => Ok(Self(text.to_string())),
            _ => Err(RegistryError::BadCredentials),
        }
    }

    fn header(&self) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        )
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.0.split(':').next().unwrap_or("");
        write!(f, "Credentials({user}:***)")
    }
}

/// A client of one registry.
pub struct RegistryClient {
    base: String,
    origin: Origin,
    credentials: Option<Credentials>,
    agent: Agent,
}

impl RegistryClient {
    /// A client of the registry at `url`, configured from `origin`.
    pub fn new(url: &str, origin: Origin, credentials: Option<Credentials>) -> Self {
        let agent = Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .tls_config(
                TlsConfig::builder()
                    .provider(TlsProvider::NativeTls)
                    .root_certs(RootCerts::PlatformVerifier)
                    .build(),
            )
            .build()
            .new_agent();
        Self {
            base: url.trim_end_matches('/').to_string(),
            origin,
            credentials,
            agent,
        }
    }

    /// Registers `schema` (Avro JSON) under `subject`, or finds it there: its id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let path = format!("/subjects/{}/versions", path_segment(subject));
        let body = json!({ "schema": schema, "schemaType": "AVRO" }).to_string();
        let answer = self.send(subject, Method::Post(body), &path)?;
        answer
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| self.bad_answer(format!("no schema id in {answer}")))
    }

    /// The compatibility level that applies to `subject`: its own (`GET /config/{subject}`),
    /// else the global one (`GET /config`), else BACKWARD, the registries' default.
    pub fn compatibility_level(&self, subject: &str) -> Result<Compatibility, RegistryError> {
        let own = format!("/config/{}?defaultToGlobal=true", path_segment(subject));
        let answer = match self.send(subject, Method::Get, &own) {
            Ok(answer) => answer,
            Err(RegistryError::Refused { .. }) => {
                match self.send(subject, Method::Get, "/config") {
                    Ok(answer) => answer,
                    Err(RegistryError::Refused { .. }) => return Ok(Compatibility::Backward),
                    Err(err) => return Err(err),
                }
            }
            Err(err) => return Err(err),
        };
        let level = answer
            .get("compatibilityLevel")
            .or_else(|| answer.get("compatibility"))
            .and_then(Value::as_str);
        level
            .and_then(Compatibility::parse)
            .ok_or_else(|| self.bad_answer(format!("no compatibility level in {answer}")))
    }

    /// Whether `schema` may follow the latest version of `subject`, by the registry's own rules
    /// (`POST /compatibility/subjects/{subject}/versions/latest?verbose=true`): `Ok` with the
    /// registry's reasons it may not, empty when it may. A subject with no version yet takes
    /// any schema.
    pub fn incompatibilities(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let path = format!(
            "/compatibility/subjects/{}/versions/latest?verbose=true",
            path_segment(subject)
        );
        let body = json!({ "schema": schema, "schemaType": "AVRO" }).to_string();
        let answer = match self.send(subject, Method::Post(body), &path) {
            Ok(answer) => answer,
            Err(RegistryError::Refused {
                error_code: Some(40401),
                ..
            }) => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        match answer.get("is_compatible").and_then(Value::as_bool) {
            Some(true) => Ok(Vec::new()),
            Some(false) => {
                let messages: Vec<String> = answer
                    .get("messages")
                    .and_then(Value::as_array)
                    .map(|m| m.iter().map(message_text).collect())
                    .unwrap_or_default();
                Ok(if messages.is_empty() {
                    vec!["the registry gave no reason".to_string()]
                } else {
                    messages
                })
            }
            None => Err(self.bad_answer(format!("no is_compatible in {answer}"))),
        }
    }

    /// The schema (Avro JSON text) registered with `id`; `None` when the registry has no schema
    /// with that id (HTTP 404, error 40403).
    pub fn schema(&self, id: u32) -> Result<Option<String>, RegistryError> {
        let answer = match self.send("", Method::Get, &format!("/schemas/ids/{id}")) {
            Ok(answer) => answer,
            Err(RegistryError::Refused {
                status: 404,
                error_code: Some(SCHEMA_NOT_FOUND),
                ..
            }) => return Ok(None),
            Err(RegistryError::Refused {
                at,
                status,
                error_code,
                message,
                ..
            }) => {
                return Err(RegistryError::LookupRefused {
                    at,
                    id,
                    status,
                    error_code,
                    message,
                })
            }
            Err(err) => return Err(err),
        };
        answer
            .get("schema")
            .and_then(Value::as_str)
            .map(|schema| Some(schema.to_string()))
            .ok_or_else(|| self.bad_answer(format!("no schema in {answer}")))
    }

    /// Sends one request about `subject` to `path` (from the registry's base URL): the answer's
    /// JSON when the status is a success, else the registry's refusal.
    fn send(&self, subject: &str, method: Method, path: &str) -> Result<Value, RegistryError> {
        let url = format!("{}{path}", self.base);
        let sent = match method {
            Method::Get => self.headers(self.agent.get(&url)).call(),
            Method::Post(body) => self.headers(self.agent.post(&url)).send(body),
        };
        let mut response = sent.map_err(|err| RegistryError::Unreachable {
            at: Endpoint::new(&self.base, self.origin.clone()),
            reason: err.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|err| self.bad_answer(err.to_string()))?;
        let answer: Option<Value> = serde_json::from_str(&text).ok();
        if !(200..300).contains(&status) {
            let field = |key: &str| answer.as_ref().and_then(|a| a.get(key).cloned());
            return Err(RegistryError::Refused {
                at: Endpoint::new(&self.base, self.origin.clone()),
                subject: subject.to_string(),
                status,
                error_code: field("error_code").and_then(|c| c.as_i64()),
                message: field("message")
                    .and_then(|m| m.as_str().map(str::to_string))
                    .unwrap_or_else(|| text.trim().chars().take(200).collect()),
            });
        }
        answer.ok_or_else(|| self.bad_answer(format!("not JSON: {}", text.trim())))
    }

    /// `request` with the registry's media type and the credentials, if any.
    fn headers<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let request = request
            .header("Content-Type", CONTENT_TYPE)
            .header("Accept", CONTENT_TYPE);
        match &self.credentials {
            Some(credentials) => request.header("Authorization", credentials.header()),
            None => request,
        }
    }

    fn bad_answer(&self, reason: String) -> RegistryError {
        RegistryError::BadAnswer {
            at: Endpoint::new(&self.base, self.origin.clone()),
            reason,
        }
    }
}

/// A request's method, and its body.
enum Method {
    Get,
    Post(String),
}

/// A compatibility message as text: registries give strings, or objects (newer Confluent
/// versions), shown as JSON.
fn message_text(message: &Value) -> String {
    match message {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `subject` fit for a URL path: what is not unreserved is percent-encoded.
fn path_segment(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_need_a_user_and_never_show_the_password() {
        let credentials = Credentials::parse("alice:s3cret").unwrap();
        assert_eq!(format!("{credentials:?}"), "Credentials(alice:***)");
        assert_eq!(credentials.header(), "Basic YWxpY2U6czNjcmV0");
        let err = Credentials::parse("s3cret").unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_schema_is_fetched_by_id_and_an_unknown_id_is_none() {
        let registry = super::super::EmbeddedRegistry::start(([127, 0, 0, 1], 0).into()).unwrap();
        let client = RegistryClient::new(&registry.url(), Origin::Default, None);
        let schema = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"long"}]}"#;
        let id = client.register("t-value", schema).unwrap();
        let fetched = client.schema(id).unwrap().expect("the registered schema");
        assert!(fetched.contains("\"name\":\"T\""), "{fetched}");
        assert_eq!(client.schema(id + 100).unwrap(), None);
    }

    #[test]
    fn the_registry_says_whether_a_schema_may_follow_and_at_which_level() {
        let v1 = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"long"}]}"#;
        let v2 = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"long"},{"name":"b","type":["null","string"],"default":null}]}"#;
        let breaking = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"}]}"#;
        let registry = super::super::EmbeddedRegistry::start(([127, 0, 0, 1], 0).into()).unwrap();
        let client = RegistryClient::new(&registry.url(), Origin::Default, None);
        assert!(
            client
                .incompatibilities("t-value", breaking)
                .unwrap()
                .is_empty(),
            "a subject with no version takes any schema"
        );
        assert_eq!(client.register("t-value", v1).unwrap(), 1);
        assert!(client.incompatibilities("t-value", v2).unwrap().is_empty());
        assert!(!client
            .incompatibilities("t-value", breaking)
            .unwrap()
            .is_empty());
        assert_eq!(
            client.compatibility_level("t-value").unwrap(),
            Compatibility::Backward
        );
    }

    #[test]
    fn subjects_are_escaped_in_paths() {
        assert_eq!(path_segment("a.b-value"), "a.b-value");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
