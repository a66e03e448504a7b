//! Per-split watermarks (Flink's per-partition watermarks): a source that reads several Kafka
//! partitions sees each in order, but interleaves them as records arrive, so one subtask-wide
//! "largest event time seen" would run ahead of a partition that lags and make its rows late. Here
//! each split has its own largest event time; the subtask's watermark is the minimum over its splits
//! (minus the delay), leaving out a split without records for the idle timeout. A split that has
//! sent nothing yet holds the watermark back until then, so a fast partition at start does not
//! fire windows a slow one still fills.
//!
//! As in `WatermarkAssigner`, a watermark is placed right before the first row of a batch that
//! falls behind it, so which rows are late does not depend on how records were batched. A split
//! that turns idle while no record comes lets the watermark advance at that moment (an empty batch
//! carries it), as Flink's periodic watermark check does: otherwise the windows of a backlog read
//! before an empty partition's idle timeout passed would wait for the next record.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::time::Instant;

use crate::connectors::forward_source_to_inner;
use crate::error::Result;
use crate::message::{EventTime, event_time_nanos};
use crate::runtime::{Source, SourcePosition, SplitId};

struct SplitProgress {
    /// The largest event time seen in the split.
    max_seen: Option<EventTime>,
    /// When the split last had a record (or was first seen).
    last_active: Instant,
}

pub struct SplitWatermarks {
    inner: Box<dyn Source>,
    time_column: usize,
    delay: i64,
    idle_timeout: Option<Duration>,
    splits: HashMap<SplitId, SplitProgress>,
    emitted: EventTime,
    /// Where watermarks go in the last batch.
    placed: Vec<(usize, EventTime)>,
    /// The inner source's batch schema, once a batch came (for the empty batch of an idleness
    /// watermark).
    schema: Option<SchemaRef>,
    /// When the watermark was last worked out: splits that turned idle since may advance it.
    evaluated_at: Instant,
}

impl SplitWatermarks {
    pub fn new(inner: Box<dyn Source>, time_column: usize, delay_nanos: i64, idle_timeout: Option<Duration>) -> Self {
        SplitWatermarks {
            inner,
            time_column,
            delay: delay_nanos,
            idle_timeout,
            splits: HashMap::new(),
            emitted: EventTime::MIN,
            placed: Vec::new(),
            schema: None,
            evaluated_at: Instant::now(),
        }
    }

    /// When the first split that was active when the watermark was last worked out turns (or
    /// turned) idle, if one does.
    fn next_idle_at(&self) -> Option<Instant> {
        let timeout = self.idle_timeout?;
        self.inner
            .splits()
            .iter()
            .filter_map(|split| self.splits.get(split))
            .map(|progress| progress.last_active + timeout)
            .filter(|at| *at > self.evaluated_at)
            .min()
    }

    /// The minimum watermark over the active splits other than `except`: `None` when there is no
    /// such split (all idle, or `except` is the only one).
    fn others_minimum(&mut self, except: Option<SplitId>, now: Instant) -> Option<EventTime> {
        let mut minimum: Option<EventTime> = None;
        for split in self.inner.splits() {
            let progress = self.splits.entry(split).or_insert(SplitProgress {
                max_seen: None,
                last_active: now,
            });
            let idle = self.idle_timeout.is_some_and(|t| now.duration_since(progress.last_active) >= t);
            if Some(split) == except || idle {
                continue;
            }
            let watermark = progress.max_seen.map_or(EventTime::MIN, |m| m.saturating_sub(self.delay));
            minimum = Some(minimum.map_or(watermark, |w| w.min(watermark)));
        }
        minimum
    }

    fn place_watermarks(&mut self, batch: &RecordBatch) -> Result<()> {
        let now = Instant::now();
        self.evaluated_at = now;
        let split = self.inner.last_split();
        let others = self.others_minimum(split, now);
        let progress = self.splits.entry(split.unwrap_or(0)).or_insert(SplitProgress {
            max_seen: None,
            last_active: now,
        });
        progress.last_active = now;
        let times = event_time_nanos(batch.column(self.time_column))?;
        let combined = |max_seen: Option<EventTime>| {
            let own = max_seen.map_or(EventTime::MIN, |m| m.saturating_sub(self.delay));
            others.map_or(own, |o| o.min(own))
        };
        for row in 0..batch.num_rows() {
            if times.is_null(row) {
                continue;
            }
            let t = times.value(row);
            let watermark = combined(progress.max_seen);
            if t < watermark && watermark > self.emitted {
                self.placed.push((row, watermark));
                self.emitted = watermark;
            }
            progress.max_seen = Some(progress.max_seen.map_or(t, |m| m.max(t)));
        }
        let watermark = combined(progress.max_seen);
        if watermark > self.emitted {
            self.placed.push((batch.num_rows(), watermark));
            self.emitted = watermark;
        }
        Ok(())
    }
}

