//! System tables (`weir_jobs`, `weir_savepoints`): providers registered once per database whose
//! scan takes a fresh snapshot, so concurrent sessions never re-register shared tables. The
//! Postgres catalog clients read (`pg_catalog`) is in `system_tables/pg_catalog.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session as DfSession;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::{JobDef, JobStatus, SavepointDef};
use crate::engine::database::Database;
use crate::error::{Error, Result};
use crate::job::{JobSettings, JobSnapshot};

#[derive(Debug, Clone, Copy)]
enum SystemTableKind {
    Jobs,
    Savepoints,
}

impl SystemTableKind {
    const ALL: [SystemTableKind; 2] = [SystemTableKind::Jobs, SystemTableKind::Savepoints];

    fn name(self) -> &'static str {
        match self {
            SystemTableKind::Jobs => "weir_jobs",
            SystemTableKind::Savepoints => "weir_savepoints",
        }
    }

    /// The columns (fixed: `pg_catalog` lists them before any row exists).
    fn schema(self) -> SchemaRef {
        let fields = match self {
            SystemTableKind::Jobs => vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("status", DataType::Utf8, false),
                Field::new("parallelism", DataType::UInt64, false),
                Field::new("rows_in", DataType::UInt64, false),
                Field::new("rows_out", DataType::UInt64, false),
                Field::new("late_rows_dropped", DataType::UInt64, false),
                Field::new("records_skipped", DataType::UInt64, false),
                Field::new("rows_in_per_second", DataType::Float64, false),
                Field::new("rows_out_per_second", DataType::Float64, false),
                Field::new("uptime_seconds", DataType::Float64, false),
                Field::new("started_at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
                Field::new("error", DataType::Utf8, true),
                Field::new("restarts", DataType::UInt64, false),
                Field::new("last_checkpoint", DataType::Utf8, true),
                Field::new("window_latency_p50_ms", DataType::Float64, true),
                Field::new("window_latency_p99_ms", DataType::Float64, true),
                // The latest restore in this process: bytes fetched and checked, of the total.
                Field::new("restored_bytes", DataType::UInt64, true),
                Field::new("restore_total_bytes", DataType::UInt64, true),
            ],
            SystemTableKind::Savepoints => vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("job", DataType::Utf8, false),
                Field::new("format", DataType::Utf8, false),
                Field::new("created", DataType::Timestamp(TimeUnit::Millisecond, None), false),
                Field::new("size_bytes", DataType::UInt64, false),
                Field::new("path", DataType::Utf8, false),
            ],
        };
        Arc::new(Schema::new(fields))
    }

    fn snapshot(self, db: &Database) -> Result<RecordBatch> {
        match self {
            SystemTableKind::Jobs => jobs_batch(db),
            SystemTableKind::Savepoints => savepoints_batch(db),
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
    for kind in SystemTableKind::ALL {
        let schema = kind.schema();
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

/// The `weir_jobs` system table: one row per job, live metrics for jobs of this process.
pub fn jobs_batch(db: &Database) -> Result<RecordBatch> {
    let catalog = db.catalog_snapshot()?;
    let live: BTreeMap<String, JobSnapshot> = db.jobs().snapshots()?.into_iter().map(|s| (s.name.clone(), s)).collect();
    let defs: Vec<&JobDef> = catalog.jobs.values().collect();
    let get = |d: &JobDef| live.get(&d.name);
    let schema = SystemTableKind::Jobs.schema();
    let millis = |latency: Option<std::time::Duration>| latency.map(|l| (l.as_secs_f64() * 10_000.0).round() / 10.0);
    let settings_parallelism = |d: &JobDef| JobSettings::from_options(&d.options).map(|s| s.parallelism as u64).unwrap_or(1);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(defs.iter().map(|d| d.name.as_str()))),
        Arc::new(StringArray::from_iter_values(
            defs.iter().map(|d| get(d).map_or(d.status, |s| s.status).name()),
        )),
        Arc::new(UInt64Array::from_iter_values(defs.iter().map(|d| settings_parallelism(d)))),
        Arc::new(UInt64Array::from_iter_values(defs.iter().map(|d| get(d).map_or(0, |s| s.rows_in)))),
        Arc::new(UInt64Array::from_iter_values(defs.iter().map(|d| get(d).map_or(0, |s| s.rows_out)))),
        Arc::new(UInt64Array::from_iter_values(
            defs.iter().map(|d| get(d).map_or(0, |s| s.late_rows_dropped)),
        )),
        Arc::new(UInt64Array::from_iter_values(
            defs.iter().map(|d| get(d).map_or(0, |s| s.records_skipped)),
        )),
        Arc::new(Float64Array::from_iter_values(
            defs.iter().map(|d| get(d).map_or(0.0, |s| s.rows_per_second.round())),
        )),
        Arc::new(Float64Array::from_iter_values(
            defs.iter().map(|d| get(d).map_or(0.0, |s| s.rows_out_per_second.round())),
        )),
        Arc::new(Float64Array::from_iter_values(
            defs.iter()
                .map(|d| get(d).map_or(0.0, |s| (s.uptime_seconds * 10.0).round() / 10.0)),
        )),
        Arc::new(TimestampMillisecondArray::from_iter(defs.iter().map(|d| {
            get(d)
                .and_then(|s| s.started_at.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|t| t.as_millis() as i64)
        }))),
        Arc::new(StringArray::from_iter(
            // While a job fails over, why it did (else RESTARTING shows no cause).
            defs.iter().map(|d| {
                get(d).map_or(d.error.clone(), |s| match s.status {
                    JobStatus::Restarting | JobStatus::Failing => s.error.clone().or_else(|| s.last_failure.clone()),
                    _ => s.error.clone(),
                })
            }),
        )),
        Arc::new(UInt64Array::from_iter_values(defs.iter().map(|d| get(d).map_or(0, |s| s.restarts)))),
        Arc::new(StringArray::from_iter(
            defs.iter().map(|d| get(d).and_then(|s| s.last_checkpoint.clone())),
        )),
        Arc::new(Float64Array::from_iter(
            defs.iter().map(|d| get(d).and_then(|s| millis(s.window_latency_p50))),
        )),
        Arc::new(Float64Array::from_iter(
            defs.iter().map(|d| get(d).and_then(|s| millis(s.window_latency_p99))),
        )),
        Arc::new(UInt64Array::from_iter(
            defs.iter().map(|d| get(d).and_then(|s| s.restore).map(|r| r.restored_bytes)),
        )),
        Arc::new(UInt64Array::from_iter(
            defs.iter().map(|d| get(d).and_then(|s| s.restore).map(|r| r.total_bytes)),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The `weir_savepoints` system table (also what SHOW SAVEPOINTS prints).
pub fn savepoints_batch(db: &Database) -> Result<RecordBatch> {
    let catalog = db.catalog_snapshot()?;
    let savepoints: Vec<&SavepointDef> = catalog.savepoints.values().collect();
    let schema = SystemTableKind::Savepoints.schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(savepoints.iter().map(|s| s.name.as_str()))),
        Arc::new(StringArray::from_iter_values(savepoints.iter().map(|s| s.job.as_str()))),
        Arc::new(StringArray::from_iter_values(savepoints.iter().map(|s| s.format.name()))),
        Arc::new(TimestampMillisecondArray::from_iter_values(savepoints.iter().map(|s| s.created_ms))),
        Arc::new(UInt64Array::from_iter_values(savepoints.iter().map(|s| s.size_bytes))),
        Arc::new(StringArray::from_iter_values(savepoints.iter().map(|s| s.path.as_str()))),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

pub mod pg_catalog;
