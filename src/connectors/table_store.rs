//! Result tables stored in Weir: one RocksDB instance (WAL on: this is data users read) holding every
//! stored table. A row's key is the table id then its primary key (Arrow row encoding, so keys sort
//! like SQL values), or a generated row id for tables without a primary key; the value holds the
//! other columns, row-encoded (`RowCodec`; tables of the first layout hold the whole row). `StoredTableSink` writes it (`engine::providers::stored_table` reads it for DataFusion).
//!
//! An epoch commit of many rows does not go through the memtable: one write batch of millions of
//! rows is one huge skiplist insert (most of the CPU of a job writing a table, and memory beyond the
//! staged rows). Its rows are sorted into runs of bounded size, written as SST files, and ingested
//! together with the commit markers in one ingestion, which RocksDB applies atomically (a later file
//! overrides an earlier one for the same key, as a later row of the stream must).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;
use rocksdb::{DB, Direction, IteratorMode, Options, ReadOptions, WriteBatch};

use crate::catalog::{StoredRowLayout, TableDef, schema_of};
use crate::error::{Error, Result};
use crate::graph::SinkMode;
use crate::message::split_row_kinds;
use crate::runtime::Sink;
use crate::runtime::staging::{SinkStaging, StagedFile};

mod epoch_commit;
mod sorted_runs;
mod undo_log;

use epoch_commit::Markers;
pub use epoch_commit::StagedRows;
use sorted_runs::{KeyValueWrite, RunBuffers, SortedRuns};
pub use undo_log::LaterEpochs;

pub struct TableStore {
    db: DB,
    /// The options SST files of epoch commits are written with: the DB's, uncompressed (the
    /// commits' files are merged by compaction soon, which compresses what it writes).
    commit_file_options: Options,
    /// Where SST files of epoch commits are written before RocksDB takes them over.
    staging: PathBuf,
    /// Names the next staging file (commits of several jobs may run at once).
    staging_files: AtomicU64,
    /// Next generated row id per append-only table, found on first use by seeking the table's last key.
    row_ids: Mutex<HashMap<u32, u64>>,
    /// The memory of the last commit's runs, for the next commit.
    run_buffers: Mutex<RunBuffers>,
}

const SCAN_BATCH_ROWS: usize = 8192;

/// Encoded rows an epoch commit sorts in memory before writing them out as one SST file.
const RUN_BYTES: usize = 64 << 20;

/// An epoch commit smaller than this goes through one write batch: below it, writing, syncing and
/// ingesting a file costs more than the memtable insert.
const SMALL_COMMIT_BYTES: usize = 1 << 20;

/// The store's RocksDB options. Epoch commits arrive as sorted files whose keys interleave with the
/// rows already stored (a result keyed by auction and window gets rows for recent auctions in every
/// epoch), so each lands in L0 and compaction merges it into the bottom level, reading the
/// overlapping part of that level again every time. Compacting only after 8 files (RocksDB's
/// default: 4) merges twice as many commits per pass, and 16 KiB blocks (4 KiB) halve the per-block
/// work of every file written; together about an eighth of the CPU of Nexmark q5 into a table.
/// Point lookups read at most a few more L0 files, each one larger block.
fn store_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.set_level_zero_file_num_compaction_trigger(8);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_size(16 << 10);
    options.set_block_based_table_factory(&table);
    options
}

