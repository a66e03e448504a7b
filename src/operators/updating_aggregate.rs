//! `UpdatingAggregate`: GROUP BY without a window. Each batch is pre-aggregated in memory and folded
//! into the per-key state; the new value of every key the batch touched is emitted as an upsert.
//! Hot keys stay in a cache; when it outgrows its limit the changed keys are written to the state
//! backend as one ingested file and the cache is emptied, and a key missing from the cache is read
//! back from the backend once. A checkpoint flushes the keys changed since the previous one into
//! the backend on the checkpoint's thread (copy-on-write: the task goes on), so a checkpoint
//! uploads one file of changes rather than the whole cache.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::graph::AggregateSpec;
use crate::message::Message;
use crate::operators::accumulator::{AccumulatorState, decode_states, encode_states};
use crate::operators::grouping::{GroupKey, Grouping};
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::{StateBackend, StateWriteBatch};

/// A key's current state and the epoch (checkpoint interval) that last changed it.
#[derive(Clone)]
struct Cached {
    states: Vec<AccumulatorState>,
    epoch: u64,
}

type States = HashMap<GroupKey, Cached, ahash::RandomState>;

pub struct UpdatingAggregate {
    grouping: Grouping,
    /// The current state of hot keys (newer than the backend's copy, if any).
    cache: Arc<States>,
    cache_limit: usize,
    backend: Box<dyn StateBackend>,
    /// Stamped on the keys changed now; a barrier starts the next epoch.
    epoch: u64,
    /// Keys changed in this epoch or earlier are in the backend (or on their way, on the
    /// checkpoint's thread): entries of a later epoch are the only ones a flush must write.
    flushed: u64,
}

impl UpdatingAggregate {
    pub fn new(
        spec: &AggregateSpec,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
        backend: Box<dyn StateBackend>,
        cache_limit: usize,
    ) -> Result<Self> {
        Ok(UpdatingAggregate {
            grouping: Grouping::new(spec, &input_schema, output_schema)?,
            cache: Arc::default(),
            cache_limit: cache_limit.max(1),
            backend,
            epoch: 1,
            flushed: 0,
        })
    }

    /// Writes the changed keys to the backend and empties the cache.
    fn spill(&mut self) -> Result<()> {
        let cache = std::mem::take(&mut self.cache);
        self.backend.ingest(changed_since(&cache, self.flushed))
    }
}

/// The entries of keys changed after epoch `flushed`, as backend puts.
fn changed_since(cache: &States, flushed: u64) -> StateWriteBatch {
    cache
        .iter()
        .filter(|(_, cached)| cached.epoch > flushed)
        .map(|(key, cached)| {
            let mut value = Vec::new();
            encode_states(&cached.states, &mut value);
            (key.to_vec(), value)
        })
        .collect()
}

impl Operator for UpdatingAggregate {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let buckets = vec![Some(0); batch.num_rows()];
        let pre = self.grouping.pre_aggregate(&batch, &buckets)?;
        let mut changed = Vec::with_capacity(pre.groups.len());
        // Copies the cache once if a checkpoint's thread still holds it.
        let cache = Arc::make_mut(&mut self.cache);
        for ((_, key), states) in pre.groups.into_iter().zip(pre.states) {
            if !cache.contains_key(&key) {
                let stored = match self.backend.get(&key)? {
                    Some(bytes) => decode_states(&bytes)?,
                    None => self.grouping.init_states(),
                };
                cache.insert(
                    key.clone(),
                    Cached {
                        states: stored,
                        epoch: self.epoch,
                    },
                );
            }
            if let Some(current) = cache.get_mut(&key) {
                self.grouping.merge_states(&mut current.states, &states);
                current.epoch = self.epoch;
            }
            changed.push(key);
        }
        if !changed.is_empty() {
            let keys: Vec<&GroupKey> = changed.iter().collect();
            let states: Vec<&[AccumulatorState]> = changed
                .iter()
                .filter_map(|k| self.cache.get(k).map(|c| c.states.as_slice()))
                .collect();
            out.push(Message::Data(self.grouping.output(&keys, None, &states)?));
        }
        if self.cache.len() > self.cache_limit {
            self.spill()?;
        }
        Ok(())
    }

    /// The synchronous part: a reference to the cache and the start of a new epoch. The backend's
    /// checkpoint thread writes the keys changed in the epoch that ended into the backend, then
    /// takes its hard-link checkpoint, which therefore holds the whole state.
    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        let frozen = self.cache.clone();
        let flushed = self.flushed;
        let changes = Box::new(move || changed_since(&frozen, flushed));
        let files = vec![self.backend.checkpoint(dir, Some(changes))?];
        self.flushed = self.epoch;
        self.epoch += 1;
        Ok(Some(OperatorSnapshot {
            dir: dir.to_path_buf(),
            files,
            meta: serde_json::Value::Null,
        }))
    }
}
