//! Savepoints: a completed checkpoint exported into a self-contained directory that can be moved.
//! **native** copies every file the checkpoint references; **canonical** rewrites each operator's
//! state as Arrow IPC rows (key group, key, value), which any state backend can load at any
//! parallelism. The directory holds `_metadata` (same format as a checkpoint's) and the files.
//! A savepoint bound for S3 is exported into a local scratch directory first, then uploaded with
//! `_metadata` last and create-only, so a savepoint with `_metadata` is always whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::SavepointFormat;
use crate::checkpoint::manifest::{CheckpointManifest, FileRef};
use crate::checkpoint::remote::RemoteDir;
use crate::checkpoint::storage::CheckpointStorage;
use crate::error::{Error, Result};
use crate::fs::file_crc;
use crate::fs::write_atomically;
use crate::settings::StorageLocation;
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

/// Exports checkpoint `manifest` of `storage` to `target` (which must be empty or not exist yet);
/// one on S3 is assembled in `scratch` (a local directory, removed afterwards) and uploaded.
/// Returns the savepoint's manifest and its size in bytes.
pub fn export(
    storage: &CheckpointStorage,
    manifest: &CheckpointManifest,
    target: &StorageLocation,
    scratch: &Path,
    format: SavepointFormat,
) -> Result<(CheckpointManifest, u64)> {
    match target {
        StorageLocation::Local(dir) => export_local(storage, manifest, dir, format),
        StorageLocation::S3(location) => {
            let remote = RemoteDir::open(location)?;
            if !remote.list_files("")?.is_empty() {
                return Err(Error::invalid(format!("savepoint directory {location} exists and is not empty")));
            }
            if scratch.exists() {
                std::fs::remove_dir_all(scratch)?;
            }
            let exported = export_local(storage, manifest, scratch, format).and_then(|(exported, size)| {
                let files: Vec<(PathBuf, String)> = exported.files().map(|f| (scratch.join(&f.path), f.path.clone())).collect();
                remote.upload_all(files)?;
                remote.put_new(METADATA, exported.to_bytes()?)?;
                Ok((exported, size))
            });
            let _ = std::fs::remove_dir_all(scratch);
            exported
        }
    }
}

/// Exports into the local directory `dir`.
fn export_local(
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

/// Reads a savepoint (or a retained checkpoint) directory: its manifest, and storage to resolve
/// files. The files of one on S3 are downloaded into `local_copies` when they are read.
pub fn open(location: &StorageLocation, local_copies: PathBuf) -> Result<(CheckpointManifest, Arc<CheckpointStorage>)> {
    let missing = |e: &dyn std::fmt::Display| {
        Error::user(
            crate::error::UserErrorKind::ExternalData,
            format!("no savepoint or checkpoint at '{location}': {e}"),
        )
    };
    // A checkpoint directory `.../<job>/chk-<n>` resolves its files against the job directory.
    let (bytes, root) = match location {
        StorageLocation::Local(path) => {
            let bytes = std::fs::read(path.join(METADATA)).map_err(|e| missing(&e))?;
            let root = match path.parent() {
                Some(parent) if is_checkpoint_dir(path.file_name().and_then(|n| n.to_str())) => parent.to_path_buf(),
                _ => path.clone(),
            };
            (bytes, StorageLocation::Local(root))
        }
        StorageLocation::S3(s3) => {
            let bytes = RemoteDir::open(s3)?.get(METADATA)?.ok_or_else(|| missing(&"it has no _metadata"))?;
            let root = match s3.prefix.rsplit_once('/') {
                Some((parent, last)) if is_checkpoint_dir(Some(last)) => StorageLocation::S3(crate::settings::location::S3Location {
                    prefix: parent.to_string(),
                    ..s3.clone()
                }),
                _ => location.clone(),
            };
            (bytes.to_vec(), root)
        }
    };
    let metadata = format!("{location}/{METADATA}");
    let manifest = CheckpointManifest::from_bytes(&bytes, Path::new(&metadata))
        .map_err(|e| Error::user(crate::error::UserErrorKind::ExternalData, e))?;
    Ok((manifest, CheckpointStorage::open(&root, local_copies, false)?))
}

fn is_checkpoint_dir(name: Option<&str>) -> bool {
    name.and_then(|n| n.strip_prefix("chk-")).is_some_and(|n| n.parse::<u64>().is_ok())
}

/// Copies checkpoint `manifest` of the job directory `from` (its `chk-<n>` and the shared files it
/// references) into `to`, server side: S3's stand-in for moving a directory.
pub fn copy_remote_checkpoint(
    from: &crate::settings::location::S3Location,
    manifest: &CheckpointManifest,
    to: &crate::settings::location::S3Location,
) -> Result<()> {
    let (source, target) = (RemoteDir::open(from)?, RemoteDir::open(to)?);
    for file in manifest.files() {
        source.copy_to(&file.path, &target, &file.path)?;
    }
    let metadata = format!("chk-{}/{METADATA}", manifest.checkpoint_id);
    source.copy_to(&metadata, &target, &metadata)
}
