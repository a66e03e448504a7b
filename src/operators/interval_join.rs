//! `IntervalJoin`: Flink's interval join (time-windowed join). Both inputs are append-only and
//! the ON condition bounds `left.t - right.t` within `[lower, upper]`, so a row can only ever match
//! rows of the other side within a bounded stretch of event time. Each row is kept under its join
//! key until the watermark passes the last time a row of the other side could still match it:
//!
//! - a left row `l` matches right rows with `r.t` in `[l.t - upper, l.t - lower]`; once the
//!   watermark `W` (no row below it arrives any more) is past `l.t - lower`, it leaves the state;
//! - a right row `r` likewise once `W` is past `r.t + upper`.
//!
//! The output is append-only: a joined row is final when it is emitted, and an outer join emits a
//! row that never matched, padded with nulls, when it leaves the state. The output watermark is
//! held back by the interval (`TimeBounds::watermark_delay`), so joined rows are not late for a
//! window downstream. A row that arrives after its own expiry (late) is joined with what the
//! state still holds and not stored, as Flink does.
//!
//! An in-memory `ExpiryIndex` orders the state keys by their first row's expiry; a restore
//! rebuilds it from the backend.

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::graph::{IntervalJoinSpec, TimeBounds};
use crate::message::{EventTime, FINAL_WATERMARK, Message, RowKind, event_time_nanos};
use crate::operators::expiry_index::ExpiryIndex;
use crate::operators::grouping::GroupKey;
use crate::operators::join::{Emitted, join_keys, side_state_key};
use crate::operators::join_sides::{JoinSides, input_side, side_of};
use crate::operators::state_bytes::{StateReader, put_bytes};
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::StateBackend;

/// A stored row: how many times it is there, and whether it matched a row of the other side
/// (an outer join pads it at expiry if not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimedRow {
    count: i64,
    matched: bool,
}

/// The rows of one side under one join key, by event time, then row-encoded.
type TimedRows = crate::operators::join_sides::TimedRows<TimedRow>;

/// A stored row as `matched_rows` finds it: its time, bytes and count.
type MatchedRow = (EventTime, Box<[u8]>, i64);

pub struct IntervalJoin {
    sides: JoinSides<TimedRow>,
    time_columns: [usize; 2],
    bounds: TimeBounds,
    /// When each state key's earliest row expires: the keys to visit when the watermark passes.
    expiring: ExpiryIndex,
}

impl IntervalJoin {
    pub fn new(
        spec: &IntervalJoinSpec,
        inputs: [SchemaRef; 2],
        output_schema: SchemaRef,
        backend: Box<dyn StateBackend>,
        cache_limit: usize,
    ) -> Result<Self> {
        Ok(IntervalJoin {
            sides: JoinSides::new(
                &spec.join,
                inputs,
                output_schema,
                backend,
                cache_limit,
                encode_timed_rows,
                decode_timed_rows,
            )?,
            time_columns: spec.time_columns,
            bounds: spec.bounds,
            expiring: ExpiryIndex::default(),
        })
    }

    /// The event times of side `1 - side` that a row of side `side` at `t` can match.
    fn partner_times(&self, side: usize, t: EventTime) -> (EventTime, EventTime) {
        let TimeBounds { lower, upper } = self.bounds;
        if side == 0 {
            (t.saturating_sub(upper), t.saturating_sub(lower))
        } else {
            (t.saturating_add(lower), t.saturating_add(upper))
        }
    }

