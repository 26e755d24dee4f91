//! Running totals: transactions per merchant, approved revenue by category and by payment method.
//!
//! The same [`Totals`] type holds a process's committed totals and the not-yet-committed part of
//! one batch of one source partition (a *delta*). Deltas are what `--output-topics` publishes:
//! summing every delta ever published for a key gives the total for that key, whichever group
//! member published it (see `docs/analyze.md`).

use std::collections::BTreeMap;

use foldhash::HashMap;

use super::transaction::Transaction;

/// Counts and sums over a set of transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Transactions (any status) per merchant.
    pub merchant_counts: HashMap<String, u64>,
    /// Approved amount per merchant category, in rials.
    pub category_revenue: HashMap<String, i64>,
    /// Approved transactions per merchant category.
    pub category_approved: HashMap<String, u64>,
    /// Approved amount per payment method, in rials.
    pub method_revenue: HashMap<String, i64>,
    /// Transactions counted.
    pub transactions: u64,
    /// Of which approved.
    pub approved: u64,
}

fn bump<V: Default + std::ops::AddAssign>(map: &mut HashMap<String, V>, key: &str, by: V) {
    // Look up by &str first: the key is almost always there, so no String is allocated.
    match map.get_mut(key) {
        Some(value) => *value += by,
        None => {
            map.insert(key.to_string(), by);
        }
    }
}

impl Totals {
    /// Counts one transaction.
    pub fn add(&mut self, tx: &Transaction) {
        self.transactions += 1;
        bump(&mut self.merchant_counts, &tx.merchant_id, 1);
        if tx.approved() {
            self.approved += 1;
            bump(&mut self.category_revenue, &tx.category, tx.amount);
            bump(&mut self.category_approved, &tx.category, 1);
            bump(&mut self.method_revenue, &tx.method, tx.amount);
        }
    }

    /// Adds `other` into these totals.
    pub fn merge(&mut self, other: &Totals) {
        self.transactions += other.transactions;
        self.approved += other.approved;
        for (k, v) in &other.merchant_counts {
            bump(&mut self.merchant_counts, k, *v);
        }
        for (k, v) in &other.category_revenue {
            bump(&mut self.category_revenue, k, *v);
        }
        for (k, v) in &other.category_approved {
            bump(&mut self.category_approved, k, *v);
        }
        for (k, v) in &other.method_revenue {
            bump(&mut self.method_revenue, k, *v);
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.transactions == 0
    }

    /// The `n` merchants with the most transactions, most first (ties by id).
    pub fn top_merchants(&self, n: usize) -> Vec<(&str, u64)> {
        let mut all: Vec<(&str, u64)> = self
            .merchant_counts
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        all.truncate(n);
        all
    }
}

/// A map sorted by key, for stable output.
pub fn sorted<V: Copy>(map: &HashMap<String, V>) -> BTreeMap<String, V> {
    map.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::transaction::tests::tx;

    #[test]
    fn declined_transactions_count_for_merchants_but_not_revenue() {
        let mut totals = Totals::default();
        let mut declined = tx("c", 500, 0, 1);
        declined.status = "declined".into();
        totals.add(&tx("c", 100, 0, 0));
        totals.add(&declined);
        assert_eq!(totals.merchant_counts["merch_1"], 2);
        assert_eq!(totals.category_revenue["retail"], 100);
        assert_eq!(totals.method_revenue["pos"], 100);
        assert_eq!((totals.transactions, totals.approved), (2, 1));
    }

    #[test]
    fn merged_deltas_equal_one_pass() {
        let events: Vec<_> = (0..10).map(|i| tx("c", i * 10, i, i)).collect();
        let mut whole = Totals::default();
        events.iter().for_each(|e| whole.add(e));
        let (mut a, mut b) = (Totals::default(), Totals::default());
        events[..4].iter().for_each(|e| a.add(e));
        events[4..].iter().for_each(|e| b.add(e));
        a.merge(&b);
        assert_eq!(a, whole);
        assert_eq!(whole.top_merchants(1), vec![("merch_1", 10)]);
    }
}
