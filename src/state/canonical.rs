//! Canonical state files: state entries as Arrow IPC rows (key group, key, value), readable by any
//! backend at any parallelism. Canonical savepoints are made of them, and so are the images of
//! operators' in-memory caches a checkpoint writes next to the backend's own files.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, BinaryArray, UInt16Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::arrow::record_batch::RecordBatch;

use super::{StateBackend, StateWriteBatch};
use crate::error::{Error, Result};
use crate::fs::sync_buffered;

/// File name of an operator's cache image in its snapshot directory: entries the operator held in
/// memory at the barrier, loaded into the backend when the snapshot is restored.
pub const CACHE_IMAGE_FILE: &str = "cache-image.arrow";

const ROWS_PER_BATCH: usize = 8192;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("key_group", DataType::UInt16, false),
        Field::new("key", DataType::Binary, false),
        Field::new("value", DataType::Binary, false),
    ]))
}

/// Writes Arrow IPC batches to a new file and fsyncs it.
pub fn write_ipc_file(path: &Path, schema: &Schema, batches: impl IntoIterator<Item = Result<RecordBatch>>) -> Result<()> {
    let mut writer = FileWriter::try_new(BufWriter::new(File::create(path)?), schema)?;
    for batch in batches {
        writer.write(&batch?)?;
    }
    writer.finish()?;
    sync_buffered(writer.into_inner()?, path)
}

/// Writes `entries` (keys start with their key group) as a canonical state file.
pub fn write_entries<K: AsRef<[u8]>, V: AsRef<[u8]>>(path: &Path, entries: &[(K, V)]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let schema = schema();
    let batches = entries.chunks(ROWS_PER_BATCH).map(|chunk| {
        let groups = UInt16Array::from_iter_values(chunk.iter().map(|(k, _)| {
            let k = k.as_ref();
            u16::from_be_bytes([k.first().copied().unwrap_or(0), k.get(1).copied().unwrap_or(0)])
        }));
        let keys = BinaryArray::from_iter_values(chunk.iter().map(|(k, _)| k.as_ref()));
        let values = BinaryArray::from_iter_values(chunk.iter().map(|(_, v)| v.as_ref()));
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(groups), Arc::new(keys), Arc::new(values)],
        )?)
    });
    write_ipc_file(path, &schema, batches)
}

/// Every entry of a backend as a canonical state file.
pub fn write_backend(backend: &dyn StateBackend, path: &Path) -> Result<()> {
    write_entries(path, &backend.scan(&[], &[0xff; 16])?)
}

/// Loads the entries of canonical state files whose key group satisfies `keep` into `backend`.
pub fn load(files: &[PathBuf], keep: impl Fn(u16) -> bool, backend: &mut dyn StateBackend) -> Result<u64> {
    let mut loaded = 0;
    for path in files {
        let reader = FileReader::try_new(BufReader::new(File::open(path)?), None)?;
        for batch in reader {
            let batch = batch?;
            let bad = || Error::internal(format!("canonical state file {} is malformed", path.display()));
            let groups = batch.column(0).as_any().downcast_ref::<UInt16Array>().ok_or_else(bad)?;
            let keys = batch.column(1).as_any().downcast_ref::<BinaryArray>().ok_or_else(bad)?;
            let values = batch.column(2).as_any().downcast_ref::<BinaryArray>().ok_or_else(bad)?;
            let mut write = StateWriteBatch::default();
            for i in 0..batch.num_rows() {
                if keep(groups.value(i)) {
                    write.put(keys.value(i).to_vec(), values.value(i).to_vec());
                    loaded += 1;
                }
            }
            backend.write(write)?;
        }
    }
    Ok(loaded)
}

/// Rows (keys) in canonical state files.
pub fn count_rows(files: &[PathBuf]) -> Result<u64> {
    let mut rows = 0;
    for path in files {
        for batch in FileReader::try_new(BufReader::new(File::open(path)?), None)? {
            rows += batch?.num_rows() as u64;
        }
    }
    Ok(rows)
}
