//! `UpdatingAggregate`: GROUP BY without a window. Each batch is pre-aggregated in memory and folded
//! into the per-key state; every key the batch touched emits its change, in the mode the planner
//! chose (Flink's GroupAggFunction):
//! - upsert (into a table keyed like the groups): the new row; over append-only input the batches
//!   carry no row kinds, as every row is an insert or an update-after;
//! - retract (into another aggregate, a filter or a join): the old row's update-before, then the
//!   new row's update-after; nothing when the row did not change.
//!
//! Over a changelog with retractions the rows taken back are subtracted, and a group left with
//! no row is deleted (a delete row downstream, a delete in the state).
//!
//! Hot keys' states stay in a `KeyedCache` over the state backend.

use std::sync::Arc;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::compute::{concat_batches, filter_record_batch, or};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::graph::{ChangelogMode, UpdatingAggregateSpec};
use crate::message::{Message, RowKind, split_row_kinds, with_row_kinds};
use crate::operators::accumulator::AccumulatorState;
use crate::operators::accumulator_bytes::{decode_states, encode_states};
use crate::operators::grouping::{GroupKey, Grouping, holds_rows};
use crate::operators::keyed_cache::KeyedCache;
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::StateBackend;

pub struct UpdatingAggregate {
    grouping: Grouping,
    output: ChangelogMode,
    /// The input takes rows back, so groups may disappear.
    retracting: bool,
    /// The current states of hot keys. A group left with no row stays here, empty, until the
    /// cache writes it out as a delete.
    cache: KeyedCache<Vec<AccumulatorState>>,
    backend: Box<dyn StateBackend>,
}

/// What happened to one group in one batch.
struct GroupChange {
    key: GroupKey,
    /// The group's states before the batch, if it held rows and its old row is needed.
    before: Option<Vec<AccumulatorState>>,
    /// Whether it held rows before the batch, and after it.
    existed: bool,
    exists: bool,
}

impl UpdatingAggregate {
    pub fn new(
        spec: &UpdatingAggregateSpec,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
        backend: Box<dyn StateBackend>,
        cache_limit: usize,
    ) -> Result<Self> {
        let retracting = spec.input == ChangelogMode::Retract;
        // Groups left with no row are deleted.
        let encode = Arc::new(move |states: &Vec<AccumulatorState>| {
            holds_rows(retracting, states).then(|| {
                let mut bytes = Vec::new();
                encode_states(states, &mut bytes);
                bytes
            })
        });
        Ok(UpdatingAggregate {
            grouping: Grouping::new(&spec.aggregate, &input_schema, output_schema, retracting)?,
            output: spec.output,
            retracting,
            cache: KeyedCache::new(cache_limit, encode),
            backend,
        })
    }

    /// Whether the old row of a group is emitted (as an update-before or a delete).
    fn emits_old_rows(&self) -> bool {
        self.output == ChangelogMode::Retract || self.retracting
    }

    /// The rows for this batch's changes, old rows (update-before, delete) ahead of new ones, so
    /// that downstream every key's old row comes before its new one.
    fn changelog(&self, changes: &[GroupChange]) -> Result<Option<RecordBatch>> {
        let current = |change: &GroupChange| self.cache.get(&change.key).map(Vec::as_slice);
        if !self.emits_old_rows() {
            // Upsert over append-only input: every row is an insert or an update-after.
            let keys: Vec<&GroupKey> = changes.iter().map(|c| &c.key).collect();
            let states: Vec<&[AccumulatorState]> = changes.iter().filter_map(current).collect();
            return Ok(Some(self.grouping.output(&keys, None, &states)?));
        }
        let pick = |f: fn(&GroupChange) -> bool| changes.iter().filter(move |c| f(c));
        let updated: Vec<&GroupChange> = pick(|c| c.existed && c.exists).collect();
        let deleted: Vec<&GroupChange> = pick(|c| c.existed && !c.exists).collect();
        let inserted: Vec<&GroupChange> = pick(|c| !c.existed && c.exists).collect();
        let before = |group: &[&GroupChange]| -> Result<RecordBatch> {
            let keys: Vec<&GroupKey> = group.iter().map(|c| &c.key).collect();
            let states: Vec<&[AccumulatorState]> = group.iter().filter_map(|c| c.before.as_deref()).collect();
            self.grouping.output(&keys, None, &states)
        };
        let after = |group: &[&GroupChange]| -> Result<RecordBatch> {
            let keys: Vec<&GroupKey> = group.iter().map(|c| &c.key).collect();
            let states: Vec<&[AccumulatorState]> = group.iter().filter_map(|c| current(c)).collect();
            self.grouping.output(&keys, None, &states)
        };
        let mut new_rows = after(&updated)?;
        let mut parts = Vec::new();
        if self.output == ChangelogMode::Retract {
            // A row that did not change is not sent again (as Flink does without state TTL).
            let old_rows = before(&updated)?;
            let changed = changed_rows(&old_rows, &new_rows)?;
            new_rows = filter_record_batch(&new_rows, &changed)?;
            parts.push((filter_record_batch(&old_rows, &changed)?, RowKind::UpdateBefore));
        }
        parts.push((before(&deleted)?, RowKind::Delete));
        parts.push((new_rows, RowKind::UpdateAfter));
        parts.push((after(&inserted)?, RowKind::Insert));
        let mut kinds = Vec::new();
        for (rows, kind) in &parts {
            kinds.extend(std::iter::repeat_n(*kind, rows.num_rows()));
        }
        if kinds.is_empty() {
            return Ok(None);
        }
        let rows = concat_batches(&parts[0].0.schema(), parts.iter().map(|(rows, _)| rows))?;
        Ok(Some(with_row_kinds(&rows, kinds)?))
    }
}

