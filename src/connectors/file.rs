//! The `file` source: a CSV (with a header line) or JSON-lines file, read with arrow's readers in
//! declared column order. Bounded by default; with `source.monitor-interval` (Flink's option) it is
//! unbounded: at the end of the file it checks every interval for complete lines appended since,
//! and reads them too. One subtask reads the file; in monitoring mode the others stay open and
//! idle (as Flink's readers without a split), so `table.exec.source.idle-timeout` matters there.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json;
use datafusion::arrow::record_batch::RecordBatch;

use crate::connectors::MAX_BATCH_ROWS;
use crate::connectors::pacer::Pacer;
use crate::data_dir::FileRoots;
use crate::error::{Error, Result, UserErrorKind};
use crate::runtime::{Source, SourcePosition, position_u64};
use crate::settings::parse_duration;

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
    /// `source.monitor-interval`: read lines appended to the file, checking this often (unbounded).
    pub monitor_interval: Option<Duration>,
}

impl FileConfig {
    /// `roots`: the directories the file must lie in; `path` is kept resolved.
    pub fn from_options(options: &BTreeMap<String, String>, roots: &FileRoots) -> Result<Self> {
        let mut path = None;
        let mut format = FileFormat::Csv;
        let mut batch_size = 8192;
        let mut rows_per_second = None;
        let mut monitor_interval = None;
        for (key, value) in options {
            match key.as_str() {
                "path" => path = Some(roots.resolve("source file", Path::new(value))?),
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
                    batch_size = value.parse().ok().filter(|n| (1..=MAX_BATCH_ROWS).contains(n)).ok_or_else(|| {
                        Error::invalid(format!(
                            "'batch.size' must be an integer between 1 and {MAX_BATCH_ROWS}, not '{value}'"
                        ))
                    })?
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
                "source.monitor-interval" => {
                    let interval = parse_duration(key, value)?;
                    if interval.is_zero() {
                        return Err(Error::invalid("'source.monitor-interval' must be positive"));
                    }
                    monitor_interval = Some(interval);
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown option '{other}' for the file connector; it takes path, format, batch.size, rows-per-second, source.monitor-interval, batch.linger, fail.at.row"
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
            monitor_interval,
        })
    }

    pub fn check_readable(&self) -> Result<()> {
        open_regular_file(&self.path).map(|_| ())
    }
}

/// The longest line (record) a file source reads: a longer one is refused, not buffered.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// JSON nesting a line may have. Weir's column types are flat, and arrow's JSON decoder recurses
/// per level: a line of 100,000 `[` overflowed the stack.
pub const MAX_JSON_DEPTH: usize = 64;

/// The file's bytes, checked as they pass: no line longer than [`MAX_LINE_BYTES`], and for JSON
/// no nesting deeper than [`MAX_JSON_DEPTH`]. A violation fails the read (InvalidData) with the
/// line number.
struct BoundedRecords<R> {
    inner: R,
    json: bool,
    line: u64,
    line_bytes: usize,
    nesting: JsonNesting,
}

/// How deep in JSON arrays and objects a byte stream is, strings and escapes skipped.
#[derive(Debug, Default)]
pub struct JsonNesting {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl JsonNesting {
    /// Takes the next byte; returns the depth after it.
    pub fn push(&mut self, byte: u8) -> usize {
        match (self.in_string, self.escaped, byte) {
            (true, true, _) => self.escaped = false,
            (true, false, b'\\') => self.escaped = true,
            (true, false, b'"') => self.in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => self.in_string = true,
            (false, _, b'[' | b'{') => self.depth += 1,
            (false, _, b']' | b'}') => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        self.depth
    }

    /// Whether a whole value nests deeper than `limit`. Only a value with more than `limit`
    /// opening brackets can, so most are let through by a count the compiler vectorizes.
    pub fn exceeds(value: &[u8], limit: usize) -> bool {
        let opening = value.iter().filter(|b| matches!(b, b'[' | b'{')).count();
        if opening <= limit {
            return false;
        }
        let mut nesting = JsonNesting::default();
        value.iter().any(|b| nesting.push(*b) > limit)
    }
}

impl<R> BoundedRecords<R> {
    fn new(inner: R, json: bool) -> Self {
        BoundedRecords {
            inner,
            json,
            line: 1,
            line_bytes: 0,
            nesting: JsonNesting::default(),
        }
    }

