//! A source file cut into byte ranges (splits) that the source subtasks read in parallel, as
//! Flink's and DataFusion's repartitioned file scans do. Split i covers the nominal range
//! `[i * size, (i + 1) * size)`, moved to line starts: a line belongs to the split in which it
//! starts. The nominal ranges depend only on the file's length and the split size, never on the
//! parallelism, so a checkpoint's per-split positions hold at any parallelism: a restore gives
//! every subtask the positions of all splits (`FilePosition::merged`) and each reads its own.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use serde::{Deserialize, Serialize};

use crate::connectors::file_reader::Resume;
use crate::error::{Error, Result};
use crate::runtime::SourcePosition;

/// One byte range of the file, from a line start to a line start (or the end of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSplit {
    pub index: usize,
    pub start: u64,
    pub end: u64,
}

impl FileSplit {
    /// The subtask that reads this split.
    pub fn owner(&self, parallelism: usize) -> usize {
        self.index % parallelism.max(1)
    }
}

/// Cuts a file of `len` bytes into splits of about `size` bytes, each starting at a line start.
/// A split may be empty (a line longer than the split size spans its range).
pub fn plan_splits(file: &mut File, len: u64, size: u64) -> Result<Vec<FileSplit>> {
    let size = size.max(1);
    let count = len.div_ceil(size).max(1);
    let mut starts = Vec::with_capacity(count as usize + 1);
    starts.push(0);
    for i in 1..count {
        let aligned = line_start_at_or_after(file, i * size, len)?;
        starts.push(aligned.max(*starts.last().unwrap_or(&0)));
    }
    starts.push(len);
    Ok(starts
        .windows(2)
        .enumerate()
        .map(|(index, range)| FileSplit {
            index,
            start: range[0],
            end: range[1],
        })
        .collect())
}

/// The first line start at or after `at`: `at` itself when the byte before it is a newline, else
/// the byte after the next newline (the file's end when there is none).
fn line_start_at_or_after(file: &mut File, at: u64, len: u64) -> Result<u64> {
    const CHUNK: usize = 64 * 1024;
    let mut from = at - 1;
    let mut buf = vec![0; CHUNK];
    while from < len {
        file.seek(SeekFrom::Start(from))?;
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(newline) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(from + newline as u64 + 1);
        }
        from += n as u64;
    }
    Ok(len)
}

/// A file source subtask's position: where each of its splits resumes (a split read to its end
/// resumes at its end). Splits a position does not name start at their beginning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilePosition {
    pub splits: BTreeMap<usize, Resume>,
    /// From a checkpoint written before file splits: the subtask reading the whole file had
    /// handed out this many rows. Turned into byte offsets when the source opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_read: Option<u64>,
}

impl FilePosition {
    pub fn encode(&self) -> Result<SourcePosition> {
        serde_json::to_value(self).map_err(|e| Error::internal(format!("file source position: {e}")))
    }

    /// Reads a position; a bare number is the row count older Weir kept.
    pub fn decode(position: &SourcePosition) -> Result<Self> {
        if let Some(rows) = position.as_u64() {
            return Ok(FilePosition {
                splits: BTreeMap::new(),
                rows_read: Some(rows),
            });
        }
        serde_json::from_value(position.clone()).map_err(|e| Error::internal(format!("bad file source position {position}: {e}")))
    }

    /// Every old subtask's splits in one position, for the subtasks of a restored job (at any
    /// parallelism) to take theirs from. Each split was read by one old subtask only.
    pub fn merged(old: &[SourcePosition]) -> Result<SourcePosition> {
        let mut merged = FilePosition::default();
        for position in old {
            let position = FilePosition::decode(position)?;
            merged.splits.extend(position.splits);
            // Before splits only one subtask read the file; the others kept 0.
            merged.rows_read = merged.rows_read.max(position.rows_read);
        }
        merged.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(text: &str) -> (tempfile::NamedTempFile, File) {
        let mut named = tempfile::NamedTempFile::new().unwrap();
        named.write_all(text.as_bytes()).unwrap();
        let file = File::open(named.path()).unwrap();
        (named, file)
    }

    #[test]
    fn splits_start_at_line_starts_and_cover_the_file() {
        let text = "h\naaaa\nbb\ncccccc\nd\n";
        let (_keep, mut file) = file_with(text);
        let splits = plan_splits(&mut file, text.len() as u64, 5).unwrap();
        let starts: Vec<u64> = splits.iter().map(|s| s.start).collect();
        // Nominal starts 5, 10, 15: byte 4 is 'a' -> next line at 7; byte 9 is '\n' -> 10 is a
        // line start; byte 14 is 'c' -> 17.
        assert_eq!(starts, vec![0, 7, 10, 17]);
        assert_eq!(splits.last().unwrap().end, text.len() as u64);
        for pair in splits.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
    }

    #[test]
    fn a_long_line_leaves_empty_splits() {
        let text = "0123456789abcdef\nx\n";
        let (_keep, mut file) = file_with(text);
        let splits = plan_splits(&mut file, text.len() as u64, 4).unwrap();
        let ranges: Vec<(u64, u64)> = splits.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(ranges, vec![(0, 17), (17, 17), (17, 17), (17, 17), (17, 19)]);
    }

    #[test]
    fn positions_merge_over_old_subtasks_and_read_old_row_counts() {
        let a = FilePosition {
            splits: BTreeMap::from([(0, Resume { offset: 10, skip: 0 }), (2, Resume { offset: 33, skip: 2 })]),
            rows_read: None,
        };
        let b = FilePosition {
            splits: BTreeMap::from([(1, Resume { offset: 20, skip: 0 })]),
            rows_read: None,
        };
        let merged = FilePosition::decode(&FilePosition::merged(&[a.encode().unwrap(), b.encode().unwrap()]).unwrap()).unwrap();
        assert_eq!(merged.splits.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(merged.splits[&2], Resume { offset: 33, skip: 2 });
        let old = FilePosition::merged(&[SourcePosition::from(42u64), SourcePosition::from(0u64)]).unwrap();
        assert_eq!(FilePosition::decode(&old).unwrap().rows_read, Some(42));
    }
}
