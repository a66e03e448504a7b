//! `OperatorHarness`: one operator outside a job, for tests. Feed it batches, watermarks, barriers
//! and the end of input as its task would (including the `resume` steps of a big firing), collect
//! what it emits, take its snapshot at a barrier, and restore a fresh operator from that snapshot.
//! New operators (joins, Top-N) are tested through it before they run in a job.

use std::path::{Path, PathBuf};

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;

use crate::error::{Error, Result};
use crate::message::{EventTime, Message, RowKind, split_row_kinds};
use crate::runtime::{Operator, OperatorSnapshot, dispatch, dispatch_input};
use crate::settings::StateBackendKind;
use crate::state::StateBackend;

/// A snapshot taken by the harness, with its files written out (no longer pending).
pub struct TakenSnapshot {
    /// The state files and the names the backend gave them.
    pub files: Vec<(PathBuf, String)>,
    pub meta: serde_json::Value,
}

impl TakenSnapshot {
    /// A backend of `kind` holding the snapshot's state, under `dir`.
    pub fn restore_backend(&self, kind: StateBackendKind, dir: &Path) -> Result<Box<dyn StateBackend>> {
        kind.restore(&self.files, dir)
    }
}

pub struct OperatorHarness {
    pub operator: Box<dyn Operator>,
    /// Where snapshots go: `<scratch>/chk-<n>`.
    scratch: PathBuf,
    checkpoints: u64,
    output: Vec<Message>,
}

impl OperatorHarness {
    /// `scratch`: a directory the harness may write snapshots into (e.g. a test's temp dir).
    pub fn new(operator: Box<dyn Operator>, scratch: &Path) -> Self {
        OperatorHarness {
            operator,
            scratch: scratch.to_path_buf(),
            checkpoints: 0,
            output: Vec::new(),
        }
    }

    /// Passes one message as the task does: then the operator's left-over work, step by step.
    fn feed(&mut self, message: Message) -> Result<()> {
        dispatch(self.operator.as_mut(), message, &mut self.output)?;
        while self.operator.resume(&mut self.output)? {}
        Ok(())
    }

    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.feed(Message::Data(batch))
    }

    /// A batch on input `input` of an operator with several (a join: 0 left, 1 right).
    pub fn push_input(&mut self, input: usize, batch: RecordBatch) -> Result<()> {
        dispatch_input(self.operator.as_mut(), input, Message::Data(batch), &mut self.output)?;
        while self.operator.resume(&mut self.output)? {}
        Ok(())
    }

    pub fn watermark(&mut self, watermark: EventTime) -> Result<()> {
        self.feed(Message::Watermark(watermark))
    }

    /// End of input (after the final watermark, as a bounded source sends it).
    pub fn end(&mut self) -> Result<()> {
        self.feed(Message::End)
    }

    /// A barrier: the operator's snapshot, its files written (`None` for a stateless operator).
    pub fn barrier(&mut self) -> Result<Option<TakenSnapshot>> {
        self.checkpoints += 1;
        let dir = self.scratch.join(format!("chk-{}", self.checkpoints));
        let Some(OperatorSnapshot { files, meta, .. }) = self.operator.snapshot(&dir)? else {
            return Ok(None);
        };
        let mut written = Vec::new();
        for pending in files {
            for path in pending.wait()? {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| Error::internal(format!("bad snapshot file name {}", path.display())))?
                    .to_string();
                written.push((path, name));
            }
        }
        Ok(Some(TakenSnapshot { files: written, meta }))
    }

    /// Everything emitted since the last call.
    pub fn take_output(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.output)
    }

    /// The rows emitted since the last call, in one batch (`None` if there were none), and the
    /// watermarks emitted meanwhile.
    pub fn take_rows(&mut self) -> Result<(Option<RecordBatch>, Vec<EventTime>)> {
        let mut batches = Vec::new();
        let mut watermarks = Vec::new();
        for message in self.take_output() {
            match message {
                Message::Data(batch) => batches.push(batch),
                Message::Watermark(w) => watermarks.push(w),
                _ => {}
            }
        }
        let rows = match batches.first() {
            Some(first) => Some(concat_batches(&first.schema(), &batches)?),
            None => None,
        };
        Ok((rows, watermarks))
    }

    /// The rows emitted since the last call, in order, as `changelog_lines` prints them.
    pub fn take_changelog(&mut self) -> Result<Vec<String>> {
        match self.take_rows()? {
            (Some(batch), _) => changelog_lines(&batch),
            (None, _) => Ok(Vec::new()),
        }
    }
}

