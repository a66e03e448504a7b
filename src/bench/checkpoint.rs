//! `weir bench checkpoint`: checkpoint cost for a job with a large RocksDB state, incremental vs
//! full. A datagen source feeds an updating aggregate whose keys (a sequence) and values (a long
//! string kept by MAX) grow the state to about the requested size; checkpoints run at a fixed
//! interval and their duration and bytes are reported from SHOW CHECKPOINTS.

use std::time::{Duration, Instant};

use super::{CheckpointRow, completed_checkpoints, mib, query_rows};
use crate::error::{Error, Result};
use crate::session::Session;

pub struct CheckpointBench {
    /// Target state size in MiB (approximate: keys × bytes per key).
    pub state_mib: u64,
    /// How long each mode runs after the state reached its size.
    pub steady: Duration,
    pub interval: String,
    pub parallelism: usize,
}

/// Bytes of RocksDB state per key: the key, a 100-character string and a count, plus overhead.
const BYTES_PER_KEY: u64 = 128;

impl CheckpointBench {
    pub async fn run(&self) -> Result<()> {
        let keys = self.state_mib * 1024 * 1024 / BYTES_PER_KEY;
        println!(
            "checkpoint benchmark: ~{} MiB of RocksDB state ({keys} keys), checkpoints every {}, parallelism {}",
            self.state_mib, self.interval, self.parallelism
        );
        let mut summaries = Vec::new();
        for incremental in [true, false] {
            summaries.push((incremental, self.run_mode(keys, incremental).await?));
        }
        println!("\nsummary (checkpoints taken after the state reached its size):");
        println!(
            "{:<12} {:>6} {:>14} {:>14} {:>16} {:>14}",
            "mode", "count", "median ms", "max ms", "median uploaded", "full size"
        );
        for (incremental, rows) in summaries {
            let mut durations: Vec<u64> = rows.iter().map(|r| r.duration_ms).collect();
            durations.sort_unstable();
            let mut uploaded: Vec<u64> = rows.iter().map(|r| r.uploaded).collect();
            uploaded.sort_unstable();
            let median = |v: &[u64]| v.get(v.len() / 2).copied().unwrap_or(0);
            println!(
                "{:<12} {:>6} {:>14} {:>14} {:>12.1} MiB {:>10.1} MiB",
                if incremental { "incremental" } else { "full" },
                rows.len(),
                median(&durations),
                durations.last().copied().unwrap_or(0),
                mib(median(&uploaded)),
                mib(rows.last().map_or(0, |r| r.full)),
            );
        }
        Ok(())
    }

    async fn run_mode(&self, keys: u64, incremental: bool) -> Result<Vec<CheckpointRow>> {
        let dir = std::env::temp_dir().join(format!("weir-bench-checkpoint-{}-{incremental}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let session = Session::open(&dir).await?;
        session
            .execute(&format!(
                "CREATE SOURCE gen (k BIGINT, s VARCHAR) WITH (connector = 'datagen', seed = '1', 'rows-per-second' = '100000000',
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
        println!("\n[{}] filling the state ...", if incremental { "incremental" } else { "full" });
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
                    let _ = std::fs::remove_dir_all(&dir);
                    return Ok(checkpoints.into_iter().filter(|c| c.id >= first_id).collect());
                }
                _ => {}
            }
        }
    }
}
