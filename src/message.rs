//! What flows along the edges of a running job: data, event-time progress, barriers, end of stream.

use datafusion::arrow::record_batch::RecordBatch;

/// Event time in nanoseconds since the epoch (the unit of every watermark and window bound).
pub type EventTime = i64;

/// The watermark that closes everything: a bounded source sends it before `End`.
pub const FINAL_WATERMARK: EventTime = i64::MAX;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    pub checkpoint_id: u64,
    pub kind: BarrierKind,
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
