//! `OverAggregate`: Flink's OVER aggregation on event time, `AGG(x) OVER (PARTITION BY k ORDER BY
//! rowtime ROWS|RANGE BETWEEN ... PRECEDING AND CURRENT ROW)`, over an append-only input. Every
//! input row comes out once, with the aggregates over its frame appended, as Flink's
//! RowTime{Rows,Range}{Bounded,Unbounded}PrecedingFunction compute them:
//!
//! - a row waits until the watermark passes its time (so the rows of a key are aggregated in
//!   time order however they arrive); equal times go in arrival order. Weir's watermark W is
//!   Flink's W - 1 ms (Flink's bounded out-of-orderness subtracts 1 ms more): Flink's timer for
//!   time t fires at its watermark t, which is Weir's t + 1, so a row at exactly W still waits;
//! - ROWS frames hold the row and the `n` rows before it; RANGE frames the rows at most the
//!   interval earlier, including every row with the same time (peers get the same values);
//! - a late row is dropped and counted: with an unbounded frame, a row before the watermark (at
//!   or before Flink's); with a bounded one, a row at or before the last time its key aggregated
//!   (so a row behind the watermark still counts if its key has nothing later), as Flink's
//!   functions decide.
//!
//! Per partition key the state holds the waiting rows, the rows still inside a bounded frame (only
//! their aggregate arguments) and the aggregates' states over that frame, which rows entering and
//! leaving update and retract. It stays in a `KeyedCache` over the state backend, keyed by the
//! partition key, so it rescales by key group; an index of waiting times is kept in memory and
//! rebuilt from the backend on restore.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt32Array};
use datafusion::arrow::compute::{cast, concat, concat_batches, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::{Error, Result};
use crate::graph::{OverAggregateSpec, OverFrame, PhysicalExprRef};
use crate::message::{EventTime, Message, event_time_nanos, split_row_kinds};
use crate::operators::accumulator::{AccumulatorState, AggregateFunction};
use crate::operators::accumulator_bytes::{decode_states, encode_states};
use crate::operators::grouping::{GroupKey, evaluate_columns, group_key};
use crate::operators::keyed_cache::KeyedCache;
use crate::operators::state_bytes::{StateReader, put_bytes};
use crate::operators::{FIRE_STEP_ROWS, WatermarkMeta, decode_meta, encode_meta};
use crate::runtime::metrics::LateRows;
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::StateBackend;
use crate::state::key::key_converter;

/// One partition key's rows and aggregates.
#[derive(Debug, Clone, Default)]
struct OverState {
    /// Rows (whole, row-encoded) waiting for the watermark, by time and arrival number.
    waiting: BTreeMap<(EventTime, u64), Box<[u8]>>,
    next_arrival: u64,
    /// A bounded frame's rows up to the last one aggregated, oldest first: time and the
    /// aggregates' arguments (row-encoded), which leave the states when the row leaves the frame.
    frame: VecDeque<(EventTime, Box<[u8]>)>,
    /// The aggregates over the frame (over every row so far when unbounded); empty until the
    /// first row is aggregated.
    states: Vec<AccumulatorState>,
    /// The time of the last rows aggregated.
    last_aggregated: Option<EventTime>,
}

/// An OVER state as stored: next arrival number, the time last aggregated (`i64::MIN` for none),
/// the waiting rows (time, arrival, row), the frame (time, arguments), then the encoded states. A
/// key with nothing is deleted.
fn encode_over_state(state: &OverState) -> Option<Vec<u8>> {
    if state.waiting.is_empty() && state.frame.is_empty() && state.states.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(state.next_arrival as i64).to_le_bytes());
    out.extend_from_slice(&state.last_aggregated.unwrap_or(EventTime::MIN).to_le_bytes());
    out.extend_from_slice(&(state.waiting.len() as u32).to_le_bytes());
    for ((time, arrival), row) in &state.waiting {
        out.extend_from_slice(&time.to_le_bytes());
        out.extend_from_slice(&(*arrival as i64).to_le_bytes());
        put_bytes(&mut out, row);
    }
    out.extend_from_slice(&(state.frame.len() as u32).to_le_bytes());
    for (time, args) in &state.frame {
        out.extend_from_slice(&time.to_le_bytes());
        put_bytes(&mut out, args);
    }
    let mut states = Vec::new();
    encode_states(&state.states, &mut states);
    put_bytes(&mut out, &states);
    Some(out)
}

