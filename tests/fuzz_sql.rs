//! A SQL-mutation fuzzer against `weir serve` (issue 12). Statements of `sql/**/*.slt` are mutated
//! token by token — numbers and strings swapped for extremes and hostile paths, names for `..`,
//! expressions nested or chained thousands deep, tokens dropped, doubled, swapped, statements
//! spliced — and sent over pgwire. The run fails on:
//! - an internal error (SQLSTATE XX000: every error a user can cause has its own SQLSTATE);
//! - a statement that does not answer within 30 s, nor within 10 s of a cancel request then (a
//!   hang), or a server that stops answering;
//! - a server that exits, or a `panicked` line in its log.
//!
//! `./dev.sh test` runs a fixed number of statements with a fixed seed. Longer runs:
//! `WEIR_FUZZ_SECONDS=1800 WEIR_FUZZ_SEED=7 cargo test --release --test fuzz_sql -- --nocapture`
//! (`WEIR_FUZZ_STATEMENTS` sets the count instead). The server runs in a temp directory whose only
//! file roots are its data directory and a copy of `sql/data`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
use tokio_postgres::NoTls;

const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a statement may go on after a cancel request.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Every statement and query of the slt files, in file order.
fn corpus() -> Vec<String> {
    let mut files = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("sql dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "slt") {
                out.push(path);
            }
        }
    }
    walk(&common::repo_dir().join("sql"), &mut files);
    files.sort();
    let mut statements = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("slt");
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if !(line.starts_with("statement ") || line.starts_with("query ")) {
                continue;
            }
            let mut sql = Vec::new();
            for line in lines.by_ref() {
                if line.trim().is_empty() || line == "----" {
                    break;
                }
                sql.push(line);
            }
            let sql = sql.join("\n");
            // WAIT JOB on an unbounded job waits by design; it is not a hang.
            if !sql.is_empty() && !sql.to_ascii_uppercase().contains("WAIT JOB") {
                statements.push(sql);
            }
        }
    }
    statements
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "999999999999999999999999",
    "0.000000001",
    "4294967296",
    "65536",
];

fn strings() -> Vec<String> {
    [
        "",
        "..",
        "/",
        "../../..",
        "/dev/zero",
        "/proc/self/mem",
        "/etc",
        "par.csv",
        "sql/data/par.csv",
        "999999999999999999999999s",
        "-1",
        "0",
        "inf",
        "NaN",
        "1000000000000",
        "0s",
        "1ms",
        "%s",
        "\\",
        "csv",
        "json",
        "nexmark",
        "datagen",
        "file",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["x".repeat(5000), "../".repeat(40), "{".repeat(2000)])
    .collect()
}

const NAMES: &[&str] = &[
    r#"".."#,
    r#""/""#,
    r#""../x""#,
    "weir_jobs",
    "pg_class",
    r#""""#,
    "information_schema",
    r#""a b""#,
];

fn deep(rng: &mut SmallRng, atom: &str) -> String {
    let depth = rng.random_range(20..80);
    match rng.random_range(0..5) {
        0 => {
            let mut s = atom.to_string();
            for _ in 0..depth {
                s = format!("CAST({s} AS BIGINT)");
            }
            s
        }
        1 => format!("{}{atom}{}", "(".repeat(depth * 3), ")".repeat(depth * 3)),
        2 => vec![atom; rng.random_range(500..3000)].join("+"),
        3 => vec![atom; rng.random_range(500..3000)].join(" AND "),
        _ => format!("{}{atom}{}", "abs(".repeat(depth), ")".repeat(depth)),
    }
}

fn mutate(rng: &mut SmallRng, sql: &str, other: &str) -> String {
    let dialect = GenericDialect {};
    let Ok(mut tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return sql.to_string();
    };
    let strings = strings();
    for _ in 0..rng.random_range(1..4) {
        if tokens.is_empty() {
            break;
        }
        let i = rng.random_range(0..tokens.len());
        match rng.random_range(0..10) {
            0 => {
                tokens.remove(i);
            }
            1 => {
                let t = tokens[i].clone();
                tokens.insert(i, t);
            }
            2 if i + 1 < tokens.len() => tokens.swap(i, i + 1),
            3 | 4 => {
                // A number, string or name of the statement gets a hostile value.
                let candidates: Vec<usize> = (0..tokens.len())
                    .filter(|j| matches!(tokens[*j], Token::Number(..) | Token::SingleQuotedString(_) | Token::Word(_)))
                    .collect();
                if let Some(&j) = candidates.get(rng.random_range(0..candidates.len().max(1))) {
                    let replacement = match &tokens[j] {
                        Token::Number(..) => NUMBERS[rng.random_range(0..NUMBERS.len())].to_string(),
                        Token::SingleQuotedString(_) => format!("'{}'", strings[rng.random_range(0..strings.len())].replace('\'', "''")),
                        _ => NAMES[rng.random_range(0..NAMES.len())].to_string(),
                    };
                    tokens[j] = Token::make_word(&replacement, None);
                }
            }
            5 => {
                let candidates: Vec<usize> = (0..tokens.len()).filter(|j| matches!(tokens[*j], Token::Number(..))).collect();
                if let Some(&j) = candidates.get(rng.random_range(0..candidates.len().max(1))) {
                    let atom = tokens[j].to_string();
                    tokens[j] = Token::make_word(&deep(rng, &atom), None);
                }
            }
            6 => {
                // Splice: this statement's start, another's end.
                let other_tokens = Tokenizer::new(&dialect, other).tokenize().unwrap_or_default();
                if !other_tokens.is_empty() {
                    let k = rng.random_range(0..other_tokens.len());
                    tokens.truncate(i);
                    tokens.extend_from_slice(&other_tokens[k..]);
                }
            }
            _ => {}
        }
    }
    tokens.iter().map(|t| t.to_string()).collect::<String>()
}

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The statements' input files (sql/data and its folders, such as sql/data/nexmark).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("inputs");
    for entry in std::fs::read_dir(from).expect("sql/data").flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy input");
        }
    }
}

