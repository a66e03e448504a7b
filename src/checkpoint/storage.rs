//! `CheckpointStorage`: the checkpoint directory of one job, laid out as Flink's:
//! `shared/` (RocksDB SST files, content-named, referenced by many checkpoints),
//! `taskowned/` (reserved for task-owned files), and `chk-<n>/` (the files only checkpoint n
//! uses, and its `_metadata`, written last). SST files are immutable, so an SST already in
//! `shared/` is referenced, not uploaded again: that is what makes checkpoints incremental.
//!
//! The directory is local or an S3 prefix ([`StorageLocation`]). On S3 the same layout holds
//! objects, `_metadata` is written create-only, and `root` is a local directory of copies:
//! files downloaded for a restore, and with local recovery (`state.backend.local-recovery`) the
//! files of the retained checkpoints as they were uploaded, so a restart on the same machine
//! downloads nothing. A local copy is used only when its size and checksum match the manifest.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::checkpoint::commit::StagedSinkRows;
use crate::checkpoint::manifest::{CheckpointManifest, FileRef};
use crate::checkpoint::remote::RemoteDir;
use crate::error::{Error, Result};
use crate::fs::{create_dirs, file_crc, transfer_with_crc, write_atomically};
use crate::graph::SubtaskId;
use crate::runtime::metrics::RestoreProgress;
use crate::runtime::staging::StagedFile;
use crate::settings::StorageLocation;

const METADATA: &str = "_metadata";

pub struct CheckpointStorage {
    location: StorageLocation,
    /// The local files: the checkpoint directory itself, or the copies of a remote one.
    root: PathBuf,
    files: Files,
    /// Shared files known to be in `shared/`: name → reference (so reuse needs no re-reading).
    known_shared: Mutex<HashMap<String, FileRef>>,
}

/// Where the files of a checkpoint directory are.
enum Files {
    /// In `root`.
    Local,
    /// In `dir`; `root` holds local copies, and with `keep_uploads` a copy of every file uploaded.
    Remote { dir: RemoteDir, keep_uploads: bool },
}

impl CheckpointStorage {
    /// A local checkpoint directory.
    pub fn local(root: PathBuf) -> Arc<Self> {
        Arc::new(CheckpointStorage {
            location: StorageLocation::Local(root.clone()),
            root,
            files: Files::Local,
            known_shared: Mutex::new(HashMap::new()),
        })
    }

