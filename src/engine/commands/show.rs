//! SHOW and DESCRIBE: sources, tables, jobs, checkpoints, server variables.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::checkpoint::history::CheckpointHistory;
use crate::data_dir::DataDir;
use crate::engine::commands::string_table;
use crate::engine::session::{Output, Session};
use crate::error::{Error, Result};
use crate::planner::statement::ShowTarget;

impl Session {
    pub(crate) fn show(&self, target: ShowTarget) -> Result<Output> {
        let catalog = self.db.catalog()?;
        match target {
            ShowTarget::Sources => {
                let names: Vec<&str> = catalog.sources.keys().map(String::as_str).collect();
                let connectors: Vec<&str> = catalog.sources.values().map(|s| s.connector.as_str()).collect();
                string_table(&["name", "connector"], vec![names, connectors])
            }
            ShowTarget::Tables => {
                let names: Vec<&str> = catalog.tables.keys().map(String::as_str).collect();
                let connectors: Vec<&str> = catalog.tables.values().map(|t| t.connector.name()).collect();
                string_table(&["name", "connector"], vec![names, connectors])
            }
            ShowTarget::Jobs => {
                drop(catalog);
                let batch = crate::engine::system_tables::jobs_batch(&self.db)?;
                Ok(Output::rows(batch.schema(), batch))
            }
        }
    }

    pub(crate) fn show_checkpoints(&self, name: &str) -> Result<Output> {
        if !self.db.catalog()?.jobs.contains_key(name) {
            return Err(Error::not_found("job", name));
        }
        let records = match self.db.jobs().get(name)? {
            Some(job) => job.checkpoints.lock().map(|h| h.records.clone()).unwrap_or_default(),
            // Not running (ended, or not resumed yet): what its history log kept.
            None => CheckpointHistory::read(&DataDir::new(self.db.data_dir()).job(name).history_log())?.records,
        };
        let millis = |d: std::time::Duration| d.as_millis() as u64;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("trigger_time", DataType::Timestamp(TimeUnit::Millisecond, None), false),
            Field::new("duration_ms", DataType::UInt64, false),
            Field::new("sync_ms", DataType::UInt64, false),
            Field::new("async_ms", DataType::UInt64, false),
            Field::new("bytes_uploaded", DataType::UInt64, false),
            Field::new("full_size", DataType::UInt64, false),
            Field::new("path", DataType::Utf8, true),
            // After `path`, so that scripts reading the columns above by position keep working.
            Field::new("unaligned", DataType::Boolean, false),
            Field::new("alignment_ms", DataType::UInt64, false),
            Field::new("in_flight_bytes", DataType::UInt64, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| r.id))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.status.name()))),
            Arc::new(TimestampMillisecondArray::from_iter_values(records.iter().map(|r| {
                r.trigger_time
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0)
            }))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| millis(r.duration)))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| millis(r.sync)))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| millis(r.asynchronous)))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| r.bytes_uploaded))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| r.full_size))),
            Arc::new(StringArray::from_iter(
                records
                    .iter()
                    .map(|r| (!r.path.is_empty()).then(|| r.path.clone()).or(r.failure.clone())),
            )),
            Arc::new(BooleanArray::from_iter(records.iter().map(|r| Some(r.unaligned)))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| millis(r.alignment)))),
            Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| r.in_flight_bytes))),
        ];
        Ok(Output::rows(schema.clone(), RecordBatch::try_new(schema, columns)?))
    }

    pub(crate) fn describe(&self, name: &str) -> Result<Output> {
        let catalog = self.db.catalog()?;
        let (columns, primary_key, watermark) = if let Some(s) = catalog.sources.get(name) {
            (&s.columns, &[][..], s.watermark.as_ref())
        } else if let Some(t) = catalog.tables.get(name) {
            (&t.columns, t.primary_key.as_slice(), None)
        } else if catalog.jobs.contains_key(name) {
            drop(catalog);
            return self.describe_job(name);
        } else {
            return Err(Error::not_found("source or table", name));
        };
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let types: Vec<&str> = columns.iter().map(|c| c.sql_type.as_str()).collect();
        let nullable: Vec<&str> = columns.iter().map(|c| if c.nullable { "YES" } else { "NO" }).collect();
        let extra: Vec<String> = columns
            .iter()
            .map(|c| {
                let mut extra = Vec::new();
                if primary_key.contains(&c.name) {
                    extra.push("PRIMARY KEY".to_string());
                }
                if let Some(w) = watermark.filter(|w| w.column == c.name) {
                    extra.push(format!("WATERMARK AS {}", w.expr));
                }
                extra.join(", ")
            })
            .collect();
        string_table(
            &["name", "type", "nullable", "extra"],
            vec![names, types, nullable, extra.iter().map(String::as_str).collect()],
        )
    }

    pub(crate) fn describe_job(&self, name: &str) -> Result<Output> {
        let def = self
            .db
            .catalog()?
            .jobs
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found("job", name))?;
        let snapshot = self.db.jobs().get(name)?.map(|j| j.snapshot());
        let mut rows: Vec<(String, String)> = vec![("name".into(), def.name.clone()), ("sql".into(), def.insert_sql.clone())];
        match &snapshot {
            Some(s) => {
                rows.push(("status".into(), s.status.name().into()));
                rows.push(("parallelism".into(), s.parallelism.to_string()));
                rows.push(("rows_in".into(), s.rows_in.to_string()));
                rows.push(("rows_out".into(), s.rows_out.to_string()));
                rows.push(("late_rows_dropped".into(), s.late_rows_dropped.to_string()));
                rows.push(("records_skipped".into(), s.records_skipped.to_string()));
                rows.push(("rows_per_second".into(), format!("{:.0}", s.rows_per_second)));
                rows.push(("error".into(), s.error.clone().unwrap_or_default()));
                rows.push(("restarts".into(), s.restarts.to_string()));
                rows.push(("last_failure".into(), s.last_failure.clone().unwrap_or_default()));
                rows.push(("last_checkpoint".into(), s.last_checkpoint.clone().unwrap_or_default()));
                if let Some(restore) = s.restore {
                    rows.push((
                        "restore".into(),
                        format!("{} of {} bytes", restore.restored_bytes, restore.total_bytes),
                    ));
                }
                rows.push(("graph".into(), s.graph.to_string()));
            }
            None => {
                rows.push(("status".into(), def.status.name().into()));
                rows.push(("error".into(), def.error.clone().unwrap_or_default()));
            }
        }
        for (k, v) in &def.options {
            rows.push((format!("setting {k}"), v.clone()));
        }
        let (keys, values): (Vec<&str>, Vec<&str>) = rows.iter().map(|(k, v)| (k.as_str(), v.as_str())).unzip();
        string_table(&["property", "value"], vec![keys, values])
    }
}
