//! `CheckpointCoordinator`: one per job run, the loop of the barrier control plane. Every interval
//! (after the minimum pause, with at most `max-concurrent` in flight) it triggers checkpoint n by
//! sending a barrier to every source task, and it collects the tasks' acks (`pending`). A
//! checkpoint every task acked is completed beside the loop (`complete`: upload, `_metadata`,
//! commit, retention), one at a time and in order, so triggers, acks and timeouts are handled
//! while an upload runs. A checkpoint that times out is aborted and its files removed, even when
//! its upload hangs; too many failures in a row fail the job over.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use crate::catalog::SavepointFormat;
use crate::checkpoint::commit::remove_staging;
use crate::checkpoint::complete::{CheckpointCompleter, CompletionOutcome};
use crate::checkpoint::history::CheckpointRecord;
use crate::checkpoint::manifest::CheckpointManifest;
use crate::checkpoint::pending::PendingCheckpoints;
use crate::error::{Error, Result};
use crate::message::{Barrier, BarrierKind, SourceControl};
use crate::runtime::staging::FINAL_EPOCH;
use crate::runtime::task::TaskEvent;
use crate::settings::{CheckpointSettings, StorageLocation};

/// What a user asked for: a savepoint (exported into `dir`; `scratch` is a local directory for
/// one bound for S3) or a checkpoint now (STOP JOB).
#[derive(Debug)]
pub enum RequestKind {
    Checkpoint,
    Savepoint {
        dir: Box<StorageLocation>,
        scratch: PathBuf,
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
    /// A path or `s3://` URL.
    pub path: String,
    pub size: u64,
}

pub struct CheckpointCoordinator {
    pub settings: CheckpointSettings,
    pub completer: Arc<CheckpointCompleter>,
    /// One trigger channel per source task.
    pub triggers: Vec<UnboundedSender<SourceControl>>,
    pub events: UnboundedReceiver<TaskEvent>,
    pub task_count: usize,
    pub next_id: u64,
    /// Manifests of the retained checkpoints, oldest first (seeded with the one restored from).
    pub retained: Vec<CheckpointManifest>,
    /// Whether checkpoints are taken every interval (otherwise only on request).
    pub periodic: bool,
    pub requests: UnboundedReceiver<CheckpointRequest>,
}

/// The completion running beside the loop.
type Completion = Pin<Box<dyn Future<Output = CompletionOutcome> + Send>>;

/// The outcome of the running completion; never resolves without one.
async fn next_outcome(completing: &mut Option<Completion>) -> CompletionOutcome {
    match completing {
        Some(completion) => completion.as_mut().await,
        None => std::future::pending().await,
    }
}

impl CheckpointCoordinator {
    /// Runs until every task has finished (then commits the rows staged after the last
    /// checkpoint) or until checkpoints fail more often than tolerated.
    pub async fn run(mut self) -> Result<()> {
        let mut pending = PendingCheckpoints::new(self.task_count);
        let mut completing: Option<Completion> = None;
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
                    // Abort checkpoints that took too long to be acked (a completion enforces the
                    // timeout on its own upload).
                    for expired in pending.take_expired(self.settings.timeout) {
                        self.completer.fail(expired, "timed out before every task acknowledged it");
                        consecutive_failures += 1;
                    }
                    self.check_failures(consecutive_failures)?;
                    let in_flight = pending.len() + usize::from(completing.is_some());
                    let due = self.periodic && last_trigger.elapsed() >= self.settings.interval && last_completion.elapsed() >= self.settings.min_pause;
                    let sources_finished = pending.sources_finished(self.triggers.len());
                    let request = if sources_finished { None } else { self.requests.try_recv().ok() };
                    if request.is_some() || (due && in_flight < self.settings.max_concurrent as usize && !sources_finished) {
                        last_trigger = Instant::now();
                        self.trigger(&mut pending, request);
                    }
                }
                event = self.events.recv(), if !pending.all_finished() => match event {
                    Some(TaskEvent::Ack(ack)) => pending.ack(ack),
                    Some(TaskEvent::Finished { task, source, sink }) => pending.finish(task, source, sink),
                    None => return Err(Error::internal("the job's tasks stopped without finishing")),
                },
                outcome = next_outcome(&mut completing), if completing.is_some() => {
                    completing = None;
                    self.retained = outcome.retained;
                    match outcome.result {
                        Ok(()) => {
                            consecutive_failures = 0;
                            last_completion = Instant::now();
                            for trigger in &self.triggers {
                                let _ = trigger.send(SourceControl::Completed(outcome.id));
                            }
                        }
                        Err(e) if outcome.commit_failed => return Err(e),
                        Err(e) => {
                            pending.carry(outcome.carry);
                            consecutive_failures += 1;
                            tracing::warn!("checkpoint {} of job {} failed: {e}", outcome.id, self.completer.job);
                            if consecutive_failures > self.settings.tolerable_failed {
                                return Err(e.context(format!("checkpoint {} failed", outcome.id)));
                            }
                        }
                    }
                }
            }
            // Start completing the oldest checkpoint every task acked, once the previous one is done.
            if completing.is_none()
                && let Some(acked) = pending.take_acked()
            {
                let retained = std::mem::take(&mut self.retained);
                completing = Some(Box::pin(self.completer.clone().complete(
                    acked,
                    pending.finished_sources(),
                    retained,
                )));
            }
            if completing.is_none() && pending.is_empty() && pending.all_finished() {
                // End of input: the rows staged after the last checkpoint become visible.
                let final_rows = pending.take_final_rows();
                self.completer.committer.commit(FINAL_EPOCH, final_rows.clone())?;
                remove_staging(&final_rows);
                return Ok(());
            }
        }
    }

    fn check_failures(&self, consecutive_failures: u32) -> Result<()> {
        if consecutive_failures > self.settings.tolerable_failed {
            return Err(Error::internal(format!(
                "{consecutive_failures} checkpoints failed in a row (execution.checkpointing.tolerable-failed-checkpoints = {})",
                self.settings.tolerable_failed
            )));
        }
        Ok(())
    }

    /// Triggers the next checkpoint: a barrier to every source task.
    fn trigger(&mut self, pending: &mut PendingCheckpoints, request: Option<CheckpointRequest>) {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(request) = &request {
            tracing::info!("job {}: {:?} requested", self.completer.job, request.kind);
        }
        let kind = match request.as_ref().map(|r| &r.kind) {
            Some(RequestKind::Savepoint { stop: true, .. }) => BarrierKind::StopSavepoint,
            Some(RequestKind::Savepoint { stop: false, .. }) => BarrierKind::Savepoint,
            Some(RequestKind::Checkpoint) | None => BarrierKind::Checkpoint,
        };
        pending.trigger(id, request);
        self.completer.record(CheckpointRecord::in_progress(id, SystemTime::now()));
        for trigger in &self.triggers {
            // A finished source task is gone; it is covered by its final position.
            let _ = trigger.send(SourceControl::Trigger(Barrier::new(id, kind)));
        }
    }
}
