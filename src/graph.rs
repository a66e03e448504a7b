//! `JobGraph`: the operator graph a job runs, as the planner lowers it and `EXPLAIN CREATE JOB` prints it.
//! Plain data plus DataFusion physical expressions; the job manager turns it into tasks.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;

use crate::catalog::{SourceDef, TableDef};
use crate::message::EventTime;

pub use crate::partition::MAX_PARALLELISM;

pub type PhysicalExprRef = Arc<dyn PhysicalExpr>;

/// One parallel instance of an operator, as checkpoints name it: its uid and subtask index.
/// Written `<uid>-<subtask>` (the name of its files in a checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubtaskId {
    pub uid: String,
    pub subtask: usize,
}

impl SubtaskId {
    pub fn new(uid: impl Into<String>, subtask: usize) -> Self {
        SubtaskId { uid: uid.into(), subtask }
    }
}

impl std::fmt::Display for SubtaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.uid, self.subtask)
    }
}

#[derive(Debug, Clone)]
pub struct JobGraph {
    pub operators: Vec<OperatorNode>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone)]
pub struct OperatorNode {
    /// Stable identity of the operator, used to match state on restore.
    pub uid: String,
    pub parallelism: usize,
    pub spec: OperatorSpec,
    /// Schema of the batches this operator emits.
    pub output_schema: SchemaRef,
}

#[derive(Debug, Clone)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
    /// Which input of `to` the edge feeds: 0, or 1 for a join's right side.
    pub input: usize,
}

#[derive(Debug, Clone)]
pub enum EdgeKind {
    /// Subtask i feeds subtask i (the two operators are chained in one task).
    Forward,
    /// Rows are routed by the key group of these expressions, evaluated on the upstream output.
    Hash(Vec<PhysicalExprRef>),
}

#[derive(Debug, Clone)]
pub enum OperatorSpec {
    Source(SourceSpec),
    WatermarkAssigner(WatermarkSpec),
    Filter {
        predicate: PhysicalExprRef,
    },
    Project {
        exprs: Vec<PhysicalExprRef>,
    },
    WindowAggregate(WindowAggregateSpec),
    UpdatingAggregate(UpdatingAggregateSpec),
    /// An upsert source's rows into a retract changelog (Flink's ChangelogNormalize): keeps the
    /// last row per key, so an update can take the old row back and a delete carries the row.
    ChangelogNormalize {
        key_columns: Vec<usize>,
    },
    /// A regular equi-join of two inputs (input 0 the left side, input 1 the right).
    Join(JoinSpec),
    /// An equi-join whose ON condition bounds each side's event time by the other's.
    IntervalJoin(IntervalJoinSpec),
    /// An equi-join of two inputs windowed alike, on their windows and keys.
    WindowJoin(WindowJoinSpec),
    /// A window table function's rows, each with its window's bounds (read other than by a window
    /// aggregate or join).
    WindowTableFunction(WindowTableFunctionSpec),
    /// `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` kept to a range of ranks.
    TopN(TopNSpec),
    /// Aggregates `OVER (PARTITION BY ... ORDER BY rowtime ... PRECEDING AND CURRENT ROW)`.
    OverAggregate(OverAggregateSpec),
    /// Each row joined with the rows of its key in a table read as of now (one input).
    LookupJoin(LookupJoinSpec),
    Sink(SinkSpec),
}

/// Flink's Top-N over an append-only input: per partition key, the rows ranked `start..=end` by
/// `order`, with their rank (UInt64) after the input's columns. Emits updates of ranks (retract);
/// a window Top-N (`window_end` set) emits each window's final ranks when it closes (append-only).
#[derive(Debug, Clone)]
pub struct TopNSpec {
    pub partition_columns: Vec<usize>,
    /// Input columns and their ORDER BY direction and null placement.
    pub order: Vec<(usize, SortOptions)>,
    pub start: u64,
    pub end: u64,
    pub ties: RankTies,
    /// The partition column holding a window aggregate's window end, for a window Top-N.
    pub window_end: Option<usize>,
    /// The input is a retract changelog (an updating aggregate's rows): every row of a partition
    /// is kept, as a row taken back from the top lets the next one in.
    pub retracting: bool,
}

