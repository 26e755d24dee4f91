//! `--encoding avro` end to end: `sim run` on the embedded broker, and on Tansu over TCP, with
//! the embedded schema registry, read back by the Python client's own Avro deserializer (which fetches the schema by
//! the id in each message) and compared field for field with the same seed's JSON events; the
//! registry's REST API as a plain HTTP client sees it; and the mistakes a user can make.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{
    darooghe, json_lines, mentions, require_python_avro, root, run, sim, Background, Tansu,
};
use serde_json::{json, Value};

const SEED: &str = "7";
const NOW: &str = "2024-01-15T10:00:00Z";
const ARRIVALS: &str = "300";

/// The JSON events of the same seed, clock and arrivals, keyed by transaction id.
fn json_events() -> BTreeMap<String, Value> {
    let output = run(
        sim()
            .args(["backfill"])
            .arg(darooghe())
            .args(["--count", ARRIVALS, "--seed", SEED, "--now", NOW])
            .args(["--sink", "stdout"]),
        Duration::from_secs(120),
    );
    assert!(output.status.success(), "{}", output.stderr);
    json_lines(&output.stdout)
        .into_iter()
        .map(|event| (event["transaction_id"].as_str().unwrap().to_string(), event))
        .collect()
}

#[test]
fn avro_on_the_embedded_broker_and_registry_reads_back_as_the_json_events() {
    reads_back_as_the_json_events(None);
}

#[test]
fn avro_on_tansu_with_the_embedded_registry_reads_back_as_the_json_events() {
    let tansu = Tansu::start();
    reads_back_as_the_json_events(Some(&tansu.address));
}

/// `sim run --encoding avro` into `brokers` (else its embedded broker) with the embedded
/// registry; the Python client's Avro deserializer reads the backfill back as the same seed's
/// JSON events.
fn reads_back_as_the_json_events(brokers: Option<&str>) {
    require_python_avro();
    let expected = json_events();
    let mut command = sim();
    command
        .arg("run")
        .arg(darooghe())
        .args(["--encoding", "avro", "--seed", SEED, "--now", NOW])
        .args(["--set", &format!("backfill={ARRIVALS}")])
        // Next to no live events: the backfill is what is compared.
        .args(["--set", "rate=0.0001", "--no-reload"]);
    if let Some(brokers) = brokers {
        command.args(["--brokers", brokers, "--topic", "avro.transactions"]);
    }
    let sim_run = Background::start(&mut command);
    let wait = Duration::from_secs(120);
    let registry_line = sim_run.wait_for_line("the registry's URL", wait, |l| {
        l.starts_with("schema registry at ")
    });
    let registry = registry_line
        .strip_prefix("schema registry at ")
        .unwrap()
        .trim();
    let (brokers, topic) = match brokers {
        Some(brokers) => (brokers.to_string(), "avro.transactions".to_string()),
        None => sim_run.embedded_broker(wait),
    };
    sim_run.wait_for_line("the end of the backfill", wait, |l| {
        l.starts_with("backfilled ")
    });

    let output = run(
        Command::new("python3")
            .arg(root().join("tests/support/avro_consume.py"))
            .args([
                "--brokers",
                &brokers,
                "--topic",
                &topic,
                "--registry",
                registry,
            ])
            .args(["--expect", &expected.len().to_string(), "--timeout", "60"]),
        Duration::from_secs(120),
    );
    assert!(
        output.status.success(),
        "avro_consume.py: {}",
        output.stderr
    );
    sim_run.interrupt();
    let (status, stderr) = sim_run.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "avro: schema id 1, subject {topic}-value, registry {registry}"
        )),
        "{stderr}"
    );

    let messages = json_lines(&output.stdout);
    assert_eq!(messages.len(), expected.len(), "{}", output.stderr);
    for message in &messages {
        assert_eq!(message["magic"], 0);
        assert_eq!(message["schema_id"], 1);
        assert_eq!(message["latest"], json!({ "id": 1, "version": 1 }));
        let value = &message["value"];
        let id = value["transaction_id"].as_str().unwrap();
        let event = expected
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not among the JSON events"));
        // Field for field: enums read back as their symbols, longs as integers, doubles as
        // the same floats, the nullable field as null or its string.
        assert_eq!(value, event, "transaction {id}");
        assert_eq!(message["key"], event["customer_id"]);
    }
}

/// A plain HTTP client: ureq, with no registry client library between it and the API.
fn http(method: &str, url: &str, body: Option<Value>) -> (u16, String, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("PUT", Some(body)) => agent
            .put(url)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .send(body.to_string()),
        (_, body) => agent
            .post(url)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .send(body.unwrap_or(Value::Null).to_string()),
    }
    .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.body_mut().read_to_string().unwrap();
    (status, content_type, serde_json::from_str(&text).unwrap())
}

