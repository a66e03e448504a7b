//! The `filesystem` table (Flink's filesystem sink connector): rows written as files under a
//! directory, one subdirectory per partition of `PARTITIONED BY (dt, hm)` (`dt=2023-11-14/
//! hm=22%3A13/`, values escaped as Hive and Flink escape them; the partition columns are in the
//! path, not in the files), in `csv` (no header, as Flink's), `json` (an object per line) or
//! `parquet` (snappy-compressed, one row group per 64k rows) format. CSV and JSON timestamps are
//! written as Flink writes them, `2023-11-14 22:13:20.040`; parquet keeps them typed (INT64
//! TIMESTAMP(MILLIS) for TIMESTAMP(3), not adjusted to UTC).
//!
//! Exactly-once as Flink's file sink. A sink subtask stages each epoch's rows (in progress); the
//! checkpoint keeps the staged file (pending); when the checkpoint completes, the committer writes
//! each partition's rows of the epoch as one finished file, `part-<job>-<subtask>-<epoch>.<ext>`
//! (temp file, fsync, rename). A finished file is never written twice, so committing an epoch again
//! after a crash is safe, and a RESTORE from an earlier checkpoint deletes the files of the epochs
//! after it, which the job writes again. Without checkpointing the rows are finished when the input
//! ends (an unbounded job without checkpoints finishes none, as in Flink). Names starting with `.`
//! or `_` are not data: readers skip them, as Flink's and Hive's do.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufWriter;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Datelike, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::catalog::{ColumnDef, TableDef};
use crate::data_dir::FileRoots;
use crate::error::{Error, Result};
use crate::runtime::Sink;
use crate::runtime::staging::{FINAL_EPOCH, SinkStaging, StagedFile};

/// The directory name of a partition whose value is NULL (Flink's `partition.default-name`).
const NULL_PARTITION: &str = "__DEFAULT_PARTITION__";
/// Timestamps in files, as Flink's CSV and JSON formats write them (`json.timestamp-format.standard` = 'SQL').
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// A `filesystem` table's options, checked by CREATE TABLE and parsed again by each job.
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    pub table: String,
    /// The table's directory, resolved inside the file roots.
    pub path: PathBuf,
    pub format: SinkFormat,
    /// Table columns that name the partition directories, outermost first.
    pub partition_columns: Vec<usize>,
    /// Table columns written into the files.
    pub data_columns: Vec<usize>,
    /// The table's column names (the rows' own names are the query's).
    pub column_names: Vec<String>,
}

impl FileSinkConfig {
    pub fn parse(table: &TableDef, roots: &FileRoots) -> Result<Self> {
        Self::from_options(&table.name, &table.options, &table.columns, &table.partitioned_by, roots)
    }