    /// The rows of `side` under `key` within `times` that `row` (of the other side, at `t`)
    /// matches: their time, bytes and count.
    fn matched_rows(&self, side: usize, key: &GroupKey, row: &[u8], times: (EventTime, EventTime)) -> Result<Vec<MatchedRow>> {
        let rows = self.sides.rows(side, key, self.expiring.contains(key))?;
        let in_range: Vec<_> = rows
            .range((times.0, Box::<[u8]>::default())..)
            .take_while(|((t, _), _)| *t <= times.1)
            .collect();
        let candidates: Vec<&[u8]> = in_range.iter().map(|((_, r), _)| &r[..]).collect();
        let matches = self.sides.joined.matching(self.sides.filter.as_ref(), 1 - side, row, &candidates)?;
        Ok(in_range
            .into_iter()
            .zip(matches)
            .filter(|(_, m)| *m)
            .map(|(((t, r), stored), _)| (*t, r.clone(), stored.count))
            .collect())
    }

    /// Joins one new row of side `side`, at event time `t` (`None`: a NULL time matches nothing).
    fn join_row(&mut self, side: usize, key: Option<GroupKey>, t: Option<EventTime>, row: Box<[u8]>, out: &mut Vec<Emitted>) -> Result<()> {
        let other = 1 - side;
        let pair = |mine: Option<Box<[u8]>>, theirs: Option<Box<[u8]>>| if side == 0 { (mine, theirs) } else { (theirs, mine) };
        let (Some(key), Some(t)) = (key, t) else {
            if self.sides.kind.keeps_unmatched(side) {
                let (l, r) = pair(Some(row), None);
                out.push((l, r, RowKind::Insert));
            }
            return Ok(());
        };
        let (mine_key, other_key) = (side_state_key(&key, side), side_state_key(&key, other));
        let matched = self.matched_rows(other, &other_key, &row, self.partner_times(side, t))?;
        for (_, other_row, count) in &matched {
            let (l, r) = pair(Some(row.clone()), Some(other_row.clone()));
            out.extend(std::iter::repeat_n((l, r, RowKind::Insert), (*count).max(0) as usize));
        }
        if self.sides.kind.keeps_unmatched(other) && !matched.is_empty() {
            let rows = self.sides.rows_mut(other, &other_key, true)?;
            for (other_t, other_row, _) in matched.iter() {
                if let Some(stored) = rows.get_mut(&(*other_t, other_row.clone())) {
                    stored.matched = true;
                }
            }
        }
        let expiry = expiry(self.bounds, side, t);
        if expiry < self.sides.watermark {
            // Late: nothing of the other side can arrive to match it any more.
            if self.sides.kind.keeps_unmatched(side) && matched.is_empty() {
                let (l, r) = pair(Some(row), None);
                out.push((l, r, RowKind::Insert));
            }
            return Ok(());
        }
        let known = self.expiring.contains(&mine_key);
        let stored = self
            .sides
            .rows_mut(side, &mine_key, known)?
            .entry((t, row))
            .or_insert(TimedRow { count: 0, matched: false });
        stored.count += 1;
        stored.matched |= !matched.is_empty();
        self.expiring.insert(&mine_key, expiry);
        Ok(())
    }

    fn process_side(&mut self, side: usize, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let keys = join_keys(&self.sides.keys[side], &self.sides.key_rows, &batch)?;
        let times = event_time_nanos(batch.column(self.time_columns[side]))?;
        let encoded = self.sides.joined.encode(side, &batch)?;
        let mut emitted = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            let t = times.is_valid(i).then(|| times.value(i));
            self.join_row(side, key, t, encoded.row(i).data().into(), &mut emitted)?;
        }
        self.sides.emit(&emitted, out)
    }

    /// Drops every row whose expiry the watermark passed; an outer join pads those that never matched.
    fn expire(&mut self, watermark: EventTime, out: &mut Vec<Emitted>) -> Result<()> {
        let bounds = self.bounds;
        for state_key in self.expiring.take_due(watermark) {
            let side = side_of(&state_key)?;
            let padded = self.sides.kind.keeps_unmatched(side);
            let rows = self.sides.rows_mut(side, &state_key, true)?;
            let gone: Vec<(EventTime, Box<[u8]>)> = rows.keys().filter(|(t, _)| expiry(bounds, side, *t) < watermark).cloned().collect();
            for key in gone {
                let Some(stored) = rows.remove(&key) else { continue };
                if padded && !stored.matched {
                    let row = Some(key.1);
                    let (l, r) = if side == 0 { (row, None) } else { (None, row) };
                    out.extend(std::iter::repeat_n((l, r, RowKind::Insert), stored.count.max(0) as usize));
                }
            }
            // Rows are ordered by time: the first one left expires next.
            match rows.keys().next().map(|(t, _)| expiry(bounds, side, *t)) {
                Some(next) => self.expiring.insert(&state_key, next),
                None => self.sides.forget_emptied(side, &state_key),
            }
        }
        Ok(())
    }
}

