//! What a Postgres session keeps besides Weir's job settings: its run-time parameters (SET, SHOW,
//! RESET, DISCARD ALL; `statement_timeout` is honoured), its cursors (DECLARE, FETCH, MOVE,
//! CLOSE), whether a transaction block is open or aborted, and `COPY ... TO STDOUT`.
//!
//! A cursor is a running query: FETCH pulls the next rows from its stream, so a client reads a
//! large result in pieces without Weir holding it. As in Postgres, a cursor declared WITHOUT HOLD
//! must be declared in a transaction block and is closed when the block ends.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use tokio_util::sync::DropGuard;

use crate::engine::commands::string_table;
use crate::engine::session::{BlockChange, Output, Session};
use crate::error::{Error, Result, UserErrorKind};
use crate::planner::postgres_commands::{CopyTo, DeclareCursor, FetchCursor};
use crate::planner::postgres_settings::{known_setting, timeout_of};
use crate::planner::statement::{Statement, TransactionCommand};

/// The Postgres side of a session.
#[derive(Default)]
pub(crate) struct PostgresSession {
    /// Parameters SET in this session, by name as Postgres spells it; the rest have their defaults.
    settings: std::sync::Mutex<BTreeMap<&'static str, String>>,
    cursors: tokio::sync::Mutex<HashMap<String, Cursor>>,
    transaction: std::sync::Mutex<TransactionState>,
}

/// Where the session is with respect to a transaction block (Postgres' ReadyForQuery status).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum TransactionState {
    #[default]
    Idle,
    InBlock,
    /// An error happened in the block: statements are refused until it ends (or rolls back to a
    /// savepoint).
    Failed,
}

/// A declared cursor: the query's remaining rows.
pub(crate) struct Cursor {
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
    /// Rows of a batch a FETCH took only part of.
    rest: Option<RecordBatch>,
    hold: bool,
    /// Stops the query's correlated subqueries when the cursor is closed.
    _stop_subqueries: Vec<DropGuard>,
}

impl Cursor {
    pub(crate) fn new(schema: SchemaRef, stream: SendableRecordBatchStream, stop_subqueries: Vec<DropGuard>) -> Self {
        Cursor {
            schema,
            stream,
            rest: None,
            hold: false,
            _stop_subqueries: stop_subqueries,
        }
    }

    /// The next `count` rows (`None`: all that are left).
    async fn next_rows(&mut self, count: Option<u64>) -> Result<Vec<RecordBatch>> {
        let mut wanted = count.unwrap_or(u64::MAX);
        let mut batches = Vec::new();
        while wanted > 0 {
            let batch = match self.rest.take() {
                Some(batch) => batch,
                None => match self.stream.next().await {
                    Some(batch) => batch?,
                    None => break,
                },
            };
            let rows = batch.num_rows() as u64;
            if rows <= wanted {
                wanted -= rows;
                batches.push(batch);
            } else {
                let taken = wanted as usize;
                batches.push(batch.slice(0, taken));
                self.rest = Some(batch.slice(taken, batch.num_rows() - taken));
                wanted = 0;
            }
        }
        Ok(batches)
    }
}

impl PostgresSession {
    fn settings(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<&'static str, String>>> {
        self.settings.lock().map_err(|_| Error::internal("session settings lock poisoned"))
    }

    /// A parameter's value in this session.
    pub(crate) fn value(&self, name: &str) -> Result<String> {
        let setting = known_setting(name)?;
        Ok(self
            .settings()?
            .get(setting.name)
            .cloned()
            .unwrap_or_else(|| setting.default.to_string()))
    }

