//! `InputGate`: the merged input of a task with several upstream channels. It keeps one watermark
//! per channel and emits their minimum when it advances (channels that declared themselves idle do
//! not count; when all are idle the gate passes on the highest watermark and `Idle`), ends when
//! every channel has ended, and
//! aligns barriers (the `BarrierAligner` part): in exactly-once mode a channel that delivered
//! barrier n is blocked until every channel has, then barrier n is emitted once; at-least-once only
//! counts barriers and never blocks.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::task::Poll;

use tokio::sync::mpsc::Receiver;

use crate::message::{Barrier, EventTime, Message};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    /// Block channels that delivered the barrier (exactly-once checkpoints).
    Aligned,
    /// Do not block (at-least-once checkpoints).
    Unaligned,
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
        self.mode == Alignment::Aligned && self.pending.values().next().is_some_and(|(_, delivered)| delivered[channel])
    }
}

pub struct InputGate {
    channels: Vec<Receiver<Message>>,
    watermarks: Vec<EventTime>,
    /// Channels that sent `Idle` and nothing since.
    idle: Vec<bool>,
    ended: Vec<bool>,
    /// Whether the gate told its task that every channel is idle (and nothing arrived since).
    idle_emitted: bool,
    /// The last watermark emitted (minimum over channels).
    current_watermark: EventTime,
    /// Round-robin start, so a busy channel cannot starve the others.
    next: usize,
    end_emitted: bool,
    aligner: BarrierAligner,
    /// Messages ready to hand out (aligned barriers, watermarks that advanced meanwhile).
    ready: std::collections::VecDeque<Message>,
}

impl InputGate {
    pub fn new(channels: Vec<Receiver<Message>>, alignment: Alignment) -> Self {
        let n = channels.len();
        InputGate {
            channels,
            watermarks: vec![EventTime::MIN; n],
            idle: vec![false; n],
            ended: vec![false; n],
            idle_emitted: false,
            current_watermark: EventTime::MIN,
            next: 0,
            end_emitted: false,
            aligner: BarrierAligner::new(alignment),
            ready: Default::default(),
        }
    }