    pub fn from_options(
        table: &str,
        options: &BTreeMap<String, String>,
        columns: &[ColumnDef],
        partitioned_by: &[String],
        roots: &FileRoots,
    ) -> Result<Self> {
        let mut path = None;
        let mut format = None;
        for (key, value) in options {
            match key.as_str() {
                "path" => {
                    let local = value.strip_prefix("file://").unwrap_or(value);
                    if local.contains("://") {
                        return Err(Error::unsupported(format!(
                            "filesystem table '{table}': path '{value}' is not a local directory (file:// or a plain path)"
                        )));
                    }
                    path = Some(roots.resolve("filesystem table", Path::new(local))?);
                }
                "format" => {
                    format = Some(match value.to_ascii_lowercase().as_str() {
                        "csv" => SinkFormat::Csv,
                        "json" => SinkFormat::Json,
                        "parquet" => SinkFormat::Parquet,
                        other => {
                            return Err(Error::unsupported(format!(
                                "filesystem table '{table}': format '{other}' is not supported; use 'csv', 'json' or 'parquet'"
                            )));
                        }
                    })
                }
                other if other.starts_with("sink.partition-commit.") || other.starts_with("partition.time-extractor.") => {
                    return Err(Error::unsupported(format!(
                        "filesystem table '{table}': option '{other}' is not supported: a partition's files are committed at \
                         each checkpoint, with no commit policy or success file"
                    )));
                }
                other => {
                    return Err(Error::invalid(format!(
                        "filesystem table '{table}': unknown option '{other}'; it takes 'path' and 'format'"
                    )));
                }
            }
        }
        let path = path.ok_or_else(|| Error::invalid(format!("filesystem table '{table}' needs a 'path'")))?;
        let format =
            format.ok_or_else(|| Error::invalid(format!("filesystem table '{table}' needs a 'format' ('csv', 'json' or 'parquet')")))?;
        let mut partition_columns = Vec::with_capacity(partitioned_by.len());
        for name in partitioned_by {
            let index = columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| Error::invalid(format!("PARTITIONED BY column '{name}' is not a column of table '{table}'")))?;
            if partition_columns.contains(&index) {
                return Err(Error::invalid(format!("table '{table}' is PARTITIONED BY '{name}' twice")));
            }
            partition_columns.push(index);
        }
        let data_columns: Vec<usize> = (0..columns.len()).filter(|c| !partition_columns.contains(c)).collect();
        if data_columns.is_empty() {
            return Err(Error::invalid(format!(
                "filesystem table '{table}' is partitioned by every column: its files would hold nothing"
            )));
        }
        Ok(FileSinkConfig {
            table: table.to_string(),
            path,
            format,
            partition_columns,
            data_columns,
            column_names: columns.iter().map(|c| c.name.clone()).collect(),
        })
    }

    fn extension(&self) -> &'static str {
        match self.format {
            SinkFormat::Csv => "csv",
            SinkFormat::Json => "json",
            SinkFormat::Parquet => "parquet",
        }
    }

    /// The finished file of `subtask`'s rows of `epoch` in partition directory `dir`.
    fn part_file(&self, dir: &Path, job: &str, subtask: usize, epoch: u64) -> PathBuf {
        dir.join(format!("part-{job}-{subtask}-{epoch}.{}", self.extension()))
    }

    /// Writes the rows one sink subtask staged in `epoch` as finished files, one per partition,
    /// skipping partitions whose file a previous commit of the epoch finished.
    pub fn commit(&self, job: &str, subtask: usize, epoch: u64, staged: &[StagedFile]) -> Result<()> {
        let mut open: BTreeMap<PathBuf, PartFile> = BTreeMap::new();
        for file in staged {
            for batch in file.batches()? {
                let batch = batch?;
                for (dir, rows) in self.partitions(&batch)? {
                    let target = self.part_file(&self.path.join(&dir), job, subtask, epoch);
                    let data = self.data_rows(&batch, &rows)?;
                    let part = match open.get_mut(&target) {
                        Some(part) => part,
                        None => {
                            let part = PartFile::open(&target, self.format, &data.schema())?;
                            open.entry(target).or_insert(part)
                        }
                    };
                    part.write(&data)?;
                }
            }
        }
        for (target, part) in open {
            part.finish(&target)?;
        }
        Ok(())
    }

    /// Deletes this job's finished files of the epochs after `epoch` (they are written again after
    /// a restore from checkpoint `epoch`), and unfinished temp files.
    pub fn rewind(&self, job: &str, epoch: u64) -> Result<()> {
        let mut dirs = vec![self.path.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::from(e).context(format!("cannot list {}", dir.display()))),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let finished = part_file_epoch(&name, job);
                let unfinished = name
                    .strip_prefix('.')
                    .and_then(|n| n.strip_suffix(".inprogress"))
                    .is_some_and(|n| part_file_epoch(n, job).is_some());
                let later = finished.is_some_and(|e| e > epoch);
                if unfinished || later {
                    std::fs::remove_file(&path).map_err(|e| Error::from(e).context(format!("cannot delete {}", path.display())))?;
                }
            }
        }
        Ok(())
    }

    /// The rows of `batch` by partition directory (relative), in row order within each. A
    /// partition's directory is named once per batch: its rows mostly come in runs (by time).
    fn partitions(&self, batch: &RecordBatch) -> Result<Vec<(PathBuf, Vec<u32>)>> {
        if self.partition_columns.is_empty() {
            return Ok(vec![(PathBuf::new(), (0..batch.num_rows() as u32).collect())]);
        }
        let options = FormatOptions::default().with_timestamp_format(Some(TIMESTAMP_FORMAT));
        let formatters = self
            .partition_columns
            .iter()
            .map(|c| Ok(ArrayFormatter::try_new(batch.column(*c).as_ref(), &options)?))
            .collect::<Result<Vec<_>>>()?;
        // Each partition's values (None: NULL) and rows, indexed by `key`: its values' text, each
        // followed by a NUL and its length in bytes (u64::MAX for NULL), so that no two partitions
        // share a key.
        let mut partitions: Vec<(Vec<Option<String>>, Vec<u32>)> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let (mut key, mut last_key, mut current) = (Vec::new(), Vec::new(), 0);
        let mut spans: Vec<Option<(usize, usize)>> = Vec::with_capacity(formatters.len());
        for row in 0..batch.num_rows() {
            key.clear();
            spans.clear();
            for (formatter, column) in formatters.iter().zip(&self.partition_columns) {
                let span = if batch.column(*column).is_valid(row) {
                    let start = key.len();
                    write!(key, "{}", formatter.value(row)).map_err(|_| {
                        Error::invalid(format!(
                            "cannot write a value of partition column '{}' as text",
                            self.column_names[*column]
                        ))
                    })?;
                    Some((start, key.len()))
                } else {
                    None
                };
                let len = span.map_or(u64::MAX, |(start, end)| (end - start) as u64);
                key.push(0);
                key.extend_from_slice(&len.to_le_bytes());
                spans.push(span);
            }
            if row == 0 || key != last_key {
                current = match index.get(&key) {
                    Some(at) => *at,
                    None => {
                        let values = spans
                            .iter()
                            .map(|span| span.map(|(start, end)| String::from_utf8_lossy(&key[start..end]).into_owned()))
                            .collect();
                        partitions.push((values, Vec::new()));
                        index.insert(key.clone(), partitions.len() - 1);
                        partitions.len() - 1
                    }
                };
                std::mem::swap(&mut key, &mut last_key);
            }
            partitions[current].1.push(row as u32);
        }
        let mut by_dir: Vec<(PathBuf, Vec<u32>)> = partitions
            .into_iter()
            .map(|(values, rows)| {
                let mut dir = PathBuf::new();
                for (value, column) in values.iter().zip(&self.partition_columns) {
                    let value = value.as_deref().map_or_else(|| NULL_PARTITION.to_string(), escape_path_name);
                    dir.push(format!("{}={value}", escape_path_name(&self.column_names[*column])));
                }
                (dir, rows)
            })
            .collect();
        by_dir.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(by_dir)
    }

    /// The data columns of `rows`; for the text formats, timestamps formatted as text.
    fn data_rows(&self, batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
        let indices = UInt32Array::from(rows.to_vec());
        let mut fields = Vec::with_capacity(self.data_columns.len());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.data_columns.len());
        for &c in &self.data_columns {
            let name = &self.column_names[c];
            let column = take(batch.column(c).as_ref(), &indices, None)?;
            if matches!(column.data_type(), DataType::Timestamp(_, _)) && self.format != SinkFormat::Parquet {
                fields.push(Field::new(name, DataType::Utf8, true));
                columns.push(Arc::new(timestamp_text(column.as_ref())?));
            } else {
                fields.push(Field::new(name, column.data_type().clone(), true));
                columns.push(column);
            }
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// A timestamp column as the text formats write it (`TIMESTAMP_FORMAT`: milliseconds, as Flink
/// writes TIMESTAMP(3)). Each second's text is made once and reused by the rows of the same
/// second, which mostly come together; a strftime pattern parsed per row took a fifth of q10's
/// CPU. Zoned timestamps and years outside 0-9999 go through arrow's formatter.
fn timestamp_text(column: &dyn Array) -> Result<StringArray> {
    let per_milli: i64 = match column.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, None) => 1,
        DataType::Timestamp(TimeUnit::Microsecond, None) => 1_000,
        DataType::Timestamp(TimeUnit::Nanosecond, None) => 1_000_000,
        _ => return formatted_text(column),
    };
    let raw = cast(column, &DataType::Int64)?;
    let raw = raw.as_primitive::<Int64Type>();
    let mut text = StringBuilder::with_capacity(raw.len(), raw.len() * TIMESTAMP_TEXT_LEN);
    let (mut second, mut row_text): (Option<(i64, String)>, String) = (None, String::new());
    for value in raw.iter() {
        let Some(value) = value else {
            text.append_null();
            continue;
        };
        let millis = value.div_euclid(per_milli);
        let (s, milli) = (millis.div_euclid(1000), millis.rem_euclid(1000));
        if second.as_ref().is_none_or(|(at, _)| *at != s) {
            let Some(prefix) = second_text(s) else {
                return formatted_text(column);
            };
            second = Some((s, prefix));
        }
        if let Some((_, prefix)) = &second {
            // 0..=999 (rem_euclid): three digits.
            let digit = |d: i64| b'0' + d as u8;
            let fraction = [b'.', digit(milli / 100), digit(milli / 10 % 10), digit(milli % 10)];
            row_text.clear();
            row_text.push_str(prefix);
            row_text.push_str(std::str::from_utf8(&fraction).map_err(|e| Error::internal(e.to_string()))?);
            text.append_value(&row_text);
        }
    }
    Ok(text.finish())
}

