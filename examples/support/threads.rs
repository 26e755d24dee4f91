//! CPU time by thread of this process, from `/proc/self/task`: which part of a run took the
//! cores (the analyzer's own loop, its detection threads, librdkafka's client threads, the mock
//! cluster's broker). A thread that ends between two readings keeps the time last read of it, so
//! a sampler reads every thread every [`EVERY`]: of a thread that ends, at most that much of its
//! time is missed.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the sampler reads the threads.
pub const EVERY: Duration = Duration::from_millis(50);

/// Each thread seen: its name and CPU time (user and system) last read, in clock ticks.
type Seen = HashMap<u32, (String, u64)>;

/// A background reader of every thread's CPU time.
#[derive(Clone, Default)]
pub struct ThreadClock {
    seen: Arc<Mutex<Seen>>,
}

impl ThreadClock {
    /// Starts the sampler thread (it runs until the process ends).
    pub fn start() -> Self {
        let clock = Self::default();
        let seen = clock.seen.clone();
        std::thread::Builder::new()
            .name("cpu-sampler".into())
            .spawn(move || loop {
                read_into(&mut seen.lock().unwrap());
                std::thread::sleep(EVERY);
            })
            .expect("spawn the CPU sampler");
        clock
    }

    /// What every thread has used so far (read now, not at the last sample).
    pub fn now(&self) -> Seen {
        let mut seen = self.seen.lock().unwrap();
        read_into(&mut seen);
        seen.clone()
    }
}

/// CPU seconds by group of threads between two readings, largest first; `group` names a
/// thread's group from its name.
pub fn spent(before: &Seen, after: &Seen, group: impl Fn(&str) -> String) -> Vec<(String, f64)> {
    let mut sums: HashMap<String, u64> = HashMap::new();
    for (tid, (name, ticks)) in after {
        let was = before.get(tid).map_or(0, |(_, t)| *t);
        *sums.entry(group(name)).or_default() += ticks.saturating_sub(was);
    }
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space.
    let hz = 100.0;
    let mut out: Vec<(String, f64)> = sums
        .into_iter()
        .filter(|(_, t)| *t > 0)
        .map(|(g, t)| (g, t as f64 / hz))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

fn read_into(seen: &mut Seen) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: the name can hold spaces and parentheses, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the name: state is field 3 of stat(5), utime 14, stime 15.
        let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
        if let (Some(user), Some(system)) = (ticks(14), ticks(15)) {
            seen.insert(tid, (name, user + system));
        }
    }
}
