//! `/metrics`: the Prometheus (OpenMetrics text) exposition of every job, its checkpoints, the
//! pgwire server and the process. Read at each scrape from what SHOW JOBS and SHOW CHECKPOINTS
//! read, so a scrape and a SHOW never disagree.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::catalog::JobStatus;
use crate::checkpoint::history::{CheckpointRecord, CheckpointStatus};
use crate::engine::database::Database;
use crate::job::{JobSnapshot, RunningJob};
use crate::runtime::metrics::{LatencyHistogram, ProcessStats, RestoreFigures, TaskMetrics};

/// A job of this process, and what SHOW JOBS shows of it (taken once per scrape).
type LiveJob = (JobSnapshot, Arc<RunningJob>);

/// Upper bounds (seconds) of the checkpoint duration histograms: 10 ms to 10 min.
const DURATION_BUCKETS: [f64; 12] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0];

/// Upper bounds (seconds) of the pgwire query latency histogram: 100 µs to 1 min.
const QUERY_BUCKETS: [f64; 12] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0];

/// The text of one scrape.
pub fn exposition(db: &Arc<Database>) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(WeirCollector { db: Arc::clone(db) }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

struct WeirCollector {
    db: Arc<Database>,
}

impl fmt::Debug for WeirCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WeirCollector")
    }
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: its descriptor, then a sample per label set.
fn family<T>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric_type: MetricType,
    samples: &[(Labels, T)],
    mut encode: impl FnMut(&mut MetricEncoder, &T) -> fmt::Result,
) -> fmt::Result {
    if samples.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), metric_type)?;
    for (labels, value) in samples {
        encode(&mut metric.encode_family(labels)?, value)?;
    }
    Ok(())
}

fn gauges(encoder: &mut DescriptorEncoder, name: &str, help: &str, unit: Option<Unit>, samples: &[(Labels, f64)]) -> fmt::Result {
    family(encoder, name, help, unit, MetricType::Gauge, samples, |m, v| m.encode_gauge(v))
}

/// Counters: the exposition adds `_total` to the name.
fn counters(encoder: &mut DescriptorEncoder, name: &str, help: &str, unit: Option<Unit>, samples: &[(Labels, f64)]) -> fmt::Result {
    family(encoder, name, help, unit, MetricType::Counter, samples, |m, v| {
        m.encode_counter::<NoLabelSet, f64, f64>(v, None)
    })
}

/// Info series: a sample of value 1 per label set; the exposition adds `_info` to the name.
fn infos(encoder: &mut DescriptorEncoder, name: &str, help: &str, samples: &[Labels]) -> fmt::Result {
    if samples.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Info)?;
    for labels in samples {
        metric.encode_info(labels)?;
    }
    Ok(())
}

/// A histogram's sum, count and per-bucket (not cumulative) counts, the last bucket +Inf.
struct Buckets {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl Buckets {
    fn of(bounds: &[f64], values: impl Iterator<Item = f64>) -> Self {
        let mut buckets: Vec<(f64, u64)> = bounds.iter().map(|b| (*b, 0)).chain([(f64::MAX, 0)]).collect();
        let (mut sum, mut count) = (0.0, 0);
        for value in values {
            sum += value;
            count += 1;
            if let Some(bucket) = buckets.iter_mut().find(|(bound, _)| value <= *bound) {
                bucket.1 += 1;
            }
        }
        Buckets { sum, count, buckets }
    }

    /// From a latency histogram's buckets (microsecond upper bounds), re-binned to `bounds`.
    fn of_latencies(bounds: &[f64], latencies: &LatencyHistogram) -> Self {
        let mut buckets = Buckets::of(bounds, std::iter::empty());
        for (upper, count) in latencies.buckets() {
            let seconds = upper.as_secs_f64();
            if let Some(bucket) = buckets.buckets.iter_mut().find(|(bound, _)| seconds <= *bound) {
                bucket.1 += count;
            }
            buckets.count += count;
        }
        buckets.sum = latencies.sum().as_secs_f64();
        buckets
    }
}

fn histograms(encoder: &mut DescriptorEncoder, name: &str, help: &str, samples: &[(Labels, Buckets)]) -> fmt::Result {
    family(encoder, name, help, Some(Unit::Seconds), MetricType::Histogram, samples, |m, h| {
        m.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)
    })
}

fn job(name: &str) -> Labels {
    vec![("job", escaped(name))]
}

