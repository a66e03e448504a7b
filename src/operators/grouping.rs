//! What the keyed aggregates share: evaluating group keys (row-encoded, prefixed with their key
//! group), pre-aggregating a batch in memory (one hash lookup per row, one state per distinct
//! group), and building output batches from group states. Over a changelog with retractions the
//! rows taken back are subtracted, and every group also counts its rows (a hidden last state), so
//! a group whose rows were all taken back can be deleted.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, TimestampNanosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::RowConverter;

use crate::error::{Error, Result};
use crate::graph::{AggregateOutput, AggregateSpec, PhysicalExprRef};
use crate::message::RowKind;
use crate::operators::accumulator::{AccumulatorState, AggregateFunction};
use crate::state::key::{key_converter, key_group};

/// A group key as stored: key group (big-endian u16) then the row-encoded key columns.
pub type GroupKey = Box<[u8]>;

pub struct Grouping {
    keys: Vec<PhysicalExprRef>,
    converter: RowConverter,
    pub functions: Vec<AggregateFunction>,
    outputs: Vec<AggregateOutput>,
    output_schema: SchemaRef,
    /// The input takes rows back: every group's states end with its row count.
    retracting: bool,
}

/// A batch reduced to one partial state per (bucket, group key).
pub struct PreAggregated {
    pub groups: Vec<(i64, GroupKey)>,
    pub states: Vec<Vec<AccumulatorState>>,
    /// How many input rows each group summarises.
    pub rows_per_group: Vec<usize>,
    /// The index of each group's first row in the batch.
    pub first_rows: Vec<usize>,
}

impl Grouping {
    /// `retracting`: the input is a changelog with retractions (only unwindowed aggregates take one).
    pub fn new(spec: &AggregateSpec, input_schema: &Schema, output_schema: SchemaRef, retracting: bool) -> Result<Self> {
        let key_types = spec
            .keys
            .iter()
            .map(|k| Ok(k.data_type(input_schema)?))
            .collect::<Result<Vec<_>>>()?;
        let functions = spec
            .aggregates
            .iter()
            .map(|a| AggregateFunction::new(a, input_schema, retracting))
            .collect::<Result<Vec<_>>>()?;
        Ok(Grouping {
            keys: spec.keys.clone(),
            converter: key_converter(&key_types)?,
            functions,
            outputs: spec.outputs.clone(),
            output_schema,
            retracting,
        })
    }

    pub fn init_states(&self) -> Vec<AccumulatorState> {
        let mut states: Vec<_> = self.functions.iter().map(|f| f.init()).collect();
        if self.retracting {
            states.push(AccumulatorState::Count(0));
        }
        states
    }

    pub fn merge_states(&self, into: &mut [AccumulatorState], other: &[AccumulatorState]) {
        for ((f, a), b) in self.functions.iter().zip(into.iter_mut()).zip(other) {
            f.merge(a, b);
        }
        if let (Some(AccumulatorState::Count(a)), Some(AccumulatorState::Count(b)), true) = (into.last_mut(), other.last(), self.retracting)
        {
            *a += b;
        }
    }

    /// Whether a group's states hold any row: always without retractions; with them, whether the
    /// rows added outnumber the rows taken back.
    pub fn holds_rows(&self, states: &[AccumulatorState]) -> bool {
        holds_rows(self.retracting, states)
    }

