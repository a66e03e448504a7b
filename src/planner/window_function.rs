//! `TUMBLE`, `HOP`, `CUMULATE` and `SESSION` in FROM, as DataFusion table functions. Each returns a
//! `WindowTableProvider`: the source's columns plus `window_start`, `window_end` and
//! `window_time`, carrying the window spec. The streaming lowering fuses it with the Aggregate
//! above it into one window operator; until that operator assigns windows, the window columns
//! carry the row's event time.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session as DfSession, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::{Catalog, ColumnDef, ColumnKind, SourceDef};
use crate::error::{Error, Result};
use crate::graph::WindowKind;
use crate::planner::flink_functions::{PROCTIME, is_proctime_call};

pub const WINDOW_START: &str = "window_start";
pub const WINDOW_END: &str = "window_end";
/// Flink's `window_time`: the window's last instant (`window_end - 1 ms`), an event-time column of
/// the aggregate's output that a later interval join or window can use.
pub const WINDOW_TIME: &str = "window_time";
/// The column a window by `PROCTIME()` adds to its source's rows.
pub const PROCTIME_COLUMN: &str = "proctime";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFunctionKind {
    Tumble,
    Hop,
    Cumulate,
    /// Weir's short SESSION: sessions per GROUP BY key.
    Session,
    /// Flink's SESSION TVF, as `flink_syntax` rewrites it: sessions per its PARTITION BY columns
    /// (the arguments after the gap), over all rows without them.
    PartitionedSession,
}

impl WindowFunctionKind {
    pub fn name(self) -> &'static str {
        match self {
            WindowFunctionKind::Tumble => "tumble",
            WindowFunctionKind::Hop => "hop",
            WindowFunctionKind::Cumulate => "cumulate",
            WindowFunctionKind::PartitionedSession => "weir_partitioned_session",
            WindowFunctionKind::Session => "session",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            WindowFunctionKind::Tumble => "TUMBLE(source, time_column, INTERVAL 'size' UNIT)",
            WindowFunctionKind::Hop => "HOP(source, time_column, INTERVAL 'slide' UNIT, INTERVAL 'size' UNIT)",
            WindowFunctionKind::Cumulate => "CUMULATE(source, time_column, INTERVAL 'step' UNIT, INTERVAL 'max_size' UNIT)",
            WindowFunctionKind::Session => "SESSION(source, time_column, INTERVAL 'gap' UNIT)",
            WindowFunctionKind::PartitionedSession => {
                "TABLE(SESSION(TABLE source [PARTITION BY (columns)], DESCRIPTOR(time_column), INTERVAL 'gap' UNIT))"
            }
        }
    }
}

#[derive(Debug)]
pub struct WindowFunction {
    pub kind: WindowFunctionKind,
    pub catalog: Arc<RwLock<Catalog>>,
}

impl WindowFunction {
    fn plan(&self, args: &[Expr]) -> Result<WindowTableProvider> {
        let usage = || {
            Error::user(
                crate::error::UserErrorKind::Other,
                format!("window function arguments: use {}", self.kind.usage()),
            )
        };
        let arity_ok = match self.kind {
            WindowFunctionKind::Hop | WindowFunctionKind::Cumulate => args.len() == 4,
            WindowFunctionKind::Tumble | WindowFunctionKind::Session => args.len() == 3,
            WindowFunctionKind::PartitionedSession => args.len() >= 3,
        };
        if !arity_ok {
            return Err(usage());
        }
        let name_of = |e: &Expr| match e {
            Expr::Column(c) => Some(c.name.clone()),
            // In a correlated subquery, a name the outer query also has resolves to it first.
            Expr::OuterReferenceColumn(_, c) => Some(c.name.clone()),
            _ => None,
        };
        let source_name = name_of(&args[0]).ok_or_else(usage)?;
        // `PROCTIME()` as the time: windows by processing time over a column the source adds
        // (Flink's `SELECT *, PROCTIME() AS p FROM src` under a legacy group window).
        let proctime_call = matches!(&args[1], Expr::ScalarFunction(f) if f.name() == PROCTIME);
        let time_column = match proctime_call {
            true => PROCTIME_COLUMN.to_string(),
            false => name_of(&args[1]).ok_or_else(usage)?,
        };
        let mut source = {
            let catalog = self.catalog.read().map_err(|_| Error::internal("catalog lock poisoned"))?;
            match catalog.sources.get(&source_name) {
                Some(def) => def.clone(),
                None if catalog.tables.contains_key(&source_name) => {
                    return Err(Error::unsupported(format!(
                        "windows over the result table '{source_name}' are not supported yet; window a source"
                    )));
                }
                None => return Err(Error::not_found("source", &source_name)),
            }
        };
        if proctime_call {
            if source.columns.iter().any(|c| c.name.eq_ignore_ascii_case(PROCTIME_COLUMN)) {
                return Err(Error::invalid(format!(
                    "source '{source_name}' already has a column named {PROCTIME_COLUMN}; declare it AS PROCTIME() and window by it"
                )));
            }
            source.columns.push(ColumnDef {
                name: PROCTIME_COLUMN.to_string(),
                sql_type: "TIMESTAMP(3)".to_string(),
                nullable: false,
                kind: ColumnKind::Computed {
                    expr: "PROCTIME()".to_string(),
                },
            });
        }
        let window = match self.kind {
            WindowFunctionKind::Tumble => WindowKind::Tumble {
                size: interval_arg(&args[2])?,
            },
            WindowFunctionKind::Hop => WindowKind::Hop {
                slide: interval_arg(&args[2])?,
                size: interval_arg(&args[3])?,
            },
            WindowFunctionKind::Cumulate => WindowKind::Cumulate {
                step: interval_arg(&args[2])?,
                max_size: interval_arg(&args[3])?,
            },
            WindowFunctionKind::Session | WindowFunctionKind::PartitionedSession => WindowKind::Session {
                gap: interval_arg(&args[2])?,
            },
        };
        let sessions_by = match self.kind {
            WindowFunctionKind::PartitionedSession => {
                Some(args[3..].iter().map(|a| name_of(a).ok_or_else(usage)).collect::<Result<Vec<_>>>()?)
            }
            _ => None,
        };
        match window {
            WindowKind::Hop { slide, size } if slide > size => {
                return Err(Error::invalid(
                    "HOP slide must not be larger than its size (HOP(source, time, slide, size))",
                ));
            }
            WindowKind::Cumulate { step, max_size } if max_size % step != 0 => {
                return Err(Error::invalid(
                    "CUMULATE max size must be a whole multiple of its step (CUMULATE(source, time, step, max_size))",
                ));
            }
            _ => {}
        }
        WindowTableProvider::new(source, &time_column, window, sessions_by)
    }
}

