//! `JobGraph` → tasks. Operators joined by forward edges are chained into one task; a hash edge
//! starts a new stage, connected to the previous one by parallelism × parallelism bounded channels.
//! When the job resumes from a checkpoint, every stateful operator gets its state back (matched by
//! uid and subtask), sources seek to their recorded positions, sinks learn what they committed,
//! and the records an unaligned checkpoint kept in flight are replayed first, routed by key.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::catalog::schema_of;
use crate::checkpoint::manifest::CheckpointManifest;
use crate::checkpoint::restore::{open_backend, restored_in_flight, restored_position};
use crate::checkpoint::storage::CheckpointStorage;
use crate::connectors::lookup::{SourceLookup, TableLookup};
use crate::connectors::table_store::{Delivery, TableStore};
use crate::connectors::{SinkSubtask, SourceConfig, SplitWatermarkSpec, open_sink};
use crate::data_dir::{FileRoots, JobDir, sink_staging_prefix};
use crate::error::{Error, Result};
use crate::graph::{
    Edge, EdgeKind, JobGraph, LookupJoinSpec, LookupSource, OperatorNode, OperatorSpec, WatermarkSpec, WatermarkStrategy, WindowKind,
};
use crate::job::JobSettings;
use crate::message::SourceControl;
use crate::operators::changelog_normalize::ChangelogNormalize;
use crate::operators::interval_join::IntervalJoin;
use crate::operators::join::StreamingJoin;
use crate::operators::lookup_join::LookupJoin;
use crate::operators::over_aggregate::OverAggregate;
use crate::operators::session_window::SessionWindowAggregate;
use crate::operators::state_ttl::StateTtl;
use crate::operators::stateless::{Filter, Project};
use crate::operators::top_n::TopN;
use crate::operators::updating_aggregate::UpdatingAggregate;
use crate::operators::watermark::WatermarkAssigner;
use crate::operators::window_aggregate::WindowAggregate;
use crate::operators::window_join::WindowJoin;
use crate::operators::window_table_function::WindowTableFunction;
use crate::runtime::barrier_aligner::Alignment;
use crate::runtime::exchange::{ChannelOutput, ChannelReceiver, ChannelSender, Routing, channel, partition};
use crate::runtime::gate::InputGate;
use crate::runtime::metrics::{JobMetrics, LateRows};
use crate::runtime::staging::FINAL_EPOCH;
use crate::runtime::staging::SinkStaging;
use crate::runtime::task::{Task, TaskCheckpointing, TaskEvent, TaskInput, TaskOutput};
use crate::runtime::{LookupTable, Operator, Source};
use crate::settings::CheckpointMode;
use crate::state::key::key_converter;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

/// Batches in flight per channel before the sender waits.
const CHANNEL_CAPACITY: usize = 16;

pub struct BuildContext<'a> {
    pub job: &'a str,
    pub settings: &'a JobSettings,
    /// `<data>/jobs/<job>`: state directories, local snapshots, fault-injection markers.
    pub job_dir: &'a JobDir,
    /// Where this attempt's tasks write local snapshots (a fresh directory per attempt).
    pub snapshot_dir: &'a Path,
    pub store: &'a Arc<TableStore>,
    /// Where file sources may read.
    pub file_roots: &'a FileRoots,
    pub metrics: &'a Arc<JobMetrics>,
    /// The checkpoint to resume from, and where its files are.
    pub restore: Option<(&'a CheckpointManifest, &'a CheckpointStorage)>,
    /// Where tasks report checkpoint acks.
    pub events: mpsc::UnboundedSender<TaskEvent>,
    /// Sinks stage rows until a checkpoint completes (periodic checkpointing is on); otherwise they
    /// write rows as they come.
    pub transactional_sinks: bool,
}

pub struct BuiltJob {
    pub tasks: Vec<Task>,
    /// One checkpoint trigger per source task.
    pub triggers: Vec<mpsc::UnboundedSender<SourceControl>>,
}

