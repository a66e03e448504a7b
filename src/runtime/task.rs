//! The task loop: one tokio task per operator chain subtask. It pulls a message from its input (a
//! source or the input gate), pushes it through the chain of operators, and hands what comes out to
//! its output (channels to the next tasks, or a sink). A barrier makes every operator of the chain
//! snapshot its state; the task then reports its part of the checkpoint to the coordinator.
//!
//! With unaligned checkpoints a task passes the news of a checkpoint on downstream as soon as it
//! hears it, even while it is blocked sending into a full channel, and it reports a checkpoint
//! that went unaligned only once the gate has recorded the checkpoint's in-flight records.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::data_dir::operator_snapshot_dir;
use crate::error::{Error, Result};
use crate::graph::SubtaskId;
use crate::message::{Barrier, BarrierKind, EventTime, FINAL_WATERMARK, Message, SourceControl, processing_time_now};
use crate::runtime::exchange::{Announcer, ChannelOutput};
use crate::runtime::gate::{AlignmentRecord, InputGate};
use crate::runtime::metrics::{JobMetrics, TaskMetrics};
use crate::runtime::staging::StagedFile;
use crate::runtime::{Operator, OperatorSnapshot, Sink, Source, SourcePosition, dispatch_input};

/// Source positions kept for checkpoints that have not completed yet.
const MAX_PENDING_POSITIONS: usize = 64;

/// How long a task works before it lets the other tasks on its worker thread run. Tokio's own
/// budget is 128 ready messages per turn, which is seconds when each message is costly (a cold
/// aggregate after a restore reads every key from RocksDB): sessions, timers and the checkpoint
/// coordinator on the same worker would stall that long.
const MAX_WORK_WITHOUT_YIELD: Duration = Duration::from_millis(10);

pub enum TaskInput {
    Source {
        source: Box<dyn Source>,
        /// Checkpoint triggers from the coordinator. A trigger interrupts a source that waits for
        /// input (its `next_batch` is cancel-safe) and becomes a barrier at once.
        triggers: Option<UnboundedReceiver<SourceControl>>,
        /// `table.exec.source.idle-timeout`: after this long without a batch the task tells
        /// downstream that it is idle.
        idle_timeout: Option<Duration>,
        /// The job windows by processing time: every `PROCESSING_TIME_TICK` the task sends a
        /// watermark into its chain, whose assigner answers with the wall clock.
        processing_time: bool,
    },
    /// Boxed: a gate is much larger than a source's handle.
    Gate(Box<InputGate>),
}

pub enum TaskOutput {
    Channels(ChannelOutput),
    Sink(Box<dyn Sink>),
}

/// A task's part of checkpoint `checkpoint_id`.
#[derive(Debug)]
pub struct TaskAck {
    pub checkpoint_id: u64,
    pub task: usize,
    /// Snapshots of the chain's stateful operators.
    pub operators: Vec<(SubtaskId, OperatorSnapshot)>,
    /// Where the source was when it emitted the barrier.
    pub source: Option<(SubtaskId, SourcePosition)>,
    /// The file of the rows the sink staged since the previous barrier.
    pub sink: Option<(SubtaskId, Option<StagedFile>)>,
    /// Time spent in the task taking the snapshot (the synchronous part).
    pub sync_duration: Duration,
    /// How long the task's input took to align, and whether it went unaligned.
    pub alignment: AlignmentRecord,
    /// The in-flight records of an unaligned checkpoint (an Arrow IPC file), by the input's uid.
    pub in_flight: Option<(SubtaskId, StagedFile)>,
}

/// What tasks tell the checkpoint coordinator.
#[derive(Debug)]
pub enum TaskEvent {
    Ack(TaskAck),
    /// The task ended (its input is exhausted); a source reports its final position, which stands
    /// for it in every later checkpoint.
    /// A sink reports the rows it staged after the last barrier, committed when the job ends.
    Finished {
        task: usize,
        source: Option<(SubtaskId, SourcePosition)>,
        sink: Option<(SubtaskId, Option<StagedFile>)>,
    },
}

