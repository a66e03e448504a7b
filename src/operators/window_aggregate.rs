//! `WindowAggregate`: keyed TUMBLE, HOP and CUMULATE windows. Rows are pre-aggregated per batch into
//! panes (slices, see `PaneLayout`: a window is a run of panes, so a hop costs one update per row,
//! not one per window), kept in memory while open, and spilled to the state backend as one
//! ingested file when the cache outgrows its limit. When the watermark reaches a window's end, the
//! window's panes are combined and one row per key is emitted (append-only); panes no later window
//! needs are dropped. A checkpoint references the cached panes and writes them on another thread.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::graph::{MAX_PARALLELISM, WindowAggregateSpec};
use crate::message::{EventTime, Message, event_time_nanos};
use crate::operators::accumulator::AccumulatorState;
use crate::operators::accumulator_bytes::{decode_states, encode_states};
use crate::operators::grouping::{GroupKey, Grouping};
use crate::operators::pane_layout::PaneLayout;
use crate::operators::{FIRE_STEP_ROWS, decode_meta, encode_meta};
use crate::runtime::metrics::LateRows;
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::key::encode_time;
use crate::state::pending_files::PendingFiles;
use crate::state::{StateBackend, StateWriteBatch};

/// The groups of one pane and their partial states. Shared (copy-on-write) with the snapshot writer
/// of a checkpoint in progress, which is how the cache is captured without copying it at the barrier.
type PaneGroups = HashMap<GroupKey, Vec<AccumulatorState>, ahash::RandomState>;

/// What a window aggregate's snapshot records beside its state files. The field names are the
/// checkpoint and savepoint format: renaming one breaks restoring older ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowAggregateMeta {
    /// Pane ends with partials spilled to the backend.
    pub spilled: BTreeSet<EventTime>,
    /// The next spill's sequence number (spills of one pane are told apart by it).
    pub spill_sequence: u32,
    pub watermark: EventTime,
}

impl WindowAggregateMeta {
    /// The metadata of a subtask restored from several old subtasks' state (rescaling): every
    /// spilled pane, a sequence past all of theirs, and the lowest watermark.
    pub fn merged(parts: &[WindowAggregateMeta]) -> Self {
        WindowAggregateMeta {
            spilled: parts.iter().flat_map(|p| p.spilled.iter().copied()).collect(),
            spill_sequence: parts.iter().map(|p| p.spill_sequence).max().unwrap_or(0) + 1,
            watermark: parts.iter().map(|p| p.watermark).min().unwrap_or(EventTime::MIN),
        }
    }
}

pub struct WindowAggregate {
    grouping: Grouping,
    layout: PaneLayout,
    time_column: usize,
    /// Subtracted from the time column: 1 where it holds the end of the row's window (attached
    /// windows), so the row falls into the window ending there.
    time_shift: i64,
    /// Open panes in memory: pane end → group → partial state.
    panes: BTreeMap<EventTime, Arc<PaneGroups>>,
    cached_groups: usize,
    cache_limit: usize,
    /// Groups of the last pane retired: new panes start with room for as many instead of growing by rehashing.
    pane_capacity: usize,
    /// Pane ends that have partial states in the backend.
    spilled: BTreeSet<EventTime>,
    spill_sequence: u32,
    backend: Box<dyn StateBackend>,
    watermark: EventTime,
    late_rows: LateRows,
    /// A watermark's firing that did not fit in one step (see `Operator::resume`).
    firing: Option<Firing>,
}

/// What is left of firing the windows a watermark closed: a day-long tumble over millions of keys
/// fires in steps of about `FIRE_STEP_ROWS` rows.
struct Firing {
    /// Windows still to fire, oldest first, and the key group the first one resumes at.
    due: std::collections::VecDeque<EventTime>,
    next_key_group: usize,
    watermark: EventTime,
    closed_at: std::time::Instant,
    emitted: bool,
}

impl WindowAggregate {
    pub fn new(
        spec: &WindowAggregateSpec,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
        backend: Box<dyn StateBackend>,
        cache_limit: usize,
        late_rows: LateRows,
    ) -> Result<Self> {
        Ok(WindowAggregate {
            grouping: Grouping::new(&spec.aggregate, &input_schema, output_schema, false)?,
            layout: PaneLayout::new(spec.window)?,
            time_column: spec.time_column,
            time_shift: spec.window.time_shift(),
            panes: BTreeMap::new(),
            cached_groups: 0,
            cache_limit: cache_limit.max(1),
            pane_capacity: 0,
            spilled: BTreeSet::new(),
            spill_sequence: 0,
            backend,
            watermark: EventTime::MIN,
            late_rows,
            firing: None,
        })
    }

