//! Savepoints: a completed checkpoint exported into a self-contained directory that can be moved.
//! **native** copies every file the checkpoint references; **canonical** rewrites each operator's
//! state as Arrow IPC rows (key group, key, value), which any state backend can load at any
//! parallelism. The directory holds `_metadata` (same format as a checkpoint's) and the files.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, BinaryArray, UInt16Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::record_batch::RecordBatch;

use crate::catalog::{SavepointFormat, write_atomically};
use crate::checkpoint::manifest::{CheckpointManifest, FileRef};
use crate::checkpoint::storage::{CheckpointStorage, file_crc, write_ipc_file};
use crate::error::{Error, Result};
use crate::state::{StateBackend, StateBackendKind, StateWriteBatch};

/// `backend` of an operator state in canonical format.
pub const CANONICAL: &str = "canonical";
const METADATA: &str = "_metadata";
const ROWS_PER_BATCH: usize = 8192;

fn copy_file(storage: &CheckpointStorage, file: &FileRef, dir: &Path) -> Result<FileRef> {
    let from = storage.verified(file)?;
    let to = dir.join(&file.path);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(&from, &to)?;
    Ok(file.clone())
}

fn canonical_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("key_group", DataType::UInt16, false),
        Field::new("key", DataType::Binary, false),
        Field::new("value", DataType::Binary, false),
    ]))
}

/// Exports checkpoint `manifest` of `storage` into `dir` (which must not exist yet).
/// Returns the savepoint's manifest and its size in bytes.
pub fn export(
    storage: &CheckpointStorage,
    manifest: &CheckpointManifest,
    dir: &Path,
    format: SavepointFormat,
) -> Result<(CheckpointManifest, u64)> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(Error::invalid(format!(
            "savepoint directory {} exists and is not empty",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)?;
    let mut exported = manifest.clone();
    for state in &mut exported.operators {
        match format {
            SavepointFormat::Native => {
                state.files = state.files.iter().map(|f| copy_file(storage, f, dir)).collect::<Result<_>>()?;
            }
            // Operators that keep only metadata (a watermark assigner) have no files to convert.
            SavepointFormat::Canonical if state.files.is_empty() => state.backend = CANONICAL.to_string(),
            SavepointFormat::Canonical => {
                let kind = StateBackendKind::parse(&state.backend)?;
                let files = state
                    .files
                    .iter()
                    .map(|f| Ok((storage.verified(f)?, f.name.clone())))
                    .collect::<Result<Vec<_>>>()?;
                let scratch = dir.join(format!(".scratch-{}-{}", state.uid, state.subtask));
                let backend = kind.restore(&files, &scratch)?;
                let name = format!("{}-{}.arrow", state.uid, state.subtask);
                let path = dir.join("state").join(&name);
                write_canonical(backend.as_ref(), &path)?;
                drop(backend);
                let _ = std::fs::remove_dir_all(&scratch);
                let (size, crc32) = file_crc(&path)?;
                state.files = vec![FileRef {
                    path: format!("state/{name}"),
                    name,
                    size,
                    crc32,
                }];
                state.backend = CANONICAL.to_string();
            }
        }
    }
    for sink in &mut exported.sinks {
        if let Some(file) = &sink.staged {
            sink.staged = Some(copy_file(storage, file, dir)?);
        }
    }
    exported.full_size = exported.files().map(|f| f.size).sum();
    exported.bytes_uploaded = exported.full_size;
    exported.incremental = false;
    write_atomically(&dir.join(METADATA), &exported.to_bytes()?)?;
    let size = exported.full_size;
    Ok((exported, size))
}

/// Every entry of a backend as (key group, key, value) rows.
fn write_canonical(backend: &dyn StateBackend, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let schema = canonical_schema();
    let entries = backend.scan(&[], &[0xff; 16])?;
    let batches = entries.chunks(ROWS_PER_BATCH).map(|chunk| {
        let groups = UInt16Array::from_iter_values(
            chunk
                .iter()
                .map(|(k, _)| u16::from_be_bytes([k.first().copied().unwrap_or(0), k.get(1).copied().unwrap_or(0)])),
        );
        let keys = BinaryArray::from_iter_values(chunk.iter().map(|(k, _)| k.as_slice()));
        let values = BinaryArray::from_iter_values(chunk.iter().map(|(_, v)| v.as_slice()));
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(groups), Arc::new(keys), Arc::new(values)],
        )?)
    });
    write_ipc_file(path, &schema, batches)
}

/// Loads the entries of canonical state files whose key group satisfies `keep` into `backend`.
pub fn load_canonical(files: &[PathBuf], keep: impl Fn(u16) -> bool, backend: &mut dyn StateBackend) -> Result<u64> {
    let mut loaded = 0;
    for path in files {
        let reader = FileReader::try_new(BufReader::new(File::open(path)?), None)?;
        for batch in reader {
            let batch = batch?;
            let bad = || Error::internal(format!("canonical state file {} is malformed", path.display()));
            let groups = batch.column(0).as_any().downcast_ref::<UInt16Array>().ok_or_else(bad)?;
            let keys = batch.column(1).as_any().downcast_ref::<BinaryArray>().ok_or_else(bad)?;
            let values = batch.column(2).as_any().downcast_ref::<BinaryArray>().ok_or_else(bad)?;
            let mut write = StateWriteBatch::default();
            for i in 0..batch.num_rows() {
                if keep(groups.value(i)) {
                    write.put(keys.value(i).to_vec(), values.value(i).to_vec());
                    loaded += 1;
                }
            }
            backend.write(write)?;
        }
    }
    Ok(loaded)
}

/// Reads a savepoint (or a retained checkpoint) directory: its manifest, and storage to resolve files.
pub fn open(path: &Path) -> Result<(CheckpointManifest, Arc<CheckpointStorage>)> {
    // A checkpoint directory `.../<job>/chk-<n>` resolves its files against the job directory.
    let (metadata, root) =
        if path.join(METADATA).exists() && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("chk-")) {
            (path.join(METADATA), path.parent().map(Path::to_path_buf).unwrap_or_default())
        } else {
            (path.join(METADATA), path.to_path_buf())
        };
    let bytes = std::fs::read(&metadata).map_err(|e| {
        Error::user(
            crate::error::UserErrorKind::ExternalData,
            format!("no savepoint or checkpoint at '{}': {e}", path.display()),
        )
    })?;
    let manifest =
        CheckpointManifest::from_bytes(&bytes, &metadata).map_err(|e| Error::user(crate::error::UserErrorKind::ExternalData, e))?;
    Ok((manifest, CheckpointStorage::new(root)))
}

/// Rows (keys) in canonical state files.
pub fn count_rows(files: &[PathBuf]) -> Result<u64> {
    let mut rows = 0;
    for path in files {
        for batch in FileReader::try_new(BufReader::new(File::open(path)?), None)? {
            rows += batch?.num_rows() as u64;
        }
    }
    Ok(rows)
}