impl TableStore {
    pub fn open(dir: &Path) -> Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let options = store_options();
        let db = DB::open(&options, dir).map_err(|e| Error::internal(format!("cannot open the table store in {}: {e}", dir.display())))?;
        // Files left by a commit that did not finish were never ingested.
        let staging = dir.join("staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| Error::internal(format!("cannot clear {}: {e}", staging.display())))?;
        }
        std::fs::create_dir_all(&staging)?;
        let mut commit_file_options = options.clone();
        commit_file_options.set_compression_type(rocksdb::DBCompressionType::None);
        Ok(Arc::new(TableStore {
            db,
            commit_file_options,
            staging,
            staging_files: AtomicU64::new(0),
            row_ids: Mutex::new(HashMap::new()),
            run_buffers: Mutex::new(RunBuffers::default()),
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

    /// A new path for an SST file of an epoch commit.
    fn staging_path(&self) -> PathBuf {
        let n = self.staging_files.fetch_add(1, Ordering::Relaxed);
        self.staging.join(format!("commit-{n}.sst"))
    }

    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        Ok(self.db.write(batch)?)
    }

    /// Every row of a table, in key order.
    pub fn scan(&self, table: &TableDef) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        self.scan_range(table, &KeyRange::default(), |batch| {
            batches.push(batch);
            true
        })?;
        Ok(batches)
    }

    /// The rows of a table whose keys lie in `range`, in key order, a batch at a time, until
    /// `emit` returns false. One iterator reads them all, and an iterator sees the store as it was
    /// when it was created: a read sees whole epochs, never part of a commit.
    pub fn scan_range(&self, table: &TableDef, range: &KeyRange, mut emit: impl FnMut(RecordBatch) -> bool) -> Result<()> {
        let codec = RowCodec::new(table)?;
        let prefix = Self::prefix(table.id);
        let with_prefix = |key: &[u8]| [prefix.as_slice(), key].concat();
        let start = range.start.as_deref().map_or_else(|| prefix.to_vec(), with_prefix);
        let end = match &range.end {
            Some(end) => with_prefix(end),
            None => (table.id + 1).to_be_bytes().to_vec(),
        };
        if start >= end {
            return Ok(());
        }
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(end);
        let (mut keys, mut values) = (Vec::new(), Vec::with_capacity(SCAN_BATCH_ROWS));
        for item in self.db.iterator_opt(IteratorMode::From(&start, Direction::Forward), options) {
            let (key, value) = item?;
            if codec.reads_keys() {
                keys.push(key);
            }
            values.push(value);
            if values.len() == SCAN_BATCH_ROWS {
                let batch = codec.decode(&keys, &values)?;
                keys.clear();
                values.clear();
                if !emit(batch) {
                    return Ok(());
                }
            }
        }
        if !values.is_empty() {
            emit(codec.decode(&keys, &values)?);
        }
        Ok(())
    }

    /// The row of a table with primary key `key` (encoded as stored, without the table prefix),
    /// as a batch of one row.
    pub fn get(&self, table: &TableDef, key: &[u8]) -> Result<Option<RecordBatch>> {
        let key = [Self::prefix(table.id).as_slice(), key].concat();
        let Some(value) = self.db.get_pinned(&key)? else {
            return Ok(None);
        };
        Ok(Some(RowCodec::new(table)?.decode(&[key], &[value])?))
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

/// A span of a table's primary keys (encoded as stored, without the table prefix): from `start`
/// (inclusive) to `end` (exclusive); `None` is unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Option<Vec<u8>>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key that starts with `prefix`.
    pub fn with_prefix(prefix: Vec<u8>) -> Self {
        KeyRange {
            end: prefix_successor(&prefix),
            start: Some(prefix),
        }
    }
}

/// The smallest byte string greater than every string starting with `prefix`; `None` when there
/// is none (all bytes 0xff).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|b| *b != 0xff)?;
    let mut next = prefix[..=last].to_vec();
    next[last] += 1;
    Some(next)
}

/// The stored encoding of the first `values.len()` primary key columns of `table` holding `values`
/// (each already of its column's type). Keys are encoded column by column, so this is a prefix of
/// the key of every row with these values.
pub fn encode_key_prefix(table: &TableDef, values: &[ScalarValue]) -> Result<Vec<u8>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let schema = schema_of(&table.columns)?;
    let mut fields = Vec::with_capacity(values.len());
    let mut arrays = Vec::with_capacity(values.len());
    for (name, value) in table.primary_key.iter().zip(values) {
        let field = schema.field_with_name(name)?;
        if value.data_type() != *field.data_type() {
            return Err(Error::internal(format!("key value {value} is not of column {name}'s type")));
        }
        fields.push(SortField::new(field.data_type().clone()));
        arrays.push(value.to_array()?);
    }
    if values.len() > table.primary_key.len() {
        return Err(Error::internal("more key values than key columns"));
    }
    let rows = RowConverter::new(fields)?.convert_columns(&arrays)?;
    Ok(rows.row(0).as_ref().to_vec())
}

