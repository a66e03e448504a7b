//! Names and paths a SQL user gives never reach outside the data directory (issue 12): job names
//! such as `..` and `/`, savepoint and checkpoint directories, source files, RESTORE paths.
//!
//! Before names were checked, `CREATE JOB "/"` removed `/`. So the server runs jailed: in a private
//! mount namespace (`unshare --mount`) whose `/` is remounted read-only, with a fresh tmpfs as
//! the only writable world. A listing of that world is taken before and after the statements.
//! Needs root and util-linux' `unshare`; without them the test says so and skips.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio_postgres::NoTls;

const JAIL: &str = r#"
set -e
mount --bind "$OUT" "$OUT"                 # stays writable once / is read-only
mount -t tmpfs weir-world "$WORLD"
mkdir -p "$WORLD/srv/data" "$WORLD/srv/inputs" "$WORLD/home/user/.ssh"
echo keep > "$WORLD/home/user/.ssh/authorized_keys"
echo 1,2 > "$WORLD/srv/secret.csv"
cp "$CSV" "$WORLD/srv/inputs/par.csv"
mkfifo "$WORLD/srv/inputs/fifo"
mkdir "$WORLD/srv/inputs/a-directory"
ln -s "$WORLD/srv/secret.csv" "$WORLD/srv/inputs/link.csv"
mount -o remount,bind,ro /
cd "$WORLD/srv/inputs"
listing() { find "$WORLD" -path "$WORLD/srv/data" -prune -o -print | sort; }
listing > "$OUT/before"
"$WEIR" serve --listen 127.0.0.1:0 --data-dir "$WORLD/srv/data" --file-root "$WORLD/srv/inputs" &
server=$!
while [ ! -e "$OUT/done" ]; do sleep 0.05; done
kill "$server"; wait "$server" || true
listing > "$OUT/after"
ls "$WORLD/srv/data" > "$OUT/data"
"#;

