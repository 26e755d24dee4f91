//! The terminal dashboards of `sim analyze` and `sim run --dashboard`: what they share. Setting
//! the terminal up (raw mode, the alternate screen) and putting it back on every exit path, and
//! the loop that redraws about four times a second, follows the terminal's size and turns `q` or
//! Ctrl-C into the same stop a SIGINT asks for.
//!
//! Each dashboard is a `State` and a pure `render(frame, area, &State)` (in [`analyze`] and
//! [`run`]), so its layout is tested on ratatui's `TestBackend` without a terminal. The
//! dashboards draw on standard error, as the status line does: standard output carries events or
//! a JSON summary.

pub mod analyze;
pub mod run;

use std::io::{IsTerminal, Stderr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::thread::JoinHandle;
use std::time::Duration;

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::{Frame, Terminal};

use super::log;
use crate::shutdown::Shutdown;

/// How often the dashboard is redrawn; also how long a key press may wait to be seen.
const REDRAW: Duration = Duration::from_millis(250);

/// Whether a dashboard holds the terminal now: the panic hook restores it only then (leaving an
/// alternate screen that was never entered would print stray escapes).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether a dashboard can be drawn: standard error is a terminal and logs are text (JSON logs
/// are read by programs, which a screen redrawn in place would only corrupt).
pub fn available() -> bool {
    std::io::stderr().is_terminal() && !log::is_json()
}

/// A dashboard on the terminal, redrawn by its own thread until the stop signal. Dropping it
/// stops the thread and puts the terminal back, so an early return (`?`) restores it too.
pub struct Dashboard {
    drawing: Option<JoinHandle<()>>,
    stop: Shutdown,
}

impl Dashboard {
    /// Takes the terminal and redraws `draw` until `shutdown` is triggered (by a signal, by the
    /// run's end, or by `q` / Ctrl-C here, which trigger it as SIGINT would). `None` when the
    /// terminal cannot be set up: the command then runs without a dashboard.
    pub fn start(
        shutdown: Shutdown,
        mut draw: impl FnMut(&mut Frame) + Send + 'static,
    ) -> Option<Self> {
        install_panic_hook();
        let mut terminal = enter().ok()?;
        // Notices wait for the scrollback: written over the alternate screen they would be lost.
        log::hold();
        let stop = Shutdown::new();
        let own_stop = stop.clone();
        let drawing = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || {
                while !own_stop.is_triggered() {
                    // `draw` follows a resize by itself: it sizes the buffers to the terminal.
                    let _ = terminal.draw(&mut draw);
                    if !quit_pressed(REDRAW) {
                        continue;
                    }
                    if shutdown.is_triggered() {
                        // Asked twice, as a second SIGINT: quit at once, the terminal restored.
                        restore();
                        std::process::exit(130);
                    }
                    // Told first, as after a signal, so the account stays the last line.
                    super::say_stopping();
                    shutdown.trigger();
                }
                // The last figures (the flush's end) stay on screen until the caller drops it.
                let _ = terminal.draw(&mut draw);
            })
            .ok();
        let Some(drawing) = drawing else {
            restore();
            return None;
        };
        Some(Self {
            drawing: Some(drawing),
            stop,
        })
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(drawing) = self.drawing.take() {
            let _ = drawing.join();
        }
        restore();
    }
}

/// Waits up to `timeout` for input; true when it was `q` or Ctrl-C. A resize needs nothing
/// here: the next draw sizes itself to the terminal.
fn quit_pressed(timeout: Duration) -> bool {
    if !event::poll(timeout).unwrap_or(false) {
        return false;
    }
    match event::read() {
        // Raw mode turns Ctrl-C into a key, not a SIGINT: it is read here.
        Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => {
            matches!(key.code, KeyCode::Char('q') | KeyCode::Char('Q'))
                || (key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL))
        }
        _ => false,
    }
}

/// Raw mode (keys one at a time, unechoed), the alternate screen (the scrollback is left as it
/// was, and no stale frame stays above the first), no cursor.
fn enter() -> std::io::Result<Terminal<CrosstermBackend<Stderr>>> {
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let mut err = std::io::stderr();
    if let Err(e) = execute!(err, EnterAlternateScreen, cursor::Hide) {
        restore();
        return Err(e);
    }
    Terminal::new(CrosstermBackend::new(err)).inspect_err(|_| restore())
}

/// Puts the terminal back as it was, once, and writes the notices held meanwhile.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(std::io::stderr(), LeaveAlternateScreen, cursor::Show);
        let _ = disable_raw_mode();
    }
    log::release();
}

/// A panic while the dashboard is up would print its message on the alternate screen, in raw
/// mode, and leave the shell unusable: the hook restores the terminal first.
fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;
    use ratatui::Terminal;

    /// Draws `render` on a `width` x `height` test terminal and returns the screen as text, one
    /// line a row.
    pub fn screen(width: u16, height: u16, render: impl FnOnce(&mut ratatui::Frame)) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(render).unwrap();
        text(terminal.backend().buffer())
    }

    /// The buffer's symbols, row by row.
    fn text(buffer: &Buffer) -> String {
        let area = buffer.area;
        (0..area.height)
            .map(|y| {
                (0..area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
