//! `weir bench backpressure`: checkpoints behind a slow sink, aligned vs unaligned. A datagen
//! source, unpaced, feeds an updating aggregate whose result table writes no faster than
//! `debug.sink.rows-per-second`, so the channels into the aggregate stay full. An aligned barrier
//! waits behind everything queued there; an unaligned one overtakes it and the queued records go
//! into the checkpoint as in-flight data. One JSON line per mode is printed and appended to the
//! results file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{CheckpointFigures, CheckpointRow, completed_checkpoints, git_commit, mib, quantile, query_rows, report, round};
use crate::engine::session::Session;
use crate::error::{Error, Result};

pub struct BackpressureBench {
    /// How long each mode runs.
    pub duration: Duration,
    /// `debug.sink.rows-per-second` of every sink subtask.
    pub sink_rows_per_second: u64,
    pub interval: String,
    pub parallelism: usize,
    /// Append the JSON lines to this file.
    pub results: Option<PathBuf>,
}

/// One mode's figures, as appended to the results file.
#[derive(Debug, Serialize)]
pub struct BackpressureBenchResult {
    pub bench: &'static str,
    pub mode: &'static str,
    pub sink_rows_per_second: u64,
    pub checkpoint_interval: String,
    pub parallelism: usize,
    pub rows_out: u64,
    /// Over the checkpoints after the first (which starts before the channels are full).
    #[serde(flatten)]
    pub checkpoint: CheckpointFigures,
    pub unaligned_checkpoints: usize,
    pub alignment_p50_ms: u64,
    pub alignment_p99_ms: u64,
    pub in_flight_mib_mean: f64,
    pub commit: Option<String>,
    pub date: String,
}

/// Keys of the aggregate: a sequence this long wraps around, so the state stays small and every
/// input row updates one key (one row out per row in).
const KEYS: u64 = 100_000;

impl BackpressureBench {
    pub async fn run(&self) -> Result<Vec<BackpressureBenchResult>> {
        if self.sink_rows_per_second == 0 {
            return Err(Error::invalid("--sink-rate must be above 0"));
        }
        println!(
            "backpressure benchmark: datagen -> updating aggregate -> result table writing {} rows/s per subtask, parallelism {}, checkpoints every {}, {} s per mode",
            self.sink_rows_per_second,
            self.parallelism,
            self.interval,
            self.duration.as_secs()
        );
        let mut results = Vec::new();
        for unaligned in [false, true] {
            let dir = std::env::temp_dir().join(format!("weir-bench-backpressure-{}-{unaligned}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let measured = self.measure(&dir, unaligned).await;
            let _ = std::fs::remove_dir_all(&dir);
            let (rows, rows_out) = measured?;
            results.push(self.result(unaligned, &rows, rows_out));
        }
        println!();
        for result in &results {
            report(result, self.results.as_deref())?;
        }
        Ok(results)
    }

    fn result(&self, unaligned: bool, rows: &[CheckpointRow], rows_out: u64) -> BackpressureBenchResult {
        let alignments: Vec<u64> = rows.iter().map(|r| r.alignment_ms).collect();
        let in_flight: u64 = rows.iter().map(|r| r.in_flight).sum();
        BackpressureBenchResult {
            bench: "backpressure",
            mode: if unaligned { "unaligned" } else { "aligned" },
            sink_rows_per_second: self.sink_rows_per_second,
            checkpoint_interval: self.interval.clone(),
            parallelism: self.parallelism,
            rows_out,
            checkpoint: CheckpointFigures::of(rows),
            unaligned_checkpoints: rows.iter().filter(|r| r.unaligned).count(),
            alignment_p50_ms: quantile(&alignments, 0.5),
            alignment_p99_ms: quantile(&alignments, 0.99),
            in_flight_mib_mean: if rows.is_empty() {
                0.0
            } else {
                round(mib(in_flight) / rows.len() as f64, 2)
            },
            commit: git_commit(),
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    }

    /// Runs one mode; returns its completed checkpoints (but the first) and the rows written.
    async fn measure(&self, dir: &std::path::Path, unaligned: bool) -> Result<(Vec<CheckpointRow>, u64)> {
        let session = Session::open(dir).await?;
        session
            .execute(&format!(
                "CREATE SOURCE gen (k BIGINT, v BIGINT) WITH (connector = 'datagen', seed = '1', 'rows-per-second' = '100000000',
                   'fields.k.kind' = 'sequence', 'fields.k.start' = '0', 'fields.k.end' = '{}');
                 CREATE TABLE out (k BIGINT, n BIGINT, total BIGINT, PRIMARY KEY (k));
                 CREATE JOB bench WITH ('parallelism' = '{}', 'execution.checkpointing.interval' = '{}',
                   'execution.checkpointing.unaligned.enabled' = '{unaligned}',
                   'debug.sink.rows-per-second' = '{}')
                 AS INSERT INTO out SELECT k, COUNT(*), SUM(v) FROM gen GROUP BY k;",
                KEYS - 1,
                self.parallelism,
                self.interval,
                self.sink_rows_per_second,
            ))
            .await?;
        let mode = if unaligned { "unaligned" } else { "aligned" };
        println!("\n[{mode}]");
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let job = query_rows(&session, "SELECT rows_out, status, error FROM weir_jobs WHERE name = 'bench'").await?;
            let Some(row) = job.first() else {
                return Err(Error::internal("benchmark job vanished"));
            };
            if row[1] != "RUNNING" {
                return Err(Error::internal(format!("benchmark job is {}: {}", row[1], row[2])));
            }
            let rows_out: u64 = row[0].parse().unwrap_or(0);
            let checkpoints = completed_checkpoints(session.database(), "bench")?;
            println!(
                "  {:>4.0}s  {:>9} rows out  {} checkpoints, last: {}",
                started.elapsed().as_secs_f64(),
                rows_out,
                checkpoints.len(),
                checkpoints.last().map_or("-".to_string(), |c| c.to_string())
            );
            if started.elapsed() >= self.duration {
                session.execute("DROP JOB bench").await?;
                return Ok((checkpoints.into_iter().skip(1).collect(), rows_out));
            }
        }
    }
}
