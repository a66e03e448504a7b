//! Lowering: DataFusion's optimized LogicalPlan of a job's SELECT → `JobGraph`. Scans become sources
//! (plus a watermark assigner), filters and projections become stateless operators, an Aggregate
//! over a window table function becomes a keyed window aggregate, any other Aggregate an updating
//! aggregate; a hash exchange on the grouping keys feeds each aggregate. Anything else is refused by
//! name, so a job never computes silently wrong results.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::NullEquality;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DFSchemaRef, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Aggregate, Cast, Expr, ExprSchemable, Join, JoinType, LogicalPlan, TableScan};
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_expr::expressions::{Column as ColumnExpr, lit};

use crate::catalog::{Catalog, SourceDef, TableConnector, TableDef, schema_of};
use crate::error::{Error, Result};
use crate::graph::{
    AggregateCall, AggregateKind, AggregateOutput, AggregateSpec, ChangelogMode, Edge, EdgeKind, IntervalJoinSpec, JobGraph, JoinKind,
    JoinSpec, LookupJoinSpec, LookupSource, OperatorNode, OperatorSpec, PhysicalExprRef, SinkMode, SinkSpec, SourceSpec,
    UpdatingAggregateSpec, WatermarkSpec, WindowAggregateSpec, WindowBound, WindowJoinSpec, WindowKind,
};
use crate::planner::interval_condition::{Interval, TimeAttributes, interval_of};
use crate::planner::lookup_join::{LookupTableProvider, LookupTarget};
use crate::planner::window_function::WindowTableProvider;

/// Columns of a windowed scan that carry the row's event time until the window aggregate.
#[derive(Debug, Clone)]
struct WindowColumns {
    window: WindowKind,
    bounds: HashMap<usize, WindowBound>,
}

/// The lowered part of the plan so far: its last operator and what that operator emits.
struct Stream {
    op: usize,
    schema: DFSchemaRef,
    window: Option<WindowColumns>,
    /// Updating aggregates emit `Retract` unless the sink lets them upsert (see `upsert_from`).
    changelog: ChangelogMode,
    /// The updating aggregate whose rows reach this point unchanged but for projections: a sink
    /// keyed by primary key lets it emit upserts, with no update-before rows (Flink drops them
    /// for an upsert sink too). A filter in between needs them: a row that stops passing it must
    /// be taken back.
    upsert_from: Option<usize>,
    /// Columns that carry the event time the watermarks measure (Flink's rowtime attributes):
    /// the source's watermark column through projections and filters, and both sides' after an
    /// interval join. They make a join with time bounds an interval join.
    rowtime: BTreeSet<usize>,
}

pub struct Lowering<'a> {
    /// Where scans find their sources.
    catalog: &'a Catalog,
    parallelism: usize,
    operators: Vec<OperatorNode>,
    edges: Vec<Edge>,
    /// What the next aggregate computes (window, keys, aggregates as SQL), for its uid.
    uid_basis: Option<String>,
}

/// Lowers the SELECT of `INSERT INTO table SELECT ...` into a job graph writing `table`.
pub fn lower_job(plan: &LogicalPlan, catalog: &Catalog, table: &TableDef, parallelism: usize) -> Result<JobGraph> {
    let mut lowering = Lowering {
        catalog,
        parallelism,
        operators: Vec::new(),
        edges: Vec::new(),
        uid_basis: None,
    };
    let stream = lowering.lower(plan)?;
    lowering.sink(stream, table)?;
    Ok(JobGraph {
        operators: lowering.operators,
        edges: lowering.edges,
    })
}

fn physical(expr: &Expr, schema: &DFSchema) -> Result<PhysicalExprRef> {
    Ok(create_physical_expr(
        expr,
        schema,
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )?)
}

fn strip_alias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => strip_alias(&alias.expr),
        other => other,
    }
}

/// Indices (in `schema`) of the columns `expr` reads.
fn column_indices(expr: &Expr, schema: &DFSchema) -> Result<BTreeSet<usize>> {
    expr.column_refs().into_iter().map(|c| Ok(schema.index_of_column(c)?)).collect()
}

/// The table side of a lookup join as DataFusion planned it: the scan of `weir_lookup(t, ...)`,
/// under aliases and the filters on the table alone that it pushed below the join.
struct LookupSide {
    target: LookupTarget,
    /// The table's columns the lookup reads (the scan's projection).
    columns: Vec<usize>,
    /// Conditions on the table's rows alone, over those columns.
    filters: Vec<PhysicalExprRef>,
    /// Which of those columns the join's right input is, in its order.
    output: Vec<usize>,
}

