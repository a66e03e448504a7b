//! `InputGate`: the merged input of a task with several upstream channels. It keeps one watermark
//! per channel and emits their minimum when it advances (channels that declared themselves idle do
//! not count; when all are idle the gate passes on the highest watermark and `Idle`), ends when
//! every channel has ended, and handles barriers:
//! - aligned (exactly-once, `BarrierAligner`): a channel that delivered barrier n is
//!   blocked until every channel has, then barrier n is emitted once;
//! - unaligned (exactly-once, FLIP-76): the news of checkpoint n comes ahead of the queued records
//!   on a priority lane; once `aligned-checkpoint-timeout` has passed since the trigger (at once
//!   when it is zero) barrier n is emitted without waiting, and every record read from a channel
//!   after that and before the channel's own barrier n is recorded as the checkpoint's in-flight
//!   data (`ChannelState`), which a restore replays first. The gate reads those records ahead, so
//!   that the senders stuck behind a full channel can reach their barrier;
//! - at-least-once: barriers are only counted, never waited for.

use std::collections::{BTreeMap, VecDeque};
use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;

use crate::message::{Barrier, BarrierKind, EventTime, Message};
use crate::runtime::barrier_aligner::{Alignment, BarrierAligner};
use crate::runtime::exchange::ChannelReceiver;

/// The in-flight records of an unaligned checkpoint at one task: every batch read from a channel
/// after the task's snapshot and before that channel's barrier, in the order read.
#[derive(Debug)]
pub struct ChannelState {
    pub checkpoint_id: u64,
    pub batches: Vec<RecordBatch>,
}

/// How checkpoint n went at this gate: how long from the first news of it to the snapshot, and
/// whether it went unaligned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlignmentRecord {
    pub duration: Duration,
    pub unaligned: bool,
}

/// An unaligned checkpoint whose in-flight records are still being recorded.
#[derive(Debug)]
struct InFlightRecording {
    checkpoint_id: u64,
    /// Channels whose barrier has not come yet.
    pending: Vec<bool>,
    batches: Vec<RecordBatch>,
}

/// What the gate's wait ended with.
enum Received {
    Message(usize, Message),
    /// Something to look at again: news on a priority lane, a deadline, a consumed barrier.
    Wake,
}

pub struct InputGate {
    channels: Vec<ChannelReceiver>,
    watermarks: Vec<EventTime>,
    /// Channels that sent `Idle` and nothing since.
    idle: Vec<bool>,
    ended: Vec<bool>,
    /// Channels whose `End` was read (maybe ahead, not handed out yet): never polled again.
    end_read: Vec<bool>,
    /// Whether the gate told its task that every channel is idle (and nothing arrived since).
    idle_emitted: bool,
    /// The last watermark emitted (minimum over channels).
    current_watermark: EventTime,
    /// Round-robin start, so a busy channel cannot starve the others.
    next: usize,
    end_emitted: bool,
    mode: Alignment,
    aligner: BarrierAligner,
    /// Messages ready to hand out (aligned barriers, watermarks that advanced meanwhile).
    ready: VecDeque<Message>,
    /// Checkpoints heard of (a priority lane, or a barrier in a data lane) but not snapshotted
    /// here yet, with when they were first heard of.
    heard: BTreeMap<u64, (Barrier, Instant)>,
    /// News of unaligned checkpoints the task passes on downstream.
    to_announce: Vec<Barrier>,
    /// The newest checkpoint this task snapshotted.
    started_up_to: u64,
    recordings: Vec<InFlightRecording>,
    recorded: Vec<ChannelState>,
    /// Messages read ahead from channels with in-flight records, not handed out yet; each
    /// channel's in order.
    read_ahead: VecDeque<(usize, Message)>,
    /// In-flight records of the checkpoint the job was restored from: handed out before anything.
    replay: VecDeque<RecordBatch>,
    alignments: BTreeMap<u64, AlignmentRecord>,
    /// The channel the last data handed out came from (`None` for replayed in-flight records).
    last_data_channel: Option<usize>,
}

