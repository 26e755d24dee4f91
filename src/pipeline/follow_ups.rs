//! The follow-ups a script scheduled, waiting for their time: earliest first, and in scheduling
//! order when several fall due at the same moment.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use super::packed::Packed;
use crate::rate::Nanos;
use crate::script::Scheduled;

/// A min-queue of scheduled follow-ups.
#[derive(Default)]
pub struct FollowUpQueue {
    heap: BinaryHeap<Reverse<Pending>>,
    scheduled_so_far: u64,
}

struct Pending {
    at: Nanos,
    order: u64,
    /// The call, its data moved out into `data`.
    scheduled: Scheduled,
    data: Packed,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl FollowUpQueue {
    /// Adds a follow-up.
    pub fn schedule(&mut self, mut scheduled: Scheduled) {
        let data = Packed::pack(std::mem::take(&mut scheduled.data));
        self.heap.push(Reverse(Pending {
            at: scheduled.at_ms.saturating_mul(1_000_000),
            order: self.scheduled_so_far,
            scheduled,
            data,
        }));
        self.scheduled_so_far += 1;
    }

    /// How many are waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// When the earliest follow-up is due.
    pub fn next_due(&self) -> Option<Nanos> {
        self.heap.peek().map(|Reverse(pending)| pending.at)
    }

    /// Takes the earliest follow-up.
    pub fn pop(&mut self) -> Option<Scheduled> {
        let Reverse(pending) = self.heap.pop()?;
        Some(Scheduled {
            data: pending.data.unpack(),
            ..pending.scheduled
        })
    }

    /// The function most of the waiting follow-ups call, and how many do. Counted when asked
    /// (once, when the cap is reached), not kept up on every schedule and pop.
    pub fn most_waiting(&self) -> Option<(&str, usize)> {
        let mut by_function: HashMap<&str, usize> = HashMap::new();
        for Reverse(pending) in &self.heap {
            *by_function.entry(&pending.scheduled.function).or_default() += 1;
        }
        by_function
            .into_iter()
            .max_by_key(|(name, count)| (*count, std::cmp::Reverse(*name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::Dynamic;

    fn at(ms: i64, name: &str) -> Scheduled {
        Scheduled {
            at_ms: ms,
            function: name.into(),
            data: Dynamic::UNIT,
            id: 0,
        }
    }

    #[test]
    fn earliest_first_then_in_scheduling_order() {
        let mut queue = FollowUpQueue::default();
        queue.schedule(at(30, "c"));
        queue.schedule(at(10, "a"));
        queue.schedule(at(30, "d"));
        queue.schedule(at(20, "b"));
        assert_eq!(queue.next_due(), Some(10_000_000));
        let order: Vec<String> = std::iter::from_fn(|| queue.pop())
            .map(|s| s.function.to_string())
            .collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }
}
