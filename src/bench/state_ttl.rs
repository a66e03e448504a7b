//! `weir bench state-ttl`: a regular join's state over a stream of ever-new keys, with and without
//! `table.exec.state.ttl`. Two datagen sources emit sequence keys (every key once per side), the
//! join writes each match into a result table keyed by it, and checkpoints every interval. Without
//! a TTL both sides' rows stay in the join's state for ever, so the state grows with the input;
//! with one, rows leave after the TTL and the state levels off near `rate x TTL` rows per side.
//! Prints the checkpoints' full state size over time for both modes, and one JSON line per mode.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{completed_checkpoints, git_commit, mib, query_rows, report, round};
use crate::engine::session::Session;
use crate::error::{Error, Result};

pub struct StateTtlBench {
    /// How long each mode runs.
    pub duration: Duration,
    /// Rows per second of each source.
    pub rows_per_second: u64,
    /// `table.exec.state.ttl` of the TTL mode.
    pub ttl: String,
    pub interval: String,
    pub parallelism: usize,
    /// Append the JSON lines to this file.
    pub results: Option<PathBuf>,
}

/// One mode's figures, as appended to the results file.
#[derive(Debug, Serialize)]
pub struct StateTtlBenchResult {
    pub bench: &'static str,
    /// The TTL, or "none".
    pub state_ttl: String,
    pub rows_per_second: u64,
    pub checkpoint_interval: String,
    pub parallelism: usize,
    pub rows_out: u64,
    /// (seconds since the job started, full state MiB) of every completed checkpoint.
    pub state_mib_over_time: Vec<(f64, f64)>,
    /// The full state of the checkpoints in the first and in the last third of the run.
    pub state_mib_first_third: f64,
    pub state_mib_last_third: f64,
    pub commit: Option<String>,
    pub date: String,
}

impl StateTtlBench {
    pub async fn run(&self) -> Result<Vec<StateTtlBenchResult>> {
        println!(
            "state TTL benchmark: two datagen sources of ever-new keys at {} rows/s each -> regular join -> result table, parallelism {}, checkpoints every {}, {} s per mode",
            self.rows_per_second,
            self.parallelism,
            self.interval,
            self.duration.as_secs()
        );
        let mut results = Vec::new();
        for ttl in [None, Some(self.ttl.as_str())] {
            let dir = std::env::temp_dir().join(format!("weir-bench-state-ttl-{}-{}", std::process::id(), ttl.is_some()));
            let _ = std::fs::remove_dir_all(&dir);
            let measured = self.measure(&dir, ttl).await;
            let _ = std::fs::remove_dir_all(&dir);
            results.push(measured?);
        }
        println!();
        for result in &results {
            report(result, self.results.as_deref())?;
        }
        Ok(results)
    }

    async fn measure(&self, dir: &std::path::Path, ttl: Option<&str>) -> Result<StateTtlBenchResult> {
        let session = Session::open(dir).await?;
        let source = |name: &str| {
            format!(
                "CREATE SOURCE {name} (k BIGINT, v BIGINT) WITH (connector = 'datagen', seed = '1', 'rows-per-second' = '{}',
                   'fields.k.kind' = 'sequence', 'fields.k.start' = '0', 'fields.k.end' = '9000000000000000000');",
                self.rows_per_second
            )
        };
        let ttl_option = ttl.map(|t| format!(", 'table.exec.state.ttl' = '{t}'")).unwrap_or_default();
        session
            .execute(&format!(
                "{} {}
                 CREATE TABLE matched (k BIGINT, a BIGINT, b BIGINT, PRIMARY KEY (k));
                 CREATE JOB bench WITH ('parallelism' = '{}', 'execution.checkpointing.interval' = '{}',
                   'state.backend.type' = 'rocksdb'{ttl_option})
                 AS INSERT INTO matched SELECT l.k, l.v, r.v FROM l JOIN r ON l.k = r.k;",
                source("l"),
                source("r"),
                self.parallelism,
                self.interval,
            ))
            .await?;
        let label = ttl.map_or_else(|| "no TTL".to_string(), |t| format!("TTL {t}"));
        println!("\n[{label}]");
        let (started, started_at) = (Instant::now(), std::time::SystemTime::now());
        let mut rows_out = 0;
        while started.elapsed() < self.duration {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let job = query_rows(&session, "SELECT rows_out, status, error FROM weir_jobs WHERE name = 'bench'").await?;
            let Some(row) = job.first() else {
                return Err(Error::internal("benchmark job vanished"));
            };
            if row[1] != "RUNNING" {
                return Err(Error::internal(format!("benchmark job is {}: {}", row[1], row[2])));
            }
            rows_out = row[0].parse().unwrap_or(rows_out);
            let checkpoints = completed_checkpoints(session.database(), "bench")?;
            let last = checkpoints.last().map_or(0.0, |c| mib(c.full));
            println!(
                "  {:>4.0}s  {:>9} rows out  {} checkpoints, state {:.1} MiB",
                started.elapsed().as_secs_f64(),
                rows_out,
                checkpoints.len(),
                last
            );
        }
        let checkpoints = completed_checkpoints(session.database(), "bench")?;
        session.execute("CANCEL JOB bench").await?;
        let over_time: Vec<(f64, f64)> = checkpoints
            .iter()
            .map(|c| {
                let at = c.completed_at.duration_since(started_at).map_or(0.0, |d| d.as_secs_f64());
                (round(at, 1), round(mib(c.full), 2))
            })
            .collect();
        let third = |part: usize| {
            let n = over_time.len();
            let slice = &over_time[n * part / 3..n * (part + 1) / 3];
            if slice.is_empty() {
                0.0
            } else {
                round(slice.iter().map(|(_, m)| m).sum::<f64>() / slice.len() as f64, 2)
            }
        };
        Ok(StateTtlBenchResult {
            bench: "state-ttl",
            state_ttl: ttl.unwrap_or("none").to_string(),
            rows_per_second: self.rows_per_second,
            checkpoint_interval: self.interval.clone(),
            parallelism: self.parallelism,
            rows_out,
            state_mib_first_third: third(0),
            state_mib_last_third: third(2),
            state_mib_over_time: over_time,
            commit: git_commit(),
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    }
}
