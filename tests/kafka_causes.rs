//! A first contact that fails names its cause: SASL authentication and TLS failures are reported
//! as themselves, with librdkafka's reason, their own code and what to check, not as an
//! unreachable broker; a closed port still is one. Against Tansu over TCP (a plaintext listener
//! without SASL), through both clients of a cluster: the sink (`sim backfill`, `sim run`) and
//! `sim analyze`.

mod common;

use std::time::Duration;

use common::*;

/// Bound on each run: these fail within the first contact's few seconds; the bound only keeps a
/// regression from hanging.
const TIMEOUT: Duration = Duration::from_secs(90);

const SASL: &[&str] = &[
    "-X",
    "security.protocol=SASL_PLAINTEXT",
    "-X",
    "sasl.mechanism=PLAIN",
    "-X",
    "sasl.username=u",
    "-X",
    "sasl.password=p",
];
const TLS: &[&str] = &["-X", "security.protocol=SSL"];

/// `sim COMMAND` against `brokers` with `properties`; asserts a clean failure and returns stderr.
fn fails(command: &str, brokers: &str, properties: &[&str]) -> String {
    let mut cmd = sim();
    match command {
        "analyze" => cmd.args(["analyze", "--until-idle", "--no-view"]),
        "backfill" => cmd.args(["backfill", "scripts/hello.rhai", "--count", "10"]),
        _ => cmd.args(["run", "scripts/hello.rhai", "--duration", "1"]),
    };
    cmd.args(["--brokers", brokers]).args(properties);
    let out = run(&mut cmd, TIMEOUT);
    assert_no_panic(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(code) if code != 0),
        "sim {command} {properties:?} exited with {}:\n{}",
        out.status,
        out.stderr
    );
    out.stderr
}

/// The miette code of each client's error of `kind`.
fn code(command: &str, kind: &str) -> String {
    let client = if command == "analyze" {
        "analyze"
    } else {
        "sink"
    };
    format!("sim::{client}::{kind}")
}

fn assert_says(stderr: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            mentions(stderr, needle),
            "the message does not say {needle:?}:\n{stderr}"
        );
    }
}

#[test]
fn sasl_against_a_listener_without_it_is_an_authentication_failure() {
    let tansu = Tansu::start();
    for command in ["backfill", "run", "analyze"] {
        let stderr = fails(command, &tansu.address, SASL);
        assert_says(
            &stderr,
            &[
                &code(command, "authentication"),
                &format!("authentication with Kafka at {}", tansu.address),
                "(from flag --brokers)",
                // librdkafka's reason, as Tansu answers the SASL handshake.
                "SASL PLAIN mechanism handshake failed",
                "sasl.mechanism, sasl.username and sasl.password",
                "security.protocol",
            ],
        );
        assert!(
            !stderr.contains("cannot reach") && !stderr.contains("unreachable"),
            "sim {command} reports an authentication failure as unreachable:\n{stderr}"
        );
    }
}

#[test]
fn tls_against_a_plaintext_listener_is_a_tls_failure() {
    let tansu = Tansu::start();
    for command in ["backfill", "analyze"] {
        let stderr = fails(command, &tansu.address, TLS);
        assert_says(
            &stderr,
            &[
                &code(command, "tls"),
                &format!("TLS with Kafka at {}", tansu.address),
                // Tansu waits for more of what it takes for a request: the handshake never ends.
                "in state SSL_HANDSHAKE",
                "ssl.ca.location",
            ],
        );
        assert!(
            !stderr.contains("cannot reach") && !stderr.contains("unreachable"),
            "sim {command} reports a TLS failure as unreachable:\n{stderr}"
        );
    }
}

#[test]
fn a_closed_port_is_unreachable_whatever_the_security_protocol() {
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    for properties in [TLS, SASL, &[]] {
        let stderr = fails("backfill", &brokers, properties);
        assert_says(
            &stderr,
            &[
                "sim::sink::unreachable",
                &format!("cannot reach Kafka at {brokers}"),
                // librdkafka's reason, no longer just `BrokerTransportFailure`.
                "Connection refused",
            ],
        );
        assert!(
            !stderr.contains("TLS") && !stderr.contains("authentication"),
            "{properties:?}: a closed port is reported as something else:\n{stderr}"
        );
    }
}
