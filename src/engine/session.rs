//! `Session`: one connection's settings over the shared `Database`. `Session::execute` is the
//! single entry point for SQL; the REPL, `weir run`, pgwire and the sqllogictest runner are thin
//! adapters over it. `execute_statement` is the one `match` over statement kinds; what each kind
//! does is in `commands/`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::LogicalPlan;

use crate::engine::commands::point_get::PointGet;
use crate::engine::commands::postgres_session::PostgresSession;
use crate::engine::database::Database;
use crate::error::{Error, Result};
use crate::job::JobSettings;
use crate::planner::postgres_commands::CopyOptions;
use crate::planner::statement::{Statement, parse_statements};
use crate::settings::S3Options;

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
    /// A transaction-control statement: its tag and what it did to the transaction block (the
    /// wire protocol reports the block's state with every ReadyForQuery).
    Transaction {
        tag: &'static str,
        block: BlockChange,
    },
    /// The rows of `COPY ... TO STDOUT`, to be sent in COPY's format.
    Copy {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        options: CopyOptions,
    },
}

/// What a transaction-control statement did to the session's transaction block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockChange {
    Started,
    Ended,
    /// Still in it (SAVEPOINT, ROLLBACK TO SAVEPOINT), or still outside one (BEGIN inside a block
    /// is a warning in Postgres, COMMIT outside one too).
    Unchanged,
}

impl Output {
    pub(crate) fn done(tag: &str) -> Self {
        Output::Done { tag: tag.to_string() }
    }

    pub(crate) fn rows(schema: SchemaRef, batch: RecordBatch) -> Self {
        Output::Rows {
            schema,
            batches: vec![batch],
        }
    }
}

pub struct Session {
    pub(crate) db: Arc<Database>,
    /// Weir's job settings (`SET 'parallelism' = '2'`) for the session's next jobs.
    settings: Mutex<BTreeMap<String, String>>,
    /// Postgres parameters, cursors and transaction block.
    pub(crate) postgres: PostgresSession,
}

