//! `KeyedCache`: the hot part of a keyed operator's state, in memory over its state backend, as the
//! updating aggregate and ChangelogNormalize keep it. Each entry is stamped with the epoch
//! (checkpoint interval) that last changed it. When the cache outgrows its limit the changed
//! entries are written to the backend as one ingested file and the cache is emptied; a key
//! missing from the cache is read back from the backend once. A checkpoint flushes the entries
//! changed since the previous one into the backend on the checkpoint's thread (copy-on-write: the
//! task goes on), so a checkpoint uploads one file of changes rather than the whole cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::operators::grouping::GroupKey;
use crate::runtime::OperatorSnapshot;
use crate::state::{StateBackend, StateWriteBatch};

/// How an entry is written to the backend: its bytes, or `None` to delete the key.
pub type EncodeEntry<V> = Arc<dyn Fn(&V) -> Option<Vec<u8>> + Send + Sync>;

#[derive(Clone)]
struct Cached<V> {
    value: V,
    epoch: u64,
    /// The backend may hold a copy of the key: loaded from it, or flushed since it was created.
    /// An entry that never reached the backend needs no delete when it empties.
    in_backend: bool,
}

type Entries<V> = HashMap<GroupKey, Cached<V>, ahash::RandomState>;

pub struct KeyedCache<V> {
    /// Newer than the backend's copy of the same keys, if any.
    entries: Arc<Entries<V>>,
    limit: usize,
    encode: EncodeEntry<V>,
    /// Stamped on the entries changed now; a barrier starts the next epoch.
    epoch: u64,
    /// Entries changed in this epoch or earlier are in the backend (or on their way, on the
    /// checkpoint's thread): entries of a later epoch are the only ones a flush must write.
    flushed: u64,
}

impl<V: Clone + Send + Sync + 'static> KeyedCache<V> {
    pub fn new(limit: usize, encode: EncodeEntry<V>) -> Self {
        KeyedCache {
            entries: Arc::default(),
            limit: limit.max(1),
            encode,
            epoch: 1,
            flushed: 0,
        }
    }

    pub fn get(&self, key: &GroupKey) -> Option<&V> {
        self.entries.get(key).map(|e| &e.value)
    }

    /// The entry of `key` to change in this epoch, loaded with `load` when the cache lacks it.
    pub fn changing(&mut self, key: &GroupKey, load: impl FnOnce() -> Result<V>) -> Result<&mut V> {
        self.changing_entry(key, || Ok((load()?, true)))
    }

    /// `changing`, for a caller that knows whether the backend holds `key`: `load` returns its
    /// stored value, or `None` when the backend holds none; the entry then starts as `fresh()`,
    /// and while it has not reached the backend, emptying it writes nothing.
    pub fn changing_stored(
        &mut self,
        key: &GroupKey,
        load: impl FnOnce() -> Result<Option<V>>,
        fresh: impl FnOnce() -> V,
    ) -> Result<&mut V> {
        self.changing_entry(key, || {
            Ok(match load()? {
                Some(value) => (value, true),
                None => (fresh(), false),
            })
        })
    }

    fn changing_entry(&mut self, key: &GroupKey, load: impl FnOnce() -> Result<(V, bool)>) -> Result<&mut V> {
        let (epoch, flushed) = (self.epoch, self.flushed);
        // Copies the entries once if a checkpoint's thread still holds them.
        let entries = Arc::make_mut(&mut self.entries);
        if !entries.contains_key(key) {
            let (value, in_backend) = load()?;
            entries.insert(key.clone(), Cached { value, epoch, in_backend });
        }
        let cached = entries.get_mut(key).ok_or_else(|| Error::internal("a cache entry vanished"))?;
        // A flush wrote the entry since its last change (a put, or a delete if it was empty).
        cached.in_backend |= cached.epoch <= flushed;
        cached.epoch = epoch;
        Ok(&mut cached.value)
    }

    /// Drops the entry of `key`, which the caller just emptied, if it never reached the backend:
    /// there is nothing to delete, and the cache stays small. An entry the backend may hold stays,
    /// for the next flush to delete.
    pub fn forget_unstored(&mut self, key: &GroupKey) {
        if self.entries.get(key).is_some_and(|cached| !cached.in_backend) {
            Arc::make_mut(&mut self.entries).remove(key);
        }
    }

    /// Writes the changed entries to `backend` and empties the cache when it is over its limit.
    pub fn spill_if_full(&mut self, backend: &mut dyn StateBackend) -> Result<()> {
        if self.entries.len() <= self.limit {
            return Ok(());
        }
        let entries = std::mem::take(&mut self.entries);
        backend.ingest(changed_since(&entries, self.flushed, &self.encode))
    }

    /// The synchronous part of a checkpoint: a reference to the entries and the start of a new
    /// epoch. The backend's checkpoint thread writes the entries changed in the epoch that ended,
    /// then takes its hard-link checkpoint, which therefore holds the whole state.
    pub fn snapshot(&mut self, backend: &mut dyn StateBackend, dir: &Path) -> Result<OperatorSnapshot> {
        let files = vec![backend.checkpoint(dir, Some(Box::new(self.checkpoint_changes())))?];
        Ok(OperatorSnapshot {
            dir: dir.to_path_buf(),
            files,
            meta: serde_json::Value::Null,
        })
    }

    /// The entries changed in the epoch that ends now, computed when the returned function runs
    /// (on the checkpoint's thread); starts the next epoch. For operators that keep several
    /// caches in one backend and hand their changes to one checkpoint.
    pub fn checkpoint_changes(&mut self) -> impl FnOnce() -> StateWriteBatch + Send + 'static {
        let (frozen, flushed, encode) = (self.entries.clone(), self.flushed, self.encode.clone());
        self.flushed = self.epoch;
        self.epoch += 1;
        move || changed_since(&frozen, flushed, &encode)
    }
}

