//! `TopN`: Flink's Top-N, `ROW_NUMBER() OVER (PARTITION BY k ORDER BY o)` kept to the ranks
//! `start..=end`, over an append-only input. Deduplication is its case of rank 1 ordered by the
//! event time (Flink's keep-first / keep-last row).
//!
//! Each partition key keeps its best `end` rows, best first, as Flink's AppendOnlyTopNFunction
//! does: a row that does not rank is dropped at once, a row that ranks pushes the worst one out.
//! Every rank whose row changed is emitted as an update of that rank (update-before of the old
//! row, update-after of the new one, with the rank number), and a rank that was empty as an
//! insert: the output is an upsert changelog keyed by (partition key, rank), which is also a
//! correct retract changelog when the rank column is projected away. Rows with equal ORDER BY
//! values rank in arrival order, except for keep-last deduplication, where a later row replaces
//! an earlier one with the same event time (Flink's `rowtime >= previous rowtime`).
//!
//! Window Top-N (Flink's Top-N over a window aggregate's rows, partitioned by the window) emits
//! nothing until the watermark passes the window's end; then it emits the window's final ranks,
//! append-only, and frees their state, as Flink's WindowRankOperator does.
//!
//! Over a retract changelog (Top-N over an updating aggregate, Flink's RetractableTopNFunction)
//! each partition key keeps all its rows, since a row taken back from the top ranks lets the
//! best of the others in: its ranks move up, and a rank left without a row is deleted.
//!
//! The rankings of hot keys stay in a `KeyedCache` over the state backend, as the updating
//! aggregate keeps its states; state is keyed by the partition key, so it rescales by key group.
//! A window Top-N keeps an index of its rankings by window end in memory, rebuilt from the
//! backend on restore.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, Rows, SortField};

use crate::error::{Error, Result};
use crate::graph::{RankTies, TopNSpec};
use crate::message::{EventTime, Message, RowKind, event_time_nanos, split_row_kinds, with_row_kinds};
use crate::operators::grouping::{GroupKey, group_key};
use crate::operators::keyed_cache::KeyedCache;
use crate::operators::state_bytes::{StateReader, put_bytes};
use crate::operators::{FIRE_STEP_ROWS, WatermarkMeta, decode_meta, encode_meta};
use crate::runtime::metrics::LateRows;
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::key::key_converter;
use crate::state::{StateBackend, StateWriteBatch};

/// One ranked row: its ORDER BY values (row-encoded, so bytes compare as the ORDER BY does) and
/// the whole row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ranked {
    order: Box<[u8]>,
    row: Box<[u8]>,
}

/// A partition key's best rows, best first: at most `end` of them (all of them over a retract
/// changelog). In a window Top-N the key
/// holds the window's end, which is kept beside the rows so a restore can rebuild the index.
#[derive(Debug, Clone, Default)]
struct Ranking {
    window_end: EventTime,
    rows: Vec<Ranked>,
}

/// A ranking as stored: window end, row count, then each row's ORDER BY bytes and row bytes. An
/// emptied ranking (a fired window) is deleted.
fn encode_ranking(ranking: &Ranking) -> Option<Vec<u8>> {
    if ranking.rows.is_empty() {
        return None;
    }
    let rows = &ranking.rows;
    let mut out = Vec::with_capacity(12 + rows.iter().map(|r| 8 + r.order.len() + r.row.len()).sum::<usize>());
    out.extend_from_slice(&ranking.window_end.to_le_bytes());
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for ranked in rows {
        put_bytes(&mut out, &ranked.order);
        put_bytes(&mut out, &ranked.row);
    }
    Some(out)
}

fn decode_ranking(bytes: &[u8]) -> Result<Ranking> {
    let mut reader = StateReader::new(bytes, "Top-N state");
    let window_end = reader.i64()?;
    let count = reader.u32()? as usize;
    let mut rows = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        rows.push(Ranked {
            order: reader.bytes()?.into(),
            row: reader.bytes()?.into(),
        });
    }
    reader.finish()?;
    Ok(Ranking { window_end, rows })
}

