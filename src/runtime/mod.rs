//! Running operators: the `Operator`, `Source` and `Sink` traits, the input gate that merges a
//! task's input channels (tracking watermarks; where barriers will be aligned), the exchange that
//! routes rows to downstream subtasks by key group, and the task loop that ties them together.

pub mod exchange;
pub mod gate;
pub mod metrics;
pub mod task;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::message::{Barrier, EventTime, Message};

/// A step of a task's chain. Each method receives one input message and pushes what it emits into `out`.
pub trait Operator: Send {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()>;

    /// The input's watermark advanced. Stateful operators fire what it completes, then forward it.
    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        out.push(Message::Watermark(watermark));
        Ok(())
    }

    /// Checkpoint cut: stateful operators flush their caches to the state backend here.
    fn on_barrier(&mut self, _barrier: Barrier) -> Result<()> {
        Ok(())
    }

    /// No more input. Emits whatever remains before `End` is forwarded.
    fn on_end(&mut self, _out: &mut Vec<Message>) -> Result<()> {
        Ok(())
    }
}

/// Feeds one message through one operator, forwarding control messages it does not consume.
pub fn dispatch(op: &mut dyn Operator, message: Message, out: &mut Vec<Message>) -> Result<()> {
    match message {
        Message::Data(batch) => op.process(batch, out),
        Message::Watermark(w) => op.on_watermark(w, out),
        Message::Barrier(b) => {
            op.on_barrier(b)?;
            out.push(Message::Barrier(b));
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
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>>;
    /// Where the next batch would start.
    fn position(&self) -> SourcePosition;
    /// Resumes at a position `position` returned (restore from a checkpoint).
    fn seek(&mut self, position: &SourcePosition) -> Result<()>;
}

/// Reads a `u64` position, with a clear error for a checkpoint written by something else.
pub fn position_u64(position: &SourcePosition) -> Result<u64> {
    position
        .as_u64()
        .ok_or_else(|| crate::error::Error::internal(format!("source position {position} is not a row number")))
}

/// Where rows leave a job. One instance per sink subtask.
pub trait Sink: Send {
    fn write(&mut self, batch: RecordBatch) -> Result<()>;
    /// Checkpoint cut: make everything written so far durable (two-phase commit comes with checkpoints).
    fn on_barrier(&mut self, _barrier: Barrier) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
