//! Reads the records of one byte range of a CSV or JSON-lines file with arrow's push decoders,
//! knowing after every batch the byte offset where the next record starts: that offset is the
//! exact, cheap position a checkpoint keeps (a restore seeks there instead of reading the file
//! again from its start).
//!
//! The bytes are checked as they pass: no line longer than [`MAX_LINE_BYTES`], and for JSON no
//! nesting deeper than [`MAX_JSON_DEPTH`]. A violation fails the read with the line number.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::csv;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json;
use datafusion::arrow::record_batch::RecordBatch;

use crate::connectors::csv_lines::CsvLineDecoder;
use crate::connectors::file::FileFormat;
use crate::error::{Error, Result};

/// The longest line (record) a file source reads: a longer one is refused, not buffered.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// JSON nesting a line may have. Weir's column types are flat, and arrow's JSON decoder recurses
/// per level: a line of 100,000 `[` overflowed the stack.
pub const MAX_JSON_DEPTH: usize = 64;

/// Bytes read from the file at a time.
const READ_CHUNK: usize = 1 << 20;

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

/// Where a reader resumes: at `offset`, the start of a record, after dropping the first `skip`
/// records from there (they were handed out before, as part of a batch a paced source split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Resume {
    pub offset: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skip: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a reader decodes and how.
#[derive(Debug, Clone)]
pub struct RecordLayout {
    pub format: FileFormat,
    /// The declared (physical) columns of the file.
    pub declared: SchemaRef,
    /// The columns to produce, as indices into `declared`.
    pub columns: Vec<usize>,
    pub batch_size: usize,
}

/// The push decoder of the file's format: for CSV Weir's line decoder when it builds every
/// projected column's type, else arrow's.
enum RecordDecoder {
    // Boxed: the CSV decoders are several times the JSON one's size.
    CsvLines(Box<CsvLineDecoder>),
    Csv(Box<csv::reader::Decoder>),
    Json(json::reader::Decoder),
}

impl RecordDecoder {
    /// A CSV decoder skips the header line when it starts at the file's first byte.
    fn new(layout: &RecordLayout, batch_size: usize, at_file_start: bool) -> Result<Self> {
        Ok(match layout.format {
            FileFormat::Csv if CsvLineDecoder::supports(&layout.declared, &layout.columns) => RecordDecoder::CsvLines(Box::new(
                CsvLineDecoder::new(&layout.declared, &layout.columns, batch_size, at_file_start)?,
            )),
            FileFormat::Csv => RecordDecoder::Csv(Box::new(
                csv::ReaderBuilder::new(layout.declared.clone())
                    .with_header(at_file_start)
                    .with_batch_size(batch_size)
                    .with_projection(layout.columns.clone())
                    .build_decoder(),
            )),
            FileFormat::Json => RecordDecoder::Json(
                json::ReaderBuilder::new(Arc::new(layout.declared.project(&layout.columns)?))
                    .with_batch_size(batch_size)
                    .build_decoder()?,
            ),
        })
    }

    fn decode(&mut self, bytes: &[u8]) -> std::result::Result<usize, ArrowError> {
        match self {
            RecordDecoder::CsvLines(d) => d.decode(bytes),
            RecordDecoder::Csv(d) => d.decode(bytes),
            RecordDecoder::Json(d) => d.decode(bytes),
        }
    }

    fn flush(&mut self) -> std::result::Result<Option<RecordBatch>, ArrowError> {
        match self {
            RecordDecoder::CsvLines(d) => d.flush(),
            RecordDecoder::Csv(d) => d.flush(),
            RecordDecoder::Json(d) => d.flush(),
        }
    }
}