    /// Pre-aggregates the rows whose bucket is `Some` (a window pane, or 0 for an unwindowed group).
    /// `kinds`: the rows' kinds, for a changelog (rows taken back are subtracted).
    pub fn pre_aggregate(&self, batch: &RecordBatch, buckets: &[Option<i64>], kinds: Option<&[RowKind]>) -> Result<PreAggregated> {
        let rows = self.converter.convert_columns(&evaluate_columns(&self.keys, batch)?)?;
        let mut index: HashMap<(i64, &[u8]), usize, ahash::RandomState> = HashMap::default();
        let mut groups = Vec::new();
        let mut first_rows = Vec::new();
        let mut selected = Vec::with_capacity(batch.num_rows());
        let mut slots = Vec::with_capacity(batch.num_rows());
        for (r, bucket) in buckets.iter().enumerate() {
            let Some(bucket) = *bucket else { continue };
            let key = rows.row(r);
            let next = groups.len();
            let slot = *index.entry((bucket, key.data())).or_insert_with(|| {
                groups.push((bucket, group_key(key.data())));
                first_rows.push(r);
                next
            });
            selected.push(r);
            slots.push(slot);
        }
        let mut rows_per_group = vec![0; groups.len()];
        for slot in &slots {
            rows_per_group[*slot] += 1;
        }
        let mut states: Vec<Vec<AccumulatorState>> = (0..groups.len()).map(|_| self.init_states()).collect();
        // The rows taken back, apart from the rows added.
        let mut taken_back = (Vec::new(), Vec::new());
        if let Some(kinds) = kinds {
            if !self.retracting {
                return Err(Error::internal("a changelog reached an aggregate planned for append-only input"));
            }
            let mut added = (Vec::with_capacity(selected.len()), Vec::with_capacity(selected.len()));
            for (row, slot) in selected.iter().zip(&slots) {
                let side = if kinds[*row].is_retraction() { &mut taken_back } else { &mut added };
                side.0.push(*row);
                side.1.push(*slot);
            }
            (selected, slots) = added;
        }
        for (f, function) in self.functions.iter().enumerate() {
            let arg = function.argument(batch)?;
            let mut refs: Vec<&mut AccumulatorState> = states.iter_mut().map(|s| &mut s[f]).collect();
            // Taken back first, so that they reach the earlier rows the partial states are merged
            // into (FIRST_VALUE / LAST_VALUE); every other aggregate's order does not matter.
            if !taken_back.0.is_empty() {
                function.retract(&arg, &taken_back.0, &taken_back.1, &mut refs)?;
            }
            function.update(&arg, &selected, &slots, &mut refs)?;
        }
        if self.retracting {
            let counts = slots.iter().map(|s| (*s, 1)).chain(taken_back.1.iter().map(|s| (*s, -1)));
            for (slot, step) in counts {
                if let Some(AccumulatorState::Count(n)) = states[slot].last_mut() {
                    *n += step;
                }
            }
        }
        Ok(PreAggregated {
            groups,
            states,
            rows_per_group,
            first_rows,
        })
    }

    /// Builds output rows: one per entry, with its key, window bounds (if windowed) and states.
    pub fn output(&self, keys: &[&GroupKey], windows: Option<(&[i64], &[i64])>, states: &[&[AccumulatorState]]) -> Result<RecordBatch> {
        let parser = self.converter.parser();
        let rows = keys.iter().map(|k| parser.parse(&k[2..]));
        let key_columns = self.converter.convert_rows(rows)?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.outputs.len());
        for (i, output) in self.outputs.iter().enumerate() {
            let column: ArrayRef = match output {
                AggregateOutput::Key(k) => key_columns
                    .get(*k)
                    .cloned()
                    .ok_or_else(|| Error::internal("group key index out of range"))?,
                AggregateOutput::Window(bound) => {
                    let (starts, ends) = windows.ok_or_else(|| Error::internal("window bound requested from an unwindowed aggregate"))?;
                    Arc::new(TimestampNanosecondArray::from_iter_values(
                        starts.iter().zip(ends).map(|(start, end)| bound.of(*start, *end)),
                    ))
                }
                AggregateOutput::Aggregate(a) => {
                    let function = self
                        .functions
                        .get(*a)
                        .ok_or_else(|| Error::internal("aggregate index out of range"))?;
                    function.finish(states.iter().map(|s| &s[*a]))?
                }
            };
            let target = self.output_schema.field(i).data_type();
            columns.push(if column.data_type() == target {
                column
            } else {
                cast(&column, target)?
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(keys.len()));
        Ok(RecordBatch::try_new_with_options(self.output_schema.clone(), columns, &options)?)
    }
}

/// `Grouping::holds_rows` for a grouping that takes rows back (`retracting`) or not.
pub fn holds_rows(retracting: bool, states: &[AccumulatorState]) -> bool {
    !retracting || matches!(states.last(), Some(AccumulatorState::Count(n)) if *n > 0)
}

/// `exprs` evaluated on every row of `batch`: key columns to row-encode.
pub fn evaluate_columns(exprs: &[PhysicalExprRef], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs.iter().map(|e| Ok(e.evaluate(batch)?.into_array(batch.num_rows())?)).collect()
}

/// A key as stored: its key group first (see `GroupKey`).
pub fn group_key(row: &[u8]) -> GroupKey {
    let mut key = Vec::with_capacity(row.len() + 2);
    key.extend_from_slice(&key_group(row).to_be_bytes());
    key.extend_from_slice(row);
    key.into_boxed_slice()
}