fn can_jail() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .status()
        .map_err(|e| format!("unshare: {e}"))?;
    probe
        .success()
        .then_some(())
        .ok_or_else(|| "unshare --mount is not permitted here".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_paths_touch_nothing_outside_the_data_dir() {
    if let Err(why) = can_jail() {
        eprintln!("SKIPPED hostile_names: cannot jail the server ({why}); the name checks are still covered by sql/savepoint.slt");
        return;
    }
    let out = tempfile::tempdir().expect("out dir");
    let world = tempfile::tempdir().expect("world dir");
    let mut jail = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", JAIL])
        .env("OUT", out.path())
        .env("WORLD", world.path())
        .env("CSV", common::repo_dir().join("sql/data/par.csv"))
        .env("WEIR", env!("CARGO_BIN_EXE_weir"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the jailed server");
    let port = common::listening_port(&mut jail);
    let (client, connection) = tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=weir"), NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let w = world.path().display().to_string();
    client
        .batch_execute(
            "CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (connector = 'file', path = 'par.csv', format = 'csv');
             CREATE TABLE t (k VARCHAR, n BIGINT, PRIMARY KEY (k));
             SET 'execution.checkpointing.interval' = '100ms';
             CREATE JOB ok AS INSERT INTO t SELECT k, COUNT(*) FROM ev GROUP BY k;
             WAIT JOB ok;",
        )
        .await
        .expect("setup");
    // (statement, SQLSTATE, part of the message)
    let secret = format!("{w}/srv/secret.csv");
    let hostile: Vec<(String, &str, &str)> = vec![
        (
            r#"CREATE JOB ".." AS INSERT INTO t SELECT k, 1 FROM ev"#.into(),
            "42602",
            "invalid job name",
        ),
        (
            r#"CREATE JOB "/" AS INSERT INTO t SELECT k, 1 FROM ev"#.into(),
            "42602",
            "invalid job name",
        ),
        (
            r#"CREATE JOB "../../.." AS INSERT INTO t SELECT k, 1 FROM ev"#.into(),
            "42602",
            "invalid job name",
        ),
        (
            r#"CREATE JOB "../x" AS INSERT INTO t SELECT k, 1 FROM ev"#.into(),
            "42602",
            "invalid job name",
        ),
        (r#"CREATE JOB "" AS INSERT INTO t SELECT k, 1 FROM ev"#.into(), "42602", "name"),
        (
            format!(r#"CREATE JOB "{}" AS INSERT INTO t SELECT k, 1 FROM ev"#, "x".repeat(300)),
            "42622",
            "too long",
        ),
        (r#"CREATE TABLE "a/b" (k BIGINT)"#.into(), "42602", "invalid table name"),
        (
            r#"CREATE SOURCE ".." (k BIGINT) WITH (connector = 'datagen')"#.into(),
            "42602",
            "invalid source name",
        ),
        (r#"RESTORE JOB "/" FROM '/'"#.into(), "42602", "invalid job name"),
        ("SAVEPOINT JOB ok TO '/proc/self/mem'".into(), "42501", "outside the directories"),
        (format!("SAVEPOINT JOB ok TO '{w}/home/user'"), "42501", "outside the directories"),
        ("SAVEPOINT JOB ok TO '../../home/user'".into(), "42501", "outside the directories"),
        ("RESTORE JOB r FROM '/'".into(), "42501", "outside the directories"),
        ("SET 'state.checkpoints.dir' = '/'".into(), "42501", "outside the directories"),
        (
            "SET 'execution.checkpointing.savepoint-dir' = '../..'".into(),
            "42501",
            "outside the directories",
        ),
        (
            format!("CREATE JOB c WITH ('state.checkpoints.dir' = '{w}/home') AS INSERT INTO t SELECT k, 1 FROM ev"),
            "42501",
            "outside",
        ),
        (
            format!("CREATE SOURCE s1 (k BIGINT, v BIGINT) WITH (connector = 'file', path = '{secret}')"),
            "42501",
            "outside",
        ),
        (
            "CREATE SOURCE s2 (k BIGINT, v BIGINT) WITH (connector = 'file', path = 'link.csv')".into(),
            "42501",
            "outside",
        ),
        (
            "CREATE SOURCE s3 (k BIGINT, v BIGINT) WITH (connector = 'file', path = '../secret.csv')".into(),
            "42501",
            "outside",
        ),
        (
            "CREATE SOURCE s4 (k BIGINT) WITH (connector = 'file', path = '/dev/zero')".into(),
            "42501",
            "outside",
        ),
        (
            "CREATE SOURCE s5 (k BIGINT) WITH (connector = 'file', path = 'fifo')".into(),
            "58P01",
            "not a regular file",
        ),
        (
            "CREATE SOURCE s6 (k BIGINT) WITH (connector = 'file', path = 'a-directory')".into(),
            "58P01",
            "is a directory",
        ),
        (
            format!(
                "CREATE SOURCE s7 (k BIGINT) WITH (connector = 'file', path = '{}')",
                "n".repeat(5000)
            ),
            "58P01",
            "cannot read",
        ),
        (
            "CREATE SOURCE weir_jobs (k BIGINT) WITH (connector = 'datagen')".into(),
            "42P07",
            "already exists",
        ),
    ];
    let mut wrong = Vec::new();
    for (sql, code, text) in &hostile {
        match client.batch_execute(sql).await {
            Ok(()) => wrong.push(format!("{sql}: succeeded")),
            Err(e) => {
                let db = e.as_db_error().expect("a server error");
                if db.code().code() != *code || !db.message().contains(text) {
                    wrong.push(format!("{sql}: {} {}", db.code().code(), db.message()));
                }
            }
        }
    }
    // The system table is intact, and so is the job that ran.
    let jobs = client.simple_query("SELECT name FROM weir_jobs").await.expect("weir_jobs");
    assert!(!jobs.is_empty());
    let rows = client.query("SELECT count(*) FROM t", &[]).await.expect("t");
    let count: i64 = rows[0].get(0);
    drop(client);
    std::fs::write(out.path().join("done"), "").expect("done");
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while jail.try_wait().ok().flatten().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await
        }
    })
    .await;
    let _ = jail.kill();
    let _ = jail.wait();
    assert!(wrong.is_empty(), "statements not refused as expected:\n{}", wrong.join("\n"));
    assert!(count > 0, "the job's rows are there");
    let read = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (before, after) = (read("before"), read("after"));
    assert!(before.contains("authorized_keys"), "listing:\n{before}");
    assert_eq!(before, after, "files outside the data directory changed");
    let data = read("data");
    for entry in ["catalog.json", "tables"] {
        assert!(data.lines().any(|l| l == entry), "{entry} missing from the data dir: {data}");
    }
    assert!(
        Path::new(&w).read_dir().expect("world").next().is_none(),
        "the tmpfs stayed in its namespace"
    );
}