fn decode_over_state(bytes: &[u8]) -> Result<OverState> {
    let mut reader = StateReader::new(bytes, "OVER aggregate state");
    let next_arrival = reader.i64()? as u64;
    let last_aggregated = Some(reader.i64()?).filter(|t| *t != EventTime::MIN);
    let mut waiting = BTreeMap::new();
    for _ in 0..reader.u32()? {
        let time = reader.i64()?;
        let arrival = reader.i64()? as u64;
        waiting.insert((time, arrival), reader.bytes()?.into());
    }
    let count = reader.u32()? as usize;
    let mut frame = VecDeque::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let time = reader.i64()?;
        frame.push_back((time, reader.bytes()?.into()));
    }
    let states = decode_states(reader.bytes()?)?;
    reader.finish()?;
    Ok(OverState {
        waiting,
        next_arrival,
        frame,
        states,
        last_aggregated,
    })
}

pub struct OverAggregate {
    partition: Vec<PhysicalExprRef>,
    keys: RowConverter,
    time_column: usize,
    frame: OverFrame,
    /// The frame has a start: rows leave it (and lateness is judged per key).
    bounded: bool,
    functions: Vec<AggregateFunction>,
    /// Whole input rows, while they wait.
    rows: RowConverter,
    /// The aggregates' arguments (as `AggregateFunction::argument` casts them), for a frame's rows.
    args: RowConverter,
    input_schema: SchemaRef,
    /// The input's columns, then one per aggregate.
    output_schema: SchemaRef,
    cache: KeyedCache<OverState>,
    backend: Box<dyn StateBackend>,
    /// (time, key) of the waiting rows.
    waiting: BTreeSet<(EventTime, GroupKey)>,
    watermark: EventTime,
    /// A watermark whose rows did not all come out in one step.
    firing: Option<EventTime>,
    late_rows: LateRows,
}

impl OverAggregate {
    pub fn new(
        spec: &OverAggregateSpec,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
        backend: Box<dyn StateBackend>,
        cache_limit: usize,
        late_rows: LateRows,
    ) -> Result<Self> {
        // A bounded frame takes rows back out of the states as they leave it.
        let bounded = match spec.frame {
            OverFrame::Rows { preceding } => preceding.is_some(),
            OverFrame::Range { preceding } => preceding.is_some(),
        };
        let functions = spec
            .aggregates
            .iter()
            .map(|a| AggregateFunction::new(a, &input_schema, bounded))
            .collect::<Result<Vec<_>>>()?;
        let empty = RecordBatch::new_empty(input_schema.clone());
        let arg_fields = functions
            .iter()
            .map(|f| Ok(SortField::new(f.argument(&empty)?.data_type().clone())))
            .collect::<Result<Vec<_>>>()?;
        let key_types = spec
            .partition
            .iter()
            .map(|e| Ok(e.data_type(&input_schema)?))
            .collect::<Result<Vec<_>>>()?;
        let row_fields = input_schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(OverAggregate {
            partition: spec.partition.clone(),
            keys: key_converter(&key_types)?,
            time_column: spec.time_column,
            frame: spec.frame,
            bounded,
            functions,
            rows: RowConverter::new(row_fields)?,
            args: RowConverter::new(arg_fields)?,
            input_schema,
            output_schema,
            cache: KeyedCache::new(cache_limit, Arc::new(encode_over_state)),
            backend,
            waiting: BTreeSet::new(),
            watermark: EventTime::MIN,
            firing: None,
            late_rows,
        })
    }