fn row_converter(schema: &Schema) -> Result<RowConverter> {
    Ok(RowConverter::new(
        schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect(),
    )?)
}

/// The length of the table id every stored key starts with.
const TABLE_PREFIX_BYTES: usize = 4;

/// A stored table's rows as the table store's keys and values, in the table's `StoredRowLayout`.
/// Keys and values are Arrow row encodings, so keys sort like the SQL values they hold.
struct RowCodec {
    schema: SchemaRef,
    /// Indices of the primary key columns; empty: rows are keyed by generated row ids.
    key_columns: Vec<usize>,
    /// Indices of the columns the value holds, in order.
    value_columns: Vec<usize>,
    key_converter: RowConverter,
    value_converter: RowConverter,
}

impl RowCodec {
    fn new(table: &TableDef) -> Result<Self> {
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
        let every_column = 0..schema.fields().len();
        let value_columns: Vec<usize> = match table.row_layout {
            StoredRowLayout::WholeRow => every_column.collect(),
            StoredRowLayout::NonKeyColumns => every_column.filter(|i| !key_columns.contains(i)).collect(),
        };
        Ok(RowCodec {
            key_converter: row_converter(&schema.project(&key_columns)?)?,
            value_converter: row_converter(&schema.project(&value_columns)?)?,
            schema,
            key_columns,
            value_columns,
        })
    }

    /// Whether some columns are read back from the keys (the values do not hold them).
    fn reads_keys(&self) -> bool {
        self.value_columns.len() < self.schema.fields().len()
    }

    /// The primary keys of `batch`'s rows, without the table prefix.
    fn encode_keys(&self, batch: &RecordBatch) -> Result<Rows> {
        let columns: Vec<_> = self.key_columns.iter().map(|i| batch.column(*i).clone()).collect();
        Ok(self.key_converter.convert_columns(&columns)?)
    }

    /// The values of `batch`'s rows; `None`: they are empty (every column is in the key).
    fn encode_values(&self, batch: &RecordBatch) -> Result<Option<Rows>> {
        if self.value_columns.is_empty() {
            return Ok(None);
        }
        let columns: Vec<_> = self.value_columns.iter().map(|i| batch.column(*i).clone()).collect();
        Ok(Some(self.value_converter.convert_columns(&columns)?))
    }

    /// The rows stored under `keys` (with the table prefix; read only if `reads_keys`) and
    /// `values`, as one batch.
    fn decode(&self, keys: &[impl AsRef<[u8]>], values: &[impl AsRef<[u8]>]) -> Result<RecordBatch> {
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.schema.fields().len()];
        if !self.value_columns.is_empty() {
            let parser = self.value_converter.parser();
            let decoded = self.value_converter.convert_rows(values.iter().map(|v| parser.parse(v.as_ref())))?;
            for (i, column) in self.value_columns.iter().zip(decoded) {
                columns[*i] = Some(column);
            }
        }
        if self.reads_keys() {
            let parser = self.key_converter.parser();
            let stored = keys.iter().map(|k| k.as_ref().get(TABLE_PREFIX_BYTES..).unwrap_or_default());
            let decoded = self.key_converter.convert_rows(stored.map(|k| parser.parse(k)))?;
            for (i, column) in self.key_columns.iter().zip(decoded) {
                columns[*i] = Some(column);
            }
        }
        let columns = columns
            .into_iter()
            .map(|c| c.ok_or_else(|| Error::internal("a stored column is in neither the key nor the value")))
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// Encodes rows of one table into table-store writes.
pub struct TableWriter {
    table_id: u32,
    codec: RowCodec,
}

impl TableWriter {
    pub fn new(table: &TableDef) -> Result<Self> {
        Ok(TableWriter {
            table_id: table.id,
            codec: RowCodec::new(table)?,
        })
    }

    /// Whether rows replace rows with the same primary key (rather than being appended).
    pub fn upserts(&self) -> bool {
        !self.codec.key_columns.is_empty()
    }

