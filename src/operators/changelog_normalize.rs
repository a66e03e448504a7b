//! `ChangelogNormalize`: an upsert changelog into a retract changelog, as Flink's operator of that
//! name does after an 'upsert-kafka' source. An upsert row is the latest row of its key and a
//! delete carries only the key; consumers such as aggregates need the row an update replaces and
//! the row a delete removes. So the operator keeps the last row of every key: an update emits the
//! old row's update-before and the new row's update-after (nothing when the row did not change),
//! a delete emits the old row (nothing for a key it never saw).
//!
//! Hot keys stay in a cache; it is written to the state backend when it outgrows its limit, and
//! at every barrier the keys changed since the previous one are flushed on the checkpoint's thread,
//! as the updating aggregate does.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::Result;
use crate::message::{Message, RowKind, split_row_kinds, with_row_kinds};
use crate::operators::grouping::{GroupKey, group_key};
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::key::key_converter;
use crate::state::{StateBackend, StateWriteBatch};

/// A key's last row (row-encoded; `None`: deleted) and the epoch that last changed it.
#[derive(Clone)]
struct LastRow {
    row: Option<Box<[u8]>>,
    epoch: u64,
}

type LastRows = HashMap<GroupKey, LastRow, ahash::RandomState>;

pub struct ChangelogNormalize {
    key_columns: Vec<usize>,
    keys: RowConverter,
    rows: RowConverter,
    schema: SchemaRef,
    cache: Arc<LastRows>,
    cache_limit: usize,
    backend: Box<dyn StateBackend>,
    /// Stamped on the keys changed now; a barrier starts the next epoch.
    epoch: u64,
    /// Keys changed in this epoch or earlier are in the backend (or on their way).
    flushed: u64,
}

impl ChangelogNormalize {
    /// `schema`: the rows' columns (without their kinds); `key_columns` index into them.
    pub fn new(key_columns: Vec<usize>, schema: SchemaRef, backend: Box<dyn StateBackend>, cache_limit: usize) -> Result<Self> {
        let key_types: Vec<_> = key_columns.iter().map(|c| schema.field(*c).data_type().clone()).collect();
        let fields = schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect();
        Ok(ChangelogNormalize {
            keys: key_converter(&key_types)?,
            rows: RowConverter::new(fields)?,
            key_columns,
            schema,
            cache: Arc::default(),
            cache_limit: cache_limit.max(1),
            backend,
            epoch: 1,
            flushed: 0,
        })
    }

    /// The key's last row: from the cache, else from the backend.
    fn last_row(&self, key: &GroupKey) -> Result<Option<Box<[u8]>>> {
        match self.cache.get(key) {
            Some(last) => Ok(last.row.clone()),
            None => Ok(self.backend.get(key)?.map(Vec::into_boxed_slice)),
        }
    }

    fn spill(&mut self) -> Result<()> {
        let cache = std::mem::take(&mut self.cache);
        self.backend.ingest(changed_since(&cache, self.flushed))
    }
}

/// The keys changed after epoch `flushed`, as backend writes.
fn changed_since(cache: &LastRows, flushed: u64) -> StateWriteBatch {
    let mut batch = StateWriteBatch::default();
    for (key, last) in cache.iter().filter(|(_, last)| last.epoch > flushed) {
        match &last.row {
            Some(row) => batch.put(key.to_vec(), row.to_vec()),
            None => batch.delete(key.to_vec()),
        }
    }
    batch
}

impl Operator for ChangelogNormalize {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let (rows, kinds) = split_row_kinds(&batch)?;
        let key_columns: Vec<_> = self.key_columns.iter().map(|c| rows.column(*c).clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let encoded = self.rows.convert_columns(rows.columns())?;
        let mut emitted: Vec<(Box<[u8]>, RowKind)> = Vec::new();
        for i in 0..rows.num_rows() {
            let key = group_key(keys.row(i).data());
            let last = self.last_row(&key)?;
            let kind = kinds.as_ref().map_or(RowKind::Insert, |k| k[i]);
            let row: Option<Box<[u8]>> = if kind.is_retraction() {
                let Some(last) = last else { continue };
                emitted.push((last, RowKind::Delete));
                None
            } else {
                let row: Box<[u8]> = encoded.row(i).data().into();
                match last {
                    Some(last) if last == row => continue,
                    Some(last) => {
                        emitted.push((last, RowKind::UpdateBefore));
                        emitted.push((row.clone(), RowKind::UpdateAfter));
                    }
                    None => emitted.push((row.clone(), RowKind::Insert)),
                }
                Some(row)
            };
            let epoch = self.epoch;
            Arc::make_mut(&mut self.cache).insert(key, LastRow { row, epoch });
        }
        if !emitted.is_empty() {
            let parser = self.rows.parser();
            let columns = self.rows.convert_rows(emitted.iter().map(|(row, _)| parser.parse(row)))?;
            let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
            out.push(Message::Data(with_row_kinds(
                &batch,
                emitted.into_iter().map(|(_, kind)| kind).collect(),
            )?));
        }
        if self.cache.len() > self.cache_limit {
            self.spill()?;
        }
        Ok(())
    }

