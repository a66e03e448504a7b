//! `WindowJoin`: Flink's window join. Both inputs are windowed by the same TUMBLE or HOP and the
//! ON condition equates their `window_start` and `window_end` besides the join keys; or both
//! inputs are windowed results (a window aggregate's rows, each carrying its window's end) whose
//! window ends are equated, as Nexmark q5 joins its counts with their maximum. A row is
//! assigned its windows on arrival (a HOP row belongs to several) and kept under its join key and
//! window until the watermark reaches the window's end. Then both sides' rows of that key and
//! window are joined, emitted and dropped: the output is append-only, and outer, semi and anti
//! joins are decided once, with every row of the window known.
//!
//! As in Flink, a row whose windows have all closed (late) is dropped and counted, and a row
//! with a NULL join key matches nothing: a preserved side emits it padded at once.
//!
//! Stored rows are the side's rows with their window columns holding the window's bounds (what
//! the output shows), in a `KeyedCache` over the backend; an in-memory `ExpiryIndex` orders the
//! join keys by their earliest window end and is rebuilt from the backend on restore.

use datafusion::arrow::array::{Array, ArrayRef, TimestampNanosecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::graph::{JoinKind, WindowBound, WindowJoinSpec};
use crate::message::{EventTime, Message, RowKind, event_time_nanos};
use crate::operators::expiry_index::ExpiryIndex;
use crate::operators::grouping::GroupKey;
use crate::operators::join::{Emitted, join_keys, side_state_key};
use crate::operators::join_sides::{JoinSides, input_side};
use crate::operators::pane_layout::PaneLayout;
use crate::operators::state_bytes::{StateReader, put_bytes};
use crate::runtime::metrics::LateRows;
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::StateBackend;

/// The rows of one side under one join key: by window end, then row-encoded, with their count.
type WindowRows = crate::operators::join_sides::TimedRows<i64>;

/// One side's rows of closed windows, taken in window order.
type Closing = std::iter::Peekable<std::collections::btree_map::IntoIter<(EventTime, Box<[u8]>), i64>>;

pub struct WindowJoin {
    sides: JoinSides<i64>,
    layout: PaneLayout,
    window_columns: [Vec<(usize, WindowBound)>; 2],
    /// Subtracted from the time column before finding a row's windows (attached windows).
    time_shift: EventTime,
    /// Join keys (without the side) by the earliest window end either side holds for them.
    closing: ExpiryIndex,
    late_rows: LateRows,
}

impl WindowJoin {
    pub fn new(
        spec: &WindowJoinSpec,
        inputs: [SchemaRef; 2],
        output_schema: SchemaRef,
        backend: Box<dyn StateBackend>,
        cache_limit: usize,
        late_rows: LateRows,
    ) -> Result<Self> {
        if spec.window_columns.iter().any(Vec::is_empty) {
            return Err(Error::internal("a window join input without window columns"));
        }
        Ok(WindowJoin {
            sides: JoinSides::new(
                &spec.join,
                inputs,
                output_schema,
                backend,
                cache_limit,
                encode_window_rows,
                decode_window_rows,
            )?,
            layout: PaneLayout::new(spec.window)?,
            window_columns: spec.window_columns.clone(),
            time_shift: spec.window.time_shift(),
            closing: ExpiryIndex::default(),
            late_rows,
        })
    }

    /// The batch's rows once per open window they belong to, their window columns set to the
    /// window's bounds, and each one's window end. Rows without an open window are counted late.
    fn assign_windows(&self, side: usize, batch: &RecordBatch) -> Result<(RecordBatch, Vec<EventTime>)> {
        let (time_column, _) = self.window_columns[side][0];
        let times = event_time_nanos(batch.column(time_column))?;
        let (mut indices, mut starts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        let mut late = 0;
        for row in 0..batch.num_rows() {
            let windows = times
                .is_valid(row)
                .then(|| self.layout.windows_of(times.value(row).saturating_sub(self.time_shift)));
            let before = indices.len();
            for (start, end) in windows.into_iter().flatten().filter(|(_, end)| *end > self.sides.watermark) {
                indices.push(row as u32);
                starts.push(start);
                ends.push(end);
            }
            late += usize::from(indices.len() == before);
        }
        self.late_rows.add(late);
        let mut columns: Vec<ArrayRef> = take_record_batch(batch, &UInt32Array::from(indices))?.columns().to_vec();
        for (index, bound) in &self.window_columns[side] {
            let values = TimestampNanosecondArray::from_iter_values(starts.iter().zip(&ends).map(|(s, e)| bound.of(*s, *e)));
            columns[*index] = cast(&values, batch.schema().field(*index).data_type())?;
        }
        Ok((RecordBatch::try_new(batch.schema(), columns)?, ends))
    }

    fn process_side(&mut self, side: usize, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let (windowed, ends) = self.assign_windows(side, &batch)?;
        let keys = join_keys(&self.sides.keys[side], &self.sides.key_rows, &windowed)?;
        let encoded = self.sides.joined.encode(side, &windowed)?;
        let mut padded = Vec::new();
        for (i, (key, end)) in keys.into_iter().zip(ends).enumerate() {
            let row: Box<[u8]> = encoded.row(i).data().into();
            let Some(key) = key else {
                let kind = self.sides.kind;
                if kind.keeps_unmatched(side) || (kind == JoinKind::LeftAnti && side == 0) {
                    padded.push(padded_row(side, row));
                }
                continue;
            };
            let known = self.closing.contains(&key);
            *self
                .sides
                .rows_mut(side, &side_state_key(&key, side), known)?
                .entry((end, row))
                .or_insert(0) += 1;
            self.closing.insert(&key, end);
        }
        self.sides.emit(&padded, out)
    }

    /// Joins and drops the rows of every window of `key` that ended by `watermark`.
    fn close_windows(&mut self, key: &GroupKey, watermark: EventTime, out: &mut Vec<Emitted>) -> Result<()> {
        let mut closed: [WindowRows; 2] = Default::default();
        let mut next = None;
        for (side, closed) in closed.iter_mut().enumerate() {
            let state_key = side_state_key(key, side);
            let rows = self.sides.rows_mut(side, &state_key, true)?;
            let open = rows.split_off(&(watermark.saturating_add(1), Box::default()));
            *closed = std::mem::replace(rows, open);
            next = next.into_iter().chain(rows.keys().next().map(|(end, _)| *end)).min();
            self.sides.forget_emptied(side, &state_key);
        }
        if let Some(next) = next {
            self.closing.insert(key, next);
        }
        let [mut left, mut right] = closed.map(|rows| rows.into_iter().peekable());
        // Both sides are ordered by window end: join them window by window.
        loop {
            let end = match (left.peek(), right.peek()) {
                (Some(((l, _), _)), Some(((r, _), _))) => *l.min(r),
                (Some(((end, _), _)), None) | (None, Some(((end, _), _))) => *end,
                (None, None) => return Ok(()),
            };
            let window = |rows: &mut Closing| {
                let mut of_window = Vec::new();
                while let Some(((_, row), count)) = rows.next_if(|((e, _), _)| *e == end) {
                    of_window.push((row, count));
                }
                of_window
            };
            let (l, r) = (window(&mut left), window(&mut right));
            self.join_window(l, r, out)?;
        }
    }

    /// Emits what the join of one window's rows of one key gives.
    fn join_window(&self, left: Vec<(Box<[u8]>, i64)>, right: Vec<(Box<[u8]>, i64)>, out: &mut Vec<Emitted>) -> Result<()> {
        let candidates: Vec<&[u8]> = right.iter().map(|(row, _)| &row[..]).collect();
        let mut right_matched = vec![false; right.len()];
        let JoinSides { kind, joined, filter, .. } = &self.sides;
        let kind = *kind;
        for (row, count) in &left {
            let count = (*count).max(0) as usize;
            let matches = joined.matching(filter.as_ref(), 0, row, &candidates)?;
            let any = matches.iter().any(|m| *m);
            match kind {
                JoinKind::LeftSemi | JoinKind::LeftAnti => {
                    if any == (kind == JoinKind::LeftSemi) {
                        out.extend(std::iter::repeat_n((Some(row.clone()), None, RowKind::Insert), count));
                    }
                    continue;
                }
                JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full => {}
            }
            for (j, (other, other_count)) in right.iter().enumerate().filter(|(j, _)| matches[*j]) {
                right_matched[j] = true;
                let pair = (Some(row.clone()), Some(other.clone()), RowKind::Insert);
                out.extend(std::iter::repeat_n(pair, count * (*other_count).max(0) as usize));
            }
            if !any && kind.keeps_unmatched(0) {
                out.extend(std::iter::repeat_n(padded_row(0, row.clone()), count));
            }
        }
        if kind.keeps_unmatched(1) {
            for ((row, count), matched) in right.into_iter().zip(right_matched) {
                if !matched {
                    out.extend(std::iter::repeat_n(padded_row(1, row), count.max(0) as usize));
                }
            }
        }
        Ok(())
    }
}

/// A row of side `side` with nulls for the other side.
fn padded_row(side: usize, row: Box<[u8]>) -> Emitted {
    if side == 0 {
        (Some(row), None, RowKind::Insert)
    } else {
        (None, Some(row), RowKind::Insert)
    }
}

impl Operator for WindowJoin {
    fn state_bytes(&self) -> Option<u64> {
        Some(self.sides.backend.estimated_bytes())
    }

    fn process(&mut self, _batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        Err(Error::internal("a join's rows must say which input they came from"))
    }

    fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        self.process_side(input_side(input)?, batch, out)
    }

    /// Windows that ended by the watermark are joined and emitted before the watermark passes on.
    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        if !self.sides.advance(watermark) {
            return Ok(());
        }
        let mut emitted = Vec::new();
        for key in self.closing.take_due(watermark.saturating_add(1)) {
            self.close_windows(&key, watermark, &mut emitted)?;
        }
        self.sides.emit(&emitted, out)?;
        out.push(Message::Watermark(watermark));
        Ok(())
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        self.sides.snapshot(dir)
    }

    /// Every stored row is in the restored backend: rebuild the index of window ends from it.
    fn restore(&mut self, meta: &serde_json::Value) -> Result<()> {
        for (state_key, _side, end) in self.sides.restore(meta, "window join")? {
            // Closing is indexed by the join key: the state key without its side byte.
            self.closing.insert(&Box::from(&state_key[..state_key.len() - 1]), end);
        }
        Ok(())
    }
}

