//! The embedded schema registry: a [`Store`] behind the Confluent Schema Registry's REST API, on
//! a local port, for as long as `sim` runs.
//!
//! The endpoints a producer and a consumer use: register or find a schema
//! (`POST /subjects/{s}/versions`), fetch one by id (`GET /schemas/ids/{id}`), list subjects and
//! versions, fetch a version (`GET /subjects/{s}/versions/{v|latest}`), check compatibility
//! (`POST /compatibility/subjects/{s}/versions/{v|latest}`) and read or set the compatibility
//! level (`GET`/`PUT /config` and `/config/{s}`). Answers are
//! `application/vnd.schemaregistry.v1+json`; errors are the registry's
//! `{"error_code": 40401, "message": "..."}` bodies. Request bodies are read as JSON whatever
//! their content type says, as the registry does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::store::{Compatibility, Store, StoreError, VersionRef};
use super::{RegistryError, CONTENT_TYPE};
use crate::http::Server;
use crate::sync::lock;

type Shared = Arc<Mutex<Store>>;

/// A running embedded registry; dropping it stops the server.
pub struct EmbeddedRegistry {
    server: Server,
}

impl EmbeddedRegistry {
    /// Serves an empty registry on `listen` (port 0: a free one).
    pub fn start(listen: SocketAddr) -> Result<Self, RegistryError> {
        let app = router(Arc::new(Mutex::new(Store::default())));
        let server = Server::start(listen, "schema-registry", app)
            .map_err(|err| RegistryError::Embedded(format!("{listen}: {err}")))?;
        Ok(Self { server })
    }

    /// The registry's URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.address())
    }
}

fn router(store: Shared) -> Router {
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .route("/config", get(global_config).put(set_global_config))
        .route(
            "/config/{subject}",
            get(subject_config).put(set_subject_config),
        )
        .fallback(|| async {
            answer(
                StatusCode::NOT_FOUND,
                json!({ "error_code": 404, "message": "HTTP 404 Not Found" }),
            )
        })
        .with_state(store)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    answer(StatusCode::OK, body)
}

fn refuse(err: StoreError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    answer(
        status,
        json!({ "error_code": err.error_code(), "message": err.to_string() }),
    )
}

fn respond(result: Result<Value, StoreError>) -> Response {
    result.map_or_else(refuse, ok)
}

/// The `schema` of a request body; anything else is an invalid schema (42201), as a body the
/// registry cannot read is.
fn schema_of(body: &[u8]) -> Result<String, StoreError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| StoreError::InvalidSchema(format!("the request body is not JSON: {err}")))?;
    if let Some(kind) = value.get("schemaType").and_then(Value::as_str) {
        if !kind.eq_ignore_ascii_case("AVRO") {
            return Err(StoreError::InvalidSchema(format!(
                "schema type {kind} is not supported by sim's embedded registry, only AVRO"
            )));
        }
    }
    value
        .get("schema")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| StoreError::InvalidSchema("the request has no `schema` string".into()))
}

async fn subjects(State(store): State<Shared>) -> Response {
    ok(json!(lock(&store).subjects()))
}

async fn register(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    respond(schema_of(&body).and_then(|schema| {
        let id = lock(&store).register(&subject, &schema)?;
        Ok(json!({ "id": id }))
    }))
}

async fn lookup(State(store): State<Shared>, Path(subject): Path<String>, body: Bytes) -> Response {
    respond(schema_of(&body).and_then(|schema| {
        let found = lock(&store).lookup(&subject, &schema)?;
        Ok(json!(found))
    }))
}

async fn versions(State(store): State<Shared>, Path(subject): Path<String>) -> Response {
    respond(lock(&store).versions(&subject).map(|v| json!(v)))
}

async fn version(
    State(store): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    respond(
        VersionRef::parse(&version)
            .and_then(|which| lock(&store).version(&subject, which))
            .map(|found| json!(found)),
    )
}

