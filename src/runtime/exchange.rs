//! `ChannelOutput`: the end of a task that feeds downstream subtasks over bounded channels (a full
//! channel makes the sender wait: backpressure). Data goes to one subtask (forward) or is split by
//! the key group of the hash keys; watermarks, barriers and end-of-stream go to every subtask.

use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::RowConverter;
use tokio::sync::mpsc::Sender;

use crate::error::{Error, Result};
use crate::graph::PhysicalExprRef;
use crate::message::Message;
use crate::state::key::{encode_keys, key_group, subtask_of_key_group};

pub enum Routing {
    Forward,
    Hash {
        keys: Vec<PhysicalExprRef>,
        converter: RowConverter,
    },
}

pub struct ChannelOutput {
    senders: Vec<Sender<Message>>,
    routing: Routing,
}

impl ChannelOutput {
    pub fn new(senders: Vec<Sender<Message>>, routing: Routing) -> Self {
        ChannelOutput { senders, routing }
    }

    pub async fn send(&mut self, message: Message) -> Result<()> {
        match message {
            Message::Data(batch) if batch.num_rows() == 0 => Ok(()),
            Message::Data(batch) => match &self.routing {
                Routing::Forward => send_to(&self.senders[0], Message::Data(batch)).await,
                Routing::Hash { keys, converter } => {
                    let parts = partition(&batch, keys, converter, self.senders.len())?;
                    for (subtask, part) in parts.into_iter().enumerate() {
                        if let Some(part) = part {
                            send_to(&self.senders[subtask], Message::Data(part)).await?;
                        }
                    }
                    Ok(())
                }
            },
            control => {
                for sender in &self.senders {
                    send_to(sender, control.clone()).await?;
                }
                Ok(())
            }
        }
    }
}

async fn send_to(sender: &Sender<Message>, message: Message) -> Result<()> {
    sender.send(message).await.map_err(|_| Error::internal("a downstream task stopped"))
}

/// Splits a batch into one part per downstream subtask by the key group of each row's key.
fn partition(
    batch: &RecordBatch,
    keys: &[PhysicalExprRef],
    converter: &RowConverter,
    parallelism: usize,
) -> Result<Vec<Option<RecordBatch>>> {
    if parallelism == 1 {
        return Ok(vec![Some(batch.clone())]);
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
