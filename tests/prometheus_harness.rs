//! The Prometheus harness (tests/common/prometheus.rs) on its own, before any `sim --metrics`:
//! a real Prometheus scrapes a tiny HTTP server of this test that serves a fixed exposition, the
//! value comes back through the query API, and the Python client's parser reads the same text.
//! If Prometheus could not scrape, or read another value, the test fails.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::prometheus::{parse_exposition, try_parse_exposition, Prometheus};

/// What the tiny server serves at every path.
const EXPOSITION: &str = "# TYPE demo_total counter\ndemo_total 7\n";

/// The content type of the text format, version 0.0.4, as Prometheus expects it.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Serves `exposition` to every GET on a free loopback port, from a thread that lives as long as
/// the test; returns its `host:port`.
fn serve(exposition: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let address = listener.local_addr().expect("local address").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer(stream, exposition);
        }
    });
    address
}

/// Reads one request's head and answers it with `exposition`, closing the connection.
fn answer(mut stream: TcpStream, exposition: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{exposition}",
        exposition.len()
    );
}

#[test]
fn prometheus_scrapes_a_served_exposition_that_the_python_parser_also_reads() {
    let target = serve(EXPOSITION);
    let prometheus = Prometheus::start("harness", &[&target]);

    let targets = prometheus.targets_up(Duration::from_secs(15));
    assert_eq!(targets.len(), 1, "one target configured: {targets:?}");
    assert_eq!(targets[0].scrape_url, format!("http://{target}/metrics"));

    let answer = prometheus.wait_for("demo_total", Duration::from_secs(15), |series| {
        series.len() == 1 && series[0].1 == 7.0
    });
    let labels = &answer[0].0;
    assert_eq!(labels.get("job").map(String::as_str), Some("harness"));
    assert_eq!(labels.get("instance"), Some(&target));

    // The Python parser names a counter's family without `_total`.
    let parsed = parse_exposition(EXPOSITION);
    let demo = &parsed["demo"];
    assert_eq!(demo["type"], "counter", "parsed: {parsed}");
    let samples = demo["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 1, "parsed: {parsed}");
    assert_eq!(samples[0][0], "demo_total");
    assert_eq!(samples[0][1], serde_json::json!({}));
    assert_eq!(samples[0][2].as_f64(), Some(7.0));

    let broken = try_parse_exposition("demo_total{job=\"x\" 7\n");
    assert!(broken.is_err(), "a broken exposition parsed: {broken:?}");
}