#[test]
fn the_embedded_registry_answers_as_the_confluent_api_documents() {
    let registry = sim::registry::EmbeddedRegistry::start(([127, 0, 0, 1], 0).into()).unwrap();
    let base = registry.url();
    let v1 = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"long"}]}"#;
    let v2 = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"long"},{"name":"b","type":["null","string"],"default":null}]}"#;
    let breaking = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"string"}]}"#;
    let versions = format!("{base}/subjects/t-value/versions");

    let (status, content_type, body) = http("POST", &versions, Some(json!({ "schema": v1 })));
    assert_eq!((status, body), (200, json!({ "id": 1 })));
    assert_eq!(content_type, "application/vnd.schemaregistry.v1+json");
    let (_, _, body) = http("POST", &versions, Some(json!({ "schema": v1 })));
    assert_eq!(body, json!({ "id": 1 }), "registering again finds it");

    let (status, _, body) = http("GET", &format!("{base}/schemas/ids/1"), None);
    assert_eq!((status, body), (200, json!({ "schema": v1 })));
    let (_, _, body) = http("GET", &format!("{base}/subjects"), None);
    assert_eq!(body, json!(["t-value"]));

    let compatibility = format!("{base}/compatibility/subjects/t-value/versions/latest");
    let (status, _, body) = http("POST", &compatibility, Some(json!({ "schema": v2 })));
    assert_eq!((status, body), (200, json!({ "is_compatible": true })));
    let (_, _, body) = http("POST", &compatibility, Some(json!({ "schema": breaking })));
    assert_eq!(body, json!({ "is_compatible": false }));

    let (status, _, body) = http("POST", &versions, Some(json!({ "schema": breaking })));
    assert_eq!(status, 409);
    assert_eq!(body["error_code"], 409);
    let (_, _, body) = http("POST", &versions, Some(json!({ "schema": v2 })));
    assert_eq!(body, json!({ "id": 2 }));
    let (_, _, body) = http("GET", &format!("{versions}/latest"), None);
    assert_eq!(
        body,
        json!({ "subject": "t-value", "id": 2, "version": 2, "schema": v2 })
    );
    let (_, _, body) = http("GET", &versions, None);
    assert_eq!(body, json!([1, 2]));

    let refusal = |path: &str| {
        let (status, _, body) = http("GET", &format!("{base}{path}"), None);
        (status, body["error_code"].as_i64().unwrap())
    };
    assert_eq!(refusal("/subjects/nope/versions"), (404, 40401));
    assert_eq!(refusal("/subjects/t-value/versions/9"), (404, 40402));
    assert_eq!(refusal("/schemas/ids/99"), (404, 40403));
    assert_eq!(refusal("/subjects/t-value/versions/zero"), (422, 42202));
    let (status, _, body) = http("POST", &versions, Some(json!({ "schema": "{" })));
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)));

    let (_, _, body) = http("GET", &format!("{base}/config"), None);
    assert_eq!(body, json!({ "compatibilityLevel": "BACKWARD" }));
    let subject_config = format!("{base}/config/t-value");
    let (status, _, body) = http(
        "PUT",
        &subject_config,
        Some(json!({ "compatibility": "NONE" })),
    );
    assert_eq!((status, body), (200, json!({ "compatibility": "NONE" })));
    let (_, _, body) = http("GET", &subject_config, None);
    assert_eq!(body, json!({ "compatibilityLevel": "NONE" }));
    let (_, _, body) = http("POST", &versions, Some(json!({ "schema": breaking })));
    assert_eq!(body, json!({ "id": 3 }), "NONE lets anything follow");
}

