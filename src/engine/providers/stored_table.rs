//! A result table stored in Weir as DataFusion sees it. A scan streams the table's rows from the
//! table store, a batch at a time, from one consistent view of it. Filters on a prefix of the
//! primary key (equalities, then a range on the next key column) narrow the scan to that span of
//! keys: a primary-key lookup reads one row instead of the table. DataFusion still applies every
//! filter to the rows read (the push-down is inexact), so a filter this does not understand
//! only costs a wider scan.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session as DfSession;
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};

use crate::catalog::{TableDef, schema_of};
use crate::connectors::table_store::{KeyRange, TableStore, encode_key_prefix, prefix_successor};
use crate::error::{Error, Result};

/// Batches a scan reads ahead of its consumer.
const READ_AHEAD_BATCHES: usize = 2;

/// A stored result table as DataFusion sees it.
#[derive(Debug)]
pub struct StoredTable {
    pub def: TableDef,
    schema: SchemaRef,
    store: Arc<TableStore>,
}

impl StoredTable {
    pub fn new(def: TableDef, store: Arc<TableStore>) -> Result<Self> {
        Ok(StoredTable {
            schema: schema_of(&def.columns)?,
            def,
            store,
        })
    }

    /// The key span `filters` (a conjunction) allow.
    fn key_range(&self, filters: &[Expr]) -> Result<KeyRange> {
        let bounds: Vec<KeyBound> = filters.iter().filter_map(|f| self.key_bound(f)).collect();
        let mut equal = Vec::new();
        for column in &self.def.primary_key {
            match bounds.iter().find(|b| &b.column == column && b.op == Operator::Eq) {
                Some(bound) => equal.push(bound.value.clone()),
                None => break,
            }
        }
        // An empty prefix spans the whole table.
        let mut range = KeyRange::with_prefix(encode_key_prefix(&self.def, &equal)?);
        let Some(next) = self.def.primary_key.get(equal.len()) else {
            return Ok(range);
        };
        let with = |value: &ScalarValue| -> Result<Vec<u8>> {
            let mut values = equal.clone();
            values.push(value.clone());
            encode_key_prefix(&self.def, &values)
        };
        for bound in bounds.iter().filter(|b| &b.column == next) {
            match bound.op {
                Operator::GtEq => range.start = Some(with(&bound.value)?),
                Operator::Gt => range.start = prefix_successor(&with(&bound.value)?).or(range.start),
                Operator::Lt => range.end = Some(with(&bound.value)?),
                Operator::LtEq => range.end = prefix_successor(&with(&bound.value)?).or(range.end),
                _ => {}
            }
        }
        Ok(range)
    }

    /// `filter` as a bound on a primary key column: `column op literal` (either way round), with
    /// the literal exactly representable in the column's type.
    fn key_bound(&self, filter: &Expr) -> Option<KeyBound> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
            return None;
        };
        let (column, op, literal) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) => (c, *op, v),
            (Expr::Literal(v, _), Expr::Column(c)) => (c, op.swap()?, v),
            _ => return None,
        };
        if !matches!(op, Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq) {
            return None;
        }
        let name = self.def.primary_key.iter().find(|k| **k == column.name)?;
        let field = self.schema.field_with_name(name).ok()?;
        if literal.is_null() {
            return None;
        }
        let value = literal.cast_to(field.data_type()).ok()?;
        // A lossy cast (1.5 to BIGINT) would move the bound.
        if value.cast_to(&literal.data_type()).ok()? != *literal || value.is_null() {
            return None;
        }
        Some(KeyBound {
            column: name.clone(),
            op,
            value,
        })
    }
}

/// One filter that bounds a primary key column.
struct KeyBound {
    column: String,
    op: Operator,
    value: ScalarValue,
}

#[async_trait]
impl TableProvider for StoredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.key_bound(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        if self.def.connector != crate::catalog::TableConnector::Stored {
            return Err(Error::invalid_state(format!(
                "table '{}' is a '{}' sink and keeps no rows to query",
                self.def.name,
                self.def.connector.name()
            ))
            .into());
        }
        let partition = StoredTableScan {
            def: self.def.clone(),
            schema: self.schema.clone(),
            store: self.store.clone(),
            range: self.key_range(filters)?,
        };
        Ok(Arc::new(StreamingTableExec::try_new(
            self.schema.clone(),
            vec![Arc::new(partition)],
            projection,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

/// One scan of a stored table: a blocking thread iterates the store and hands batches over a
/// short queue, so a scan holds a few batches in memory whatever the table's size, and stops
/// when the query drops it (LIMIT, cancel).
#[derive(Debug)]
struct StoredTableScan {
    def: TableDef,
    schema: SchemaRef,
    store: Arc<TableStore>,
    range: KeyRange,
}

impl PartitionStream for StoredTableScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD_BATCHES);
        let (store, def, range) = (self.store.clone(), self.def.clone(), self.range.clone());
        tokio::task::spawn_blocking(move || {
            let scanned = store.scan_range(&def, &range, |batch| tx.blocking_send(Ok(batch)).is_ok());
            if let Err(e) = scanned {
                let _ = tx.blocking_send(Err(e.into()));
            }
        });
        let batches = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|batch| (batch, rx)) });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}