    /// The next message for the task: data as it arrives, a watermark when the minimum over the
    /// channels advances, a barrier once aligned, `End` once every channel ended. `None` if an
    /// upstream task vanished without `End` (the job is being torn down).
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Some(message);
            }
            if self.ended.iter().all(|e| *e) {
                return (!std::mem::replace(&mut self.end_emitted, true)).then_some(Message::End);
            }
            let (index, message) = self.recv_any().await?;
            if matches!(message, Message::Data(_) | Message::Watermark(_)) {
                // An idle channel is active again; it holds the watermark back from now on.
                self.idle[index] = false;
                self.idle_emitted = false;
            }
            match message {
                Message::Data(_) | Message::LatencyMarker(_) => return Some(message),
                Message::Barrier(barrier) => {
                    let done = self.aligner.on_barrier(index, barrier, &self.ended);
                    self.ready.extend(done.into_iter().map(Message::Barrier));
                }
                Message::Watermark(w) => {
                    if w > self.watermarks[index] {
                        self.watermarks[index] = w;
                    }
                    if let Some(advanced) = self.advance_watermark() {
                        return Some(Message::Watermark(advanced));
                    }
                }
                Message::Idle => {
                    self.idle[index] = true;
                    if let Some(advanced) = self.advance_watermark() {
                        return Some(Message::Watermark(advanced));
                    }
                    let all_idle = self.idle.iter().zip(&self.ended).all(|(idle, ended)| *idle || *ended);
                    if all_idle {
                        // No channel will advance now, so the highest watermark any open channel
                        // reached is passed on (Flink's StatusWatermarkValve does the same).
                        let highest = (0..self.watermarks.len())
                            .filter(|c| !self.ended[*c])
                            .map(|c| self.watermarks[c])
                            .max();
                        if let Some(highest) = highest.filter(|w| *w > self.current_watermark) {
                            self.current_watermark = highest;
                            self.ready.push_back(Message::Watermark(highest));
                        }
                        if !std::mem::replace(&mut self.idle_emitted, true) {
                            self.ready.push_back(Message::Idle);
                        }
                    }
                }
                Message::End => {
                    self.ended[index] = true;
                    // An ended channel no longer holds the watermark or barriers back.
                    self.watermarks[index] = EventTime::MAX;
                    let done = self.aligner.complete(&self.ended);
                    self.ready.extend(done.into_iter().map(Message::Barrier));
                    if !self.ended.iter().all(|e| *e)
                        && let Some(advanced) = self.advance_watermark()
                    {
                        self.ready.push_back(Message::Watermark(advanced));
                    }
                }
            }
        }
    }

    /// The minimum watermark over the active channels, if it advanced. With every channel idle
    /// nothing advances: the watermark waits for a channel to become active again.
    fn advance_watermark(&mut self) -> Option<EventTime> {
        let min = self
            .watermarks
            .iter()
            .zip(&self.idle)
            .filter(|(_, idle)| !**idle)
            .map(|(w, _)| *w)
            .min()?;
        (min > self.current_watermark).then(|| {
            self.current_watermark = min;
            min
        })
    }

    async fn recv_any(&mut self) -> Option<(usize, Message)> {
        poll_fn(|cx| {
            let n = self.channels.len();
            let mut open = 0;
            for offset in 0..n {
                let i = (self.next + offset) % n;
                if self.ended[i] || self.aligner.is_blocked(i) {
                    continue;
                }
                open += 1;
                match self.channels[i].poll_recv(cx) {
                    Poll::Ready(Some(message)) => {
                        self.next = (i + 1) % n;
                        return Poll::Ready(Some((i, message)));
                    }
                    // The sender was dropped without End: the upstream task failed.
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => {}
                }
            }
            if open == 0 { Poll::Ready(None) } else { Poll::Pending }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::BarrierKind;
    use tokio::sync::mpsc::channel;

    fn barrier(id: u64) -> Barrier {
        Barrier {
            checkpoint_id: id,
            kind: BarrierKind::Checkpoint,
        }
    }

    #[tokio::test]
    async fn emits_minimum_watermark_and_end_after_all_channels() {
        let (a_tx, a_rx) = channel(8);
        let (b_tx, b_rx) = channel(8);
        let mut gate = InputGate::new(vec![a_rx, b_rx], Alignment::Aligned);
        a_tx.send(Message::Watermark(10)).await.unwrap();
        b_tx.send(Message::Watermark(5)).await.unwrap();
        a_tx.send(Message::End).await.unwrap();
        b_tx.send(Message::Watermark(20)).await.unwrap();
        b_tx.send(Message::End).await.unwrap();
        let mut seen = Vec::new();
        while let Some(m) = gate.next().await {
            match m {
                Message::Watermark(w) => seen.push(w),
                Message::End => {
                    seen.push(-1);
                    break;
                }
                _ => {}
            }
        }
        // 5 once both channels reported, 20 when a ended (b at 20), then End.
        assert_eq!(seen, vec![5, 20, -1]);
    }

    #[tokio::test]
    async fn idle_channel_does_not_hold_the_watermark_back_until_it_is_active_again() {
        let (a_tx, a_rx) = channel(16);
        let (b_tx, b_rx) = channel(16);
        let mut gate = InputGate::new(vec![a_rx, b_rx], Alignment::Aligned);
        a_tx.send(Message::Watermark(10)).await.unwrap();
        b_tx.send(Message::Idle).await.unwrap();
        // b idle: a alone decides.
        a_tx.send(Message::Watermark(20)).await.unwrap();
        // b active again at 15: no advance until a and b are both past 20.
        b_tx.send(Message::Watermark(15)).await.unwrap();
        a_tx.send(Message::Watermark(30)).await.unwrap();
        b_tx.send(Message::Watermark(25)).await.unwrap();
        // 30 waits for b. Both idle: the highest watermark (a's 30) is passed on, then idle, once.
        a_tx.send(Message::Idle).await.unwrap();
        b_tx.send(Message::Idle).await.unwrap();
        a_tx.send(Message::End).await.unwrap();
        b_tx.send(Message::End).await.unwrap();
        let mut seen = Vec::new();
        while let Some(m) = gate.next().await {
            match m {
                Message::Watermark(w) => seen.push(w.to_string()),
                Message::Idle => seen.push("idle".into()),
                Message::End => break,
                _ => {}
            }
        }
        assert_eq!(seen, ["10", "20", "25", "30", "idle"]);
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
        let mut aligner = BarrierAligner::new(Alignment::Unaligned);
        assert!(aligner.on_barrier(0, barrier(1), &[false, false]).is_empty());
        assert!(!aligner.is_blocked(0));
        assert_eq!(aligner.on_barrier(1, barrier(1), &[false, false]), vec![barrier(1)]);
    }

    #[tokio::test]
    async fn data_behind_a_barrier_waits_for_alignment() {
        let (a_tx, a_rx) = channel(8);
        let (b_tx, b_rx) = channel(8);
        let mut gate = InputGate::new(vec![a_rx, b_rx], Alignment::Aligned);
        let batch =
            datafusion::arrow::record_batch::RecordBatch::new_empty(std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty()));
        a_tx.send(Message::Barrier(barrier(1))).await.unwrap();
        a_tx.send(Message::Data(batch.clone())).await.unwrap();
        b_tx.send(Message::Data(batch.clone())).await.unwrap();
        b_tx.send(Message::Barrier(barrier(1))).await.unwrap();
        // b's data (before its barrier) comes first, then the barrier, then a's data (after it).
        let kinds: Vec<&str> = [gate.next().await, gate.next().await, gate.next().await]
            .iter()
            .map(|m| match m {
                Some(Message::Data(_)) => "data",
                Some(Message::Barrier(_)) => "barrier",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, vec!["data", "barrier", "data"]);
    }
}
