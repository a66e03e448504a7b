//! Flink's legacy group-window syntax, rewritten to the window table functions before a job is
//! planned:
//!
//! ```sql
//! SELECT k, TUMBLE_START(ts, INTERVAL '10' SECOND), COUNT(*) FROM src GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)
//! -- becomes
//! SELECT k, window_start, COUNT(*) FROM TUMBLE(src, ts, INTERVAL '10' SECOND) AS src GROUP BY k, window_start, window_end
//! ```
//!
//! `TUMBLE(ts, size)`, `HOP(ts, slide, size)` and `SESSION(ts, gap)` in GROUP BY; the auxiliary
//! functions `*_START`, `*_END` and `*_ROWTIME` become the columns `window_start`, `window_end`
//! and `window_time`. A legacy SESSION window is per GROUP BY key in Flink, as Weir's SESSION is.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, ObjectName, ObjectNamePart,
    Query, Select, SelectItem, SetExpr, TableAlias, TableFactor, TableFunctionArgs, VisitMut, VisitorMut, visit_expressions_mut,
};

use crate::error::{Error, Result};
use crate::planner::flink_functions::PROCTIME;
use crate::planner::window_function::{WINDOW_END, WINDOW_START, WINDOW_TIME, WindowFunctionKind};

/// Rewrites every SELECT of `query` (subqueries included) that groups by a legacy group window.
pub fn rewrite_group_windows(query: &mut Query) -> Result<()> {
    match query.visit(&mut GroupWindows) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

struct GroupWindows;

impl VisitorMut for GroupWindows {
    type Break = Error;

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<Error> {
        if let SetExpr::Select(select) = query.body.as_mut()
            && let Err(error) = rewrite_select(select)
        {
            return ControlFlow::Break(error);
        }
        ControlFlow::Continue(())
    }
}

/// The group window of a GROUP BY: its kind, time column and interval arguments.
struct GroupWindow {
    kind: WindowFunctionKind,
    time: Ident,
    intervals: Vec<FunctionArg>,
}

fn rewrite_select(select: &mut Select) -> Result<()> {
    let GroupByExpr::Expressions(group_by, _) = &mut select.group_by else {
        return Ok(());
    };
    let mut windows = group_by.iter().enumerate().filter_map(|(i, e)| group_window(e).map(|w| (i, w)));
    let Some((position, window)) = windows.next() else {
        return Ok(());
    };
    let window = window?;
    if windows.next().is_some() {
        return Err(Error::invalid("a GROUP BY can group by one window only"));
    }
    let uses_rowtime = replace_auxiliary_functions(select, window.kind)?;
    let GroupByExpr::Expressions(group_by, _) = &mut select.group_by else {
        return Err(Error::internal("GROUP BY changed while rewriting its window"));
    };
    let mut columns = vec![Expr::Identifier(Ident::new(WINDOW_START)), Expr::Identifier(Ident::new(WINDOW_END))];
    if uses_rowtime {
        columns.push(Expr::Identifier(Ident::new(WINDOW_TIME)));
    }
    group_by.splice(position..=position, columns);
    let name = window.kind.name().to_ascii_uppercase();
    let [from] = select.from.as_mut_slice() else {
        return Err(Error::unsupported(format!(
            "GROUP BY {name}(...) reads one source in FROM, not several"
        )));
    };
    // Flink's processing-time window: `FROM (SELECT *, PROCTIME() AS p FROM src) B GROUP BY ...,
    // TUMBLE(B.p, size)` windows src's rows by the time they are processed: TUMBLE(src, PROCTIME(), size).
    let mut time_arg = Expr::Identifier(window.time.clone());
    if let TableFactor::Derived { subquery, alias, .. } = &from.relation
        && let Some(mut source) = proctime_subquery(subquery, &window.time)
    {
        if let (TableFactor::Table { alias: source_alias, .. }, Some(alias)) = (&mut source, alias) {
            *source_alias = Some(alias.clone());
        }
        from.relation = source;
        time_arg = Expr::Function(Function {
            name: ObjectName::from(vec![Ident::new(PROCTIME)]),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: None,
                args: Vec::new(),
                clauses: Vec::new(),
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: Vec::new(),
        });
    }
    let TableFactor::Table {
        name: source,
        alias,
        args: None,
        ..
    } = &mut from.relation
    else {
        // Flink's processing-time windows group by a PROCTIME() column a subquery adds (Nexmark q12).
        if let TableFactor::Derived { subquery, .. } = &from.relation
            && super::flink_functions::is_proctime_call_in(&subquery.to_string())
        {
            return Err(Error::unsupported(format!(
                "GROUP BY {name}(...) over a PROCTIME() column of a subquery: the subquery must be SELECT *, PROCTIME() AS <column> FROM <source> (or declare the column AS PROCTIME() in the source)"
            )));
        }
        return Err(Error::unsupported(format!(
            "GROUP BY {name}(...) must read a source directly in FROM, not a subquery or function"
        )));
    };
    if !from.joins.is_empty() {
        return Err(Error::unsupported(format!(
            "GROUP BY {name}(...) over a JOIN is not supported; window each source, then join the results"
        )));
    }
    let Some(ObjectNamePart::Identifier(source_name)) = source.0.last().cloned() else {
        return Err(Error::invalid(format!("GROUP BY {name}(...) needs a source name in FROM")));
    };
    let mut args = vec![
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(source_name.clone()))),
        FunctionArg::Unnamed(FunctionArgExpr::Expr(time_arg)),
    ];
    args.extend(window.intervals);
    // Columns qualified with the source's name or alias still resolve.
    if alias.is_none() {
        *alias = Some(TableAlias {
            explicit: true,
            name: source_name,
            columns: Vec::new(),
            at: None,
        });
    }
    *source = ObjectName::from(vec![Ident::new(name)]);
    if let TableFactor::Table { args: table_args, .. } = &mut from.relation {
        *table_args = Some(TableFunctionArgs { args, settings: None });
    }
    Ok(())
}

