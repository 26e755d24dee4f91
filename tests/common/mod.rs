//! Shared helpers of the integration tests: running the `sim` binary with a bounded wait,
//! starting Tansu on a free port, and reading a topic back with outside clients (the Python
//! client `confluent-kafka`, and kcat). The submodule `prometheus` starts a real Prometheus
//! server that scrapes `sim --metrics`, and parses a text exposition with the Python client;
//! `http` is the plain HTTP GET it (and a test asking `sim --metrics` directly) uses.
//!
//! The outside tools are installed by `bash dev/install-test-deps.sh`; a test that needs one that
//! is missing fails with a message naming that command, never skips.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod http;
pub mod prometheus;
pub mod tmux;

/// Replaces the script at `path` with `text` in one step (written beside it, then renamed over
/// it), as editors that save atomically do: the watcher sees one change, with the whole text,
/// where a plain `std::fs::write` truncates and then writes (two changes, which the reloader
/// takes as one half-done save; see `tests/reload.rs`).
pub fn replace_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("rhai.swp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// The project's root: scripts/ and tests/ are found from here.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The darooghe scenario.
pub fn darooghe() -> PathBuf {
    root().join("scripts/darooghe.rhai")
}

/// A fixture under tests/fixtures/.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

const INSTALL_HINT: &str = "run `bash dev/install-test-deps.sh` to install it";

/// A `sim` command with a clean environment (so no `EVENT_RATE` or `KAFKA_BROKER` of the
/// machine leaks in), run from the project's root.
pub fn sim() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sim"));
    cmd.env_clear().current_dir(root());
    for var in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd
}

/// What a finished process left.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("standard output is UTF-8")
    }

    /// The final line of standard error.
    pub fn last_stderr_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }
}

fn drain<R: Read + Send + 'static>(mut from: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = from.read_to_end(&mut out);
        out
    })
}

/// Runs `cmd` to its end, killing it and failing the test if it takes longer than `timeout`
/// (a bound against hangs, not a timing assertion).
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let description = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let status = wait_bounded(&mut child, timeout);
    let stdout = stdout.join().unwrap();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{description} did not finish within {timeout:?}; it was killed.\nstderr:\n{stderr}"
        ),
    }
}

/// Waits up to `timeout` for `child`; kills it and returns `None` if it is still running.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
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

/// Text with line wrapping undone: miette wraps long messages at 80 columns and marks the
/// continuation with `|`, so this squashes whitespace and those marks away before comparing.
pub fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '|')
        .collect()
}

/// Whether `haystack` (as rendered, possibly wrapped) contains `needle`.
pub fn mentions(haystack: &str, needle: &str) -> bool {
    squash(haystack).contains(&squash(needle))
}

/// The account line: `account: produced N, delivered N, failed N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub produced: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Arrivals and follow-ups skipped because the script failed (0 when not printed).
    pub script_errors: u64,
}

/// Parses the final account from `sim`'s standard error; fails the test if the last line is not
/// one.
pub fn final_account(stderr: &str) -> Account {
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    parse_account(last).unwrap_or_else(|| {
        panic!("the last line of stderr is not the account, but {last:?}\nstderr:\n{stderr}")
    })
}

fn parse_account(line: &str) -> Option<Account> {
    let rest = line.trim().strip_prefix("account: ")?;
    let mut fields = BTreeMap::new();
    for part in rest.split(", ") {
        let (name, value) = part.rsplit_once(' ')?;
        fields.insert(name, value.parse::<u64>().ok()?);
    }
    let known = ["produced", "delivered", "failed", "script errors"];
    if fields.keys().any(|name| !known.contains(name)) {
        return None; // e.g. an `unaccounted N` field
    }
    Some(Account {
        produced: *fields.get("produced")?,
        delivered: *fields.get("delivered")?,
        failed: *fields.get("failed")?,
        script_errors: fields.get("script errors").copied().unwrap_or(0),
    })
}

/// The events in `backfilled N arrivals, which made M events ...`, if `stderr` has that line.
pub fn backfilled_events(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|line| {
        line.strip_prefix("backfilled ")?
            .split_once("which made ")?
            .1
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

/// Fails the test if `stderr` shows a panic.
pub fn assert_no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked"),
        "sim panicked instead of reporting an error:\n{stderr}"
    );
}

// ---- A `sim run` in the background ------------------------------------------------------------

/// Lines read so far, and whether the stream has ended.
#[derive(Default)]
struct LinesState {
    lines: Vec<String>,
    ended: bool,
}

