//! `sim run --dashboard`: the producer's side. The target rate against the achieved one over the
//! last minute, what was delivered, failed and is in flight, the script's revision with its
//! reloads and rejected edits (each with its time), follow-ups pending and workers, and the
//! notices held back while the dashboard is up.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Local;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Text};
use ratatui::widgets::{
    Axis, Block, Cell, Chart, Dataset, GraphType, LegendPosition, List, Paragraph, Row, Table,
};
use ratatui::Frame;

use crate::cli::log::{self, Entry};
use crate::cli::numbers::{grouped, short};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::sync::lock;

/// Seconds of rates the chart shows, one sample a second.
const SECONDS_SHOWN: usize = 60;
/// Reload notices kept for the list.
const RELOADS_KEPT: usize = 50;
/// Held notices shown at the bottom.
const NOTICES_SHOWN: usize = 4;

/// What hot reload said, with the local time it said it, the newest last; shared between the
/// reload reporter (which adds) and the dashboard (which reads).
#[derive(Debug, Clone, Default)]
pub struct ReloadLog(Arc<Mutex<VecDeque<(String, String)>>>);

impl ReloadLog {
    /// Adds a line, stamped with the time now.
    pub fn push(&self, text: String) {
        let mut lines = lock(&self.0);
        if lines.len() == RELOADS_KEPT {
            lines.pop_front();
        }
        lines.push_back((Local::now().format("%H:%M:%S").to_string(), text));
    }

    fn lines(&self) -> Vec<(String, String)> {
        lock(&self.0).iter().cloned().collect()
    }
}

/// What the dashboard draws, sampled from the metrics once a second.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// (target, achieved) events a second, one a second, the oldest first.
    pub rates: VecDeque<(f64, f64)>,
    /// Events made.
    pub events: u64,
    /// Events the sink confirmed.
    pub delivered: u64,
    /// Events the sink refused for good.
    pub failed: u64,
    /// Events sent and not yet confirmed or refused.
    pub in_flight: u64,
    /// Follow-ups scheduled for later.
    pub pending: u64,
    /// The script revision that runs.
    pub revision: u64,
    /// Workers making events.
    pub workers: u64,
    /// Reloads accepted and edits rejected.
    pub reloads: (u64, u64),
    /// Script errors (events skipped).
    pub script_errors: u64,
    /// What hot reload said, (time, text), the newest last.
    pub reload_log: Vec<(String, String)>,
    /// The latest notices held back from the terminal.
    pub notices: Vec<String>,
}

/// Samples the metrics into a [`State`] once a second, however often the screen is redrawn.
pub struct Sampler {
    metrics: Arc<Metrics>,
    reloads: ReloadLog,
    last: Option<(Instant, u64)>,
    /// The state drawn.
    pub state: State,
}

impl Sampler {
    /// A sampler of `metrics`, listing what `reloads` collects.
    pub fn new(metrics: Arc<Metrics>, reloads: ReloadLog) -> Self {
        Self {
            metrics,
            reloads,
            last: None,
            state: State::default(),
        }
    }

    /// Updates the counts; adds a rate sample when a second has passed since the last one.
    pub fn tick(&mut self) {
        let m = &self.metrics;
        let now = (Instant::now(), m.events());
        match self.last {
            None => self.last = Some(now),
            Some((at, events)) if now.0.duration_since(at) >= Duration::from_secs(1) => {
                let seconds = now.0.duration_since(at).as_secs_f64();
                let achieved = now.1.saturating_sub(events) as f64 / seconds;
                if self.state.rates.len() == SECONDS_SHOWN {
                    self.state.rates.pop_front();
                }
                self.state
                    .rates
                    .push_back((m.target_per_second(), achieved));
                self.last = Some(now);
            }
            Some(_) => {}
        }
        let account = m.delivery.account();
        let state = &mut self.state;
        state.events = now.1;
        state.delivered = account.delivered;
        state.failed = account.failed;
        state.in_flight = account.in_flight();
        state.pending = m.pending_follow_ups();
        state.revision = m.revision();
        state.workers = m.workers();
        state.reloads = (m.reloads(), m.rejections());
        state.script_errors = m.script_errors();
        state.reload_log = self.reloads.lines();
        state.notices = log::held_tail(NOTICES_SHOWN);
    }
}