#[test]
fn an_unreachable_registry_names_the_url_and_its_origin_and_never_the_password() {
    let port = common::free_port();
    let by_flag = run(
        sim()
            .arg("backfill")
            .arg(darooghe())
            .args(["--count", "10", "--encoding", "avro"])
            .args(["--schema-registry", &format!("http://127.0.0.1:{port}")])
            .env("SCHEMA_REGISTRY_AUTH", "alice:s3cret-pw"),
        Duration::from_secs(60),
    );
    assert!(!by_flag.status.success());
    let stderr = &by_flag.stderr;
    assert!(
        mentions(stderr, &format!(
            "cannot reach the schema registry at http://127.0.0.1:{port} (from flag --schema-registry)"
        )),
        "{stderr}"
    );
    assert!(mentions(stderr, "sim::registry::unreachable"), "{stderr}");

    let by_env = run(
        sim()
            .arg("backfill")
            .arg(darooghe())
            .args(["--count", "10"])
            .env("ENCODING", "avro")
            .env(
                "SCHEMA_REGISTRY_URL",
                format!("http://alice:s3cret-pw@127.0.0.1:{port}"),
            ),
        Duration::from_secs(60),
    );
    assert!(!by_env.status.success());
    let stderr = &by_env.stderr;
    assert!(
        mentions(
            stderr,
            &format!(
                "http://alice:***@127.0.0.1:{port} (from environment variable SCHEMA_REGISTRY_URL)"
            )
        ),
        "{stderr}"
    );
    for output in [&by_flag, &by_env] {
        assert!(!output.stderr.contains("s3cret"), "{}", output.stderr);
        assert!(!String::from_utf8_lossy(&output.stdout).contains("s3cret"));
    }
}

#[test]
fn avro_without_a_schema_and_a_bad_encoding_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bare.rhai");
    std::fs::write(
        &script,
        "fn config() { #{ topic: \"bare\" } }\nfn event(ctx) { #{ customer_id: \"c\" } }\n",
    )
    .unwrap();
    let output = run(
        sim()
            .arg("backfill")
            .arg(&script)
            .args(["--count", "5", "--encoding", "avro"]),
        Duration::from_secs(60),
    );
    assert!(!output.status.success());
    let stderr = &output.stderr;
    assert!(
        mentions(
            stderr,
            "bare: the scenario declares no schema, which --encoding avro and sim schema need"
        ),
        "{stderr}"
    );
    assert!(mentions(stderr, "config().avro_schema"), "{stderr}");

    let output = run(
        sim()
            .arg("sample")
            .arg(darooghe())
            .args(["-n", "1", "--encoding", "protobuf"]),
        Duration::from_secs(60),
    );
    assert!(!output.status.success());
    assert!(
        mentions(
            &output.stderr,
            "invalid value `protobuf` for setting `encoding` (from flag --encoding): expected json or avro"
        ),
        "{}",
        output.stderr
    );
}

#[test]
fn avro_is_refused_where_it_cannot_be_written() {
    let cases: [(&[&str], &str); 2] = [
        (
            &["sample", "-n", "1", "--encoding", "avro"],
            "--encoding avro writes Kafka messages; the stdout and file sinks write JSON lines",
        ),
        (
            &["backfill", "--count", "1", "--encoding", "avro", "--labels"],
            "--labels and --meta add fields that the Avro schema does not have",
        ),
    ];
    for (args, message) in cases {
        let output = run(
            sim().arg(args[0]).arg(darooghe()).args(&args[1..]),
            Duration::from_secs(60),
        );
        assert!(!output.status.success(), "{args:?}");
        assert!(mentions(&output.stderr, message), "{}", output.stderr);
    }
}

#[test]
fn sim_schema_prints_the_json_schema_of_the_json_events() {
    let output = run(
        sim()
            .arg("schema")
            .arg(darooghe())
            .args(["--format", "json-schema"]),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", output.stderr);
    let schema: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["amount"]["type"], "integer");
    assert_eq!(
        schema["properties"]["failure_reason"]["type"],
        json!(["string", "null"])
    );
}

#[test]
fn sim_schema_prints_the_avro_schema_apache_avro_parses() {
    let output = run(sim().arg("schema").arg(darooghe()), Duration::from_secs(60));
    assert!(output.status.success(), "{}", output.stderr);
    let schema: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(schema["name"], "Transaction");
    assert_eq!(schema["namespace"], "darooghe");
    let fields = schema["fields"].as_array().unwrap();
    let field = |name: &str| fields.iter().find(|f| f["name"] == name).unwrap().clone();
    assert_eq!(field("amount")["type"], "long");
    assert_eq!(field("failure_reason")["type"], json!(["null", "string"]));
    assert_eq!(field("status")["type"]["type"], "enum");
    assert_eq!(field("location")["type"]["name"], "Location");
    assert!(fields.iter().all(|f| f["name"] != "_fraud"));
    apache_avro::Schema::parse_str(&schema.to_string()).unwrap();
}

