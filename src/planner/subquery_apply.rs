//! Correlated scalar subqueries that DataFusion cannot turn into joins, run row by row.
//!
//! DataFusion decorrelates a scalar subquery only when it is aggregated and every correlated
//! predicate is `inner column = outer column`. Postgres clients' catalog queries (psql's `\d`) use
//! other shapes: `(SELECT collname ... WHERE c.oid = a.attcollation AND a.attcollation <> t.typcollation)`,
//! or a set-returning function of an outer column (`FROM pg_options_to_table(ftoptions)`). For those,
//! the analyzer rule `ApplyCorrelatedSubqueries` replaces the subquery by a function of the outer
//! columns it uses, which plans and runs the subquery once per distinct set of outer values with
//! those values as literals (the "apply" or nested-loop strategy). As in Postgres, a subquery that
//! returns no row gives NULL and one that returns more than one row is an error. EXISTS and
//! `x IN (subquery)` outside a filter's conjuncts (`SELECT x AND EXISTS (...)`, Grafana's
//! `CASE WHEN quote_ident(table_schema) IN (SELECT ...) THEN ...`), which DataFusion cannot run,
//! are applied too: an IN subquery runs once per set of outer values and each row's value is
//! looked up in its rows, with SQL's NULL rules.
//!
//! It is slow for many outer rows, but it only takes over queries DataFusion refuses outright;
//! subqueries DataFusion decorrelates keep its join plan.
//!
//! Set-returning functions that may take outer columns (`generate_series`, Postgres' catalog
//! functions) are registered through `LateralFunction`: with an outer column among the arguments
//! it returns a `LateralTable` placeholder that the apply step calls again with the values.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};
use datafusion::catalog::{Session as DfSession, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::datasource::{DefaultTableSource, TableType, provider_as_source};
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::expr::{Exists, InSubquery, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::{conjunction, split_conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    ColumnarValue, Expr, Filter, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Subquery, TableScan,
    TableScanBuilder, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_plan::{ExecutionPlan, collect};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Adds the analyzer rule and makes DataFusion's `generate_series` accept outer columns.
pub fn register(ctx: &SessionContext) {
    ctx.add_analyzer_rule(Arc::new(ApplyCorrelatedSubqueries));
    let series = ctx.state().table_functions().get("generate_series").map(|f| f.function().clone());
    if let Some(series) = series {
        ctx.register_udtf("generate_series", Arc::new(LateralFunction::new(series)));
    }
}

#[derive(Debug)]
pub struct ApplyCorrelatedSubqueries;

impl AnalyzerRule for ApplyCorrelatedSubqueries {
    fn name(&self) -> &str {
        "weir_apply_correlated_subqueries"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> datafusion::error::Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            if let LogicalPlan::Filter(filter) = node {
                // DataFusion turns EXISTS / IN (subquery) that are whole conjuncts of a filter into
                // semi and anti joins; only the subqueries elsewhere in the predicate are applied.
                let mut transformed = false;
                let mut conjuncts = Vec::new();
                for conjunct in split_conjunction_owned(filter.predicate.clone()) {
                    let whole_predicate = match &conjunct {
                        Expr::Exists(_) | Expr::InSubquery(_) => true,
                        Expr::Not(inner) => matches!(inner.as_ref(), Expr::Exists(_) | Expr::InSubquery(_)),
                        _ => false,
                    };
                    let rewritten = if whole_predicate {
                        Transformed::no(conjunct)
                    } else {
                        rewrite_subqueries(conjunct)?
                    };
                    transformed |= rewritten.transformed;
                    conjuncts.push(rewritten.data);
                }
                return match (transformed, conjunction(conjuncts)) {
                    (true, Some(predicate)) => Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(predicate, filter.input)?))),
                    _ => Ok(Transformed::no(LogicalPlan::Filter(filter))),
                };
            }
            // Replacing an expression must not rename the column it produces.
            let names = NamePreserver::new(&node);
            let rewritten = node.map_expressions(|expr| {
                let name = names.save(&expr);
                Ok(rewrite_subqueries(expr)?.update_data(|e| name.restore(e)))
            })?;
            if rewritten.transformed {
                rewritten.map_data(|plan| plan.recompute_schema())
            } else {
                Ok(rewritten)
            }
        })
        .map(|t| t.data)
    }
}

