//! `SessionWindowAggregate`: per-key session windows. A row at `t` opens the session `[t, t + gap)`;
//! sessions of one key that touch (rows at most `gap` apart, as in Flink) merge. A session is emitted
//! when the watermark reaches its end. Rows are pre-aggregated per (key, event time) per batch.
//!
//! Open sessions are kept in memory, indexed by end so firing is a range pop; they are not spilled
//! to the state backend yet (see the notes).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::graph::{WindowAggregateSpec, WindowKind};
use crate::message::{EventTime, Message};
use crate::operators::accumulator::AccumulatorState;
use crate::operators::event_time_nanos;
use crate::operators::grouping::{GroupKey, Grouping};
use crate::runtime::Operator;
use crate::runtime::metrics::JobMetrics;

struct Session {
    start: EventTime,
    end: EventTime,
    states: Vec<AccumulatorState>,
}

pub struct SessionWindowAggregate {
    grouping: Grouping,
    gap: i64,
    time_column: usize,
    /// Open sessions per key, disjoint and not touching.
    sessions: HashMap<GroupKey, Vec<Session>>,
    /// (end, key) of every open session.
    by_end: BTreeSet<(EventTime, GroupKey)>,
    watermark: EventTime,
    metrics: Arc<JobMetrics>,
}

impl SessionWindowAggregate {
    pub fn new(spec: &WindowAggregateSpec, input_schema: SchemaRef, output_schema: SchemaRef, metrics: Arc<JobMetrics>) -> Result<Self> {
        let WindowKind::Session { gap } = spec.window else {
            return Err(Error::internal("SessionWindowAggregate needs a session window"));
        };
        if gap <= 0 {
            return Err(Error::invalid("SESSION gap must be positive"));
        }
        Ok(SessionWindowAggregate {
            grouping: Grouping::new(&spec.aggregate, &input_schema, output_schema)?,
            gap,
            time_column: spec.time_column,
            sessions: HashMap::new(),
            by_end: BTreeSet::new(),
            watermark: EventTime::MIN,
            metrics,
        })
    }

    /// Adds the rows of one key at one event time, merging every session the new one touches.
    /// Returns false if the rows are late (their session would already have been emitted).
    fn add(&mut self, key: GroupKey, time: EventTime, states: Vec<AccumulatorState>) -> bool {
        let end = time.saturating_add(self.gap);
        let sessions = self.sessions.entry(key.clone()).or_default();
        let touching: Vec<usize> = sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.start <= end && s.end >= time)
            .map(|(i, _)| i)
            .collect();
        if touching.is_empty() && end <= self.watermark {
            if sessions.is_empty() {
                self.sessions.remove(&key);
            }
            return false;
        }
        let mut merged = Session { start: time, end, states };
        for i in touching.into_iter().rev() {
            let old = sessions.remove(i);
            self.by_end.remove(&(old.end, key.clone()));
            merged.start = merged.start.min(old.start);
            merged.end = merged.end.max(old.end);
            self.grouping.merge_states(&mut merged.states, &old.states);
        }
        self.by_end.insert((merged.end, key));
        sessions.push(merged);
        true
    }
}

impl Operator for SessionWindowAggregate {
    fn process(&mut self, batch: RecordBatch, _out: &mut Vec<Message>) -> Result<()> {
        let times = event_time_nanos(batch.column(self.time_column))?;
        let buckets: Vec<Option<i64>> = (0..batch.num_rows()).map(|r| (!times.is_null(r)).then(|| times.value(r))).collect();
        self.metrics.add_late_rows(times.null_count());
        let pre = self.grouping.pre_aggregate(&batch, &buckets)?;
        let mut late_groups = Vec::new();
        for (i, ((time, key), states)) in pre.groups.into_iter().zip(pre.states).enumerate() {
            if !self.add(key, time, states) {
                late_groups.push(i);
            }
        }
        if !late_groups.is_empty() {
            self.metrics.add_late_rows(late_groups.iter().map(|g| pre.rows_per_group[*g]).sum());
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        self.watermark = watermark;
        let mut fired: Vec<(GroupKey, Session)> = Vec::new();
        while let Some((end, _)) = self.by_end.first() {
            if *end > watermark {
                break;
            }
            let Some((end, key)) = self.by_end.pop_first() else {
                break;
            };
            if let Some(sessions) = self.sessions.get_mut(&key)
                && let Some(i) = sessions.iter().position(|s| s.end == end)
            {
                let session = sessions.remove(i);
                if sessions.is_empty() {
                    self.sessions.remove(&key);
                }
                fired.push((key, session));
            }
        }
        if !fired.is_empty() {
            let keys: Vec<&GroupKey> = fired.iter().map(|(k, _)| k).collect();
            let starts: Vec<i64> = fired.iter().map(|(_, s)| s.start).collect();
            let ends: Vec<i64> = fired.iter().map(|(_, s)| s.end).collect();
            let states: Vec<&[AccumulatorState]> = fired.iter().map(|(_, s)| s.states.as_slice()).collect();
            out.push(Message::Data(self.grouping.output(&keys, Some((&starts, &ends)), &states)?));
        }
        out.push(Message::Watermark(watermark));
        Ok(())
    }
}
