//! Keyed state: the `StateBackend` trait and its two implementations, and the key encoding all
//! stateful operators share. Operators keep hot state in memory and talk to the backend in batches
//! (DESIGN §4); the backend is where spilled state lives and what checkpoints snapshot.

pub mod canonical;
pub mod key;
pub mod memory;
pub mod pending_files;
pub mod rocksdb;

use std::path::{Path, PathBuf};

use crate::error::Result;
pub use crate::settings::StateBackendKind;
use pending_files::PendingFiles;

/// One change in a `StateWriteBatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// Every key in `[start, end)`.
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// Changes applied atomically, in order.
#[derive(Debug, Default)]
pub struct StateWriteBatch {
    pub ops: Vec<StateOp>,
}

/// A batch of puts.
impl FromIterator<(Vec<u8>, Vec<u8>)> for StateWriteBatch {
    fn from_iter<I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>>(puts: I) -> Self {
        StateWriteBatch {
            ops: puts.into_iter().map(|(key, value)| StateOp::Put(key, value)).collect(),
        }
    }
}

impl StateWriteBatch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(StateOp::Put(key, value));
    }
    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.push(StateOp::Delete(key));
    }
    pub fn delete_range(&mut self, start: Vec<u8>, end: Vec<u8>) {
        self.ops.push(StateOp::DeleteRange(start, end));
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Changes to write at a checkpoint, computed on the checkpoint's thread from a frozen copy.
pub type StateFlush = Box<dyn FnOnce() -> StateWriteBatch + Send>;

/// The state store of one stateful operator subtask. Keys are byte strings ordered bytewise; every
/// key starts with its key group (see `key`), so a subtask's state is a set of contiguous ranges.
pub trait StateBackend: Send {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn write(&mut self, batch: StateWriteBatch) -> Result<()>;
    /// All entries with `start <= key < end`, in key order.
    fn scan(&self, start: &[u8], end: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Applies changes in bulk, bypassing RocksDB's memtable: they are written as one SST file and
    /// ingested, so a checkpoint has nothing of them to flush. Each key is put or deleted at most
    /// once, and no range deletion covers a key the batch puts (inside one file they would be
    /// unordered).
    fn ingest(&mut self, batch: StateWriteBatch) -> Result<()>;
    /// Writes a consistent copy of the whole state as of now into the directory `dir` (the caller
    /// may write files of its own there), after applying `flush`: changes the operator kept in
    /// memory, computed and written on the checkpoint's thread (ingested, like `ingest`). RocksDB
    /// does all of it on a thread and holds back the next change until its hard-link checkpoint
    /// exists, so the caller's synchronous part pays for none of it; the caller uploads the files.
    fn checkpoint(&mut self, dir: &Path, flush: Option<StateFlush>) -> Result<PendingFiles>;
    /// Bytes the state takes now, estimated (RocksDB: its live data in SST files and memtables).
    fn estimated_bytes(&self) -> u64;
}

/// The files of a directory, sorted by name.
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Opening backends of a kind (the kind itself is a setting).
impl StateBackendKind {
    /// Opens an empty backend; `dir` is where a RocksDB instance keeps its files.
    pub fn open(self, dir: &Path) -> Result<Box<dyn StateBackend>> {
        match self {
            StateBackendKind::RocksDb => Ok(Box::new(rocksdb::RocksDbBackend::open_fresh(dir)?)),
            StateBackendKind::HashMap => Ok(Box::new(memory::MemoryBackend::default())),
        }
    }

    /// Opens a backend holding the state of a checkpoint whose files are `files` (where each is
    /// stored, and its name as `checkpoint` wrote it); `dir` is where a RocksDB instance keeps its files.
    /// A snapshot's cache image (`canonical::CACHE_IMAGE_FILE`) is loaded into the backend after it opened.
    pub fn restore(self, files: &[(PathBuf, String)], dir: &Path) -> Result<Box<dyn StateBackend>> {
        let (images, native): (Vec<_>, Vec<_>) = files.iter().cloned().partition(|(_, name)| name == canonical::CACHE_IMAGE_FILE);
        let mut backend: Box<dyn StateBackend> = match self {
            StateBackendKind::RocksDb => Box::new(rocksdb::RocksDbBackend::restore(&native, dir)?),
            StateBackendKind::HashMap => Box::new(memory::MemoryBackend::restore(&native)?),
        };
        let images: Vec<PathBuf> = images.into_iter().map(|(path, _)| path).collect();
        canonical::load(&images, |_| true, backend.as_mut())?;
        Ok(backend)
    }
}
