//! Which connections the server takes. At most `max_connections` are served at once, and at most
//! `max_startup` of them may still be in their startup (no startup packet yet, or authentication
//! not finished). Sockets that connect and never speak cannot lock clients out:
//! - a startup must finish within the startup timeout, or the connection is dropped;
//! - when the startup connections are at their limit, or every slot is taken, the oldest
//!   connection still in its startup is dropped to make room for the new one. A real client
//!   finishes its startup in milliseconds, so the oldest is the idlest.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

/// How long a connection may take to send its startup packet and authenticate.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Connections in their startup, by default.
pub const DEFAULT_MAX_STARTUP: usize = 64;

pub struct Admission {
    slots: Arc<Semaphore>,
    max_startup: usize,
    startup_timeout: Duration,
    /// Connections in their startup, oldest first, with what drops them.
    starting: Mutex<VecDeque<Starting>>,
    next_id: AtomicU64,
}

/// A connection in its startup.
struct Starting {
    id: u64,
    evict: oneshot::Sender<()>,
    /// Set by the connection's startup handler before it answers the client: from then on the
    /// connection is past its startup even if its task has not run since (a client that
    /// connects again at once must not find its first connection evictable).
    authenticated: watch::Receiver<bool>,
}

/// A connection that was let in: holds its slot until dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    evicted: oneshot::Receiver<()>,
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(max_connections: usize, max_startup: usize, startup_timeout: Duration) -> Arc<Self> {
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            max_startup: max_startup.max(1),
            startup_timeout,
            starting: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// Lets a new connection in, dropping the oldest connection in its startup if that makes room;
    /// `None` when every slot is held by a connection past its startup (the caller answers 53300).
    /// `authenticated`: turns true when the connection's startup is done.
    pub async fn admit(self: &Arc<Self>, authenticated: watch::Receiver<bool>) -> Option<Ticket> {
        if self.starting_count() >= self.max_startup {
            self.evict_oldest();
        }
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !self.evict_oldest() {
                    return None;
                }
                // The dropped connection gives its slot back as its task ends.
                tokio::time::timeout(Duration::from_secs(1), self.slots.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (evict, evicted) = oneshot::channel();
        self.with_starting(|starting| starting.push_back(Starting { id, evict, authenticated }));
        Some(Ticket {
            admission: self.clone(),
            id,
            evicted,
            _slot: slot,
        })
    }

    /// Runs `f` on the connections still in their startup (those authenticated meanwhile left out).
    fn with_starting<T>(&self, f: impl FnOnce(&mut VecDeque<Starting>) -> T) -> T {
        let mut starting = self.starting.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        starting.retain(|s| !*s.authenticated.borrow());
        f(&mut starting)
    }

    fn starting_count(&self) -> usize {
        self.with_starting(|starting| starting.len())
    }

    /// Drops the oldest connection in its startup; whether there was one.
    fn evict_oldest(&self) -> bool {
        match self.with_starting(|starting| starting.pop_front()) {
            Some(oldest) => {
                let _ = oldest.evict.send(());
                true
            }
            None => false,
        }
    }

    fn started(&self, id: u64) {
        self.with_starting(|starting| starting.retain(|s| s.id != id));
    }
}

impl Ticket {
    /// Runs `connection` (the whole protocol exchange). Until `authenticated` turns true, the
    /// connection is dropped at the startup timeout or when it is evicted to make room.
    pub async fn serve<F: Future>(mut self, connection: F, mut authenticated: watch::Receiver<bool>) -> Option<F::Output> {
        tokio::pin!(connection);
        let deadline = tokio::time::sleep(self.admission.startup_timeout);
        tokio::select! {
            output = &mut connection => return Some(output),
            // Only a sent eviction: the sender is also dropped (without sending) when another
            // connection's admission finds this one authenticated and forgets it.
            Ok(()) = &mut self.evicted => return None,
            _ = deadline => return None,
            started = authenticated.wait_for(|done| *done) => {
                // The sender lives as long as the connection; without it, wait for the end.
                if started.is_ok() {
                    self.admission.started(self.id);
                }
            }
        }
        Some(connection.await)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.started(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_connections_make_room_for_new_ones() {
        let admission = Admission::new(2, 8, Duration::from_secs(60));
        let (_never_tx, never_rx) = watch::channel(false);
        // Two idle connections take both slots.
        let idle: Vec<_> = (0..2)
            .map(|_| {
                let admission = admission.clone();
                let rx = never_rx.clone();
                tokio::spawn(async move {
                    let ticket = admission.admit(rx.clone()).await.expect("admitted");
                    ticket.serve(std::future::pending::<()>(), rx).await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        while admission.starting_count() < 2 {
            tokio::task::yield_now().await;
        }
        // A third one gets in: the oldest idle one is dropped.
        let (done_tx, done_rx) = watch::channel(false);
        let ticket = admission.admit(done_rx.clone()).await.expect("room made");
        done_tx.send(true).expect("send");
        let served = tokio::spawn(ticket.serve(async { 42 }, done_rx));
        assert_eq!(served.await.expect("join"), Some(42));
        let mut ended = 0;
        for handle in idle {
            if tokio::time::timeout(Duration::from_millis(200), handle).await.is_ok() {
                ended += 1;
            }
        }
        assert_eq!(ended, 1, "exactly the oldest idle connection was dropped");
    }

    #[tokio::test]
    async fn authenticated_connections_are_never_evicted() {
        let admission = Admission::new(1, 8, Duration::from_millis(50));
        let (tx, rx) = watch::channel(false);
        let ticket = admission.admit(rx.clone()).await.expect("admitted");
        tx.send(true).expect("send");
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let held = tokio::spawn(ticket.serve(release_rx, rx));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_tx, never) = watch::channel(false);
        assert!(
            admission.admit(never.clone()).await.is_none(),
            "the one slot is held past the startup timeout"
        );
        release_tx.send(()).expect("release");
        assert!(held.await.expect("join").is_some());
        assert!(admission.admit(never).await.is_some());
    }

    #[tokio::test]
    async fn a_connection_is_past_its_startup_once_authenticated_even_before_its_task_runs() {
        let admission = Admission::new(1, 8, Duration::from_secs(60));
        let (tx, rx) = watch::channel(false);
        // Admitted and authenticated, but its `serve` has not been polled yet.
        let _ticket = admission.admit(rx).await.expect("admitted");
        tx.send(true).expect("send");
        let (_tx, never) = watch::channel(false);
        assert!(admission.admit(never).await.is_none(), "the authenticated connection was evicted");
    }

    #[tokio::test]
    async fn a_connection_forgotten_as_authenticated_keeps_running() {
        let admission = Admission::new(4, 8, Duration::from_secs(60));
        let (tx, rx) = watch::channel(false);
        let ticket = admission.admit(rx.clone()).await.expect("admitted");
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let served = tokio::spawn(ticket.serve(release_rx, rx));
        tokio::task::yield_now().await;
        tx.send(true).expect("send");
        // Another admission forgets the authenticated one (dropping its eviction sender) before
        // its own task saw the flag.
        let (_tx, never) = watch::channel(false);
        let _other = admission.admit(never).await.expect("admitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!served.is_finished(), "the connection was dropped");
        release_tx.send(()).expect("release");
        assert_eq!(served.await.expect("join"), Some(Ok(())));
    }

    #[tokio::test]
    async fn a_startup_that_takes_too_long_is_dropped() {
        let admission = Admission::new(4, 4, Duration::from_millis(50));
        let (_tx, rx) = watch::channel(false);
        let ticket = admission.admit(rx.clone()).await.expect("admitted");
        assert_eq!(ticket.serve(std::future::pending::<()>(), rx).await, None);
        assert_eq!(admission.starting_count(), 0);
    }
}