impl TableFunctionImpl for WindowFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        Ok(Arc::new(self.plan(args.exprs())?))
    }
}

/// A window interval argument in nanoseconds.
fn interval_arg(expr: &Expr) -> Result<i64> {
    let value = match expr {
        Expr::Literal(value, _) => value,
        other => {
            return Err(Error::invalid(format!("window size {other} must be an INTERVAL literal")));
        }
    };
    let nanos = match (fixed_interval_nanos(value), value) {
        (Some(nanos), _) => nanos,
        (None, ScalarValue::IntervalYearMonth(_) | ScalarValue::IntervalMonthDayNano(Some(_))) => {
            return Err(Error::unsupported(
                "window sizes in months or years are not supported; use DAY, HOUR, MINUTE or SECOND",
            ));
        }
        (None, other) => {
            return Err(Error::invalid(format!("window size {other} must be an INTERVAL literal")));
        }
    };
    if nanos <= 0 {
        return Err(Error::invalid("window sizes must be positive"));
    }
    Ok(nanos)
}

/// A constant INTERVAL of fixed length (days and less, no months) in nanoseconds; `None` for
/// anything else, or one that does not fit.
pub fn fixed_interval_nanos(value: &ScalarValue) -> Option<i64> {
    const DAY: i64 = 86_400_000_000_000;
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => i64::from(v.days).checked_mul(DAY)?.checked_add(v.nanoseconds),
        ScalarValue::IntervalDayTime(Some(v)) => i64::from(v.days)
            .checked_mul(DAY)?
            .checked_add(i64::from(v.milliseconds).checked_mul(1_000_000)?),
        _ => None,
    }
}

#[derive(Debug)]
pub struct WindowTableProvider {
    pub source: SourceDef,
    /// Index of the time column among the source's columns.
    pub time_column: usize,
    /// The time column is computed as `PROCTIME()`: windows by processing time.
    pub processing_time: bool,
    pub window: WindowKind,
    /// Flink's SESSION TVF: the source columns whose rows form sessions (none: all rows). `None`
    /// for Weir's short SESSION (per GROUP BY key) and the other windows.
    pub sessions_by: Option<Vec<String>>,
    schema: SchemaRef,
}

impl WindowTableProvider {
    fn new(source: SourceDef, time_column: &str, window: WindowKind, sessions_by: Option<Vec<String>>) -> Result<Self> {
        let source_schema = crate::catalog::schema_of(&source.columns)?;
        let sessions_by = match sessions_by {
            Some(names) => Some(
                names
                    .iter()
                    .map(|name| {
                        source_schema
                            .fields()
                            .iter()
                            .find(|f| f.name().eq_ignore_ascii_case(name))
                            .map(|f| f.name().clone())
                            .ok_or_else(|| Error::not_found("column", &format!("{}.{name}", source.name)))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let time_index = source_schema
            .fields()
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(time_column))
            .ok_or_else(|| Error::not_found("column", &format!("{}.{time_column}", source.name)))?;
        let time_type = source_schema.field(time_index).data_type().clone();
        if !matches!(time_type, DataType::Timestamp(_, _)) {
            return Err(Error::type_mismatch(format!(
                "window time column '{time_column}' must be a TIMESTAMP, not {time_type}"
            )));
        }
        let processing_time = matches!(&source.columns[time_index].kind, ColumnKind::Computed { expr } if is_proctime_call(expr));
        match &source.watermark {
            _ if processing_time => {}
            Some(w) if w.column == source_schema.field(time_index).name().as_str() => {}
            Some(w) => {
                return Err(Error::unsupported(format!(
                    "windows must use the source's event-time column '{}' (its WATERMARK) or a column computed AS PROCTIME(), not '{time_column}'",
                    w.column
                )));
            }
            None => {
                return Err(Error::invalid(format!(
                    "source '{}' has no WATERMARK, so its windows would never close; add WATERMARK FOR {time_column} AS {time_column} - INTERVAL '1' SECOND, or window by a column computed AS PROCTIME()",
                    source.name
                )));
            }
        }
        let mut fields: Vec<Field> = source_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(WINDOW_START, time_type.clone(), false));
        fields.push(Field::new(WINDOW_END, time_type.clone(), false));
        fields.push(Field::new(WINDOW_TIME, time_type, false));
        Ok(WindowTableProvider {
            source,
            time_column: time_index,
            processing_time,
            window,
            sessions_by,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

#[async_trait]
impl TableProvider for WindowTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Temporary
    }
    async fn scan(
        &self,
        _state: &dyn DfSession,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Err(Error::unsupported(format!(
            "window functions over source '{}' run only in jobs; use CREATE JOB ... AS INSERT INTO <table> SELECT ...",
            self.source.name
        ))
        .into())
    }
}