/// Standard error lines of a child, collected by a thread, waitable.
#[derive(Clone, Default)]
struct Lines {
    inner: Arc<(Mutex<LinesState>, Condvar)>,
}

impl Lines {
    fn collect<R: Read + Send + 'static>(from: R) -> (Self, JoinHandle<()>) {
        let lines = Lines::default();
        let writer = lines.clone();
        let handle = std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                let (lock, wake) = &*writer.inner;
                lock.lock().unwrap().lines.push(line);
                wake.notify_all();
            }
            let (lock, wake) = &*writer.inner;
            lock.lock().unwrap().ended = true;
            wake.notify_all();
        });
        (lines, handle)
    }

    fn snapshot(&self) -> Vec<String> {
        self.inner.0.lock().unwrap().lines.clone()
    }

    /// Waits until a line satisfies `pred` (returning it), the stream ends, or `timeout`.
    fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.wait_for_nth(1, timeout, pred)
    }

    /// Waits until `n` lines satisfy `pred` (returning the `n`-th), the stream ends, or
    /// `timeout`.
    fn wait_for_nth(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let (lock, wake) = &*self.inner;
        let deadline = Instant::now() + timeout;
        let mut state = lock.lock().unwrap();
        loop {
            if let Some(line) = state.lines.iter().filter(|l| pred(l)).nth(n - 1) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if state.ended || now >= deadline {
                return None;
            }
            state = wake.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}

/// `sim run` (or any sim command) running in the background, killed if dropped while running.
pub struct Background {
    child: Child,
    stderr: Lines,
    reader: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts `cmd` with standard error collected line by line.
    pub fn start(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (stderr, reader) = Lines::collect(child.stderr.take().unwrap());
        Self {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.snapshot().join("\n")
    }

    /// Waits for a line of standard error that satisfies `pred`; fails the test with what was
    /// printed if none comes within `timeout` or the process ends first.
    pub fn wait_for_line(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        self.stderr.wait_for(timeout, pred).unwrap_or_else(|| {
            panic!(
                "sim printed no line with {what} within {timeout:?}\nstderr:\n{}",
                self.stderr()
            )
        })
    }

    /// Waits for the `n`-th line of standard error that satisfies `pred` (counting from the
    /// start of the run), as [`Background::wait_for_line`] waits for the first.
    pub fn wait_for_nth_line(
        &self,
        n: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        self.stderr
            .wait_for_nth(n, timeout, pred)
            .unwrap_or_else(|| {
                panic!(
                    "sim printed no {n}th line with {what} within {timeout:?}\nstderr:\n{}",
                    self.stderr()
                )
            })
    }

    /// The address in `embedded broker at ADDRESS, topic TOPIC`, and the topic.
    pub fn embedded_broker(&self, timeout: Duration) -> (String, String) {
        let line = self.wait_for_line("the embedded broker's address", timeout, |l| {
            l.starts_with("embedded broker at ")
        });
        let rest = line.strip_prefix("embedded broker at ").unwrap();
        let (address, topic) = rest
            .split_once(", topic ")
            .unwrap_or_else(|| panic!("unexpected broker line {line:?}"));
        (address.trim().to_string(), topic.trim().to_string())
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT {} failed", self.child.id());
    }

    /// Waits for the process to end (bounded), returning its status and all of standard error.
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, String) {
        let status = wait_bounded(&mut self.child, timeout);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let stderr = self.stderr();
        match status {
            Some(status) => (status, stderr),
            None => panic!("sim did not end within {timeout:?}; killed.\nstderr:\n{stderr}"),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- Outside tools ----------------------------------------------------------------------------

/// Fails the test unless the Python client is importable.
pub fn require_python_client() {
    let ok = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with the confluent-kafka client is missing: {INSTALL_HINT}"
    );
}

/// Fails the test unless kcat runs.
pub fn require_kcat() {
    require_tool("kcat", "-V");
}

/// Fails the test, with how to install it, when `tool` does not answer `version_flag`.
pub fn require_tool(tool: &str, version_flag: &str) {
    let ok = Command::new(tool)
        .arg(version_flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{tool} is missing: {INSTALL_HINT}");
}

/// Fails the test, with how to install it, when tmux is missing.
pub fn require_tmux() {
    require_tool("tmux", "-V");
}

/// The tansu binary: on PATH, or where `cargo install` puts it.
pub fn tansu_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("tansu"))
            .find(|p| p.is_file())
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path
        .or_else(|| {
            cargo_home
                .map(|h| h.join("bin/tansu"))
                .filter(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("tansu is missing: {INSTALL_HINT}"))
}

/// One message read back from a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// 1: CreateTime, 2: LogAppendTime (librdkafka's numbering), 0: none.
    pub timestamp_type: i64,
    pub headers: Vec<(String, String)>,
}

impl Message {
    /// The value as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.value)
            .unwrap_or_else(|e| panic!("message value is not JSON ({e}): {}", self.value))
    }

    fn from_python_line(line: &str) -> Self {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("consume.py printed a line that is not JSON ({e}): {line}"));
        Message {
            partition: v["partition"].as_i64().unwrap() as i32,
            offset: v["offset"].as_i64().unwrap(),
            key: v["key"].as_str().map(str::to_string),
            value: v["value"].as_str().unwrap_or_default().to_string(),
            timestamp: v["timestamp"].as_i64().unwrap(),
            timestamp_type: v["timestamp_type"].as_i64().unwrap(),
            headers: v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_string(),
                        h[1].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        }
    }
}

fn consume_script() -> PathBuf {
    root().join("tests/support/consume.py")
}

/// Reads `topic` with the Python client, assigning partitions `0..partitions` from the beginning
/// (no consumer group), until `expect` messages were read or `timeout` passed. Returns what was
/// read; the caller compares the count.
pub fn python_read(
    brokers: &str,
    topic: &str,
    partitions: i32,
    expect: usize,
    timeout: Duration,
) -> Vec<Message> {
    require_python_client();
    let output = run(
        Command::new("python3")
            .arg(consume_script())
            .args(["--brokers", brokers, "--topic", topic])
            .args(["--partitions", &partitions.to_string()])
            .args(["--expect", &expect.to_string()])
            .args(["--timeout", &timeout.as_secs_f64().to_string()]),
        timeout + Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "consume.py failed: {}\n{}",
        output.status,
        output.stderr
    );
    output
        .stdout_text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(Message::from_python_line)
        .collect()
}

/// The Python client reading a topic in the background (from the beginning of every partition)
/// while something else produces to it. Closing its standard input tells it to stop: it then
/// takes what its client already fetched and exits.
pub struct PythonReader {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: Arc<Mutex<Vec<Message>>>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl PythonReader {
    pub fn start(brokers: &str, topic: &str, partitions: i32) -> Self {
        require_python_client();
        let mut child = Command::new("python3")
            .arg(consume_script())
            .args(["--brokers", brokers, "--topic", topic])
            .args(["--partitions", &partitions.to_string()])
            .args(["--until-stdin-closes", "--timeout", "600"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3 tests/support/consume.py");
        let stdout = child.stdout.take().unwrap();
        let stderr = drain(child.stderr.take().unwrap());
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !line.trim().is_empty() {
                    sink.lock().unwrap().push(Message::from_python_line(&line));
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            messages,
            reader: Some(reader),
            stderr: Some(stderr),
        }
    }

    /// Messages read so far.
    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    /// Waits (bounded) until at least `n` messages were read; fails the test otherwise.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "the Python client read {} messages within {timeout:?}, expected at least {n}",
                self.count()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Tells the reader to stop, waits for it, and returns every message it read.
    pub fn finish(mut self, timeout: Duration) -> Vec<Message> {
        drop(self.stdin.take());
        let status = wait_bounded(&mut self.child, timeout);
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        match status {
            Some(s) if s.success() => {}
            Some(s) => panic!("consume.py failed: {s}\n{stderr}"),
            None => panic!("consume.py did not stop within {timeout:?}\n{stderr}"),
        }
        std::mem::take(&mut *self.messages.lock().unwrap())
    }
}

impl Drop for PythonReader {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `topic` with kcat up to the current end of every partition (`-e`).
pub fn kcat_read(brokers: &str, topic: &str, timeout: Duration) -> Vec<Message> {
    require_kcat();
    let output = run(
        Command::new("kcat")
            .args(["-C", "-b", brokers, "-t", topic, "-e", "-q"])
            // Tab-separated: partition, offset, key, timestamp, headers, value (JSON has no tab).
            .args(["-f", "%p\t%o\t%k\t%T\t%h\t%s\n"]),
        timeout,
    );
    assert!(
        output.status.success(),
        "kcat failed: {}\n{}",
        output.status,
        output.stderr
    );
    output
        .stdout_text()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.splitn(6, '\t').collect();
            assert_eq!(fields.len(), 6, "unexpected kcat line {line:?}");
            Message {
                partition: fields[0].parse().unwrap(),
                offset: fields[1].parse().unwrap(),
                key: Some(fields[2].to_string()),
                timestamp: fields[3].parse().unwrap(),
                timestamp_type: 1,
                headers: fields[4]
                    .split(',')
                    .filter(|h| !h.is_empty())
                    .map(|h| {
                        let (k, v) = h.split_once('=').unwrap_or((h, ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect(),
                value: fields[5].to_string(),
            }
        })
        .collect()
}

// ---- Tansu ------------------------------------------------------------------------------------

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// Tansu, a Kafka-compatible broker, with in-memory storage on a free local port; killed on
/// drop.
pub struct Tansu {
    child: Child,
    pub address: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tansu {
    pub fn start() -> Self {
        let binary = tansu_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut last_log = String::new();
        // Another test may take the port between our probe and Tansu's bind: try a few.
        for attempt in 0..5 {
            let port = free_port();
            let address = format!("127.0.0.1:{port}");
            let url = format!("tcp://{address}");
            let log = dir.path().join(format!("tansu-{attempt}.log"));
            let file = std::fs::File::create(&log).expect("tansu log file");
            let mut child = Command::new(&binary)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "memory://tansu/"])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::from(file.try_clone().unwrap()))
                .stderr(Stdio::from(file))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let deadline = Instant::now() + Duration::from_secs(30);
            let socket: SocketAddr = address.parse().unwrap();
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // it exited: most likely the port was taken
                }
                let accepts =
                    TcpStream::connect_timeout(&socket, Duration::from_millis(200)).is_ok();
                // Accepting, and still ours: not some other process that took the port.
                if accepts && matches!(child.try_wait(), Ok(None)) {
                    return Tansu {
                        child,
                        address,
                        log,
                        _dir: dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("tansu did not start accepting connections; its last log:\n{last_log}");
    }

    /// Tansu's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`STOP`, `CONT`) to the broker: stopped, it keeps its connections open and
    /// answers nothing, as a broker that hangs; continued, it carries on where it was.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} tansu failed");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- Checks on messages -----------------------------------------------------------------------

/// Milliseconds since the epoch of an event's ISO-8601 `timestamp`.
pub fn event_millis(event: &Value) -> i64 {
    let text = event["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("event has no timestamp string: {event}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("timestamp {text:?} is not RFC 3339: {e}"))
        .timestamp_millis()
}

/// Every message is keyed by its event's `customer_id`.
pub fn assert_keyed_by_customer(messages: &[Message]) {
    for m in messages {
        let event = m.json();
        let customer = event["customer_id"]
            .as_str()
            .unwrap_or_else(|| panic!("event without customer_id: {}", m.value));
        assert_eq!(
            m.key.as_deref(),
            Some(customer),
            "message {}:{} is keyed {:?} but its customer_id is {customer}",
            m.partition,
            m.offset,
            m.key
        );
    }
}

/// No (partition, offset) twice, and each partition's offsets run 0, 1, 2, ... without a gap:
/// what was read is the whole topic, each message once.
pub fn assert_offsets_contiguous(messages: &[Message]) {
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for m in messages {
        by_partition.entry(m.partition).or_default().push(m.offset);
    }
    for (partition, mut offsets) in by_partition {
        offsets.sort_unstable();
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert!(
            offsets == expected,
            "partition {partition}: offsets read are not 0..{} each once (first gap or duplicate near {:?})",
            offsets.len(),
            offsets
                .iter()
                .zip(&expected)
                .find(|(a, b)| a != b)
                .map(|(a, _)| *a)
        );
    }
}

/// Each line of `stdout` (JSON lines, as `sim sample` and `--sink stdout` write them), parsed.
pub fn json_lines(stdout: &[u8]) -> Vec<Value> {
    std::str::from_utf8(stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a line is not JSON ({e}): {line}"))
        })
        .collect()
}

/// Fails the test, saying how to fix it, when python3 lacks confluent-kafka's Avro support
/// (`confluent-kafka[avro]`, installed by `dev/install-test-deps.sh`).
pub fn require_python_avro() {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import fastavro; from confluent_kafka.schema_registry.avro import AvroDeserializer",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with confluent-kafka's Avro support is missing: run `bash dev/install-test-deps.sh`"
    );
}
