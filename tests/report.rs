//! `sim analyze --report` and `sim report` end to end, and the page in a real browser: a seeded
//! backfill into librdkafka's mock cluster is analyzed with `--report`, the saved JSON summary is
//! drawn again with `sim report`, and headless Chromium opens the page offline: it must render
//! (a screenshot), hold every chart as an SVG in its DOM, and log no error. Bad input (a missing
//! or malformed summary, an unwritable page, a scenario that does not load) fails with the file
//! named.

mod analyze_support;
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use analyze_support::*;
use common::*;

/// Every chart's figure id, as `src/report/charts.rs` names them.
const CHARTS: [&str; 9] = [
    "events",
    "hours",
    "category-revenue",
    "method-revenue",
    "amounts",
    "declines",
    "rules",
    "patterns",
    "delay",
];

/// Fails the test unless Chromium runs.
fn require_chromium() {
    require_tool("chromium", "--version");
}

/// Headless Chromium on `page` with `mode` (`--screenshot=...` or `--dump-dom`), logging to
/// standard error; its own profile folder under `dir`, so runs never share state.
fn chromium(dir: &Path, page: &Path, mode: &str) -> Output {
    let mut cmd = Command::new("chromium");
    cmd.args(["--headless=new", "--no-sandbox", "--disable-gpu"])
        .args(["--enable-logging=stderr", "--v=0", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(["--window-size=1280,4000", mode])
        .arg(format!("file://{}", page.display()));
    let out = run(&mut cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "chromium failed: {}\n{}",
        out.status,
        out.stderr
    );
    out
}

/// The lines of Chromium's log that say the page failed: console errors, uncaught exceptions.
fn page_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("Uncaught") || (l.contains("CONSOLE") && l.to_lowercase().contains("error"))
        })
        .collect()
}

/// Width and height of a PNG, from its header (after the signature, the IHDR chunk).
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn the_report_of_an_analyzed_backfill_opens_in_a_browser_with_every_chart() {
    require_chromium();
    let mock = Mock::start();
    // Two days of history: enough for a peak-hour curve, few enough buckets to stay per minute.
    let out = run(
        sim()
            .args([
                "backfill",
                "scripts/darooghe.rhai",
                "--brokers",
                &mock.address,
            ])
            .args([
                "--now", NOW, "--count", "3000", "--days", "1", "--seed", "11",
            ]),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "backfill failed:\n{}", out.stderr);

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let summary = summary_of(analyze_cmd(&mock.address, "report-test").args([
        "--until-idle",
        "--report",
        page.to_str().unwrap(),
        "--scenario",
        "scripts/darooghe.rhai",
    ]));
    let html = std::fs::read_to_string(&page).expect("sim analyze --report wrote no page");
    assert!(summary["shape"]["buckets"]
        .as_array()
        .is_some_and(|b| !b.is_empty()));
    assert!(
        html.contains("scenario rate"),
        "the rate curve is not drawn"
    );
    assert!(!html.contains("http://") && !html.contains("https://"));

    // The same page from the saved summary.
    let saved = dir.path().join("summary.json");
    std::fs::write(&saved, summary.to_string()).unwrap();
    let again = dir.path().join("again.html");
    let out = run(
        sim()
            .args([
                "report",
                saved.to_str().unwrap(),
                "-o",
                again.to_str().unwrap(),
            ])
            .args(["--scenario", "scripts/darooghe.rhai"]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "sim report failed:\n{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&again).unwrap(),
        html,
        "sim report draws the saved summary differently from sim analyze --report"
    );

    let shot = dir.path().join("shot.png");
    let screenshot = chromium(
        dir.path(),
        &page,
        &format!("--screenshot={}", shot.display()),
    );
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert_eq!(png_size(&png), (1280, 4000));
    // A blank page compresses to a few kilobytes; charts, axes and text do not.
    assert!(png.len() > 50_000, "the screenshot is {} bytes", png.len());
    let kept = std::env::temp_dir().join("sim-report-test-shot.png");
    let _ = std::fs::copy(&shot, &kept);
    eprintln!("screenshot of the report: {}", kept.display());

    let dom = chromium(dir.path(), &page, "--dump-dom");
    let dom_text = dom.stdout_text();
    for id in CHARTS {
        let start = dom_text
            .find(&format!("<figure id=\"chart-{id}\">"))
            .unwrap_or_else(|| panic!("no figure chart-{id} in the DOM"));
        let figure = &dom_text[start..];
        let figure = &figure[..figure.find("</figure>").expect("an unclosed figure")];
        assert!(figure.contains("<svg"), "chart-{id} holds no SVG");
        assert!(figure.contains("<figcaption>"), "chart-{id} has no caption");
    }
    for log in [&screenshot.stderr, &dom.stderr] {
        let errors = page_errors(log);
        assert!(
            errors.is_empty(),
            "the page logged errors:\n{}",
            errors.join("\n")
        );
    }
}

/// Runs `sim report` with `args`, expecting it to fail; returns its standard error.
fn report_fails(args: &[&str]) -> String {
    let out = run(sim().arg("report").args(args), Duration::from_secs(60));
    assert!(!out.status.success(), "sim report {args:?} succeeded");
    assert_no_panic(&out.stderr);
    out.stderr
}

#[test]
fn bad_input_fails_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("out.html");
    let page = page.to_str().unwrap();
    let err = report_fails(&["/nonexistent/summary.json", "-o", page]);
    assert!(mentions(&err, "/nonexistent/summary.json"), "{err}");
    assert!(mentions(&err, "sim::report::read"), "{err}");

    let malformed = dir.path().join("broken.json");
    std::fs::write(&malformed, "{\"events\": 3,\n  \"shape\": }\n").unwrap();
    let err = report_fails(&[malformed.to_str().unwrap(), "-o", page]);
    assert!(mentions(&err, "broken.json"), "{err}");
    assert!(mentions(&err, "sim::report::malformed"), "{err}");

    let good = dir.path().join("summary.json");
    std::fs::write(&good, "{\"events\": 0}").unwrap();
    let err = report_fails(&[good.to_str().unwrap(), "-o", "/nonexistent/dir/out.html"]);
    assert!(mentions(&err, "/nonexistent/dir/out.html"), "{err}");
    assert!(mentions(&err, "sim::report::write"), "{err}");

    let broken = fixture("syntax_error.rhai");
    let err = report_fails(&[
        good.to_str().unwrap(),
        "-o",
        page,
        "--scenario",
        broken.to_str().unwrap(),
    ]);
    assert!(mentions(&err, "syntax_error.rhai"), "{err}");
    assert!(
        !Path::new(page).exists(),
        "a page was written despite the error"
    );

    // Without a scenario, an empty summary still makes a page.
    let out = run(
        sim().args(["report", good.to_str().unwrap(), "-o", page]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert!(std::fs::read_to_string(page)
        .unwrap()
        .contains("chart-delay"));
}