fn start_server(dir: &Path) -> Server {
    copy_dir(&common::repo_dir().join("sql/data"), &dir.join("sql/data"));
    let log = dir.join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "data", "--file-root", "sql/data"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("start weir serve");
    let port = common::listening_port(&mut child);
    Server { child, port, log }
}

async fn connect(port: u16) -> Option<tokio_postgres::Client> {
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(&format!("host=127.0.0.1 port={port} user=weir dbname=weir"), NoTls),
    )
    .await
    .ok()?
    .ok()?;
    tokio::spawn(connection);
    Some(client)
}

/// Cancels running jobs now and then, so the jobs the fuzzer creates do not pile up.
async fn cancel_jobs(client: &tokio_postgres::Client) {
    let Ok(Ok(rows)) = tokio::time::timeout(
        STATEMENT_TIMEOUT,
        client.simple_query("SELECT name FROM weir_jobs WHERE status IN ('RUNNING', 'RESTARTING')"),
    )
    .await
    else {
        return;
    };
    for row in rows {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = row
            && let Some(name) = row.get(0)
        {
            let _ = tokio::time::timeout(
                STATEMENT_TIMEOUT,
                client.simple_query(&format!("CANCEL JOB \"{}\"", name.replace('"', "\"\""))),
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_sql_gets_answers_not_crashes() {
    let env = |key: &str| std::env::var(key).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("WEIR_FUZZ_SEED").unwrap_or(12);
    let deadline = env("WEIR_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let count = env("WEIR_FUZZ_STATEMENTS").unwrap_or(if deadline.is_some() { u64::MAX } else { 3000 });
    let corpus = corpus();
    assert!(corpus.len() > 100, "the slt corpus is missing");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start_server(dir.path());
    let mut client = connect(server.port).await.expect("connect");
    let mut rng = SmallRng::seed_from_u64(seed);
    let (mut sent, mut ok, mut user_errors, mut reconnects, mut canceled) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    let started = Instant::now();
    while sent < count && deadline.is_none_or(|d| Instant::now() < d) && failures.len() < 20 {
        let base = &corpus[rng.random_range(0..corpus.len())];
        // One in five is sent as written, so sources, tables and jobs exist to be mutated against.
        let sql = if rng.random_range(0..5) == 0 {
            base.clone()
        } else {
            let other = &corpus[rng.random_range(0..corpus.len())];
            mutate(&mut rng, base, other)
        };
        sent += 1;
        let answer = {
            let statement = client.simple_query(&sql);
            tokio::pin!(statement);
            match tokio::time::timeout(STATEMENT_TIMEOUT, &mut statement).await {
                Err(_) => {
                    // Long work is allowed (a sum over 2^63 numbers is valid SQL), as long as a
                    // cancel request ends it, as in Postgres.
                    canceled += 1;
                    let _ = client.cancel_token().cancel_query(NoTls).await;
                    tokio::time::timeout(CANCEL_TIMEOUT, &mut statement).await
                }
                answered => answered,
            }
        };
        match answer {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => match e.as_db_error() {
                Some(db) if db.code().code() == "XX000" => failures.push(format!("XX000 {}\n    for: {}", db.message(), abbreviate(&sql))),
                Some(_) => user_errors += 1,
                None => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        failures.push(format!("the server exited ({status}) on: {}", abbreviate(&sql)));
                        break;
                    }
                    reconnects += 1;
                    match connect(server.port).await {
                        Some(c) => client = c,
                        None => {
                            failures.push(format!("the server stopped answering after: {}", abbreviate(&sql)));
                            break;
                        }
                    }
                }
            },
            Err(_) => {
                failures.push(format!(
                    "no answer within {STATEMENT_TIMEOUT:?}, nor {CANCEL_TIMEOUT:?} after a cancel request: {}",
                    abbreviate(&sql)
                ));
                match connect(server.port).await {
                    Some(c) => client = c,
                    None => {
                        failures.push("the server stopped answering new connections".into());
                        break;
                    }
                }
            }
        }
        if sent % 25 == 0 {
            cancel_jobs(&client).await;
        }
    }
    let alive = server.child.try_wait().ok().flatten().is_none();
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
    println!(
        "fuzz_sql: seed {seed}, {sent} statements in {:.0} s: {ok} ok, {user_errors} user errors, {canceled} canceled after {STATEMENT_TIMEOUT:?}, {} failures, {} panics, {reconnects} reconnects",
        started.elapsed().as_secs_f64(),
        failures.len(),
        panics.len()
    );
    drop(client);
    let _ = server.child.kill();
    assert!(alive, "the server died");
    assert!(panics.is_empty(), "panics in the server log:\n{}", panics.join("\n"));
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    let _ = &mut server;
}

fn abbreviate(sql: &str) -> String {
    let one_line = sql.replace('\n', " ");
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}... ({} bytes)", &one_line[..i], one_line.len()),
        None => one_line,
    }
}

/// Valid frontend messages (Query, Parse, Bind, Describe, Execute, Sync, Close, CopyData), mutated:
/// bytes flipped, lengths changed, bodies cut or padded. Sent after a proper startup, one
/// connection per few messages. The server must answer or close, never panic, and keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_wire_messages_get_answers_not_crashes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = |key: &str| std::env::var(key).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("WEIR_FUZZ_SEED").unwrap_or(12);
    let deadline = env("WEIR_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let connections = env("WEIR_FUZZ_CONNECTIONS").unwrap_or(if deadline.is_some() { u64::MAX } else { 2000 });
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path());
    let mut rng = SmallRng::seed_from_u64(seed);
    let frame = |tag: u8, body: &[u8]| {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    };
    let valid: Vec<Vec<u8>> = vec![
        frame(b'Q', b"SELECT 1\0"),
        frame(b'P', b"s1\0SELECT $1::BIGINT + 1\0\0\x01\0\0\0\x14"),
        frame(b'B', b"p1\0s1\0\0\x01\0\x01\0\0\0\x0142\0\0"),
        frame(b'D', b"Ps1\0"),
        frame(b'D', b"Ss1\0"),
        frame(b'E', b"p1\0\0\0\0\0"),
        frame(b'C', b"Ss1\0"),
        frame(b'H', b""),
        frame(b'S', b""),
        frame(b'd', b"1,2\n"),
        frame(b'c', b""),
        frame(b'f', b"no\0"),
    ];
    let params = b"user\0weir\0database\0weir\0\0";
    let mut startup = ((8 + params.len()) as u32).to_be_bytes().to_vec();
    startup.extend_from_slice(&196608u32.to_be_bytes());
    startup.extend_from_slice(params);
    let mut sent = 0u64;
    let mut opened = 0u64;
    while opened < connections && deadline.is_none_or(|d| Instant::now() < d) {
        opened += 1;
        let Ok(mut socket) = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await else {
            panic!("the server stopped accepting connections after {sent} messages");
        };
        let mut bytes = startup.clone();
        for _ in 0..rng.random_range(1..6) {
            let mut message = valid[rng.random_range(0..valid.len())].clone();
            match rng.random_range(0..6) {
                0 => {
                    let i = rng.random_range(0..message.len());
                    message[i] ^= 1 << rng.random_range(0..8);
                }
                1 => {
                    // A length field of 0..=8 or a huge one.
                    let lengths = [0u32, 1, 2, 3, 4, 5, 8, u32::MAX, 1 << 30];
                    message[1..5].copy_from_slice(&lengths[rng.random_range(0..lengths.len())].to_be_bytes());
                }
                2 => {
                    let keep = rng.random_range(1..=message.len());
                    message.truncate(keep);
                }
                3 => message.extend((0..rng.random_range(1..16)).map(|_| rng.random::<u8>())),
                _ => {}
            }
            bytes.extend(message);
            sent += 1;
        }
        let _ = socket.write_all(&bytes).await;
        let mut answer = vec![0u8; 65536];
        // Answered, closed or silent (a cut message waits for its rest): all fine within a moment.
        let _ = tokio::time::timeout(Duration::from_millis(200), socket.read(&mut answer)).await;
    }
    let client = connect(server.port).await.expect("the server still serves");
    assert!(client.simple_query("SELECT 1").await.is_ok());
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
    println!(
        "fuzz_wire: seed {seed}, {sent} messages on {opened} connections, {} panics",
        panics.len()
    );
    assert!(panics.is_empty(), "panics in the server log:\n{}", panics.join("\n"));
}
