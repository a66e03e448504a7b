//! Result tables stored in Weir: one RocksDB instance (WAL on: this is data users read) holding every
//! stored table. A row's key is the table id then its primary key (Arrow row encoding, so keys sort
//! like SQL values), or a generated row id for tables without a primary key; the value is the whole
//! row, row-encoded. `StoredTableSink` writes it (`engine::providers::stored_table` reads it for DataFusion).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch};

use crate::catalog::{TableDef, schema_of};
use crate::error::{Error, Result};
use crate::graph::SinkMode;
use crate::runtime::Sink;

pub struct TableStore {
    db: DB,
    /// Next generated row id per append-only table, found on first use by seeking the table's last key.
    row_ids: Mutex<HashMap<u32, u64>>,
}

const SCAN_BATCH_ROWS: usize = 8192;

impl TableStore {
    pub fn open(dir: &Path) -> Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, dir).map_err(|e| Error::internal(format!("cannot open the table store in {}: {e}", dir.display())))?;
        Ok(Arc::new(TableStore {
            db,
            row_ids: Mutex::new(HashMap::new()),
        }))
    }

    fn prefix(table_id: u32) -> [u8; 4] {
        table_id.to_be_bytes()
    }

    /// Reserves `n` row ids for an append-only table.
    fn reserve_row_ids(&self, table_id: u32, n: u64) -> Result<u64> {
        let mut ids = self.row_ids.lock().map_err(|_| Error::internal("table store lock poisoned"))?;
        let next = match ids.get(&table_id) {
            Some(next) => *next,
            None => {
                let end = (table_id + 1).to_be_bytes();
                let last = self.db.iterator(IteratorMode::From(&end, Direction::Reverse)).next().transpose()?;
                match last {
                    Some((key, _)) if key.starts_with(&Self::prefix(table_id)) && key.len() == 12 => {
                        u64::from_be_bytes(key[4..12].try_into().map_err(|_| Error::internal("bad row id"))?) + 1
                    }
                    _ => 0,
                }
            }
        };
        ids.insert(table_id, next + n);
        Ok(next)
    }

    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        Ok(self.db.write(batch)?)
    }

    /// Every row of a table, in key order.
    pub fn scan(&self, table: &TableDef) -> Result<Vec<RecordBatch>> {
        let schema = schema_of(&table.columns)?;
        let converter = row_converter(&schema)?;
        let parser = converter.parser();
        let prefix = Self::prefix(table.id);
        let mut batches = Vec::new();
        let mut values: Vec<Box<[u8]>> = Vec::new();
        let mut flush = |values: &mut Vec<Box<[u8]>>| -> Result<()> {
            if !values.is_empty() {
                let columns = converter.convert_rows(values.iter().map(|v| parser.parse(v)))?;
                batches.push(RecordBatch::try_new(schema.clone(), columns)?);
                values.clear();
            }
            Ok(())
        };
        for item in self.db.iterator(IteratorMode::From(&prefix, Direction::Forward)) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            values.push(value);
            if values.len() == SCAN_BATCH_ROWS {
                flush(&mut values)?;
            }
        }
        flush(&mut values)?;
        Ok(batches)
    }

    pub fn drop_table(&self, table_id: u32) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range(Self::prefix(table_id), (table_id + 1).to_be_bytes());
        self.db.write(batch)?;
        if let Ok(mut ids) = self.row_ids.lock() {
            ids.remove(&table_id);
        }
        Ok(())
    }
}

fn row_converter(schema: &Schema) -> Result<RowConverter> {
    Ok(RowConverter::new(
        schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect(),
    )?)
}

/// Encodes rows of one table into table-store writes.
pub struct TableWriter {
    table_id: u32,
    schema: SchemaRef,
    /// Indices of the primary key columns; empty: rows are appended under generated ids.
    key_columns: Vec<usize>,
    key_converter: RowConverter,
    row_converter: RowConverter,
}

impl TableWriter {
    pub fn new(table: &TableDef) -> Result<Self> {
        let schema = schema_of(&table.columns)?;
        let key_columns = table
            .primary_key
            .iter()
            .map(|k| {
                schema
                    .index_of(k)
                    .map_err(|_| Error::internal(format!("primary key column {k} missing")))
            })
            .collect::<Result<Vec<_>>>()?;
        let key_schema = schema.project(&key_columns)?;
        Ok(TableWriter {
            table_id: table.id,
            key_converter: row_converter(&key_schema)?,
            row_converter: row_converter(&schema)?,
            schema,
            key_columns,
        })
    }

    /// Whether rows replace rows with the same primary key (rather than being appended).
    pub fn upserts(&self) -> bool {
        !self.key_columns.is_empty()
    }

    /// Adds the rows of `batch` to `write`: upserts by primary key, or appends under new row ids.
    fn add(&self, store: &TableStore, batch: &RecordBatch, write: &mut WriteBatch) -> Result<()> {
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
            .map_err(|e| Error::internal(format!("sink batch does not match the table: {e}")))?;
        let rows = self.row_converter.convert_columns(batch.columns())?;
        let prefix = TableStore::prefix(self.table_id);
        if self.key_columns.is_empty() {
            let first = store.reserve_row_ids(self.table_id, batch.num_rows() as u64)?;
            for (i, row) in rows.iter().enumerate() {
                let mut key = prefix.to_vec();
                key.extend_from_slice(&(first + i as u64).to_be_bytes());
                write.put(key, row.as_ref());
            }
        } else {
            let key_arrays: Vec<_> = self.key_columns.iter().map(|i| batch.column(*i).clone()).collect();
            let keys = self.key_converter.convert_columns(&key_arrays)?;
            for (key_row, row) in keys.iter().zip(rows.iter()) {
                let mut key = prefix.to_vec();
                key.extend_from_slice(key_row.as_ref());
                write.put(key, row.as_ref());
            }
        }
        Ok(())
    }
}

