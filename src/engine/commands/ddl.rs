//! CREATE and DROP of sources, tables and jobs.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::TableReference;

use crate::catalog::{
    ColumnDef, JobDef, JobStatus, SourceDef, StoredRowLayout, TableConnector, TableDef, WatermarkDef, check_watermark_column,
};
use crate::connectors::SourceConfig;
use crate::connectors::filesystem_sink::FileSinkConfig;
use crate::connectors::kafka_sink::KafkaSinkConfig;
use crate::engine::providers::source_table::SourceTable;
use crate::engine::providers::stored_table::StoredTable;
use crate::engine::session::{Output, Session};
use crate::error::{Error, Result};
use crate::job::JobSettings;
use crate::planner::computed_column;
use crate::planner::statement::{CreateJob, ObjectKind, Statement, parse_statements};
use crate::settings::CheckpointRetention;

impl Session {
    pub(crate) fn create_source(
        &self,
        name: String,
        columns: Vec<ColumnDef>,
        watermark: Option<WatermarkDef>,
        primary_key: Vec<String>,
        mut options: BTreeMap<String, String>,
        if_not_exists: bool,
    ) -> Result<Output> {
        let connector = options.remove("connector").ok_or_else(|| {
            Error::invalid("a source needs WITH (connector = 'kafka' | 'upsert-kafka' | 'file' | 'nexmark' | 'datagen', ...)")
        })?;
        let mut columns = columns;
        computed_column::type_columns(&mut columns)?;
        if let Some(watermark) = &watermark {
            check_watermark_column(&columns, watermark)?;
        }
        let def = SourceDef {
            name,
            columns,
            watermark,
            connector,
            options,
            primary_key,
        };
        if self.relation_exists(&def.name)? {
            return if if_not_exists {
                Ok(Output::done("CREATE SOURCE"))
            } else {
                Err(Error::already_exists("relation", &def.name))
            };
        }
        SourceConfig::parse(&def, self.db.file_roots())?.check()?;
        let provider = Arc::new(SourceTable::new(def.clone(), self.db.file_roots().clone())?);
        // Registered first: a name DataFusion refuses never reaches the catalog.
        self.db
            .context()
            .register_table(TableReference::bare(def.name.as_str()), provider)?;
        let saved = self.db.update_catalog(|c| {
            c.sources.insert(def.name.clone(), def.clone());
            Ok(())
        });
        if let Err(e) = saved {
            self.db.context().deregister_table(TableReference::bare(def.name.as_str()))?;
            return Err(e);
        }
        Ok(Output::done("CREATE SOURCE"))
    }

    pub(crate) fn create_table(
        &self,
        name: String,
        columns: Vec<ColumnDef>,
        primary_key: Vec<String>,
        partitioned_by: Vec<String>,
        mut options: BTreeMap<String, String>,
        if_not_exists: bool,
    ) -> Result<Output> {
        let connector = match options.remove("connector") {
            Some(c) => TableConnector::parse(&c)?,
            None => TableConnector::Stored,
        };
        if !partitioned_by.is_empty() && connector != TableConnector::Filesystem {
            return Err(Error::unsupported(format!(
                "PARTITIONED BY is for 'filesystem' tables; a {} table is not partitioned",
                connector.name()
            )));
        }
        match connector {
            TableConnector::Kafka | TableConnector::UpsertKafka => {
                KafkaSinkConfig::from_options(&name, connector, &options, &columns, &primary_key)?;
            }
            TableConnector::Filesystem => {
                if !primary_key.is_empty() {
                    return Err(Error::unsupported(format!(
                        "filesystem table '{name}' has a PRIMARY KEY, but files are append-only: they cannot take updates by key"
                    )));
                }
                FileSinkConfig::from_options(&name, &options, &columns, &partitioned_by, self.db.file_roots())?;
            }
            TableConnector::Stored | TableConnector::Blackhole | TableConnector::Print => {
                if let Some(key) = options.keys().next() {
                    return Err(Error::invalid(format!(
                        "unknown table option '{key}'; a {} table takes only 'connector'",
                        connector.name()
                    )));
                }
            }
        }
        if self.relation_exists(&name)? {
            return if if_not_exists {
                Ok(Output::done("CREATE TABLE"))
            } else {
                Err(Error::already_exists("relation", &name))
            };
        }
        let def = self.db.update_catalog(|c| {
            let def = TableDef {
                name: name.clone(),
                id: c.next_table_id,
                columns,
                primary_key,
                connector,
                options,
                partitioned_by,
                row_layout: StoredRowLayout::NonKeyColumns,
            };
            c.next_table_id += 1;
            c.tables.insert(name.clone(), def.clone());
            Ok(def)
        })?;
        let registered = self.db.table_store().drop_table(def.id).and_then(|()| {
            let provider = Arc::new(StoredTable::new(def, self.db.table_store().clone())?);
            self.db.context().register_table(TableReference::bare(name.as_str()), provider)?;
            Ok(())
        });
        if let Err(e) = registered {
            self.db.update_catalog(|c| {
                c.tables.remove(&name);
                Ok(())
            })?;
            return Err(e);
        }
        Ok(Output::done("CREATE TABLE"))
    }

