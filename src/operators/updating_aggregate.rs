//! `UpdatingAggregate`: GROUP BY without a window. Each batch is pre-aggregated in memory and folded
//! into the per-key state; the new value of every key the batch touched is emitted as an upsert.
//! Hot keys stay in a cache; when it outgrows its limit the cache is written to the state backend
//! as one ingested file, and a key missing from the cache is read back from the backend once. A
//! checkpoint shares the cache with a thread that writes it as the snapshot's cache image
//! (copy-on-write), so the task only waits for RocksDB's hard-link checkpoint.

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
use crate::state::StateBackend;
use crate::state::pending_files::PendingFiles;

type States = HashMap<GroupKey, Vec<AccumulatorState>, ahash::RandomState>;

pub struct UpdatingAggregate {
    grouping: Grouping,
    /// The current state of hot keys (newer than the backend's copy, if any).
    cache: Arc<States>,
    cache_limit: usize,
    backend: Box<dyn StateBackend>,
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
        })
    }

    /// Writes the cache to the backend (newer values replace older ones) and empties it.
    fn spill(&mut self) -> Result<()> {
        let cache = std::mem::take(&mut self.cache);
        self.backend.ingest(cache_entries(&cache).into_iter().collect())
    }
}

fn cache_entries(cache: &States) -> Vec<(Vec<u8>, Vec<u8>)> {
    cache
        .iter()
        .map(|(key, states)| {
            let mut value = Vec::new();
            encode_states(states, &mut value);
            (key.to_vec(), value)
        })
        .collect()
}

impl Operator for UpdatingAggregate {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let buckets = vec![Some(0); batch.num_rows()];
        let pre = self.grouping.pre_aggregate(&batch, &buckets)?;
        let mut changed = Vec::with_capacity(pre.groups.len());
        // Copies the cache once if a checkpoint's snapshot writer still holds it.
        let cache = Arc::make_mut(&mut self.cache);
        for ((_, key), states) in pre.groups.into_iter().zip(pre.states) {
            if !cache.contains_key(&key) {
                let stored = match self.backend.get(&key)? {
                    Some(bytes) => decode_states(&bytes)?,
                    None => self.grouping.init_states(),
                };
                cache.insert(key.clone(), stored);
            }
            if let Some(current) = cache.get_mut(&key) {
                self.grouping.merge_states(current, &states);
            }
            changed.push(key);
        }
        if !changed.is_empty() {
            let keys: Vec<&GroupKey> = changed.iter().collect();
            let states: Vec<&[AccumulatorState]> = changed.iter().filter_map(|k| self.cache.get(k).map(|s| s.as_slice())).collect();
            out.push(Message::Data(self.grouping.output(&keys, None, &states)?));
        }
        if self.cache.len() > self.cache_limit {
            self.spill()?;
        }
        Ok(())
    }

    /// The synchronous part: the backend's hard-link checkpoint and a reference to the cache; a
    /// thread writes the cache image, which a restore loads over the backend's older values.
    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        let mut files = vec![self.backend.checkpoint(dir)?];
        if !self.cache.is_empty() {
            let frozen = self.cache.clone();
            files.push(PendingFiles::cache_image(dir, move || cache_entries(&frozen))?);
        }
        Ok(Some(OperatorSnapshot {
            dir: dir.to_path_buf(),
            files,
            meta: serde_json::Value::Null,
        }))
    }
}