impl InputGate {
    pub fn new(channels: Vec<ChannelReceiver>, mode: Alignment) -> Self {
        let n = channels.len();
        InputGate {
            channels,
            watermarks: vec![EventTime::MIN; n],
            idle: vec![false; n],
            ended: vec![false; n],
            end_read: vec![false; n],
            idle_emitted: false,
            current_watermark: EventTime::MIN,
            next: 0,
            end_emitted: false,
            mode,
            aligner: BarrierAligner::new(mode),
            ready: Default::default(),
            heard: BTreeMap::new(),
            to_announce: Vec::new(),
            started_up_to: 0,
            recordings: Vec::new(),
            recorded: Vec::new(),
            read_ahead: VecDeque::new(),
            replay: VecDeque::new(),
            alignments: BTreeMap::new(),
            last_data_channel: None,
        }
    }

    /// The channel the data `next` handed out last came from: a task with several inputs (a
    /// join) tells them apart by it. `None` for records replayed from an unaligned checkpoint.
    pub fn last_data_channel(&self) -> Option<usize> {
        self.last_data_channel
    }

    /// Hands out `batches` (the restored in-flight records) before any input.
    pub fn replay_first(&mut self, batches: Vec<RecordBatch>) {
        self.replay.extend(batches);
    }

    /// The next message for the task: data as it arrives, a watermark when the minimum over the
    /// channels advances, a barrier once aligned (or once it goes unaligned), `End` once every
    /// channel ended. `None` if an upstream task vanished without `End` (the job is being torn
    /// down).
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Some(message);
            }
            if let Some(batch) = self.replay.pop_front() {
                self.last_data_channel = None;
                return Some(Message::Data(batch));
            }
            if self.ended.iter().all(|e| *e) {
                return (!std::mem::replace(&mut self.end_emitted, true)).then_some(Message::End);
            }
            let mut deadline = None;
            if let Alignment::Unaligned { timeout } = self.mode {
                self.poll_lanes();
                if let Some(barrier) = self.due_unaligned(timeout) {
                    self.start_unaligned(barrier);
                    continue;
                }
                self.read_ahead();
                // A deadline that passed is held up by an aligning savepoint: no timer for it.
                deadline = self.next_deadline(timeout).filter(|d| *d > Instant::now());
            }
            let (index, message) = match self.receive(deadline).await? {
                Received::Message(index, message) => (index, message),
                Received::Wake => continue,
            };
            if matches!(message, Message::Data(_) | Message::Watermark(_)) {
                // An idle channel is active again; it holds the watermark back from now on.
                self.idle[index] = false;
                self.idle_emitted = false;
            }
            match message {
                Message::Data(_) => {
                    self.last_data_channel = Some(index);
                    return Some(message);
                }
                Message::LatencyMarker(_) => return Some(message),
                Message::Barrier(barrier) => {
                    self.hear(barrier);
                    let done = self.aligner.on_barrier(index, barrier, &self.ended);
                    self.emit_aligned(done);
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
                    self.emit_aligned(done);
                    if !self.ended.iter().all(|e| *e)
                        && let Some(advanced) = self.advance_watermark()
                    {
                        self.ready.push_back(Message::Watermark(advanced));
                    }
                }
            }
        }
    }

    /// Waits for news of an unaligned checkpoint on a priority lane, for a task that cannot call
    /// `next` now (it is blocked sending into a full channel). Never resolves in other modes.
    pub async fn announcement(&mut self) {
        if !matches!(self.mode, Alignment::Unaligned { .. }) {
            return std::future::pending().await;
        }
        poll_fn(|cx| {
            for lane in 0..self.channels.len() {
                while let Poll::Ready(Some(barrier)) = self.channels[lane].priority.poll_recv(cx) {
                    self.hear(barrier);
                }
            }
            if self.to_announce.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// News of unaligned checkpoints for the task to pass on downstream.
    pub fn take_announcements(&mut self) -> Vec<Barrier> {
        std::mem::take(&mut self.to_announce)
    }

    /// The in-flight records of unaligned checkpoints whose every channel delivered its barrier.
    pub fn take_channel_states(&mut self) -> Vec<ChannelState> {
        std::mem::take(&mut self.recorded)
    }

    /// How checkpoint `id` went here (zero for a task that never heard of it: a source's).
    pub fn take_alignment(&mut self, id: u64) -> AlignmentRecord {
        let record = self.alignments.remove(&id).unwrap_or_default();
        self.alignments.retain(|n, _| *n > id);
        record
    }

    /// The first news of a checkpoint (its barrier, or its announcement on a priority lane).
    fn hear(&mut self, barrier: Barrier) {
        if barrier.checkpoint_id <= self.started_up_to || self.heard.contains_key(&barrier.checkpoint_id) {
            return;
        }
        self.heard.insert(barrier.checkpoint_id, (barrier, Instant::now()));
        if matches!(self.mode, Alignment::Unaligned { .. }) && barrier.kind == BarrierKind::Checkpoint {
            self.to_announce.push(barrier);
        }
    }

    fn poll_lanes(&mut self) {
        for lane in 0..self.channels.len() {
            while let Ok(barrier) = self.channels[lane].priority.try_recv() {
                self.hear(barrier);
            }
        }
    }

    /// The oldest checkpoint to start unaligned now, once it has waited `timeout` since its
    /// trigger (an older one was triggered earlier, so it goes first), unless a savepoint before
    /// it is still aligning.
    fn due_unaligned(&self, timeout: Duration) -> Option<Barrier> {
        let now = Instant::now();
        let due = self
            .heard
            .values()
            .map(|(b, _)| *b)
            .find(|b| b.kind == BarrierKind::Checkpoint && b.triggered + timeout <= now)?;
        (!self.aligner.savepoint_before(due.checkpoint_id)).then_some(due)
    }

    fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.heard
            .values()
            .filter(|(b, _)| b.kind == BarrierKind::Checkpoint)
            .map(|(b, _)| b.triggered + timeout)
            .min()
    }

    fn emit_aligned(&mut self, done: Vec<Barrier>) {
        for barrier in done {
            self.snapshot_taken(barrier.checkpoint_id, false);
            self.ready.push_back(Message::Barrier(barrier));
        }
    }

    fn snapshot_taken(&mut self, id: u64, unaligned: bool) {
        let duration = self.heard.get(&id).map(|(_, at)| at.elapsed()).unwrap_or_default();
        self.alignments.insert(id, AlignmentRecord { duration, unaligned });
        self.started_up_to = self.started_up_to.max(id);
        self.heard.retain(|n, _| *n > id);
    }

    /// Emits `barrier` now, ahead of what its channels still hold, and starts recording those
    /// channels' records until each delivers its own barrier.
    fn start_unaligned(&mut self, barrier: Barrier) {
        let id = barrier.checkpoint_id;
        // Channels that delivered the barrier while aligning hold nothing from before it.
        let delivered = self.aligner.abandon(id).unwrap_or_else(|| vec![false; self.channels.len()]);
        let pending: Vec<bool> = (0..self.channels.len()).map(|c| !delivered[c] && !self.end_read[c]).collect();
        let mut recording = InFlightRecording {
            checkpoint_id: id,
            pending,
            batches: Vec::new(),
        };
        // What was read ahead and not handed out yet comes after this snapshot.
        self.read_ahead.retain(|(channel, message)| {
            if !recording.pending[*channel] {
                return true;
            }
            match message {
                Message::Data(batch) => recording.batches.push(batch.clone()),
                Message::Barrier(b) if b.checkpoint_id == id => {
                    recording.pending[*channel] = false;
                    return false;
                }
                Message::End => recording.pending[*channel] = false,
                _ => {}
            }
            true
        });
        self.snapshot_taken(id, true);
        self.recordings.push(recording);
        self.collect_recorded();
        self.ready.push_back(Message::Barrier(barrier));
    }

    /// A message read from `channel`: recorded if it is in flight for an unaligned checkpoint.
    /// Returns it unless it was the barrier that ends the channel's in-flight records.
    fn on_read(&mut self, channel: usize, message: Message) -> Option<Message> {
        match &message {
            Message::Data(batch) => {
                for recording in self.recordings.iter_mut().filter(|r| r.pending[channel]) {
                    recording.batches.push(batch.clone());
                }
            }
            Message::Barrier(barrier) => {
                let id = barrier.checkpoint_id;
                if let Some(recording) = self.recordings.iter_mut().find(|r| r.checkpoint_id == id) {
                    recording.pending[channel] = false;
                    self.collect_recorded();
                    return None;
                }
                if id <= self.started_up_to {
                    // Of a checkpoint this task already snapshotted without waiting for it.
                    return None;
                }
            }
            Message::End => {
                self.end_read[channel] = true;
                for recording in &mut self.recordings {
                    recording.pending[channel] = false;
                }
                self.collect_recorded();
            }
            _ => {}
        }
        Some(message)
    }

    fn collect_recorded(&mut self) {
        let (done, recording): (Vec<_>, Vec<_>) = std::mem::take(&mut self.recordings)
            .into_iter()
            .partition(|r| r.pending.iter().all(|p| !p));
        self.recordings = recording;
        self.recorded.extend(done.into_iter().map(|r| ChannelState {
            checkpoint_id: r.checkpoint_id,
            batches: r.batches,
        }));
    }

    /// Reads every channel that still has in-flight records as far as it can without waiting, up
    /// to its barrier: the senders blocked on those channels can go on to their own barriers.
    fn read_ahead(&mut self) {
        for channel in 0..self.channels.len() {
            while !self.end_read[channel] && self.recordings.iter().any(|r| r.pending[channel]) {
                let Ok(message) = self.channels[channel].data.try_recv() else {
                    break;
                };
                let stop = matches!(message, Message::Barrier(_) | Message::End);
                match self.on_read(channel, message) {
                    Some(message) => {
                        self.read_ahead.push_back((channel, message));
                        if stop {
                            break;
                        }
                    }
                    None => continue,
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

    /// The next message read ahead, or from a channel (round robin, skipping blocked ones), or a
    /// wake-up: news on a priority lane, `deadline`. `None` if an upstream task vanished.
    async fn receive(&mut self, deadline: Option<Instant>) -> Option<Received> {
        if let Some((channel, message)) = self.read_ahead.pop_front() {
            return Some(Received::Message(channel, message));
        }
        let unaligned = matches!(self.mode, Alignment::Unaligned { .. });
        let mut sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into())));
        poll_fn(|cx| {
            if let Some(sleep) = &mut sleep
                && sleep.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Some(Received::Wake));
            }
            if unaligned {
                for lane in 0..self.channels.len() {
                    if let Poll::Ready(Some(barrier)) = self.channels[lane].priority.poll_recv(cx) {
                        self.hear(barrier);
                        return Poll::Ready(Some(Received::Wake));
                    }
                }
            }
            let n = self.channels.len();
            let mut open = 0;
            for offset in 0..n {
                let i = (self.next + offset) % n;
                if self.end_read[i] || self.aligner.is_blocked(i) {
                    continue;
                }
                open += 1;
                match self.channels[i].data.poll_recv(cx) {
                    Poll::Ready(Some(message)) => {
                        self.next = (i + 1) % n;
                        return Poll::Ready(Some(match self.on_read(i, message) {
                            Some(message) => Received::Message(i, message),
                            None => Received::Wake,
                        }));
                    }
                    // The sender was dropped without End: the upstream task failed.
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => {}
                }
            }
            if open == 0 && sleep.is_none() && !unaligned {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::barrier_aligner::tests::barrier;
    use crate::runtime::exchange::channel;
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    #[tokio::test]
    async fn emits_minimum_watermark_and_end_after_all_channels() {
        let (a_tx, a_rx) = channel(8);
        let (b_tx, b_rx) = channel(8);
        let mut gate = InputGate::new(vec![a_rx, b_rx], Alignment::Aligned);
        a_tx.data.send(Message::Watermark(10)).await.unwrap();
        b_tx.data.send(Message::Watermark(5)).await.unwrap();
        a_tx.data.send(Message::End).await.unwrap();
        b_tx.data.send(Message::Watermark(20)).await.unwrap();
        b_tx.data.send(Message::End).await.unwrap();
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
        a_tx.data.send(Message::Watermark(10)).await.unwrap();
        b_tx.data.send(Message::Idle).await.unwrap();
        // b idle: a alone decides.
        a_tx.data.send(Message::Watermark(20)).await.unwrap();
        // b active again at 15: no advance until a and b are both past 20.
        b_tx.data.send(Message::Watermark(15)).await.unwrap();
        a_tx.data.send(Message::Watermark(30)).await.unwrap();
        b_tx.data.send(Message::Watermark(25)).await.unwrap();
        // 30 waits for b. Both idle: the highest watermark (a's 30) is passed on, then idle, once.
        a_tx.data.send(Message::Idle).await.unwrap();
        b_tx.data.send(Message::Idle).await.unwrap();
        a_tx.data.send(Message::End).await.unwrap();
        b_tx.data.send(Message::End).await.unwrap();
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

    #[tokio::test]
    async fn data_behind_a_barrier_waits_for_alignment() {
        let (a_tx, a_rx) = channel(8);
        let (b_tx, b_rx) = channel(8);
        let mut gate = InputGate::new(vec![a_rx, b_rx], Alignment::Aligned);
        let batch =
            datafusion::arrow::record_batch::RecordBatch::new_empty(std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty()));
        a_tx.data.send(Message::Barrier(barrier(1))).await.unwrap();
        a_tx.data.send(Message::Data(batch.clone())).await.unwrap();
        b_tx.data.send(Message::Data(batch.clone())).await.unwrap();
        b_tx.data.send(Message::Barrier(barrier(1))).await.unwrap();
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

    fn data(value: i64) -> Message {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        Message::Data(RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![value]))]).unwrap())
    }

    fn value(batch: &RecordBatch) -> i64 {
        batch.column(0).as_primitive::<Int64Type>().value(0)
    }

    /// What the gate hands out until both channels ended: data values and `b<id>` for barriers.
    async fn drain(gate: &mut InputGate) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(message) = gate.next().await {
            match message {
                Message::Data(batch) => seen.push(value(&batch).to_string()),
                Message::Barrier(b) => seen.push(format!("b{}", b.checkpoint_id)),
                Message::End => break,
                _ => {}
            }
        }
        seen
    }

    fn recorded(gate: &mut InputGate) -> Vec<(u64, Vec<i64>)> {
        gate.take_channel_states()
            .into_iter()
            .map(|s| (s.checkpoint_id, s.batches.iter().map(value).collect()))
            .collect()
    }

    /// The announcement overtakes the queued records: the barrier comes first, and what each
    /// channel held before its own barrier is the checkpoint's in-flight data.
    #[tokio::test]
    async fn unaligned_barrier_overtakes_queued_records_and_records_them() {
        let (a_tx, a_rx) = channel(8);
        let (b_tx, b_rx) = channel(8);
        let mut gate = InputGate::new(vec![a_rx, b_rx], Alignment::Unaligned { timeout: Duration::ZERO });
        a_tx.data.send(data(1)).await.unwrap();
        a_tx.data.send(data(2)).await.unwrap();
        a_tx.priority.send(barrier(1)).unwrap();
        a_tx.data.send(Message::Barrier(barrier(1))).await.unwrap();
        a_tx.data.send(data(3)).await.unwrap();
        b_tx.data.send(data(10)).await.unwrap();
        assert_eq!(gate.next().await.map(|m| matches!(m, Message::Barrier(_))), Some(true));
        assert_eq!(gate.take_announcements(), vec![barrier(1)]);
        // b has not delivered its barrier yet: 11 is in flight too, 12 is not.
        b_tx.data.send(data(11)).await.unwrap();
        b_tx.data.send(Message::Barrier(barrier(1))).await.unwrap();
        b_tx.data.send(data(12)).await.unwrap();
        a_tx.data.send(Message::End).await.unwrap();
        b_tx.data.send(Message::End).await.unwrap();
        let mut seen = drain(&mut gate).await;
        seen.sort();
        assert_eq!(seen, ["1", "10", "11", "12", "2", "3"]);
        let mut states = recorded(&mut gate);
        states[0].1.sort();
        assert_eq!(states, vec![(1, vec![1, 2, 10, 11])]);
        assert!(gate.take_alignment(1).unaligned);
    }

    /// Within the timeout the checkpoint stays aligned: nothing is recorded.
    #[tokio::test]
    async fn aligned_until_the_timeout_passes() {
        let (a_tx, a_rx) = channel(8);
        let (b_tx, b_rx) = channel(8);
        let mut gate = InputGate::new(
            vec![a_rx, b_rx],
            Alignment::Unaligned {
                timeout: Duration::from_secs(600),
            },
        );
        a_tx.priority.send(barrier(1)).unwrap();
        a_tx.data.send(Message::Barrier(barrier(1))).await.unwrap();
        a_tx.data.send(data(2)).await.unwrap();
        b_tx.data.send(data(1)).await.unwrap();
        b_tx.data.send(Message::Barrier(barrier(1))).await.unwrap();
        a_tx.data.send(Message::End).await.unwrap();
        b_tx.data.send(Message::End).await.unwrap();
        assert_eq!(drain(&mut gate).await, ["1", "b1", "2"]);
        assert!(recorded(&mut gate).is_empty());
        assert!(!gate.take_alignment(1).unaligned);
    }

    /// Alignment that takes longer than the timeout goes unaligned: the channel that delivered its
    /// barrier is unblocked (nothing of it is in flight), the other one's records until its
    /// barrier are recorded.
    #[tokio::test]
    async fn alignment_times_out_into_an_unaligned_checkpoint() {
        let (a_tx, a_rx) = channel(8);
        let (b_tx, b_rx) = channel(8);
        let mut gate = InputGate::new(
            vec![a_rx, b_rx],
            Alignment::Unaligned {
                timeout: Duration::from_millis(50),
            },
        );
        a_tx.data.send(Message::Barrier(barrier(1))).await.unwrap();
        a_tx.data.send(data(5)).await.unwrap();
        assert_eq!(drain_until_barrier(&mut gate).await, Vec::<i64>::new());
        b_tx.data.send(data(1)).await.unwrap();
        b_tx.data.send(Message::Barrier(barrier(1))).await.unwrap();
        a_tx.data.send(Message::End).await.unwrap();
        b_tx.data.send(Message::End).await.unwrap();
        let mut seen = drain(&mut gate).await;
        seen.sort();
        assert_eq!(seen, ["1", "5"]);
        assert_eq!(recorded(&mut gate), vec![(1, vec![1])]);
        assert!(gate.take_alignment(1).unaligned);
    }

    async fn drain_until_barrier(gate: &mut InputGate) -> Vec<i64> {
        let mut values = Vec::new();
        loop {
            match gate.next().await {
                Some(Message::Data(batch)) => values.push(value(&batch)),
                Some(Message::Barrier(_)) | None => return values,
                _ => {}
            }
        }
    }

    /// Savepoints stay aligned in unaligned mode.
    #[tokio::test]
    async fn savepoints_stay_aligned() {
        let (a_tx, a_rx) = channel(8);
        let (b_tx, b_rx) = channel(8);
        let mut gate = InputGate::new(vec![a_rx, b_rx], Alignment::Unaligned { timeout: Duration::ZERO });
        let savepoint = Barrier {
            kind: BarrierKind::Savepoint,
            ..barrier(1)
        };
        a_tx.data.send(Message::Barrier(savepoint)).await.unwrap();
        a_tx.data.send(data(2)).await.unwrap();
        b_tx.data.send(data(1)).await.unwrap();
        b_tx.data.send(Message::Barrier(savepoint)).await.unwrap();
        a_tx.data.send(Message::End).await.unwrap();
        b_tx.data.send(Message::End).await.unwrap();
        assert_eq!(drain(&mut gate).await, ["1", "b1", "2"]);
        assert!(recorded(&mut gate).is_empty());
        assert!(gate.take_announcements().is_empty());
    }

    /// Restored in-flight records come before any input.
    #[tokio::test]
    async fn replays_restored_records_first() {
        let (a_tx, a_rx) = channel(8);
        let mut gate = InputGate::new(vec![a_rx], Alignment::Aligned);
        gate.replay_first(vec![
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)])),
                vec![Arc::new(Int64Array::from(vec![7]))],
            )
            .unwrap(),
        ]);
        a_tx.data.send(data(8)).await.unwrap();
        a_tx.data.send(Message::End).await.unwrap();
        assert_eq!(drain(&mut gate).await, ["7", "8"]);
    }
}
