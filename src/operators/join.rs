//! `StreamingJoin`: a regular equi-join of two streams, as Flink's StreamingJoinOperator runs it.
//! Both inputs are kept in the state backend under their join key; a row arriving on one side is
//! joined with the rows of its key on the other side that pass the rest of the ON condition.
//!
//! Outer joins: a row of a preserved side that matches nothing is emitted padded with nulls. Each
//! stored row of such a side counts the rows of the other side it matches, so that the padded
//! row is taken back (a delete) when its first match arrives, and emitted again when its last
//! match is taken back, as Flink does.
//!
//! Rows taken back (update-before, delete) take back the joined rows they made. The output is
//! append-only for an inner join of append-only inputs (no row kinds), else a retract changelog
//! of inserts and deletes. A row with a NULL in its key matches nothing and is never stored.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::{RowConverter, Rows, SortField};

use crate::error::{Error, Result};
use crate::graph::{ChangelogMode, JoinKind, JoinSpec, PhysicalExprRef};
use crate::message::{Message, RowKind, split_row_kinds, with_row_kinds};
use crate::operators::expiry_index::ExpiryIndex;
use crate::operators::grouping::{GroupKey, group_key};
use crate::operators::keyed_cache::KeyedCache;
use crate::operators::state_bytes::{StateReader, put_bytes};
use crate::operators::state_ttl::StateTtl;
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::StateBackend;
use crate::state::key::key_converter;

/// A stored row of one side: how many times it is there, how many rows of the other side it
/// matches (kept where that decides the output: outer, semi and anti joins), and when it was last
/// written (processing time, ms; for the state TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoredRow {
    count: i64,
    matches: i64,
    written: i64,
}

/// The rows of one side under one join key, row-encoded.
type SideRows = BTreeMap<Box<[u8]>, StoredRow>;

/// A stored row whose match count changed: its bytes, and how it was and is.
type ChangedRow = (Box<[u8]>, StoredRow, StoredRow);

/// A joined row to emit: the left and the right row (`None`: nulls), and its kind.
pub type Emitted = (Option<Box<[u8]>>, Option<Box<[u8]>>, RowKind);

pub struct StreamingJoin {
    kind: JoinKind,
    keys: [Vec<PhysicalExprRef>; 2],
    key_rows: RowConverter,
    joined: JoinedRows,
    filter: Option<PhysicalExprRef>,
    /// Row kinds on the output (a retract changelog), or none (append-only).
    changelog: bool,
    sides: [KeyedCache<SideRows>; 2],
    backend: Box<dyn StateBackend>,
    /// `table.exec.state.ttl`, and the state keys by when their oldest row expires.
    ttl: Option<StateTtl>,
    expiring: ExpiryIndex,
    /// Processing time of the batch being joined (with a TTL).
    now: i64,
}

/// A row of one side, as its state stores it (Arrow row bytes).
type RowBytes = Box<[u8]>;
/// A row of the other side that a new row matches, copied out with its stored counts.
type MatchedRow = (RowBytes, StoredRow);

impl StreamingJoin {
    pub fn new(
        spec: &JoinSpec,
        inputs: [SchemaRef; 2],
        output_schema: SchemaRef,
        backend: Box<dyn StateBackend>,
        cache_limit: usize,
        ttl: Option<StateTtl>,
    ) -> Result<Self> {
        let encode = Arc::new(|rows: &SideRows| (!rows.is_empty()).then(|| encode_side_rows(rows)));
        Ok(StreamingJoin {
            kind: spec.kind,
            keys: spec.keys.clone(),
            key_rows: join_key_converter(spec, &inputs)?,
            joined: JoinedRows::new(&inputs, output_schema)?,
            filter: spec.filter.clone(),
            changelog: spec.output != ChangelogMode::AppendOnly,
            sides: [KeyedCache::new(cache_limit, encode.clone()), KeyedCache::new(cache_limit, encode)],
            backend,
            ttl,
            expiring: ExpiryIndex::default(),
            now: 0,
        })
    }

