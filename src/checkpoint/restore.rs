//! Restoring a job from a checkpoint or savepoint, top to bottom: choose the restore point
//! (the newest complete checkpoint whose files pass their checksums, else the savepoint the job
//! was restored from), commit its staged rows again (phase two may not have happened before the
//! failure), and give every source subtask its position and every stateful operator subtask its
//! backend and metadata — at the checkpoint's parallelism file for file, at another one merged by
//! key group (canonical state) and by position (generators).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::commit::SinkCommitter;
use datafusion::arrow::record_batch::RecordBatch;

use crate::checkpoint::manifest::{CheckpointManifest, FileRef, OperatorState};
use crate::checkpoint::savepoint;
use crate::checkpoint::storage::CheckpointStorage;
use crate::connectors::SourceConnector;
use crate::connectors::file_split::FilePosition;
use crate::connectors::kafka::KafkaPosition;
use crate::connectors::rescale::GeneratorPosition;
use crate::error::{Error, Result};
use crate::graph::{JobGraph, OperatorNode, OperatorSpec, WindowKind};
use crate::operators::window_aggregate::WindowAggregateMeta;
use crate::operators::{WatermarkMeta, decode_meta, encode_meta};
use crate::partition::subtask_of_key_group;
use crate::runtime::SourcePosition;
use crate::runtime::metrics::RestoreProgress;
use crate::runtime::staging::StagedFile;
use crate::settings::{JobSettings, StateBackendKind};
use crate::state::StateBackend;

/// A checkpoint (or savepoint) a job resumes from, and the storage its files are in.
pub type RestorePoint = (CheckpointManifest, Arc<CheckpointStorage>);

/// The point the next attempt of a job starts from, once the caller removed incomplete checkpoints
/// (`CheckpointStorage::remove_incomplete`): the newest complete one that reads back intact is
/// taken (the ones skipped are returned as warnings), or `initial` (the savepoint a RESTORE started
/// the job from) while the job has none of its own. `progress` counts the files checked: all of a
/// checkpoint's up front, a savepoint's as they are used.
pub fn choose_restore_point(
    storage: &Arc<CheckpointStorage>,
    initial: Option<&RestorePoint>,
    graph: &JobGraph,
    progress: &RestoreProgress,
) -> Result<(Option<RestorePoint>, Vec<String>)> {
    let (latest, warnings) = storage.latest_complete(progress)?;
    let point = match latest {
        Some(latest) => Some((latest, storage.clone())),
        None => {
            if let Some((manifest, _)) = initial {
                progress.begin(files_to_restore(manifest, graph).map(|f| (f.path.as_str(), f.size)));
            }
            initial.cloned()
        }
    };
    Ok((point, warnings))
}

/// Commits the restore point's staged rows again: phase two may not have happened before the
/// failure. Its staged files count in the restore's progress.
pub fn commit_staged_again(point: &RestorePoint, committer: &SinkCommitter, progress: &RestoreProgress) -> Result<()> {
    let (manifest, files) = point;
    let staged = files.staged_rows(manifest)?;
    for file in manifest.sinks.iter().filter_map(|s| s.staged.as_ref()) {
        progress.file_restored(&file.path, file.size)?;
    }
    committer.commit(manifest.checkpoint_id, staged)
}

/// The files of a restore point that a job with this graph reads: its operators' state, the
/// records in flight to them, and every sink's staged rows.
fn files_to_restore<'a>(manifest: &'a CheckpointManifest, graph: &'a JobGraph) -> impl Iterator<Item = &'a FileRef> {
    let planned = |uid: &str| graph.operators.iter().any(|o| o.uid == uid);
    let state = manifest
        .operators
        .iter()
        .filter(move |o| planned(&o.uid))
        .flat_map(|o| o.files.iter());
    let in_flight = manifest.in_flight.iter().filter(move |s| planned(&s.uid)).map(|s| &s.file);
    let staged = manifest.sinks.iter().filter_map(|s| s.staged.as_ref());
    state.chain(in_flight).chain(staged)
}

/// A file of the restore point, fetched and checked, and counted in the restore's progress.
fn restored_file(storage: &CheckpointStorage, file: &FileRef, progress: &RestoreProgress) -> Result<PathBuf> {
    let path = storage.verified(file)?;
    progress.file_restored(&file.path, file.size)?;
    Ok(path)
}

