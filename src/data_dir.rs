//! Every path under Weir's data directory (and a job's checkpoint directory) is made here, so the
//! layout reads in one place:
//! ```text
//! <data>/catalog.json                     the catalog (sources, tables, jobs, savepoints)
//! <data>/tables/                          the table store (RocksDB) of every result table
//! <data>/jobs/<job>/state/<uid>-<n>/      live state of operator subtask n
//! <data>/jobs/<job>/snapshots/attempt-<a>/ local snapshots of an attempt before upload
//! <data>/checkpoints/<job>/               checkpoints (or under `state.checkpoints.dir`)
//! <data>/savepoints/                      savepoints taken without a target directory
//! <data>/history.txt                      the REPL's history
//! ```

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn catalog_file(&self) -> PathBuf {
        self.root.join("catalog.json")
    }

    pub fn tables(&self) -> PathBuf {
        self.root.join("tables")
    }

    pub fn job(&self, job: &str) -> JobDir {
        JobDir(self.root.join("jobs").join(job))
    }

    pub fn savepoints(&self) -> PathBuf {
        self.root.join("savepoints")
    }

    pub fn repl_history(&self) -> PathBuf {
        self.root.join("history.txt")
    }

    /// `<state.checkpoints.dir or <data>/checkpoints>/<job>`.
    pub fn job_checkpoints(&self, configured: Option<&Path>, job: &str) -> PathBuf {
        configured
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.join("checkpoints"))
            .join(job)
    }
}

/// `<data>/jobs/<job>`: what a job keeps locally while it runs.
#[derive(Debug, Clone)]
pub struct JobDir(PathBuf);

impl JobDir {
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Live state of one operator subtask.
    pub fn state(&self, uid: &str, subtask: usize) -> PathBuf {
        self.0.join("state").join(format!("{uid}-{subtask}"))
    }

    /// Local snapshots of every attempt.
    pub fn snapshots(&self) -> PathBuf {
        self.0.join("snapshots")
    }

    /// Local snapshots of attempt `attempt`.
    pub fn attempt_snapshots(&self, attempt: u64) -> PathBuf {
        self.snapshots().join(format!("attempt-{attempt}"))
    }

    /// Marks that the `fail.at.row` failure of a source subtask happened (it happens once per job).
    pub fn injected_failure_marker(&self, uid: &str, subtask: usize) -> PathBuf {
        self.0.join(format!("injected-failure-{uid}-{subtask}"))
    }
}

/// A checkpoint's local snapshot directory of one operator subtask, under an attempt's snapshots.
pub fn operator_snapshot_dir(snapshots: &Path, checkpoint_id: u64, uid: &str, subtask: usize) -> PathBuf {
    snapshots.join(format!("chk-{checkpoint_id}")).join(format!("{uid}-{subtask}"))
}
