//! `ExpiryIndex`: which keys of an operator's state hold something that expires when, so that
//! expiring is a range pop rather than a scan of the state. It keeps one entry per key, at the
//! earliest expiry of what the key holds; the operator re-registers a key with its next expiry
//! after it dropped what expired. Used for the interval join (event time: the watermark) and the
//! state TTL of regular joins (processing time).

use std::collections::{BTreeSet, HashMap};

use crate::operators::grouping::GroupKey;

#[derive(Default)]
pub struct ExpiryIndex {
    by_time: BTreeSet<(i64, GroupKey)>,
    earliest: HashMap<GroupKey, i64, ahash::RandomState>,
}

impl ExpiryIndex {
    /// Records that `key` holds something that expires at `at` (the earliest is kept per key).
    pub fn insert(&mut self, key: &GroupKey, at: i64) {
        if let Some(&earliest) = self.earliest.get(key) {
            if earliest <= at {
                return;
            }
            self.by_time.remove(&(earliest, key.clone()));
        }
        self.earliest.insert(key.clone(), at);
        self.by_time.insert((at, key.clone()));
    }

    /// The keys holding something that expires before `bound`, taken out of the index.
    pub fn take_due(&mut self, bound: i64) -> Vec<GroupKey> {
        // Entries before (bound, no key) are those expiring before `bound`.
        let later = self.by_time.split_off(&(bound, GroupKey::default()));
        let due = std::mem::replace(&mut self.by_time, later);
        due.into_iter()
            .map(|(_, key)| {
                self.earliest.remove(&key);
                key
            })
            .collect()
    }

    /// Whether `key` holds something that has not expired yet.
    pub fn contains(&self, key: &GroupKey) -> bool {
        self.earliest.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.earliest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.earliest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_earliest_expiry_per_key_and_pops_in_order() {
        let (a, b): (GroupKey, GroupKey) = (Box::new([1]), Box::new([2]));
        let mut index = ExpiryIndex::default();
        index.insert(&a, 30);
        index.insert(&a, 10);
        index.insert(&a, 20);
        index.insert(&b, 15);
        assert_eq!(index.len(), 2);
        assert_eq!(index.take_due(10), Vec::<GroupKey>::new());
        assert_eq!(index.take_due(11), vec![a.clone()]);
        // Re-registered after its expired part was dropped.
        index.insert(&a, 30);
        assert_eq!(index.take_due(100), vec![b, a]);
        assert!(index.is_empty());
    }
}
