//! Lowering of a GROUP BY: an Aggregate over a window table function's rows becomes a keyed
//! window aggregate (TUMBLE, HOP, CUMULATE, SESSION, or a window-attached aggregate grouped by an
//! upstream window's end), any other Aggregate an updating aggregate. Each aggregate call becomes an
//! `AggregateCall`; filters on window columns that stood between the window function and the
//! aggregate are applied to its output.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, DFSchemaRef, ScalarValue};
use datafusion::logical_expr::expr::{AggregateFunction, NullTreatment};
use datafusion::logical_expr::expr_rewriter::replace_col;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Aggregate, Expr, when};
use datafusion::physical_expr::expressions::lit;

use super::{Lowering, Stream, WindowColumns, column_indices, physical, strip_alias};
use crate::error::{Error, Result};
use crate::graph::{
    AggregateCall, AggregateKind, AggregateOutput, AggregateSpec, ChangelogMode, EdgeKind, OperatorSpec, PhysicalExprRef,
    UpdatingAggregateSpec, WindowAggregateSpec, WindowBound, WindowKind,
};

impl Lowering<'_> {
    pub(super) fn aggregate(&mut self, aggregate: &Aggregate) -> Result<Stream> {
        let input = self.lower(&aggregate.input)?;
        let schema = &input.schema;
        let carriers = input.window.as_ref().map(|w| &w.bounds);
        let reads_window = |expr: &Expr| -> Result<bool> {
            Ok(match &input.window {
                Some(window) => window.reads(&column_indices(expr, schema)?),
                None => false,
            })
        };
        // Group keys computed from the window columns alone (a column computed between the
        // window function and here, or the expression itself): a NULL key, computed after.
        let computed_key = |expr: &Expr| -> Result<Option<Expr>> {
            let Some(window) = &input.window else { return Ok(None) };
            Ok(match strip_alias(expr) {
                Expr::Column(c) => window.computed.get(&schema.index_of_column(c)?).cloned(),
                other if window.reads(&column_indices(other, schema)?) => Some(window_condition(other, window, schema)?),
                _ => None,
            })
        };
        let mut computed_outputs: Vec<(usize, Expr)> = Vec::new();
        let mut keys = Vec::new();
        // The keys' column names, for matching a SESSION's PARTITION BY.
        let mut key_names: Vec<Option<String>> = Vec::new();
        let mut outputs = Vec::new();
        let mut time_column = None;
        // Grouped by the window end of a windowed result (append-only), the aggregate is one per
        // window too, emitted when the window closes (Flink's window-attached aggregate, q5).
        let attached = match (&input.window, input.changelog) {
            (None, ChangelogMode::AppendOnly) => input.window_end,
            _ => None,
        };
        for group in &aggregate.group_expr {
            if matches!(group, Expr::GroupingSet(_)) {
                return Err(Error::unsupported("GROUPING SETS / ROLLUP / CUBE are not supported in a job yet"));
            }
            let bound = match (strip_alias(group), carriers) {
                (Expr::Column(c), Some(carriers)) => {
                    let index = schema.index_of_column(c)?;
                    carriers.get(&index).map(|b| (index, *b))
                }
                (Expr::Column(c), None) if time_column.is_none() && attached == Some(schema.index_of_column(c)?) => {
                    attached.map(|index| (index, WindowBound::End))
                }
                _ => None,
            };
            if let Some(expr) = computed_key(group)? {
                let placeholder = window_column_placeholder(aggregate.schema.field(outputs.len()).data_type())?;
                computed_outputs.push((outputs.len(), expr));
                outputs.push(AggregateOutput::Key(keys.len()));
                keys.push(physical(&placeholder, schema)?);
                key_names.push(None);
                continue;
            }
            match bound {
                Some((index, bound)) => {
                    time_column = Some(index);
                    outputs.push(AggregateOutput::Window(bound));
                }
                None => {
                    outputs.push(AggregateOutput::Key(keys.len()));
                    keys.push(physical(group, schema)?);
                    key_names.push(match strip_alias(group) {
                        Expr::Column(c) => Some(c.name.clone()),
                        _ => None,
                    });
                }
            }
        }
        let sessions_by = match input.window.as_ref().and_then(|w| w.sessions_by.as_ref()) {
            Some(names) => sessions_by(names, &keys, &key_names)?,
            None => None,
        };
        let mut aggregates = Vec::with_capacity(aggregate.aggr_expr.len());
        let group_count = aggregate.group_expr.len();
        for (i, expr) in aggregate.aggr_expr.iter().enumerate() {
            if reads_window(expr)? {
                return Err(Error::unsupported(format!(
                    "aggregating window columns (`{expr}`) is not supported"
                )));
            }
            let output_type = aggregate.schema.field(group_count + i).data_type().clone();
            aggregates.push(aggregate_call(expr, schema, output_type)?);
            outputs.push(AggregateOutput::Aggregate(i));
        }
        // A global aggregate has one group: route everything by a constant key. Partitioned
        // sessions go by their partition.
        let hash_keys = match &sessions_by {
            Some(by) => by.clone(),
            None if keys.is_empty() => vec![constant_key()],
            None => keys.clone(),
        };
        // A window's rows happen at its window_time (Flink's time attribute of a window's output).
        let window_times: BTreeSet<usize> = (0..outputs.len())
            .filter(|i| outputs[*i] == AggregateOutput::Window(WindowBound::Time))
            .collect();
        // A window's rows are ranked per window by a Top-N partitioned by its end.
        let window_end = (0..outputs.len()).find(|i| outputs[*i] == AggregateOutput::Window(WindowBound::End));
        // Where each window bound is in the output, for the conditions deferred to it.
        let outputs_of_bounds: Vec<(WindowBound, usize)> = outputs
            .iter()
            .enumerate()
            .filter_map(|(i, output)| match output {
                AggregateOutput::Window(bound) => Some((*bound, i)),
                _ => None,
            })
            .collect();
        let spec = AggregateSpec {
            keys: if keys.is_empty() { hash_keys.clone() } else { keys },
            aggregates,
            outputs,
        };
        if input.window.is_some() && input.changelog != ChangelogMode::AppendOnly {
            return Err(Error::unsupported(
                "a TUMBLE / HOP / SESSION aggregate over updating rows (an 'upsert-kafka' source) is not supported; windows need append-only input",
            ));
        }
        let (op_spec, changelog) = match (&input.window, time_column) {
            // Window columns come only from a window table function over a source: append-only.
            (Some(window), Some(time_column)) => (
                OperatorSpec::WindowAggregate(WindowAggregateSpec {
                    window: window.window,
                    time_column,
                    aggregate: spec,
                    sessions_by: sessions_by.clone(),
                }),
                ChangelogMode::AppendOnly,
            ),
            (Some(_), None) => {
                return Err(Error::unsupported(
                    "grouping a TUMBLE / HOP / SESSION needs GROUP BY window_start, window_end (plus any keys)",
                ));
            }
            (None, Some(time_column)) => (
                OperatorSpec::WindowAggregate(WindowAggregateSpec {
                    window: WindowKind::Attached,
                    time_column,
                    aggregate: spec,
                    sessions_by: None,
                }),
                ChangelogMode::AppendOnly,
            ),
            (None, _) => (
                OperatorSpec::UpdatingAggregate(UpdatingAggregateSpec {
                    aggregate: spec,
                    input: match input.changelog {
                        ChangelogMode::AppendOnly => ChangelogMode::AppendOnly,
                        ChangelogMode::Upsert | ChangelogMode::Retract => ChangelogMode::Retract,
                    },
                    output: ChangelogMode::Retract,
                }),
                ChangelogMode::Retract,
            ),
        };
        let exprs = aggregate
            .group_expr
            .iter()
            .chain(&aggregate.aggr_expr)
            .map(|e| e.schema_name().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        // Over retractions the state has another layout (a row count per group): never the uid
        // of the same aggregate over append-only input, whose savepoint it could not read.
        let retracting = if input.changelog == ChangelogMode::AppendOnly {
            ""
        } else {
            "|retract"
        };
        let window = input
            .window
            .as_ref()
            .map(|w| w.window)
            .or(time_column.map(|_| WindowKind::Attached));
        // Sessions of a partition hold a state per group key: another layout than per-key sessions.
        let partitioned = match &sessions_by {
            Some(by) => format!("|sessions by {}", by.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")),
            None => String::new(),
        };
        self.uid_basis = Some(format!("{window:?}|{exprs}{retracting}{partitioned}"));
        let mut op = self.add(op_spec, &aggregate.schema, Some((input.op, EdgeKind::Hash(hash_keys))));
        if let Some(window) = &input.window
            && let Some(predicate) = conjunction(
                window
                    .deferred_filters
                    .iter()
                    .map(|f| bound_columns_of(f, &outputs_of_bounds, &aggregate.schema))
                    .collect::<Result<Vec<_>>>()?,
            )
        {
            let predicate = physical(&predicate, &aggregate.schema)?;
            op = self.add(OperatorSpec::Filter { predicate }, &aggregate.schema, Some((op, EdgeKind::Forward)));
        }
        if !computed_outputs.is_empty() {
            op = self.compute_window_columns(op, &computed_outputs, &outputs_of_bounds, &aggregate.schema)?;
        }
        let updating = changelog != ChangelogMode::AppendOnly;
        Ok(Stream {
            op,
            schema: Arc::clone(&aggregate.schema),
            window: None,
            changelog,
            upsert_from: updating.then_some(op),
            rowtime: window_times,
            window_end,
        })
    }
}

/// What a column computed from window bounds holds until they are known: one constant (not NULL,
/// which a NOT NULL column refuses), so as a group key it splits no group.
pub(super) fn window_column_placeholder(data_type: &DataType) -> Result<Expr> {
    let value = ScalarValue::new_default(data_type).or_else(|_| ScalarValue::try_from(data_type))?;
    Ok(Expr::Literal(value, None))
}

impl Lowering<'_> {
    /// A projection after `op` that computes the columns at `computed` (expressions over the
    /// window placeholders) from the window bounds at `outputs_of_bounds`, passing the others.
    pub(super) fn compute_window_columns(
        &mut self,
        op: usize,
        computed: &[(usize, Expr)],
        outputs_of_bounds: &[(WindowBound, usize)],
        schema: &DFSchemaRef,
    ) -> Result<usize> {
        let exprs = (0..schema.fields().len())
            .map(|i| match computed.iter().find(|(c, _)| *c == i) {
                Some((_, expr)) => physical(&bound_columns_of(expr, outputs_of_bounds, schema)?, schema),
                None => physical(&Expr::Column(Column::from(schema.qualified_field(i))), schema),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(self.add(OperatorSpec::Project { exprs }, schema, Some((op, EdgeKind::Forward))))
    }
}

fn aggregate_call(expr: &Expr, schema: &DFSchema, output_type: DataType) -> Result<AggregateCall> {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = strip_alias(expr) else {
        return Err(Error::unsupported(format!("`{expr}` is not supported as an aggregate in a job")));
    };
    if !params.order_by.is_empty() {
        return Err(Error::unsupported("ORDER BY inside an aggregate is not supported in a job yet"));
    }
    // Every aggregate of a job skips NULLs (FIRST_VALUE / LAST_VALUE too, as in Flink).
    if params.null_treatment == Some(NullTreatment::RespectNulls) {
        return Err(Error::unsupported(format!(
            "`{expr}`: RESPECT NULLS is not supported in a job; aggregates skip NULLs"
        )));
    }
    let display = strip_alias(expr).schema_name().to_string();
    call_of(
        func.name(),
        &params.args,
        params.filter.as_deref(),
        params.distinct,
        display,
        schema,
        output_type,
    )
}

/// An aggregate call of a job (`name(args)`, grouped or OVER a window) as the operators run it.
pub(super) fn call_of(
    name: &str,
    args: &[Expr],
    filter: Option<&Expr>,
    distinct: bool,
    display: String,
    schema: &DFSchema,
    output_type: DataType,
) -> Result<AggregateCall> {
    let kind = match name.to_ascii_lowercase().as_str() {
        "count" => AggregateKind::Count,
        "sum" => AggregateKind::Sum,
        "min" => AggregateKind::Min,
        "max" => AggregateKind::Max,
        "avg" | "mean" => AggregateKind::Avg,
        "first_value" => AggregateKind::FirstValue,
        "last_value" => AggregateKind::LastValue,
        other => {
            return Err(Error::unsupported(format!(
                "aggregate function {other}() is not supported in a job yet; use COUNT, SUM, MIN, MAX, AVG, FIRST_VALUE, LAST_VALUE"
            )));
        }
    };
    let [arg] = args else {
        return Err(Error::unsupported(format!(
            "`{display}`: aggregates in a job take exactly one argument"
        )));
    };
    // Every aggregate kind here skips NULLs, so `AGG(x) FILTER (WHERE p)` is exactly
    // `AGG(CASE WHEN p THEN x END)`: a row the filter drops (false or NULL) feeds a NULL, in both
    // its insertion and its retraction, and DISTINCT sees only the kept values.
    let arg = match filter {
        Some(filter) => when(filter.clone(), arg.clone()).end()?,
        None => arg.clone(),
    };
    Ok(AggregateCall {
        kind,
        arg: physical(&arg, schema)?,
        distinct,
        output_type,
        display,
    })
}

/// A constant hash key: every row to one subtask (a global aggregate, or sessions over all rows).
pub(super) fn constant_key() -> PhysicalExprRef {
    lit(ScalarValue::Int64(Some(0)))
}

/// The `WindowAggregateSpec::sessions_by` of Flink's SESSION TVF with these PARTITION BY columns
/// (none: all rows) under these group keys. Each partition column must be a group key, as a
/// session then holds whole groups; a PARTITION BY of exactly the group keys is per-key sessions.
fn sessions_by(partition: &[String], keys: &[PhysicalExprRef], key_names: &[Option<String>]) -> Result<Option<Vec<PhysicalExprRef>>> {
    let mut positions = BTreeSet::new();
    for name in partition {
        let position = key_names
            .iter()
            .position(|k| k.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(name)))
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "SESSION's PARTITION BY column '{name}' is not a GROUP BY key; group by every partition column"
                ))
            })?;
        positions.insert(position);
    }
    Ok(if positions.len() == keys.len() {
        None
    } else if positions.is_empty() {
        Some(vec![constant_key()])
    } else {
        Some(positions.into_iter().map(|p| Arc::clone(&keys[p])).collect())
    })
}

