//! Every path under Weir's data directory (and a job's checkpoint directory) is made here, so the
//! layout reads in one place:
//! ```text
//! <data>/catalog.json                     the catalog (sources, tables, jobs, savepoints)
//! <data>/tables/                          the table store (RocksDB) of every result table
//! <data>/jobs/<job>/state/<uid>-<n>/      live state of operator subtask n
//! <data>/jobs/<job>/snapshots/attempt-<a>/ local snapshots of an attempt before upload, and its sinks' staged rows
//! <data>/checkpoints/<job>/               checkpoints (or under `state.checkpoints.dir`)
//! <data>/savepoints/                      savepoints taken without a target directory
//! <data>/remote-copies/<location>/        local copies of checkpoint files on S3 (local recovery)
//! <data>/tmp/                             scratch space
//! <data>/history.txt                      the REPL's history
//! ```
//! A name in a path is spelled by [`path_component`], so it is always one entry of its parent.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, UserErrorKind};

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

    /// `<data>/jobs`: every job's local directory.
    pub fn jobs(&self) -> PathBuf {
        self.root.join("jobs")
    }

    pub fn job(&self, job: &str) -> JobDir {
        JobDir(self.jobs().join(path_component(job)))
    }

    /// `<data>/checkpoints`: checkpoints of jobs without `state.checkpoints.dir`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    pub fn savepoints(&self) -> PathBuf {
        self.root.join("savepoints")
    }

    pub fn repl_history(&self) -> PathBuf {
        self.root.join("history.txt")
    }

    /// `<data>/remote-copies/<location>`: local copies of the files of a checkpoint or savepoint
    /// directory on S3 (downloads for a restore; local recovery).
    pub fn remote_copies(&self, location: &str) -> PathBuf {
        self.root.join("remote-copies").join(path_component(location))
    }

    /// `<data>/tmp/<name>`: scratch space (a savepoint assembled before its upload).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.root.join("tmp").join(path_component(name))
    }
}

/// The directories SQL may name paths in: a file source's `path`, `SAVEPOINT JOB ... TO`,
/// `RESTORE JOB ... FROM '<path>'`, `state.checkpoints.dir` and the savepoint directory setting.
/// They are the data directory and the roots Weir was started with (`--file-root`; the REPL and
/// `weir run` add the directory they started in). A path is resolved first — made absolute against
/// the working directory, symlinks and `..` followed as far as it exists — so neither `..` nor a
/// symlink leads out. Like Postgres' `pg_read_server_files`, this keeps a SQL user from reading or
/// overwriting the server's other files.
#[derive(Debug, Clone)]
pub struct FileRoots {
    /// Canonical paths.
    roots: Vec<PathBuf>,
}