/// How a task takes part in checkpoints.
pub struct TaskCheckpointing {
    pub task: usize,
    pub subtask: usize,
    /// Uids of the chain's operators, in chain order; then the source's and the sink's.
    pub chain_uids: Vec<String>,
    pub source_uid: Option<String>,
    pub sink_uid: Option<String>,
    /// The uid of the operator reading the task's input channels (whose in-flight records an
    /// unaligned checkpoint keeps under it): the chain's first, or the sink.
    pub input_uid: Option<String>,
    /// Where snapshots are written before the coordinator uploads them.
    pub local_dir: PathBuf,
    pub events: UnboundedSender<TaskEvent>,
}

pub struct Task {
    /// `<first operator uid>#<subtask>`, for errors.
    pub name: String,
    pub input: TaskInput,
    pub chain: Vec<Box<dyn Operator>>,
    pub output: TaskOutput,
    pub metrics: Arc<JobMetrics>,
    /// This task's own figures (records, watermark, backpressure).
    pub task_metrics: Arc<TaskMetrics>,
    pub checkpointing: Option<TaskCheckpointing>,
    /// A source task that passed a stop-with-savepoint barrier.
    pub stopped_at_savepoint: bool,
    /// A source task's positions at the barriers of checkpoints not completed yet.
    pub positions_at_barriers: Vec<(u64, SourcePosition)>,
    /// Passes the news of unaligned checkpoints on downstream (unaligned checkpoints only).
    pub announcer: Option<Announcer>,
    /// The coordinator's words a source task took while it was blocked sending; handled first.
    pub stashed_controls: VecDeque<SourceControl>,
    /// Acks of unaligned checkpoints waiting for their in-flight records.
    pub held_acks: Vec<TaskAck>,
    /// `debug.sink.rows-per-second`: a sink that writes no faster (a slow sink, for tests and
    /// benchmarks of backpressure).
    pub sink_rows_per_second: Option<f64>,
    /// A task with several inputs (a join): the input each of the gate's channels belongs to.
    /// Empty: every channel is input 0.
    pub input_sides: Vec<usize>,
}

/// What a source task waits for.
enum SourceEvent {
    Control(SourceControl),
    Batch(Option<RecordBatch>),
    IdleTimeout,
    ProcessingTimeTick,
}

/// How often a source task of a processing-time job moves its watermark to the wall clock
/// (Flink's default `pipeline.auto-watermark-interval`).
const PROCESSING_TIME_TICK: Duration = Duration::from_millis(200);

/// How often a task samples its operators' state size for `/metrics` (RocksDB answers from
/// figures it keeps, so this costs microseconds).
const STATE_SIZE_SAMPLE: Duration = Duration::from_secs(1);

impl Task {
    pub async fn run(mut self) -> Result<()> {
        let name = self.name.clone();
        self.run_loop().await.map_err(|e| e.context(format!("task {name}")))
    }

