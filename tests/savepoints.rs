//! Savepoints end to end: EXPLAIN RESTORE before anything runs, a native savepoint moved to another
//! directory, canonical savepoints across state backends, and a Nexmark HOP job stopped with a
//! savepoint and restored at parallelism 1, 2 and 4 (HOP and SESSION), each giving the rows of an
//! uninterrupted run.

use weir::Session;

mod common;
use common::rows;

const SOURCE: &str = "CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
    WITH (connector = 'file', path = 'sql/data/par.csv', format = 'csv', 'rows-per-second' = '40');";

fn tumble_job(name: &str, table: &str, with: &str) -> String {
    format!(
        "CREATE TABLE {table} (k VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, cnt BIGINT, total BIGINT, PRIMARY KEY (k, window_start));
         CREATE JOB {name} WITH ({with}) AS INSERT INTO {table} SELECT k, window_start, window_end, COUNT(*), SUM(v)
         FROM TUMBLE(ev, ts, INTERVAL '20' SECOND) GROUP BY k, window_start, window_end;"
    )
}

/// Opens a session with the `ev` source and runs the TUMBLE job to its end at `parallelism`:
/// the rows every interrupted run must reproduce.
async fn session_with_uninterrupted_rows(dir: &std::path::Path, parallelism: u32) -> (Session, Vec<Vec<String>>) {
    let session = Session::open(dir).await.expect("open");
    session.execute(SOURCE).await.expect("source");
    session
        .execute(&tumble_job("whole", "expected", &format!("'parallelism' = '{parallelism}'")))
        .await
        .expect("job");
    session.execute("WAIT JOB whole").await.expect("wait");
    let expected = rows(&session, "SELECT k, window_start, cnt, total FROM expected ORDER BY 1, 2").await;
    assert_eq!(expected.len(), 20);
    (session, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_restore_reports_matched_dropped_and_new_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session.execute(SOURCE).await.expect("source");
    session.execute(&tumble_job("j", "t", "'parallelism' = '2'")).await.expect("job");
    session.execute("STOP JOB j WITH SAVEPOINT").await.expect("stop");
    session.execute("CREATE TABLE plain (k VARCHAR, v BIGINT)").await.expect("table");
    let report = rows(
        &session,
        "EXPLAIN RESTORE JOB j FROM SAVEPOINT sp_j_1 AS INSERT INTO plain SELECT k, v FROM ev",
    )
    .await;
    // Uids come from what an operator is: the source's name, the aggregate's window, keys and calls.
    let state_of = |prefix: &str| {
        report
            .iter()
            .find(|r| r[0].starts_with(prefix))
            .map(|r| (r[0].clone(), r[1].clone(), r[2].parse::<u64>().unwrap_or(0)))
    };
    let (aggregate, status, bytes) = state_of("window-aggregate-").expect("aggregate listed");
    assert_eq!(status, "dropped");
    assert!(bytes > 0, "state size reported");
    assert_eq!(state_of("watermark-assigner-ev").map(|s| s.1), Some("matched".to_string()));
    let verdict = &report.last().expect("verdict")[1];
    assert!(verdict.starts_with("refused:") && verdict.contains(&aggregate), "{verdict}");
    // Nothing ran: the job is still STOPPED.
    assert_eq!(
        rows(&session, "SELECT status FROM weir_jobs WHERE name = 'j'").await,
        vec![vec!["STOPPED"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_move_and_cross_backends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (session, expected) = session_with_uninterrupted_rows(dir.path(), 2).await;

    // Native savepoint, directory moved elsewhere, restored from the new path.
    session
        .execute(&tumble_job("moved", "t_moved", "'parallelism' = '2'"))
        .await
        .expect("job");
    session
        .execute("SAVEPOINT JOB moved WITH (format = 'native')")
        .await
        .expect("savepoint");
    session.execute("CANCEL JOB moved").await.expect("cancel");
    let original = rows(&session, "SELECT path FROM weir_savepoints WHERE name = 'sp_moved_1'").await[0][0].clone();
    let elsewhere = dir.path().join("moved-away");
    std::fs::rename(&original, &elsewhere).expect("move savepoint");
    session
        .execute(&format!("RESTORE JOB moved FROM '{}'", elsewhere.display()))
        .await
        .expect("restore moved");
    session.execute("WAIT JOB moved").await.expect("wait");
    assert_eq!(
        rows(&session, "SELECT k, window_start, cnt, total FROM t_moved ORDER BY 1, 2").await,
        expected
    );

    // Canonical on rocksdb → hashmap → rocksdb again.
    session
        .execute(&tumble_job("hop", "t_hop", "'parallelism' = '2'"))
        .await
        .expect("job");
    session.execute("STOP JOB hop WITH SAVEPOINT").await.expect("stop");
    session
        .execute("RESTORE JOB hop FROM SAVEPOINT sp_hop_1 WITH ('state.backend.type' = 'hashmap')")
        .await
        .expect("restore on hashmap");
    session.execute("STOP JOB hop WITH SAVEPOINT").await.expect("stop again");
    session
        .execute("RESTORE JOB hop FROM SAVEPOINT sp_hop_2 WITH ('state.backend.type' = 'rocksdb', 'parallelism' = '3')")
        .await
        .expect("restore on rocksdb");
    session.execute("WAIT JOB hop").await.expect("wait");
    assert_eq!(
        rows(&session, "SELECT k, window_start, cnt, total FROM t_hop ORDER BY 1, 2").await,
        expected
    );
}

/// Lets job `name` run for `millis`, stops it with a savepoint, restores it from that savepoint at
/// `parallelism` and waits for its end.
async fn stop_after_and_restore(session: &Session, name: &str, millis: u64, parallelism: usize) {
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    session.execute(&format!("STOP JOB {name} WITH SAVEPOINT")).await.expect("stop");
    session
        .execute(&format!(
            "RESTORE JOB {name} FROM SAVEPOINT sp_{name}_1 WITH ('parallelism' = '{parallelism}')"
        ))
        .await
        .expect("restore");
    session.execute(&format!("WAIT JOB {name}")).await.expect("wait");
}

/// Runs a windowed Nexmark job to its end, then again stopped with a savepoint after 1.5 s (taken
/// at parallelism 2, with a cache small enough that part of the state is spilled and part is in the
/// cache image) and restored at parallelism 1, 2 and 4: the rows are the same each time. The tables
/// are append-only, so a window emitted twice would show. State moves
/// by key group; the generator's per-subtask positions are combined so no event is read twice or
/// skipped.
async fn nexmark_window_survives_stop_and_restore(key: &str, window: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute(
                        "CREATE SOURCE bids (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), WATERMARK FOR date_time AS date_time - INTERVAL '200' MILLISECOND)
               WITH (connector = 'nexmark', 'nexmark.table' = 'bid', 'max.events' = '40000', 'events.per.second' = '10000', seed = '3');",
        )
        .await
        .expect("source");
    let key_columns = key.split(", ").map(|k| format!("{k} BIGINT")).collect::<Vec<_>>().join(", ");
    let job = |name: &str, table: &str, parallelism: usize| {
        format!(
            "CREATE TABLE {table} ({key_columns}, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT, max_price BIGINT);
             CREATE JOB {name} WITH ('parallelism' = '{parallelism}', 'state.cache.max-entries' = '50') AS INSERT INTO {table}
             SELECT {key}, window_start, window_end, COUNT(*), MAX(price) FROM {window}
             GROUP BY {key}, window_start, window_end;"
        )
    };
    let query = |table: &str| {
        format!("SELECT {key}, window_start, window_end, bids, max_price FROM {table} ORDER BY {key}, window_start, window_end")
    };
    session.execute(&job("whole", "expected", 2)).await.expect("job");
    session.execute("WAIT JOB whole").await.expect("wait");
    let expected = rows(&session, &query("expected")).await;
    assert!(expected.len() > 100, "{} windows", expected.len());
    for parallelism in [1, 2, 4] {
        let (name, table) = (format!("j{parallelism}"), format!("t{parallelism}"));
        session.execute(&job(&name, &table, 2)).await.expect("job");
        // Windows have fired by then: spilled state was read back, and some of it went stale.
        stop_after_and_restore(&session, &name, 1500, parallelism).await;
        assert_eq!(
            rows(&session, &query(&table)).await,
            expected,
            "{window} restored at parallelism {parallelism}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_hop_job_survives_stop_and_restore() {
    nexmark_window_survives_stop_and_restore("auction", "HOP(bids, date_time, INTERVAL '1' SECOND, INTERVAL '2' SECOND)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_session_job_survives_stop_and_restore() {
    nexmark_window_survives_stop_and_restore("bidder", "SESSION(bids, date_time, INTERVAL '500' MILLISECOND)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_cumulate_job_survives_stop_and_restore() {
    nexmark_window_survives_stop_and_restore(
        "auction",
        "CUMULATE(bids, date_time, INTERVAL '500' MILLISECOND, INTERVAL '2' SECOND)",
    )
    .await;
}

/// Flink's SESSION TVF partitioned by auction and grouped by auction and bidder: sessions per
/// auction holding a state per bidder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_partitioned_session_job_survives_stop_and_restore() {
    nexmark_window_survives_stop_and_restore(
        "auction, bidder",
        "TABLE(SESSION(TABLE bids PARTITION BY auction, DESCRIPTOR(date_time), INTERVAL '500' MILLISECOND))",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagen_updating_aggregate_rescales_from_3_to_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute(
            "CREATE SOURCE gen (id BIGINT, v BIGINT) WITH (connector = 'datagen', 'number-of-rows' = '30000', 'rows-per-second' = '10000',
               'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '30000', seed = '5');",
        )
        .await
        .expect("source");
    let job = |name: &str, table: &str| {
        format!(
            "CREATE TABLE {table} (g BIGINT, n BIGINT, s BIGINT, PRIMARY KEY (g));
             CREATE JOB {name} WITH ('parallelism' = '3') AS INSERT INTO {table} SELECT id % 7, COUNT(*), SUM(v) FROM gen GROUP BY id % 7;"
        )
    };
    session.execute(&job("whole", "expected")).await.expect("job");
    session.execute("WAIT JOB whole").await.expect("wait");
    let expected = rows(&session, "SELECT g, n, s FROM expected ORDER BY g").await;
    // Every id counted once: 30000 rows over 7 groups.
    let total: u64 = expected.iter().map(|r| r[1].parse::<u64>().unwrap_or(0)).sum();
    assert_eq!(total, 30000);
    session.execute(&job("moved", "t")).await.expect("job");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    session.execute("STOP JOB moved WITH SAVEPOINT").await.expect("stop");
    session
        .execute("RESTORE JOB moved FROM SAVEPOINT sp_moved_1 WITH ('parallelism' = '2')")
        .await
        .expect("restore");
    session.execute("WAIT JOB moved").await.expect("wait");
    assert_eq!(rows(&session, "SELECT g, n, s FROM t ORDER BY g").await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_uid_carries_state_to_a_changed_query() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (session, expected) = session_with_uninterrupted_rows(dir.path(), 2).await;

    session.execute(&tumble_job("j", "t", "'parallelism' = '2'")).await.expect("job");
    session.execute("STOP JOB j WITH SAVEPOINT").await.expect("stop");
    // COUNT(v) instead of COUNT(*): the same state (v is never NULL here), but another uid.
    let changed = "INSERT INTO t SELECT k, window_start, window_end, COUNT(v), SUM(v) FROM TUMBLE(ev, ts, INTERVAL '20' SECOND) GROUP BY k, window_start, window_end";
    let report = rows(&session, &format!("EXPLAIN RESTORE JOB j FROM SAVEPOINT sp_j_1 AS {changed}")).await;
    let uid_in = |state: &str| {
        report
            .iter()
            .find(|r| r[1] == state && r[0].starts_with("window-aggregate-"))
            .map(|r| r[0].clone())
    };
    let (old, new) = (uid_in("dropped").expect("old aggregate"), uid_in("new").expect("new aggregate"));
    let pin = format!("WITH ('uid.{new}' = '{old}')");
    let report = rows(&session, &format!("EXPLAIN RESTORE JOB j FROM SAVEPOINT sp_j_1 {pin} AS {changed}")).await;
    assert!(report.iter().any(|r| r[0] == old && r[1] == "matched"), "{report:?}");
    session
        .execute(&format!("RESTORE JOB j FROM SAVEPOINT sp_j_1 {pin} AS {changed}"))
        .await
        .expect("restore");
    session.execute("WAIT JOB j").await.expect("wait");
    assert_eq!(
        rows(&session, "SELECT k, window_start, cnt, total FROM t ORDER BY 1, 2").await,
        expected
    );
    let error = session.execute("EXPLAIN CREATE JOB x WITH ('uid.nosuch' = 'a') AS INSERT INTO t SELECT k, window_start, window_end, COUNT(*), SUM(v) FROM TUMBLE(ev, ts, INTERVAL '20' SECOND) GROUP BY k, window_start, window_end").await;
    assert!(error.expect_err("unknown uid").to_string().contains("names no operator"));
}

/// A file cut into byte-range splits (`source.split-size`), read by 2 subtasks, stopped with a
/// savepoint part way and restored at parallelism 3: each split resumes at its saved byte offset,
/// so the windows count every row once, as a run that reads the file whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_splits_resume_at_their_offsets_at_another_parallelism() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (session, expected) = session_with_uninterrupted_rows(dir.path(), 1).await;

    session
        .execute(
            "CREATE SOURCE split_ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH (connector = 'file', path = 'sql/data/par.csv', format = 'csv', 'rows-per-second' = '20',
                   'source.split-size' = '200b')",
        )
        .await
        .expect("split source");
    session
        .execute(
            "CREATE TABLE t_split (k VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, cnt BIGINT, total BIGINT, PRIMARY KEY (k, window_start));
             CREATE JOB split WITH ('parallelism' = '2') AS INSERT INTO t_split SELECT k, window_start, window_end, COUNT(*), SUM(v)
             FROM TUMBLE(split_ev, ts, INTERVAL '20' SECOND) GROUP BY k, window_start, window_end;",
        )
        .await
        .expect("job");
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    session.execute("STOP JOB split WITH SAVEPOINT").await.expect("stop");
    let position = rows(&session, "SELECT rows_in FROM weir_jobs WHERE name = 'split'").await;
    session
        .execute("RESTORE JOB split FROM SAVEPOINT sp_split_1 WITH ('parallelism' = '3')")
        .await
        .expect("restore at 3");
    session.execute("WAIT JOB split").await.expect("wait");
    assert_eq!(
        rows(&session, "SELECT k, window_start, cnt, total FROM t_split ORDER BY 1, 2").await,
        expected,
        "stopped after {position:?} rows"
    );
}

/// Top-N, deduplication, window Top-N, an OVER aggregation and a Top-N over an updating aggregate
/// (retracting) over Nexmark bids, each stopped with
/// a savepoint after 1.5 s at parallelism 2 (a tiny cache: state spills to RocksDB) and restored at
/// parallelism 1 and 3: the final rows equal an uninterrupted run's. Compared on columns that rows
/// tied in the ORDER BY share (which of two tied rows ranks first depends on arrival order; the
/// OVER frame is a RANGE, so rows with equal times get equal aggregates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_n_deduplication_and_over_survive_stop_and_restore_at_another_parallelism() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = Session::open(dir.path()).await.expect("open");
    session
        .execute(
            "CREATE SOURCE bids (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), WATERMARK FOR date_time AS date_time - INTERVAL '200' MILLISECOND)
               WITH (connector = 'nexmark', 'nexmark.table' = 'bid', 'max.events' = '40000', 'events.per.second' = '10000', seed = '7');",
        )
        .await
        .expect("source");
    // (table columns, the job's SELECT, the columns compared)
    let queries = [
        (
            "auction BIGINT, price BIGINT, rn BIGINT, PRIMARY KEY (auction, rn)",
            "SELECT auction, price, rn FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bids) WHERE rn <= 3",
            "auction, price, rn",
        ),
        (
            "bidder BIGINT, auction BIGINT, date_time TIMESTAMP(3), PRIMARY KEY (bidder)",
            "SELECT bidder, auction, date_time FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder ORDER BY date_time DESC) AS rn FROM bids) WHERE rn = 1",
            "bidder, date_time",
        ),
        (
            "window_start TIMESTAMP(3), auction BIGINT, bids BIGINT, rn BIGINT",
            "SELECT window_start, auction, bids, rn FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY bids DESC) AS rn
               FROM (SELECT window_start, window_end, auction, COUNT(*) AS bids FROM TUMBLE(bids, date_time, INTERVAL '250' MILLISECOND) GROUP BY window_start, window_end, auction))
             WHERE rn <= 2",
            "window_start, bids, rn",
        ),
        (
            "auction BIGINT, date_time TIMESTAMP(3), price BIGINT, cnt BIGINT, total BIGINT, hi BIGINT",
            "SELECT auction, date_time, price, COUNT(*) OVER w, SUM(price) OVER w, MAX(price) OVER w FROM bids
               WINDOW w AS (PARTITION BY auction ORDER BY date_time RANGE BETWEEN INTERVAL '500' MILLISECOND PRECEDING AND CURRENT ROW)",
            "auction, date_time, price, cnt, total, hi",
        ),
        (
            "bucket BIGINT, auction BIGINT, n BIGINT, rn BIGINT, PRIMARY KEY (bucket, rn)",
            "SELECT bucket, auction, n, rn FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY n DESC) AS rn
               FROM (SELECT auction % 10 AS bucket, auction, COUNT(*) AS n FROM bids GROUP BY auction % 10, auction))
             WHERE rn <= 3",
            "bucket, n, rn",
        ),
    ];
    for (i, (columns, select, compared)) in queries.into_iter().enumerate() {
        let job = |name: &str, table: &str| {
            format!(
                "CREATE TABLE {table} ({columns});
                 CREATE JOB {name} WITH ('parallelism' = '2', 'state.cache.max-entries' = '20') AS INSERT INTO {table} {select};"
            )
        };
        let query = |table: &str| format!("SELECT {compared} FROM {table} ORDER BY {compared}");
        let whole = format!("whole{i}");
        session.execute(&job(&whole, &format!("expected{i}"))).await.expect("job");
        session.execute(&format!("WAIT JOB {whole}")).await.expect("wait");
        let expected = rows(&session, &query(&format!("expected{i}"))).await;
        assert!(expected.len() > 10, "{select}: {} rows", expected.len());
        for parallelism in [1, 3] {
            let (name, table) = (format!("j{i}_{parallelism}"), format!("t{i}_{parallelism}"));
            session.execute(&job(&name, &table)).await.expect("job");
            stop_after_and_restore(&session, &name, 1500, parallelism).await;
            assert_eq!(
                rows(&session, &query(&table)).await,
                expected,
                "{select} restored at parallelism {parallelism}"
            );
        }
    }
}
