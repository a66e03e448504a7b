//! System tables (`weir_jobs`, `weir_savepoints`): providers registered once per database whose
//! scan takes a fresh snapshot, so concurrent sessions never re-register shared tables.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session as DfSession;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::error::{Error, Result};
use crate::session::Database;

#[derive(Debug, Clone, Copy)]
enum SystemTableKind {
    Jobs,
    Savepoints,
}

impl SystemTableKind {
    fn name(self) -> &'static str {
        match self {
            SystemTableKind::Jobs => "weir_jobs",
            SystemTableKind::Savepoints => "weir_savepoints",
        }
    }

    fn snapshot(self, db: &Database) -> Result<RecordBatch> {
        match self {
            SystemTableKind::Jobs => db.jobs_batch(),
            SystemTableKind::Savepoints => db.savepoints_batch(),
        }
    }
}

pub struct SystemTable {
    kind: SystemTableKind,
    schema: SchemaRef,
    /// Weak: the database owns the DataFusion context that owns this table.
    db: Weak<Database>,
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind.name())
    }
}

pub fn register(db: &Arc<Database>) -> Result<()> {
    for kind in [SystemTableKind::Jobs, SystemTableKind::Savepoints] {
        let schema = kind.snapshot(db)?.schema();
        db.context().register_table(
            kind.name(),
            Arc::new(SystemTable {
                kind,
                schema,
                db: Arc::downgrade(db),
            }),
        )?;
    }
    Ok(())
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::View
    }
    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let db = self.db.upgrade().ok_or_else(|| Error::internal("the database is closed"))?;
        let batch = self.kind.snapshot(&db)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
