//! `ChangelogNormalize`: an upsert changelog into a retract changelog, as Flink's operator of that
//! name does after an 'upsert-kafka' source. An upsert row is the latest row of its key and a
//! delete carries only the key; consumers such as aggregates need the row an update replaces and
//! the row a delete removes. So the operator keeps the last row of every key: an update emits the
//! old row's update-before and the new row's update-after (nothing when the row did not change),
//! a delete emits the old row (nothing for a key it never saw).
//!
//! Hot keys' last rows stay in a `KeyedCache` over the state backend, as the updating aggregate
//! keeps its states.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::Result;
use crate::message::{Message, RowKind, split_row_kinds, with_row_kinds};
use crate::operators::grouping::{GroupKey, group_key};
use crate::operators::keyed_cache::KeyedCache;
use crate::runtime::{Operator, OperatorSnapshot};
use crate::state::StateBackend;
use crate::state::key::key_converter;

pub struct ChangelogNormalize {
    key_columns: Vec<usize>,
    keys: RowConverter,
    rows: RowConverter,
    schema: SchemaRef,
    /// Each hot key's last row (row-encoded; `None`: deleted).
    cache: KeyedCache<Option<Box<[u8]>>>,
    backend: Box<dyn StateBackend>,
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
            cache: KeyedCache::new(cache_limit, Arc::new(|row: &Option<Box<[u8]>>| row.as_ref().map(|r| r.to_vec()))),
            backend,
        })
    }

    /// The key's last row: from the cache, else from the backend.
    fn last_row(&self, key: &GroupKey) -> Result<Option<Box<[u8]>>> {
        match self.cache.get(key) {
            Some(last) => Ok(last.clone()),
            None => Ok(self.backend.get(key)?.map(Vec::into_boxed_slice)),
        }
    }
}

impl Operator for ChangelogNormalize {
    fn state_bytes(&self) -> Option<u64> {
        Some(self.backend.estimated_bytes())
    }

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
            *self.cache.changing(&key, || Ok(None))? = row;
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
        self.cache.spill_if_full(self.backend.as_mut())
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<OperatorSnapshot>> {
        Ok(Some(self.cache.snapshot(self.backend.as_mut(), dir)?))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

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
        assert_eq!(
            harness.take_changelog().expect("changelog"),
            ["+I 1 a", "+I 2 b", "-U 1 a", "+U 1 c"]
        );
        // The same row again changes nothing; a delete of an unknown key neither.
        harness
            .push(upserts(&[(UpdateAfter, 1, Some("c")), (Delete, 9, None)]))
            .expect("push");
        assert_eq!(harness.take_changelog().expect("changelog"), Vec::<String>::new());
        harness.push(upserts(&[(Delete, 2, None)])).expect("push");
        assert_eq!(harness.take_changelog().expect("changelog"), ["-D 2 b"]);

        let snapshot = harness.barrier().expect("barrier").expect("a snapshot");
        let backend = snapshot
            .restore_backend(StateBackendKind::RocksDb, &dir.path().join("restored"))
            .expect("restore");
        let operator = ChangelogNormalize::new(vec![0], schema(), backend, 100).expect("operator");
        let mut restored = OperatorHarness::new(Box::new(operator), &dir.path().join("b"));
        restored
            .push(upserts(&[(UpdateAfter, 2, Some("d")), (Delete, 1, None)]))
            .expect("push");
        assert_eq!(restored.take_changelog().expect("changelog"), ["+I 2 d", "-D 1 c"]);
    }
}