    async fn run_loop(&mut self) -> Result<()> {
        // A source task's idleness: when it last produced a batch, and whether it said it is idle.
        let mut last_batch = tokio::time::Instant::now();
        let mut idle = false;
        let mut next_tick = tokio::time::Instant::now() + PROCESSING_TIME_TICK;
        let mut last_yield = Instant::now();
        let mut last_state_sample: Option<Instant> = None;
        loop {
            if last_state_sample.is_none_or(|t| t.elapsed() >= STATE_SIZE_SAMPLE) {
                let sizes = self.chain.iter().filter_map(|op| op.state_bytes());
                self.task_metrics.set_state_bytes(sizes.reduce(|a, b| a + b));
                last_state_sample = Some(Instant::now());
            }
            if last_yield.elapsed() >= MAX_WORK_WITHOUT_YIELD {
                tokio::task::yield_now().await;
                last_yield = Instant::now();
            }
            let mut inputs = Vec::new();
            let mut position_at_barrier = None;
            // Which input of the first operator the data came from.
            let mut side = 0;
            match &mut self.input {
                // After a stop-with-savepoint barrier the source emits nothing; the job is stopped next.
                TaskInput::Source { .. } if self.stopped_at_savepoint => std::future::pending::<()>().await,
                TaskInput::Source {
                    source,
                    triggers,
                    idle_timeout,
                    processing_time,
                } => {
                    let idle_at = match idle {
                        true => None,
                        false if source.has_no_input() => Some(tokio::time::Instant::now()),
                        false => idle_timeout.map(|t| last_batch + t),
                    };
                    let event = match self.stashed_controls.pop_front() {
                        Some(control) => SourceEvent::Control(control),
                        None => tokio::select! {
                            // Barriers first: a fast source must not delay checkpoints either.
                            biased;
                            control = next_control(triggers) => SourceEvent::Control(control),
                            batch = source.next_batch() => SourceEvent::Batch(batch?),
                            () = sleep_until(idle_at) => SourceEvent::IdleTimeout,
                            () = sleep_until(processing_time.then_some(next_tick)) => SourceEvent::ProcessingTimeTick,
                        },
                    };
                    match event {
                        SourceEvent::Control(control) => match control {
                            SourceControl::Trigger(barrier) => {
                                self.stopped_at_savepoint = barrier.kind == BarrierKind::StopSavepoint;
                                let position = source.position();
                                self.metrics.add_records_skipped(source.take_skipped_records());
                                // Bounded while checkpoints keep failing: only the newest matter.
                                if self.positions_at_barriers.len() >= MAX_PENDING_POSITIONS {
                                    self.positions_at_barriers.remove(0);
                                }
                                self.positions_at_barriers.push((barrier.checkpoint_id, position.clone()));
                                position_at_barrier = Some(position);
                                inputs.push(Message::Barrier(barrier));
                            }
                            SourceControl::Completed(id) => {
                                // Checkpoints complete in order: older pending ones were dropped.
                                self.positions_at_barriers.retain(|(n, _)| *n >= id);
                                if let Some((n, position)) = self.positions_at_barriers.first()
                                    && *n == id
                                {
                                    source.checkpoint_completed(position);
                                    self.positions_at_barriers.remove(0);
                                }
                            }
                        },
                        SourceEvent::Batch(batch) => match batch {
                            // An empty batch only wakes the task (a source with nothing to read), or
                            // carries a watermark (a split of the source turned idle).
                            Some(batch) if batch.num_rows() == 0 => {
                                inputs.extend(source.take_watermarks().into_iter().map(|(_, w)| Message::Watermark(w)));
                            }
                            Some(batch) => {
                                self.metrics.add_rows_in(batch.num_rows());
                                self.task_metrics.add_records_in(batch.num_rows());
                                self.metrics.add_records_skipped(source.take_skipped_records());
                                inputs.extend(with_watermarks(batch, source.take_watermarks()));
                                last_batch = tokio::time::Instant::now();
                                idle = false;
                            }
                            // Bounded input is exhausted: the final watermark fires every window.
                            None => inputs.extend([Message::Watermark(FINAL_WATERMARK), Message::End]),
                        },
                        SourceEvent::IdleTimeout => {
                            idle = true;
                            inputs.push(Message::Idle);
                        }
                        SourceEvent::ProcessingTimeTick => {
                            next_tick = tokio::time::Instant::now() + PROCESSING_TIME_TICK;
                            inputs.push(Message::Watermark(processing_time_now()));
                        }
                    }
                    // Read from what the source already knows (Kafka: cached log ends): no request.
                    self.task_metrics.set_source_backlog(source.backlog());
                }
                TaskInput::Gate(gate) => {
                    let message = gate.next().await;
                    if let Some(channel) = gate.last_data_channel() {
                        side = self.input_sides.get(channel).copied().unwrap_or(0);
                    }
                    for barrier in gate.take_announcements() {
                        if let Some(announcer) = &mut self.announcer {
                            announcer.announce(barrier);
                        }
                    }
                    match message {
                        Some(message) => {
                            if let Message::Data(batch) = &message {
                                self.task_metrics.add_records_in(batch.num_rows());
                            }
                            inputs.push(message)
                        }
                        None => return Err(Error::internal("an upstream task stopped without finishing")),
                    }
                }
            }
            let mut ended = false;
            for message in inputs {
                if let Message::Barrier(barrier) = message {
                    self.checkpoint(barrier, position_at_barrier.take())?;
                    self.deliver(Message::Barrier(barrier)).await?;
                    continue;
                }
                for out in push_through(&mut self.chain, side, vec![message])? {
                    ended |= matches!(out, Message::End);
                    self.deliver(out).await?;
                }
                // Work an operator left for later so that its output could be delivered first.
                for first in 0..self.chain.len() {
                    loop {
                        let mut resumed = Vec::new();
                        let more = self.chain[first].resume(&mut resumed)?;
                        for out in push_through(&mut self.chain[first + 1..], 0, resumed)? {
                            ended |= matches!(out, Message::End);
                            self.deliver(out).await?;
                        }
                        if !more {
                            break;
                        }
                    }
                }
            }
            self.send_held_acks()?;
            if ended {
                return self.report_finished();
            }
        }
    }

