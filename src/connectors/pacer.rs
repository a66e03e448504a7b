//! Wall-clock pacing for rate-limited generators: after n events, wait until n / rate seconds have
//! passed since the first call.

use std::time::{Duration, Instant};

pub struct Pacer {
    rate: Option<f64>,
    start: Option<Instant>,
}

impl Pacer {
    /// `rate`: events per second for this subtask; `None` runs unpaced.
    pub fn new(rate: Option<f64>) -> Self {
        Pacer {
            rate: rate.filter(|r| *r > 0.0),
            start: None,
        }
    }

    pub async fn wait_until(&mut self, events: u64) {
        let Some(rate) = self.rate else { return };
        let start = *self.start.get_or_insert_with(Instant::now);
        let due = start + Duration::from_secs_f64(events as f64 / rate);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
    }
}
