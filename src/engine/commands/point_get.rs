//! The serving fast path: `SELECT columns FROM table WHERE <every primary key column> = value`
//! on a result table is answered by one table-store get, without DataFusion. Planning a query
//! costs a few hundred microseconds, the get a few; a dashboard or service reading results by key
//! sends mostly this query (RisingWave answers it the same way, with a point get).
//!
//! Only the plainest form is taken: one stored table, plain columns or `*` (optionally renamed),
//! a conjunction of key equalities with literals or `$n` parameters that convert to the key types
//! without loss. Anything else, including every statement that would be an error, goes through
//! DataFusion as before, so answers, column names and errors stay the same.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Ident, ObjectNamePart, Query, Select, SelectItem, SetExpr, Statement, TableFactor, UnaryOperator,
    Value, WildcardAdditionalOptions,
};

use crate::catalog::{TableConnector, TableDef, schema_of};
use crate::connectors::table_store::encode_key_prefix;
use crate::engine::session::{Output, Session};
use crate::error::Result;
use crate::planner::statement::normalize;

/// A recognised point lookup: the table, the output columns and the key's values.
pub(crate) struct PointGet {
    table: TableDef,
    /// (index into the table's columns, output name).
    columns: Vec<(usize, String)>,
    /// One per primary key column, in key order.
    key: Vec<KeyValue>,
}

/// The value a key column is compared with.
enum KeyValue {
    Literal(ScalarValue),
    /// `$n`, numbered from 1.
    Parameter(usize),
}

impl PointGet {
    /// The lookup `statement` is, if it is one this path answers exactly as DataFusion would.
    pub(crate) fn recognize(session: &Session, statement: &Statement) -> Result<Option<PointGet>> {
        let Statement::Query(query) = statement else {
            return Ok(None);
        };
        let Some((select, table_name, alias)) = plain_select(query) else {
            return Ok(None);
        };
        let table = {
            let catalog = session.db.catalog()?;
            match catalog.tables.get(&table_name) {
                Some(table) if table.connector == TableConnector::Stored && !table.primary_key.is_empty() => table.clone(),
                _ => return Ok(None),
            }
        };
        let schema = schema_of(&table.columns)?;
        let qualifier = alias.unwrap_or(table_name);
        let column_of = |expr: &Expr| -> Option<usize> {
            let name = match expr {
                Expr::Identifier(column) => normalize(column),
                Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                    [table, column] if normalize(table) == qualifier => normalize(column),
                    _ => return None,
                },
                _ => return None,
            };
            schema.index_of(&name).ok()
        };

        let mut columns = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(options) if plain_wildcard(options) => {
                    columns.extend(schema.fields().iter().enumerate().map(|(i, f)| (i, f.name().clone())));
                }
                SelectItem::UnnamedExpr(expr) => match column_of(expr) {
                    Some(i) => columns.push((i, schema.field(i).name().clone())),
                    None => return Ok(None),
                },
                SelectItem::ExprWithAlias { expr, alias } => match column_of(expr) {
                    Some(i) => columns.push((i, normalize(alias))),
                    None => return Ok(None),
                },
                _ => return Ok(None),
            }
        }
        // DataFusion refuses two output columns of one name.
        let mut names: Vec<&str> = columns.iter().map(|(_, n)| n.as_str()).collect();
        names.sort_unstable();
        if columns.is_empty() || names.windows(2).any(|w| w[0] == w[1]) {
            return Ok(None);
        }

        let mut equalities = Vec::new();
        if !conjuncts(select.selection.as_ref(), &mut equalities) {
            return Ok(None);
        }
        let mut key: Vec<Option<KeyValue>> = table.primary_key.iter().map(|_| None).collect();
        for (left, right) in equalities {
            let (column, value) = match (column_of(left), column_of(right)) {
                (Some(c), None) => (c, right),
                (None, Some(c)) => (c, left),
                _ => return Ok(None),
            };
            let name = schema.field(column).name();
            let Some(position) = table.primary_key.iter().position(|k| k == name) else {
                return Ok(None);
            };
            let Some(value) = key_value(value, schema.field(column).data_type()) else {
                return Ok(None);
            };
            if key[position].replace(value).is_some() {
                return Ok(None);
            }
        }
        let Some(key) = key.into_iter().collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        Ok(Some(PointGet { table, columns, key }))
    }

    /// The types of the `$n` parameters, in order; `None` when they are not numbered 1 to n.
    pub(crate) fn parameter_types(&self) -> Result<Option<Vec<DataType>>> {
        let schema = schema_of(&self.table.columns)?;
        let mut types: Vec<(usize, DataType)> = Vec::new();
        for (name, value) in self.table.primary_key.iter().zip(&self.key) {
            if let KeyValue::Parameter(n) = value {
                types.push((*n, schema.field_with_name(name)?.data_type().clone()));
            }
        }
        types.sort_by_key(|(n, _)| *n);
        let numbered = types.iter().enumerate().all(|(i, (n, _))| *n == i + 1);
        Ok(numbered.then(|| types.into_iter().map(|(_, t)| t).collect()))
    }

    /// The result's columns.
    pub(crate) fn schema(&self) -> Result<SchemaRef> {
        let table = schema_of(&self.table.columns)?;
        Ok(Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|(i, name)| {
                    let field = table.field(*i);
                    Field::new(name, field.data_type().clone(), field.is_nullable())
                })
                .collect::<Vec<_>>(),
        )))
    }

    /// Reads the row. `None` when a parameter's value does not convert to its key column's type
    /// without loss: DataFusion then answers (or refuses) as for any query.
    pub(crate) fn run(&self, session: &Session, params: &[ScalarValue]) -> Result<Option<Output>> {
        let table_schema = schema_of(&self.table.columns)?;
        let mut values = Vec::with_capacity(self.key.len());
        for (name, value) in self.table.primary_key.iter().zip(&self.key) {
            let data_type = table_schema.field_with_name(name)?.data_type();
            let value = match value {
                KeyValue::Literal(v) => Some(v.clone()),
                KeyValue::Parameter(n) => params.get(n - 1).and_then(|p| lossless_cast(p, data_type)),
            };
            match value {
                Some(v) => values.push(v),
                None => return Ok(None),
            }
        }
        let key = encode_key_prefix(&self.table, &values)?;
        let schema = self.schema()?;
        let batch = match session.db.table_store().get(&self.table, &key)? {
            Some(row) => RecordBatch::try_new(schema.clone(), self.columns.iter().map(|(i, _)| row.column(*i).clone()).collect())?,
            None => RecordBatch::new_empty(schema.clone()),
        };
        Ok(Some(Output::rows(schema, batch)))
    }
}

