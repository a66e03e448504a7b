//! Completing a checkpoint every task acked: upload the snapshot files and the sinks' staged rows
//! (aborted when the checkpoint's timeout passes, even if the upload hangs), write `_metadata`
//! last, commit the staged rows (phase two), drop checkpoints beyond `num-retained`, and export a
//! requested savepoint. It runs beside the coordinator's loop, which goes on triggering and
//! timing out checkpoints meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::checkpoint::commit::{SinkCommitter, StagedSinkRows, remove_staging};
use crate::checkpoint::coordinator::{CompletedCheckpoint, RequestKind};
use crate::checkpoint::history::{CheckpointHistory, CheckpointRecord, CheckpointStatus, UploadFault};
use crate::checkpoint::manifest::{CheckpointManifest, InFlightState, OperatorState, SinkState, SourceState};
use crate::checkpoint::pending::PendingCheckpoint;
use crate::checkpoint::savepoint;
use crate::checkpoint::storage::CheckpointStorage;
use crate::error::{Error, Result};
use crate::runtime::metrics::JobMetrics;
use crate::runtime::task::TaskAck;

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

    /// Runs `work` on the blocking pool and waits for it; `what` names it if its thread died.
    async fn run<T: Send + 'static>(&self, what: &str, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        self.spawn(work).await.map_err(|e| Error::internal(format!("{what} failed: {e}")))?
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

