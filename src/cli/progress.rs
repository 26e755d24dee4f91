//! Progress bars on long work, redrawn in place on a terminal: a backfill (`sim backfill`, and
//! `sim run` before it streams live), with done and planned arrivals; and `sim analyze
//! --until-idle`, with events consumed against consumed plus what is still unread. Each shows
//! events per second and the time left. Drawn from the running figures on a thread of their
//! own, like the status line, and only where the status line would be: not when standard error
//! is piped or logs are JSON.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::numbers::short;
use crate::analyze::figures::AnalyzeFigures;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// The bar drawn now, if one is: what else `sim` writes on standard error goes above it
/// ([`above_bar`]), so the bar stays the last line and is cleared from where it is.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `write` (a write on standard error) with the bar, if one is drawn, lifted out of the way
/// and drawn again under what was written.
pub(super) fn above_bar(write: impl FnOnce()) {
    let active = ACTIVE.lock().ok().and_then(|bar| bar.clone());
    match active {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

fn set_active(bar: Option<&ProgressBar>) {
    if let Ok(mut active) = ACTIVE.lock() {
        *active = bar.cloned();
    }
}

/// How often a bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// What a bar shows of some work.
struct Work<'a> {
    /// `backfill`, `analyze`.
    label: &'static str,
    /// What is counted: `arrivals`, `events`.
    unit: &'static str,
    /// Done and total while the work runs; `None` before it starts and after it ends.
    progress: &'a dyn Fn() -> Option<(u64, u64)>,
    /// Events so far, for the rate.
    events: &'a dyn Fn() -> u64,
    /// Whether, the work not running, it is over for good (the bar is not waited for again).
    over: &'a dyn Fn() -> bool,
}

/// Draws the backfill's bar while one runs, until the live stream starts or `stop`; the bar is
/// cleared when the backfill ends, so what follows (the status line, the final lines) starts on
/// a clean line.
pub(super) fn show_backfill(metrics: &Metrics, stop: &Shutdown) {
    draw(
        &Work {
            label: "backfill",
            unit: "arrivals",
            progress: &|| metrics.backfill_progress(),
            events: &|| metrics.events(),
            over: &|| metrics.live(),
        },
        stop,
    );
}

/// Draws `sim analyze --until-idle`'s bar: events consumed, out of those and what librdkafka
/// last reported still unread, until `stop`.
pub(super) fn show_consumed(figures: &AnalyzeFigures, stop: &Shutdown) {
    // What is left to read is as of librdkafka's last report, up to a fifth of a second old: the
    // total is what was read when the report came plus what it left unread, not today's count
    // plus an old remainder (which would count the events read since twice).
    let progress = || {
        let (stats, read_at_report) = figures.latest_stats_with_events()?;
        let unread: i64 = stats.partitions.iter().filter_map(|p| p.unread).sum();
        let done = figures.events();
        Some((done, (read_at_report + unread.max(0) as u64).max(done)))
    };
    draw(
        &Work {
            label: "analyze",
            unit: "events",
            progress: &progress,
            events: &|| figures.events(),
            over: &|| false,
        },
        stop,
    );
}

fn draw(work: &Work<'_>, stop: &Shutdown) {
    let mut bar: Option<(ProgressBar, Instant, u64)> = None;
    loop {
        match (work.progress)().filter(|&(_, total)| total > 0) {
            Some((done, total)) => {
                let (bar, started, events_at_start) = bar.get_or_insert_with(|| {
                    let new = new_bar(work, total);
                    set_active(Some(&new));
                    (new, Instant::now(), (work.events)())
                });
                bar.set_length(total);
                bar.set_position(done);
                let seconds = started.elapsed().as_secs_f64().max(1e-3);
                let rate = (work.events)().saturating_sub(*events_at_start) as f64 / seconds;
                bar.set_message(format!("{} events/s", short(rate.round())));
            }
            None => {
                clear(&mut bar);
                if (work.over)() {
                    return;
                }
            }
        }
        if stop.wait(TICK) {
            clear(&mut bar);
            return;
        }
    }
}

/// Clears the bar, if one is drawn, and forgets it.
fn clear(bar: &mut Option<(ProgressBar, Instant, u64)>) {
    if let Some((bar, _, _)) = bar.take() {
        set_active(None);
        bar.finish_and_clear();
    }
}

/// `backfill [=====>    ] 1,234,567/3,000,000 arrivals · 41.2 K events/s · 43s left`.
fn new_bar(work: &Work<'_>, total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = format!(
        "{} [{{bar:40.cyan/blue}}] {{human_pos}}/{{human_len}} {} · {{msg}} · {{eta}} left",
        work.label, work.unit
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
