//! Lowering: DataFusion's optimized LogicalPlan of a job's SELECT → `JobGraph`. Scans become sources
//! (plus a watermark assigner), filters and projections become stateless operators. Aggregates are
//! lowered in `aggregate` (window and updating aggregates, each fed by a hash exchange on its
//! grouping keys), OVER aggregations in `over_aggregate`, joins in `join` (regular, interval and
//! window joins) and `lookup_join`, ROW_NUMBER() Top-N in `top_n`. Anything else is refused by
//! name, so a job never computes silently wrong results.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Cast, Expr, LogicalPlan, TableScan};
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_expr::expressions::Column as ColumnExpr;

use crate::catalog::{Catalog, SourceDef, TableConnector, TableDef, schema_of};
use crate::error::{Error, Result};
use crate::graph::{
    ChangelogMode, Edge, EdgeKind, JobGraph, OperatorNode, OperatorSpec, PhysicalExprRef, SinkMode, SinkSpec, SourceSpec, WatermarkSpec,
    WatermarkStrategy, WindowBound, WindowKind, WindowTableFunctionSpec,
};
use crate::planner::window_function::WindowTableProvider;

mod aggregate;
mod join;
mod lookup_join;
mod over_aggregate;
mod top_n;

use aggregate::{bound_columns_of, call_of, constant_key, window_column_placeholder, window_condition};

/// Columns of a windowed scan that carry the row's event time until the window aggregate.
#[derive(Debug, Clone)]
struct WindowColumns {
    window: WindowKind,
    bounds: HashMap<usize, WindowBound>,
    /// Flink's SESSION TVF: the columns (by name) whose rows form sessions; see
    /// `WindowTableProvider::sessions_by`.
    sessions_by: Option<Vec<String>>,
    /// Conditions on the window columns alone, written before the aggregate, with each column
    /// replaced by a placeholder naming its bound (`window_bound_placeholder`). Every row of a
    /// window has the same bounds, so filtering rows by them keeps or drops whole windows: the
    /// aggregate applies them to its rows instead.
    deferred_filters: Vec<Expr>,
    /// Columns computed from the window columns alone (`HOUR(window_start) AS h`), as
    /// expressions over the placeholders; until the window's bounds are known they carry a
    /// constant (`window_column_placeholder`).
    /// The aggregate (grouped by them) or `window_rows` computes them from the bounds.
    computed: HashMap<usize, Expr>,
}

impl WindowColumns {
    /// Window columns, computed or bare, among `columns`.
    fn reads(&self, columns: &BTreeSet<usize>) -> bool {
        columns.iter().any(|c| self.bounds.contains_key(c) || self.computed.contains_key(c))
    }
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
    /// The column holding the end of the window a window aggregate's row belongs to: a Top-N
    /// partitioned by it ranks each window once, when it closes (Flink's window Top-N); an
    /// aggregate grouped by it, or a join equating it on both sides, is one per window too.
    window_end: Option<usize>,
}