/// Where a source subtask resumes. Kafka and file sources get every old subtask's partitions or
/// splits and keep their own. Generators take their own position at the checkpoint's parallelism
/// and combine every old subtask's at another (see `connectors::rescale`).
pub fn restored_position(
    manifest: &CheckpointManifest,
    uid: &str,
    connector: &str,
    subtask: usize,
    parallelism: usize,
) -> Result<Option<SourcePosition>> {
    let mut old: Vec<(usize, &SourcePosition)> = manifest
        .sources
        .iter()
        .filter(|s| s.uid == uid)
        .map(|s| (s.subtask, &s.position))
        .collect();
    old.sort_by_key(|(s, _)| *s);
    let own = old.iter().find(|(s, _)| *s == subtask).map(|(_, p)| (*p).clone());
    let connector = SourceConnector::parse(connector)?;
    if old.is_empty() {
        return Ok(own);
    }
    let positions: Vec<SourcePosition> = old.into_iter().map(|(_, p)| p.clone()).collect();
    match connector {
        // Every subtask gets every old partition's (split's) position and keeps those it owns now.
        SourceConnector::Kafka | SourceConnector::UpsertKafka => Ok(Some(KafkaPosition::merged(&positions)?)),
        SourceConnector::File => Ok(Some(FilePosition::merged(&positions)?)),
        SourceConnector::Nexmark | SourceConnector::Datagen if manifest.parallelism == parallelism => Ok(own),
        SourceConnector::Nexmark | SourceConnector::Datagen => {
            if positions.len() != manifest.parallelism {
                return Err(Error::internal(format!("the checkpoint lacks positions of some subtasks of {uid}")));
            }
            Ok(Some(GeneratorPosition::rescaled(&positions)?))
        }
    }
}

/// The in-flight records an unaligned checkpoint kept at the input of operator `uid`: per old
/// subtask (in subtask order), the batches in the order that subtask read them. A restore hands
/// them to the operator before any new input.
pub fn restored_in_flight(
    manifest: &CheckpointManifest,
    storage: &CheckpointStorage,
    uid: &str,
    progress: &RestoreProgress,
) -> Result<Vec<(usize, Vec<RecordBatch>)>> {
    let mut states: Vec<_> = manifest.in_flight.iter().filter(|s| s.uid == uid).collect();
    states.sort_by_key(|s| s.subtask);
    states
        .into_iter()
        .map(|s| {
            let file = StagedFile {
                path: restored_file(storage, &s.file, progress)?,
            };
            Ok((s.subtask, file.batches()?.collect::<Result<Vec<_>>>()?))
        })
        .collect()
}

/// The state backend of one operator subtask: empty, or restored from the checkpoint. Native
/// state comes back file for file (same subtask); canonical state is loaded by key group, so it
/// can come from any backend and any parallelism.
pub fn open_backend(
    node: &OperatorNode,
    subtask: usize,
    kind: StateBackendKind,
    dir: &Path,
    restore: Option<(&CheckpointManifest, &CheckpointStorage)>,
    progress: &RestoreProgress,
) -> Result<(Box<dyn StateBackend>, Option<serde_json::Value>)> {
    let Some((manifest, storage)) = restore else {
        return Ok((kind.open(dir)?, None));
    };
    let states: Vec<&OperatorState> = manifest.operators.iter().filter(|o| o.uid == node.uid).collect();
    if states.is_empty() {
        return Ok((kind.open(dir)?, None));
    }
    if states.iter().all(|s| s.backend == savepoint::CANONICAL) {
        let mut backend = kind.open(dir)?;
        let files = states
            .iter()
            .flat_map(|s| s.files.iter())
            .map(|f| restored_file(storage, f, progress))
            .collect::<Result<Vec<_>>>()?;
        let parallelism = node.parallelism;
        crate::state::canonical::load(&files, |kg| subtask_of_key_group(kg, parallelism) == subtask, backend.as_mut())?;
        let meta = if manifest.parallelism == parallelism {
            states.iter().find(|s| s.subtask == subtask).map(|s| s.meta.clone())
        } else {
            rescaled_meta(&node.spec, &states)?
        };
        return Ok((backend, meta));
    }
    let state = states.iter().find(|o| o.subtask == subtask).ok_or_else(|| {
        Error::invalid(format!(
            "the checkpoint has no state for {} subtask {subtask}; restore at parallelism {}",
            node.uid, manifest.parallelism
        ))
    })?;
    if state.backend != kind.name() {
        return Err(Error::invalid(format!(
            "the checkpoint holds '{}' state for {}, but the job uses state.backend.type '{}'",
            state.backend,
            node.uid,
            kind.name()
        )));
    }
    let files = state
        .files
        .iter()
        .map(|f| Ok((restored_file(storage, f, progress)?, f.name.clone())))
        .collect::<Result<Vec<_>>>()?;
    Ok((kind.restore(&files, dir)?, Some(state.meta.clone())))
}