/// Replaces the subqueries in `expr` that DataFusion cannot plan by `SubqueryApply` calls.
fn rewrite_subqueries(expr: Expr) -> datafusion::error::Result<Transformed<Expr>> {
    expr.transform_up(|e| match e {
        Expr::ScalarSubquery(subquery) if needs_apply(&subquery) => Ok(Transformed::yes(apply(subquery, Mode::Scalar)?)),
        // Outside a filter's conjuncts DataFusion cannot run EXISTS at all, correlated or not.
        Expr::Exists(Exists { subquery, negated }) => Ok(Transformed::yes(apply(subquery, Mode::Exists { negated })?)),
        Expr::InSubquery(InSubquery { expr, subquery, negated }) => Ok(Transformed::yes(apply_in(subquery, *expr, negated)?)),
        other => Ok(Transformed::no(other)),
    })
}

/// The `LateralTable` behind a table scan, if it is one.
fn lateral_table(scan: &TableScan) -> Option<&LateralTable> {
    let source = scan.source.as_ref().downcast_ref::<DefaultTableSource>()?;
    (source.table_provider.as_ref() as &dyn std::any::Any).downcast_ref::<LateralTable>()
}

/// The outer columns `plan` refers to (in expressions and in lateral function arguments), in order
/// of first use.
fn outer_columns(plan: &LogicalPlan) -> datafusion::error::Result<Vec<Column>> {
    let mut found: Vec<Column> = Vec::new();
    let mut note = |expr: &Expr| {
        expr.apply(|e| {
            if let Expr::OuterReferenceColumn(_, column) = e
                && !found.contains(column)
            {
                found.push(column.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map(|_| ())
    };
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| note(e).map(|_| TreeNodeRecursion::Continue))?;
        if let LogicalPlan::TableScan(scan) = node
            && let Some(lateral) = lateral_table(scan)
        {
            for arg in &lateral.args {
                note(arg)?;
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

/// Whether DataFusion's own decorrelation cannot plan this subquery.
fn needs_apply(subquery: &Subquery) -> bool {
    let mut lateral = false;
    let _ = subquery.subquery.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && lateral_table(scan).is_some()
        {
            lateral = true;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if lateral {
        return true;
    }
    if !subquery.subquery.contains_outer_reference() && subquery.outer_ref_columns.is_empty() {
        return false;
    }
    !decorrelated_by_datafusion(&subquery.subquery)
}

/// DataFusion's condition: projections over an aggregate without GROUP BY, below which outer
/// columns appear only in filters, as `inner column = outer column`.
fn decorrelated_by_datafusion(plan: &LogicalPlan) -> bool {
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::Projection(p) if !p.expr.iter().any(Expr::contains_outer) => node = p.input.as_ref(),
            LogicalPlan::SubqueryAlias(a) => node = a.input.as_ref(),
            LogicalPlan::Aggregate(a) if a.group_expr.is_empty() && !a.aggr_expr.iter().any(Expr::contains_outer) => break,
            _ => return false,
        }
    }
    let mut supported = true;
    let _ = node.apply(|n| {
        let correlated_only_by_equality = match n {
            LogicalPlan::Filter(filter) => split_conjunction(&filter.predicate)
                .into_iter()
                .filter(|e| e.contains_outer())
                .all(is_column_equals_outer),
            other => !other.contains_outer_reference(),
        };
        supported &= correlated_only_by_equality;
        Ok(TreeNodeRecursion::Continue)
    });
    supported
}

fn is_column_equals_outer(expr: &Expr) -> bool {
    let inner_column = |e: &Expr| match e {
        Expr::Column(_) => true,
        Expr::Cast(c) => matches!(c.expr.as_ref(), Expr::Column(_)),
        _ => false,
    };
    match expr {
        Expr::BinaryExpr(b) if b.op == Operator::Eq => {
            (inner_column(&b.left) && !b.right.any_column_refs()) || (inner_column(&b.right) && !b.left.any_column_refs())
        }
        _ => false,
    }
}

/// What the subquery's rows make: its one value (NULL for none), whether there are any, or whether
/// they hold the value tested (the function's last argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Scalar,
    Exists { negated: bool },
    In { negated: bool },
}

/// The subquery as a call of `SubqueryApply` on the outer columns it uses.
fn apply(subquery: Subquery, mode: Mode) -> datafusion::error::Result<Expr> {
    apply_with(subquery, mode, None)
}

/// `tested IN (subquery)` as a call of `SubqueryApply` on the outer columns and `tested`.
fn apply_in(subquery: Subquery, tested: Expr, negated: bool) -> datafusion::error::Result<Expr> {
    if subquery.subquery.schema().fields().len() != 1 {
        return Err(Error::syntax("subquery has too many columns").into());
    }
    apply_with(subquery, Mode::In { negated }, Some(tested))
}

fn apply_with(subquery: Subquery, mode: Mode, tested: Option<Expr>) -> datafusion::error::Result<Expr> {
    let plan = subquery.subquery.as_ref().clone();
    let output = match mode {
        Mode::Exists { .. } => Arc::new(Field::new("exists", DataType::Boolean, false)),
        Mode::In { .. } => Arc::new(Field::new("in", DataType::Boolean, true)),
        Mode::Scalar => {
            if plan.schema().fields().len() != 1 {
                return Err(Error::syntax("subquery must return only one column").into());
            }
            plan.schema()
                .fields()
                .first()
                .cloned()
                .ok_or_else(|| Error::internal("a scalar subquery without a column"))?
        }
    };
    let outer = outer_columns(&plan)?;
    let args: Vec<Expr> = outer.iter().map(|c| Expr::Column(c.clone())).chain(tested).collect();
    let signature = match args.len() {
        0 => Signature::nullary(Volatility::Volatile),
        n => Signature::any(n, Volatility::Volatile),
    };
    let function = SubqueryApply {
        signature,
        outer,
        mode,
        output,
        plan,
        cancel: CancellationToken::new(),
    };
    Ok(Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(function)),
        args,
    )))
}

/// The name `SubqueryApply` calls have in plans.
const APPLY_FUNCTION: &str = "correlated_subquery";

/// Whether `plan` runs a subquery row by row: fine for a batch query, meaningless in a streaming job.
pub fn contains_applied_subquery(plan: &LogicalPlan) -> bool {
    let mut found = false;
    visit_applied_subqueries(plan, &mut |_| found = true);
    found
}

/// The cancellation tokens of the subqueries `plan` (analyzed) runs row by row, nested ones too.
/// They run on threads of their own, which dropping the query does not stop: the statement cancels
/// these tokens when it ends (canceled, timed out, client gone), and they stop at once.
pub fn applied_subquery_cancellations(plan: &LogicalPlan) -> Vec<CancellationToken> {
    let mut tokens = Vec::new();
    visit_applied_subqueries(plan, &mut |apply| tokens.push(apply.cancel.clone()));
    tokens
}

fn visit_applied_subqueries(plan: &LogicalPlan, visit: &mut dyn FnMut(&SubqueryApply)) {
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && let Some(apply) = f.func.inner().downcast_ref::<SubqueryApply>()
                {
                    visit(apply);
                    visit_applied_subqueries(&apply.plan, visit);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
}

/// A correlated scalar subquery as a function of the outer columns it uses.
#[derive(Debug)]
struct SubqueryApply {
    /// The subquery, with `OuterReferenceColumn`s for the values of `outer`.
    plan: LogicalPlan,
    outer: Vec<Column>,
    mode: Mode,
    output: FieldRef,
    signature: Signature,
    /// Stops the evaluation (see `applied_subquery_cancellations`).
    cancel: CancellationToken,
}

// DataFusion compares functions to find common subexpressions: two applications of the same
// subquery are the same function, whichever statement's token they carry.
impl PartialEq for SubqueryApply {
    fn eq(&self, other: &Self) -> bool {
        (&self.plan, &self.outer, self.mode, &self.output, &self.signature)
            == (&other.plan, &other.outer, other.mode, &other.output, &other.signature)
    }
}

impl Eq for SubqueryApply {}

impl std::hash::Hash for SubqueryApply {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.plan, &self.outer, self.mode, &self.output, &self.signature).hash(state);
    }
}