pub struct TopN {
    partition_columns: Vec<usize>,
    order_columns: Vec<usize>,
    /// The ranks emitted (1-based): rows ranked before `start` are kept but not emitted.
    start: usize,
    end: usize,
    ties: RankTies,
    keys: RowConverter,
    order: RowConverter,
    rows: RowConverter,
    /// The input's columns, then the rank (UInt64).
    schema: SchemaRef,
    cache: KeyedCache<Ranking>,
    backend: Box<dyn StateBackend>,
    /// A window Top-N's window-end column (one of the partition columns).
    window_end_column: Option<usize>,
    /// The input takes rows back: every row of a partition is kept.
    retracting: bool,
    /// (window end, key) of every ranking a window Top-N has still to emit.
    by_end: BTreeSet<(EventTime, GroupKey)>,
    watermark: EventTime,
    /// A watermark whose windows did not all fire in one step.
    firing: Option<EventTime>,
    late_rows: LateRows,
}

impl TopN {
    pub fn new(
        spec: &TopNSpec,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
        backend: Box<dyn StateBackend>,
        cache_limit: usize,
        late_rows: LateRows,
    ) -> Result<Self> {
        if spec.start == 0 || spec.start > spec.end {
            return Err(Error::internal(format!("Top-N ranks {}..={} are empty", spec.start, spec.end)));
        }
        let type_of = |c: &usize| input_schema.field(*c).data_type().clone();
        // Without PARTITION BY every row is under one constant key, as the exchange routes them.
        let partition_types: Vec<_> = match spec.partition_columns.is_empty() {
            true => vec![DataType::Int64],
            false => spec.partition_columns.iter().map(type_of).collect(),
        };
        let order_fields = spec
            .order
            .iter()
            .map(|(c, options)| SortField::new_with_options(type_of(c), *options))
            .collect();
        let row_fields = input_schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(TopN {
            partition_columns: spec.partition_columns.clone(),
            order_columns: spec.order.iter().map(|(c, _)| *c).collect(),
            start: spec.start as usize,
            end: spec.end as usize,
            ties: spec.ties,
            keys: key_converter(&partition_types)?,
            order: RowConverter::new(order_fields)?,
            rows: RowConverter::new(row_fields)?,
            schema: output_schema,
            cache: KeyedCache::new(cache_limit, Arc::new(encode_ranking)),
            backend,
            window_end_column: spec.window_end,
            retracting: spec.retracting,
            by_end: BTreeSet::new(),
            watermark: EventTime::MIN,
            firing: None,
            late_rows,
        })
    }

    /// Where a row ordered `order` enters the ranking of `key` (0-based; `None` when it ranks after
    /// `end`), and the ranking if it was read from the backend, to be cached if the row enters.
    fn entry_position(&self, key: &GroupKey, order: &[u8]) -> Result<(Option<usize>, Option<Ranking>)> {
        let loaded = match self.cache.get(key) {
            Some(_) => None,
            None => Some(self.load(key)?),
        };
        let rows = match (&loaded, self.cache.get(key)) {
            (Some(ranking), _) | (None, Some(ranking)) => &ranking.rows,
            (None, None) => return Err(Error::internal("a Top-N ranking vanished from the cache")),
        };
        let position = match self.ties {
            RankTies::FirstArrived => rows.partition_point(|r| &*r.order <= order),
            RankTies::LastArrived => rows.partition_point(|r| &*r.order < order),
        };
        Ok(((position < self.end).then_some(position), loaded))
    }

    fn load(&self, key: &GroupKey) -> Result<Ranking> {
        load_ranking(self.backend.as_ref(), key)
    }

