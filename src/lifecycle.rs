//! The job lifecycle in SQL: SAVEPOINT / STOP / CANCEL / RESTORE JOB and the savepoint catalog
//! (SHOW / DESCRIBE / DROP SAVEPOINT). A front end of the job manager, next to `session`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::catalog::{JobDef, JobStatus, SavepointDef, SavepointFormat};
use crate::checkpoint::coordinator::RequestKind;
use crate::checkpoint::manifest::CheckpointManifest;
use crate::checkpoint::savepoint;
use crate::checkpoint::storage::CheckpointStorage;
use crate::error::{Error, Result};
use crate::graph::{JobGraph, OperatorSpec};
use crate::job::JobSettings;
use crate::job::settings::CheckpointRetention;
use crate::planner::statement::{RestoreFrom, RestoreJob};
use crate::session::{Output, Session};

/// Setting for where savepoints go by default.
pub const SAVEPOINT_DIR: &str = "execution.checkpointing.savepoint-dir";

fn table(names: &[&str], rows: &[Vec<String>]) -> Result<Output> {
    let schema = Arc::new(Schema::new(
        names.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|c| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r[c].as_str()))) as ArrayRef)
        .collect();
    Ok(Output::Rows {
        schema: schema.clone(),
        batches: vec![RecordBatch::try_new(schema, columns)?],
    })
}

/// Operators whose state a checkpoint holds (sources and sinks carry positions and staged rows).
fn stateful_uids(graph: &JobGraph) -> Vec<String> {
    graph
        .operators
        .iter()
        .filter(|o| {
            matches!(
                o.spec,
                OperatorSpec::WindowAggregate(_) | OperatorSpec::UpdatingAggregate(_) | OperatorSpec::WatermarkAssigner(_)
            )
        })
        .map(|o| o.uid.clone())
        .collect()
}

/// How the state of a savepoint maps onto a new plan.
struct StateMatch {
    matched: Vec<(String, u64)>,
    dropped: Vec<(String, u64)>,
    new: Vec<String>,
}

fn match_state(manifest: &CheckpointManifest, graph: &JobGraph) -> StateMatch {
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for op in &manifest.operators {
        *sizes.entry(op.uid.clone()).or_default() += op.files.iter().map(|f| f.size).sum::<u64>();
    }
    let planned = stateful_uids(graph);
    StateMatch {
        matched: sizes
            .iter()
            .filter(|(uid, _)| planned.contains(uid))
            .map(|(u, s)| (u.clone(), *s))
            .collect(),
        dropped: sizes
            .iter()
            .filter(|(uid, _)| !planned.contains(uid))
            .map(|(u, s)| (u.clone(), *s))
            .collect(),
        new: planned.into_iter().filter(|uid| !sizes.contains_key(uid)).collect(),
    }
}

/// Why a restore cannot work, checked before anything runs.
fn restore_problem(manifest: &CheckpointManifest, graph: &JobGraph, settings: &JobSettings, allow_non_restored: bool) -> Option<String> {
    let state = match_state(manifest, graph);
    if !state.dropped.is_empty() && !allow_non_restored {
        let names: Vec<&str> = state.dropped.iter().map(|(u, _)| u.as_str()).collect();
        return Some(format!(
            "the savepoint holds state for operator(s) {} that the new plan does not have; add ALLOW NON RESTORED STATE to drop it",
            names.join(", ")
        ));
    }
    let native = manifest.operators.iter().any(|o| o.backend != savepoint::CANONICAL);
    if native && manifest.parallelism != settings.parallelism {
        return Some(format!(
            "a native savepoint restores only at its own parallelism ({}); take a canonical savepoint to rescale to {}",
            manifest.parallelism, settings.parallelism
        ));
    }
    if let Some(op) = manifest
        .operators
        .iter()
        .find(|o| o.backend != savepoint::CANONICAL && o.backend != settings.state_backend.name())
    {
        return Some(format!(
            "a native savepoint of '{}' state restores only into state.backend.type '{}'; take a canonical savepoint to switch",
            op.backend, op.backend
        ));
    }
    None
}

impl Session {
    fn savepoint_dir(&self, dir: Option<String>) -> Result<PathBuf> {
        if let Some(dir) = dir {
            return Ok(PathBuf::from(dir));
        }
        let settings = self.settings_snapshot()?;
        Ok(settings
            .get(SAVEPOINT_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| self.database().data_dir().join("savepoints")))
    }

