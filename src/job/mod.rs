//! The job manager: turns a `JobGraph` into running tasks (one per operator chain × parallelism,
//! joined by bounded channels), runs the checkpoint coordinator beside them, and supervises the
//! job: a failed task fails the whole job over, which restarts from its latest complete checkpoint
//! as the restart strategy allows.

pub mod builder;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::catalog::JobStatus;
use crate::checkpoint::commit::SinkCommitter;
use crate::checkpoint::complete::{BlockingWork, CheckpointCompleter};
use crate::checkpoint::coordinator::{CheckpointCoordinator, CheckpointRequest, CompletedCheckpoint, RequestKind};
use crate::checkpoint::history::CheckpointHistory;
use crate::checkpoint::manifest::CheckpointManifest;
use crate::checkpoint::restore::{choose_restore_point, commit_staged_again};
use crate::checkpoint::storage::CheckpointStorage;
use crate::connectors::table_store::{LaterEpochs, TableStore};
use crate::data_dir::{DataDir, FileRoots, JobDir};
use crate::error::{Error, Result, UserErrorKind};
use crate::graph::JobGraph;
use crate::runtime::metrics::{JobMetrics, RestoreFigures};

pub use crate::settings::{JobSettings, RestartStrategy};

/// Called when a job reaches a terminal status, so the catalog can record it.
pub type StatusListener = Arc<dyn Fn(&str, JobStatus, Option<String>) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct JobState {
    pub status: JobStatus,
    pub error: Option<String>,
    pub started_at: SystemTime,
    started: Instant,
    pub finished_after: Option<Duration>,
    /// Why the job last failed over (it may have recovered since).
    pub last_failure: Option<String>,
}

pub struct RunningJob {
    pub name: String,
    pub graph: JobGraph,
    pub settings: JobSettings,
    pub job_sql: String,
    pub metrics: Arc<JobMetrics>,
    pub checkpoints: Arc<Mutex<CheckpointHistory>>,
    /// Restarts in this process: what the fixed-delay strategy counts against its attempts.
    /// SHOW JOBS shows the history's total, which goes on across restarts of the process.
    restarts: AtomicU64,
    state: Mutex<JobState>,
    status_tx: watch::Sender<JobStatus>,
    /// The status a stop request ends the job in (CANCELED or STOPPED).
    cancel_tx: watch::Sender<Option<JobStatus>>,
    /// Where user checkpoint / savepoint requests go while an attempt runs.
    requests: Mutex<Option<tokio::sync::mpsc::UnboundedSender<CheckpointRequest>>>,
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
    pub records_skipped: u64,
    /// Source rows per second since the job started (until it finished).
    pub rows_per_second: f64,
    pub rows_out_per_second: f64,
    /// Seconds since the job started (until it finished).
    pub uptime_seconds: f64,
    pub started_at: SystemTime,
    pub restarts: u64,
    pub last_failure: Option<String>,
    pub last_checkpoint: Option<String>,
    /// The latest restore's progress (`None`: the job has not restored in this process).
    pub restore: Option<RestoreFigures>,
    /// Median and 99th percentile of window-close-to-sink latency, once windows fired.
    pub window_latency_p50: Option<Duration>,
    pub window_latency_p99: Option<Duration>,
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
            records_skipped: self.metrics.records_skipped(),
            window_latency_p50: self.metrics.window_latency.quantile(0.5),
            window_latency_p99: self.metrics.window_latency.quantile(0.99),
            rows_per_second: if elapsed > 0.0 { rows_in as f64 / elapsed } else { 0.0 },
            rows_out_per_second: if elapsed > 0.0 {
                self.metrics.rows_out() as f64 / elapsed
            } else {
                0.0
            },
            uptime_seconds: elapsed,
            started_at: state.started_at,
            // Across restarts of the process (the history log), unlike the strategy's count.
            restarts: self.checkpoints.lock().map_or(0, |h| h.totals.restarts),
            last_failure: state.last_failure,
            last_checkpoint: self.checkpoints.lock().ok().and_then(|h| h.latest_path.clone()),
            restore: self.metrics.restore.figures(),
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

