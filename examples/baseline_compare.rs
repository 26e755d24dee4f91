//! `sim backfill` against the Python baseline (benches/python_baseline.py, a producer written the
//! way the original darooghe_pulse.py is: confluent-kafka, `json.dumps`, `random`, `uuid4`), in
//! the same run, on the same brokers:
//!
//! (a) `sim backfill scripts/darooghe.rhai --count N --seed 1` into its embedded broker
//!     (librdkafka's mock cluster, in process);
//! (b) the Python baseline into an embedded broker. The mock cluster lives only as long as the
//!     process that hosts it, so a quiet `sim run` hosts it (`EVENT_INIT_MODE=skip`,
//!     `--set rate=0.001` events per minute, `--topic python.baseline`); the baseline produces
//!     into that topic and the host is stopped with SIGINT afterwards, its account printed to show
//!     it produced nothing of its own. The host creates the topic (3 partitions, as sim's own):
//!     the mock cluster names a controller that is not among its brokers, so an AdminClient's
//!     CreateTopics there waits for the controller until it times out, and a topic the mock
//!     creates on a metadata request gets its default 4 partitions instead of 3;
//! (c) `sim backfill ... --brokers ADDRESS` into Tansu over TCP (started here on a free port with
//!     in-memory storage, found on PATH or in ~/.cargo/bin);
//! (d) the Python baseline into the same Tansu, a fresh topic it creates with the AdminClient.
//!
//! It prints the load average, a table (sink, producer, events, seconds, events/s, delivered,
//! failed, bytes/event, whether every event was delivered and none failed) and the sim / Python
//! ratio of events per second per broker. sim's rate is what it reports on standard error
//! (`backfilled N events in S s (R events/s, delivery included)`: first event to last delivery
//! report); the baseline's runs from its first produce to the end of `flush()`. sim's bytes/event
//! is the mean JSON value of the same backfill (same count and seed) written to a JSON-lines file;
//! the baseline's is the mean of the values it produced (`json.dumps` with its default
//! separators, as the original). `--count` counts sim's arrivals (a fraud burst is one arrival of
//! several events); the baseline produces exactly COUNT events. It measures; it asserts nothing.
//!
//! ```text
//! cargo run --release --example baseline_compare -- 200000
//! ```
//!
//! Needs python3 with confluent-kafka and Tansu: `bash dev/install-test-deps.sh`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

#[path = "support/native.rs"]
mod native;

use native::NativeStream;
use sim::broker::EmbeddedBroker;
use sim::settings::Origin;
use sim::sink::{
    ensure_topic, DeliveryCounters, KafkaSink, KafkaSinkConfig, Record, Sink, TopicSpec,
};
use support::*;

const INSTALL_HINT: &str = "run `bash dev/install-test-deps.sh`";

/// The Python baseline's topic, on either broker.
const PYTHON_TOPIC: &str = "python.baseline";

/// One producer's run into one broker.
struct Run {
    sink: &'static str,
    producer: &'static str,
    events: u64,
    seconds: f64,
    rate: f64,
    delivered: u64,
    failed: u64,
    bytes_per_event: f64,
    exit_ok: bool,
}

impl Run {
    fn all_delivered(&self) -> bool {
        self.exit_ok && self.failed == 0 && self.delivered == self.events
    }
}

