//! The undo log of append-only commits: which rows each sink subtask's epoch commit added to a table
//! without a primary key. A job that falls back to an older checkpoint (the newer one did not read
//! back) replays the epochs after it; their first rows must go first, or the table would hold them
//! twice. Rows with a primary key need no log: the replay overwrites them.
//!
//! A record is written in the same atomic write as the rows and the commit marker, under
//! `UNDO_PREFIX job/sink/subtask/` and the epoch (big-endian, so a subtask's records sort by epoch).
//! It holds the table id and the row-id ranges of the rows. Records of epochs no retained
//! checkpoint can fall back behind are dropped after each completed checkpoint.

use std::ops::Range;

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::TableStore;
use crate::error::{Error, Result};

/// After the commit markers' prefix (`epoch_commit::COMMIT_PREFIX`) comes a job name, which starts
/// with a letter, digit, `_`, `$` or `-` (`catalog::name`), never a zero byte: undo records and
/// markers cannot meet.
const UNDO_PREFIX: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x00];

/// What a rewind of a job's commits does with the rows append-only tables took in later epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaterEpochs {
    /// Keep them (RESTORE from a savepoint: the records may not reach back that far, and Flink
    /// keeps what a sink wrote too); their undo records go, as the restored job reuses the epochs.
    Keep,
    /// Take them out of the tables (a fallback to an older retained checkpoint).
    Undo,
}

/// The rows one sink subtask added to one table in one epoch commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AppendedRows {
    pub(super) table_id: u32,
    /// Row-id ranges, in the order they were reserved; adjacent ones are merged.
    pub(super) ranges: Vec<Range<u64>>,
}

