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
