//! Sources that are slow, idle or stuck must not stall anything else: a slow source's rows reach
//! the result table within the linger plus a checkpoint, barriers reach a source that waits for
//! input (checkpoints keep completing, STOP WITH SAVEPOINT returns at once), a hung upload is
//! aborted at the checkpoint timeout, and an idle source subtask stops holding the watermark back.

use std::io::Write;
use std::time::{Duration, Instant};

use weir::Session;

mod common;
use common::rows;

async fn count(session: &Session, sql: &str) -> usize {
    rows(session, sql).await[0][0].parse().expect("a count")
}

/// Statuses of the job's checkpoints, in id order, with their paths or failure messages.
async fn checkpoints(session: &Session, job: &str) -> Vec<(String, String)> {
    rows(session, &format!("SHOW CHECKPOINTS FOR JOB {job}"))
        .await
        .into_iter()
        .map(|r| (r[1].clone(), r[8].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_row_per_second_reaches_the_table_and_never_stalls_checkpoints_or_stop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute(
            "CREATE SOURCE slow (k BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
               WITH (connector = 'datagen', 'rows-per-second' = '1', 'fields.k.kind' = 'sequence');
             CREATE TABLE seen (k BIGINT, ts TIMESTAMP(3), PRIMARY KEY (k));
             CREATE JOB sj WITH ('execution.checkpointing.interval' = '200ms')
               AS INSERT INTO seen SELECT k, ts FROM slow;",
        )
        .await
        .expect("setup");
    let started = Instant::now();
    // When row k (due k seconds after the start) became visible.
    let mut visible_after = Vec::new();
    while visible_after.len() < 4 {
        let n = count(&session, "SELECT count(*) FROM seen").await;
        while visible_after.len() < n {
            visible_after.push(started.elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(20), "rows visible after 20 s: {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("rows visible after {visible_after:?}");
    for (k, after) in visible_after.iter().enumerate() {
        let late = after.saturating_sub(Duration::from_secs(k as u64));
        assert!(late < Duration::from_secs(1), "row {k} became visible {late:?} after it was due");
    }
    // 200 ms checkpoints complete while the source waits for its next row.
    let elapsed = started.elapsed();
    let completed = checkpoints(&session, "sj").await.iter().filter(|(s, _)| s == "COMPLETED").count();
    println!("{completed} checkpoints completed in {elapsed:?}");
    assert!(
        completed as f64 >= elapsed.as_secs_f64() / 0.2 * 0.5,
        "only {completed} checkpoints completed in {elapsed:?} at a 200 ms interval"
    );

    let stop = Instant::now();
    session.execute("STOP JOB sj WITH SAVEPOINT").await.expect("stop with savepoint");
    let took = stop.elapsed();
    println!("STOP JOB WITH SAVEPOINT took {took:?}");
    assert!(took < Duration::from_secs(1), "STOP JOB WITH SAVEPOINT took {took:?}");
    assert_eq!(
        rows(&session, "SELECT status FROM weir_jobs WHERE name = 'sj'").await,
        vec![vec!["STOPPED"]]
    );
    // The rows are exactly the sequence, none lost or doubled.
    let n = count(&session, "SELECT count(*) FROM seen").await;
    assert_eq!(count(&session, "SELECT count(DISTINCT k) FROM seen").await, n);
    assert_eq!(rows(&session, "SELECT max(k) FROM seen").await, vec![vec![(n - 1).to_string()]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_upload_is_aborted_at_the_timeout_and_the_next_checkpoint_completes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute(
            "CREATE SOURCE s (k BIGINT, v BIGINT) WITH (connector = 'datagen', 'rows-per-second' = '1000',
               'fields.k.min' = '0', 'fields.k.max' = '99', seed = '3');
             CREATE TABLE t (k BIGINT, n BIGINT, PRIMARY KEY (k));
             CREATE JOB hj WITH ('execution.checkpointing.interval' = '200ms',
               'execution.checkpointing.timeout' = '1s',
               'execution.checkpointing.tolerable-failed-checkpoints' = '1',
               'debug.checkpoint.hang-uploads' = '1')
               AS INSERT INTO t SELECT k, COUNT(*) FROM s GROUP BY k;",
        )
        .await
        .expect("setup");
    let started = Instant::now();
    let seen = loop {
        let seen = checkpoints(&session, "hj").await;
        if seen.iter().filter(|(s, _)| s == "COMPLETED").count() >= 2 {
            break seen;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "checkpoints: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("checkpoints: {seen:?}");
    // The first checkpoint's upload hung: it failed at the timeout, and the ones after completed.
    assert_eq!(seen[0].0, "FAILED");
    assert!(seen[0].1.contains("timed out"), "failure of the hung checkpoint: {}", seen[0].1);
    assert!(seen[1..].iter().all(|(s, _)| s != "FAILED"), "{seen:?}");
    // Aborting it did not fail the job over.
    assert_eq!(
        rows(&session, "SELECT status, restarts FROM weir_jobs WHERE name = 'hj'").await,
        vec![vec!["RUNNING", "0"]]
    );
    session.execute("CANCEL JOB hj").await.expect("cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_source_subtask_does_not_hold_windows_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("clicks.csv");
    let mut file = std::fs::File::create(&path).expect("csv");
    writeln!(file, "user_id,ts").expect("write");
    for (user, second) in [(1, 0.5), (2, 0.7), (1, 1.2), (1, 2.5)] {
        writeln!(file, "{user},2024-01-01T00:00:0{second}").expect("write");
    }
    file.flush().expect("flush");
    let session = common::session_in(dir.path()).await;
    // Parallelism 2: subtask 0 reads (and monitors) the file, subtask 1 has nothing to read and
    // stays open without a watermark. Only the idle timeout lets the windows fire.
    session
        .execute(&format!(
            "CREATE SOURCE clicks (user_id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
               WITH (connector = 'file', path = '{}', format = 'csv', 'source.monitor-interval' = '50ms');
             CREATE TABLE per_second (user_id BIGINT, window_start TIMESTAMP(3), clicks BIGINT,
               PRIMARY KEY (user_id, window_start));
             CREATE JOB ij WITH ('parallelism' = '2', 'table.exec.source.idle-timeout' = '300ms')
               AS INSERT INTO per_second SELECT user_id, window_start, COUNT(*)
               FROM TUMBLE(clicks, ts, INTERVAL '1' SECOND) GROUP BY user_id, window_start, window_end;",
            path.display()
        ))
        .await
        .expect("setup");
    let query = "SELECT user_id, CAST(window_start AS VARCHAR) AS ws, clicks FROM per_second ORDER BY ws, user_id";
    let wait_for = |n: usize| {
        let session = &session;
        async move {
            let started = Instant::now();
            loop {
                let got = rows(session, query).await;
                if got.len() >= n {
                    return got;
                }
                assert!(started.elapsed() < Duration::from_secs(20), "windows so far: {got:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // The watermark reached 2.5 s: the windows of seconds 0 and 1 fired.
    assert_eq!(
        wait_for(3).await,
        vec![
            vec!["1", "2024-01-01T00:00:00", "1"],
            vec!["2", "2024-01-01T00:00:00", "1"],
            vec!["1", "2024-01-01T00:00:01", "1"],
        ]
    );
    // Lines appended later are read too, and the next window fires.
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("append");
    writeln!(file, "3,2024-01-01T00:00:03.1").expect("write");
    file.flush().expect("flush");
    let got = wait_for(4).await;
    assert_eq!(got[3], vec!["1", "2024-01-01T00:00:02", "1"]);
    session.execute("CANCEL JOB ij").await.expect("cancel");
}

/// Processing-time windows close by the wall clock: with the source waiting for more lines (one
/// subtask has nothing at all to read), each second's window still fires, and a line appended
/// later lands in a later window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_time_windows_close_while_the_source_waits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("clicks.csv");
    let mut file = std::fs::File::create(&path).expect("csv");
    writeln!(file, "user_id,ts").expect("write");
    for user in [1, 2, 1] {
        writeln!(file, "{user},2024-01-01T00:00:00").expect("write");
    }
    file.flush().expect("flush");
    let session = common::session_in(dir.path()).await;
    session
        .execute(&format!(
            "CREATE SOURCE clicks (user_id BIGINT, ts TIMESTAMP(3), pt AS PROCTIME())
               WITH (connector = 'file', path = '{}', format = 'csv', 'source.monitor-interval' = '50ms');
             CREATE TABLE per_second (user_id BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3),
               clicks BIGINT, PRIMARY KEY (user_id, window_start));
             CREATE JOB pj WITH ('parallelism' = '2')
               AS INSERT INTO per_second SELECT user_id, window_start, window_end, COUNT(*)
               FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(pt), INTERVAL '1' SECOND))
               GROUP BY user_id, window_start, window_end;",
            path.display()
        ))
        .await
        .expect("setup");
    let totals = "SELECT user_id, CAST(SUM(clicks) AS VARCHAR) FROM per_second GROUP BY user_id ORDER BY user_id";
    let wait_for = |expected: Vec<Vec<&'static str>>| {
        let session = &session;
        async move {
            let started = Instant::now();
            loop {
                let got = rows(session, totals).await;
                if got == expected {
                    return;
                }
                assert!(started.elapsed() < Duration::from_secs(20), "totals so far: {got:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(vec![vec!["1", "2"], vec!["2", "1"]]).await;
    let windows = "SELECT COUNT(*) FILTER (WHERE window_end - window_start <> INTERVAL '1' SECOND),
                          COUNT(*) FILTER (WHERE window_start < CAST(NOW() AS TIMESTAMP) - INTERVAL '1' MINUTE)
                   FROM per_second";
    assert_eq!(rows(&session, windows).await, vec![vec!["0", "0"]]);
    let first_windows = count(&session, "SELECT COUNT(*) FROM per_second WHERE user_id = 1").await;
    // A line appended a second later is counted in a window of its own.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("append");
    writeln!(file, "1,2024-01-01T00:00:00").expect("write");
    file.flush().expect("flush");
    wait_for(vec![vec!["1", "3"], vec!["2", "1"]]).await;
    assert_eq!(
        count(&session, "SELECT COUNT(*) FROM per_second WHERE user_id = 1").await,
        first_windows + 1
    );
    session.execute("CANCEL JOB pj").await.expect("cancel");
}