    /// A batch of rows with their ranks: updates of an updating Top-N (with `kinds`), or a window
    /// Top-N's final rows.
    fn emit(&self, emitted: Vec<(Box<[u8]>, u64)>, kinds: Option<Vec<RowKind>>, out: &mut Vec<Message>) -> Result<()> {
        if emitted.is_empty() {
            return Ok(());
        }
        let parser = self.rows.parser();
        let mut columns = self.rows.convert_rows(emitted.iter().map(|(row, _)| parser.parse(row)))?;
        columns.push(Arc::new(UInt64Array::from_iter_values(emitted.iter().map(|(_, rank)| *rank))));
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        out.push(Message::Data(match kinds {
            Some(kinds) => with_row_kinds(&batch, kinds)?,
            None => batch,
        }));
        Ok(())
    }

    /// An updating Top-N: ranks each row and emits the ranks it changed.
    fn rank_and_update(&mut self, keys: &[GroupKey], orders: &Rows, encoded: &Rows, out: &mut Vec<Message>) -> Result<()> {
        // (row, rank) and kind of every change, in order.
        let mut emitted: Vec<(Box<[u8]>, u64)> = Vec::new();
        let mut kinds = Vec::new();
        let (start, end) = (self.start, self.end);
        for (i, key) in keys.iter().enumerate() {
            let order = orders.row(i).data();
            let (Some(position), loaded) = self.entry_position(key, order)? else {
                continue;
            };
            let rows = &mut self.cache.changing(key, || Ok(loaded.unwrap_or_default()))?.rows;
            // The emitted ranks from the entry on are the ones that change.
            let first = position.max(start - 1);
            let before: Vec<Box<[u8]>> = rows.iter().skip(first).take(end - first).map(|r| r.row.clone()).collect();
            rows.insert(
                position,
                Ranked {
                    order: order.into(),
                    row: encoded.row(i).data().into(),
                },
            );
            rows.truncate(end);
            for (offset, now) in rows.iter().skip(first).enumerate() {
                let rank = (first + offset + 1) as u64;
                match before.get(offset) {
                    Some(old) if *old == now.row => {}
                    Some(old) => {
                        emitted.push((old.clone(), rank));
                        kinds.push(RowKind::UpdateBefore);
                        emitted.push((now.row.clone(), rank));
                        kinds.push(RowKind::UpdateAfter);
                    }
                    None => {
                        emitted.push((now.row.clone(), rank));
                        kinds.push(RowKind::Insert);
                    }
                }
            }
        }
        self.emit(emitted, Some(kinds), out)
    }

    /// A Top-N over a retract changelog: adds or takes back each row in order, keeping all rows,
    /// and emits the ranks each change moved (a rank left without a row is deleted).
    fn rank_changelog(
        &mut self,
        keys: &[GroupKey],
        orders: &Rows,
        encoded: &Rows,
        kinds: &[RowKind],
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let mut emitted: Vec<(Box<[u8]>, u64)> = Vec::new();
        let mut changes = Vec::new();
        let (start, end, ties) = (self.start, self.end, self.ties);
        for (i, key) in keys.iter().enumerate() {
            let (order, row) = (orders.row(i).data(), encoded.row(i).data());
            let backend = self.backend.as_ref();
            let rows = &mut self.cache.changing(key, || load_ranking(backend, key))?.rows;
            let position = if kinds[i].is_retraction() {
                // The earliest of the equal rows goes, as in Flink.
                let from = rows.partition_point(|r| &*r.order < order);
                let Some(offset) = rows[from..].iter().take_while(|r| &*r.order == order).position(|r| &*r.row == row) else {
                    // Taken back but never added (state expired or dropped): nothing ranks differently.
                    continue;
                };
                from + offset
            } else {
                match ties {
                    RankTies::FirstArrived => rows.partition_point(|r| &*r.order <= order),
                    RankTies::LastArrived => rows.partition_point(|r| &*r.order < order),
                }
            };
            // The emitted ranks from the change on are the ones that move; a change below them
            // (kept, as it may rank later) moves none.
            if position >= end {
                apply_change(rows, position, kinds[i], order, row);
                continue;
            }
            let first = position.max(start - 1);
            let before: Vec<Box<[u8]>> = rows.iter().skip(first).take(end - first).map(|r| r.row.clone()).collect();
            apply_change(rows, position, kinds[i], order, row);
            let after: Vec<&Box<[u8]>> = rows.iter().skip(first).take(end - first).map(|r| &r.row).collect();
            for offset in 0..before.len().max(after.len()) {
                let rank = (first + offset + 1) as u64;
                match (before.get(offset), after.get(offset)) {
                    (Some(old), Some(now)) if old == *now => {}
                    (Some(old), Some(now)) => {
                        emitted.push((old.clone(), rank));
                        changes.push(RowKind::UpdateBefore);
                        emitted.push(((*now).clone(), rank));
                        changes.push(RowKind::UpdateAfter);
                    }
                    (None, Some(now)) => {
                        emitted.push(((*now).clone(), rank));
                        changes.push(RowKind::Insert);
                    }
                    (Some(old), None) => {
                        emitted.push((old.clone(), rank));
                        changes.push(RowKind::Delete);
                    }
                    (None, None) => {}
                }
            }
        }
        self.emit(emitted, Some(changes), out)
    }

