//! What flows along the edges of a running job: data, event-time progress, barriers, end of stream.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};

/// Event time in nanoseconds since the epoch (the unit of every watermark and window bound).
pub type EventTime = i64;

/// The watermark that closes everything: a bounded source sends it before `End`.
pub const FINAL_WATERMARK: EventTime = i64::MAX;

/// An event-time column as nanoseconds since the epoch (nulls stay null).
pub fn event_time_nanos(column: &ArrayRef) -> Result<Int64Array> {
    match column.data_type() {
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
            let nanos = cast(column, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            let ints = cast(&nanos, &DataType::Int64)?;
            Ok(ints.as_primitive::<Int64Type>().clone())
        }
        other => Err(Error::type_mismatch(format!(
            "an event-time column must be a TIMESTAMP, not {other}"
        ))),
    }
}

#[derive(Debug, Clone)]
pub enum Message {
    Data(RecordBatch),
    /// No row with an event time below this will follow on this channel.
    Watermark(EventTime),
    /// Marks the cut of checkpoint `checkpoint_id` in the stream (Chandy-Lamport).
    Barrier(Barrier),
    /// Sent by a window aggregate right after the rows of the windows a watermark closed, stamped
    /// with when that watermark arrived. It travels behind those rows through the same channels, so
    /// the sink measures window-close-to-sink latency when it arrives (Flink's latency markers).
    LatencyMarker(std::time::Instant),
    /// The sender produces nothing for now (`table.exec.source.idle-timeout` passed without a
    /// row), so its watermark must not hold back the receiver's (Flink's idle watermark status).
    /// Its next data or watermark makes the channel active again.
    Idle,
    /// The channel carries nothing more.
    End,
}

/// What the checkpoint coordinator tells a source task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceControl {
    /// Start checkpoint n: emit this barrier now.
    Trigger(Barrier),
    /// Checkpoint n completed (Flink's notifyCheckpointComplete); the source may tell its
    /// external system (Kafka commits the group's offsets).
    Completed(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    pub checkpoint_id: u64,
    pub kind: BarrierKind,
    /// When the coordinator triggered the checkpoint: `aligned-checkpoint-timeout` counts from
    /// here, as Flink's checkpoint start delay does.
    pub triggered: std::time::Instant,
}

impl Barrier {
    pub fn new(checkpoint_id: u64, kind: BarrierKind) -> Self {
        Barrier {
            checkpoint_id,
            kind,
            triggered: std::time::Instant::now(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierKind {
    Checkpoint,
    Savepoint,
    /// STOP JOB WITH SAVEPOINT: the sources emit nothing after this barrier, so the job's output
    /// ends exactly at the savepoint (Flink's stop-with-savepoint) and a restore neither repeats nor
    /// skips a row, whatever the sinks' delivery.
    StopSavepoint,
}
