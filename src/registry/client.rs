//! Registering a schema with a Confluent-compatible schema registry, and fetching one by id.
//!
//! A producer makes one blocking request at start-up (`POST /subjects/{subject}/versions`): the
//! registry answers with the schema's id, new or already there, and every message carries that
//! id. A consumer asks for each id it meets once (`GET /schemas/ids/{id}`). Basic-auth
//! credentials come from `SCHEMA_REGISTRY_AUTH` only and are never printed; `https://` URLs use
//! the system's TLS (OpenSSL) and its root certificates.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use ureq::Agent;

use super::{Endpoint, RegistryError, CONTENT_TYPE};
use crate::settings::Origin;

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
        let url = format!("{}/subjects/{}/versions", self.base, path_segment(subject));
        let body = json!({ "schema": schema, "schemaType": "AVRO" }).to_string();
        let mut request = self
            .agent
            .post(&url)
            .header("Content-Type", CONTENT_TYPE)
            .header("Accept", CONTENT_TYPE);
        if let Some(credentials) = &self.credentials {
            request = request.header("Authorization", credentials.header());
        }
        let answer = self.read(request.send(body))?;
        if !answer.ok() {
            return Err(RegistryError::Refused {
                at: Endpoint::new(&self.base, self.origin.clone()),
                subject: subject.to_string(),
                status: answer.status,
                error_code: answer.error_code(),
                message: answer.message(),
            });
        }
        answer
            .field("id")
            .and_then(|id| id.as_u64())
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| self.bad_answer(format!("no schema id in {}", answer.text.trim())))
    }

    /// The schema (Avro JSON text) registered with `id`; `None` when the registry has no schema
    /// with that id (HTTP 404, error 40403).
    pub fn schema(&self, id: u32) -> Result<Option<String>, RegistryError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        let mut request = self.agent.get(&url).header("Accept", CONTENT_TYPE);
        if let Some(credentials) = &self.credentials {
            request = request.header("Authorization", credentials.header());
        }
        let answer = self.read(request.call())?;
        if answer.status == 404 && answer.error_code() == Some(SCHEMA_NOT_FOUND) {
            return Ok(None);
        }
        if !answer.ok() {
            return Err(RegistryError::LookupRefused {
                at: Endpoint::new(&self.base, self.origin.clone()),
                id,
                status: answer.status,
                error_code: answer.error_code(),
                message: answer.message(),
            });
        }
        answer
            .field("schema")
            .and_then(|schema| schema.as_str().map(str::to_string))
            .map(Some)
            .ok_or_else(|| self.bad_answer(format!("no schema in {}", answer.text.trim())))
    }

    /// The status and body of a request's response; no response at all is
    /// [`RegistryError::Unreachable`].
    fn read(
        &self,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, RegistryError> {
        let mut response = sent.map_err(|err| RegistryError::Unreachable {
            at: Endpoint::new(&self.base, self.origin.clone()),
            reason: err.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|err| self.bad_answer(err.to_string()))?;
        let json = serde_json::from_str(&text).ok();
        Ok(Answer { status, text, json })
    }

    fn bad_answer(&self, reason: String) -> RegistryError {
        RegistryError::BadAnswer {
            at: Endpoint::new(&self.base, self.origin.clone()),
            reason,
        }
    }
}

/// The registry's error code for an id it has no schema for.
const SCHEMA_NOT_FOUND: i64 = 40403;

/// A registry's answer: its status, its body, and the body as JSON when it is.
struct Answer {
    status: u16,
    text: String,
    json: Option<Value>,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn field(&self, key: &str) -> Option<&Value> {
        self.json.as_ref()?.get(key)
    }

    fn error_code(&self) -> Option<i64> {
        self.field("error_code")?.as_i64()
    }

    /// The registry's message, or the start of the body.
    fn message(&self) -> String {
        self.field("message")
            .and_then(|m| m.as_str().map(str::to_string))
            .unwrap_or_else(|| self.text.trim().chars().take(200).collect())
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
    fn subjects_are_escaped_in_paths() {
        assert_eq!(path_segment("a.b-value"), "a.b-value");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
