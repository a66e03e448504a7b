//! The `blackhole` sink (discards rows; for benchmarks) and the `print` sink (rows to stdout).

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::error::Result;
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
        let text = pretty_format_batches(&[batch])?;
        let _ = writeln!(std::io::stdout().lock(), "{}>\n{text}", self.table);
        Ok(())
    }
}
