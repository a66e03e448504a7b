//! The catalog and result tables survive a restart of Weir on the same data directory.

mod common;

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

async fn connect(port: u16) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=weir"), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Runs `setup` on a server over `dir`, lets its jobs work for `work`, and shuts the server down
/// (SIGTERM: each job takes a last checkpoint first).
async fn run_until_shutdown(dir: &std::path::Path, setup: &str, work: std::time::Duration) {
    let server = common::start_server(dir);
    connect(server.port).await.batch_execute(setup).await.expect("setup");
    tokio::time::sleep(work).await;
    server.terminate();
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

/// With catalog.json gone beside tables and checkpoints, Weir refuses to start rather than start
/// empty over them (issue 12); with the file back, everything is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_catalog_stops_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let session = Session::open(dir.path()).await.expect("open");
        session
            .execute(
                "CREATE TABLE kept (k BIGINT, PRIMARY KEY (k));
                 CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts) \
                   WITH (connector = 'file', path = 'sql/data/hop.csv', format = 'csv');
                 CREATE TABLE totals (k VARCHAR, n BIGINT, PRIMARY KEY (k));
                 CREATE JOB j AS INSERT INTO totals SELECT k, COUNT(*) FROM ev GROUP BY k;
                 WAIT JOB j;",
            )
            .await
            .expect("setup");
    }
    let catalog = dir.path().join("catalog.json");
    std::fs::rename(&catalog, dir.path().join("catalog.json.bak")).expect("move the catalog away");
    let error = Session::open(dir.path()).await.err().expect("no start without the catalog");
    assert!(
        error.to_string().contains("holds tables/") && error.to_string().contains("but no catalog.json"),
        "{error}"
    );
    assert!(!catalog.exists(), "an empty catalog was written");
    std::fs::rename(dir.path().join("catalog.json.bak"), &catalog).expect("restore the catalog");
    let session = Session::open(dir.path()).await.expect("open with the catalog back");
    assert_eq!(
        cells(&rows(&session, "SELECT k, n FROM totals ORDER BY k").await),
        vec![vec!["x", "8"], vec!["y", "6"]]
    );
}

/// A job that takes the process down while it resumes (here: the process is killed before the job
/// completes a checkpoint) is resumed twice more, then marked FAILED with the cause, and the server
/// comes up without it (issue 12: an out-of-memory job crash-looped the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_killing_the_process_is_not_resumed_forever() {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = |port: u16| async move {
        let rows = connect(port)
            .await
            .query("SELECT status, error FROM weir_jobs WHERE name = 'g'", &[])
            .await
            .expect("weir_jobs");
        (rows[0].get::<_, String>(0), rows[0].get::<_, Option<String>>(1))
    };
    {
        let server = common::start_server(dir.path());
        connect(server.port)
            .await
            .batch_execute(
                "CREATE SOURCE gen (k BIGINT) WITH (connector = 'datagen', 'rows-per-second' = '10');
                 CREATE TABLE counts (k BIGINT, n BIGINT, PRIMARY KEY (k));
                 CREATE JOB g WITH ('execution.checkpointing.interval' = '1h') AS INSERT INTO counts SELECT k, COUNT(*) FROM gen GROUP BY k;",
            )
            .await
            .expect("setup");
    } // killed (SIGKILL) while the job runs
    for start in 1..=2 {
        let server = common::start_server(dir.path());
        // Resumed in the background: listed at once, RUNNING once restored.
        let started = std::time::Instant::now();
        loop {
            match status(server.port).await.0.as_str() {
                "RUNNING" => break,
                "CREATED" | "RESTORING" if started.elapsed() < std::time::Duration::from_secs(30) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                other => panic!("start {start}: job g is {other}, not resumed"),
            }
        }
    } // killed again, each time before a checkpoint completed
    let server = common::start_server(dir.path());
    let (state, error) = status(server.port).await;
    assert_eq!(state, "FAILED");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("ended abnormally 2 times in a row while this job was resuming"),
        "{error}"
    );
}

/// A clean exit between starts does not count: `weir run` twice on a data dir with a checkpointing
/// job that never completes a checkpoint keeps resuming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_exits_do_not_count_against_a_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("setup.sql");
    std::fs::write(
        &script,
        "CREATE SOURCE gen (k BIGINT) WITH (connector = 'datagen', 'rows-per-second' = '10');
         CREATE TABLE counts (k BIGINT, n BIGINT, PRIMARY KEY (k));
         CREATE JOB g WITH ('execution.checkpointing.interval' = '1h') AS INSERT INTO counts SELECT k, COUNT(*) FROM gen GROUP BY k;",
    )
    .expect("script");
    let show = dir.path().join("show.sql");
    std::fs::write(&show, "SELECT status FROM weir_jobs WHERE name = 'g';").expect("script");
    let run = |file: &std::path::Path| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "--format", "csv", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg(file)
            .output()
            .expect("weir run");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    run(&script);
    for _ in 0..4 {
        // The script may run while the job still restores in the background.
        let out = run(&show);
        assert!(
            ["RUNNING", "RESTORING", "CREATED"].iter().any(|s| out.contains(s)),
            "the job was not resumed: {out}"
        );
    }
}