    /// Adds the rows of `batch` to `write`: upserts by primary key, or appends under new row ids
    /// (returned). A changelog's update-before and delete rows delete the row with their key.
    fn add(&self, store: &TableStore, batch: &RecordBatch, write: &mut impl KeyValueWrite) -> Result<Option<Range<u64>>> {
        let (batch, kinds) = split_row_kinds(batch)?;
        if kinds.is_some() && !self.upserts() {
            return Err(Error::internal("a changelog reached a table without a primary key"));
        }
        let batch = RecordBatch::try_new(self.codec.schema.clone(), batch.columns().to_vec())
            .map_err(|e| Error::internal(format!("sink batch does not match the table: {e}")))?;
        let values = self.codec.encode_values(&batch)?;
        let value = |i: usize| values.as_ref().map_or(&[][..], |rows| rows.row(i).data());
        let prefix = TableStore::prefix(self.table_id);
        let mut key = Vec::new();
        if self.upserts() {
            for (i, key_row) in self.codec.encode_keys(&batch)?.iter().enumerate() {
                key.clear();
                key.extend_from_slice(&prefix);
                key.extend_from_slice(key_row.data());
                match &kinds {
                    Some(kinds) if kinds[i].is_retraction() => write.delete(&key)?,
                    _ => write.put(&key, value(i))?,
                }
            }
            Ok(None)
        } else {
            let first = store.reserve_row_ids(self.table_id, batch.num_rows() as u64)?;
            for i in 0..batch.num_rows() {
                key.clear();
                key.extend_from_slice(&prefix);
                key.extend_from_slice(&(first + i as u64).to_be_bytes());
                write.put(&key, value(i))?;
            }
            Ok(Some(first..first + batch.num_rows() as u64))
        }
    }
}

/// How a sink subtask makes rows visible.
pub enum Delivery {
    /// Rows are written as they arrive (no checkpoints: at-most-once across failures).
    Direct,
    /// Rows are staged and handed to the checkpoint that follows them (two-phase commit).
    Staged(SinkStaging),
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
            Delivery::Staged(staging) => staging.push(&batch),
            Delivery::Done => Ok(()),
        }
    }

    fn prepare_commit(&mut self) -> Result<Option<StagedFile>> {
        match &mut self.delivery {
            Delivery::Staged(staging) => staging.take(),
            Delivery::Direct | Delivery::Done => Ok(None),
        }
    }
}