    /// Writes every cached partial state to the backend (one ingested file) and empties the cache.
    fn spill(&mut self) -> Result<()> {
        let panes = std::mem::take(&mut self.panes);
        self.backend
            .ingest(spill_entries(&panes, self.spill_sequence).into_iter().collect())?;
        self.spilled.extend(panes.keys());
        self.spill_sequence += 1;
        self.cached_groups = 0;
        Ok(())
    }

    /// Partial states of spilled panes in one key group, read back from the backend.
    fn read_spilled(&self, key_group: u16, pane_ends: &[EventTime]) -> Result<Vec<(GroupKey, Vec<AccumulatorState>)>> {
        let mut out = Vec::new();
        for &pane_end in pane_ends {
            let (start, end) = pane_range(key_group, pane_end);
            for (key, value) in self.backend.scan(&start, &end)? {
                out.push((group_key_of_spilled(&key)?, decode_states(&value)?));
            }
        }
        Ok(out)
    }

    fn delete_spilled(&mut self, pane_end: EventTime) -> Result<()> {
        let mut batch = StateWriteBatch::default();
        for key_group in 0..MAX_PARALLELISM as u16 {
            let (start, end) = pane_range(key_group, pane_end);
            batch.delete_range(start, end);
        }
        self.backend.ingest(batch)
    }

    /// Emits the window ending at `window_end` from key group `from` on, then drops the panes no
    /// later window needs; stops early (returning the key group to resume at) once `budget` rows
    /// are out. Groups are merged one key group at a time, so a window whose state was mostly
    /// spilled (a day-long tumble) needs memory for one key group's share of it, not all of it;
    /// keys are borrowed from the panes until the output rows are built.
    fn fire(&mut self, window_end: EventTime, from: usize, budget: usize, out: &mut Vec<Message>) -> Result<Option<usize>> {
        let (first_pane, last_pane) = self.layout.panes_of_window(window_end);
        let spilled_panes: Vec<EventTime> = self.spilled.range(first_pane..=last_pane).copied().collect();
        let mut cached: Vec<Vec<(&GroupKey, &Vec<AccumulatorState>)>> = vec![Vec::new(); MAX_PARALLELISM];
        for (_, groups) in self.panes.range(first_pane..=last_pane) {
            for (key, states) in groups.iter() {
                cached[key_group_of(key)].push((key, states));
            }
        }
        let bounds = (self.layout.window_start(window_end), window_end);
        let mut rows = WindowRows::default();
        let mut emitted = 0;
        for (key_group, cached) in cached.iter().enumerate().skip(from) {
            if emitted >= budget {
                rows.emit(&self.grouping, bounds, out)?;
                return Ok(Some(key_group));
            }
            let spilled = if spilled_panes.is_empty() {
                Vec::new()
            } else {
                self.read_spilled(key_group as u16, &spilled_panes)?
            };
            let mut merged: HashMap<&GroupKey, Vec<AccumulatorState>, ahash::RandomState> =
                HashMap::with_capacity_and_hasher(cached.len() + spilled.len(), Default::default());
            for (key, states) in cached.iter().copied().chain(spilled.iter().map(|(k, v)| (k, v))) {
                match merged.get_mut(key) {
                    Some(existing) => self.grouping.merge_states(existing, states),
                    None => {
                        merged.insert(key, states.clone());
                    }
                }
            }
            emitted += merged.len();
            for (key, states) in merged {
                rows.keys.push(key.clone());
                rows.states.push(states);
            }
            if rows.keys.len() >= OUTPUT_BATCH_ROWS {
                rows.emit(&self.grouping, bounds, out)?;
            }
        }
        rows.emit(&self.grouping, bounds, out)?;
        drop(cached);
        let retired: Vec<EventTime> = self
            .panes
            .range(first_pane..=last_pane)
            .map(|(p, _)| *p)
            .filter(|p| self.layout.pane_retired_at(*p) <= window_end)
            .collect();
        for pane_end in retired {
            if let Some(groups) = self.panes.remove(&pane_end) {
                self.cached_groups -= groups.len();
                self.pane_capacity = groups.len().min(self.cache_limit);
            }
        }
        Ok(None)
    }
}