/// The entries changed after epoch `flushed`, as backend writes.
fn changed_since<V>(entries: &Entries<V>, flushed: u64, encode: &EncodeEntry<V>) -> StateWriteBatch {
    let mut batch = StateWriteBatch::default();
    for (key, cached) in entries.iter().filter(|(_, cached)| cached.epoch > flushed) {
        match encode(&cached.value) {
            Some(bytes) => batch.put(key.to_vec(), bytes),
            None if cached.in_backend => batch.delete(key.to_vec()),
            None => {}
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateOp;

    fn cache() -> KeyedCache<Vec<u8>> {
        KeyedCache::new(100, Arc::new(|v: &Vec<u8>| (!v.is_empty()).then(|| v.clone())))
    }

    fn flush(cache: &mut KeyedCache<Vec<u8>>) -> Vec<StateOp> {
        let mut ops = cache.checkpoint_changes()().ops;
        ops.sort_by_key(|op| format!("{op:?}"));
        ops
    }

    fn new_key<'a>(cache: &'a mut KeyedCache<Vec<u8>>, key: &GroupKey) -> &'a mut Vec<u8> {
        cache.changing_stored(key, || Ok(None), Vec::new).expect("entry")
    }

    #[test]
    fn an_entry_deletes_its_key_only_once_the_backend_may_hold_it() {
        let (a, b, c): (GroupKey, GroupKey, GroupKey) = (Box::new([1]), Box::new([2]), Box::new([3]));
        let mut cache = cache();
        // Created and emptied before a flush: nothing to write, and forgotten.
        new_key(&mut cache, &a).push(7);
        new_key(&mut cache, &a).clear();
        cache.forget_unstored(&a);
        assert!(cache.get(&a).is_none());
        // Created, then flushed as a put.
        new_key(&mut cache, &b).push(8);
        // Loaded from the backend: it holds the key.
        cache.changing_stored(&c, || Ok(Some(vec![9])), Vec::new).expect("c").push(10);
        assert_eq!(
            flush(&mut cache),
            vec![StateOp::Put(vec![2], vec![8]), StateOp::Put(vec![3], vec![9, 10])]
        );
        // Emptied after the flush wrote them: kept, and deleted by the next flush.
        for key in [&b, &c] {
            new_key(&mut cache, key).clear();
            cache.forget_unstored(key);
            assert!(cache.get(key).is_some());
        }
        assert_eq!(flush(&mut cache), vec![StateOp::Delete(vec![2]), StateOp::Delete(vec![3])]);
        // `changing` cannot tell: its entries are deleted when emptied.
        cache.changing(&a, || Ok(Vec::new())).expect("a");
        assert_eq!(flush(&mut cache), vec![StateOp::Delete(vec![1])]);
    }
}
