//! The final account `sim` prints last on standard error, and what it must agree with: itself,
//! the topic, and the exit status.

use std::process::ExitStatus;

/// `account: produced P, delivered D, failed F[, unaccounted U], script errors E`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Account {
    /// Events handed to the producer.
    pub produced: u64,
    /// Acknowledged by the broker.
    pub delivered: u64,
    /// Reported failed (or purged at close).
    pub failed: u64,
    /// Neither, when closing gave up waiting (printed only when not 0).
    pub unaccounted: u64,
    /// Arrivals and follow-ups skipped because the script failed (`on_error = skip`).
    pub script_errors: u64,
}

impl Account {
    /// The last account line of `stderr`, if there is one. Unlike the tests' own parser it
    /// accepts `unaccounted N`: a faulted run may end with messages in flight, and that is a
    /// finding to report, not a line to choke on.
    pub fn parse(stderr: &str) -> Option<Self> {
        let line = stderr
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("account: "))?;
        let mut account = Account::default();
        for part in line.split(", ") {
            let (name, value) = part.rsplit_once(' ')?;
            let value: u64 = value.parse().ok()?;
            match name {
                "produced" => account.produced = value,
                "delivered" => account.delivered = value,
                "failed" => account.failed = value,
                "unaccounted" => account.unaccounted = value,
                "script errors" => account.script_errors = value,
                _ => return None,
            }
        }
        Some(account)
    }

    /// Whether everything handed to the producer was delivered.
    pub fn all_delivered(&self) -> bool {
        self.failed == 0 && self.unaccounted == 0
    }

    /// Whether every arrival was made and everything made delivered: what `sim` exits 0 on.
    pub fn succeeded(&self) -> bool {
        self.all_delivered() && self.script_errors == 0
    }
}

/// What is wrong between the account, the exit status and the topic: `produced = delivered +
/// failed (+ unaccounted)`, the topic holds exactly `delivered` messages, the exit status is 0
/// exactly when everything was delivered, and, with `no_failures`, nothing failed (the fault
/// healed within the producer's patience). Empty when all hold.
pub fn account_problems(
    account: &Account,
    status: ExitStatus,
    held: usize,
    no_failures: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let a = account;
    if a.produced != a.delivered + a.failed + a.unaccounted {
        problems.push(format!(
            "produced {} is not delivered {} + failed {} + unaccounted {}",
            a.produced, a.delivered, a.failed, a.unaccounted
        ));
    }
    // Unaccounted messages were purged after they were sent: the broker may hold them.
    if !(a.delivered..=a.delivered + a.unaccounted).contains(&(held as u64)) {
        problems.push(format!(
            "the topic holds {held} messages, the account says {} delivered and {} unaccounted",
            a.delivered, a.unaccounted
        ));
    }
    if status.success() != a.succeeded() {
        problems.push(format!(
            "exit status {status} does not follow the account (failed {}, unaccounted {}, script errors {})",
            a.failed, a.unaccounted, a.script_errors
        ));
    }
    if no_failures && !a.all_delivered() {
        problems.push(format!(
            "{} failed and {} unaccounted although the fault healed",
            a.failed, a.unaccounted
        ));
    }
    problems
}
