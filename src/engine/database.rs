//! `Database`: what every connection shares — the catalog, the DataFusion context the catalog's
//! objects are registered in, the table store and the running jobs. Opening it resumes the jobs
//! that were running when the process stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use datafusion::common::TableReference;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;

use crate::catalog::{Catalog, JobStatus, TableConnector};
use crate::checkpoint::remote::RemoteDir;
use crate::checkpoint::storage::CheckpointStorage;
use crate::connectors::SourceConfig;
use crate::connectors::kafka_sink::{DeliveryGuarantee, KafkaSinkConfig};
use crate::connectors::table_store::TableStore;
use crate::data_dir::{DataDir, FileRoots};
use crate::engine::providers::source_table::SourceTable;
use crate::engine::providers::stored_table::StoredTable;
use crate::engine::resume_guard;
use crate::error::{Error, Result};
use crate::graph::{LookupJoinSpec, LookupSource, OperatorSpec};
use crate::job::{JobManager, JobSettings};
use crate::planner::lookup_join::{LOOKUP_FUNCTION, LookupFunction};
use crate::planner::statement::{Statement, parse_statements};
use crate::planner::window_function::{WindowFunction, WindowFunctionKind};
use crate::planner::{SINGLE_DISTINCT_RULE, insert_target, plan_job};
use crate::runtime::metrics::ServerMetrics;
use crate::settings::{S3Options, StorageLocation};

/// How a database is opened.
#[derive(Debug, Clone, Default)]
pub struct DatabaseOptions {
    /// Directories besides the data directory that SQL may name paths in (`--file-root`).
    pub file_roots: Vec<PathBuf>,
}

impl DatabaseOptions {
    /// For a local user (the REPL, `weir run`, an embedding program): the current directory is a
    /// file root too, so `path = 'data/events.csv'` works where Weir was started.
    pub fn local(mut extra_roots: Vec<PathBuf>) -> Result<Self> {
        extra_roots.push(std::env::current_dir()?);
        Ok(DatabaseOptions { file_roots: extra_roots })
    }
}

/// Shared by every session of a process (behind an `Arc`); see the module documentation.
pub struct Database {
    data_dir: PathBuf,
    file_roots: FileRoots,
    catalog: Arc<RwLock<Catalog>>,
    ctx: SessionContext,
    table_store: Arc<TableStore>,
    jobs: JobManager,
    /// The pgwire server's connections and statements (`/metrics`).
    server_metrics: Arc<ServerMetrics>,
}

impl Database {
    /// Opens (or creates) the database in `data_dir` for a local user ([`DatabaseOptions::local`]).
    pub async fn open(data_dir: impl AsRef<Path>) -> Result<Arc<Database>> {
        Self::open_with(data_dir, DatabaseOptions::local(Vec::new())?).await
    }

    /// Opens (or creates) the database in `data_dir` and resumes the jobs that were running when it
    /// stopped: those with checkpointing from their latest complete checkpoint.
    pub async fn open_with(data_dir: impl AsRef<Path>, options: DatabaseOptions) -> Result<Arc<Database>> {
        let (db, resumable) = Self::open_catalog(data_dir, &options)?;
        for (name, insert_sql, options) in resumable {
            let resumed = match db.guard_resume(&name, &options) {
                Ok(()) => db.resume_job(&name, &insert_sql, &options).await,
                Err(e) => Err(e),
            };
            if let Err(e) = resumed {
                tracing::error!("cannot resume job {name}: {e}");
                let message = format!("could not be resumed after a restart: {e}");
                db.update_catalog(|c| {
                    if let Some(job) = c.jobs.get_mut(&name) {
                        job.status = JobStatus::Failed;
                        job.error = Some(message.clone());
                    }
                    Ok(())
                })?;
            }
        }
        Ok(db)
    }

