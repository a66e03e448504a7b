//! `CheckpointCoordinator`: one per job run. Every interval (after the minimum pause, with at most
//! `max-concurrent` in flight) it triggers checkpoint n by sending a barrier to every source task.
//! It collects each task's ack (a finished task stands in with its final position), uploads the
//! snapshot files, writes `chk-n/_metadata` last, then commits the sinks' rows staged in epoch n
//! (two-phase commit) and drops checkpoints beyond `num-retained`. A checkpoint that times out is
//! aborted and its files removed; too many failures in a row fail the job over.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use crate::catalog::SavepointFormat;
use crate::checkpoint::manifest::{CheckpointManifest, OperatorState, SinkState, SourceState};
use crate::checkpoint::savepoint;
use crate::checkpoint::storage::CheckpointStorage;
use crate::error::{Error, Result};
use crate::job::settings::CheckpointSettings;
use crate::message::{Barrier, BarrierKind};
use crate::runtime::SourcePosition;
use crate::runtime::task::{TaskAck, TaskEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointStatus {
    InProgress,
    Completed,
    Failed,
}

impl CheckpointStatus {
    pub fn name(self) -> &'static str {
        match self {
            CheckpointStatus::InProgress => "IN_PROGRESS",
            CheckpointStatus::Completed => "COMPLETED",
            CheckpointStatus::Failed => "FAILED",
        }
    }
}

/// One line of SHOW CHECKPOINTS.
#[derive(Debug, Clone)]
pub struct CheckpointRecord {
    pub id: u64,
    pub status: CheckpointStatus,
    pub trigger_time: SystemTime,
    pub duration: Duration,
    pub sync: Duration,
    pub asynchronous: Duration,
    pub bytes_uploaded: u64,
    pub full_size: u64,
    pub path: String,
    pub failure: Option<String>,
}

/// What a job remembers of its checkpoints across runs (for SHOW CHECKPOINTS and DESCRIBE JOB).
#[derive(Debug, Default)]
pub struct CheckpointHistory {
    pub records: Vec<CheckpointRecord>,
    pub latest_path: Option<String>,
    /// Uploads still to fail on purpose (`debug.checkpoint.fail-uploads`), across restarts.
    pub uploads_to_fail: u32,
}

/// Commits the staged rows of a checkpoint epoch into the result tables: (sink uid, subtask, rows).
pub type Committer = Arc<dyn Fn(u64, Vec<(String, usize, Vec<RecordBatch>)>) -> Result<()> + Send + Sync>;

/// Epoch number of the rows a sink staged after the last checkpoint, committed when input ends.
pub const FINAL_EPOCH: u64 = u64::MAX;

struct Pending {
    trigger_time: SystemTime,
    started: Instant,
    acks: HashMap<usize, TaskAck>,
    /// Who asked for this checkpoint, if it was not periodic.
    request: Option<CheckpointRequest>,
}

/// What a user asked for: a savepoint (exported into `dir`) or a checkpoint now (STOP JOB).
#[derive(Debug)]
pub enum RequestKind {
    Checkpoint,
    Savepoint {
        dir: PathBuf,
        format: SavepointFormat,
        /// The job stops right after it: sources emit nothing after the barrier.
        stop: bool,
    },
}

#[derive(Debug)]
pub struct CheckpointRequest {
    pub kind: RequestKind,
    pub reply: oneshot::Sender<Result<CompletedCheckpoint>>,
}

/// A checkpoint or savepoint that completed: its id, where it is, and how big.
#[derive(Debug, Clone)]
pub struct CompletedCheckpoint {
    pub id: u64,
    pub path: PathBuf,
    pub size: u64,
}

pub struct CheckpointCoordinator {
    pub job: String,
    pub job_sql: String,
    pub operator_uids: Vec<String>,
    pub parallelism: usize,
    pub backend: String,
    pub settings: CheckpointSettings,
    pub storage: Arc<CheckpointStorage>,
    /// One trigger channel per source task.
    pub triggers: Vec<UnboundedSender<Barrier>>,
    pub events: UnboundedReceiver<TaskEvent>,
    pub task_count: usize,
    pub next_id: u64,
    pub committer: Committer,
    pub history: Arc<Mutex<CheckpointHistory>>,
    /// Manifests of the retained checkpoints, oldest first (seeded with the one restored from).
    pub retained: Vec<CheckpointManifest>,
    /// Whether checkpoints are taken every interval (otherwise only on request).
    pub periodic: bool,
    pub requests: UnboundedReceiver<CheckpointRequest>,
    /// The coordinator's blocking work, which outlives an abort of its task.
    pub blocking: BlockingWork,
}