    /// A window Top-N: ranks each row of a window still open; emits nothing until it closes.
    fn rank_in_window(&mut self, keys: &[GroupKey], ends: &[Option<EventTime>], orders: &Rows, encoded: &Rows) -> Result<()> {
        let mut late = 0;
        for (i, key) in keys.iter().enumerate() {
            let Some(window_end) = ends[i].filter(|end| *end > self.watermark) else {
                late += 1;
                continue;
            };
            let order = orders.row(i).data();
            let (Some(position), loaded) = self.entry_position(key, order)? else {
                continue;
            };
            let ranking = self.cache.changing(key, || Ok(loaded.unwrap_or_default()))?;
            ranking.window_end = window_end;
            ranking.rows.insert(
                position,
                Ranked {
                    order: order.into(),
                    row: encoded.row(i).data().into(),
                },
            );
            ranking.rows.truncate(self.end);
            self.by_end.insert((window_end, key.clone()));
        }
        self.late_rows.add(late);
        Ok(())
    }
}

/// The ranking of `key` in the backend (empty if it has none).
fn load_ranking(backend: &dyn StateBackend, key: &GroupKey) -> Result<Ranking> {
    match backend.get(key)? {
        Some(bytes) => decode_ranking(&bytes),
        None => Ok(Ranking::default()),
    }
}

/// Takes the row at `position` out (a retraction) or puts `order` / `row` in there.
fn apply_change(rows: &mut Vec<Ranked>, position: usize, kind: RowKind, order: &[u8], row: &[u8]) {
    if kind.is_retraction() {
        rows.remove(position);
    } else {
        rows.insert(
            position,
            Ranked {
                order: order.into(),
                row: row.into(),
            },
        );
    }
}

