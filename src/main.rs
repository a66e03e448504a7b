//! The `weir` command: the REPL (default), `weir run FILE.sql`, `weir serve` and `weir bench`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use weir::engine::database::DatabaseOptions;
use weir::format::{OutputFormat, write_output};
use weir::{Database, Session};

#[derive(Parser)]
#[command(name = "weir", version, about = "Weir: a streaming SQL database")]
struct Cli {
    /// Where the catalog, state and result tables live.
    #[arg(long, global = true, default_value = "./weir-data")]
    data_dir: PathBuf,
    /// A directory SQL may name paths in (file sources, savepoints, checkpoints) besides the data
    /// directory; repeatable. The REPL and `run` also allow the current directory.
    #[arg(long = "file-root", global = true)]
    file_roots: Vec<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Interactive SQL shell (the default).
    Repl,
    /// Run a SQL script and print each statement's result.
    Run {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Serve the Postgres wire protocol (psql, drivers).
    Serve {
        /// Address to listen on [default: 127.0.0.1:4566].
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Connections served at once; more are refused with SQLSTATE 53300 [default: 256].
        #[arg(long)]
        max_connections: Option<usize>,
        /// Of those, connections still in their startup (not yet authenticated); when full, the
        /// oldest of them is dropped for a new one [default: 64].
        #[arg(long)]
        max_startup_connections: Option<usize>,
        /// A TOML file with these options (and a [users] table of passwords); flags win.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Allow a non-loopback address although every client is trusted.
        #[arg(long)]
        insecure_trust_remote: bool,
        /// Require SCRAM-SHA-256 passwords: a file of `user:password` lines.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// PEM certificate chain for TLS (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for TLS (with --tls-cert).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Also serve /metrics (Prometheus), the JSON API and the dashboard over HTTP on this
        /// address (e.g. 127.0.0.1:8081); HTTPS with --tls-cert.
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
    },
    /// Benchmarks (build with --release).
    #[command(subcommand)]
    Bench(Bench),
}

/// Where a benchmark appends its JSON lines.
#[derive(clap::Args)]
struct ResultsFile {
    /// Append the JSON lines to this file.
    #[arg(long, default_value = "benches/results.jsonl")]
    results: PathBuf,
    /// Do not append to the results file.
    #[arg(long)]
    no_results: bool,
}

impl ResultsFile {
    fn path(self) -> Option<PathBuf> {
        (!self.no_results).then_some(self.results)
    }
}

#[derive(Subcommand)]
enum Bench {
    /// Run a query (a SQL file, or a name in sql/nexmark/) over bounded input; print one JSON line.
    Query {
        /// `q5`, or a file of CREATE TABLE + CREATE JOB reading the `bid` (`auction`, `person`) source.
        #[arg(long, default_value = "q5")]
        query: String,
        /// Events of the Nexmark sequence to generate (the bids among them are read).
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Event-time rate of the generator: events per second of event time (a wall-clock pace
        /// only with --paced).
        #[arg(long, default_value_t = 1_000_000)]
        event_rate: u64,
        /// Generate events at --event-rate in wall-clock time instead of as fast as possible.
        #[arg(long)]
        paced: bool,
        /// Read bids from this CSV file (auction,bidder,price,channel,url,date_time,extra) instead.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Kafka bootstrap servers: run the query from the generator, then load its bids into a
        /// 4-partition topic and run it from there; both write to topics with an exactly-once sink.
        #[arg(long, conflicts_with = "csv")]
        kafka: Option<String>,
        /// Where results go: the query file's table, a result table stored in Weir, or blackhole.
        #[arg(long, value_enum, default_value = "as-written", conflicts_with = "kafka")]
        sink: weir::bench::query::SinkChoice,
        /// State backend: rocksdb or hashmap.
        #[arg(long, default_value = "rocksdb")]
        backend: String,
        #[arg(long, default_value_t = 2)]
        parallelism: usize,
        /// Checkpoint interval; 0 turns checkpoints off.
        #[arg(long, default_value = "10s")]
        checkpoint_interval: String,
        /// Full checkpoints instead of incremental ones.
        #[arg(long)]
        full_checkpoints: bool,
        /// Groups each stateful operator subtask keeps in memory (state.cache.max-entries).
        #[arg(long)]
        cache_entries: Option<usize>,
        #[command(flatten)]
        results: ResultsFile,
        /// Draw throughput and checkpoint sizes over time into this SVG file.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Reads of a result table while a job writes it: primary-key point lookups and 100-row range
    /// scans (p50/p99), and the rate of the job that filled it; one JSON line.
    Serve {
        /// Rows of the result table.
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        /// Point lookups, and as many range scans.
        #[arg(long, default_value_t = 2000)]
        reads: usize,
        /// Rows per second a job upserts into the table while the reads run.
        #[arg(long, default_value_t = 100_000)]
        write_rate: u64,
        #[command(flatten)]
        results: ResultsFile,
    },
    /// Checkpoint duration and bytes on a steady keyed workload with a large RocksDB state,
    /// incremental vs full; one JSON line per mode
    /// Checkpoints behind a slow sink (backpressure), aligned and then unaligned.
    Backpressure {
        /// Seconds each mode runs.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Rows per second each sink subtask writes (debug.sink.rows-per-second).
        #[arg(long, default_value_t = 20_000)]
        sink_rate: u64,
        /// Checkpoint interval.
        #[arg(long, default_value = "2s")]
        interval: String,
        #[arg(long, default_value_t = 2)]
        parallelism: usize,
        #[command(flatten)]
        results: ResultsFile,
    },
    /// A regular join over ever-new keys: its state over time with and without a state TTL.
    StateTtl {
        /// Seconds each mode runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Rows per second of each of the two sources.
        #[arg(long, default_value_t = 50_000)]
        rate: u64,
        /// table.exec.state.ttl of the TTL mode.
        #[arg(long, default_value = "10s")]
        ttl: String,
        /// Checkpoint interval.
        #[arg(long, default_value = "2s")]
        interval: String,
        #[arg(long, default_value_t = 2)]
        parallelism: usize,
        #[command(flatten)]
        results: ResultsFile,
    },
    /// A restart after SIGKILL with a large RocksDB state: time until restored and caught up.
    Recovery {
        /// Approximate state size in MiB.
        #[arg(long, default_value_t = 1024)]
        state_mib: u64,
        #[arg(long, default_value_t = 2)]
        parallelism: usize,
        /// Checkpoint interval.
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Where checkpoints go (e.g. s3://bucket/prefix, with the AWS_* environment variables);
        /// the data directory's by default.
        #[arg(long)]
        checkpoint_dir: Option<String>,
        /// state.backend.local-recovery (with --checkpoint-dir s3://...).
        #[arg(long)]
        local_recovery: bool,
        #[command(flatten)]
        results: ResultsFile,
    },
    /// The process `bench recovery` kills: runs its job and reports progress on stdout.
    #[command(hide = true)]
    RecoveryChild {
        #[arg(long)]
        sql: String,
    },
    Checkpoint {
        /// Approximate state size in MiB.
        #[arg(long, default_value_t = 512)]
        state_mib: u64,
        /// Share of the keys rewritten per checkpoint interval, in percent (sets the source's pace).
        #[arg(long, default_value_t = 5.0)]
        touched_percent: f64,
        /// Seconds each mode is measured once the state has its size.
        #[arg(long, default_value_t = 60)]
        steady_seconds: u64,
        /// Checkpoint interval.
        #[arg(long, default_value = "2s")]
        interval: String,
        #[arg(long, default_value_t = 2)]
        parallelism: usize,
        #[command(flatten)]
        results: ResultsFile,
    },
}

fn main() -> ExitCode {
    // Warnings (a damaged checkpoint skipped, a job failing over) go to stderr; WEIR_LOG=info for more.
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Statements are parsed and planned on the runtime's threads; sqlparser and DataFusion recurse
    // once per level of an expression (up to planner::dialect::MAX_OPERATORS levels), so the threads
    // get more stack than tokio's 2 MiB.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ERROR: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Repl) {
            Command::Repl => {
                let db = Database::open_with(&cli.data_dir, DatabaseOptions::local(cli.file_roots.clone())?).await?;
                let result = weir::repl::run(Session::new(db.clone()), weir::data_dir::DataDir::new(&cli.data_dir).repl_history()).await;
                db.prepare_exit();
                result
            }
            Command::Bench(Bench::Query {
                query,
                events,
                event_rate,
                paced,
                csv,
                kafka,
                sink,
                backend,
                parallelism,
                checkpoint_interval,
                full_checkpoints,
                cache_entries,
                results,
                plot,
            }) => {
                let input = match csv {
                    Some(path) => weir::bench::query::BenchInput::Csv(path),
                    None => weir::bench::query::BenchInput::Nexmark {
                        events,
                        events_per_second: event_rate,
                        paced,
                    },
                };
                weir::bench::QueryBench {
                    query,
                    input,
                    backend,
                    parallelism,
                    checkpoint_interval,
                    incremental: !full_checkpoints,
                    cache_entries,
                    kafka,
                    sink,
                    results: results.path(),
                    plot,
                    file_roots: cli.file_roots.clone(),
                }
                .run()
                .await
                .map(|_| ())
            }
            Command::Bench(Bench::Serve {
                rows,
                reads,
                write_rate,
                results,
            }) => weir::bench::ServeBench {
                rows,
                reads,
                write_rate,
                results: results.path(),
            }
            .run()
            .await
            .map(|_| ()),
            Command::Bench(Bench::Recovery {
                state_mib,
                parallelism,
                interval,
                checkpoint_dir,
                local_recovery,
                results,
            }) => weir::bench::RecoveryBench {
                state_mib,
                parallelism,
                interval,
                checkpoint_dir,
                local_recovery,
                results: results.path(),
            }
            .run()
            .await
            .map(|_| ()),
            Command::Bench(Bench::RecoveryChild { sql }) => weir::bench::recovery::run_child(&cli.data_dir, &sql).await,
            Command::Bench(Bench::Backpressure {
                seconds,
                sink_rate,
                interval,
                parallelism,
                results,
            }) => weir::bench::BackpressureBench {
                duration: std::time::Duration::from_secs(seconds),
                sink_rows_per_second: sink_rate,
                interval,
                parallelism,
                results: results.path(),
            }
            .run()
            .await
            .map(|_| ()),
            Command::Bench(Bench::StateTtl {
                seconds,
                rate,
                ttl,
                interval,
                parallelism,
                results,
            }) => weir::bench::StateTtlBench {
                duration: std::time::Duration::from_secs(seconds),
                rows_per_second: rate,
                ttl,
                interval,
                parallelism,
                results: results.path(),
            }
            .run()
            .await
            .map(|_| ()),
            Command::Bench(Bench::Checkpoint {
                state_mib,
                touched_percent,
                steady_seconds,
                interval,
                parallelism,
                results,
            }) => weir::bench::CheckpointBench {
                state_mib,
                touched_percent,
                steady: std::time::Duration::from_secs(steady_seconds),
                interval,
                parallelism,
                results: results.path(),
            }
            .run()
            .await
            .map(|_| ()),
            Command::Serve {
                listen,
                max_connections,
                max_startup_connections,
                config,
                insecure_trust_remote,
                password_file,
                tls_cert,
                tls_key,
                http,
            } => {
                use weir::settings::server::{PasswordFile, ServerConfig, tls_acceptor};
                let file = config.as_deref().map(ServerConfig::load).transpose()?.unwrap_or_default();
                let passwords = match (password_file.or(file.password_file), file.users) {
                    (Some(path), _) => Some(Arc::new(PasswordFile::load(&path)?)),
                    (None, Some(users)) => Some(Arc::new(PasswordFile::from_users(users)?)),
                    (None, None) => None,
                };
                let default_listen = std::net::SocketAddr::from(([127, 0, 0, 1], 4566));
                let trust_remote = insecure_trust_remote || file.insecure_trust_remote.unwrap_or(false);
                let tls = tls_cert.or(file.tls_cert).zip(tls_key.or(file.tls_key));
                let options = weir::pgwire::ServeOptions {
                    listen: listen.or(file.listen).unwrap_or(default_listen),
                    max_connections: max_connections.or(file.max_connections).unwrap_or(256),
                    max_startup_connections: max_startup_connections
                        .or(file.max_startup_connections)
                        .unwrap_or(weir::pgwire::admission::DEFAULT_MAX_STARTUP),
                    trust_remote,
                    passwords: passwords.clone(),
                    tls: tls.clone(),
                };
                let http = http.or(file.http.and_then(|h| h.listen));
                // A server answers the network: only the data directory and the given roots.
                let mut file_roots = cli.file_roots.clone();
                file_roots.extend(file.file_roots.unwrap_or_default());
                let db = Database::open_with(&cli.data_dir, DatabaseOptions { file_roots }).await?;
                if let Some(listen) = http {
                    let http_options = weir::http::HttpOptions {
                        listen,
                        trust_remote,
                        passwords,
                        tls: tls.as_ref().map(|(cert, key)| tls_acceptor(cert, key)).transpose()?,
                    };
                    let server = weir::http::HttpServer::bind(db.clone(), http_options).await?;
                    // Scripts and tests read this line (before pgwire's) to learn the port.
                    use std::io::Write;
                    let _ = writeln!(std::io::stdout(), "weir http listening on {}", server.local_addr()?);
                    tokio::spawn(server.run());
                }
                weir::pgwire::serve(db, options).await
            }
            Command::Run { file, format } => {
                let sql =
                    std::fs::read_to_string(&file).map_err(|e| weir::Error::invalid(format!("cannot read {}: {e}", file.display())))?;
                let db = Database::open_with(&cli.data_dir, DatabaseOptions::local(cli.file_roots.clone())?).await?;
                let result = Session::new(db.clone())
                    .execute_script(&sql, |output| {
                        // Not print!, which panics when stdout is a closed pipe (`weir run ... | head`).
                        let mut stdout = std::io::BufWriter::with_capacity(1 << 20, ClosedPipeIsFine(std::io::stdout().lock()));
                        let written = write_output(&output, format, &mut stdout).and_then(|()| Ok(std::io::Write::flush(&mut stdout)?));
                        if let Err(e) = written {
                            eprintln!("ERROR: {e}");
                        }
                    })
                    .await;
                db.prepare_exit();
                result
            }
        }
    });
    // Jobs still running are stopped with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Stdout for `weir run`: once the reader went away (`weir run ... | head`), output is dropped
/// quietly, as the statements still run to their end.
struct ClosedPipeIsFine<W>(W);

impl<W: std::io::Write> std::io::Write for ClosedPipeIsFine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(buf.len()),
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}