    /// Aggregates the rows of `key` that the watermark has passed and returns them with their
    /// aggregates (`None` if it has none).
    fn aggregate_due(&mut self, key: &GroupKey, watermark: EventTime) -> Result<Option<RecordBatch>> {
        let (functions, rows, args_converter, frame_kind) = (&self.functions, &self.rows, &self.args, self.frame);
        let backend = self.backend.as_ref();
        let state = self.cache.changing(key, || load_state(backend, key))?;
        let later = state.waiting.split_off(&(watermark, 0));
        let due = std::mem::replace(&mut state.waiting, later);
        if due.is_empty() {
            return Ok(None);
        }
        let parser = rows.parser();
        let batch = RecordBatch::try_new(self.input_schema.clone(), rows.convert_rows(due.values().map(|r| parser.parse(r)))?)?;
        // The frame's rows, then the due ones: one index space for adding and retracting.
        let arg_parser = args_converter.parser();
        let old_args = args_converter.convert_rows(state.frame.iter().map(|(_, a)| arg_parser.parse(a)))?;
        let mut combined: Vec<ArrayRef> = Vec::with_capacity(functions.len());
        for (function, old) in functions.iter().zip(&old_args) {
            combined.push(concat(&[old.as_ref(), function.argument(&batch)?.as_ref()])?);
        }
        let times: Vec<EventTime> = state.frame.iter().map(|(t, _)| *t).chain(due.keys().map(|(t, _)| *t)).collect();
        let first_due = state.frame.len();
        if state.states.is_empty() {
            state.states = functions.iter().map(|f| f.init()).collect();
        }
        // Each step aggregates one row (ROWS) or the rows of one time (RANGE: peers share
        // their values); `values` holds each step's aggregates, `step_of` each row's step.
        let mut values: Vec<Vec<ArrayRef>> = vec![Vec::new(); functions.len()];
        let mut step_of: Vec<u32> = Vec::with_capacity(due.len());
        let mut oldest = 0;
        let mut next = first_due;
        while next < times.len() {
            let time = times[next];
            let end = match frame_kind {
                OverFrame::Rows { .. } => next + 1,
                OverFrame::Range { .. } => next + times[next..].iter().take_while(|t| **t == time).count(),
            };
            let entering: Vec<usize> = (next..end).collect();
            for ((function, arg), state) in functions.iter().zip(&combined).zip(state.states.iter_mut()) {
                function.update(arg, &entering, &vec![0; entering.len()], &mut [state])?;
            }
            let leaving = match frame_kind {
                OverFrame::Rows { preceding: Some(n) } => {
                    let keep = usize::try_from(n).unwrap_or(usize::MAX).saturating_add(1);
                    oldest..end.saturating_sub(keep).max(oldest)
                }
                OverFrame::Range { preceding: Some(interval) } => {
                    let from = time.saturating_sub(interval);
                    oldest..oldest + times[oldest..end].iter().take_while(|t| **t < from).count()
                }
                OverFrame::Rows { preceding: None } | OverFrame::Range { preceding: None } => oldest..oldest,
            };
            if !leaving.is_empty() {
                let leaving_rows: Vec<usize> = leaving.clone().collect();
                for ((function, arg), state) in functions.iter().zip(&combined).zip(state.states.iter_mut()) {
                    function.retract(arg, &leaving_rows, &vec![0; leaving_rows.len()], &mut [state])?;
                }
                oldest = leaving.end;
            }
            for (function, (state, out)) in functions.iter().zip(state.states.iter().zip(values.iter_mut())) {
                out.push(function.finish(std::iter::once(state))?);
            }
            let step = (values.first().map_or(0, Vec::len) as u32).saturating_sub(1);
            step_of.extend(std::iter::repeat_n(step, end - next));
            next = end;
        }
        state.frame = match frame_kind {
            OverFrame::Rows { preceding: Some(_) } | OverFrame::Range { preceding: Some(_) } => {
                let encoded = args_converter.convert_columns(&combined)?;
                (oldest..times.len()).map(|i| (times[i], encoded.row(i).data().into())).collect()
            }
            OverFrame::Rows { preceding: None } | OverFrame::Range { preceding: None } => VecDeque::new(),
        };
        state.last_aggregated = times.last().copied();
        let step_of = UInt32Array::from(step_of);
        let mut columns = batch.columns().to_vec();
        for (i, steps) in values.iter().enumerate() {
            let steps: Vec<&dyn Array> = steps.iter().map(|a| a.as_ref()).collect();
            let column = take(concat(&steps)?.as_ref(), &step_of, None)?;
            let target = self.output_schema.field(batch.num_columns() + i).data_type();
            columns.push(if column.data_type() == target {
                column
            } else {
                cast(&column, target)?
            });
        }
        Ok(Some(RecordBatch::try_new(self.output_schema.clone(), columns)?))
    }
}