fn lookup_side(plan: &LogicalPlan) -> Result<Option<LookupSide>> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => lookup_side(&alias.input),
        LogicalPlan::Filter(filter) => match lookup_side(&filter.input)? {
            Some(mut side) => {
                let predicate = physical(&filter.predicate, filter.input.schema())?;
                side.filters.push(on_scan_columns(predicate, &side.output)?);
                Ok(Some(side))
            }
            None => Ok(None),
        },
        // Pruned columns: plain column references only.
        LogicalPlan::Projection(projection) => match lookup_side(&projection.input)? {
            Some(mut side) => {
                let mut output = Vec::with_capacity(projection.expr.len());
                for expr in &projection.expr {
                    let Expr::Column(column) = strip_alias(expr) else {
                        return Err(Error::unsupported(format!(
                            "a lookup join's table side computes `{expr}`; compute it after the join"
                        )));
                    };
                    let index = projection.input.schema().index_of_column(column)?;
                    output.push(
                        *side
                            .output
                            .get(index)
                            .ok_or_else(|| Error::internal("projected column out of range"))?,
                    );
                }
                side.output = output;
                Ok(Some(side))
            }
            None => Ok(None),
        },
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source)?;
            let Some(lookup) = provider.downcast_ref::<LookupTableProvider>() else {
                return Ok(None);
            };
            if !scan.filters.is_empty() || scan.fetch.is_some() {
                return Err(Error::internal("filters were pushed into a lookup join's table"));
            }
            let columns = scan
                .projection
                .clone()
                .unwrap_or_else(|| (0..provider.schema().fields().len()).collect());
            Ok(Some(LookupSide {
                target: lookup.target.clone(),
                output: (0..columns.len()).collect(),
                columns,
                filters: Vec::new(),
            }))
        }
        _ => Ok(None),
    }
}

/// `expr`, planned over a layer of the lookup side whose column `j` is the scan's column
/// `output[j]`, made to read the scan's columns.
fn on_scan_columns(expr: PhysicalExprRef, output: &[usize]) -> Result<PhysicalExprRef> {
    let remapped = expr.transform(|e| {
        let Some(column) = e.downcast_ref::<ColumnExpr>() else {
            return Ok(Transformed::no(e));
        };
        let index = *output
            .get(column.index())
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("lookup filter column out of range".into()))?;
        Ok(Transformed::yes(Arc::new(ColumnExpr::new(column.name(), index)) as PhysicalExprRef))
    })?;
    Ok(remapped.data)
}

/// What makes a join a window join: both inputs windowed alike and their windows equated.
struct WindowJoin<'a> {
    window: WindowKind,
    /// Each side's window columns.
    columns: [Vec<(usize, WindowBound)>; 2],
    /// The ON equalities other than the windows'.
    keys: Vec<&'a (Expr, Expr)>,
}

/// A join of two window table functions' rows, as Flink's window join: the ON condition must
/// equate both `window_start` and `window_end` of the same window on both sides. `None` for a join
/// of inputs without window columns.
fn window_join_of<'a>(join: &'a Join, left: &Stream, right: &Stream) -> Result<Option<WindowJoin<'a>>> {
    let bounds = |side: &Stream| side.window.as_ref().filter(|w| !w.bounds.is_empty()).cloned();
    let (left_window, right_window) = match (bounds(left), bounds(right)) {
        (None, None) => return Ok(None),
        (Some(l), Some(r)) => (l, r),
        _ => {
            return Err(Error::unsupported(
                "a window join needs both inputs windowed by a window table function (TUMBLE or HOP); join the window aggregate's result or the source instead",
            ));
        }
    };
    if left_window.window != right_window.window {
        return Err(Error::unsupported(format!(
            "a window join needs the same window on both sides, not {} and {}",
            left_window.window, right_window.window
        )));
    }
    if left.changelog != ChangelogMode::AppendOnly || right.changelog != ChangelogMode::AppendOnly {
        return Err(Error::unsupported(
            "a window join over updating rows (an 'upsert-kafka' source) is not supported; windows need append-only input",
        ));
    }
    if matches!(left_window.window, WindowKind::Session { .. }) {
        return Err(Error::unsupported(
            "a window join over SESSION windows is not supported; use TUMBLE or HOP",
        ));
    }
    let bound_of = |window: &WindowColumns, expr: &Expr, schema: &DFSchema| -> Result<Option<WindowBound>> {
        Ok(match strip_alias(expr) {
            Expr::Column(c) => window.bounds.get(&schema.index_of_column(c)?).copied(),
            _ => None,
        })
    };
    let (mut start, mut end) = (false, false);
    let mut keys = Vec::new();
    for pair in &join.on {
        match (
            bound_of(&left_window, &pair.0, &left.schema)?,
            bound_of(&right_window, &pair.1, &right.schema)?,
        ) {
            (None, None) => keys.push(pair),
            (Some(WindowBound::Start), Some(WindowBound::Start)) => start = true,
            (Some(WindowBound::End), Some(WindowBound::End)) => end = true,
            _ => {
                return Err(Error::unsupported(format!(
                    "a window join equates window_start with window_start and window_end with window_end, not `{} = {}`",
                    pair.0, pair.1
                )));
            }
        }
    }
    if !(start && end) {
        return Err(Error::unsupported(
            "a window join needs both L.window_start = R.window_start and L.window_end = R.window_end in its ON condition",
        ));
    }
    let columns = |window: &WindowColumns| {
        let mut columns: Vec<(usize, WindowBound)> = window.bounds.iter().map(|(i, b)| (*i, *b)).collect();
        columns.sort_by_key(|(i, _)| *i);
        columns
    };
    Ok(Some(WindowJoin {
        window: left_window.window,
        columns: [columns(&left_window), columns(&right_window)],
        keys,
    }))
}

