//! `weir bench checkpoint`: what checkpoints cost on a steady keyed workload with a large RocksDB
//! state, incremental vs full. A datagen source feeds an updating aggregate keyed by a sequence that
//! wraps around, so every key is rewritten once per cycle, with a 100-character value kept by MAX.
//! The source is paced so that each checkpoint interval rewrites `touched_percent` of the keys: the
//! first cycle fills the state, and the checkpoints completed after it are measured. One JSON line
//! per mode is printed and appended to the results file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{CheckpointFigures, CheckpointRow, completed_checkpoints, git_commit, query_rows, report, round};
use crate::engine::session::Session;
use crate::error::{Error, Result};
use crate::settings::parse_duration;

pub struct CheckpointBench {
    /// Target state size in MiB (approximate: keys × bytes per key).
    pub state_mib: u64,
    /// Share of the keys rewritten per checkpoint interval, in percent.
    pub touched_percent: f64,
    /// How long each mode is measured after the state reached its size.
    pub steady: Duration,
    pub interval: String,
    pub parallelism: usize,
    /// Append the JSON lines to this file.
    pub results: Option<PathBuf>,
}

/// One mode's figures, as appended to the results file.
#[derive(Debug, Serialize)]
pub struct CheckpointBenchResult {
    pub bench: &'static str,
    pub mode: &'static str,
    pub state_mib: u64,
    pub keys: u64,
    pub touched_percent: f64,
    pub rows_per_second: u64,
    pub checkpoint_interval: String,
    pub parallelism: usize,
    /// Over the measured checkpoints.
    #[serde(flatten)]
    pub checkpoint: CheckpointFigures,
    /// The largest single checkpoint's ratio.
    pub checkpoint_upload_ratio_max: Option<f64>,
    pub commit: Option<String>,
    pub date: String,
}

/// Bytes of RocksDB state per key: the key, a 100-character string and a count, plus overhead.
const BYTES_PER_KEY: u64 = 128;

impl CheckpointBench {
    pub async fn run(&self) -> Result<Vec<CheckpointBenchResult>> {
        if !(self.touched_percent > 0.0 && self.touched_percent <= 100.0) {
            return Err(Error::invalid("--touched-percent must be above 0 and at most 100"));
        }
        let interval = parse_duration("--interval", &self.interval)?;
        if interval.is_zero() {
            return Err(Error::invalid("--interval must be above 0"));
        }
        let keys = (self.state_mib * 1024 * 1024 / BYTES_PER_KEY).max(1);
        let rows_per_second = ((keys as f64 * self.touched_percent / 100.0) / interval.as_secs_f64()).ceil() as u64;
        println!(
            "checkpoint benchmark: ~{} MiB of RocksDB state ({keys} keys), {}% of the keys rewritten per {} checkpoint interval ({rows_per_second} rows/s), parallelism {}",
            self.state_mib, self.touched_percent, self.interval, self.parallelism
        );
        let mut results = Vec::new();
        for incremental in [true, false] {
            let rows = self.run_mode(keys, rows_per_second, incremental).await?;
            results.push(self.result(keys, rows_per_second, incremental, &rows));
        }
        println!();
        for result in &results {
            report(result, self.results.as_deref())?;
        }
        Ok(results)
    }

    fn result(&self, keys: u64, rows_per_second: u64, incremental: bool, rows: &[CheckpointRow]) -> CheckpointBenchResult {
        CheckpointBenchResult {
            bench: "checkpoint",
            mode: if incremental { "incremental" } else { "full" },
            state_mib: self.state_mib,
            keys,
            touched_percent: self.touched_percent,
            rows_per_second,
            checkpoint_interval: self.interval.clone(),
            parallelism: self.parallelism,
            checkpoint: CheckpointFigures::of(rows),
            checkpoint_upload_ratio_max: rows
                .iter()
                .filter(|r| r.full > 0)
                .map(|r| round(r.uploaded as f64 / r.full as f64, 3))
                .reduce(f64::max),
            commit: git_commit(),
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    }

    async fn run_mode(&self, keys: u64, rows_per_second: u64, incremental: bool) -> Result<Vec<CheckpointRow>> {
        let dir = std::env::temp_dir().join(format!("weir-bench-checkpoint-{}-{incremental}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let result = self.measure(&dir, keys, rows_per_second, incremental).await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    async fn measure(&self, dir: &std::path::Path, keys: u64, rows_per_second: u64, incremental: bool) -> Result<Vec<CheckpointRow>> {
        let session = Session::open(dir).await?;
        session
            .execute(&format!(
                "CREATE SOURCE gen (k BIGINT, s VARCHAR) WITH (connector = 'datagen', seed = '1', 'rows-per-second' = '{rows_per_second}',
                   'fields.k.kind' = 'sequence', 'fields.k.start' = '0', 'fields.k.end' = '{}', 'fields.s.length' = '100');
                 CREATE TABLE out (k BIGINT, s VARCHAR, n BIGINT, PRIMARY KEY (k)) WITH (connector = 'blackhole');
                 CREATE JOB bench WITH ('parallelism' = '{}', 'execution.checkpointing.interval' = '{}',
                   'state.backend.incremental' = '{incremental}', 'state.cache.max-entries' = '200000')
                 AS INSERT INTO out SELECT k, MAX(s), COUNT(*) FROM gen GROUP BY k;",
                keys - 1,
                self.parallelism,
                self.interval
            ))
            .await?;
        let mode = if incremental { "incremental" } else { "full" };
        println!("\n[{mode}] filling the state ...");
        let started = Instant::now();
        let mut steady_since: Option<(Instant, u64)> = None;
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let job = query_rows(&session, "SELECT rows_in, status, error FROM weir_jobs WHERE name = 'bench'").await?;
            let Some(row) = job.first() else {
                return Err(Error::internal("benchmark job vanished"));
            };
            if row[1] != "RUNNING" {
                return Err(Error::internal(format!("benchmark job is {}: {}", row[1], row[2])));
            }
            let rows_in: u64 = row[0].parse().unwrap_or(0);
            let checkpoints = completed_checkpoints(session.database(), "bench")?;
            let last = checkpoints.last().cloned();
            println!(
                "  {:>5.0}s  {:>11} rows ({:.0}/s)  {} checkpoints, last: {}",
                started.elapsed().as_secs_f64(),
                rows_in,
                rows_in as f64 / started.elapsed().as_secs_f64(),
                checkpoints.len(),
                last.map_or("-".to_string(), |c| c.to_string())
            );
            match steady_since {
                None if rows_in >= keys => {
                    let first_id = checkpoints.last().map_or(0, |c| c.id) + 1;
                    steady_since = Some((Instant::now(), first_id));
                    println!("  state filled ({keys} keys); measuring checkpoints from #{first_id} on");
                }
                Some((since, first_id)) if since.elapsed() >= self.steady => {
                    session.execute("DROP JOB bench").await?;
                    return Ok(checkpoints.into_iter().filter(|c| c.id >= first_id).collect());
                }
                _ => {}
            }
        }
    }
}