impl ScalarUDFImpl for SubqueryApply {
    fn name(&self) -> &str {
        APPLY_FUNCTION
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(self.output.data_type().clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let mut arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(args.number_rows))
            .collect::<datafusion::error::Result<_>>()?;
        // IN: the value tested is the last argument; the subquery depends on the others only.
        let tested = match self.mode {
            Mode::In { .. } => arrays.pop(),
            _ => None,
        };
        let mut keys = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            keys.push(
                arrays
                    .iter()
                    .map(|a| ScalarValue::try_from_array(a, row))
                    .collect::<datafusion::error::Result<Vec<_>>>()?,
            );
        }
        // The subquery runs once per distinct set of outer values.
        let mut index: HashMap<&Vec<ScalarValue>, usize> = HashMap::new();
        let mut distinct: Vec<Vec<ScalarValue>> = Vec::new();
        for key in &keys {
            index.entry(key).or_insert_with(|| {
                distinct.push(key.clone());
                distinct.len() - 1
            });
        }
        let values = self.run(distinct)?;
        if let (Mode::In { negated }, Some(tested)) = (self.mode, tested) {
            let sets = values.iter().map(Members::of).collect::<Result<Vec<_>>>()?;
            let mut column = Vec::with_capacity(keys.len());
            for (row, key) in keys.iter().enumerate() {
                let set = index
                    .get(key)
                    .and_then(|i| sets.get(*i))
                    .ok_or_else(|| Error::internal("subquery rows missing"))?;
                let found = set.contains(ScalarValue::try_from_array(&tested, row)?)?;
                column.push(found.map(|found| found != negated));
            }
            return Ok(ColumnarValue::Array(Arc::new(datafusion::arrow::array::BooleanArray::from(column))));
        }
        let column = keys
            .iter()
            .map(|k| {
                index
                    .get(k)
                    .and_then(|i| values.get(*i))
                    .cloned()
                    .ok_or_else(|| Error::internal("subquery value missing"))
            })
            .collect::<Result<Vec<_>>>()?;
        if column.is_empty() {
            return Ok(ColumnarValue::Array(datafusion::arrow::array::new_empty_array(
                self.output.data_type(),
            )));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(column)?))
    }
}