/// The coordinator's blocking work (uploads, metadata writes, cleanup, savepoint exports). Aborting
/// the coordinator's task does not stop a closure already running on tokio's blocking pool, and one
/// left running could write a manifest or checkpoint files after the next attempt chose its restore
/// point (and the checkpoint ids it will use): the supervisor waits for it before the next attempt.
#[derive(Clone, Default)]
pub struct BlockingWork(Arc<()>);

impl BlockingWork {
    fn spawn<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> tokio::task::JoinHandle<T> {
        let held = self.clone();
        tokio::task::spawn_blocking(move || {
            let _held = held;
            work()
        })
    }

    /// Resolves once no work is running and every other holder (the coordinator) is gone, or
    /// after `limit` (false then: a write that hangs must not keep the job from restarting).
    pub async fn finished(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while Arc::strong_count(&self.0) > 1 {
            if started.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl CheckpointCoordinator {
    /// Runs until every task has finished (then commits the rows staged after the last
    /// checkpoint) or until checkpoints fail more often than tolerated.
    pub async fn run(mut self) -> Result<()> {
        let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
        let mut finished: HashMap<usize, Option<(String, usize, SourcePosition)>> = HashMap::new();
        let mut final_rows: Vec<(String, usize, Vec<RecordBatch>)> = Vec::new();
        let mut consecutive_failures = 0u32;
        let mut last_completion = Instant::now();
        let tick = if self.periodic {
            self.settings.interval.min(Duration::from_millis(50)).max(Duration::from_millis(1))
        } else {
            Duration::from_millis(50)
        };
        let mut ticker = tokio::time::interval(tick);
        let mut last_trigger = Instant::now();
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    // Abort checkpoints that took too long.
                    let expired: Vec<u64> = pending.iter().filter(|(_, p)| p.started.elapsed() > self.settings.timeout).map(|(id, _)| *id).collect();
                    for id in expired {
                        if let Some(mut p) = pending.remove(&id) {
                            self.fail(id, &p, "timed out")?;
                            if let Some(request) = p.request.take() {
                                let _ = request.reply.send(Err(Error::internal(format!("checkpoint {id} timed out"))));
                            }
                            consecutive_failures += 1;
                        }
                    }
                    if consecutive_failures > self.settings.tolerable_failed {
                        return Err(Error::internal(format!("{consecutive_failures} checkpoints failed in a row (execution.checkpointing.tolerable-failed-checkpoints = {})", self.settings.tolerable_failed)));
                    }
                    let due = self.periodic && last_trigger.elapsed() >= self.settings.interval && last_completion.elapsed() >= self.settings.min_pause;
                    let all_sources_done = finished.values().filter(|f| f.is_some()).count() >= self.triggers.len();
                    let request = if all_sources_done { None } else { self.requests.try_recv().ok() };
                    if let Some(request) = &request {
                        tracing::info!("job {}: {:?} requested", self.job, request.kind);
                    }
                    if request.is_some() || (due && pending.len() < self.settings.max_concurrent as usize && !all_sources_done) {
                        let id = self.next_id;
                        self.next_id += 1;
                        last_trigger = Instant::now();
                        let kind = match request.as_ref().map(|r| &r.kind) {
                            Some(RequestKind::Savepoint { stop: true, .. }) => BarrierKind::StopSavepoint,
                            Some(RequestKind::Savepoint { stop: false, .. }) => BarrierKind::Savepoint,
                            Some(RequestKind::Checkpoint) | None => BarrierKind::Checkpoint,
                        };
                        pending.insert(id, Pending { trigger_time: SystemTime::now(), started: Instant::now(), acks: HashMap::new(), request });
                        self.record(CheckpointRecord { id, status: CheckpointStatus::InProgress, trigger_time: SystemTime::now(), duration: Duration::ZERO, sync: Duration::ZERO, asynchronous: Duration::ZERO, bytes_uploaded: 0, full_size: 0, path: String::new(), failure: None });
                        for trigger in &self.triggers {
                            // A finished source task is gone; it is covered by its final position.
                            let _ = trigger.send(Barrier { checkpoint_id: id, kind });
                        }
                    }
                }
                event = self.events.recv() => {
                    match event {
                        Some(TaskEvent::Ack(ack)) => {
                            if let Some(p) = pending.get_mut(&ack.checkpoint_id) {
                                p.acks.insert(ack.task, ack);
                            }
                        }
                        Some(TaskEvent::Finished { task, source, sink }) => {
                            if let Some(rows) = sink {
                                final_rows.push(rows);
                            }
                            finished.insert(task, source);
                        }
                        None => return Err(Error::internal("the job's tasks stopped without finishing")),
                    }
                    // Complete, in order, every checkpoint all tasks have acked or finished for.
                    while let Some((&id, p)) = pending.iter().next() {
                        if (0..self.task_count).all(|t| p.acks.contains_key(&t) || finished.contains_key(&t)) {
                            let Some(mut p) = pending.remove(&id) else { break };
                            let request = p.request.take();
                            let result = self.complete(id, p, &finished).await;
                            let result = match (result, request) {
                                (Ok(done), Some(request)) => {
                                    let answer = self.answer(&request.kind, done).await;
                                    let failed = answer.as_ref().err().map(|e| Error::internal(e.to_string()));
                                    let _ = request.reply.send(answer);
                                    match failed {
                                        Some(e) => Err(e),
                                        None => Ok(()),
                                    }
                                }
                                (Ok(_), None) => Ok(()),
                                (Err(e), Some(request)) => {
                                    let _ = request.reply.send(Err(Error::internal(e.to_string())));
                                    Err(e)
                                }
                                (Err(e), None) => Err(e),
                            };
                            match result {
                                Ok(()) => {
                                    consecutive_failures = 0;
                                    last_completion = Instant::now();
                                }
                                Err(e) => {
                                    consecutive_failures += 1;
                                    tracing::warn!("checkpoint {id} of job {} failed: {e}", self.job);
                                    if consecutive_failures > self.settings.tolerable_failed {
                                        return Err(e.context(format!("checkpoint {id} failed")));
                                    }
                                }
                            }
                        } else {
                            break;
                        }
                    }
                    if finished.len() == self.task_count && pending.is_empty() {
                        // End of input: the rows staged after the last checkpoint become visible.
                        (self.committer)(FINAL_EPOCH, final_rows)?;
                        return Ok(());
                    }
                }
            }
        }
    }