    /// A non-terminal status change (RUNNING, FAILING, RESTARTING).
    fn set_status(&self, status: JobStatus) {
        if let Ok(mut state) = self.state.lock() {
            state.status = status;
        }
    }

    fn note_failure(&self, error: &str) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut history) = self.checkpoints.lock() {
            history.record_restart(error);
        }
        if let Ok(mut state) = self.state.lock() {
            state.last_failure = Some(error.to_string());
        }
    }

    /// The job's checkpoint directory (also used by savepoints of jobs without periodic checkpoints).
    pub fn checkpoint_storage(&self, data_dir: &std::path::Path) -> Result<Arc<CheckpointStorage>> {
        let data = DataDir::new(data_dir);
        let location = self.settings.checkpoint_location(&data, &self.name);
        CheckpointStorage::open(&location, data.remote_copies(&location.to_string()), self.settings.local_recovery())
    }

    /// Asks the running attempt for a checkpoint or savepoint and waits for it.
    pub async fn request_checkpoint(&self, kind: RequestKind) -> Result<CompletedCheckpoint> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sender = self.requests.lock().map_err(|_| Error::internal("job lock poisoned"))?.clone();
        let status = self.snapshot().status;
        let sender = sender.filter(|_| status == JobStatus::Running).ok_or_else(|| {
            Error::invalid_state(format!(
                "job '{}' is {}, not RUNNING; only a running job takes savepoints",
                self.name,
                status.name()
            ))
        })?;
        sender
            .send(CheckpointRequest { kind, reply })
            .map_err(|_| Error::invalid_state(format!("job '{}' is restarting; try again", self.name)))?;
        answer
            .await
            .map_err(|_| Error::invalid_state(format!("job '{}' stopped before the checkpoint completed", self.name)))?
    }
}

/// How one run (attempt) of a job ended.
enum AttemptEnd {
    Finished,
    /// Stopped on request, ending in this status.
    Canceled(JobStatus),
    Failed(Error),
    /// The runtime cancelled a task: the process is shutting down. The job keeps the status it has
    /// in the catalog (RUNNING), so the next start resumes it.
    Abandoned,
}

pub struct JobManager {
    data_dir: PathBuf,
    /// Where a job's file sources may read (checked again at every attempt).
    file_roots: FileRoots,
    table_store: Arc<TableStore>,
    jobs: Mutex<HashMap<String, Arc<RunningJob>>>,
    listener: StatusListener,
    /// Set when the process is about to exit: jobs ending from then on are being torn down with the
    /// runtime, and must not record an end in the catalog (the next start resumes them).
    exiting: Arc<AtomicBool>,
}

/// A job just listed by `JobManager::register`, not yet started.
struct Registered {
    runner: JobRunner,
    /// Where its STOP / CANCEL requests arrive.
    cancel: watch::Receiver<Option<JobStatus>>,
    /// The job of that name it replaced in the list (an ended one), put back if it fails to start.
    previous: Option<Arc<RunningJob>>,
}

