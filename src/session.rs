//! `Session`: one connection's settings over the shared `Database`. `Session::execute` is the
//! single entry point for SQL; the REPL, `weir run`, pgwire and the sqllogictest runner are thin
//! adapters over it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;

use crate::catalog::{ColumnDef, JobDef, JobStatus, SourceDef, TableConnector, TableDef};
use crate::connectors::source_table::SourceTable;
use crate::connectors::table_store::StoredTable;
use crate::connectors::validate_source;
use crate::database::Database;
use crate::error::{Error, Result};
use crate::job::JobSettings;
use crate::job::settings::CheckpointRetention;
use crate::planner::statement::{CreateJob, ObjectKind, ShowTarget, Statement, parse_statements};
use crate::planner::{insert_target, plan_job};

/// The result of one statement.
#[derive(Debug, Clone)]
pub enum Output {
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// A statement without rows; `tag` names it (`CREATE SOURCE`), as a Postgres command tag.
    Done {
        tag: String,
    },
}

impl Output {
    fn done(tag: &str) -> Self {
        Output::Done { tag: tag.to_string() }
    }

    fn rows(schema: SchemaRef, batch: RecordBatch) -> Self {
        Output::Rows {
            schema,
            batches: vec![batch],
        }
    }
}

pub struct Session {
    db: Arc<Database>,
    settings: Mutex<BTreeMap<String, String>>,
}

impl Session {
    pub fn new(db: Arc<Database>) -> Self {
        Session {
            db,
            settings: Mutex::new(BTreeMap::new()),
        }
    }

    /// A session on its own database in `data_dir`.
    pub async fn open(data_dir: impl AsRef<Path>) -> Result<Self> {
        Ok(Session::new(Database::open(data_dir).await?))
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Runs every statement in `sql`, in order; stops at the first error.
    pub async fn execute(&self, sql: &str) -> Result<Vec<Output>> {
        let mut outputs = Vec::new();
        for statement in parse_statements(sql)? {
            outputs.push(self.execute_statement(statement).await?);
        }
        Ok(outputs)
    }

    /// What a statement will return, without running anything with effects: the types of its
    /// `$n` parameters and its result columns (`None` when it returns no rows). For the Postgres
    /// extended protocol's Describe.
    pub async fn describe_sql(&self, sql: &str) -> Result<(Vec<DataType>, Option<SchemaRef>)> {
        let mut statements = parse_statements(sql)?;
        if statements.len() != 1 {
            return Ok((Vec::new(), None));
        }
        match statements.remove(0) {
            Statement::Query(statement) => {
                let plan = self.plan_query(statement).await?;
                let types = plan.get_parameter_types()?;
                let mut params: Vec<(usize, DataType)> = types
                    .into_iter()
                    .filter_map(|(name, t)| Some((name.trim_start_matches('$').parse::<usize>().ok()?, t.unwrap_or(DataType::Utf8))))
                    .collect();
                params.sort_by_key(|(i, _)| *i);
                let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
                let returns_rows = !matches!(
                    plan,
                    LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_)
                );
                Ok((params.into_iter().map(|(_, t)| t).collect(), returns_rows.then_some(schema)))
            }
            // Commands that only read: run them to learn their columns.
            statement @ (Statement::Show(_)
            | Statement::ShowCheckpoints { .. }
            | Statement::ShowSavepoints
            | Statement::Describe { .. }
            | Statement::DescribeJob { .. }
            | Statement::DescribeSavepoint { .. }
            | Statement::ExplainCreateJob(_)
            | Statement::ExplainRestoreJob(_)) => match self.execute_statement(statement).await? {
                Output::Rows { schema, .. } => Ok((Vec::new(), Some(schema))),
                Output::Done { .. } => Ok((Vec::new(), None)),
            },
            Statement::SavepointJob { .. } | Statement::StopJob { savepoint: true, .. } => Ok((
                Vec::new(),
                Some(Arc::new(Schema::new(vec![
                    Field::new("name", DataType::Utf8, true),
                    Field::new("path", DataType::Utf8, true),
                    Field::new("size_bytes", DataType::Utf8, true),
                ]))),
            )),
            _ => Ok((Vec::new(), None)),
        }
    }