impl Stream {
    /// `rowtime` and `window_end` of the rows after a projection computing `exprs`: the columns
    /// that pass a carrier through unchanged.
    fn time_columns_after(&self, exprs: &[Expr]) -> Result<(BTreeSet<usize>, Option<usize>)> {
        let mut rowtime = BTreeSet::new();
        let mut window_end = None;
        for (out, expr) in exprs.iter().enumerate() {
            let Expr::Column(c) = strip_alias(expr) else { continue };
            let from = self.schema.index_of_column(c)?;
            if self.rowtime.contains(&from) {
                rowtime.insert(out);
            }
            if self.window_end == Some(from) && window_end.is_none() {
                window_end = Some(out);
            }
        }
        Ok((rowtime, window_end))
    }
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
            | OperatorSpec::WindowJoin(_)
            | OperatorSpec::TopN(_)
            | OperatorSpec::OverAggregate(_) => match self.uid_basis.take() {
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
            OperatorSpec::Filter { .. }
            | OperatorSpec::Project { .. }
            | OperatorSpec::LookupJoin(_)
            | OperatorSpec::WindowTableFunction(_) => format!("{kind}-{index}"),
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
                if let Some(ranked) = self.top_n(filter)? {
                    return Ok(ranked);
                }
                let mut input = self.lower(&filter.input)?;
                let mut row_conditions = Vec::new();
                for condition in split_conjunction(&filter.predicate) {
                    match &mut input.window {
                        Some(window) if window.reads(&column_indices(condition, &input.schema)?) => {
                            let deferred = window_condition(condition, window, &input.schema)?;
                            window.deferred_filters.push(deferred);
                        }
                        _ => row_conditions.push(condition.clone()),
                    }
                }
                let Some(predicate) = conjunction(row_conditions) else {
                    return Ok(input);
                };
                let predicate = physical(&predicate, &input.schema)?;
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
                    sessions_by: w.sessions_by.clone(),
                    deferred_filters: w.deferred_filters.clone(),
                    computed: HashMap::new(),
                });
                let mut exprs = Vec::with_capacity(projection.expr.len());
                let (rowtime, window_end) = input.time_columns_after(&projection.expr)?;
                for (out, expr) in projection.expr.iter().enumerate() {
                    if let (Some(from), Some(to)) = (&input.window, window.as_mut()) {
                        let bare = match strip_alias(expr) {
                            Expr::Column(c) => Some(input.schema.index_of_column(c)?),
                            _ => None,
                        };
                        if let Some(bound) = bare.and_then(|c| from.bounds.get(&c)) {
                            to.bounds.insert(out, *bound);
                        } else if let Some(computed) = bare.and_then(|c| from.computed.get(&c)) {
                            to.computed.insert(out, computed.clone());
                            exprs.push(physical(expr, &input.schema)?);
                            continue;
                        } else if from.reads(&column_indices(expr, &input.schema)?) {
                            // Computed once the bounds are known; a placeholder until then.
                            to.computed.insert(out, window_condition(expr, from, &input.schema)?);
                            let placeholder = window_column_placeholder(projection.schema.field(out).data_type())?;
                            exprs.push(physical(&placeholder, &input.schema)?);
                            continue;
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
                    window_end,
                    ..input
                })
            }
            LogicalPlan::Aggregate(aggregate) => self.aggregate(aggregate),
            LogicalPlan::Window(window) => self.over_aggregate(window),
            LogicalPlan::Join(join) => self.join(join),
            other => Err(unsupported_plan(other)),
        }
    }

    fn scan(&mut self, scan: &TableScan) -> Result<Stream> {
        let provider = source_as_provider(&scan.source)?;
        // A scan is resolved by its name in the catalog; the window functions' provider carries
        // its source and window.
        let name = scan.table_name.table();
        let windowed = provider.downcast_ref::<WindowTableProvider>();
        let def: SourceDef = if let Some(windowed) = windowed {
            windowed.source.clone()
        } else if let Some(source) = self.catalog.sources.get(name) {
            source.clone()
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
        // The job's time: a processing-time window's PROCTIME() column, else the event time.
        let (time_column, strategy) = match (&def.watermark, windowed) {
            (_, Some(windowed)) if windowed.processing_time => (Some(windowed.time_column), Some(WatermarkStrategy::ProcessingTime)),
            (Some(w), _) => (
                Some(
                    def.columns
                        .iter()
                        .position(|c| c.name == w.column)
                        .ok_or_else(|| Error::internal("watermark column missing"))?,
                ),
                Some(WatermarkStrategy::BoundedOutOfOrderness {
                    delay_nanos: w.delay_nanos,
                }),
            ),
            (None, _) => (None, None),
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
        let mut op = self.add_with_schema(
            OperatorSpec::Source(SourceSpec {
                def,
                columns: needed.clone(),
            }),
            source_schema.clone(),
            None,
        );
        if let (Some(t), Some(strategy)) = (time_column, strategy) {
            let position = needed
                .iter()
                .position(|c| *c == t)
                .ok_or_else(|| Error::internal("time column not produced"))?;
            op = self.add_with_schema(
                OperatorSpec::WatermarkAssigner(WatermarkSpec {
                    time_column: position,
                    strategy,
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
            if matches!(strategy, Some(WatermarkStrategy::BoundedOutOfOrderness { .. })) && Some(*p) == time_column {
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
            window: windowed.map(|windowed| WindowColumns {
                window: windowed.window,
                bounds,
                sessions_by: windowed.sessions_by.clone(),
                deferred_filters: Vec::new(),
                computed: HashMap::new(),
            }),
            changelog,
            upsert_from: None,
            rowtime,
            window_end: None,
        })
    }

    /// A window table function's rows read by something other than a window aggregate or join
    /// (a Top-N, a sink): a `WindowTableFunction` fills in each row's window columns (a row per
    /// window holding it), then the conditions on them written before apply. Other streams pass.
    fn window_rows(&mut self, input: Stream) -> Result<Stream> {
        let Some(window) = input.window.clone() else {
            return Ok(input);
        };
        if matches!(window.window, WindowKind::Session { .. } | WindowKind::Attached) {
            return Err(Error::unsupported(
                "a session window's rows can only be aggregated (GROUP BY window_start, window_end): sessions form as rows arrive",
            ));
        }
        let mut bounds: Vec<(usize, WindowBound)> = window.bounds.iter().map(|(c, b)| (*c, *b)).collect();
        bounds.sort_by_key(|(c, _)| *c);
        // Until it is filled in, a window column holds the row's time.
        let Some(time_column) = input.rowtime.first().copied().or_else(|| bounds.first().map(|(c, _)| *c)) else {
            if matches!(window.window, WindowKind::Tumble { .. }) && window.deferred_filters.is_empty() && window.computed.is_empty() {
                return Ok(Stream { window: None, ..input });
            }
            return Err(Error::unsupported(
                "select window_start / window_end (or the time column) from this window table function",
            ));
        };
        let op = self.add(
            OperatorSpec::WindowTableFunction(WindowTableFunctionSpec {
                window: window.window,
                time_column,
                bounds: bounds.clone(),
            }),
            &input.schema,
            Some((input.op, EdgeKind::Forward)),
        );
        let window_end = bounds.iter().find(|(_, b)| *b == WindowBound::End).map(|(c, _)| *c);
        let mut rows = Stream {
            op,
            window: None,
            window_end,
            upsert_from: None,
            ..input
        };
        let outputs_of_bounds: Vec<(WindowBound, usize)> = bounds.iter().map(|(c, b)| (*b, *c)).collect();
        if !window.computed.is_empty() {
            let computed: Vec<(usize, Expr)> = window.computed.iter().map(|(c, e)| (*c, e.clone())).collect();
            rows.op = self.compute_window_columns(rows.op, &computed, &outputs_of_bounds, &rows.schema)?;
        }
        let conditions = window
            .deferred_filters
            .iter()
            .map(|f| bound_columns_of(f, &outputs_of_bounds, &rows.schema))
            .collect::<Result<Vec<_>>>()?;
        if let Some(condition) = conjunction(conditions) {
            let predicate = physical(&condition, &rows.schema)?;
            rows.op = self.add(OperatorSpec::Filter { predicate }, &rows.schema, Some((rows.op, EdgeKind::Forward)));
        }
        Ok(rows)
    }

    fn sink(&mut self, stream: Stream, table: &TableDef) -> Result<()> {
        let stream = self.window_rows(stream)?;
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
                    TableConnector::Filesystem => {
                        return refused(format!(
                            "which the append-only 'filesystem' table '{}' cannot take: files are not updated",
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
