//! From SQL to plans: statement parsing, the window table functions, and the lowering of a job's
//! SELECT to a `JobGraph`. Knows nothing of the runtime.

pub mod column_list;
pub mod computed_column;
mod date_format;
pub mod dialect;
pub mod flink_functions;
pub mod flink_syntax;
pub mod group_window;
pub mod interval_condition;
pub mod lookup_join;
pub mod lowering;
pub mod postgres_arrays;
pub mod postgres_column_names;
pub mod postgres_commands;
pub mod postgres_settings;
pub mod postgres_syntax;
pub mod statement;
mod string_functions;
pub mod subquery_apply;
mod time_fields;
pub mod window_function;

use datafusion::execution::context::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use sqlparser::ast::{Insert, Statement as SqlStatement, TableObject};

use crate::catalog::{Catalog, TableDef};
use crate::error::{Error, Result};
use crate::graph::JobGraph;
use crate::planner::statement::normalize;

/// The DataFusion optimizer rule that rewrites `COUNT(DISTINCT x)` into two stacked aggregates; a
/// streaming aggregate over an aggregate would need retractions, so jobs plan without it.
pub const SINGLE_DISTINCT_RULE: &str = "single_distinct_aggregation_to_group_by";

/// The target table name of an INSERT.
pub fn insert_target(insert: &Insert) -> Result<String> {
    match &insert.table {
        TableObject::TableName(name) => name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map(normalize)
            .ok_or_else(|| Error::syntax("INSERT INTO needs a table name")),
        other => Err(Error::unsupported(format!(
            "INSERT INTO {other} is not supported; insert into a table"
        ))),
    }
}

/// Plans `INSERT INTO table SELECT ...` as a job graph of the given parallelism.
pub async fn plan_job(ctx: &SessionContext, catalog: &Catalog, insert: &Insert, table: &TableDef, parallelism: usize) -> Result<JobGraph> {
    if !insert.columns.is_empty() {
        return Err(Error::unsupported(
            "INSERT with a column list is not supported in a job yet; select the table's columns in order",
        ));
    }
    let query = insert
        .source
        .as_ref()
        .ok_or_else(|| Error::syntax("a job needs INSERT INTO <table> SELECT ..."))?;
    let mut query = query.clone();
    group_window::rewrite_group_windows(&mut query)?;
    lookup_join::rewrite_lookup_joins(&mut query, catalog)?;
    let state = ctx.state();
    let plan = state
        .statement_to_plan(DfStatement::Statement(Box::new(SqlStatement::Query(query))))
        .await?;
    let plan = state.optimize(&plan)?;
    if subquery_apply::contains_applied_subquery(&plan) {
        return Err(Error::unsupported(
            "a job cannot run a correlated subquery row by row; join the tables instead",
        ));
    }
    lowering::lower_job(&plan, catalog, table, parallelism)
}
