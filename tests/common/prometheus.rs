//! A real Prometheus server for the metrics tests: started on a free loopback port with a
//! generated configuration that scrapes the given targets every second, asked through its HTTP
//! API, and killed on drop. Beside it, `parse_exposition` reads a text exposition with the
//! official Python client's parser, a second opinion on what `sim --metrics` serves.
//!
//! Prometheus (Debian's package, `/usr/bin/prometheus`) and the Python `prometheus_client` are
//! installed by `bash dev/install-test-deps.sh`; a test that needs one that is missing fails with
//! a message naming that command, never skips.
//!
//! HTTP goes through `super::http`, a plain `TcpStream` client.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{http_get, url_encode};
use super::{drain, free_port, root, wait_bounded, INSTALL_HINT};

/// Where Debian's package puts the server.
pub const PROMETHEUS_BINARY: &str = "/usr/bin/prometheus";

/// How often Prometheus scrapes and evaluates: short, so a test sees a new value within seconds.
const SCRAPE_INTERVAL: &str = "1s";

/// Below the interval, as Prometheus requires.
const SCRAPE_TIMEOUT: &str = "900ms";

/// How long the server may take to answer `/-/ready` after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// One series of an instant query's answer: its labels and its value.
pub type Sample = (BTreeMap<String, String>, f64);

/// Fails the test unless the Prometheus server runs.
pub fn require_prometheus() {
    let ok = Command::new(PROMETHEUS_BINARY)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "prometheus ({PROMETHEUS_BINARY}) is missing: {INSTALL_HINT}"
    );
}

/// Fails the test unless python3 can import `prometheus_client`.
pub fn require_prometheus_client() {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with prometheus_client is missing: {INSTALL_HINT}"
    );
}

/// A scrape target as Prometheus reports it in `/api/v1/targets`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The URL it scrapes, e.g. `http://127.0.0.1:9187/metrics`.
    pub scrape_url: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    /// Why the last scrape failed; empty when it succeeded.
    pub last_error: String,
}