impl Operator for IntervalJoin {
    fn state_bytes(&self) -> Option<u64> {
        Some(self.sides.backend.estimated_bytes())
    }

    fn process(&mut self, _batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        Err(Error::internal("a join's rows must say which input they came from"))
    }

    fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        self.process_side(input_side(input)?, batch, out)
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        if !self.sides.advance(watermark) {
            return Ok(());
        }
        let mut padded = Vec::new();
        self.expire(watermark, &mut padded)?;
        self.sides.emit(&padded, out)?;
        out.push(Message::Watermark(if watermark == FINAL_WATERMARK {
            watermark
        } else {
            watermark.saturating_sub(self.bounds.watermark_delay())
        }));
        Ok(())
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        self.sides.snapshot(dir)
    }

    /// Every stored row is in the restored backend: rebuild the expiry index from it.
    fn restore(&mut self, meta: &serde_json::Value) -> Result<()> {
        for (state_key, side, t) in self.sides.restore(meta, "interval join")? {
            self.expiring.insert(&state_key, expiry(self.bounds, side, t));
        }
        Ok(())
    }
}

/// The last event time at which a row of side `side` at `t` can still be matched: the row leaves
/// the state once the watermark is past it.
fn expiry(bounds: TimeBounds, side: usize, t: EventTime) -> EventTime {
    if side == 0 {
        t.saturating_sub(bounds.lower)
    } else {
        t.saturating_add(bounds.upper)
    }
}

/// A key's rows of one side as bytes: count, then per row its time, bytes, count and matched flag.
fn encode_timed_rows(rows: &TimedRows) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for ((t, row), stored) in rows {
        out.extend_from_slice(&t.to_le_bytes());
        put_bytes(&mut out, row);
        out.extend_from_slice(&stored.count.to_le_bytes());
        out.push(u8::from(stored.matched));
    }
    out
}