    /// DataFusion's logical plan of a query, `$n` parameters left unbound.
    async fn plan_query(&self, statement: Box<datafusion::sql::sqlparser::ast::Statement>) -> Result<LogicalPlan> {
        Ok(self
            .db
            .context()
            .state()
            .statement_to_plan(DfStatement::Statement(statement))
            .await?)
    }

    /// Runs one statement with values for its `$n` parameters (Postgres extended protocol).
    pub async fn execute_with_params(&self, sql: &str, params: Vec<datafusion::common::ScalarValue>) -> Result<Vec<Output>> {
        if params.is_empty() {
            return self.execute(sql).await;
        }
        let mut statements = parse_statements(sql)?;
        let statement = match (statements.len(), statements.pop()) {
            (1, Some(Statement::Query(statement))) => statement,
            _ => return Err(Error::unsupported("parameters ($1, ...) are supported in a single SELECT only")),
        };
        let plan = self.plan_query(statement).await?;
        let plan = plan.with_param_values(datafusion::common::ParamValues::List(params.into_iter().map(Into::into).collect()))?;
        let frame = self.db.context().execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        Ok(vec![Output::Rows {
            schema,
            batches: frame.collect().await?,
        }])
    }

    /// Runs the statements of a script one by one, handing each output over as soon as it is ready.
    pub async fn execute_script(&self, sql: &str, mut on_output: impl FnMut(Output)) -> Result<()> {
        for statement in parse_statements(sql)? {
            on_output(self.execute_statement(statement).await?);
        }
        Ok(())
    }

    async fn execute_statement(&self, statement: Statement) -> Result<Output> {
        match statement {
            Statement::CreateSource {
                name,
                columns,
                watermark,
                mut options,
                if_not_exists,
            } => {
                let connector = options
                    .remove("connector")
                    .ok_or_else(|| Error::invalid("a source needs WITH (connector = 'nexmark' | 'datagen' | 'file', ...)"))?;
                let def = SourceDef {
                    name: name.clone(),
                    columns,
                    watermark,
                    connector,
                    options,
                };
                self.create_source(def, if_not_exists)
            }
            Statement::CreateTable {
                name,
                columns,
                primary_key,
                mut options,
                if_not_exists,
            } => {
                let connector = match options.remove("connector") {
                    Some(c) => TableConnector::parse(&c)?,
                    None => TableConnector::Stored,
                };
                if let Some(key) = options.keys().next() {
                    return Err(Error::invalid(format!(
                        "unknown table option '{key}'; a table takes only 'connector'"
                    )));
                }
                self.create_table(name, columns, primary_key, connector, if_not_exists)
            }
            Statement::CreateJob(job) => self.create_job(job).await,
            Statement::ExplainCreateJob(job) => {
                let (_, graph) = self.plan_job(&job).await?;
                let text = graph.to_string();
                let schema = Arc::new(Schema::new(vec![Field::new("plan", DataType::Utf8, false)]));
                let lines: ArrayRef = Arc::new(StringArray::from_iter_values(text.lines().collect::<Vec<_>>()));
                Ok(Output::rows(schema.clone(), RecordBatch::try_new(schema, vec![lines])?))
            }
            Statement::Show(target) => self.show(target),
            Statement::ShowCheckpoints { job } => self.show_checkpoints(&job),
            Statement::ShowVariable { name } => {
                let value = crate::planner::statement::POSTGRES_VARIABLES
                    .iter()
                    .find(|(v, _)| *v == name)
                    .map_or("", |(_, value)| value);
                string_table(&[name.as_str()], vec![vec![value]])
            }
            Statement::Describe { name } => self.describe(&name),
            Statement::DescribeJob { name } => self.describe_job(&name),
            Statement::Drop { kind, name, if_exists } => self.drop(kind, &name, if_exists).await,
            Statement::Set { key, value } => {
                let mut probe = BTreeMap::new();
                probe.insert(key.clone(), value.clone());
                JobSettings::from_options(&probe)?;
                self.settings
                    .lock()
                    .map_err(|_| Error::internal("settings lock poisoned"))?
                    .insert(key, value);
                Ok(Output::done("SET"))
            }
            Statement::WaitJob { name } => {
                if !self.db.catalog()?.jobs.contains_key(&name) {
                    return Err(Error::not_found("job", &name));
                }
                match self.db.jobs().get(&name)? {
                    Some(_) => {
                        self.db.jobs().wait(&name).await?;
                    }
                    None => {
                        let catalog = self.db.catalog()?;
                        if let Some(job) = catalog.jobs.get(&name).filter(|j| j.status == JobStatus::Failed) {
                            return Err(Error::user(
                                crate::error::UserErrorKind::JobFailed,
                                format!("job '{name}' failed: {}", job.error.clone().unwrap_or_default()),
                            ));
                        }
                    }
                }
                Ok(Output::done("WAIT JOB"))
            }
            Statement::Query(statement) => self.query(*statement).await,
            Statement::SavepointJob { job, dir, options } => self.savepoint_job(&job, dir, &options).await,
            Statement::StopJob { job, savepoint } => self.stop_job(&job, savepoint).await,
            Statement::CancelJob { job } => self.cancel_job(&job).await,
            Statement::RestoreJob(restore) => self.restore_job(&restore, false).await,
            Statement::ExplainRestoreJob(restore) => self.restore_job(&restore, true).await,
            Statement::ShowSavepoints => self.show_savepoints(),
            Statement::DescribeSavepoint { name } => self.describe_savepoint(&name),
            Statement::DropSavepoint { name, if_exists } => self.drop_savepoint(&name, if_exists),
            Statement::TransactionNoop { tag } => Ok(Output::Done { tag }),
        }
    }