    /// Whether a source, table or system table (`weir_jobs`, `pg_class`, ...) has this name.
    fn relation_exists(&self, name: &str) -> Result<bool> {
        Ok(self.db.catalog()?.relation_exists(name) || self.db.context().table_exist(TableReference::bare(name))?)
    }

    /// The job's options (session settings overlaid with its WITH options), graph and settings.
    pub(crate) async fn plan_job(&self, job: &CreateJob) -> Result<(BTreeMap<String, String>, crate::graph::JobGraph, JobSettings)> {
        let mut options = self.settings_snapshot()?;
        options.extend(job.options.clone());
        let (graph, settings) = self.db.plan_insert(&job.insert, &options).await?;
        self.db.probe_checkpoint_dir(&settings).await?;
        Ok((options, graph, settings))
    }

    pub(crate) async fn create_job(&self, job: CreateJob) -> Result<Output> {
        {
            let catalog = self.db.catalog()?;
            if let Some(existing) = catalog.jobs.get(&job.name) {
                return Err(Error::already_exists("job", &existing.name));
            }
        }
        let (options, graph, settings) = self.plan_job(&job).await?;
        // A new job starts from nothing: no state, markers or checkpoints of an earlier job of this name.
        let job_dir = self.db.paths().job(&job.name).path().to_path_buf();
        if job_dir.exists() {
            std::fs::remove_dir_all(&job_dir).map_err(|e| Error::internal(format!("cannot clear {}: {e}", job_dir.display())))?;
        }
        let checkpoints = self.db.checkpoint_storage(&job.name, &settings)?;
        tokio::task::spawn_blocking(move || checkpoints.clear())
            .await
            .map_err(|e| Error::internal(format!("clearing the job's checkpoints failed: {e}")))??;
        self.db.table_store().clear_commits(&job.name)?;
        let def = JobDef {
            name: job.name.clone(),
            insert_sql: job.insert.to_string(),
            options,
            status: JobStatus::Running,
            error: None,
        };
        self.db.update_catalog(|c| {
            c.jobs.insert(def.name.clone(), def.clone());
            Ok(())
        })?;
        if let Err(e) = self.db.jobs().start(&job.name, graph, settings, def.insert_sql.clone(), None) {
            self.db.update_catalog(|c| {
                c.jobs.remove(&job.name);
                Ok(())
            })?;
            return Err(e);
        }
        Ok(Output::done("CREATE JOB"))
    }

