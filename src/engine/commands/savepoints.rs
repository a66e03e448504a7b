//! Savepoints in SQL: SAVEPOINT JOB, RESTORE JOB (state matched by operator uid) and the savepoint
//! catalog (SHOW / DESCRIBE / DROP SAVEPOINT).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::catalog::{JobDef, JobStatus, SavepointDef, SavepointFormat};
use crate::checkpoint::commit::SinkCommitter;
use crate::checkpoint::coordinator::RequestKind;
use crate::checkpoint::manifest::CheckpointManifest;
use crate::checkpoint::remote::RemoteDir;
use crate::checkpoint::restore::{match_state, restore_problem};
use crate::checkpoint::savepoint;
use crate::checkpoint::storage::CheckpointStorage;
use crate::connectors::table_store::LaterEpochs;
use crate::engine::commands::row_table;
use crate::engine::session::{Output, Session};
use crate::error::{Error, Result};
use crate::graph::JobGraph;
use crate::job::JobSettings;
use crate::planner::statement::{RestoreFrom, RestoreJob};
use crate::settings::location::S3Location;
use crate::settings::{S3Options, StorageLocation};

/// Setting for where savepoints go by default.
pub const SAVEPOINT_DIR: &str = "execution.checkpointing.savepoint-dir";

impl Session {
    /// Where a savepoint goes: `TO '<dir>'`, else the savepoint-dir setting, else
    /// `<data>/savepoints`.
    fn savepoint_dir(&self, dir: Option<String>, s3: &S3Options) -> Result<StorageLocation> {
        let dir = match dir {
            Some(dir) => dir,
            None => match self.settings_snapshot()?.get(SAVEPOINT_DIR) {
                Some(dir) => dir.clone(),
                None => return Ok(StorageLocation::Local(self.database().paths().savepoints())),
            },
        };
        self.database().resolve_location("savepoint directory", &dir, s3)
    }

    /// The `s3.*` keys for a savepoint location: a statement's `WITH`, over the session's, over
    /// those of the job's settings.
    fn s3_options(&self, job: Option<&JobSettings>, with: &BTreeMap<String, String>) -> Result<S3Options> {
        let mut settings: BTreeMap<String, String> = BTreeMap::new();
        if let Some(job) = job {
            settings.extend(job.s3.entries());
        }
        settings.extend(self.settings_snapshot()?);
        settings.extend(with.clone());
        S3Options::from_settings(&settings)
    }

    /// Takes a savepoint of a running job and records it in the catalog.
    /// `stop`: the job's sources emit nothing after the savepoint (the caller stops the job next).
    pub(crate) async fn take_savepoint(
        &self,
        job: &str,
        dir: Option<String>,
        options: &BTreeMap<String, String>,
        stop: bool,
    ) -> Result<SavepointDef> {
        let mut format = SavepointFormat::Canonical;
        for (key, value) in options {
            match key.as_str() {
                "format" => format = SavepointFormat::parse(value)?,
                other => {
                    return Err(Error::invalid(format!(
                        "unknown savepoint option '{other}'; SAVEPOINT JOB takes format"
                    )));
                }
            }
        }
        let running = self.database().jobs().get(job)?.ok_or_else(|| self.job_missing(job))?;
        let base = self.savepoint_dir(dir, &self.s3_options(Some(&running.settings), &BTreeMap::new())?)?;
        // Names are predictable (sp_<job>_<n>) so scripts can restore what they took.
        let taken = self
            .database()
            .catalog_snapshot()?
            .savepoints
            .values()
            .filter(|s| s.job == job)
            .count();
        let name = (taken + 1..)
            .map(|n| format!("sp_{job}_{n}"))
            .find(|n| !self.database().catalog_snapshot().is_ok_and(|c| c.savepoints.contains_key(n)))
            .unwrap_or_default();
        let done = running
            .request_checkpoint(RequestKind::Savepoint {
                dir: Box::new(base.join(&crate::data_dir::path_component(&name))),
                scratch: self.database().paths().scratch(&name),
                format,
                stop,
            })
            .await?;
        let def = SavepointDef {
            name: name.clone(),
            job: job.to_string(),
            path: done.path,
            format,
            created_ms: chrono_millis(),
            size_bytes: done.size,
        };
        self.database().update_catalog(|c| {
            c.savepoints.insert(name.clone(), def.clone());
            Ok(())
        })?;
        Ok(def)
    }

    pub(crate) fn savepoint_row(def: &SavepointDef) -> Result<Output> {
        row_table(
            &["name", "path", "size_bytes"],
            &[vec![def.name.clone(), def.path.clone(), def.size_bytes.to_string()]],
        )
    }

    pub(crate) async fn savepoint_job(&self, job: &str, dir: Option<String>, options: &BTreeMap<String, String>) -> Result<Output> {
        let def = self.take_savepoint(job, dir, options, false).await?;
        Self::savepoint_row(&def)
    }

