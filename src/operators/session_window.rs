//! `SessionWindowAggregate`: session windows. A row at `t` opens the session `[t, t + gap)`;
//! sessions of one session key that touch (rows at most `gap` apart, as in Flink) merge. A session
//! is emitted when the watermark reaches its end: one row per group key it holds. The session key
//! is the group key (Weir's SESSION, Flink's legacy group window) or the columns of Flink's SESSION
//! TVF PARTITION BY (a constant without one: sessions over all rows), in which case a session keeps
//! a partial state per group key. Rows are pre-aggregated per (group key, event time) per batch.
//!
//! Open sessions are cached in memory, indexed by end so firing is a range pop. When the cache holds
//! more sessions than its limit, every key's sessions are written to the state backend as one
//! ingested file (key: the session key; value: its sessions) and read back when the key is touched
//! or fires. A checkpoint shares the cache with a thread that writes it as the snapshot's cache
//! image (copy-on-write); a restore rebuilds the end index from the backend.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::RowConverter;

use crate::error::{Error, Result};
use crate::graph::{PhysicalExprRef, WindowAggregateSpec, WindowKind};
use crate::message::{EventTime, Message, event_time_nanos};
use crate::operators::accumulator::AccumulatorState;
use crate::operators::accumulator_bytes::{decode_states, encode_states};
use crate::operators::grouping::{GroupKey, Grouping, PreAggregated, evaluate_columns, group_key};
use crate::operators::state_bytes::{StateReader, put_bytes};
use crate::operators::{FIRE_STEP_ROWS, WatermarkMeta, decode_meta, encode_meta};
use crate::runtime::metrics::LateRows;
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::key::key_converter;
use crate::state::pending_files::PendingFiles;
use crate::state::{StateBackend, StateWriteBatch};

type SessionsByKey = HashMap<GroupKey, Vec<Session>, ahash::RandomState>;

/// Partial states per group key.
type SessionGroups = HashMap<GroupKey, Vec<AccumulatorState>, ahash::RandomState>;

#[derive(Clone)]
struct Session {
    start: EventTime,
    end: EventTime,
    groups: SessionGroups,
}

/// The session key of Flink's SESSION TVF: its PARTITION BY columns, evaluated per row.
struct SessionPartition {
    exprs: Vec<PhysicalExprRef>,
    converter: RowConverter,
}

impl SessionPartition {
    fn new(exprs: &[PhysicalExprRef], input_schema: &Schema) -> Result<Self> {
        let types = exprs.iter().map(|e| Ok(e.data_type(input_schema)?)).collect::<Result<Vec<_>>>()?;
        Ok(SessionPartition {
            exprs: exprs.to_vec(),
            converter: key_converter(&types)?,
        })
    }

    /// The session key of each pre-aggregated group (from its first row).
    fn keys_of(&self, batch: &RecordBatch, pre: &PreAggregated) -> Result<Vec<GroupKey>> {
        let rows = self.converter.convert_columns(&evaluate_columns(&self.exprs, batch)?)?;
        Ok(pre.first_rows.iter().map(|r| group_key(rows.row(*r).data())).collect())
    }
}

pub struct SessionWindowAggregate {
    grouping: Grouping,
    gap: i64,
    time_column: usize,
    /// `None`: sessions per group key.
    partition: Option<SessionPartition>,
    /// Open sessions per session key, disjoint and not touching. Shared with a checkpoint's
    /// snapshot writer.
    sessions: Arc<SessionsByKey>,
    /// (end, key) of every open session.
    by_end: BTreeSet<(EventTime, GroupKey)>,
    watermark: EventTime,
    /// A watermark whose sessions did not all fire in one step, and when it arrived.
    firing: Option<(EventTime, std::time::Instant)>,
    late_rows: LateRows,
    /// Sessions held in `sessions`.
    cached: usize,
    cache_limit: usize,
    /// Keys whose sessions are in the backend, not in `sessions`.
    spilled: HashSet<GroupKey, ahash::RandomState>,
    /// Keys loaded back since the last spill: their backend copies are out of date.
    stale: HashSet<GroupKey, ahash::RandomState>,
    backend: Box<dyn StateBackend>,
}