    /// The keys changed in the epoch that ended are flushed into the backend on the checkpoint's
    /// thread, before its hard-link checkpoint, which therefore holds every key's last row.
    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        let frozen = self.cache.clone();
        let flushed = self.flushed;
        let changes = Box::new(move || changed_since(&frozen, flushed));
        let files = vec![self.backend.checkpoint(dir, Some(changes))?];
        self.flushed = self.epoch;
        self.epoch += 1;
        Ok(Some(OperatorSnapshot {
            dir: dir.to_path_buf(),
            files,
            meta: serde_json::Value::Null,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::display::array_value_to_string;

    use super::*;
    use crate::operators::testing::OperatorHarness;
    use crate::settings::StateBackendKind;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    /// An upsert source's batch of (kind, id, name); deletes carry no name.
    fn upserts(rows: &[(RowKind, i64, Option<&str>)]) -> RecordBatch {
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch");
        with_row_kinds(&batch, rows.iter().map(|r| r.0).collect()).expect("kinds")
    }

    fn emitted(harness: &mut OperatorHarness) -> Vec<String> {
        let (Some(batch), _) = harness.take_rows().expect("rows") else {
            return Vec::new();
        };
        let (rows, kinds) = split_row_kinds(&batch).expect("split");
        let kinds = kinds.expect("a changelog");
        (0..rows.num_rows())
            .map(|r| {
                let values: Vec<String> = rows.columns().iter().map(|c| array_value_to_string(c, r).expect("text")).collect();
                format!("{} {}", kinds[r].short_string(), values.join(" "))
            })
            .collect()
    }

    #[test]
    fn upserts_become_retractions_with_the_rows_they_replace() {
        use RowKind::{Delete, UpdateAfter};
        let dir = tempfile::tempdir().expect("dir");
        let backend = StateBackendKind::RocksDb.open(&dir.path().join("live")).expect("backend");
        // A cache of one key: every batch spills, so the last rows are read back from the backend.
        let operator = ChangelogNormalize::new(vec![0], schema(), backend, 1).expect("operator");
        let mut harness = OperatorHarness::new(Box::new(operator), &dir.path().join("a"));
        harness
            .push(upserts(&[
                (UpdateAfter, 1, Some("a")),
                (UpdateAfter, 2, Some("b")),
                (UpdateAfter, 1, Some("c")),
            ]))
            .expect("push");
        assert_eq!(emitted(&mut harness), ["+I 1 a", "+I 2 b", "-U 1 a", "+U 1 c"]);
        // The same row again changes nothing; a delete of an unknown key neither.
        harness
            .push(upserts(&[(UpdateAfter, 1, Some("c")), (Delete, 9, None)]))
            .expect("push");
        assert_eq!(emitted(&mut harness), Vec::<String>::new());
        harness.push(upserts(&[(Delete, 2, None)])).expect("push");
        assert_eq!(emitted(&mut harness), ["-D 2 b"]);

        let snapshot = harness.barrier().expect("barrier").expect("a snapshot");
        let backend = snapshot
            .restore_backend(StateBackendKind::RocksDb, &dir.path().join("restored"))
            .expect("restore");
        let operator = ChangelogNormalize::new(vec![0], schema(), backend, 100).expect("operator");
        let mut restored = OperatorHarness::new(Box::new(operator), &dir.path().join("b"));
        restored
            .push(upserts(&[(UpdateAfter, 2, Some("d")), (Delete, 1, None)]))
            .expect("push");
        assert_eq!(emitted(&mut restored), ["+I 2 d", "-D 1 c"]);
    }
}
