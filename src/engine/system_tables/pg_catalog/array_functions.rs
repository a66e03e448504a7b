//! Postgres' array functions that catalog queries use and DataFusion lacks: `array_lower`,
//! `parse_ident` (a qualified name as its parts), and `pg_expandarray`, the struct-valued half of
//! `information_schema._pg_expandarray` (`planner/postgres_syntax.rs` wraps it in `unnest`).
//! Weir's arrays are one-dimensional and start at subscript 1.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListArray, StringArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::functions::{int_arg, register_function, rows_of, text_arg};
use crate::error::{Error, Result, UserErrorKind};
use crate::planner::postgres_syntax::EXPANDARRAY;

/// The lengths of a list argument's rows (NULL for a NULL array), whatever its list type.
fn list_lengths(array: &ArrayRef) -> Vec<Option<i64>> {
    match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().iter().map(|l| l.map(|l| l.len() as i64)).collect(),
        DataType::LargeList(_) => array.as_list::<i64>().iter().map(|l| l.map(|l| l.len() as i64)).collect(),
        _ => vec![None; array.len()],
    }
}

/// `array_lower(array, dimension)`: 1 for the one dimension of a non-empty array, else NULL.
fn array_lower(args: &[ArrayRef]) -> Result<ArrayRef> {
    let rows = rows_of(args);
    let dimensions = int_arg(args, 1, rows)?;
    let lengths = match args.first() {
        Some(array) => list_lengths(array),
        None => vec![None; rows],
    };
    let values: Int64Array = lengths
        .into_iter()
        .enumerate()
        .map(|(r, length)| {
            length
                .filter(|n| *n > 0 && dimensions.is_valid(r) && dimensions.value(r) == 1)
                .map(|_| 1)
        })
        .collect();
    Ok(Arc::new(values))
}

/// The parts of a qualified SQL name: `"My Schema".t` → `My Schema`, `t`.
fn identifier_parts(text: &str) -> Result<Vec<String>> {
    let invalid = || {
        Error::user(
            UserErrorKind::InvalidParameter,
            format!("string is not a valid identifier: \"{text}\""),
        )
    };
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next().ok_or_else(invalid)? {
                    '"' if chars.next_if_eq(&'"').is_some() => part.push('"'),
                    '"' => break,
                    c => part.push(c),
                }
            }
            if part.is_empty() {
                return Err(invalid());
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != '.' && !c.is_whitespace()) {
                part.push(c.to_ascii_lowercase());
            }
            if part.is_empty() || !part.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                return Err(invalid());
            }
        }
        parts.push(part);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            None => return Ok(parts),
            Some('.') => while chars.next_if(|c| c.is_whitespace()).is_some() {},
            Some(_) => return Err(invalid()),
        }
    }
}

/// `parse_ident(name [, strict])`: the parts of a qualified name as `text[]`.
fn parse_ident(args: &[ArrayRef]) -> Result<ArrayRef> {
    let names = text_arg(args, 0, rows_of(args))?;
    let mut lengths = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    let mut valid = Vec::new();
    for name in names.iter() {
        let row = name.map(identifier_parts).transpose()?;
        valid.push(row.is_some());
        let row = row.unwrap_or_default();
        lengths.push(row.len());
        parts.extend(row);
    }
    Ok(Arc::new(ListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Utf8, true)),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(StringArray::from_iter_values(parts)),
        Some(valid.into()),
    )?))
}

/// `pg_expandarray(array)`: the array's elements as `{x: element, n: subscript}` structs.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

fn expanded_fields(element: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("x", element.clone(), true),
        Field::new("n", DataType::Int64, false),
    ])
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        EXPANDARRAY
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        match arg_types.first() {
            Some(DataType::List(field) | DataType::LargeList(field)) => {
                Ok(DataType::new_list(DataType::Struct(expanded_fields(field.data_type())), true))
            }
            other => plan_err!("_pg_expandarray takes an array, not {other:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(argument) = arrays.first() else {
            return plan_err!("_pg_expandarray takes an array");
        };
        let element = match argument.data_type() {
            DataType::List(field) | DataType::LargeList(field) => field.data_type().clone(),
            other => return plan_err!("_pg_expandarray takes an array, not {other}"),
        };
        let list = cast(argument, &DataType::new_list(element.clone(), true))?;
        let list = list.as_list::<i32>();
        // Subscripts for every position of the values, counted from 1 within each row.
        let mut subscripts = vec![0i64; list.values().len()];
        for window in list.offsets().windows(2) {
            let (start, end) = (window[0] as usize, window[1] as usize);
            for (position, subscript) in (start..end).zip(1..) {
                subscripts[position] = subscript;
            }
        }
        let structs = StructArray::try_new(
            expanded_fields(&element),
            vec![list.values().clone(), Arc::new(Int64Array::from(subscripts))],
            None,
        )?;
        let out: ArrayRef = Arc::new(ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Struct(expanded_fields(&element)), true)),
            list.offsets().clone(),
            Arc::new(structs),
            list.nulls().cloned(),
        )?);
        Ok(match all_scalar {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?),
            false => ColumnarValue::Array(out),
        })
    }
}

pub(super) fn register(ctx: &SessionContext) {
    register_function(ctx, "array_lower", &[2], DataType::Int64, array_lower);
    register_function(ctx, "parse_ident", &[1, 2], DataType::new_list(DataType::Utf8, true), parse_ident);
    ctx.register_udf(ScalarUDF::new_from_impl(ExpandArray {
        signature: Signature::any(1, Volatility::Immutable),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_split_as_postgres_does() {
        assert_eq!(identifier_parts("public.T").unwrap(), vec!["public", "t"]);
        assert_eq!(identifier_parts("\"My \"\"S\"\"\" . t").unwrap(), vec!["My \"S\"", "t"]);
        assert!(identifier_parts("a..b").is_err());
        assert!(identifier_parts("\"open").is_err());
    }
}
