//! The table sides of lookup joins (`runtime::LookupTable`):
//!
//! - `SourceLookup`: a bounded source (a file) read whole into memory and indexed by the join key
//!   when the job starts, as Flink's filesystem connector caches its whole file for lookups. A
//!   restarted job reads it again: lookups see the file as it is then.
//! - `TableLookup`: a Weir result table read from the table store at every probe row, by the
//!   primary key or a leading part of it: lookups see the rows committed at that moment.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, Rows, SortField};

use crate::catalog::{TableDef, schema_of};
use crate::connectors::SourceConfig;
use crate::connectors::table_store::{KeyRange, TableStore};
use crate::error::{Error, Result};
use crate::runtime::LookupTable;

/// Encodes key columns as the index and the table store compare them.
fn key_converter(schema: &SchemaRef, key_columns: &[usize]) -> Result<RowConverter> {
    Ok(RowConverter::new(
        key_columns
            .iter()
            .map(|c| SortField::new(schema.field(*c).data_type().clone()))
            .collect(),
    )?)
}

/// The probe rows' keys, encoded, and which of them have a NULL (they match nothing).
fn encode_keys(converter: &RowConverter, keys: &[ArrayRef]) -> Result<(Rows, Vec<bool>)> {
    let rows = converter.convert_columns(keys)?;
    let len = keys.first().map_or(0, |k| k.len());
    let null = (0..len).map(|i| keys.iter().any(|k| k.is_null(i))).collect();
    Ok((rows, null))
}

/// A bounded source's rows and their index by key, shared by every subtask of the join.
struct IndexedRows {
    rows: RecordBatch,
    by_key: HashMap<Box<[u8]>, Vec<u32>, ahash::RandomState>,
}

#[derive(Clone)]
pub struct SourceLookup {
    indexed: Arc<IndexedRows>,
    keys: Arc<RowConverter>,
}

impl SourceLookup {
    /// Reads the bounded source `config` to its end, producing `columns` (of `schema`), and
    /// indexes its rows by `key_columns` (indices into `columns`). The source is read on a thread
    /// of its own, with a runtime of its own: this runs while a job's tasks are built, on the
    /// engine's runtime.
    pub fn load(config: SourceConfig, columns: Vec<usize>, schema: SchemaRef, key_columns: &[usize]) -> Result<Self> {
        if !config.is_bounded() {
            return Err(Error::unsupported(
                "the table of a lookup join must be a bounded source or a result table",
            ));
        }
        let batches = std::thread::spawn(move || -> Result<Vec<RecordBatch>> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut source = config.open(&columns, 0, 1, false, None, None)?;
                let mut batches = Vec::new();
                while let Some(batch) = source.next_batch().await? {
                    batches.push(batch);
                }
                Ok(batches)
            })
        })
        .join()
        .map_err(|_| Error::internal("reading a lookup join's table panicked"))??;
        let rows = concat_batches(&schema, &batches)?;
        let keys = key_converter(&schema, key_columns)?;
        let key_arrays: Vec<ArrayRef> = key_columns.iter().map(|c| rows.column(*c).clone()).collect();
        let (encoded, null) = encode_keys(&keys, &key_arrays)?;
        let mut by_key: HashMap<Box<[u8]>, Vec<u32>, ahash::RandomState> = HashMap::default();
        for (i, null) in null.into_iter().enumerate() {
            if !null {
                by_key.entry(encoded.row(i).as_ref().into()).or_default().push(i as u32);
            }
        }
        Ok(SourceLookup {
            indexed: Arc::new(IndexedRows { rows, by_key }),
            keys: Arc::new(keys),
        })
    }
}

impl SourceLookup {
    /// The columns the lookup returns.
    pub fn schema(&self) -> SchemaRef {
        self.indexed.rows.schema()
    }
}

impl LookupTable for SourceLookup {
    fn lookup(&mut self, keys: &[ArrayRef]) -> Result<(Vec<u32>, RecordBatch)> {
        let (encoded, null) = encode_keys(&self.keys, keys)?;
        let (mut probes, mut found) = (Vec::new(), Vec::new());
        for (i, null) in null.into_iter().enumerate() {
            if null {
                continue;
            }
            for row in self.indexed.by_key.get(encoded.row(i).as_ref()).into_iter().flatten() {
                probes.push(i as u32);
                found.push(*row);
            }
        }
        Ok((probes, take_record_batch(&self.indexed.rows, &UInt32Array::from(found))?))
    }
}

pub struct TableLookup {
    store: Arc<TableStore>,
    table: TableDef,
    /// The table's columns the join reads, and their schema.
    columns: Vec<usize>,
    schema: SchemaRef,
    keys: RowConverter,
    /// Whether the key is the whole primary key (one row at most: a point get) or a leading
    /// part of it (a range of rows).
    whole_key: bool,
}

impl TableLookup {
    /// Lookups of `table`'s `columns` by its first `key_len` primary key columns.
    pub fn new(store: Arc<TableStore>, table: TableDef, columns: Vec<usize>, key_len: usize) -> Result<Self> {
        let all = Arc::new(schema_of(&table.columns)?);
        let key_columns = table
            .primary_key
            .iter()
            .take(key_len)
            .map(|k| all.index_of(k))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if key_columns.is_empty() || key_len > table.primary_key.len() {
            return Err(Error::internal("a table lookup needs a leading part of the primary key"));
        }
        Ok(TableLookup {
            keys: key_converter(&all, &key_columns)?,
            whole_key: key_len == table.primary_key.len(),
            schema: Arc::new(all.project(&columns)?),
            store,
            table,
            columns,
        })
    }
}

impl LookupTable for TableLookup {
    fn lookup(&mut self, keys: &[ArrayRef]) -> Result<(Vec<u32>, RecordBatch)> {
        let (encoded, null) = encode_keys(&self.keys, keys)?;
        let (mut probes, mut batches) = (Vec::new(), Vec::new());
        for (i, null) in null.into_iter().enumerate() {
            if null {
                continue;
            }
            let key = encoded.row(i);
            if self.whole_key {
                if let Some(row) = self.store.get(&self.table, key.as_ref())? {
                    probes.push(i as u32);
                    batches.push(row.project(&self.columns)?);
                }
                continue;
            }
            let mut failed = None;
            self.store
                .scan_range(&self.table, &KeyRange::with_prefix(key.as_ref().to_vec()), |rows| {
                    match rows.project(&self.columns) {
                        Ok(rows) => {
                            probes.extend(std::iter::repeat_n(i as u32, rows.num_rows()));
                            batches.push(rows);
                            true
                        }
                        Err(e) => {
                            failed = Some(e);
                            false
                        }
                    }
                })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        Ok((probes, concat_batches(&self.schema, &batches)?))
    }
}
