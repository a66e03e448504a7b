//! A source as DataFusion sees it. Batch queries stream bounded sources to the end (unpaced), in
//! the source's order; an unbounded source can only be read by a job. The streaming planner downcasts to `SourceTable` to
//! find the source definition.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session as DfSession;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};

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

    /// The source's parsed configuration; only a bounded source: an unbounded one would never
    /// end a query.
    fn bounded_config(&self) -> Result<SourceConfig> {
        let config = SourceConfig::parse(&self.def, &self.file_roots)?;
        if !config.is_bounded() {
            return Err(Error::invalid_state(format!(
                "source '{}' is unbounded; read it from a job (CREATE JOB), or bound it (max.events / number-of-rows) to query it directly",
                self.def.name
            )));
        }
        Ok(config)
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
    /// Streams the source's rows in its own order, reading only the projected columns; a LIMIT
    /// stops the reading. One partition, so a query sees the rows as the source holds them.
    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let columns: Vec<usize> = match projection {
            Some(projection) => projection.clone(),
            None => (0..self.def.columns.len()).collect(),
        };
        let rows = SourceRows {
            config: self.bounded_config()?,
            schema: Arc::new(self.schema.project(&columns)?),
            columns,
        };
        let schema = rows.schema.clone();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            vec![Arc::new(rows)],
            None,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

/// A bounded source's rows as a DataFusion partition stream: each execution opens the source
/// again (a correlated subquery runs its plan once per outer row).
#[derive(Debug)]
struct SourceRows {
    config: SourceConfig,
    columns: Vec<usize>,
    schema: SchemaRef,
}

impl PartitionStream for SourceRows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let opened = self
            .config
            .open(&self.columns, 0, 1, false, None, None)
            .map_err(DataFusionError::from);
        let batches = futures::stream::unfold(Some(opened), |state| async move {
            match state? {
                Err(e) => Some((Err(e), None)),
                Ok(mut source) => match source.next_batch().await {
                    Ok(Some(batch)) => Some((Ok(batch), Some(Ok(source)))),
                    Ok(None) => None,
                    Err(e) => Some((Err(DataFusionError::from(e)), None)),
                },
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

/// The argument a source column reference must satisfy: exists and is a TIMESTAMP.
pub fn time_column_index(def: &SourceDef, column: &str) -> Result<usize> {
    def.columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(column))
        .ok_or_else(|| Error::not_found("column", &format!("{}.{column}", def.name)))
}
