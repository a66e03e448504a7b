//! A source as DataFusion sees it. Batch queries read bounded sources to the end (unpaced); an
//! unbounded source can only be read by a job. The streaming planner downcasts to `SourceTable` to
//! find the source definition.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session as DfSession;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::{SourceDef, schema_of};
use crate::connectors::SourceConfig;
use crate::data_dir::FileRoots;
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct SourceTable {
    pub def: SourceDef,
    schema: SchemaRef,
    file_roots: FileRoots,
}

impl SourceTable {
    pub fn new(def: SourceDef, file_roots: FileRoots) -> Result<Self> {
        Ok(SourceTable {
            schema: schema_of(&def.columns)?,
            def,
            file_roots,
        })
    }

    async fn read_all(&self) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
        let config = SourceConfig::parse(&self.def, &self.file_roots)?;
        if !config.is_bounded() {
            return Err(Error::invalid_state(format!(
                "source '{}' is unbounded; read it from a job (CREATE JOB), or bound it (max.events / number-of-rows) to query it directly",
                self.def.name
            )));
        }
        let columns: Vec<usize> = (0..self.def.columns.len()).collect();
        let mut source = config.open(&columns, 0, 1, false, None, None)?;
        let mut batches = Vec::new();
        while let Some(batch) = source.next_batch().await? {
            batches.push(batch);
            // A file's batches are ready at once: yield, so a cancel request is seen between them.
            tokio::task::yield_now().await;
        }
        Ok(batches)
    }
}

#[async_trait]
impl TableProvider for SourceTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batches = self.read_all().await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// The argument a source column reference must satisfy: exists and is a TIMESTAMP.
pub fn time_column_index(def: &SourceDef, column: &str) -> Result<usize> {
    def.columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(column))
        .ok_or_else(|| Error::not_found("column", &format!("{}.{column}", def.name)))
}
