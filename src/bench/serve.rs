//! `weir bench serve`: reads of a result table while a job writes it.
//!
//! A bounded job fills a table of `rows` rows keyed by `k`, with checkpoints every second as a real
//! job has them; its rate is the commit throughput. Then a job upserts random keys of the table at
//! `write_rate` rows/s (1 s checkpoints), and while it commits, the bench runs `reads` primary-key
//! point lookups and as many 100-row range scans, one at a time, through a session: SQL text
//! parsed, planned and executed as a pgwire client's query is. Each answer's row count is checked.
//! One JSON line reports the fill rate and the p50/p99 latencies.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{completed_checkpoints, git_commit, quantile, query_rows, report, round};
use crate::engine::database::{Database, DatabaseOptions};
use crate::engine::session::Session;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct ServeBench {
    /// Rows of the result table.
    pub rows: u64,
    /// Point lookups, and as many range scans.
    pub reads: usize,
    /// Rows per second the writing job upserts while the reads run.
    pub write_rate: u64,
    /// JSON lines are appended here.
    pub results: Option<PathBuf>,
}

/// The JSON line.
#[derive(Debug, Serialize)]
pub struct ServeBenchResult {
    pub rows: u64,
    pub fill_seconds: f64,
    /// Rows per second from the fill job's start to its last commit.
    pub fill_rows_per_second: f64,
    pub fill_checkpoints: usize,
    pub write_rate: u64,
    /// Rows the writing job read while the reads ran, and its checkpoints completed then.
    pub rows_written_during_reads: u64,
    pub checkpoints_during_reads: usize,
    pub reads: usize,
    pub point_lookup_p50_us: u64,
    pub point_lookup_p99_us: u64,
    pub range_scan_p50_us: u64,
    pub range_scan_p99_us: u64,
    pub commit: Option<String>,
    pub date: String,
}

/// The fill job's datagen pace: far above what a job reaches, so the fill runs as fast as it can.
const FILL_RATE: u64 = 1_000_000_000;

/// Rows a range scan reads.
const RANGE_ROWS: u64 = 100;

impl ServeBench {
    pub async fn run(&self) -> Result<ServeBenchResult> {
        if self.rows <= RANGE_ROWS || self.reads == 0 {
            return Err(Error::invalid(format!("--rows must exceed {RANGE_ROWS} and --reads be at least 1")));
        }
        let dir = std::env::temp_dir().join(format!("weir-bench-serve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let result = self.run_in(&dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        let result = result?;
        report(&result, self.results.as_deref())?;
        Ok(result)
    }

    async fn run_in(&self, dir: &std::path::Path) -> Result<ServeBenchResult> {
        let db = Database::open_with(dir, DatabaseOptions::local(Vec::new())?).await?;
        let session = Session::new(db.clone());
        let rows = self.rows;
        session
            .execute(&format!(
                "SET 'execution.checkpointing.interval' = '1s'; SET 'parallelism' = '2';
                 CREATE SOURCE fill_keys (k BIGINT, v BIGINT) WITH (connector = 'datagen', 'number-of-rows' = '{rows}',
                     'rows-per-second' = '{FILL_RATE}', 'fields.k.kind' = 'sequence', 'fields.k.start' = '0', 'fields.k.end' = '{}');
                 CREATE TABLE kv (k BIGINT, v BIGINT, PRIMARY KEY (k));",
                rows - 1
            ))
            .await?;
        eprintln!("bench serve: filling a table of {rows} rows");
        let started = Instant::now();
        session
            .execute("CREATE JOB fill AS INSERT INTO kv SELECT k, v FROM fill_keys")
            .await?;
        session.execute("WAIT JOB fill").await?;
        let fill = started.elapsed();
        let fill_checkpoints = completed_checkpoints(&db, "fill")?.len();
        let count = query_rows(&session, "SELECT COUNT(*) FROM kv").await?;
        if count != vec![vec![rows.to_string()]] {
            return Err(Error::internal(format!("the table holds {count:?} rows, not {rows}")));
        }
        eprintln!(
            "  filled in {:.1} s ({:.0} rows/s, {fill_checkpoints} checkpoints)",
            fill.as_secs_f64(),
            rows as f64 / fill.as_secs_f64()
        );

        session
            .execute(&format!(
                "CREATE SOURCE updates (k BIGINT, v BIGINT) WITH (connector = 'datagen', 'rows-per-second' = '{}',
                     'fields.k.min' = '0', 'fields.k.max' = '{}');
                 CREATE JOB updater AS INSERT INTO kv SELECT k, v FROM updates",
                self.write_rate,
                rows - 1
            ))
            .await?;
        // Reads start once the writer commits.
        let waiting = Instant::now();
        while completed_checkpoints(&db, "updater")?.is_empty() {
            if waiting.elapsed() > Duration::from_secs(60) {
                return Err(Error::internal("the writing job completed no checkpoint in 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let written = || async {
            let rows = query_rows(&session, "SELECT rows_in FROM weir_jobs WHERE name = 'updater'").await?;
            Ok::<u64, Error>(rows.first().and_then(|r| r[0].parse().ok()).unwrap_or(0))
        };
        let (written_before, checkpoints_before) = (written().await?, completed_checkpoints(&db, "updater")?.len());

        let mut random = rand::rngs::SmallRng::seed_from_u64(42);
        let mut point = Vec::with_capacity(self.reads);
        let mut range = Vec::with_capacity(self.reads);
        for i in 0..self.reads {
            let k = random.random_range(0..rows);
            let at = Instant::now();
            let answer = query_rows(&session, &format!("SELECT v FROM kv WHERE k = {k}")).await?;
            point.push(at.elapsed().as_micros() as u64);
            if answer.len() != 1 {
                return Err(Error::internal(format!("key {k}: {} rows", answer.len())));
            }
            let from = random.random_range(0..rows - RANGE_ROWS);
            let at = Instant::now();
            let answer = query_rows(
                &session,
                &format!("SELECT k, v FROM kv WHERE k >= {from} AND k < {}", from + RANGE_ROWS),
            )
            .await?;
            range.push(at.elapsed().as_micros() as u64);
            if answer.len() as u64 != RANGE_ROWS {
                return Err(Error::internal(format!("range from {from}: {} rows", answer.len())));
            }
            if (i + 1) % (self.reads / 10).max(1) == 0 {
                eprintln!(
                    "  {:>6} of {} reads; point lookup p99 {} us, range scan p99 {} us",
                    i + 1,
                    self.reads,
                    quantile(&point, 0.99),
                    quantile(&range, 0.99)
                );
            }
        }
        let rows_written_during_reads = written().await?.saturating_sub(written_before);
        let checkpoints_during_reads = completed_checkpoints(&db, "updater")?.len() - checkpoints_before;
        session.execute("CANCEL JOB updater").await?;
        db.prepare_exit();

        Ok(ServeBenchResult {
            rows,
            fill_seconds: round(fill.as_secs_f64(), 3),
            fill_rows_per_second: (rows as f64 / fill.as_secs_f64()).round(),
            fill_checkpoints,
            write_rate: self.write_rate,
            rows_written_during_reads,
            checkpoints_during_reads,
            reads: self.reads,
            point_lookup_p50_us: quantile(&point, 0.5),
            point_lookup_p99_us: quantile(&point, 0.99),
            range_scan_p50_us: quantile(&range, 0.5),
            range_scan_p99_us: quantile(&range, 0.99),
            commit: git_commit(),
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    }
}