/// Output rows of a window firing, emitted in batches of about `OUTPUT_BATCH_ROWS`.
#[derive(Default)]
struct WindowRows {
    keys: Vec<GroupKey>,
    states: Vec<Vec<AccumulatorState>>,
}

const OUTPUT_BATCH_ROWS: usize = 8192;

impl WindowRows {
    fn emit(&mut self, grouping: &Grouping, (start, end): (EventTime, EventTime), out: &mut Vec<Message>) -> Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<&GroupKey> = self.keys.iter().collect();
        let states: Vec<&[AccumulatorState]> = self.states.iter().map(Vec::as_slice).collect();
        let starts = vec![start; keys.len()];
        let ends = vec![end; keys.len()];
        out.push(Message::Data(grouping.output(&keys, Some((&starts, &ends)), &states)?));
        self.keys.clear();
        self.states.clear();
        Ok(())
    }
}

fn key_group_of(key: &GroupKey) -> usize {
    usize::from(u16::from_be_bytes([key[0], key[1]]))
}

impl Operator for WindowAggregate {
    fn state_bytes(&self) -> Option<u64> {
        Some(self.backend.estimated_bytes())
    }

    fn process(&mut self, batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        let times = event_time_nanos(batch.column(self.time_column))?;
        let mut late = 0;
        let buckets: Vec<Option<i64>> = (0..batch.num_rows())
            .map(|r| {
                let time = times.value(r).saturating_sub(self.time_shift);
                if times.is_null(r) || self.layout.last_window_end(time) <= self.watermark {
                    late += 1;
                    None
                } else {
                    Some(self.layout.pane_end(time))
                }
            })
            .collect();
        self.late_rows.add(late);
        let pre = self.grouping.pre_aggregate(&batch, &buckets, None)?;
        for ((pane_end, key), states) in pre.groups.into_iter().zip(pre.states) {
            // Copies the pane once if a checkpoint's snapshot writer still holds it.
            let capacity = self.pane_capacity;
            let pane = Arc::make_mut(
                self.panes
                    .entry(pane_end)
                    .or_insert_with(|| Arc::new(PaneGroups::with_capacity_and_hasher(capacity, Default::default()))),
            );
            match pane.get_mut(&key) {
                Some(existing) => self.grouping.merge_states(existing, &states),
                None => {
                    pane.insert(key, states);
                    self.cached_groups += 1;
                }
            }
        }
        if self.cached_groups > self.cache_limit {
            self.spill()?;
        }
        Ok(())
    }

