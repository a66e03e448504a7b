//! Savepoints: a completed checkpoint exported into a self-contained directory that can be moved.
//! **native** copies every file the checkpoint references; **canonical** rewrites each operator's
//! state as Arrow IPC rows (key group, key, value), which any state backend can load at any
//! parallelism. The directory holds `_metadata` (same format as a checkpoint's) and the files.

use std::path::Path;
use std::sync::Arc;

use crate::catalog::SavepointFormat;
use crate::checkpoint::manifest::{CheckpointManifest, FileRef};
use crate::checkpoint::storage::CheckpointStorage;
use crate::error::{Error, Result};
use crate::fs::file_crc;
use crate::fs::write_atomically;
use crate::state::{StateBackendKind, canonical};

/// `backend` of an operator state in canonical format.
pub const CANONICAL: &str = "canonical";
const METADATA: &str = "_metadata";

fn copy_file(storage: &CheckpointStorage, file: &FileRef, dir: &Path) -> Result<FileRef> {
    let from = storage.verified(file)?;
    let to = dir.join(&file.path);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(&from, &to)?;
    Ok(file.clone())
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
                canonical::write_backend(backend.as_ref(), &path)?;
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
