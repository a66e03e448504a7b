//! `PendingFiles`: the files of one snapshot piece, possibly still being written on a thread of
//! their own. The synchronous part of a checkpoint only freezes the state (clones `Arc`s, pins the
//! backend's files); writing it out happens here while the task goes on, and the coordinator waits
//! for it before uploading.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct PendingFiles(Progress);

#[derive(Debug)]
enum Progress {
    Written(Vec<PathBuf>),
    Writing(JoinHandle<Result<Vec<PathBuf>>>),
}

impl PendingFiles {
    /// Files already on disk.
    pub fn written(files: Vec<PathBuf>) -> Self {
        PendingFiles(Progress::Written(files))
    }

    /// Files `write` produces on a new thread.
    pub fn spawn(write: impl FnOnce() -> Result<Vec<PathBuf>> + Send + 'static) -> Result<Self> {
        let handle = std::thread::Builder::new().name("weir-snapshot".into()).spawn(write)?;
        Ok(PendingFiles(Progress::Writing(handle)))
    }

    /// Writes the state entries `entries` computes (on the writer thread) as the snapshot's cache
    /// image in `dir`, which a restore loads into the backend.
    pub fn cache_image(dir: &Path, entries: impl FnOnce() -> Vec<(Vec<u8>, Vec<u8>)> + Send + 'static) -> Result<Self> {
        let path = dir.join(super::canonical::CACHE_IMAGE_FILE);
        Self::spawn(move || {
            super::canonical::write_entries(&path, &entries())?;
            Ok(vec![path])
        })
    }

    /// Blocks until the files are written.
    pub fn wait(self) -> Result<Vec<PathBuf>> {
        match self.0 {
            Progress::Written(files) => Ok(files),
            Progress::Writing(handle) => handle.join().map_err(|_| Error::internal("a snapshot writer thread panicked"))?,
        }
    }
}