/// Operator metadata for a subtask at a new parallelism, merged from the old subtasks'. Operators
/// without merge rules start afresh (a watermark assigner sees the restored rows' times again).
fn rescaled_meta(spec: &OperatorSpec, states: &[&OperatorState]) -> Result<Option<serde_json::Value>> {
    fn parts<T: serde::de::DeserializeOwned>(states: &[&OperatorState], operator: &str) -> Result<Vec<T>> {
        states.iter().map(|s| decode_meta(&s.meta, operator)).collect()
    }
    Ok(match spec {
        // Sessions rebuild their index from the backend, which holds this subtask's key groups.
        OperatorSpec::WindowAggregate(w) if matches!(w.window, WindowKind::Session { .. }) => {
            Some(encode_meta(&WatermarkMeta::merged(&parts(states, "session window")?))?)
        }
        OperatorSpec::WindowAggregate(_) => Some(encode_meta(&WindowAggregateMeta::merged(&parts(states, "window aggregate")?))?),
        // A join's TTL index is rebuilt from the backend.
        OperatorSpec::Join(_) => Some(serde_json::Value::Null),
        // The expiry index is rebuilt from the backend; the watermark is the lowest.
        OperatorSpec::IntervalJoin(_) | OperatorSpec::WindowJoin(_) => Some(encode_meta(&WatermarkMeta::merged(&parts(states, "join")?))?),
        // A window Top-N's index is rebuilt from the backend; the watermark is the lowest.
        OperatorSpec::TopN(_) => Some(encode_meta(&WatermarkMeta::merged(&parts(states, "Top-N")?))?),
        // An OVER aggregate's index of waiting rows is rebuilt from the backend.
        OperatorSpec::OverAggregate(_) => Some(encode_meta(&WatermarkMeta::merged(&parts(states, "OVER aggregate")?))?),
        _ => None,
    })
}

/// Operators whose state a checkpoint holds (sources and sinks carry positions and staged rows).
fn stateful_uids(graph: &JobGraph) -> Vec<String> {
    graph
        .operators
        .iter()
        .filter(|o| {
            matches!(
                o.spec,
                OperatorSpec::WindowAggregate(_)
                    | OperatorSpec::UpdatingAggregate(_)
                    | OperatorSpec::ChangelogNormalize { .. }
                    | OperatorSpec::TopN(_)
                    | OperatorSpec::OverAggregate(_)
                    | OperatorSpec::Join(_)
                    | OperatorSpec::IntervalJoin(_)
                    | OperatorSpec::WindowJoin(_)
                    | OperatorSpec::WatermarkAssigner(_)
            )
        })
        .map(|o| o.uid.clone())
        .collect()
}

/// How the state of a savepoint maps onto a new plan.
pub struct StateMatch {
    pub matched: Vec<(String, u64)>,
    pub dropped: Vec<(String, u64)>,
    pub new: Vec<String>,
}

pub fn match_state(manifest: &CheckpointManifest, graph: &JobGraph) -> StateMatch {
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for op in &manifest.operators {
        *sizes.entry(op.uid.clone()).or_default() += op.files.iter().map(|f| f.size).sum::<u64>();
    }
    let planned = stateful_uids(graph);
    StateMatch {
        matched: sizes
            .iter()
            .filter(|(uid, _)| planned.contains(uid))
            .map(|(u, s)| (u.clone(), *s))
            .collect(),
        dropped: sizes
            .iter()
            .filter(|(uid, _)| !planned.contains(uid))
            .map(|(u, s)| (u.clone(), *s))
            .collect(),
        new: planned.into_iter().filter(|uid| !sizes.contains_key(uid)).collect(),
    }
}

/// Why a restore cannot work, checked before anything runs.
pub fn restore_problem(
    manifest: &CheckpointManifest,
    graph: &JobGraph,
    settings: &JobSettings,
    allow_non_restored: bool,
) -> Option<String> {
    if let Some(orphan) = manifest.in_flight.iter().find(|s| !graph.operators.iter().any(|o| o.uid == s.uid)) {
        // Records in flight cannot be dropped like state: they are rows the sources will not
        // send again.
        return Some(format!(
            "checkpoint {} is unaligned and holds records in flight to operator '{}', which the new plan does not have; restore from a savepoint (savepoints are always aligned)",
            manifest.checkpoint_id, orphan.uid
        ));
    }
    let state = match_state(manifest, graph);
    if !state.dropped.is_empty() && !allow_non_restored {
        let names: Vec<&str> = state.dropped.iter().map(|(u, _)| u.as_str()).collect();
        return Some(format!(
            "the savepoint holds state for operator(s) {} that the new plan does not have; add ALLOW NON RESTORED STATE to drop it",
            names.join(", ")
        ));
    }
    let native = manifest.operators.iter().any(|o| o.backend != savepoint::CANONICAL);
    if native && manifest.parallelism != settings.parallelism {
        return Some(format!(
            "a native savepoint restores only at its own parallelism ({}); take a canonical savepoint to rescale to {}",
            manifest.parallelism, settings.parallelism
        ));
    }
    if let Some(op) = manifest
        .operators
        .iter()
        .find(|o| o.backend != savepoint::CANONICAL && o.backend != settings.state_backend.name())
    {
        return Some(format!(
            "a native savepoint of '{}' state restores only into state.backend.type '{}'; take a canonical savepoint to switch",
            op.backend, op.backend
        ));
    }
    None
}
