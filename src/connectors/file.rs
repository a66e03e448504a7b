//! The `file` source: a CSV (with a header line) or JSON-lines file, read with arrow's decoders in
//! declared column order. Bounded by default: the file is cut into byte ranges (`source.split-size`,
//! see `file_split`) that the source subtasks read in parallel, and a checkpoint keeps each range's
//! byte offset. With `source.monitor-interval` (Flink's option) it is unbounded and one subtask
//! reads it: at the end of the file it checks every interval for complete lines appended since,
//! and reads them too; the other subtasks stay open and idle (as Flink's readers without a split),
//! so `table.exec.source.idle-timeout` matters there.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::connectors::MAX_BATCH_ROWS;
use crate::connectors::file_reader::{RecordLayout, Resume, SplitReader, offset_after_rows};
use crate::connectors::file_split::{FilePosition, FileSplit, plan_splits};
use crate::connectors::pacer::Pacer;
use crate::data_dir::FileRoots;
use crate::error::{Error, Result, UserErrorKind};
use crate::runtime::{Source, SourcePosition};
use crate::settings::{parse_duration, parse_memory_size};

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
    /// `source.split-size`: the bytes of one split of a bounded file.
    pub split_size: u64,
}

/// Splits of a bounded file, unless `source.split-size` says otherwise: large enough that a
/// split's set-up (an open, a seek, a decoder) is negligible, small enough to balance the subtasks.
pub const DEFAULT_SPLIT_SIZE: u64 = 16 << 20;

