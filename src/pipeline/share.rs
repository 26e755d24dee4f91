//! One instance's share of a timeline that several instances make together (`--group`).
//!
//! The timeline is cut into shards: arrival `i` belongs to shard `i % shards`. Every instance
//! walks the whole timeline (drawing arrival times is cheap) and makes only the arrivals of the
//! shards it owns, each from the position the shard was handed over at. Who owns what, and the
//! hand-over itself, are the group's business ([`Share`], implemented over Kafka's consumer
//! group protocol in `crate::group`); the pipeline asks it between batches.

use super::PipelineError;
use crate::rate::Nanos;

/// Which shards this instance owns, and from which arrival on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// For each shard, the first arrival of it this instance makes; `None`: not owned.
    from: Vec<Option<u64>>,
}

impl Ownership {
    /// No shard of `shards` owned.
    pub fn none(shards: u32) -> Self {
        Self {
            from: vec![None; shards.max(1) as usize],
        }
    }

    /// The number of shards the timeline is cut into.
    pub fn shards(&self) -> u32 {
        self.from.len() as u32
    }

    /// The shard arrival `arrival` belongs to.
    pub fn shard_of(&self, arrival: u64) -> u32 {
        (arrival % self.from.len() as u64) as u32
    }

    /// Whether this instance makes arrival `arrival`.
    pub fn owns(&self, arrival: u64) -> bool {
        self.from[self.shard_of(arrival) as usize].is_some_and(|from| arrival >= from)
    }

    /// Takes `shard` on, making its arrivals from `from` on.
    pub fn take(&mut self, shard: u32, from: u64) {
        if let Some(slot) = self.from.get_mut(shard as usize) {
            *slot = Some(from);
        }
    }

    /// Gives `shard` up.
    pub fn give_up(&mut self, shard: u32) {
        if let Some(slot) = self.from.get_mut(shard as usize) {
            *slot = None;
        }
    }

    /// The shards owned, in order.
    pub fn owned(&self) -> Vec<u32> {
        (0..self.shards())
            .filter(|&s| self.from[s as usize].is_some())
            .collect()
    }

    /// Where `shard` stands when the timeline's next arrival is `next`: the first of its
    /// arrivals not yet made. `None` when not owned.
    pub fn position(&self, shard: u32, next: u64) -> Option<u64> {
        self.from
            .get(shard as usize)
            .copied()
            .flatten()
            .map(|from| from.max(next))
    }
}

/// A shard taken on behind the timeline: its arrivals from `from` up to where the timeline stands
/// are still to be made (another instance made the ones before, or crashed after its last
/// commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// The shard.
    pub shard: u32,
    /// Its first arrival not made.
    pub from: u64,
}

/// An instance's part in a group that makes one timeline together.
pub trait Share {
    /// Which arrivals this instance makes now.
    fn ownership(&self) -> &Ownership;

    /// Called between batches: `next` is the timeline's next arrival, and every owned arrival
    /// before it was handed to the sink. Serves the group (commits the shards' positions when
    /// due, hands shards over in a rebalance) and returns the shards taken on behind `next`.
    fn step(&mut self, next: u64) -> Result<Vec<CatchUp>, PipelineError>;

    /// Records now that every owned arrival before `next` was made: waits for the sink to
    /// deliver what it holds, then commits each owned shard's position.
    fn commit(&mut self, next: u64) -> Result<(), PipelineError>;

    /// Whether every shard of the group, owned here or not, has reached `total` (the end of a
    /// finite timeline), so this instance may leave.
    fn all_reached(&mut self, total: u64) -> Result<bool, PipelineError>;

    /// Where the live timeline the group shares starts (the same for every instance).
    fn live_origin(&self) -> Nanos;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_owned_by_shard_from_the_hand_over_on() {
        let mut ownership = Ownership::none(4);
        assert!(!ownership.owns(1));
        ownership.take(1, 9);
        assert!(!ownership.owns(5), "before the hand-over");
        assert!(ownership.owns(9) && ownership.owns(13));
        assert!(!ownership.owns(10), "another shard");
        assert_eq!(ownership.owned(), vec![1]);
        assert_eq!(ownership.position(1, 4), Some(9));
        assert_eq!(ownership.position(1, 20), Some(20));
        assert_eq!(ownership.position(2, 20), None);
        ownership.give_up(1);
        assert!(!ownership.owns(13));
    }
}
