//! Where a transactional sink subtask keeps the rows of the current epoch (two-phase commit, phase
//! one): an Arrow IPC file, written as the rows arrive. An epoch of any size then takes a bounded
//! amount of memory, and the file is what the checkpoint keeps of the epoch: it is moved into the
//! checkpoint directory, not written again.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};

/// Epoch number of the rows a sink staged after the last checkpoint, committed when input ends.
pub const FINAL_EPOCH: u64 = u64::MAX;

/// The staged rows of one epoch of one sink subtask: a finished Arrow IPC file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    pub path: PathBuf,
}

impl StagedFile {
    /// Writes `batches` into a new file at `path` (not yet fsynced: the checkpoint does that when
    /// it keeps the file); `None` when they hold no row.
    pub fn write(path: &std::path::Path, batches: &[RecordBatch]) -> Result<Option<StagedFile>> {
        let mut rows = batches.iter().filter(|b| b.num_rows() > 0).peekable();
        let Some(first) = rows.peek() else { return Ok(None) };
        if let Some(dir) = path.parent() {
            crate::fs::create_dirs(dir)?;
        }
        let file = File::create(path).map_err(|e| Error::from(e).context(format!("cannot write {}", path.display())))?;
        let mut writer = FileWriter::try_new(BufWriter::new(file), &first.schema())?;
        for batch in rows {
            writer.write(batch)?;
        }
        writer.finish()?;
        drop(writer.into_inner()?);
        Ok(Some(StagedFile { path: path.to_path_buf() }))
    }

    /// The rows, one batch at a time.
    pub fn batches(&self) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
        let file = File::open(&self.path).map_err(|e| Error::from(e).context(format!("staged rows {}", self.path.display())))?;
        let reader = FileReader::try_new(BufReader::new(file), None)?;
        Ok(reader.map(|batch| batch.map_err(Error::from)))
    }
}

/// A sink subtask's staging: one file per epoch, named `<prefix>-<n>.arrow` (a new `n` each epoch).
pub struct SinkStaging {
    /// The attempt's path prefix for this subtask's files.
    prefix: PathBuf,
    next: u64,
    /// The current epoch's file, from its first row on (boxed: a writer is large, a sink
    /// holds the staging inline).
    open: Option<Box<(PathBuf, FileWriter<BufWriter<File>>)>>,
}

impl SinkStaging {
    pub fn new(prefix: PathBuf) -> Self {
        SinkStaging {
            prefix,
            next: 0,
            open: None,
        }
    }

    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let writer = match &mut self.open {
            Some(open) => &mut open.1,
            None => {
                let path = PathBuf::from(format!("{}-{}.arrow", self.prefix.display(), self.next));
                self.next += 1;
                if let Some(dir) = path.parent() {
                    crate::fs::create_dirs(dir)?;
                }
                let file = File::create(&path).map_err(|e| Error::from(e).context(format!("cannot stage rows in {}", path.display())))?;
                let writer = FileWriter::try_new(BufWriter::new(file), &batch.schema())?;
                &mut self.open.insert(Box::new((path, writer))).1
            }
        };
        writer.write(batch)?;
        Ok(())
    }

    /// Ends the epoch: its file, finished (not yet fsynced: the checkpoint does that off the task's
    /// thread), or `None` when no row was staged.
    pub fn take(&mut self) -> Result<Option<StagedFile>> {
        let Some(open) = self.open.take() else { return Ok(None) };
        let (path, mut writer) = *open;
        writer.finish()?;
        drop(writer.into_inner()?);
        Ok(Some(StagedFile { path }))
    }
}

impl Drop for SinkStaging {
    /// An epoch that never reached a barrier is not part of any checkpoint.
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            let _ = std::fs::remove_file(&open.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    #[test]
    fn each_epoch_gets_its_own_file_and_an_unfinished_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut staging = SinkStaging::new(dir.path().join("staging").join("sink-0"));
        assert_eq!(staging.take().unwrap(), None);
        staging.push(&batch(&[1, 2])).unwrap();
        staging.push(&batch(&[])).unwrap();
        staging.push(&batch(&[3])).unwrap();
        let first = staging.take().unwrap().unwrap();
        staging.push(&batch(&[4])).unwrap();
        let second = staging.take().unwrap().unwrap();
        assert_ne!(first, second);
        let rows = |file: &StagedFile| file.batches().unwrap().map(|b| b.unwrap().num_rows()).collect::<Vec<_>>();
        assert_eq!(rows(&first), vec![2, 1]);
        assert_eq!(rows(&second), vec![1]);
        staging.push(&batch(&[5])).unwrap();
        drop(staging);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}