/// The source of `subquery` if it is `SELECT *, PROCTIME() AS time FROM source`: the source's rows
/// with their processing time.
fn proctime_subquery(subquery: &Query, time: &Ident) -> Option<TableFactor> {
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return None;
    };
    let plain_query = subquery.with.is_none() && subquery.order_by.is_none() && subquery.limit_clause.is_none();
    let plain_select = select.selection.is_none()
        && select.having.is_none()
        && select.distinct.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(keys, _) if keys.is_empty());
    let [SelectItem::Wildcard(_), SelectItem::ExprWithAlias { expr, alias }] = select.projection.as_slice() else {
        return None;
    };
    let proctime = matches!(expr, Expr::Function(f) if function_name(f).is_some_and(|n| n.eq_ignore_ascii_case(PROCTIME))
        && matches!(&f.args, FunctionArguments::List(l) if l.args.is_empty()));
    let [from] = select.from.as_slice() else {
        return None;
    };
    let reads_source = from.joins.is_empty() && matches!(&from.relation, TableFactor::Table { args: None, .. });
    (plain_query && plain_select && proctime && reads_source && alias.value.eq_ignore_ascii_case(&time.value))
        .then(|| from.relation.clone())
}

/// `expr` as a group window call (`TUMBLE(ts, size)` ...), `None` if it is none.
fn group_window(expr: &Expr) -> Option<Result<GroupWindow>> {
    let Expr::Function(function) = expr else {
        return None;
    };
    let kind = [WindowFunctionKind::Tumble, WindowFunctionKind::Hop, WindowFunctionKind::Session]
        .into_iter()
        .find(|k| function_name(function).is_some_and(|n| n.eq_ignore_ascii_case(k.name())))?;
    Some(window_arguments(kind, function))
}

fn window_arguments(kind: WindowFunctionKind, function: &Function) -> Result<GroupWindow> {
    let usage = || {
        Error::invalid(match kind {
            WindowFunctionKind::Tumble => "group window: use TUMBLE(time_column, INTERVAL 'size' UNIT)",
            WindowFunctionKind::Hop => "group window: use HOP(time_column, INTERVAL 'slide' UNIT, INTERVAL 'size' UNIT)",
            WindowFunctionKind::Session => "group window: use SESSION(time_column, INTERVAL 'gap' UNIT)",
            WindowFunctionKind::Cumulate | WindowFunctionKind::PartitionedSession => {
                "only TUMBLE, HOP and SESSION have a group window form"
            }
        })
    };
    let FunctionArguments::List(list) = &function.args else {
        return Err(usage());
    };
    let expected = if kind == WindowFunctionKind::Hop { 3 } else { 2 };
    if list.args.len() != expected {
        return Err(usage());
    }
    let time = match &list.args[0] {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(ident))) => ident.clone(),
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::CompoundIdentifier(parts))) => parts.last().cloned().ok_or_else(usage)?,
        _ => return Err(usage()),
    };
    Ok(GroupWindow {
        kind,
        time,
        intervals: list.args[1..].to_vec(),
    })
}

fn function_name(function: &Function) -> Option<&str> {
    match function.name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => Some(ident.value.as_str()),
        _ => None,
    }
}

