//! Savepoints written by an earlier Weir still restore. `tests/fixtures/savepoint-v1/` holds
//! savepoints taken by the Weir of stop 9 (before operator snapshot metadata became typed structs):
//! a tumbling window (native and canonical) and a session window (canonical), each taken part-way
//! through `clicks.csv`. Restored, each job finishes the file, and every window counts every row
//! exactly once: the rows before the savepoint come from the restored state, the rest from the
//! restored source position.
//!
//! How the fixture was made (stop 10, with the stop-9 binary, `weir serve` + psql): source `clicks`
//! over clicks.csv with `'rows-per-second' = '50'`, the two jobs below (parallelism 1, no periodic
//! checkpoints), and after 1.5 s `SAVEPOINT JOB tumble TO '.../tumble-native' WITH (format =
//! 'native')`, the same with `'canonical'`, and `SAVEPOINT JOB sess TO '.../session-canonical'
//! WITH (format = 'canonical')`. Keep it as it is: it stands for savepoints users already have.

use std::path::{Path, PathBuf};

use weir::Session;

mod common;
use common::rows;

fn fixtures() -> PathBuf {
    common::repo_dir().join("tests/fixtures/savepoint-v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A database with the fixture's source and tables; returns the session and a copy of `savepoint`.
async fn restore(savepoint: &str, job: &str) -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&fixtures().join(savepoint), &dir.path().join("savepoint"));
    let session = common::session_in(dir.path()).await;
    session
        .execute(&format!(
            "CREATE SOURCE clicks (k BIGINT, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
               WITH (connector = 'file', path = '{}', format = 'csv');
             CREATE TABLE per_hour (k BIGINT, window_start TIMESTAMP(3), n BIGINT, total BIGINT, PRIMARY KEY (k, window_start));
             CREATE TABLE sessions (k BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT, PRIMARY KEY (k, window_start));",
            fixtures().join("clicks.csv").display()
        ))
        .await
        .expect("setup");
    let path = std::fs::read_dir(dir.path().join("savepoint"))
        .expect("savepoint dir")
        .next()
        .expect("one savepoint")
        .expect("entry")
        .path();
    session
        .execute(&format!("RESTORE JOB {job} FROM '{}'; WAIT JOB {job};", path.display()))
        .await
        .expect("restore");
    (dir, session)
}

/// Row i of clicks.csv has k = i % 5 + 1, v = i, ts = 00:00:00 + i s (200 rows, all in one hour).
fn hourly_expected() -> Vec<Vec<String>> {
    (1..=5)
        .map(|k: i64| {
            let total: i64 = (0..200).filter(|i| i % 5 + 1 == k).sum();
            vec![k.to_string(), "40".to_string(), total.to_string()]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_tumble_savepoint_of_stop_9_restores() {
    let (_dir, session) = restore("tumble-native", "tumble").await;
    assert_eq!(
        rows(&session, "SELECT k, n, total FROM per_hour ORDER BY k").await,
        hourly_expected()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_tumble_savepoint_of_stop_9_restores() {
    let (_dir, session) = restore("tumble-canonical", "tumble").await;
    assert_eq!(
        rows(&session, "SELECT k, n, total FROM per_hour ORDER BY k").await,
        hourly_expected()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_session_savepoint_of_stop_9_restores() {
    let (_dir, session) = restore("session-canonical", "sess").await;
    // One session per key: from its first row to its last row (row 195 + k - 1) plus the 10 min gap.
    let expected: Vec<Vec<String>> = (1..=5)
        .map(|k: i64| {
            vec![
                k.to_string(),
                format!("2024-01-01T00:00:0{}", k - 1),
                format!("2024-01-01T00:13:{}", 15 + k - 1),
                "40".to_string(),
            ]
        })
        .collect();
    assert_eq!(
        rows(
            &session,
            "SELECT k, CAST(window_start AS VARCHAR), CAST(window_end AS VARCHAR), n FROM sessions ORDER BY k"
        )
        .await,
        expected
    );
}