pub fn build_tasks(graph: &JobGraph, cx: &BuildContext) -> Result<BuiltJob> {
    let stages = stages(graph)?;
    // A new attempt: the figures of the last one's tasks are gone with them.
    cx.metrics.clear_tasks();
    let mut tasks = Vec::new();
    let mut triggers = Vec::new();
    let alignment = match &cx.settings.checkpoints {
        Some(c) if c.mode == CheckpointMode::AtLeastOnce => Alignment::AtLeastOnce,
        Some(c) if c.unaligned => Alignment::Unaligned {
            timeout: c.aligned_timeout,
        },
        _ => Alignment::Aligned,
    };
    if matches!(alignment, Alignment::Unaligned { .. }) && stages.iter().any(|s| s.inputs.len() > 1) {
        // Their in-flight records would have to remember their input.
        return Err(Error::unsupported(
            "unaligned checkpoints are not supported for a job with a JOIN yet",
        ));
    }
    // Receivers of each stage's inputs, filled by the stages feeding it (which come first):
    // by stage, input and subtask.
    let mut pending_inputs: Vec<Vec<Option<Vec<Vec<ChannelReceiver>>>>> =
        stages.iter().map(|stage| (0..stage.inputs.len()).map(|_| None).collect()).collect();
    for (s, stage) in stages.iter().enumerate() {
        let first = &graph.operators[stage.operators[0]];
        let parallelism = first.parallelism;
        let next_edge = stage.output.map(|e| &graph.edges[e]);
        // Channels to the next stage: senders[i][j] from subtask i here to subtask j there.
        let mut senders = match next_edge {
            Some(edge) => {
                let downstream = graph.operators[edge.to].parallelism;
                let mut senders: Vec<Vec<ChannelSender>> = (0..parallelism).map(|_| Vec::new()).collect();
                let mut receivers: Vec<Vec<ChannelReceiver>> = (0..downstream).map(|_| Vec::new()).collect();
                for sender_row in senders.iter_mut() {
                    for receiver_row in receivers.iter_mut() {
                        let (tx, rx) = channel(CHANNEL_CAPACITY);
                        sender_row.push(tx);
                        receiver_row.push(rx);
                    }
                }
                let target = stages
                    .iter()
                    .position(|t| t.operators[0] == edge.to)
                    .ok_or_else(|| Error::internal("an edge into the middle of a stage"))?;
                let slot = pending_inputs[target]
                    .get_mut(edge.input)
                    .ok_or_else(|| Error::internal("an edge into an input the operator lacks"))?;
                *slot = Some(receivers);
                Some(senders)
            }
            None => None,
        };
        // Per input, per subtask; then each subtask's channels, input after input.
        let mut inputs: Vec<Vec<Option<Vec<ChannelReceiver>>>> = std::mem::take(&mut pending_inputs[s])
            .into_iter()
            .map(|input| {
                input
                    .map(|per_subtask| per_subtask.into_iter().map(Some).collect())
                    .ok_or_else(|| Error::internal("a stage input without channels"))
            })
            .collect::<Result<_>>()?;
        // What an unaligned checkpoint restored from kept in flight to this stage, per subtask.
        let mut replays = match (cx.restore, stage.inputs.as_slice()) {
            (Some((manifest, storage)), [edge]) if !manifest.in_flight.is_empty() => route_in_flight(
                restored_in_flight(manifest, storage, &first.uid, &cx.metrics.restore)?,
                &routing(graph, &graph.edges[*edge])?,
                parallelism,
            )?,
            (Some((manifest, _)), [_, _, ..]) if manifest.in_flight.iter().any(|f| f.uid == first.uid) => {
                return Err(Error::internal(
                    "in-flight records of an operator with several inputs cannot be replayed",
                ));
            }
            _ => Vec::new(),
        };
        // A source's options are parsed once for all its subtasks.
        let source_config = match &first.spec {
            OperatorSpec::Source(spec) => Some(SourceConfig::parse(&spec.def, cx.file_roots)?),
            _ => None,
        };
        // A source that keeps watermarks per split (Kafka partitions) takes over the watermark
        // assigner chained after it, which then only forwards them (its uid and snapshot stay).
        let idle_timeout = source_config
            .as_ref()
            .and_then(|c| c.idle_timeout())
            .or(cx.settings.source_idle_timeout);
        let source_watermark = match (&source_config, stage.operators.get(1).map(|i| &graph.operators[*i].spec)) {
            (
                Some(config),
                Some(OperatorSpec::WatermarkAssigner(WatermarkSpec {
                    time_column,
                    strategy: WatermarkStrategy::BoundedOutOfOrderness { delay_nanos },
                })),
            ) if config.generates_watermarks() => Some(SplitWatermarkSpec {
                time_column: *time_column,
                delay_nanos: *delay_nanos,
                split_idle_timeout: idle_timeout,
            }),
            _ => None,
        };
        // Processing-time windows close by the wall clock: the source task ticks.
        let processing_time = matches!(
            stage.operators.get(1).map(|i| &graph.operators[*i].spec),
            Some(OperatorSpec::WatermarkAssigner(WatermarkSpec {
                strategy: WatermarkStrategy::ProcessingTime,
                ..
            }))
        );
        // A lookup join's bounded source is read once; its subtasks share the rows.
        let lookup_rows = load_lookup_sources(graph, stage, cx)?;
        for subtask in 0..parallelism {
            let task_index = tasks.len();
            let mut input_sides = Vec::new();
            let (input, chain_start, source_uid) = match &first.spec {
                OperatorSpec::Source(spec) => {
                    let marker = cx.job_dir.injected_failure_marker(&first.uid, subtask);
                    let config = source_config
                        .as_ref()
                        .ok_or_else(|| Error::internal("a source stage without its source"))?;
                    let mut source: Box<dyn Source> =
                        config.open(&spec.columns, subtask, parallelism, true, Some(marker), source_watermark)?;
                    if let Some((manifest, _)) = cx.restore
                        && let Some(position) = restored_position(manifest, &first.uid, &spec.def.connector, subtask, parallelism)?
                    {
                        source.seek(&position)?;
                    }
                    let (trigger, receiver) = mpsc::unbounded_channel();
                    triggers.push(trigger);
                    let trigger = Some(receiver);
                    let input = TaskInput::Source {
                        source,
                        triggers: trigger,
                        idle_timeout,
                        processing_time,
                    };
                    (input, 1, Some(first.uid.clone()))
                }
                _ => {
                    let mut receivers = Vec::new();
                    input_sides.clear();
                    for (side, input) in inputs.iter_mut().enumerate() {
                        let channels = input
                            .get_mut(subtask)
                            .and_then(Option::take)
                            .ok_or_else(|| Error::internal("stage without input channels"))?;
                        input_sides.extend(std::iter::repeat_n(side, channels.len()));
                        receivers.extend(channels);
                    }
                    if inputs.len() < 2 {
                        input_sides.clear();
                    }
                    let mut gate = InputGate::new(receivers, alignment);
                    if let Some(replay) = replays.get_mut(subtask) {
                        gate.replay_first(std::mem::take(replay));
                    }
                    (TaskInput::Gate(Box::new(gate)), 0, None)
                }
            };
            let name = format!("{}#{subtask}", first.uid);
            let task_metrics = cx.metrics.add_task(name.clone(), stage.operators.clone(), subtask);
            let late_rows = LateRows::new(cx.metrics.clone(), task_metrics.clone());
            let mut chain: Vec<Box<dyn Operator>> = Vec::new();
            let mut chain_uids = Vec::new();
            let mut output = None;
            let mut sink_uid = None;
            for (position, &index) in stage.operators.iter().enumerate().skip(chain_start) {
                let node = &graph.operators[index];
                let input_schemas: Vec<SchemaRef> = if position == 0 {
                    stage
                        .inputs
                        .iter()
                        .map(|e| graph.operators[graph.edges[*e].from].output_schema.clone())
                        .collect()
                } else {
                    vec![graph.operators[stage.operators[position - 1]].output_schema.clone()]
                };
                match &node.spec {
                    OperatorSpec::Sink(spec) => {
                        let delivery = match (cx.transactional_sinks, cx.store.committed_epoch(cx.job, &node.uid, subtask)?) {
                            (_, Some(FINAL_EPOCH)) => Delivery::Done,
                            (true, _) => Delivery::Staged(SinkStaging::new(sink_staging_prefix(cx.snapshot_dir, &node.uid, subtask))),
                            (false, _) => Delivery::Direct,
                        };
                        let at = SinkSubtask {
                            job: cx.job,
                            subtask,
                            roots: cx.file_roots,
                        };
                        output = Some(TaskOutput::Sink(open_sink(&spec.table, spec.mode, cx.store, delivery, at)?));
                        sink_uid = Some(node.uid.clone());
                    }
                    _ => {
                        chain.push(build_operator(
                            node,
                            subtask,
                            &input_schemas,
                            cx,
                            source_watermark.is_some(),
                            &lookup_rows,
                            &late_rows,
                        )?);
                        chain_uids.push(node.uid.clone());
                    }
                }
            }
            let (output, announcer) = match (output, senders.as_mut(), next_edge) {
                (Some(sink), _, _) => (sink, None),
                (None, Some(senders), Some(edge)) => {
                    let row = std::mem::take(&mut senders[subtask]);
                    let (channels, announcer) = ChannelOutput::new(row, routing(graph, edge)?);
                    let announcer = matches!(alignment, Alignment::Unaligned { .. }).then_some(announcer);
                    (TaskOutput::Channels(channels), announcer)
                }
                _ => return Err(Error::internal("a stage ends neither in a sink nor in channels")),
            };
            let input_uid = (!matches!(first.spec, OperatorSpec::Source(_))).then(|| first.uid.clone());
            let checkpointing = Some(TaskCheckpointing {
                task: task_index,
                subtask,
                chain_uids,
                source_uid,
                sink_uid,
                input_uid,
                local_dir: cx.snapshot_dir.to_path_buf(),
                events: cx.events.clone(),
            });
            tasks.push(Task {
                task_metrics,
                name,
                input,
                chain,
                output,
                metrics: cx.metrics.clone(),
                checkpointing,
                stopped_at_savepoint: false,
                positions_at_barriers: Vec::new(),
                announcer,
                stashed_controls: Default::default(),
                held_acks: Vec::new(),
                sink_rows_per_second: cx.settings.sink_rows_per_second,
                input_sides,
            });
        }
    }
    Ok(BuiltJob { tasks, triggers })
}

