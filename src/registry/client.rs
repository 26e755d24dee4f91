//! Registering a schema with a Confluent-compatible schema registry.
//!
//! One blocking request at start-up (`POST /subjects/{subject}/versions`): the registry answers
//! with the schema's id, new or already there, and every message carries that id. Basic-auth
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
        let mut response = request
            .send(body)
            .map_err(|err| RegistryError::Unreachable {
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
        answer
            .as_ref()
            .and_then(|a| a.get("id")?.as_u64())
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| self.bad_answer(format!("no schema id in {}", text.trim())))
    }

    fn bad_answer(&self, reason: String) -> RegistryError {
        RegistryError::BadAnswer {
            at: Endpoint::new(&self.base, self.origin.clone()),
            reason,
        }
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
    fn subjects_are_escaped_in_paths() {
        assert_eq!(path_segment("a.b-value"), "a.b-value");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
