//! How Weir's Arrow types appear to Postgres clients: the type a column is sent as, which
//! RowDescription announces and `pg_catalog` lists.

use datafusion::arrow::datatypes::DataType;
use pgwire::api::Type;

/// The Postgres type a column is sent as.
pub fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Interval(_) => Type::INTERVAL,
        _ => Type::VARCHAR,
    }
}

/// The Postgres type a `$n` parameter is announced as: as a column, and an array of its element's
/// type for a list (`x = ANY($1)`).
pub fn pg_parameter_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::List(element) | DataType::LargeList(element) => match pg_type(element.data_type()) {
            Type::BOOL => Type::BOOL_ARRAY,
            Type::INT2 => Type::INT2_ARRAY,
            Type::INT4 => Type::INT4_ARRAY,
            Type::INT8 => Type::INT8_ARRAY,
            Type::FLOAT4 => Type::FLOAT4_ARRAY,
            Type::FLOAT8 => Type::FLOAT8_ARRAY,
            Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
            _ => Type::TEXT_ARRAY,
        },
        other => pg_type(other),
    }
}