fn decode_timed_rows(input: &[u8]) -> Result<TimedRows> {
    let mut reader = StateReader::new(input, "interval join state");
    let n = reader.u32()?;
    let mut rows = TimedRows::new();
    for _ in 0..n {
        let t = reader.i64()?;
        let row: Box<[u8]> = reader.bytes()?.into();
        let count = reader.i64()?;
        let matched = reader.u8()? != 0;
        rows.insert((t, row), TimedRow { count, matched });
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
    use crate::graph::{ChangelogMode, JoinKind, JoinSpec};
    use crate::operators::testing::{OperatorHarness, changelog_lines};
    use crate::settings::StateBackendKind;

    const SECOND: i64 = 1_000_000_000;

    fn side(time: &str, value: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new(time, DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new(value, DataType::Utf8, true),
        ]))
    }

    /// Rows of (key, event time in seconds, value).
    fn rows(schema: &SchemaRef, rows: &[(i64, i64, &str)]) -> RecordBatch {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1 * 1000))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch")
    }

    /// `l LEFT JOIN r ON l.k = r.k AND l.lt BETWEEN r.rt - INTERVAL '2' SECOND AND r.rt`: the
    /// bounds alone select the candidates (no residual filter).
    fn left_interval_join(backend: Box<dyn StateBackend>) -> Box<dyn Operator> {
        let (left, right) = (side("lt", "a"), side("rt", "b"));
        let mut fields: Vec<Field> = left.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(right.fields().iter().map(|f| f.as_ref().clone()));
        let spec = IntervalJoinSpec {
            join: JoinSpec {
                kind: JoinKind::Left,
                keys: [vec![col("k", &left).expect("k")], vec![col("k", &right).expect("k")]],
                filter: None,
                output: ChangelogMode::AppendOnly,
            },
            time_columns: [1, 1],
            bounds: TimeBounds {
                lower: -2 * SECOND,
                upper: 0,
            },
        };
        let output = Arc::new(Schema::new(fields));
        // A cache of one key per side: rows are read back from the backend.
        Box::new(IntervalJoin::new(&spec, [left, right], output, backend, 1).expect("join"))
    }

    #[test]
    fn interval_join_bounds_expires_pads_and_restores() {
        let (left, right) = (side("lt", "a"), side("rt", "b"));
        let dir = tempfile::tempdir().expect("dir");
        let backend = StateBackendKind::RocksDb.open(&dir.path().join("live")).expect("backend");
        let mut harness = OperatorHarness::new(left_interval_join(backend), &dir.path().join("a"));
        let ts = |s: i64| format!("1970-01-01T00:00:{s:02}");
        harness
            .push_input(0, rows(&left, &[(1, 10, "a"), (1, 11, "b"), (2, 10, "c"), (1, 7, "old")]))
            .expect("left");
        assert_eq!(harness.take_changelog().expect("rows"), Vec::<String>::new());
        // Right row at 12 matches left rows from 10 to 12: not the one at 7.
        harness.push_input(1, rows(&right, &[(1, 12, "x")])).expect("right");
        assert_eq!(
            harness.take_changelog().expect("rows"),
            [
                format!("+I 1 {} a 1 {} x", ts(10), ts(12)),
                format!("+I 1 {} b 1 {} x", ts(11), ts(12))
            ]
        );
        // At 12.5 s no right row below 12.5 can come: left rows up to 10.5 and right rows up to
        // 12.5 leave; the left ones that never matched are padded. The output watermark is held
        // back by the 2 s interval.
        harness.watermark(12 * SECOND + SECOND / 2).expect("watermark");
        let (padded, watermarks) = harness.take_rows().expect("rows");
        let mut padded = changelog_lines(&padded.expect("padded rows")).expect("lines");
        padded.sort();
        assert_eq!(padded, [format!("+I 1 {} old   ", ts(7)), format!("+I 2 {} c   ", ts(10))]);
        assert_eq!(watermarks, [10 * SECOND + SECOND / 2]);

        let snapshot = harness.barrier().expect("barrier").expect("a snapshot");
        let backend = snapshot
            .restore_backend(StateBackendKind::RocksDb, &dir.path().join("restored"))
            .expect("restore");
        let mut restored = OperatorHarness::new(left_interval_join(backend), &dir.path().join("b"));
        restored.operator.restore(&snapshot.meta).expect("meta");
        // Left row b (11) is still there for a right row at 13; x (12) is gone.
        restored.push_input(1, rows(&right, &[(1, 13, "y")])).expect("right");
        assert_eq!(
            restored.take_changelog().expect("rows"),
            [format!("+I 1 {} b 1 {} y", ts(11), ts(13))]
        );
        // A late left row (9, expired at 11 < 12.5) joins what is left, is not kept, and is padded.
        restored.push_input(0, rows(&left, &[(1, 9, "z")])).expect("late");
        assert_eq!(restored.take_changelog().expect("rows"), [format!("+I 1 {} z   ", ts(9))]);
        // The final watermark empties the state: b matched, so nothing is padded.
        restored.watermark(FINAL_WATERMARK).expect("final");
        let (rows, watermarks) = restored.take_rows().expect("rows");
        assert!(rows.is_none(), "{rows:?}");
        assert_eq!(watermarks, [FINAL_WATERMARK]);
    }
}
