//! Phase two of an epoch for result tables: a sink subtask's staged rows are written together
//! with its commit marker (the last epoch it committed) and, for appends, the epoch's undo record,
//! in one atomic write. A commit of an epoch the marker already covers is skipped for appends and
//! applied again for upserts; a rewind sets the markers back (`undo_log` for the appended rows).

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::undo_log::{AppendedRows, LaterEpochs, undo_key};
use super::{RUN_BYTES, SortedRuns, TableStore, TableWriter};
use crate::error::{Error, Result};
use crate::runtime::staging::StagedFile;

/// Where a sink subtask records the last epoch it committed, next to the rows (one atomic write).
fn commit_marker(job: &str, sink_uid: &str, subtask: usize) -> Vec<u8> {
    let mut key = COMMIT_PREFIX.to_vec();
    key.extend_from_slice(format!("{job}/{sink_uid}/{subtask}").as_bytes());
    key
}

/// Table ids are below u32::MAX, so this prefix never holds rows, and markers sort after rows.
pub(super) const COMMIT_PREFIX: [u8; 4] = [0xff; 4];

/// What an epoch commit writes beside the rows, by key: the commit markers, and the undo records
/// of its appends (`undo_log`).
pub(super) type Markers = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

/// One sink subtask's rows of an epoch, to commit.
pub struct StagedRows<'a> {
    pub writer: &'a TableWriter,
    pub sink_uid: String,
    pub subtask: usize,
    /// In order (the epochs of failed checkpoints first); empty: the subtask staged no row (its
    /// marker still advances).
    pub files: Vec<StagedFile>,
}

impl TableStore {
    /// The last epoch a sink subtask of a job committed.
    pub fn committed_epoch(&self, job: &str, sink_uid: &str, subtask: usize) -> Result<Option<u64>> {
        let Some(value) = self.db.get(commit_marker(job, sink_uid, subtask))? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = value.as_slice().try_into().map_err(|_| Error::internal("corrupt commit marker"))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// Two-phase commit, phase two: writes the rows of epoch `epoch` of every sink subtask that has
    /// not committed it yet, together with the new commit markers and the appends' undo records,
    /// atomically.
    pub fn commit(&self, job: &str, epoch: u64, staged: &[StagedRows]) -> Result<()> {
        self.commit_in_runs(job, epoch, staged, RUN_BYTES)
    }

    pub(super) fn commit_in_runs(&self, job: &str, epoch: u64, staged: &[StagedRows], run_bytes: usize) -> Result<()> {
        let mut runs = SortedRuns::new(self, run_bytes);
        let mut markers = Markers::new();
        for part in staged {
            let committed = self.committed_epoch(job, &part.sink_uid, part.subtask)?;
            let already = committed.is_some_and(|done| done >= epoch);
            // Upserts by primary key can be applied again without harm (a job restored from an
            // older checkpoint recomputes the same rows); appends must never be applied twice.
            if already && !part.writer.upserts() {
                continue;
            }
            let mut appended = AppendedRows::new(part.writer.table_id);
            for file in &part.files {
                for batch in file.batches()? {
                    if let Some(ids) = part.writer.add(self, &batch?, &mut runs)? {
                        appended.push(ids);
                    }
                }
            }
            markers.insert(
                commit_marker(job, &part.sink_uid, part.subtask),
                epoch.max(committed.unwrap_or(0)).to_be_bytes().to_vec(),
            );
            if !appended.ranges.is_empty() {
                markers.insert(undo_key(job, &part.sink_uid, part.subtask, epoch), appended.encode());
            }
        }
        runs.apply(&markers)
    }

    /// A job restored from checkpoint `epoch` commits its epochs after `epoch` again: markers
    /// beyond it (including a finished run's final one) are set back to it, and the rows appended
    /// in those epochs are kept or taken out (`later`).
    pub fn rewind_commits(&self, job: &str, epoch: u64, later: LaterEpochs) -> Result<()> {
        let mut start = COMMIT_PREFIX.to_vec();
        start.extend_from_slice(format!("{job}/").as_bytes());
        let mut write = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item?;
            if !key.starts_with(&start) {
                break;
            }
            let bytes: [u8; 8] = value.as_ref().try_into().map_err(|_| Error::internal("corrupt commit marker"))?;
            if u64::from_be_bytes(bytes) > epoch {
                write.put(key, epoch.to_be_bytes());
            }
        }
        self.rewind_appends(job, epoch, later, &mut write)?;
        self.write(write)
    }

    /// Forgets a job's commit markers and undo records (the job is dropped or created anew).
    pub fn clear_commits(&self, job: &str) -> Result<()> {
        let mut start = COMMIT_PREFIX.to_vec();
        start.extend_from_slice(format!("{job}/").as_bytes());
        let mut end = COMMIT_PREFIX.to_vec();
        end.extend_from_slice(format!("{job}0").as_bytes()); // '0' follows '/'
        let mut write = WriteBatch::default();
        write.delete_range(start, end);
        TableStore::clear_undo(job, &mut write);
        self.write(write)
    }
}
