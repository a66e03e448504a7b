//! The `hashmap` state backend: an ordered in-memory map, for small state.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::pending_files::PendingFiles;
use super::{StateBackend, StateFlush, StateOp, StateWriteBatch};
use crate::error::{Error, Result};

/// The one file of a memory backend snapshot: length-prefixed key/value pairs.
const SNAPSHOT_FILE: &str = "state.bin";

#[derive(Debug, Default)]
pub struct MemoryBackend {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Key and value bytes of `entries`.
    bytes: u64,
}

impl MemoryBackend {
    pub fn restore(files: &[(PathBuf, String)]) -> Result<Self> {
        let (file, _) = files
            .iter()
            .find(|(_, name)| name == SNAPSHOT_FILE)
            .ok_or_else(|| Error::internal("hashmap state snapshot has no state.bin"))?;
        let bytes = std::fs::read(file)?;
        let corrupt = || Error::internal(format!("hashmap state snapshot {} is corrupt", file.display()));
        let mut entries = BTreeMap::new();
        let mut rest = bytes.as_slice();
        let take = |rest: &mut &[u8]| -> Result<Vec<u8>> {
            let len = u32::from_le_bytes(rest.get(..4).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?) as usize;
            let value = rest.get(4..4 + len).ok_or_else(corrupt)?.to_vec();
            *rest = &rest[4 + len..];
            Ok(value)
        };
        let mut bytes = 0;
        while !rest.is_empty() {
            let key = take(&mut rest)?;
            let value = take(&mut rest)?;
            bytes += entry_bytes(&key, &value);
            entries.insert(key, value);
        }
        Ok(MemoryBackend { entries, bytes })
    }
}

impl StateBackend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.entries.get(key).cloned())
    }

    fn write(&mut self, batch: StateWriteBatch) -> Result<()> {
        for op in batch.ops {
            match op {
                StateOp::Put(k, v) => {
                    let added = entry_bytes(&k, &v);
                    let key_len = k.len() as u64;
                    if let Some(old) = self.entries.insert(k, v) {
                        self.bytes -= key_len + old.len() as u64;
                    }
                    self.bytes += added;
                }
                StateOp::Delete(k) => self.remove(&k),
                StateOp::DeleteRange(start, end) if start < end => {
                    let doomed: Vec<Vec<u8>> = self.entries.range(start..end).map(|(k, _)| k.clone()).collect();
                    for key in doomed {
                        self.remove(&key);
                    }
                }
                StateOp::DeleteRange(..) => {}
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

    fn ingest(&mut self, batch: StateWriteBatch) -> Result<()> {
        self.write(batch)
    }

    fn checkpoint(&mut self, dir: &Path, flush: Option<StateFlush>) -> Result<PendingFiles> {
        if let Some(flush) = flush {
            self.write(flush())?;
        }
        std::fs::create_dir_all(dir)?;
        let path = dir.join(SNAPSHOT_FILE);
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for (k, v) in &self.entries {
            out.write_all(&(k.len() as u32).to_le_bytes())?;
            out.write_all(k)?;
            out.write_all(&(v.len() as u32).to_le_bytes())?;
            out.write_all(v)?;
        }
        out.into_inner()
            .map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))?
            .sync_all()?;
        Ok(PendingFiles::written(vec![path]))
    }

    fn estimated_bytes(&self) -> u64 {
        self.bytes
    }
}

impl MemoryBackend {
    fn remove(&mut self, key: &[u8]) {
        if let Some(value) = self.entries.remove(key) {
            self.bytes -= entry_bytes(key, &value);
        }
    }
}

fn entry_bytes(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ops: impl FnOnce(&mut StateWriteBatch)) -> StateWriteBatch {
        let mut batch = StateWriteBatch::default();
        ops(&mut batch);
        batch
    }

    #[test]
    fn estimated_bytes_follow_puts_overwrites_and_deletes() {
        let mut backend = MemoryBackend::default();
        backend
            .write(batch(|b| {
                b.put(b"a1".to_vec(), vec![0; 10]);
                b.put(b"a2".to_vec(), vec![0; 20]);
                b.put(b"b1".to_vec(), vec![0; 30]);
            }))
            .expect("write");
        assert_eq!(backend.estimated_bytes(), 66);
        backend.write(batch(|b| b.put(b"a1".to_vec(), vec![0; 4]))).expect("overwrite");
        assert_eq!(backend.estimated_bytes(), 60);
        backend
            .write(batch(|b| {
                b.delete(b"b1".to_vec());
                b.delete(b"missing".to_vec());
            }))
            .expect("delete");
        assert_eq!(backend.estimated_bytes(), 28);
        let dir = tempfile::tempdir().expect("dir");
        let files = backend.checkpoint(dir.path(), None).expect("checkpoint").wait().expect("files");
        backend
            .write(batch(|b| b.delete_range(b"a".to_vec(), b"b".to_vec())))
            .expect("delete range");
        assert_eq!(backend.estimated_bytes(), 0);
        let named: Vec<(PathBuf, String)> = files.into_iter().map(|f| (f.clone(), SNAPSHOT_FILE.to_string())).collect();
        assert_eq!(MemoryBackend::restore(&named).expect("restore").estimated_bytes(), 28);
    }
}