    fn record(&self, record: CheckpointRecord) {
        if let Ok(mut history) = self.history.lock() {
            match history.records.iter_mut().find(|r| r.id == record.id) {
                Some(existing) => *existing = record,
                None => history.records.push(record),
            }
        }
    }

    fn fail(&self, id: u64, pending: &Pending, why: &str) -> Result<()> {
        self.storage.discard(id)?;
        self.record_failure(id, &pending.trigger_time, pending.started, why);
        Ok(())
    }

    /// Answers a user's request once its checkpoint completed; a savepoint is exported first.
    async fn answer(&self, kind: &RequestKind, done: (CheckpointManifest, PathBuf)) -> Result<CompletedCheckpoint> {
        let (manifest, path) = done;
        match kind {
            RequestKind::Checkpoint => Ok(CompletedCheckpoint {
                id: manifest.checkpoint_id,
                path,
                size: manifest.full_size,
            }),
            RequestKind::Savepoint { dir, format, .. } => {
                let (storage, target, format) = (self.storage.clone(), dir.clone(), *format);
                let id = manifest.checkpoint_id;
                let export_dir = target.clone();
                let (_, size) = self
                    .blocking
                    .spawn(move || savepoint::export(&storage, &manifest, &export_dir, format))
                    .await
                    .map_err(|e| Error::internal(format!("savepoint export failed: {e}")))??;
                Ok(CompletedCheckpoint { id, path: target, size })
            }
        }
    }