impl JobManager {
    pub fn new(data_dir: PathBuf, file_roots: FileRoots, table_store: Arc<TableStore>, listener: StatusListener) -> Self {
        JobManager {
            data_dir,
            file_roots,
            table_store,
            jobs: Mutex::new(HashMap::new()),
            listener,
            exiting: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The process is about to exit: the jobs it tears down keep their catalog status.
    pub fn prepare_exit(&self) {
        self.exiting.store(true, Ordering::SeqCst);
    }

    fn jobs(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Arc<RunningJob>>>> {
        self.jobs.lock().map_err(|_| Error::internal("job table lock poisoned"))
    }

    pub fn get(&self, name: &str) -> Result<Option<Arc<RunningJob>>> {
        Ok(self.jobs()?.get(name).cloned())
    }

    pub fn snapshots(&self) -> Result<Vec<JobSnapshot>> {
        Ok(self.running()?.iter().map(|j| j.snapshot()).collect())
    }

    /// The jobs of this process (running or ended), by name.
    pub fn running(&self) -> Result<Vec<Arc<RunningJob>>> {
        let mut jobs: Vec<Arc<RunningJob>> = self.jobs()?.values().cloned().collect();
        jobs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(jobs)
    }

    /// Starts a job: from its latest complete checkpoint if it has one, else from the beginning.
    /// The first attempt's tasks are built before this returns, so planning mistakes surface here.
    /// `restore`: a savepoint (or retained checkpoint) to start from while the job has no checkpoint
    /// of its own.
    pub fn start(
        &self,
        name: &str,
        graph: JobGraph,
        settings: JobSettings,
        job_sql: String,
        restore: Option<(CheckpointManifest, Arc<CheckpointStorage>)>,
    ) -> Result<()> {
        let Registered { runner, cancel, previous } = self.register(name, graph, settings, job_sql, restore)?;
        match runner.prepare_off_workers() {
            Ok(first) => {
                runner.job.set_status(JobStatus::Running);
                self.supervise_in_background(runner, Some(first), cancel);
                Ok(())
            }
            Err(e) => {
                // Whoever waits for the job to end (a STOP while it restored) sees it end.
                let status = (*runner.job.cancel_tx.borrow()).unwrap_or(JobStatus::Failed);
                runner.job.finish(status, Some(e.to_string()));
                // The job never ran: SHOW JOBS shows what it showed before.
                let mut jobs = self.jobs()?;
                match previous {
                    Some(previous) => jobs.insert(name.to_string(), previous),
                    None => jobs.remove(name),
                };
                Err(e)
            }
        }
    }

    /// Starts a job that ran when the process stopped, from its latest complete checkpoint, and
    /// returns at once: it is listed (CREATED, then RESTORING with its progress) while it restores,
    /// and a restore that fails is retried as the restart strategy allows.
    pub fn resume(&self, name: &str, graph: JobGraph, settings: JobSettings, job_sql: String) -> Result<()> {
        let Registered { runner, cancel, .. } = self.register(name, graph, settings, job_sql, None)?;
        self.supervise_in_background(runner, None, cancel);
        Ok(())
    }

    /// Lists a new job (CREATED).
    fn register(
        &self,
        name: &str,
        graph: JobGraph,
        settings: JobSettings,
        job_sql: String,
        restore: Option<(CheckpointManifest, Arc<CheckpointStorage>)>,
    ) -> Result<Registered> {
        let (status_tx, _) = watch::channel(JobStatus::Created);
        let (cancel_tx, cancel_rx) = watch::channel(None);
        let uploads_to_fail = settings.checkpoints.as_ref().map_or(0, |c| c.fail_uploads);
        let uploads_to_hang = settings.checkpoints.as_ref().map_or(0, |c| c.hang_uploads);
        // What the job did before the process last stopped: its checkpoints, restarts and record
        // counts go on from there.
        let history_log = DataDir::new(&self.data_dir).job(name).history_log();
        let mut history = CheckpointHistory::open(&history_log).unwrap_or_else(|e| {
            tracing::warn!("job {name}: starting a new checkpoint history: {e}");
            CheckpointHistory::default()
        });
        history.uploads_to_fail = uploads_to_fail;
        history.uploads_to_hang = uploads_to_hang;
        let metrics = JobMetrics::default();
        metrics.add_rows_in(history.totals.records_in as usize);
        metrics.add_rows_out(history.totals.records_out as usize);
        let job = Arc::new(RunningJob {
            name: name.to_string(),
            graph,
            settings,
            job_sql,
            metrics: Arc::new(metrics),
            // The restart strategy's budget is this process's: restarts before it do not count.
            restarts: AtomicU64::new(0),
            state: Mutex::new(JobState {
                status: JobStatus::Created,
                error: None,
                started_at: SystemTime::now(),
                started: Instant::now(),
                finished_after: None,
                last_failure: history.totals.last_failure.clone(),
            }),
            checkpoints: Arc::new(Mutex::new(history)),
            status_tx,
            cancel_tx,
            requests: Mutex::new(None),
        });
        let previous = self.jobs()?.insert(name.to_string(), job.clone());
        let runner = JobRunner {
            job,
            data_dir: self.data_dir.clone(),
            file_roots: self.file_roots.clone(),
            store: self.table_store.clone(),
            initial: restore,
            attempts: AtomicU64::new(0),
        };
        Ok(Registered {
            runner,
            cancel: cancel_rx,
            previous,
        })
    }

    /// Runs the job's attempts (from `first`, or from a new one) on a task of its own, and records
    /// how the job ended.
    fn supervise_in_background(&self, runner: JobRunner, first: Option<Attempt>, cancel: watch::Receiver<Option<JobStatus>>) {
        let listener = self.listener.clone();
        let exiting = self.exiting.clone();
        tokio::spawn(async move {
            let end = runner.supervise(first, cancel).await;
            if exiting.load(Ordering::SeqCst) {
                return;
            }
            let (status, error) = match end {
                AttemptEnd::Abandoned => return,
                AttemptEnd::Finished => (JobStatus::Finished, None),
                AttemptEnd::Canceled(status) => (status, None),
                AttemptEnd::Failed(e) => (JobStatus::Failed, Some(e.to_string())),
            };
            let job = runner.job.clone();
            // The runner holds the table store: gone before waiters see the job end (a process
            // that reopens the data directory next must find it unlocked).
            drop(runner);
            // Record the status durably before waiters see it.
            listener(&job.name, status, error.clone());
            job.finish(status, error);
        });
    }

    /// Stops a running job's tasks at once and waits until they are gone; the job ends in `status`.
    pub async fn cancel(&self, name: &str, status: JobStatus) -> Result<()> {
        let Some(job) = self.get(name)? else { return Ok(()) };
        job.cancel_tx.send_replace(Some(status));
        // A restore under way ends at its next file rather than run to its end first.
        job.metrics.restore.stop();
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

/// An attempt, built and ready to run.
struct Attempt {
    tasks: Vec<crate::runtime::task::Task>,
    coordinator: CheckpointCoordinator,
}

struct JobRunner {
    job: Arc<RunningJob>,
    data_dir: PathBuf,
    file_roots: FileRoots,
    store: Arc<TableStore>,
    /// Where to start while the job has no complete checkpoint of its own (RESTORE JOB).
    initial: Option<(CheckpointManifest, Arc<CheckpointStorage>)>,
    /// Attempts prepared so far (names each attempt's local snapshot directory).
    attempts: AtomicU64,
}

impl JobRunner {
    fn job_dir(&self) -> JobDir {
        DataDir::new(&self.data_dir).job(&self.job.name)
    }

    /// Commits the sinks' staged rows of an epoch into the job's result tables and Kafka tables.
    fn committer(&self) -> Result<Arc<SinkCommitter>> {
        Ok(Arc::new(SinkCommitter::new(
            &self.job.name,
            &self.job.graph,
            self.store.clone(),
            &self.file_roots,
        )?))
    }

    /// `prepare`, without holding one of the runtime's few worker threads: it blocks on I/O for as
    /// long as a restore takes (listing, downloading and checking a checkpoint, loading state), and
    /// every session and job of the process would stall meanwhile.
    fn prepare_off_workers(&self) -> Result<Attempt> {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.prepare())
            }
            // A single-threaded runtime (tests) cannot hand its other tasks to another thread.
            _ => self.prepare(),
        }
    }

    /// Builds the tasks of the next attempt, restored from the latest complete checkpoint (or the
    /// savepoint the job was restored from, while it has no checkpoint of its own).
    fn prepare(&self) -> Result<Attempt> {
        let job = &self.job;
        let storage = job.checkpoint_storage(&self.data_dir)?;
        // One committer per attempt: its Kafka producers fence those of earlier attempts once.
        let committer = self.committer()?;
        // Aborted checkpoints go first; what is left (or a savepoint) is a restore to show.
        let complete = storage.remove_incomplete()?;
        if self.initial.is_some() || !complete.is_empty() {
            job.set_status(JobStatus::Restoring);
        }
        let progress = &job.metrics.restore;
        let (restore, warnings) = choose_restore_point(&storage, self.initial.as_ref(), &job.graph, progress)?;
        // A newer checkpoint did not read back: its epochs may be committed already.
        let fell_back = !warnings.is_empty();
        for warning in warnings {
            tracing::warn!("job {}: {warning}", job.name);
            if let Ok(mut state) = job.state.lock() {
                state.last_failure = Some(warning);
            }
        }
        if let Some(point) = &restore {
            if fell_back {
                // The job replays those epochs from this older point, cut where its new barriers
                // fall: the sinks take back what they committed after it first, or rows would be
                // skipped as committed, or land twice.
                let (manifest, _) = point;
                let subtasks = job
                    .graph
                    .operators
                    .iter()
                    .map(|o| o.parallelism)
                    .chain([manifest.parallelism])
                    .max();
                committer.rewind(manifest.checkpoint_id, subtasks.unwrap_or(1), LaterEpochs::Undo)?;
            }
            commit_staged_again(point, &committer, progress)?;
            let (manifest, files) = point;
            if let Ok(mut history) = job.checkpoints.lock() {
                history.latest_path = Some(files.checkpoint_location(manifest.checkpoint_id));
            }
        }
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let job_dir = self.job_dir();
        // Local snapshots of earlier attempts are useless now. A snapshot writer thread of an
        // aborted attempt may still be writing into its directory (nothing waits for the writers of
        // a checkpoint that never completed), so each attempt has its own, and old ones go as far as
        // they can.
        let snapshots = job_dir.snapshots();
        if let Ok(entries) = std::fs::read_dir(&snapshots) {
            for entry in entries.flatten() {
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!("job {}: cannot remove old snapshots yet: {e}", job.name);
                }
            }
        }
        let snapshots = job_dir.attempt_snapshots(self.attempts.fetch_add(1, Ordering::Relaxed));
        let built = builder::build_tasks(
            &job.graph,
            &builder::BuildContext {
                job: &job.name,
                settings: &job.settings,
                job_dir: &job_dir,
                snapshot_dir: &snapshots,
                store: &self.store,
                file_roots: &self.file_roots,
                metrics: &job.metrics,
                restore: restore.as_ref().map(|(m, s)| (m, s.as_ref())),
                events: events_tx,
                transactional_sinks: job.settings.checkpoints.is_some(),
            },
        )?;
        let (requests_tx, requests_rx) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut requests) = job.requests.lock() {
            *requests = Some(requests_tx);
        }
        // Only checkpoints of this job's own storage can be retained (a savepoint is not ours to delete).
        let retained: Vec<CheckpointManifest> = match (&restore, &self.initial) {
            (Some((m, files)), _) if files.location() == storage.location() => vec![m.clone()],
            _ => Vec::new(),
        };
        let settings = job.settings.checkpoints.clone().unwrap_or_default();
        let completer = CheckpointCompleter {
            job: job.name.clone(),
            job_sql: job.job_sql.clone(),
            operator_uids: job.graph.operators.iter().map(|o| o.uid.clone()).collect(),
            parallelism: job.settings.parallelism,
            backend: job.settings.state_backend.name().to_string(),
            incremental: settings.incremental,
            num_retained: settings.num_retained,
            timeout: settings.timeout,
            storage,
            committer,
            history: job.checkpoints.clone(),
            metrics: job.metrics.clone(),
            blocking: BlockingWork::default(),
        };
        let coordinator = CheckpointCoordinator {
            settings,
            completer: Arc::new(completer),
            triggers: built.triggers,
            events: events_rx,
            task_count: built.tasks.len(),
            next_id: restore.as_ref().map_or(1, |(m, _)| m.checkpoint_id + 1),
            retained,
            periodic: job.settings.checkpoints.is_some(),
            requests: requests_rx,
        };
        Ok(Attempt {
            tasks: built.tasks,
            coordinator,
        })
    }

