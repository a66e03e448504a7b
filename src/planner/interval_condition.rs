//! Recognises an interval join's time bounds in a join's ON condition, as Flink's planner does:
//! conjuncts that compare an event-time column of one side with an event-time column of the
//! other, each shifted by a constant interval (`l.ts BETWEEN r.ts - INTERVAL '10' SECOND AND
//! r.ts`, `l.ts >= r.ts AND l.ts < r.ts + INTERVAL '1' HOUR`). With both a lower and an upper
//! bound on `l.ts - r.ts`, the join needs only a bounded stretch of each side's rows.
//!
//! The bounds only decide how long rows are kept; the whole condition is still evaluated for
//! every candidate pair, so a strict `<` kept as `<=` here costs nothing but a row kept one
//! nanosecond longer.

use std::collections::BTreeSet;

use datafusion::common::DFSchema;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use crate::error::Result;
use crate::graph::TimeBounds;
use crate::planner::window_function::fixed_interval_nanos;

/// Event-time columns of a join's output: `left` indexes the joined schema's first
/// `left_len` columns, `right` the rest.
pub struct TimeAttributes<'a> {
    pub left: &'a BTreeSet<usize>,
    pub right: &'a BTreeSet<usize>,
    pub left_len: usize,
}

/// The interval found: the event-time column of each side (in that side's schema) and the
/// bounds of `left - right`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub time_columns: [usize; 2],
    pub bounds: TimeBounds,
}

/// `Some` when `condition` bounds the difference of one pair of event-time columns on both sides.
pub fn interval_of(condition: &Expr, schema: &DFSchema, times: &TimeAttributes) -> Result<Option<Interval>> {
    let mut found: Option<([usize; 2], Option<i64>, Option<i64>)> = None;
    for conjunct in conjuncts(condition) {
        for (left, op, right) in comparisons(conjunct) {
            let (Some(a), Some(b)) = (shifted_column(left, schema)?, shifted_column(right, schema)?) else {
                continue;
            };
            // `a.col + a.shift op b.col + b.shift`, with a on the left side: left - right op shift.
            let (l, r, op) = if times.left.contains(&a.0) && b.0 >= times.left_len && times.right.contains(&(b.0 - times.left_len)) {
                (a, b, op)
            } else if times.left.contains(&b.0) && a.0 >= times.left_len && times.right.contains(&(a.0 - times.left_len)) {
                (b, a, mirrored(op))
            } else {
                continue;
            };
            let columns = [l.0, r.0 - times.left_len];
            let difference = r.1.saturating_sub(l.1);
            let entry = found.get_or_insert((columns, None, None));
            if entry.0 != columns {
                // Bounds on another pair of time columns stay plain conditions.
                continue;
            }
            match op {
                Operator::Gt | Operator::GtEq => entry.1 = Some(entry.1.map_or(difference, |d| d.max(difference))),
                Operator::Lt | Operator::LtEq => entry.2 = Some(entry.2.map_or(difference, |d| d.min(difference))),
                _ => {}
            }
        }
    }
    Ok(match found {
        Some((time_columns, Some(lower), Some(upper))) => Some(Interval {
            time_columns,
            bounds: TimeBounds { lower, upper },
        }),
        _ => None,
    })
}

fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        other => vec![other],
    }
}

/// The ordering comparisons a conjunct states: `a op b`, a BETWEEN as two.
fn comparisons(expr: &Expr) -> Vec<(&Expr, Operator, &Expr)> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if matches!(op, Operator::Gt | Operator::GtEq | Operator::Lt | Operator::LtEq) => {
            vec![(left.as_ref(), *op, right.as_ref())]
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => vec![
            (expr.as_ref(), Operator::GtEq, low.as_ref()),
            (expr.as_ref(), Operator::LtEq, high.as_ref()),
        ],
        _ => Vec::new(),
    }
}

/// `a op b` as `b mirrored(op) a`.
fn mirrored(op: Operator) -> Operator {
    match op {
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        other => other,
    }
}

/// `column (+|- constant interval)*` as (column index, shift in nanoseconds).
fn shifted_column(expr: &Expr, schema: &DFSchema) -> Result<Option<(usize, i64)>> {
    Ok(match expr {
        Expr::Column(c) => Some((schema.index_of_column(c)?, 0)),
        Expr::Cast(cast) => shifted_column(&cast.expr, schema)?,
        Expr::Alias(alias) => shifted_column(&alias.expr, schema)?,
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: op @ (Operator::Plus | Operator::Minus),
            right,
        }) => match (shifted_column(left, schema)?, interval_nanos(right), interval_nanos(left)) {
            (Some((column, shift)), Some(nanos), _) => Some((
                column,
                if *op == Operator::Plus {
                    shift.saturating_add(nanos)
                } else {
                    shift.saturating_sub(nanos)
                },
            )),
            (None, _, Some(nanos)) if *op == Operator::Plus => shifted_column(right, schema)?.map(|(c, s)| (c, s.saturating_add(nanos))),
            _ => None,
        },
        _ => None,
    })
}

/// A constant interval of fixed length (no months), in nanoseconds.
fn interval_nanos(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) => fixed_interval_nanos(value),
        _ => None,
    }
}