#[test]
fn a_configured_registry_is_used_and_its_refusal_is_reported_with_its_code() {
    let registry = sim::registry::EmbeddedRegistry::start(([127, 0, 0, 1], 0).into()).unwrap();
    let url = registry.url();
    let backfill = |topic: &str| {
        run(
            sim()
                .arg("backfill")
                .arg(darooghe())
                .args(["--count", "20", "--encoding", "avro", "--topic", topic])
                .env("SCHEMA_REGISTRY_URL", &url)
                .env("SCHEMA_REGISTRY_AUTH", "alice:s3cret-pw"),
            Duration::from_secs(60),
        )
    };

    let output = backfill("payments");
    assert!(output.status.success(), "{}", output.stderr);
    assert!(
        !output.stderr.contains("schema registry at"),
        "no embedded registry when one is configured: {}",
        output.stderr
    );
    assert!(
        mentions(
            &output.stderr,
            &format!("avro: schema id 1, subject payments-value, registry {url}")
        ),
        "{}",
        output.stderr
    );
    let (_, _, body) = http(
        "GET",
        &format!("{url}/subjects/payments-value/versions/1"),
        None,
    );
    let registered: Value = serde_json::from_str(body["schema"].as_str().unwrap()).unwrap();
    assert_eq!(registered["name"], "Payment", "named after the topic");

    // A subject holding a schema darooghe's events cannot follow under BACKWARD.
    let other = r#"{"type":"record","name":"Transaction","namespace":"darooghe","fields":[{"name":"amount","type":"string"}]}"#;
    let (status, _, _) = http(
        "POST",
        &format!("{url}/subjects/darooghe.transactions-value/versions"),
        Some(json!({ "schema": other })),
    );
    assert_eq!(status, 200);
    let output = backfill("darooghe.transactions");
    assert!(!output.status.success());
    assert!(
        mentions(
            &output.stderr,
            &format!(
                "the schema registry at {url} (from environment variable SCHEMA_REGISTRY_URL) refused subject darooghe.transactions-value: HTTP 409, error 409"
            )
        ),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("s3cret"), "{}", output.stderr);
}

#[test]
fn a_scenarios_own_avro_schema_is_the_one_printed_and_registered() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("own.rhai");
    std::fs::write(
        &script,
        r#"
fn config() {
    #{
        topic: "own.readings",
        key_field: "sensor",
        avro_schema: #{
            type: "record", name: "Reading", namespace: "com.example",
            fields: [
                #{ name: "sensor", type: "string" },
                #{ name: "at", type: #{ type: "long", logicalType: "timestamp-millis" } },
                #{ name: "celsius", type: "float" },
            ],
        },
    }
}
fn event(ctx) { #{ sensor: "s1", at: ctx.time, celsius: 21.5 } }
"#,
    )
    .unwrap();
    let output = run(sim().arg("schema").arg(&script), Duration::from_secs(60));
    assert!(output.status.success(), "{}", output.stderr);
    let schema: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(schema["name"], "Reading");
    assert_eq!(schema["namespace"], "com.example");
    assert_eq!(
        schema["fields"][1]["type"]["logicalType"],
        "timestamp-millis"
    );

    let registry = sim::registry::EmbeddedRegistry::start(([127, 0, 0, 1], 0).into()).unwrap();
    let output = run(
        sim()
            .arg("backfill")
            .arg(&script)
            .args(["--count", "5", "--encoding", "avro"])
            .args(["--schema-registry", &registry.url()]),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", output.stderr);
    let (_, _, body) = http("GET", &format!("{}/schemas/ids/1", registry.url()), None);
    let registered: Value = serde_json::from_str(body["schema"].as_str().unwrap()).unwrap();
    assert_eq!(registered["name"], "Reading");
}

#[test]
fn an_avro_schema_given_as_json_text_is_parsed_and_a_broken_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, schema: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "fn config() {{ #{{ topic: \"t\", avro_schema: {schema:?} }} }}\nfn event(ctx) {{ #{{ a: 1 }} }}\n"
            ),
        )
        .unwrap();
        run(sim().arg("schema").arg(&path), Duration::from_secs(60))
    };
    let output = script(
        "text.rhai",
        r#"{"type": "record", "name": "A", "fields": [{"name": "a", "type": "long"}]}"#,
    );
    assert!(output.status.success(), "{}", output.stderr);
    let schema: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(schema["name"], "A");

    let output = script("broken.rhai", r#"{"type": "record", "name": "A"}"#);
    assert!(!output.status.success());
    assert!(
        mentions(&output.stderr, "broken: the Avro schema is invalid"),
        "{}",
        output.stderr
    );
    assert!(
        mentions(&output.stderr, "sim::avro::invalid_schema"),
        "{}",
        output.stderr
    );
}