fn unsupported_plan(plan: &LogicalPlan) -> Error {
    let what = match plan {
        LogicalPlan::Sort(_) => "ORDER BY".to_string(),
        LogicalPlan::Limit(_) => "LIMIT / OFFSET".to_string(),
        LogicalPlan::Union(_) => "UNION".to_string(),
        LogicalPlan::Window(_) => "window functions (OVER)".to_string(),
        LogicalPlan::Distinct(_) => "DISTINCT".to_string(),
        LogicalPlan::Subquery(_) => "subqueries".to_string(),
        LogicalPlan::EmptyRelation(_) => "a SELECT without FROM".to_string(),
        LogicalPlan::Values(_) => "VALUES".to_string(),
        LogicalPlan::Unnest(_) => "UNNEST".to_string(),
        LogicalPlan::RecursiveQuery(_) => "recursive queries".to_string(),
        other => other.display().to_string(),
    };
    Error::unsupported(format!("{what} is not supported in a job yet"))
}

impl Lowering<'_> {
    /// A stable uid: derived from the operator's role and what it computes, not its position, so
    /// that state still matches when a query is changed around a stateful operator.
    fn uid_for(&mut self, spec: &OperatorSpec, index: usize) -> String {
        let kind = spec.kind_name();
        let uid = match spec {
            OperatorSpec::Source(source) => format!("{kind}-{}", source.def.name),
            OperatorSpec::WatermarkAssigner(_) => match self.operators.last().map(|o| &o.spec) {
                Some(OperatorSpec::Source(source)) => format!("{kind}-{}", source.def.name),
                _ => format!("{kind}-{index}"),
            },
            OperatorSpec::Sink(sink) => format!("{kind}-{}", sink.table.name),
            OperatorSpec::WindowAggregate(_)
            | OperatorSpec::UpdatingAggregate(_)
            | OperatorSpec::Join(_)
            | OperatorSpec::IntervalJoin(_)
            | OperatorSpec::WindowJoin(_) => match self.uid_basis.take() {
                Some(basis) => format!("{kind}-{:08x}", crate::partition::stable_hash(basis.as_bytes()) as u32),
                None => format!("{kind}-{index}"),
            },
            OperatorSpec::ChangelogNormalize { .. } => {
                let source = self.operators.iter().rev().find_map(|o| match &o.spec {
                    OperatorSpec::Source(source) => Some(source.def.name.clone()),
                    _ => None,
                });
                format!("{kind}-{}", source.unwrap_or_else(|| index.to_string()))
            }
            OperatorSpec::Filter { .. } | OperatorSpec::Project { .. } | OperatorSpec::LookupJoin(_) => format!("{kind}-{index}"),
        };
        if self.operators.iter().any(|o| o.uid == uid) {
            format!("{uid}-{index}")
        } else {
            uid
        }
    }

    fn add(&mut self, spec: OperatorSpec, output_schema: &DFSchema, input: Option<(usize, EdgeKind)>) -> usize {
        self.add_with_schema(spec, Arc::clone(output_schema.inner()), input)
    }

    fn add_with_schema(
        &mut self,
        spec: OperatorSpec,
        output_schema: datafusion::arrow::datatypes::SchemaRef,
        input: Option<(usize, EdgeKind)>,
    ) -> usize {
        let index = self.operators.len();
        let uid = self.uid_for(&spec, index);
        self.operators.push(OperatorNode {
            uid,
            parallelism: self.parallelism,
            spec,
            output_schema,
        });
        if let Some((from, kind)) = input {
            self.edges.push(Edge {
                from,
                to: index,
                kind,
                input: 0,
            });
        }
        index
    }

    fn lower(&mut self, plan: &LogicalPlan) -> Result<Stream> {
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan),
            LogicalPlan::SubqueryAlias(alias) => {
                let input = self.lower(&alias.input)?;
                Ok(Stream {
                    schema: Arc::clone(&alias.schema),
                    ..input
                })
            }
            LogicalPlan::Filter(filter) => {
                let input = self.lower(&filter.input)?;
                if let Some(window) = &input.window
                    && column_indices(&filter.predicate, &input.schema)?
                        .iter()
                        .any(|i| window.bounds.contains_key(i))
                {
                    return Err(Error::unsupported(
                        "filtering on window_start / window_end before the aggregation is not supported",
                    ));
                }
                let predicate = physical(&filter.predicate, &input.schema)?;
                let op = self.add(
                    OperatorSpec::Filter { predicate },
                    &input.schema,
                    Some((input.op, EdgeKind::Forward)),
                );
                Ok(Stream {
                    op,
                    upsert_from: None,
                    ..input
                })
            }
            LogicalPlan::Projection(projection) => {
                let input = self.lower(&projection.input)?;
                let mut window = input.window.as_ref().map(|w| WindowColumns {
                    window: w.window,
                    bounds: HashMap::new(),
                });
                let mut exprs = Vec::with_capacity(projection.expr.len());
                let mut rowtime = BTreeSet::new();
                for (out, expr) in projection.expr.iter().enumerate() {
                    if let Expr::Column(c) = strip_alias(expr)
                        && input.rowtime.contains(&input.schema.index_of_column(c)?)
                    {
                        rowtime.insert(out);
                    }
                    if let (Some(from), Some(to)) = (&input.window, window.as_mut()) {
                        let bare = match strip_alias(expr) {
                            Expr::Column(c) => from.bounds.get(&input.schema.index_of_column(c)?).copied(),
                            _ => None,
                        };
                        match bare {
                            Some(bound) => {
                                to.bounds.insert(out, bound);
                            }
                            None if column_indices(expr, &input.schema)?.iter().any(|i| from.bounds.contains_key(i)) => {
                                return Err(Error::unsupported(format!(
                                    "`{expr}` computes on window_start / window_end before the aggregation; group by them and compute after"
                                )));
                            }
                            None => {}
                        }
                    }
                    exprs.push(physical(expr, &input.schema)?);
                }
                let op = self.add(
                    OperatorSpec::Project { exprs },
                    &projection.schema,
                    Some((input.op, EdgeKind::Forward)),
                );
                Ok(Stream {
                    op,
                    schema: Arc::clone(&projection.schema),
                    window,
                    rowtime,
                    ..input
                })
            }
            LogicalPlan::Aggregate(aggregate) => self.aggregate(aggregate),
            LogicalPlan::Join(join) => self.join(join),
            other => Err(unsupported_plan(other)),
        }
    }

    fn scan(&mut self, scan: &TableScan) -> Result<Stream> {
        let provider = source_as_provider(&scan.source)?;
        // A scan is resolved by its name in the catalog; the window functions' provider carries
        // its source and window.
        let name = scan.table_name.table();
        let (def, window): (SourceDef, Option<WindowKind>) = if let Some(windowed) = provider.downcast_ref::<WindowTableProvider>() {
            (windowed.source.clone(), Some(windowed.window))
        } else if let Some(source) = self.catalog.sources.get(name) {
            (source.clone(), None)
        } else if self.catalog.tables.contains_key(name) {
            return Err(Error::unsupported(format!(
                "reading the result table '{}' in a job is not supported yet; jobs read sources",
                scan.table_name
            )));
        } else {
            return Err(Error::unsupported(format!(
                "reading '{}' in a job is not supported; jobs read sources",
                scan.table_name
            )));
        };
        if scan.fetch.is_some() {
            return Err(Error::unsupported("LIMIT is not supported in a job yet"));
        }
        if !scan.filters.is_empty() {
            return Err(Error::internal("filters were pushed into a streaming scan"));
        }
        let source_columns = def.columns.len();
        let all: Vec<usize> = (0..provider.schema().fields().len()).collect();
        let projection = scan.projection.clone().unwrap_or(all);
        let time_column = match &def.watermark {
            Some(w) => Some(
                def.columns
                    .iter()
                    .position(|c| c.name == w.column)
                    .ok_or_else(|| Error::internal("watermark column missing"))?,
            ),
            None => None,
        };
        // Window columns stand for the event time until the window aggregate.
        let source_column_of = |p: usize| {
            if p < source_columns { Some(p) } else { time_column }
        };
        let mut needed: BTreeSet<usize> = projection.iter().filter_map(|p| source_column_of(*p)).collect();
        needed.extend(time_column);
        // An upsert source's rows are told apart by their key.
        let key_columns = def
            .primary_key
            .iter()
            .map(|k| {
                def.columns
                    .iter()
                    .position(|c| &c.name == k)
                    .ok_or_else(|| Error::internal(format!("primary key column '{k}' missing")))
            })
            .collect::<Result<Vec<_>>>()?;
        needed.extend(&key_columns);
        if needed.is_empty() {
            needed.insert(0);
        }
        let needed: Vec<usize> = needed.into_iter().collect();
        let full_schema = schema_of(&def.columns)?;
        let source_schema = Arc::new(full_schema.project(&needed)?);
        let delay = def.watermark.as_ref().map(|w| w.delay_nanos);
        let mut op = self.add_with_schema(
            OperatorSpec::Source(SourceSpec {
                def,
                columns: needed.clone(),
            }),
            source_schema.clone(),
            None,
        );
        if let (Some(t), Some(delay_nanos)) = (time_column, delay) {
            let position = needed
                .iter()
                .position(|c| *c == t)
                .ok_or_else(|| Error::internal("time column not produced"))?;
            op = self.add_with_schema(
                OperatorSpec::WatermarkAssigner(WatermarkSpec {
                    time_column: position,
                    delay_nanos,
                }),
                source_schema.clone(),
                Some((op, EdgeKind::Forward)),
            );
        }
        let mut changelog = ChangelogMode::AppendOnly;
        if !key_columns.is_empty() {
            // Upserts into retractions, keyed by the primary key.
            let key_columns: Vec<usize> = key_columns.iter().filter_map(|k| needed.iter().position(|n| n == k)).collect();
            let hash = key_columns
                .iter()
                .map(|k| Arc::new(ColumnExpr::new(source_schema.field(*k).name(), *k)) as PhysicalExprRef)
                .collect();
            op = self.add_with_schema(
                OperatorSpec::ChangelogNormalize { key_columns },
                source_schema.clone(),
                Some((op, EdgeKind::Hash(hash))),
            );
            changelog = ChangelogMode::Retract;
        }
        let mut exprs: Vec<PhysicalExprRef> = Vec::with_capacity(projection.len());
        let mut bounds = HashMap::new();
        let mut rowtime = BTreeSet::new();
        for (out, p) in projection.iter().enumerate() {
            if delay.is_some() && Some(*p) == time_column {
                rowtime.insert(out);
            }
            let column = source_column_of(*p).ok_or_else(|| Error::internal("window column without event time"))?;
            let index = needed
                .iter()
                .position(|c| *c == column)
                .ok_or_else(|| Error::internal("projected column not produced"))?;
            exprs.push(Arc::new(ColumnExpr::new(source_schema.field(index).name(), index)));
            if *p == source_columns {
                bounds.insert(out, WindowBound::Start);
            } else if *p == source_columns + 1 {
                bounds.insert(out, WindowBound::End);
            } else if *p == source_columns + 2 {
                bounds.insert(out, WindowBound::Time);
            }
        }
        let identity = projection.len() == needed.len() && projection.iter().zip(&needed).all(|(p, n)| p == n);
        if !identity {
            op = self.add(
                OperatorSpec::Project { exprs },
                &scan.projected_schema,
                Some((op, EdgeKind::Forward)),
            );
        }
        Ok(Stream {
            op,
            schema: Arc::clone(&scan.projected_schema),
            window: window.map(|window| WindowColumns { window, bounds }),
            changelog,
            upsert_from: None,
            rowtime,
        })
    }

    fn aggregate(&mut self, aggregate: &Aggregate) -> Result<Stream> {
        let input = self.lower(&aggregate.input)?;
        let schema = &input.schema;
        let carriers = input.window.as_ref().map(|w| &w.bounds);
        let reads_window = |expr: &Expr| -> Result<bool> {
            Ok(carriers.is_some_and(|c| column_indices(expr, schema).is_ok_and(|cols| cols.iter().any(|i| c.contains_key(i)))))
        };
        let mut keys = Vec::new();
        let mut outputs = Vec::new();
        let mut time_column = None;
        for group in &aggregate.group_expr {
            if matches!(group, Expr::GroupingSet(_)) {
                return Err(Error::unsupported("GROUPING SETS / ROLLUP / CUBE are not supported in a job yet"));
            }
            let bound = match (strip_alias(group), carriers) {
                (Expr::Column(c), Some(carriers)) => {
                    let index = schema.index_of_column(c)?;
                    carriers.get(&index).map(|b| (index, *b))
                }
                _ => None,
            };
            match bound {
                Some((index, bound)) => {
                    time_column = Some(index);
                    outputs.push(AggregateOutput::Window(bound));
                }
                None if reads_window(group)? => {
                    return Err(Error::unsupported(format!(
                        "GROUP BY `{group}` computes on a window column; group by window_start, window_end themselves"
                    )));
                }
                None => {
                    outputs.push(AggregateOutput::Key(keys.len()));
                    keys.push(physical(group, schema)?);
                }
            }
        }
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
        // A global aggregate has one group: route everything by a constant key.
        let hash_keys = if keys.is_empty() {
            vec![lit(ScalarValue::Int64(Some(0)))]
        } else {
            keys.clone()
        };
        // A window's rows happen at its window_time (Flink's time attribute of a window's output).
        let window_times: BTreeSet<usize> = (0..outputs.len())
            .filter(|i| outputs[*i] == AggregateOutput::Window(WindowBound::Time))
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
                }),
                ChangelogMode::AppendOnly,
            ),
            (Some(_), None) => {
                return Err(Error::unsupported(
                    "grouping a TUMBLE / HOP / SESSION needs GROUP BY window_start, window_end (plus any keys)",
                ));
            }
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
        self.uid_basis = Some(format!("{:?}|{exprs}{retracting}", input.window.as_ref().map(|w| w.window)));
        let op = self.add(op_spec, &aggregate.schema, Some((input.op, EdgeKind::Hash(hash_keys))));
        let updating = changelog != ChangelogMode::AppendOnly;
        Ok(Stream {
            op,
            schema: Arc::clone(&aggregate.schema),
            window: None,
            changelog,
            upsert_from: updating.then_some(op),
            rowtime: window_times,
        })
    }

    /// An equi-join: both inputs hashed by their join keys into one two-input operator, a regular
    /// join or, with time bounds between the inputs' event times, an interval join.
    fn join(&mut self, join: &Join) -> Result<Stream> {
        if let Some(table) = lookup_side(&join.right)? {
            return self.lookup_join(join, table);
        }
        let kind = match join.join_type {
            JoinType::Inner => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            JoinType::Right => JoinKind::Right,
            JoinType::Full => JoinKind::Full,
            // EXISTS / IN (SELECT ...) and NOT EXISTS.
            JoinType::LeftSemi => JoinKind::LeftSemi,
            JoinType::LeftAnti if !join.null_aware => JoinKind::LeftAnti,
            JoinType::LeftAnti => {
                return Err(Error::unsupported(
                    "NOT IN (SELECT ...) over a column that may be NULL is not supported in a job yet; use NOT EXISTS",
                ));
            }
            other => return Err(Error::unsupported(format!("{other} JOIN is not supported in a job yet"))),
        };
        if join.on.is_empty() {
            return Err(Error::unsupported(
                "a JOIN needs an equality between a column of each side (a cross join or a join on other conditions only is not supported in a job)",
            ));
        }
        if join.null_equality == NullEquality::NullEqualsNull {
            return Err(Error::unsupported("a JOIN on IS NOT DISTINCT FROM is not supported in a job yet"));
        }
        let left = self.lower(&join.left)?;
        let right = self.lower(&join.right)?;
        let window = window_join_of(join, &left, &right)?;
        let mut keys = [Vec::new(), Vec::new()];
        let on: Vec<&(Expr, Expr)> = match &window {
            Some(w) => w.keys.clone(),
            None => join.on.iter().collect(),
        };
        if on.is_empty() {
            // Only the windows are equated: one key for all rows.
            keys = [vec![lit(ScalarValue::Int64(Some(0)))], vec![lit(ScalarValue::Int64(Some(0)))]];
        }
        for (l, r) in on {
            let (left_type, right_type) = (l.get_type(&left.schema)?, r.get_type(&right.schema)?);
            keys[0].push(physical(l, &left.schema)?);
            // Both sides' keys must encode alike: they route rows to the same subtask.
            let r = if left_type == right_type {
                r.clone()
            } else {
                Expr::Cast(Cast::new(Box::new(r.clone()), left_type))
            };
            keys[1].push(physical(&r, &right.schema)?);
        }
        // The rest of the ON condition reads both sides, also where the output has one (semi, anti).
        let both_sides = left.schema.join(&right.schema)?;
        let filter = join.filter.as_ref().map(|f| physical(f, &both_sides)).transpose()?;
        let append_only = left.changelog == ChangelogMode::AppendOnly && right.changelog == ChangelogMode::AppendOnly;
        // Time bounds between two append-only inputs' event times make it an interval join.
        let times = TimeAttributes {
            left: &left.rowtime,
            right: &right.rowtime,
            left_len: left.schema.fields().len(),
        };
        let interval = match &join.filter {
            Some(condition) if append_only && !kind.emits_left_only() && window.is_none() => interval_of(condition, &join.schema, &times)?,
            _ => None,
        };
        // Over append-only inputs, an inner or semi join only ever adds rows; an anti join's rows
        // go when a match arrives, an outer join's padded rows when their first match does.
        let output = if append_only && (matches!(kind, JoinKind::Inner | JoinKind::LeftSemi) || interval.is_some() || window.is_some()) {
            ChangelogMode::AppendOnly
        } else {
            ChangelogMode::Retract
        };
        self.uid_basis = Some(format!(
            "{:?}|{}|{}",
            join.join_type,
            join.on.iter().map(|(l, r)| format!("{l}={r}")).collect::<Vec<_>>().join(","),
            join.filter.as_ref().map(|f| f.to_string()).unwrap_or_default()
        ));
        let spec = JoinSpec {
            kind,
            keys: keys.clone(),
            filter,
            output,
        };
        // An interval join's output keeps both sides' event times.
        let mut rowtime = BTreeSet::new();
        let spec = match interval {
            Some(Interval { time_columns, bounds }) => {
                rowtime.extend(left.rowtime.iter().copied());
                rowtime.extend(right.rowtime.iter().map(|c| c + times.left_len));
                OperatorSpec::IntervalJoin(IntervalJoinSpec {
                    join: spec,
                    time_columns,
                    bounds,
                })
            }
            // A window join's output keeps no event time: its rows come out as their window closes.
            None => match window {
                Some(WindowJoin { window, columns, .. }) => OperatorSpec::WindowJoin(WindowJoinSpec {
                    join: spec,
                    window,
                    window_columns: columns,
                }),
                None => OperatorSpec::Join(spec),
            },
        };
        let [left_keys, right_keys] = keys;
        let op = self.add(spec, &join.schema, Some((left.op, EdgeKind::Hash(left_keys))));
        self.edges.push(Edge {
            from: right.op,
            to: op,
            kind: EdgeKind::Hash(right_keys),
            input: 1,
        });
        Ok(Stream {
            op,
            schema: Arc::clone(&join.schema),
            window: None,
            changelog: output,
            upsert_from: None,
            rowtime,
        })
    }

    /// A lookup join: the left input's rows, each joined with the rows of its key in the table
    /// as they are when it arrives. A forward edge: any subtask can read any key.
    fn lookup_join(&mut self, join: &Join, table: LookupSide) -> Result<Stream> {
        let kind = match join.join_type {
            JoinType::Inner => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            other => {
                return Err(Error::unsupported(format!(
                    "a lookup join (FOR SYSTEM_TIME AS OF) is INNER or LEFT, not {other}"
                )));
            }
        };
        let left = self.lower(&join.left)?;
        if left.changelog != ChangelogMode::AppendOnly {
            return Err(Error::unsupported(
                "a lookup join of updating rows (an aggregate without a window, an 'upsert-kafka' source) is not supported",
            ));
        }
        // That it reads as of a processing-time column was checked on the query as written
        // (`planner::lookup_join`): the column itself is pruned by now.
        let right_schema = join.right.schema();
        // Each equality's table column, as an index into the columns the join reads.
        let mut pairs = Vec::with_capacity(join.on.len());
        for (l, r) in &join.on {
            let Expr::Column(column) = strip_alias(r) else {
                return Err(Error::unsupported(format!(
                    "a lookup join equates columns of the table with the other side, not `{r}`"
                )));
            };
            let index = right_schema.index_of_column(column)?;
            let scan_index = *table
                .output
                .get(index)
                .ok_or_else(|| Error::internal("lookup key column out of range"))?;
            pairs.push((scan_index, index, l));
        }
        if pairs.is_empty() {
            return Err(Error::unsupported(
                "a lookup join needs an equality between a column of the table and the other side",
            ));
        }
        let (source, key_order) = match &table.target {
            // Whether the source ends is the connector's to say: CREATE JOB checks it.
            LookupTarget::Source(def) => {
                let key_columns = pairs.iter().map(|(column, _, _)| *column).collect();
                let order: Vec<usize> = (0..pairs.len()).collect();
                (
                    LookupSource::Source {
                        def: def.clone(),
                        columns: table.columns.clone(),
                        key_columns,
                    },
                    order,
                )
            }
            LookupTarget::Table(def) => {
                // The equated columns must be the primary key or a leading part of it.
                let mut order = Vec::with_capacity(pairs.len());
                for key in def.primary_key.iter().take(pairs.len()) {
                    let position = pairs.iter().position(|(column, _, _)| {
                        table
                            .columns
                            .get(*column)
                            .and_then(|c| def.columns.get(*c))
                            .is_some_and(|c| &c.name == key)
                    });
                    match position {
                        Some(position) if !order.contains(&position) => order.push(position),
                        _ => break,
                    }
                }
                if order.len() != pairs.len() {
                    return Err(Error::unsupported(format!(
                        "a lookup join on result table '{}' must equate its PRIMARY KEY ({}) or a leading part of it",
                        def.name,
                        def.primary_key.join(", ")
                    )));
                }
                (
                    LookupSource::Table {
                        def: def.clone(),
                        columns: table.columns.clone(),
                        key_len: pairs.len(),
                    },
                    order,
                )
            }
        };
        // The left keys, in the table's key order, of the table's key types.
        let mut keys = Vec::with_capacity(pairs.len());
        for position in key_order {
            let (_, right_index, left_key) = pairs[position];
            let key_type = right_schema.field(right_index).data_type().clone();
            let left_key = if left_key.get_type(&left.schema)? == key_type {
                left_key.clone()
            } else {
                Expr::Cast(Cast::new(Box::new(left_key.clone()), key_type))
            };
            keys.push(physical(&left_key, &left.schema)?);
        }
        let both_sides = left.schema.join(right_schema)?;
        let filter = join.filter.as_ref().map(|f| physical(f, &both_sides)).transpose()?;
        let spec = OperatorSpec::LookupJoin(LookupJoinSpec {
            kind,
            keys,
            table: source,
            table_filters: table.filters,
            table_output: table.output,
            filter,
        });
        let op = self.add(spec, &join.schema, Some((left.op, EdgeKind::Forward)));
        Ok(Stream {
            op,
            schema: Arc::clone(&join.schema),
            window: None,
            changelog: ChangelogMode::AppendOnly,
            upsert_from: None,
            // The left columns come first, unchanged.
            rowtime: left.rowtime,
        })
    }

    fn sink(&mut self, stream: Stream, table: &TableDef) -> Result<()> {
        if stream.window.as_ref().is_some_and(|w| !w.bounds.is_empty()) {
            return Err(Error::unsupported(
                "window_start / window_end are only defined by a GROUP BY aggregation over the window",
            ));
        }
        let table_schema = schema_of(&table.columns)?;
        let fields = stream.schema.fields();
        if fields.len() != table_schema.fields().len() {
            return Err(Error::user(
                crate::error::UserErrorKind::DatatypeMismatch,
                format!(
                    "the query returns {} columns but table '{}' has {}: column count mismatch",
                    fields.len(),
                    table.name,
                    table_schema.fields().len()
                ),
            ));
        }
        let mut casts = false;
        let mut exprs = Vec::with_capacity(fields.len());
        for (i, (from, to)) in fields.iter().zip(table_schema.fields()).enumerate() {
            let (qualifier, field) = stream.schema.qualified_field(i);
            let column = Expr::Column(datafusion::common::Column::new(qualifier.cloned(), field.name()));
            if from.data_type() == to.data_type() {
                exprs.push(physical(&column, &stream.schema)?);
                continue;
            }
            if !insert_compatible(from.data_type(), to.data_type()) {
                return Err(Error::type_mismatch(format!(
                    "type mismatch: column {} of the query (`{}`) is {} but column '{}' of table '{}' is {}; CAST it explicitly",
                    i + 1,
                    from.name(),
                    from.data_type(),
                    to.name(),
                    table.name,
                    to.data_type()
                )));
            }
            casts = true;
            exprs.push(physical(
                &Expr::Cast(Cast::new(Box::new(column), to.data_type().clone())),
                &stream.schema,
            )?);
        }
        let mut op = stream.op;
        if casts {
            op = self.add_with_schema(OperatorSpec::Project { exprs }, table_schema.clone(), Some((op, EdgeKind::Forward)));
        }
        let mode = match stream.changelog {
            ChangelogMode::AppendOnly => SinkMode::Append,
            ChangelogMode::Upsert | ChangelogMode::Retract => {
                let refused = |why: String| {
                    Err(Error::invalid(format!(
                        "the query's rows update and delete earlier ones (an aggregate without a window, or an 'upsert-kafka' source), {why}"
                    )))
                };
                // Flink's blackhole takes a changelog without update-before rows; print shows every row kind.
                let keyed = match table.connector {
                    TableConnector::Kafka => {
                        return refused(format!(
                            "which the append-only 'kafka' table '{}' cannot take; use connector 'upsert-kafka' with a PRIMARY KEY",
                            table.name
                        ));
                    }
                    TableConnector::Stored if table.primary_key.is_empty() => {
                        return refused(format!(
                            "so table '{}' needs a PRIMARY KEY (the grouping columns) to apply them by",
                            table.name
                        ));
                    }
                    TableConnector::Stored | TableConnector::UpsertKafka | TableConnector::Blackhole => true,
                    TableConnector::Print => false,
                };
                if keyed
                    && let Some(aggregate) = stream.upsert_from
                    && let OperatorSpec::UpdatingAggregate(spec) = &mut self.operators[aggregate].spec
                {
                    spec.output = ChangelogMode::Upsert;
                }
                SinkMode::Upsert
            }
        };
        self.add_with_schema(
            OperatorSpec::Sink(SinkSpec {
                table: table.clone(),
                mode,
            }),
            table_schema,
            Some((op, EdgeKind::Forward)),
        );
        Ok(())
    }
}