fn main() -> Result<(), Failure> {
    let count: u64 = match std::env::args().nth(1) {
        Some(n) => n.replace('_', "").parse()?,
        None => 200_000,
    };
    println!("load at start: {}", uptime());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sim = build_sim(&root)?;
    let script = root.join("scripts/darooghe.rhai");
    let baseline = root.join("benches/python_baseline.py");
    require_python()?;
    let tansu = find_tansu().ok_or_else(|| format!("tansu not found: {INSTALL_HINT}"))?;
    let scratch = std::env::temp_dir().join(format!("sim-baseline-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    println!(
        "count {count}, script {}, baseline {}",
        script.display(),
        baseline.display()
    );
    let sim_bytes = sim_bytes_per_event(&sim, &script, count, &scratch)?;
    println!(
        "sim's JSON value: {sim_bytes:.1} bytes/event (same backfill into a JSON-lines file)\n"
    );

    let mut runs = Vec::new();

    println!(
        "(a) ceilings into an embedded broker, in process: pre-encoded payloads, native events"
    );
    {
        let broker = EmbeddedBroker::start(&topic_spec(CEILING_TOPIC))?;
        let address = broker.bootstrap_servers();
        runs.push(ceiling_run(&address, count, Ceiling::RawSink, "embedded")?);
        runs.push(ceiling_run(&address, count, Ceiling::Native, "embedded")?);
    }

    for (workers, producer) in [("1", "sim w=1"), ("2", "sim w=2")] {
        println!("(b) sim backfill --workers {workers} into its embedded broker");
        let mut run = sim_backfill(
            &sim,
            &script,
            count,
            "embedded",
            &["--workers", workers],
            sim_bytes,
        )?;
        run.producer = producer;
        runs.push(run);
    }

    println!("(c) Python baseline into an embedded broker hosted by a quiet `sim run`");
    let host = Host::start(&sim, &script)?;
    println!("    host: embedded broker at {}", host.address);
    let run = python_run(&baseline, &host.address, PYTHON_TOPIC, count, "embedded");
    let account = host.stop()?;
    println!("    host stopped: {account}");
    runs.push(run?);

    let (mut broker, address) = start_tansu(&tansu, &scratch)?;
    println!("(d) the same into Tansu at {address}");
    let mut tansu_runs = || -> Result<(), Failure> {
        runs.push(ceiling_run(&address, count, Ceiling::RawSink, "Tansu")?);
        runs.push(ceiling_run(&address, count, Ceiling::Native, "Tansu")?);
        for (workers, producer) in [("1", "sim w=1"), ("2", "sim w=2")] {
            let mut run = sim_backfill(
                &sim,
                &script,
                count,
                "Tansu",
                &["--brokers", &address, "--workers", workers],
                sim_bytes,
            )?;
            run.producer = producer;
            runs.push(run);
        }
        runs.push(python_run(
            &baseline,
            &address,
            PYTHON_TOPIC,
            count,
            "Tansu",
        )?);
        Ok(())
    };
    let result = tansu_runs();
    let _ = broker.kill();
    let _ = broker.wait();
    result?;
    let _ = std::fs::remove_dir_all(&scratch);

    println!("\nload at end: {}\n", uptime());
    println!(
        "{:<9} {:<8} {:>8} {:>7} {:>10} {:>9} {:>6} {:>11} {:>24}",
        "sink",
        "producer",
        "events",
        "seconds",
        "events/s",
        "delivered",
        "failed",
        "bytes/event",
        "delivered=events, 0 fail"
    );
    for r in &runs {
        println!(
            "{:<9} {:<8} {:>8} {:>7.2} {:>10.0} {:>9} {:>6} {:>11.1} {:>24}",
            r.sink,
            r.producer,
            r.events,
            r.seconds,
            r.rate,
            r.delivered,
            r.failed,
            r.bytes_per_event,
            if r.all_delivered() { "yes" } else { "NO" }
        );
    }
    println!();
    for sink in ["embedded", "Tansu"] {
        let find = |producer: &str| {
            runs.iter()
                .find(|r| r.sink == sink && r.producer == producer)
        };
        let (Some(raw), Some(native), Some(one), Some(two), Some(python)) = (
            find("raw sink"),
            find("native"),
            find("sim w=1"),
            find("sim w=2"),
            find("Python"),
        ) else {
            continue;
        };
        println!(
            "{sink:<9} sim w=2 / Python {:.2}x, sim w=1 / Python {:.2}x, sim w=2 / native ceiling {:.3}x, \
             native / raw sink {:.2}x, sim w=2 / w=1 {:.2}x",
            two.rate / python.rate,
            one.rate / python.rate,
            two.rate / native.rate,
            native.rate / raw.rate,
            two.rate / one.rate,
        );
    }
    println!("\n--count counts sim's arrivals: a fraud burst is one arrival of several events.");
    Ok(())
}

/// The ceilings' topic, on either broker.
const CEILING_TOPIC: &str = "ceiling";

fn topic_spec(name: &str) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions: 3,
        replication: 1,
    }
}