/// Bytes of `TIMESTAMP_FORMAT`'s text: `2026-12-05 10:00:00.000`.
const TIMESTAMP_TEXT_LEN: usize = 23;

/// `YYYY-MM-DD HH:MM:SS` of second `s` after the epoch (UTC), for years 0-9999.
fn second_text(s: i64) -> Option<String> {
    let time = chrono::DateTime::from_timestamp(s, 0)?.naive_utc();
    let (date, clock) = (time.date(), time.time());
    (0..=9999).contains(&date.year()).then(|| {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            date.year(),
            date.month(),
            date.day(),
            clock.hour(),
            clock.minute(),
            clock.second()
        )
    })
}

/// A column's text through arrow's formatter (`TIMESTAMP_FORMAT` for zone-less timestamps).
fn formatted_text(column: &dyn Array) -> Result<StringArray> {
    let options = FormatOptions::default().with_timestamp_format(Some(TIMESTAMP_FORMAT));
    let formatter = ArrayFormatter::try_new(column, &options)?;
    let mut text = StringBuilder::with_capacity(column.len(), column.len() * TIMESTAMP_TEXT_LEN);
    let mut value = String::new();
    for i in 0..column.len() {
        if column.is_valid(i) {
            value.clear();
            write!(value, "{}", formatter.value(i))
                .map_err(|_| Error::invalid(format!("cannot write a {} value as text", column.data_type())))?;
            text.append_value(&value);
        } else {
            text.append_null();
        }
    }
    Ok(text.finish())
}