/// The SELECT of `query`, its one table's name and alias, when the query has no other clause
/// than a projection and a WHERE.
fn plain_select(query: &Query) -> Option<(&Select, String, Option<String>)> {
    let plain_query = query.with.is_none()
        && query.order_by.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && query.locks.is_empty()
        && query.for_clause.is_none()
        && query.settings.is_none()
        && query.format_clause.is_none()
        && query.pipe_operators.is_empty();
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain_select = plain_query
        && select.distinct.is_none()
        && select.top.is_none()
        && select.exclude.is_none()
        && select.into.is_none()
        && select.lateral_views.is_empty()
        && select.prewhere.is_none()
        && select.connect_by.is_empty()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && select.cluster_by.is_empty()
        && select.distribute_by.is_empty()
        && select.sort_by.is_empty()
        && select.having.is_none()
        && select.named_window.is_empty()
        && select.qualify.is_none()
        && select.value_table_mode.is_none()
        && select.from.len() == 1
        && select.from[0].joins.is_empty();
    if !plain_select {
        return None;
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        with_hints,
        version: None,
        with_ordinality: false,
        partitions,
        json_path: None,
        sample: None,
        index_hints,
    } = &select.from[0].relation
    else {
        return None;
    };
    if !with_hints.is_empty() || !partitions.is_empty() || !index_hints.is_empty() {
        return None;
    }
    let parts: Vec<&Ident> = name.0.iter().map(ObjectNamePart::as_ident).collect::<Option<_>>()?;
    let table = match parts.as_slice() {
        [table] => normalize(table),
        [schema, table] if normalize(schema) == "public" => normalize(table),
        _ => return None,
    };
    let alias = match alias {
        Some(alias) if alias.columns.is_empty() && alias.at.is_none() => Some(normalize(&alias.name)),
        Some(_) => return None,
        None => None,
    };
    Some((select, table, alias))
}

/// `*` alone, without a dialect's EXCLUDE, EXCEPT, REPLACE and the like.
fn plain_wildcard(options: &WildcardAdditionalOptions) -> bool {
    options.opt_ilike.is_none()
        && options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_rename.is_none()
        && options.opt_alias.is_none()
}

/// Collects the `a = b` terms of a conjunction; false when it holds anything else.
fn conjuncts<'a>(expr: Option<&'a Expr>, out: &mut Vec<(&'a Expr, &'a Expr)>) -> bool {
    match expr {
        Some(Expr::Nested(inner)) => conjuncts(Some(inner), out),
        Some(Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        }) => conjuncts(Some(left), out) && conjuncts(Some(right), out),
        Some(Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        }) => {
            out.push((left, right));
            true
        }
        _ => false,
    }
}

/// A literal or parameter compared with a key column of `data_type`. Numbers go to integer key
/// columns, strings to text key columns; only when the value is the column's exactly.
fn key_value(expr: &Expr, data_type: &DataType) -> Option<KeyValue> {
    let (text, negative) = match expr {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, false) => (n.as_str(), true),
                _ => return None,
            },
            _ => return None,
        },
        Expr::Value(v) => match &v.value {
            Value::Number(n, false) if data_type.is_integer() => (n.as_str(), false),
            Value::SingleQuotedString(s) if matches!(data_type, DataType::Utf8) => {
                return Some(KeyValue::Literal(ScalarValue::Utf8(Some(s.clone()))));
            }
            Value::Placeholder(p) => {
                let n: usize = p.strip_prefix('$')?.parse().ok()?;
                return (n >= 1).then_some(KeyValue::Parameter(n));
            }
            _ => return None,
        },
        _ => return None,
    };
    if !data_type.is_integer() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let text = if negative { format!("-{text}") } else { text.to_string() };
    let value = ScalarValue::try_from_string(text.clone(), data_type).ok()?;
    // A number out of the column's range does not convert; DataFusion decides what it means.
    (!value.is_null() && value.to_string() == text).then_some(KeyValue::Literal(value))
}

/// `value` as `data_type`, when it converts without loss.
fn lossless_cast(value: &ScalarValue, data_type: &DataType) -> Option<ScalarValue> {
    if value.is_null() {
        return None;
    }
    let cast = value.cast_to(data_type).ok()?;
    (!cast.is_null() && cast.cast_to(&value.data_type()).ok()? == *value).then_some(cast)
}
