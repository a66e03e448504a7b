//! The task loop: one tokio task per operator chain subtask. It pulls a message from its input (a
//! source or the input gate), pushes it through the chain of operators, and hands what comes out to
//! its output (channels to the next tasks, or a sink).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::message::{FINAL_WATERMARK, Message};
use crate::runtime::exchange::ChannelOutput;
use crate::runtime::gate::InputGate;
use crate::runtime::metrics::JobMetrics;
use crate::runtime::{Operator, Sink, Source, dispatch};

pub enum TaskInput {
    Source(Box<dyn Source>),
    Gate(InputGate),
}

pub enum TaskOutput {
    Channels(ChannelOutput),
    Sink(Box<dyn Sink>),
}

pub struct Task {
    /// `<first operator uid>#<subtask>`, for errors.
    pub name: String,
    pub input: TaskInput,
    pub chain: Vec<Box<dyn Operator>>,
    pub output: TaskOutput,
    pub metrics: Arc<JobMetrics>,
}

impl Task {
    pub async fn run(mut self) -> Result<()> {
        let name = self.name.clone();
        self.run_loop().await.map_err(|e| e.context(format!("task {name}")))
    }

    async fn run_loop(&mut self) -> Result<()> {
        loop {
            let inputs = match &mut self.input {
                TaskInput::Source(source) => match source.next_batch().await? {
                    Some(batch) => {
                        self.metrics.add_rows_in(batch.num_rows());
                        vec![Message::Data(batch)]
                    }
                    // Bounded input is exhausted: the final watermark fires every window.
                    None => vec![Message::Watermark(FINAL_WATERMARK), Message::End],
                },
                TaskInput::Gate(gate) => match gate.next().await {
                    Some(message) => vec![message],
                    None => {
                        return Err(Error::internal("an upstream task stopped without finishing"));
                    }
                },
            };
            let mut ended = false;
            for message in inputs {
                for out in push_through(&mut self.chain, message)? {
                    ended |= matches!(out, Message::End);
                    self.deliver(out).await?;
                }
            }
            if ended {
                return Ok(());
            }
        }
    }

    async fn deliver(&mut self, message: Message) -> Result<()> {
        match &mut self.output {
            TaskOutput::Channels(channels) => channels.send(message).await,
            TaskOutput::Sink(sink) => match message {
                Message::Data(batch) => {
                    self.metrics.add_rows_out(batch.num_rows());
                    sink.write(batch)
                }
                Message::Watermark(_) => Ok(()),
                Message::Barrier(barrier) => sink.on_barrier(barrier),
                Message::End => sink.finish(),
            },
        }
    }
}

/// Runs one message through every operator of the chain in turn.
fn push_through(chain: &mut [Box<dyn Operator>], message: Message) -> Result<Vec<Message>> {
    let mut current = vec![message];
    for op in chain.iter_mut() {
        let mut next = Vec::with_capacity(current.len());
        for m in current {
            dispatch(op.as_mut(), m, &mut next)?;
        }
        current = next;
    }
    Ok(current)
}
