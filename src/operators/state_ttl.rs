//! `StateTtl`: Flink's state time-to-live (`table.exec.state.ttl`) as a join applies it. Each
//! stored row carries the processing time it was last written; a row not written for the TTL is
//! never read again (Flink's NeverReturnExpired) and leaves the state when its key's turn in the
//! operator's `ExpiryIndex` comes. Results may then differ from a run without TTL, as in Flink:
//! the TTL is a bound on state, traded against rows that arrive later than it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Processing time in milliseconds since the epoch (a test sets its own).
pub type ProcessingClock = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Clone)]
pub struct StateTtl {
    pub ttl_ms: i64,
    pub clock: ProcessingClock,
}

impl StateTtl {
    /// The TTL on the system clock.
    pub fn new(ttl: Duration) -> Self {
        StateTtl {
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            clock: Arc::new(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)),
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// When something written at `written` expires.
    pub fn expiry(&self, written: i64) -> i64 {
        written.saturating_add(self.ttl_ms)
    }
}
