//! The stop signal: set once (by Ctrl-C, SIGTERM or a test), seen by every loop.
//!
//! Waiting on it doubles as an interruptible sleep: the wall clock's
//! [`TimeSource`](crate::clock::TimeSource) sleeps through it, so the live stream sleeps until
//! its next deadline yet stops at once when asked.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A shared, one-way stop flag.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to stop.
    pub fn trigger(&self) {
        let (flag, wake) = &*self.inner;
        if let Ok(mut stopped) = flag.lock() {
            *stopped = true;
        }
        wake.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.inner.0.lock().map(|stopped| *stopped).unwrap_or(true)
    }

    /// Sleeps up to `timeout`, returning early (with `true`) if a stop is asked for.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (flag, wake) = &*self.inner;
        let Ok(stopped) = flag.lock() else {
            return true;
        };
        match wake.wait_timeout_while(stopped, timeout, |stopped| !*stopped) {
            Ok((stopped, _)) => *stopped,
            Err(_) => true,
        }
    }

    /// On SIGINT (Ctrl-C) or SIGTERM, calls `stopping` (to tell the person what happens now)
    /// and then triggers this signal; a second signal exits at once.
    pub fn on_signals(&self, stopping: impl Fn() + Send + 'static) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let shutdown = self.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(mut term) =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    else {
                        return;
                    };
                    for round in 0.. {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                        if round == 0 {
                            // Tell first, so the line comes before the account that the
                            // stop leads to; `stopping` must not panic on a closed stderr.
                            stopping();
                            shutdown.trigger();
                        } else {
                            std::process::exit(130);
                        }
                    }
                });
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_wakes_a_waiter() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.wait(Duration::from_millis(1)));
        let other = shutdown.clone();
        let waiter = std::thread::spawn(move || other.wait(Duration::from_secs(60)));
        shutdown.trigger();
        assert!(waiter.join().unwrap());
        assert!(shutdown.is_triggered());
    }
}
