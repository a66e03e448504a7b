//! Result column names as Postgres gives them. DataFusion names an unnamed select item by its
//! expression (`count(*)`, `Int64(1)`); clients show these names and ORMs and pandas key rows by
//! them, so a query's columns are named as Postgres names them (its `FigureColname`): a column
//! reference by the column, a function call by the function, a cast by its operand (or, for a
//! literal, by the type), CASE as `case`, anything else `?column?`.
//!
//! Postgres allows two result columns of one name (`SELECT count(*), count(k)`); DataFusion does
//! not, so such an item is planned under a placeholder name and renamed in the result.
//!
//! Subqueries and CTEs are named the same way, so an outer query can refer to their columns by
//! Postgres' names (`WITH w AS (SELECT k, count(1) FROM t GROUP BY k) SELECT k FROM w ORDER BY
//! count`); there an item is named only when the name is its own in that select list.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    CastKind, DataType as SqlType, Expr, Ident, Query, Select, SelectItem, SetExpr, Statement, Value, VisitMut, VisitorMut,
};

/// The renames to apply to a planned query's result columns: (placeholder, Postgres name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnRenames(Vec<(String, String)>);

impl ColumnRenames {
    /// The name a result column planned as `planned` has.
    pub fn name_of<'a>(&'a self, planned: &'a str) -> &'a str {
        self.0
            .iter()
            .find(|(placeholder, _)| placeholder == planned)
            .map_or(planned, |(_, name)| name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Names the unnamed items of the query's result as Postgres would, with aliases; returns the
/// renames still to apply to the result.
pub fn name_columns_as_postgres(statement: &mut Statement) -> ColumnRenames {
    let Statement::Query(query) = statement else {
        return ColumnRenames::default();
    };
    name_select_items(query);
    let Some(items) = result_items(query) else {
        return ColumnRenames::default();
    };
    // Names the result has before any alias is added: explicit aliases and plain columns.
    let mut taken: HashSet<String> = items
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => Some(ident_name(ident)),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts.last().map(ident_name),
            _ => None,
        })
        .collect();
    let mut renames = Vec::new();
    for item in items.iter_mut() {
        if let SelectItem::ExprWithAlias { expr, .. } = item {
            *expr = as_int4_if_small(expr);
        }
    }
    for (position, item) in items.iter_mut().enumerate() {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            continue;
        }
        let name = column_name(expr).unwrap_or_else(|| "?column?".to_string());
        let expr = as_int4_if_small(expr);
        let alias = if taken.insert(name.clone()) {
            name
        } else {
            let placeholder = format!("__weir_column_{position}");
            renames.push((placeholder.clone(), name));
            placeholder
        };
        *item = SelectItem::ExprWithAlias {
            expr: expr.clone(),
            alias: Ident::with_quote('"', alias),
        };
    }
    ColumnRenames(renames)
}

/// Names each unnamed item of every select list in `node` whose Postgres name no other item there
/// has. `planner::postgres_syntax` calls it before it rewrites Postgres' spellings, so a rewritten
/// expression keeps the name of what the client wrote (`prorettype::regtype::text` is `prorettype`).
pub fn name_select_items<V: VisitMut>(node: &mut V) {
    let _ = node.visit(&mut NameSelectItems);
}

struct NameSelectItems;

impl VisitorMut for NameSelectItems {
    type Break = ();

    fn post_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        let names: Vec<Option<String>> = select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
                SelectItem::UnnamedExpr(expr) => column_name(expr),
                _ => None,
            })
            .collect();
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for name in names.iter().flatten() {
            *uses.entry(name.as_str()).or_default() += 1;
        }
        for (item, name) in select.projection.iter_mut().zip(&names) {
            if let (SelectItem::UnnamedExpr(expr), Some(name)) = (&*item, name)
                && !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                && uses.get(name.as_str()) == Some(&1)
            {
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::with_quote('"', name.clone()),
                };
            }
        }
        ControlFlow::Continue(())
    }
}

/// An integer literal as a result column is `integer` in Postgres when it fits (`SELECT 1`, the
/// health check every pool sends, reads as int4); DataFusion types every integer literal BIGINT.
fn as_int4_if_small(expr: &Expr) -> Expr {
    let digits = match expr {
        Expr::Value(v) => &v.value,
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr: inner,
        } => match inner.as_ref() {
            Expr::Value(v) => &v.value,
            _ => return expr.clone(),
        },
        _ => return expr.clone(),
    };
    let fits = matches!(digits, Value::Number(n, _) if n.parse::<i32>().is_ok());
    match fits {
        true => Expr::Cast {
            kind: CastKind::Cast,
            expr: Box::new(expr.clone()),
            data_type: SqlType::Integer(None),
            array: false,
            format: None,
        },
        false => expr.clone(),
    }
}

