//! Running operators: the `Operator`, `Source` and `Sink` traits, the input gate that merges a
//! task's input channels (tracking watermarks; where barriers will be aligned), the exchange that
//! routes rows to downstream subtasks by key group, and the task loop that ties them together.

pub mod barrier_aligner;
pub mod exchange;
pub mod gate;
pub mod metrics;
pub mod staging;
pub mod task;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use std::path::{Path, PathBuf};

use crate::state::pending_files::PendingFiles;

use crate::message::{EventTime, Message};

/// What a stateful operator subtask contributes to a checkpoint: the files of its state snapshot,
/// all under `dir` (still local, some possibly still being written; the coordinator waits for them,
/// uploads them and removes `dir`), and small metadata kept in the manifest.
#[derive(Debug)]
pub struct OperatorSnapshot {
    pub dir: PathBuf,
    pub files: Vec<PendingFiles>,
    pub meta: serde_json::Value,
}

/// A step of a task's chain. Each method receives one input message and pushes what it emits into `out`.
pub trait Operator: Send {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()>;

    /// A batch from input `input` of an operator with several (a join: 0 left, 1 right). Only
    /// the first operator of a task can have several inputs.
    fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let _ = input;
        self.process(batch, out)
    }

    /// The input's watermark advanced. Stateful operators fire what it completes, then forward it.
    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        out.push(Message::Watermark(watermark));
        Ok(())
    }

    /// A barrier reached this operator: write its state as of now into `dir` (a new directory).
    /// Stateless operators have nothing to write.
    fn snapshot(&mut self, _dir: &Path) -> Result<Option<OperatorSnapshot>> {
        Ok(None)
    }

    /// Takes back the metadata of a snapshot (the state backend was already restored from its files).
    fn restore(&mut self, _meta: &serde_json::Value) -> Result<()> {
        Ok(())
    }

    /// Continues work a call above left unfinished so its output could be delivered first (a big
    /// window firing); returns whether more is left. The task calls it until it returns false
    /// before it passes the next message, so no barrier ever sees the work half done.
    fn resume(&mut self, _out: &mut Vec<Message>) -> Result<bool> {
        Ok(false)
    }

    /// Bytes of state the operator holds in its backend now, estimated; `None`: it keeps none.
    fn state_bytes(&self) -> Option<u64> {
        None
    }

    /// No more input. Emits whatever remains before `End` is forwarded.
    fn on_end(&mut self, _out: &mut Vec<Message>) -> Result<()> {
        Ok(())
    }
}

/// Feeds one data, watermark or end message through one operator. Barriers are handled by the task.
pub fn dispatch(op: &mut dyn Operator, message: Message, out: &mut Vec<Message>) -> Result<()> {
    dispatch_input(op, 0, message, out)
}

/// `dispatch` for a message that arrived on input `input` of the operator (a join's side).
pub fn dispatch_input(op: &mut dyn Operator, input: usize, message: Message, out: &mut Vec<Message>) -> Result<()> {
    match message {
        Message::Data(batch) => op.process_input(input, batch, out),
        Message::Watermark(w) => op.on_watermark(w, out),
        Message::Barrier(_) | Message::LatencyMarker(_) | Message::Idle => {
            out.push(message);
            Ok(())
        }
        Message::End => {
            op.on_end(out)?;
            out.push(Message::End);
            Ok(())
        }
    }
}

/// A source's place in its input (file row, generator sequence number), as a checkpoint records it.
pub type SourcePosition = serde_json::Value;

/// Where rows enter a job. One instance per source subtask.
#[async_trait]
pub trait Source: Send {
    /// The next batch, or `None` when bounded input is exhausted. Unbounded sources wait (and pace
    /// themselves) here.
    ///
    /// Must be cancel-safe: the task drops the call when a checkpoint barrier arrives first (or
    /// the idle timeout passes) and calls again later, so a call that did not return must not have
    /// consumed any input. Wait first, then take the rows.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>>;
    /// Where the next batch would start.
    fn position(&self) -> SourcePosition;
    /// Resumes at a position `position` returned (restore from a checkpoint).
    fn seek(&mut self, position: &SourcePosition) -> Result<()>;

    /// Sources that read several independently ordered splits (Kafka partitions): the split the
    /// batch `next_batch` last returned came from (each batch comes from one split).
    fn last_split(&self) -> Option<SplitId> {
        None
    }

    /// Sources that read splits: the splits this subtask reads now (it may find more later).
    fn splits(&self) -> Vec<SplitId> {
        Vec::new()
    }

    /// Whether the subtask has nothing to read at all (a Kafka source subtask that owns no
    /// partition): the task declares it idle at once, so it does not hold back the watermark
    /// downstream (Flink's readers without splits are idle too).
    fn has_no_input(&self) -> bool {
        false
    }

    /// Sources that generate their own watermarks: where watermarks go in the batch `next_batch`
    /// last returned, as (row, watermark): the watermark is emitted before that row (after the
    /// batch when the row is its length). The task asks after every batch.
    fn take_watermarks(&mut self) -> Vec<(usize, EventTime)> {
        Vec::new()
    }

    /// Records the source has still to read from where they are (a Kafka source: its
    /// partitions' offsets behind their log end, as of the last fetch), where it knows; for
    /// `/metrics`. The task asks after every batch and on its ticks.
    fn backlog(&self) -> Option<u64> {
        None
    }

    /// Records dropped as malformed since the last call (`json.ignore-parse-errors`). The task
    /// asks after every batch and at every barrier (a source skipping only bad records hands out
    /// no batch) and counts them in the job's `records_skipped`.
    fn take_skipped_records(&mut self) -> u64 {
        0
    }

    /// The checkpoint in which the source was at `position` completed (Flink's
    /// notifyCheckpointComplete). Kafka commits the offsets to its consumer group then, for lag
    /// monitoring only; nothing may depend on it for correctness.
    fn checkpoint_completed(&mut self, _position: &SourcePosition) {}
}

/// One split of a source subtask's input, numbered by the source (a Kafka topic partition).
pub type SplitId = u32;

/// The table side of a lookup join (Flink's `JOIN t FOR SYSTEM_TIME AS OF o.proc_time`): rows
/// read by key as each probe row arrives, as they are at that moment.
pub trait LookupTable: Send {
    /// The rows whose key columns equal each probe row's `keys` (one array per key column, of the
    /// key columns' types, one element per probe row; a NULL matches nothing): the index of the
    /// probe row each found row belongs to, and the found rows.
    fn lookup(&mut self, keys: &[ArrayRef]) -> Result<(Vec<u32>, RecordBatch)>;
}

/// Where rows leave a job. One instance per sink subtask.
pub trait Sink: Send {
    fn write(&mut self, batch: RecordBatch) -> Result<()>;
    /// Checkpoint cut (two-phase commit, phase one): hands over the file of the rows staged since
    /// the last barrier; they become visible when the checkpoint completes. Sinks that are not
    /// transactional return nothing.
    fn prepare_commit(&mut self) -> Result<Option<staging::StagedFile>> {
        Ok(None)
    }
    /// End of input: make everything still staged visible.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