/// What a ceiling run sends.
#[derive(Clone, Copy, PartialEq)]
enum Ceiling {
    /// One native event's payload, encoded once and sent `count` times (keys vary): the producer
    /// and broker alone.
    RawSink,
    /// Native events (support/native.rs), generated and encoded one by one.
    Native,
}

/// `count` events through sim's own Kafka sink (same producer settings: acks=all, idempotent),
/// timed from the first send to the last delivery report, as sim's own figure is.
fn ceiling_run(
    brokers: &str,
    count: u64,
    kind: Ceiling,
    sink: &'static str,
) -> Result<Run, Failure> {
    let topic = format!(
        "{CEILING_TOPIC}.{}",
        if kind == Ceiling::RawSink {
            "raw"
        } else {
            "native"
        }
    );
    let config = KafkaSinkConfig {
        brokers: brokers.into(),
        brokers_origin: Origin::Default,
        topic: topic.clone(),
        properties: Default::default(),
        headers: vec![("scenario".into(), "ceiling".into())],
        transactional_id: None,
    };
    let counters = std::sync::Arc::new(DeliveryCounters::default());
    let mut producer = KafkaSink::connect(&config, counters)?;
    if sink == "Tansu" {
        ensure_topic(&config.client_config(), &topic_spec(&topic), true)?;
    }
    let mut stream = NativeStream::new(1, 1_000);
    let (mut key, mut payload) = (Vec::with_capacity(64), Vec::with_capacity(1024));
    let mut time_ms = stream.next_event(&mut key, &mut payload);
    let (mut bytes, started) = (0u64, Instant::now());
    for i in 0..count {
        if kind == Ceiling::Native {
            time_ms = stream.next_event(&mut key, &mut payload);
        } else {
            key.clear();
            key.extend_from_slice(format!("cust_{}", i % 1_000).as_bytes());
        }
        bytes += payload.len() as u64;
        producer.send(Record {
            key: Some(&key),
            payload: &payload,
            timestamp_ms: time_ms,
            revision: 1,
            fraud_pattern: None,
        })?;
    }
    let account = producer.close(Duration::from_secs(60))?;
    let seconds = started.elapsed().as_secs_f64();
    let run = Run {
        sink,
        producer: if kind == Ceiling::RawSink {
            "raw sink"
        } else {
            "native"
        },
        events: count,
        seconds,
        rate: count as f64 / seconds,
        delivered: account.delivered,
        failed: account.failed,
        bytes_per_event: bytes as f64 / count as f64,
        exit_ok: true,
    };
    println!("    {:<8} {:.0} events/s", run.producer, run.rate);
    Ok(run)
}

/// A `sim` command without the machine's settings variables.
fn sim_command(sim: &Path) -> Command {
    let mut command = Command::new(sim);
    for var in SETTING_VARS {
        command.env_remove(var);
    }
    command
}

fn require_python() -> Result<(), Failure> {
    let ok = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!("python3 with confluent_kafka is missing: {INSTALL_HINT}").into())
    }
}

/// Mean bytes of sim's JSON value: the same backfill written to a JSON-lines file.
fn sim_bytes_per_event(
    sim: &Path,
    script: &Path,
    count: u64,
    scratch: &Path,
) -> Result<f64, Failure> {
    let file = scratch.join("events.jsonl");
    let output = sim_command(sim)
        .arg("backfill")
        .arg(script)
        .args(["--count", &count.to_string(), "--seed", "1"])
        .args(["--sink", &format!("file:{}", file.display())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("sim backfill into a file failed:\n{stderr}").into());
    }
    let bytes = std::fs::read(&file)?;
    let _ = std::fs::remove_file(&file);
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    if lines == 0 {
        return Err("sim backfill wrote no events".into());
    }
    Ok((bytes.len() - lines) as f64 / lines as f64)
}