    /// Whether a stored row is still there under the state TTL.
    fn live(ttl: Option<&StateTtl>, now: i64, stored: &StoredRow) -> bool {
        ttl.is_none_or(|ttl| ttl.expiry(stored.written) > now)
    }

    /// The stored rows of `side` under `key`, to change; rows past the TTL are dropped first.
    fn side_rows(&mut self, side: usize, key: &GroupKey) -> Result<&mut SideRows> {
        let backend = &self.backend;
        let rows = self.sides[side].changing(key, || match backend.get(key)? {
            Some(bytes) => decode_side_rows(&bytes),
            None => Ok(SideRows::new()),
        })?;
        if let Some(ttl) = &self.ttl {
            let now = self.now;
            rows.retain(|_, stored| Self::live(Some(ttl), now, stored));
        }
        Ok(rows)
    }

    /// Counts `row` in (or, `step` -1, out of) the stored rows of `side` under `key`; a new row
    /// starts with `matches` matches.
    fn record(&mut self, side: usize, key: &GroupKey, row: Box<[u8]>, step: i64, matches: i64) -> Result<()> {
        let now = self.now;
        let rows = self.side_rows(side, key)?;
        let stored = rows.entry(row.clone()).or_insert(StoredRow {
            count: 0,
            matches,
            written: now,
        });
        stored.count += step;
        stored.written = now;
        if stored.count <= 0 {
            rows.remove(&row);
        }
        self.written(key);
        Ok(())
    }

    /// `key` was written now: with a TTL, its rows expire from now on.
    fn written(&mut self, key: &GroupKey) {
        if let Some(ttl) = &self.ttl {
            self.expiring.insert(key, ttl.expiry(self.now));
        }
    }

    /// Changes the match counts of the rows of `side` under `key` (those of `changes`).
    fn add_matches(&mut self, side: usize, key: &GroupKey, changes: &[(Box<[u8]>, i64)]) -> Result<Vec<ChangedRow>> {
        let now = self.now;
        let rows = self.side_rows(side, key)?;
        let mut changed = Vec::with_capacity(changes.len());
        for (row, step) in changes {
            if let Some(stored) = rows.get_mut(row) {
                let before = *stored;
                stored.matches += step;
                stored.written = now;
                changed.push((row.clone(), before, *stored));
            }
        }
        self.written(key);
        Ok(changed)
    }

    /// With a TTL: drops the rows not written for it from the state keys whose turn has come.
    fn expire_idle(&mut self) -> Result<()> {
        let Some(ttl) = self.ttl.clone() else {
            return Ok(());
        };
        self.now = ttl.now();
        for key in self.expiring.take_due(self.now.saturating_add(1)) {
            let side = *key.last().ok_or_else(|| Error::internal("join state key without its side"))? as usize;
            // `side_rows` drops the expired rows; the key's next turn is its oldest row's expiry.
            let oldest = self.side_rows(side, &key)?.values().map(|s| s.written).min();
            if let Some(oldest) = oldest {
                self.expiring.insert(&key, ttl.expiry(oldest));
            }
        }
        Ok(())
    }