    fn check(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let bad = |line: u64, what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {line}: {what}"));
        for &byte in bytes {
            if byte == b'\n' {
                self.line += 1;
                self.line_bytes = 0;
                self.nesting = JsonNesting::default();
                continue;
            }
            self.line_bytes += 1;
            if self.line_bytes > MAX_LINE_BYTES {
                return Err(bad(self.line, format!("longer than {MAX_LINE_BYTES} bytes")));
            }
            if self.json && self.nesting.push(byte) > MAX_JSON_DEPTH {
                return Err(bad(self.line, format!("JSON nested deeper than {MAX_JSON_DEPTH} levels")));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for BoundedRecords<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.check(&buf[..n])?;
        Ok(n)
    }
}

/// Opens a source file for reading. Only a regular file: a FIFO would block the open (and the
/// runtime thread with it) until a writer comes, and a device such as `/dev/zero` never ends. The
/// open itself does not block (O_NONBLOCK, which changes nothing for a regular file's reads), and
/// the type is checked on the opened file, so a swap after a check cannot slip a FIFO in.
fn open_regular_file(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let unreadable = |reason: String| {
        Error::user(
            UserErrorKind::ExternalData,
            format!("cannot read source file '{}': {reason}", path.display()),
        )
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| unreadable(e.to_string()))?;
    let kind = file.metadata().map_err(|e| unreadable(e.to_string()))?.file_type();
    if kind.is_dir() {
        return Err(unreadable("it is a directory; a file source reads one regular file".into()));
    }
    if !kind.is_file() {
        return Err(unreadable(
            "it is not a regular file (a FIFO, socket or device); a file source reads one regular file".into(),
        ));
    }
    Ok(file)
}

type BatchIter = Box<dyn Iterator<Item = std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError>> + Send>;

pub struct FileSource {
    config: FileConfig,
    declared: SchemaRef,
    columns: Vec<usize>,
    /// Whether this subtask reads the file (only one does).
    active: bool,
    reader: Option<BatchIter>,
    /// Bytes of the file handed to readers so far (monitoring reads what lies beyond).
    read_to: u64,
    /// Rows handed out so far: the position a checkpoint records.
    emitted: u64,
    /// Rows still to drop after a seek (they were emitted before the checkpoint).
    skip: u64,
    /// Rows read but not handed out yet (kept here while the pacer waits, and the part of a
    /// batch a paced source did not hand out).
    ahead: Option<RecordBatch>,
    pacer: Pacer,
}

impl FileSource {
    /// CSV columns are positional, so the reader parses the declared columns and keeps `columns`.
    pub fn open(config: FileConfig, declared: SchemaRef, columns: &[usize], active: bool, linger: Duration) -> Result<Self> {
        let pacer = Pacer::new(config.rows_per_second.map(|r| r as f64), linger);
        let mut source = FileSource {
            config,
            declared,
            columns: columns.to_vec(),
            active,
            reader: None,
            read_to: 0,
            emitted: 0,
            skip: 0,
            ahead: None,
            pacer,
        };
        if active {
            source.config.check_readable()?;
            source.open_unread()?;
        }
        Ok(source)
    }

    /// Opens a reader over what the file holds beyond `read_to`: everything when not monitoring,
    /// else the complete lines (a line being appended is read once it ends). Returns whether
    /// there was anything.
    fn open_unread(&mut self) -> Result<bool> {
        let mut file = open_regular_file(&self.config.path)?;
        let end = match self.config.monitor_interval {
            None => u64::MAX,
            Some(_) => complete_lines_end(&mut file, self.read_to)?,
        };
        if end <= self.read_to {
            return Ok(false);
        }
        file.seek(SeekFrom::Start(self.read_to))?;
        let header = self.read_to == 0;
        let json = self.config.format == FileFormat::Json;
        let unread = BufReader::new(BoundedRecords::new(file.take(end - self.read_to), json));
        self.reader = Some(match self.config.format {
            FileFormat::Csv => Box::new(
                csv::ReaderBuilder::new(self.declared.clone())
                    .with_header(header)
                    .with_batch_size(self.config.batch_size)
                    .with_projection(self.columns.clone())
                    .build(unread)?,
            ),
            FileFormat::Json => Box::new(
                json::ReaderBuilder::new(Arc::new(self.declared.project(&self.columns)?))
                    .with_batch_size(self.config.batch_size)
                    .build(unread)?,
            ),
        });
        self.read_to = end;
        Ok(true)
    }

    /// The next rows from the open reader, without the rows a seek skips; `None` when it is done.
    fn read_next(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let Some(reader) = self.reader.as_mut() else { return Ok(None) };
            match reader.next() {
                Some(Ok(batch)) => {
                    let skipped = self.skip.min(batch.num_rows() as u64) as usize;
                    self.skip -= skipped as u64;
                    if skipped < batch.num_rows() {
                        return Ok(Some(batch.slice(skipped, batch.num_rows() - skipped)));
                    }
                }
                Some(Err(e)) => return Err(Error::from(e).context(format!("reading '{}'", self.config.path.display()))),
                None => {
                    self.reader = None;
                    return Ok(None);
                }
            }
        }
    }
}

/// The end of the last complete line of `file` (after its newline), not before `from`.
fn complete_lines_end(file: &mut File, from: u64) -> Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = file.metadata()?.len();
    let mut buffer = Vec::new();
    while end > from {
        let start = end.saturating_sub(CHUNK).max(from);
        buffer.resize((end - start) as usize, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buffer)?;
        if let Some(newline) = buffer.iter().rposition(|b| *b == b'\n') {
            return Ok(start + newline as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

#[async_trait]
impl Source for FileSource {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.ahead.is_none() {
                self.ahead = self.read_next()?;
            }
            if let Some(available) = self.ahead.as_ref().map(|b| b.num_rows()) {
                // The rows stay in `ahead` while the pacer waits: a barrier may drop this call.
                let len = (self.pacer.next_batch_len(self.emitted, available as u64).await as usize).min(available);
                let Some(batch) = self.ahead.take() else { continue };
                self.ahead = (len < available).then(|| batch.slice(len, available - len));
                self.emitted += len as u64;
                return Ok(Some(batch.slice(0, len)));
            }
            let Some(interval) = self.config.monitor_interval else {
                return Ok(None);
            };
            if self.active && self.open_unread()? {
                continue;
            }
            tokio::time::sleep(interval).await;
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
        self.ahead = None;
        self.pacer = self.pacer.resumed(rows);
        Ok(())
    }
}
