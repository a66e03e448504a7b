//! Per-job counters, shared by the job's tasks and read by SHOW JOBS / DESCRIBE JOB.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct JobMetrics {
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    pub late_rows_dropped: AtomicU64,
    /// Source records dropped as malformed (`json.ignore-parse-errors`).
    pub records_skipped: AtomicU64,
    /// From a watermark closing windows to their rows reaching the sink.
    pub window_latency: LatencyHistogram,
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
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..SUB_BUCKETS * (OCTAVES + 1)).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = bucket_of(micros).min(self.buckets.len() - 1);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
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
    }
}