/// A label value as the exposition format spells it: `\`, `"` and line feeds escaped (the
/// encoder writes values as given, and a failure reason or a path may hold any of them).
fn escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn seconds_since_epoch(time: std::time::SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Collector for WeirCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let jobs: Vec<LiveJob> = (self.db.jobs().running().unwrap_or_default().into_iter())
            .map(|job| (job.snapshot(), job))
            .collect();
        let snapshots: Vec<&JobSnapshot> = jobs.iter().map(|(snapshot, _)| snapshot).collect();
        let e = &mut encoder;

        let mut status = Vec::new();
        for s in &snapshots {
            for candidate in JobStatus::ALL {
                let mut labels = job(&s.name);
                labels.push(("status", candidate.name().to_string()));
                status.push((labels, f64::from(u8::from(candidate == s.status))));
            }
        }
        gauges(
            e,
            "weir_job_status",
            "1 for the job's status (as SHOW JOBS), 0 for the others.",
            None,
            &status,
        )?;
        let per_job =
            |value: &dyn Fn(&JobSnapshot) -> f64| -> Vec<(Labels, f64)> { snapshots.iter().map(|s| (job(&s.name), value(s))).collect() };
        gauges(
            e,
            "weir_job_uptime",
            "Time since the job started (until it ended).",
            Some(Unit::Seconds),
            &per_job(&|s| s.uptime_seconds),
        )?;
        counters(
            e,
            "weir_job_records_in",
            "Records the job's sources read.",
            None,
            &per_job(&|s| s.rows_in as f64),
        )?;
        counters(
            e,
            "weir_job_records_out",
            "Records the job's sinks wrote.",
            None,
            &per_job(&|s| s.rows_out as f64),
        )?;
        counters(
            e,
            "weir_job_late_records_dropped",
            "Records dropped because every window they belong to had closed.",
            None,
            &per_job(&|s| s.late_rows_dropped as f64),
        )?;
        counters(
            e,
            "weir_job_records_skipped",
            "Malformed source records skipped (json.ignore-parse-errors).",
            None,
            &per_job(&|s| s.records_skipped as f64),
        )?;
        gauges(
            e,
            "weir_job_records_in_per_second",
            "Source records per second since the job started (SHOW JOBS rows_per_second).",
            None,
            &per_job(&|s| s.rows_per_second),
        )?;
        gauges(
            e,
            "weir_job_records_out_per_second",
            "Sink records per second since the job started.",
            None,
            &per_job(&|s| s.rows_out_per_second),
        )?;
        counters(
            e,
            "weir_job_restarts",
            "Times the job failed over and restarted.",
            None,
            &per_job(&|s| s.restarts as f64),
        )?;
        let failures: Vec<Labels> = snapshots
            .iter()
            .filter_map(|s| {
                let reason = s.last_failure.as_deref()?;
                let mut labels = job(&s.name);
                labels.push(("reason", escaped(reason)));
                Some(labels)
            })
            .collect();
        infos(e, "weir_job_last_failure", "Why the job last failed over.", &failures)?;
        let restores = |value: fn(&RestoreFigures) -> u64| -> Vec<(Labels, f64)> {
            snapshots
                .iter()
                .filter_map(|s| Some((job(&s.name), value(s.restore.as_ref()?) as f64)))
                .collect()
        };
        gauges(
            e,
            "weir_job_restore_restored",
            "Bytes of the checkpoint or savepoint files the job's latest restore fetched and checked so far.",
            Some(Unit::Bytes),
            &restores(|r| r.restored_bytes),
        )?;
        gauges(
            e,
            "weir_job_restore_total",
            "Bytes of the files the job's latest restore reads.",
            Some(Unit::Bytes),
            &restores(|r| r.total_bytes),
        )?;

        encode_tasks(e, &jobs)?;
        encode_checkpoints(e, &jobs)?;
        self.encode_pgwire(e)?;
        encode_process(e)
    }
}

