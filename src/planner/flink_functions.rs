//! Scalar functions of Flink SQL that DataFusion spells differently, registered on every context
//! that plans user SQL (queries, jobs, computed columns), so Flink DDL and queries move over as
//! written.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};

use super::date_format::DateFormat;
use super::string_functions::{CountChar, RegexpExtract, SplitIndex};

pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(ToTimestampLtz::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(ProcTime::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(Mod::new()));
    // Replaces DataFusion's `date_format`, an alias of `to_char` (strftime patterns).
    ctx.register_udf(ScalarUDF::new_from_impl(DateFormat::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(RegexpExtract::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(SplitIndex::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(CountChar::new()));
    super::time_fields::functions().for_each(|f| ctx.register_udf(f));
}

/// A function's result: a scalar when every argument was one (as DataFusion expects when it folds
/// constants), else the array.
pub(super) fn columnar_result(result: ArrayRef, args: &[ColumnarValue]) -> datafusion::error::Result<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) && result.len() == 1 {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?));
    }
    Ok(ColumnarValue::Array(result))
}

/// A string argument, or a NULL literal where one is expected.
pub(super) fn is_string_or_null(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null)
}

/// `MOD(a, b)`: the remainder of `a / b`, with the sign of `a` (Flink's and Java's `%`), for
/// integers (BIGINT) or else DOUBLE. Nexmark q13 keys its side input by `mod(auction, 10000)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Mod {
    signature: Signature,
}

impl Mod {
    fn new() -> Self {
        Mod {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Mod {
    fn name(&self) -> &str {
        "mod"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [a, b] if (a.is_integer() || a.is_null()) && (b.is_integer() || b.is_null()) => Ok(DataType::Int64),
            [a, b] if (a.is_numeric() || a.is_null()) && (b.is_numeric() || b.is_null()) => Ok(DataType::Float64),
            _ => plan_err!("MOD takes two numbers, not {args:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let target = args.return_field.data_type().clone();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (a, b) = (cast(&arrays[0], &target)?, cast(&arrays[1], &target)?);
        columnar_result(datafusion::arrow::compute::kernels::numeric::rem(&a, &b)?, &args.args)
    }
}

/// The name `PROCTIME()` is registered under (DataFusion lower-cases function names).
pub const PROCTIME: &str = "proctime";

/// Whether a computed column's expression is `PROCTIME()`: the column is a processing-time
/// attribute, which a lookup join reads its table as of.
pub fn is_proctime_call(expr: &str) -> bool {
    squeezed(expr) == "proctime()"
}

/// Whether SQL text calls `PROCTIME()` anywhere.
pub fn is_proctime_call_in(sql: &str) -> bool {
    squeezed(sql).contains("proctime()")
}

/// `sql` lower-cased, without whitespace.
fn squeezed(sql: &str) -> String {
    sql.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase()
}

/// `PROCTIME()`: the time the row is processed (UTC, to the millisecond), Flink's processing-time
/// attribute. Volatile: evaluated for each batch, never folded into a constant.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ProcTime {
    signature: Signature,
}

impl ProcTime {
    fn new() -> Self {
        ProcTime {
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for ProcTime {
    fn name(&self) -> &str {
        PROCTIME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let millis = crate::message::processing_time_now() / 1_000_000;
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(Some(millis), None)))
    }
}

/// `TO_TIMESTAMP_LTZ(epoch, precision)`: epoch seconds (precision 0) or milliseconds (3) as a
/// timestamp, Flink's usual way to turn the epoch-millisecond times of Kafka JSON into event time.
/// Weir's timestamps are UTC instants, so Flink's TIMESTAMP_LTZ(3) is a TIMESTAMP(3) here.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestampLtz {
    signature: Signature,
}

impl ToTimestampLtz {
    fn new() -> Self {
        ToTimestampLtz {
            signature: Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(2)], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToTimestampLtz {
    fn name(&self) -> &str {
        "to_timestamp_ltz"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args.first() {
            Some(t) if t.is_numeric() || t.is_null() => Ok(DataType::Timestamp(TimeUnit::Millisecond, None)),
            Some(t) => plan_err!("TO_TIMESTAMP_LTZ takes a number of seconds or milliseconds since the epoch, not {t}"),
            None => plan_err!("TO_TIMESTAMP_LTZ needs an argument"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let scale = match args.args.get(1) {
            None => 1000,
            Some(ColumnarValue::Scalar(precision)) => match precision.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(0)) => 1000,
                ScalarValue::Int64(Some(3)) => 1,
                other => return exec_err!("TO_TIMESTAMP_LTZ precision must be 0 (seconds) or 3 (milliseconds), not {other}"),
            },
            Some(ColumnarValue::Array(_)) => return exec_err!("TO_TIMESTAMP_LTZ precision must be a constant 0 or 3"),
        };
        let values = ColumnarValue::values_to_arrays(&args.args[..1])?;
        let epochs = cast(&values[0], &DataType::Int64)?;
        let epochs = epochs.as_primitive::<Int64Type>();
        let millis: TimestampMillisecondArray = epochs.iter().map(|v| v.and_then(|v| v.checked_mul(scale))).collect();
        columnar_result(Arc::new(millis), &args.args)
    }
}