/// Flink's OVER aggregation on event time over an append-only input: each row with its aggregates
/// (after the input's columns) over the frame ending at it, emitted when the watermark reaches
/// its time. Append-only.
#[derive(Debug, Clone)]
pub struct OverAggregateSpec {
    /// The PARTITION BY expressions (a constant without one); the input is hash-partitioned on them.
    pub partition: Vec<PhysicalExprRef>,
    /// The ORDER BY column: the input's event-time attribute.
    pub time_column: usize,
    pub frame: OverFrame,
    pub aggregates: Vec<AggregateCall>,
}

/// An OVER frame, which always ends at the current row (as Flink's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`; `None`: UNBOUNDED PRECEDING.
    Rows { preceding: Option<u64> },
    /// `RANGE BETWEEN interval PRECEDING AND CURRENT ROW` (nanoseconds): the rows at most that much
    /// earlier, and every row with the current row's time; `None`: UNBOUNDED PRECEDING.
    Range { preceding: Option<EventTime> },
}

impl fmt::Display for OverFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverFrame::Rows { preceding: Some(n) } => write!(f, "ROWS {n} PRECEDING"),
            OverFrame::Range { preceding: Some(t) } => write!(f, "RANGE {} PRECEDING", Nanos(*t)),
            OverFrame::Rows { preceding: None } => write!(f, "ROWS UNBOUNDED PRECEDING"),
            OverFrame::Range { preceding: None } => write!(f, "RANGE UNBOUNDED PRECEDING"),
        }
    }
}

/// How rows with equal ORDER BY values rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankTies {
    /// In arrival order (Flink's Top-N and keep-first deduplication).
    FirstArrived,
    /// The later row first (Flink's keep-last deduplication on event time).
    LastArrived,
}

/// Which rows a join emits: pairs, plus the rows without a match padded with nulls on the other
/// side (outer joins); or only the left rows that have a match (semi) or none (anti).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    /// `WHERE EXISTS` / `IN (SELECT ...)`: each left row once while it has a match.
    LeftSemi,
    /// `WHERE NOT EXISTS`: each left row while it has no match.
    LeftAnti,
}

impl JoinKind {
    /// Whether side `side` (0 left, 1 right) keeps its rows that match nothing, padded.
    pub fn keeps_unmatched(self, side: usize) -> bool {
        match self {
            JoinKind::Inner | JoinKind::LeftSemi | JoinKind::LeftAnti => false,
            JoinKind::Left => side == 0,
            JoinKind::Right => side == 1,
            JoinKind::Full => true,
        }
    }

    /// Whether the output is the left rows alone, by whether they have a match.
    pub fn emits_left_only(self) -> bool {
        matches!(self, JoinKind::LeftSemi | JoinKind::LeftAnti)
    }
}

/// Flink's regular join: both inputs kept in state by join key, every new row joined with the
/// other side's rows of its key.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub kind: JoinKind,
    /// The key expressions over the left and the right input, pairwise equal, of equal types.
    pub keys: [Vec<PhysicalExprRef>; 2],
    /// The rest of the ON condition, over the joined row (the left columns, then the right).
    pub filter: Option<PhysicalExprRef>,
    /// What it emits: append-only for an inner join of append-only inputs, else retract.
    pub output: ChangelogMode,
}

/// Flink's interval join: an equi-join whose ON condition keeps `left.t - right.t` within
/// `[lower, upper]`, over the event times of two append-only inputs. A row is kept only until
/// the watermark shows that no row of the other side can still match it, and the output is
/// append-only (an outer join pads a row that never matched when it leaves the state).
#[derive(Debug, Clone)]
pub struct IntervalJoinSpec {
    /// The join type, the keys and the whole residual ON condition (the time bounds included).
    pub join: JoinSpec,
    /// Each side's event-time column, in that side's schema.
    pub time_columns: [usize; 2],
    pub bounds: TimeBounds,
}

