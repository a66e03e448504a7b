//! Lowering of Flink's Top-N and deduplication: a filter bounding `ROW_NUMBER() OVER (PARTITION
//! BY ... ORDER BY ...)` from above, directly over the window that computes it. DataFusion plans
//! `SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (...) AS rn FROM t) WHERE rn <= N` as
//! `Filter(rn <= N, Window(row_number))`, with a projection of columns in between when the rank
//! is not selected. Conditions of the filter on other columns apply to the ranked rows afterwards,
//! as the SQL says. Over a window aggregate's rows (or a window table function's), partitioned by
//! the window's end, it is Flink's window Top-N: append-only, each window ranked once when the
//! watermark closes it. Over updating rows it keeps every row of a partition (retracting).

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{BinaryExpr, Expr, Filter, LogicalPlan, Operator, Projection, WindowFunctionDefinition};
use datafusion::physical_expr::expressions::Column as ColumnExpr;

use super::{Lowering, Stream, physical, strip_alias};
use crate::error::{Error, Result};
use crate::graph::{ChangelogMode, EdgeKind, OperatorSpec, PhysicalExprRef, RankTies, TopNSpec};

/// The ranks a filter keeps, 1-based and inclusive; `end` is `None` while unbounded.
struct RankBounds {
    start: u64,
    end: Option<u64>,
}

impl RankBounds {
    /// Narrows the bounds by `rank op value`.
    fn apply(&mut self, op: Operator, value: i64) -> Result<()> {
        let at_most = |end: i64| u64::try_from(end).unwrap_or(0);
        let at_least = |start: i64| u64::try_from(start).unwrap_or(0).max(1);
        match op {
            Operator::LtEq => self.narrow_end(at_most(value)),
            Operator::Lt => self.narrow_end(at_most(value.saturating_sub(1))),
            Operator::GtEq => self.start = self.start.max(at_least(value)),
            Operator::Gt => self.start = self.start.max(at_least(value.saturating_add(1))),
            Operator::Eq => {
                self.narrow_end(at_most(value));
                self.start = self.start.max(at_least(value));
            }
            other => {
                return Err(Error::unsupported(format!(
                    "a ROW_NUMBER() rank compared with `{other}` is not supported; bound it with <=, <, =, >= or >"
                )));
            }
        }
        Ok(())
    }

    fn narrow_end(&mut self, end: u64) {
        self.end = Some(self.end.map_or(end, |e| e.min(end)));
    }
}

