//! What each kind of statement does, as `Session` methods: `ddl` (CREATE/DROP of sources, tables,
//! jobs), `jobs` (WAIT, STOP, CANCEL), `savepoints` (SAVEPOINT, RESTORE, savepoint listing),
//! `show` (SHOW, DESCRIBE), `query` (SELECT and other plain SQL through DataFusion), `point_get`
//! (primary-key lookups on result tables without DataFusion), `postgres_session` (Postgres
//! parameters, cursors, COPY TO STDOUT).

pub mod ddl;
pub mod jobs;
pub mod point_get;
pub mod postgres_session;
pub mod query;
pub mod savepoints;
pub mod show;

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::engine::session::Output;
use crate::error::Result;

/// A result of text columns, given column by column.
pub(crate) fn string_table<S: AsRef<str>>(names: &[&str], columns: Vec<Vec<S>>) -> Result<Output> {
    let schema = Arc::new(Schema::new(
        names.iter().map(|n| Field::new(*n, DataType::Utf8, false)).collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from_iter_values(c.iter().map(|s| s.as_ref()))) as ArrayRef)
        .collect();
    Ok(Output::rows(schema.clone(), RecordBatch::try_new(schema, arrays)?))
}

/// A result of text columns (nullable), given row by row.
pub(crate) fn row_table(names: &[&str], rows: &[Vec<String>]) -> Result<Output> {
    let schema = Arc::new(Schema::new(
        names.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|c| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r[c].as_str()))) as ArrayRef)
        .collect();
    Ok(Output::Rows {
        schema: schema.clone(),
        batches: vec![RecordBatch::try_new(schema, columns)?],
    })
}