impl Session {
    pub fn new(db: Arc<Database>) -> Self {
        Session {
            db,
            settings: Mutex::new(BTreeMap::new()),
            postgres: PostgresSession::default(),
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
        for statement in self.parse_in_session(sql)? {
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
                if let Some(get) = PointGet::recognize(self, &statement)?
                    && let Some(types) = get.parameter_types()?
                {
                    return Ok((types, Some(get.schema()?)));
                }
                let planned = self.plan_query(statement).await?;
                let params = parameter_types(&planned.plan)?;
                let schema = planned.result_schema();
                let returns_rows = !matches!(
                    planned.plan,
                    LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_)
                );
                Ok((params, returns_rows.then_some(schema)))
            }
            Statement::DeclareCursor(declare) => match *declare.query {
                sqlparser::ast::Statement::Query(query) => {
                    let planned = self.plan_query(Box::new(sqlparser::ast::Statement::Query(query))).await?;
                    Ok((parameter_types(&planned.plan)?, None))
                }
                _ => Ok((Vec::new(), None)),
            },
            Statement::FetchCursor(fetch) if !fetch.skip => Ok((Vec::new(), Some(self.cursor_schema(&fetch.name).await?))),
            // Commands that only read: run them to learn their columns.
            statement @ (Statement::Show(_)
            | Statement::ShowVariable { .. }
            | Statement::ShowCheckpoints { .. }
            | Statement::ShowSavepoints
            | Statement::Describe { .. }
            | Statement::DescribeJob { .. }
            | Statement::DescribeSavepoint { .. }
            | Statement::ExplainCreateJob(_)
            | Statement::ExplainRestoreJob(_)) => match self.execute_statement(statement).await? {
                Output::Rows { schema, .. } => Ok((Vec::new(), Some(schema))),
                Output::Done { .. } | Output::Transaction { .. } | Output::Copy { .. } => Ok((Vec::new(), None)),
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

    /// Runs one statement with values for its `$n` parameters (Postgres extended protocol).
    pub async fn execute_with_params(&self, sql: &str, params: Vec<datafusion::common::ScalarValue>) -> Result<Vec<Output>> {
        if params.is_empty() {
            return self.execute(sql).await;
        }
        let outcome = self.execute_one_with_params(sql, params).await;
        self.postgres.note_outcome(&outcome)?;
        outcome
    }

    async fn execute_one_with_params(&self, sql: &str, params: Vec<datafusion::common::ScalarValue>) -> Result<Vec<Output>> {
        let mut statements = parse_statements(sql)?;
        if let Some(statement) = statements.first() {
            self.postgres.admit(statement)?;
        }
        let statement = match (statements.len(), statements.pop()) {
            (1, Some(Statement::Query(statement))) => statement,
            (1, Some(Statement::DeclareCursor(declare))) => {
                return Ok(vec![self.with_statement_timeout(self.declare_cursor(declare, params)).await?]);
            }
            _ => return Err(Error::unsupported("parameters ($1, ...) are supported in a single SELECT only")),
        };
        if let Some(get) = PointGet::recognize(self, &statement)?
            && let Some(output) = get.run(self, &params)?
        {
            return Ok(vec![output]);
        }
        let run = async {
            let planned = self.plan_query(statement).await?.with_param_values(params)?;
            self.run_query(planned).await
        };
        Ok(vec![self.with_statement_timeout(run).await?])
    }

    /// Runs the statements of a script one by one, handing each output over as soon as it is ready.
    pub async fn execute_script(&self, sql: &str, mut on_output: impl FnMut(Output)) -> Result<()> {
        for statement in self.parse_in_session(sql)? {
            on_output(self.execute_statement(statement).await?);
        }
        Ok(())
    }

    /// The statements of `sql`; a syntax error aborts a transaction block as any error does.
    fn parse_in_session(&self, sql: &str) -> Result<Vec<Statement>> {
        let statements = parse_statements(sql);
        self.postgres.note_outcome(&statements)?;
        statements
    }

    /// Runs one parsed statement (for front ends that adjust statements, as the benchmark does
    /// with its sink), within the session's `statement_timeout`.
    pub async fn execute_statement(&self, statement: Statement) -> Result<Output> {
        self.postgres.admit(&statement)?;
        let outcome = self.with_statement_timeout(self.run_statement(statement)).await;
        self.postgres.note_outcome(&outcome)?;
        outcome
    }

    /// Runs `work` within the session's `statement_timeout`; Postgres' error when it takes longer.
    async fn with_statement_timeout<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match self.postgres.statement_timeout()? {
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(Error::user(
                    crate::error::UserErrorKind::Canceled,
                    "canceling statement due to statement timeout",
                ))
            }),
            None => work.await,
        }
    }

    async fn run_statement(&self, statement: Statement) -> Result<Output> {
        match statement {
            Statement::CreateSource {
                name,
                columns,
                watermark,
                primary_key,
                options,
                if_not_exists,
            } => self.create_source(name, columns, watermark, primary_key, options, if_not_exists),
            Statement::CreateTable {
                name,
                columns,
                primary_key,
                partitioned_by,
                options,
                if_not_exists,
            } => self.create_table(name, columns, primary_key, partitioned_by, options, if_not_exists),
            Statement::CreateJob(job) => self.create_job(job).await,
            Statement::ExplainCreateJob(job) => self.explain_create_job(&job).await,
            Statement::Show(target) => self.show(target),
            Statement::ShowCheckpoints { job } => self.show_checkpoints(&job),
            Statement::ShowVariable { name } => self.show_variable(&name),
            Statement::SetVariable { name, value } => self.set_variable(&name, value),
            Statement::ResetVariable { name } => self.reset_variable(name.as_deref()),
            Statement::DiscardAll => self.discard_all().await,
            Statement::DeclareCursor(declare) => self.declare_cursor(declare, Vec::new()).await,
            Statement::FetchCursor(fetch) => self.fetch_cursor(fetch).await,
            Statement::CloseCursor { name } => self.close_cursor(name.as_deref()).await,
            Statement::CopyTo(copy) => self.copy_to(copy).await,
            Statement::Describe { name } => self.describe(&name),
            Statement::DescribeJob { name } => self.describe_job(&name),
            Statement::Drop { kind, name, if_exists } => self.drop(kind, &name, if_exists).await,
            Statement::Set { key, value } => self.set(key, value),
            Statement::WaitJob { name } => self.wait_job(&name).await,
            Statement::Query(statement) => self.query(*statement).await,
            Statement::SavepointJob { job, dir, options } => self.savepoint_job(&job, dir, &options).await,
            Statement::StopJob { job, savepoint } => self.stop_job(&job, savepoint).await,
            Statement::CancelJob { job } => self.cancel_job(&job).await,
            Statement::RestoreJob(restore) => self.restore_job(&restore, false).await,
            Statement::ExplainRestoreJob(restore) => self.restore_job(&restore, true).await,
            Statement::ShowSavepoints => self.show_savepoints(),
            Statement::DescribeSavepoint { name } => self.describe_savepoint(&name),
            Statement::DropSavepoint { name, if_exists } => self.drop_savepoint(&name, if_exists),
            Statement::Transaction(command) => self.transaction_control(command).await,
            Statement::PostgresNoop { tag } => Ok(Output::Done { tag }),
        }
    }

    /// `SET 'key' = 'value'`: checked like a job setting, kept for the session's next jobs.
    fn set(&self, key: String, value: String) -> Result<Output> {
        // The key alone, with the session's s3.* keys (an s3:// directory needs them).
        let mut probe: BTreeMap<String, String> = self
            .settings_snapshot()?
            .into_iter()
            .filter(|(k, _)| k.starts_with("s3."))
            .collect();
        probe.insert(key.clone(), value.clone());
        JobSettings::from_options(&probe)?;
        if matches!(
            key.as_str(),
            "state.checkpoints.dir" | "execution.checkpointing.dir" | crate::engine::commands::savepoints::SAVEPOINT_DIR
        ) {
            self.db.resolve_location(&key, &value, &S3Options::from_settings(&probe)?)?;
        }
        self.settings
            .lock()
            .map_err(|_| Error::internal("settings lock poisoned"))?
            .insert(key, value);
        Ok(Output::done("SET"))
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
}