impl AppendedRows {
    pub(super) fn new(table_id: u32) -> Self {
        AppendedRows {
            table_id,
            ranges: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, ids: Range<u64>) {
        match self.ranges.last_mut() {
            Some(last) if last.end == ids.start => last.end = ids.end,
            _ if ids.is_empty() => {}
            _ => self.ranges.push(ids),
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 16 * self.ranges.len());
        out.extend_from_slice(&self.table_id.to_be_bytes());
        for range in &self.ranges {
            out.extend_from_slice(&range.start.to_be_bytes());
            out.extend_from_slice(&range.end.to_be_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let corrupt = || Error::internal("corrupt undo record in the table store");
        let (table_id, ranges) = bytes.split_first_chunk::<4>().ok_or_else(corrupt)?;
        if ranges.len() % 16 != 0 {
            return Err(corrupt());
        }
        let number = |b: &[u8]| b.try_into().map(u64::from_be_bytes).map_err(|_| corrupt());
        let ranges = ranges
            .chunks_exact(16)
            .map(|pair| Ok(number(&pair[..8])?..number(&pair[8..])?))
            .collect::<Result<Vec<_>>>()?;
        Ok(AppendedRows {
            table_id: u32::from_be_bytes(*table_id),
            ranges,
        })
    }
}

/// One stored undo record: its key, the epoch in the key, and the rows it lists.
struct UndoRecord {
    key: Box<[u8]>,
    epoch: u64,
    rows: AppendedRows,
}

/// Where the undo records of a job start (`{job}/` cannot prefix another job's `{other}/`).
fn job_prefix(job: &str) -> Vec<u8> {
    let mut key = UNDO_PREFIX.to_vec();
    key.extend_from_slice(format!("{job}/").as_bytes());
    key
}

/// The key of a sink subtask's undo record of `epoch`.
pub(super) fn undo_key(job: &str, sink_uid: &str, subtask: usize, epoch: u64) -> Vec<u8> {
    let mut key = job_prefix(job);
    key.extend_from_slice(format!("{sink_uid}/{subtask}/").as_bytes());
    key.extend_from_slice(&epoch.to_be_bytes());
    key
}

/// The epoch of an undo record's key.
fn epoch_of(key: &[u8]) -> Result<u64> {
    key.last_chunk::<8>()
        .map(|bytes| u64::from_be_bytes(*bytes))
        .ok_or_else(|| Error::internal("corrupt undo record key in the table store"))
}

impl TableStore {
    /// Every undo record of `job`.
    fn undo_records(&self, job: &str) -> Result<Vec<UndoRecord>> {
        let start = job_prefix(job);
        let mut records = Vec::new();
        for item in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item?;
            if !key.starts_with(&start) {
                break;
            }
            let epoch = epoch_of(&key)?;
            records.push(UndoRecord {
                key,
                epoch,
                rows: AppendedRows::decode(&value)?,
            });
        }
        Ok(records)
    }

    /// Adds to `write` what a rewind of `job` to `epoch` does with the later epochs' undo records:
    /// each goes, and with `LaterEpochs::Undo` the rows it lists go with it.
    pub(super) fn rewind_appends(&self, job: &str, epoch: u64, later: LaterEpochs, write: &mut WriteBatch) -> Result<()> {
        for record in self.undo_records(job)?.into_iter().filter(|r| r.epoch > epoch) {
            if later == LaterEpochs::Undo {
                let prefix = TableStore::prefix(record.rows.table_id);
                for ids in &record.rows.ranges {
                    let row_key = |id: u64| [prefix.as_slice(), &id.to_be_bytes()].concat();
                    write.delete_range(row_key(ids.start), row_key(ids.end));
                }
            }
            write.delete(record.key);
        }
        Ok(())
    }

    /// Drops `job`'s undo records of epochs up to `horizon`: the oldest checkpoint the job retains,
    /// so no fallback can go back behind them.
    pub fn forget_undo_until(&self, job: &str, horizon: u64) -> Result<()> {
        let mut write = WriteBatch::default();
        for record in self.undo_records(job)?.into_iter().filter(|r| r.epoch <= horizon) {
            write.delete(record.key);
        }
        if write.is_empty() {
            return Ok(());
        }
        self.write(write)
    }

    /// Adds to `write` the removal of every undo record of `job` (dropped or created anew).
    pub(super) fn clear_undo(job: &str, write: &mut WriteBatch) {
        let start = job_prefix(job);
        let mut end = UNDO_PREFIX.to_vec();
        end.extend_from_slice(format!("{job}0").as_bytes()); // '0' follows '/'
        write.delete_range(start, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TableDef;
    use crate::connectors::table_store::TableWriter;
    use crate::connectors::table_store::epoch_commit::COMMIT_PREFIX;
    use crate::connectors::table_store::tests::{batch, commit, contents, table};

    #[test]
    fn appended_rows_merge_adjacent_ranges_and_read_back() {
        let mut rows = AppendedRows::new(7);
        rows.push(0..10);
        rows.push(10..12);
        rows.push(12..12);
        rows.push(40..45);
        assert_eq!(rows.ranges, vec![0..12, 40..45]);
        assert_eq!(AppendedRows::decode(&rows.encode()).unwrap(), rows);
        assert!(AppendedRows::decode(&[0, 0, 0, 7, 1]).is_err());
    }

    #[test]
    fn undo_keys_sort_by_epoch_and_stay_apart_from_other_jobs() {
        let (a, b) = (undo_key("j", "sink-t", 1, 2), undo_key("j", "sink-t", 1, 10));
        assert!(a < b);
        assert_eq!(epoch_of(&b).unwrap(), 10);
        assert!(undo_key("j2", "sink-t", 1, 2).starts_with(&job_prefix("j2")));
        assert!(!undo_key("j2", "sink-t", 1, 2).starts_with(&job_prefix("j")));
        assert!(undo_key("j", "sink-t", 1, 2) < [COMMIT_PREFIX.as_slice(), b"$"].concat());
    }

    /// A fallback to an older checkpoint takes back the rows appended after it, large epochs (SST
    /// runs) and small ones alike, and the replayed epochs commit again; a RESTORE keeps them.
    /// Upserted rows are left to the replay. Records up to the retained horizon are forgotten.
    #[test]
    fn a_rewind_takes_back_later_appends_or_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = TableStore::open(dir.path()).unwrap();
        let (appended, keyed) = (table(4, &[]), table(5, &["k"]));
        let (append_writer, upsert_writer) = (TableWriter::new(&appended).unwrap(), TableWriter::new(&keyed).unwrap());
        let rows = |table: &TableDef, from: i64, n: i64| batch(table, (from..from + n).map(|i| (i, format!("row {i}"))));
        for (epoch, from, n) in [(1, 0, 10), (2, 10, 20_000), (3, 20_010, 5)] {
            commit(&store, &append_writer, epoch, vec![rows(&appended, from, n)], 64 << 10);
        }
        commit(&store, &upsert_writer, 1, vec![rows(&keyed, 0, 3)], 64 << 10);
        commit(&store, &upsert_writer, 2, vec![rows(&keyed, 3, 3)], 64 << 10);
        assert_eq!(contents(&store, &appended).len(), 20_015);

        store.rewind_commits("job", 1, LaterEpochs::Undo).unwrap();
        let first: Vec<_> = (0..10).map(|i| (i, format!("row {i}"))).collect();
        assert_eq!(contents(&store, &appended), first);
        assert_eq!(contents(&store, &keyed).len(), 6);
        assert_eq!(store.committed_epoch("job", "sink", 0).unwrap(), Some(1));
        // The replay cuts its epochs elsewhere: each row is there once.
        commit(&store, &append_writer, 2, vec![rows(&appended, 10, 7)], 64 << 10);
        commit(&store, &append_writer, 3, vec![rows(&appended, 17, 20_003)], 64 << 10);
        let mut all = contents(&store, &appended);
        all.sort();
        assert_eq!(all, (0..20_020).map(|i| (i, format!("row {i}"))).collect::<Vec<_>>());

        // Epochs up to 2 can no longer be fallen back behind: only epoch 3's rows could go.
        store.forget_undo_until("job", 2).unwrap();
        store.rewind_commits("job", 0, LaterEpochs::Undo).unwrap();
        assert_eq!(contents(&store, &appended).len(), 17);
        // A RESTORE keeps what was appended, and forgets the records of the epochs it reuses.
        commit(&store, &append_writer, 1, vec![rows(&appended, 100, 4)], 64 << 10);
        store.rewind_commits("job", 0, LaterEpochs::Keep).unwrap();
        store.rewind_commits("job", 0, LaterEpochs::Undo).unwrap();
        assert_eq!(contents(&store, &appended).len(), 21);
        // Dropping the job forgets its records too.
        commit(&store, &append_writer, 1, vec![rows(&appended, 200, 4)], 64 << 10);
        store.clear_commits("job").unwrap();
        store.rewind_commits("job", 0, LaterEpochs::Undo).unwrap();
        assert_eq!(contents(&store, &appended).len(), 25);
    }
}