/// Which rows of `new` differ from the same row of `old` in any column.
fn changed_rows(old: &RecordBatch, new: &RecordBatch) -> Result<BooleanArray> {
    let mut changed = BooleanArray::from(vec![false; new.num_rows()]);
    for (a, b) in old.columns().iter().zip(new.columns()) {
        changed = or(&changed, &distinct(a, b)?)?;
    }
    Ok(changed)
}

impl Operator for UpdatingAggregate {
    fn state_bytes(&self) -> Option<u64> {
        Some(self.backend.estimated_bytes())
    }

    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let (rows, kinds) = split_row_kinds(&batch)?;
        let buckets = vec![Some(0); rows.num_rows()];
        let pre = self.grouping.pre_aggregate(&rows, &buckets, kinds.as_deref())?;
        let keep_before = self.emits_old_rows();
        let mut changes = Vec::with_capacity(pre.groups.len());
        for ((_, key), states) in pre.groups.into_iter().zip(pre.states) {
            let mut fresh = false;
            let (grouping, backend) = (&self.grouping, &self.backend);
            let current = self.cache.changing(&key, || match backend.get(&key)? {
                Some(bytes) => decode_states(&bytes),
                None => {
                    fresh = true;
                    Ok(grouping.init_states())
                }
            })?;
            let existed = !fresh && grouping.holds_rows(current);
            let before = (existed && keep_before).then(|| current.clone());
            grouping.merge_states(current, &states);
            let exists = grouping.holds_rows(current);
            changes.push(GroupChange {
                key,
                before,
                existed,
                exists,
            });
        }
        if !changes.is_empty()
            && let Some(rows) = self.changelog(&changes)?
        {
            out.push(Message::Data(rows));
        }
        self.cache.spill_if_full(self.backend.as_mut())
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        Ok(Some(self.cache.snapshot(self.backend.as_mut(), dir)?))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use datafusion::physical_expr::expressions::{col, lit};

    use super::*;
    use crate::graph::{AggregateCall, AggregateKind, AggregateOutput, AggregateSpec};
    use crate::operators::testing::OperatorHarness;
    use crate::settings::StateBackendKind;

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    /// A changelog batch of (kind, k, v) rows.
    fn changes(rows: &[(RowKind, i64, i64)]) -> RecordBatch {
        let batch = RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch");
        with_row_kinds(&batch, rows.iter().map(|r| r.0).collect()).expect("kinds")
    }

    /// `SELECT k, <aggregates of v> GROUP BY k` over a changelog.
    fn aggregate(kinds: &[AggregateKind], distinct: bool, output: ChangelogMode, backend: Box<dyn StateBackend>) -> Box<dyn Operator> {
        let input = input_schema();
        let mut fields = vec![Field::new("k", DataType::Int64, false)];
        let mut aggregates = Vec::new();
        let mut outputs = vec![AggregateOutput::Key(0)];
        for (i, kind) in kinds.iter().enumerate() {
            let output_type = if *kind == AggregateKind::Avg {
                DataType::Float64
            } else {
                DataType::Int64
            };
            fields.push(Field::new(format!("a{i}"), output_type.clone(), true));
            let count_star = *kind == AggregateKind::Count && !distinct;
            aggregates.push(AggregateCall {
                kind: *kind,
                arg: if count_star { lit(1i64) } else { col("v", &input).expect("v") },
                distinct: *kind == AggregateKind::Count && distinct,
                output_type,
                display: format!("{kind:?}"),
            });
            outputs.push(AggregateOutput::Aggregate(i));
        }
        let spec = UpdatingAggregateSpec {
            aggregate: AggregateSpec {
                keys: vec![col("k", &input).expect("k")],
                aggregates,
                outputs,
            },
            input: ChangelogMode::Retract,
            output,
        };
        // A cache of one key: every batch spills, so deletes reach the backend too.
        Box::new(UpdatingAggregate::new(&spec, input, Arc::new(Schema::new(fields)), backend, 1).expect("operator"))
    }