/// Reads the records that start in `[resume.offset, end)` of a file, in batches.
pub struct SplitReader {
    path: PathBuf,
    file: File,
    json: bool,
    decoder: RecordDecoder,
    /// Bytes read from the file: `buf[pos..lines_end]` are checked whole lines the decoder has not
    /// taken yet, `buf[lines_end..filled]` the start of a line still being read.
    buf: Vec<u8>,
    pos: usize,
    lines_end: usize,
    filled: usize,
    /// The file offset of `buf[pos]`: where the decoder's next record starts once it is flushed.
    offset: u64,
    /// The file offset of `buf[filled]`.
    read_to: u64,
    /// Where reading stops (the split's end; for a monitored file, the end of its complete lines).
    end: u64,
    /// Records still to drop (`Resume::skip`).
    skip: u64,
    /// The bytes given to the decoder end inside a line (the file's last line, without its
    /// newline): the decoder must be told the input ended to finish that record. (A monitored
    /// file's reader never is: it may grow.)
    ends_mid_line: bool,
}

impl SplitReader {
    pub fn open(path: &Path, mut file: File, layout: &RecordLayout, from: Resume, end: u64) -> Result<Self> {
        file.seek(SeekFrom::Start(from.offset))?;
        let decoder = RecordDecoder::new(layout, layout.batch_size, from.offset == 0)?;
        Ok(SplitReader {
            path: path.to_path_buf(),
            file,
            json: layout.format == FileFormat::Json,
            decoder,
            buf: vec![0; READ_CHUNK],
            pos: 0,
            lines_end: 0,
            filled: 0,
            offset: from.offset,
            read_to: from.offset,
            end: end.max(from.offset),
            skip: from.skip,
            ends_mid_line: false,
        })
    }

    /// A monitored file grew: read on to `end` (the end of its complete lines).
    pub fn extend_to(&mut self, end: u64) {
        self.end = self.end.max(end);
    }

    /// Where reading stops now.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The next batch (records a resume skips already dropped) and the offset where the record
    /// after its last one starts; `None` when everything up to the end was read.
    pub fn next_batch(&mut self) -> Result<Option<(RecordBatch, u64)>> {
        loop {
            let Some(batch) = self.decode_batch()? else { return Ok(None) };
            let skipped = self.skip.min(batch.num_rows() as u64) as usize;
            self.skip -= skipped as u64;
            if skipped < batch.num_rows() {
                return Ok(Some((batch.slice(skipped, batch.num_rows() - skipped), self.offset)));
            }
        }
    }

