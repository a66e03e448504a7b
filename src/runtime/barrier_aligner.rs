//! `BarrierAligner`: which channels of a task's input delivered which barriers, and so which
//! channel must wait (aligned checkpoints) before a barrier is complete. The `InputGate` drives it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::message::{Barrier, BarrierKind};

/// How a task's input lines up the barriers of its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    /// Exactly-once: block channels that delivered the barrier until all have.
    Aligned,
    /// Exactly-once: align until `timeout` has passed since the checkpoint was triggered, then let
    /// the barrier overtake the queued records and record those as in-flight data. Savepoints are
    /// always aligned.
    Unaligned { timeout: Duration },
    /// At-least-once: never block.
    AtLeastOnce,
}

/// Tracks which channels delivered which barriers.
#[derive(Debug)]
pub struct BarrierAligner {
    mode: Alignment,
    /// Barriers seen on some channels but not all yet: id → (barrier, delivered per channel).
    pending: BTreeMap<u64, (Barrier, Vec<bool>)>,
}

impl BarrierAligner {
    pub fn new(mode: Alignment) -> Self {
        BarrierAligner {
            mode,
            pending: BTreeMap::new(),
        }
    }

    /// Channel `channel` delivered `barrier`. Returns the barriers now complete, in order.
    pub fn on_barrier(&mut self, channel: usize, barrier: Barrier, ended: &[bool]) -> Vec<Barrier> {
        let entry = self
            .pending
            .entry(barrier.checkpoint_id)
            .or_insert_with(|| (barrier, vec![false; ended.len()]));
        entry.1[channel] = true;
        self.complete(ended)
    }

    /// A channel ended: it will deliver no more barriers, so it no longer holds any back.
    pub fn complete(&mut self, ended: &[bool]) -> Vec<Barrier> {
        let mut done = Vec::new();
        while let Some((&id, (barrier, delivered))) = self.pending.iter().next() {
            if delivered.iter().zip(ended).all(|(d, e)| *d || *e) {
                done.push(*barrier);
                self.pending.remove(&id);
            } else {
                break;
            }
        }
        done
    }

    /// Whether reading from `channel` must wait (it is ahead of the others in the oldest alignment).
    pub fn is_blocked(&self, channel: usize) -> bool {
        self.mode != Alignment::AtLeastOnce && self.pending.values().next().is_some_and(|(_, delivered)| delivered[channel])
    }

    /// Gives up aligning checkpoint `id` (it goes unaligned): which channels had delivered it.
    pub fn abandon(&mut self, id: u64) -> Option<Vec<bool>> {
        self.pending.remove(&id).map(|(_, delivered)| delivered)
    }

    /// Whether a savepoint older than checkpoint `id` is still aligning (it must complete first:
    /// savepoints are always aligned, and snapshots are taken in order).
    pub fn savepoint_before(&self, id: u64) -> bool {
        self.pending.range(..id).any(|(_, (b, _))| b.kind != BarrierKind::Checkpoint)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Instant;

    use super::*;

    /// Barriers of one trigger time, so that they compare equal.
    pub(crate) fn barrier(id: u64) -> Barrier {
        static TRIGGERED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        Barrier {
            checkpoint_id: id,
            kind: BarrierKind::Checkpoint,
            triggered: *TRIGGERED.get_or_init(Instant::now),
        }
    }

    #[test]
    fn aligner_blocks_until_every_open_channel_delivered() {
        let mut aligner = BarrierAligner::new(Alignment::Aligned);
        let ended = [false, false, false];
        assert!(aligner.on_barrier(0, barrier(1), &ended).is_empty());
        assert!(aligner.is_blocked(0));
        assert!(!aligner.is_blocked(1));
        assert!(aligner.on_barrier(2, barrier(1), &ended).is_empty());
        assert_eq!(aligner.on_barrier(1, barrier(1), &ended), vec![barrier(1)]);
        assert!(!aligner.is_blocked(0));
        // An ended channel counts as aligned.
        assert!(aligner.on_barrier(0, barrier(2), &[false, true, false]).is_empty());
        assert_eq!(aligner.complete(&[false, true, true]), vec![barrier(2)]);
    }

    #[test]
    fn at_least_once_never_blocks() {
        let mut aligner = BarrierAligner::new(Alignment::AtLeastOnce);
        assert!(aligner.on_barrier(0, barrier(1), &[false, false]).is_empty());
        assert!(!aligner.is_blocked(0));
        assert_eq!(aligner.on_barrier(1, barrier(1), &[false, false]), vec![barrier(1)]);
    }
}