impl SessionWindowAggregate {
    pub fn new(
        spec: &WindowAggregateSpec,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
        backend: Box<dyn StateBackend>,
        cache_limit: usize,
        late_rows: LateRows,
    ) -> Result<Self> {
        let WindowKind::Session { gap } = spec.window else {
            return Err(Error::internal("SessionWindowAggregate needs a session window"));
        };
        if gap <= 0 {
            return Err(Error::invalid("SESSION gap must be positive"));
        }
        Ok(SessionWindowAggregate {
            grouping: Grouping::new(&spec.aggregate, &input_schema, output_schema, false)?,
            gap,
            time_column: spec.time_column,
            partition: spec
                .sessions_by
                .as_ref()
                .map(|by| SessionPartition::new(by, &input_schema))
                .transpose()?,
            sessions: Arc::default(),
            by_end: BTreeSet::new(),
            watermark: EventTime::MIN,
            firing: None,
            late_rows,
            cached: 0,
            cache_limit: cache_limit.max(1),
            spilled: HashSet::default(),
            stale: HashSet::default(),
            backend,
        })
    }

    fn layout(&self) -> SessionLayout {
        match self.partition {
            Some(_) => SessionLayout::Partitioned,
            None => SessionLayout::PerKey,
        }
    }

    /// Brings a key's spilled sessions back into the cache.
    fn load(&mut self, key: &GroupKey) -> Result<()> {
        if !self.spilled.remove(key) {
            return Ok(());
        }
        if let Some(bytes) = self.backend.get(key)? {
            let restored = decode_sessions(&bytes, key, self.layout())?;
            self.cached += restored.len();
            Arc::make_mut(&mut self.sessions).entry(key.clone()).or_default().extend(restored);
        }
        // The backend's copy is stale from now on; it is deleted with the next spill (a checkpoint
        // taken before that holds it, and `restore` drops it: every session in it has ended).
        self.stale.insert(key.clone());
        Ok(())
    }

    /// Writes every cached session to the backend and deletes the stale copies of keys loaded since
    /// the last spill, in one ingested file, and empties the cache.
    fn spill(&mut self) -> Result<()> {
        let sessions = std::mem::take(&mut self.sessions);
        let mut batch: StateWriteBatch = session_entries(&sessions, self.layout()).into_iter().collect();
        for key in self.stale.drain().filter(|k| !sessions.contains_key(k)) {
            batch.delete(key.to_vec());
        }
        self.spilled.extend(sessions.keys().cloned());
        self.cached = 0;
        self.backend.ingest(batch)
    }

    /// Adds the rows of one group at one event time to its session key's sessions, merging every
    /// session the new one touches. Returns false if the rows are late (their session would
    /// already have been emitted).
    fn add(&mut self, key: GroupKey, time: EventTime, group: GroupKey, states: Vec<AccumulatorState>) -> Result<bool> {
        self.load(&key)?;
        let end = time.saturating_add(self.gap);
        let sessions = Arc::make_mut(&mut self.sessions).entry(key.clone()).or_default();
        let touching: Vec<usize> = sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.start <= end && s.end >= time)
            .map(|(i, _)| i)
            .collect();
        if touching.is_empty() && end <= self.watermark {
            if sessions.is_empty() {
                Arc::make_mut(&mut self.sessions).remove(&key);
            }
            return Ok(false);
        }
        let mut groups = SessionGroups::default();
        groups.insert(group, states);
        let mut merged = Session { start: time, end, groups };
        for i in touching.into_iter().rev() {
            let old = sessions.remove(i);
            self.cached -= 1;
            self.by_end.remove(&(old.end, key.clone()));
            merged.start = merged.start.min(old.start);
            merged.end = merged.end.max(old.end);
            merge_groups(&self.grouping, &mut merged.groups, old.groups);
        }
        self.by_end.insert((merged.end, key));
        sessions.push(merged);
        self.cached += 1;
        Ok(true)
    }
}