fn encode_checkpoints(e: &mut DescriptorEncoder, jobs: &[LiveJob]) -> fmt::Result {
    // (job, records oldest first, state sizes of the latest completed checkpoint) of the live jobs.
    type History = (String, Vec<CheckpointRecord>, Vec<(String, usize, u64)>);
    let histories: Vec<History> = jobs
        .iter()
        .filter_map(|(_, live)| {
            let history = live.checkpoints.lock().ok()?;
            Some((live.name.clone(), history.records.clone(), history.state_sizes.clone()))
        })
        .collect();
    let mut totals = Vec::new();
    let mut in_progress = Vec::new();
    for (name, records, _) in &histories {
        for status in [CheckpointStatus::Completed, CheckpointStatus::Failed] {
            let mut labels = job(name);
            labels.push(("status", status.name().to_ascii_lowercase()));
            totals.push((labels, records.iter().filter(|r| r.status == status).count() as f64));
        }
        let open = records.iter().filter(|r| r.status == CheckpointStatus::InProgress).count();
        in_progress.push((job(name), open as f64));
    }
    counters(e, "weir_job_checkpoints", "Checkpoints that completed or failed.", None, &totals)?;
    gauges(
        e,
        "weir_job_checkpoints_in_progress",
        "Checkpoints triggered and not yet completed.",
        None,
        &in_progress,
    )?;

    let completed = |records: &[CheckpointRecord]| -> Vec<CheckpointRecord> {
        records
            .iter()
            .filter(|r| r.status == CheckpointStatus::Completed)
            .cloned()
            .collect()
    };
    let histogram_of = |part: fn(&CheckpointRecord) -> Duration| -> Vec<(Labels, Buckets)> {
        histories
            .iter()
            .map(|(name, records, _)| {
                let values = completed(records).iter().map(|r| part(r).as_secs_f64()).collect::<Vec<_>>();
                (job(name), Buckets::of(&DURATION_BUCKETS, values.into_iter()))
            })
            .collect()
    };
    histograms(
        e,
        "weir_job_checkpoint_duration",
        "Completed checkpoints, from trigger to completion.",
        &histogram_of(|r| r.duration),
    )?;
    histograms(
        e,
        "weir_job_checkpoint_sync_duration",
        "The synchronous part of completed checkpoints: the slowest subtask's snapshot.",
        &histogram_of(|r| r.sync),
    )?;
    histograms(
        e,
        "weir_job_checkpoint_alignment_duration",
        "The longest barrier alignment of completed checkpoints.",
        &histogram_of(|r| r.alignment),
    )?;

    let state: Vec<(Labels, f64)> = histories
        .iter()
        .flat_map(|(name, _, sizes)| {
            sizes.iter().map(move |(uid, subtask, bytes)| {
                let mut labels = job(name);
                labels.push(("operator", escaped(uid)));
                labels.push(("subtask", subtask.to_string()));
                (labels, *bytes as f64)
            })
        })
        .collect();
    gauges(
        e,
        "weir_operator_state",
        "State of an operator subtask in the latest completed checkpoint.",
        Some(Unit::Bytes),
        &state,
    )?;

    let latest: Vec<(String, CheckpointRecord)> = histories
        .iter()
        .filter_map(|(name, records, _)| Some((name.clone(), completed(records).pop()?)))
        .collect();
    let last = |value: fn(&CheckpointRecord) -> f64| -> Vec<(Labels, f64)> { latest.iter().map(|(n, r)| (job(n), value(r))).collect() };
    gauges(
        e,
        "weir_job_last_checkpoint_id",
        "Id of the latest completed checkpoint.",
        None,
        &last(|r| r.id as f64),
    )?;
    gauges(
        e,
        "weir_job_last_checkpoint_timestamp",
        "When the latest completed checkpoint was triggered (Unix time).",
        Some(Unit::Seconds),
        &last(|r| seconds_since_epoch(r.trigger_time)),
    )?;
    gauges(
        e,
        "weir_job_last_checkpoint_duration",
        "Trigger to completion of the latest completed checkpoint.",
        Some(Unit::Seconds),
        &last(|r| r.duration.as_secs_f64()),
    )?;
    gauges(
        e,
        "weir_job_last_checkpoint_uploaded",
        "Bytes the latest completed checkpoint uploaded (its new files: incremental).",
        Some(Unit::Bytes),
        &last(|r| r.bytes_uploaded as f64),
    )?;
    gauges(
        e,
        "weir_job_last_checkpoint_size",
        "Full state size of the latest completed checkpoint.",
        Some(Unit::Bytes),
        &last(|r| r.full_size as f64),
    )?;
    let info: Vec<Labels> = latest
        .iter()
        .map(|(name, r)| {
            let mut labels = job(name);
            labels.push(("id", r.id.to_string()));
            labels.push(("path", escaped(&r.path)));
            labels
        })
        .collect();
    infos(
        e,
        "weir_job_last_checkpoint",
        "The latest completed checkpoint's id and path, as SHOW CHECKPOINTS shows them.",
        &info,
    )
}