async fn version_schema(
    State(store): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    let found = VersionRef::parse(&version).and_then(|which| lock(&store).version(&subject, which));
    match found {
        Ok(found) => raw(found.schema),
        Err(err) => refuse(err),
    }
}

fn raw(schema: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        schema,
    )
        .into_response()
}

async fn schema_by_id(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    respond(parse_id(&id).and_then(|id| {
        let store = lock(&store);
        Ok(json!({ "schema": store.schema(id)? }))
    }))
}

async fn raw_schema_by_id(State(store): State<Shared>, Path(id): Path<String>) -> Response {
    let found = parse_id(&id).and_then(|id| lock(&store).schema(id).map(str::to_string));
    match found {
        Ok(schema) => raw(schema),
        Err(err) => refuse(err),
    }
}

/// An id of a path: a number that is no id is a schema not found, as the registry answers.
fn parse_id(text: &str) -> Result<u32, StoreError> {
    text.parse().map_err(|_| StoreError::SchemaNotFound(0))
}

async fn compatibility(
    State(store): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let verbose = query.get("verbose").is_some_and(|v| v == "true");
    respond(
        VersionRef::parse(&version)
            .and_then(|which| {
                let schema = schema_of(&body)?;
                lock(&store).check(&subject, which, &schema)
            })
            .map(|reasons| {
                if verbose {
                    json!({ "is_compatible": reasons.is_empty(), "messages": reasons })
                } else {
                    json!({ "is_compatible": reasons.is_empty() })
                }
            }),
    )
}

async fn global_config(State(store): State<Shared>) -> Response {
    ok(json!({ "compatibilityLevel": lock(&store).global().to_string() }))
}

async fn subject_config(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let store = lock(&store);
    let to_global = query.get("defaultToGlobal").is_some_and(|v| v == "true");
    let level = store.subject_level(&subject).or_else(|err| {
        if to_global {
            Ok(store.global())
        } else {
            Err(err)
        }
    });
    respond(level.map(|level| json!({ "compatibilityLevel": level.to_string() })))
}

/// The level of a `PUT /config` body: `{"compatibility": "FULL"}`.
fn level_of(body: &[u8]) -> Result<Compatibility, StoreError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("compatibility")?
                .as_str()
                .and_then(Compatibility::parse)
        })
        .ok_or(StoreError::InvalidCompatibility)
}

async fn set_global_config(State(store): State<Shared>, body: Bytes) -> Response {
    respond(level_of(&body).map(|level| {
        lock(&store).set_level(None, level);
        json!({ "compatibility": level.to_string() })
    }))
}

async fn set_subject_config(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    respond(level_of(&body).map(|level| {
        lock(&store).set_level(Some(&subject), level);
        json!({ "compatibility": level.to_string() })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn stopping_does_not_wait_for_a_client_that_keeps_its_connection_open() {
        let registry = EmbeddedRegistry::start(([127, 0, 0, 1], 0).into()).unwrap();
        let mut idle = std::net::TcpStream::connect(registry.server.address()).unwrap();
        idle.write_all(b"GET /subjects HTTP/1.1\r\nHost: registry\r\n\r\n")
            .unwrap();
        let mut answer = [0u8; 512];
        let read = idle.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(CONTENT_TYPE), "{answer}");
        // A second client stalls in the middle of a request body, as a consumer that hangs
        // would: a graceful shutdown would wait for it for ever.
        let mut stalled = std::net::TcpStream::connect(registry.server.address()).unwrap();
        stalled
            .write_all(
                b"POST /subjects/t/versions HTTP/1.1\r\nHost: registry\r\nContent-Length: 100\r\n\r\n{",
            )
            .unwrap();
        // Time for the server to take the request up (without it the test passes either way).
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (done, stopped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(registry);
            let _ = done.send(());
        });
        stopped
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the registry stopped with clients connected");
        drop((idle, stalled));
    }
}
