//! Plain SQL (SELECT and what else DataFusion runs) over sources, result tables and system tables.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;

use crate::engine::session::{Output, Session};
use crate::error::{Error, Result};

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