    /// Runs attempts until the job finishes, is canceled, or fails beyond its restart strategy.
    async fn supervise(&self, first: Option<Attempt>, mut cancel: watch::Receiver<Option<JobStatus>>) -> AttemptEnd {
        let mut attempt = first;
        let mut failures: Vec<Instant> = Vec::new();
        let mut backoff = None;
        loop {
            // Stopped while it waited to restart (or to resume): no restore to do.
            if let Some(status) = *cancel.borrow() {
                return AttemptEnd::Canceled(status);
            }
            let result = match attempt.take().map(Ok).unwrap_or_else(|| self.prepare_off_workers()) {
                Ok(attempt) => {
                    self.job.set_status(JobStatus::Running);
                    self.run(attempt, &mut cancel).await
                }
                Err(e) => AttemptEnd::Failed(e),
            };
            let error = match result {
                // A restore ended by a stop request fails; the job ends as the request says.
                AttemptEnd::Failed(_) if cancel.borrow().is_some() => {
                    return AttemptEnd::Canceled(cancel.borrow().unwrap_or(JobStatus::Canceled));
                }
                AttemptEnd::Failed(error) => error,
                other => return other,
            };
            self.job.set_status(JobStatus::Failing);
            let delay = match &self.job.settings.restart {
                RestartStrategy::None => None,
                RestartStrategy::FixedDelay { attempts, delay } => {
                    (self.job.restarts.load(Ordering::Relaxed) < u64::from(*attempts)).then_some(*delay)
                }
                RestartStrategy::FailureRate {
                    max_failures,
                    interval,
                    delay,
                } => {
                    failures.push(Instant::now());
                    failures.retain(|t| t.elapsed() <= *interval);
                    (failures.len() <= *max_failures as usize).then_some(*delay)
                }
                RestartStrategy::ExponentialDelay { initial, max, multiplier } => {
                    let next = crate::settings::next_backoff(backoff, *initial, *max, *multiplier);
                    backoff = Some(next);
                    Some(next)
                }
            };
            let Some(delay) = delay else { return AttemptEnd::Failed(error) };
            tracing::warn!("job {} failed ({error}); restarting in {delay:?}", self.job.name);
            self.job.note_failure(&error.to_string());
            self.job.set_status(JobStatus::Restarting);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.changed() => return AttemptEnd::Canceled(cancel.borrow().unwrap_or(JobStatus::Canceled)),
            }
        }
    }

    async fn run(&self, attempt: Attempt, cancel: &mut watch::Receiver<Option<JobStatus>>) -> AttemptEnd {
        let mut set = JoinSet::new();
        for task in attempt.tasks {
            set.spawn(task.run());
        }
        let blocking = attempt.coordinator.completer.blocking.clone();
        set.spawn(attempt.coordinator.run());
        let end = loop {
            tokio::select! {
                next = set.join_next() => match next {
                    None => break AttemptEnd::Finished,
                    Some(Ok(Ok(()))) => continue,
                    Some(Ok(Err(e))) => break AttemptEnd::Failed(e),
                    Some(Err(e)) if e.is_panic() => break AttemptEnd::Failed(Error::internal(format!("a task panicked: {e}"))),
                    // Only the runtime cancels a task before the loop ends; taking the remaining
                    // tasks' end for the job's would record FINISHED for a job that is not.
                    Some(Err(_)) => break AttemptEnd::Abandoned,
                },
                                changed = cancel.changed() => {
                    let requested = *cancel.borrow();
                    if changed.is_err() || requested.is_some() {
                        break AttemptEnd::Canceled(requested.unwrap_or(JobStatus::Canceled));
                    }
                }
            }
        };
        set.abort_all();
        while set.join_next().await.is_some() {}
        // As long as a checkpoint may take: work still running then is as good as failed.
        let limit = self
            .job
            .settings
            .checkpoints
            .as_ref()
            .map_or(Duration::from_secs(600), |c| c.timeout);
        if !blocking.finished(limit).await {
            tracing::warn!(
                "job {}: checkpoint work of the ended attempt still runs after {limit:?}; going on without it",
                self.job.name
            );
        }
        // A checkpoint in flight when the attempt ended is aborted: its files go.
        if let Ok(mut requests) = self.job.requests.lock() {
            *requests = None;
        }
        let cleaned = self
            .job
            .checkpoint_storage(&self.data_dir)
            .and_then(|storage| storage.remove_incomplete().and_then(|_| storage.remove_unreferenced_shared()));
        if let Err(e) = cleaned {
            tracing::warn!("job {}: cannot remove aborted checkpoints: {e}", self.job.name);
        }
        end
    }
}
