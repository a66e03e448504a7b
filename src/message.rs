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

/// The processing time now, Flink's `PROCTIME()`: the wall clock in whole milliseconds, as
/// nanoseconds since the epoch. `PROCTIME()` columns and processing-time watermarks both read it.
pub fn processing_time_now() -> EventTime {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 1_000_000));
    millis.saturating_mul(1_000_000)
}

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

/// What a row of a changelog stream does to the result (Flink's RowKind, RisingWave's `Op`).
/// Append-only streams carry none: every row is an insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum RowKind {
    Insert = 0,
    /// The old row of an update; an update-after for the same key follows.
    UpdateBefore = 1,
    UpdateAfter = 2,
    Delete = 3,
}

impl RowKind {
    pub fn from_code(code: i8) -> Result<Self> {
        Ok(match code {
            0 => RowKind::Insert,
            1 => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            3 => RowKind::Delete,
            other => return Err(Error::internal(format!("unknown row kind {other}"))),
        })
    }

    /// Whether the row takes an earlier row back (update-before, delete).
    pub fn is_retraction(self) -> bool {
        matches!(self, RowKind::UpdateBefore | RowKind::Delete)
    }

    /// As Flink prints it: `+I`, `-U`, `+U`, `-D`.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }
}

/// The field metadata that marks a batch's last column as its row kinds. A user's column can
/// carry no metadata, so no column name is taken from users.
const ROW_KIND_METADATA: &str = "weir.row_kind";

/// The rows of a changelog batch and their kinds: the batch a changelog edge carries is the rows'
/// columns followed by the kinds (an Int8 column marked by `ROW_KIND_METADATA`), so filters,
/// the hash exchange and in-flight recording pass them through as one batch.
pub fn with_row_kinds(rows: &RecordBatch, kinds: Vec<RowKind>) -> Result<RecordBatch> {
    use datafusion::arrow::array::Int8Array;
    use datafusion::arrow::datatypes::{Field, Schema};
    if kinds.len() != rows.num_rows() {
        return Err(Error::internal("row kinds do not match the rows"));
    }
    let schema = rows.schema();
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    let metadata = [(ROW_KIND_METADATA.to_string(), "true".to_string())].into();
    fields.push(std::sync::Arc::new(
        Field::new("_row_kind", DataType::Int8, false).with_metadata(metadata),
    ));
    let mut columns = rows.columns().to_vec();
    columns.push(std::sync::Arc::new(Int8Array::from_iter_values(kinds.into_iter().map(|k| k as i8))));
    let options = datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
}

/// Splits a batch into its rows and, for a changelog batch, their kinds.
pub fn split_row_kinds(batch: &RecordBatch) -> Result<(RecordBatch, Option<Vec<RowKind>>)> {
    let schema = batch.schema();
    let last = schema.fields().len().checked_sub(1);
    let Some(last) = last.filter(|i| schema.field(*i).metadata().contains_key(ROW_KIND_METADATA)) else {
        return Ok((batch.clone(), None));
    };
    let codes = batch
        .column(last)
        .as_primitive_opt::<datafusion::arrow::datatypes::Int8Type>()
        .ok_or_else(|| Error::internal("row kinds are not Int8"))?;
    let kinds = codes.values().iter().map(|c| RowKind::from_code(*c)).collect::<Result<Vec<_>>>()?;
    Ok((batch.project(&(0..last).collect::<Vec<_>>())?, Some(kinds)))
}
