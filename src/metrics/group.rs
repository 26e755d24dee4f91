//! A group member's figures (`--group`): the shards it owns, the arrivals of the timeline it
//! made, and how far the timeline the group makes together has come.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// What a member of a group shows: in the status line, the dashboard and the metrics endpoint.
#[derive(Debug, Default)]
pub struct GroupFigures {
    name: OnceLock<String>,
    shards: AtomicU64,
    owned: AtomicU64,
    rebalances: AtomicU64,
    made: AtomicU64,
    timeline: AtomicU64,
}

/// The figures at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// The group.
    pub name: String,
    /// Shards of its timeline.
    pub shards: u64,
    /// Shards this instance owns.
    pub owned: u64,
    /// Rebalances that moved shards to or from this instance.
    pub rebalances: u64,
    /// Arrivals this instance made.
    pub made: u64,
    /// Arrivals of the timeline so far, made by the whole group.
    pub timeline: u64,
}

impl GroupSnapshot {
    /// This instance's share of the group's arrivals, between 0 and 1.
    pub fn share(&self) -> f64 {
        self.made as f64 / self.timeline.max(1) as f64
    }
}

impl GroupFigures {
    /// This instance joined `name`, whose timeline has `shards` shards.
    pub fn join(&self, name: &str, shards: u32) {
        let _ = self.name.set(name.to_string());
        self.shards.store(u64::from(shards), Ordering::Relaxed);
    }

    /// A rebalance took `took` shards on and gave `gave` up.
    pub fn rebalanced(&self, took: usize, gave: usize) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        let owned = self.owned.load(Ordering::Relaxed) + took as u64;
        self.owned
            .store(owned.saturating_sub(gave as u64), Ordering::Relaxed);
    }

    /// This instance made `arrivals` more arrivals.
    pub fn made(&self, arrivals: u64) {
        self.made.fetch_add(arrivals, Ordering::Relaxed);
    }

    /// The timeline has reached arrival `next`.
    pub fn reached(&self, next: u64) {
        self.timeline.store(next, Ordering::Relaxed);
    }

    /// The figures, when this instance is one of a group.
    pub fn snapshot(&self) -> Option<GroupSnapshot> {
        Some(GroupSnapshot {
            name: self.name.get()?.clone(),
            shards: self.shards.load(Ordering::Relaxed),
            owned: self.owned.load(Ordering::Relaxed),
            rebalances: self.rebalances.load(Ordering::Relaxed),
            made: self.made.load(Ordering::Relaxed),
            timeline: self.timeline.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_rebalances_and_the_timeline() {
        let figures = GroupFigures::default();
        assert_eq!(figures.snapshot(), None, "not in a group");
        figures.join("g", 8);
        figures.rebalanced(8, 0);
        figures.rebalanced(0, 3);
        figures.made(25);
        figures.reached(100);
        let snapshot = figures.snapshot().unwrap();
        assert_eq!((snapshot.owned, snapshot.rebalances), (5, 2));
        assert!((snapshot.share() - 0.25).abs() < 1e-9);
    }
}
