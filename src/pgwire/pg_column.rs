//! A result column as Postgres values: each column is cast once per batch to the Rust type its
//! Postgres type (`engine::postgres_types::pg_type`) is encoded from, in text or binary, into a
//! DataRow or a line of COPY's output.

use std::ops::Range;

use ::pgwire::api::Type;
use ::pgwire::api::results::{CopyEncoder, DataRowEncoder};
use ::pgwire::error::PgWireResult;
use ::pgwire::types::ToSqlText;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DurationMicrosecondArray, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, ListArray, Time64MicrosecondArray,
    TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use postgres_types::{Kind, ToSql};

use super::api_error;
use super::datetime::{PgInterval, PgTime, PgTimestamp};
use super::numeric::PgNumeric;
use crate::engine::postgres_types::pg_type;
use crate::error::{Error, Result};
use crate::format::cell_text;

/// Where a row's fields are encoded: a DataRow, or a line of COPY's output.
pub(super) trait FieldEncoder {
    fn field<T: ToSqlText + ToSql>(&mut self, value: &T) -> PgWireResult<()>;
}

impl FieldEncoder for DataRowEncoder {
    fn field<T: ToSqlText + ToSql>(&mut self, value: &T) -> PgWireResult<()> {
        self.encode_field(value)
    }
}

impl FieldEncoder for CopyEncoder {
    fn field<T: ToSqlText + ToSql>(&mut self, value: &T) -> PgWireResult<()> {
        self.encode_field(value)
    }
}

/// The columns of `batch`, ready to encode row by row.
pub(super) fn pg_columns(batch: &RecordBatch) -> PgWireResult<Vec<PgColumn>> {
    batch
        .columns()
        .iter()
        .map(PgColumn::new)
        .collect::<Result<Vec<_>>>()
        .map_err(api_error)
}

/// A column cast to the Arrow type its Postgres type is encoded from.
pub(super) enum PgColumn {
    Bool(BooleanArray),
    Int2(Int16Array),
    Int4(Int32Array),
    Int8(Int64Array),
    Oid(UInt32Array),
    Float4(Float32Array),
    Float8(Float64Array),
    Numeric(Decimal128Array),
    Date(Date32Array),
    Time(Time64MicrosecondArray),
    Timestamp(TimestampMicrosecondArray),
    /// Instants in UTC (the session's TimeZone is UTC), sent with their offset.
    TimestampTz(TimestampMicrosecondArray),
    Interval(IntervalMonthDayNanoArray),
    Duration(DurationMicrosecondArray),
    Bytes(BinaryArray),
    /// A Postgres array per row: the row's slice of `elements`.
    Array(ListArray, Box<PgColumn>),
    /// Anything else, as its text.
    Text(ArrayRef),
}

/// The cells one field is made of: one value, or the elements of one array (`None`: a NULL array).
enum Cells {
    Value(usize),
    Array(Option<Range<usize>>),
}