impl SubqueryApply {
    /// Runs the subquery for each set of outer values. Planning and running are async while a
    /// function is called synchronously, inside the query's own runtime: they run on a thread of
    /// their own with a runtime of their own.
    fn run(&self, keys: Vec<Vec<ScalarValue>>) -> Result<Vec<ScalarValue>> {
        // This worker thread waits for the subquery: on a multi-thread runtime it hands its other
        // tasks to a new worker first, so a long subquery does not stall the server's other
        // connections (two of them stopped it on 2 cores; found by tests/fuzz_sql.rs).
        let multi_thread =
            tokio::runtime::Handle::try_current().is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(|| self.run_on_own_thread(keys))
        } else {
            self.run_on_own_thread(keys)
        }
    }

    fn run_on_own_thread(&self, keys: Vec<Vec<ScalarValue>>) -> Result<Vec<ScalarValue>> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<Vec<ScalarValue>> {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    let state = SessionStateBuilder::new().with_default_features().build();
                    runtime.block_on(async {
                        let mut values = Vec::with_capacity(keys.len());
                        for key in &keys {
                            // DataFusion's scans yield to the runtime now and then (its
                            // cooperative budget), so a canceled subquery stops within a batch.
                            tokio::select! {
                                biased;
                                _ = self.cancel.cancelled() => return Err(Error::canceled()),
                                value = self.evaluate(&state, key) => values.push(value?),
                            }
                        }
                        Ok(values)
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(Error::internal("a correlated subquery panicked")))
        })
    }

    async fn evaluate(&self, state: &SessionState, values: &[ScalarValue]) -> Result<ScalarValue> {
        let plan = bind_outer_values(self.plan.clone(), &self.outer, values, state)?;
        let physical: Arc<dyn ExecutionPlan> = state.create_physical_plan(&plan).await?;
        let batches = collect(physical, state.task_ctx()).await?;
        if let Mode::Exists { negated } = self.mode {
            let any = batches.iter().any(|b| b.num_rows() > 0);
            return Ok(ScalarValue::Boolean(Some(any != negated)));
        }
        if let Mode::In { .. } = self.mode {
            // Every row's value, as one list (`Members::of` reads it).
            let element = self.plan.schema().field(0).data_type().clone();
            let mut rows = Vec::new();
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    rows.push(ScalarValue::try_from_array(batch.column(0), row)?);
                }
            }
            return Ok(ScalarValue::List(ScalarValue::new_list_nullable(&rows, &element)));
        }
        let mut found = None;
        for batch in &batches {
            for row in 0..batch.num_rows() {
                if found.is_some() {
                    return Err(Error::user(
                        crate::error::UserErrorKind::CardinalityViolation,
                        "more than one row returned by a subquery used as an expression",
                    ));
                }
                found = Some(ScalarValue::try_from_array(batch.column(0), row)?);
            }
        }
        match found {
            Some(value) => Ok(value),
            None => Ok(ScalarValue::try_from(self.output.data_type())?),
        }
    }
}