/// Adds `other`'s partial states into `into`, walking the smaller of the two.
fn merge_groups(grouping: &Grouping, into: &mut SessionGroups, mut other: SessionGroups) {
    if other.len() > into.len() {
        std::mem::swap(into, &mut other);
    }
    for (group, states) in other {
        match into.get_mut(&group) {
            Some(existing) => grouping.merge_states(existing, &states),
            None => {
                into.insert(group, states);
            }
        }
    }
}

impl Operator for SessionWindowAggregate {
    fn state_bytes(&self) -> Option<u64> {
        Some(self.backend.estimated_bytes())
    }

    fn process(&mut self, batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        let times = event_time_nanos(batch.column(self.time_column))?;
        let buckets: Vec<Option<i64>> = (0..batch.num_rows()).map(|r| (!times.is_null(r)).then(|| times.value(r))).collect();
        self.late_rows.add(times.null_count());
        let pre = self.grouping.pre_aggregate(&batch, &buckets, None)?;
        let session_keys = match &self.partition {
            Some(partition) => partition.keys_of(&batch, &pre)?,
            None => pre.groups.iter().map(|(_, group)| group.clone()).collect(),
        };
        let mut late_groups = Vec::new();
        for (i, (((time, group), states), key)) in pre.groups.into_iter().zip(pre.states).zip(session_keys).enumerate() {
            if !self.add(key, time, group, states)? {
                late_groups.push(i);
            }
        }
        if !late_groups.is_empty() {
            self.late_rows.add(late_groups.iter().map(|g| pre.rows_per_group[*g]).sum());
        }
        if self.cached > self.cache_limit {
            self.spill()?;
        }
        Ok(())
    }

    /// The synchronous part: the backend's hard-link checkpoint and a reference to the cache, which
    /// a thread writes as the cache image.
    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        if self.firing.is_some() {
            return Err(Error::internal("a session firing was still in progress at a barrier"));
        }
        let mut files = vec![self.backend.checkpoint(dir, None)?];
        if !self.sessions.is_empty() {
            let frozen = self.sessions.clone();
            let layout = self.layout();
            files.push(PendingFiles::cache_image(dir, move || session_entries(&frozen, layout))?);
        }
        Ok(Some(OperatorSnapshot {
            dir: dir.to_path_buf(),
            files,
            meta: encode_meta(&WatermarkMeta { watermark: self.watermark })?,
        }))
    }

    /// Every open session is in the restored backend (spilled, or loaded from the cache image, which
    /// replaced older copies): rebuild the end index from it. Copies that went stale before the
    /// snapshot hold only sessions that had ended (a loaded key stays cached until its sessions fire
    /// or it is spilled again): they are dropped.
    fn restore(&mut self, meta: &serde_json::Value) -> Result<()> {
        self.watermark = decode_meta::<WatermarkMeta>(meta, "session window")?.watermark;
        let mut stale = StateWriteBatch::default();
        for (key, value) in self.backend.scan(&[], &[0xff; 16])? {
            let open: Vec<Session> = decode_sessions(&value, &key, self.layout())?
                .into_iter()
                .filter(|s| s.end > self.watermark)
                .collect();
            if open.is_empty() {
                stale.delete(key);
                continue;
            }
            let key: GroupKey = key.into_boxed_slice();
            for session in &open {
                self.by_end.insert((session.end, key.clone()));
            }
            self.spilled.insert(key);
        }
        self.backend.write(stale)
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        // Two watermarks in one step of the task: the first one's firing ends first.
        while self.resume(out)? {}
        self.watermark = watermark;
        self.firing = Some((watermark, std::time::Instant::now()));
        self.resume(out).map(|_| ())
    }

    /// Fires up to `FIRE_STEP_ROWS` of the sessions the watermark closed; after the last ones,
    /// forwards the watermark.
    fn resume(&mut self, out: &mut Vec<Message>) -> Result<bool> {
        let Some((watermark, closed_at)) = self.firing else {
            return Ok(false);
        };
        let mut fired: Vec<Session> = Vec::new();
        let mut rows = 0;
        let mut more = false;
        while let Some((end, _)) = self.by_end.first() {
            if *end > watermark {
                break;
            }
            if rows >= FIRE_STEP_ROWS {
                more = true;
                break;
            }
            let Some((end, key)) = self.by_end.pop_first() else {
                break;
            };
            self.load(&key)?;
            let cache = Arc::make_mut(&mut self.sessions);
            if let Some(sessions) = cache.get_mut(&key)
                && let Some(i) = sessions.iter().position(|s| s.end == end)
            {
                let session = sessions.remove(i);
                self.cached -= 1;
                if sessions.is_empty() {
                    cache.remove(&key);
                }
                rows += session.groups.len();
                fired.push(session);
            }
        }
        if !fired.is_empty() {
            let mut keys: Vec<&GroupKey> = Vec::with_capacity(rows);
            let mut starts: Vec<i64> = Vec::with_capacity(rows);
            let mut ends: Vec<i64> = Vec::with_capacity(rows);
            let mut states: Vec<&[AccumulatorState]> = Vec::with_capacity(rows);
            for session in &fired {
                for (group, group_states) in &session.groups {
                    keys.push(group);
                    starts.push(session.start);
                    ends.push(session.end);
                    states.push(group_states);
                }
            }
            out.push(Message::Data(self.grouping.output(&keys, Some((&starts, &ends)), &states)?));
            out.push(Message::LatencyMarker(closed_at));
        }
        if !more {
            self.firing = None;
            out.push(Message::Watermark(watermark));
        }
        Ok(more)
    }
}

