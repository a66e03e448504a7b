//! The `rocksdb` state backend (default): one RocksDB instance per operator subtask. The WAL is off:
//! durability comes from checkpoints, not from RocksDB's log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use rocksdb::{
    BlockBasedOptions, DB, Direction, IngestExternalFileOptions, IteratorMode, Options, SstFileWriter, WriteBatch, WriteOptions,
};

use super::pending_files::PendingFiles;
use super::{StateBackend, StateFlush, StateOp, StateWriteBatch};
use crate::error::{Error, Result};

pub struct RocksDbBackend {
    db: Arc<DB>,
    dir: PathBuf,
    options: Options,
    write_options: WriteOptions,
    /// Files ingested so far (names the next one).
    ingested: u64,
    /// Signalled once the hard links of the checkpoint in progress exist: until then the state
    /// must not change (the checkpoint is of the state at the barrier). Carries the thread's error:
    /// a flush it could not write is missing from the live state too, so the task must fail over.
    linking: Option<Receiver<std::result::Result<(), String>>>,
}

impl RocksDbBackend {
    /// Opens an empty instance in `dir`, removing whatever an earlier run left there.
    pub fn open_fresh(dir: &Path) -> Result<Self> {
        Self::clear(dir)?;
        Self::open(dir)
    }

    /// Opens an instance made of a checkpoint's files (copied into `dir`, replacing what was there).
    pub fn restore(files: &[(PathBuf, String)], dir: &Path) -> Result<Self> {
        Self::clear(dir)?;
        for (file, name) in files {
            // Hard links when the checkpoint is on the same file system; SST files are immutable.
            if std::fs::hard_link(file, dir.join(name)).is_err() {
                std::fs::copy(file, dir.join(name))?;
            }
        }
        Self::open(dir)
    }

    fn clear(dir: &Path) -> Result<()> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::internal(format!("cannot clear state directory {}: {e}", dir.display())))?;
        }
        Ok(std::fs::create_dir_all(dir)?)
    }

    fn open(dir: &Path) -> Result<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Universal compaction merges the newest sorted runs and leaves big old ones alone, where
        // leveled compaction rewrites every L1 file a new (key-group-spanning) L0 file overlaps: the
        // files a checkpoint shares with the previous one are what makes it incremental.
        options.set_compaction_style(rocksdb::DBCompactionStyle::Universal);
        // Spills and checkpoint flushes arrive as runs of similar size. Merging a run only with
        // runs of its own size, eight at a time, rewrites each byte about log8(runs) times instead
        // of log2(runs): fewer new files for the next incremental checkpoint to upload, for a few
        // more bloom-filter probes per point read.
        options.set_level_zero_file_num_compaction_trigger(8);
        // A join probes the other side's key for every row, and on a nearly unique key (Nexmark
        // q7's price) most probes find nothing. Without a filter each such miss searches a data
        // block of every sorted run (two thirds of q7's CPU); a whole-key bloom filter (10 bits per
        // key, ~1 % false positives) answers it from memory. Spills and flushes are written by
        // `SstFileWriter` with these options, so ingested files carry the filter too.
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        options.set_block_based_table_factory(&table);
        let db = Arc::new(DB::open(&options, dir)?);
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        Ok(RocksDbBackend {
            db,
            dir: dir.to_path_buf(),
            options,
            write_options,
            ingested: 0,
            linking: None,
        })
    }

    /// Where the next file to ingest is written.
    fn next_ingest_path(&mut self) -> PathBuf {
        self.ingested += 1;
        self.dir.join(format!("ingest-{}.sst", self.ingested))
    }

    /// Waits until the checkpoint in progress (if any) has linked its files.
    fn settle(&mut self) -> Result<()> {
        let Some(linked) = self.linking.take() else { return Ok(()) };
        let waiting = std::time::Instant::now();
        let outcome = linked.recv();
        tracing::debug!("state change waited {:?} for a checkpoint's hard links", waiting.elapsed());
        match outcome {
            Ok(Err(e)) => Err(Error::internal(format!("a checkpoint could not write the operator's state: {e}"))),
            // A closed channel means the thread panicked before writing anything.
            Err(_) => Err(Error::internal("a checkpoint thread stopped before writing the operator's state")),
            Ok(Ok(())) => Ok(()),
        }
    }
}