/// How rows cross `edge`: to the same subtask, or by key group.
fn routing(graph: &JobGraph, edge: &Edge) -> Result<Routing> {
    Ok(match &edge.kind {
        EdgeKind::Forward => Routing::Forward,
        EdgeKind::Hash(keys) => {
            let schema = &graph.operators[edge.from].output_schema;
            let types = keys.iter().map(|k| Ok(k.data_type(schema)?)).collect::<Result<Vec<_>>>()?;
            Routing::Hash {
                keys: keys.clone(),
                converter: key_converter(&types)?,
            }
        }
    })
}

/// Hands the in-flight records of every old subtask to the subtask that owns them now: by key
/// group across a hash edge (at any parallelism), else to the subtask of the same number (modulo).
fn route_in_flight(old: Vec<(usize, Vec<RecordBatch>)>, routing: &Routing, parallelism: usize) -> Result<Vec<Vec<RecordBatch>>> {
    let mut routed: Vec<Vec<RecordBatch>> = vec![Vec::new(); parallelism];
    for (subtask, batches) in old {
        for batch in batches {
            match routing {
                Routing::Forward => routed[subtask % parallelism].push(batch),
                Routing::Hash { keys, converter } => {
                    for (target, part) in partition(&batch, keys, converter, parallelism)?.into_iter().enumerate() {
                        routed[target].extend(part);
                    }
                }
            }
        }
    }
    Ok(routed)
}

