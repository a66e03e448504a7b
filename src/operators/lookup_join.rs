//! `LookupJoin`: Flink's lookup join, the processing-time temporal join `JOIN t FOR SYSTEM_TIME
//! AS OF o.proc_time`. Each probe row reads the rows of its key from the table side
//! (`runtime::LookupTable`: a bounded source held in memory, or a result table) as they are when
//! it arrives; a later change of the table does not change rows already joined. So the operator
//! keeps no state and its output is append-only: inner, or left with the probe rows that found
//! nothing padded with NULLs.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt32Array, new_null_array};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, take, take_record_batch};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::graph::{JoinKind, LookupJoinSpec, PhysicalExprRef};
use crate::message::Message;
use crate::operators::join::batch_of;
use crate::runtime::{LookupTable, Operator};

pub struct LookupJoin {
    /// Keep the probe rows that find nothing (LEFT JOIN).
    keep_unmatched: bool,
    /// The key expressions over the probe rows, of the table's key columns' types.
    keys: Vec<PhysicalExprRef>,
    table: Box<dyn LookupTable>,
    /// Conditions on the table's rows alone (the planner put them below the join).
    table_filters: Vec<PhysicalExprRef>,
    /// The table's columns the joined rows carry.
    table_output: Vec<usize>,
    /// The rest of the ON condition, over a probe row's columns followed by the table row's.
    filter: Option<PhysicalExprRef>,
    /// Probe columns then table columns, all nullable: what `filter` reads.
    pairs_schema: SchemaRef,
    output_schema: SchemaRef,
}

impl LookupJoin {
    pub fn new(
        spec: &LookupJoinSpec,
        input: SchemaRef,
        table_schema: SchemaRef,
        output_schema: SchemaRef,
        table: Box<dyn LookupTable>,
    ) -> Result<Self> {
        let keep_unmatched = match spec.kind {
            JoinKind::Inner => false,
            JoinKind::Left => true,
            other => return Err(Error::internal(format!("a lookup join cannot be {other:?}"))),
        };
        let table_schema = table_schema.project(&spec.table_output)?;
        let fields: Vec<_> = input
            .fields()
            .iter()
            .chain(table_schema.fields())
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        Ok(LookupJoin {
            keep_unmatched,
            keys: spec.keys.clone(),
            table,
            table_filters: spec.table_filters.clone(),
            table_output: spec.table_output.clone(),
            filter: spec.filter.clone(),
            pairs_schema: Arc::new(Schema::new(fields)),
            output_schema,
        })
    }
}

/// The rows of `batch` for which `predicate` is true (NULL counts as false).
fn passing(predicate: &PhysicalExprRef, batch: &RecordBatch) -> Result<BooleanArray> {
    let mask = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
    let mask = mask
        .as_boolean_opt()
        .ok_or_else(|| Error::type_mismatch("a JOIN condition must be a boolean"))?;
    // filter_record_batch keeps a row where the mask is true; a NULL must drop it too.
    Ok(mask.iter().map(|v| Some(v == Some(true))).collect())
}