/// Flink's window join: both inputs windowed by the same TUMBLE or HOP, joined on
/// `window_start` and `window_end` plus keys. Each side's rows of a window are kept until the
/// watermark reaches the window's end; then the window's rows are joined, emitted (append-only:
/// outer, semi and anti joins are decided once) and dropped.
#[derive(Debug, Clone)]
pub struct WindowJoinSpec {
    /// The join type, the keys other than the window bounds, and the rest of the ON condition.
    pub join: JoinSpec,
    pub window: WindowKind,
    /// Each side's window columns, in that side's schema: they carry the row's event time on
    /// input and the window's bound on output.
    pub window_columns: [Vec<(usize, WindowBound)>; 2],
}

/// Flink's lookup join (`JOIN t FOR SYSTEM_TIME AS OF o.proc_time`): every input row reads the
/// rows of its key from a table as they are when it arrives. No state; append-only output.
#[derive(Debug, Clone)]
pub struct LookupJoinSpec {
    /// Inner or Left.
    pub kind: JoinKind,
    /// The key expressions over the input, of the types of the table's key columns.
    pub keys: Vec<PhysicalExprRef>,
    pub table: LookupSource,
    /// Conditions on the table's rows alone, over the columns the table side reads.
    pub table_filters: Vec<PhysicalExprRef>,
    /// Which of the table side's columns the joined rows carry, in order.
    pub table_output: Vec<usize>,
    /// The rest of the ON condition, over the input's columns followed by the table's.
    pub filter: Option<PhysicalExprRef>,
}

/// The table side of a lookup join. `columns` index the table's declared columns: those the
/// lookup reads (the join's conditions and output).
#[derive(Debug, Clone)]
pub enum LookupSource {
    /// A bounded source, read whole when the job starts; `key_columns` index `columns`.
    Source {
        def: SourceDef,
        columns: Vec<usize>,
        key_columns: Vec<usize>,
    },
    /// A result table, read by its first `key_len` primary key columns.
    Table {
        def: TableDef,
        columns: Vec<usize>,
        key_len: usize,
    },
}

/// `left.t - right.t` lies within `[lower, upper]`, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    pub lower: i64,
    pub upper: i64,
}

impl TimeBounds {
    /// How far the output's event times may lag the input watermark: the output watermark is held
    /// back by this much (Flink's interval join delays its watermark the same way).
    pub fn watermark_delay(&self) -> i64 {
        self.upper.max(self.lower.saturating_neg()).max(0)
    }
}

#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub def: SourceDef,
    /// Indices into the declared columns that the source produces (the rest are never generated).
    pub columns: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct WatermarkSpec {
    /// Index of the time column in the input batches.
    pub time_column: usize,
    pub strategy: WatermarkStrategy,
}

/// Where a job's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkStrategy {
    /// Event time: `WATERMARK FOR ts AS ts - delay`, the largest time seen minus the delay.
    BoundedOutOfOrderness { delay_nanos: i64 },
    /// Processing time (windows over a `PROCTIME()` column): the wall clock, also while no row
    /// arrives (the source task ticks).
    ProcessingTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumble {
        size: EventTime,
    },
    Hop {
        slide: EventTime,
        size: EventTime,
    },
    /// Flink's CUMULATE: windows of `max_size` starting at its multiples, each emitted after every
    /// `step` with what it holds so far (window_start stays, window_end grows by `step`).
    Cumulate {
        step: EventTime,
        max_size: EventTime,
    },
    Session {
        gap: EventTime,
    },
    /// The rows carry the end of the window they belong to: a window aggregate's result grouped
    /// again by its window (Flink's aggregate over window_start / window_end of a windowed
    /// result). The time column holds the end; the window closes when the watermark reaches it.
    Attached,
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowKind::Tumble { size } => write!(f, "TUMBLE(size={})", Nanos(*size)),
            WindowKind::Hop { slide, size } => {
                write!(f, "HOP(slide={}, size={})", Nanos(*slide), Nanos(*size))
            }
            WindowKind::Cumulate { step, max_size } => {
                write!(f, "CUMULATE(step={}, max_size={})", Nanos(*step), Nanos(*max_size))
            }
            WindowKind::Session { gap } => write!(f, "SESSION(gap={})", Nanos(*gap)),
            WindowKind::Attached => write!(f, "the input's windows"),
        }
    }
}

