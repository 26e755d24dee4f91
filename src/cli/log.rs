//! How `sim` writes what it tells a person on standard error: as text for people (the default),
//! or, with `--log-format json`, as one JSON object a line for log collectors.
//!
//! The format is chosen once, when the command starts ([`init`]), and every notice, warning and
//! the fatal error go through an [`Entry`]: a level, an event name, the human message and any
//! structured fields. Text mode writes the message exactly as `sim` always has; JSON mode writes
//! the same message (without terminal escapes) next to the fields, so a collector can filter on
//! `event` or `level` without parsing English. Standard output is not this module's: it carries
//! events only, in either format.

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::sync::lock;

/// How `sim` writes its lines on standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: plain lines, with a status line on a terminal.
    #[default]
    Text,
    /// For log collectors: one JSON object a line with `time`, `level`, `event`, `message`
    /// and the notice's fields; no status line.
    Json,
}

/// Set once by [`init`]; read by every line written. A global because notices are printed from
/// callbacks and threads (signals, the broker's deletions) that no argument reaches.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Chooses the format for the rest of the process; the first call wins, so a library user or a
/// test that never calls it gets text.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// The format in use: text until [`init`] says otherwise.
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Whether lines are JSON: the status line, the live view and colours are off then, since they
/// are terminal drawing and would corrupt one-object-a-line output.
pub fn is_json() -> bool {
    format() == LogFormat::Json
}

/// How much a line matters, as log collectors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    /// What happened, as expected.
    Info,
    /// Something the person should know that does not stop `sim`.
    Warn,
    /// Something failed: events not delivered, or the command stopped.
    Error,
}

/// One thing `sim` tells the person running it, built at the call site and written by
/// [`Entry::emit`] in the chosen format.
#[derive(Debug)]
#[must_use = "an entry is written only by emit()"]
pub(crate) struct Entry {
    level: Level,
    /// A stable name to filter on (`seed`, `reload`, `account`); `None` for plain report lines
    /// (`sim check`'s and `sim bench`'s text) that have no structure to offer.
    event: Option<&'static str>,
    message: String,
    fields: Map<String, Value>,
    /// A rendered miette diagnostic: lines after the message in text, a field in JSON.
    diagnostic: Option<String>,
    /// Whether, in text on a terminal, the line first clears the status line it interrupts.
    over_status: bool,
}

/// The keys every JSON line has; fields must not reuse them.
const RESERVED: [&str; 5] = ["time", "level", "event", "message", "diagnostic"];

impl Entry {
    /// An entry at `level` named `event`, with the message text mode prints.
    pub(crate) fn new(level: Level, event: &'static str, message: impl Into<String>) -> Self {
        Entry {
            level,
            event: Some(event),
            message: message.into(),
            fields: Map::new(),
            diagnostic: None,
            over_status: false,
        }
    }

    /// An `info` entry.
    pub(crate) fn info(event: &'static str, message: impl Into<String>) -> Self {
        Self::new(Level::Info, event, message)
    }

    /// A `warn` entry.
    pub(crate) fn warn(event: &'static str, message: impl Into<String>) -> Self {
        Self::new(Level::Warn, event, message)
    }

    /// An `error` entry.
    pub(crate) fn error(event: &'static str, message: impl Into<String>) -> Self {
        Self::new(Level::Error, event, message)
    }

    /// A plain `info` line without an event name: what `say!` writes.
    pub(crate) fn line(message: impl Into<String>) -> Self {
        Entry {
            event: None,
            ..Self::info("", message)
        }
    }

    /// Adds a structured field (JSON only; text mode has it in the message already).
    pub(crate) fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        debug_assert!(!RESERVED.contains(&key), "field {key} is reserved");
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// Attaches a diagnostic, rendered by the miette hook (without colour in JSON mode).
    pub(crate) fn diagnostic(mut self, report: miette::Report) -> Self {
        self.diagnostic = Some(format!("{report:?}"));
        self
    }

    /// Clears the status line first (text on a terminal), for notices that arrive while it is
    /// drawn.
    pub(crate) fn over_status(mut self) -> Self {
        self.over_status = true;
        self
    }

    /// Writes the entry on standard error, ignoring failure: a closed stderr (its reader gone)
    /// must not turn into a panic that stops `sim` from flushing what it accepted.
    pub(crate) fn emit(self) {
        let line = self.render(format(), Utc::now());
        if let Some(held) = lock(&HELD).as_mut() {
            held.push(line);
            return;
        }
        // One write of the whole entry, so lines from other threads do not interleave inside it;
        // above a progress bar, which stays the last line.
        super::progress::above_bar(|| {
            let _ = std::io::stderr().write_all(line.as_bytes());
        });
    }

    /// The entry as written, newline included.
    fn render(&self, format: LogFormat, now: DateTime<Utc>) -> String {
        match format {
            LogFormat::Text => self.render_text(),
            LogFormat::Json => self.render_json(now),
        }
    }

    fn render_text(&self) -> String {
        let clear = if self.over_status { clear_status() } else { "" };
        match &self.diagnostic {
            Some(diagnostic) => format!("{clear}{}\n{diagnostic}\n", self.message),
            None => format!("{clear}{}\n", self.message),
        }
    }

