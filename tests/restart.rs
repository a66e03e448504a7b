//! The catalog and result tables survive a restart of Weir on the same data directory.

use weir::{Output, Session};

async fn rows(session: &Session, sql: &str) -> Vec<Vec<Option<String>>> {
    let outputs = session.execute(sql).await.expect(sql);
    match outputs.last() {
        Some(Output::Rows { batches, .. }) => weir::format::rows_text(batches).expect("rows"),
        other => panic!("{sql} returned {other:?}"),
    }
}

fn cells(rows: &[Vec<Option<String>>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.clone().unwrap_or_else(|| "NULL".into())).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_and_results_survive_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let session = Session::open(dir.path()).await.expect("open");
        session
            .execute(
                "CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
                   WITH (connector = 'file', path = 'sql/data/hop.csv', format = 'csv');
                 CREATE TABLE totals (k VARCHAR, n BIGINT, s BIGINT, PRIMARY KEY (k));
                 CREATE JOB j AS INSERT INTO totals SELECT k, COUNT(*), SUM(v) FROM ev GROUP BY k;
                 WAIT JOB j;",
            )
            .await
            .expect("setup");
    }
    let session = Session::open(dir.path()).await.expect("reopen");
    // hop.csv: x has 8 rows summing to 59 (1+3+5+6+9+10+12+13), y has 6 rows summing to 46 (see sql/window/hop.slt).
    assert_eq!(
        cells(&rows(&session, "SELECT k, n, s FROM totals ORDER BY k").await),
        vec![vec!["x", "8", "59"], vec!["y", "6", "46"]]
    );
    assert_eq!(cells(&rows(&session, "SHOW SOURCES").await), vec![vec!["ev", "file"]]);
    assert_eq!(
        cells(&rows(&session, "SELECT name, status FROM weir_jobs").await),
        vec![vec!["j", "FINISHED"]]
    );
    // The restored catalog still plans jobs against the restored source and table.
    session.execute("CREATE TABLE totals2 (k VARCHAR, n BIGINT, s BIGINT, PRIMARY KEY (k)); CREATE JOB j2 AS INSERT INTO totals2 SELECT k, COUNT(*), SUM(v) FROM ev GROUP BY k; WAIT JOB j2;").await.expect("second job");
    assert_eq!(
        cells(&rows(&session, "SELECT k, n, s FROM totals2 ORDER BY k").await),
        vec![vec!["x", "8", "59"], vec!["y", "6", "46"]]
    );
}

/// STOP and CANCEL of a job that is RESTARTING (issue 12: it answered "job 'j' is RUNNING, not
/// RUNNING"). STOP stops it at once; STOP WITH SAVEPOINT says why it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarting_job_can_be_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute(
            "CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts) \
               WITH (connector = 'file', path = 'sql/data/hop.csv', format = 'csv', 'fail.at.row' = '3');
             CREATE TABLE totals (k VARCHAR, n BIGINT, PRIMARY KEY (k));
             CREATE JOB r WITH ('restart-strategy.type' = 'fixed-delay', 'restart-strategy.fixed-delay.attempts' = '3',
                                'restart-strategy.fixed-delay.delay' = '1h')
               AS INSERT INTO totals SELECT k, COUNT(*) FROM ev GROUP BY k;",
        )
        .await
        .expect("setup");
    let status = || async { cells(&rows(&session, "SELECT status FROM weir_jobs WHERE name = 'r'").await)[0][0].clone() };
    let started = std::time::Instant::now();
    while status().await != "RESTARTING" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "never RESTARTING: {}",
            status().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let error = session
        .execute("STOP JOB r WITH SAVEPOINT")
        .await
        .expect_err("no savepoint while restarting");
    assert_eq!(error.sqlstate(), "55000");
    assert!(
        error.to_string().contains("job 'r' is RESTARTING; a savepoint needs it RUNNING"),
        "{error}"
    );
    session.execute("STOP JOB r").await.expect("stop a restarting job");
    assert_eq!(status().await, "STOPPED");
    let error = session.execute("CANCEL JOB r").await.expect_err("already stopped");
    assert!(error.to_string().contains("job 'r' is STOPPED, not RUNNING"), "{error}");
}

/// A checkpoint directory that cannot be created (here: below a file) fails the job over and over;
/// weir_jobs says why while it is RESTARTING (issue 12: the error column stayed empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarting_job_shows_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("blocker"), "").expect("blocker file");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute(&format!(
            "CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts) \
               WITH (connector = 'file', path = 'sql/data/hop.csv', format = 'csv', 'rows-per-second' = '2');
             CREATE TABLE totals (k VARCHAR, n BIGINT, PRIMARY KEY (k));
             CREATE JOB c WITH ('execution.checkpointing.interval' = '100ms', 'state.checkpoints.dir' = '{}')
               AS INSERT INTO totals SELECT k, COUNT(*) FROM ev GROUP BY k;",
            dir.path().join("blocker/checkpoints").display()
        ))
        .await
        .expect("setup");
    let started = std::time::Instant::now();
    loop {
        let row = cells(&rows(&session, "SELECT status, error FROM weir_jobs WHERE name = 'c'").await)[0].clone();
        if row[0] == "RESTARTING" && row[1] != "NULL" {
            assert!(
                row[1].contains("cannot create directory") && row[1].contains("Not a directory"),
                "{row:?}"
            );
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no cause shown: {row:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    session.execute("CANCEL JOB c").await.expect("cancel");
}