impl WindowKind {
    /// Subtracted from a row's time before finding its windows: 1 ns for attached windows, whose
    /// rows carry their window's end and so belong to the window ending there.
    pub fn time_shift(self) -> EventTime {
        EventTime::from(self == WindowKind::Attached)
    }
}

/// Prints a nanosecond duration in the largest exact unit.
pub struct Nanos(pub i64);

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(i64, &str); 5] = [
            (86_400_000_000_000, "d"),
            (3_600_000_000_000, "h"),
            (60_000_000_000, "min"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
        ];
        for (nanos, unit) in UNITS {
            if self.0 != 0 && self.0 % nanos == 0 {
                return write!(f, "{}{unit}", self.0 / nanos);
            }
        }
        write!(f, "{}ns", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateKind {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    /// Flink's FIRST_VALUE / LAST_VALUE: the first / last non-null value in arrival order.
    FirstValue,
    LastValue,
}

#[derive(Debug, Clone)]
pub struct AggregateCall {
    pub kind: AggregateKind,
    /// The argument, evaluated on the aggregate's input; `COUNT(*)` counts a non-null literal.
    pub arg: PhysicalExprRef,
    pub distinct: bool,
    pub output_type: DataType,
    /// As DataFusion names it, e.g. `count(Int64(1))`, for EXPLAIN.
    pub display: String,
}

/// Grouping and aggregates shared by the windowed and the updating aggregate.
#[derive(Debug, Clone)]
pub struct AggregateSpec {
    /// GROUP BY expressions other than the window columns, evaluated on the input.
    pub keys: Vec<PhysicalExprRef>,
    pub aggregates: Vec<AggregateCall>,
    /// Where each output column comes from, in output order.
    pub outputs: Vec<AggregateOutput>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOutput {
    Key(usize),
    Window(WindowBound),
    Aggregate(usize),
}

/// The columns a window table function adds: which bound of a row's window each stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowBound {
    Start,
    End,
    /// `window_end` - 1 ms, Flink's `window_time`: the event time of a window's output rows.
    Time,
}

/// `window_time` is this long before `window_end`: Flink's millisecond (the time columns' precision).
pub const WINDOW_TIME_BEFORE_END: i64 = 1_000_000;

impl WindowBound {
    /// The bound of the window `[start, end)`, in nanoseconds.
    pub fn of(self, start: EventTime, end: EventTime) -> EventTime {
        match self {
            WindowBound::Start => start,
            WindowBound::End => end,
            WindowBound::Time => end.saturating_sub(WINDOW_TIME_BEFORE_END),
        }
    }
}

/// The rows of a window table function with their windows' bounds filled in.
#[derive(Debug, Clone)]
pub struct WindowTableFunctionSpec {
    /// TUMBLE, HOP or CUMULATE.
    pub window: WindowKind,
    /// The column holding each row's time (event time, or a `PROCTIME()` column).
    pub time_column: usize,
    /// The columns standing for a bound of the row's window, filled in with it.
    pub bounds: Vec<(usize, WindowBound)>,
}

#[derive(Debug, Clone)]
pub struct WindowAggregateSpec {
    pub window: WindowKind,
    /// Input column carrying each row's event time (a TIMESTAMP).
    pub time_column: usize,
    pub aggregate: AggregateSpec,
    /// Session windows only: whose rows form sessions. `None`: each group key's own rows (Weir's
    /// short SESSION, Flink's legacy group window, or a PARTITION BY equal to the group keys).
    /// `Some(exprs)`: the rows with equal values of these (Flink's SESSION TVF PARTITION BY, or
    /// a constant when it has none: one sequence of sessions over all rows), aggregated per group
    /// key within each session. The input is hash-partitioned on them.
    pub sessions_by: Option<Vec<PhysicalExprRef>>,
}

/// What the rows of a stream mean (Flink's changelog modes). The planner infers it for every edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangelogMode {
    /// Every row is an insert; batches carry no row kinds (the fast path).
    AppendOnly,
    /// Rows replace the row with the same key: inserts and update-afters, deletes by key, never an
    /// update-before. Append-only input gives no delete, so such batches carry no row kinds.
    Upsert,
    /// Every row carries its kind; an update is the old row's update-before, then the new row's
    /// update-after, so a consumer can take the old row back (an aggregate over the stream).
    Retract,
}

impl fmt::Display for ChangelogMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangelogMode::AppendOnly => "append-only",
            ChangelogMode::Upsert => "upsert",
            ChangelogMode::Retract => "retract",
        })
    }
}