impl Operator for TopN {
    fn state_bytes(&self) -> Option<u64> {
        Some(self.backend.estimated_bytes())
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let (rows, kinds) = split_row_kinds(&batch)?;
        if !self.retracting && kinds.as_ref().is_some_and(|kinds| kinds.iter().any(|k| k.is_retraction())) {
            return Err(Error::internal(
                "Top-N received a retraction; it was planned over append-only input",
            ));
        }
        let columns = |indices: &[usize]| indices.iter().map(|c| rows.column(*c).clone()).collect::<Vec<ArrayRef>>();
        let partition = match self.partition_columns.is_empty() {
            true => vec![Arc::new(Int64Array::from(vec![0; rows.num_rows()])) as ArrayRef],
            false => columns(&self.partition_columns),
        };
        let converted = self.keys.convert_columns(&partition)?;
        let keys: Vec<GroupKey> = (0..rows.num_rows()).map(|i| group_key(converted.row(i).data())).collect();
        let orders = self.order.convert_columns(&columns(&self.order_columns))?;
        let encoded = self.rows.convert_columns(rows.columns())?;
        match self.window_end_column {
            None if self.retracting => {
                let kinds = kinds.unwrap_or_else(|| vec![RowKind::Insert; rows.num_rows()]);
                self.rank_changelog(&keys, &orders, &encoded, &kinds, out)?;
            }
            None => self.rank_and_update(&keys, &orders, &encoded, out)?,
            Some(column) => {
                let ends = event_time_nanos(rows.column(column))?;
                let ends: Vec<Option<EventTime>> = (0..ends.len()).map(|i| (!ends.is_null(i)).then(|| ends.value(i))).collect();
                self.rank_in_window(&keys, &ends, &orders, &encoded)?;
            }
        }
        self.cache.spill_if_full(self.backend.as_mut())
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        if self.firing.is_some() {
            return Err(Error::internal("a window Top-N firing was still in progress at a barrier"));
        }
        let mut snapshot = self.cache.snapshot(self.backend.as_mut(), dir)?;
        snapshot.meta = encode_meta(&WatermarkMeta { watermark: self.watermark })?;
        Ok(Some(snapshot))
    }

    /// A window Top-N rebuilds its index of windows from the backend, which holds every ranking
    /// (a fired window's was deleted by the checkpoint that followed its firing).
    fn restore(&mut self, meta: &serde_json::Value) -> Result<()> {
        self.watermark = decode_meta::<WatermarkMeta>(meta, "Top-N")?.watermark;
        if self.window_end_column.is_none() {
            return Ok(());
        }
        let mut fired = StateWriteBatch::default();
        for (key, value) in self.backend.scan(&[], &[0xff; 16])? {
            let ranking = decode_ranking(&value)?;
            if ranking.window_end <= self.watermark {
                fired.delete(key);
            } else {
                self.by_end.insert((ranking.window_end, key.into_boxed_slice()));
            }
        }
        self.backend.write(fired)
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        if self.window_end_column.is_none() {
            out.push(Message::Watermark(watermark));
            return Ok(());
        }
        // Two watermarks in one step of the task: the first one's firing ends first.
        while self.resume(out)? {}
        self.watermark = watermark;
        self.firing = Some(watermark);
        self.resume(out).map(|_| ())
    }