    #[test]
    fn retractions_move_min_and_max_and_delete_emptied_groups() {
        use AggregateKind::{Count, Max, Min, Sum};
        use RowKind::{Delete, Insert, UpdateAfter, UpdateBefore};
        let dir = tempfile::tempdir().expect("dir");
        let backend = StateBackendKind::RocksDb.open(&dir.path().join("live")).expect("backend");
        let kinds = [Count, Sum, Min, Max];
        let mut harness = OperatorHarness::new(aggregate(&kinds, false, ChangelogMode::Retract, backend), &dir.path().join("a"));
        harness
            .push(changes(&[(Insert, 1, 5), (Insert, 1, 3), (Insert, 2, 7)]))
            .expect("push");
        assert_eq!(harness.take_changelog().expect("changelog"), ["+I 1 2 8 3 5", "+I 2 1 7 7 7"]);
        // 3 becomes 9: the minimum gives way to the next value, 5.
        harness.push(changes(&[(UpdateBefore, 1, 3), (UpdateAfter, 1, 9)])).expect("push");
        assert_eq!(harness.take_changelog().expect("changelog"), ["-U 1 2 8 3 5", "+U 1 2 14 5 9"]);
        // Group 2's only row is taken back: the group is deleted.
        harness.push(changes(&[(Delete, 2, 7)])).expect("push");
        assert_eq!(harness.take_changelog().expect("changelog"), ["-D 2 1 7 7 7"]);
        // A row added and taken back in one batch changes nothing: nothing is emitted.
        harness.push(changes(&[(Insert, 1, 100), (Delete, 1, 100)])).expect("push");
        assert_eq!(harness.take_changelog().expect("changelog"), Vec::<String>::new());

        let snapshot = harness.barrier().expect("barrier").expect("a snapshot");
        let backend = snapshot
            .restore_backend(StateBackendKind::RocksDb, &dir.path().join("restored"))
            .expect("restore");
        let mut restored = OperatorHarness::new(aggregate(&kinds, false, ChangelogMode::Retract, backend), &dir.path().join("b"));
        // Group 2 was deleted: it starts again with an insert.
        restored.push(changes(&[(Insert, 2, 4), (Delete, 1, 5)])).expect("push");
        assert_eq!(
            restored.take_changelog().expect("changelog"),
            ["-U 1 2 14 5 9", "+U 1 1 9 9 9", "+I 2 1 4 4 4"]
        );
        restored.push(changes(&[(Delete, 1, 9)])).expect("push");
        assert_eq!(restored.take_changelog().expect("changelog"), ["-D 1 1 9 9 9"]);
    }

    #[test]
    fn sums_averages_and_distinct_counts_take_values_back() {
        use AggregateKind::{Avg, Count, Sum};
        use RowKind::{Delete, Insert};
        let dir = tempfile::tempdir().expect("dir");
        let backend = StateBackendKind::HashMap.open(dir.path()).expect("backend");
        let mut sums = OperatorHarness::new(
            aggregate(&[Sum, Avg, Count], false, ChangelogMode::Retract, backend),
            &dir.path().join("a"),
        );
        sums.push(changes(&[(Insert, 1, 2), (Insert, 1, 4), (Insert, 1, 4)])).expect("push");
        sums.push(changes(&[(Delete, 1, 2)])).expect("push");
        assert_eq!(
            sums.take_changelog().expect("changelog"),
            ["+I 1 10 3.3333333333333335 3", "-U 1 10 3.3333333333333335 3", "+U 1 8 4.0 2"]
        );

        let backend = StateBackendKind::HashMap.open(dir.path()).expect("backend");
        let mut distinct = OperatorHarness::new(aggregate(&[Count], true, ChangelogMode::Retract, backend), &dir.path().join("b"));
        distinct
            .push(changes(&[(Insert, 1, 2), (Insert, 1, 4), (Insert, 1, 4)]))
            .expect("push");
        // One of the two 4s goes: still two distinct values, so nothing changes.
        distinct.push(changes(&[(Delete, 1, 4)])).expect("push");
        distinct.push(changes(&[(Delete, 1, 4)])).expect("push");
        assert_eq!(distinct.take_changelog().expect("changelog"), ["+I 1 2", "-U 1 2", "+U 1 1"]);
    }

    #[test]
    fn upserts_over_retractions_send_no_update_before_but_deletes() {
        use AggregateKind::Max;
        use RowKind::{Delete, Insert};
        let dir = tempfile::tempdir().expect("dir");
        let backend = StateBackendKind::HashMap.open(dir.path()).expect("backend");
        let mut harness = OperatorHarness::new(aggregate(&[Max], false, ChangelogMode::Upsert, backend), &dir.path().join("a"));
        harness.push(changes(&[(Insert, 1, 5)])).expect("push");
        harness.push(changes(&[(Insert, 1, 6)])).expect("push");
        harness.push(changes(&[(Delete, 1, 5), (Delete, 1, 6)])).expect("push");
        assert_eq!(harness.take_changelog().expect("changelog"), ["+I 1 5", "+U 1 6", "-D 1 6"]);
    }
}
