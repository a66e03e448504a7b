//! A result table stored in Weir as DataFusion sees it: a scan reads the table's rows from the
//! table store.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session as DfSession;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::{TableDef, schema_of};
use crate::connectors::table_store::TableStore;
use crate::error::{Error, Result};

/// A stored result table as DataFusion sees it.
#[derive(Debug)]
pub struct StoredTable {
    pub def: TableDef,
    schema: SchemaRef,
    store: Arc<TableStore>,
}

impl StoredTable {
    pub fn new(def: TableDef, store: Arc<TableStore>) -> Result<Self> {
        Ok(StoredTable {
            schema: schema_of(&def.columns)?,
            def,
            store,
        })
    }
}

#[async_trait]
impl TableProvider for StoredTable {
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
        let batches = match self.def.connector {
            crate::catalog::TableConnector::Stored => self.store.scan(&self.def)?,
            other => {
                return Err(Error::invalid_state(format!(
                    "table '{}' is a '{}' sink and keeps no rows to query",
                    self.def.name,
                    other.name()
                ))
                .into());
            }
        };
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