/// The rows of an IN subquery, for looking values up.
struct Members {
    values: std::collections::HashSet<ScalarValue>,
    element: DataType,
    has_null: bool,
    empty: bool,
}

impl Members {
    fn of(rows: &ScalarValue) -> Result<Members> {
        let ScalarValue::List(list) = rows else {
            return Err(Error::internal("an IN subquery's rows are not a list"));
        };
        let element = list.value_type();
        let mut values = std::collections::HashSet::new();
        let mut has_null = false;
        let mut empty = true;
        for row in ScalarValue::convert_array_to_scalar_vec(list.as_ref())?
            .into_iter()
            .flatten()
            .flatten()
        {
            empty = false;
            if row.is_null() {
                has_null = true;
            } else {
                values.insert(row);
            }
        }
        Ok(Members {
            values,
            element,
            has_null,
            empty,
        })
    }

    /// SQL's `value IN (rows)`: true when a row equals it; otherwise NULL when the value or a row
    /// is NULL (unknown), else false. Nothing is in no rows, not even NULL.
    fn contains(&self, value: ScalarValue) -> Result<Option<bool>> {
        if self.empty {
            return Ok(Some(false));
        }
        if value.is_null() {
            return Ok(None);
        }
        let value = value.cast_to(&self.element)?;
        Ok(match (self.values.contains(&value), self.has_null) {
            (true, _) => Some(true),
            (false, true) => None,
            (false, false) => Some(false),
        })
    }
}

