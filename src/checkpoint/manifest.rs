//! `CheckpointManifest`: the `_metadata` of a checkpoint. Written last and atomically (temp file,
//! fsync, rename), with a CRC-32 of its body on the first line, so a torn or corrupted manifest is
//! never mistaken for a complete checkpoint.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A file of a checkpoint, relative to the job's checkpoint directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileRef {
    pub path: String,
    /// The file's name in the state directory it was taken from (RocksDB finds SSTs by name).
    pub name: String,
    pub size: u64,
    pub crc32: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorState {
    pub uid: String,
    pub subtask: usize,
    /// `rocksdb` or `hashmap`.
    pub backend: String,
    pub files: Vec<FileRef>,
    pub meta: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceState {
    pub uid: String,
    pub subtask: usize,
    pub position: serde_json::Value,
}

/// Rows a sink subtask staged in the checkpoint's epoch; committed when the checkpoint completes.
/// A subtask has several entries when the checkpoint also commits the epochs of checkpoints that
/// failed before it: those come first, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SinkState {
    pub uid: String,
    pub subtask: usize,
    /// Arrow IPC file of the staged rows; `None` when nothing was staged.
    pub staged: Option<FileRef>,
}

/// The in-flight records of an unaligned checkpoint at one input: what the subtask of `uid` (the
/// operator reading a task's input channels) read after its snapshot and before each channel's
/// barrier. A restore replays them before any new input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InFlightState {
    pub uid: String,
    pub subtask: usize,
    /// Arrow IPC file of the records.
    pub file: FileRef,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointManifest {
    pub job: String,
    pub checkpoint_id: u64,
    /// The job's `INSERT INTO ... SELECT ...`.
    pub job_sql: String,
    pub operator_uids: Vec<String>,
    pub parallelism: usize,
    pub sources: Vec<SourceState>,
    pub operators: Vec<OperatorState>,
    pub sinks: Vec<SinkState>,
    #[serde(default)]
    pub in_flight: Vec<InFlightState>,
    /// Whether some task took its snapshot without waiting for every channel's barrier.
    #[serde(default)]
    pub unaligned: bool,
    /// The longest time a task took from the first news of the checkpoint to its snapshot.
    #[serde(default)]
    pub alignment_ms: u64,
    /// Epoch milliseconds when the checkpoint was triggered.
    pub trigger_time_ms: i64,
    pub sync_ms: u64,
    pub async_ms: u64,
    /// Bytes written for this checkpoint (new shared files and private files).
    pub bytes_uploaded: u64,
    /// Bytes of every file the checkpoint references.
    pub full_size: u64,
    pub incremental: bool,
}

impl CheckpointManifest {
    pub fn files(&self) -> impl Iterator<Item = &FileRef> {
        self.operators
            .iter()
            .flat_map(|o| o.files.iter())
            .chain(self.sinks.iter().filter_map(|s| s.staged.as_ref()))
            .chain(self.in_flight.iter().map(|s| &s.file))
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let body = serde_json::to_vec_pretty(self)?;
        let mut out = format!("crc32={:08x}\n", crc32fast::hash(&body)).into_bytes();
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let corrupt = |why: &str| Error::internal(format!("checkpoint metadata {} is damaged ({why})", path.display()));
        let newline = bytes.iter().position(|b| *b == b'\n').ok_or_else(|| corrupt("no checksum line"))?;
        let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| corrupt("bad checksum line"))?;
        let expected = header
            .strip_prefix("crc32=")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| corrupt("bad checksum line"))?;
        let body = &bytes[newline + 1..];
        if crc32fast::hash(body) != expected {
            return Err(corrupt("checksum mismatch"));
        }
        serde_json::from_slice(body).map_err(|e| corrupt(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_corruption_and_truncation() {
        let manifest = CheckpointManifest {
            job: "j".into(),
            checkpoint_id: 3,
            job_sql: "INSERT INTO t SELECT 1".into(),
            operator_uids: vec!["source-0".into()],
            parallelism: 1,
            sources: vec![SourceState {
                uid: "source-0".into(),
                subtask: 0,
                position: serde_json::json!(42),
            }],
            operators: vec![],
            sinks: vec![],
            in_flight: vec![],
            unaligned: false,
            alignment_ms: 0,
            trigger_time_ms: 0,
            sync_ms: 1,
            async_ms: 2,
            bytes_uploaded: 0,
            full_size: 0,
            incremental: true,
        };
        let bytes = manifest.to_bytes().unwrap();
        let path = Path::new("_metadata");
        assert_eq!(CheckpointManifest::from_bytes(&bytes, path).unwrap().checkpoint_id, 3);
        assert!(CheckpointManifest::from_bytes(&bytes[..bytes.len() - 3], path).is_err());
        let mut flipped = bytes.clone();
        let last = flipped.len() - 5;
        flipped[last] ^= 1;
        assert!(CheckpointManifest::from_bytes(&flipped, path).is_err());
    }
}