    pub(crate) async fn drop(&self, kind: ObjectKind, name: &str, if_exists: bool) -> Result<Output> {
        let tag = format!("DROP {}", kind.name().to_ascii_uppercase());
        let exists = {
            let catalog = self.db.catalog()?;
            match kind {
                ObjectKind::Source => catalog.sources.contains_key(name),
                ObjectKind::Table => catalog.tables.contains_key(name),
                ObjectKind::Job => catalog.jobs.contains_key(name),
            }
        };
        if !exists {
            return if if_exists {
                Ok(Output::Done { tag })
            } else {
                Err(Error::not_found(kind.name(), name))
            };
        }
        match kind {
            ObjectKind::Job => {
                self.db.jobs().cancel(name, JobStatus::Canceled).await?;
                if let Some(job) = self.db.jobs().get(name)? {
                    let retain = job
                        .settings
                        .checkpoints
                        .as_ref()
                        .is_some_and(|c| c.retention == CheckpointRetention::RetainOnCancellation);
                    if !retain && let Err(e) = job.checkpoint_storage(self.db.data_dir()).and_then(|s| s.clear()) {
                        tracing::warn!("job {name}: cannot remove its checkpoints: {e}");
                    }
                }
                self.db.jobs().forget(name)?;
                self.db.table_store().clear_commits(name)?;
                self.db.update_catalog(|c| {
                    c.jobs.remove(name);
                    Ok(())
                })?;
                let _ = std::fs::remove_dir_all(self.db.paths().job(name).path());
            }
            ObjectKind::Source | ObjectKind::Table => {
                let users = self.jobs_reading(name)?;
                if !users.is_empty() {
                    return Err(Error::invalid_state(format!(
                        "{} '{name}' is used by job(s) {}; drop those jobs first (DROP JOB ...)",
                        kind.name(),
                        users.join(", ")
                    )));
                }
                let table_id = self.db.update_catalog(|c| {
                    Ok(match kind {
                        ObjectKind::Source => c.sources.remove(name).map(|_| None),
                        _ => c.tables.remove(name).map(|t| Some(t.id)),
                    })
                })?;
                self.db.context().deregister_table(TableReference::bare(name))?;
                if let Some(Some(id)) = table_id {
                    self.db.table_store().drop_table(id)?;
                }
            }
        }
        Ok(Output::Done { tag })
    }

    /// Names of the jobs whose SQL mentions a relation (sources they read or tables they write).
    fn jobs_reading(&self, relation: &str) -> Result<Vec<String>> {
        let catalog = self.db.catalog()?;
        let mut users = Vec::new();
        for job in catalog.jobs.values() {
            let mentions = parse_statements(&job.insert_sql).ok().is_some_and(|statements| {
                statements.iter().any(|s| {
                    let mut found = false;
                    if let Statement::Query(q) = s {
                        let _ = sqlparser::ast::visit_relations(q.as_ref(), |name| {
                            if name
                                .0
                                .last()
                                .and_then(|p| p.as_ident())
                                .is_some_and(|i| crate::planner::statement::normalize(i) == relation)
                            {
                                found = true;
                            }
                            std::ops::ControlFlow::<()>::Continue(())
                        });
                        // Window table functions name their source as an argument.
                        found |= q
                            .to_string()
                            .to_ascii_lowercase()
                            .split(|c: char| !c.is_alphanumeric() && c != '_')
                            .any(|w| w == relation);
                    }
                    found
                })
            });
            if mentions {
                users.push(job.name.clone());
            }
        }
        Ok(users)
    }

    /// EXPLAIN CREATE JOB: the operator graph with its uids, one line per row.
    pub(crate) async fn explain_create_job(&self, job: &CreateJob) -> Result<Output> {
        let (_, graph, _) = self.plan_job(job).await?;
        let text = graph.to_string();
        let schema = Arc::new(Schema::new(vec![Field::new("plan", DataType::Utf8, false)]));
        let lines: ArrayRef = Arc::new(StringArray::from_iter_values(text.lines().collect::<Vec<_>>()));
        Ok(Output::rows(schema.clone(), RecordBatch::try_new(schema, vec![lines])?))
    }
}
