//! The rules folder over a run: loaded at start, watched, and reloaded when a rule file changes.
//!
//! A rule that does not compile at start stops the run, as a broken scenario does; one that
//! breaks while the analyzer runs is reported and its previous version keeps running (see
//! [`ScriptRules::reload`]). Watching goes through [`crate::watch`], as the scenario's hot
//! reload does.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};

use notify_debouncer_mini::DebounceEventResult;

use super::script::{RuleChange, ScriptRules};
use crate::analyze::{AnalyzeError, AnalyzeNotice};
use crate::watch::ScriptWatcher;

/// Loads the rules in `dir` (none without a folder), telling `notify` about each one.
pub fn load_rules(
    dir: Option<&Path>,
    notify: &mut dyn FnMut(AnalyzeNotice),
) -> Result<ScriptRules, AnalyzeError> {
    let Some(dir) = dir else {
        return Ok(ScriptRules::none());
    };
    let (rules, changes) = ScriptRules::load(dir).map_err(|source| AnalyzeError::Rules {
        path: dir.to_path_buf(),
        source,
    })?;
    for change in changes {
        match change {
            // A rule that does not compile at start is an error, as a broken scenario is.
            RuleChange::Rejected(err) => return Err(err.into()),
            other => notify(AnalyzeNotice::Rule(other)),
        }
    }
    Ok(rules)
}

/// Watches the rules folder for saves, when hot reload is on.
pub struct RuleWatch {
    events: Receiver<DebounceEventResult>,
    _watcher: ScriptWatcher,
}

impl RuleWatch {
    /// Starts watching `dir`; without a watcher (the platform refused one) the run goes on
    /// without hot reload, and says so.
    pub fn start(dir: &Path, notify: &mut dyn FnMut(AnalyzeNotice)) -> Option<Self> {
        let (sender, events) = channel();
        let started = ScriptWatcher::start(sender).and_then(|mut watcher| {
            // Watching a file inside the folder watches the folder itself.
            watcher.watch(&[dir.join("rules.rhai")])?;
            Ok(watcher)
        });
        match started {
            Ok(watcher) => Some(Self {
                events,
                _watcher: watcher,
            }),
            Err(err) => {
                notify(AnalyzeNotice::Warning(format!(
                    "hot reload of detection rules unavailable: {err}"
                )));
                None
            }
        }
    }

    /// Reloads `rules` when a rule file changed since the last call; returns whether a rule
    /// was loaded or removed. A rule loaded again or removed leaves `failing`, so that its new
    /// version gets its own first failure reported.
    pub fn reload(
        &self,
        rules: &mut ScriptRules,
        failing: &mut BTreeSet<String>,
        notify: &mut dyn FnMut(AnalyzeNotice),
    ) -> bool {
        if !self.rule_file_changed() {
            return false;
        }
        let mut changed = false;
        match rules.reload() {
            Ok(changes) => {
                for change in changes {
                    changed |= !matches!(change, RuleChange::Rejected(_));
                    if let RuleChange::Loaded(path) | RuleChange::Removed(path) = &change {
                        if let Some(stem) = path.file_stem() {
                            failing.remove(&*stem.to_string_lossy());
                        }
                    }
                    notify(AnalyzeNotice::Rule(change));
                }
            }
            Err(err) => notify(AnalyzeNotice::Warning(format!(
                "reading the rules folder: {err}"
            ))),
        }
        changed
    }

    /// Whether a `.rhai` file changed; takes every event that arrived.
    fn rule_file_changed(&self) -> bool {
        let mut changed = false;
        while let Ok(batch) = self.events.try_recv() {
            changed |= batch.is_ok_and(|events| {
                events
                    .iter()
                    .any(|e| e.path.extension().is_some_and(|x| x == "rhai"))
            });
        }
        changed
    }
}
