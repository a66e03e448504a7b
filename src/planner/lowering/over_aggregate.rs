//! Lowering of Flink's OVER aggregations: DataFusion's `Window` node of aggregate functions over
//! one window `(PARTITION BY ... ORDER BY rowtime [ROWS | RANGE] BETWEEN ... PRECEDING AND
//! CURRENT ROW)` becomes an `OverAggregate`. What Flink refuses is refused here too, by name: an
//! ORDER BY other than the event-time attribute ascending, a frame reaching past the current row,
//! several different windows in one SELECT, updating input.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, Window, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition};

use super::{Lowering, Stream, call_of, constant_key, physical, strip_alias};
use crate::error::{Error, Result};
use crate::graph::{ChangelogMode, EdgeKind, OperatorSpec, OverAggregateSpec, OverFrame};
use crate::planner::window_function::fixed_interval_nanos;

impl Lowering<'_> {
    pub(super) fn over_aggregate(&mut self, window: &Window) -> Result<Stream> {
        let input = self.lower(&window.input)?;
        if input.changelog != ChangelogMode::AppendOnly {
            return Err(Error::unsupported(
                "OVER aggregations over updating rows are not supported (Flink's need append-only input too)",
            ));
        }
        if input.window.is_some() {
            return Err(Error::unsupported(
                "OVER aggregations directly over a window table function are not supported; aggregate the window first",
            ));
        }
        let input_schema = window.input.schema();
        let mut shared: Option<(&[Expr], &[datafusion::logical_expr::SortExpr], &WindowFrame)> = None;
        let mut aggregates = Vec::with_capacity(window.window_expr.len());
        for (i, expr) in window.window_expr.iter().enumerate() {
            let Expr::WindowFunction(function) = strip_alias(expr) else {
                return Err(Error::internal(format!("`{expr}` in a window node is no window function")));
            };
            // DataFusion plans FIRST_VALUE / LAST_VALUE OVER as window functions; Flink's are
            // aggregates over the frame (NULLs skipped), run as the others are.
            let name = match &function.fun {
                WindowFunctionDefinition::AggregateUDF(udf) => udf.name(),
                WindowFunctionDefinition::WindowUDF(udf) if matches!(udf.name(), "first_value" | "last_value") => udf.name(),
                WindowFunctionDefinition::WindowUDF(udf) => {
                    return Err(Error::unsupported(format!(
                        "{}() OVER is supported only for Top-N and deduplication: ROW_NUMBER() OVER (...) bounded by a WHERE on the rank",
                        udf.name()
                    )));
                }
            };
            let params = &function.params;
            let this = (params.partition_by.as_slice(), params.order_by.as_slice(), &params.window_frame);
            match shared {
                None => shared = Some(this),
                Some(first) if first == this => {}
                Some(_) => {
                    return Err(Error::unsupported(
                        "the OVER aggregations of one SELECT must share one window (PARTITION BY, ORDER BY and frame), as in Flink",
                    ));
                }
            }
            let output_type = window.schema.field(input_schema.fields().len() + i).data_type().clone();
            let args = params.args.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
            let display = format!("{name}({args})");
            aggregates.push(call_of(
                name,
                &params.args,
                params.filter.as_deref(),
                params.distinct,
                display,
                input_schema,
                output_type,
            )?);
        }
        let Some((partition_by, order_by, frame)) = shared else {
            return Err(Error::internal("a window node without window functions"));
        };
        let ordered_by_time = || {
            Error::unsupported(
                "an OVER window must be ordered by the event-time attribute (the source's WATERMARK column) ascending, as in Flink",
            )
        };
        let time_column = match order_by {
            [sort] if sort.asc => match strip_alias(&sort.expr) {
                Expr::Column(c) => input_schema.index_of_column(c)?,
                _ => return Err(ordered_by_time()),
            },
            _ => return Err(ordered_by_time()),
        };
        if !input.rowtime.contains(&time_column) {
            return Err(ordered_by_time());
        }
        let frame = over_frame(frame)?;
        let partition = if partition_by.is_empty() {
            vec![constant_key()]
        } else {
            partition_by.iter().map(|e| physical(e, input_schema)).collect::<Result<Vec<_>>>()?
        };
        let spec = OverAggregateSpec {
            partition: partition.clone(),
            time_column,
            frame,
            aggregates,
        };
        self.uid_basis = Some(format!(
            "over|{}|{time_column}|{frame}|{}",
            partition.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
            spec.aggregates.iter().map(|a| a.display.clone()).collect::<Vec<_>>().join(", ")
        ));
        let op = self.add(
            OperatorSpec::OverAggregate(spec),
            &window.schema,
            Some((input.op, EdgeKind::Hash(partition))),
        );
        // The input's columns come through unchanged, in front: its time attributes stay.
        Ok(Stream {
            op,
            schema: Arc::clone(&window.schema),
            window: None,
            changelog: ChangelogMode::AppendOnly,
            upsert_from: None,
            ..input
        })
    }
}

/// The frame of an OVER window, which must end at the current row.
fn over_frame(frame: &WindowFrame) -> Result<OverFrame> {
    if frame.end_bound != WindowFrameBound::CurrentRow {
        return Err(Error::unsupported(format!(
            "OVER window frame `{frame}`: frames must end at the CURRENT ROW, as in Flink"
        )));
    }
    // `None`: UNBOUNDED PRECEDING; `Some(None)`: the current row only; `Some(Some(v))`: v PRECEDING.
    let start: Option<Option<&ScalarValue>> = match &frame.start_bound {
        WindowFrameBound::Preceding(value) if value.is_null() => None,
        WindowFrameBound::Preceding(value) => Some(Some(value)),
        WindowFrameBound::CurrentRow => Some(None),
        WindowFrameBound::Following(_) => {
            return Err(Error::unsupported(format!(
                "OVER window frame `{frame}`: frames must start before the current row"
            )));
        }
    };
    match frame.units {
        WindowFrameUnits::Rows => {
            let rows = |value: &ScalarValue| match value.cast_to(&DataType::UInt64) {
                Ok(ScalarValue::UInt64(Some(n))) => Ok(n),
                _ => Err(Error::invalid(format!("OVER window frame `{frame}`: ROWS takes a row count"))),
            };
            Ok(OverFrame::Rows {
                preceding: start.map(|v| v.map_or(Ok(0), rows)).transpose()?,
            })
        }
        WindowFrameUnits::Range => {
            let nanos = |value: &ScalarValue| {
                fixed_interval_nanos(value).ok_or_else(|| {
                    Error::unsupported(format!(
                        "OVER window frame `{frame}`: RANGE over event time takes an INTERVAL of days or less"
                    ))
                })
            };
            Ok(OverFrame::Range {
                preceding: start.map(|v| v.map_or(Ok(0), nanos)).transpose()?,
            })
        }
        WindowFrameUnits::Groups => Err(Error::unsupported(format!(
            "OVER window frame `{frame}`: GROUPS frames are not supported (Flink has ROWS and RANGE)"
        ))),
    }
}