    fn render_json(&self, now: DateTime<Utc>) -> String {
        /// Field order chosen for people reading the raw log: when and how bad come first.
        #[derive(Serialize)]
        struct Line<'a> {
            time: String,
            level: Level,
            #[serde(skip_serializing_if = "Option::is_none")]
            event: Option<&'static str>,
            message: String,
            #[serde(flatten)]
            fields: &'a Map<String, Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            diagnostic: Option<String>,
        }
        let line = Line {
            time: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            level: self.level,
            event: self.event,
            // A leading blank line (ending the status line) is text-mode layout, not content.
            message: strip_ansi(&self.message).trim_matches('\n').to_string(),
            fields: &self.fields,
            diagnostic: self.diagnostic.as_deref().map(strip_ansi),
        };
        // Serializing strings, numbers and a map of `Value`s cannot fail; the fallback keeps
        // the promise of one object a line all the same.
        let mut text = serde_json::to_string(&line)
            .unwrap_or_else(|err| serde_json::json!({ "message": err.to_string() }).to_string());
        text.push('\n');
        text
    }
}

/// Writes the error that stopped the command: miette's rendering in text, one `error` entry with
/// the diagnostic's code and rendering in JSON.
pub fn fatal<E>(err: E)
where
    E: miette::Diagnostic + Send + Sync + 'static,
{
    if !is_json() {
        // Exactly as before structured logs existed.
        let _ = writeln!(std::io::stderr(), "{:?}", miette::Report::new(err));
        return;
    }
    let message = err.to_string();
    let code = err.code().map(|code| code.to_string());
    let mut entry = Entry::error("error", message);
    if let Some(code) = code {
        entry = entry.field("code", code);
    }
    entry.diagnostic(miette::Report::new(err)).emit();
}

/// Removes terminal escapes (colours, the status line's clear, carriage returns): JSON consumers
/// want the text, not how a terminal would draw it.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // A CSI sequence (`ESC [ params letter`) or a two-character escape.
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() || c == '~' {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Entries held back while a dashboard owns the terminal (`None`: written at once).
static HELD: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Holds entries back from here on: a dashboard draws on the alternate screen, where a line
/// written over it would stay until its cells change, and would be gone with the screen.
pub fn hold() {
    lock(&HELD).get_or_insert_with(Vec::new);
}

/// The latest `n` entries held back, the oldest first, for a dashboard to show.
pub fn held_tail(n: usize) -> Vec<String> {
    lock(&HELD).as_ref().map_or_else(Vec::new, |held| {
        held[held.len().saturating_sub(n)..]
            .iter()
            .map(|line| strip_ansi(line).trim_end().to_string())
            .collect()
    })
}

/// Writes the entries held back, in order, and writes entries at once again (the dashboard has
/// left the alternate screen, so they land in the scrollback the person reads).
pub fn release() {
    if let Some(held) = lock(&HELD).take() {
        let _ = std::io::stderr().write_all(held.concat().as_bytes());
    }
}

/// On a terminal in text mode, what clears the status line (`super::status`) so a notice starts
/// on a clean line; nothing when standard error is piped or logs are JSON (no status line then).
pub fn clear_status() -> &'static str {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !is_json() {
        "\r\x1b[2K"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_123).unwrap()
    }

    fn json(entry: &Entry) -> Value {
        let text = entry.render(LogFormat::Json, at());
        assert!(text.ends_with('\n') && !text[..text.len() - 1].contains('\n'));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn text_is_the_message_alone() {
        let entry = Entry::info("seed", "seed 42 (pass --seed 42 to reproduce)").field("seed", 42);
        assert_eq!(
            entry.render(LogFormat::Text, at()),
            "seed 42 (pass --seed 42 to reproduce)\n"
        );
    }

    #[test]
    fn text_puts_the_diagnostic_on_the_following_lines() {
        let entry = Entry::warn("reload", "edit rejected")
            .diagnostic(miette::miette!("line 4: unexpected ';'"));
        let text = entry.render(LogFormat::Text, at());
        assert!(text.starts_with("edit rejected\n"), "{text}");
        assert!(
            text.contains("unexpected ';'") && text.ends_with('\n'),
            "{text}"
        );
    }

    #[test]
    fn json_has_time_level_event_message_and_fields() {
        let line = json(&Entry::info("seed", "seed 42").field("seed", 42));
        assert_eq!(line["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(line["level"], "info");
        assert_eq!(line["event"], "seed");
        assert_eq!(line["message"], "seed 42");
        assert_eq!(line["seed"], 42);
    }

    #[test]
    fn json_keeps_a_multi_line_message_on_one_line() {
        let line = json(&Entry::error("delivery", "a\nb \"quoted\"").field("count", 3));
        assert_eq!(line["message"], "a\nb \"quoted\"");
        assert_eq!(line["level"], "error");
    }

    #[test]
    fn json_diagnostic_is_a_field_without_escapes() {
        // As a coloured terminal rendering would have it, and behind the status line's clear.
        let entry = Entry {
            diagnostic: Some("\x1b[31mboom\x1b[0m".into()),
            ..Entry::warn("reload", "edit rejected").over_status()
        };
        let line = json(&entry);
        assert_eq!(line["diagnostic"], "boom");
        assert_eq!(line["message"], "edit rejected");
    }

    #[test]
    fn a_plain_line_has_no_event() {
        let line = json(&Entry::line("1 of 2 scripts failed"));
        assert!(line.get("event").is_none());
        assert_eq!(line["level"], "info");
    }

    #[test]
    fn escapes_are_stripped() {
        assert_eq!(strip_ansi("\r\x1b[2Kreloaded"), "reloaded");
        assert_eq!(strip_ansi("\x1b[1;31mred\x1b[0m text"), "red text");
        assert_eq!(strip_ansi("plain ünïcode"), "plain ünïcode");
    }
}
