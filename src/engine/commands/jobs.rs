//! The running job's lifecycle: WAIT JOB, STOP JOB [WITH SAVEPOINT], CANCEL JOB.

use std::collections::BTreeMap;

use crate::catalog::JobStatus;
use crate::checkpoint::coordinator::RequestKind;
use crate::engine::session::{Output, Session};
use crate::error::{Error, Result};
use crate::settings::CheckpointRetention;

impl Session {
    pub(crate) fn job_missing(&self, job: &str) -> Error {
        match self.database().catalog_snapshot().map(|c| c.jobs.get(job).map(|j| j.status)) {
            Ok(Some(status)) => Error::invalid_state(format!("job '{job}' is {}, not RUNNING", status.name())),
            _ => Error::not_found("job", job),
        }
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
