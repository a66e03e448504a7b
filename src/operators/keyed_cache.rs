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
        let epoch = self.epoch;
        // Copies the entries once if a checkpoint's thread still holds them.
        let entries = Arc::make_mut(&mut self.entries);
        if !entries.contains_key(key) {
            entries.insert(key.clone(), Cached { value: load()?, epoch });
        }
        let cached = entries.get_mut(key).ok_or_else(|| Error::internal("a cache entry vanished"))?;
        cached.epoch = epoch;
        Ok(&mut cached.value)
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
            None => batch.delete(key.to_vec()),
        }
    }
    batch
}