    /// The savepoint (or checkpoint) a RESTORE names, read and checked.
    fn restore_source(&self, restore: &RestoreJob) -> Result<(CheckpointManifest, Arc<CheckpointStorage>, StorageLocation)> {
        let s3 = self.s3_options(None, &restore.options)?;
        let location = match &restore.from {
            RestoreFrom::Savepoint(name) => {
                let catalog = self.database().catalog_snapshot()?;
                let path = &catalog
                    .savepoints
                    .get(name)
                    .ok_or_else(|| Error::not_found("savepoint", name))?
                    .path;
                StorageLocation::parse("savepoint", path, &s3)?
            }
            RestoreFrom::Path(path) => self.database().resolve_location("savepoint", path, &s3)?,
        };
        let (manifest, storage) = self.open_savepoint(&location)?;
        Ok((manifest, storage, location))
    }

    /// Reads a savepoint or checkpoint directory (files on S3 are copied under the data dir).
    fn open_savepoint(&self, location: &StorageLocation) -> Result<(CheckpointManifest, Arc<CheckpointStorage>)> {
        savepoint::open(location, self.database().paths().remote_copies(&location.to_string()))
    }

    /// Plans a restore: the job's settings and graph, from the stored SQL or a new query.
    async fn plan_restore(
        &self,
        restore: &RestoreJob,
        manifest: &CheckpointManifest,
    ) -> Result<(BTreeMap<String, String>, JobGraph, JobSettings, String)> {
        let existing = self.database().catalog_snapshot()?.jobs.get(&restore.job).cloned();
        let mut options = self.settings_snapshot()?;
        if let Some(job) = &existing {
            options.extend(job.options.clone());
        }
        options.extend(restore.options.clone());
        let insert_sql = match &restore.insert {
            Some(insert) => insert.to_string(),
            None => manifest.job_sql.clone(),
        };
        let (graph, settings) = self.plan_insert_sql(&insert_sql, &options).await?;
        self.db.probe_checkpoint_dir(&settings).await?;
        Ok((options, graph, settings, insert_sql))
    }

    pub(crate) async fn restore_job(&self, restore: &RestoreJob, explain: bool) -> Result<Output> {
        let (manifest, storage, path) = self.restore_source(restore)?;
        let (options, graph, settings, insert_sql) = self.plan_restore(restore, &manifest).await?;
        let problem = restore_problem(&manifest, &graph, &settings, restore.allow_non_restored);
        if explain {
            let state = match_state(&manifest, &graph);
            let mut rows: Vec<Vec<String>> = Vec::new();
            rows.extend(state.matched.iter().map(|(u, s)| vec![u.clone(), "matched".into(), s.to_string()]));
            rows.extend(state.dropped.iter().map(|(u, s)| vec![u.clone(), "dropped".into(), s.to_string()]));
            rows.extend(state.new.iter().map(|u| vec![u.clone(), "new".into(), "0".into()]));
            rows.push(vec![
                "(restore)".into(),
                match &problem {
                    Some(why) => format!("refused: {why}"),
                    None => format!(
                        "ok: checkpoint {} at parallelism {} -> {}",
                        manifest.checkpoint_id, manifest.parallelism, settings.parallelism
                    ),
                },
                String::new(),
            ]);
            return row_table(&["operator", "state", "bytes"], &rows);
        }
        if let Some(why) = problem {
            return Err(Error::invalid_state(why));
        }
        let db = self.database();
        if let Some(job) = db.catalog_snapshot()?.jobs.get(&restore.job)
            && !job.status.is_terminal()
        {
            return Err(Error::invalid_state(format!(
                "job '{}' is {}; STOP JOB or CANCEL JOB it before restoring",
                restore.job,
                job.status.name()
            )));
        }
        db.jobs().forget(&restore.job)?;
        // The job starts over from the savepoint: its old checkpoints and local state go, but a
        // checkpoint of its own that is being restored is moved out of the way first.
        let root = settings.checkpoint_location(&db.paths(), &restore.job);
        let aside = root.to_string() + &format!(".restored-{}", chrono_millis());
        let (manifest, storage) = match (&path, &root) {
            (StorageLocation::Local(path), StorageLocation::Local(root)) if path.starts_with(root) => {
                let aside = PathBuf::from(aside);
                std::fs::rename(root, &aside)?;
                let moved = aside.join(path.strip_prefix(root).map_err(|e| Error::internal(e.to_string()))?);
                self.open_savepoint(&StorageLocation::Local(moved))?
            }
            (StorageLocation::S3(path), StorageLocation::S3(root))
                if path.bucket == root.bucket && path.prefix.starts_with(&format!("{}/", root.prefix)) =>
            {
                let aside = S3Location {
                    prefix: format!("{}.restored-{}", root.prefix, chrono_millis()),
                    ..root.clone()
                };
                let relative = path.prefix[root.prefix.len() + 1..].to_string();
                let (from, to, copied) = (root.clone(), aside.clone(), manifest.clone());
                tokio::task::spawn_blocking(move || savepoint::copy_remote_checkpoint(&from, &copied, &to))
                    .await
                    .map_err(|e| Error::internal(format!("copying the checkpoint aside failed: {e}")))??;
                self.open_savepoint(&StorageLocation::S3(aside.join(&relative)))?
            }
            _ => (manifest, storage),
        };
        let job_dir = db.paths().job(&restore.job).path().to_path_buf();
        if job_dir.exists() {
            std::fs::remove_dir_all(&job_dir)?;
        }
        let old_checkpoints = db.checkpoint_storage(&restore.job, &settings)?;
        tokio::task::spawn_blocking(move || old_checkpoints.clear())
            .await
            .map_err(|e| Error::internal(format!("clearing the job's checkpoints failed: {e}")))??;
        let subtasks = manifest.parallelism.max(settings.parallelism);
        let committer = SinkCommitter::new(&restore.job, &graph, db.table_store().clone(), db.file_roots())?;
        let epoch = manifest.checkpoint_id;
        tokio::task::spawn_blocking(move || committer.rewind(epoch, subtasks, LaterEpochs::Keep))
            .await
            .map_err(|e| Error::internal(format!("rewinding the sinks' commits failed: {e}")))??;
        let def = JobDef {
            name: restore.job.clone(),
            insert_sql: insert_sql.clone(),
            options,
            status: JobStatus::Running,
            error: None,
        };
        db.update_catalog(|c| {
            c.jobs.insert(def.name.clone(), def.clone());
            Ok(())
        })?;
        db.jobs()
            .start(&restore.job, graph, settings, insert_sql, Some((manifest, storage)))?;
        Ok(Output::Done { tag: "RESTORE JOB".into() })
    }