    /// For each row of a batch of side `side` (`keys`, `rows`), the live rows of the other side
    /// under its key that it matches, copied out with how they are stored. Only the match counts of
    /// the other side's rows change while a batch of one side is joined (`join_row` reads those
    /// afresh where they decide the output), so the rest of the ON condition is evaluated once,
    /// over all the batch's candidate pairs.
    fn matched_batch(&self, side: usize, keys: &[Option<GroupKey>], rows: &Rows) -> Result<Vec<Vec<MatchedRow>>> {
        let other = 1 - side;
        let mut loaded: HashMap<GroupKey, Cow<'_, SideRows>> = HashMap::new();
        for key in keys.iter().flatten() {
            let other_key = side_state_key(key, other);
            if loaded.contains_key(&other_key) {
                continue;
            }
            let stored = match self.sides[other].get(&other_key) {
                Some(stored) => Cow::Borrowed(stored),
                None => Cow::Owned(match self.backend.get(&other_key)? {
                    Some(bytes) => decode_side_rows(&bytes)?,
                    None => SideRows::new(),
                }),
            };
            loaded.insert(other_key, stored);
        }
        let (ttl, now) = (self.ttl.as_ref(), self.now);
        let mut candidates: Vec<Vec<(&RowBytes, &StoredRow)>> = Vec::with_capacity(keys.len());
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let live: Vec<_> = match key.as_ref().and_then(|key| loaded.get(&side_state_key(key, other))) {
                Some(stored) => stored.iter().filter(|(_, s)| Self::live(ttl, now, s)).collect(),
                None => Vec::new(),
            };
            pairs.extend(live.iter().map(|(r, _)| (rows.row(i).data(), &r[..])));
            candidates.push(live);
        }
        let mut passes = self.joined.matching_pairs(self.filter.as_ref(), side, &pairs)?.into_iter();
        Ok(candidates
            .into_iter()
            .map(|live| {
                live.into_iter()
                    .filter(|_| passes.next().unwrap_or(false))
                    .map(|(r, stored)| (r.clone(), *stored))
                    .collect()
            })
            .collect())
    }

    /// Joins one row of side `side` (a new row, or one taken back) with the other side's rows it
    /// matches (`matched_batch`), and records it.
    fn join_row(
        &mut self,
        side: usize,
        key: Option<GroupKey>,
        row: Box<[u8]>,
        taken_back: bool,
        mut matched: Vec<MatchedRow>,
        out: &mut Vec<Emitted>,
    ) -> Result<()> {
        if self.kind.emits_left_only() {
            return self.existence_row(side, key, row, taken_back, matched, out);
        }
        let other = 1 - side;
        let pair = |mine: Option<Box<[u8]>>, theirs: Option<Box<[u8]>>| if side == 0 { (mine, theirs) } else { (theirs, mine) };
        let mine_kept = self.kind.keeps_unmatched(side);
        let other_kept = self.kind.keeps_unmatched(other);
        let kind = if taken_back { RowKind::Delete } else { RowKind::Insert };
        // A NULL key matches nothing: no state.
        let Some(key) = key else {
            if mine_kept {
                let (l, r) = pair(Some(row), None);
                out.push((l, r, kind));
            }
            return Ok(());
        };
        let (mine_key, other_key) = (side_state_key(&key, side), side_state_key(&key, other));
        if taken_back && !self.side_rows(side, &mine_key)?.contains_key(&row) {
            // Taken back but never stored (its state expired or never reached here): nothing to undo.
            return Ok(());
        }
        if other_kept && !matched.is_empty() {
            // Their match counts as earlier rows of this batch left them.
            let stored = self.side_rows(other, &other_key)?;
            matched = matched.into_iter().filter_map(|(r, _)| stored.get(&r).map(|s| (r, *s))).collect();
        }
        // The other side's padded rows this row ends (a first match) or brings back (a last one).
        let mut other_changes: Vec<(Box<[u8]>, i64)> = Vec::new();
        for (other_row, stored) in &matched {
            let repeat = stored.count.max(0) as usize;
            let (l, r) = pair(Some(row.clone()), Some(other_row.clone()));
            if other_kept && !taken_back && stored.matches == 0 {
                let (pl, pr) = pair(None, Some(other_row.clone()));
                out.extend(std::iter::repeat_n((pl, pr, RowKind::Delete), repeat));
            }
            out.extend(std::iter::repeat_n((l, r, kind), repeat));
            if other_kept && taken_back && stored.matches == 1 {
                let (pl, pr) = pair(None, Some(other_row.clone()));
                out.extend(std::iter::repeat_n((pl, pr, RowKind::Insert), repeat));
            }
            other_changes.push((other_row.clone(), if taken_back { -1 } else { 1 }));
        }
        if mine_kept && matched.is_empty() {
            let (l, r) = pair(Some(row.clone()), None);
            out.push((l, r, kind));
        }
        if other_kept && !other_changes.is_empty() {
            self.add_matches(other, &other_key, &other_changes)?;
        }
        let match_count: i64 = matched.iter().map(|(_, s)| s.count).sum();
        self.record(side, &mine_key, row, if taken_back { -1 } else { 1 }, match_count)
    }

    /// A row of a semi or anti join, whose output is the left rows that have a match (semi) or
    /// none (anti). Each stored left row counts its matches; a right row that changes a left row's
    /// count between none and some makes that row appear or go.
    fn existence_row(
        &mut self,
        side: usize,
        key: Option<GroupKey>,
        row: Box<[u8]>,
        taken_back: bool,
        matched: Vec<MatchedRow>,
        out: &mut Vec<Emitted>,
    ) -> Result<()> {
        let anti = self.kind == JoinKind::LeftAnti;
        let kind = if taken_back { RowKind::Delete } else { RowKind::Insert };
        let step = if taken_back { -1 } else { 1 };
        let Some(key) = key else {
            // A NULL key matches nothing.
            if side == 0 && anti {
                out.push((Some(row), None, kind));
            }
            return Ok(());
        };
        let other = 1 - side;
        let (mine_key, other_key) = (side_state_key(&key, side), side_state_key(&key, other));
        if taken_back && !self.side_rows(side, &mine_key)?.contains_key(&row) {
            return Ok(());
        }
        let match_count: i64 = matched.iter().map(|(_, s)| s.count).sum();
        if side == 0 {
            if (match_count > 0) != anti {
                out.push((Some(row.clone()), None, kind));
            }
        } else {
            let changes: Vec<(Box<[u8]>, i64)> = matched.iter().map(|(left_row, _)| (left_row.clone(), step)).collect();
            for (left_row, before, after) in self.add_matches(other, &other_key, &changes)? {
                if (before.matches > 0) != (after.matches > 0) {
                    // Semi: it appears with its first match and goes with its last; anti: the reverse.
                    let appears = (after.matches > 0) != anti;
                    let kind = if appears { RowKind::Insert } else { RowKind::Delete };
                    out.extend(std::iter::repeat_n((Some(left_row), None, kind), after.count.max(0) as usize));
                }
            }
        }
        self.record(side, &mine_key, row, step, match_count)
    }

    fn process_side(&mut self, side: usize, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        self.expire_idle()?;
        let (rows, kinds) = split_row_kinds(&batch)?;
        let keys = join_keys(&self.keys[side], &self.key_rows, &rows)?;
        let encoded = self.joined.encode(side, &rows)?;
        let matched = self.matched_batch(side, &keys, &encoded)?;
        let mut emitted = Vec::new();
        for (i, (key, matched)) in keys.into_iter().zip(matched).enumerate() {
            let taken_back = kinds.as_ref().is_some_and(|k| k[i].is_retraction());
            self.join_row(side, key, encoded.row(i).data().into(), taken_back, matched, &mut emitted)?;
        }
        if !emitted.is_empty() {
            let joined = self.joined.build(&emitted)?;
            out.push(Message::Data(if self.changelog {
                with_row_kinds(&joined, emitted.iter().map(|(_, _, kind)| *kind).collect())?
            } else {
                joined
            }));
        }
        for side in &mut self.sides {
            side.spill_if_full(self.backend.as_mut())?;
        }
        Ok(())
    }
}

