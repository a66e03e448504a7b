//! Flink's functions that take one field of a timestamp or date: `YEAR`, `QUARTER`, `MONTH`,
//! `DAYOFMONTH`, `DAYOFYEAR`, `HOUR`, `MINUTE`, `SECOND` (Nexmark q14 uses `HOUR`). Each returns a
//! BIGINT, NULL for NULL, as Flink's `EXTRACT(field FROM t)` does; Weir's timestamps are UTC.

use std::sync::Arc;

use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::temporal::{DatePart, date_part};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::plan_err;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::flink_functions::columnar_result;

/// The functions, by name, and the field each takes.
const FIELDS: [(&str, DatePart); 8] = [
    ("year", DatePart::Year),
    ("quarter", DatePart::Quarter),
    ("month", DatePart::Month),
    ("dayofmonth", DatePart::Day),
    ("dayofyear", DatePart::DayOfYear),
    ("hour", DatePart::Hour),
    ("minute", DatePart::Minute),
    ("second", DatePart::Second),
];

/// Every field function, to register.
pub fn functions() -> impl Iterator<Item = ScalarUDF> {
    (0..FIELDS.len()).map(|field| {
        ScalarUDF::new_from_impl(TimeField {
            field,
            signature: Signature::any(1, Volatility::Immutable),
        })
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TimeField {
    /// The index of its name and field in `FIELDS` (arrow's `DatePart` is not `Hash`).
    field: usize,
    signature: Signature,
}

impl ScalarUDFImpl for TimeField {
    fn name(&self) -> &str {
        FIELDS[self.field].0
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null] => Ok(DataType::Int64),
            _ => plan_err!("{}() takes a TIMESTAMP or a DATE, not {args:?}", self.name().to_ascii_uppercase()),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let values = ColumnarValue::values_to_arrays(&args.args)?;
        let field = match values[0].data_type() {
            DataType::Null => values[0].clone(),
            _ => date_part(&values[0], FIELDS[self.field].1)?,
        };
        columnar_result(Arc::new(cast(&field, &DataType::Int64)?), &args.args)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn each_field_of_a_timestamp_is_a_bigint() {
        let ctx = SessionContext::new();
        functions().for_each(|f| ctx.register_udf(f));
        let batches = ctx
            .sql(
                "SELECT year(t), quarter(t), month(t), dayofmonth(t), dayofyear(t), hour(t), minute(t), second(t), hour(NULL)
                 FROM (VALUES (TIMESTAMP '2023-11-14 22:13:20.040')) AS v(t)",
            )
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let row: Vec<String> = batches[0]
            .columns()
            .iter()
            .map(|c| datafusion::arrow::util::display::array_value_to_string(c, 0).expect("value"))
            .collect();
        assert_eq!(row, ["2023", "4", "11", "14", "318", "22", "13", "20", ""]);
        assert_eq!(batches[0].schema().field(5).data_type(), &DataType::Int64);
    }
}
