//! `WindowTableFunction`: the rows of a window table function (TUMBLE, HOP, CUMULATE) where
//! something other than a window aggregate or window join reads them: a window Top-N or
//! deduplication, or a sink (Flink's `WindowTableFunctionOperator`). Each row comes out once per
//! window that holds its time (TUMBLE: one; HOP and CUMULATE: several), with its window_start,
//! window_end and window_time filled in. A row whose windows the watermark has all closed is
//! dropped and counted late, as Flink's; like Flink's it keeps no state, so after a restore it
//! judges lateness from the first watermark it sees.

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::graph::{WindowBound, WindowTableFunctionSpec};
use crate::message::{EventTime, Message, event_time_nanos};
use crate::operators::pane_layout::PaneLayout;
use crate::runtime::Operator;
use crate::runtime::metrics::LateRows;

pub struct WindowTableFunction {
    layout: PaneLayout,
    time_column: usize,
    bounds: Vec<(usize, WindowBound)>,
    schema: SchemaRef,
    watermark: EventTime,
    late_rows: LateRows,
}

impl WindowTableFunction {
    pub fn new(spec: &WindowTableFunctionSpec, schema: SchemaRef, late_rows: LateRows) -> Result<Self> {
        Ok(WindowTableFunction {
            layout: PaneLayout::new(spec.window)?,
            time_column: spec.time_column,
            bounds: spec.bounds.clone(),
            schema,
            watermark: EventTime::MIN,
            late_rows,
        })
    }
}

impl Operator for WindowTableFunction {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let times = event_time_nanos(batch.column(self.time_column))?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let (mut starts, mut ends) = (Vec::with_capacity(batch.num_rows()), Vec::with_capacity(batch.num_rows()));
        let mut late = 0;
        for row in 0..batch.num_rows() {
            if times.is_null(row) {
                late += 1;
                continue;
            }
            let before = rows.len();
            for (start, end) in self.layout.windows_of(times.value(row)) {
                if end > self.watermark {
                    rows.push(row as u32);
                    starts.push(start);
                    ends.push(end);
                }
            }
            if rows.len() == before {
                late += 1;
            }
        }
        self.late_rows.add(late);
        if rows.is_empty() {
            return Ok(());
        }
        let rows = UInt32Array::from(rows);
        let mut columns = batch
            .columns()
            .iter()
            .map(|c| Ok(take(c.as_ref(), &rows, None)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        for (column, bound) in &self.bounds {
            let nanos: Int64Array = starts.iter().zip(&ends).map(|(s, e)| Some(bound.of(*s, *e))).collect();
            let timestamps = cast(&nanos, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            columns[*column] = cast(&timestamps, self.schema.field(*column).data_type())?;
        }
        out.push(Message::Data(RecordBatch::try_new(self.schema.clone(), columns)?));
        Ok(())
    }

    fn on_watermark(&mut self, watermark: EventTime, out: &mut Vec<Message>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        out.push(Message::Watermark(watermark));
        Ok(())
    }
}