    /// The synchronous part: the backend's own checkpoint (hard links; spills never sit in a memtable)
    /// and a reference to every cached pane. A thread writes the cached panes as the snapshot's
    /// cache image while the task goes on; a pane written to meanwhile is copied first.
    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        if self.firing.is_some() {
            return Err(Error::internal("a window firing was still in progress at a barrier"));
        }
        let mut files = vec![self.backend.checkpoint(dir, None)?];
        let frozen: BTreeMap<EventTime, Arc<PaneGroups>> = self
            .panes
            .iter()
            .filter(|(_, g)| !g.is_empty())
            .map(|(p, g)| (*p, g.clone()))
            .collect();
        // On restore the image is spilled state like any other, under a sequence number of its own.
        let image_sequence = self.spill_sequence;
        self.spill_sequence += 1;
        let spilled: BTreeSet<EventTime> = self.spilled.iter().chain(frozen.keys()).copied().collect();
        if !frozen.is_empty() {
            files.push(PendingFiles::cache_image(dir, move || spill_entries(&frozen, image_sequence))?);
        }
        let meta = encode_meta(&WindowAggregateMeta {
            spilled,
            spill_sequence: self.spill_sequence,
            watermark: self.watermark,
        })?;
        Ok(Some(OperatorSnapshot {
            dir: dir.to_path_buf(),
            files,
            meta,
        }))
    }

    fn restore(&mut self, meta: &serde_json::Value) -> Result<()> {
        let meta: WindowAggregateMeta = decode_meta(meta, "window aggregate")?;
        self.spilled = meta.spilled;
        self.spill_sequence = meta.spill_sequence;
        self.watermark = meta.watermark;
        Ok(())
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        // Two watermarks in one step of the task: the first one's firing ends first.
        while self.resume(out)? {}
        let closed_at = std::time::Instant::now();
        let previous = std::mem::replace(&mut self.watermark, watermark);
        let mut due = BTreeSet::new();
        for pane_end in self.panes.keys().chain(self.spilled.iter()) {
            due.extend(
                self.layout
                    .windows_of_pane(*pane_end)
                    .filter(|end| *end > previous && *end <= watermark),
            );
        }
        self.firing = Some(Firing {
            due: due.into_iter().collect(),
            next_key_group: 0,
            watermark,
            closed_at,
            emitted: false,
        });
        self.resume(out).map(|_| ())
    }

    /// Fires the next step of the watermark's windows; after the last one, drops the spilled panes
    /// no window needs any more and forwards the watermark.
    fn resume(&mut self, out: &mut Vec<Message>) -> Result<bool> {
        let Some(mut firing) = self.firing.take() else { return Ok(false) };
        let emitted_before = out.len();
        while let Some(&window_end) = firing.due.front() {
            let rows_out: usize = out[emitted_before..]
                .iter()
                .map(|m| match m {
                    Message::Data(batch) => batch.num_rows(),
                    _ => 0,
                })
                .sum();
            let stopped = self.fire(window_end, firing.next_key_group, FIRE_STEP_ROWS.saturating_sub(rows_out), out)?;
            firing.emitted |= out.len() > emitted_before;
            match stopped {
                Some(key_group) => {
                    firing.next_key_group = key_group;
                    self.firing = Some(firing);
                    return Ok(true);
                }
                None => {
                    firing.due.pop_front();
                    firing.next_key_group = 0;
                }
            }
        }
        if firing.emitted {
            out.push(Message::LatencyMarker(firing.closed_at));
        }
        let watermark = firing.watermark;
        let retired: Vec<EventTime> = self
            .spilled
            .iter()
            .copied()
            .filter(|p| self.layout.pane_retired_at(*p) <= watermark)
            .collect();
        for pane_end in retired {
            self.delete_spilled(pane_end)?;
            self.spilled.remove(&pane_end);
        }
        out.push(Message::Watermark(watermark));
        Ok(false)
    }
}

/// The backend entries of cached panes, spilled under `sequence`.
fn spill_entries(panes: &BTreeMap<EventTime, Arc<PaneGroups>>, sequence: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let sequence = sequence.to_be_bytes();
    let mut entries = Vec::with_capacity(panes.values().map(|g| g.len()).sum());
    for (pane_end, groups) in panes {
        for (key, states) in groups.iter() {
            let mut value = Vec::new();
            encode_states(states, &mut value);
            entries.push((spilled_key(key, *pane_end, &sequence), value));
        }
    }
    entries
}

/// Backend key of a spilled partial state: key group, pane end, key columns, spill sequence (so a
/// spill never has to read what an earlier spill wrote).
fn spilled_key(group_key: &[u8], pane_end: EventTime, sequence: &[u8; 4]) -> Vec<u8> {
    let mut key = Vec::with_capacity(group_key.len() + 12);
    key.extend_from_slice(&group_key[..2]);
    key.extend_from_slice(&encode_time(pane_end));
    key.extend_from_slice(&group_key[2..]);
    key.extend_from_slice(sequence);
    key
}

fn group_key_of_spilled(key: &[u8]) -> Result<GroupKey> {
    if key.len() < 14 {
        return Err(Error::internal("corrupt window state key"));
    }
    let mut group = Vec::with_capacity(key.len() - 12);
    group.extend_from_slice(&key[..2]);
    group.extend_from_slice(&key[10..key.len() - 4]);
    Ok(group.into_boxed_slice())
}

/// The backend key range holding one pane's partial states of one key group.
fn pane_range(key_group: u16, pane_end: EventTime) -> (Vec<u8>, Vec<u8>) {
    let mut start = key_group.to_be_bytes().to_vec();
    start.extend_from_slice(&encode_time(pane_end));
    let mut end = key_group.to_be_bytes().to_vec();
    end.extend_from_slice(&encode_time(pane_end.saturating_add(1)));
    (start, end)
}
