//! A real terminal for tests: a command in a detached tmux session, its screen read with
//! `tmux capture-pane`, keys typed with `send-keys`. The progress bars and the dashboards are
//! tested through it.
//!
//! tmux is installed by `bash dev/install-test-deps.sh`; without it these tests fail, never skip.

use std::process::Command;
use std::time::{Duration, Instant};

/// How long a screen may take to show what a test waits for: a bound on a loaded machine, never
/// an expectation.
pub const WAIT: Duration = Duration::from_secs(120);

/// A tmux server of its own (`tmux -L NAME`), so tests running at once never share sessions;
/// killed when dropped, and everything in it with it.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` (a shell command line) in a new detached session of `width` × `height`,
    /// on a server named after `name` and this process.
    pub fn start(name: &str, command: &str, width: u16, height: u16) -> Self {
        let tmux = Self {
            socket: format!("sim-{name}-{}", std::process::id()),
        };
        let (width, height) = (width.to_string(), height.to_string());
        let started = tmux
            .command()
            .args(["new-session", "-d", "-x", &width, "-y", &height, command])
            .status()
            .unwrap_or_else(|e| {
                panic!("tmux is missing ({e}): run `bash dev/install-test-deps.sh` to install it")
            });
        assert!(started.success(), "tmux new-session failed: {started}");
        tmux
    }

    /// `tmux -L SOCKET -f /dev/null`: no user configuration changes what is drawn.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket, "-f", "/dev/null"]);
        cmd
    }

    /// The screen as text.
    pub fn capture(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `keys`.
    pub fn send_keys(&self, keys: &str) {
        let status = self.command().args(["send-keys", keys]).status();
        assert!(status.is_ok_and(|s| s.success()), "tmux send-keys failed");
    }

    /// Resizes the session's window, as a person dragging the terminal's corner would.
    pub fn resize(&self, width: u16, height: u16) {
        let status = self
            .command()
            .args([
                "resize-window",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "tmux resize-window failed"
        );
    }

    /// Captures the screen until `ready` accepts it; panics with the last screen after [`WAIT`]
    /// (polling every 100 ms: a progress bar's halfway lasts seconds).
    pub fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.capture();
            if ready(&screen) {
                return screen;
            }
            assert!(
                started.elapsed() < WAIT,
                "the screen never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}