    fn create_source(&self, def: SourceDef, if_not_exists: bool) -> Result<Output> {
        if self.db.catalog()?.relation_exists(&def.name) {
            return if if_not_exists {
                Ok(Output::done("CREATE SOURCE"))
            } else {
                Err(Error::already_exists("relation", &def.name))
            };
        }
        validate_source(&def)?;
        let provider = Arc::new(SourceTable::new(def.clone())?);
        self.db.update_catalog(|c| {
            c.sources.insert(def.name.clone(), def.clone());
            Ok(())
        })?;
        self.db.context().register_table(def.name.as_str(), provider)?;
        Ok(Output::done("CREATE SOURCE"))
    }

    fn create_table(
        &self,
        name: String,
        columns: Vec<ColumnDef>,
        primary_key: Vec<String>,
        connector: TableConnector,
        if_not_exists: bool,
    ) -> Result<Output> {
        if self.db.catalog()?.relation_exists(&name) {
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
            };
            c.next_table_id += 1;
            c.tables.insert(name.clone(), def.clone());
            Ok(def)
        })?;
        self.db.table_store().drop_table(def.id)?;
        self.db
            .context()
            .register_table(name.as_str(), Arc::new(StoredTable::new(def, self.db.table_store().clone())?))?;
        Ok(Output::done("CREATE TABLE"))
    }

    pub(crate) fn settings_snapshot(&self) -> Result<BTreeMap<String, String>> {
        Ok(self.settings.lock().map_err(|_| Error::internal("settings lock poisoned"))?.clone())
    }

    /// Plans a stored job's `INSERT INTO ... SELECT ...` with these settings.
    pub(crate) async fn plan_insert_sql(
        &self,
        insert_sql: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<(crate::graph::JobGraph, JobSettings)> {
        self.db.plan_insert_sql(insert_sql, options).await
    }

    /// The job's settings (session settings overlaid with its WITH options) and its graph.
    async fn plan_job(&self, job: &CreateJob) -> Result<(BTreeMap<String, String>, crate::graph::JobGraph)> {
        let mut options = self.settings.lock().map_err(|_| Error::internal("settings lock poisoned"))?.clone();
        options.extend(job.options.clone());
        let settings = JobSettings::from_options(&options)?;
        let target = insert_target(&job.insert)?;
        let table = self
            .db
            .catalog()?
            .tables
            .get(&target)
            .cloned()
            .ok_or_else(|| Error::not_found("table", &target))?;
        let graph = settings.pin_uids(plan_job(self.db.context(), &job.insert, &table, settings.parallelism).await?)?;
        Ok((options, graph))
    }

    async fn create_job(&self, job: CreateJob) -> Result<Output> {
        {
            let catalog = self.db.catalog()?;
            if let Some(existing) = catalog.jobs.get(&job.name) {
                return Err(Error::already_exists("job", &existing.name));
            }
        }
        let (options, graph) = self.plan_job(&job).await?;
        let settings = JobSettings::from_options(&options)?;
        // A new job starts from nothing: no state, markers or checkpoints of an earlier job of this name.
        let checkpoints = crate::job::checkpoint_root(
            self.db.data_dir(),
            settings.checkpoints.as_ref().and_then(|c| c.dir.as_deref()),
            &job.name,
        );
        for dir in [self.db.data_dir().join("jobs").join(&job.name), checkpoints] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::internal(format!("cannot clear {}: {e}", dir.display())))?;
            }
        }
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

    async fn drop(&self, kind: ObjectKind, name: &str, if_exists: bool) -> Result<Output> {
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
                    if !retain {
                        let _ = std::fs::remove_dir_all(job.checkpoint_storage(self.db.data_dir()).root());
                    }
                }
                self.db.jobs().forget(name)?;
                self.db.table_store().clear_commits(name)?;
                self.db.update_catalog(|c| {
                    c.jobs.remove(name);
                    Ok(())
                })?;
                let _ = std::fs::remove_dir_all(self.db.data_dir().join("jobs").join(name));
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
                self.db.context().deregister_table(name)?;
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

    fn show(&self, target: ShowTarget) -> Result<Output> {
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
                let batch = crate::system_tables::jobs_batch(&self.db)?;
                Ok(Output::rows(batch.schema(), batch))
            }
        }
    }

    fn show_checkpoints(&self, name: &str) -> Result<Output> {
        if !self.db.catalog()?.jobs.contains_key(name) {
            return Err(Error::not_found("job", name));
        }
        let records = match self.db.jobs().get(name)? {
            Some(job) => job.checkpoints.lock().map(|h| h.records.clone()).unwrap_or_default(),
            None => Vec::new(),
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
        ];
        Ok(Output::rows(schema.clone(), RecordBatch::try_new(schema, columns)?))
    }

    fn describe(&self, name: &str) -> Result<Output> {
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

    fn describe_job(&self, name: &str) -> Result<Output> {
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
                rows.push(("rows_per_second".into(), format!("{:.0}", s.rows_per_second)));
                rows.push(("error".into(), s.error.clone().unwrap_or_default()));
                rows.push(("restarts".into(), s.restarts.to_string()));
                rows.push(("last_failure".into(), s.last_failure.clone().unwrap_or_default()));
                rows.push(("last_checkpoint".into(), s.last_checkpoint.clone().unwrap_or_default()));
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

    async fn query(&self, statement: sqlparser::ast::Statement) -> Result<Output> {
        let state = self.db.context().state();
        let plan = state.statement_to_plan(DfStatement::Statement(Box::new(statement))).await?;
        match &plan {
            LogicalPlan::Dml(_) => {
                return Err(Error::unsupported(
                    "INSERT / UPDATE / DELETE are done by jobs: CREATE JOB name AS INSERT INTO ... SELECT ...",
                ));
            }
            LogicalPlan::Ddl(_) => {
                return Err(Error::unsupported(
                    "this DDL is not supported; use CREATE SOURCE / CREATE TABLE / DROP",
                ));
            }
            LogicalPlan::Statement(_) | LogicalPlan::Copy(_) => {
                return Err(Error::unsupported("this statement is not supported"));
            }
            _ => {}
        }
        let frame = self.db.context().execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        Ok(Output::Rows { schema, batches })
    }
}

fn string_table<S: AsRef<str>>(names: &[&str], columns: Vec<Vec<S>>) -> Result<Output> {
    let schema = Arc::new(Schema::new(
        names.iter().map(|n| Field::new(*n, DataType::Utf8, false)).collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from_iter_values(c.iter().map(|s| s.as_ref()))) as ArrayRef)
        .collect();
    Ok(Output::rows(schema.clone(), RecordBatch::try_new(schema, arrays)?))
}