    /// The checkpoint directory at `location`; for an S3 one, `local_copies` is where its files are
    /// kept locally (and `local_recovery` whether uploads are kept there too).
    pub fn open(location: &StorageLocation, local_copies: PathBuf, local_recovery: bool) -> Result<Arc<Self>> {
        Ok(match location {
            StorageLocation::Local(root) => Self::local(root.clone()),
            StorageLocation::S3(s3) => Arc::new(CheckpointStorage {
                location: location.clone(),
                root: local_copies,
                files: Files::Remote {
                    dir: RemoteDir::open(s3)?,
                    keep_uploads: local_recovery,
                },
                known_shared: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn location(&self) -> &StorageLocation {
        &self.location
    }

    /// Where checkpoint `id` is, as a user would name it (a path or `s3://` URL).
    pub fn checkpoint_location(&self, id: u64) -> String {
        self.location.join(&format!("chk-{id}")).to_string()
    }

    /// The local directory of the files: the checkpoint directory, or the copies of a remote one.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local directory of checkpoint `id`'s own files.
    pub fn checkpoint_dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("chk-{id}"))
    }

    fn known_shared(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, FileRef>>> {
        self.known_shared
            .lock()
            .map_err(|_| Error::internal("checkpoint storage lock poisoned"))
    }

    /// Uploads the snapshot files of one operator subtask for checkpoint `id`. With `incremental`,
    /// RocksDB SST files go to `shared/` once and are referenced afterwards; every other file
    /// (and every file of a full checkpoint) is private to the checkpoint. Returns the references
    /// and the bytes actually written.
    pub fn upload_state(&self, id: u64, owner: &str, files: &[PathBuf], incremental: bool) -> Result<(Vec<FileRef>, u64)> {
        let mut refs = Vec::with_capacity(files.len());
        // (position in `refs`, local file, path in the checkpoint directory, file name)
        let mut to_write = Vec::new();
        for file in files {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Error::internal(format!("bad state file name {}", file.display())))?;
            let path = if incremental && name.ends_with(".sst") {
                let size = std::fs::metadata(file)?.len();
                // An SST's name is unique within its RocksDB instance and its content never changes.
                let shared_name = format!("{owner}-{size}-{name}");
                let known = self.known_shared()?.get(&shared_name).cloned();
                // A local shared file is checked for presence (a user may have pruned the
                // directory); a remote one is trusted, as a HEAD per file would cost a request.
                if let Some(reference) =
                    known.filter(|_| matches!(self.files, Files::Remote { .. }) || self.root.join("shared").join(&shared_name).exists())
                {
                    refs.push(reference);
                    continue;
                }
                format!("shared/{shared_name}")
            } else {
                format!("chk-{id}/{owner}/{name}")
            };
            to_write.push((refs.len(), file.clone(), path, name.to_string()));
            refs.push(FileRef::default());
        }
        let written = self.put_files(to_write.iter().map(|(_, file, path, _)| (file.clone(), path.clone())).collect())?;
        let mut uploaded = 0;
        let mut known = self.known_shared()?;
        for ((position, _, path, name), (size, crc32)) in to_write.into_iter().zip(written) {
            uploaded += size;
            let reference = FileRef { path, name, size, crc32 };
            if let Some(shared_name) = reference.path.strip_prefix("shared/") {
                known.insert(shared_name.to_string(), reference.clone());
            }
            refs[position] = reference;
        }
        Ok((refs, uploaded))
    }

    /// Puts local files (immutable ones: they may be hard-linked) at paths of the checkpoint
    /// directory; returns each one's size and CRC-32.
    fn put_files(&self, files: Vec<(PathBuf, String)>) -> Result<Vec<(u64, u32)>> {
        match &self.files {
            Files::Local => files
                .iter()
                .map(|(file, path)| {
                    let target = self.root.join(path);
                    if let Some(parent) = target.parent() {
                        create_dirs(parent)?;
                    }
                    transfer_with_crc(file, &target)
                })
                .collect(),
            Files::Remote { dir, keep_uploads } => {
                let written = dir.upload_all(files.clone())?;
                if *keep_uploads {
                    for (file, path) in &files {
                        let target = self.root.join(path);
                        let kept = target
                            .parent()
                            .map_or(Ok(()), create_dirs)
                            .and_then(|()| transfer_with_crc(file, &target));
                        // The copy only saves a download later.
                        if let Err(e) = kept {
                            tracing::warn!("local recovery: cannot keep a copy of {}: {e}", file.display());
                        }
                    }
                }
                Ok(written)
            }
        }
    }

    /// Moves a sink subtask's staged rows of checkpoint `id` (an Arrow IPC file the sink wrote)
    /// into the checkpoint, fsynced.
    pub fn keep_staged(&self, id: u64, owner: &str, staged: &StagedFile) -> Result<FileRef> {
        let name = format!("{owner}.arrow");
        let path = format!("chk-{id}/{name}");
        // Locally a hard link, or a copy on another file system. The sink's file stays until the
        // rows are committed: if this checkpoint fails, the next one takes them.
        let written = self.put_files(vec![(staged.path.clone(), path.clone())])?;
        let (size, crc32) = written
            .first()
            .copied()
            .ok_or_else(|| Error::internal("staged rows were not written"))?;
        Ok(FileRef { path, name, size, crc32 })
    }

    /// The rows every sink subtask staged in a checkpoint, after checking their files.
    pub fn staged_rows(&self, manifest: &CheckpointManifest) -> Result<Vec<StagedSinkRows>> {
        manifest
            .sinks
            .iter()
            .map(|s| {
                let file = match &s.staged {
                    Some(f) => Some(StagedFile { path: self.verified(f)? }),
                    None => None,
                };
                Ok((SubtaskId::new(s.uid.clone(), s.subtask), file))
            })
            .collect()
    }

    /// The local path of a checkpoint file after checking its size and checksum. A remote file is
    /// downloaded unless its local copy checks out.
    pub fn verified(&self, file: &FileRef) -> Result<PathBuf> {
        let path = self.root.join(&file.path);
        let matches = |checked: (u64, u32)| checked == (file.size, file.crc32);
        match &self.files {
            Files::Local => {
                let checked = file_crc(&path).map_err(|e| e.context(format!("checkpoint file {}", path.display())))?;
                if !matches(checked) {
                    return Err(Error::internal(format!(
                        "checkpoint file {} is damaged (size or checksum differs)",
                        path.display()
                    )));
                }
            }
            Files::Remote { dir, .. } => {
                if file_crc(&path).is_ok_and(matches) {
                    return Ok(path);
                }
                if !matches(dir.download(&file.path, &path)?) {
                    let _ = std::fs::remove_file(&path);
                    return Err(Error::internal(format!(
                        "checkpoint file {}/{} is damaged (size or checksum differs)",
                        dir.location(),
                        file.path
                    )));
                }
            }
        }
        Ok(path)
    }

    /// How many bytes of a manifest's files have no local copy of their size (a restore downloads
    /// them; the checksums are checked as each file is used).
    fn missing_locally(&self, manifest: &CheckpointManifest) -> u64 {
        manifest
            .files()
            .filter(|f| !std::fs::metadata(self.root.join(&f.path)).is_ok_and(|m| m.len() == f.size))
            .map(|f| f.size)
            .sum()
    }

    /// Completes checkpoint `id`: its `_metadata`, atomically (locally) or create-only (on S3).
    /// Returns where the checkpoint is.
    pub fn write_manifest(&self, manifest: &CheckpointManifest) -> Result<String> {
        let id = manifest.checkpoint_id;
        match &self.files {
            Files::Local => write_atomically(&self.checkpoint_dir(id).join(METADATA), &manifest.to_bytes()?)?,
            Files::Remote { dir, .. } => dir.put_new(&format!("chk-{id}/{METADATA}"), manifest.to_bytes()?)?,
        }
        Ok(self.checkpoint_location(id))
    }

    /// The `_metadata` of checkpoint `id`; `None` when it has none (it did not complete).
    fn manifest_bytes(&self, id: u64) -> Result<Option<Vec<u8>>> {
        match &self.files {
            Files::Local => {
                let path = self.checkpoint_dir(id).join(METADATA);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::internal(format!("cannot read {}: {e}", path.display()))),
                }
            }
            Files::Remote { dir, .. } => Ok(dir.get(&format!("chk-{id}/{METADATA}"))?.map(|b| b.to_vec())),
        }
    }

    pub fn read_manifest(&self, id: u64) -> Result<CheckpointManifest> {
        let location = format!("{}/{METADATA}", self.checkpoint_location(id));
        let bytes = self
            .manifest_bytes(id)?
            .ok_or_else(|| Error::internal(format!("{location} does not exist")))?;
        CheckpointManifest::from_bytes(&bytes, Path::new(&location))
    }

    /// Ids of the `chk-<n>` directories, newest first.
    pub fn checkpoint_ids(&self) -> Result<Vec<u64>> {
        let names = match &self.files {
            Files::Local => match std::fs::read_dir(&self.root) {
                Ok(entries) => entries
                    .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
                    .collect::<Result<Vec<_>>>()?,
                Err(_) => Vec::new(),
            },
            Files::Remote { dir, .. } => dir.list_dirs("")?,
        };
        let mut ids: Vec<u64> = names
            .iter()
            .filter_map(|n| n.strip_prefix("chk-").and_then(|n| n.parse::<u64>().ok()))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// The newest complete checkpoint whose metadata and files check out. Damaged ones are skipped
    /// with a warning (returned, for the job's status). When every one is damaged this is an
    /// error, as in Flink: starting over from nothing would read the sources again from their
    /// start offsets and commit every row once more.
    pub fn latest_complete(&self, progress: &RestoreProgress) -> Result<(Option<CheckpointManifest>, Vec<String>)> {
        let mut warnings = Vec::new();
        for id in self.checkpoint_ids()? {
            let manifest = match self.read_manifest(id) {
                Ok(m) => m,
                Err(e) => {
                    warnings.push(format!("skipping checkpoint {id}: {e}"));
                    continue;
                }
            };
            if let Files::Remote { dir, .. } = &self.files {
                tracing::info!(
                    "checkpoint {id} of {}: downloading {} of its {} bytes (local copies hold the rest)",
                    dir.location(),
                    self.missing_locally(&manifest),
                    manifest.full_size
                );
            }
            progress.begin(manifest.files().map(|f| (f.path.as_str(), f.size)));
            let checked = manifest.files().try_for_each(|f| -> Result<()> {
                self.verified(f)?;
                progress.file_restored(&f.path, f.size)
            });
            match checked {
                // Stopped: no older checkpoint is wanted either.
                Err(e) if progress.is_stopped() => return Err(e),
                Ok(()) => {
                    let mut known = self.known_shared()?;
                    for file in manifest.files() {
                        if let Some(name) = file.path.strip_prefix("shared/") {
                            known.insert(name.to_string(), file.clone());
                        }
                    }
                    return Ok((Some(manifest), warnings));
                }
                Err(e) => warnings.push(format!("skipping checkpoint {id}: {e}")),
            }
        }
        if warnings.is_empty() {
            return Ok((None, warnings));
        }
        Err(Error::internal(format!(
            "no checkpoint of this job can be restored ({}); RESTORE JOB from a savepoint, or create the job again",
            warnings.join("; ")
        )))
    }

    /// The id of the newest checkpoint whose `_metadata` reads back (its files are not checked).
    pub fn newest_complete_id(&self) -> Result<Option<u64>> {
        for id in self.checkpoint_ids()? {
            if self.read_manifest(id).is_ok() {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Removes every `chk-<n>` without `_metadata`: checkpoints aborted by a failure or a cancel.
    /// Returns the ids of the complete ones it kept, newest first.
    pub fn remove_incomplete(&self) -> Result<Vec<u64>> {
        let mut complete = Vec::new();
        for id in self.checkpoint_ids()? {
            if self.manifest_bytes(id)?.is_none() {
                self.discard(id)?;
            } else {
                complete.push(id);
            }
        }
        Ok(complete)
    }

    /// Removes checkpoint `id` (an aborted or superseded one).
    pub fn discard(&self, id: u64) -> Result<()> {
        if let Files::Remote { dir, .. } = &self.files {
            dir.delete_all(&format!("chk-{id}/"))?;
        }
        let local = self.checkpoint_dir(id);
        if local.exists() {
            std::fs::remove_dir_all(&local)?;
        }
        Ok(())
    }

    /// Removes the whole directory: every checkpoint and shared file (and the local copies).
    pub fn clear(&self) -> Result<()> {
        if let Files::Remote { dir, .. } = &self.files {
            dir.delete_all("")?;
        }
        if self.root.exists() {
            std::fs::remove_dir_all(&self.root).map_err(|e| Error::internal(format!("cannot clear {}: {e}", self.root.display())))?;
        }
        self.known_shared()?.clear();
        Ok(())
    }

    /// Keeps the checkpoints in `retained` and deletes every other `chk-<n>` and every shared file
    /// no retained checkpoint references.
    pub fn retain(&self, retained: &[CheckpointManifest]) -> Result<()> {
        let keep: BTreeSet<u64> = retained.iter().map(|m| m.checkpoint_id).collect();
        for id in self.checkpoint_ids()? {
            if !keep.contains(&id) {
                self.discard(id)?;
            }
        }
        if let Files::Remote { .. } = &self.files {
            // Local copies of checkpoints that are gone (the remote listing does not show them).
            for entry in std::fs::read_dir(&self.root).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name
                    .strip_prefix("chk-")
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|id| !keep.contains(&id))
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        self.remove_shared_except(retained)
    }

    /// Removes the shared files no complete checkpoint references: an upload given up (timeout,
    /// or its attempt ended) may have written some before it stopped.
    pub fn remove_unreferenced_shared(&self) -> Result<()> {
        let complete: Vec<CheckpointManifest> = self
            .checkpoint_ids()?
            .into_iter()
            .filter_map(|id| self.read_manifest(id).ok())
            .collect();
        self.remove_shared_except(&complete)
    }

    fn remove_shared_except(&self, retained: &[CheckpointManifest]) -> Result<()> {
        let referenced: BTreeSet<&str> = retained
            .iter()
            .flat_map(|m| m.files())
            .filter_map(|f| f.path.strip_prefix("shared/"))
            .collect();
        let mut removed = Vec::new();
        if let Files::Remote { dir, .. } = &self.files {
            let unreferenced: Vec<String> = dir
                .list_files("shared/")?
                .into_iter()
                .filter(|path| path.strip_prefix("shared/").is_some_and(|name| !referenced.contains(name)))
                .collect();
            removed.extend(unreferenced.iter().filter_map(|p| p.strip_prefix("shared/")).map(str::to_string));
            dir.delete(unreferenced)?;
        }
        // Local shared files (the directory itself, or copies of remote ones).
        if let Ok(entries) = std::fs::read_dir(self.root.join("shared")) {
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !referenced.contains(name.as_str()) {
                    std::fs::remove_file(entry.path())?;
                    removed.push(name);
                }
            }
        }
        let mut known = self.known_shared()?;
        for name in removed {
            known.remove(&name);
        }
        Ok(())
    }
}
