//! `CheckpointHistory`: what a job remembers of its checkpoints and restarts (SHOW CHECKPOINTS,
//! DESCRIBE JOB, `/metrics`, `weir bench`), across attempts and, through its `HistoryLog`, across
//! restarts of the process; and the test-only upload faults still to inject.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Ended checkpoints kept in memory and in the log (the newest); the totals count them all.
const KEPT_RECORDS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointStatus {
    InProgress,
    Completed,
    Failed,
}

impl CheckpointStatus {
    pub fn name(self) -> &'static str {
        match self {
            CheckpointStatus::InProgress => "IN_PROGRESS",
            CheckpointStatus::Completed => "COMPLETED",
            CheckpointStatus::Failed => "FAILED",
        }
    }
}

/// One line of SHOW CHECKPOINTS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointRecord {
    pub id: u64,
    pub status: CheckpointStatus,
    pub trigger_time: SystemTime,
    pub duration: Duration,
    pub sync: Duration,
    pub asynchronous: Duration,
    pub bytes_uploaded: u64,
    pub full_size: u64,
    /// Whether some task went unaligned (took its snapshot ahead of queued records).
    pub unaligned: bool,
    /// The longest time a task took from the first news of the checkpoint to its snapshot.
    pub alignment: Duration,
    /// Bytes of the in-flight records the checkpoint keeps (unaligned checkpoints).
    pub in_flight_bytes: u64,
    pub path: String,
    pub failure: Option<String>,
}

impl CheckpointRecord {
    pub fn in_progress(id: u64, trigger_time: SystemTime) -> Self {
        CheckpointRecord {
            id,
            status: CheckpointStatus::InProgress,
            trigger_time,
            duration: Duration::ZERO,
            sync: Duration::ZERO,
            asynchronous: Duration::ZERO,
            bytes_uploaded: 0,
            full_size: 0,
            unaligned: false,
            alignment: Duration::ZERO,
            in_flight_bytes: 0,
            path: String::new(),
            failure: None,
        }
    }

    pub fn failed(id: u64, trigger_time: SystemTime, started: Instant, why: &str) -> Self {
        CheckpointRecord {
            status: CheckpointStatus::Failed,
            duration: started.elapsed(),
            failure: Some(why.to_string()),
            ..CheckpointRecord::in_progress(id, trigger_time)
        }
    }
}

/// A fault injected into a checkpoint upload, for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFault {
    /// The upload fails (`debug.checkpoint.fail-uploads`).
    Fail,
    /// The upload hangs until the checkpoint is aborted (`debug.checkpoint.hang-uploads`).
    Hang,
}

#[derive(Debug, Default)]
pub struct CheckpointHistory {
    /// The newest checkpoints (at most `KEPT_RECORDS` ended ones), oldest first.
    pub records: Vec<CheckpointRecord>,
    pub latest_path: Option<String>,
    /// Checkpoints ever completed / failed, and restarts (failovers), across process restarts.
    pub totals: HistoryTotals,
    /// Bytes of state per (operator uid, subtask) in the latest completed checkpoint (memory only).
    pub state_sizes: Vec<(String, usize, u64)>,
    /// Where ended checkpoints and restarts are appended; `None` keeps them in memory only.
    log: Option<HistoryLog>,
    /// Uploads still to fail on purpose (`debug.checkpoint.fail-uploads`), across restarts.
    pub uploads_to_fail: u32,
    /// Uploads still to hang on purpose (`debug.checkpoint.hang-uploads`), across restarts.
    pub uploads_to_hang: u32,
}

/// Counts that outlive the records kept, and the job's record counters at its latest completed
/// checkpoint (so that its figures go on from there after a restart).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryTotals {
    pub completed: u64,
    pub failed: u64,
    pub restarts: u64,
    pub last_failure: Option<String>,
    pub records_in: u64,
    pub records_out: u64,
}