impl StateBackend for RocksDbBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?)
    }

    fn write(&mut self, batch: StateWriteBatch) -> Result<()> {
        self.settle()?;
        let mut wb = WriteBatch::default();
        for op in batch.ops {
            match op {
                StateOp::Put(k, v) => wb.put(k, v),
                StateOp::Delete(k) => wb.delete(k),
                StateOp::DeleteRange(start, end) => wb.delete_range(start, end),
            }
        }
        Ok(self.db.write_opt(wb, &self.write_options)?)
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.db.iterator(IteratorMode::From(start, Direction::Forward)) {
            let (k, v) = item?;
            if k.as_ref() >= end {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn ingest(&mut self, batch: StateWriteBatch) -> Result<()> {
        let path = self.next_ingest_path();
        if write_sst(&self.options, &path, batch)? {
            self.settle()?;
            ingest_sst(&self.db, &path)?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, dir: &Path, flush: Option<StateFlush>) -> Result<PendingFiles> {
        self.settle()?;
        let db = self.db.clone();
        let options = self.options.clone();
        let flush_path = self.next_ingest_path();
        let dir = dir.to_path_buf();
        // RocksDB creates the checkpoint directory itself.
        let native = dir.join("native");
        let (linked_tx, linked_rx) = std::sync::mpsc::channel();
        self.linking = Some(linked_rx);
        PendingFiles::spawn(move || {
            let linked = (|| -> Result<()> {
                // Even a directory costs milliseconds on a busy disk: made here, not in the task.
                std::fs::create_dir_all(&dir)?;
                if let Some(flush) = flush
                    && write_sst(&options, &flush_path, flush())?
                {
                    ingest_sst(&db, &flush_path)?;
                }
                // The WAL is off, so anything in the memtable must be in SST files first.
                db.flush()?;
                rocksdb::checkpoint::Checkpoint::new(&db)?.create_checkpoint(&native)?;
                Ok(())
            })();
            drop(db);
            // The task may change the state again.
            let _ = linked_tx.send(linked.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            linked?;
            super::list_files(&native)
        })
    }

    fn estimated_bytes(&self) -> u64 {
        // Cheap: RocksDB keeps both figures; it does not read any file for them.
        let property = |name: &str| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        property("rocksdb.estimate-live-data-size") + property("rocksdb.cur-size-all-mem-tables")
    }
}

/// Writes `batch` as an SST file at `path`; false (and no file) when it is empty.
fn write_sst(options: &Options, path: &Path, batch: StateWriteBatch) -> Result<bool> {
    if batch.is_empty() {
        return Ok(false);
    }
    let mut points = Vec::new();
    let mut ranges = Vec::new();
    for op in batch.ops {
        match op {
            StateOp::Put(key, value) => points.push((key, Some(value))),
            StateOp::Delete(key) => points.push((key, None)),
            StateOp::DeleteRange(start, end) => ranges.push((start, end)),
        }
    }
    // An SST file holds its keys in order.
    points.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut writer = SstFileWriter::create(options);
    writer.open(path)?;
    for (key, value) in &points {
        match value {
            Some(value) => writer.put(key, value)?,
            None => writer.delete(key)?,
        }
    }
    for (start, end) in &ranges {
        writer.delete_range(start, end)?;
    }
    writer.finish()?;
    Ok(true)
}

/// Ingests the SST file at `path` (RocksDB takes it over).
fn ingest_sst(db: &DB, path: &Path) -> Result<()> {
    let mut ingest = IngestExternalFileOptions::default();
    // The file is ours: RocksDB takes it over by a hard link instead of a copy.
    ingest.set_move_files(true);
    db.ingest_external_file_opts(&ingest, vec![path])?;
    // With move_files the DB holds its own link; ours may already be gone.
    let _ = std::fs::remove_file(path);
    Ok(())
}

impl Drop for RocksDbBackend {
    /// The next attempt reuses the directory: the checkpoint thread must be done with the instance.
    fn drop(&mut self) {
        let _ = self.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn puts(entries: &[(&str, &str)]) -> StateWriteBatch {
        entries
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn value(backend: &dyn StateBackend, key: &str) -> Option<String> {
        backend.get(key.as_bytes()).unwrap().map(|v| String::from_utf8(v).unwrap())
    }

    /// The checkpoint thread flushes and links while the task goes on: the snapshot must hold the
    /// state at the call plus the flush, and none of the changes made right after it.
    #[test]
    fn checkpoint_holds_the_state_at_the_call_and_its_flush() {
        let tmp = tempfile::tempdir().unwrap();
        let mut backend = RocksDbBackend::open_fresh(&tmp.path().join("live")).unwrap();
        backend.ingest(puts(&[("a", "1"), ("b", "1")])).unwrap();
        backend.write(puts(&[("m", "memtable")])).unwrap();
        let flush: StateFlush = Box::new(|| puts(&[("b", "2"), ("c", "2")]));
        let pending = backend.checkpoint(&tmp.path().join("snapshot"), Some(flush)).unwrap();
        // Changes right after the barrier: held back until the links exist, then applied.
        backend.ingest(puts(&[("a", "3")])).unwrap();
        backend.write(puts(&[("d", "3")])).unwrap();
        let files = pending.wait().unwrap();
        assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "sst")));

        let named: Vec<(PathBuf, String)> = files
            .iter()
            .map(|f| (f.clone(), f.file_name().unwrap().to_string_lossy().into_owned()))
            .collect();
        let restored = RocksDbBackend::restore(&named, &tmp.path().join("restored")).unwrap();
        let at_barrier: Vec<Option<String>> = ["a", "b", "c", "d", "m"].iter().map(|k| value(&restored, k)).collect();
        assert_eq!(
            at_barrier,
            [Some("1"), Some("2"), Some("2"), None, Some("memtable")].map(|v| v.map(String::from))
        );
        let live: Vec<Option<String>> = ["a", "b", "c", "d"].iter().map(|k| value(&backend, k)).collect();
        assert_eq!(live, [Some("3"), Some("2"), Some("2"), Some("3")].map(|v| v.map(String::from)));
    }
}
