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
        println!("{}>\n{}", self.table, pretty_format_batches(&[batch])?);
        Ok(())
    }
}
