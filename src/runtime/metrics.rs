//! Per-job counters, shared by the job's tasks and read by SHOW JOBS / DESCRIBE JOB.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct JobMetrics {
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    pub late_rows_dropped: AtomicU64,
}

impl JobMetrics {
    pub fn add_rows_in(&self, n: usize) {
        self.rows_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_rows_out(&self, n: usize) {
        self.rows_out.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_late_rows(&self, n: usize) {
        self.late_rows_dropped.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn rows_in(&self) -> u64 {
        self.rows_in.load(Ordering::Relaxed)
    }
    pub fn rows_out(&self) -> u64 {
        self.rows_out.load(Ordering::Relaxed)
    }
    pub fn late_rows_dropped(&self) -> u64 {
        self.late_rows_dropped.load(Ordering::Relaxed)
    }
}