    fn transaction(&self) -> Result<std::sync::MutexGuard<'_, TransactionState>> {
        self.transaction
            .lock()
            .map_err(|_| Error::internal("session transaction lock poisoned"))
    }

    fn in_transaction_block(&self) -> Result<bool> {
        Ok(*self.transaction()? != TransactionState::Idle)
    }

    /// Refuses `statement` in an aborted transaction block, as Postgres does, unless it ends the
    /// block or rolls back to a savepoint.
    pub(crate) fn admit(&self, statement: &Statement) -> Result<()> {
        let ends_block = matches!(
            statement,
            Statement::Transaction(TransactionCommand::Commit | TransactionCommand::Rollback | TransactionCommand::RollbackToSavepoint)
        );
        if *self.transaction()? == TransactionState::Failed && !ends_block {
            return Err(Error::user(
                UserErrorKind::InFailedTransaction,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        Ok(())
    }

    /// An error inside a transaction block aborts the block.
    pub(crate) fn note_outcome<T>(&self, outcome: &Result<T>) -> Result<()> {
        let mut state = self.transaction()?;
        if outcome.is_err() && *state == TransactionState::InBlock {
            *state = TransactionState::Failed;
        }
        Ok(())
    }

    /// How long a statement may run (`statement_timeout`); `None`: as long as it takes.
    pub(crate) fn statement_timeout(&self) -> Result<Option<Duration>> {
        Ok(timeout_of(&self.value("statement_timeout")?))
    }
}

impl Session {
    pub(crate) fn show_variable(&self, name: &str) -> Result<Output> {
        let value = self.postgres.value(name)?;
        string_table(&[name], vec![vec![value]])
    }

    pub(crate) fn set_variable(&self, name: &str, value: Option<String>) -> Result<Output> {
        let setting = known_setting(name)?;
        let mut settings = self.postgres.settings()?;
        match value {
            Some(value) => settings.insert(setting.name, value),
            None => settings.remove(setting.name),
        };
        Ok(Output::done("SET"))
    }

    pub(crate) fn reset_variable(&self, name: Option<&str>) -> Result<Output> {
        match name {
            Some(name) => {
                let setting = known_setting(name)?;
                self.postgres.settings()?.remove(setting.name);
            }
            None => self.postgres.settings()?.clear(),
        }
        Ok(Output::done("RESET"))
    }

    /// DISCARD ALL: what a pool sends before handing the connection to the next user.
    pub(crate) async fn discard_all(&self) -> Result<Output> {
        if self.postgres.in_transaction_block()? {
            return Err(Error::user(
                UserErrorKind::ActiveTransaction,
                "DISCARD ALL cannot run inside a transaction block",
            ));
        }
        self.postgres.settings()?.clear();
        self.postgres.cursors.lock().await.clear();
        Ok(Output::done("DISCARD ALL"))
    }

    /// BEGIN, COMMIT, ROLLBACK and savepoints: no data changes, but a transaction block's end
    /// closes its cursors, and COMMIT of an aborted block rolls it back (and says so).
    pub(crate) async fn transaction_control(&self, command: TransactionCommand) -> Result<Output> {
        let mut tag = command.tag();
        let (before, after) = {
            let mut state = self.postgres.transaction()?;
            let before = *state;
            match (command, before) {
                (TransactionCommand::Begin, TransactionState::Idle) => *state = TransactionState::InBlock,
                (TransactionCommand::Commit | TransactionCommand::Rollback, previous) => {
                    if previous == TransactionState::Failed {
                        tag = "ROLLBACK";
                    }
                    *state = TransactionState::Idle;
                }
                (TransactionCommand::RollbackToSavepoint, TransactionState::Failed) => *state = TransactionState::InBlock,
                _ => {}
            }
            (before, *state)
        };
        let block = match (before, after) {
            (TransactionState::Idle, TransactionState::Idle) => BlockChange::Unchanged,
            (TransactionState::Idle, _) => BlockChange::Started,
            (_, TransactionState::Idle) => BlockChange::Ended,
            _ => BlockChange::Unchanged,
        };
        if block == BlockChange::Ended {
            self.postgres.cursors.lock().await.retain(|_, cursor| cursor.hold);
        }
        Ok(Output::Transaction { tag, block })
    }

    pub(crate) async fn declare_cursor(&self, declare: DeclareCursor, params: Vec<ScalarValue>) -> Result<Output> {
        if !declare.hold && !self.postgres.in_transaction_block()? {
            return Err(Error::user(
                UserErrorKind::NoActiveTransaction,
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
        }
        if self.postgres.cursors.lock().await.contains_key(&declare.name) {
            return Err(Error::user(
                UserErrorKind::DuplicateCursor,
                format!("cursor \"{}\" already exists", declare.name),
            ));
        }
        let sqlparser::ast::Statement::Query(query) = *declare.query else {
            return Err(Error::syntax("DECLARE ... CURSOR FOR needs a SELECT"));
        };
        let planned = self
            .plan_query(Box::new(sqlparser::ast::Statement::Query(query)))
            .await?
            .with_param_values(params)?;
        let mut cursor = self.stream_query(planned).await?;
        cursor.hold = declare.hold;
        self.postgres.cursors.lock().await.insert(declare.name, cursor);
        Ok(Output::done("DECLARE CURSOR"))
    }

    pub(crate) async fn fetch_cursor(&self, fetch: FetchCursor) -> Result<Output> {
        let mut cursors = self.postgres.cursors.lock().await;
        let cursor = cursors.get_mut(&fetch.name).ok_or_else(|| no_cursor(&fetch.name))?;
        let batches = cursor.next_rows(fetch.count).await?;
        if fetch.skip {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            return Ok(Output::Done {
                tag: format!("MOVE {rows}"),
            });
        }
        let batches = batches
            .into_iter()
            .map(|batch| RecordBatch::try_new(cursor.schema.clone(), batch.columns().to_vec()))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Output::Rows {
            schema: cursor.schema.clone(),
            batches,
        })
    }

    /// The columns FETCH from `name` returns.
    pub async fn cursor_schema(&self, name: &str) -> Result<SchemaRef> {
        let cursors = self.postgres.cursors.lock().await;
        Ok(cursors.get(name).ok_or_else(|| no_cursor(name))?.schema.clone())
    }

    pub(crate) async fn close_cursor(&self, name: Option<&str>) -> Result<Output> {
        let mut cursors = self.postgres.cursors.lock().await;
        match name {
            Some(name) => {
                cursors.remove(name).ok_or_else(|| no_cursor(name))?;
                Ok(Output::done("CLOSE CURSOR"))
            }
            None => {
                cursors.clear();
                Ok(Output::done("CLOSE CURSOR ALL"))
            }
        }
    }

    pub(crate) async fn copy_to(&self, copy: CopyTo) -> Result<Output> {
        let sqlparser::ast::Statement::Query(query) = *copy.query else {
            return Err(Error::syntax("COPY (...) TO STDOUT needs a SELECT"));
        };
        let planned = self.plan_query(Box::new(sqlparser::ast::Statement::Query(query))).await?;
        match self.run_query(planned).await? {
            Output::Rows { schema, batches } => Ok(Output::Copy {
                schema,
                batches,
                options: copy.options,
            }),
            other => Ok(other),
        }
    }
}

fn no_cursor(name: &str) -> Error {
    Error::user(UserErrorKind::UndefinedCursor, format!("cursor \"{name}\" does not exist"))
}