/// GROUP BY without a window: a result per key, updated as rows arrive.
#[derive(Debug, Clone)]
pub struct UpdatingAggregateSpec {
    pub aggregate: AggregateSpec,
    /// The input's mode: with retractions the aggregate takes rows back (`Retract`).
    pub input: ChangelogMode,
    /// What it emits: `Upsert` into a table keyed like the groups, else `Retract`.
    pub output: ChangelogMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    /// Every row is a new row (windowed results, projections).
    Append,
    /// Rows are applied by primary key: a row replaces the row with the same key, and a
    /// changelog's update-before and delete rows delete it.
    Upsert,
}

#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub table: TableDef,
    pub mode: SinkMode,
}

impl OperatorSpec {
    pub fn kind_name(&self) -> &'static str {
        match self {
            OperatorSpec::Source(_) => "source",
            OperatorSpec::WatermarkAssigner(_) => "watermark-assigner",
            OperatorSpec::Filter { .. } => "filter",
            OperatorSpec::Project { .. } => "project",
            OperatorSpec::WindowAggregate(_) => "window-aggregate",
            OperatorSpec::UpdatingAggregate(_) => "updating-aggregate",
            OperatorSpec::ChangelogNormalize { .. } => "changelog-normalize",
            OperatorSpec::Join(_) => "join",
            OperatorSpec::IntervalJoin(_) => "interval-join",
            OperatorSpec::WindowJoin(_) => "window-join",
            OperatorSpec::LookupJoin(_) => "lookup-join",
            OperatorSpec::WindowTableFunction(_) => "window-table-function",
            OperatorSpec::TopN(_) => "top-n",
            OperatorSpec::OverAggregate(_) => "over-aggregate",
            OperatorSpec::Sink(_) => "sink",
        }
    }

    pub fn describe(&self) -> String {
        let list = |exprs: &[PhysicalExprRef]| exprs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ");
        let aggs = |spec: &AggregateSpec| spec.aggregates.iter().map(|a| a.display.clone()).collect::<Vec<_>>().join(", ");
        match self {
            OperatorSpec::Source(s) => {
                format!("Source: {} (connector={})", s.def.name, s.def.connector)
            }
            OperatorSpec::WatermarkAssigner(w) => match w.strategy {
                WatermarkStrategy::BoundedOutOfOrderness { delay_nanos } => {
                    format!("WatermarkAssigner: column #{} - {}", w.time_column, Nanos(delay_nanos))
                }
                WatermarkStrategy::ProcessingTime => format!("WatermarkAssigner: processing time (column #{})", w.time_column),
            },
            OperatorSpec::Filter { predicate } => format!("Filter: {predicate}"),
            OperatorSpec::Project { exprs } => format!("Project: {}", list(exprs)),
            OperatorSpec::WindowAggregate(w) => format!(
                "WindowAggregate: {}{} on column #{}, keys=[{}], aggregates=[{}]",
                w.window,
                w.sessions_by
                    .as_ref()
                    .map(|by| format!(" sessions by [{}]", list(by)))
                    .unwrap_or_default(),
                w.time_column,
                list(&w.aggregate.keys),
                aggs(&w.aggregate)
            ),
            OperatorSpec::UpdatingAggregate(u) => format!(
                "UpdatingAggregate: keys=[{}], aggregates=[{}], changelog {} -> {}",
                list(&u.aggregate.keys),
                aggs(&u.aggregate),
                u.input,
                u.output
            ),
            OperatorSpec::ChangelogNormalize { key_columns } => {
                format!("ChangelogNormalize: key columns {key_columns:?}, upsert -> retract")
            }
            OperatorSpec::Join(j) => format!(
                "Join: {:?} on left [{}] = right [{}]{}, changelog {}",
                j.kind,
                list(&j.keys[0]),
                list(&j.keys[1]),
                j.filter.as_ref().map(|f| format!(", filter {f}")).unwrap_or_default(),
                j.output
            ),
            OperatorSpec::IntervalJoin(j) => format!(
                "IntervalJoin: {:?} on left [{}] = right [{}], left column #{} - right column #{} between {} and {}{}",
                j.join.kind,
                list(&j.join.keys[0]),
                list(&j.join.keys[1]),
                j.time_columns[0],
                j.time_columns[1],
                Nanos(j.bounds.lower),
                Nanos(j.bounds.upper),
                j.join.filter.as_ref().map(|f| format!(", filter {f}")).unwrap_or_default(),
            ),
            OperatorSpec::WindowJoin(j) => format!(
                "WindowJoin: {:?} {} on left [{}] = right [{}]{}",
                j.join.kind,
                j.window,
                list(&j.join.keys[0]),
                list(&j.join.keys[1]),
                j.join.filter.as_ref().map(|f| format!(", filter {f}")).unwrap_or_default(),
            ),
            OperatorSpec::WindowTableFunction(w) => format!(
                "WindowTableFunction: {} on column #{}, bounds {:?}",
                w.window, w.time_column, w.bounds
            ),
            OperatorSpec::TopN(t) => format!(
                "{}: partition by columns {:?}, order by {}, ranks {}..={}{}",
                if t.window_end.is_some() { "WindowTopN" } else { "TopN" },
                t.partition_columns,
                t.order
                    .iter()
                    .map(|(c, o)| format!("#{c} {}", if o.descending { "DESC" } else { "ASC" }))
                    .collect::<Vec<_>>()
                    .join(", "),
                t.start,
                t.end,
                match t.ties {
                    RankTies::FirstArrived => "",
                    RankTies::LastArrived => ", the later of equal rows first",
                }
            ),
            OperatorSpec::OverAggregate(o) => format!(
                "OverAggregate: partition by [{}], order by column #{}, {}, aggregates=[{}]",
                list(&o.partition),
                o.time_column,
                o.frame,
                o.aggregates.iter().map(|a| a.display.clone()).collect::<Vec<_>>().join(", ")
            ),
            OperatorSpec::LookupJoin(j) => format!(
                "LookupJoin: {:?} on [{}] = {} {}{}",
                j.kind,
                list(&j.keys),
                match &j.table {
                    LookupSource::Source { def, .. } => format!("source {}", def.name),
                    LookupSource::Table { def, .. } => format!("table {}", def.name),
                },
                match &j.table {
                    LookupSource::Source { key_columns, .. } => format!("columns {key_columns:?}"),
                    LookupSource::Table { def, key_len, .. } => {
                        format!(
                            "({})",
                            def.primary_key.iter().take(*key_len).cloned().collect::<Vec<_>>().join(", ")
                        )
                    }
                },
                j.filter.as_ref().map(|f| format!(", filter {f}")).unwrap_or_default(),
            ),
            OperatorSpec::Sink(s) => format!(
                "Sink: {} (connector={}, {})",
                s.table.name,
                s.table.connector.name(),
                match s.mode {
                    SinkMode::Append => "append",
                    SinkMode::Upsert => "upsert",
                }
            ),
        }
    }
}

impl fmt::Display for JobGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.operators {
            writeln!(f, "[{}] {} parallelism={}", op.uid, op.spec.describe(), op.parallelism)?;
        }
        for edge in &self.edges {
            let (from, to) = (&self.operators[edge.from].uid, &self.operators[edge.to].uid);
            match &edge.kind {
                EdgeKind::Forward => writeln!(f, "{from} -> {to}: FORWARD")?,
                EdgeKind::Hash(keys) => {
                    let keys = keys.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ");
                    let input = if edge.input > 0 {
                        format!(" (input {})", edge.input)
                    } else {
                        String::new()
                    };
                    writeln!(f, "{from} -> {to}: HASH[{keys}]{input}")?
                }
            }
        }
        Ok(())
    }
}