/// Sets its flag when dropped.
struct AbortOnDrop(Arc<AtomicBool>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What completing a checkpoint needs; shared by the coordinator and its completions.
pub struct CheckpointCompleter {
    pub job: String,
    pub job_sql: String,
    pub operator_uids: Vec<String>,
    pub parallelism: usize,
    pub backend: String,
    pub incremental: bool,
    pub num_retained: usize,
    pub timeout: Duration,
    pub storage: Arc<CheckpointStorage>,
    pub committer: Arc<SinkCommitter>,
    pub history: Arc<Mutex<CheckpointHistory>>,
    /// The job's record counters, logged with each completed checkpoint.
    pub metrics: Arc<JobMetrics>,
    pub blocking: BlockingWork,
}

/// What a checkpoint's upload wrote, for its manifest.
struct Uploaded {
    operators: Vec<OperatorState>,
    sinks: Vec<SinkState>,
    in_flight: Vec<InFlightState>,
    bytes: u64,
}

/// How a completion ended. `retained` is the list of retained checkpoints to use from now on.
pub struct CompletionOutcome {
    pub id: u64,
    pub result: Result<()>,
    pub retained: Vec<CheckpointManifest>,
    /// The checkpoint completed but its sinks did not commit: the job must fail over (and a
    /// restore commit again) before a later epoch commits.
    pub commit_failed: bool,
    /// The staged rows of a checkpoint that failed before its commit: the next checkpoint commits them.
    pub carry: Vec<StagedSinkRows>,
}

impl CheckpointCompleter {
    pub fn record(&self, record: CheckpointRecord) {
        if let Ok(mut history) = self.history.lock() {
            history.record(record);
        }
    }

    /// Marks a checkpoint failed, removes its files and answers its request.
    pub fn fail(&self, checkpoint: PendingCheckpoint, why: &str) {
        if let Err(e) = self.storage.discard(checkpoint.id) {
            tracing::warn!("job {}: cannot remove failed checkpoint {}: {e}", self.job, checkpoint.id);
        }
        self.mark_failed(checkpoint, why);
    }

    /// Records a checkpoint as failed and answers its request, leaving its files as they are.
    fn mark_failed(&self, checkpoint: PendingCheckpoint, why: &str) {
        self.record(CheckpointRecord::failed(
            checkpoint.id,
            checkpoint.trigger_time,
            checkpoint.started,
            why,
        ));
        if let Some(request) = checkpoint.request {
            let _ = request
                .reply
                .send(Err(Error::internal(format!("checkpoint {} failed: {why}", checkpoint.id))));
        }
    }

    /// Completes `checkpoint` (acked by every task; `finished_sources` stand in for the source
    /// tasks that ended), applies retention to `retained`, and answers the checkpoint's request.
    pub async fn complete(
        self: Arc<Self>,
        mut checkpoint: PendingCheckpoint,
        finished_sources: Vec<SourceState>,
        mut retained: Vec<CheckpointManifest>,
    ) -> CompletionOutcome {
        let id = checkpoint.id;
        let mut acks: Vec<TaskAck> = std::mem::take(&mut checkpoint.acks).into_values().collect();
        // Rows of earlier failed checkpoints first, so that a later row of a key wins.
        let mut staged = std::mem::take(&mut checkpoint.carried);
        staged.extend(acks.iter_mut().filter_map(|ack| ack.sink.take()));
        let (manifest, path) = match self.persist(&checkpoint, acks, &staged, finished_sources).await {
            Ok(done) => done,
            Err(e) => {
                self.fail(checkpoint, &e.to_string());
                return CompletionOutcome {
                    id,
                    result: Err(e),
                    retained,
                    commit_failed: false,
                    carry: staged,
                };
            }
        };
        // Phase two of the sinks' commit (blocking: Kafka transactions wait for the brokers).
        // Failing here leaves the checkpoint in place, and fails the job over: a restore commits its
        // rows again, which must happen before any later epoch is committed.
        // The sinks' own staged files, which the checkpoint now holds copies of (on S3, reading
        // the copies back would download them).
        let (committer, rows) = (self.committer.clone(), staged.clone());
        let committed = self.blocking.run("sink commit", move || committer.commit(id, rows)).await;
        if let Err(e) = committed {
            self.mark_failed(checkpoint, &e.to_string());
            return CompletionOutcome {
                id,
                result: Err(e.context(format!("checkpoint {id} is complete but its sinks could not commit"))),
                retained,
                commit_failed: true,
                carry: Vec::new(),
            };
        }
        // The checkpoint holds the staged rows now, and they are committed.
        remove_staging(&staged);
        retained.push(manifest.clone());
        while retained.len() > self.num_retained {
            retained.remove(0);
        }
        let (storage, committer, keep) = (self.storage.clone(), self.committer.clone(), retained.clone());
        let cleaned = self
            .blocking
            .run("checkpoint cleanup", move || {
                storage.retain(&keep)?;
                // No fallback can go back behind the oldest retained checkpoint now.
                keep.first()
                    .map_or(Ok(()), |oldest| committer.forget_undo_until(oldest.checkpoint_id))
            })
            .await;
        if cleaned.is_ok() {
            let path_text = path.clone();
            if let Ok(mut history) = self.history.lock() {
                history.latest_path = Some(path_text.clone());
                history.note_counters(self.metrics.rows_in(), self.metrics.rows_out());
                history.state_sizes = manifest
                    .operators
                    .iter()
                    .map(|o| (o.uid.clone(), o.subtask, o.files.iter().map(|f| f.size).sum()))
                    .collect();
                history.record(CheckpointRecord {
                    status: CheckpointStatus::Completed,
                    duration: checkpoint.started.elapsed(),
                    sync: Duration::from_millis(manifest.sync_ms),
                    asynchronous: Duration::from_millis(manifest.async_ms),
                    bytes_uploaded: manifest.bytes_uploaded,
                    full_size: manifest.full_size,
                    unaligned: manifest.unaligned,
                    alignment: Duration::from_millis(manifest.alignment_ms),
                    in_flight_bytes: manifest.in_flight.iter().map(|s| s.file.size).sum(),
                    path: path_text,
                    ..CheckpointRecord::in_progress(id, checkpoint.trigger_time)
                });
            }
        }
        let result = match (cleaned, checkpoint.request) {
            (Err(e), Some(request)) => {
                let _ = request.reply.send(Err(Error::internal(e.to_string())));
                Err(e)
            }
            (Err(e), None) => Err(e),
            (Ok(()), Some(request)) => {
                let answer = self.answer(&request.kind, manifest, path).await;
                let result = answer.as_ref().map(|_| ()).map_err(|e| Error::internal(e.to_string()));
                let _ = request.reply.send(answer);
                result
            }
            (Ok(()), None) => Ok(()),
        };
        CompletionOutcome {
            id,
            result,
            retained,
            commit_failed: false,
            carry: Vec::new(),
        }
    }

    /// Uploads the acked snapshots and staged rows (given up when the checkpoint's timeout passes)
    /// and writes the manifest: the checkpoint is complete when this returns.
    async fn persist(
        &self,
        checkpoint: &PendingCheckpoint,
        acks: Vec<TaskAck>,
        staged: &[StagedSinkRows],
        mut sources: Vec<SourceState>,
    ) -> Result<(CheckpointManifest, String)> {
        let checkpoint_id = checkpoint.id;
        let sync = acks.iter().map(|a| a.sync_duration).max().unwrap_or_default();
        let alignment = acks.iter().map(|a| a.alignment.duration).max().unwrap_or_default();
        let unaligned = acks.iter().any(|a| a.alignment.unaligned);
        let async_started = Instant::now();
        let staged_rows = staged.to_vec();
        let mut to_upload = Vec::new();
        let mut in_flight_files = Vec::new();
        for ack in acks {
            in_flight_files.extend(ack.in_flight);
            if let Some((id, position)) = ack.source {
                sources.push(SourceState {
                    uid: id.uid,
                    subtask: id.subtask,
                    position,
                });
            }
            to_upload.extend(ack.operators);
        }
        let fault = self.history.lock().ok().and_then(|mut h| h.take_upload_fault());
        // Set when the checkpoint is given up (timeout, or the attempt ending drops this future):
        // the upload stops at its next file.
        let abort_on_drop = AbortOnDrop(Arc::new(AtomicBool::new(false)));
        let aborted = &abort_on_drop.0;
        let upload = {
            let (storage, aborted, backend, incremental) = (self.storage.clone(), aborted.clone(), self.backend.clone(), self.incremental);
            self.blocking.spawn(move || -> Result<Uploaded> {
                let check_aborted = || {
                    if aborted.load(Ordering::Relaxed) {
                        Err(Error::internal(format!("checkpoint {checkpoint_id} was aborted during its upload")))
                    } else {
                        Ok(())
                    }
                };
                match fault {
                    Some(UploadFault::Fail) => {
                        return Err(Error::internal(
                            "injected checkpoint upload failure (debug.checkpoint.fail-uploads)",
                        ));
                    }
                    Some(UploadFault::Hang) => loop {
                        check_aborted()?;
                        std::thread::sleep(Duration::from_millis(10));
                    },
                    None => {}
                }
                let mut operators = Vec::new();
                let mut uploaded = 0;
                for (id, snapshot) in to_upload {
                    check_aborted()?;
                    let mut local = Vec::new();
                    for pending in snapshot.files {
                        local.extend(pending.wait()?);
                    }
                    let (files, bytes) = storage.upload_state(checkpoint_id, &id.to_string(), &local, incremental)?;
                    uploaded += bytes;
                    operators.push(OperatorState {
                        uid: id.uid,
                        subtask: id.subtask,
                        backend: backend.clone(),
                        files,
                        meta: snapshot.meta,
                    });
                    // The local snapshot (hard links) is no longer needed.
                    let _ = std::fs::remove_dir_all(&snapshot.dir);
                }
                let mut sinks = Vec::new();
                for (n, (id, file)) in staged_rows.iter().enumerate() {
                    check_aborted()?;
                    let staged = match file {
                        Some(file) => Some(storage.keep_staged(checkpoint_id, &format!("sink-{id}-{n}"), file)?),
                        None => None,
                    };
                    uploaded += staged.as_ref().map_or(0, |f| f.size);
                    sinks.push(SinkState {
                        uid: id.uid.clone(),
                        subtask: id.subtask,
                        staged,
                    });
                }
                let mut in_flight = Vec::new();
                for (id, file) in in_flight_files {
                    check_aborted()?;
                    let kept = storage.keep_staged(checkpoint_id, &format!("in-flight-{id}"), &file)?;
                    uploaded += kept.size;
                    // The task's file is no longer needed (the checkpoint has its own copy).
                    if let Some(dir) = file.path.parent() {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    in_flight.push(InFlightState {
                        uid: id.uid,
                        subtask: id.subtask,
                        file: kept,
                    });
                }
                Ok(Uploaded {
                    operators,
                    sinks,
                    in_flight,
                    bytes: uploaded,
                })
            })
        };
        let deadline = tokio::time::Instant::from_std(checkpoint.started + self.timeout);
        let Uploaded {
            operators,
            sinks,
            in_flight,
            bytes: bytes_uploaded,
        } = match tokio::time::timeout_at(deadline, upload).await {
            Ok(Ok(done)) => done?,
            Ok(Err(e)) => return Err(Error::internal(format!("checkpoint upload task failed: {e}"))),
            Err(_) => {
                return Err(Error::internal(format!(
                    "timed out after {:?} (execution.checkpointing.timeout) while uploading",
                    self.timeout
                )));
            }
        };
        let mut manifest = CheckpointManifest {
            job: self.job.clone(),
            checkpoint_id,
            job_sql: self.job_sql.clone(),
            operator_uids: self.operator_uids.clone(),
            parallelism: self.parallelism,
            sources,
            operators,
            sinks,
            in_flight,
            unaligned,
            alignment_ms: alignment.as_millis() as u64,
            trigger_time_ms: checkpoint
                .trigger_time
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            sync_ms: sync.as_millis() as u64,
            async_ms: 0,
            bytes_uploaded,
            full_size: 0,
            incremental: self.incremental,
        };
        manifest.full_size = manifest.files().map(|f| f.size).sum();
        manifest.async_ms = async_started.elapsed().as_millis() as u64;
        let storage = self.storage.clone();
        let written = manifest.clone();
        let path = self
            .blocking
            .run("writing checkpoint metadata", move || storage.write_manifest(&written))
            .await?;
        Ok((manifest, path))
    }

    /// Answers a user's request once its checkpoint completed; a savepoint is exported first.
    async fn answer(&self, kind: &RequestKind, manifest: CheckpointManifest, path: String) -> Result<CompletedCheckpoint> {
        match kind {
            RequestKind::Checkpoint => Ok(CompletedCheckpoint {
                id: manifest.checkpoint_id,
                path,
                size: manifest.full_size,
            }),
            RequestKind::Savepoint { dir, scratch, format, .. } => {
                let (storage, target, scratch, format) = (self.storage.clone(), dir.clone(), scratch.clone(), *format);
                let id = manifest.checkpoint_id;
                let path = target.to_string();
                let (_, size) = self
                    .blocking
                    .run("savepoint export", move || {
                        savepoint::export(&storage, &manifest, &target, &scratch, format)
                    })
                    .await?;
                Ok(CompletedCheckpoint { id, path, size })
            }
        }
    }
}
