//! Lowering of an equi-join: a regular join, an interval join (time bounds between the inputs'
//! event times) or a window join (both inputs windowed alike and their windows equated).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::{DFSchema, NullEquality};
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, Join, JoinType};

use super::lookup_join::lookup_side;
use super::{Lowering, Stream, WindowColumns, physical, strip_alias};
use crate::error::{Error, Result};
use crate::graph::{
    ChangelogMode, Edge, EdgeKind, IntervalJoinSpec, JoinKind, JoinSpec, OperatorSpec, WindowBound, WindowJoinSpec, WindowKind,
};
use crate::planner::interval_condition::{Interval, TimeAttributes, interval_of};

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
        (None, None) => return attached_window_join(join, left, right),
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
    if !left_window.deferred_filters.is_empty() || !right_window.deferred_filters.is_empty() {
        return Err(Error::unsupported(
            "filtering on window_start / window_end before a window join is not supported; filter after the join",
        ));
    }
    if !left_window.computed.is_empty() || !right_window.computed.is_empty() {
        return Err(Error::unsupported(
            "computing on window_start / window_end before a window join is not supported; compute after the join",
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

/// A join of two windowed results (window aggregates' rows, each carrying its window's end in
/// a column) whose ON condition equates those ends: a window join over the windows the rows are
/// attached to. Each window's rows arrive before the watermark passes its end, so joining them
/// once when it closes gives the regular join's rows, append-only, and frees them (Nexmark q5).
/// `None` when the ends are not equated: a regular join.
fn attached_window_join<'a>(join: &'a Join, left: &Stream, right: &Stream) -> Result<Option<WindowJoin<'a>>> {
    let (Some(left_end), Some(right_end)) = (left.window_end, right.window_end) else {
        return Ok(None);
    };
    if left.changelog != ChangelogMode::AppendOnly || right.changelog != ChangelogMode::AppendOnly {
        return Ok(None);
    }
    let column = |expr: &Expr, schema: &DFSchema| -> Result<Option<usize>> {
        Ok(match strip_alias(expr) {
            Expr::Column(c) => Some(schema.index_of_column(c)?),
            _ => None,
        })
    };
    let mut ends_equated = false;
    let mut keys = Vec::new();
    for pair in &join.on {
        if column(&pair.0, &left.schema)? == Some(left_end) && column(&pair.1, &right.schema)? == Some(right_end) {
            ends_equated = true;
        } else {
            keys.push(pair);
        }
    }
    Ok(ends_equated.then(|| WindowJoin {
        window: WindowKind::Attached,
        columns: [vec![(left_end, WindowBound::End)], vec![(right_end, WindowBound::End)]],
        keys,
    }))
}

impl Lowering<'_> {
    /// An equi-join: both inputs hashed by their join keys into one two-input operator, a regular
    /// join or, with time bounds between the inputs' event times, an interval join.
    pub(super) fn join(&mut self, join: &Join) -> Result<Stream> {
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
            keys = [vec![super::constant_key()], vec![super::constant_key()]];
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
            window_end: None,
        })
    }
}