#[async_trait]
impl Source for SplitWatermarks {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        self.placed.clear();
        let idle_at = self.schema.as_ref().and_then(|schema| Some((schema.clone(), self.next_idle_at()?)));
        let batch = match idle_at {
            // The inner source is cancel-safe: a split turning idle first only drops the call.
            Some((schema, at)) => tokio::select! {
                batch = self.inner.next_batch() => batch?,
                () = tokio::time::sleep_until(at) => {
                    self.evaluated_at = Instant::now();
                    // With every split idle the subtask itself is idle (the task's timeout).
                    if let Some(watermark) = self.others_minimum(None, self.evaluated_at)
                        && watermark > self.emitted
                    {
                        self.placed.push((0, watermark));
                        self.emitted = watermark;
                    }
                    return Ok(Some(RecordBatch::new_empty(schema)));
                }
            },
            None => self.inner.next_batch().await?,
        };
        if let Some(batch) = &batch {
            self.schema.get_or_insert_with(|| batch.schema());
            self.place_watermarks(batch)?;
        }
        Ok(batch)
    }

    forward_source_to_inner!();

    fn take_watermarks(&mut self) -> Vec<(usize, EventTime)> {
        std::mem::take(&mut self.placed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampMillisecondArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::collections::VecDeque;
    use std::sync::Arc;

    /// Batches of (split, event times in ms) from two splits.
    struct Scripted {
        batches: VecDeque<(SplitId, Vec<i64>)>,
        last: Option<SplitId>,
    }

    #[async_trait]
    impl Source for Scripted {
        async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
            let Some((split, times)) = self.batches.pop_front() else {
                return Ok(None);
            };
            self.last = Some(split);
            let schema = Arc::new(Schema::new(vec![Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            )]));
            Ok(Some(RecordBatch::try_new(
                schema,
                vec![Arc::new(TimestampMillisecondArray::from(times))],
            )?))
        }
        fn position(&self) -> SourcePosition {
            serde_json::Value::Null
        }
        fn seek(&mut self, _: &SourcePosition) -> Result<()> {
            Ok(())
        }
        fn last_split(&self) -> Option<SplitId> {
            self.last
        }
        fn splits(&self) -> Vec<SplitId> {
            vec![0, 1]
        }
    }

    const MS: i64 = 1_000_000;

    #[tokio::test]
    async fn the_watermark_is_the_minimum_over_splits() {
        let inner = Scripted {
            batches: VecDeque::from([
                (0, vec![10_000, 12_000]),
                (1, vec![5_000]),
                (0, vec![20_000]),
                (1, vec![9_000, 4_000]),
            ]),
            last: None,
        };
        let mut source = SplitWatermarks::new(Box::new(inner), 0, 1_000 * MS, None);
        let mut placed = Vec::new();
        while source.next_batch().await.unwrap().is_some() {
            placed.push(source.take_watermarks());
        }
        // Split 1 has sent nothing yet: no watermark. Then min(12 s, 5 s) - 1 s, and so on; the
        // 4 s row of split 1 is behind the 8 s watermark its own 9 s row set: a cut before it.
        assert_eq!(placed, vec![vec![], vec![(1, 4_000 * MS)], vec![], vec![(1, 8_000 * MS)]]);
    }

    #[tokio::test]
    async fn a_split_turning_idle_advances_the_watermark_without_a_record() {
        // Split 1 never delivers; after split 0's batches the inner source waits for ever.
        let inner = Scripted {
            batches: VecDeque::from([(0, vec![10_000]), (0, vec![12_000])]),
            last: None,
        };
        let waiting = Box::new(WaitsWhenDone(inner));
        let mut source = SplitWatermarks::new(waiting, 0, 1_000 * MS, Some(Duration::from_millis(100)));
        let started = Instant::now();
        for _ in 0..2 {
            assert_eq!(source.next_batch().await.unwrap().map(|b| b.num_rows()), Some(1));
            assert_eq!(source.take_watermarks(), vec![], "split 1 holds the watermark back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Split 1 (seen since the first batch) turns idle while split 0 is still active.
        let batch = source.next_batch().await.unwrap().expect("an empty batch");
        assert_eq!(batch.num_rows(), 0);
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(source.take_watermarks(), vec![(0, 11_000 * MS)]);
    }

    /// A source that, after its script, waits instead of ending (an unbounded one with no input).
    struct WaitsWhenDone(Scripted);

    #[async_trait]
    impl Source for WaitsWhenDone {
        async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
            match self.0.batches.is_empty() {
                true => std::future::pending().await,
                false => self.0.next_batch().await,
            }
        }
        fn position(&self) -> SourcePosition {
            self.0.position()
        }
        fn seek(&mut self, position: &SourcePosition) -> Result<()> {
            self.0.seek(position)
        }
        fn last_split(&self) -> Option<SplitId> {
            self.0.last_split()
        }
        fn splits(&self) -> Vec<SplitId> {
            self.0.splits()
        }
    }
}
