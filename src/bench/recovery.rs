//! `weir bench recovery`: how fast a job with a large RocksDB state comes back after SIGKILL. A
//! child `weir` process runs an updating aggregate (a 100-character MAX and a COUNT per key) over
//! an unpaced datagen source until every key is in the state and a checkpoint of the whole state
//! completed, runs a moment longer, and is killed with SIGKILL. This process then opens the same
//! data directory, which resumes the job from its latest checkpoint, and measures:
//! - `restored_ms`: until the job's first row after the restart reached its sink (its state is
//!   restored);
//! - `caught_up_ms`: until as many rows reached the sink as the source had read between the
//!   checkpoint and the kill (the child reports how far it read every 100 ms): the job is back
//!   where it was. Every input row updates one key, so one row comes out per row in.
//!
//! Where the checkpoints are decides what a restore reads: the data directory (the default),
//! `--checkpoint-dir s3://...` (everything is downloaded: the restart uses a fresh local-copy
//! directory), or S3 with `--local-recovery` (the files kept locally are used, nothing is
//! downloaded). One JSON line is printed and appended to the results file.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{completed_checkpoints, git_commit, mib, query_rows, report, round};
use crate::checkpoint::storage::CheckpointStorage;
use crate::engine::session::Session;
use crate::error::{Error, Result};
use crate::settings::{S3Options, StorageLocation};

pub struct RecoveryBench {
    /// Target state size in MiB (approximate: keys × bytes per key).
    pub state_mib: u64,
    pub parallelism: usize,
    pub interval: String,
    /// `execution.checkpointing.dir`; the data directory's when `None`.
    pub checkpoint_dir: Option<String>,
    /// `state.backend.local-recovery`.
    pub local_recovery: bool,
    /// Append the JSON line to this file.
    pub results: Option<PathBuf>,
}

/// The figures of a run, as appended to the results file.
#[derive(Debug, Serialize)]
pub struct RecoveryBenchResult {
    pub bench: &'static str,
    /// `local`, `s3` or `s3-local-recovery`.
    pub mode: &'static str,
    pub state_mib: u64,
    pub keys: u64,
    pub parallelism: usize,
    /// The full size of the checkpoint restored from.
    pub checkpoint_mib: f64,
    /// Rows read after that checkpoint and before the kill: read again after the restart.
    pub rows_to_redo: u64,
    /// Until `Session::open` returned (the catalog is read, the job is started).
    pub open_ms: u64,
    /// Until the job's first row after the restart reached the sink.
    pub restored_ms: u64,
    /// Until the sink had as many rows as the source read between the checkpoint and the kill.
    pub caught_up_ms: u64,
    pub commit: Option<String>,
    pub date: String,
}

/// Bytes of RocksDB state per key: the key, a 100-character string and a count, plus overhead.
const BYTES_PER_KEY: u64 = 128;

/// What the child process reports every 100 ms, one JSON line each.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildProgress {
    pub rows_in: u64,
    /// The newest completed checkpoint: its id and full size.
    pub checkpoint: Option<(u64, u64)>,
}

impl RecoveryBench {
    fn keys(&self) -> u64 {
        (self.state_mib * 1024 * 1024 / BYTES_PER_KEY).max(1)
    }