impl Operator for StreamingJoin {
    fn state_bytes(&self) -> Option<u64> {
        Some(self.backend.estimated_bytes())
    }

    fn process(&mut self, _batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        Err(Error::internal("a join's rows must say which input they came from"))
    }

    fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        match input {
            0 | 1 => self.process_side(input, batch, out),
            other => Err(Error::internal(format!("a join has no input {other}"))),
        }
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        snapshot_sides(&mut self.sides, self.backend.as_mut(), dir, serde_json::Value::Null)
    }

    /// With a TTL, the expiry index is rebuilt from the restored backend (every row is there).
    fn restore(&mut self, _meta: &serde_json::Value) -> Result<()> {
        let Some(ttl) = self.ttl.clone() else {
            return Ok(());
        };
        for (key, value) in self.backend.scan(&[], &[0xff; 16])? {
            if let Some(oldest) = decode_side_rows(&value)?.values().map(|s| s.written).min() {
                self.expiring.insert(&key.into_boxed_slice(), ttl.expiry(oldest));
            }
        }
        Ok(())
    }
}

/// A join's snapshot: both sides' rows changed since the previous barrier, flushed into the one
/// backend on the checkpoint's thread, and `meta`.
pub fn snapshot_sides<V: Clone + Send + Sync + 'static>(
    sides: &mut [KeyedCache<V>; 2],
    backend: &mut dyn StateBackend,
    dir: &std::path::Path,
    meta: serde_json::Value,
) -> Result<Option<OperatorSnapshot>> {
    let left = sides[0].checkpoint_changes();
    let right = sides[1].checkpoint_changes();
    let changes = Box::new(move || {
        let mut batch = left();
        batch.ops.extend(right().ops);
        batch
    });
    let files = vec![backend.checkpoint(dir, Some(changes))?];
    Ok(Some(OperatorSnapshot {
        dir: dir.to_path_buf(),
        files,
        meta,
    }))
}