/// How a key's sessions are stored. Per-key sessions hold one group, the session key itself, and
/// keep the layout older checkpoints and savepoints have: per session its start and end, then its
/// states (`put_bytes`). Partitioned sessions store per session its start, end and group count,
/// then per group its key and states.
#[derive(Debug, Clone, Copy)]
enum SessionLayout {
    PerKey,
    Partitioned,
}

/// The backend entries of cached sessions: session key → its sessions.
fn session_entries(sessions: &SessionsByKey, layout: SessionLayout) -> Vec<(Vec<u8>, Vec<u8>)> {
    sessions
        .iter()
        .map(|(key, sessions)| (key.to_vec(), encode_sessions(sessions, layout)))
        .collect()
}

fn encode_sessions(sessions: &[Session], layout: SessionLayout) -> Vec<u8> {
    let mut out = Vec::new();
    let mut states = Vec::new();
    for session in sessions {
        out.extend_from_slice(&session.start.to_le_bytes());
        out.extend_from_slice(&session.end.to_le_bytes());
        if let SessionLayout::Partitioned = layout {
            out.extend_from_slice(&(session.groups.len() as u32).to_le_bytes());
        }
        for (group, group_states) in &session.groups {
            if let SessionLayout::Partitioned = layout {
                put_bytes(&mut out, group);
            }
            states.clear();
            encode_states(group_states, &mut states);
            put_bytes(&mut out, &states);
        }
    }
    out
}

fn decode_sessions(bytes: &[u8], key: &[u8], layout: SessionLayout) -> Result<Vec<Session>> {
    let mut reader = StateReader::new(bytes, "session window state");
    let mut sessions = Vec::new();
    while !reader.is_empty() {
        let start = reader.i64()?;
        let end = reader.i64()?;
        let mut groups = SessionGroups::default();
        match layout {
            SessionLayout::PerKey => {
                groups.insert(key.into(), decode_states(reader.bytes()?)?);
            }
            SessionLayout::Partitioned => {
                for _ in 0..reader.u32()? {
                    let group: GroupKey = reader.bytes()?.into();
                    groups.insert(group, decode_states(reader.bytes()?)?);
                }
            }
        }
        sessions.push(Session { start, end, groups });
    }
    Ok(sessions)
}