/// `value` as an integer, for a rank bound.
fn rank_literal(expr: &Expr) -> Option<i64> {
    match strip_cast(expr) {
        Expr::Literal(value, _) => match value.cast_to(&datafusion::arrow::datatypes::DataType::Int64).ok()? {
            ScalarValue::Int64(Some(v)) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

fn strip_cast(expr: &Expr) -> &Expr {
    match expr {
        Expr::Cast(cast) => strip_cast(&cast.expr),
        Expr::TryCast(cast) => strip_cast(&cast.expr),
        other => other,
    }
}

impl Lowering<'_> {
    /// `Filter(rank bound, Window(ROW_NUMBER() ...))` as a `TopN` operator; `None` when `filter`
    /// is not over a window function.
    pub(super) fn top_n(&mut self, filter: &Filter) -> Result<Option<Stream>> {
        // DataFusion prunes columns between the filter and the window with projections.
        let mut projections: Vec<&Projection> = Vec::new();
        let mut plan = filter.input.as_ref();
        let window = loop {
            match plan {
                LogicalPlan::Window(window) => break window,
                LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(strip_alias(e), Expr::Column(_))) => {
                    projections.push(p);
                    plan = &p.input;
                }
                _ => return Ok(None),
            }
        };
        // Where the rank column is in the filter's input.
        let mut rank_column = Some(window.input.schema().fields().len());
        for projection in projections.iter().rev() {
            let from = projection.input.schema();
            rank_column = rank_column.and_then(|rank| {
                projection
                    .expr
                    .iter()
                    .position(|e| matches!(strip_alias(e), Expr::Column(c) if from.index_of_column(c).ok() == Some(rank)))
            });
        }
        let Some(rank_column) = rank_column else { return Ok(None) };
        let filtered_schema = filter.input.schema();
        let [window_expr] = window.window_expr.as_slice() else {
            return Err(Error::unsupported(
                "several window functions (OVER) in one query are not supported in a job yet",
            ));
        };
        let Expr::WindowFunction(function) = strip_alias(window_expr) else {
            return Err(Error::internal(format!("`{window_expr}` in a window node is no window function")));
        };
        let name = match &function.fun {
            // A filter over OVER aggregations: lowered as a filter over an OverAggregate.
            WindowFunctionDefinition::AggregateUDF(_) => return Ok(None),
            WindowFunctionDefinition::WindowUDF(udf) if matches!(udf.name(), "first_value" | "last_value") => return Ok(None),
            WindowFunctionDefinition::WindowUDF(udf) => udf.name().to_ascii_lowercase(),
        };
        if name != "row_number" {
            return Err(Error::unsupported(format!(
                "{name}() OVER is not supported in a job yet; Top-N and deduplication use ROW_NUMBER()"
            )));
        }
        let input_schema = window.input.schema();
        let is_rank = |expr: &Expr| -> Result<bool> {
            Ok(match strip_cast(expr) {
                Expr::Column(c) => filtered_schema.index_of_column(c)? == rank_column,
                _ => false,
            })
        };
        // The filter's conditions on the rank bound it; the others filter the ranked rows.
        let mut bounds = RankBounds { start: 1, end: None };
        let mut others = Vec::new();
        for condition in split_conjunction(&filter.predicate) {
            let bound = match condition {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_rank(left)? => rank_literal(right).map(|v| (*op, v)),
                Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_rank(right)? => {
                    rank_literal(left).and_then(|v| op.swap().map(|op| (op, v)))
                }
                _ => None,
            };
            match bound {
                Some((op, value)) => bounds.apply(op, value)?,
                None if super::column_indices(condition, filtered_schema)?.contains(&rank_column) => {
                    return Err(Error::unsupported(format!(
                        "`{condition}` is not supported on a ROW_NUMBER() rank; bound it by a constant (rn <= 10)"
                    )));
                }
                None => others.push(condition.clone()),
            }
        }
        let Some(end) = bounds.end else {
            return Err(Error::unsupported(
                "ROW_NUMBER() OVER without an upper bound on the rank (WHERE rn <= N) is not supported in a job: \
                 every row of a partition would be ranked again by each new one",
            ));
        };
        if bounds.start > end {
            return Err(Error::invalid(format!(
                "the rank bounds keep no row (rank {} to {end})",
                bounds.start
            )));
        }
        let params = &function.params;
        let partition_columns = params
            .partition_by
            .iter()
            .map(|e| match strip_alias(e) {
                Expr::Column(c) => Ok(input_schema.index_of_column(c)?),
                other => Err(Error::unsupported(format!(
                    "PARTITION BY `{other}` is not supported in a job yet; partition by columns (compute the expression in a subquery)"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        if params.order_by.is_empty() {
            return Err(Error::unsupported(
                "ROW_NUMBER() OVER needs an ORDER BY in a job (Flink's Top-N does too)",
            ));
        }
        let order = params
            .order_by
            .iter()
            .map(|sort| match strip_alias(&sort.expr) {
                Expr::Column(c) => Ok((
                    input_schema.index_of_column(c)?,
                    SortOptions {
                        descending: !sort.asc,
                        nulls_first: sort.nulls_first,
                    },
                )),
                other => Err(Error::unsupported(format!(
                    "ORDER BY `{other}` in OVER is not supported in a job yet; order by columns (compute the expression in a subquery)"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;

        // Over a window table function's rows: Flink's window Top-N (or deduplication) when
        // partitioned by the window.
        let lowered = self.lower(&window.input)?;
        let input = self.window_rows(lowered)?;
        // Over rows that update or delete earlier ones (an updating aggregate, a regular join)
        // every row of a partition is kept (Flink's retractable Top-N).
        let retracting = input.changelog != ChangelogMode::AppendOnly;
        // Deduplication keeping the last row (rank 1 by event time, latest first): of two rows with
        // the same event time the later one wins, as in Flink.
        let ties = match order.as_slice() {
            [(column, options)] if bounds.start == 1 && end == 1 && options.descending && input.rowtime.contains(column) => {
                RankTies::LastArrived
            }
            _ => RankTies::FirstArrived,
        };
        // Partitioned by a window aggregate's window end, each window is ranked once, when it closes.
        let window_end = input.window_end.filter(|c| partition_columns.contains(c) && !retracting);
        // Without PARTITION BY all rows go to one subtask under a constant key (the operator
        // keys its state by the same constant).
        let hash: Vec<PhysicalExprRef> = match partition_columns.is_empty() {
            true => vec![super::constant_key()],
            false => partition_columns
                .iter()
                .map(|c| Arc::new(ColumnExpr::new(input_schema.field(*c).name(), *c)) as PhysicalExprRef)
                .collect(),
        };
        let kind = if window_end.is_some() { "window top-n" } else { "top-n" };
        self.uid_basis = Some(format!("{kind} {window_expr} ranks {}..={end}", bounds.start));
        let op = self.add(
            OperatorSpec::TopN(TopNSpec {
                partition_columns,
                order,
                start: bounds.start,
                end,
                ties,
                window_end,
                retracting,
            }),
            &window.schema,
            Some((input.op, EdgeKind::Hash(hash))),
        );
        let mut ranked = Stream {
            op,
            schema: Arc::clone(&window.schema),
            window: None,
            changelog: if window_end.is_some() {
                ChangelogMode::AppendOnly
            } else {
                ChangelogMode::Retract
            },
            upsert_from: None,
            rowtime: input.rowtime,
            window_end,
        };
        for projection in projections.iter().rev() {
            let exprs = projection
                .expr
                .iter()
                .map(|e| physical(e, &ranked.schema))
                .collect::<Result<Vec<_>>>()?;
            let (rowtime, window_end) = ranked.time_columns_after(&projection.expr)?;
            ranked.op = self.add(
                OperatorSpec::Project { exprs },
                &projection.schema,
                Some((ranked.op, EdgeKind::Forward)),
            );
            ranked.schema = Arc::clone(&projection.schema);
            ranked.rowtime = rowtime;
            ranked.window_end = window_end;
        }
        if let Some(rest) = conjunction(others) {
            let predicate = physical(&rest, &ranked.schema)?;
            ranked.op = self.add(
                OperatorSpec::Filter { predicate },
                &ranked.schema,
                Some((ranked.op, EdgeKind::Forward)),
            );
        }
        Ok(Some(ranked))
    }
}