    fn decode_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.pos == self.lines_end && !self.fill()? {
                if self.ends_mid_line {
                    self.ends_mid_line = false;
                    self.decoder.decode(&[]).map_err(|e| self.decode_error(e))?;
                }
                return self.flush();
            }
            let given = self.lines_end - self.pos;
            let taken = self
                .decoder
                .decode(&self.buf[self.pos..self.lines_end])
                .map_err(|e| self.decode_error(e))?;
            self.pos += taken;
            self.offset += taken as u64;
            if taken < given {
                // The batch is full, or a CSV decoder stopped after skipping the header line
                // (then it holds no rows yet, and decoding goes on).
                match self.flush()? {
                    Some(batch) => return Ok(Some(batch)),
                    None if taken > 0 => continue,
                    None => return Err(Error::internal("the record decoder took no bytes and gave no rows")),
                }
            }
        }
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        self.decoder.flush().map_err(|e| self.decode_error(e))
    }

    /// Reads on until at least one more whole line (or the last bytes before the end) is in the
    /// buffer and checked; false when there is nothing more before the end.
    fn fill(&mut self) -> Result<bool> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.lines_end -= self.pos;
            self.pos = 0;
        }
        loop {
            if self.read_to >= self.end {
                // The last line of the range may lack its newline (the file's last line).
                if self.lines_end < self.filled {
                    self.check_lines(self.lines_end, self.filled)?;
                    self.lines_end = self.filled;
                    self.ends_mid_line = true;
                    return Ok(true);
                }
                return Ok(false);
            }
            if self.filled == self.buf.len() {
                let grown = (self.buf.len() * 2).min(MAX_LINE_BYTES + READ_CHUNK);
                self.buf.resize(grown, 0);
            }
            let want = (self.buf.len() - self.filled).min((self.end - self.read_to) as usize);
            let n = self.file.read(&mut self.buf[self.filled..self.filled + want])?;
            if n == 0 {
                // The file is shorter than when the split was planned: it ends here.
                self.end = self.read_to;
                continue;
            }
            let from = self.filled;
            self.filled += n;
            self.read_to += n as u64;
            match memchr::memrchr(b'\n', &self.buf[from..self.filled]) {
                Some(newline) => {
                    let lines_end = from + newline + 1;
                    self.check_lines(self.lines_end, lines_end)?;
                    self.lines_end = lines_end;
                    return Ok(true);
                }
                None if self.filled - self.lines_end > MAX_LINE_BYTES => {
                    return Err(self.bad_line(self.lines_end, format!("longer than {MAX_LINE_BYTES} bytes")));
                }
                None => {}
            }
        }
    }

    /// Checks the lines in `buf[from..to]` (`from` starts a line).
    fn check_lines(&self, from: usize, to: usize) -> Result<()> {
        if !self.json && to - from <= MAX_LINE_BYTES {
            // No line in there can be too long, and CSV has no nesting to check.
            return Ok(());
        }
        let mut start = from;
        for newline in memchr::memchr_iter(b'\n', &self.buf[from..to])
            .map(|i| from + i)
            .chain(std::iter::once(to))
        {
            if start >= to {
                break;
            }
            let line = &self.buf[start..newline];
            if line.len() > MAX_LINE_BYTES {
                return Err(self.bad_line(start, format!("longer than {MAX_LINE_BYTES} bytes")));
            }
            if self.json && JsonNesting::exceeds(line, MAX_JSON_DEPTH) {
                return Err(self.bad_line(start, format!("JSON nested deeper than {MAX_JSON_DEPTH} levels")));
            }
            start = newline + 1;
        }
        Ok(())
    }

    /// The file offset of `buf[index]`.
    fn file_offset(&self, index: usize) -> u64 {
        self.offset + (index - self.pos) as u64
    }

    fn bad_line(&self, index: usize, what: String) -> Error {
        let line = line_number_at(&self.path, self.file_offset(index));
        let error = std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {line}: {what}"));
        Error::from(error).context(format!("reading '{}'", self.path.display()))
    }

    /// Arrow counts lines from where the decoder started; the context says where that was.
    fn decode_error(&self, error: ArrowError) -> Error {
        let line = line_number_at(&self.path, self.offset);
        Error::from(error).context(format!("reading '{}' (records from line {line})", self.path.display()))
    }
}

/// The 1-based line number of the byte at `offset` of the file (0 when the file cannot be read).
/// Only for error messages: it reads the file up to there.
fn line_number_at(path: &Path, offset: u64) -> u64 {
    let Ok(file) = File::open(path) else { return 0 };
    let mut reader = file.take(offset);
    let mut buf = vec![0; READ_CHUNK];
    let mut newlines = 0;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return newlines + 1,
            Ok(n) => newlines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64,
            Err(_) => return 0,
        }
    }
}

/// The offset where the record after the first `rows` records of the file starts (the file read
/// from its start). Turns a position kept as a row count (checkpoints of Weir before file splits)
/// into a byte offset.
pub fn offset_after_rows(path: &Path, file: impl Fn() -> Result<File>, layout: &RecordLayout, rows: u64) -> Result<u64> {
    let mut at = Resume::default();
    let mut remaining = rows;
    while remaining > 0 {
        // A decoder stops exactly after its batch: the last batch is cut to the rows left.
        let batch_size = remaining.min(layout.batch_size.max(8192) as u64) as usize;
        let mut layout = layout.clone();
        layout.batch_size = batch_size;
        let mut reader = SplitReader::open(path, file()?, &layout, at, u64::MAX)?;
        match reader.next_batch()? {
            Some((batch, next)) => {
                remaining -= batch.num_rows() as u64;
                at = Resume { offset: next, skip: 0 };
            }
            None => break,
        }
    }
    Ok(at.offset)
}