/// Where side `side` of a join keeps the rows of a join key: the key (its key group first), then
/// the side.
pub fn side_state_key(key: &GroupKey, side: usize) -> GroupKey {
    let mut bytes = key.to_vec();
    bytes.push(side as u8);
    bytes.into_boxed_slice()
}

/// Encodes join keys alike on both sides (the right key was cast to the left key's type).
pub fn join_key_converter(spec: &JoinSpec, inputs: &[SchemaRef; 2]) -> Result<RowConverter> {
    let key_types = spec.keys[0]
        .iter()
        .map(|k| Ok(k.data_type(&inputs[0])?))
        .collect::<Result<Vec<_>>>()?;
    key_converter(&key_types)
}

/// Each row's join key as stored, or `None` when the key has a NULL (it matches nothing).
pub fn join_keys(keys: &[PhysicalExprRef], converter: &RowConverter, rows: &RecordBatch) -> Result<Vec<Option<GroupKey>>> {
    let columns = keys
        .iter()
        .map(|k| Ok(k.evaluate(rows)?.into_array(rows.num_rows())?))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let encoded = converter.convert_columns(&columns)?;
    Ok((0..rows.num_rows())
        .map(|i| {
            let null_key = columns.iter().any(|c| c.is_null(i));
            (!null_key).then(|| group_key(encoded.row(i).data()))
        })
        .collect())
}

/// Both sides' rows, row-encoded whole as joins store them, and the joined rows built from them:
/// the output rows, and the candidate pairs a join condition is evaluated on.
pub struct JoinedRows {
    rows: [RowConverter; 2],
    output_schema: SchemaRef,
    /// Both sides' columns, as the rest of the ON condition reads them (for a semi or anti join
    /// the output has the left columns only).
    pairs_schema: SchemaRef,
}