/// The types of a plan's `$n` parameters, in order. Where DataFusion leaves one open, it is taken
/// from where the parameter stands, as Postgres does: the target of a cast (`$1::bigint`), a row
/// count (`LIMIT $1`), an array of the other side's type (`x = ANY($1)`); else text.
fn parameter_types(plan: &LogicalPlan) -> Result<Vec<DataType>> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Cast, Expr, ExprSchemable, TryCast};

    let mut from_context: std::collections::HashMap<String, DataType> = std::collections::HashMap::new();
    plan.apply_with_subqueries(|node| {
        let input_schema = node
            .inputs()
            .first()
            .map_or_else(|| node.schema().clone(), |input| input.schema().clone());
        if let LogicalPlan::Limit(limit) = node {
            for count in [&limit.skip, &limit.fetch].into_iter().flatten() {
                if let Expr::Placeholder(p) = count.as_ref() {
                    from_context.entry(p.id.clone()).or_insert(DataType::Int64);
                }
            }
        }
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                match e {
                    Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                        if let Expr::Placeholder(p) = expr.as_ref() {
                            from_context.entry(p.id.clone()).or_insert_with(|| field.data_type().clone());
                        }
                    }
                    Expr::ScalarFunction(f) if f.name() == "array_has" => {
                        if let [Expr::Placeholder(p), element] = f.args.as_slice()
                            && let Ok(element_type) = element.get_type(&input_schema)
                        {
                            from_context
                                .entry(p.id.clone())
                                .or_insert_with(|| DataType::new_list(element_type, true));
                        }
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(TreeNodeRecursion::Continue)
    })?;
    let mut params: Vec<(usize, DataType)> = plan
        .get_parameter_types()?
        .into_iter()
        .filter_map(|(name, t)| {
            let t = t.or_else(|| from_context.get(&name).cloned()).unwrap_or(DataType::Utf8);
            Some((name.trim_start_matches('$').parse::<usize>().ok()?, t))
        })
        .collect();
    params.sort_by_key(|(i, _)| *i);
    Ok(params.into_iter().map(|(_, t)| t).collect())
}