/// The select list that names the query's result: the first SELECT of a set operation.
fn result_items(query: &mut Query) -> Option<&mut Vec<SelectItem>> {
    let mut body = query.body.as_mut();
    loop {
        match body {
            SetExpr::Select(select) => return Some(&mut select.projection),
            SetExpr::SetOperation { left, .. } => body = left.as_mut(),
            SetExpr::Query(inner) => body = inner.body.as_mut(),
            _ => return None,
        }
    }
}

fn ident_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

/// Postgres' name for an expression; `None` where it says `?column?`.
fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident_name(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_name),
        Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => column_name(inner),
        Expr::Function(function) => function.name.0.last()?.as_ident().map(ident_name),
        Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr,
            data_type,
            ..
        } => column_name(expr).or_else(|| Some(type_name(data_type))),
        Expr::Case { .. } => Some("case".to_string()),
        Expr::Exists { .. } => Some("exists".to_string()),
        Expr::Array(_) => Some("array".to_string()),
        Expr::Extract { .. } => Some("extract".to_string()),
        Expr::Substring { .. } => Some("substring".to_string()),
        Expr::Position { .. } => Some("position".to_string()),
        Expr::Trim { .. } => Some("btrim".to_string()),
        Expr::Ceil { .. } => Some("ceil".to_string()),
        Expr::Floor { .. } => Some("floor".to_string()),
        Expr::Overlay { .. } => Some("overlay".to_string()),
        Expr::AtTimeZone { .. } => Some("timezone".to_string()),
        Expr::Interval(_) => Some("interval".to_string()),
        Expr::TypedString(typed) => Some(type_name(&typed.data_type)),
        Expr::Value(v) if matches!(v.value, Value::Boolean(_)) => Some("bool".to_string()),
        _ => None,
    }
}

/// The name Postgres gives a type in a column name (`int8` for BIGINT).
fn type_name(data_type: &SqlType) -> String {
    match data_type {
        SqlType::SmallInt(_) | SqlType::Int2(_) => "int2".to_string(),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => "int4".to_string(),
        SqlType::BigInt(_) | SqlType::Int8(_) => "int8".to_string(),
        SqlType::Real | SqlType::Float4 => "float4".to_string(),
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 => "float8".to_string(),
        SqlType::Boolean | SqlType::Bool => "bool".to_string(),
        SqlType::Varchar(_) | SqlType::CharacterVarying(_) => "varchar".to_string(),
        SqlType::Char(_) | SqlType::Character(_) => "bpchar".to_string(),
        SqlType::Numeric(_) | SqlType::Decimal(_) => "numeric".to_string(),
        SqlType::Timestamp(_, sqlparser::ast::TimezoneInfo::Tz | sqlparser::ast::TimezoneInfo::WithTimeZone) => "timestamptz".to_string(),
        SqlType::Timestamp(..) => "timestamp".to_string(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn named(sql: &str) -> (String, ColumnRenames) {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses").remove(0);
        let renames = name_columns_as_postgres(&mut statement);
        (statement.to_string(), renames)
    }

    #[test]
    fn unnamed_items_are_named_as_postgres_names_them() {
        let (sql, renames) =
            named("SELECT 1, count(*), k, t.v, x::text, 1::int4, CASE WHEN a THEN 1 END, true, 'a' || k AS s, -2 AS two FROM t");
        assert_eq!(
            sql,
            "SELECT CAST(1 AS INTEGER) AS \"?column?\", count(*) AS \"count\", k, t.v, x::TEXT AS \"x\", 1::INT4 AS \"int4\", \
             CASE WHEN a THEN 1 END AS \"case\", true AS \"bool\", 'a' || k AS s, CAST(-2 AS INTEGER) AS two FROM t"
        );
        assert!(renames.is_empty());
    }

    #[test]
    fn subqueries_and_ctes_name_their_columns_too() {
        let (sql, _) =
            named("WITH w AS (SELECT k, count(1) FROM t GROUP BY k) SELECT x.count FROM (SELECT count(*), sum(v), sum(w) FROM w) x");
        assert_eq!(
            sql,
            "WITH w AS (SELECT k, count(1) AS \"count\" FROM t GROUP BY k) \
             SELECT x.count FROM (SELECT count(*) AS \"count\", sum(v), sum(w) FROM w) x"
        );
    }

    #[test]
    fn repeated_names_are_planned_apart_and_renamed_in_the_result() {
        let (sql, renames) = named("SELECT CAST(id AS VARCHAR), id, count(*), count(k) FROM t UNION ALL SELECT 1, 2, 3, 4");
        assert_eq!(
            sql,
            "SELECT CAST(id AS VARCHAR) AS \"__weir_column_0\", id, count(*) AS \"count\", count(k) AS \"__weir_column_3\" FROM t \
             UNION ALL SELECT 1, 2, 3, 4"
        );
        assert_eq!(renames.name_of("__weir_column_0"), "id");
        assert_eq!(renames.name_of("__weir_column_3"), "count");
        assert_eq!(renames.name_of("id"), "id");
    }
}
