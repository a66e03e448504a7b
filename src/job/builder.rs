//! `JobGraph` → tasks. Operators joined by forward edges are chained into one task; a hash edge
//! starts a new stage, connected to the previous one by parallelism × parallelism bounded channels.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::connectors::table_store::TableStore;
use crate::connectors::{open_sink, open_source};
use crate::error::{Error, Result};
use crate::graph::{EdgeKind, JobGraph, OperatorNode, OperatorSpec, WindowKind};
use crate::job::JobSettings;
use crate::message::Message;
use crate::operators::session_window::SessionWindowAggregate;
use crate::operators::stateless::{Filter, Project};
use crate::operators::updating_aggregate::UpdatingAggregate;
use crate::operators::watermark::WatermarkAssigner;
use crate::operators::window_aggregate::WindowAggregate;
use crate::runtime::exchange::{ChannelOutput, Routing};
use crate::runtime::gate::InputGate;
use crate::runtime::metrics::JobMetrics;
use crate::runtime::task::{Task, TaskInput, TaskOutput};
use crate::runtime::{Operator, Source};
use crate::state::key::key_converter;

/// Batches in flight per channel before the sender waits.
const CHANNEL_CAPACITY: usize = 16;

pub fn build_tasks(
    graph: &JobGraph,
    settings: &JobSettings,
    state_dir: &Path,
    store: &Arc<TableStore>,
    metrics: &Arc<JobMetrics>,
) -> Result<Vec<Task>> {
    let stages = stages(graph)?;
    let mut tasks = Vec::new();
    // Receivers for the stage being built, per subtask, filled by the previous stage.
    let mut pending_inputs: Option<Vec<Vec<mpsc::Receiver<Message>>>> = None;
    for (s, stage) in stages.iter().enumerate() {
        let first = &graph.operators[stage[0]];
        let parallelism = first.parallelism;
        let next_edge = stages.get(s + 1).and_then(|next| graph.edges.iter().find(|e| e.to == next[0]));
        // Channels to the next stage: senders[i][j] from subtask i here to subtask j there.
        let (mut senders, next_inputs) = match next_edge {
            Some(edge) => {
                let downstream = graph.operators[edge.to].parallelism;
                let mut senders: Vec<Vec<mpsc::Sender<Message>>> = (0..parallelism).map(|_| Vec::new()).collect();
                let mut receivers: Vec<Vec<mpsc::Receiver<Message>>> = (0..downstream).map(|_| Vec::new()).collect();
                for sender_row in senders.iter_mut() {
                    for receiver_row in receivers.iter_mut() {
                        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
                        sender_row.push(tx);
                        receiver_row.push(rx);
                    }
                }
                (Some(senders), Some(receivers))
            }
            None => (None, None),
        };
        let mut inputs = pending_inputs.take().map(|v| v.into_iter().map(Some).collect::<Vec<_>>());
        for subtask in 0..parallelism {
            let (input, chain_start) = match &first.spec {
                OperatorSpec::Source(spec) => {
                    let marker = state_dir.join(format!("injected-failure-{}-{subtask}", first.uid));
                    let source: Box<dyn Source> = open_source(&spec.def, &spec.columns, subtask, parallelism, true, Some(marker))?;
                    (TaskInput::Source(source), 1)
                }
                _ => {
                    let receivers = inputs
                        .as_mut()
                        .and_then(|i| i.get_mut(subtask))
                        .and_then(Option::take)
                        .ok_or_else(|| Error::internal("stage without input channels"))?;
                    (TaskInput::Gate(InputGate::new(receivers)), 0)
                }
            };
            let mut chain: Vec<Box<dyn Operator>> = Vec::new();
            let mut output = None;
            for (position, &index) in stage.iter().enumerate().skip(chain_start) {
                let node = &graph.operators[index];
                let input_schema = if position == 0 {
                    let edge = graph
                        .edges
                        .iter()
                        .find(|e| e.to == index)
                        .ok_or_else(|| Error::internal("operator without input"))?;
                    graph.operators[edge.from].output_schema.clone()
                } else {
                    graph.operators[stage[position - 1]].output_schema.clone()
                };
                match &node.spec {
                    OperatorSpec::Sink(spec) => output = Some(TaskOutput::Sink(open_sink(&spec.table, spec.mode, store)?)),
                    _ => chain.push(build_operator(
                        node,
                        input_schema,
                        settings,
                        &state_dir.join(format!("{}-{subtask}", node.uid)),
                        metrics,
                    )?),
                }
            }
            let output = match (output, senders.as_mut(), next_edge) {
                (Some(sink), _, _) => sink,
                (None, Some(senders), Some(edge)) => {
                    let row = std::mem::take(&mut senders[subtask]);
                    let routing = match &edge.kind {
                        EdgeKind::Forward => Routing::Forward,
                        EdgeKind::Hash(keys) => {
                            let schema = &graph.operators[edge.from].output_schema;
                            let types = keys.iter().map(|k| Ok(k.data_type(schema)?)).collect::<Result<Vec<_>>>()?;
                            Routing::Hash {
                                keys: keys.clone(),
                                converter: key_converter(&types)?,
                            }
                        }
                    };
                    TaskOutput::Channels(ChannelOutput::new(row, routing))
                }
                _ => {
                    return Err(Error::internal("a stage ends neither in a sink nor in channels"));
                }
            };
            tasks.push(Task {
                name: format!("{}#{subtask}", first.uid),
                input,
                chain,
                output,
                metrics: metrics.clone(),
            });
        }
        pending_inputs = next_inputs;
    }
    Ok(tasks)
}