impl Operator for LookupJoin {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let keys = self
            .keys
            .iter()
            .map(|k| Ok(k.evaluate(&batch)?.into_array(batch.num_rows())?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let (mut probes, mut found) = self.table.lookup(&keys)?;
        for table_filter in &self.table_filters {
            let mask = passing(table_filter, &found)?;
            probes = probes
                .into_iter()
                .zip(mask.values().iter())
                .filter(|(_, keep)| *keep)
                .map(|(p, _)| p)
                .collect();
            found = filter_record_batch(&found, &mask)?;
        }
        let found = found.project(&self.table_output)?;
        let probe_indices = UInt32Array::from(probes);
        let mut columns: Vec<ArrayRef> = take_record_batch(&batch, &probe_indices)?.columns().to_vec();
        columns.extend(found.columns().iter().cloned());
        let mut pairs = batch_of(&self.pairs_schema, columns, probe_indices.len())?;
        let mut matched = probe_indices;
        if let Some(filter) = &self.filter {
            let mask = passing(filter, &pairs)?;
            pairs = filter_record_batch(&pairs, &mask)?;
            matched = datafusion::arrow::compute::filter(&matched, &mask)?.as_primitive().clone();
        }
        let mut outputs = vec![pairs];
        if self.keep_unmatched {
            let mut has_match = vec![false; batch.num_rows()];
            for p in matched.values() {
                has_match[*p as usize] = true;
            }
            let unmatched: UInt32Array = (0..batch.num_rows() as u32).filter(|i| !has_match[*i as usize]).collect();
            if !unmatched.is_empty() {
                let mut columns: Vec<ArrayRef> = batch
                    .columns()
                    .iter()
                    .map(|c| Ok(take(c.as_ref(), &unmatched, None)?))
                    .collect::<Result<_>>()?;
                let table_fields = &self.pairs_schema.fields()[batch.num_columns()..];
                columns.extend(table_fields.iter().map(|f| new_null_array(f.data_type(), unmatched.len())));
                outputs.push(batch_of(&self.pairs_schema, columns, unmatched.len())?);
            }
        }
        let joined = concat_batches(&self.pairs_schema, &outputs)?;
        if joined.num_rows() > 0 {
            let columns = joined
                .columns()
                .iter()
                .zip(self.output_schema.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        Ok(cast(c, f.data_type())?)
                    }
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            out.push(Message::Data(RecordBatch::try_new(self.output_schema.clone(), columns)?));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::logical_expr::Operator as BinaryOperator;
    use datafusion::physical_expr::expressions::{binary, col, lit};

    use super::*;
    use crate::graph::LookupSource;
    use crate::operators::testing::changelog_lines;

    /// Customers by id, changed between two probe batches.
    struct Customers(Vec<(i64, &'static str, i64)>);

    impl LookupTable for Customers {
        fn lookup(&mut self, keys: &[ArrayRef]) -> Result<(Vec<u32>, RecordBatch)> {
            let ids = keys[0].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let (mut probes, mut rows) = (Vec::new(), Vec::new());
            for (i, id) in ids.iter().enumerate() {
                for row in self.0.iter().filter(|c| Some(c.0) == id) {
                    probes.push(i as u32);
                    rows.push(*row);
                }
            }
            let batch = RecordBatch::try_new(
                customer_schema(),
                vec![
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                ],
            )?;
            Ok((probes, batch))
        }
    }

    fn customer_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("tier", DataType::Int64, false),
        ]))
    }

    fn order_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("customer", DataType::Int64, true),
            Field::new("amount", DataType::Int64, false),
        ]))
    }

    fn orders(rows: &[(Option<i64>, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            order_schema(),
            vec![
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .expect("orders")
    }

    /// `orders o LEFT JOIN customers FOR SYSTEM_TIME AS OF o.p AS c ON o.customer = c.id AND
    /// c.tier > 1 AND o.amount > 5`, over a table that changes between batches.
    #[test]
    fn lookup_join_reads_the_table_as_each_row_arrives() {
        let (input, table) = (order_schema(), customer_schema());
        let pairs: Vec<Field> = input
            .fields()
            .iter()
            .chain(table.fields())
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let pairs = Arc::new(Schema::new(pairs));
        let amount_over_5 = binary(col("amount", &pairs).expect("amount"), BinaryOperator::Gt, lit(5i64), &pairs).expect("filter");
        let tier_over_1 = binary(col("tier", &table).expect("tier"), BinaryOperator::Gt, lit(1i64), &table).expect("filter");
        let spec = LookupJoinSpec {
            kind: JoinKind::Left,
            keys: vec![col("customer", &input).expect("customer")],
            // Not read by the operator: the builder makes the table from it.
            table: LookupSource::Source {
                def: crate::catalog::SourceDef {
                    name: "customers".into(),
                    columns: Vec::new(),
                    watermark: None,
                    connector: "file".into(),
                    options: Default::default(),
                    primary_key: Vec::new(),
                },
                columns: vec![0, 1, 2],
                key_columns: vec![0],
            },
            table_filters: vec![tier_over_1],
            table_output: vec![0, 1, 2],
            filter: Some(amount_over_5),
        };
        let customers = Customers(vec![(1, "ann", 2), (2, "bob", 1), (3, "cy", 3), (3, "cy2", 2)]);
        let mut join = LookupJoin::new(&spec, input, table, pairs, Box::new(customers)).expect("join");
        let mut out = Vec::new();
        join.process(
            orders(&[(Some(1), 10), (Some(2), 10), (Some(3), 10), (Some(1), 1), (None, 7), (Some(9), 8)]),
            &mut out,
        )
        .expect("process");
        let [Message::Data(batch)] = out.as_slice() else {
            panic!("one batch: {out:?}")
        };
        let mut lines = changelog_lines(batch).expect("lines");
        lines.sort();
        // bob's tier and the small order fail the conditions: padded like the unknown and NULL ids.
        assert_eq!(
            lines,
            [
                "+I  7   ",
                "+I 1 1   ",
                "+I 1 10 1 ann 2",
                "+I 2 10   ",
                "+I 3 10 3 cy 3",
                "+I 3 10 3 cy2 2",
                "+I 9 8   "
            ]
        );
    }
}
