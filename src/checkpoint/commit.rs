//! Phase two of the sinks' two-phase commit: once checkpoint n is complete, the rows every sink
//! subtask staged in epoch n become visible in the result tables. `TableStore::commit` writes the
//! rows and the subtask's epoch marker in one atomic write and skips epochs a subtask already
//! committed, so committing an epoch again (after a crash between "complete" and "commit") is safe.
//! An `exactly-once` Kafka table commits the epoch's rows in one Kafka transaction together with a
//! marker of the epoch (`connectors::kafka_sink`), idempotent the same way; a `filesystem` table
//! finishes one file per partition named by the epoch, and skips files already finished.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::catalog::{TableConnector, TableDef};
use crate::connectors::filesystem_sink::FileSinkConfig;
use crate::connectors::kafka_sink::{DeliveryGuarantee, KafkaSinkConfig, KafkaTransactions};
use crate::connectors::table_store::{LaterEpochs, StagedRows, TableStore, TableWriter};
use crate::data_dir::FileRoots;
use crate::error::{Error, Result};
use crate::graph::{JobGraph, OperatorSpec, SubtaskId};
use crate::runtime::staging::StagedFile;

/// The file of the rows one sink subtask staged in an epoch (`None`: it staged none).
pub type StagedSinkRows = (SubtaskId, Option<StagedFile>);

/// Removes the sinks' own links to staged files once their rows are committed (a checkpoint that
/// holds the rows has its own links).
pub fn remove_staging(staged: &[StagedSinkRows]) {
    for file in staged.iter().filter_map(|(_, file)| file.as_ref()) {
        let _ = std::fs::remove_file(&file.path);
    }
}

/// Commits a job's staged rows into its result tables and exactly-once Kafka tables.
pub struct SinkCommitter {
    job: String,
    /// Stored result tables by sink uid.
    tables: HashMap<String, TableDef>,
    store: Arc<TableStore>,
    /// `exactly-once` Kafka tables by sink uid (other sinks are not transactional).
    kafka: HashMap<String, KafkaTransactions>,
    /// `filesystem` tables by sink uid.
    files: HashMap<String, FileSinkConfig>,
}

impl SinkCommitter {
    pub fn new(job: &str, graph: &JobGraph, store: Arc<TableStore>, roots: &FileRoots) -> Result<Self> {
        let mut tables = HashMap::new();
        let mut kafka = HashMap::new();
        let mut files = HashMap::new();
        for op in &graph.operators {
            let OperatorSpec::Sink(sink) = &op.spec else { continue };
            match sink.table.connector {
                TableConnector::Stored => {
                    tables.insert(op.uid.clone(), sink.table.clone());
                }
                TableConnector::Kafka => {
                    let config = KafkaSinkConfig::parse(&sink.table)?;
                    if config.delivery == DeliveryGuarantee::ExactlyOnce {
                        kafka.insert(op.uid.clone(), KafkaTransactions::new(config));
                    }
                }
                TableConnector::Filesystem => {
                    files.insert(op.uid.clone(), FileSinkConfig::parse(&sink.table, roots)?);
                }
                TableConnector::UpsertKafka | TableConnector::Blackhole | TableConnector::Print => {}
            }
        }
        Ok(SinkCommitter {
            job: job.to_string(),
            tables,
            store,
            kafka,
            files,
        })
    }

    /// After a RESTORE from checkpoint `epoch`, or a fallback to it: the epochs after it will be
    /// committed again (blocking). `subtasks`: the most sink subtasks the job had or will have.
    /// Later files of filesystem tables go; rows appended to result tables go with
    /// `LaterEpochs::Undo`; what Kafka took stays (it will hold those epochs' records twice).
    pub fn rewind(&self, epoch: u64, subtasks: usize, later: LaterEpochs) -> Result<()> {
        self.store.rewind_commits(&self.job, epoch, later)?;
        for transactions in self.kafka.values() {
            transactions.rewind(epoch, subtasks)?;
        }
        for files in self.files.values() {
            files.rewind(&self.job, epoch)?;
        }
        Ok(())
    }

    /// Forgets what the undo of appends to result tables needs for epochs up to `horizon`, the
    /// oldest checkpoint the job retains: no fallback goes back behind it.
    pub fn forget_undo_until(&self, horizon: u64) -> Result<()> {
        self.store.forget_undo_until(&self.job, horizon)
    }

    /// Makes the rows staged in `epoch` visible (idempotent: subtasks that committed it skip).
    /// Blocking: Kafka transactions wait for the brokers.
    pub fn commit(&self, epoch: u64, staged: Vec<StagedSinkRows>) -> Result<()> {
        // A subtask's files in order (those of failed checkpoints' epochs first), committed as one.
        let mut by_subtask: Vec<(SubtaskId, Vec<StagedFile>)> = Vec::new();
        for (id, file) in staged {
            match by_subtask.iter_mut().find(|(known, _)| *known == id) {
                Some((_, files)) => files.extend(file),
                None => by_subtask.push((id, file.into_iter().collect())),
            }
        }
        let (mut staged_for_tables, mut staged_for_files) = (Vec::new(), Vec::new());
        for (id, files) in by_subtask {
            if let Some(transactions) = self.kafka.get(&id.uid) {
                transactions.commit(id.subtask, epoch, &files)?;
            } else if let Some(table) = self.files.get(&id.uid) {
                staged_for_files.push((table, id.subtask, files));
            } else {
                staged_for_tables.push((id, files));
            }
        }
        self.commit_files(epoch, &staged_for_files)?;
        let writers = self
            .tables
            .iter()
            .map(|(uid, table)| Ok((uid.clone(), TableWriter::new(table)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let parts: Vec<StagedRows> = staged_for_tables
            .into_iter()
            .filter_map(|(id, files)| {
                writers.get(&id.uid).map(|writer| StagedRows {
                    writer,
                    sink_uid: id.uid,
                    subtask: id.subtask,
                    files,
                })
            })
            .collect();
        self.store.commit(&self.job, epoch, &parts)
    }

    /// Finishes the filesystem tables' files of `epoch`, a sink subtask's at a time on each of up
    /// to one thread per core: each subtask writes files of its own, and writing them is most of
    /// such a commit's work (one thread kept one core of two busy for Nexmark q10).
    fn commit_files(&self, epoch: u64, parts: &[(&FileSinkConfig, usize, Vec<StagedFile>)]) -> Result<()> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(parts.len());
        let next = AtomicUsize::new(0);
        let commit_next = || -> Result<()> {
            while let Some((table, subtask, files)) = parts.get(next.fetch_add(1, Ordering::Relaxed)) {
                table.commit(&self.job, *subtask, epoch, files)?;
            }
            Ok(())
        };
        if threads <= 1 {
            return commit_next();
        }
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads).map(|_| scope.spawn(commit_next)).collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|_| Err(Error::internal("a file commit thread panicked")))
                })
                .collect::<Result<Vec<()>>>()
        })?;
        Ok(())
    }
}
