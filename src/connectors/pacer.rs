//! Wall-clock pacing for rate-limited sources, and the linger that bounds how long a slow source
//! holds rows back to fill a batch.
//!
//! Event k (0-based, counted from the start) is due k / rate seconds after the first call. A
//! source asks [`Pacer::next_batch_len`] how many events to emit next: a full batch as soon as one
//! is due, or whatever is due once `linger` has passed since the previous batch. So a fast source
//! emits full batches and a slow one (one row per second) still delivers each row within the
//! linger instead of after a whole batch of rows.

use std::time::{Duration, Instant};

/// How long a source holds due rows back to fill a batch, unless configured (`batch.linger`).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(100);

pub struct Pacer {
    rate: Option<f64>,
    linger: Duration,
    start: Option<Instant>,
    /// Events already accounted for before `start` (a resumed source does not rush to catch up).
    offset: u64,
    /// When the previous batch was handed out (the linger counts from there).
    last_batch: Option<Instant>,
}

impl Pacer {
    /// `rate`: events per second for this subtask; `None` runs unpaced.
    pub fn new(rate: Option<f64>, linger: Duration) -> Self {
        Pacer {
            rate: rate.filter(|r| *r > 0.0 && r.is_finite()),
            linger,
            start: None,
            offset: 0,
            last_batch: None,
        }
    }

    /// A pacer for a source resumed after `events` events.
    pub fn resumed(&self, events: u64) -> Self {
        Pacer {
            offset: events,
            ..Pacer::new(self.rate, self.linger)
        }
    }

    /// Waits until the next batch is due and returns its length in events (1..=`full`):
    /// `emitted` events were handed out so far. Unpaced sources get `full` at once.
    ///
    /// Cancel-safe: it only sleeps, so a source task may drop the call when a barrier comes first;
    /// the source changes its own state only after this returns.
    pub async fn next_batch_len(&mut self, emitted: u64, full: u64) -> u64 {
        loop {
            match self.step(Instant::now(), emitted, full) {
                PacerStep::Emit(len) => return len,
                // At least a microsecond: a float rounding must not make this spin.
                PacerStep::WaitUntil(wake) => tokio::time::sleep_until(wake.max(Instant::now() + Duration::from_micros(1)).into()).await,
            }
        }
    }

    /// What to do at `now`: emit a batch of this many events, or wait.
    fn step(&mut self, now: Instant, emitted: u64, full: u64) -> PacerStep {
        let full = full.max(1);
        let Some(rate) = self.rate else { return PacerStep::Emit(full) };
        let start = *self.start.get_or_insert(now);
        let last = *self.last_batch.get_or_insert(start);
        let elapsed_events = (now.saturating_duration_since(start).as_secs_f64() * rate) as u64;
        let due = self.offset.saturating_add(elapsed_events).saturating_add(1).saturating_sub(emitted);
        if due >= full || (due > 0 && now >= last + self.linger) {
            self.last_batch = Some(now);
            return PacerStep::Emit(due.min(full));
        }
        // When event number `n` (counted like `emitted`) is due.
        let due_at = |n: u64| start + Duration::from_secs_f64((n.saturating_sub(self.offset) as f64 / rate).min(1e9));
        let full_batch_at = due_at(emitted + full - 1);
        let one_event_at = due_at(emitted);
        PacerStep::WaitUntil(full_batch_at.min(one_event_at.max(last + self.linger)))
    }
}

#[derive(Debug, PartialEq)]
enum PacerStep {
    Emit(u64),
    WaitUntil(Instant),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the pacer on a simulated clock from `t0`: (batch length, when it was emitted).
    fn run(pacer: &mut Pacer, t0: Instant, mut emitted: u64, full: u64, batches: usize) -> Vec<(u64, Duration)> {
        let mut now = t0;
        let mut out = Vec::new();
        while out.len() < batches {
            match pacer.step(now, emitted, full) {
                PacerStep::Emit(len) => {
                    out.push((len, now - t0));
                    emitted += len;
                }
                PacerStep::WaitUntil(wake) => now = wake.max(now + Duration::from_micros(1)),
            }
        }
        out
    }

    #[test]
    fn slow_source_delivers_each_row_within_the_linger() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(Some(1.0), Duration::from_millis(100));
        // Row 0 is due at once and waits for the linger only; row k is due k seconds after the start.
        let got = run(&mut pacer, t0, 0, 4096, 3);
        assert_eq!(
            got,
            [
                (1, Duration::from_millis(100)),
                (1, Duration::from_secs(1)),
                (1, Duration::from_secs(2))
            ]
        );
    }

    #[test]
    fn fast_source_emits_full_batches() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(Some(10_000.0), Duration::from_millis(100));
        // 100 events are due after 9.9 ms, well within the linger.
        for (i, (len, at)) in run(&mut pacer, t0, 0, 100, 5).into_iter().enumerate() {
            assert_eq!(len, 100);
            let due = Duration::from_micros(9_900 + 10_000 * i as u64);
            assert!(at >= due && at < due + Duration::from_micros(10), "batch {i} at {at:?}");
        }
    }

    #[test]
    fn unpaced_and_resumed() {
        let t0 = Instant::now();
        assert_eq!(run(&mut Pacer::new(None, DEFAULT_LINGER), t0, 5, 64, 1), [(64, Duration::ZERO)]);
        // Resumed after 1000 events: event 1000 is due at once, not 1000 s late or early.
        let mut pacer = Pacer::new(Some(100.0), Duration::from_millis(55)).resumed(1000);
        assert_eq!(run(&mut pacer, t0, 1000, 10, 1), [(6, Duration::from_millis(55))]);
    }
}