/// The implicit conversions INSERT allows, as Flink does: within numbers, within timestamps, any
/// type into a string column; everything else needs an explicit CAST.
fn insert_compatible(from: &DataType, to: &DataType) -> bool {
    from == to
        || from == &DataType::Null
        || (from.is_numeric() && to.is_numeric())
        || (matches!(from, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64)
            && matches!(to, DataType::Timestamp(_, _) | DataType::Date32))
        || matches!(to, DataType::Utf8 | DataType::LargeUtf8)
}

fn aggregate_call(expr: &Expr, schema: &DFSchema, output_type: DataType) -> Result<AggregateCall> {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = strip_alias(expr) else {
        return Err(Error::unsupported(format!("`{expr}` is not supported as an aggregate in a job")));
    };
    let kind = match func.name().to_ascii_lowercase().as_str() {
        "count" => AggregateKind::Count,
        "sum" => AggregateKind::Sum,
        "min" => AggregateKind::Min,
        "max" => AggregateKind::Max,
        "avg" | "mean" => AggregateKind::Avg,
        other => {
            return Err(Error::unsupported(format!(
                "aggregate function {other}() is not supported in a job yet; use COUNT, SUM, MIN, MAX, AVG"
            )));
        }
    };
    if params.filter.is_some() {
        return Err(Error::unsupported(
            "FILTER (WHERE ...) on an aggregate is not supported in a job yet",
        ));
    }
    if !params.order_by.is_empty() {
        return Err(Error::unsupported("ORDER BY inside an aggregate is not supported in a job yet"));
    }
    let [arg] = params.args.as_slice() else {
        return Err(Error::unsupported(format!(
            "`{expr}`: aggregates in a job take exactly one argument"
        )));
    };
    Ok(AggregateCall {
        kind,
        arg: physical(arg, schema)?,
        distinct: params.distinct,
        output_type,
        display: strip_alias(expr).schema_name().to_string(),
    })
}
