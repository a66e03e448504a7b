//! `CheckpointHistory`: what a job remembers of its checkpoints across attempts (SHOW CHECKPOINTS,
//! DESCRIBE JOB, `weir bench`), and the test-only upload faults still to inject.

use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone)]
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
    pub records: Vec<CheckpointRecord>,
    pub latest_path: Option<String>,
    /// Uploads still to fail on purpose (`debug.checkpoint.fail-uploads`), across restarts.
    pub uploads_to_fail: u32,
    /// Uploads still to hang on purpose (`debug.checkpoint.hang-uploads`), across restarts.
    pub uploads_to_hang: u32,
}

impl CheckpointHistory {
    /// Adds a record, or replaces the one with the same checkpoint id.
    pub fn record(&mut self, record: CheckpointRecord) {
        match self.records.iter_mut().find(|r| r.id == record.id) {
            Some(existing) => *existing = record,
            None => self.records.push(record),
        }
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