/// A key's rows of one side as bytes: count, then per row its window end, bytes and count.
fn encode_window_rows(rows: &WindowRows) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for ((end, row), count) in rows {
        out.extend_from_slice(&end.to_le_bytes());
        put_bytes(&mut out, row);
        out.extend_from_slice(&count.to_le_bytes());
    }
    out
}

fn decode_window_rows(input: &[u8]) -> Result<WindowRows> {
    let mut reader = StateReader::new(input, "window join state");
    let n = reader.u32()?;
    let mut rows = WindowRows::new();
    for _ in 0..n {
        let end = reader.i64()?;
        let row: Box<[u8]> = reader.bytes()?.into();
        rows.insert((end, row), reader.i64()?);
    }
    reader.finish()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::col;

    use super::*;
    use crate::graph::{ChangelogMode, JoinSpec, WindowKind};
    use crate::message::FINAL_WATERMARK;
    use crate::operators::testing::OperatorHarness;
    use crate::settings::StateBackendKind;

    const SECOND: i64 = 1_000_000_000;

    /// A windowed input: key, window_start and window_end (both carrying the event time on
    /// input), value.
    fn side(value: &str) -> SchemaRef {
        let time = DataType::Timestamp(TimeUnit::Millisecond, None);
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("window_start", time.clone(), true),
            Field::new("window_end", time, true),
            Field::new(value, DataType::Utf8, true),
        ]))
    }

    /// Rows of (key, event time in seconds, value).
    fn rows(schema: &SchemaRef, rows: &[(Option<i64>, i64, &str)]) -> RecordBatch {
        let times = || Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1 * 1000)));
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
                times(),
                times(),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch")
    }

    /// `l <kind> JOIN r ON l.k = r.k AND l.window_start = r.window_start AND l.window_end =
    /// r.window_end` over TUMBLE(10 s) on both sides.
    fn window_join(kind: JoinKind, backend: Box<dyn StateBackend>) -> Box<dyn Operator> {
        let (left, right) = (side("a"), side("b"));
        let mut fields: Vec<Field> = left.fields().iter().map(|f| f.as_ref().clone()).collect();
        if !kind.emits_left_only() {
            fields.extend(right.fields().iter().map(|f| f.as_ref().clone()));
        }
        let columns = vec![(1, WindowBound::Start), (2, WindowBound::End)];
        let spec = WindowJoinSpec {
            join: JoinSpec {
                kind,
                keys: [vec![col("k", &left).expect("k")], vec![col("k", &right).expect("k")]],
                filter: None,
                output: ChangelogMode::AppendOnly,
            },
            window: WindowKind::Tumble { size: 10 * SECOND },
            window_columns: [columns.clone(), columns],
        };
        let output = Arc::new(Schema::new(fields));
        // A cache of one key per side: rows are read back from the backend.
        Box::new(WindowJoin::new(&spec, [left, right], output, backend, 1, LateRows::unattached()).expect("join"))
    }

    /// The output rows as `key [start,end) value` per side (`-`: padded), sorted.
    fn joined(harness: &mut OperatorHarness) -> Vec<String> {
        let seconds = |t: &str| t.get(17..).and_then(|s| s.parse::<i64>().ok());
        let mut lines: Vec<String> = harness
            .take_changelog()
            .expect("rows")
            .iter()
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').skip(1).collect();
                fields
                    .chunks(4)
                    .map(|f| match (seconds(f[1]), seconds(f[2])) {
                        (Some(start), Some(end)) => format!("{} [{start},{end}) {}", f[0], f[3]),
                        _ => "-".to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect();
        lines.sort();
        lines
    }

    /// Left: a (k 1, 1 s), b (k 1, 12 s), c (k 2, 3 s), n (no key, 4 s).
    /// Right: x (k 1, 5 s), z (k 2, 13 s), late (k 1, 2 s, after the watermark at 10 s).
    fn run(kind: JoinKind) -> Vec<Vec<String>> {
        let (left, right) = (side("a"), side("b"));
        let dir = tempfile::tempdir().expect("dir");
        let backend = StateBackendKind::RocksDb.open(&dir.path().join("live")).expect("backend");
        let mut harness = OperatorHarness::new(window_join(kind, backend), &dir.path().join("a"));
        harness
            .push_input(
                0,
                rows(&left, &[(Some(1), 1, "a"), (Some(1), 12, "b"), (Some(2), 3, "c"), (None, 4, "n")]),
            )
            .expect("left");
        harness
            .push_input(1, rows(&right, &[(Some(1), 5, "x"), (Some(2), 13, "z")]))
            .expect("right");
        // A row without a key matches nothing: a preserved side emits it at once.
        let at_once = joined(&mut harness);
        // The state goes through a checkpoint and a restore before the windows close.
        let snapshot = harness.barrier().expect("barrier").expect("a snapshot");
        let backend = snapshot
            .restore_backend(StateBackendKind::RocksDb, &dir.path().join("restored"))
            .expect("restore");
        let mut harness = OperatorHarness::new(window_join(kind, backend), &dir.path().join("b"));
        harness.operator.restore(&snapshot.meta).expect("meta");
        harness.watermark(10 * SECOND).expect("watermark");
        let first = joined(&mut harness);
        // Window [0, 10) has closed: a row of it is late and dropped.
        harness.push_input(1, rows(&right, &[(Some(1), 2, "late")])).expect("late");
        harness.watermark(FINAL_WATERMARK).expect("final");
        vec![at_once, first, joined(&mut harness)]
    }

    #[test]
    fn window_join_joins_each_window_when_it_closes() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(run(JoinKind::Inner), [vec![], lines(&["1 [0,10) a | 1 [0,10) x"]), vec![]]);
        assert_eq!(
            run(JoinKind::Full),
            [
                lines(&[" [0,10) n | -"]),
                lines(&["1 [0,10) a | 1 [0,10) x", "2 [0,10) c | -"]),
                lines(&["- | 2 [10,20) z", "1 [10,20) b | -"])
            ]
        );
        assert_eq!(run(JoinKind::LeftSemi), [vec![], lines(&["1 [0,10) a"]), vec![]]);
        assert_eq!(
            run(JoinKind::LeftAnti),
            [lines(&[" [0,10) n"]), lines(&["2 [0,10) c"]), lines(&["1 [10,20) b"])]
        );
    }
}