/// A chain of operators that one task runs per subtask.
struct Stage {
    operators: Vec<usize>,
    /// The edges into the first operator, by input (a join has two).
    inputs: Vec<usize>,
    /// The edge out of the last operator; `None` for a sink.
    output: Option<usize>,
}

/// Splits the operators (in order: every operator after those feeding it) into stages: an operator
/// joins its input's stage when a forward edge is its only input and its input's only output;
/// every hash edge, and every operator with several inputs, starts a stage.
fn stages(graph: &JobGraph) -> Result<Vec<Stage>> {
    let mut stages: Vec<Stage> = Vec::new();
    for index in 0..graph.operators.len() {
        let mut incoming: Vec<usize> = (0..graph.edges.len()).filter(|e| graph.edges[*e].to == index).collect();
        incoming.sort_by_key(|e| graph.edges[*e].input);
        if incoming.iter().any(|e| graph.edges[*e].from >= index) {
            return Err(Error::internal("an operator before one feeding it"));
        }
        let chained = match incoming.as_slice() {
            [edge] => {
                let edge = &graph.edges[*edge];
                let fan_out = graph.edges.iter().filter(|e| e.from == edge.from).count();
                matches!(edge.kind, EdgeKind::Forward) && fan_out == 1
            }
            _ => false,
        };
        match stages
            .iter_mut()
            .find(|s| chained && s.operators.last() == Some(&graph.edges[incoming[0]].from))
        {
            Some(stage) => stage.operators.push(index),
            None => stages.push(Stage {
                operators: vec![index],
                inputs: incoming,
                output: None,
            }),
        }
    }
    for stage in &mut stages {
        let last = stage.operators.last().copied();
        let outgoing: Vec<usize> = (0..graph.edges.len()).filter(|e| Some(graph.edges[*e].from) == last).collect();
        stage.output = match outgoing.as_slice() {
            [] => None,
            [edge] => Some(*edge),
            _ => return Err(Error::internal("an operator feeding several others cannot run yet")),
        };
    }
    Ok(stages)
}