impl FileRoots {
    /// `data_dir` and `extra`; each must exist.
    pub fn new(data_dir: &Path, extra: &[PathBuf]) -> Result<Self> {
        let mut roots = Vec::new();
        for root in std::iter::once(data_dir).chain(extra.iter().map(PathBuf::as_path)) {
            let canonical = root
                .canonicalize()
                .map_err(|e| Error::invalid(format!("file root '{}' cannot be used: {e}", root.display())))?;
            roots.push(canonical);
        }
        Ok(FileRoots { roots })
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// `path` resolved, when it lies inside a root; `what` names it in the error ("source file").
    /// The path need not exist; what exists of it is resolved, and the rest may not hold `..`.
    pub fn resolve(&self, what: &str, path: &Path) -> Result<PathBuf> {
        if path.as_os_str().is_empty() {
            return Err(Error::invalid(format!("the {what} path is empty")));
        }
        let absolute = std::path::absolute(path).map_err(|e| Error::invalid(format!("{what} path '{}': {e}", path.display())))?;
        // The longest prefix that exists, canonicalized, then the components that do not exist yet.
        let mut existing = absolute.as_path();
        let mut missing = Vec::new();
        let resolved = loop {
            match existing.canonicalize() {
                Ok(canonical) => break canonical,
                Err(_) => {
                    // `file_name` is `None` for a `..` of a directory that does not exist.
                    let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                        return Err(Error::user(
                            UserErrorKind::InsufficientPrivilege,
                            format!(
                                "{what} path '{}' goes through '..' of a directory that does not exist",
                                path.display()
                            ),
                        ));
                    };
                    missing.push(name);
                    existing = parent;
                }
            }
        };
        let resolved = missing.iter().rev().fold(resolved, |p, name| p.join(name));
        if self.roots.iter().any(|root| resolved.starts_with(root)) {
            Ok(resolved)
        } else {
            Err(Error::user(
                UserErrorKind::InsufficientPrivilege,
                format!(
                    "{what} path '{}' is outside the directories Weir may use ({}); start Weir with --file-root <dir> to allow another",
                    path.display(),
                    self.roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
                ),
            ))
        }
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

    /// The job's ended checkpoints and restarts (`checkpoint::history`), kept across restarts.
    pub fn history_log(&self) -> PathBuf {
        self.0.join("history.jsonl")
    }

    /// Written before the job resumes at start, removed at a clean exit (`engine::resume_guard`).
    pub fn resume_marker(&self) -> PathBuf {
        self.0.join("resuming")
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

/// Where a sink subtask of an attempt stages the rows of its epochs (`<prefix>-<n>.arrow`).
pub fn sink_staging_prefix(snapshots: &Path, uid: &str, subtask: usize) -> PathBuf {
    snapshots.join("staging").join(format!("{uid}-{subtask}"))
}

/// `name` as one file-name component: ASCII letters, digits, `_`, `$` and `-` stay, every other
/// byte becomes `%XX`, and the empty name becomes `%`. The result is never `.`, `..`, empty, or
/// holds a separator, and two names never share a component.
pub fn path_component(name: &str) -> String {
    if name.is_empty() {
        return "%".to_string();
    }
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'$' | b'-') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_roots_only() {
        let base = tempfile::tempdir().expect("temp dir");
        let data = base.path().join("data");
        let inputs = base.path().join("inputs");
        std::fs::create_dir_all(data.join("sub")).expect("mkdir");
        std::fs::create_dir_all(&inputs).expect("mkdir");
        std::fs::write(inputs.join("a.csv"), "1\n").expect("write");
        std::os::unix::fs::symlink("/etc", data.join("escape")).expect("symlink");
        let roots = FileRoots::new(&data, std::slice::from_ref(&inputs)).expect("roots");
        let ok = |p: &Path| roots.resolve("test", p).map_err(|e| e.sqlstate());
        let canonical = |p: &Path| p.canonicalize().expect("canonical");
        assert_eq!(ok(&inputs.join("a.csv")), Ok(canonical(&inputs).join("a.csv")));
        assert_eq!(ok(&data.join("sub/new/deeper")), Ok(canonical(&data).join("sub/new/deeper")));
        assert_eq!(ok(&data.join("sub/../sub/x")), Ok(canonical(&data).join("sub/x")));
        for outside in [
            base.path().join("elsewhere"),
            data.join(".."),
            data.join("../inputs/../../x"),
            data.join("escape/passwd"),
            data.join("missing/../../x"),
            PathBuf::from("/"),
            PathBuf::from("/proc/self/mem"),
        ] {
            assert_eq!(ok(&outside), Err("42501"), "{}", outside.display());
        }
        assert_eq!(ok(Path::new("")), Err("22023"));
    }

    #[test]
    fn components_are_single_and_distinct() {
        assert_eq!(path_component("q5_job-1$"), "q5_job-1$");
        assert_eq!(path_component(".."), "%2E%2E");
        assert_eq!(path_component("/"), "%2F");
        assert_eq!(path_component(""), "%");
        assert_eq!(path_component("a%2F"), "a%252F");
        for name in ["..", ".", "/", "../../..", "a/../b", "", "\0", "ä"] {
            let c = path_component(name);
            let path = std::path::Path::new("/base").join(&c);
            assert_eq!(path.parent(), Some(std::path::Path::new("/base")), "{name:?} -> {c}");
            assert_eq!(path.components().count(), 3, "{name:?} -> {c}");
        }
    }
}