/// A batch's rows as Flink prints a changelog: the row kind, then the values (`+I 1 a`); the rows
/// of an append-only batch are inserts.
pub fn changelog_lines(batch: &RecordBatch) -> Result<Vec<String>> {
    let (rows, kinds) = split_row_kinds(batch)?;
    (0..rows.num_rows())
        .map(|r| {
            let kind = kinds.as_ref().map_or(RowKind::Insert, |k| k[r]);
            let mut line = vec![kind.short_string().to_string()];
            for column in rows.columns() {
                line.push(array_value_to_string(column, r)?);
            }
            Ok(line.join(" "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use datafusion::physical_expr::expressions::{col, lit};

    use super::*;
    use crate::graph::{AggregateCall, AggregateKind, AggregateOutput, AggregateSpec, WindowAggregateSpec, WindowBound, WindowKind};
    use crate::operators::watermark::{WatermarkAssigner, WatermarkAssignerMeta};
    use crate::operators::window_aggregate::{WindowAggregate, WindowAggregateMeta};
    use crate::runtime::metrics::LateRows;
    use datafusion::arrow::util::display::array_value_to_string;

    const MS: i64 = 1_000_000;

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]))
    }

    fn batch(rows: &[(i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .expect("batch")
    }

    /// `COUNT(*)` per `k` over 10 ms tumbling windows.
    fn counting_window(backend: Box<dyn StateBackend>) -> Box<dyn Operator> {
        let input = input_schema();
        let window_type = DataType::Timestamp(TimeUnit::Millisecond, None);
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("window_start", window_type.clone(), false),
            Field::new("window_end", window_type, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let spec = WindowAggregateSpec {
            sessions_by: None,
            window: WindowKind::Tumble { size: 10 * MS },
            time_column: 1,
            aggregate: AggregateSpec {
                keys: vec![col("k", &input).expect("k")],
                aggregates: vec![AggregateCall {
                    kind: AggregateKind::Count,
                    arg: lit(1i64),
                    distinct: false,
                    output_type: DataType::Int64,
                    display: "count(*)".into(),
                }],
                outputs: vec![
                    AggregateOutput::Key(0),
                    AggregateOutput::Window(WindowBound::Start),
                    AggregateOutput::Window(WindowBound::End),
                    AggregateOutput::Aggregate(0),
                ],
            },
        };
        Box::new(WindowAggregate::new(&spec, input, output, backend, 1000, LateRows::unattached()).expect("operator"))
    }

    /// The rows as text, sorted (a firing emits key groups in hash order).
    fn text(rows: Option<RecordBatch>) -> Vec<Vec<String>> {
        let Some(rows) = rows else { return Vec::new() };
        let mut text: Vec<Vec<String>> = (0..rows.num_rows())
            .map(|r| rows.columns().iter().map(|c| array_value_to_string(c, r).expect("text")).collect())
            .collect();
        text.sort();
        text
    }

    #[test]
    fn watermark_assigner_snapshot_restores_into_a_fresh_operator() {
        let dir = tempfile::tempdir().expect("dir");
        let mut harness = OperatorHarness::new(Box::new(WatermarkAssigner::new(1, 2 * MS)), dir.path());
        harness.push(batch(&[(1, 5), (2, 9)])).expect("push");
        let (rows, watermarks) = harness.take_rows().expect("rows");
        assert_eq!(rows.map(|r| r.num_rows()), Some(2));
        assert_eq!(watermarks, [7 * MS]);
        let snapshot = harness.barrier().expect("barrier").expect("a snapshot");
        let meta: WatermarkAssignerMeta = serde_json::from_value(snapshot.meta.clone()).expect("typed meta");
        assert_eq!(
            meta,
            WatermarkAssignerMeta {
                max_seen: Some(9 * MS),
                emitted: 7 * MS
            }
        );

        let mut restored = OperatorHarness::new(Box::new(WatermarkAssigner::new(1, 2 * MS)), dir.path());
        restored.operator.restore(&snapshot.meta).expect("restore");
        // Row 6 is behind the restored watermark: it is cut off before, and no watermark repeats.
        restored.push(batch(&[(3, 6), (4, 20)])).expect("push");
        let (_, watermarks) = restored.take_rows().expect("rows");
        assert_eq!(watermarks, [18 * MS]);
    }

    #[test]
    fn window_aggregate_fires_and_carries_its_state_across_a_snapshot() {
        let dir = tempfile::tempdir().expect("dir");
        let live = StateBackendKind::RocksDb.open(&dir.path().join("live")).expect("backend");
        let mut harness = OperatorHarness::new(counting_window(live), &dir.path().join("a"));
        harness.push(batch(&[(1, 1), (1, 2), (2, 3), (1, 12)])).expect("push");
        harness.watermark(10 * MS).expect("watermark");
        let (rows, _) = harness.take_rows().expect("rows");
        assert_eq!(
            text(rows),
            [
                ["1", "1970-01-01T00:00:00", "1970-01-01T00:00:00.010", "2"],
                ["2", "1970-01-01T00:00:00", "1970-01-01T00:00:00.010", "1"]
            ]
        );
        // Window [10, 20) is open at the barrier: restored, it fires with the rows after it.
        let snapshot = harness.barrier().expect("barrier").expect("a snapshot");
        let meta: WindowAggregateMeta = serde_json::from_value(snapshot.meta.clone()).expect("typed meta");
        assert_eq!(meta.watermark, 10 * MS);
        let backend = snapshot
            .restore_backend(StateBackendKind::RocksDb, &dir.path().join("restored"))
            .expect("restore");
        let mut restored = OperatorHarness::new(counting_window(backend), &dir.path().join("b"));
        restored.operator.restore(&snapshot.meta).expect("restore meta");
        restored.push(batch(&[(1, 15)])).expect("push");
        restored.watermark(20 * MS).expect("watermark");
        let (rows, _) = restored.take_rows().expect("rows");
        assert_eq!(text(rows), [["1", "1970-01-01T00:00:00.010", "1970-01-01T00:00:00.020", "2"]]);
    }
}