/// The epoch of `name` if it is a finished file of `job`: `part-<job>-<subtask>-<epoch>.<ext>`,
/// both numbers whole (`part-j-1-0-5.csv` is job `j-1`'s, not job `j`'s).
fn part_file_epoch(name: &str, job: &str) -> Option<u64> {
    let (stem, _extension) = name.strip_prefix("part-")?.strip_prefix(job)?.strip_prefix('-')?.rsplit_once('.')?;
    let (subtask, epoch) = stem.split_once('-')?;
    subtask.parse::<usize>().ok()?;
    epoch.parse().ok()
}

/// A partition value or column name as a path segment: the characters Hive and Flink escape
/// (path separators, `=`, `:`, `%`, quotes, control characters, ...) as `%XX`.
fn escape_path_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let escaped = c.is_control()
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
            );
        if escaped {
            let mut bytes = [0u8; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    // A value of `.` or `..` must not name a directory above the table's.
    if out == "." || out == ".." {
        return out.replace('.', "%2E");
    }
    out
}

/// A finished file being written: a hidden temp file beside its target until `finish`.
struct PartFile {
    temp: PathBuf,
    writer: PartWriter,
    /// A previous commit of the epoch finished this file: its rows are not written again.
    done: bool,
}

/// The format of a `filesystem` table's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    Csv,
    Json,
    Parquet,
}

enum PartWriter {
    /// Boxed: a CSV writer is three times a JSON one.
    Csv(Box<datafusion::arrow::csv::Writer<BufWriter<File>>>),
    Json(LineDelimitedWriter<BufWriter<File>>),
    Parquet(Box<ArrowWriter<BufWriter<File>>>),
    None,
}