fn load_state(backend: &dyn StateBackend, key: &GroupKey) -> Result<OverState> {
    match backend.get(key)? {
        Some(bytes) => decode_over_state(&bytes),
        None => Ok(OverState::default()),
    }
}

impl Operator for OverAggregate {
    fn state_bytes(&self) -> Option<u64> {
        Some(self.backend.estimated_bytes())
    }

    fn process(&mut self, batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        let (rows, kinds) = split_row_kinds(&batch)?;
        if kinds.is_some() {
            return Err(Error::internal(
                "an OVER aggregate received a changelog; it is planned over append-only input only",
            ));
        }
        let keys = self.keys.convert_columns(&evaluate_columns(&self.partition, &rows)?)?;
        let times = event_time_nanos(rows.column(self.time_column))?;
        let encoded = self.rows.convert_columns(rows.columns())?;
        let mut late = 0;
        for i in 0..rows.num_rows() {
            let time = times.value(i);
            if times.is_null(i) || (!self.bounded && time < self.watermark) {
                late += 1;
                continue;
            }
            let key = group_key(keys.row(i).data());
            let backend = self.backend.as_ref();
            let state = self.cache.changing(&key, || load_state(backend, &key))?;
            if state.last_aggregated.is_some_and(|last| time <= last) {
                late += 1;
                continue;
            }
            state.waiting.insert((time, state.next_arrival), encoded.row(i).data().into());
            state.next_arrival += 1;
            self.waiting.insert((time, key));
        }
        self.late_rows.add(late);
        self.cache.spill_if_full(self.backend.as_mut())
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        if self.firing.is_some() {
            return Err(Error::internal("an OVER aggregate firing was still in progress at a barrier"));
        }
        let mut snapshot = self.cache.snapshot(self.backend.as_mut(), dir)?;
        snapshot.meta = encode_meta(&WatermarkMeta { watermark: self.watermark })?;
        Ok(Some(snapshot))
    }

    /// Rebuilds the index of waiting rows from the backend, which holds every key's state.
    fn restore(&mut self, meta: &serde_json::Value) -> Result<()> {
        self.watermark = decode_meta::<WatermarkMeta>(meta, "OVER aggregate")?.watermark;
        for (key, value) in self.backend.scan(&[], &[0xff; 16])? {
            let state = decode_over_state(&value)?;
            let key: GroupKey = key.into_boxed_slice();
            for (time, _) in state.waiting.keys() {
                self.waiting.insert((*time, key.clone()));
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        // Two watermarks in one step of the task: the first one's rows come out first.
        while self.resume(out)? {}
        self.watermark = watermark;
        self.firing = Some(watermark);
        self.resume(out).map(|_| ())
    }

    /// Aggregates up to about `FIRE_STEP_ROWS` of the rows the watermark passed, key by key;
    /// after the last, forwards the watermark.
    fn resume(&mut self, out: &mut Vec<Message>) -> Result<bool> {
        let Some(watermark) = self.firing else { return Ok(false) };
        let mut batches = Vec::new();
        let mut rows = 0;
        let mut more = false;
        while let Some((time, _)) = self.waiting.first()
            && *time < watermark
        {
            if rows >= FIRE_STEP_ROWS {
                more = true;
                break;
            }
            let Some((_, key)) = self.waiting.pop_first() else { break };
            if let Some(batch) = self.aggregate_due(&key, watermark)? {
                rows += batch.num_rows();
                batches.push(batch);
            }
        }
        if !batches.is_empty() {
            out.push(Message::Data(concat_batches(&self.output_schema, &batches)?));
        }
        self.cache.spill_if_full(self.backend.as_mut())?;
        if more {
            return Ok(true);
        }
        self.firing = None;
        out.push(Message::Watermark(watermark));
        Ok(false)
    }
}