impl std::fmt::Debug for TableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableStore")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDef, ColumnKind};
    use datafusion::arrow::array::{Array, Int64Array, StringArray};

    pub(super) fn table(id: u32, primary_key: &[&str]) -> TableDef {
        let column = |name: &str, sql_type: &str| ColumnDef {
            name: name.into(),
            sql_type: sql_type.into(),
            nullable: true,
            kind: ColumnKind::default(),
        };
        TableDef {
            name: format!("t{id}"),
            id,
            columns: vec![column("k", "BIGINT"), column("v", "VARCHAR")],
            primary_key: primary_key.iter().map(|k| k.to_string()).collect(),
            connector: crate::catalog::TableConnector::Stored,
            options: Default::default(),
            partitioned_by: Vec::new(),
            row_layout: StoredRowLayout::NonKeyColumns,
        }
    }

    pub(super) fn batch(table: &TableDef, rows: impl IntoIterator<Item = (i64, String)>) -> RecordBatch {
        let (keys, values): (Vec<i64>, Vec<String>) = rows.into_iter().unzip();
        RecordBatch::try_new(
            schema_of(&table.columns).unwrap(),
            vec![Arc::new(Int64Array::from(keys)), Arc::new(StringArray::from(values))],
        )
        .unwrap()
    }

    pub(super) fn contents(store: &TableStore, table: &TableDef) -> Vec<(i64, String)> {
        let mut rows = Vec::new();
        for batch in store.scan(table).unwrap() {
            let keys = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let values = batch.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            rows.extend((0..batch.num_rows()).map(|i| (keys.value(i), values.value(i).to_string())));
        }
        rows
    }

    pub(super) fn commit(store: &TableStore, writer: &TableWriter, epoch: u64, rows: Vec<RecordBatch>, run_bytes: usize) {
        let dir = tempfile::tempdir().unwrap();
        let mut staging = SinkStaging::new(dir.path().join("sink-0"));
        for batch in &rows {
            staging.push(batch).unwrap();
        }
        let staged = [StagedRows {
            writer,
            sink_uid: "sink".into(),
            subtask: 0,
            files: staging.take().unwrap().into_iter().collect(),
        }];
        store.commit_in_runs("job", epoch, &staged, run_bytes).unwrap();
    }

    /// An epoch sorted into many runs: a key upserted again in a later run, or twice in one run,
    /// keeps its last value; the rows and the marker appear together.
    #[test]
    fn large_upsert_epochs_keep_the_last_row_per_key_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = TableStore::open(dir.path()).unwrap();
        let table = table(7, &["k"]);
        let writer = TableWriter::new(&table).unwrap();
        // 3 batches of 40_000 rows over 50_000 keys, ~1 MiB per batch: several 256 KiB runs.
        let batches = (0..3)
            .map(|b| batch(&table, (0..40_000).map(|i| ((i * 7 + b * 13_000) % 50_000, format!("b{b}-{i}")))))
            .collect::<Vec<_>>();
        let mut expected = std::collections::BTreeMap::new();
        for (b, batch) in batches.iter().enumerate() {
            let keys = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..batch.num_rows() {
                expected.insert(keys.value(i), format!("b{b}-{i}"));
            }
        }
        commit(&store, &writer, 1, batches, 256 << 10);
        assert_eq!(contents(&store, &table), expected.into_iter().collect::<Vec<_>>());
        assert_eq!(store.committed_epoch("job", "sink", 0).unwrap(), Some(1));
        // A small epoch (one write batch) over the ingested files still wins.
        commit(&store, &writer, 2, vec![batch(&table, [(3, "new".to_string())])], 256 << 10);
        assert_eq!(contents(&store, &table).iter().find(|(k, _)| *k == 3).unwrap().1, "new");
        assert_eq!(store.committed_epoch("job", "sink", 0).unwrap(), Some(2));
        assert_eq!(std::fs::read_dir(dir.path().join("staging")).unwrap().count(), 0);
    }

    /// A changelog's update-before and delete rows delete their key, in order with the puts around
    /// them: within a run, across runs of a large epoch, and in a small epoch's write batch.
    #[test]
    fn changelog_deletes_apply_in_order_across_runs() {
        use crate::message::{RowKind, with_row_kinds};
        let dir = tempfile::tempdir().unwrap();
        let store = TableStore::open(dir.path()).unwrap();
        let table = table(9, &["k"]);
        let writer = TableWriter::new(&table).unwrap();
        let changes = |rows: Vec<(RowKind, i64, String)>| {
            let kinds = rows.iter().map(|r| r.0).collect();
            with_row_kinds(&batch(&table, rows.into_iter().map(|r| (r.1, r.2))), kinds).unwrap()
        };
        // 20_000 keys put, then every third key deleted and every sixth put back: several runs.
        let puts = changes((0..20_000).map(|k| (RowKind::Insert, k, format!("v{k}"))).collect());
        let deletes = changes((0..20_000).step_by(3).map(|k| (RowKind::Delete, k, String::new())).collect());
        let back = changes((0..20_000).step_by(6).map(|k| (RowKind::UpdateAfter, k, format!("w{k}"))).collect());
        commit(&store, &writer, 1, vec![puts, deletes, back], 64 << 10);
        let expected: Vec<(i64, String)> = (0..20_000)
            .filter_map(|k| match (k % 3, k % 6) {
                (_, 0) => Some((k, format!("w{k}"))),
                (0, _) => None,
                _ => Some((k, format!("v{k}"))),
            })
            .collect();
        assert_eq!(contents(&store, &table), expected);
        // A small epoch: an update (update-before, update-after) and a delete.
        let small = changes(vec![
            (RowKind::UpdateBefore, 1, "v1".into()),
            (RowKind::UpdateAfter, 1, "x1".into()),
            (RowKind::Delete, 2, "v2".into()),
        ]);
        commit(&store, &writer, 2, vec![small], 64 << 10);
        let rows = contents(&store, &table);
        assert_eq!(rows.iter().find(|(k, _)| *k == 1).unwrap().1, "x1");
        assert!(!rows.iter().any(|(k, _)| *k == 2));
        assert_eq!(rows.len(), expected.len() - 1);
    }

    /// Appends of large and small epochs get increasing row ids; an epoch committed again is skipped.
    #[test]
    fn append_epochs_keep_their_order_and_are_applied_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = TableStore::open(dir.path()).unwrap();
        let table = table(3, &[]);
        let writer = TableWriter::new(&table).unwrap();
        let rows = |from: i64, n: i64| batch(&table, (from..from + n).map(|i| (i, format!("row {i}"))));
        commit(&store, &writer, 1, vec![rows(0, 30_000), rows(30_000, 30_000)], 128 << 10);
        commit(&store, &writer, 2, vec![rows(60_000, 5)], 128 << 10);
        commit(&store, &writer, 2, vec![rows(60_000, 5)], 128 << 10);
        let expected = (0..60_005).map(|i| (i, format!("row {i}"))).collect::<Vec<_>>();
        assert_eq!(contents(&store, &table), expected);
        drop(store);
        // Reopened: row ids continue after the last one.
        let store = TableStore::open(dir.path()).unwrap();
        commit(&store, &writer, 3, vec![rows(60_005, 40_000)], 128 << 10);
        assert_eq!(contents(&store, &table).len(), 100_005);
        assert_eq!(contents(&store, &table).last().unwrap().0, 100_004);
    }

    /// Rows read back equal the rows written, in both layouts (a table of the first layout keeps
    /// reading as it was written), with null and text key columns, and for a table whose every
    /// column is in the key (its values are empty).
    #[test]
    fn both_row_layouts_and_key_only_tables_read_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = TableStore::open(dir.path()).unwrap();
        let rows = || {
            RecordBatch::try_new(
                schema_of(&table(0, &[]).columns).unwrap(),
                vec![
                    Arc::new(Int64Array::from(vec![Some(2), None, Some(1)])),
                    Arc::new(StringArray::from(vec![Some("b"), Some("n"), None])),
                ],
            )
            .unwrap()
        };
        let sorted = |batches: Vec<RecordBatch>| {
            let mut rows = Vec::new();
            for batch in batches {
                let keys = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                let values = batch.column(1).as_any().downcast_ref::<StringArray>().unwrap();
                for i in 0..batch.num_rows() {
                    let text = (!values.is_null(i)).then(|| values.value(i).to_string());
                    rows.push(((!keys.is_null(i)).then(|| keys.value(i)), text));
                }
            }
            rows
        };
        let expected_by_k = vec![(None, Some("n".to_string())), (Some(1), None), (Some(2), Some("b".to_string()))];
        for (id, key, layout) in [
            (1, vec!["k"], StoredRowLayout::WholeRow),
            (2, vec!["k"], StoredRowLayout::NonKeyColumns),
            (3, vec!["k", "v"], StoredRowLayout::NonKeyColumns),
            (4, vec![], StoredRowLayout::NonKeyColumns),
        ] {
            let table = TableDef {
                row_layout: layout,
                ..table(id, &key)
            };
            let writer = TableWriter::new(&table).unwrap();
            let mut write = WriteBatch::default();
            writer.add(&store, &rows(), &mut write).unwrap();
            store.write(write).unwrap();
            let read = sorted(store.scan(&table).unwrap());
            if key.is_empty() {
                // Appended: in arrival order.
                assert_eq!(read, sorted(vec![rows()]), "table {id}");
            } else {
                // Nulls sort first in keys.
                assert_eq!(read, expected_by_k, "table {id}");
                let one = encode_key_prefix(&table, &[ScalarValue::Int64(Some(2))]).unwrap();
                let found = store.scan_range(&table, &KeyRange::with_prefix(one), |batch| {
                    assert_eq!(sorted(vec![batch]), vec![(Some(2), Some("b".to_string()))]);
                    true
                });
                found.unwrap();
            }
        }
        // A point get decodes the key columns too.
        let table = table(2, &["k"]);
        let key = encode_key_prefix(&table, &[ScalarValue::Int64(Some(1))]).unwrap();
        let got = store.get(&table, &key).unwrap().unwrap();
        assert_eq!(sorted(vec![got]), vec![(Some(1), None)]);
    }
}
