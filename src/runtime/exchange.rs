//! `ChannelOutput`: the end of a task that feeds downstream subtasks over bounded channels (a full
//! channel makes the sender wait: backpressure). Data goes to one subtask (forward) or is split by
//! the key group of the hash keys; watermarks, barriers and end-of-stream go to every subtask.
//!
//! Every channel has two lanes: the data lane, bounded, carries everything in stream order; the
//! priority lane, unbounded and tiny, carries only the news that an unaligned checkpoint started
//! (`Announcer`), so that it overtakes the records queued in the data lane (FLIP-76). The barrier
//! itself still follows in the data lane, where it marks the end of the sender's in-flight records.

use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::RowConverter;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Receiver, Sender, UnboundedReceiver, UnboundedSender};

use crate::error::{Error, Result};
use crate::graph::PhysicalExprRef;
use crate::message::{Barrier, Message};
use crate::runtime::metrics::TaskMetrics;
use crate::state::key::{encode_keys, key_group, subtask_of_key_group};

pub enum Routing {
    Forward,
    Hash {
        keys: Vec<PhysicalExprRef>,
        converter: RowConverter,
    },
}

/// The sending end of a channel between two subtasks.
pub struct ChannelSender {
    pub data: Sender<Message>,
    pub priority: UnboundedSender<Barrier>,
}

/// The receiving end of a channel between two subtasks.
pub struct ChannelReceiver {
    pub data: Receiver<Message>,
    pub priority: UnboundedReceiver<Barrier>,
}

/// A channel whose data lane holds `capacity` messages.
pub fn channel(capacity: usize) -> (ChannelSender, ChannelReceiver) {
    let (data_tx, data_rx) = tokio::sync::mpsc::channel(capacity);
    let (priority_tx, priority_rx) = tokio::sync::mpsc::unbounded_channel();
    (
        ChannelSender {
            data: data_tx,
            priority: priority_tx,
        },
        ChannelReceiver {
            data: data_rx,
            priority: priority_rx,
        },
    )
}

pub struct ChannelOutput {
    senders: Vec<Sender<Message>>,
    routing: Routing,
}

/// Tells every downstream subtask, over the priority lanes, that an unaligned checkpoint started;
/// each checkpoint once. Kept apart from the `ChannelOutput` so that a task blocked sending into a
/// full data lane can still pass the news on.
pub struct Announcer {
    lanes: Vec<UnboundedSender<Barrier>>,
    announced_up_to: u64,
}

impl Announcer {
    pub fn announce(&mut self, barrier: Barrier) {
        if barrier.checkpoint_id <= self.announced_up_to {
            return;
        }
        self.announced_up_to = barrier.checkpoint_id;
        for lane in &self.lanes {
            // A downstream task that is gone is being torn down with the job.
            let _ = lane.send(barrier);
        }
    }
}

impl ChannelOutput {
    /// The output over `senders`, and the announcer of their priority lanes.
    pub fn new(senders: Vec<ChannelSender>, routing: Routing) -> (Self, Announcer) {
        let (data, lanes) = senders.into_iter().map(|s| (s.data, s.priority)).unzip();
        (ChannelOutput { senders: data, routing }, Announcer { lanes, announced_up_to: 0 })
    }

    /// Sends `message` on; time spent waiting for room in a full channel counts as the task's
    /// backpressure.
    pub async fn send(&mut self, message: Message, metrics: &TaskMetrics) -> Result<()> {
        match message {
            Message::Data(batch) if batch.num_rows() == 0 => Ok(()),
            Message::Data(batch) => match &self.routing {
                Routing::Forward => send_to(&self.senders[0], Message::Data(batch), metrics).await,
                Routing::Hash { keys, converter } => {
                    let parts = partition(&batch, keys, converter, self.senders.len())?;
                    for (subtask, part) in parts.into_iter().enumerate() {
                        if let Some(part) = part {
                            send_to(&self.senders[subtask], Message::Data(part), metrics).await?;
                        }
                    }
                    Ok(())
                }
            },
            control => {
                for sender in &self.senders {
                    send_to(sender, control.clone(), metrics).await?;
                }
                Ok(())
            }
        }
    }
}

async fn send_to(sender: &Sender<Message>, message: Message, metrics: &TaskMetrics) -> Result<()> {
    let stopped = || Error::internal("a downstream task stopped");
    match sender.try_send(message) {
        Ok(()) => Ok(()),
        Err(TrySendError::Closed(_)) => Err(stopped()),
        Err(TrySendError::Full(message)) => {
            let _waiting = metrics.backpressured_from_now();
            sender.send(message).await.map_err(|_| stopped())
        }
    }
}

/// Splits a batch into one part per downstream subtask by the key group of each row's key.
pub fn partition(
    batch: &RecordBatch,
    keys: &[PhysicalExprRef],
    converter: &RowConverter,
    parallelism: usize,
) -> Result<Vec<Option<RecordBatch>>> {
    if parallelism == 1 {
        return Ok(vec![Some(batch.clone())]);
    }
    // Keys of no column encode no rows: every row would be lost. Plans hash a constant instead.
    if keys.is_empty() {
        return Err(Error::internal("a hash exchange without key columns"));
    }
    let columns = keys
        .iter()
        .map(|k| Ok(k.evaluate(batch)?.into_array(batch.num_rows())?))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let rows = encode_keys(converter, &columns)?;
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); parallelism];
    for (i, row) in rows.iter().enumerate() {
        indices[subtask_of_key_group(key_group(row.as_ref()), parallelism)].push(i as u32);
    }
    indices
        .into_iter()
        .map(|idx| {
            if idx.is_empty() {
                Ok(None)
            } else if idx.len() == batch.num_rows() {
                Ok(Some(batch.clone()))
            } else {
                Ok(Some(take_record_batch(batch, &UInt32Array::from(idx))?))
            }
        })
        .collect()
}