/// Replaces `TUMBLE_START(...)` and its kin in the SELECT list and HAVING by the window's columns;
/// returns whether `*_ROWTIME` was among them (the window_time column is then grouped by too).
fn replace_auxiliary_functions(select: &mut Select, kind: WindowFunctionKind) -> Result<bool> {
    let mut uses_rowtime = false;
    let mut problem = None;
    let mut replace = |expr: &mut Expr| {
        let Expr::Function(function) = expr else {
            return ControlFlow::<()>::Continue(());
        };
        let Some(name) = function_name(function).map(str::to_ascii_lowercase) else {
            return ControlFlow::Continue(());
        };
        let Some((prefix, suffix)) = name.rsplit_once('_') else {
            return ControlFlow::Continue(());
        };
        if !["tumble", "hop", "session"].contains(&prefix) {
            return ControlFlow::Continue(());
        }
        if prefix != kind.name() {
            problem = Some(Error::invalid(format!(
                "{}() does not match the GROUP BY's {} window",
                name.to_ascii_uppercase(),
                kind.name().to_ascii_uppercase()
            )));
            return ControlFlow::Break(());
        }
        let column = match suffix {
            "start" => WINDOW_START,
            "end" => WINDOW_END,
            "rowtime" => {
                uses_rowtime = true;
                WINDOW_TIME
            }
            "proctime" => {
                problem = Some(Error::unsupported(format!(
                    "{}() (processing time) is not supported yet",
                    name.to_ascii_uppercase()
                )));
                return ControlFlow::Break(());
            }
            _ => return ControlFlow::Continue(()),
        };
        *expr = Expr::Identifier(Ident::new(column));
        ControlFlow::Continue(())
    };
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item {
            let _ = visit_expressions_mut(expr, &mut replace);
        }
    }
    if let Some(having) = &mut select.having {
        let _ = visit_expressions_mut(having, &mut replace);
    }
    match problem {
        Some(error) => Err(error),
        None => Ok(uses_rowtime),
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    use super::*;

    fn rewritten(sql: &str) -> Result<String> {
        let mut query = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_query())
            .expect("parse");
        rewrite_group_windows(&mut query)?;
        Ok(query.to_string())
    }

    #[test]
    fn group_windows_become_window_table_functions() {
        assert_eq!(
            rewritten(
                "SELECT MAX(B1.price) AS maxprice, TUMBLE_ROWTIME(B1.dateTime, INTERVAL '10' SECOND) AS dateTime \
                 FROM bid B1 GROUP BY TUMBLE(B1.dateTime, INTERVAL '10' SECOND)"
            )
            .expect("rewrite"),
            "SELECT MAX(B1.price) AS maxprice, window_time AS dateTime FROM TUMBLE(bid, dateTime, INTERVAL '10' SECOND) B1 \
             GROUP BY window_start, window_end, window_time"
        );
        // Inside a subquery, with keys, and unaliased: the source's name still qualifies columns.
        assert_eq!(
            rewritten(
                "SELECT * FROM (SELECT p.id, HOP_START(date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS s FROM person p \
                 GROUP BY p.id, HOP(date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) HAVING HOP_END(date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) > 0) AS q"
            )
            .expect("rewrite"),
            "SELECT * FROM (SELECT p.id, window_start AS s FROM HOP(person, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) p \
             GROUP BY p.id, window_start, window_end HAVING window_end > 0) AS q"
        );
        assert_eq!(
            rewritten("SELECT k, SESSION_END(ts, INTERVAL '5' MINUTE) FROM ev GROUP BY k, SESSION(ts, INTERVAL '5' MINUTE)")
                .expect("rewrite"),
            "SELECT k, window_end FROM SESSION(ev, ts, INTERVAL '5' MINUTE) AS ev GROUP BY k, window_start, window_end"
        );
        // Untouched without a group window.
        assert_eq!(
            rewritten("SELECT k, COUNT(*) FROM ev GROUP BY k").expect("rewrite"),
            "SELECT k, COUNT(*) FROM ev GROUP BY k"
        );
    }

    #[test]
    fn group_windows_refuse_what_they_cannot_mean() {
        let error = |sql: &str| rewritten(sql).expect_err(sql).to_string();
        assert!(error("SELECT COUNT(*) FROM a JOIN b ON a.k = b.k GROUP BY TUMBLE(a.ts, INTERVAL '1' SECOND)").contains("JOIN"));
        assert!(
            error("SELECT HOP_START(ts, INTERVAL '1' SECOND) FROM ev GROUP BY TUMBLE(ts, INTERVAL '1' SECOND)").contains("does not match")
        );
        assert!(
            error("SELECT TUMBLE_PROCTIME(ts, INTERVAL '1' SECOND) FROM ev GROUP BY TUMBLE(ts, INTERVAL '1' SECOND)")
                .contains("processing time")
        );
        assert!(error("SELECT COUNT(*) FROM ev GROUP BY TUMBLE(ts)").contains("TUMBLE(time_column"));
    }
}
