//! `weir serve` driven by psql (Debian's postgresql-client): Weir's commands, results, an error with
//! its SQLSTATE, and jobs that outlive the connection that created them.

mod common;
use common::start_server;

use std::process::Command;

/// Runs psql with the given commands; returns (success, stdout + stderr).
fn psql(port: u16, commands: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("psql");
    cmd.arg(format!(
        "host=127.0.0.1 port={port} user=weir dbname=weir sslmode=disable connect_timeout=10"
    ))
    .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    let output = cmd.output().expect("run psql");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn psql_available() -> bool {
    match Command::new("psql").arg("--version").output() {
        Ok(output) if output.status.success() => true,
        _ => {
            eprintln!(
                "\n*** SKIPPING psql tests: psql is not installed (apt-get install postgresql-client; ./dev.sh test installs it as root) ***\n"
            );
            false
        }
    }
}

#[test]
fn psql_runs_weir_commands() {
    if !psql_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let data = std::env::current_dir().expect("cwd").join("sql/data/tumble.csv");
    let create = format!(
        "CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (connector = 'file', path = '{}', format = 'csv')",
        data.display()
    );
    let (ok, out) = psql(
        server.port,
        &[
            &create,
            "CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, cnt BIGINT, total BIGINT, PRIMARY KEY (k, window_start))",
            "CREATE JOB j AS INSERT INTO t SELECT k, window_start, window_end, COUNT(*), SUM(v) FROM TUMBLE(ev, ts, INTERVAL '10' SECOND) GROUP BY k, window_start, window_end",
        ],
    );
    assert!(ok, "{out}");
    // A second connection waits for the job and reads the results (rows of sql/window/tumble.slt).
    let (ok, out) = psql(
        server.port,
        &[
            "WAIT JOB j",
            "SELECT k, window_start, cnt, total FROM t WHERE window_start < '2024-01-01 00:00:20' ORDER BY 2, 1",
        ],
    );
    assert!(ok, "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains('|')).collect();
    assert!(!rows.is_empty(), "{out}");
    assert!(
        rows.iter().all(|r| r.contains("2024-01-01 00:00:")),
        "timestamps in Postgres text form: {out}"
    );
    let (ok, out) = psql(server.port, &["SELECT name, status FROM weir_jobs"]);
    assert!(ok && out.contains("j|FINISHED"), "{out}");
    // psql's \dt reads pg_catalog: the result table is listed (sources are foreign tables, not shown).
    let (ok, out) = psql(server.port, &["\\dt"]);
    assert!(ok && out.contains("public|t|table|weir") && !out.contains("|ev|"), "{out}");
    let (ok, out) = psql(server.port, &["\\l"]);
    assert!(ok && out.contains("weir|weir|UTF8"), "{out}");
    // Errors: SQLSTATE and message; the server stays up for the next connection.
    let (ok, out) = psql(server.port, &["SELEC 1"]);
    assert!(!ok && out.contains("42601") && out.contains("syntax error"), "{out}");
    let (ok, out) = psql(server.port, &["SELECT * FROM nosuch"]);
    assert!(!ok && out.contains("nosuch"), "{out}");
    // Transaction control from clients is a harmless no-op.
    let (ok, out) = psql(
        server.port,
        &["BEGIN", "SAVEPOINT a", "RELEASE SAVEPOINT a", "COMMIT", "SHOW SOURCES"],
    );
    assert!(ok && out.contains("ev|file"), "{out}");
}

/// Runs psql in its default aligned format (titles, headers, footers) with one meta-command;
/// returns (success, output lines with trailing blanks trimmed).
fn psql_aligned(port: u16, command: &str) -> (bool, Vec<String>) {
    let output = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={port} user=weir dbname=weir sslmode=disable connect_timeout=10"
        ))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", command])
        // English messages ("(2 rows)") whatever the machine's locale.
        .env("LC_ALL", "C.UTF-8")
        .env_remove("LANGUAGE")
        .output()
        .expect("run psql");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.success() && output.stderr.is_empty(),
        text.lines().map(|l| l.trim_end().to_string()).collect(),
    )
}