/// A Prometheus server scraping fixed targets, with its storage in a temporary directory; killed
/// on drop.
pub struct Prometheus {
    child: Child,
    /// Where its HTTP API listens, `127.0.0.1:PORT`.
    pub address: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (each `host:port`, path `/metrics`) as the job `job`,
    /// and waits until it answers `/-/ready`. Fails the test if it does not within 20 s.
    pub fn start(job: &str, targets: &[&str]) -> Self {
        require_prometheus();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, scrape_config(job, targets)).expect("write prometheus.yml");
        let mut last_log = String::new();
        // Another test may take the port between our probe and Prometheus's bind: try a few.
        for attempt in 0..5 {
            let address = format!("127.0.0.1:{}", free_port());
            let log = dir.path().join(format!("prometheus-{attempt}.log"));
            let file = std::fs::File::create(&log).expect("prometheus log file");
            let mut child = Command::new(PROMETHEUS_BINARY)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join(format!("data-{attempt}")).display()
                ))
                .arg(format!("--web.listen-address={address}"))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::from(file.try_clone().expect("clone log file")))
                .stderr(Stdio::from(file))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {PROMETHEUS_BINARY}: {e}"));
            if wait_ready(&mut child, &address) {
                return Prometheus {
                    child,
                    address,
                    log,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("prometheus did not become ready; its last log:\n{last_log}");
    }

    /// Prometheus's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The answer to the instant query `promql` at the current time: each series' labels and
    /// value (a scalar answers as one series without labels). Fails the test if Prometheus
    /// rejects the query.
    pub fn query(&self, promql: &str) -> Vec<Sample> {
        self.try_query(promql)
            .unwrap_or_else(|e| panic!("query {promql:?}: {e}\nprometheus log:\n{}", self.log()))
    }

    /// Runs the instant query `promql` every 200 ms until `predicate` holds for its answer, and
    /// returns that answer. Fails the test with the last answer (or error) and Prometheus's log
    /// if it does not hold within `timeout`.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        predicate: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.try_query(promql);
            if let Ok(samples) = &last {
                if predicate(samples) {
                    return samples.clone();
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "query {promql:?} did not give the expected answer within {timeout:?}; \
                     the last answer: {last:?}\ntargets: {:?}\nprometheus log:\n{}",
                    self.try_targets(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The scrape targets as Prometheus sees them now.
    pub fn targets(&self) -> Vec<Target> {
        self.try_targets()
            .unwrap_or_else(|e| panic!("/api/v1/targets: {e}\nprometheus log:\n{}", self.log()))
    }

    /// Waits until every target has been scraped successfully (health `up`), and returns them.
    /// Fails the test with each target's last error and Prometheus's log if that takes longer
    /// than `timeout`.
    pub fn targets_up(&self, timeout: Duration) -> Vec<Target> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.try_targets();
            if let Ok(targets) = &last {
                if !targets.is_empty() && targets.iter().all(|t| t.health == "up") {
                    return targets.clone();
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "the targets were not all up within {timeout:?}: {last:?}\nprometheus log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn try_query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(promql)))?;
        let result = &data["result"];
        match data["resultType"].as_str() {
            Some("vector") => result
                .as_array()
                .ok_or_else(|| format!("a vector that is not an array: {data}"))?
                .iter()
                .map(|series| {
                    let labels = series["metric"]
                        .as_object()
                        .ok_or_else(|| format!("a series without labels: {series}"))?
                        .iter()
                        .map(|(name, value)| {
                            (name.clone(), value.as_str().unwrap_or_default().to_string())
                        })
                        .collect();
                    Ok((labels, sample_value(&series["value"])?))
                })
                .collect(),
            Some("scalar") => Ok(vec![(BTreeMap::new(), sample_value(result)?)]),
            other => Err(format!(
                "an answer of type {other:?}, not a vector or scalar: {data}"
            )),
        }
    }

    fn try_targets(&self) -> Result<Vec<Target>, String> {
        let data = self.api("/api/v1/targets?state=active")?;
        let active = data["activeTargets"]
            .as_array()
            .ok_or_else(|| format!("no activeTargets in {data}"))?;
        Ok(active
            .iter()
            .map(|t| Target {
                scrape_url: t["scrapeUrl"].as_str().unwrap_or_default().to_string(),
                health: t["health"].as_str().unwrap_or_default().to_string(),
                last_error: t["lastError"].as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }

    /// The `data` of an API answer whose `status` is `success`.
    fn api(&self, path: &str) -> Result<Value, String> {
        let response = http_get(&self.address, path)?;
        let body: Value = serde_json::from_str(&response.body).map_err(|e| {
            format!(
                "HTTP {} with a body that is not JSON ({e}): {}",
                response.status, response.body
            )
        })?;
        if body["status"] != "success" {
            return Err(format!(
                "HTTP {}: {} {}",
                response.status, body["errorType"], body["error"]
            ));
        }
        Ok(body["data"].clone())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration: one job scraping `targets` every second.
fn scrape_config(job: &str, targets: &[&str]) -> String {
    // JSON strings are YAML strings, quoted and escaped.
    let quoted = |s: &str| serde_json::to_string(s).expect("a string as JSON");
    let targets: Vec<String> = targets.iter().map(|t| quoted(t)).collect();
    format!(
        "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  evaluation_interval: {SCRAPE_INTERVAL}\n  \
         scrape_timeout: {SCRAPE_TIMEOUT}\nscrape_configs:\n  - job_name: {}\n    \
         static_configs:\n      - targets: [{}]\n",
        quoted(job),
        targets.join(", ")
    )
}

/// Waits until the server at `address` answers `/-/ready`; false if `child` exits first (most
/// likely the port was taken) or it takes longer than [`READY_TIMEOUT`].
fn wait_ready(child: &mut Child, address: &str) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        // Ready, and still ours: not some other process that took the port.
        let ready = http_get(address, "/-/ready").is_ok_and(|r| r.status == 200);
        if ready && matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A value as the API writes it, `[time, "text"]`; the text may be `NaN` or `+Inf`.
fn sample_value(pair: &Value) -> Result<f64, String> {
    let text = pair[1]
        .as_str()
        .ok_or_else(|| format!("a sample without a value: {pair}"))?;
    text.parse()
        .map_err(|e| format!("a sample value {text:?} that is not a number: {e}"))
}

// ---- The Python client's parser ---------------------------------------------------------------

/// `text`, a Prometheus text exposition, parsed by `prometheus_client` through
/// tests/support/parse_exposition.py: `{family: {"type": ..., "samples": [[name, labels,
/// value], ...]}}`. Fails the test, with the parser's error, if the text is not an exposition.
pub fn parse_exposition(text: &str) -> Value {
    try_parse_exposition(text).unwrap_or_else(|e| panic!("{e}\nthe exposition:\n{text}"))
}

/// As [`parse_exposition`], but the parser's rejection is returned, for tests of bad text.
pub fn try_parse_exposition(text: &str) -> Result<Value, String> {
    require_prometheus_client();
    let script = root().join("tests/support/parse_exposition.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start python3 {}: {e}", script.display()));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written whole, then closed: the script reads to the end before it parses.
    let written = stdin.write_all(text.as_bytes());
    drop(stdin);
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    match status {
        None => panic!("parse_exposition.py did not finish within 30 s\n{stderr}"),
        Some(s) if !s.success() => Err(format!("parse_exposition.py failed ({s}): {stderr}")),
        Some(_) => {
            written.map_err(|e| format!("writing to parse_exposition.py: {e}"))?;
            serde_json::from_str(&stdout).map_err(|e| {
                format!("parse_exposition.py printed something that is not JSON ({e}): {stdout}")
            })
        }
    }
}
