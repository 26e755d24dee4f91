//! `sim analyze`'s dashboard: events per second as a sparkline, the busiest merchants and
//! revenue by category as bar charts, the current and the previous window, the alert feed (the
//! newest first) and the consumer's lag per partition. It draws the figures of the latest
//! [`Frame`] the run loop sent (about one a second).

use std::collections::VecDeque;

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, List, Paragraph, Row, Sparkline, Table};
use ratatui::Frame as Screen;

use crate::analyze::view::{Frame, WindowRow};
use crate::cli::numbers::{grouped, short};

/// Rates kept for the sparkline: about two minutes at one frame a second, wider than most
/// terminals, so the line fills whatever width it has.
const RATES_KEPT: usize = 240;

/// What the dashboard draws: the latest frame and the rates of the frames before it.
#[derive(Debug, Default)]
pub struct State {
    /// The latest figures; `None` until the first frame (the consumer is still joining).
    pub frame: Option<Frame>,
    /// Messages per second, one a frame, the oldest first.
    pub rates: VecDeque<u64>,
}

impl State {
    /// Takes a new frame from the run loop.
    pub fn update(&mut self, frame: Frame) {
        if self.rates.len() == RATES_KEPT {
            self.rates.pop_front();
        }
        self.rates.push_back(frame.progress.rate.round() as u64);
        self.frame = Some(frame);
    }
}

/// A bordered block with a title.
fn panel(title: String) -> Block<'static> {
    Block::bordered().title(title)
}

/// Draws `state` in `area`.
pub fn render(screen: &mut Screen, area: Rect, state: &State) {
    let empty = Frame::default();
    let frame = state.frame.as_ref().unwrap_or(&empty);
    // On a short terminal the panels shrink before the headline does.
    let [header, rate, charts, tables, alerts] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Max(5),
        Constraint::Fill(2),
        Constraint::Max(5),
        Constraint::Fill(1),
    ])
    .areas(area);
    screen.render_widget(Paragraph::new(headline(frame)), header);

    // The sparkline draws its newest samples at the right edge: it is given what fits.
    let width = usize::from(rate.width.saturating_sub(2));
    let rates: Vec<u64> = state
        .rates
        .iter()
        .skip(state.rates.len().saturating_sub(width))
        .copied()
        .collect();
    let title = format!("Events/s (now {})", short(frame.progress.rate));
    screen.render_widget(
        Sparkline::default()
            .block(panel(title))
            .data(&rates)
            .style(Style::default().fg(Color::Green)),
        rate,
    );

    let [merchants, revenue] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(charts);
    let merchant_bars: Vec<Bar> = frame
        .top_merchants
        .iter()
        .map(|(name, count)| bar(name, *count, grouped(*count)))
        .collect();
    screen.render_widget(
        bars("Top merchants (transactions)", &merchant_bars),
        merchants,
    );
    let revenue_bars: Vec<Bar> = frame
        .revenue
        .iter()
        .map(|(name, rials)| {
            let value = u64::try_from(*rials).unwrap_or(0);
            bar(name, value, short(*rials as f64))
        })
        .collect();
    screen.render_widget(
        bars("Approved revenue by category (rials)", &revenue_bars),
        revenue,
    );

    let [windows, lag] =
        Layout::horizontal([Constraint::Fill(3), Constraint::Fill(1)]).areas(tables);
    screen.render_widget(window_table(&frame.windows), windows);
    let lag_lines: Vec<Line> = frame
        .progress
        .lag
        .iter()
        .map(|(partition, lag)| {
            // librdkafka reports -1 until it knows the partition's end.
            let lag = u64::try_from(*lag).map_or_else(|_| "?".into(), grouped);
            Line::from(format!("p{partition}  {lag}"))
        })
        .collect();
    screen.render_widget(
        List::new(lag_lines).block(panel("Lag per partition".into())),
        lag,
    );

    let alert_lines: Vec<Line> = frame
        .recent_alerts
        .iter()
        .map(|a| {
            Line::from(format!(
                "{} {} {}: {}",
                day_and_clock(a.time_ms),
                a.rule,
                a.customer_id,
                a.reason
            ))
        })
        .collect();
    let title = format!("Alerts, newest first ({} in all)", grouped(frame.alerts));
    screen.render_widget(List::new(alert_lines).block(panel(title)), alerts);
}

/// The line above the panels: the counts that only grow, and how to quit.
fn headline(frame: &Frame) -> Line<'static> {
    Line::from(format!(
        "sim analyze | consumed {} | transactions {} | poison {} | alerts {} | q quits",
        grouped(frame.progress.consumed),
        grouped(frame.transactions),
        grouped(frame.poison),
        grouped(frame.alerts)
    ))
    .style(Style::default().add_modifier(Modifier::BOLD))
}

