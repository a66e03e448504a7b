//! The `file` source: a bounded CSV (with a header line) or JSON-lines file, read with arrow's
//! readers in declared column order.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use async_trait::async_trait;
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json;
use datafusion::arrow::record_batch::RecordBatch;

use crate::connectors::pacer::Pacer;
use crate::error::{Error, Result, UserErrorKind};
use crate::runtime::{Source, SourcePosition, position_u64};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone)]
pub struct FileConfig {
    pub path: PathBuf,
    pub format: FileFormat,
    pub batch_size: usize,
    /// Pace reading to this many rows per second (for demos and recovery tests); `None` reads at full speed.
    pub rows_per_second: Option<u64>,
}

impl FileConfig {
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        let mut path = None;
        let mut format = FileFormat::Csv;
        let mut batch_size = 8192;
        let mut rows_per_second = None;
        for (key, value) in options {
            match key.as_str() {
                "path" => path = Some(PathBuf::from(value)),
                "format" => {
                    format = match value.to_ascii_lowercase().as_str() {
                        "csv" => FileFormat::Csv,
                        "json" | "jsonl" | "json-lines" => FileFormat::Json,
                        other => {
                            return Err(Error::invalid(format!("file format '{other}' is unknown; use 'csv' or 'json'")));
                        }
                    }
                }
                "batch.size" => {
                    batch_size = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| Error::invalid(format!("'batch.size' must be a positive integer, not '{value}'")))?
                }
                "rows-per-second" => {
                    rows_per_second = Some(
                        value
                            .parse::<u64>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| Error::invalid(format!("'rows-per-second' must be a positive integer, not '{value}'")))?,
                    )
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown option '{other}' for the file connector; it takes path, format, batch.size, rows-per-second, fail.at.row"
                    )));
                }
            }
        }
        let path = path.ok_or_else(|| Error::invalid("the file connector needs a 'path' option"))?;
        if let Some(rate) = rows_per_second {
            // Small batches so paced reading is smooth (about ten batches a second).
            batch_size = batch_size.min((rate as usize / 10).max(1));
        }
        Ok(FileConfig {
            path,
            format,
            batch_size,
            rows_per_second,
        })
    }

    pub fn check_readable(&self) -> Result<()> {
        File::open(&self.path).map(|_| ()).map_err(|e| {
            Error::user(
                UserErrorKind::ExternalData,
                format!("cannot read source file '{}': {e}", self.path.display()),
            )
        })
    }
}

type BatchIter = Box<dyn Iterator<Item = std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError>> + Send>;

pub struct FileSource {
    reader: Option<BatchIter>,
    path: PathBuf,
    /// Rows handed out so far: the position a checkpoint records.
    emitted: u64,
    /// Rows still to drop after a seek (they were emitted before the checkpoint).
    skip: u64,
    pacer: Pacer,
}

impl FileSource {
    /// `active`: whether this subtask reads the file (only one does).
    /// CSV columns are positional, so the reader parses the declared columns and keeps `columns`.
    pub fn open(config: FileConfig, declared: SchemaRef, columns: &[usize], active: bool) -> Result<Self> {
        let pacer = Pacer::new(config.rows_per_second.map(|r| r as f64));
        let mut source = FileSource {
            reader: None,
            path: config.path.clone(),
            emitted: 0,
            skip: 0,
            pacer,
        };
        if !active {
            return Ok(source);
        }
        config.check_readable()?;
        let file = File::open(&config.path)?;
        let reader: BatchIter = match config.format {
            FileFormat::Csv => Box::new(
                csv::ReaderBuilder::new(declared)
                    .with_header(true)
                    .with_batch_size(config.batch_size)
                    .with_projection(columns.to_vec())
                    .build(file)?,
            ),
            FileFormat::Json => {
                let projected = std::sync::Arc::new(declared.project(columns)?);
                Box::new(
                    json::ReaderBuilder::new(projected)
                        .with_batch_size(config.batch_size)
                        .build(BufReader::new(file))?,
                )
            }
        };
        source.reader = Some(reader);
        Ok(source)
    }
}

#[async_trait]
impl Source for FileSource {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let Some(reader) = self.reader.as_mut() else { return Ok(None) };
            match reader.next() {
                Some(Ok(batch)) => {
                    let skipped = self.skip.min(batch.num_rows() as u64) as usize;
                    self.skip -= skipped as u64;
                    if skipped == batch.num_rows() {
                        continue;
                    }
                    let batch = batch.slice(skipped, batch.num_rows() - skipped);
                    self.emitted += batch.num_rows() as u64;
                    self.pacer.wait_until(self.emitted).await;
                    return Ok(Some(batch));
                }
                Some(Err(e)) => return Err(Error::from(e).context(format!("reading '{}'", self.path.display()))),
                None => {
                    self.reader = None;
                    return Ok(None);
                }
            }
        }
    }

    fn position(&self) -> SourcePosition {
        SourcePosition::from(self.emitted)
    }

    /// CSV and JSON lines have no index: the file is read again from the start and the rows before
    /// the position are dropped.
    fn seek(&mut self, position: &SourcePosition) -> Result<()> {
        let rows = position_u64(position)?;
        self.skip = rows;
        self.emitted = rows;
        self.pacer = Pacer::resumed(self.pacer.rate(), rows);
        Ok(())
    }
}
