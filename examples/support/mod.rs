//! What the benchmark programs share: building and finding the binaries, starting Tansu,
//! reading `sim`'s report, the machine's load. Included by each example with
//! `#[path = "support/mod.rs"] mod support;`; not every example uses every item.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Any failure of a benchmark program.
pub type Failure = Box<dyn std::error::Error>;

/// Settings the environment could carry into `sim`; cleared so every run uses the script's own.
pub const SETTING_VARS: &[&str] = &[
    "KAFKA_BROKER",
    "TOPIC",
    "EVENT_RATE",
    "PEAK_FACTOR",
    "FRAUD_RATE",
    "DECLINED_RATE",
    "MERCHANT_COUNT",
    "CUSTOMER_COUNT",
    "EVENT_INIT_MODE",
];

/// Builds the release binary (a no-op when it is up to date) and returns its path.
pub fn build_sim(root: &Path) -> Result<PathBuf, Failure> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "sim"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        return Err("cargo build --release failed".into());
    }
    Ok(root.join("target/release/sim"))
}

/// `((events, seconds, events per second), (produced, delivered, failed))`.
pub type Report = ((u64, f64, f64), (u64, u64, u64));

/// Reads `backfilled N events in S s (R events/s, ...)` and
/// `account: produced P, delivered D, failed F`.
pub fn parse_report(stderr: &str) -> Option<Report> {
    let numbers = |line: &str| -> Vec<f64> {
        line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter_map(|word| word.parse().ok())
            .collect()
    };
    let done = stderr
        .lines()
        .find(|line| line.starts_with("backfilled ") && line.contains(" events in "))?;
    let account = stderr.lines().find(|line| line.starts_with("account: "))?;
    let (d, a) = (numbers(done), numbers(account));
    Some((
        (*d.first()? as u64, *d.get(1)?, *d.get(2)?),
        (*a.first()? as u64, *a.get(1)? as u64, *a.get(2)? as u64),
    ))
}

/// Tansu on PATH or in ~/.cargo/bin.
pub fn find_tansu() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|path| path.is_file())
    });
    let home = std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo/bin/tansu"));
    on_path.or(home.filter(|path| path.is_file()))
}

/// Starts Tansu with in-memory storage on a free port; returns it and its address.
pub fn start_tansu(tansu: &Path, scratch: &Path) -> Result<(Child, String), Failure> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let address = format!("127.0.0.1:{port}");
    let url = format!("tcp://{address}");
    let log = std::fs::File::create(scratch.join("tansu.log"))?;
    let mut child = Command::new(tansu)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&address).is_err() {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("tansu did not listen on {address}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, address))
}

/// The load average, as `uptime` prints it.
pub fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The median of `values` (sorts them).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The first `limit` JSON lines of `text` (as `sim sample` prints them) read as transactions,
/// numbered from 0 in partition 0, each with its line as the rules read it (where its fields
/// are, as `sim analyze` hands it over); the first line that is not a transaction is the error.
pub fn transactions(
    text: &[u8],
    limit: usize,
) -> Result<
    Vec<(
        sim::analyze::transaction::Transaction,
        sim::analyze::detect::Payload<'_>,
    )>,
    Failure,
> {
    use sim::analyze::detect::Payload;
    use sim::analyze::transaction::{parse_with_fields, Incoming, Position};
    text.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .take(limit)
        .enumerate()
        .map(|(i, payload)| {
            let incoming = Incoming {
                payload: Some(payload),
                timestamp_ms: None,
                pattern: None,
                position: Position {
                    partition: 0,
                    offset: i as i64,
                },
            };
            parse_with_fields(incoming)
                .map(|(tx, fields)| {
                    let text = payload.into();
                    (tx, Payload { text, fields })
                })
                .map_err(|poison| poison.reason.into())
        })
        .collect()
}