/// Runs `sim backfill` and parses its report.
fn sim_backfill(
    sim: &Path,
    script: &Path,
    count: u64,
    sink: &'static str,
    extra: &[&str],
    bytes_per_event: f64,
) -> Result<Run, Failure> {
    let output = sim_command(sim)
        .arg("backfill")
        .arg(script)
        .args(["--count", &count.to_string(), "--seed", "1"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines().filter(|l| {
        l.starts_with("backfilled ") || l.starts_with("account: ") || l.contains("error")
    }) {
        println!("    sim: {line}");
    }
    let Some(((events, seconds, rate), (_produced, delivered, failed))) = parse_report(&stderr)
    else {
        return Err(format!("{sink}: could not read sim's report:\n{stderr}").into());
    };
    Ok(Run {
        sink,
        producer: "sim",
        events,
        seconds,
        rate,
        delivered,
        failed,
        bytes_per_event,
        exit_ok: output.status.success(),
    })
}

/// Runs the Python baseline and parses its JSON line.
fn python_run(
    baseline: &Path,
    brokers: &str,
    topic: &str,
    count: u64,
    sink: &'static str,
) -> Result<Run, Failure> {
    let output = Command::new("python3")
        .arg(baseline)
        .args(["--brokers", brokers, "--topic", topic])
        .args(["--count", &count.to_string()])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines().take(5) {
        println!("    python: {line}");
    }
    let report: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| {
            format!(
                "{sink}: the baseline printed no JSON line ({})\n{stderr}",
                output.status
            )
        })?;
    println!("    python: {report}");
    let number = |key: &str| -> Result<f64, Failure> {
        report[key]
            .as_f64()
            .ok_or_else(|| format!("the baseline's report has no number {key}: {report}").into())
    };
    Ok(Run {
        sink,
        producer: "Python",
        events: number("events")? as u64,
        seconds: number("seconds")?,
        rate: number("events_per_second")?,
        delivered: number("delivered")? as u64,
        failed: number("failed")? as u64,
        bytes_per_event: number("bytes_per_event")?,
        exit_ok: output.status.success(),
    })
}

/// A quiet `sim run` whose embedded broker hosts the baseline's topic.
struct Host {
    child: Child,
    address: String,
    lines: mpsc::Receiver<String>,
}

impl Host {
    fn start(sim: &Path, script: &Path) -> Result<Self, Failure> {
        let mut child = sim_command(sim)
            .arg("run")
            .arg(script)
            .args(["--set", "rate=0.001", "--set", "backfill=0"])
            .args(["--duration", "600", "--no-reload", "--topic", PYTHON_TOPIC])
            .env("EVENT_INIT_MODE", "skip")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = lines.recv_timeout(left) else {
                break;
            };
            // `embedded broker at ADDRESS, topic TOPIC`
            if let Some(rest) = line.strip_prefix("embedded broker at ") {
                let (address, topic) = rest.split_once(", topic ").unwrap_or((rest, ""));
                if topic.trim() != PYTHON_TOPIC {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("the host's topic is {topic:?}, not {PYTHON_TOPIC}").into());
                }
                return Ok(Self {
                    address: address.trim().to_string(),
                    child,
                    lines,
                });
            }
            seen.push(line);
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "the host `sim run` printed no embedded broker address:\n{}",
            seen.join("\n")
        )
        .into())
    }

    /// Stops the host with SIGINT, as Ctrl-C does; returns its final account line.
    fn stop(mut self) -> Result<String, Failure> {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()?;
        let status = wait_bounded(&mut self.child, Duration::from_secs(30));
        let lines: Vec<String> = self.lines.try_iter().collect();
        let account = lines
            .iter()
            .rev()
            .find(|l| l.starts_with("account: "))
            .cloned()
            .unwrap_or_else(|| "no account line".into());
        match status {
            Some(status) => Ok(format!("{account} (exit {})", describe(status))),
            None => Err(format!("the host did not stop within 30 s:\n{}", lines.join("\n")).into()),
        }
    }
}

fn describe(status: ExitStatus) -> String {
    status
        .code()
        .map_or_else(|| status.to_string(), |code| code.to_string())
}

/// Waits up to `timeout` for `child`; kills it and returns `None` if it is still running.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
