//! The `rocksdb` state backend (default): one RocksDB instance per operator subtask. The WAL is off:
//! durability comes from checkpoints, not from RocksDB's log.

use std::path::{Path, PathBuf};

use rocksdb::{DB, Direction, IngestExternalFileOptions, IteratorMode, Options, SstFileWriter, WriteBatch, WriteOptions};

use super::{StateBackend, StateOp, StateWriteBatch};
use crate::error::{Error, Result};

pub struct RocksDbBackend {
    db: DB,
    dir: PathBuf,
    options: Options,
    write_options: WriteOptions,
    /// Files ingested so far (names the next one).
    ingested: u64,
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
        let db = DB::open(&options, dir)?;
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        Ok(RocksDbBackend {
            db,
            dir: dir.to_path_buf(),
            options,
            write_options,
            ingested: 0,
        })
    }
}

impl StateBackend for RocksDbBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?)
    }

    fn write(&mut self, batch: StateWriteBatch) -> Result<()> {
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
        let mut ingest = IngestExternalFileOptions::default();
        // The file is ours: RocksDB takes it over by a hard link instead of a copy.
        ingest.set_move_files(true);
        self.db.ingest_external_file_opts(&ingest, vec![&path])?;
        // With move_files the DB holds its own link; ours may already be gone.
        let _ = std::fs::remove_file(&path);
        Ok(())
    }

    fn checkpoint(&mut self, dir: &Path) -> Result<Vec<PathBuf>> {
        // The WAL is off, so everything must be in SST files first.
        self.db.flush()?;
        if dir.exists() {
            // Left by an attempt that failed before the coordinator took it.
            std::fs::remove_dir_all(dir)?;
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        super::list_files(dir)
    }
}