    /// Uploads the acked snapshots, writes the manifest, commits the staged rows, applies retention.
    async fn complete(
        &mut self,
        id: u64,
        pending: Pending,
        finished: &HashMap<usize, Option<(String, usize, SourcePosition)>>,
    ) -> Result<(CheckpointManifest, PathBuf)> {
        let storage = self.storage.clone();
        let incremental = self.settings.incremental;
        let backend = self.backend.clone();
        let sync = pending.acks.values().map(|a| a.sync_duration).max().unwrap_or_default();
        let async_started = Instant::now();
        let mut sources: Vec<SourceState> = finished
            .values()
            .flatten()
            .map(|(uid, subtask, position)| SourceState {
                uid: uid.clone(),
                subtask: *subtask,
                position: position.clone(),
            })
            .collect();
        let acks: Vec<TaskAck> = pending.acks.into_values().collect();
        let mut staged_rows = Vec::new();
        let mut to_upload = Vec::new();
        let mut sinks = Vec::new();
        for ack in acks {
            if let Some((uid, subtask, position)) = ack.source {
                sources.push(SourceState { uid, subtask, position });
            }
            if let Some((uid, subtask, rows)) = ack.sink {
                staged_rows.push((uid, subtask, rows));
            }
            to_upload.extend(ack.operators);
        }
        let inject_failure = self
            .history
            .lock()
            .map(|mut h| {
                let fail = h.uploads_to_fail > 0;
                h.uploads_to_fail = h.uploads_to_fail.saturating_sub(1);
                fail
            })
            .unwrap_or(false);
        let upload = self.blocking.spawn(move || -> Result<(Vec<OperatorState>, Vec<SinkState>, u64)> {
            if inject_failure {
                return Err(Error::internal(
                    "injected checkpoint upload failure (debug.checkpoint.fail-uploads)",
                ));
            }
            let mut operators = Vec::new();
            let mut uploaded = 0;
            for (uid, subtask, snapshot) in to_upload {
                let mut local = Vec::new();
                for pending in snapshot.files {
                    local.extend(pending.wait()?);
                }
                let (files, bytes) = storage.upload_state(id, &format!("{uid}-{subtask}"), &local, incremental)?;
                uploaded += bytes;
                operators.push(OperatorState {
                    uid,
                    subtask,
                    backend: backend.clone(),
                    files,
                    meta: snapshot.meta,
                });
                // The local snapshot (hard links) is no longer needed.
                let _ = std::fs::remove_dir_all(&snapshot.dir);
            }
            for (uid, subtask, rows) in &staged_rows {
                let staged = storage.write_staged(id, &format!("sink-{uid}-{subtask}"), rows)?;
                uploaded += staged.as_ref().map_or(0, |f| f.size);
                sinks.push(SinkState {
                    uid: uid.clone(),
                    subtask: *subtask,
                    staged,
                });
            }
            Ok((operators, sinks, uploaded))
        });
        let (operators, sinks, bytes_uploaded) = match upload.await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                let _ = self.storage.discard(id);
                self.record_failure(id, &pending.trigger_time, pending.started, &e.to_string());
                return Err(e);
            }
            Err(e) => return Err(Error::internal(format!("checkpoint upload task failed: {e}"))),
        };
        let mut manifest = CheckpointManifest {
            job: self.job.clone(),
            checkpoint_id: id,
            job_sql: self.job_sql.clone(),
            operator_uids: self.operator_uids.clone(),
            parallelism: self.parallelism,
            sources,
            operators,
            sinks,
            trigger_time_ms: pending
                .trigger_time
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            sync_ms: sync.as_millis() as u64,
            async_ms: 0,
            bytes_uploaded,
            full_size: 0,
            incremental,
        };
        manifest.full_size = manifest.files().map(|f| f.size).sum();
        manifest.async_ms = async_started.elapsed().as_millis() as u64;
        let storage = self.storage.clone();
        let written = manifest.clone();
        let path = self
            .blocking
            .spawn(move || storage.write_manifest(&written))
            .await
            .map_err(|e| Error::internal(format!("writing checkpoint metadata failed: {e}")))??;
        // The checkpoint is complete: phase two of the sinks' commit.
        let staged = self.storage.staged_rows(&manifest)?;
        (self.committer)(id, staged)?;
        self.retained.push(manifest.clone());
        while self.retained.len() > self.settings.num_retained {
            self.retained.remove(0);
        }
        let storage = self.storage.clone();
        let retained = self.retained.clone();
        self.blocking
            .spawn(move || storage.retain(&retained))
            .await
            .map_err(|e| Error::internal(format!("checkpoint cleanup failed: {e}")))??;
        let path = path.display().to_string();
        if let Ok(mut history) = self.history.lock() {
            history.latest_path = Some(path.clone());
        }
        self.record(CheckpointRecord {
            id,
            status: CheckpointStatus::Completed,
            trigger_time: pending.trigger_time,
            duration: pending.started.elapsed(),
            sync,
            asynchronous: Duration::from_millis(manifest.async_ms),
            bytes_uploaded,
            full_size: manifest.full_size,
            path: path.clone(),
            failure: None,
        });
        Ok((manifest, PathBuf::from(path)))
    }

    fn record_failure(&self, id: u64, trigger_time: &SystemTime, started: Instant, why: &str) {
        self.record(CheckpointRecord {
            id,
            status: CheckpointStatus::Failed,
            trigger_time: *trigger_time,
            duration: started.elapsed(),
            sync: Duration::ZERO,
            asynchronous: Duration::ZERO,
            bytes_uploaded: 0,
            full_size: 0,
            path: String::new(),
            failure: Some(why.to_string()),
        });
    }
}