    /// Snapshots every operator of the chain (all input before the barrier has passed all of them)
    /// and the sink's staged rows, and acks the coordinator.
    fn checkpoint(&mut self, barrier: Barrier, position: Option<SourcePosition>) -> Result<()> {
        let Some(cp) = &self.checkpointing else { return Ok(()) };
        let started = Instant::now();
        let mut operators = Vec::new();
        for (op, uid) in self.chain.iter_mut().zip(&cp.chain_uids) {
            let dir = operator_snapshot_dir(&cp.local_dir, barrier.checkpoint_id, uid, cp.subtask);
            if let Some(snapshot) = op.snapshot(&dir)? {
                operators.push((SubtaskId::new(uid.clone(), cp.subtask), snapshot));
            }
        }
        let sink = match (&mut self.output, &cp.sink_uid) {
            (TaskOutput::Sink(sink), Some(uid)) => Some((SubtaskId::new(uid.clone(), cp.subtask), sink.prepare_commit()?)),
            _ => None,
        };
        let source = match (position, &cp.source_uid) {
            (Some(position), Some(uid)) => Some((SubtaskId::new(uid.clone(), cp.subtask), position)),
            _ => None,
        };
        let alignment = match &mut self.input {
            TaskInput::Gate(gate) => gate.take_alignment(barrier.checkpoint_id),
            TaskInput::Source { .. } => AlignmentRecord::default(),
        };
        let ack = TaskAck {
            checkpoint_id: barrier.checkpoint_id,
            task: cp.task,
            operators,
            source,
            sink,
            sync_duration: started.elapsed(),
            alignment,
            in_flight: None,
        };
        if alignment.unaligned {
            self.held_acks.push(ack);
        } else {
            // The coordinator may be gone when the job is being torn down; nothing to do then.
            let _ = cp.events.send(TaskEvent::Ack(ack));
        }
        Ok(())
    }

    /// Sends the acks of unaligned checkpoints whose in-flight records the gate has all, with
    /// those records written to a file.
    fn send_held_acks(&mut self) -> Result<()> {
        let (TaskInput::Gate(gate), Some(cp)) = (&mut self.input, &self.checkpointing) else {
            return Ok(());
        };
        for state in gate.take_channel_states() {
            let Some(i) = self.held_acks.iter().position(|a| a.checkpoint_id == state.checkpoint_id) else {
                continue;
            };
            let mut ack = self.held_acks.remove(i);
            if let Some(uid) = &cp.input_uid {
                let dir = operator_snapshot_dir(&cp.local_dir, state.checkpoint_id, &format!("{uid}-in-flight"), cp.subtask);
                ack.in_flight = StagedFile::write(&dir.join("in-flight.arrow"), &state.batches)?
                    .map(|file| (SubtaskId::new(uid.clone(), cp.subtask), file));
            }
            let _ = cp.events.send(TaskEvent::Ack(ack));
        }
        Ok(())
    }

    fn report_finished(&mut self) -> Result<()> {
        // Every channel ended: every in-flight recording is complete.
        self.send_held_acks()?;
        let Some(cp) = &self.checkpointing else { return Ok(()) };
        let source = match (&self.input, &cp.source_uid) {
            (TaskInput::Source { source, .. }, Some(uid)) => Some((SubtaskId::new(uid.clone(), cp.subtask), source.position())),
            _ => None,
        };
        let sink = match (&mut self.output, &cp.sink_uid) {
            (TaskOutput::Sink(sink), Some(uid)) => Some((SubtaskId::new(uid.clone(), cp.subtask), sink.prepare_commit()?)),
            _ => None,
        };
        let _ = cp.events.send(TaskEvent::Finished {
            task: cp.task,
            source,
            sink,
        });
        Ok(())
    }

