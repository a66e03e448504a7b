//! `weir bench query`: runs one SQL job (a file of CREATE TABLE + CREATE JOB, such as
//! `sql/nexmark/q5.sql`) over a bounded input to its end and reports one JSON line: throughput
//! per wall and per CPU second, peak memory, checkpoint durations and sizes, and the latency from
//! a window closing to its rows reaching the sink. The input is the Nexmark generator (`bid`,
//! `auction` and `person` sources, the first `events` events of the sequence) or a CSV file of
//! bids (to compare engines on the same rows). With `--kafka` the bids also come from a Kafka topic
//! and results go to topics (`kafka.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::kafka::{BenchTopics, INPUT_PARTITIONS};
use super::plot::{Series, TimeChart};
use super::{CheckpointFigures, CheckpointRow, ProcessUsage, completed_checkpoints, git_commit, mib, query_rows, report, round};
use crate::engine::database::{Database, DatabaseOptions};
use crate::engine::session::Session;
use crate::error::{Error, Result};
use crate::planner::statement::{Statement, parse_statements};

/// Where the bids come from.
#[derive(Debug, Clone)]
pub enum BenchInput {
    /// The first `events` events of the Nexmark sequence, `events_per_second` apart in event time;
    /// `paced`: generated at that rate in wall-clock time too (otherwise as fast as possible).
    Nexmark { events: u64, events_per_second: u64, paced: bool },
    /// A CSV file of bids with a header: auction, bidder, price, channel, url, date_time, extra.
    Csv(PathBuf),
    /// A Kafka topic of JSON bids, read to its end (`BenchTopics::source_sql`).
    Kafka { topic: String, source_sql: String },
}

/// Where the query's results go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkChoice {
    /// The table the query file declares.
    AsWritten,
    /// A result table stored in Weir (the same columns and key, no connector).
    Table,
    /// Rows are dropped (`connector = 'blackhole'`).
    Blackhole,
}

#[derive(Debug, Clone)]
pub struct QueryBench {
    /// A SQL file, or the name of a query in `sql/nexmark/` (`q5`).
    pub query: String,
    pub input: BenchInput,
    pub backend: String,
    pub parallelism: usize,
    /// Checkpoint interval (`10s`); `0` turns checkpoints off.
    pub checkpoint_interval: String,
    pub incremental: bool,
    /// Groups a stateful operator keeps in memory (`state.cache.max-entries`); the job's default if unset.
    pub cache_entries: Option<usize>,
    /// Kafka bootstrap servers: run the query from the generator and from a topic, both into a
    /// topic with an exactly-once sink (`kafka.rs`).
    pub kafka: Option<String>,
    /// Where results go (without `kafka`).
    pub sink: SinkChoice,
    /// JSON lines are appended here.
    pub results: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    /// Directories SQL may name paths in (`--file-root`), besides the data directory, the
    /// current one and the `--csv` file's.
    pub file_roots: Vec<PathBuf>,
}

/// The JSON line.
#[derive(Debug, Serialize)]
pub struct QueryBenchResult {
    pub query: String,
    pub input: String,
    /// The query's own sink, or the Kafka topic that replaced it.
    pub sink: String,
    pub backend: String,
    pub parallelism: usize,
    pub checkpoint_interval: String,
    pub incremental: bool,
    pub cache_entries: Option<usize>,
    /// Rows the job's sources read.
    pub events: u64,
    pub rows_out: u64,
    pub late_rows_dropped: u64,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub events_per_second: f64,
    pub events_per_cpu_second: f64,
    pub peak_rss_mib: f64,
    #[serde(flatten)]
    pub checkpoint: CheckpointFigures,
    pub window_latency_p50_ms: Option<f64>,
    pub window_latency_p99_ms: Option<f64>,
    pub commit: Option<String>,
    pub date: String,
}

/// How often progress is sampled (for the progress line and the plot).
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

struct Sample {
    at: Duration,
    rows_in: u64,
}

/// Where the query's results go.
enum BenchSink {
    /// The table the query file declares.
    AsWritten,
    /// Its CREATE TABLE gets these options instead (a stored table, blackhole, a Kafka topic).
    Replaced { described: String, options: Vec<(String, String)> },
}

