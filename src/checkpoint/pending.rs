//! `PendingCheckpoints`: the coordinator's bookkeeping of checkpoints in flight, without any I/O.
//! Which task acked which checkpoint, which tasks finished (a finished task stands in for every
//! later checkpoint with its final source position), which checkpoint is acked by every task (in
//! id order: checkpoints complete in the order they were triggered) and which ones timed out.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use crate::checkpoint::commit::StagedSinkRows;
use crate::checkpoint::coordinator::CheckpointRequest;
use crate::checkpoint::manifest::SourceState;
use crate::graph::SubtaskId;
use crate::runtime::SourcePosition;
use crate::runtime::task::TaskAck;

/// A triggered checkpoint that has not completed yet.
#[derive(Debug)]
pub struct PendingCheckpoint {
    pub id: u64,
    pub trigger_time: SystemTime,
    pub started: Instant,
    /// Acks by task index.
    pub acks: HashMap<usize, TaskAck>,
    /// Who asked for this checkpoint, if it was not periodic.
    pub request: Option<CheckpointRequest>,
    /// Staged rows of earlier epochs whose checkpoints failed, oldest first: committed with this
    /// checkpoint, before its own (set when every task has acked it).
    pub carried: Vec<StagedSinkRows>,
}

pub struct PendingCheckpoints {
    task_count: usize,
    pending: BTreeMap<u64, PendingCheckpoint>,
    /// Finished tasks, with a source task's final (uid, subtask, position).
    finished: HashMap<usize, Option<(SubtaskId, SourcePosition)>>,
    /// Rows the sinks staged after their last barrier: committed when the whole job has finished.
    final_rows: Vec<StagedSinkRows>,
    /// Rows staged for checkpoints that failed or expired, oldest first. They are committed with the
    /// next checkpoint that completes (as Flink's two-phase-commit sinks commit every pending
    /// transaction up to the completed checkpoint); dropping them would lose the epoch's rows.
    carried: Vec<StagedSinkRows>,
}

impl PendingCheckpoints {
    pub fn new(task_count: usize) -> Self {
        PendingCheckpoints {
            task_count,
            pending: BTreeMap::new(),
            finished: HashMap::new(),
            final_rows: Vec::new(),
            carried: Vec::new(),
        }
    }

    pub fn trigger(&mut self, id: u64, request: Option<CheckpointRequest>) {
        self.pending.insert(
            id,
            PendingCheckpoint {
                id,
                trigger_time: SystemTime::now(),
                started: Instant::now(),
                acks: HashMap::new(),
                request,
                carried: Vec::new(),
            },
        );
    }

    /// Records a task's part. Of an ack of a checkpoint no longer pending (aborted), only the
    /// sink's staged rows are kept, for the next checkpoint.
    pub fn ack(&mut self, ack: TaskAck) {
        match self.pending.get_mut(&ack.checkpoint_id) {
            Some(p) => {
                p.acks.insert(ack.task, ack);
            }
            None => self.carry(ack.sink),
        }
    }

    /// Staged rows of a checkpoint that failed: committed with the next one that completes.
    pub fn carry(&mut self, staged: impl IntoIterator<Item = StagedSinkRows>) {
        self.carried.extend(staged.into_iter().filter(|(_, file)| file.is_some()));
    }

    /// A task ended: its final source position and the rows its sink staged after the last barrier.
    pub fn finish(&mut self, task: usize, source: Option<(SubtaskId, SourcePosition)>, sink: Option<StagedSinkRows>) {
        self.final_rows.extend(sink);
        self.finished.insert(task, source);
    }

    /// The oldest pending checkpoint, once every task has acked it or finished; removed from the
    /// pending ones. Later checkpoints wait for it, so they complete in order.
    pub fn take_acked(&mut self) -> Option<PendingCheckpoint> {
        let (&id, oldest) = self.pending.iter().next()?;
        let acked = (0..self.task_count).all(|t| oldest.acks.contains_key(&t) || self.finished.contains_key(&t));
        if !acked {
            return None;
        }
        let mut checkpoint = self.pending.remove(&id)?;
        checkpoint.carried = std::mem::take(&mut self.carried);
        Some(checkpoint)
    }