    /// Emits the final ranks of up to `FIRE_STEP_ROWS` rows of the windows the watermark closed,
    /// freeing their state; after the last, forwards the watermark.
    fn resume(&mut self, out: &mut Vec<Message>) -> Result<bool> {
        let Some(watermark) = self.firing else { return Ok(false) };
        let mut emitted = Vec::new();
        while let Some((window_end, _)) = self.by_end.first()
            && *window_end <= watermark
        {
            if emitted.len() >= FIRE_STEP_ROWS {
                self.emit(emitted, None, out)?;
                return Ok(true);
            }
            let Some((_, key)) = self.by_end.pop_first() else { break };
            let loaded = match self.cache.get(&key) {
                Some(_) => None,
                None => Some(self.load(&key)?),
            };
            // Emptied, the ranking is deleted from the backend with the cache's next write.
            let rows = std::mem::take(&mut self.cache.changing(&key, || Ok(loaded.unwrap_or_default()))?.rows);
            for (rank, ranked) in rows.into_iter().enumerate().skip(self.start - 1) {
                emitted.push((ranked.row, rank as u64 + 1));
            }
        }
        self.emit(emitted, None, out)?;
        self.firing = None;
        self.cache.spill_if_full(self.backend.as_mut())?;
        out.push(Message::Watermark(watermark));
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::compute::SortOptions;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::operators::testing::{OperatorHarness, changelog_lines};
    use crate::settings::StateBackendKind;

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("auction", DataType::Int64, false),
            Field::new("price", DataType::Int64, true),
            Field::new("bidder", DataType::Utf8, true),
        ]))
    }

    fn output_schema() -> SchemaRef {
        let mut fields: Vec<Field> = input_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("rn", DataType::UInt64, false));
        Arc::new(Schema::new(fields))
    }

    fn bids(rows: &[(i64, i64, &str)]) -> RecordBatch {
        RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch")
    }

    /// Top `start..=end` bids per auction by price, highest first.
    fn spec(start: u64, end: u64, ties: RankTies) -> TopNSpec {
        TopNSpec {
            partition_columns: vec![0],
            order: vec![(
                1,
                SortOptions {
                    descending: true,
                    nulls_first: false,
                },
            )],
            start,
            end,
            ties,
            window_end: None,
            retracting: false,
        }
    }

    fn harness(spec: &TopNSpec, dir: &std::path::Path, cache: usize) -> OperatorHarness {
        let backend = StateBackendKind::RocksDb.open(&dir.join("live")).expect("backend");
        let operator = TopN::new(spec, input_schema(), output_schema(), backend, cache, LateRows::unattached()).expect("operator");
        OperatorHarness::new(Box::new(operator), &dir.join("harness"))
    }

    #[test]
    fn a_better_row_shifts_the_ranks_below_it_and_pushes_the_last_out() {
        let dir = tempfile::tempdir().expect("dir");
        // A cache of one key: every batch spills, so rankings are read back from the backend.
        let mut top = harness(&spec(1, 2, RankTies::FirstArrived), dir.path(), 1);
        top.push(bids(&[(1, 10, "a"), (2, 5, "x"), (1, 20, "b")])).expect("push");
        assert_eq!(
            top.take_changelog().expect("changelog"),
            ["+I 1 10 a 1", "+I 2 5 x 1", "-U 1 10 a 1", "+U 1 20 b 1", "+I 1 10 a 2"]
        );
        // Below the top two: nothing. Equal to the second: ranks after it (arrival order).
        top.push(bids(&[(1, 3, "c"), (1, 10, "d")])).expect("push");
        assert_eq!(top.take_changelog().expect("changelog"), Vec::<String>::new());
        top.push(bids(&[(1, 15, "e")])).expect("push");
        assert_eq!(top.take_changelog().expect("changelog"), ["-U 1 10 a 2", "+U 1 15 e 2"]);

        let snapshot = top.barrier().expect("barrier").expect("a snapshot");
        let backend = snapshot
            .restore_backend(StateBackendKind::RocksDb, &dir.path().join("restored"))
            .expect("restore");
        let operator = TopN::new(
            &spec(1, 2, RankTies::FirstArrived),
            input_schema(),
            output_schema(),
            backend,
            100,
            LateRows::unattached(),
        )
        .expect("operator");
        let mut restored = OperatorHarness::new(Box::new(operator), &dir.path().join("b"));
        restored.push(bids(&[(1, 30, "f"), (2, 1, "y")])).expect("push");
        assert_eq!(
            restored.take_changelog().expect("changelog"),
            ["-U 1 20 b 1", "+U 1 30 f 1", "-U 1 15 e 2", "+U 1 20 b 2", "+I 2 1 y 2"]
        );
    }

    #[test]
    fn ranks_before_the_start_are_kept_but_not_emitted() {
        let dir = tempfile::tempdir().expect("dir");
        let mut top = harness(&spec(2, 3, RankTies::FirstArrived), dir.path(), 100);
        top.push(bids(&[(1, 10, "a"), (1, 20, "b")])).expect("push");
        assert_eq!(top.take_changelog().expect("changelog"), ["+I 1 10 a 2"]);
        top.push(bids(&[(1, 30, "c")])).expect("push");
        assert_eq!(
            top.take_changelog().expect("changelog"),
            ["-U 1 10 a 2", "+U 1 20 b 2", "+I 1 10 a 3"]
        );
    }

    #[test]
    fn keep_last_deduplication_lets_a_later_row_with_the_same_time_replace_the_earlier() {
        let dir = tempfile::tempdir().expect("dir");
        let mut last = harness(&spec(1, 1, RankTies::LastArrived), dir.path(), 100);
        last.push(bids(&[(1, 10, "a"), (1, 10, "b"), (1, 9, "late")])).expect("push");
        assert_eq!(
            last.take_changelog().expect("changelog"),
            ["+I 1 10 a 1", "-U 1 10 a 1", "+U 1 10 b 1"]
        );
    }

    #[test]
    fn a_window_top_n_emits_each_window_once_when_it_closes_and_restores_its_open_windows() {
        use datafusion::arrow::array::TimestampMillisecondArray;
        use datafusion::arrow::datatypes::TimeUnit;

        let input = Arc::new(Schema::new(vec![
            Field::new("window_end", DataType::Timestamp(TimeUnit::Millisecond, None), false),
            Field::new("price", DataType::Int64, true),
            Field::new("bidder", DataType::Utf8, true),
        ]));
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("rn", DataType::UInt64, false));
        let output: SchemaRef = Arc::new(Schema::new(fields));
        let rows = |rows: &[(i64, i64, &str)]| {
            RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.0))),
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
                ],
            )
            .expect("batch")
        };
        let spec = TopNSpec {
            window_end: Some(0),
            retracting: false,
            ..spec(1, 2, RankTies::FirstArrived)
        };
        let ms = 1_000_000;
        let dir = tempfile::tempdir().expect("dir");
        let backend = StateBackendKind::RocksDb.open(&dir.path().join("live")).expect("backend");
        let late_rows = LateRows::unattached();
        let operator = TopN::new(&spec, input.clone(), output.clone(), backend, 1, late_rows.clone()).expect("operator");
        let mut top = OperatorHarness::new(Box::new(operator), &dir.path().join("a"));
        top.push(rows(&[(10, 5, "a"), (20, 1, "x"), (10, 7, "b"), (10, 6, "c")]))
            .expect("push");
        assert_eq!(
            top.take_changelog().expect("changelog"),
            Vec::<String>::new(),
            "nothing before the window closes"
        );
        top.watermark(10 * ms).expect("watermark");
        let (closed, watermarks) = top.take_rows().expect("rows");
        let closed = changelog_lines(&closed.expect("the closed window's ranks")).expect("lines");
        assert_eq!(closed, ["+I 1970-01-01T00:00:00.010 7 b 1", "+I 1970-01-01T00:00:00.010 6 c 2"]);
        assert_eq!(watermarks, [10 * ms], "the watermark follows the window's rows");

        // A row of the closed window is late; the open window survives a snapshot and a restore.
        top.push(rows(&[(10, 100, "late"), (20, 3, "y")])).expect("push");
        assert_eq!(late_rows.counted(), 1);
        let snapshot = top.barrier().expect("barrier").expect("a snapshot");
        let backend = snapshot
            .restore_backend(StateBackendKind::RocksDb, &dir.path().join("restored"))
            .expect("restore");
        let mut operator = TopN::new(&spec, input.clone(), output, backend, 100, LateRows::unattached()).expect("operator");
        operator.restore(&snapshot.meta).expect("restore meta");
        let mut restored = OperatorHarness::new(Box::new(operator), &dir.path().join("b"));
        restored.push(rows(&[(20, 2, "z")])).expect("push");
        restored.watermark(30 * ms).expect("watermark");
        assert_eq!(
            restored.take_changelog().expect("changelog"),
            ["+I 1970-01-01T00:00:00.020 3 y 1", "+I 1970-01-01T00:00:00.020 2 z 2"]
        );
    }
}
