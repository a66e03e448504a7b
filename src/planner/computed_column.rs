//! Computed columns of a source (`et AS TO_TIMESTAMP_LTZ(ts_millis, 3)`, as in Flink's DDL): the
//! expression is planned against the source's other columns once, and evaluated on every batch the
//! connector produces, before the watermark is taken, so a computed column can be the event time.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::DFSchema;
use datafusion::execution::context::SessionContext;
use datafusion::physical_expr::PhysicalExprRef;

use crate::catalog::{ColumnDef, ColumnKind, schema_of, sql_type_name};
use crate::error::{Error, Result};
use crate::planner::flink_functions;

/// `expr` planned over `input` (the source's physical and metadata columns), and its type.
pub fn compile(column: &str, expr: &str, input: &Schema) -> Result<(PhysicalExprRef, DataType)> {
    let ctx = SessionContext::new();
    flink_functions::register(&ctx);
    let schema = DFSchema::try_from(input.clone())?;
    let in_column = |e: Error| e.context(format!("computed column '{column}' AS {expr}"));
    let logical = ctx.parse_sql_expr(expr, &schema).map_err(|e| in_column(e.into()))?;
    let physical = ctx.create_physical_expr(logical, &schema).map_err(|e| in_column(e.into()))?;
    let data_type = physical.data_type(input).map_err(|e| in_column(e.into()))?;
    Ok((physical, data_type))
}

/// Gives each computed column of a source the type of its expression (at CREATE SOURCE), planned
/// over the columns that are not computed (Flink's rule: a computed column does not read another).
pub fn type_columns(columns: &mut [ColumnDef]) -> Result<()> {
    let records: Vec<ColumnDef> = columns
        .iter()
        .filter(|c| !matches!(c.kind, ColumnKind::Computed { .. }))
        .cloned()
        .collect();
    let input = schema_of(&records)?;
    for column in columns.iter_mut() {
        if let ColumnKind::Computed { expr } = &column.kind {
            let (_, data_type) = compile(&column.name, expr, &input)?;
            column.sql_type = sql_type_name(&data_type).map_err(|e| e.context(format!("computed column '{}'", column.name)))?;
        }
    }
    Ok(())
}