impl JoinedRows {
    pub fn new(inputs: &[SchemaRef; 2], output_schema: SchemaRef) -> Result<Self> {
        let converter =
            |schema: &SchemaRef| RowConverter::new(schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect());
        let fields: Vec<_> = inputs
            .iter()
            .flat_map(|schema| schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)))
            .collect();
        Ok(JoinedRows {
            rows: [converter(&inputs[0])?, converter(&inputs[1])?],
            output_schema,
            pairs_schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The rows of a batch of side `side`, encoded.
    pub fn encode(&self, side: usize, rows: &RecordBatch) -> Result<Rows> {
        Ok(self.rows[side].convert_columns(rows.columns())?)
    }

    /// The output rows: the left rows' columns, then the right rows' (`None`: nulls) unless the
    /// output has the left columns only.
    pub fn build(&self, emitted: &[Emitted]) -> Result<RecordBatch> {
        let left: Vec<Option<&[u8]>> = emitted.iter().map(|(l, _, _)| l.as_deref()).collect();
        let mut columns = decode_rows(&self.rows[0], &left)?;
        if columns.len() < self.output_schema.fields().len() {
            let right: Vec<Option<&[u8]>> = emitted.iter().map(|(_, r, _)| r.as_deref()).collect();
            columns.extend(decode_rows(&self.rows[1], &right)?);
        }
        batch_of(&self.output_schema, columns, emitted.len())
    }

    /// Pairs of a left and a right row, with both sides' columns.
    fn pairs(&self, left: &[Option<&[u8]>], right: &[Option<&[u8]>]) -> Result<RecordBatch> {
        let mut columns = decode_rows(&self.rows[0], left)?;
        columns.extend(decode_rows(&self.rows[1], right)?);
        batch_of(&self.pairs_schema, columns, left.len())
    }

    /// Which of `others` (rows of side `1 - side`) the row `row` of side `side` matches under
    /// `filter`, the rest of the ON condition over joined rows.
    pub fn matching(&self, filter: Option<&PhysicalExprRef>, side: usize, row: &[u8], others: &[&[u8]]) -> Result<Vec<bool>> {
        let pairs: Vec<(&[u8], &[u8])> = others.iter().map(|other| (row, *other)).collect();
        self.matching_pairs(filter, side, &pairs)
    }

    /// Whether each pair of a row of side `side` and a row of the other side passes `filter`:
    /// one evaluation over all the pairs.
    pub fn matching_pairs(&self, filter: Option<&PhysicalExprRef>, side: usize, pairs: &[(&[u8], &[u8])]) -> Result<Vec<bool>> {
        let Some(filter) = filter else {
            return Ok(vec![true; pairs.len()]);
        };
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let mine: Vec<Option<&[u8]>> = pairs.iter().map(|(row, _)| Some(*row)).collect();
        let theirs: Vec<Option<&[u8]>> = pairs.iter().map(|(_, other)| Some(*other)).collect();
        let (left, right) = if side == 0 { (&mine, &theirs) } else { (&theirs, &mine) };
        let candidates = self.pairs(left, right)?;
        let mask = filter.evaluate(&candidates)?.into_array(candidates.num_rows())?;
        let mask = mask
            .as_boolean_opt()
            .ok_or_else(|| Error::type_mismatch("a JOIN condition must be a boolean"))?;
        Ok((0..pairs.len()).map(|i| mask.is_valid(i) && mask.value(i)).collect())
    }
}

/// A batch of `schema` from decoded columns, cast where the schema's type differs (a key the
/// planner cast, a column made nullable by an outer join).
pub fn batch_of(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column)
            } else {
                Ok(datafusion::arrow::compute::cast(&column, field.data_type())?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

/// Decodes row-encoded rows into columns, with nulls where a row is `None`.
pub fn decode_rows(converter: &RowConverter, rows: &[Option<&[u8]>]) -> Result<Vec<ArrayRef>> {
    let parser = converter.parser();
    let present: Vec<_> = rows.iter().flatten().map(|r| parser.parse(r)).collect();
    let columns = converter.convert_rows(present)?;
    if rows.iter().all(Option::is_some) {
        return Ok(columns);
    }
    let mut next = 0u32;
    let indices: UInt32Array = rows
        .iter()
        .map(|r| {
            r.map(|_| {
                next += 1;
                next - 1
            })
        })
        .collect();
    columns.iter().map(|c| Ok(take(c.as_ref(), &indices, None)?)).collect()
}

/// A key's rows of one side as bytes: count, then per row its bytes, count, matches and write time.
fn encode_side_rows(rows: &SideRows) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for (row, stored) in rows {
        put_bytes(&mut out, row);
        out.extend_from_slice(&stored.count.to_le_bytes());
        out.extend_from_slice(&stored.matches.to_le_bytes());
        out.extend_from_slice(&stored.written.to_le_bytes());
    }
    out
}

fn decode_side_rows(input: &[u8]) -> Result<SideRows> {
    let mut reader = StateReader::new(input, "join state");
    let n = reader.u32()?;
    let mut rows = SideRows::new();
    for _ in 0..n {
        let row: Box<[u8]> = reader.bytes()?.into();
        let count = reader.i64()?;
        let matches = reader.i64()?;
        let written = reader.i64()?;
        rows.insert(row, StoredRow { count, matches, written });
    }
    reader.finish()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::col;

    use super::*;
    use crate::operators::testing::OperatorHarness;
    use crate::settings::StateBackendKind;

    fn side(value: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new(value, DataType::Utf8, true),
        ]))
    }

    fn rows(schema: &SchemaRef, rows: &[(RowKind, Option<i64>, &str)]) -> RecordBatch {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch");
        with_row_kinds(&batch, rows.iter().map(|r| r.0).collect()).expect("kinds")
    }

    fn left_join(backend: Box<dyn StateBackend>) -> Box<dyn Operator> {
        let (left, right) = (side("a"), side("b"));
        let mut fields: Vec<Field> = left.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(right.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)));
        let spec = JoinSpec {
            kind: JoinKind::Left,
            keys: [vec![col("k", &left).expect("k")], vec![col("k", &right).expect("k")]],
            filter: None,
            output: ChangelogMode::Retract,
        };
        let output = Arc::new(Schema::new(fields));
        // A cache of one key per side: every batch spills, so the rows are read back from the backend.
        Box::new(StreamingJoin::new(&spec, [left, right], output, backend, 1, None).expect("join"))
    }

    #[test]
    fn left_join_pads_takes_padding_back_and_restores() {
        use RowKind::{Delete, Insert};
        let (left, right) = (side("a"), side("b"));
        let dir = tempfile::tempdir().expect("dir");
        let backend = StateBackendKind::RocksDb.open(&dir.path().join("live")).expect("backend");
        let mut harness = OperatorHarness::new(left_join(backend), &dir.path().join("a"));
        let step = |input: usize, batch: RecordBatch, harness: &mut OperatorHarness| {
            harness.push_input(input, batch).expect("push");
            harness.take_changelog().expect("changelog")
        };
        assert_eq!(step(0, rows(&left, &[(Insert, Some(1), "x")]), &mut harness), ["+I 1 x  "]);
        assert_eq!(
            step(1, rows(&right, &[(Insert, Some(1), "p")]), &mut harness),
            ["-D 1 x  ", "+I 1 x 1 p"]
        );
        assert_eq!(
            step(1, rows(&right, &[(Insert, Some(1), "q"), (Insert, Some(2), "z")]), &mut harness),
            ["+I 1 x 1 q"]
        );
        assert_eq!(step(1, rows(&right, &[(Delete, Some(1), "p")]), &mut harness), ["-D 1 x 1 p"]);
        assert_eq!(
            step(1, rows(&right, &[(Delete, Some(1), "q")]), &mut harness),
            ["-D 1 x 1 q", "+I 1 x  "]
        );
        // A NULL key matches nothing, also not another NULL key.
        assert_eq!(step(1, rows(&right, &[(Insert, None, "n")]), &mut harness), Vec::<String>::new());
        assert_eq!(step(0, rows(&left, &[(Insert, None, "y")]), &mut harness), ["+I  y  "]);
        // Right row 2 z waits in the state: a left row of key 2 joins it.
        assert_eq!(step(0, rows(&left, &[(Insert, Some(2), "w")]), &mut harness), ["+I 2 w 2 z"]);

        let snapshot = harness.barrier().expect("barrier").expect("a snapshot");
        let backend = snapshot
            .restore_backend(StateBackendKind::RocksDb, &dir.path().join("restored"))
            .expect("restore");
        let mut restored = OperatorHarness::new(left_join(backend), &dir.path().join("b"));
        assert_eq!(
            step(1, rows(&right, &[(Insert, Some(1), "r")]), &mut restored),
            ["-D 1 x  ", "+I 1 x 1 r"]
        );
        assert_eq!(step(0, rows(&left, &[(Delete, Some(2), "w")]), &mut restored), ["-D 2 w 2 z"]);
        // Rows of one batch see the match counts the rows before them left: the padded row goes
        // once, with the first match, and comes back once, with the last match taken back.
        assert_eq!(
            step(1, rows(&right, &[(Delete, Some(1), "r"), (Insert, Some(1), "s")]), &mut restored),
            ["-D 1 x 1 r", "+I 1 x  ", "-D 1 x  ", "+I 1 x 1 s"]
        );
        assert_eq!(
            step(
                1,
                rows(&right, &[(Insert, Some(1), "t"), (Delete, Some(1), "s"), (Delete, Some(1), "t")]),
                &mut restored
            ),
            ["+I 1 x 1 t", "-D 1 x 1 s", "-D 1 x 1 t", "+I 1 x  "]
        );
        assert_eq!(
            step(1, rows(&right, &[(Insert, Some(1), "u"), (Insert, Some(1), "v")]), &mut restored),
            ["-D 1 x  ", "+I 1 x 1 u", "+I 1 x 1 v"]
        );
    }

    #[test]
    fn state_ttl_drops_rows_not_written_for_it() {
        use RowKind::Insert;
        use std::sync::atomic::{AtomicI64, Ordering};
        let (left, right) = (side("a"), side("b"));
        let mut fields: Vec<Field> = left.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(right.fields().iter().map(|f| f.as_ref().clone()));
        let spec = JoinSpec {
            kind: JoinKind::Inner,
            keys: [vec![col("k", &left).expect("k")], vec![col("k", &right).expect("k")]],
            filter: None,
            output: ChangelogMode::AppendOnly,
        };
        let now = Arc::new(AtomicI64::new(0));
        let clock = now.clone();
        let ttl = StateTtl {
            ttl_ms: 1000,
            clock: Arc::new(move || clock.load(Ordering::SeqCst)),
        };
        let dir = tempfile::tempdir().expect("dir");
        let backend = StateBackendKind::RocksDb.open(&dir.path().join("live")).expect("backend");
        let join = StreamingJoin::new(
            &spec,
            [left.clone(), right.clone()],
            Arc::new(Schema::new(fields)),
            backend,
            1,
            Some(ttl),
        );
        let mut harness = OperatorHarness::new(Box::new(join.expect("join")), &dir.path().join("a"));
        let step = |harness: &mut OperatorHarness, at: i64, input: usize, batch: RecordBatch| {
            now.store(at, Ordering::SeqCst);
            harness.push_input(input, batch).expect("push");
            harness.take_changelog().expect("changelog")
        };
        let stored_keys = |harness: &mut OperatorHarness, name: &str| {
            let snapshot = harness.barrier().expect("barrier").expect("a snapshot");
            let backend = snapshot
                .restore_backend(StateBackendKind::RocksDb, &dir.path().join(name))
                .expect("restore");
            backend.scan(&[], &[0xff; 16]).expect("scan").len()
        };
        assert_eq!(
            step(&mut harness, 0, 0, rows(&left, &[(Insert, Some(1), "a")])),
            Vec::<String>::new()
        );
        assert_eq!(step(&mut harness, 500, 1, rows(&right, &[(Insert, Some(1), "p")])), ["+I 1 a 1 p"]);
        // At 1200 ms the left row (written at 0) is past its 1 s: it matches nothing and leaves.
        assert_eq!(
            step(&mut harness, 1200, 1, rows(&right, &[(Insert, Some(1), "q")])),
            Vec::<String>::new()
        );
        assert_eq!(stored_keys(&mut harness, "one"), 1, "only the right side's key is left");
        // Another key's row at 3 s: the right rows of key 1 (last written at 1.2 s) leave too.
        assert_eq!(
            step(&mut harness, 3000, 0, rows(&left, &[(Insert, Some(2), "z")])),
            Vec::<String>::new()
        );
        assert_eq!(stored_keys(&mut harness, "two"), 1, "only key 2's left row is left");
    }
}
