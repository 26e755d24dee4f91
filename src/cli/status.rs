//! The status line of `sim run`: redrawn in place about once a second when standard error is a
//! terminal, and not drawn when it is not (a pipe, a file, CI), so logs are not flooded with
//! carriage returns.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::log::{clear_status, is_json};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Draws `sim backfill`'s progress bar on a terminal, until the returned signal is triggered;
/// nothing when standard error is not one or logs are JSON. Join the thread before printing
/// the final lines.
pub fn spawn_backfill_bar(
    metrics: Arc<Metrics>,
) -> Option<(std::thread::JoinHandle<()>, Shutdown)> {
    if !std::io::stderr().is_terminal() || is_json() {
        return None;
    }
    let stop = Shutdown::new();
    let signal = stop.clone();
    let thread = std::thread::spawn(move || super::progress::show_backfill(&metrics, &signal));
    Some((thread, stop))
}

/// Redraws the status line on a terminal until `shutdown`; does nothing when stderr is not one
/// or logs are JSON.
/// Join the returned thread before printing anything else, so the line is ended first.
pub fn spawn_status_line(
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> Option<std::thread::JoinHandle<()>> {
    // JSON logs are read by programs, which a line redrawn in place would only corrupt.
    if !std::io::stderr().is_terminal() || is_json() {
        return None;
    }
    Some(std::thread::spawn(move || {
        // A backfill first (EVENT_INIT_MODE=flush): its progress bar, then the status line.
        super::progress::show_backfill(&metrics, &shutdown);
        if shutdown.is_triggered() {
            return;
        }
        let mut last = (Instant::now(), metrics.events());
        while !shutdown.wait(Duration::from_secs(1)) {
            let now = (Instant::now(), metrics.events());
            let seconds = now.0.duration_since(last.0).as_secs_f64();
            let achieved = (now.1 - last.1) as f64 / seconds.max(1e-9);
            last = now;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{}{}", clear_status(), metrics.status_line(achieved));
            let _ = err.flush();
        }
        let _ = writeln!(std::io::stderr());
    }))
}