    fn mode(&self) -> &'static str {
        match (&self.checkpoint_dir, self.local_recovery) {
            (None, _) => "local",
            (Some(_), false) => "s3",
            (Some(_), true) => "s3-local-recovery",
        }
    }

    /// The job's statements (the child creates it; the restart resumes it from the catalog).
    fn job_sql(&self) -> String {
        let mut with = format!(
            "'parallelism' = '{}', 'execution.checkpointing.interval' = '{}', 'state.cache.max-entries' = '200000'",
            self.parallelism, self.interval
        );
        if let Some(dir) = &self.checkpoint_dir {
            with.push_str(&format!(", 'execution.checkpointing.dir' = '{dir}'"));
        }
        if self.local_recovery {
            with.push_str(", 'state.backend.local-recovery' = 'true'");
        }
        format!(
            "CREATE SOURCE gen (k BIGINT, s VARCHAR) WITH (connector = 'datagen', seed = '1', 'rows-per-second' = '100000000',
               'fields.k.kind' = 'sequence', 'fields.k.start' = '0', 'fields.k.end' = '{}', 'fields.s.length' = '100');
             CREATE TABLE out (k BIGINT, s VARCHAR, n BIGINT, PRIMARY KEY (k)) WITH (connector = 'blackhole');
             CREATE JOB bench WITH ({with}) AS INSERT INTO out SELECT k, MAX(s), COUNT(*) FROM gen GROUP BY k;",
            self.keys() - 1
        )
    }

    pub async fn run(&self) -> Result<RecoveryBenchResult> {
        let keys = self.keys();
        println!(
            "recovery benchmark ({}): ~{} MiB of RocksDB state ({keys} keys), parallelism {}, checkpoints every {}",
            self.mode(),
            self.state_mib,
            self.parallelism,
            self.interval
        );
        let dir = std::env::temp_dir().join(format!("weir-bench-recovery-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let result = self.measure(&dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        let result = result?;
        println!();
        report(&result, self.results.as_deref())?;
        Ok(result)
    }

    async fn measure(&self, dir: &Path) -> Result<RecoveryBenchResult> {
        let keys = self.keys();
        let rows_at_kill = self.fill_and_kill(dir, keys)?;
        let (checkpoint_id, checkpoint_size, restored_rows) = self.restore_point(dir)?;
        let _ = std::fs::remove_dir_all(dir.join("bench-scratch"));
        let rows_to_redo = rows_at_kill.saturating_sub(restored_rows);
        println!(
            "newest checkpoint #{checkpoint_id}: {:.0} MiB, {restored_rows} rows read; {rows_to_redo} rows to read again",
            mib(checkpoint_size)
        );
        if self.checkpoint_dir.is_some() && !self.local_recovery {
            // A restart on another machine: no local copy of any checkpoint file.
            let _ = std::fs::remove_dir_all(dir.join("remote-copies"));
        }
        println!("restarting ...");
        let started = Instant::now();
        let session = Session::open(dir).await?;
        let open_ms = started.elapsed().as_millis() as u64;
        let mut restored_ms = None;
        let mut last_print = Instant::now();
        let caught_up_ms = loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let asked = Instant::now();
            let job = query_rows(&session, "SELECT rows_out, status, error FROM weir_jobs WHERE name = 'bench'").await?;
            if asked.elapsed() >= Duration::from_millis(500) {
                // The figures are only as fine as the answers are quick.
                println!(
                    "  {:>6.2}s  (weir_jobs answered after {} ms)",
                    started.elapsed().as_secs_f64(),
                    asked.elapsed().as_millis()
                );
            }
            let Some(row) = job.first() else {
                return Err(Error::internal("benchmark job vanished"));
            };
            if row[1] == "FAILED" {
                return Err(Error::internal(format!("benchmark job failed after the restart: {}", row[2])));
            }
            let rows_out: u64 = row[0].parse().unwrap_or(0);
            if rows_out > 0 && restored_ms.is_none() {
                restored_ms = Some(started.elapsed().as_millis() as u64);
                println!("  {:>6.2}s  first row processed: state restored", started.elapsed().as_secs_f64());
            }
            if last_print.elapsed() >= Duration::from_secs(1) {
                last_print = Instant::now();
                println!(
                    "  {:>6.2}s  {rows_out} of {rows_to_redo} rows done again",
                    started.elapsed().as_secs_f64()
                );
            }
            if rows_out >= rows_to_redo && restored_ms.is_some() {
                break started.elapsed().as_millis() as u64;
            }
            if started.elapsed() > Duration::from_secs(600) {
                return Err(Error::internal("the job did not catch up within 10 minutes of the restart"));
            }
        };
        println!("  {:>6.2}s  caught up", caught_up_ms as f64 / 1000.0);
        session.execute("DROP JOB bench").await?;
        Ok(RecoveryBenchResult {
            bench: "recovery",
            mode: self.mode(),
            state_mib: self.state_mib,
            keys,
            parallelism: self.parallelism,
            checkpoint_mib: round(mib(checkpoint_size), 1),
            rows_to_redo,
            open_ms,
            restored_ms: restored_ms.unwrap_or(caught_up_ms),
            caught_up_ms,
            commit: git_commit(),
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    }

    /// Runs the child until a checkpoint holds every key and one more second has passed, then
    /// kills it. Returns the rows it had read.
    fn fill_and_kill(&self, dir: &Path, keys: u64) -> Result<u64> {
        let exe = std::env::current_exe().map_err(|e| Error::internal(format!("cannot find the weir binary: {e}")))?;
        let mut child = Command::new(exe)
            .arg("--data-dir")
            .arg(dir)
            .args(["bench", "recovery-child", "--sql"])
            .arg(self.job_sql())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::internal(format!("cannot start the child weir: {e}")))?;
        let progress = read_progress(&mut child)?;
        let started = Instant::now();
        let mut filled_at: Option<u64> = None;
        let mut kill_at: Option<Instant> = None;
        let mut last: ChildProgress;
        let mut last_print = Instant::now();
        loop {
            match progress.recv_timeout(Duration::from_secs(60)) {
                Ok(p) => last = p,
                Err(_) => {
                    let _ = child.kill();
                    return Err(Error::internal("the child weir stopped reporting progress"));
                }
            }
            let newest = last.checkpoint.map_or(0, |c| c.0);
            if last_print.elapsed() >= Duration::from_secs(2) {
                last_print = Instant::now();
                println!(
                    "  {:>5.0}s  {:>11} rows  last checkpoint: {}",
                    started.elapsed().as_secs_f64(),
                    last.rows_in,
                    last.checkpoint
                        .map_or("-".into(), |(id, full)| format!("#{id}, {:.0} MiB", mib(full)))
                );
            }
            match (filled_at, kill_at) {
                (None, _) if last.rows_in >= keys => filled_at = Some(newest),
                // The first checkpoint triggered after the state was full has completed.
                (Some(at), None) if newest > at + 1 => kill_at = Some(Instant::now() + Duration::from_secs(1)),
                (_, Some(at)) if Instant::now() >= at => break,
                _ => {}
            }
        }
        child
            .kill()
            .map_err(|e| Error::internal(format!("cannot kill the child weir: {e}")))?;
        let _ = child.wait();
        println!("SIGKILL after {:.1}s at {} rows", started.elapsed().as_secs_f64(), last.rows_in);
        Ok(last.rows_in)
    }

    /// The newest complete checkpoint (the one the restart resumes from): its id, full size,
    /// and the rows the source had read at it (the generator's positions: subtask s of p reads
    /// s, s + p, s + 2p, ... and is at the next of those).
    fn restore_point(&self, dir: &Path) -> Result<(u64, u64, u64)> {
        let location = match &self.checkpoint_dir {
            Some(text) => StorageLocation::parse("--checkpoint-dir", text, &S3Options::default())?.join("bench"),
            None => StorageLocation::Local(dir.join("checkpoints").join("bench")),
        };
        // Only the manifest is read, into a directory of its own.
        let storage = CheckpointStorage::open(&location, dir.join("bench-scratch"), false)?;
        let id = storage
            .newest_complete_id()?
            .ok_or_else(|| Error::internal("no complete checkpoint to restore from"))?;
        let manifest = storage.read_manifest(id)?;
        let p = manifest.parallelism as u64;
        let rows = manifest
            .sources
            .iter()
            .map(|s| s.position.as_u64().map_or(0, |next| next.saturating_sub(s.subtask as u64) / p))
            .sum();
        Ok((manifest.checkpoint_id, manifest.full_size, rows))
    }
}

/// The child's progress lines, as they come.
fn read_progress(child: &mut Child) -> Result<mpsc::Receiver<ChildProgress>> {
    let stdout = child.stdout.take().ok_or_else(|| Error::internal("the child weir has no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if let Ok(progress) = serde_json::from_str::<ChildProgress>(&line)
                && tx.send(progress).is_err()
            {
                return;
            }
        }
    });
    Ok(rx)
}

/// The child: creates the job and reports its progress every 100 ms until it is killed.
pub async fn run_child(data_dir: &Path, sql: &str) -> Result<()> {
    let session = Session::open(data_dir).await?;
    session.execute(sql).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let job = query_rows(&session, "SELECT rows_in, status, error FROM weir_jobs WHERE name = 'bench'").await?;
        let Some(row) = job.first() else {
            return Err(Error::internal("benchmark job vanished"));
        };
        if row[1] != "RUNNING" {
            return Err(Error::internal(format!("benchmark job is {}: {}", row[1], row[2])));
        }
        let checkpoint = completed_checkpoints(session.database(), "bench")?.last().map(|c| (c.id, c.full));
        let line = serde_json::to_string(&ChildProgress {
            rows_in: row[0].parse().unwrap_or(0),
            checkpoint,
        })
        .map_err(|e| Error::internal(e.to_string()))?;
        println!("{line}");
    }
}
