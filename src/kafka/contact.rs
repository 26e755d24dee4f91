//! The first contact with a cluster, and why it failed.
//!
//! A metadata request that gets no answer fails the same way whatever went wrong
//! (`BrokerTransportFailure`): a wrong address, SASL credentials the broker refused, a TLS
//! handshake with a plaintext listener. librdkafka tells why elsewhere: as error events for the
//! client's context (`Authentication`, `SSL`, `__TRANSPORT` with a reason that names the SASL
//! mechanism or the SSL handshake) and as `FAIL` log lines (a connection setup that timed out is
//! only logged, at warning level). So [`super::Cluster::reach`] makes the first contact with a
//! probe client whose context, [`ContactLog`], keeps those reports, and reads the cause from
//! them when the request fails.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use crate::sync::lock;

/// At most this many reports are kept: the first ones tell, later ones repeat them.
const KEPT: usize = 16;
/// librdkafka's floor for `socket.connection.setup.timeout.ms`.
const MIN_SETUP_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the first contact failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// SASL: the broker refused the mechanism or the credentials, or its listener wants SASL and
    /// the client did not speak it.
    Authentication(String),
    /// TLS: the handshake failed or never completed (a TLS client at a plaintext listener), the
    /// broker's certificate was not trusted, or the listener wants TLS.
    Tls(String),
    /// Nothing answered, or not as Kafka does: librdkafka's reason, as far as it gave one.
    Unreachable(String),
}

/// The probe's configuration: the client's own (`config`), logging connection failures down to
/// warnings, and giving up on a connection that is still being set up (a TLS or SASL handshake
/// nobody answers) before `timeout` runs out, so that librdkafka reports the state it was stuck
/// in while the probe still listens. A user's `socket.connection.setup.timeout.ms` is kept. The
/// probe is a producer, whose metadata request for a topic would create it on a broker that
/// allows it: it asks without, so a missing topic stays missing.
pub(super) fn probe_config(mut config: ClientConfig, timeout: Duration) -> ClientConfig {
    config.set_log_level(RDKafkaLogLevel::Warning);
    config.set("allow.auto.create.topics", "false");
    if config.get("socket.connection.setup.timeout.ms").is_none() {
        let setup = (timeout * 3 / 4).max(MIN_SETUP_TIMEOUT);
        config.set(
            "socket.connection.setup.timeout.ms",
            setup.as_millis().to_string(),
        );
    }
    config
}

/// One report of librdkafka's: its error code (none for a log line), and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Report {
    code: Option<RDKafkaErrorCode>,
    reason: String,
}

/// The probe's context: keeps, in order, what librdkafka reported going wrong.
#[derive(Debug, Default)]
pub(super) struct ContactLog {
    reports: Mutex<Vec<Report>>,
}

impl ContactLog {
    fn record(&self, code: Option<RDKafkaErrorCode>, reason: &str) {
        let mut reports = lock(&self.reports);
        // The same failure comes as a log line first, then as an error event with its code.
        if let Some(seen) = reports.iter_mut().find(|r| r.reason == reason) {
            seen.code = seen.code.or(code);
        } else if reports.len() < KEPT {
            reports.push(Report {
                code,
                reason: reason.to_string(),
            });
        }
    }

    /// The most telling cause among the reports, if there were any.
    pub(super) fn cause(&self) -> Option<Cause> {
        classify(&lock(&self.reports))
    }
}

impl ClientContext for ContactLog {
    fn error(&self, error: KafkaError, reason: &str) {
        self.record(error.rdkafka_error_code(), reason);
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, line: &str) {
        if facility == "FAIL" && level as i32 <= RDKafkaLogLevel::Warning as i32 {
            self.record(None, without_thread(line));
        }
    }
}