impl FileConfig {
    /// `roots`: the directories the file must lie in; `path` is kept resolved.
    pub fn from_options(options: &BTreeMap<String, String>, roots: &FileRoots) -> Result<Self> {
        let mut path = None;
        let mut format = FileFormat::Csv;
        let mut batch_size = 8192;
        let mut rows_per_second = None;
        let mut monitor_interval = None;
        let mut split_size = DEFAULT_SPLIT_SIZE;
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
                "source.split-size" => {
                    split_size = parse_memory_size(key, value)?;
                    if split_size == 0 {
                        return Err(Error::invalid("'source.split-size' must be positive"));
                    }
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown option '{other}' for the file connector; it takes path, format, batch.size, rows-per-second, source.monitor-interval, source.split-size, batch.linger, fail.at.row"
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
            split_size,
        })
    }

    pub fn check_readable(&self) -> Result<()> {
        open_regular_file(&self.path).map(|_| ())
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
        if let Some(newline) = memchr::memrchr(b'\n', &buffer) {
            return Ok(start + newline as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

/// Rows read from a split and not handed out yet.
struct Ahead {
    batch: RecordBatch,
    /// The index in `FileSource::splits` of the split they came from.
    split: usize,
    /// Where the record after the batch's last one starts.
    end: u64,
}

/// One file source subtask: it reads its splits (see `file_split`) one after another, in order.
pub struct FileSource {
    config: FileConfig,
    layout: RecordLayout,
    /// This subtask's splits, in reading order, each with where it resumes (its end once read).
    splits: Vec<(FileSplit, Resume)>,
    /// The split being read (index into `splits`) and its reader.
    reading: Option<(usize, SplitReader)>,
    ahead: Option<Ahead>,
    /// Rows handed out since the source opened or was sought (the pacer counts them).
    emitted: u64,
    pacer: Pacer,
}

impl FileSource {
    /// Opens subtask `subtask` of `parallelism`. A bounded file is cut into splits, split i read by
    /// subtask i mod parallelism; a monitored file is one split, read by subtask 0 (the others
    /// stay open and idle, as Flink's readers without a split).
    pub fn open(
        config: FileConfig,
        declared: SchemaRef,
        columns: &[usize],
        subtask: usize,
        parallelism: usize,
        linger: Duration,
    ) -> Result<Self> {
        let mut file = open_regular_file(&config.path)?;
        let all = match config.monitor_interval {
            Some(_) => vec![FileSplit {
                index: 0,
                start: 0,
                end: u64::MAX,
            }],
            None => {
                let len = file.metadata()?.len();
                plan_splits(&mut file, len, config.split_size)?
            }
        };
        let readers = parallelism.min(all.len()).max(1);
        let splits: Vec<(FileSplit, Resume)> = all
            .into_iter()
            .filter(|split| split.owner(parallelism) == subtask)
            .map(|split| {
                (
                    split,
                    Resume {
                        offset: split.start,
                        skip: 0,
                    },
                )
            })
            .collect();
        // The configured rate is the whole source's: each reading subtask takes its share.
        let rate = config.rows_per_second.map(|r| r as f64 / readers as f64);
        let layout = RecordLayout {
            format: config.format,
            declared,
            columns: columns.to_vec(),
            batch_size: config.batch_size,
        };
        Ok(FileSource {
            config,
            layout,
            splits,
            reading: None,
            ahead: None,
            emitted: 0,
            pacer: Pacer::new(rate, linger),
        })
    }

    /// The next rows of this subtask's splits; `None` when every split is read to its end (a
    /// monitored file: when it holds no complete line beyond what was read).
    fn read_next(&mut self) -> Result<Option<Ahead>> {
        loop {
            if self.reading.is_none() && !self.open_next_split()? {
                return Ok(None);
            }
            let Some((index, reader)) = self.reading.as_mut() else {
                return Ok(None);
            };
            let index = *index;
            if let Some((batch, end)) = reader.next_batch()? {
                return Ok(Some(Ahead { batch, split: index, end }));
            }
            if self.config.monitor_interval.is_some() {
                return Ok(None);
            }
            let (split, resume) = &mut self.splits[index];
            *resume = Resume {
                offset: split.end,
                skip: 0,
            };
            self.reading = None;
        }
    }

    /// Opens a reader on the first split not read to its end; false when there is none.
    fn open_next_split(&mut self) -> Result<bool> {
        let Some(index) = self.splits.iter().position(|(split, resume)| resume.offset < split.end) else {
            return Ok(false);
        };
        let (split, resume) = self.splits[index];
        let mut file = open_regular_file(&self.config.path)?;
        let end = match self.config.monitor_interval {
            Some(_) => complete_lines_end(&mut file, resume.offset)?,
            None => split.end,
        };
        let reader = SplitReader::open(&self.config.path, file, &self.layout, resume, end)?;
        self.reading = Some((index, reader));
        Ok(true)
    }

    /// A monitored file: whether complete lines were appended beyond what the reader reads.
    fn file_grew(&mut self) -> Result<bool> {
        // `read_next` opens the reader of a monitored file's only split; none: this subtask owns none.
        let Some((_, reader)) = self.reading.as_mut() else {
            return Ok(false);
        };
        let before = reader.end();
        let mut file = open_regular_file(&self.config.path)?;
        let end = complete_lines_end(&mut file, before)?;
        reader.extend_to(end);
        Ok(end > before)
    }
}

#[async_trait]
impl Source for FileSource {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.ahead.is_none() {
                self.ahead = self.read_next()?;
            }
            if let Some(available) = self.ahead.as_ref().map(|a| a.batch.num_rows()) {
                // The rows stay in `ahead` while the pacer waits: a barrier may drop this call.
                let len = (self.pacer.next_batch_len(self.emitted, available as u64).await as usize).min(available);
                let Some(ahead) = self.ahead.take() else { continue };
                let (_, resume) = &mut self.splits[ahead.split];
                if len < available {
                    resume.skip += len as u64;
                    self.ahead = Some(Ahead {
                        batch: ahead.batch.slice(len, available - len),
                        split: ahead.split,
                        end: ahead.end,
                    });
                } else {
                    *resume = Resume {
                        offset: ahead.end,
                        skip: 0,
                    };
                }
                self.emitted += len as u64;
                return Ok(Some(ahead.batch.slice(0, len)));
            }
            let Some(interval) = self.config.monitor_interval else {
                return Ok(None);
            };
            if !self.file_grew()? {
                tokio::time::sleep(interval).await;
            }
        }
    }

    fn position(&self) -> SourcePosition {
        let position = FilePosition {
            splits: self.splits.iter().map(|(split, resume)| (split.index, *resume)).collect(),
            rows_read: None,
        };
        position.encode().unwrap_or_default()
    }

    /// Every split named in the position resumes there. A row count (a checkpoint of Weir before
    /// file splits) is turned into the offset after that many rows of the file.
    fn seek(&mut self, position: &SourcePosition) -> Result<()> {
        let position = FilePosition::decode(position)?;
        let rows_read_to = match position.rows_read {
            Some(rows) if rows > 0 => {
                let path = self.config.path.clone();
                Some(offset_after_rows(&path, || open_regular_file(&path), &self.layout, rows)?)
            }
            _ => None,
        };
        for (split, resume) in &mut self.splits {
            if let Some(at) = position.splits.get(&split.index) {
                *resume = *at;
            } else if let Some(offset) = rows_read_to.filter(|offset| *offset > split.start) {
                *resume = Resume {
                    offset: offset.min(split.end),
                    skip: 0,
                };
            }
        }
        self.reading = None;
        self.ahead = None;
        self.emitted = 0;
        self.pacer = self.pacer.resumed(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    /// A CSV of `rows` rows `id,name`, ids 0.., names of varying length (so splits cut mid-line).
    fn csv_file(dir: &Path, rows: u64) -> PathBuf {
        let mut text = String::from("id,name\n");
        for id in 0..rows {
            text.push_str(&format!("{id},{}\n", "x".repeat((id % 7) as usize)));
        }
        let path = dir.join("rows.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn config(path: &Path, format: FileFormat, split_size: u64, batch_size: usize) -> FileConfig {
        FileConfig {
            path: path.to_path_buf(),
            format,
            batch_size,
            rows_per_second: None,
            monitor_interval: None,
            split_size,
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn open(config: &FileConfig, subtask: usize, parallelism: usize) -> FileSource {
        FileSource::open(config.clone(), schema(), &[0], subtask, parallelism, Duration::ZERO).unwrap()
    }

    fn ids(batch: &RecordBatch) -> Vec<i64> {
        let ids = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        (0..ids.len()).map(|i| ids.value(i)).collect()
    }

    /// Reads up to `batches` batches (all when None); returns the ids.
    async fn read(source: &mut FileSource, batches: Option<usize>) -> Vec<i64> {
        let mut out = Vec::new();
        let mut n = 0;
        while batches.is_none_or(|max| n < max) {
            match source.next_batch().await.unwrap() {
                Some(batch) => out.extend(ids(&batch)),
                None => break,
            }
            n += 1;
        }
        out
    }

    /// Every subtask of `parallelism` reads to its end, after seeking to `from` if given; the ids
    /// of all of them, sorted.
    async fn read_all_subtasks(config: &FileConfig, parallelism: usize, from: Option<&SourcePosition>) -> Vec<i64> {
        let mut all = Vec::new();
        for subtask in 0..parallelism {
            let mut source = open(config, subtask, parallelism);
            if let Some(position) = from {
                source.seek(position).unwrap();
            }
            all.extend(read(&mut source, None).await);
        }
        all.sort();
        all
    }

    #[tokio::test]
    async fn subtasks_read_disjoint_splits_that_cover_the_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = csv_file(dir.path(), 10_000);
        let config = config(&path, FileFormat::Csv, 4096, 500);
        let mut all = Vec::new();
        for subtask in 0..3 {
            let rows = read(&mut open(&config, subtask, 3), None).await;
            // Within a subtask, its splits come in file order.
            assert!(rows.windows(2).all(|w| w[0] < w[1]), "subtask {subtask} out of order");
            all.extend(rows);
        }
        all.sort();
        assert_eq!(all, (0..10_000).collect::<Vec<i64>>());
    }

    #[tokio::test]
    async fn positions_restore_exactly_at_another_parallelism() {
        let dir = tempfile::tempdir().unwrap();
        let path = csv_file(dir.path(), 10_000);
        let config = config(&path, FileFormat::Csv, 4096, 300);
        // Two subtasks read a few batches each, then a checkpoint takes their positions.
        let mut before = Vec::new();
        let mut positions = Vec::new();
        for (subtask, batches) in [(0, 7), (1, 3)] {
            let mut source = open(&config, subtask, 2);
            before.extend(read(&mut source, Some(batches)).await);
            positions.push(source.position());
        }
        let merged = FilePosition::merged(&positions).unwrap();
        let after = read_all_subtasks(&config, 3, Some(&merged)).await;
        let before_set: BTreeSet<i64> = before.iter().copied().collect();
        assert!(after.iter().all(|id| !before_set.contains(id)), "a row was read twice");
        let mut all: Vec<i64> = before.into_iter().chain(after).collect();
        all.sort();
        assert_eq!(all, (0..10_000).collect::<Vec<i64>>());
    }

    #[tokio::test]
    async fn a_partly_handed_out_batch_resumes_after_its_handed_out_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = csv_file(dir.path(), 1_000);
        let mut config = config(&path, FileFormat::Csv, 1 << 20, 400);
        // A slow rate makes the pacer hand out part of a batch.
        config.rows_per_second = Some(50);
        let mut source = FileSource::open(config.clone(), schema(), &[0], 0, 1, Duration::from_millis(10)).unwrap();
        let first = read(&mut source, Some(1)).await;
        assert!(!first.is_empty() && first.len() < 400, "{} rows", first.len());
        let position = source.position();
        config.rows_per_second = None;
        let mut resumed = open(&config, 0, 1);
        resumed.seek(&position).unwrap();
        let rest = read(&mut resumed, None).await;
        assert_eq!(rest.first().copied(), Some(first.len() as i64));
        assert_eq!(first.len() + rest.len(), 1_000);
    }

    #[tokio::test]
    async fn a_row_count_from_before_splits_resumes_after_that_many_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = csv_file(dir.path(), 5_000);
        let config = config(&path, FileFormat::Csv, 2048, 256);
        let old = FilePosition::merged(&[SourcePosition::from(1234u64), SourcePosition::from(0u64)]).unwrap();
        assert_eq!(read_all_subtasks(&config, 2, Some(&old)).await, (1234..5_000).collect::<Vec<i64>>());
    }

    #[tokio::test]
    async fn json_lines_and_a_last_line_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.json");
        let text: Vec<String> = (0..2_000)
            .map(|id| format!(r#"{{"id": {id}, "name": "{}"}}"#, "y".repeat(id % 5)))
            .collect();
        std::fs::write(&path, text.join("\n")).unwrap();
        let config = config(&path, FileFormat::Json, 1000, 128);
        assert_eq!(read_all_subtasks(&config, 2, None).await, (0..2_000).collect::<Vec<i64>>());
    }

    #[tokio::test]
    async fn a_monitored_file_resumes_at_its_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = csv_file(dir.path(), 100);
        let mut config = config(&path, FileFormat::Csv, 16, 1000);
        config.monitor_interval = Some(Duration::from_millis(10));
        let mut source = open(&config, 0, 2);
        assert_eq!(read(&mut source, Some(1)).await.len(), 100);
        // The other subtask owns nothing: it waits (idle) instead of ending.
        let mut other = open(&config, 1, 2);
        assert!(tokio::time::timeout(Duration::from_millis(50), other.next_batch()).await.is_err());
        let position = source.position();
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, b"100,a\n101,b\n102,").unwrap();
        assert_eq!(read(&mut source, Some(1)).await, vec![100, 101]);
        let mut resumed = open(&config, 0, 1);
        resumed.seek(&position).unwrap();
        assert_eq!(read(&mut resumed, Some(1)).await, vec![100, 101]);
    }
}
