//! Plain SQL (SELECT and what else DataFusion runs) over sources, result tables and system tables.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::sql::parser::Statement as DfStatement;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::engine::commands::point_get::PointGet;
use crate::engine::commands::postgres_session::Cursor;
use crate::engine::session::{Output, Session};
use crate::error::{Error, Result};
use crate::planner::subquery_apply;

impl Session {
    /// DataFusion's logical plan of a query, `$n` parameters left unbound.
    pub(crate) async fn plan_query(&self, statement: Box<datafusion::sql::sqlparser::ast::Statement>) -> Result<LogicalPlan> {
        Ok(self
            .db
            .context()
            .state()
            .statement_to_plan(DfStatement::Statement(statement))
            .await?)
    }

    pub(crate) async fn query(&self, statement: sqlparser::ast::Statement) -> Result<Output> {
        if let Some(get) = PointGet::recognize(self, &statement)?
            && let Some(output) = get.run(self, &[])?
        {
            return Ok(output);
        }
        let state = self.db.context().state();
        let plan = state.statement_to_plan(DfStatement::Statement(Box::new(statement))).await?;
        self.run_query(plan).await
    }

    /// Runs a query plan to its end. The work runs in a task of its own, so the connection that
    /// waits for it can always answer a cancel request, also while a correlated subquery blocks
    /// the worker thread it runs on (`planner::subquery_apply`). Dropping the returned future (a
    /// cancel, a client gone) stops the task and the subqueries' threads.
    pub(crate) async fn run_query(&self, plan: LogicalPlan) -> Result<Output> {
        let (schema, physical, _stop_subqueries) = self.physical_plan(plan).await?;
        let mut task = AbortOnDrop(tokio::spawn(collect(physical, self.db.context().state().task_ctx())));
        let batches = match (&mut task.0).await {
            Ok(batches) => batches?,
            Err(e) => return Err(Error::internal(format!("a query task ended: {e}"))),
        };
        Ok(Output::Rows { schema, batches })
    }

    /// Starts a query plan whose rows are read as they are needed (a cursor).
    pub(crate) async fn stream_query(&self, plan: LogicalPlan) -> Result<Cursor> {
        let (schema, physical, stop_subqueries) = self.physical_plan(plan).await?;
        let stream = execute_stream(physical, self.db.context().state().task_ctx())?;
        Ok(Cursor::new(schema, stream, stop_subqueries))
    }

    /// The physical plan of a query, its result columns, and the guards that stop its correlated
    /// subqueries when dropped.
    async fn physical_plan(&self, plan: LogicalPlan) -> Result<(SchemaRef, Arc<dyn ExecutionPlan>, Vec<DropGuard>)> {
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
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let state = self.db.context().state();
        let plan = state.optimize(&plan)?;
        let stop_subqueries: Vec<DropGuard> = subquery_apply::applied_subquery_cancellations(&plan)
            .into_iter()
            .map(CancellationToken::drop_guard)
            .collect();
        let physical = state.query_planner().create_physical_plan(&plan, &state).await?;
        Ok((schema, physical, stop_subqueries))
    }
}

/// A task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
