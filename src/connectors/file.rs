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

use crate::error::{Error, Result, UserErrorKind};
use crate::runtime::Source;

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
}

impl FileConfig {
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        let mut path = None;
        let mut format = FileFormat::Csv;
        let mut batch_size = 8192;
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
                other => {
                    return Err(Error::invalid(format!(
                        "unknown option '{other}' for the file connector; it takes path, format, batch.size"
                    )));
                }
            }
        }
        let path = path.ok_or_else(|| Error::invalid("the file connector needs a 'path' option"))?;
        Ok(FileConfig { path, format, batch_size })
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
}

impl FileSource {
    /// `active`: whether this subtask reads the file (only one does).
    /// CSV columns are positional, so the reader parses the declared columns and keeps `columns`.
    pub fn open(config: FileConfig, declared: SchemaRef, columns: &[usize], active: bool) -> Result<Self> {
        if !active {
            return Ok(FileSource {
                reader: None,
                path: config.path,
            });
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
        Ok(FileSource {
            reader: Some(reader),
            path: config.path,
        })
    }
}

#[async_trait]
impl Source for FileSource {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        match reader.next() {
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(e)) => Err(Error::from(e).context(format!("reading '{}'", self.path.display()))),
            None => {
                self.reader = None;
                Ok(None)
            }
        }
    }
}
