//! `UpdatingAggregate`: GROUP BY without a window. Each batch is pre-aggregated in memory and folded
//! into the per-key state; the new value of every key the batch touched is emitted as an upsert.
//! Hot keys stay in a cache; when it outgrows its limit the cache is written to the state backend
//! in one batch, and a key missing from the cache is read back from the backend once.

use std::collections::HashMap;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::graph::AggregateSpec;
use crate::message::Message;
use crate::operators::accumulator::{AccumulatorState, decode_states, encode_states};
use crate::operators::grouping::{GroupKey, Grouping};
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::{StateBackend, StateWriteBatch};

pub struct UpdatingAggregate {
    grouping: Grouping,
    cache: HashMap<GroupKey, Vec<AccumulatorState>>,
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
            cache: HashMap::new(),
            cache_limit: cache_limit.max(1),
            backend,
        })
    }

    fn spill(&mut self) -> Result<()> {
        let mut batch = StateWriteBatch::default();
        for (key, states) in self.cache.drain() {
            let mut value = Vec::new();
            encode_states(&states, &mut value);
            batch.put(key.into_vec(), value);
        }
        self.backend.write(batch)
    }
}

impl Operator for UpdatingAggregate {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let buckets = vec![Some(0); batch.num_rows()];
        let pre = self.grouping.pre_aggregate(&batch, &buckets)?;
        let mut changed = Vec::with_capacity(pre.groups.len());
        for ((_, key), states) in pre.groups.into_iter().zip(pre.states) {
            if !self.cache.contains_key(&key) {
                let stored = match self.backend.get(&key)? {
                    Some(bytes) => decode_states(&bytes)?,
                    None => self.grouping.init_states(),
                };
                self.cache.insert(key.clone(), stored);
            }
            if let Some(current) = self.cache.get_mut(&key) {
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

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        if !self.cache.is_empty() {
            self.spill()?;
        }
        Ok(Some(OperatorSnapshot {
            files: self.backend.checkpoint(dir)?,
            pending: Vec::new(),
            meta: serde_json::Value::Null,
        }))
    }
}