impl PgColumn {
    fn new(column: &ArrayRef) -> Result<Self> {
        let to = |t: DataType| -> Result<ArrayRef> { Ok(cast(column, &t)?) };
        let pg = pg_type(column.data_type());
        Ok(match pg {
            Type::BOOL => PgColumn::Bool(to(DataType::Boolean)?.as_boolean().clone()),
            Type::INT2 => PgColumn::Int2(to(DataType::Int16)?.as_primitive().clone()),
            Type::INT4 => PgColumn::Int4(to(DataType::Int32)?.as_primitive().clone()),
            Type::INT8 => PgColumn::Int8(to(DataType::Int64)?.as_primitive().clone()),
            Type::OID => PgColumn::Oid(to(DataType::UInt32)?.as_primitive().clone()),
            Type::FLOAT4 => PgColumn::Float4(to(DataType::Float32)?.as_primitive().clone()),
            Type::FLOAT8 => PgColumn::Float8(to(DataType::Float64)?.as_primitive().clone()),
            Type::NUMERIC => {
                let scale = match column.data_type() {
                    DataType::Decimal32(_, s) | DataType::Decimal64(_, s) | DataType::Decimal128(_, s) => *s,
                    other => return Err(Error::internal(format!("{other} sent as numeric"))),
                };
                PgColumn::Numeric(to(DataType::Decimal128(38, scale))?.as_primitive().clone())
            }
            Type::DATE => PgColumn::Date(to(DataType::Date32)?.as_primitive().clone()),
            Type::TIME => PgColumn::Time(to(DataType::Time64(TimeUnit::Microsecond))?.as_primitive().clone()),
            Type::TIMESTAMP => PgColumn::Timestamp(to(DataType::Timestamp(TimeUnit::Microsecond, None))?.as_primitive().clone()),
            // The same instants whatever the zone: only the unit changes.
            Type::TIMESTAMPTZ => PgColumn::TimestampTz(
                to(DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())))?
                    .as_primitive()
                    .clone(),
            ),
            Type::INTERVAL if matches!(column.data_type(), DataType::Duration(_)) => {
                PgColumn::Duration(to(DataType::Duration(TimeUnit::Microsecond))?.as_primitive().clone())
            }
            Type::INTERVAL => PgColumn::Interval(to(DataType::Interval(IntervalUnit::MonthDayNano))?.as_primitive().clone()),
            Type::BYTEA => PgColumn::Bytes(to(DataType::Binary)?.as_binary::<i32>().clone()),
            ref array if matches!(array.kind(), Kind::Array(_)) => {
                let element = match column.data_type() {
                    DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => f.data_type().clone(),
                    other => return Err(Error::internal(format!("{other} sent as an array"))),
                };
                let list = to(DataType::List(Field::new_list_field(element, true).into()))?
                    .as_list::<i32>()
                    .clone();
                let elements = PgColumn::new(list.values())?;
                PgColumn::Array(list, Box::new(elements))
            }
            _ => PgColumn::Text(column.clone()),
        })
    }

    /// Encodes the field of `row`.
    pub(super) fn encode(&self, row: usize, encoder: &mut impl FieldEncoder) -> PgWireResult<()> {
        self.encode_cells(&Cells::Value(row), encoder)
    }

    fn encode_cells(&self, cells: &Cells, encoder: &mut impl FieldEncoder) -> PgWireResult<()> {
        match self {
            PgColumn::Bool(a) => put(encoder, cells, |i| present(a, i, |i| a.value(i))),
            PgColumn::Int2(a) => put(encoder, cells, |i| present(a, i, |i| a.value(i))),
            PgColumn::Int4(a) => put(encoder, cells, |i| present(a, i, |i| a.value(i))),
            PgColumn::Int8(a) => put(encoder, cells, |i| present(a, i, |i| a.value(i))),
            PgColumn::Oid(a) => put(encoder, cells, |i| present(a, i, |i| a.value(i))),
            PgColumn::Float4(a) => put(encoder, cells, |i| present(a, i, |i| a.value(i))),
            PgColumn::Float8(a) => put(encoder, cells, |i| present(a, i, |i| a.value(i))),
            PgColumn::Numeric(a) => put(encoder, cells, |i| {
                present(a, i, |i| PgNumeric {
                    unscaled: a.value(i),
                    scale: a.scale(),
                })
            }),
            PgColumn::Date(a) => put(encoder, cells, |i| {
                Ok(present(a, i, |i| a.value(i))?.and_then(|days| {
                    NaiveDate::from_ymd_opt(1970, 1, 1).and_then(|epoch| epoch.checked_add_signed(TimeDelta::days(i64::from(days))))
                }))
            }),
            PgColumn::Time(a) => put(encoder, cells, |i| {
                Ok(present(a, i, |i| a.value(i))?.and_then(|micros| {
                    let (seconds, micros) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
                    NaiveTime::from_num_seconds_from_midnight_opt(u32::try_from(seconds).ok()?, u32::try_from(micros * 1000).ok()?)
                        .map(PgTime)
                }))
            }),
            PgColumn::Timestamp(a) => put(encoder, cells, |i| {
                Ok(present(a, i, |i| a.value(i))?
                    .and_then(DateTime::from_timestamp_micros)
                    .map(|utc| PgTimestamp { utc, zoned: false }))
            }),
            PgColumn::TimestampTz(a) => put(encoder, cells, |i| {
                Ok(present(a, i, |i| a.value(i))?
                    .and_then(DateTime::from_timestamp_micros)
                    .map(|utc| PgTimestamp { utc, zoned: true }))
            }),
            PgColumn::Interval(a) => put(encoder, cells, |i| {
                present(a, i, |i| {
                    let v = a.value(i);
                    PgInterval {
                        months: v.months,
                        days: v.days,
                        micros: v.nanoseconds / 1000,
                    }
                })
            }),
            PgColumn::Duration(a) => put(encoder, cells, |i| {
                present(a, i, |i| PgInterval {
                    months: 0,
                    days: 0,
                    micros: a.value(i),
                })
            }),
            PgColumn::Bytes(a) => put(encoder, cells, |i| present(a, i, |i| a.value(i).to_vec())),
            PgColumn::Array(list, elements) => match cells {
                Cells::Value(row) => {
                    let offsets = list.value_offsets();
                    let range = list.is_valid(*row).then(|| offsets[*row] as usize..offsets[*row + 1] as usize);
                    elements.encode_cells(&Cells::Array(range), encoder)
                }
                // pg_type sends a list of lists as text.
                Cells::Array(_) => Err(api_error(Error::internal("a nested list encoded as an array"))),
            },
            PgColumn::Text(a) => put(encoder, cells, |i| cell_text(a.as_ref(), i).map_err(api_error)),
        }
    }
}

/// The value at `i`, or `None` for NULL.
fn present<A: Array, T>(array: &A, i: usize, value: impl FnOnce(usize) -> T) -> PgWireResult<Option<T>> {
    Ok(array.is_valid(i).then(|| value(i)))
}

/// Encodes the cells as one field: a value, or an array of them.
fn put<T, E>(encoder: &mut E, cells: &Cells, value: impl Fn(usize) -> PgWireResult<Option<T>>) -> PgWireResult<()>
where
    T: ToSqlText + ToSql,
    E: FieldEncoder,
{
    match cells {
        Cells::Value(row) => encoder.field(&value(*row)?),
        Cells::Array(None) => encoder.field(&None::<Vec<Option<T>>>),
        Cells::Array(Some(range)) => encoder.field(&Some(range.clone().map(value).collect::<PgWireResult<Vec<_>>>()?)),
    }
}