/// The rows of each lookup join's bounded source in `stage`, by the join's uid.
fn load_lookup_sources(graph: &JobGraph, stage: &Stage, cx: &BuildContext) -> Result<HashMap<String, SourceLookup>> {
    let mut loaded = HashMap::new();
    for node in stage.operators.iter().map(|i| &graph.operators[*i]) {
        if let OperatorSpec::LookupJoin(LookupJoinSpec {
            table: LookupSource::Source { def, columns, key_columns },
            ..
        }) = &node.spec
        {
            let schema = Arc::new(schema_of(&def.columns)?.project(columns)?);
            let config = SourceConfig::parse(def, cx.file_roots)?;
            loaded.insert(node.uid.clone(), SourceLookup::load(config, columns.clone(), schema, key_columns)?);
        }
    }
    Ok(loaded)
}

/// Operator `node`'s subtask; `inputs`: the schemas of its inputs, in input order;
/// `lookup_rows`: the stage's loaded lookup sources (`load_lookup_sources`).
fn build_operator(
    node: &OperatorNode,
    subtask: usize,
    inputs: &[SchemaRef],
    cx: &BuildContext,
    watermarks_from_source: bool,
    lookup_rows: &HashMap<String, SourceLookup>,
    late_rows: &LateRows,
) -> Result<Box<dyn Operator>> {
    let input_schema = inputs
        .first()
        .cloned()
        .ok_or_else(|| Error::internal("an operator without input"))?;
    let output_schema = node.output_schema.clone();
    let settings = cx.settings;
    let mut meta = None;
    // A stateful operator's backend (restored or empty) and its restored metadata.
    let keyed_state = || {
        let dir = cx.job_dir.state(&node.uid, subtask);
        open_backend(node, subtask, cx.settings.state_backend, &dir, cx.restore, &cx.metrics.restore)
    };
    let two_inputs = || match inputs {
        [left, right] => Ok([left.clone(), right.clone()]),
        _ => Err(Error::internal("a join without its two inputs")),
    };
    let mut op: Box<dyn Operator> = match &node.spec {
        OperatorSpec::WatermarkAssigner(spec) => {
            meta = cx
                .restore
                .and_then(|(m, _)| m.operators.iter().find(|o| o.uid == node.uid && o.subtask == subtask))
                .map(|o| o.meta.clone());
            Box::new(match spec.strategy {
                _ if watermarks_from_source => WatermarkAssigner::forwarding(spec.time_column),
                WatermarkStrategy::BoundedOutOfOrderness { delay_nanos } => WatermarkAssigner::new(spec.time_column, delay_nanos),
                WatermarkStrategy::ProcessingTime => WatermarkAssigner::processing_time(spec.time_column),
            })
        }
        OperatorSpec::Filter { predicate } => Box::new(Filter::new(predicate.clone())),
        OperatorSpec::Project { exprs } => Box::new(Project::new(exprs.clone(), output_schema)),
        OperatorSpec::WindowAggregate(spec) => {
            let (backend, restored) = keyed_state()?;
            meta = restored;
            let (cache, late_rows) = (settings.state_cache_entries, late_rows.clone());
            match spec.window {
                WindowKind::Session { .. } => Box::new(SessionWindowAggregate::new(
                    spec,
                    input_schema,
                    output_schema,
                    backend,
                    cache,
                    late_rows,
                )?),
                WindowKind::Tumble { .. } | WindowKind::Hop { .. } | WindowKind::Cumulate { .. } | WindowKind::Attached => {
                    Box::new(WindowAggregate::new(spec, input_schema, output_schema, backend, cache, late_rows)?)
                }
            }
        }
        OperatorSpec::UpdatingAggregate(spec) => {
            let (backend, restored) = keyed_state()?;
            meta = restored;
            Box::new(UpdatingAggregate::new(
                spec,
                input_schema,
                output_schema,
                backend,
                settings.state_cache_entries,
            )?)
        }
        OperatorSpec::ChangelogNormalize { key_columns } => {
            let (backend, restored) = keyed_state()?;
            meta = restored;
            Box::new(ChangelogNormalize::new(
                key_columns.clone(),
                input_schema,
                backend,
                settings.state_cache_entries,
            )?)
        }
        OperatorSpec::WindowTableFunction(spec) => Box::new(WindowTableFunction::new(spec, output_schema, late_rows.clone())?),
        OperatorSpec::TopN(spec) => {
            let (backend, restored) = keyed_state()?;
            meta = restored;
            Box::new(TopN::new(
                spec,
                input_schema,
                output_schema,
                backend,
                settings.state_cache_entries,
                late_rows.clone(),
            )?)
        }
        OperatorSpec::OverAggregate(spec) => {
            let (backend, restored) = keyed_state()?;
            meta = restored;
            Box::new(OverAggregate::new(
                spec,
                input_schema,
                output_schema,
                backend,
                settings.state_cache_entries,
                late_rows.clone(),
            )?)
        }
        OperatorSpec::Join(spec) => {
            let (backend, restored) = keyed_state()?;
            meta = restored;
            Box::new(StreamingJoin::new(
                spec,
                two_inputs()?,
                output_schema,
                backend,
                settings.state_cache_entries,
                settings.state_ttl.map(StateTtl::new),
            )?)
        }
        OperatorSpec::IntervalJoin(spec) => {
            let (backend, restored) = keyed_state()?;
            meta = restored;
            Box::new(IntervalJoin::new(
                spec,
                two_inputs()?,
                output_schema,
                backend,
                settings.state_cache_entries,
            )?)
        }
        OperatorSpec::WindowJoin(spec) => {
            let (backend, restored) = keyed_state()?;
            meta = restored;
            Box::new(WindowJoin::new(
                spec,
                two_inputs()?,
                output_schema,
                backend,
                settings.state_cache_entries,
                late_rows.clone(),
            )?)
        }
        OperatorSpec::LookupJoin(spec) => {
            let (table, table_schema): (Box<dyn LookupTable>, SchemaRef) = match &spec.table {
                LookupSource::Source { .. } => {
                    let rows = lookup_rows
                        .get(&node.uid)
                        .ok_or_else(|| Error::internal("a lookup join's source was not loaded"))?;
                    (Box::new(rows.clone()), rows.schema())
                }
                LookupSource::Table { def, columns, key_len } => {
                    let schema = Arc::new(schema_of(&def.columns)?.project(columns)?);
                    (
                        Box::new(TableLookup::new(cx.store.clone(), def.clone(), columns.clone(), *key_len)?),
                        schema,
                    )
                }
            };
            Box::new(LookupJoin::new(spec, input_schema, table_schema, output_schema, table)?)
        }
        OperatorSpec::Source(_) | OperatorSpec::Sink(_) => return Err(Error::internal("sources and sinks are not chained operators")),
    };
    if let Some(meta) = meta {
        op.restore(&meta)?;
    }
    Ok(op)
}
