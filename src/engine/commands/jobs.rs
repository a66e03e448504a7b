//! The running job's lifecycle: WAIT JOB, STOP JOB [WITH SAVEPOINT], CANCEL JOB.

use std::collections::BTreeMap;

use crate::catalog::JobStatus;
use crate::checkpoint::coordinator::RequestKind;
use crate::engine::session::{Output, Session};
use crate::error::{Error, Result};
use crate::settings::CheckpointRetention;

impl Session {
    /// The error for a job that is not RUNNING: its live status (RESTARTING, FAILING) if it is
    /// still in the job manager, else what the catalog recorded.
    pub(crate) fn job_missing(&self, job: &str) -> Error {
        let live = self.database().jobs().get(job).ok().flatten().map(|j| j.snapshot().status);
        let recorded = || {
            self.database()
                .catalog_snapshot()
                .ok()
                .and_then(|c| c.jobs.get(job).map(|j| j.status))
        };
        match live.or_else(recorded) {
            Some(status) => Error::invalid_state(format!("job '{job}' is {}, not RUNNING", status.name())),
            None => Error::not_found("job", job),
        }
    }

    /// STOP JOB: a RUNNING job takes a last checkpoint (or the savepoint) first; a RESTARTING or
    /// FAILING one stops at once, its last complete checkpoint being where a restore starts (as
    /// Flink cancels a restarting job). A savepoint needs running tasks.
    pub(crate) async fn stop_job(&self, job: &str, with_savepoint: bool) -> Result<Output> {
        let live = self
            .database()
            .jobs()
            .get(job)?
            .filter(|j| !j.snapshot().status.is_terminal())
            .ok_or_else(|| self.job_missing(job))?;
        let running = live.snapshot().status == JobStatus::Running;
        let output = if with_savepoint {
            if !running {
                return Err(Error::invalid_state(format!(
                    "job '{job}' is {}; a savepoint needs it RUNNING (STOP JOB {job} without a savepoint stops it now)",
                    live.snapshot().status.name()
                )));
            }
            let def = self.take_savepoint(job, None, &BTreeMap::new(), true).await?;
            Some(Self::savepoint_row(&def)?)
        } else {
            // A graceful stop: one last checkpoint, so a later RESTORE or restart loses nothing.
            if running && live.settings.checkpoints.is_some() {
                live.request_checkpoint(RequestKind::Checkpoint).await?;
            }
            None
        };
        self.database().jobs().cancel(job, JobStatus::Stopped).await?;
        Ok(output.unwrap_or(Output::Done { tag: "STOP JOB".into() }))
    }

    pub(crate) async fn cancel_job(&self, job: &str) -> Result<Output> {
        let running = self.database().jobs().get(job)?.ok_or_else(|| self.job_missing(job))?;
        if running.snapshot().status.is_terminal() {
            return Err(self.job_missing(job));
        }
        self.database().jobs().cancel(job, JobStatus::Canceled).await?;
        let retain = running
            .settings
            .checkpoints
            .as_ref()
            .is_some_and(|c| c.retention == CheckpointRetention::RetainOnCancellation);
        if !retain && let Err(e) = running.checkpoint_storage(self.database().data_dir()).and_then(|s| s.clear()) {
            tracing::warn!("job {job}: cannot remove its checkpoints: {e}");
        }
        Ok(Output::Done { tag: "CANCEL JOB".into() })
    }

    /// WAIT JOB: until the job ends; an error if it failed.
    pub(crate) async fn wait_job(&self, name: &str) -> Result<Output> {
        if !self.db.catalog()?.jobs.contains_key(name) {
            return Err(Error::not_found("job", name));
        }
        match self.db.jobs().get(name)? {
            Some(_) => {
                self.db.jobs().wait(name).await?;
            }
            None => {
                let catalog = self.db.catalog()?;
                if let Some(job) = catalog.jobs.get(name).filter(|j| j.status == JobStatus::Failed) {
                    return Err(Error::user(
                        crate::error::UserErrorKind::JobFailed,
                        format!("job '{name}' failed: {}", job.error.clone().unwrap_or_default()),
                    ));
                }
            }
        }
        Ok(Output::done("WAIT JOB"))
    }
}
