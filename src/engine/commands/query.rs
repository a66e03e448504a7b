//! Plain SQL (SELECT and what else DataFusion runs) over sources, result tables and system tables.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::sql::parser::Statement as DfStatement;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::engine::commands::point_get::PointGet;
use crate::engine::commands::postgres_session::Cursor;
use crate::engine::session::{Output, Session};
use crate::error::{Error, Result};
use crate::planner::postgres_column_names::{ColumnRenames, name_columns_as_postgres};
use crate::planner::subquery_apply;

/// A planned query and the names its result columns get (Postgres' names, see
/// `planner::postgres_column_names`).
pub(crate) struct PlannedQuery {
    pub plan: LogicalPlan,
    renames: ColumnRenames,
}

impl PlannedQuery {
    /// The plan with values for its `$n` parameters.
    pub(crate) fn with_param_values(self, params: Vec<ScalarValue>) -> Result<Self> {
        if params.is_empty() {
            return Ok(self);
        }
        Ok(PlannedQuery {
            plan: self
                .plan
                .with_param_values(ParamValues::List(params.into_iter().map(Into::into).collect()))?,
            renames: self.renames,
        })
    }

    /// The result's columns as the client sees them.
    pub(crate) fn result_schema(&self) -> SchemaRef {
        let planned = self.plan.schema().as_arrow();
        if self.renames.is_empty() {
            return Arc::new(planned.clone());
        }
        let fields: Vec<Field> = planned
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_name(self.renames.name_of(f.name())))
            .collect();
        Arc::new(Schema::new_with_metadata(fields, planned.metadata().clone()))
    }
}

impl Session {
    /// DataFusion's logical plan of a query, `$n` parameters left unbound.
    pub(crate) async fn plan_query(&self, mut statement: Box<datafusion::sql::sqlparser::ast::Statement>) -> Result<PlannedQuery> {
        let renames = name_columns_as_postgres(&mut statement);
        let plan = self
            .db
            .context()
            .state()
            .statement_to_plan(DfStatement::Statement(statement))
            .await?;
        Ok(PlannedQuery { plan, renames })
    }

    pub(crate) async fn query(&self, statement: sqlparser::ast::Statement) -> Result<Output> {
        if let Some(get) = PointGet::recognize(self, &statement)?
            && let Some(output) = get.run(self, &[])?
        {
            return Ok(output);
        }
        let planned = self.plan_query(Box::new(statement)).await?;
        self.run_query(planned).await
    }

    /// Runs a query plan to its end. The work runs in a task of its own, so the connection that
    /// waits for it can always answer a cancel request, also while a correlated subquery blocks
    /// the worker thread it runs on (`planner::subquery_apply`). Dropping the returned future (a
    /// cancel, a client gone) stops the task and the subqueries' threads.
    pub(crate) async fn run_query(&self, planned: PlannedQuery) -> Result<Output> {
        let (schema, physical, _stop_subqueries) = self.physical_plan(planned).await?;
        let mut task = AbortOnDrop(tokio::spawn(collect(physical, self.db.context().state().task_ctx())));
        let batches = match (&mut task.0).await {
            Ok(batches) => batches?,
            Err(e) => return Err(Error::internal(format!("a query task ended: {e}"))),
        };
        let batches = batches
            .into_iter()
            .map(|batch| RecordBatch::try_new(schema.clone(), batch.columns().to_vec()))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Output::Rows { schema, batches })
    }

    /// Starts a query plan whose rows are read as they are needed (a cursor).
    pub(crate) async fn stream_query(&self, planned: PlannedQuery) -> Result<Cursor> {
        let (schema, physical, stop_subqueries) = self.physical_plan(planned).await?;
        let stream = execute_stream(physical, self.db.context().state().task_ctx())?;
        Ok(Cursor::new(schema, stream, stop_subqueries))
    }

    /// The physical plan of a query, its result columns, and the guards that stop its correlated
    /// subqueries when dropped.
    async fn physical_plan(&self, planned: PlannedQuery) -> Result<(SchemaRef, Arc<dyn ExecutionPlan>, Vec<DropGuard>)> {
        let schema = planned.result_schema();
        let plan = planned.plan;
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
