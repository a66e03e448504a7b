//! `weir bench`: measurements of a running Weir, printed for people and appended as JSON lines for
//! regression tracking. `query` runs a SQL job (the Nexmark queries in `sql/nexmark/`) over a
//! bounded input; `checkpoint` measures checkpoints of a large RocksDB state; `serve` measures
//! reads of a result table while a job writes it; `backpressure` measures aligned and unaligned
//! checkpoints behind a slow sink; `recovery` measures a restart after SIGKILL with a large state;
//! `state-ttl` measures a join's state over ever-new keys with and without a state TTL.

pub mod backpressure;
pub mod checkpoint;
pub mod kafka;
pub mod plot;
pub mod query;
pub mod recovery;
pub mod serve;
pub mod state_ttl;

pub use backpressure::BackpressureBench;
pub use checkpoint::CheckpointBench;
pub use query::QueryBench;
pub use recovery::RecoveryBench;
pub use serve::ServeBench;
pub use state_ttl::StateTtlBench;

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::checkpoint::history::CheckpointStatus;
use crate::engine::database::Database;
use crate::engine::session::{Output, Session};
use crate::error::{Error, Result};
use crate::format::rows_text;

/// The rows of a query as text (NULL as the empty string).
async fn query_rows(session: &Session, sql: &str) -> Result<Vec<Vec<String>>> {
    match session.execute(sql).await?.pop() {
        Some(Output::Rows { batches, .. }) => Ok(rows_text(&batches)?
            .into_iter()
            .map(|r| r.into_iter().map(|c| c.unwrap_or_default()).collect())
            .collect()),
        _ => Err(Error::internal(format!("{sql} returned no rows"))),
    }
}

/// A completed checkpoint, as SHOW CHECKPOINTS reports it.
#[derive(Debug, Clone)]
struct CheckpointRow {
    id: u64,
    /// When it completed.
    completed_at: SystemTime,
    duration_ms: u64,
    sync_ms: u64,
    async_ms: u64,
    uploaded: u64,
    full: u64,
    alignment_ms: u64,
    /// Bytes of in-flight records kept (unaligned checkpoints).
    in_flight: u64,
    unaligned: bool,
}

/// The completed checkpoints of a running (or just finished) job of this process.
fn completed_checkpoints(db: &Database, job: &str) -> Result<Vec<CheckpointRow>> {
    let Some(job) = db.jobs().get(job)? else {
        return Ok(Vec::new());
    };
    let records = job.checkpoints.lock().map(|h| h.records.clone()).unwrap_or_default();
    let millis = |d: Duration| d.as_millis() as u64;
    Ok(records
        .into_iter()
        .filter(|r| r.status == CheckpointStatus::Completed)
        .map(|r| CheckpointRow {
            id: r.id,
            completed_at: r.trigger_time + r.duration,
            duration_ms: millis(r.duration),
            sync_ms: millis(r.sync),
            async_ms: millis(r.asynchronous),
            uploaded: r.bytes_uploaded,
            full: r.full_size,
            alignment_ms: millis(r.alignment),
            in_flight: r.in_flight_bytes,
            unaligned: r.unaligned,
        })
        .collect())
}

impl std::fmt::Display for CheckpointRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} {} ms (sync {} ms, async {} ms), {:.1} of {:.1} MiB uploaded",
            self.id,
            self.duration_ms,
            self.sync_ms,
            self.async_ms,
            mib(self.uploaded),
            mib(self.full)
        )?;
        if self.alignment_ms > 0 || self.unaligned {
            write!(f, ", aligned in {} ms", self.alignment_ms)?;
        }
        if self.unaligned {
            write!(f, ", unaligned with {:.2} MiB in flight", mib(self.in_flight))?;
        }
        Ok(())
    }
}

/// Checkpoint figures of a benchmark run, as they appear in its JSON line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckpointFigures {
    pub checkpoints: usize,
    pub checkpoint_p50_ms: u64,
    pub checkpoint_p99_ms: u64,
    pub checkpoint_sync_p50_ms: u64,
    pub checkpoint_sync_p99_ms: u64,
    pub checkpoint_uploaded_mib_mean: f64,
    pub checkpoint_full_mib_mean: f64,
    /// Bytes uploaded over full state bytes, summed over the checkpoints.
    pub checkpoint_upload_ratio: Option<f64>,
}

impl CheckpointFigures {
    fn of(rows: &[CheckpointRow]) -> Self {
        let durations: Vec<u64> = rows.iter().map(|r| r.duration_ms).collect();
        let syncs: Vec<u64> = rows.iter().map(|r| r.sync_ms).collect();
        let uploaded: u64 = rows.iter().map(|r| r.uploaded).sum();
        let full: u64 = rows.iter().map(|r| r.full).sum();
        let mean = |total: u64| {
            if rows.is_empty() {
                0.0
            } else {
                round(mib(total) / rows.len() as f64, 1)
            }
        };
        CheckpointFigures {
            checkpoints: rows.len(),
            checkpoint_p50_ms: quantile(&durations, 0.5),
            checkpoint_p99_ms: quantile(&durations, 0.99),
            checkpoint_sync_p50_ms: quantile(&syncs, 0.5),
            checkpoint_sync_p99_ms: quantile(&syncs, 0.99),
            checkpoint_uploaded_mib_mean: mean(uploaded),
            checkpoint_full_mib_mean: mean(full),
            checkpoint_upload_ratio: (full > 0).then(|| round(uploaded as f64 / full as f64, 3)),
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The `q`-quantile of `values` by the nearest-rank method; 0 when empty.
fn quantile(values: &[u64], q: f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// CPU time (user + system) and peak resident memory of this process so far.
#[derive(Debug, Clone, Copy)]
struct ProcessUsage {
    cpu: Duration,
    peak_rss_bytes: u64,
}

impl ProcessUsage {
    fn now() -> Result<Self> {
        // SAFETY: getrusage only writes the struct we pass; a zeroed rusage is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF with a valid pointer to an rusage.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return Err(Error::internal(format!("getrusage failed: {}", std::io::Error::last_os_error())));
        }
        let time = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
        Ok(ProcessUsage {
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            // Linux reports kilobytes.
            peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
        })
    }
}

/// Prints a benchmark's result as one JSON line, and appends it to `results` when given.
fn report(result: &impl serde::Serialize, results: Option<&Path>) -> Result<()> {
    let line = serde_json::to_string(result).map_err(|e| Error::internal(e.to_string()))?;
    println!("{line}");
    if let Some(path) = results {
        append_line(path, &line)?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}

/// Appends one JSON line to the results file (created with its directory if missing).
pub(super) fn append_line(path: &Path, line: &str) -> Result<()> {
    let io = |e: std::io::Error| Error::invalid(format!("cannot append to {}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    writeln!(file, "{line}").map_err(io)?;
    file.sync_all().map_err(io)
}

/// The short hash of the checked-out commit, when run inside the repository.
pub(super) fn git_commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

pub(super) fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[7], 0.99), 7);
        let values: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(quantile(&values, 0.5), 50);
        assert_eq!(quantile(&values, 0.99), 99);
        assert_eq!(quantile(&values, 1.0), 100);
    }

    #[test]
    fn process_usage_grows() {
        let before = ProcessUsage::now().unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = ProcessUsage::now().unwrap();
        assert!(after.cpu > before.cpu);
        assert!(after.peak_rss_bytes > 0);
    }
}
