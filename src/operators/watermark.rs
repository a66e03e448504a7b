//! `WatermarkAssigner`: bounded out-of-orderness watermarks (`WATERMARK FOR ts AS ts - INTERVAL ...`).
//! The watermark is the largest event time seen minus the delay. It is emitted after each batch and,
//! inside a batch, right before the first row that falls behind it, so which rows are late does not
//! depend on how the source cut its batches.
//!
//! For processing-time windows the watermark is the wall clock instead (Flink's processing-time
//! timers): emitted after each batch and at each tick of the source task, so windows close on
//! time while no row arrives. The source stamps a batch's `PROCTIME()` column before this passes
//! any later clock reading, so no row is ever behind it.

use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::message::{EventTime, FINAL_WATERMARK, Message, event_time_nanos, processing_time_now};
use crate::operators::{decode_meta, encode_meta};
use crate::runtime::{Operator, OperatorSnapshot};

/// What a watermark assigner's snapshot records (field names: the checkpoint format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkAssignerMeta {
    /// The largest event time seen (none yet: `null`).
    pub max_seen: Option<EventTime>,
    /// The last watermark emitted.
    #[serde(default = "no_watermark")]
    pub emitted: EventTime,
}

fn no_watermark() -> EventTime {
    EventTime::MIN
}

pub struct WatermarkAssigner {
    time_column: usize,
    mode: AssignerMode,
    max_seen: Option<EventTime>,
    emitted: EventTime,
}

enum AssignerMode {
    /// The largest event time seen minus `delay`.
    EventTime { delay: i64 },
    /// The source generates the watermarks (per split); this only forwards them.
    Forwarding,
    /// The wall clock.
    ProcessingTime,
}

impl WatermarkAssigner {
    pub fn new(time_column: usize, delay_nanos: i64) -> Self {
        WatermarkAssigner::with_mode(time_column, AssignerMode::EventTime { delay: delay_nanos })
    }

    /// For a source that keeps watermarks per split (`connectors::split_watermarks`): passes rows
    /// and the source's watermarks on, computing none of its own.
    pub fn forwarding(time_column: usize) -> Self {
        WatermarkAssigner::with_mode(time_column, AssignerMode::Forwarding)
    }

    /// For processing-time windows: the wall clock.
    pub fn processing_time(time_column: usize) -> Self {
        WatermarkAssigner::with_mode(time_column, AssignerMode::ProcessingTime)
    }

    fn with_mode(time_column: usize, mode: AssignerMode) -> Self {
        WatermarkAssigner {
            time_column,
            mode,
            max_seen: None,
            emitted: EventTime::MIN,
        }
    }

    fn current(&self) -> EventTime {
        match self.mode {
            AssignerMode::EventTime { delay } => self.max_seen.map_or(EventTime::MIN, |m| m.saturating_sub(delay)),
            AssignerMode::Forwarding => EventTime::MIN,
            // A row stamped at this millisecond is not behind it: its window ends after it.
            AssignerMode::ProcessingTime => processing_time_now() - 1,
        }
    }

    /// Emits the current watermark if it moved on.
    fn emit_current(&mut self, out: &mut Vec<Message>) {
        let now = self.current();
        if now > self.emitted {
            out.push(Message::Watermark(now));
            self.emitted = now;
        }
    }
}

impl Operator for WatermarkAssigner {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        match self.mode {
            AssignerMode::EventTime { .. } => {}
            AssignerMode::Forwarding => {
                out.push(Message::Data(batch));
                return Ok(());
            }
            AssignerMode::ProcessingTime => {
                out.push(Message::Data(batch));
                self.emit_current(out);
                return Ok(());
            }
        }
        let times = event_time_nanos(batch.column(self.time_column))?;
        let mut segment_start = 0;
        for row in 0..batch.num_rows() {
            if times.is_null(row) {
                continue;
            }
            let t = times.value(row);
            let watermark = self.current();
            if t < watermark && watermark > self.emitted {
                // This row is behind the watermark the rows before it established: cut here.
                if row > segment_start {
                    out.push(Message::Data(batch.slice(segment_start, row - segment_start)));
                }
                out.push(Message::Watermark(watermark));
                self.emitted = watermark;
                segment_start = row;
            }
            self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
        }
        if segment_start < batch.num_rows() {
            out.push(Message::Data(batch.slice(segment_start, batch.num_rows() - segment_start)));
        }
        self.emit_current(out);
        Ok(())
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        Ok(Some(OperatorSnapshot {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            meta: encode_meta(&WatermarkAssignerMeta {
                max_seen: self.max_seen,
                emitted: self.emitted,
            })?,
        }))
    }

    fn restore(&mut self, meta: &serde_json::Value) -> Result<()> {
        let meta: WatermarkAssignerMeta = decode_meta(meta, "watermark assigner")?;
        self.max_seen = meta.max_seen;
        self.emitted = meta.emitted;
        Ok(())
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        // In processing time, a watermark from the source task is its tick (or the source's event
        // time, which does not drive these windows): the clock is read instead. The final
        // watermark of a bounded source still closes every window.
        if matches!(self.mode, AssignerMode::ProcessingTime) && watermark != FINAL_WATERMARK {
            self.emit_current(out);
            return Ok(());
        }
        // From upstream come the final watermark of a bounded source, and a forwarding assigner's.
        if watermark > self.emitted {
            self.emitted = watermark;
            out.push(Message::Watermark(watermark));
        }
        Ok(())
    }
}
