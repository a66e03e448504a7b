//! The `hashmap` state backend: an ordered in-memory map, for small state.

use std::collections::BTreeMap;

use super::{StateBackend, StateOp, StateWriteBatch};
use crate::error::Result;

#[derive(Debug, Default)]
pub struct MemoryBackend {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl StateBackend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.entries.get(key).cloned())
    }

    fn write(&mut self, batch: StateWriteBatch) -> Result<()> {
        for op in batch.ops {
            match op {
                StateOp::Put(k, v) => {
                    self.entries.insert(k, v);
                }
                StateOp::Delete(k) => {
                    self.entries.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self
            .entries
            .range(start.to_vec()..end.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
