//! `weir serve` driven by tokio-postgres: the extended protocol with `$n` parameters and binary
//! results, Weir's own commands, SQLSTATEs, and many concurrent clients.

mod common;
use common::start_server;

use tokio_postgres::{NoTls, SimpleQueryMessage};

async fn connect(port: u16) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=weir dbname=weir"), NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_parameters_binary_results_and_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let client = connect(server.port).await;
    let data = std::env::current_dir().expect("cwd").join("sql/data/par.csv");
    client
        .batch_execute(&format!(
            "CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (connector = 'file', path = '{}', format = 'csv');
             CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, cnt BIGINT, total BIGINT, hi BIGINT, PRIMARY KEY (k, window_start));
             CREATE JOB j WITH ('parallelism' = '2') AS INSERT INTO t SELECT k, window_start, window_end, COUNT(*), SUM(v), MAX(v)
               FROM TUMBLE(ev, ts, INTERVAL '20' SECOND) GROUP BY k, window_start, window_end;
             WAIT JOB j;",
            data.display()
        ))
        .await
        .expect("setup");
    // Rows of sql/parallelism.slt for key p1, with a parameter and binary results.
    let rows = client
        .query(
            "SELECT window_start, cnt, total FROM t WHERE k = $1 ORDER BY window_start",
            &[&"p1"],
        )
        .await
        .expect("query");
    let got: Vec<(chrono::NaiveDateTime, i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("time");
    assert_eq!(
        got,
        vec![
            (at("2024-01-01 00:00:00"), 1, 2),
            (at("2024-01-01 00:00:20"), 2, 16),
            (at("2024-01-01 00:00:40"), 4, 120)
        ]
    );
    let big = client
        .query_one("SELECT COUNT(*) FROM t WHERE total > $1", &[&100i64])
        .await
        .expect("count");
    assert_eq!(big.get::<_, i64>(0), 3); // p1 120, p6 143, p6 111
    // Weir's commands through the extended protocol return their rows.
    let jobs = client.query("SHOW JOBS", &[]).await.expect("show jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].get::<_, String>("status"), "FINISHED");
    // Errors carry their SQLSTATE and leave the connection usable.
    let error = client.simple_query("SELEC 1").await.expect_err("syntax error");
    assert_eq!(error.code().map(|c| c.code()), Some("42601"));
    let error = client.query("SELECT * FROM nosuch", &[]).await.expect_err("no table");
    assert!(
        error.to_string().contains("nosuch") || error.as_db_error().is_some_and(|e| e.message().contains("nosuch")),
        "{error}"
    );
    let messages = client
        .simple_query("SELECT 1 AS one; SELECT 2 AS two")
        .await
        .expect("two statements");
    let values: Vec<String> = messages
        .iter()
        .filter_map(|m| {
            if let SimpleQueryMessage::Row(r) = m {
                r.get(0).map(String::from)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(values, vec!["1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let setup = connect(server.port).await;
    setup
        .batch_execute(
            "CREATE SOURCE gen (id BIGINT, v BIGINT) WITH (connector = 'datagen', 'number-of-rows' = '100000', 'rows-per-second' = '20000',
               'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '100000');
             CREATE TABLE totals (g BIGINT, n BIGINT, PRIMARY KEY (g));
             CREATE JOB writer AS INSERT INTO totals SELECT id % 10, COUNT(*) FROM gen GROUP BY id % 10;",
        )
        .await
        .expect("setup");
    // 64 clients × 50 queries each while the job writes the table (WEIR_LOAD_QUERIES=1000 for the
    // load run whose rate the notes quote).
    let per_client: usize = std::env::var("WEIR_LOAD_QUERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let started = std::time::Instant::now();
    let mut handles = Vec::new();
    for c in 0..64 {
        let port = server.port;
        handles.push(tokio::spawn(async move {
            let client = connect(port).await;
            for q in 0..per_client {
                let rows = client
                    .query("SELECT g, n FROM totals WHERE g = $1", &[&((c + q) as i64 % 10)])
                    .await
                    .expect("query");
                assert!(rows.len() <= 1);
            }
        }));
    }
    for handle in handles {
        handle.await.expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "load: 64 clients × {per_client} queries in {elapsed:.1} s = {:.0} queries/s, 0 errors",
        (64 * per_client) as f64 / elapsed
    );
    setup.batch_execute("WAIT JOB writer").await.expect("wait");
    let total: i64 = setup
        .query_one("SELECT CAST(SUM(n) AS BIGINT) FROM totals", &[])
        .await
        .expect("sum")
        .get(0);
    assert_eq!(total, 100_000);
}

/// A lookup by the whole primary key is answered without DataFusion (engine/commands/point_get.rs);
/// it must describe and answer exactly as the same query planned by DataFusion does (`g + 0`
/// keeps a query off the fast path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_key_lookups_answer_as_planned_queries_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let client = connect(server.port).await;
    client
        .batch_execute(
            "CREATE SOURCE gen (id BIGINT) WITH (connector = 'datagen', 'number-of-rows' = '1000',
               'fields.id.kind' = 'sequence', 'fields.id.start' = '-500', 'fields.id.end' = '499');
             CREATE TABLE t (g BIGINT, name VARCHAR, n INT, PRIMARY KEY (g, name));
             CREATE JOB fill AS INSERT INTO t SELECT id, CAST(id % 7 AS VARCHAR), CAST(id * 2 AS INT) FROM gen;
             WAIT JOB fill;",
        )
        .await
        .expect("setup");
    let pairs = [
        (
            "SELECT n AS total, t.g FROM t WHERE g = $1 AND name = $2",
            "SELECT n AS total, t.g FROM t WHERE g + 0 = $1 AND name = $2",
        ),
        (
            "SELECT * FROM public.t x WHERE x.name = $2 AND $1 = g",
            "SELECT * FROM public.t x WHERE x.name = $2 AND $1 = g + 0",
        ),
    ];
    for (fast, planned) in pairs {
        let (fast_statement, planned_statement) = (
            client.prepare(fast).await.expect(fast),
            client.prepare(planned).await.expect(planned),
        );
        assert_eq!(fast_statement.params(), planned_statement.params(), "{fast}");
        let columns = |s: &tokio_postgres::Statement| {
            s.columns()
                .iter()
                .map(|c| (c.name().to_string(), c.type_().clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(columns(&fast_statement), columns(&planned_statement), "{fast}");
        for (g, name) in [(-500i64, "-3"), (13, "6"), (499, "2"), (13, "5"), (1000, "0")] {
            let render = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
                rows.iter()
                    .flat_map(|row| {
                        row.columns().iter().enumerate().map(move |(i, c)| match *c.type_() {
                            tokio_postgres::types::Type::INT8 => format!("{:?}", row.get::<_, Option<i64>>(i)),
                            tokio_postgres::types::Type::INT4 => format!("{:?}", row.get::<_, Option<i32>>(i)),
                            _ => format!("{:?}", row.get::<_, Option<String>>(i)),
                        })
                    })
                    .collect()
            };
            let got = render(client.query(&fast_statement, &[&g, &name]).await.expect(fast));
            let want = render(client.query(&planned_statement, &[&g, &name]).await.expect(planned));
            assert_eq!(got, want, "{fast} with {g}, {name}");
        }
    }
    let row = client
        .query_one("SELECT n FROM t WHERE g = 13 AND name = '6'", &[])
        .await
        .expect("literal lookup");
    assert_eq!(row.get::<_, i32>("n"), 26);
    let negative = client
        .simple_query("SELECT name, n FROM t WHERE name = '-3' AND g = -500")
        .await
        .expect("negative key");
    let texts: Vec<String> = negative
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(format!("{}|{}", r.get(0).unwrap_or(""), r.get(1).unwrap_or(""))),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["-3|-1000"]);
    // Errors stay DataFusion's (42703 for a missing column).
    let error = client
        .query("SELECT nosuch FROM t WHERE g = 1 AND name = '1'", &[])
        .await
        .expect_err("no column");
    assert_eq!(error.code().map(|c| c.code()), Some("42703"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bytes_close_only_that_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let garbage: [&[u8]; 4] = [
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",                   // SSL request, then nothing
        b"\xff\xff\xff\xff garbage that is no startup packet", // absurd length
        b"\x00\x00\x00\x03",                                   // length shorter than itself
        b"\x00\x00\x00\x10\x00\x03\x00\x00user\x00",           // truncated startup
    ];
    for bytes in garbage {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
        let _ = socket.write_all(bytes).await;
        let _ = socket.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read_to_end(&mut sink)).await;
    }
    // The server still serves a proper client.
    let client = connect(server.port).await;
    let version: String = client
        .simple_query("SHOW server_version")
        .await
        .expect("show")
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
            _ => None,
        })
        .expect("a row");
    assert!(version.contains("Weir"), "{version}");
}

/// Messages whose length or fields lie (issue 12: pgwire 0.42 panicked decoding P, B, E and d of
/// lengths 0 to 4, and buffered whatever length a message declared): each gets 08P01 FATAL, and
/// the server logs no panic and goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_08p01_and_no_panic() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let server = common::start_server_logged(&dir.path().join("data"), &log);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for tag in *b"PBEdDCQf" {
        for length in 0u32..=4 {
            let mut frame = vec![tag];
            frame.extend_from_slice(&length.to_be_bytes());
            frames.push(frame);
        }
    }
    // Counts beyond the body, a negative parameter length, a declared 1 GiB query.
    frames.push(b"P\0\0\0\x08\0\0\x7f\xff".to_vec());
    frames.push(b"B\0\0\0\x0e\0\0\0\0\0\x01\xff\xff\xff\xfe".to_vec());
    frames.push(b"Q\x40\0\0\0SELECT".to_vec());
    let mut startup = Vec::new();
    let params = b"user\0weir\0database\0weir\0\0";
    startup.extend_from_slice(&((8 + params.len()) as u32).to_be_bytes());
    startup.extend_from_slice(&196608u32.to_be_bytes());
    startup.extend_from_slice(params);
    for frame in &frames {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
        socket.write_all(&startup).await.expect("startup");
        let mut greeting = vec![0u8; 4096];
        let _ = socket.read(&mut greeting).await;
        let _ = socket.write_all(frame).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer);
        // An empty CopyData outside COPY is well-formed, and ignored as Postgres does.
        if frame[..] != *b"d\0\0\0\x04" {
            assert!(text.contains("08P01"), "{:?}: {text:?}", frame.escape_ascii().to_string());
        }
    }
    let client = connect(server.port).await;
    assert!(client.simple_query("SELECT 1").await.is_ok());
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_with_53300() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = common::start_server_with(dir.path(), &["--max-connections", "2"]);
    let first = connect(server.port).await;
    let _second = connect(server.port).await;
    let refused = tokio_postgres::connect(&format!("host=127.0.0.1 port={} user=weir dbname=weir", server.port), NoTls).await;
    let error = refused.err().expect("a third connection is refused");
    assert_eq!(error.code().map(|c| c.code()), Some("53300"), "{error}");
    // The admitted ones keep working, and a slot frees when one closes.
    assert!(first.simple_query("SELECT 1").await.is_ok());
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let again = connect(server.port).await;
    assert!(again.simple_query("SELECT 1").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_file_requires_scram_and_refuses_wrong_passwords() {
    let dir = tempfile::tempdir().expect("temp dir");
    let passwords = dir.path().join("passwords");
    std::fs::write(&passwords, "# user:password\nalice:s3cret\n").expect("password file");
    let data = dir.path().join("data");
    let server = common::start_server_with(&data, &["--password-file", passwords.to_str().expect("path")]);
    let attempt = |user: &str, password: Option<&str>| {
        let mut config = format!("host=127.0.0.1 port={} user={user} dbname=weir", server.port);
        if let Some(p) = password {
            config.push_str(&format!(" password={p}"));
        }
        async move {
            tokio_postgres::connect(&config, NoTls).await.map(|(client, connection)| {
                tokio::spawn(connection);
                client
            })
        }
    };
    let Err(wrong) = attempt("alice", Some("guess")).await else {
        panic!("a wrong password was accepted")
    };
    assert_eq!(wrong.code().map(|c| c.code()), Some("28P01"), "{wrong}");
    assert!(attempt("mallory", Some("s3cret")).await.is_err(), "unknown user refused");
    assert!(attempt("alice", None).await.is_err(), "no trust when passwords are configured");
    let client = attempt("alice", Some("s3cret")).await.expect("right password");
    assert!(client.simple_query("SELECT 1").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_stops_a_waiting_statement() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let client = connect(server.port).await;
    client
        .batch_execute(
            "CREATE SOURCE endless (id BIGINT) WITH (connector = 'datagen', 'rows-per-second' = '100');
             CREATE TABLE sink (id BIGINT) WITH (connector = 'blackhole');
             CREATE JOB forever AS INSERT INTO sink SELECT id FROM endless;",
        )
        .await
        .expect("setup");
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        token.cancel_query(NoTls).await
    });
    // WAIT JOB on an unbounded job would wait forever; the cancel request ends it.
    let error = client.simple_query("WAIT JOB forever").await.expect_err("canceled");
    assert_eq!(error.code().map(|c| c.code()), Some("57014"), "{error}");
    canceller.await.expect("canceller").expect("cancel sent");
    // The connection is still usable, and the job still runs.
    let rows = client
        .query("SELECT status FROM weir_jobs WHERE name = 'forever'", &[])
        .await
        .expect("query");
    assert_eq!(rows[0].get::<_, String>(0), "RUNNING");
}

/// A correlated subquery DataFusion cannot decorrelate runs row by row on a thread of its own
/// (planner/subquery_apply.rs). This one would sum 2^63 numbers: the cancel must end the statement
/// and that thread, not only the answer (found by a 30-minute run of tests/fuzz_sql.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_stops_a_runaway_subquery() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let client = connect(server.port).await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        token.cancel_query(NoTls).await
    });
    let runaway =
        client.simple_query("SELECT x, (SELECT sum(s) FROM generate_series(-9223372036854775808, t.x) s) FROM (VALUES (1), (2)) t(x)");
    let error = tokio::time::timeout(std::time::Duration::from_secs(60), runaway)
        .await
        .expect("an answer to the cancel")
        .expect_err("canceled");
    assert_eq!(error.code().map(|c| c.code()), Some("57014"), "{error}");
    canceller.await.expect("canceller").expect("cancel sent");
    assert!(client.simple_query("SELECT 1").await.is_ok(), "the connection is usable");
    // A subquery still running would keep a core busy: ~2 s of CPU in these 2 s.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = server.cpu_time();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let used = server.cpu_time() - before;
    assert!(
        used < std::time::Duration::from_millis(700),
        "the server used {used:?} of CPU in 2 s after the cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_sets_users_and_limits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("weir.toml");
    std::fs::write(&config, "max_connections = 1\n[users]\nbob = \"hunter2\"\n").expect("config");
    let server = common::start_server_with(&dir.path().join("data"), &["--config", config.to_str().expect("path")]);
    let url = |password: &str| format!("host=127.0.0.1 port={} user=bob password={password} dbname=weir", server.port);
    let Err(wrong) = tokio_postgres::connect(&url("guess"), NoTls).await else {
        panic!("a wrong password was accepted")
    };
    assert_eq!(wrong.code().map(|c| c.code()), Some("28P01"), "{wrong}");
    let (client, connection) = tokio_postgres::connect(&url("hunter2"), NoTls).await.expect("right password");
    tokio::spawn(connection);
    assert!(client.simple_query("SELECT 1").await.is_ok());
    // max_connections = 1: a second client is refused.
    let Err(full) = tokio_postgres::connect(&url("hunter2"), NoTls).await else {
        panic!("the limit was not applied")
    };
    assert_eq!(full.code().map(|c| c.code()), Some("53300"), "{full}");
}

/// The extended protocol prepares one statement, as Postgres does: a string of several is refused
/// at Parse (42601) instead of running them all and sending rows after NoData. DEALLOCATE (which
/// psycopg sends after DDL once it has prepared statements) is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statement_per_prepared_statement_and_deallocate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let client = connect(server.port).await;
    let error = client.query("SELECT 1; SELECT 2", &[]).await.expect_err("two statements");
    let db = error.as_db_error().expect("server error");
    assert_eq!(db.code().code(), "42601");
    assert_eq!(db.message(), "cannot insert multiple commands into a prepared statement");
    // The connection goes on; one statement with a trailing semicolon is fine.
    let rows = client.query("SELECT 1::BIGINT AS one;", &[]).await.expect("one statement");
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    for sql in ["DEALLOCATE ALL", "DEALLOCATE PREPARE ALL", "DEALLOCATE s1"] {
        let tags = client.simple_query(sql).await.expect(sql);
        let tag = tags.iter().find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        });
        assert_eq!(tag, Some(0), "{sql}");
    }
    client.execute("DEALLOCATE ALL", &[]).await.expect("extended DEALLOCATE ALL");
}