    /// Takes a savepoint of a running job and records it in the catalog.
    /// `stop`: the job's sources emit nothing after the savepoint (the caller stops the job next).
    async fn take_savepoint(&self, job: &str, dir: Option<String>, options: &BTreeMap<String, String>, stop: bool) -> Result<SavepointDef> {
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
        let base = self.savepoint_dir(dir)?;
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
        let path = base.join(&name);
        let done = running
            .request_checkpoint(RequestKind::Savepoint {
                dir: path.clone(),
                format,
                stop,
            })
            .await?;
        let def = SavepointDef {
            name: name.clone(),
            job: job.to_string(),
            path: done.path.display().to_string(),
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

    fn job_missing(&self, job: &str) -> Error {
        match self.database().catalog_snapshot().map(|c| c.jobs.get(job).map(|j| j.status)) {
            Ok(Some(status)) => Error::invalid_state(format!("job '{job}' is {}, not RUNNING", status.name())),
            _ => Error::not_found("job", job),
        }
    }

    fn savepoint_row(def: &SavepointDef) -> Result<Output> {
        table(
            &["name", "path", "size_bytes"],
            &[vec![def.name.clone(), def.path.clone(), def.size_bytes.to_string()]],
        )
    }

    pub(crate) async fn savepoint_job(&self, job: &str, dir: Option<String>, options: &BTreeMap<String, String>) -> Result<Output> {
        let def = self.take_savepoint(job, dir, options, false).await?;
        Self::savepoint_row(&def)
    }

    pub(crate) async fn stop_job(&self, job: &str, with_savepoint: bool) -> Result<Output> {
        let running = self
            .database()
            .jobs()
            .get(job)?
            .filter(|j| j.snapshot().status == JobStatus::Running)
            .ok_or_else(|| self.job_missing(job))?;
        let output = if with_savepoint {
            let def = self.take_savepoint(job, None, &BTreeMap::new(), true).await?;
            Some(Self::savepoint_row(&def)?)
        } else {
            // A graceful stop: one last checkpoint, so a later RESTORE or restart loses nothing.
            if running.settings.checkpoints.is_some() {
                running.request_checkpoint(RequestKind::Checkpoint).await?;
            }
            None
        };
        self.database().jobs().cancel(job, JobStatus::Stopped).await?;
        Ok(output.unwrap_or(Output::Done { tag: "STOP JOB".into() }))
    }

    pub(crate) async fn cancel_job(&self, job: &str) -> Result<Output> {
        let running = self.database().jobs().get(job)?.ok_or_else(|| self.job_missing(job))?;
        if running.snapshot().status != JobStatus::Running {
            return Err(self.job_missing(job));
        }
        self.database().jobs().cancel(job, JobStatus::Canceled).await?;
        let retain = running
            .settings
            .checkpoints
            .as_ref()
            .is_some_and(|c| c.retention == CheckpointRetention::RetainOnCancellation);
        if !retain {
            let _ = std::fs::remove_dir_all(running.checkpoint_storage(self.database().data_dir()).root());
        }
        Ok(Output::Done { tag: "CANCEL JOB".into() })
    }

    /// The savepoint (or checkpoint) a RESTORE names, read and checked.
    fn restore_source(&self, from: &RestoreFrom) -> Result<(CheckpointManifest, Arc<CheckpointStorage>, PathBuf)> {
        let path = match from {
            RestoreFrom::Savepoint(name) => {
                let catalog = self.database().catalog_snapshot()?;
                PathBuf::from(
                    &catalog
                        .savepoints
                        .get(name)
                        .ok_or_else(|| Error::not_found("savepoint", name))?
                        .path,
                )
            }
            RestoreFrom::Path(path) => PathBuf::from(path),
        };
        let (manifest, storage) = savepoint::open(&path)?;
        Ok((manifest, storage, path))
    }

    /// Plans a restore: the job's settings and graph, from the stored SQL or a new query.
    async fn plan_restore(
        &self,
        restore: &RestoreJob,
        manifest: &CheckpointManifest,
    ) -> Result<(BTreeMap<String, String>, JobGraph, String)> {
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
        let (graph, _) = self.plan_insert_sql(&insert_sql, &options).await?;
        Ok((options, graph, insert_sql))
    }

    pub(crate) async fn restore_job(&self, restore: &RestoreJob, explain: bool) -> Result<Output> {
        let (manifest, storage, path) = self.restore_source(&restore.from)?;
        let (options, graph, insert_sql) = self.plan_restore(restore, &manifest).await?;
        let settings = JobSettings::from_options(&options)?;
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
            return table(&["operator", "state", "bytes"], &rows);
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
        let root = crate::job::checkpoint_root(
            db.data_dir(),
            settings.checkpoints.as_ref().and_then(|c| c.dir.as_deref()),
            &restore.job,
        );
        let (manifest, storage) = if path.starts_with(&root) {
            let aside = root.with_extension(format!("restored-{}", chrono_millis()));
            std::fs::rename(&root, &aside)?;
            let moved = aside.join(path.strip_prefix(&root).map_err(|e| Error::internal(e.to_string()))?);
            let (manifest, storage) = savepoint::open(&moved)?;
            (manifest, storage)
        } else {
            (manifest, storage)
        };
        for dir in [db.data_dir().join("jobs").join(&restore.job), root] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
        }
        db.table_store().rewind_commits(&restore.job, manifest.checkpoint_id)?;
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
        let batch = crate::system_tables::savepoints_batch(self.database())?;
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
        let (manifest, storage) = savepoint::open(Path::new(&def.path))?;
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
        table(&["property", "value"], &rows)
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
        if Path::new(&def.path).exists() {
            std::fs::remove_dir_all(&def.path)?;
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