/// Where a sink subtask records the last epoch it committed, next to the rows (one atomic write).
fn commit_marker(job: &str, sink_uid: &str, subtask: usize) -> Vec<u8> {
    let mut key = COMMIT_PREFIX.to_vec();
    key.extend_from_slice(format!("{job}/{sink_uid}/{subtask}").as_bytes());
    key
}

/// Table ids are below u32::MAX, so this prefix never holds rows.
const COMMIT_PREFIX: [u8; 4] = [0xff; 4];

/// One sink subtask's rows of an epoch, to commit.
pub struct StagedRows<'a> {
    pub writer: &'a TableWriter,
    pub sink_uid: String,
    pub subtask: usize,
    pub rows: Vec<RecordBatch>,
}

impl TableStore {
    /// The last epoch a sink subtask of a job committed.
    pub fn committed_epoch(&self, job: &str, sink_uid: &str, subtask: usize) -> Result<Option<u64>> {
        let Some(value) = self.db.get(commit_marker(job, sink_uid, subtask))? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = value.as_slice().try_into().map_err(|_| Error::internal("corrupt commit marker"))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// Two-phase commit, phase two: writes the rows of epoch `epoch` of every sink subtask that has
    /// not committed it yet, together with the new commit markers, in one atomic write.
    pub fn commit(&self, job: &str, epoch: u64, staged: &[StagedRows]) -> Result<()> {
        let mut write = WriteBatch::default();
        for part in staged {
            let committed = self.committed_epoch(job, &part.sink_uid, part.subtask)?;
            let already = committed.is_some_and(|done| done >= epoch);
            // Upserts by primary key can be applied again without harm (a job restored from an
            // older checkpoint recomputes the same rows); appends must never be applied twice.
            if already && !part.writer.upserts() {
                continue;
            }
            for batch in &part.rows {
                part.writer.add(self, batch, &mut write)?;
            }
            write.put(
                commit_marker(job, &part.sink_uid, part.subtask),
                epoch.max(committed.unwrap_or(0)).to_be_bytes(),
            );
        }
        self.write(write)
    }

    /// A job restored from checkpoint `epoch` commits its epochs after `epoch` again: markers
    /// beyond it (including a finished run's final one) are set back to it.
    pub fn rewind_commits(&self, job: &str, epoch: u64) -> Result<()> {
        let mut start = COMMIT_PREFIX.to_vec();
        start.extend_from_slice(format!("{job}/").as_bytes());
        let mut write = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item?;
            if !key.starts_with(&start) {
                break;
            }
            let bytes: [u8; 8] = value.as_ref().try_into().map_err(|_| Error::internal("corrupt commit marker"))?;
            if u64::from_be_bytes(bytes) > epoch {
                write.put(key, epoch.to_be_bytes());
            }
        }
        self.write(write)
    }

    /// Forgets a job's commit markers (the job is dropped or created anew).
    pub fn clear_commits(&self, job: &str) -> Result<()> {
        let mut start = COMMIT_PREFIX.to_vec();
        start.extend_from_slice(format!("{job}/").as_bytes());
        let mut end = COMMIT_PREFIX.to_vec();
        end.extend_from_slice(format!("{job}0").as_bytes()); // '0' follows '/'
        let mut write = WriteBatch::default();
        write.delete_range(start, end);
        self.write(write)
    }
}

/// How a sink subtask makes rows visible.
pub enum Delivery {
    /// Rows are written as they arrive (no checkpoints: at-most-once across failures).
    Direct,
    /// Rows are staged and handed to the checkpoint that follows them (two-phase commit).
    Staged { staged: Vec<RecordBatch> },
    /// The subtask already committed all its output in an earlier run (its final epoch): drop rows.
    Done,
}

pub struct StoredTableSink {
    store: Arc<TableStore>,
    writer: TableWriter,
    delivery: Delivery,
}

impl StoredTableSink {
    pub fn new(store: Arc<TableStore>, table: &TableDef, mode: SinkMode, delivery: Delivery) -> Result<Self> {
        if mode == SinkMode::Upsert && table.primary_key.is_empty() {
            return Err(Error::internal("an upsert sink needs a primary key"));
        }
        Ok(StoredTableSink {
            store,
            writer: TableWriter::new(table)?,
            delivery,
        })
    }
}

impl Sink for StoredTableSink {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        match &mut self.delivery {
            Delivery::Direct => {
                let mut write = WriteBatch::default();
                self.writer.add(&self.store, &batch, &mut write)?;
                self.store.write(write)
            }
            Delivery::Staged { staged } => {
                staged.push(batch);
                Ok(())
            }
            Delivery::Done => Ok(()),
        }
    }

    fn prepare_commit(&mut self) -> Result<Vec<RecordBatch>> {
        Ok(match &mut self.delivery {
            Delivery::Staged { staged } => std::mem::take(staged),
            Delivery::Direct | Delivery::Done => Vec::new(),
        })
    }
}

impl std::fmt::Debug for TableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableStore")
    }
}
