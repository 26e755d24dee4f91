//! SIGTERM stops `sim run` cleanly (exit 0, everything accepted written) even when whoever read
//! its standard error has gone away, as when the terminal or the test harness that started it is
//! closed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_stops_sim_even_after_its_stderr_reader_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["run", "scripts/darooghe.rhai", "--seed", "2", "--sink"])
        .arg(format!("file:{}", out.display()))
        .args(["--set", "rate=60000"])
        .env("EVENT_INIT_MODE", "skip")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("hot reload: watching") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "sim ended early");
    }
    drop(stderr);
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sim did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.lines().count() > 0);
    assert!(written
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
}

#[test]
fn the_status_line_stays_quiet_when_stderr_is_piped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "run",
            "scripts/darooghe.rhai",
            "--seed",
            "2",
            "--duration",
            "2.5",
        ])
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .args(["--set", "rate=6000"])
        .env("EVENT_INIT_MODE", "skip")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The status line redraws with a carriage return about once a second on a terminal.
    assert!(!stderr.contains('\r'), "{stderr}");
    assert!(!stderr.contains("| in flight"), "{stderr}");
    assert!(stderr.contains("account: produced"), "{stderr}");
}

#[test]
fn a_reader_that_goes_away_ends_sample_quietly() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    // `sim sample ... | head -1`: the reader takes one line and closes the pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "sample",
            "scripts/darooghe.rhai",
            "-n",
            "1000000",
            "--seed",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sim starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // The pipe's reading end is dropped here.
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
