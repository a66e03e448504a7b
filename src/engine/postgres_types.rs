//! How Weir's Arrow types appear to Postgres clients: the type a column is sent as, which
//! RowDescription announces and `pg_catalog` lists.

use datafusion::arrow::datatypes::DataType;
use pgwire::api::Type;

/// The Postgres type a column (or a `$n` parameter) is sent as. A list is the array of its
/// element's type; what has no Postgres counterpart (structs, maps, nested lists, 256-bit
/// decimals) is sent as its text.
pub fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::List(element) | DataType::LargeList(element) | DataType::FixedSizeList(element, _) => match element.data_type() {
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => Type::VARCHAR,
            element => array_of(&scalar_pg_type(element)).unwrap_or(Type::VARCHAR),
        },
        other => scalar_pg_type(other),
    }
}

fn scalar_pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        // Weir's oids are BIGINT; only a `$n::oid` parameter is UInt32 (`planner::postgres_syntax`).
        DataType::UInt32 => Type::OID,
        DataType::Int64 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) => Type::NUMERIC,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        _ => Type::VARCHAR,
    }
}

/// The array type whose elements are `element`, for the types Weir sends as arrays.
fn array_of(element: &Type) -> Option<Type> {
    Some(match *element {
        Type::BOOL => Type::BOOL_ARRAY,
        Type::INT2 => Type::INT2_ARRAY,
        Type::INT4 => Type::INT4_ARRAY,
        Type::INT8 => Type::INT8_ARRAY,
        Type::OID => Type::OID_ARRAY,
        Type::FLOAT4 => Type::FLOAT4_ARRAY,
        Type::FLOAT8 => Type::FLOAT8_ARRAY,
        Type::NUMERIC => Type::NUMERIC_ARRAY,
        Type::BYTEA => Type::BYTEA_ARRAY,
        Type::DATE => Type::DATE_ARRAY,
        Type::TIME => Type::TIME_ARRAY,
        Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
        Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
        Type::INTERVAL => Type::INTERVAL_ARRAY,
        // Postgres' string functions and literals make text[] (`ARRAY['a']`, `string_to_array`).
        Type::VARCHAR => Type::TEXT_ARRAY,
        _ => return None,
    })
}