    /// Removes and returns the checkpoints triggered more than `timeout` ago.
    pub fn take_expired(&mut self, timeout: Duration) -> Vec<PendingCheckpoint> {
        let expired: Vec<u64> = self
            .pending
            .values()
            .filter(|p| p.started.elapsed() > timeout)
            .map(|p| p.id)
            .collect();
        let mut expired: Vec<PendingCheckpoint> = expired.iter().filter_map(|id| self.pending.remove(id)).collect();
        for checkpoint in &mut expired {
            let staged: Vec<_> = checkpoint.acks.values_mut().filter_map(|ack| ack.sink.take()).collect();
            self.carry(staged);
        }
        expired
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether every one of the job's `sources` source tasks has finished (no barrier can be
    /// injected any more).
    pub fn sources_finished(&self, sources: usize) -> bool {
        self.finished.values().filter(|f| f.is_some()).count() >= sources
    }

    /// Whether every task has finished.
    pub fn all_finished(&self) -> bool {
        self.finished.len() == self.task_count
    }

    /// The final positions of the finished source tasks (they stand in for their acks).
    pub fn finished_sources(&self) -> Vec<SourceState> {
        self.finished
            .values()
            .flatten()
            .map(|(id, position)| SourceState {
                uid: id.uid.clone(),
                subtask: id.subtask,
                position: position.clone(),
            })
            .collect()
    }

    /// The rows staged after the last barrier, after those carried from failed checkpoints.
    pub fn take_final_rows(&mut self) -> Vec<StagedSinkRows> {
        let mut rows = std::mem::take(&mut self.carried);
        rows.append(&mut self.final_rows);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::staging::StagedFile;

    fn ack(checkpoint_id: u64, task: usize) -> TaskAck {
        TaskAck {
            checkpoint_id,
            task,
            operators: Vec::new(),
            source: None,
            sink: None,
            sync_duration: Duration::ZERO,
            alignment: Default::default(),
            in_flight: None,
        }
    }

    #[test]
    fn completes_in_order_once_every_task_acked() {
        let mut p = PendingCheckpoints::new(2);
        p.trigger(1, None);
        p.trigger(2, None);
        p.ack(ack(2, 0));
        p.ack(ack(2, 1));
        // 2 is acked by all, but 1 is older and waits for task 1.
        p.ack(ack(1, 0));
        assert!(p.take_acked().is_none());
        p.ack(ack(1, 1));
        assert_eq!(p.take_acked().map(|c| c.id), Some(1));
        assert_eq!(p.take_acked().map(|c| c.id), Some(2));
        assert!(p.take_acked().is_none());
        assert!(p.is_empty());
    }

    #[test]
    fn a_finished_task_stands_in_and_late_acks_are_dropped() {
        let mut p = PendingCheckpoints::new(2);
        p.trigger(1, None);
        p.ack(ack(1, 0));
        p.finish(1, Some((SubtaskId::new("source-s", 0), serde_json::json!(42))), None);
        let done = p.take_acked().expect("acked");
        assert_eq!(done.acks.len(), 1);
        assert_eq!(p.finished_sources()[0].position, serde_json::json!(42));
        assert!(p.sources_finished(1));
        assert!(!p.all_finished());
        // An ack for a checkpoint no longer pending changes nothing.
        p.ack(ack(1, 0));
        assert!(p.is_empty());
    }

    #[test]
    fn expired_checkpoints_are_taken_out() {
        let mut p = PendingCheckpoints::new(1);
        p.trigger(1, None);
        assert!(p.take_expired(Duration::from_secs(60)).is_empty());
        std::thread::sleep(Duration::from_millis(5));
        let expired = p.take_expired(Duration::from_millis(1));
        assert_eq!(expired.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1]);
        assert!(p.is_empty());
    }

    fn sink_ack(checkpoint_id: u64, task: usize, file: &str) -> TaskAck {
        TaskAck {
            sink: Some((SubtaskId::new("sink", task), Some(StagedFile { path: file.into() }))),
            ..ack(checkpoint_id, task)
        }
    }

    fn files(staged: &[StagedSinkRows]) -> Vec<String> {
        staged
            .iter()
            .filter_map(|(_, f)| f.as_ref().map(|f| f.path.display().to_string()))
            .collect()
    }

    /// The staged rows of an expired checkpoint, of a late ack and of a checkpoint whose
    /// completion failed go to the next checkpoint that every task acks, oldest first.
    #[test]
    fn staged_rows_of_failed_checkpoints_are_carried_to_the_next() {
        let mut p = PendingCheckpoints::new(2);
        p.trigger(1, None);
        p.ack(sink_ack(1, 0, "e1-t0"));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(p.take_expired(Duration::from_millis(1)).len(), 1);
        p.ack(sink_ack(1, 1, "e1-t1"));
        p.trigger(2, None);
        p.ack(sink_ack(2, 0, "e2-t0"));
        p.ack(sink_ack(2, 1, "e2-t1"));
        let second = p.take_acked().expect("acked");
        assert_eq!(files(&second.carried), ["e1-t0", "e1-t1"]);
        // Its completion failed: the completer hands everything back.
        let mut returned = second.carried;
        returned.extend(second.acks.into_values().filter_map(|a| a.sink));
        p.carry(returned);
        p.trigger(3, None);
        p.ack(ack(3, 0));
        p.finish(
            1,
            None,
            Some((SubtaskId::new("sink", 1), Some(StagedFile { path: "final-t1".into() }))),
        );
        let third = p.take_acked().expect("acked");
        assert_eq!(files(&third.carried).len(), 4);
        assert_eq!(files(&third.carried)[..2], ["e1-t0", "e1-t1"]);
        assert!(p.take_final_rows().len() == 1);
    }
}
