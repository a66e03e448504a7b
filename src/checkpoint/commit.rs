//! Phase two of the sinks' two-phase commit: once checkpoint n is complete, the rows every sink
//! subtask staged in epoch n become visible in the result tables. `TableStore::commit` writes the
//! rows and the subtask's epoch marker in one atomic write and skips epochs a subtask already
//! committed, so committing an epoch again (after a crash between "complete" and "commit") is safe.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;

use crate::catalog::{TableConnector, TableDef};
use crate::connectors::table_store::{StagedRows, TableStore, TableWriter};
use crate::error::Result;
use crate::graph::{JobGraph, OperatorSpec, SubtaskId};

/// Epoch number of the rows a sink staged after the last checkpoint, committed when input ends.
pub const FINAL_EPOCH: u64 = u64::MAX;

/// Rows one sink subtask staged in an epoch.
pub type StagedSinkRows = (SubtaskId, Vec<RecordBatch>);

/// Commits a job's staged rows into its result tables.
pub struct SinkCommitter {
    job: String,
    /// Stored result tables by sink uid (other sinks are not transactional).
    tables: HashMap<String, TableDef>,
    store: Arc<TableStore>,
}

impl SinkCommitter {
    pub fn new(job: &str, graph: &JobGraph, store: Arc<TableStore>) -> Self {
        let tables = graph
            .operators
            .iter()
            .filter_map(|op| match &op.spec {
                OperatorSpec::Sink(sink) if sink.table.connector == TableConnector::Stored => Some((op.uid.clone(), sink.table.clone())),
                _ => None,
            })
            .collect();
        SinkCommitter {
            job: job.to_string(),
            tables,
            store,
        }
    }

    /// Makes the rows staged in `epoch` visible (idempotent: subtasks that committed it skip).
    pub fn commit(&self, epoch: u64, staged: Vec<StagedSinkRows>) -> Result<()> {
        let writers = self
            .tables
            .iter()
            .map(|(uid, table)| Ok((uid.clone(), TableWriter::new(table)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let parts: Vec<StagedRows> = staged
            .into_iter()
            .filter_map(|(id, rows)| {
                writers.get(&id.uid).map(|writer| StagedRows {
                    writer,
                    sink_uid: id.uid,
                    subtask: id.subtask,
                    rows,
                })
            })
            .collect();
        self.store.commit(&self.job, epoch, &parts)
    }
}