/// Per task (a chain of operators at one subtask, named by its first operator's uid).
fn encode_tasks(e: &mut DescriptorEncoder, jobs: &[LiveJob]) -> fmt::Result {
    let tasks: Vec<(Labels, Arc<TaskMetrics>)> = jobs
        .iter()
        .flat_map(|(_, live)| {
            live.metrics.tasks().into_iter().map(|task| {
                let vertex = task.name.rsplit_once('#').map_or(task.name.as_str(), |(uid, _)| uid).to_string();
                let mut labels = job(&live.name);
                labels.push(("vertex", escaped(&vertex)));
                labels.push(("subtask", task.subtask.to_string()));
                (labels, task)
            })
        })
        .collect();
    let each = |value: &dyn Fn(&TaskMetrics) -> Option<f64>| -> Vec<(Labels, f64)> {
        tasks
            .iter()
            .filter_map(|(labels, task)| Some((labels.clone(), value(task)?)))
            .collect()
    };
    counters(
        e,
        "weir_task_records_in",
        "Records a task read (from its source or its input channels).",
        None,
        &each(&|t| Some(t.records_in() as f64)),
    )?;
    counters(
        e,
        "weir_task_records_out",
        "Records a task passed on (or wrote, a sink).",
        None,
        &each(&|t| Some(t.records_out() as f64)),
    )?;
    counters(
        e,
        "weir_task_backpressured",
        "Time a task waited for room in full output channels; its rate is the share of time backpressured.",
        Some(Unit::Seconds),
        &each(&|t| Some(t.backpressured().as_secs_f64())),
    )?;
    gauges(
        e,
        "weir_task_state",
        "State a task's operators hold now, estimated (RocksDB: live data in SST files and memtables).",
        Some(Unit::Bytes),
        &each(&|t| t.state_bytes().map(|b| b as f64)),
    )?;
    counters(
        e,
        "weir_task_late_records_dropped",
        "Records a task's operators dropped because every window they belong to had closed.",
        None,
        &each(&|t| Some(t.late_rows() as f64)),
    )?;
    gauges(
        e,
        "weir_task_source_backlog_records",
        "Records a source task has still to read (Kafka: offsets behind the log end).",
        None,
        &each(&|t| t.source_backlog().map(|b| b as f64)),
    )?;
    let now_millis = seconds_since_epoch(std::time::SystemTime::now()) * 1000.0;
    gauges(
        e,
        "weir_task_watermark",
        "The last watermark a task passed on (Unix time).",
        Some(Unit::Seconds),
        &each(&|t| t.watermark_millis().map(|w| w as f64 / 1000.0)),
    )?;
    gauges(
        e,
        "weir_task_watermark_lag",
        "How far a task's watermark is behind the wall clock.",
        Some(Unit::Seconds),
        &each(&|t| t.watermark_millis().map(|w| (now_millis - w as f64) / 1000.0)),
    )
}

impl WeirCollector {
    fn encode_pgwire(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let server = self.db.server_metrics();
        let none = || -> Labels { Vec::new() };
        gauges(
            e,
            "weir_pgwire_connections",
            "Open pgwire connections.",
            None,
            &[(none(), server.open_connections() as f64)],
        )?;
        counters(
            e,
            "weir_pgwire_connections_accepted",
            "pgwire connections accepted since the process started.",
            None,
            &[(none(), server.connections_accepted() as f64)],
        )?;
        counters(
            e,
            "weir_pgwire_queries",
            "Statements run over pgwire.",
            None,
            &[(none(), server.queries() as f64)],
        )?;
        histograms(
            e,
            "weir_pgwire_query_duration",
            "Statements over pgwire, from receipt until the last row of their result was sent.",
            &[(none(), Buckets::of_latencies(&QUERY_BUCKETS, server.query_latency()))],
        )
    }
}

/// The process figures every Prometheus client exports under the same names (those the system
/// gives).
fn encode_process(e: &mut DescriptorEncoder) -> fmt::Result {
    let process = ProcessStats::read();
    let sample = |value: Option<f64>| -> Vec<(Labels, f64)> { value.map(|v| (Vec::new(), v)).into_iter().collect() };
    counters(
        e,
        "process_cpu",
        "User and system CPU time.",
        Some(Unit::Seconds),
        &sample(process.cpu.map(|c| c.as_secs_f64())),
    )?;
    let figures = [
        (
            "process_resident_memory",
            "Resident set size.",
            Some(Unit::Bytes),
            process.resident_bytes.map(|b| b as f64),
        ),
        (
            "process_virtual_memory",
            "Virtual memory size.",
            Some(Unit::Bytes),
            process.virtual_bytes.map(|b| b as f64),
        ),
        (
            "process_open_fds",
            "Open file descriptors.",
            None,
            process.open_fds.map(|n| n as f64),
        ),
        (
            "process_max_fds",
            "The open file descriptor limit.",
            None,
            process.max_fds.map(|n| n as f64),
        ),
        (
            "process_start_time",
            "When the process started (Unix time).",
            Some(Unit::Seconds),
            process.start_time.map(seconds_since_epoch),
        ),
    ];
    for (name, help, unit, value) in figures {
        gauges(e, name, help, unit, &sample(value))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escaped("plain/path-1"), "plain/path-1");
        assert_eq!(escaped("say \"hi\"\\n\nnext"), "say \\\"hi\\\"\\\\n\\nnext");
    }

    #[test]
    fn histograms_count_values_in_their_buckets() {
        let h = Buckets::of(&[1.0, 2.0], [0.5, 1.0, 1.5, 3.0].into_iter());
        assert_eq!(h.count, 4);
        assert_eq!(h.sum, 6.0);
        assert_eq!(h.buckets, [(1.0, 2), (2.0, 1), (f64::MAX, 1)]);
    }
}
