//! Watching files for saves: a scenario and its modules (hot reload), detection rules
//! (`sim analyze`).
//!
//! The *folders* are watched, not the files: editors that save by writing a temporary file and
//! renaming it over the original (vim, VS Code, JetBrains) replace the file, and a watch on the
//! old file would go quiet. Events are debounced, so a burst of writes is one change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};

/// How long a file must be quiet before its change is reported: long enough to take a burst of
/// saves (an editor writing in chunks, a formatter rewriting after a save) as one change.
pub const DEBOUNCE: Duration = Duration::from_millis(40);

/// The absolute form of `path`, through its folder (the file itself may be mid-rename).
pub fn absolute(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// Watches the folders of a set of files and reports, debounced, when any of the files changes.
pub struct ScriptWatcher {
    debouncer: Debouncer<RecommendedWatcher>,
    folders: BTreeSet<PathBuf>,
}

impl ScriptWatcher {
    /// Starts watching; each debounced batch of file-system events is sent on `events`.
    pub fn start(events: Sender<DebounceEventResult>) -> notify::Result<Self> {
        Ok(Self {
            debouncer: new_debouncer(DEBOUNCE, events)?,
            folders: BTreeSet::new(),
        })
    }

    /// Makes sure the folder of every file in `files` is watched.
    pub fn watch(&mut self, files: &[PathBuf]) -> notify::Result<()> {
        for file in files {
            let folder = absolute(file)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            if self.folders.insert(folder.clone()) {
                self.debouncer
                    .watcher()
                    .watch(&folder, RecursiveMode::NonRecursive)?;
            }
        }
        Ok(())
    }
}