impl QueryBench {
    /// Prints (and appends) one JSON line per run: one, or with `kafka` the generator baseline and
    /// the run from the topic.
    pub async fn run(&self) -> Result<Vec<QueryBenchResult>> {
        let file = resolve_query(&self.query)?;
        let sql = std::fs::read_to_string(&file).map_err(|e| Error::invalid(format!("cannot read {}: {e}", file.display())))?;
        let Some(bootstrap) = &self.kafka else {
            let sink = match self.sink {
                SinkChoice::AsWritten => BenchSink::AsWritten,
                SinkChoice::Table => BenchSink::Replaced {
                    described: "result table".into(),
                    options: Vec::new(),
                },
                SinkChoice::Blackhole => BenchSink::Replaced {
                    described: "blackhole".into(),
                    options: vec![("connector".into(), "blackhole".into())],
                },
            };
            return Ok(vec![self.measure(&file, &sql, &self.input, sink).await?]);
        };
        let topics = BenchTopics::create(bootstrap).await?;
        let result = self.run_kafka(&file, &sql, &topics).await;
        topics.delete().await;
        result
    }

    async fn run_kafka(&self, file: &Path, sql: &str, topics: &BenchTopics) -> Result<Vec<QueryBenchResult>> {
        let into = |topic| BenchSink::Replaced {
            described: format!("kafka exactly-once topic {topic}"),
            options: topics.sink_options(topic),
        };
        let baseline = self.measure(file, sql, &self.input, into(&topics.baseline_output)).await?;
        let dir = std::env::temp_dir().join(format!("weir-bench-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let loaded = async {
            let session = self.open_session(&dir).await?;
            topics.load(&session, &self.input.sources_sql()).await
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        loaded?;
        let input = BenchInput::Kafka {
            topic: topics.input.clone(),
            source_sql: topics.source_sql(),
        };
        let from_kafka = self.measure(file, sql, &input, into(&topics.output)).await?;
        eprintln!(
            "from the generator {:.0} events/s ({:.0} per CPU-second); from Kafka {:.0} events/s ({:.0} per CPU-second)",
            baseline.events_per_second, baseline.events_per_cpu_second, from_kafka.events_per_second, from_kafka.events_per_cpu_second
        );
        Ok(vec![baseline, from_kafka])
    }

    async fn measure(&self, file: &Path, sql: &str, input: &BenchInput, sink: BenchSink) -> Result<QueryBenchResult> {
        let dir = std::env::temp_dir().join(format!("weir-bench-query-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let result = self.run_in(&dir, file, sql, input, sink).await;
        let _ = std::fs::remove_dir_all(&dir);
        let result = result?;
        report(&result, self.results.as_deref())?;
        Ok(result)
    }

    /// A session on a fresh data dir that may read the input CSV wherever it lies: the user
    /// named it on the command line.
    async fn open_session(&self, dir: &Path) -> Result<Session> {
        let mut roots = self.file_roots.clone();
        if let BenchInput::Csv(path) = &self.input {
            let path = std::path::absolute(path)?;
            roots.extend(path.parent().map(Path::to_path_buf));
        }
        Ok(Session::new(Database::open_with(dir, DatabaseOptions::local(roots)?).await?))
    }

    async fn run_in(&self, dir: &Path, file: &Path, sql: &str, input: &BenchInput, sink: BenchSink) -> Result<QueryBenchResult> {
        let session = self.open_session(dir).await?;
        let mut setup = format!(
            "SET 'parallelism' = '{}'; SET 'state.backend' = '{}'; SET 'execution.checkpointing.interval' = '{}';
             SET 'state.backend.incremental' = '{}';",
            self.parallelism, self.backend, self.checkpoint_interval, self.incremental
        );
        if let Some(entries) = self.cache_entries {
            setup.push_str(&format!(" SET 'state.cache.max-entries' = '{entries}';"));
        }
        setup.push_str(&input.sources_sql());
        session.execute(&setup).await?;

        let usage_before = ProcessUsage::now()?;
        let started = Instant::now();
        let started_at = SystemTime::now();
        for mut statement in parse_statements(sql)? {
            if let (BenchSink::Replaced { options, .. }, Statement::CreateTable { options: declared, .. }) = (&sink, &mut statement) {
                *declared = options.iter().cloned().collect();
            }
            session.execute_statement(statement).await?;
        }
        let jobs = query_rows(&session, "SELECT name FROM weir_jobs").await?;
        let [job] = jobs.as_slice() else {
            return Err(Error::invalid(format!(
                "{} must create exactly one job, it created {}",
                file.display(),
                jobs.len()
            )));
        };
        let job = job[0].clone();
        eprintln!("bench {}: job {job} started ({})", file.display(), input.describe());

        let waiter = Session::new(session.database().clone());
        let wait_sql = format!("WAIT JOB {job}");
        let wait = waiter.execute(&wait_sql);
        tokio::pin!(wait);
        let mut samples = vec![Sample {
            at: Duration::ZERO,
            rows_in: 0,
        }];
        let mut ticker = tokio::time::interval(SAMPLE_EVERY);
        // A busy machine delays ticks; never burst to catch up.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                done = &mut wait => { done?; break; }
                _ = ticker.tick() => {
                    let rows_in = self.progress(&session, &job, input, started, &samples).await?;
                    samples.push(Sample { at: started.elapsed(), rows_in });
                }
            }
        }
        let wall = started.elapsed();
        let usage = ProcessUsage::now()?;

        let status = query_rows(
            &session,
            &format!(
                "SELECT status, error, rows_in, rows_out, late_rows_dropped, window_latency_p50_ms, window_latency_p99_ms \
                 FROM weir_jobs WHERE name = '{job}'"
            ),
        )
        .await?;
        let row = status.first().ok_or_else(|| Error::internal("the benchmark job vanished"))?;
        if row[0] != "FINISHED" {
            return Err(Error::internal(format!("the benchmark job ended {}: {}", row[0], row[1])));
        }
        let number = |s: &str| s.parse::<u64>().unwrap_or(0);
        let millis = |s: &str| s.parse::<f64>().ok();
        let events = number(&row[2]);
        samples.push(Sample { at: wall, rows_in: events });
        let checkpoints = completed_checkpoints(session.database(), &job)?;
        if let Some(path) = &self.plot {
            write_plot(path, &job, &samples, &checkpoints, started_at)?;
            eprintln!("plot written to {}", path.display());
        }

        let cpu = usage.cpu.saturating_sub(usage_before.cpu).as_secs_f64();

        Ok(QueryBenchResult {
            query: file
                .file_stem()
                .map_or_else(|| self.query.clone(), |s| s.to_string_lossy().into_owned()),
            input: input.describe(),
            sink: match &sink {
                BenchSink::AsWritten => "as written".into(),
                BenchSink::Replaced { described, .. } => described.clone(),
            },
            backend: self.backend.clone(),
            parallelism: self.parallelism,
            checkpoint_interval: self.checkpoint_interval.clone(),
            incremental: self.incremental,
            cache_entries: self.cache_entries,
            events,
            rows_out: number(&row[3]),
            late_rows_dropped: number(&row[4]),
            wall_seconds: round(wall.as_secs_f64(), 3),
            cpu_seconds: round(cpu, 3),
            events_per_second: (events as f64 / wall.as_secs_f64()).round(),
            events_per_cpu_second: if cpu > 0.0 { (events as f64 / cpu).round() } else { 0.0 },
            peak_rss_mib: round(mib(usage.peak_rss_bytes), 1),
            checkpoint: CheckpointFigures::of(&checkpoints),
            window_latency_p50_ms: millis(&row[5]),
            window_latency_p99_ms: millis(&row[6]),
            commit: git_commit(),
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    }

    /// Prints a progress line; returns the rows read so far.
    async fn progress(&self, session: &Session, job: &str, input: &BenchInput, started: Instant, samples: &[Sample]) -> Result<u64> {
        let rows = query_rows(session, &format!("SELECT rows_in, status FROM weir_jobs WHERE name = '{job}'")).await?;
        let rows_in = rows.first().map_or(0, |r| r[0].parse().unwrap_or(0));
        let previous = samples.last().map_or(0, |s| s.rows_in);
        let checkpoints = completed_checkpoints(session.database(), job)?;
        let total = match input {
            BenchInput::Nexmark { events, .. } => format!(" of ~{events}"),
            BenchInput::Csv(_) | BenchInput::Kafka { .. } => String::new(),
        };
        eprintln!(
            "  {:>6.1}s  {rows_in:>11}{total} rows  {:>10.0} rows/s  checkpoints: {}{}",
            started.elapsed().as_secs_f64(),
            (rows_in - previous.min(rows_in)) as f64 / SAMPLE_EVERY.as_secs_f64(),
            checkpoints.len(),
            checkpoints.last().map_or(String::new(), |c| format!(", last {c}")),
        );
        Ok(rows_in)
    }
}

impl BenchInput {
    /// CREATE SOURCE statements for `bid` (and, from the generator, `auction` and `person`), with the
    /// reference watermark of 4 seconds.
    pub fn sources_sql(&self) -> String {
        match self {
            BenchInput::Nexmark {
                events,
                events_per_second,
                paced,
            } => {
                let with = |table: &str| {
                    format!(
                        "WITH (connector = 'nexmark', 'nexmark.table' = '{table}', 'max.events' = '{events}', \
                         'events.per.second' = '{events_per_second}', pace = '{paced}')"
                    )
                };
                format!(
                    "CREATE SOURCE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, \
                       date_time TIMESTAMP(3), extra VARCHAR, WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) {};
                     CREATE SOURCE auction (id BIGINT, item_name VARCHAR, description VARCHAR, initial_bid BIGINT, reserve BIGINT, \
                       date_time TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR, \
                       WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) {};
                     CREATE SOURCE person (id BIGINT, name VARCHAR, email_address VARCHAR, credit_card VARCHAR, city VARCHAR, \
                       state VARCHAR, date_time TIMESTAMP(3), extra VARCHAR, \
                       WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) {};",
                    with("bid"),
                    with("auction"),
                    with("person")
                )
            }
            BenchInput::Csv(path) => format!(
                "CREATE SOURCE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, \
                   date_time TIMESTAMP(3), extra VARCHAR, WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) \
                 WITH (connector = 'file', path = '{}', format = 'csv');",
                path.display().to_string().replace('\'', "''")
            ),
            BenchInput::Kafka { source_sql, .. } => format!("{source_sql};"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            BenchInput::Nexmark {
                events,
                events_per_second,
                paced,
            } => format!(
                "nexmark events={events} events_per_second={events_per_second}{}",
                if *paced { " paced" } else { "" }
            ),
            BenchInput::Csv(path) => format!("csv {}", path.display()),
            BenchInput::Kafka { topic, .. } => format!("kafka topic {topic} ({INPUT_PARTITIONS} partitions)"),
        }
    }
}

/// A path to a SQL file, or the name of a query in `sql/nexmark/`.
fn resolve_query(query: &str) -> Result<PathBuf> {
    let path = PathBuf::from(query);
    if path.is_file() {
        return Ok(path);
    }
    let named = Path::new("sql/nexmark").join(format!("{query}.sql"));
    if named.is_file() {
        return Ok(named);
    }
    Err(Error::invalid(format!(
        "no query '{query}': give a SQL file, or a name in sql/nexmark/ (run from the repository root)"
    )))
}

/// Throughput over time above, checkpoint sizes (full and uploaded) at their completion below.
fn write_plot(path: &Path, job: &str, samples: &[Sample], checkpoints: &[CheckpointRow], started_at: SystemTime) -> Result<()> {
    let throughput: Vec<(f64, f64)> = samples
        .windows(2)
        .map(|w| {
            let seconds = (w[1].at - w[0].at).as_secs_f64().max(1e-3);
            (w[1].at.as_secs_f64(), w[1].rows_in.saturating_sub(w[0].rows_in) as f64 / seconds)
        })
        .collect();
    let at = |c: &CheckpointRow| c.completed_at.duration_since(started_at).unwrap_or_default().as_secs_f64();
    let full: Vec<(f64, f64)> = checkpoints.iter().map(|c| (at(c), mib(c.full))).collect();
    let uploaded: Vec<(f64, f64)> = checkpoints.iter().map(|c| (at(c), mib(c.uploaded))).collect();
    let charts = [
        TimeChart {
            title: format!("{job}: rows read per second"),
            unit: "rows/s".into(),
            series: vec![Series::line("throughput", "#1f77b4", throughput)],
        },
        TimeChart {
            title: "checkpoint size".into(),
            unit: "MiB".into(),
            series: vec![
                Series::points("full state", "#7f7f7f", full),
                Series::points("uploaded", "#d62728", uploaded),
            ],
        },
    ];
    let svg = super::plot::render(&charts);
    std::fs::write(path, svg).map_err(|e| Error::invalid(format!("cannot write {}: {e}", path.display())))
}