impl ProducerContext for ContactLog {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// A log line without its `[thrd:NAME]: ` prefix, so it reads as the error event's reason.
fn without_thread(line: &str) -> &str {
    match line
        .strip_prefix("[thrd:")
        .and_then(|rest| rest.split_once("]: "))
    {
        Some((_, reason)) => reason,
        None => line,
    }
}

/// The first report that names SASL or TLS wins; otherwise the first that says anything more
/// than "all brokers are down".
fn classify(reports: &[Report]) -> Option<Cause> {
    reports
        .iter()
        .find_map(|report| {
            let reason = report.reason.clone();
            if is_authentication(report) {
                Some(Cause::Authentication(reason))
            } else if is_tls(report) {
                Some(Cause::Tls(reason))
            } else {
                None
            }
        })
        .or_else(|| {
            reports
                .iter()
                .find(|r| r.code != Some(RDKafkaErrorCode::AllBrokersDown))
                .map(|r| Cause::Unreachable(r.reason.clone()))
        })
}

/// Upper-case, as librdkafka writes them in its reasons; the broker's name starts
/// `sasl_ssl://` or `ssl://` in lower case and says nothing about what failed.
const AUTHENTICATION_WORDS: &[&str] = &["SASL", "AUTH_HANDSHAKE", "AUTH_REQ", "AUTH_LEGACY"];
const TLS_WORDS: &[&str] = &[
    "SSL handshake",
    "SSL_HANDSHAKE",
    "SSL listener",
    "PLAINTEXT broker listener",
    "certificate",
];

fn is_authentication(report: &Report) -> bool {
    report.code == Some(RDKafkaErrorCode::Authentication)
        || AUTHENTICATION_WORDS
            .iter()
            .any(|word| report.reason.contains(word))
}

fn is_tls(report: &Report) -> bool {
    report.code == Some(RDKafkaErrorCode::SSL)
        || TLS_WORDS.iter().any(|word| report.reason.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(reports: &[(Option<RDKafkaErrorCode>, &str)]) -> ContactLog {
        let log = ContactLog::default();
        for (code, reason) in reports {
            log.record(*code, reason);
        }
        log
    }

    // The reasons below are librdkafka 2.12's, as seen against Tansu and a closed port.

    #[test]
    fn a_refused_sasl_handshake_is_an_authentication_failure() {
        let log = log_of(&[
            (
                Some(RDKafkaErrorCode::AllBrokersDown),
                "1/1 brokers are down",
            ),
            (
                Some(RDKafkaErrorCode::Authentication),
                "sasl_plaintext://127.0.0.1:9092/bootstrap: SASL PLAIN mechanism handshake \
                 failed: Broker: Unsupported SASL mechanism (after 0ms in state AUTH_HANDSHAKE)",
            ),
        ]);
        assert!(matches!(log.cause(), Some(Cause::Authentication(r)) if r.contains("SASL PLAIN")));
    }

    #[test]
    fn a_handshake_nobody_answers_is_a_tls_failure() {
        let log = ContactLog::default();
        // Only logged, at warning level, with the thread's name in front.
        log.log(
            RDKafkaLogLevel::Warning,
            "FAIL",
            "[thrd:ssl://127.0.0.1:9092/bootstrap]: ssl://127.0.0.1:9092/bootstrap: Connection \
             setup timed out in state SSL_HANDSHAKE (after 3750ms in state SSL_HANDSHAKE)",
        );
        log.log(
            RDKafkaLogLevel::Warning,
            "CONFWARN",
            "SSL handshake, not a failure",
        );
        assert_eq!(
            log.cause(),
            Some(Cause::Tls(
                "ssl://127.0.0.1:9092/bootstrap: Connection setup timed out in state \
                 SSL_HANDSHAKE (after 3750ms in state SSL_HANDSHAKE)"
                    .into()
            ))
        );
    }

    #[test]
    fn a_plaintext_listener_closing_on_a_tls_client_is_a_tls_failure() {
        let log = log_of(&[(
            Some(RDKafkaErrorCode::BrokerTransportFailure),
            "ssl://h:9092/bootstrap: SSL handshake failed: Disconnected: connecting to a \
             PLAINTEXT broker listener? (after 2ms in state SSL_HANDSHAKE)",
        )]);
        assert!(matches!(log.cause(), Some(Cause::Tls(_))));
    }

    #[test]
    fn a_refused_connection_is_unreachable_even_with_tls_or_sasl_configured() {
        for scheme in ["ssl", "sasl_ssl", "sasl_plaintext"] {
            let reason = format!(
                "{scheme}://127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: \
                 Connection refused (after 0ms in state CONNECT)"
            );
            let log = log_of(&[
                (
                    Some(RDKafkaErrorCode::AllBrokersDown),
                    "1/1 brokers are down",
                ),
                (Some(RDKafkaErrorCode::BrokerTransportFailure), &reason),
            ]);
            assert_eq!(log.cause(), Some(Cause::Unreachable(reason)));
        }
    }

    #[test]
    fn nothing_reported_is_no_cause_and_repeats_are_kept_once() {
        assert_eq!(ContactLog::default().cause(), None);
        let log = log_of(&[(None, "x"), (Some(RDKafkaErrorCode::SSL), "x")]);
        assert_eq!(log.reports.lock().unwrap().len(), 1);
        assert_eq!(log.cause(), Some(Cause::Tls("x".into())));
    }
}