    /// Refuses to resume a job that took the process down at its last starts (`resume_guard`).
    fn guard_resume(&self, name: &str, options: &BTreeMap<String, String>) -> Result<()> {
        let mut settings = JobSettings::from_options(options)?;
        self.resolve_checkpoint_dir(&mut settings)?;
        let storage = self.checkpoint_storage(name, &settings)?;
        match resume_guard::before_resume(&self.paths().job(name), &storage) {
            Ok(admitted) => admitted.map_err(Error::invalid_state),
            // Storage that does not answer now fails the restore, which the restart strategy
            // retries; it is no reason to give the job up.
            Err(e) => {
                tracing::warn!("job {name}: cannot check for earlier crashes while it resumed ({e}); resuming it");
                Ok(())
            }
        }
    }

    /// The checkpoint directory of job `name`.
    pub(crate) fn checkpoint_storage(&self, name: &str, settings: &JobSettings) -> Result<Arc<CheckpointStorage>> {
        let location = settings.checkpoint_location(&self.paths(), name);
        CheckpointStorage::open(
            &location,
            self.paths().remote_copies(&location.to_string()),
            settings.local_recovery(),
        )
    }

    /// A checkpoint or savepoint location named in SQL: an `s3://` URL (reached with the `s3.*`
    /// keys of `s3`), or a path, which must lie inside the file roots.
    pub(crate) fn resolve_location(&self, what: &str, text: &str, s3: &S3Options) -> Result<StorageLocation> {
        match StorageLocation::parse(what, text, s3)? {
            StorageLocation::Local(path) => Ok(StorageLocation::Local(self.file_roots.resolve(what, &path)?)),
            remote => Ok(remote),
        }
    }

    /// Resolves a job's configured checkpoint directory: a local one inside the file roots.
    fn resolve_checkpoint_dir(&self, settings: &mut JobSettings) -> Result<()> {
        if let Some(StorageLocation::Local(dir)) = settings.checkpoints.as_mut().and_then(|c| c.dir.as_mut()) {
            *dir = self.file_roots.resolve("execution.checkpointing.dir", dir)?;
        }
        Ok(())
    }

    /// A clean exit follows: no job took the process down (see `resume_guard`), and the jobs torn
    /// down with the runtime keep their catalog status, so the next start resumes them.
    pub fn prepare_exit(&self) {
        self.jobs.prepare_exit();
        if let Ok(catalog) = self.catalog() {
            for name in catalog.jobs.keys() {
                resume_guard::clean_exit(&self.paths().job(name));
            }
        }
    }

    /// Plans a job that ran when the process stopped and starts it in the background: the server
    /// comes up while the job restores (SHOW JOBS shows it RESTORING, with its progress).
    async fn resume_job(&self, name: &str, insert_sql: &str, options: &BTreeMap<String, String>) -> Result<()> {
        let (graph, settings) = self.plan_insert_sql(insert_sql, options).await?;
        self.jobs.resume(name, graph, settings, insert_sql.to_string())
    }

