//! `CheckpointStorage`: the checkpoint directory of one job, laid out as Flink's:
//! `shared/` (RocksDB SST files, content-named, referenced by many checkpoints),
//! `taskowned/` (reserved for task-owned files), and `chk-<n>/` (the files only checkpoint n
//! uses, and its `_metadata`, written last). SST files are immutable, so an SST already in
//! `shared/` is referenced, not uploaded again: that is what makes checkpoints incremental.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::checkpoint::commit::StagedSinkRows;
use crate::checkpoint::manifest::{CheckpointManifest, FileRef};
use crate::error::{Error, Result};
use crate::fs::{create_dirs, file_crc, transfer_with_crc, write_atomically};
use crate::graph::SubtaskId;
use crate::runtime::staging::StagedFile;

const METADATA: &str = "_metadata";

pub struct CheckpointStorage {
    root: PathBuf,
    /// Shared files known to be in `shared/`: name → reference (so reuse needs no re-reading).
    known_shared: Mutex<HashMap<String, FileRef>>,
}

impl CheckpointStorage {
    pub fn new(root: PathBuf) -> Arc<Self> {
        Arc::new(CheckpointStorage {
            root,
            known_shared: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn checkpoint_dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("chk-{id}"))
    }

    pub fn resolve(&self, file: &FileRef) -> PathBuf {
        self.root.join(&file.path)
    }

    /// Uploads the snapshot files of one operator subtask for checkpoint `id`. With `incremental`,
    /// RocksDB SST files go to `shared/` once and are referenced afterwards; every other file
    /// (and every file of a full checkpoint) is private to the checkpoint. Returns the references
    /// and the bytes actually written.
    pub fn upload_state(&self, id: u64, owner: &str, files: &[PathBuf], incremental: bool) -> Result<(Vec<FileRef>, u64)> {
        let private_dir = self.checkpoint_dir(id).join(owner);
        create_dirs(&private_dir)?;
        create_dirs(&self.root.join("shared"))?;
        let mut refs = Vec::with_capacity(files.len());
        let mut uploaded = 0;
        for file in files {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Error::internal(format!("bad state file name {}", file.display())))?;
            if incremental && name.ends_with(".sst") {
                let size = std::fs::metadata(file)?.len();
                // An SST's name is unique within its RocksDB instance and its content never changes.
                let shared_name = format!("{owner}-{size}-{name}");
                let known = self
                    .known_shared
                    .lock()
                    .map_err(|_| Error::internal("checkpoint storage lock poisoned"))?
                    .get(&shared_name)
                    .cloned();
                let target = self.root.join("shared").join(&shared_name);
                let reference = match known {
                    Some(reference) if target.exists() => reference,
                    _ => {
                        let (size, crc32) = transfer_with_crc(file, &target)?;
                        uploaded += size;
                        let reference = FileRef {
                            path: format!("shared/{shared_name}"),
                            name: name.to_string(),
                            size,
                            crc32,
                        };
                        self.known_shared
                            .lock()
                            .map_err(|_| Error::internal("checkpoint storage lock poisoned"))?
                            .insert(shared_name, reference.clone());
                        reference
                    }
                };
                refs.push(reference);
            } else {
                let (size, crc32) = transfer_with_crc(file, &private_dir.join(name))?;
                uploaded += size;
                refs.push(FileRef {
                    path: format!("chk-{id}/{owner}/{name}"),
                    name: name.to_string(),
                    size,
                    crc32,
                });
            }
        }
        Ok((refs, uploaded))
    }

    /// Moves a sink subtask's staged rows of checkpoint `id` (an Arrow IPC file the sink wrote)
    /// into the checkpoint, fsynced.
    pub fn keep_staged(&self, id: u64, owner: &str, staged: &StagedFile) -> Result<FileRef> {
        let dir = self.checkpoint_dir(id);
        create_dirs(&dir)?;
        let name = format!("{owner}.arrow");
        // A hard link, or a copy on another file system. The sink's file stays until the rows are
        // committed: if this checkpoint fails, the next one takes them.
        let (size, crc32) = transfer_with_crc(&staged.path, &dir.join(&name))?;
        Ok(FileRef {
            path: format!("chk-{id}/{name}"),
            name,
            size,
            crc32,
        })
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

    /// The local path of a checkpoint file after checking its size and checksum.
    pub fn verified(&self, file: &FileRef) -> Result<PathBuf> {
        let path = self.resolve(file);
        let (size, crc32) = file_crc(&path).map_err(|e| e.context(format!("checkpoint file {}", path.display())))?;
        if size != file.size || crc32 != file.crc32 {
            return Err(Error::internal(format!(
                "checkpoint file {} is damaged (size or checksum differs)",
                path.display()
            )));
        }
        Ok(path)
    }

    /// Completes checkpoint `id`: its `_metadata`, atomically.
    pub fn write_manifest(&self, manifest: &CheckpointManifest) -> Result<PathBuf> {
        let dir = self.checkpoint_dir(manifest.checkpoint_id);
        create_dirs(&dir)?;
        write_atomically(&dir.join(METADATA), &manifest.to_bytes()?)?;
        Ok(dir)
    }

    pub fn read_manifest(&self, id: u64) -> Result<CheckpointManifest> {
        let path = self.checkpoint_dir(id).join(METADATA);
        let bytes = std::fs::read(&path).map_err(|e| Error::internal(format!("cannot read {}: {e}", path.display())))?;
        CheckpointManifest::from_bytes(&bytes, &path)
    }

    /// Ids of the `chk-<n>` directories, newest first.
    pub fn checkpoint_ids(&self) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(ids);
        };
        for entry in entries {
            let name = entry?.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// The newest complete checkpoint whose metadata and files check out. Damaged ones are skipped
    /// with a warning (returned, for the job's status).
    pub fn latest_complete(&self) -> Result<(Option<CheckpointManifest>, Vec<String>)> {
        let mut warnings = Vec::new();
        for id in self.checkpoint_ids()? {
            let manifest = match self.read_manifest(id) {
                Ok(m) => m,
                Err(e) => {
                    warnings.push(format!("skipping checkpoint {id}: {e}"));
                    continue;
                }
            };
            let checked = manifest.files().try_for_each(|f| self.verified(f).map(|_| ()));
            match checked {
                Ok(()) => {
                    let mut known = self
                        .known_shared
                        .lock()
                        .map_err(|_| Error::internal("checkpoint storage lock poisoned"))?;
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
        Ok((None, warnings))
    }

    /// Removes every `chk-<n>` without `_metadata`: checkpoints aborted by a failure or a cancel.
    pub fn remove_incomplete(&self) -> Result<()> {
        for id in self.checkpoint_ids()? {
            if !self.checkpoint_dir(id).join(METADATA).exists() {
                self.discard(id)?;
            }
        }
        Ok(())
    }

    /// Removes checkpoint `id` (an aborted or superseded one).
    pub fn discard(&self, id: u64) -> Result<()> {
        let dir = self.checkpoint_dir(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
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
        let shared = self.root.join("shared");
        if let Ok(entries) = std::fs::read_dir(&shared) {
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !referenced.contains(name.as_str()) {
                    std::fs::remove_file(entry.path())?;
                    if let Ok(mut known) = self.known_shared.lock() {
                        known.remove(&name);
                    }
                }
            }
        }
        Ok(())
    }
}
