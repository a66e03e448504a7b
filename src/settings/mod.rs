//! Job settings: the session's `SET` values overlaid with the job's `WITH (...)`, validated once.
//! Keys follow Flink's where Flink has one.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result, UserErrorKind};

pub mod location;
pub mod server;

pub use location::{S3Options, StorageLocation};

/// `state.backend.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateBackendKind {
    RocksDb,
    HashMap,
}

impl StateBackendKind {
    pub fn parse(value: &str) -> Result<Self> {
        match value.to_ascii_lowercase().as_str() {
            "rocksdb" => Ok(StateBackendKind::RocksDb),
            "hashmap" | "memory" => Ok(StateBackendKind::HashMap),
            other => Err(Error::invalid(format!(
                "state.backend.type '{other}' is unknown; use 'rocksdb' or 'hashmap'"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StateBackendKind::RocksDb => "rocksdb",
            StateBackendKind::HashMap => "hashmap",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointMode {
    /// Barriers are aligned: each checkpoint is a consistent cut.
    ExactlyOnce,
    /// Barriers are not aligned: after recovery some rows may be applied twice, none lost.
    AtLeastOnce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointRetention {
    RetainOnCancellation,
    DeleteOnCancellation,
}

#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    pub interval: Duration,
    pub mode: CheckpointMode,
    pub min_pause: Duration,
    pub timeout: Duration,
    pub tolerable_failed: u32,
    pub max_concurrent: u32,
    pub num_retained: usize,
    pub retention: CheckpointRetention,
    pub incremental: bool,
    /// Where checkpoints go; `None` is `<data-dir>/checkpoints`.
    pub dir: Option<StorageLocation>,
    /// `state.backend.local-recovery`: a job checkpointing to S3 keeps its latest checkpoint's
    /// files on local disk too, so a restart on the same machine downloads nothing.
    pub local_recovery: bool,
    /// For tests: this many checkpoint uploads of the job fail (`debug.checkpoint.fail-uploads`).
    pub fail_uploads: u32,
    /// For tests: this many checkpoint uploads of the job hang until the checkpoint is aborted
    /// (`debug.checkpoint.hang-uploads`), as an upload to an unresponsive store would.
    pub hang_uploads: u32,
    /// `execution.checkpointing.unaligned.enabled`: barriers overtake queued records, which are
    /// kept as the checkpoint's in-flight data (exactly-once only; savepoints stay aligned).
    pub unaligned: bool,
    /// `execution.checkpointing.aligned-checkpoint-timeout`: with unaligned checkpoints on, a
    /// checkpoint starts aligned and goes unaligned once this long has passed since its trigger
    /// (zero, Flink's default: unaligned from the start).
    pub aligned_timeout: Duration,
}

impl Default for CheckpointSettings {
    /// Flink's defaults; `interval` zero means no periodic checkpoints.
    fn default() -> Self {
        CheckpointSettings {
            interval: Duration::ZERO,
            mode: CheckpointMode::ExactlyOnce,
            min_pause: Duration::ZERO,
            timeout: Duration::from_secs(600),
            tolerable_failed: 0,
            max_concurrent: 1,
            num_retained: 1,
            retention: CheckpointRetention::DeleteOnCancellation,
            incremental: true,
            dir: None,
            local_recovery: false,
            fail_uploads: 0,
            hang_uploads: 0,
            unaligned: false,
            aligned_timeout: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    None,
    FixedDelay {
        attempts: u32,
        delay: Duration,
    },
    FailureRate {
        max_failures: u32,
        interval: Duration,
        delay: Duration,
    },
    ExponentialDelay {
        initial: Duration,
        max: Duration,
        multiplier: f64,
    },
}

/// The exponential-delay strategy's delay after `previous` (the first one: `initial`), at most
/// `max`. Not `Duration::mul_f64`, which panics past `Duration::MAX` (a multiplier of 1e300).
pub fn next_backoff(previous: Option<Duration>, initial: Duration, max: Duration, multiplier: f64) -> Duration {
    match previous {
        None => initial.min(max),
        Some(previous) => Duration::try_from_secs_f64(previous.as_secs_f64() * multiplier).map_or(max, |d| d.min(max)),
    }
}

#[derive(Debug, Clone)]
pub struct JobSettings {
    pub parallelism: usize,
    pub state_backend: StateBackendKind,
    /// Groups an aggregate keeps in memory before spilling them to the state backend.
    pub state_cache_entries: usize,
    /// `None`: checkpointing is off (Flink's default).
    pub checkpoints: Option<CheckpointSettings>,
    pub restart: RestartStrategy,
    /// `'uid.<generated uid>' = '<uid>'`: pins an operator's uid, e.g. so a changed query's
    /// aggregate takes over the state of the old one on RESTORE.
    pub pinned_uids: BTreeMap<String, String>,
    /// `table.exec.source.idle-timeout`: a source subtask that produced nothing for this long is
    /// marked idle, so downstream watermarks advance without it (Flink's key; off by default).
    pub source_idle_timeout: Option<Duration>,
    /// `table.exec.state.ttl`: join state not written for this long (processing time) is dropped,
    /// so a join over ever-new keys keeps a bounded state (Flink's key; 0, the default, keeps it).
    pub state_ttl: Option<Duration>,
    /// The `s3.*` keys, for the `s3://` locations of this job's checkpoints and savepoints.
    pub s3: S3Options,
    /// `debug.sink.rows-per-second`: every sink subtask writes no faster than this (a slow sink,
    /// to test and measure checkpoints under backpressure).
    pub sink_rows_per_second: Option<f64>,
}

/// The keys besides `uid.*` and the `s3.*` ones ([`location::S3_KEYS`]).
pub const KNOWN_KEYS: [&str; 32] = [
    "parallelism",
    "state.backend.type",
    "state.backend.incremental",
    "state.cache.max-entries",
    "state.checkpoints.dir",
    "execution.checkpointing.interval",
    "execution.checkpointing.mode",
    "execution.checkpointing.min-pause",
    "execution.checkpointing.timeout",
    "execution.checkpointing.tolerable-failed-checkpoints",
    "execution.checkpointing.max-concurrent-checkpoints",
    "execution.checkpointing.externalized-checkpoint-retention",
    "execution.checkpointing.num-retained",
    "restart-strategy.type",
    "restart-strategy.fixed-delay.attempts",
    "restart-strategy.fixed-delay.delay",
    "restart-strategy.failure-rate.max-failures-per-interval",
    "restart-strategy.failure-rate.failure-rate-interval",
    "restart-strategy.failure-rate.delay",
    "restart-strategy.exponential-delay.initial-backoff",
    "restart-strategy.exponential-delay.max-backoff",
    "restart-strategy.exponential-delay.backoff-multiplier",
    "execution.checkpointing.unaligned.enabled",
    "execution.checkpointing.aligned-checkpoint-timeout",
    "debug.checkpoint.fail-uploads",
    "debug.checkpoint.hang-uploads",
    "table.exec.source.idle-timeout",
    "table.exec.state.ttl",
    "execution.checkpointing.savepoint-dir",
    "execution.checkpointing.dir",
    "state.backend.local-recovery",
    "debug.sink.rows-per-second",
];

/// `200ms`, `10s`, `1 min`, `2h`, `1d`; a bare number is milliseconds, as in Flink.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    let text = value.trim().to_ascii_lowercase();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let amount: f64 = number
        .parse()
        .map_err(|_| Error::invalid(format!("'{key}' must be a duration like '200ms' or '10s', not '{value}'")))?;
    let seconds = match unit.trim() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => amount / 1000.0,
        "s" | "sec" | "secs" | "second" | "seconds" => amount,
        "min" | "mins" | "minute" | "minutes" | "m" => amount * 60.0,
        "h" | "hour" | "hours" => amount * 3600.0,
        "d" | "day" | "days" => amount * 86400.0,
        other => {
            return Err(Error::invalid(format!(
                "'{key}': unknown duration unit '{other}' in '{value}'; use ms, s, min, h or d"
            )));
        }
    };
    // Tokio adds a duration to `Instant::now()`, which overflows for huge values; a year is longer
    // than any interval, timeout or delay is meant to be.
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(Error::invalid(format!("'{key}' is at most 365d, not '{value}'")));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The longest duration any setting or option takes.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// A byte size as Flink's MemorySize writes it: `512kb`, `16mb`, `1 gb`, `64m`, `2MiB`; a bare
/// number is bytes. Units are powers of 1024.
pub fn parse_memory_size(key: &str, value: &str) -> Result<u64> {
    let text = value.trim().to_ascii_lowercase();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let amount: u64 = number
        .parse()
        .map_err(|_| Error::invalid(format!("'{key}' must be a size like '16mb', not '{value}'")))?;
    let shift = match unit.trim() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kib" | "kibibytes" => 10,
        "m" | "mb" | "mib" | "mebibytes" => 20,
        "g" | "gb" | "gib" | "gibibytes" => 30,
        "t" | "tb" | "tib" | "tebibytes" => 40,
        other => {
            return Err(Error::invalid(format!(
                "'{key}': unknown size unit '{other}' in '{value}'; use b, kb, mb, gb or tb"
            )));
        }
    };
    amount
        .checked_mul(1 << shift)
        .ok_or_else(|| Error::invalid(format!("'{key}' is too large: '{value}'")))
}

fn parse_int<T: std::str::FromStr + PartialOrd>(key: &str, value: &str, min: T) -> Result<T> {
    value
        .trim()
        .parse::<T>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| Error::invalid(format!("'{key}' must be an integer of at least the minimum allowed, not '{value}'")))
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid(format!("'{key}' must be true or false, not '{value}'"))),
    }
}

impl JobSettings {
    /// The job's checkpoint directory: `<checkpoint dir or <data>/checkpoints>/<job>`.
    pub fn checkpoint_location(&self, data: &crate::data_dir::DataDir, job: &str) -> StorageLocation {
        let job = crate::data_dir::path_component(job);
        match self.checkpoints.as_ref().and_then(|c| c.dir.as_ref()) {
            Some(dir) => dir.join(&job),
            None => StorageLocation::Local(data.checkpoints().join(job)),
        }
    }

    /// `state.backend.local-recovery` (off without checkpoints).
    pub fn local_recovery(&self) -> bool {
        self.checkpoints.as_ref().is_some_and(|c| c.local_recovery)
    }

    /// Applies the pinned uids to a planned graph; a pin naming no operator is an error.
    pub fn pin_uids(&self, mut graph: crate::graph::JobGraph) -> Result<crate::graph::JobGraph> {
        for (generated, pinned) in &self.pinned_uids {
            let op = graph.operators.iter_mut().find(|o| &o.uid == generated).ok_or_else(|| {
                Error::invalid(format!(
                    "'uid.{generated}' names no operator of the job; EXPLAIN CREATE JOB shows the uids"
                ))
            })?;
            op.uid = pinned.clone();
        }
        Ok(graph)
    }

    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        let mut settings = JobSettings {
            parallelism: 1,
            state_backend: StateBackendKind::RocksDb,
            state_cache_entries: 100_000,
            checkpoints: None,
            restart: RestartStrategy::None,
            pinned_uids: BTreeMap::new(),
            source_idle_timeout: None,
            state_ttl: None,
            s3: S3Options::default(),
            sink_rows_per_second: None,
        };
        let mut checkpoint_dir: Option<(&str, &str)> = None;
        let mut checkpoints = CheckpointSettings::default();
        let mut restart_type: Option<String> = None;
        let (mut attempts, mut fixed_delay) = (1u32, Duration::from_secs(1));
        let (mut max_failures, mut rate_interval, mut rate_delay) = (1u32, Duration::from_secs(60), Duration::from_secs(1));
        let (mut initial, mut max_backoff, mut multiplier) = (Duration::from_secs(1), Duration::from_secs(300), 2.0f64);
        for (key, value) in options {
            let k = key.as_str();
            match k {
                "parallelism" | "parallelism.default" => {
                    settings.parallelism = parse_int(k, value, 1usize)?;
                    if settings.parallelism > crate::graph::MAX_PARALLELISM {
                        return Err(Error::invalid(format!(
                            "'parallelism' is at most {}",
                            crate::graph::MAX_PARALLELISM
                        )));
                    }
                }
                "state.backend.type" | "state.backend" => settings.state_backend = StateBackendKind::parse(value)?,
                "state.cache.max-entries" => settings.state_cache_entries = parse_int(k, value, 1usize)?,
                "state.backend.incremental" => checkpoints.incremental = parse_bool(k, value)?,
                // Flink's old and new names; parsed after the loop, with the s3.* keys.
                "state.checkpoints.dir" | "execution.checkpointing.dir" => checkpoint_dir = Some((k, value)),
                "state.backend.local-recovery" => checkpoints.local_recovery = parse_bool(k, value)?,
                "execution.checkpointing.interval" => {
                    checkpoints.interval = parse_duration(k, value)?;
                    if checkpoints.interval.is_zero() {
                        return Err(Error::invalid("'execution.checkpointing.interval' must be positive"));
                    }
                }
                "execution.checkpointing.mode" => {
                    checkpoints.mode = match value.trim().to_ascii_uppercase().as_str() {
                        "EXACTLY_ONCE" => CheckpointMode::ExactlyOnce,
                        "AT_LEAST_ONCE" => CheckpointMode::AtLeastOnce,
                        _ => {
                            return Err(Error::invalid(format!(
                                "'{k}' must be EXACTLY_ONCE or AT_LEAST_ONCE, not '{value}'"
                            )));
                        }
                    }
                }
                "execution.checkpointing.min-pause" => checkpoints.min_pause = parse_duration(k, value)?,
                "execution.checkpointing.timeout" => {
                    checkpoints.timeout = parse_duration(k, value)?;
                    if checkpoints.timeout.is_zero() {
                        return Err(Error::invalid("'execution.checkpointing.timeout' must be positive"));
                    }
                }
                "execution.checkpointing.tolerable-failed-checkpoints" => checkpoints.tolerable_failed = parse_int(k, value, 0u32)?,
                "execution.checkpointing.max-concurrent-checkpoints" => checkpoints.max_concurrent = parse_int(k, value, 1u32)?,
                "execution.checkpointing.num-retained" => checkpoints.num_retained = parse_int(k, value, 1usize)?,
                "execution.checkpointing.externalized-checkpoint-retention" => {
                    checkpoints.retention = match value.trim().to_ascii_uppercase().as_str() {
                        "RETAIN_ON_CANCELLATION" => CheckpointRetention::RetainOnCancellation,
                        "DELETE_ON_CANCELLATION" => CheckpointRetention::DeleteOnCancellation,
                        _ => {
                            return Err(Error::invalid(format!(
                                "'{k}' must be RETAIN_ON_CANCELLATION or DELETE_ON_CANCELLATION, not '{value}'"
                            )));
                        }
                    }
                }
                // Read by SAVEPOINT JOB / STOP JOB WITH SAVEPOINT (savepoints.rs); checked after the loop.
                "execution.checkpointing.savepoint-dir" => {}
                "execution.checkpointing.unaligned.enabled" => checkpoints.unaligned = parse_bool(k, value)?,
                "execution.checkpointing.aligned-checkpoint-timeout" => checkpoints.aligned_timeout = parse_duration(k, value)?,
                "debug.sink.rows-per-second" => {
                    settings.sink_rows_per_second = Some(
                        value
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|r| r.is_finite() && *r >= 1.0)
                            .ok_or_else(|| Error::invalid(format!("'{k}' must be a number of at least 1, not '{value}'")))?,
                    )
                }
                "restart-strategy.type" | "restart-strategy" => {
                    let t = value.trim().to_ascii_lowercase();
                    match t.as_str() {
                        "none" | "off" | "disable" | "fixed-delay" | "failure-rate" | "exponential-delay" => restart_type = Some(t),
                        _ => {
                            return Err(Error::invalid(format!(
                                "'restart-strategy.type' must be none, fixed-delay, failure-rate or exponential-delay, not '{value}'"
                            )));
                        }
                    }
                }
                "debug.checkpoint.fail-uploads" => checkpoints.fail_uploads = parse_int(k, value, 0u32)?,
                "debug.checkpoint.hang-uploads" => checkpoints.hang_uploads = parse_int(k, value, 0u32)?,
                // Zero (Flink's default) turns idleness detection off.
                "table.exec.source.idle-timeout" => settings.source_idle_timeout = Some(parse_duration(k, value)?).filter(|d| !d.is_zero()),
                "table.exec.state.ttl" => settings.state_ttl = Some(parse_duration(k, value)?).filter(|d| !d.is_zero()),
                "restart-strategy.fixed-delay.attempts" => attempts = parse_int(k, value, 0u32)?,
                "restart-strategy.fixed-delay.delay" => fixed_delay = parse_duration(k, value)?,
                "restart-strategy.failure-rate.max-failures-per-interval" => max_failures = parse_int(k, value, 1u32)?,
                "restart-strategy.failure-rate.failure-rate-interval" => rate_interval = parse_duration(k, value)?,
                "restart-strategy.failure-rate.delay" => rate_delay = parse_duration(k, value)?,
                "restart-strategy.exponential-delay.initial-backoff" => initial = parse_duration(k, value)?,
                "restart-strategy.exponential-delay.max-backoff" => max_backoff = parse_duration(k, value)?,
                "restart-strategy.exponential-delay.backoff-multiplier" => {
                    multiplier = value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|m| m.is_finite() && *m >= 1.0)
                        .ok_or_else(|| Error::invalid(format!("'{k}' must be a finite number >= 1, not '{value}'")))?
                }
                other if settings.s3.take(other, value)? => {}
                other if other.starts_with("uid.") && other.len() > 4 => {
                    let uid = value.trim();
                    if uid.is_empty()
                        || uid.len() > crate::catalog::name::MAX_NAME_BYTES
                        || !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    {
                        return Err(Error::invalid(format!(
                            "'{other}' must be a uid of at most {} letters, digits, '-' and '_', not '{value}'",
                            crate::catalog::name::MAX_NAME_BYTES
                        )));
                    }
                    settings.pinned_uids.insert(other[4..].to_string(), uid.to_string());
                }
                // Postgres' SQLSTATE and words (psql users SET as they would there), with
                // Weir's keys after them, as Postgres would put them in a hint.
                other => {
                    return Err(Error::user(
                        UserErrorKind::UndefinedName,
                        format!(
                            "unrecognized configuration parameter \"{other}\"; Weir's settings: {}, {}, uid.<operator uid>",
                            KNOWN_KEYS.join(", "),
                            location::S3_KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        if let Some((key, value)) = checkpoint_dir {
            checkpoints.dir = Some(StorageLocation::parse(key, value, &settings.s3)?);
        }
        if let Some(value) = options.get("execution.checkpointing.savepoint-dir") {
            StorageLocation::parse("execution.checkpointing.savepoint-dir", value, &settings.s3)?;
        }
        if checkpoints.unaligned && checkpoints.mode == CheckpointMode::AtLeastOnce {
            // As Flink: an unaligned barrier only makes sense where barriers are aligned at all.
            return Err(Error::invalid(
                "unaligned checkpoints need 'execution.checkpointing.mode' = 'EXACTLY_ONCE' ('execution.checkpointing.unaligned.enabled' is true, the mode is AT_LEAST_ONCE)",
            ));
        }
        if !checkpoints.interval.is_zero() {
            settings.checkpoints = Some(checkpoints);
        }
        settings.restart = match restart_type.as_deref() {
            Some("none" | "off" | "disable") => RestartStrategy::None,
            Some("fixed-delay") => RestartStrategy::FixedDelay {
                attempts,
                delay: fixed_delay,
            },
            Some("failure-rate") => RestartStrategy::FailureRate {
                max_failures,
                interval: rate_interval,
                delay: rate_delay,
            },
            Some(_) => RestartStrategy::ExponentialDelay {
                initial,
                max: max_backoff,
                multiplier,
            },
            // As Flink: with checkpointing on and no strategy, restart indefinitely with backoff.
            None if settings.checkpoints.is_some() => RestartStrategy::ExponentialDelay {
                initial,
                max: max_backoff,
                multiplier,
            },
            None => RestartStrategy::None,
        };
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_maximum_without_overflow() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(next_backoff(None, initial, max, 2.0), initial);
        assert_eq!(next_backoff(Some(initial), initial, max, 2.0), Duration::from_secs(2));
        assert_eq!(next_backoff(Some(Duration::from_secs(200)), initial, max, 2.0), max);
        // Duration::mul_f64 panics here.
        assert_eq!(next_backoff(Some(max), initial, max, 1e300), max);
        assert_eq!(next_backoff(Some(MAX_DURATION), initial, MAX_DURATION, f64::MAX), MAX_DURATION);
    }

    #[test]
    fn huge_durations_are_refused() {
        for value in ["999999999999999999999999s", "366d", "9999999999h"] {
            let error = parse_duration("k", value).expect_err(value);
            assert!(error.to_string().contains("at most 365d"), "{error}");
        }
        assert_eq!(parse_duration("k", "365d").expect("a year"), MAX_DURATION);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("k", "200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("k", "2 s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("k", "1min").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("k", "500").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("k", "soon").is_err());
        assert!(parse_duration("k", "3 fortnights").is_err());
    }

    #[test]
    fn checkpointing_defaults_to_backoff_restarts() {
        let mut options = BTreeMap::new();
        options.insert("execution.checkpointing.interval".to_string(), "1s".to_string());
        let settings = JobSettings::from_options(&options).unwrap();
        assert!(matches!(settings.restart, RestartStrategy::ExponentialDelay { .. }));
        assert!(JobSettings::from_options(&BTreeMap::new()).unwrap().checkpoints.is_none());
    }
}