    /// Plans a stored job's `INSERT INTO ... SELECT ...` with these settings.
    pub(crate) async fn plan_insert_sql(
        &self,
        insert_sql: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<(crate::graph::JobGraph, JobSettings)> {
        let insert = match parse_statements(insert_sql)?.into_iter().next() {
            Some(Statement::Query(statement)) => match *statement {
                sqlparser::ast::Statement::Insert(insert) => insert,
                _ => return Err(Error::syntax("a job runs INSERT INTO <table> SELECT ...")),
            },
            _ => return Err(Error::syntax("a job runs INSERT INTO <table> SELECT ...")),
        };
        self.plan_insert(&insert, options).await
    }

    /// Plans a job's `INSERT INTO ... SELECT ...` with its settings (parsed here, once).
    pub(crate) async fn plan_insert(
        &self,
        insert: &sqlparser::ast::Insert,
        options: &BTreeMap<String, String>,
    ) -> Result<(crate::graph::JobGraph, JobSettings)> {
        let mut settings = JobSettings::from_options(options)?;
        self.resolve_checkpoint_dir(&mut settings)?;
        let target = insert_target(insert)?;
        let catalog = self.catalog_snapshot()?;
        let table = catalog.tables.get(&target).ok_or_else(|| Error::not_found("table", &target))?;
        if settings.checkpoints.is_none()
            && matches!(table.connector, TableConnector::Kafka)
            && KafkaSinkConfig::parse(table)?.delivery == DeliveryGuarantee::ExactlyOnce
        {
            return Err(Error::invalid(format!(
                "table '{}' is written 'exactly-once': its Kafka transactions commit with checkpoints; set 'execution.checkpointing.interval'",
                table.name
            )));
        }
        let graph = settings.pin_uids(plan_job(&self.ctx, &catalog, insert, table, settings.parallelism).await?)?;
        // A lookup join reads a source's rows whole when the job starts: it must end.
        for node in &graph.operators {
            if let OperatorSpec::LookupJoin(LookupJoinSpec {
                table: LookupSource::Source { def, .. },
                ..
            }) = &node.spec
                && !SourceConfig::parse(def, &self.file_roots)?.is_bounded()
            {
                return Err(Error::unsupported(format!(
                    "the table of a lookup join must be a result table or a bounded source; source '{}' is unbounded",
                    def.name
                )));
            }
        }
        Ok((graph, settings))
    }

    /// A bucket that does not answer, or refuses the credentials, fails CREATE / RESTORE JOB now
    /// rather than the job at its first checkpoint. (A job resumed at start is not probed: the
    /// bucket being down then is a restore that fails and is retried, not a job lost.)
    pub(crate) async fn probe_checkpoint_dir(&self, settings: &JobSettings) -> Result<()> {
        if let Some(StorageLocation::S3(location)) = settings.checkpoints.as_ref().and_then(|c| c.dir.clone()) {
            tokio::task::spawn_blocking(move || RemoteDir::open(&location)?.probe())
                .await
                .map_err(|e| Error::internal(format!("checking the checkpoint directory failed: {e}")))??;
        }
        Ok(())
    }

    /// On shutdown, every running job with checkpointing takes a last checkpoint, so a restart resumes
    /// from where it stopped instead of from the last periodic one.
    pub async fn shutdown(&self) {
        let snapshots = self.jobs().snapshots().unwrap_or_default();
        for snapshot in snapshots.into_iter().filter(|s| s.status == crate::catalog::JobStatus::Running) {
            let Ok(Some(job)) = self.jobs().get(&snapshot.name) else { continue };
            if job.settings.checkpoints.is_none() {
                continue;
            }
            let request = job.request_checkpoint(crate::checkpoint::coordinator::RequestKind::Checkpoint);
            match tokio::time::timeout(std::time::Duration::from_secs(30), request).await {
                // Logged, not printed: printing panics when the output is a closed pipe.
                Ok(Ok(done)) => tracing::warn!("job {} checkpointed at shutdown ({})", snapshot.name, done.path),
                Ok(Err(e)) => tracing::error!("job {}: no final checkpoint: {e}", snapshot.name),
                Err(_) => tracing::error!("job {}: final checkpoint timed out", snapshot.name),
            }
        }
        self.prepare_exit();
    }

    /// Loads the catalog and registers everything; returns the jobs to resume.
    #[allow(clippy::type_complexity)]
    fn open_catalog(
        data_dir: impl AsRef<Path>,
        options: &DatabaseOptions,
    ) -> Result<(Arc<Database>, Vec<(String, String, BTreeMap<String, String>)>)> {
        let data_dir = data_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| Error::internal(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        let file_roots = FileRoots::new(&data_dir, &options.file_roots)?;
        let mut catalog = Catalog::load(&data_dir)?;
        // Jobs that were running when Weir stopped resume if they checkpoint; others cannot.
        let mut resumable = Vec::new();
        for job in catalog.jobs.values_mut() {
            if job.status.is_terminal() {
                continue;
            }
            match JobSettings::from_options(&job.options) {
                Ok(settings) if settings.checkpoints.is_some() => {
                    resumable.push((job.name.clone(), job.insert_sql.clone(), job.options.clone()))
                }
                _ => {
                    job.status = JobStatus::Failed;
                    job.error =
                        Some("Weir stopped while the job ran; without checkpointing it cannot resume. Drop it and create it again".into());
                }
            }
        }
        catalog.save(&data_dir)?;
        let catalog = Arc::new(RwLock::new(catalog));
        let table_store = TableStore::open(&DataDir::new(&data_dir).tables())?;
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        ctx.remove_optimizer_rule(SINGLE_DISTINCT_RULE);
        crate::planner::subquery_apply::register(&ctx);
        crate::planner::flink_functions::register(&ctx);
        crate::planner::postgres_arrays::register(&ctx)?;
        for kind in [
            WindowFunctionKind::Tumble,
            WindowFunctionKind::Hop,
            WindowFunctionKind::Cumulate,
            WindowFunctionKind::Session,
            WindowFunctionKind::PartitionedSession,
        ] {
            // DataFusion looks table functions up by the name as written.
            let function = Arc::new(WindowFunction {
                kind,
                catalog: catalog.clone(),
            });
            ctx.register_udtf(kind.name(), function.clone());
            ctx.register_udtf(&kind.name().to_ascii_uppercase(), function);
        }
        ctx.register_udtf(LOOKUP_FUNCTION, Arc::new(LookupFunction { catalog: catalog.clone() }));
        let listener_catalog = catalog.clone();
        let listener_dir = data_dir.clone();
        let listener: crate::job::StatusListener = Arc::new(move |name, status, error| {
            if let Ok(mut catalog) = listener_catalog.write()
                && let Some(job) = catalog.jobs.get_mut(name)
            {
                job.status = status;
                job.error = error;
                if let Err(e) = catalog.save(&listener_dir) {
                    tracing::error!("cannot record the status of job {name}: {e}");
                }
            }
        });
        let jobs = JobManager::new(data_dir.clone(), file_roots.clone(), table_store.clone(), listener);
        let db = Database {
            data_dir,
            file_roots,
            catalog,
            ctx,
            table_store,
            jobs,
            server_metrics: Arc::default(),
        };
        db.register_all()?;
        let db = Arc::new(db);
        crate::engine::system_tables::register(&db)?;
        Ok((db, resumable))
    }

    /// The paths of everything under the data directory.
    pub fn paths(&self) -> DataDir {
        DataDir::new(&self.data_dir)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directories SQL may name paths in.
    pub fn file_roots(&self) -> &FileRoots {
        &self.file_roots
    }

    pub fn server_metrics(&self) -> &Arc<ServerMetrics> {
        &self.server_metrics
    }

    pub(crate) fn jobs(&self) -> &JobManager {
        &self.jobs
    }

    pub(crate) fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub(crate) fn table_store(&self) -> &Arc<TableStore> {
        &self.table_store
    }

    pub(crate) fn catalog_snapshot(&self) -> Result<Catalog> {
        Ok(self.catalog()?.clone())
    }

    pub(crate) fn catalog(&self) -> Result<std::sync::RwLockReadGuard<'_, Catalog>> {
        self.catalog.read().map_err(|_| Error::internal("catalog lock poisoned"))
    }

    /// Changes the catalog and saves it; the change is undone if saving fails.
    pub(crate) fn update_catalog<T>(&self, change: impl FnOnce(&mut Catalog) -> Result<T>) -> Result<T> {
        let mut catalog = self.catalog.write().map_err(|_| Error::internal("catalog lock poisoned"))?;
        let before = catalog.clone();
        let value = change(&mut catalog)?;
        if let Err(e) = catalog.save(&self.data_dir) {
            *catalog = before;
            return Err(e);
        }
        crate::engine::system_tables::pg_catalog::refresh(&self.ctx, &catalog)?;
        Ok(value)
    }

    fn register_all(&self) -> Result<()> {
        let catalog = self.catalog()?.clone();
        for source in catalog.sources.values() {
            self.ctx.register_table(
                TableReference::bare(source.name.as_str()),
                Arc::new(SourceTable::new(source.clone(), self.file_roots.clone())?),
            )?;
        }
        for table in catalog.tables.values() {
            self.ctx.register_table(
                TableReference::bare(table.name.as_str()),
                Arc::new(StoredTable::new(table.clone(), self.table_store.clone())?),
            )?;
        }
        crate::engine::system_tables::pg_catalog::refresh(&self.ctx, &catalog)
    }
}