/// One line of the log: an ended checkpoint or a restart, with the totals after it.
#[derive(Debug, Serialize, Deserialize)]
struct LogLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<CheckpointRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restart: Option<String>,
    totals: HistoryTotals,
}

/// `<job dir>/history.jsonl`: a JSON line per ended checkpoint and per restart, appended. Not
/// fsynced per line: it is a record for people (a crash may lose its last lines, never the
/// checkpoints themselves); a torn last line is skipped when read. Rewritten atomically with the
/// newest `KEPT_RECORDS` when it holds twice as many.
#[derive(Debug)]
struct HistoryLog {
    path: PathBuf,
    lines: usize,
}

impl CheckpointHistory {
    /// The history a job left in `path` (empty when there is none), appending to it from now on.
    pub fn open(path: &Path) -> Result<Self> {
        let mut history = CheckpointHistory::read(path)?;
        let lines = history.records.len();
        history.log = Some(HistoryLog {
            path: path.to_path_buf(),
            lines,
        });
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            // Rewrite what was read: a torn last line goes, and the file starts compact.
            history.rewrite_log()?;
        }
        Ok(history)
    }

    /// The history in `path`, read only (a job that is not running).
    pub fn read(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(crate::error::Error::from(e).context(format!("cannot read {}", path.display()))),
        };
        let mut history = CheckpointHistory::default();
        for line in text.lines() {
            let Ok(line) = serde_json::from_str::<LogLine>(line) else {
                continue;
            };
            if let Some(record) = line.checkpoint {
                history.push(record);
            }
            history.totals = line.totals;
        }
        history.latest_path = history
            .records
            .iter()
            .rev()
            .find(|r| r.status == CheckpointStatus::Completed)
            .map(|r| r.path.clone());
        Ok(history)
    }

    /// Adds a record, or replaces the one with the same checkpoint id. A record that ends its
    /// checkpoint counts in the totals and goes to the log.
    pub fn record(&mut self, record: CheckpointRecord) {
        let ended = record.status != CheckpointStatus::InProgress;
        let was_ended = self
            .records
            .iter()
            .any(|r| r.id == record.id && r.status != CheckpointStatus::InProgress);
        if ended && !was_ended {
            match record.status {
                CheckpointStatus::Completed => self.totals.completed += 1,
                _ => self.totals.failed += 1,
            }
            self.append(Some(record.clone()), None);
        }
        self.push(record);
    }

    /// The job's record counters as of its latest completed checkpoint (logged with it).
    pub fn note_counters(&mut self, records_in: u64, records_out: u64) {
        self.totals.records_in = records_in;
        self.totals.records_out = records_out;
    }

    /// The job failed over.
    pub fn record_restart(&mut self, failure: &str) {
        self.totals.restarts += 1;
        self.totals.last_failure = Some(failure.to_string());
        self.append(None, Some(failure.to_string()));
    }

    fn push(&mut self, record: CheckpointRecord) {
        match self.records.iter_mut().find(|r| r.id == record.id) {
            Some(existing) => *existing = record,
            None => self.records.push(record),
        }
        let ended = self.records.iter().filter(|r| r.status != CheckpointStatus::InProgress).count();
        if ended > KEPT_RECORDS
            && let Some(oldest) = self.records.iter().position(|r| r.status != CheckpointStatus::InProgress)
        {
            self.records.remove(oldest);
        }
    }

    fn append(&mut self, checkpoint: Option<CheckpointRecord>, restart: Option<String>) {
        let Some(log) = &mut self.log else { return };
        let line = LogLine {
            checkpoint,
            restart,
            totals: self.totals.clone(),
        };
        let written = serde_json::to_string(&line)
            .map_err(crate::error::Error::from)
            .and_then(|mut text| {
                text.push('\n');
                let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&log.path)?;
                Ok(file.write_all(text.as_bytes())?)
            });
        match written {
            Ok(()) => log.lines += 1,
            Err(e) => tracing::warn!("cannot append to {}: {e}", log.path.display()),
        }
        if log.lines > 2 * KEPT_RECORDS
            && let Err(e) = self.rewrite_log()
        {
            tracing::warn!("cannot compact the checkpoint history: {e}");
        }
    }

    /// Replaces the log with the records kept, each line carrying the current totals.
    fn rewrite_log(&mut self) -> Result<()> {
        let Some(log) = &mut self.log else { return Ok(()) };
        let mut text = String::new();
        let ended: Vec<&CheckpointRecord> = self.records.iter().filter(|r| r.status != CheckpointStatus::InProgress).collect();
        for record in &ended {
            let line = LogLine {
                checkpoint: Some((*record).clone()),
                restart: None,
                totals: self.totals.clone(),
            };
            text.push_str(&serde_json::to_string(&line)?);
            text.push('\n');
        }
        if ended.is_empty() {
            text.push_str(&serde_json::to_string(&LogLine {
                checkpoint: None,
                restart: None,
                totals: self.totals.clone(),
            })?);
            text.push('\n');
        }
        crate::fs::write_atomically(&log.path, text.as_bytes())?;
        log.lines = ended.len().max(1);
        Ok(())
    }

    /// The fault the next upload gets, if any is left to inject.
    pub fn take_upload_fault(&mut self) -> Option<UploadFault> {
        if self.uploads_to_fail > 0 {
            self.uploads_to_fail -= 1;
            Some(UploadFault::Fail)
        } else if self.uploads_to_hang > 0 {
            self.uploads_to_hang -= 1;
            Some(UploadFault::Hang)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(id: u64) -> CheckpointRecord {
        CheckpointRecord {
            status: CheckpointStatus::Completed,
            path: format!("chk-{id}"),
            duration: Duration::from_millis(id),
            ..CheckpointRecord::in_progress(id, SystemTime::UNIX_EPOCH + Duration::from_secs(id))
        }
    }

    #[test]
    fn the_log_survives_a_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("history.jsonl");
        let mut history = CheckpointHistory::open(&path).expect("open");
        history.record(CheckpointRecord::in_progress(1, SystemTime::UNIX_EPOCH));
        history.note_counters(10, 4);
        history.record(completed(1));
        history.record(completed(1)); // the same checkpoint again: counted once
        history.record(CheckpointRecord::failed(2, SystemTime::UNIX_EPOCH, Instant::now(), "upload failed"));
        history.record_restart("task failed");
        history.record(CheckpointRecord::in_progress(3, SystemTime::UNIX_EPOCH));
        drop(history);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"checkpoint\": {\"id\": 9"))
            .expect("torn line");

        let history = CheckpointHistory::open(&path).expect("reopen");
        let ids: Vec<(u64, CheckpointStatus)> = history.records.iter().map(|r| (r.id, r.status)).collect();
        assert_eq!(ids, [(1, CheckpointStatus::Completed), (2, CheckpointStatus::Failed)]);
        assert_eq!(history.records[0].path, "chk-1");
        assert_eq!(history.latest_path.as_deref(), Some("chk-1"));
        let expected = HistoryTotals {
            completed: 1,
            failed: 1,
            restarts: 1,
            last_failure: Some("task failed".into()),
            records_in: 10,
            records_out: 4,
        };
        assert_eq!(history.totals, expected);
    }

    #[test]
    fn old_records_go_but_the_totals_stay() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("history.jsonl");
        let mut history = CheckpointHistory::open(&path).expect("open");
        let count = 2 * KEPT_RECORDS as u64 + 5;
        for id in 1..=count {
            history.record(completed(id));
        }
        assert_eq!(history.records.len(), KEPT_RECORDS);
        let lines = std::fs::read_to_string(&path).expect("log").lines().count();
        assert!(lines <= 2 * KEPT_RECORDS, "{lines} lines: compacted");
        let reopened = CheckpointHistory::read(&path).expect("read");
        assert_eq!(reopened.totals.completed, count);
        assert_eq!(reopened.records.last().map(|r| r.id), Some(count));
        assert_eq!(reopened.records.len(), KEPT_RECORDS);
    }
}