    async fn deliver(&mut self, message: Message) -> Result<()> {
        match &message {
            Message::Data(batch) => self.task_metrics.add_records_out(batch.num_rows()),
            Message::Watermark(watermark) => self.task_metrics.set_watermark(*watermark),
            _ => {}
        }
        match &mut self.output {
            TaskOutput::Channels(channels) => {
                let Some(announcer) = &mut self.announcer else {
                    return channels.send(message, &self.task_metrics).await;
                };
                if let Message::Barrier(barrier) = &message
                    && barrier.kind == BarrierKind::Checkpoint
                {
                    // Ahead of the records still queued in front of the barrier.
                    announcer.announce(*barrier);
                }
                // A full channel must not keep the news of a checkpoint from passing.
                let send = channels.send(message, &self.task_metrics);
                tokio::pin!(send);
                loop {
                    tokio::select! {
                        biased;
                        sent = &mut send => return sent,
                        heard = listen(&mut self.input, &mut self.stashed_controls) => {
                            for barrier in heard {
                                announcer.announce(barrier);
                            }
                        }
                    }
                }
            }
            TaskOutput::Sink(sink) => match message {
                Message::Data(batch) => {
                    let rows = batch.num_rows();
                    self.metrics.add_rows_out(rows);
                    sink.write(batch)?;
                    if let Some(rate) = self.sink_rows_per_second {
                        tokio::time::sleep(Duration::from_secs_f64(rows as f64 / rate)).await;
                    }
                    Ok(())
                }
                Message::LatencyMarker(closed_at) => {
                    self.metrics.window_latency.record(closed_at.elapsed());
                    Ok(())
                }
                Message::Watermark(_) | Message::Barrier(_) | Message::Idle => Ok(()),
                Message::End => sink.finish(),
            },
        }
    }
}

/// The coordinator's next word; never resolves without a trigger channel or once the coordinator
/// is gone (the job is being torn down then).
async fn next_control(triggers: &mut Option<UnboundedReceiver<SourceControl>>) -> SourceControl {
    if let Some(triggers) = triggers
        && let Some(control) = triggers.recv().await
    {
        return control;
    }
    std::future::pending().await
}

/// News of unaligned checkpoints for a task blocked sending: the coordinator's trigger (kept for
/// the source's loop) or an announcement on the gate's priority lanes.
async fn listen(input: &mut TaskInput, stashed: &mut VecDeque<SourceControl>) -> Vec<Barrier> {
    match input {
        TaskInput::Source { triggers, .. } => {
            let control = next_control(triggers).await;
            stashed.push_back(control);
            match control {
                SourceControl::Trigger(barrier) if barrier.kind == BarrierKind::Checkpoint => vec![barrier],
                _ => Vec::new(),
            }
        }
        TaskInput::Gate(gate) => {
            gate.announcement().await;
            gate.take_announcements()
        }
    }
}

/// Sleeps until `deadline`; never resolves without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A source's batch with the watermarks it placed in it: each (row, watermark) goes right before
/// that row.
fn with_watermarks(batch: RecordBatch, watermarks: Vec<(usize, EventTime)>) -> Vec<Message> {
    if watermarks.is_empty() {
        return vec![Message::Data(batch)];
    }
    let mut messages = Vec::with_capacity(2 * watermarks.len() + 1);
    let mut start = 0;
    for (row, watermark) in watermarks {
        let row = row.min(batch.num_rows());
        if row > start {
            messages.push(Message::Data(batch.slice(start, row - start)));
            start = row;
        }
        messages.push(Message::Watermark(watermark));
    }
    if start < batch.num_rows() {
        messages.push(Message::Data(batch.slice(start, batch.num_rows() - start)));
    }
    messages
}

/// Runs messages that arrived on input `side` of the chain's first operator through every
/// operator of the chain in turn.
fn push_through(chain: &mut [Box<dyn Operator>], side: usize, messages: Vec<Message>) -> Result<Vec<Message>> {
    let mut current = messages;
    for (position, op) in chain.iter_mut().enumerate() {
        let input = if position == 0 { side } else { 0 };
        let mut next = Vec::with_capacity(current.len());
        for m in current {
            dispatch_input(op.as_mut(), input, m, &mut next)?;
        }
        current = next;
    }
    Ok(current)
}
