//! Filter and projection: DataFusion physical expressions evaluated once per batch. A changelog's
//! row kinds (the batch's last column) pass through both: a filter keeps the whole batch's columns,
//! a projection carries the kinds over to the rows it computes.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::graph::PhysicalExprRef;
use crate::message::{Message, split_row_kinds, with_row_kinds};
use crate::runtime::Operator;

pub struct Filter {
    predicate: PhysicalExprRef,
}

impl Filter {
    pub fn new(predicate: PhysicalExprRef) -> Self {
        Filter { predicate }
    }
}

impl Operator for Filter {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let mask = self.predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = mask
            .as_boolean_opt()
            .ok_or_else(|| Error::type_mismatch("a WHERE condition must be a boolean"))?;
        let kept = filter_record_batch(&batch, mask)?;
        if kept.num_rows() > 0 {
            out.push(Message::Data(kept));
        }
        Ok(())
    }
}

pub struct Project {
    exprs: Vec<PhysicalExprRef>,
    schema: SchemaRef,
}

impl Project {
    pub fn new(exprs: Vec<PhysicalExprRef>, schema: SchemaRef) -> Self {
        Project { exprs, schema }
    }
}

impl Operator for Project {
    fn process(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        let (batch, kinds) = split_row_kinds(&batch)?;
        let columns = self
            .exprs
            .iter()
            .map(|e| Ok(e.evaluate(&batch)?.into_array(batch.num_rows())?))
            .collect::<Result<Vec<_>>>()?;
        let options = datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let rows = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        out.push(Message::Data(match kinds {
            Some(kinds) => with_row_kinds(&rows, kinds)?,
            None => rows,
        }));
        Ok(())
    }
}