/// A job resumed at start is listed while it restores (CREATED, RESTORING), and SHOW JOBS shows
/// its restore: every byte of the checkpoint it resumed from, once it runs (issue 18).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_job_shows_its_restore() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The only checkpoint is the one the job takes as the server shuts down.
    run_until_shutdown(
        dir.path(),
        "CREATE SOURCE gen (k BIGINT, v BIGINT) WITH (connector = 'datagen', 'rows-per-second' = '5000',
             'fields.k.min' = '0', 'fields.k.max' = '2000');
         CREATE TABLE counts (k BIGINT, n BIGINT, total BIGINT, PRIMARY KEY (k));
         CREATE JOB g WITH ('execution.checkpointing.interval' = '1h', 'parallelism' = '2')
           AS INSERT INTO counts SELECT k, COUNT(*), SUM(v) FROM gen GROUP BY k;",
        std::time::Duration::from_secs(1),
    )
    .await;
    let server = common::start_server(dir.path());
    let client = connect(server.port).await;
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    let row = loop {
        let row = client
            .query_one(
                "SELECT status, restored_bytes, restore_total_bytes FROM weir_jobs WHERE name = 'g'",
                &[],
            )
            .await
            .expect("weir_jobs");
        let status: String = row.get(0);
        if !seen.contains(&status) {
            seen.push(status.clone());
        }
        if status == "RUNNING" {
            break row;
        }
        assert!(
            ["CREATED", "RESTORING"].contains(&status.as_str()) && started.elapsed() < std::time::Duration::from_secs(30),
            "job g is {status} while it resumes (seen: {seen:?})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let (restored, total): (Option<i64>, Option<i64>) = (row.get(1), row.get(2));
    let checkpoints = client.query("SHOW CHECKPOINTS FOR JOB g", &[]).await.expect("checkpoints");
    let completed: Vec<_> = checkpoints.iter().filter(|r| r.get::<_, String>(1) == "COMPLETED").collect();
    assert_eq!(completed.len(), 1, "only the shutdown checkpoint completed");
    let full_size: i64 = completed[0].get(7);
    assert!(full_size > 0, "the checkpoint holds state");
    assert_eq!(
        (restored, total),
        (Some(full_size), Some(full_size)),
        "restored of total bytes, against the checkpoint's full size (statuses seen: {seen:?})"
    );
    let describe = client.query("DESCRIBE JOB g", &[]).await.expect("describe");
    let restore: Vec<String> = describe
        .iter()
        .filter(|r| r.get::<_, String>(0) == "restore")
        .map(|r| r.get(1))
        .collect();
    assert_eq!(restore, [format!("{full_size} of {full_size} bytes")]);
}

/// Every checkpoint of a job damaged: its restart fails the job with the reason, as Flink does,
/// instead of starting it over from nothing (which would read the sources again from their start
/// and append every row to the table a second time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_every_checkpoint_is_damaged_fails_instead_of_starting_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The job's last checkpoint, taken as the server shuts down, commits its rows.
    run_until_shutdown(
        dir.path(),
        "CREATE SOURCE gen (k BIGINT, v BIGINT) WITH (connector = 'datagen', 'rows-per-second' = '2000');
         CREATE TABLE appended (k BIGINT, v BIGINT);
         CREATE JOB a WITH ('execution.checkpointing.interval' = '1h', 'restart-strategy.type' = 'fixed-delay',
                            'restart-strategy.fixed-delay.attempts' = '1', 'restart-strategy.fixed-delay.delay' = '10ms')
           AS INSERT INTO appended SELECT k, v FROM gen;",
        std::time::Duration::from_millis(500),
    )
    .await;
    let checkpoints = dir.path().join("checkpoints").join("a");
    let mut damaged = 0;
    for entry in std::fs::read_dir(&checkpoints).expect("checkpoint dir") {
        let metadata = entry.expect("entry").path().join("_metadata");
        if metadata.exists() {
            let mut bytes = std::fs::read(&metadata).expect("read _metadata");
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x55;
            std::fs::write(&metadata, bytes).expect("damage _metadata");
            damaged += 1;
        }
    }
    assert_eq!(damaged, 1, "one complete checkpoint in {}", checkpoints.display());
    let server = common::start_server(dir.path());
    let client = connect(server.port).await;
    let count = || async {
        client
            .query_one("SELECT COUNT(*) FROM appended", &[])
            .await
            .expect("count")
            .get::<_, i64>(0)
    };
    let committed = count().await;
    assert!(committed > 0, "the shutdown checkpoint committed rows");
    let started = std::time::Instant::now();
    let error = loop {
        let row = client
            .query_one("SELECT status, error FROM weir_jobs WHERE name = 'a'", &[])
            .await
            .expect("weir_jobs");
        let (status, error): (String, Option<String>) = (row.get(0), row.get(1));
        if status == "FAILED" {
            break error.unwrap_or_default();
        }
        assert!(
            ["CREATED", "RESTORING", "RESTARTING"].contains(&status.as_str()) && started.elapsed() < std::time::Duration::from_secs(30),
            "job a is {status} ({error:?})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        error.contains("no checkpoint of this job can be restored (skipping checkpoint") && error.contains("RESTORE JOB from a savepoint"),
        "{error}"
    );
    assert_eq!(count().await, committed, "nothing was committed again");
}
