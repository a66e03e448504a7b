//! Wall-clock pacing for rate-limited sources: after n events, wait until n / rate seconds have
//! passed since the first call.

use std::time::{Duration, Instant};

pub struct Pacer {
    rate: Option<f64>,
    start: Option<Instant>,
    /// Events already accounted for before `start` (a resumed source does not rush to catch up).
    offset: u64,
}

impl Pacer {
    /// `rate`: events per second for this subtask; `None` runs unpaced.
    pub fn new(rate: Option<f64>) -> Self {
        Pacer {
            rate: rate.filter(|r| *r > 0.0),
            start: None,
            offset: 0,
        }
    }

    /// A pacer for a source resumed after `events` events.
    pub fn resumed(rate: Option<f64>, events: u64) -> Self {
        Pacer {
            offset: events,
            ..Pacer::new(rate)
        }
    }

    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    pub async fn wait_until(&mut self, events: u64) {
        let Some(rate) = self.rate else { return };
        let start = *self.start.get_or_insert_with(Instant::now);
        let due = start + Duration::from_secs_f64(events.saturating_sub(self.offset) as f64 / rate);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
    }
}