/// The column standing for a window bound in a condition deferred to the window aggregate.
fn window_bound_placeholder(bound: WindowBound) -> Column {
    Column::new_unqualified(match bound {
        WindowBound::Start => "__weir_window_start",
        WindowBound::End => "__weir_window_end",
        WindowBound::Time => "__weir_window_time",
    })
}

/// `condition` (or a computed column), on window columns only, with each bound replaced by its
/// placeholder and each computed window column by its expression.
pub(super) fn window_condition(condition: &Expr, window: &WindowColumns, schema: &DFSchema) -> Result<Expr> {
    let mut row_column = false;
    let rewritten = condition
        .clone()
        .transform_up(|e| {
            let Expr::Column(c) = &e else { return Ok(Transformed::no(e)) };
            let index = schema.index_of_column(c)?;
            if let Some(bound) = window.bounds.get(&index) {
                return Ok(Transformed::yes(Expr::Column(window_bound_placeholder(*bound))));
            }
            if let Some(computed) = window.computed.get(&index) {
                return Ok(Transformed::yes(computed.clone()));
            }
            row_column = true;
            Ok(Transformed::no(e))
        })?
        .data;
    if row_column {
        return Err(Error::unsupported(format!(
            "`{condition}` compares window_start / window_end with other columns before the aggregation; use the window columns alone"
        )));
    }
    Ok(rewritten)
}

/// A deferred window condition over the window aggregate's output columns.
pub(super) fn bound_columns_of(condition: &Expr, outputs_of_bounds: &[(WindowBound, usize)], schema: &DFSchema) -> Result<Expr> {
    let mut columns = HashMap::new();
    for (bound, index) in outputs_of_bounds {
        columns
            .entry(window_bound_placeholder(*bound))
            .or_insert_with(|| Column::from(schema.qualified_field(*index)));
    }
    for column in condition.column_refs() {
        if !columns.contains_key(column) {
            return Err(Error::unsupported(format!(
                "a filter on {} before a window aggregate needs that column in its GROUP BY",
                column.name.trim_start_matches("__weir_")
            )));
        }
    }
    Ok(replace_col(condition.clone(), &columns.iter().collect())?)
}