#[test]
fn wrong_registry_credentials_are_refused_by_name_and_the_password_never_shown() {
    let registry = Background::start(
        Command::new("python3")
            .arg(root().join("tests/support/auth_registry.py"))
            .args(["alice", "right-pw"]),
    );
    let line = registry.wait_for_line("the registry's port", Duration::from_secs(30), |l| {
        l.starts_with("listening on ")
    });
    let url = format!(
        "http://127.0.0.1:{}",
        line.strip_prefix("listening on ").unwrap().trim()
    );
    let backfill = |auth: &str| {
        run(
            sim()
                .arg("backfill")
                .arg(darooghe())
                .args(["--count", "20", "--encoding", "avro", "--topic", "payments"])
                .args(["--schema-registry", &url])
                .env("SCHEMA_REGISTRY_AUTH", auth),
            Duration::from_secs(60),
        )
    };

    let output = backfill("alice:wrong-pw");
    assert!(!output.status.success(), "{}", output.stderr);
    assert!(
        mentions(
            &output.stderr,
            &format!(
                "the schema registry at {url} (from flag --schema-registry) refused subject payments-value: HTTP 401"
            )
        ),
        "{}",
        output.stderr
    );
    assert!(
        mentions(&output.stderr, "SCHEMA_REGISTRY_AUTH"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("wrong-pw"), "{}", output.stderr);

    let output = backfill("alice:right-pw");
    assert!(output.status.success(), "{}", output.stderr);
    assert!(
        mentions(&output.stderr, "avro: schema id 7, subject payments-value"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("right-pw"), "{}", output.stderr);

    // The credentials from the config file instead, and the subject named by the record.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sim.toml");
    std::fs::write(&config, "schema_registry_auth = \"alice:right-pw\"\n").unwrap();
    let output = run(
        sim()
            .arg("backfill")
            .arg(darooghe())
            .args(["--count", "20", "--encoding", "avro", "--topic", "payments"])
            .args(["--schema-registry", &url, "--subject-strategy", "record"])
            .arg("--config")
            .arg(&config)
            .env_remove("SCHEMA_REGISTRY_AUTH"),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", output.stderr);
    assert!(
        mentions(&output.stderr, "avro: schema id 7, subject sim.Payment,"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("right-pw"), "{}", output.stderr);
}

#[test]
fn an_event_that_does_not_fit_its_avro_type_is_skipped_named_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("misfit.rhai");
    // One event in 997 puts a string where the schema says float: none among the first 200,
    // which the check at start samples, so the stream meets them.
    std::fs::write(
        &script,
        r#"
fn config() {
    #{ topic: "plant.readings", key_field: "sensor", schema: #{ sensor: "string", celsius: "float" } }
}
fn event(ctx) {
    #{ sensor: "s1", celsius: if ctx.seq % 997 == 996 { "hot" } else { 21.5 } }
}
"#,
    )
    .unwrap();
    let output = run(
        sim()
            .arg("run")
            .arg(&script)
            .args(["--encoding", "avro", "--seed", "1", "--no-reload"])
            .args(["--set", "backfill=5000", "--duration", "1"]),
        Duration::from_secs(120),
    );
    let account = common::final_account(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
    assert!(
        mentions(
            &output.stderr,
            "does not fit the Avro schema: `celsius` is string `hot`, expected double"
        ),
        "{}",
        output.stderr
    );
    assert!(account.script_errors >= 5, "{account:?}");
    assert!(account.delivered >= 4990, "{account:?}");
    assert_eq!(account.failed, 0, "{account:?}");
}

#[test]
fn a_scenarios_own_avro_schema_its_events_do_not_fit_stops_the_start_before_registering() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("own.rhai");
    // The script's own schema says `celsius` is a long; its events carry a float.
    std::fs::write(
        &script,
        r#"
fn config() {
    #{
        topic: "plant.readings",
        key_field: "sensor",
        avro_schema: `{"type": "record", "name": "Reading", "namespace": "plant", "fields": [
            {"name": "sensor", "type": "string"}, {"name": "celsius", "type": "long"}]}`,
    }
}
fn event(ctx) { #{ sensor: "s1", celsius: 21.5 } }
"#,
    )
    .unwrap();
    let output = run(
        sim()
            .arg("backfill")
            .arg(&script)
            .args(["--count", "20", "--encoding", "avro"]),
        Duration::from_secs(60),
    );
    assert!(!output.status.success(), "{}", output.stderr);
    assert!(
        mentions(
            &output.stderr,
            "does not fit the Avro schema: `celsius` is f64 `21.5`, expected long"
        ),
        "{}",
        output.stderr
    );
    assert!(
        !output.stderr.contains("avro: schema id"),
        "nothing registered: {}",
        output.stderr
    );
}