/// Splits the operators (a pipeline, in order) into stages at every hash edge.
fn stages(graph: &JobGraph) -> Result<Vec<Vec<usize>>> {
    let mut stages: Vec<Vec<usize>> = Vec::new();
    for index in 0..graph.operators.len() {
        let incoming: Vec<_> = graph.edges.iter().filter(|e| e.to == index).collect();
        match incoming.as_slice() {
            [] if index == 0 => stages.push(vec![index]),
            [edge] if edge.from + 1 == index => match edge.kind {
                EdgeKind::Forward => stages
                    .last_mut()
                    .ok_or_else(|| Error::internal("forward edge into the first operator"))?
                    .push(index),
                EdgeKind::Hash(_) => stages.push(vec![index]),
            },
            _ => return Err(Error::internal("only pipeline job graphs can run yet")),
        }
    }
    Ok(stages)
}

fn build_operator(
    node: &OperatorNode,
    input_schema: datafusion::arrow::datatypes::SchemaRef,
    settings: &JobSettings,
    state_dir: &Path,
    metrics: &Arc<JobMetrics>,
) -> Result<Box<dyn Operator>> {
    let output_schema = node.output_schema.clone();
    Ok(match &node.spec {
        OperatorSpec::WatermarkAssigner(spec) => Box::new(WatermarkAssigner::new(spec.time_column, spec.delay_nanos)),
        OperatorSpec::Filter { predicate } => Box::new(Filter::new(predicate.clone())),
        OperatorSpec::Project { exprs } => Box::new(Project::new(exprs.clone(), output_schema)),
        OperatorSpec::WindowAggregate(spec) => {
            let (backend, cache, metrics) = (
                settings.state_backend.open(state_dir)?,
                settings.state_cache_entries,
                metrics.clone(),
            );
            match spec.window {
                WindowKind::Session { .. } => Box::new(SessionWindowAggregate::new(
                    spec,
                    input_schema,
                    output_schema,
                    backend,
                    cache,
                    metrics,
                )?),
                WindowKind::Tumble { .. } | WindowKind::Hop { .. } => {
                    Box::new(WindowAggregate::new(spec, input_schema, output_schema, backend, cache, metrics)?)
                }
            }
        }
        OperatorSpec::UpdatingAggregate(spec) => Box::new(UpdatingAggregate::new(
            spec,
            input_schema,
            output_schema,
            settings.state_backend.open(state_dir)?,
            settings.state_cache_entries,
        )?),
        OperatorSpec::Source(_) | OperatorSpec::Sink(_) => {
            return Err(Error::internal("sources and sinks are not chained operators"));
        }
    })
}
