//! The job manager: turns a `JobGraph` into running tasks (one per operator chain × parallelism,
//! joined by bounded channels), supervises them, and tracks each job's status and metrics.

pub mod builder;
pub mod settings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::catalog::JobStatus;
use crate::connectors::table_store::TableStore;
use crate::error::{Error, Result, UserErrorKind};
use crate::graph::JobGraph;
use crate::runtime::metrics::JobMetrics;

pub use settings::JobSettings;

/// Called when a job reaches a terminal status, so the catalog can record it.
pub type StatusListener = Arc<dyn Fn(&str, JobStatus, Option<String>) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct JobState {
    pub status: JobStatus,
    pub error: Option<String>,
    pub started_at: SystemTime,
    started: Instant,
    pub finished_after: Option<std::time::Duration>,
}

pub struct RunningJob {
    pub name: String,
    pub graph: JobGraph,
    pub settings: JobSettings,
    pub metrics: Arc<JobMetrics>,
    state: Mutex<JobState>,
    status_tx: watch::Sender<JobStatus>,
    cancel_tx: watch::Sender<bool>,
}

/// What SHOW JOBS and DESCRIBE JOB print about a job.
#[derive(Debug, Clone)]
pub struct JobSnapshot {
    pub name: String,
    pub status: JobStatus,
    pub error: Option<String>,
    pub parallelism: usize,
    pub rows_in: u64,
    pub rows_out: u64,
    pub late_rows_dropped: u64,
    /// Source rows per second since the job started (until it finished).
    pub rows_per_second: f64,
    pub started_at: SystemTime,
    pub graph: JobGraph,
}

impl RunningJob {
    pub fn snapshot(&self) -> JobSnapshot {
        let state = self.state.lock().map(|s| s.clone()).unwrap_or_else(|e| e.into_inner().clone());
        let elapsed = state.finished_after.unwrap_or_else(|| state.started.elapsed()).as_secs_f64();
        let rows_in = self.metrics.rows_in();
        JobSnapshot {
            name: self.name.clone(),
            status: state.status,
            error: state.error,
            parallelism: self.settings.parallelism,
            rows_in,
            rows_out: self.metrics.rows_out(),
            late_rows_dropped: self.metrics.late_rows_dropped(),
            rows_per_second: if elapsed > 0.0 { rows_in as f64 / elapsed } else { 0.0 },
            started_at: state.started_at,
            graph: self.graph.clone(),
        }
    }

    fn finish(&self, status: JobStatus, error: Option<String>) {
        if let Ok(mut state) = self.state.lock() {
            state.status = status;
            state.error = error;
            state.finished_after = Some(state.started.elapsed());
        }
        self.status_tx.send_replace(status);
    }
}

pub struct JobManager {
    data_dir: PathBuf,
    table_store: Arc<TableStore>,
    jobs: Mutex<HashMap<String, Arc<RunningJob>>>,
    listener: StatusListener,
}

impl JobManager {
    pub fn new(data_dir: PathBuf, table_store: Arc<TableStore>, listener: StatusListener) -> Self {
        JobManager {
            data_dir,
            table_store,
            jobs: Mutex::new(HashMap::new()),
            listener,
        }
    }

    fn jobs(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Arc<RunningJob>>>> {
        self.jobs.lock().map_err(|_| Error::internal("job table lock poisoned"))
    }

    pub fn get(&self, name: &str) -> Result<Option<Arc<RunningJob>>> {
        Ok(self.jobs()?.get(name).cloned())
    }

    pub fn snapshots(&self) -> Result<Vec<JobSnapshot>> {
        let mut snapshots: Vec<JobSnapshot> = self.jobs()?.values().map(|j| j.snapshot()).collect();
        snapshots.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(snapshots)
    }

    /// Builds the job's tasks and starts them; returns once they are running.
    pub fn start(&self, name: &str, graph: JobGraph, settings: JobSettings) -> Result<()> {
        let metrics = Arc::new(JobMetrics::default());
        let state_dir = self.data_dir.join("jobs").join(name).join("state");
        let tasks = builder::build_tasks(&graph, &settings, &state_dir, &self.table_store, &metrics)?;
        let (status_tx, _) = watch::channel(JobStatus::Running);
        let (cancel_tx, mut cancel_rx) = watch::channel(false);
        let job = Arc::new(RunningJob {
            name: name.to_string(),
            graph,
            settings,
            metrics,
            state: Mutex::new(JobState {
                status: JobStatus::Running,
                error: None,
                started_at: SystemTime::now(),
                started: Instant::now(),
                finished_after: None,
            }),
            status_tx,
            cancel_tx,
        });
        self.jobs()?.insert(name.to_string(), job.clone());
        let mut set = JoinSet::new();
        for task in tasks {
            set.spawn(task.run());
        }
        let listener = self.listener.clone();
        tokio::spawn(async move {
            let outcome: std::result::Result<(), Option<String>> = loop {
                tokio::select! {
                    next = set.join_next() => match next {
                        None => break Ok(()),
                        Some(Ok(Ok(()))) => continue,
                        Some(Ok(Err(e))) => break Err(Some(e.to_string())),
                        Some(Err(e)) if e.is_panic() => break Err(Some(format!("a task panicked: {e}"))),
                        Some(Err(_)) => continue,
                    },
                    changed = cancel_rx.changed() => {
                        if changed.is_err() || *cancel_rx.borrow() {
                            break Err(None);
                        }
                    }
                }
            };
            set.abort_all();
            while set.join_next().await.is_some() {}
            let (status, error) = match outcome {
                Ok(()) => (JobStatus::Finished, None),
                Err(Some(error)) => (JobStatus::Failed, Some(error)),
                Err(None) => (JobStatus::Canceled, None),
            };
            // Record the status durably before waiters see it.
            listener(&job.name, status, error.clone());
            job.finish(status, error);
        });
        Ok(())
    }

    /// Stops a running job's tasks and waits until they are gone.
    pub async fn cancel(&self, name: &str) -> Result<()> {
        let Some(job) = self.get(name)? else {
            return Ok(());
        };
        job.cancel_tx.send_replace(true);
        let mut status = job.status_tx.subscribe();
        while !status.borrow_and_update().is_terminal() {
            if status.changed().await.is_err() {
                break;
            }
        }
        Ok(())
    }

    pub fn forget(&self, name: &str) -> Result<()> {
        self.jobs()?.remove(name);
        Ok(())
    }

    /// Waits until the job is FINISHED (Ok), FAILED (the job's error) or CANCELED.
    pub async fn wait(&self, name: &str) -> Result<JobStatus> {
        let job = self.get(name)?.ok_or_else(|| Error::not_found("running job", name))?;
        let mut status = job.status_tx.subscribe();
        loop {
            let current = *status.borrow_and_update();
            if current.is_terminal() {
                let snapshot = job.snapshot();
                return match current {
                    JobStatus::Failed => Err(Error::user(
                        UserErrorKind::JobFailed,
                        format!("job '{name}' failed: {}", snapshot.error.unwrap_or_default()),
                    )),
                    other => Ok(other),
                };
            }
            if status.changed().await.is_err() {
                return Ok(job.snapshot().status);
            }
        }
    }
}