/// psql's `\d` family reads pg_catalog with Postgres-only SQL (COLLATE, OPERATOR(pg_catalog.~),
/// correlated subqueries, ARRAY(subquery), set-returning functions of columns); the answers
/// describe Weir's tables and sources with the types their values are sent as.
#[test]
fn psql_describes_tables_and_sources() {
    if !psql_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let (ok, out) = psql(
        server.port,
        &[
            "CREATE SOURCE ev (k VARCHAR NOT NULL, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (connector = 'file', path = 'sql/data/tumble.csv', format = 'csv')",
            "CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, cnt BIGINT, avg_v DOUBLE, PRIMARY KEY (k, window_start))",
            "CREATE TABLE log (n INT, ok BOOLEAN, d DATE, r REAL, s SMALLINT)",
        ],
    );
    assert!(ok, "{out}");

    let (ok, out) = psql_aligned(server.port, "\\d");
    assert!(ok, "{out:#?}");
    assert_eq!(
        out,
        [
            "                List of relations",
            " Schema |      Name       |     Type      | Owner",
            "--------+-----------------+---------------+-------",
            " public | ev              | foreign table | weir",
            " public | log             | table         | weir",
            " public | t               | table         | weir",
            " public | weir_jobs       | view          | weir",
            " public | weir_savepoints | view          | weir",
            "(5 rows)",
            "",
        ]
    );

    // A result table: primary-key columns are NOT NULL, the key is a unique btree index.
    let (ok, out) = psql_aligned(server.port, "\\d t");
    assert!(ok, "{out:#?}");
    assert_eq!(
        out,
        [
            "                              Table \"public.t\"",
            "    Column    |            Type             | Collation | Nullable | Default",
            "--------------+-----------------------------+-----------+----------+---------",
            " k            | character varying           |           | not null |",
            " window_start | timestamp without time zone |           | not null |",
            " window_end   | timestamp without time zone |           |          |",
            " cnt          | bigint                      |           |          |",
            " avg_v        | double precision            |           |          |",
            "Indexes:",
            "    \"t_pkey\" PRIMARY KEY, btree (k, window_start)",
            "",
        ]
    );

    // A source is a foreign table: its connector is the server, its WITH options the FDW options.
    let (ok, out) = psql_aligned(server.port, "\\d ev");
    assert!(ok, "{out:#?}");
    assert_eq!(
        out,
        [
            "                              Foreign table \"public.ev\"",
            " Column |            Type             | Collation | Nullable | Default | FDW options",
            "--------+-----------------------------+-----------+----------+---------+-------------",
            " k      | character varying           |           | not null |         |",
            " v      | bigint                      |           |          |         |",
            " ts     | timestamp without time zone |           |          |         |",
            "Server: file",
            "FDW options: (format 'csv', path 'sql/data/tumble.csv')",
            "",
        ]
    );

    let (ok, out) = psql_aligned(server.port, "\\d log");
    assert!(ok, "{out:#?}");
    let rows: Vec<&str> = out.iter().skip(3).take(5).map(String::as_str).collect();
    assert_eq!(
        rows,
        [
            " n      | integer  |           |          |",
            " ok     | boolean  |           |          |",
            " d      | date     |           |          |",
            " r      | real     |           |          |",
            " s      | smallint |           |          |",
        ],
        "{out:#?}"
    );

    // The primary key's index, and a name that matches nothing.
    let (ok, out) = psql_aligned(server.port, "\\d t_pkey");
    assert!(
        ok && out.contains(&"primary key, btree, for table \"public.t\"".to_string()),
        "{out:#?}"
    );
    let (_, out) = psql_aligned(server.port, "\\d nosuch");
    assert_eq!(out, ["Did not find any relation named \"nosuch\"."]);

    // The catalog follows DROP: the table and its index are gone.
    let (ok, out) = psql(server.port, &["DROP TABLE log", "\\dt"]);
    assert!(ok && out.contains("public|t|table|weir") && !out.contains("log"), "{out}");
}

#[test]
fn psql_connects_over_tls() {
    if !psql_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        eprintln!("\n*** SKIPPING the TLS test: openssl cannot make a test certificate ***\n");
        return;
    }
    let server = common::start_server_with(
        &dir.path().join("data"),
        &["--tls-cert", cert.to_str().expect("path"), "--tls-key", key.to_str().expect("path")],
    );
    let output = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=weir dbname=weir sslmode=require connect_timeout=10",
            server.port
        ))
        .args(["-X", "-A", "-t", "-c", "SELECT 40 + 2", "-c", "\\conninfo"])
        .output()
        .expect("run psql");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("42") && text.contains("SSL connection"), "{text}");
}

/// 1,000 sockets that connect and never send a startup packet do not lock psql out: connections
/// still in their startup are limited apart from --max-connections, and the oldest of them makes
/// room for a new one.
#[test]
fn idle_sockets_do_not_lock_psql_out() {
    if !psql_available() {
        return;
    }
    // The test holds 1,000 sockets; a default soft limit of 1,024 descriptors is too tight.
    // SAFETY: getrlimit/setrlimit with a valid struct pointer.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < 4096 {
            limit.rlim_cur = limit.rlim_max.min(4096);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let idle: Vec<std::net::TcpStream> = (0..1000)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("idle socket"))
        .collect();
    let (ok, output) = psql(server.port, &["SELECT 40 + 2"]);
    assert!(ok, "psql could not connect past 1,000 idle sockets: {output}");
    assert_eq!(output.trim(), "42");
    drop(idle);
}