/// The dashboard of `sim run` when asked for and possible, with the log its reload reporter
/// fills; a note when it was asked for where it cannot be drawn. `events_on_screen`: events go
/// to standard output and that is a terminal too, where they would scribble over the dashboard.
pub fn start(
    wanted: bool,
    events_on_screen: bool,
    metrics: &Arc<Metrics>,
    shutdown: &Shutdown,
) -> Option<(super::Dashboard, ReloadLog)> {
    if !wanted {
        return None;
    }
    let refused = if !super::available() {
        Some("--dashboard needs standard error on a terminal and text logs")
    } else if events_on_screen {
        Some("--dashboard and events on the same terminal (--sink stdout) would mix")
    } else {
        None
    };
    if let Some(why) = refused {
        Entry::warn("dashboard", format!("{why}; running without it")).emit();
        return None;
    }
    let reloads = ReloadLog::default();
    let mut sampler = Sampler::new(metrics.clone(), reloads.clone());
    let dashboard = super::Dashboard::start(shutdown.clone(), move |frame| {
        sampler.tick();
        render(frame, frame.area(), &sampler.state)
    })?;
    Some((dashboard, reloads))
}

/// Draws `state` in `area`.
pub fn render(frame: &mut Frame, area: Rect, state: &State) {
    // On a short terminal the panels below the chart give way first, the headline never.
    let [header, chart, middle, notices] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Max(8),
        Constraint::Max(NOTICES_SHOWN as u16 + 2),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(format!(
            "sim run | revision {} | workers {} | q stops (what was accepted is flushed first)",
            state.revision, state.workers
        ))
        .style(Style::default().add_modifier(Modifier::BOLD)),
        header,
    );
    let (target, achieved) = rate_points(state);
    frame.render_widget(rate_chart(state, &target, &achieved), chart);

    let [delivery, reloads] =
        Layout::horizontal([Constraint::Fill(2), Constraint::Fill(3)]).areas(middle);
    let figures = [
        ("events", state.events),
        ("delivered", state.delivered),
        ("failed", state.failed),
        ("in flight", state.in_flight),
        ("follow-ups pending", state.pending),
        ("script errors", state.script_errors),
    ];
    let rows: Vec<Row> = figures
        .iter()
        .map(|(name, n)| {
            Row::new([
                Cell::from(*name),
                Cell::from(Text::from(grouped(*n)).alignment(Alignment::Right)),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(rows, [Constraint::Length(18), Constraint::Fill(1)])
            .block(Block::bordered().title("Delivery")),
        delivery,
    );
    let lines: Vec<Line> = state
        .reload_log
        .iter()
        .rev()
        .map(|(at, text)| Line::from(format!("{at} {text}")))
        .collect();
    let title = format!(
        "Reloads: {} accepted, {} rejected (newest first)",
        state.reloads.0, state.reloads.1
    );
    frame.render_widget(
        List::new(lines).block(Block::bordered().title(title)),
        reloads,
    );

    let lines: Vec<Line> = state
        .notices
        .iter()
        .flat_map(|n| {
            n.lines()
                .map(|l| Line::from(l.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    // The newest at the bottom, as in a log: skip what does not fit.
    let skip = lines
        .len()
        .saturating_sub(usize::from(notices.height.saturating_sub(2)));
    frame.render_widget(
        List::new(lines.into_iter().skip(skip)).block(Block::bordered().title("Notices")),
        notices,
    );
}

/// A chart's points: (seconds from now, events a second).
type Points = Vec<(f64, f64)>;

/// The points of the target and of the achieved rate, the newest at 0.
fn rate_points(state: &State) -> (Points, Points) {
    let offset = state.rates.len() as f64 - 1.0;
    let at = |i: usize| i as f64 - offset;
    state
        .rates
        .iter()
        .enumerate()
        .map(|(i, (target, achieved))| ((at(i), *target), (at(i), *achieved)))
        .unzip()
}

/// Target and achieved rate over the last minute, the newest at the right edge.
fn rate_chart<'a>(
    state: &State,
    target: &'a [(f64, f64)],
    achieved: &'a [(f64, f64)],
) -> Chart<'a> {
    let top = state.rates.iter().map(|r| r.0.max(r.1)).fold(1.0, f64::max) * 1.2;
    let title = match state.rates.back() {
        Some((target, achieved)) => format!(
            "Rate, last minute: target {}/s, achieved {}/s",
            short(*target),
            short(*achieved)
        ),
        // The first sample is taken a second after the start.
        None => "Rate, last minute: measuring".to_string(),
    };
    let datasets = vec![
        Dataset::default()
            .name("target")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Yellow))
            .data(target),
        Dataset::default()
            .name("achieved")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Green))
            .data(achieved),
    ];
    Chart::new(datasets)
        .block(Block::bordered().title(title))
        // The newest points are on the right: the legend keeps out of their way.
        .legend_position(Some(LegendPosition::TopLeft))
        .x_axis(
            Axis::default()
                .bounds([-(SECONDS_SHOWN as f64 - 1.0), 0.0])
                .labels(["-60 s", "now"]),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels(["0".to_string(), short(top)]),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::dashboard::tests::screen;

    fn state() -> State {
        State {
            rates: (0..60).map(|i| (100.0, f64::from(i) * 2.0)).collect(),
            events: 10_029_503_000,
            delivered: 10_029_502_000,
            failed: 3,
            in_flight: 997,
            pending: 12,
            revision: 4,
            workers: 2,
            reloads: (3, 1),
            script_errors: 0,
            reload_log: vec![
                ("12:00:01".into(), "reloaded: revision 4".into()),
                (
                    "12:00:09".into(),
                    "edit rejected; revision 4 keeps running".into(),
                ),
            ],
            notices: vec![
                "embedded broker at 127.0.0.1:9092, topic t\n  consume with: kcat".into(),
            ],
        }
    }

    #[test]
    fn every_panel_is_drawn_with_its_figures() {
        let state = state();
        let text = screen(100, 30, |f| render(f, f.area(), &state));
        for title in [
            "Rate, last minute",
            "Delivery",
            "Reloads: 3 accepted, 1 rejected",
            "Notices",
        ] {
            assert!(text.contains(title), "no {title}:\n{text}");
        }
        assert!(text.contains("10,029,502,000"), "{text}");
        assert!(text.contains("target 100/s, achieved 118/s"), "{text}");
        assert!(text.contains("12:00:09 edit rejected"), "{text}");
        assert!(text.contains("revision 4 | workers 2"), "{text}");
        assert!(text.contains("embedded broker at 127.0.0.1:9092"), "{text}");
    }

    #[test]
    fn a_narrow_terminal_and_an_empty_state_still_draw() {
        let state = state();
        screen(40, 12, |f| render(f, f.area(), &state));
        let text = screen(40, 12, |f| render(f, f.area(), &State::default()));
        assert!(text.contains("sim run"), "{text}");
    }

    #[test]
    fn the_reload_log_keeps_the_latest() {
        let log = ReloadLog::default();
        for i in 0..RELOADS_KEPT + 5 {
            log.push(format!("line {i}"));
        }
        let lines = log.lines();
        assert_eq!(lines.len(), RELOADS_KEPT);
        assert_eq!(
            lines.last().unwrap().1,
            format!("line {}", RELOADS_KEPT + 4)
        );
    }
}
