//! Helpers shared by the integration tests: a `weir serve` process on a free loopback port, and
//! query results as text rows.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use weir::{Output, Session};

/// The checkout under test. Cargo names it at run time too: a test binary built in another clone
/// (cargo reuses one when the sources match) must still read this clone's files.
pub fn repo_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

/// A running `weir serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// CPU time the server process used so far, user + system (Linux: /proc/<pid>/stat).
    pub fn cpu_time(&self) -> std::time::Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("server stat");
        // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
        let fields: Vec<&str> = stat.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        // SAFETY: sysconf only reads a configuration value.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        std::time::Duration::from_millis(ticks * 1000 / per_second)
    }
}

impl Server {
    /// Stops the server as an operator would (SIGTERM: jobs take a last checkpoint) and waits
    /// for it to exit.
    pub fn terminate(mut self) {
        // SAFETY: kill only sends a signal to the child, which has not been waited for yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().expect("wait for weir serve");
        assert!(status.success(), "weir serve exited with {status} on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `weir serve` on 127.0.0.1 with a port the OS picks, read from its first output line.
pub fn start_server(data_dir: &std::path::Path) -> Server {
    start_server_with(data_dir, &[])
}

/// `start_server_with`, the server's stderr going to `log` (to look for panics afterwards).
pub fn start_server_logged(data_dir: &std::path::Path, log: &std::path::Path) -> Server {
    start_server_inner(data_dir, &[], Stdio::from(std::fs::File::create(log).expect("log file")))
}

/// The server may read the repository's `sql/data` inputs (`--file-root`), as an operator would
/// allow an inputs directory; everything else a test gives it lives in its data directory.
pub fn start_server_with(data_dir: &std::path::Path, extra: &[&str]) -> Server {
    start_server_inner(data_dir, extra, Stdio::inherit())
}

fn start_server_inner(data_dir: &std::path::Path, extra: &[&str], stderr: Stdio) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--file-root")
        .arg(repo_dir().join("sql/data"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start weir serve");
    let port = listening_port(&mut child);
    Server { child, port }
}

/// The port of a `weir serve` started with `--listen 127.0.0.1:0` (and stdout piped), read from its
/// first output line.
pub fn listening_port(child: &mut Child) -> u16 {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read listening line");
    line.trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// A session on `<dir>/data` that may also use the files a test writes into `dir`
/// (`--file-root dir`, besides the current directory).
pub async fn session_in(dir: &std::path::Path) -> Session {
    let options = weir::engine::database::DatabaseOptions::local(vec![dir.to_path_buf()]).expect("options");
    Session::new(weir::Database::open_with(dir.join("data"), options).await.expect("open"))
}

/// The rows of the last statement of `sql`, NULL spelled out.
pub async fn rows(session: &Session, sql: &str) -> Vec<Vec<String>> {
    match session.execute(sql).await.expect(sql).pop() {
        Some(Output::Rows { batches, .. }) => weir::format::rows_text(&batches)
            .expect("rows")
            .into_iter()
            .map(|r| r.into_iter().map(|c| c.unwrap_or_else(|| "NULL".into())).collect())
            .collect(),
        other => panic!("{sql} returned {other:?}"),
    }
}
