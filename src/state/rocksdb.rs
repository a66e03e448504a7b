//! The `rocksdb` state backend (default): one RocksDB instance per operator subtask. The WAL is off:
//! durability comes from checkpoints, not from RocksDB's log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use rocksdb::{DB, Direction, IngestExternalFileOptions, IteratorMode, Options, SstFileWriter, WriteBatch, WriteOptions};

use super::pending_files::PendingFiles;
use super::{StateBackend, StateOp, StateWriteBatch};
use crate::error::{Error, Result};

pub struct RocksDbBackend {
    db: Arc<DB>,
    dir: PathBuf,
    options: Options,
    write_options: WriteOptions,
    /// Files ingested so far (names the next one).
    ingested: u64,
    /// Signalled once the hard links of the checkpoint in progress exist: until then the state
    /// must not change (the checkpoint is of the state at the barrier).
    linking: Option<Receiver<()>>,
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

    /// Waits until the checkpoint in progress (if any) has linked its files.
    fn settle(&mut self) {
        if let Some(linked) = self.linking.take() {
            let waiting = std::time::Instant::now();
            // An error means the thread is gone, which is as good as done.
            let _ = linked.recv();
            tracing::debug!("state change waited {:?} for a checkpoint's hard links", waiting.elapsed());
        }
    }
}

impl StateBackend for RocksDbBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?)
    }

    fn write(&mut self, batch: StateWriteBatch) -> Result<()> {
        self.settle();
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
        if batch.is_empty() {
            return Ok(());
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
        self.ingested += 1;
        let path = self.dir.join(format!("ingest-{}.sst", self.ingested));
        let mut writer = SstFileWriter::create(&self.options);
        writer.open(&path)?;
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
        drop(writer);
        self.settle();
        let mut ingest = IngestExternalFileOptions::default();
        // The file is ours: RocksDB takes it over by a hard link instead of a copy.
        ingest.set_move_files(true);
        self.db.ingest_external_file_opts(&ingest, vec![&path])?;
        // With move_files the DB holds its own link; ours may already be gone.
        let _ = std::fs::remove_file(&path);
        Ok(())
    }

    fn checkpoint(&mut self, dir: &Path) -> Result<PendingFiles> {
        self.settle();
        if dir.exists() {
            // Left by an attempt that failed before the coordinator took it.
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        let db = self.db.clone();
        // RocksDB creates the checkpoint directory itself.
        let native = dir.join("native");
        let (linked_tx, linked_rx) = std::sync::mpsc::channel();
        self.linking = Some(linked_rx);
        PendingFiles::spawn(move || {
            let linked = (|| -> Result<()> {
                // The WAL is off, so anything in the memtable must be in SST files first.
                db.flush()?;
                rocksdb::checkpoint::Checkpoint::new(&db)?.create_checkpoint(&native)?;
                Ok(())
            })();
            drop(db);
            // The task may change the state again (on failure too: this checkpoint is lost anyway).
            let _ = linked_tx.send(());
            linked?;
            super::list_files(&native)
        })
    }
}

impl Drop for RocksDbBackend {
    /// The next attempt reuses the directory: the checkpoint thread must be done with the instance.
    fn drop(&mut self) {
        self.settle();
    }
}