/// Rows per parquet row group: readers skip and parallelise by row group.
const PARQUET_ROW_GROUP_ROWS: usize = 64 * 1024;

impl PartFile {
    /// `schema`: the rows' (a parquet file's footer holds it).
    fn open(target: &Path, format: SinkFormat, schema: &SchemaRef) -> Result<Self> {
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::internal(format!("bad part file name {}", target.display())))?;
        let temp = target.with_file_name(format!(".{name}.inprogress"));
        if target.exists() {
            return Ok(PartFile {
                temp,
                writer: PartWriter::None,
                done: true,
            });
        }
        if let Some(dir) = target.parent() {
            crate::fs::create_dirs(dir)?;
        }
        let file = File::create(&temp).map_err(|e| Error::from(e).context(format!("cannot write {}", temp.display())))?;
        let file = BufWriter::new(file);
        let writer = match format {
            SinkFormat::Csv => PartWriter::Csv(Box::new(CsvWriterBuilder::new().with_header(false).build(file))),
            SinkFormat::Json => PartWriter::Json(LineDelimitedWriter::new(file)),
            SinkFormat::Parquet => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS))
                    .build();
                PartWriter::Parquet(Box::new(ArrowWriter::try_new(file, schema.clone(), Some(properties))?))
            }
        };
        Ok(PartFile { temp, writer, done: false })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.writer {
            PartWriter::Csv(writer) => writer.write(batch)?,
            PartWriter::Json(writer) => writer.write(batch)?,
            PartWriter::Parquet(writer) => writer.write(batch)?,
            PartWriter::None => {}
        }
        Ok(())
    }

    /// fsync, then rename into place, then fsync the directory.
    fn finish(self, target: &Path) -> Result<()> {
        if self.done {
            return Ok(());
        }
        let buffered = match self.writer {
            PartWriter::Csv(writer) => (*writer).into_inner(),
            PartWriter::Json(mut writer) => {
                writer.finish()?;
                writer.into_inner()
            }
            // `into_inner` writes the footer first.
            PartWriter::Parquet(writer) => writer.into_inner()?,
            PartWriter::None => return Ok(()),
        };
        crate::fs::sync_buffered(buffered, &self.temp)?;
        std::fs::rename(&self.temp, target).map_err(|e| Error::from(e).context(format!("cannot finish {}", target.display())))?;
        if let Some(dir) = target.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// A `filesystem` sink subtask: rows are staged per epoch and finished by `FileSinkConfig::commit`
/// when their checkpoint completes, or at the end of input without checkpointing.
pub struct FileSystemSink {
    staging: SinkStaging,
    /// Without checkpointing: the table, job and subtask whose files the end of input finishes.
    direct: Option<(Arc<FileSinkConfig>, String, usize)>,
}

impl FileSystemSink {
    /// A sink whose epochs the checkpoints hand to the committer.
    pub fn staged(staging: SinkStaging) -> Self {
        FileSystemSink { staging, direct: None }
    }

    /// A sink without checkpointing: rows are staged in a hidden file under the table's directory
    /// and finished when the input ends, as the final epoch.
    pub fn direct(config: Arc<FileSinkConfig>, job: &str, subtask: usize) -> Result<Self> {
        let name = format!(".staging-{job}-{subtask}");
        // Rows a crashed run left staged were never finished: the run starts over. Only this
        // subtask's files (`<name>-<n>.arrow`), not those of a job whose name extends this one's.
        for stale in std::fs::read_dir(&config.path).into_iter().flatten().flatten() {
            let file = stale.file_name().to_string_lossy().into_owned();
            let ours = file
                .strip_prefix(&format!("{name}-"))
                .and_then(|rest| rest.strip_suffix(".arrow"))
                .is_some_and(|n| n.parse::<u64>().is_ok());
            if ours {
                std::fs::remove_file(stale.path())?;
            }
        }
        Ok(FileSystemSink {
            staging: SinkStaging::new(config.path.join(name)),
            direct: Some((config, job.to_string(), subtask)),
        })
    }
}

impl Sink for FileSystemSink {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.staging.push(&batch)
    }

    fn prepare_commit(&mut self) -> Result<Option<StagedFile>> {
        self.staging.take()
    }

    fn finish(&mut self) -> Result<()> {
        let Some((config, job, subtask)) = &self.direct else {
            return Ok(());
        };
        let Some(staged) = self.staging.take()? else { return Ok(()) };
        config.commit(job, *subtask, FINAL_EPOCH, std::slice::from_ref(&staged))?;
        std::fs::remove_file(&staged.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_jobs_own_part_files_are_recognised() {
        assert_eq!(part_file_epoch("part-j-0-5.csv", "j"), Some(5));
        assert_eq!(part_file_epoch("part-j-1-0-5.csv", "j"), None, "job j-1's file");
        assert_eq!(part_file_epoch("part-j-1-0-5.csv", "j-1"), Some(5));
        assert_eq!(part_file_epoch("part-j-x-5.json", "j"), None);
        assert_eq!(part_file_epoch("other.csv", "j"), None);
    }

    #[test]
    fn partition_values_are_escaped_as_path_segments() {
        assert_eq!(escape_path_name("2023-11-14"), "2023-11-14");
        assert_eq!(escape_path_name("22:13"), "22%3A13");
        assert_eq!(escape_path_name("a/b=c"), "a%2Fb%3Dc");
        assert_eq!(escape_path_name(".."), "%2E%2E");
        assert_eq!(escape_path_name("x\ny"), "x%0Ay");
    }

    #[test]
    fn timestamps_are_written_as_arrows_formatter_writes_them() {
        use datafusion::arrow::array::{TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray};
        let second = 1_700_000_000_000;
        let millis = TimestampMillisecondArray::from(vec![
            Some(second),
            Some(second + 7),
            None,
            Some(second + 999),
            Some(second + 1000),
            Some(-1),
            Some(0),
            Some(-86_400_001),
        ]);
        let micros = TimestampMicrosecondArray::from(vec![Some(second * 1000 + 1_999), Some(-1), None]);
        let nanos = TimestampNanosecondArray::from(vec![Some(second * 1_000_000 + 999_999), Some(-1_000_001), Some(5)]);
        // Year 10000: arrow's own text.
        let far = TimestampMillisecondArray::from(vec![Some(253_402_300_800_000), Some(0)]);
        for column in [&millis as &dyn Array, &micros, &nanos, &far] {
            assert_eq!(timestamp_text(column).expect("text"), formatted_text(column).expect("formatted"));
        }
        let text = timestamp_text(&millis).expect("text");
        assert_eq!(text.value(1), "2023-11-14 22:13:20.007");
        assert_eq!(text.value(5), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn rows_go_to_their_partitions_directory() {
        use datafusion::arrow::array::Int64Array;
        let config = FileSinkConfig {
            table: "t".into(),
            path: PathBuf::from("/unused"),
            format: SinkFormat::Csv,
            partition_columns: vec![1, 2],
            data_columns: vec![0],
            column_names: vec!["v".into(), "dt".into(), "hm".into()],
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("dt", DataType::Utf8, true),
            Field::new("hm", DataType::Utf8, true),
        ]));
        // Values that would run together without the lengths in the partition's key.
        let dt = StringArray::from(vec![Some("d1"), Some("d1"), Some("d1\0"), None, Some("d1"), Some("d2")]);
        let hm = StringArray::from(vec![Some("10:00"), Some("10:00"), Some("10:00"), Some("x"), Some("10:00"), None]);
        let v = Int64Array::from_iter_values(0..6);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(v), Arc::new(dt), Arc::new(hm)]).expect("batch");
        let partitions: Vec<(String, Vec<u32>)> = config
            .partitions(&batch)
            .expect("partitions")
            .into_iter()
            .map(|(dir, rows)| (dir.to_string_lossy().into_owned(), rows))
            .collect();
        assert_eq!(
            partitions,
            vec![
                ("dt=__DEFAULT_PARTITION__/hm=x".to_string(), vec![3]),
                ("dt=d1/hm=10%3A00".to_string(), vec![0, 1, 4]),
                ("dt=d1%00/hm=10%3A00".to_string(), vec![2]),
                ("dt=d2/hm=__DEFAULT_PARTITION__".to_string(), vec![5]),
            ]
        );
    }
}
