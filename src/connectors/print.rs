//! The `blackhole` sink (discards rows; for benchmarks) and the `print` sink (rows to stdout).

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::error::Result;
use crate::message::split_row_kinds;
use crate::runtime::Sink;

pub struct BlackholeSink;

impl Sink for BlackholeSink {
    fn write(&mut self, _batch: RecordBatch) -> Result<()> {
        Ok(())
    }
}

pub struct PrintSink {
    table: String,
}

impl PrintSink {
    pub fn new(table: &str) -> Self {
        PrintSink { table: table.to_string() }
    }
}

impl Sink for PrintSink {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        // Not println!, which panics when stdout is a closed pipe: then the rows go nowhere, as
        // they would to a terminal nobody reads.
        use std::io::Write;
        let text = pretty_format_batches(&[with_row_kind_column(&batch)?])?;
        let _ = writeln!(std::io::stdout().lock(), "{}>\n{text}", self.table);
        Ok(())
    }
}

/// A changelog batch with its row kinds first, as Flink prints them (`+I`, `-U`, `+U`, `-D`), in a
/// column `op`; an append-only batch as it is.
fn with_row_kind_column(batch: &RecordBatch) -> Result<RecordBatch> {
    let (rows, Some(kinds)) = split_row_kinds(batch)? else {
        return Ok(batch.clone());
    };
    let mut fields = vec![Arc::new(Field::new("op", DataType::Utf8, false))];
    fields.extend(rows.schema().fields().iter().cloned());
    let mut columns = vec![Arc::new(StringArray::from_iter_values(kinds.iter().map(|k| k.short_string()))) as _];
    columns.extend(rows.columns().iter().cloned());
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}