/// `plan` with the outer columns replaced by their values, and lateral functions called with them.
fn bind_outer_values(plan: LogicalPlan, outer: &[Column], values: &[ScalarValue], state: &SessionState) -> Result<LogicalPlan> {
    let bind = |expr: Expr| {
        expr.transform_up(|e| match e {
            Expr::OuterReferenceColumn(field, column) => match outer.iter().position(|c| *c == column) {
                Some(i) => Ok(Transformed::yes(Expr::Literal(values[i].clone(), None))),
                None => Ok(Transformed::no(Expr::OuterReferenceColumn(field, column))),
            },
            other => Ok(Transformed::no(other)),
        })
    };
    let bound = plan.transform_up_with_subqueries(|node| {
        let node = match node {
            LogicalPlan::TableScan(scan) if lateral_table(&scan).is_some() => {
                let Some(lateral) = lateral_table(&scan) else {
                    return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
                };
                let args = lateral
                    .args
                    .iter()
                    .map(|a| bind(a.clone()).map(|t| t.data))
                    .collect::<datafusion::error::Result<Vec<_>>>()?;
                let args = literal_args(args)?;
                let provider = lateral.function.call_with_args(TableFunctionArgs::new(&args, state))?;
                Transformed::yes(LogicalPlan::TableScan(
                    TableScanBuilder::new(scan.table_name.clone(), provider_as_source(provider))
                        .with_projection(scan.projection.clone())
                        .with_filters(scan.filters.clone())
                        .with_fetch(scan.fetch)
                        .build()?,
                ))
            }
            other => Transformed::no(other),
        };
        let rewritten = node.transform_data(|n| n.map_expressions(&bind))?;
        if rewritten.transformed {
            rewritten.map_data(|plan| plan.recompute_schema())
        } else {
            Ok(rewritten)
        }
    })?;
    Ok(bound.data)
}

/// Folds arguments whose outer columns are now values into literals, as table functions expect.
fn literal_args(args: Vec<Expr>) -> datafusion::error::Result<Vec<Expr>> {
    let context = SimplifyContext::builder().with_schema(Arc::new(DFSchema::empty())).build();
    let simplifier = ExprSimplifier::new(context);
    args.into_iter().map(|a| simplifier.simplify(a)).collect()
}

/// A set-returning function that may be called with outer columns among its arguments (inside a
/// correlated subquery). Without them it is `inner` itself.
#[derive(Debug)]
pub struct LateralFunction {
    inner: Arc<dyn TableFunctionImpl>,
}

impl LateralFunction {
    pub fn new(inner: Arc<dyn TableFunctionImpl>) -> Self {
        LateralFunction { inner }
    }
}

impl TableFunctionImpl for LateralFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        if !args.exprs().iter().any(Expr::contains_outer) {
            return self.inner.call_with_args(args);
        }
        // The columns do not depend on the values: ask with NULL in place of each outer argument,
        // typed where the argument is an outer column (an array's element type shapes the rows),
        // untyped if the function wants that.
        let probe = |typed: bool| -> Vec<Expr> {
            args.exprs()
                .iter()
                .map(|e| match e {
                    Expr::OuterReferenceColumn(field, _) if typed => {
                        Expr::Literal(ScalarValue::try_from(field.data_type()).unwrap_or(ScalarValue::Null), None)
                    }
                    e if e.contains_outer() => Expr::Literal(ScalarValue::Null, None),
                    e => e.clone(),
                })
                .collect()
        };
        let (typed, untyped) = (probe(true), probe(false));
        let schema = match self.inner.call_with_args(TableFunctionArgs::new(&typed, args.session())) {
            Ok(provider) => provider.schema(),
            Err(_) => self
                .inner
                .call_with_args(TableFunctionArgs::new(&untyped, args.session()))?
                .schema(),
        };
        Ok(Arc::new(LateralTable {
            function: self.inner.clone(),
            args: args.exprs().to_vec(),
            schema,
        }))
    }
}

/// A set-returning function of outer columns: a placeholder, called with the values when the
/// correlated subquery around it runs.
#[derive(Debug)]
pub struct LateralTable {
    function: Arc<dyn TableFunctionImpl>,
    args: Vec<Expr>,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for LateralTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Temporary
    }
    async fn scan(
        &self,
        _state: &dyn DfSession,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Err(Error::unsupported("a set-returning function of another table's column is supported inside a scalar subquery only").into())
    }
}