/// One bar, labelled with its name and a number as people read it.
fn bar(name: &str, value: u64, text: String) -> Bar<'static> {
    Bar::default()
        .label(Line::from(name.to_string()))
        .value(value)
        .text_value(text)
}

/// Horizontal bars: names of merchants and categories read better beside their bar than under
/// a column one character wide.
fn bars<'a>(title: &str, data: &'a [Bar<'a>]) -> BarChart<'a> {
    BarChart::default()
        .block(panel(title.into()))
        .direction(Direction::Horizontal)
        .bar_width(1)
        .bar_gap(0)
        .bar_style(Style::default().fg(Color::Cyan))
        .data(BarGroup::default().bars(data))
}

/// The current window and the one before it, the newest first.
fn window_table(rows: &[WindowRow]) -> Table<'static> {
    let rows: Vec<Row> = rows
        .iter()
        .rev()
        .map(|row| {
            let w = row.stats;
            Row::new(vec![
                format!("{}..{}", clock(w.start_ms), clock(w.end_ms)),
                if row.open { "open" } else { "closed" }.to_string(),
                grouped(w.count),
                short(w.amount_sum as f64),
                short(w.average_amount()),
                format!("{:.1}%", w.decline_share() * 100.0),
            ])
        })
        .collect();
    let header = Row::new(["window", "state", "tx", "revenue", "average", "declined"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
        ],
    )
    .header(header)
    .block(panel("Windows (event time, UTC)".into()))
}

/// An event time as hours, minutes and seconds (UTC): a window's ends are minutes apart.
fn clock(ms: i64) -> String {
    time(ms, "%H:%M:%S")
}

/// An event time with its day (UTC): alerts of a backfill span days.
fn day_and_clock(ms: i64) -> String {
    time(ms, "%m-%d %H:%M:%S")
}

/// An event time in `format` (UTC), or the milliseconds when out of chrono's range.
fn time(ms: i64, format: &str) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format(format).to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::detect::Alert;
    use crate::analyze::view::Progress;
    use crate::analyze::window::WindowStats;
    use crate::cli::dashboard::tests::screen;

    fn state() -> State {
        let window = |start_ms, count| WindowStats {
            start_ms,
            end_ms: start_ms + 300_000,
            count,
            amount_sum: 10_029_503_000,
            declined: 1,
            late: 0,
        };
        let frame = Frame {
            progress: Progress {
                consumed: 1_234_567,
                rate: 2_500.0,
                lag: [(0, 42), (1, -1)].into_iter().collect(),
            },
            transactions: 1_234_560,
            poison: 7,
            alerts: 3,
            top_merchants: vec![("merch_7".into(), 12_345), ("merch_2".into(), 99)],
            revenue: vec![("food".into(), 10_029_503_000), ("retail".into(), 5_000)],
            windows: vec![
                WindowRow {
                    stats: window(0, 10),
                    open: false,
                },
                WindowRow {
                    stats: window(300_000, 20),
                    open: true,
                },
            ],
            recent_alerts: vec![std::sync::Arc::new(Alert {
                rule: "velocity".into(),
                customer_id: "cust_9".into(),
                time_ms: 61_000,
                reason: "6 transactions in 60 s".into(),
                events: Vec::new(),
            })],
        };
        let mut state = State::default();
        for rate in [100.0, 900.0, 2_500.0] {
            state.update(Frame {
                progress: Progress {
                    rate,
                    ..frame.progress.clone()
                },
                ..frame.clone()
            });
        }
        state
    }

    #[test]
    fn every_panel_is_drawn_with_its_figures() {
        let state = state();
        let text = screen(100, 30, |f| render(f, f.area(), &state));
        for title in [
            "Events/s",
            "Top merchants",
            "Approved revenue by category",
            "Windows",
            "Lag per partition",
            "Alerts, newest first",
        ] {
            assert!(text.contains(title), "no {title}:\n{text}");
        }
        assert!(text.contains("consumed 1,234,567"), "{text}");
        assert!(text.contains("12,345"), "{text}");
        assert!(text.contains("10.0 B"), "{text}");
        assert!(text.contains("p0  42") && text.contains("p1  ?"), "{text}");
        assert!(
            text.contains("velocity cust_9: 6 transactions in 60 s"),
            "{text}"
        );
        assert!(text.contains("open") && text.contains("closed"), "{text}");
    }

    #[test]
    fn a_narrow_terminal_and_no_frame_yet_still_draw() {
        let state = state();
        screen(40, 12, |f| render(f, f.area(), &state));
        let text = screen(40, 12, |f| render(f, f.area(), &State::default()));
        assert!(text.contains("sim analyze"), "{text}");
    }
}
