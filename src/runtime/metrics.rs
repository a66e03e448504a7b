//! Per-job counters, shared by the job's tasks and read by SHOW JOBS / DESCRIBE JOB; the pgwire
//! server's counters and the process's figures, read by `/metrics`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::message::EventTime;

#[derive(Debug, Default)]
pub struct JobMetrics {
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    pub late_rows_dropped: AtomicU64,
    /// Source records dropped as malformed (`json.ignore-parse-errors`).
    pub records_skipped: AtomicU64,
    /// From a watermark closing windows to their rows reaching the sink.
    pub window_latency: LatencyHistogram,
    /// The tasks of the current attempt.
    tasks: Mutex<Vec<Arc<TaskMetrics>>>,
    /// How far the job's latest restore got.
    pub restore: RestoreProgress,
}

impl JobMetrics {
    pub fn add_rows_in(&self, n: usize) {
        self.rows_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_rows_out(&self, n: usize) {
        self.rows_out.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_late_rows(&self, n: usize) {
        self.late_rows_dropped.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_records_skipped(&self, n: u64) {
        self.records_skipped.fetch_add(n, Ordering::Relaxed);
    }
    pub fn rows_in(&self) -> u64 {
        self.rows_in.load(Ordering::Relaxed)
    }
    pub fn rows_out(&self) -> u64 {
        self.rows_out.load(Ordering::Relaxed)
    }
    pub fn late_rows_dropped(&self) -> u64 {
        self.late_rows_dropped.load(Ordering::Relaxed)
    }
    pub fn records_skipped(&self) -> u64 {
        self.records_skipped.load(Ordering::Relaxed)
    }

    /// A task of a new attempt: `operators` are the graph indices of its chain.
    pub fn add_task(&self, name: String, operators: Vec<usize>, subtask: usize) -> Arc<TaskMetrics> {
        let task = Arc::new(TaskMetrics {
            name,
            operators,
            subtask,
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            watermark: AtomicI64::new(EventTime::MIN),
            backpressured_nanos: AtomicU64::new(0),
            waiting_since: AtomicU64::new(NOT_WAITING),
            source_backlog: AtomicU64::new(u64::MAX),
            late_rows: AtomicU64::new(0),
            state_bytes: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(Arc::clone(&task));
        }
        task
    }

    /// A new attempt starts: the previous attempt's tasks are gone.
    pub fn clear_tasks(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.clear();
        }
    }

    pub fn tasks(&self) -> Vec<Arc<TaskMetrics>> {
        self.tasks.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// One task's figures: a chain of operators at one subtask, in the current attempt.
#[derive(Debug)]
pub struct TaskMetrics {
    /// `<first operator uid>#<subtask>`.
    pub name: String,
    /// Graph indices of the chained operators (a source's or sink's included).
    pub operators: Vec<usize>,
    pub subtask: usize,
    records_in: AtomicU64,
    records_out: AtomicU64,
    /// The last watermark the task passed on (nanoseconds); `EventTime::MIN` before the first.
    watermark: AtomicI64,
    /// Time spent waiting for room in full output channels (backpressure), past waits.
    backpressured_nanos: AtomicU64,
    /// When the current wait began (nanoseconds after `started`), or `NOT_WAITING`.
    waiting_since: AtomicU64,
    /// A source task's records still to read (`Source::backlog`); `u64::MAX`: not known.
    source_backlog: AtomicU64,
    /// Rows its operators dropped for arriving behind the watermark.
    late_rows: AtomicU64,
    /// Its operators' state, estimated, as last sampled; `u64::MAX`: it keeps none.
    state_bytes: AtomicU64,
    started: Instant,
}

const NOT_WAITING: u64 = u64::MAX;

/// A wait for room downstream; ends when dropped.
pub struct Backpressured<'a>(&'a TaskMetrics);

impl Drop for Backpressured<'_> {
    fn drop(&mut self) {
        let task = self.0;
        let since = task.waiting_since.swap(NOT_WAITING, Ordering::Relaxed);
        if since != NOT_WAITING {
            task.backpressured_nanos
                .fetch_add(task.nanos_since_start().saturating_sub(since), Ordering::Relaxed);
        }
    }
}

impl TaskMetrics {
    pub fn add_records_in(&self, n: usize) {
        self.records_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_records_out(&self, n: usize) {
        self.records_out.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn set_watermark(&self, watermark: EventTime) {
        self.watermark.fetch_max(watermark, Ordering::Relaxed);
    }
    /// The task starts waiting for room downstream; the wait counts as backpressure until the
    /// guard is dropped, and while it lasts (a scrape during a long wait sees it grow).
    pub fn backpressured_from_now(&self) -> Backpressured<'_> {
        self.waiting_since.store(self.nanos_since_start(), Ordering::Relaxed);
        Backpressured(self)
    }
    pub fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }
    pub fn records_out(&self) -> u64 {
        self.records_out.load(Ordering::Relaxed)
    }
    pub fn set_source_backlog(&self, backlog: Option<u64>) {
        self.source_backlog.store(backlog.unwrap_or(u64::MAX), Ordering::Relaxed);
    }
    pub fn source_backlog(&self) -> Option<u64> {
        Some(self.source_backlog.load(Ordering::Relaxed)).filter(|b| *b != u64::MAX)
    }
    pub fn late_rows(&self) -> u64 {
        self.late_rows.load(Ordering::Relaxed)
    }
    pub fn set_state_bytes(&self, bytes: Option<u64>) {
        self.state_bytes.store(bytes.unwrap_or(u64::MAX), Ordering::Relaxed);
    }
    pub fn state_bytes(&self) -> Option<u64> {
        Some(self.state_bytes.load(Ordering::Relaxed)).filter(|b| *b != u64::MAX)
    }
    /// The last watermark passed on, in milliseconds since the epoch; `None` before the first
    /// (and for the final watermark of a bounded input, which is no time).
    pub fn watermark_millis(&self) -> Option<i64> {
        let watermark = self.watermark.load(Ordering::Relaxed);
        (watermark != EventTime::MIN && watermark != EventTime::MAX).then(|| watermark.div_euclid(1_000_000))
    }
    /// Time spent waiting for room downstream, the current wait included.
    pub fn backpressured(&self) -> Duration {
        let since = self.waiting_since.load(Ordering::Relaxed);
        let current = if since == NOT_WAITING {
            0
        } else {
            self.nanos_since_start().saturating_sub(since)
        };
        Duration::from_nanos(self.backpressured_nanos.load(Ordering::Relaxed) + current)
    }
    fn nanos_since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Where an operator counts the rows it drops as late: in its job's total and its task's.
#[derive(Debug, Clone)]
pub struct LateRows {
    job: Arc<JobMetrics>,
    task: Arc<TaskMetrics>,
}

impl LateRows {
    pub fn new(job: Arc<JobMetrics>, task: Arc<TaskMetrics>) -> Self {
        LateRows { job, task }
    }
    /// Counters of their own, for an operator run outside a job (tests, benchmarks).
    pub fn unattached() -> Self {
        let job = Arc::new(JobMetrics::default());
        let task = job.add_task(String::new(), Vec::new(), 0);
        LateRows { job, task }
    }
    pub fn add(&self, n: usize) {
        self.job.add_late_rows(n);
        self.task.late_rows.fetch_add(n as u64, Ordering::Relaxed);
    }
    /// The rows counted by the task.
    pub fn counted(&self) -> u64 {
        self.task.late_rows()
    }
}

/// How far a job's latest restore got: bytes of the restore point's files fetched (downloaded
/// from object storage when not kept locally) and checked, of all the files the job reads.
/// It is also how a stop reaches a restore under way: the restore ends at its next file.
#[derive(Debug, Default)]
pub struct RestoreProgress {
    state: Mutex<Option<RestoreState>>,
    /// The job was stopped: whatever restore runs, or would run, has no use.
    stopped: AtomicBool,
}

#[derive(Debug)]
struct RestoreState {
    total_bytes: u64,
    restored_bytes: u64,
    /// Files counted so far: a file that several subtasks read (canonical state, read by every
    /// subtask at a new parallelism) counts once.
    files: HashSet<String>,
}

/// A restore's figures, for SHOW JOBS, `/metrics` and the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreFigures {
    pub restored_bytes: u64,
    pub total_bytes: u64,
}

impl RestoreProgress {
    /// A restore of these files (path, size) begins; the figures of an earlier one are replaced.
    pub fn begin<'a>(&self, files: impl Iterator<Item = (&'a str, u64)>) {
        let mut paths = HashSet::new();
        let total_bytes = files.filter(|(path, _)| paths.insert(*path)).map(|(_, size)| size).sum();
        if let Ok(mut state) = self.state.lock() {
            *state = Some(RestoreState {
                total_bytes,
                restored_bytes: 0,
                files: HashSet::new(),
            });
        }
    }
    /// The file at `path` (`size` bytes) is fetched and checked. An error once the job was
    /// stopped: the restore goes no further.
    pub fn file_restored(&self, path: &str, size: u64) -> Result<()> {
        if let Ok(mut state) = self.state.lock()
            && let Some(state) = state.as_mut()
            && state.files.insert(path.to_string())
        {
            state.restored_bytes += size;
        }
        if self.is_stopped() {
            return Err(Error::canceled());
        }
        Ok(())
    }
    /// The job is being stopped: a restore under way ends at its next file.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
    /// The latest restore's figures; `None` while the job has not restored in this process.
    pub fn figures(&self) -> Option<RestoreFigures> {
        let state = self.state.lock().ok()?;
        state.as_ref().map(|s| RestoreFigures {
            restored_bytes: s.restored_bytes,
            total_bytes: s.total_bytes,
        })
    }
}

/// Sub-buckets per power of two: quantiles are exact to within 1/8 (12.5 %).
const SUB_BUCKETS: usize = 8;
/// Powers of two of microseconds covered: up to 2^40 µs (12 days); longer samples count as the maximum.
const OCTAVES: usize = 40;

/// A lock-free log-linear histogram of durations in microseconds (HdrHistogram's layout with three
/// significant bits): recording is two relaxed atomic adds, so sinks record every sample.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..SUB_BUCKETS * (OCTAVES + 1)).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = bucket_of(micros).min(self.buckets.len() - 1);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The sum of the samples.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_micros.load(Ordering::Relaxed))
    }

    /// (upper bound, samples) of every bucket holding samples, in order.
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.buckets.iter().enumerate().filter_map(|(index, bucket)| {
            let count = bucket.load(Ordering::Relaxed);
            (count > 0).then(|| (Duration::from_micros(bucket_upper_bound(index)), count))
        })
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q`-quantile (0..=1) as the upper bound of its bucket; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(Duration::from_micros(bucket_upper_bound(index)));
            }
        }
        None
    }
}

/// The pgwire server's figures (`/metrics`): connections and statements.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    connections_accepted: AtomicU64,
    connections_closed: AtomicU64,
    queries: AtomicU64,
    query_latency: LatencyHistogram,
}

impl ServerMetrics {
    /// A connection was accepted; dropping the guard counts it closed.
    pub fn connection_opened(self: &std::sync::Arc<Self>) -> OpenConnection {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        OpenConnection(std::sync::Arc::clone(self))
    }
    pub fn record_query(&self, latency: Duration) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.query_latency.record(latency);
    }
    pub fn connections_accepted(&self) -> u64 {
        self.connections_accepted.load(Ordering::Relaxed)
    }
    pub fn open_connections(&self) -> u64 {
        self.connections_accepted()
            .saturating_sub(self.connections_closed.load(Ordering::Relaxed))
    }
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
    pub fn query_latency(&self) -> &LatencyHistogram {
        &self.query_latency
    }
}

/// An open pgwire connection: counted closed when dropped, however the connection ends.
pub struct OpenConnection(std::sync::Arc<ServerMetrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every Prometheus client exports about its process, from getrusage, getrlimit and /proc
/// (Linux). A figure the system does not give is `None`.
#[derive(Debug, Default)]
pub struct ProcessStats {
    pub cpu: Option<Duration>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time: Option<std::time::SystemTime>,
}

impl ProcessStats {
    pub fn read() -> Self {
        // SAFETY: getrusage and getrlimit only write the structs passed; zeroed ones are valid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let cpu = (unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0).then(|| {
            let micros = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
            micros(usage.ru_utime) + micros(usage.ru_stime)
        });
        let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
        let max_fds = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur as u64);
        // SAFETY: sysconf has no preconditions.
        let page_size = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok();
        let ticks_per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|t| *t > 0);
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let mut pages = statm.split_whitespace().map(|v| v.parse::<u64>().ok());
        let virtual_bytes = pages.next().flatten().zip(page_size).map(|(p, size)| p * size);
        let resident_bytes = pages.next().flatten().zip(page_size).map(|(p, size)| p * size);
        let open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|dir| dir.count() as u64);
        ProcessStats {
            cpu,
            resident_bytes,
            virtual_bytes,
            open_fds,
            max_fds,
            start_time: ticks_per_second.and_then(process_start_time),
        }
    }
}

/// The process's start: its start in clock ticks after boot (/proc/self/stat, field 22) plus the
/// boot time (/proc/stat `btime`).
fn process_start_time(ticks_per_second: u64) -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let start_ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let boot_seconds: u64 = boot.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
    let since_boot = Duration::from_secs(start_ticks / ticks_per_second)
        + Duration::from_nanos((start_ticks % ticks_per_second) * 1_000_000_000 / ticks_per_second);
    Some(std::time::UNIX_EPOCH + Duration::from_secs(boot_seconds) + since_boot)
}

/// Values below `SUB_BUCKETS` get a bucket each; above, each power of two is split in `SUB_BUCKETS`.
fn bucket_of(micros: u64) -> usize {
    if micros < SUB_BUCKETS as u64 {
        return micros as usize;
    }
    let octave = 63 - micros.leading_zeros() as usize; // >= 3
    let shift = octave - SUB_BUCKETS.trailing_zeros() as usize;
    let sub = ((micros >> shift) as usize) - SUB_BUCKETS;
    (octave - 2) * SUB_BUCKETS + sub
}

fn bucket_upper_bound(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let octave = index / SUB_BUCKETS + 2;
    let sub = (index % SUB_BUCKETS) as u64;
    let shift = octave - SUB_BUCKETS.trailing_zeros() as usize;
    ((SUB_BUCKETS as u64 + sub + 1) << shift) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_progress_counts_each_file_once() {
        let progress = RestoreProgress::default();
        assert_eq!(progress.figures(), None);
        progress.file_restored("shared/a.sst", 10).expect("restored");
        assert_eq!(progress.figures(), None, "nothing counts before a restore begins");
        progress.begin([("shared/a.sst", 60), ("chk-3/b.arrow", 40), ("shared/a.sst", 60)].into_iter());
        progress.file_restored("shared/a.sst", 60).expect("restored");
        progress.file_restored("shared/a.sst", 60).expect("restored");
        assert_eq!(
            progress.figures(),
            Some(RestoreFigures {
                restored_bytes: 60,
                total_bytes: 100
            })
        );
        progress.file_restored("chk-3/b.arrow", 40).expect("restored");
        assert_eq!(progress.figures().map(|f| f.restored_bytes), Some(100));
        progress.begin([("chk-4/c.arrow", 7)].into_iter());
        assert_eq!(
            progress.figures(),
            Some(RestoreFigures {
                restored_bytes: 0,
                total_bytes: 7
            })
        );
        progress.stop();
        let stopped = progress
            .file_restored("chk-4/c.arrow", 7)
            .expect_err("a stopped job's restore ends");
        assert_eq!(stopped.sqlstate(), "57014");
    }

    #[test]
    fn late_rows_count_for_the_job_and_the_task() {
        let job = Arc::new(JobMetrics::default());
        let task = job.add_task("agg#1".into(), vec![2], 1);
        let late = LateRows::new(job.clone(), task.clone());
        late.add(3);
        late.add(2);
        assert_eq!((job.late_rows_dropped(), task.late_rows()), (5, 5));
    }

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for micros in [0u64, 1, 7, 8, 9, 15, 16, 17, 100, 1000, 123_456, 10_000_000] {
            let index = bucket_of(micros);
            assert!(index >= last, "{micros}");
            assert!(bucket_upper_bound(index) >= micros, "{micros} above its bucket");
            assert!(bucket_upper_bound(index) <= micros + micros / 8, "{micros}: bucket too wide");
            last = index;
        }
        assert_eq!(bucket_of(15), 15 - 8 + 8);
        assert_eq!(bucket_upper_bound(bucket_of(16)), 17);
    }

    #[test]
    fn quantiles() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).unwrap().as_millis();
        let p99 = h.quantile(0.99).unwrap().as_millis();
        assert!((50..=57).contains(&p50), "p50 {p50}");
        assert!((99..=112).contains(&p99), "p99 {p99}");
        assert_eq!(h.count(), 100);
        assert_eq!(h.sum(), Duration::from_millis(5050));
        assert_eq!(h.buckets().map(|(_, n)| n).sum::<u64>(), 100);
    }

    #[test]
    fn process_stats_are_read() {
        let stats = ProcessStats::read();
        assert!(stats.cpu.is_some() && stats.resident_bytes.is_some_and(|r| r > 0));
        assert!(stats.open_fds.is_some_and(|n| n >= 3), "{stats:?}");
        let start = stats.start_time.expect("start time");
        let age = std::time::SystemTime::now().duration_since(start).expect("started in the past");
        assert!(age < Duration::from_secs(24 * 3600), "{age:?}");
    }
}