    pub(crate) fn show_savepoints(&self) -> Result<Output> {
        let batch = crate::engine::system_tables::savepoints_batch(self.database())?;
        Ok(Output::Rows {
            schema: batch.schema(),
            batches: vec![batch],
        })
    }

    pub(crate) fn describe_savepoint(&self, name: &str) -> Result<Output> {
        let def = self
            .database()
            .catalog_snapshot()?
            .savepoints
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found("savepoint", name))?;
        let location = StorageLocation::parse("savepoint", &def.path, &self.s3_options(None, &BTreeMap::new())?)?;
        let (manifest, storage) = self.open_savepoint(&location)?;
        let mut rows = vec![
            vec!["name".into(), def.name.clone()],
            vec!["job".into(), def.job.clone()],
            vec!["format".into(), def.format.name().into()],
            vec!["created_ms".into(), def.created_ms.to_string()],
            vec!["path".into(), def.path.clone()],
            vec!["checkpoint_id".into(), manifest.checkpoint_id.to_string()],
            vec!["parallelism".into(), manifest.parallelism.to_string()],
            vec!["size_bytes".into(), def.size_bytes.to_string()],
            vec!["sql".into(), manifest.job_sql.clone()],
        ];
        for op in &manifest.operators {
            let bytes: u64 = op.files.iter().map(|f| f.size).sum();
            let keys = if op.backend == savepoint::CANONICAL {
                let files = op.files.iter().map(|f| storage.verified(f)).collect::<Result<Vec<_>>>()?;
                crate::state::canonical::count_rows(&files)?.to_string()
            } else {
                "-".into()
            };
            rows.push(vec![
                format!("operator {}#{}", op.uid, op.subtask),
                format!("{bytes} bytes, {keys} keys, {}", op.backend),
            ]);
        }
        row_table(&["property", "value"], &rows)
    }

    pub(crate) fn drop_savepoint(&self, name: &str, if_exists: bool) -> Result<Output> {
        let def = self.database().catalog_snapshot()?.savepoints.get(name).cloned();
        let Some(def) = def else {
            return if if_exists {
                Ok(Output::Done {
                    tag: "DROP SAVEPOINT".into(),
                })
            } else {
                Err(Error::not_found("savepoint", name))
            };
        };
        match StorageLocation::parse("savepoint", &def.path, &self.s3_options(None, &BTreeMap::new())?)? {
            StorageLocation::Local(path) => {
                if path.exists() {
                    std::fs::remove_dir_all(&path)?;
                }
            }
            StorageLocation::S3(location) => RemoteDir::open(&location)?.delete_all("")?,
        }
        self.database().update_catalog(|c| {
            c.savepoints.remove(name);
            Ok(())
        })?;
        Ok(Output::Done {
            tag: "DROP SAVEPOINT".into(),
        })
    }
}

fn chrono_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
