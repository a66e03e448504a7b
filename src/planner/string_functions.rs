//! Flink's string functions that DataFusion lacks: `REGEXP_EXTRACT(s, regex [, group])` and
//! `SPLIT_INDEX(s, separator, index)` (Nexmark q21 and q22). Both give NULL where Flink does: a
//! NULL argument, no match, a group or an index that does not exist. And `COUNT_CHAR(s, c)`,
//! the user-defined function of Nexmark q14, built in so the benchmark runs as published.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility};
use regex::Regex;

use super::flink_functions::{columnar_result, is_string_or_null};

/// `REGEXP_EXTRACT(s, regex [, group])`: group `group` (default 0, the whole match) of the first
/// match of `regex` in `s`. The pattern is Rust's regex syntax, which is Java's without
/// look-around and back-references; a pattern that does not compile is an error (Flink logs it
/// and returns NULL).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    pub fn new() -> Self {
        RegexpExtract {
            signature: Signature::one_of(vec![TypeSignature::Any(2), TypeSignature::Any(3)], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [s, regex]
            | [
                s,
                regex,
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Null,
            ] if is_string_or_null(s) && is_string_or_null(regex) => Ok(DataType::Utf8),
            _ => plan_err!("REGEXP_EXTRACT takes a string, a regular expression and an optional group number, not {args:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let strings = strings_of(&args.args[0], rows)?;
        let patterns = strings_of(&args.args[1], rows)?;
        let groups = match args.args.get(2) {
            Some(group) => Some(cast(&group.to_array(rows)?, &DataType::Int64)?),
            None => None,
        };
        let groups = groups.as_ref().map(|g| g.as_primitive::<Int64Type>());
        // The pattern is nearly always a constant: compile each distinct one once per batch.
        let mut compiled: Option<(String, Regex)> = None;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let group = match groups {
                Some(g) if g.is_null(i) => None,
                Some(g) => usize::try_from(g.value(i)).ok(),
                None => Some(0),
            };
            let (Some(s), Some(pattern), Some(group)) = (value(&strings, i), value(&patterns, i), group) else {
                out.push(None);
                continue;
            };
            if compiled.as_ref().is_none_or(|(p, _)| p != pattern) {
                match Regex::new(pattern) {
                    Ok(regex) => compiled = Some((pattern.to_string(), regex)),
                    Err(e) => return exec_err!("REGEXP_EXTRACT: the regular expression '{pattern}' is invalid: {e}"),
                }
            }
            let extracted = compiled
                .as_ref()
                .and_then(|(_, regex)| regex.captures(s))
                .and_then(|c| c.get(group).map(|m| m.as_str().to_string()));
            out.push(extracted);
        }
        columnar_result(Arc::new(StringArray::from(out)), &args.args)
    }
}

/// `SPLIT_INDEX(s, separator, index)`: the `index`-th (from 0) piece of `s` split at every
/// occurrence of `separator` (a string, not a pattern), empty pieces kept.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SplitIndex {
    signature: Signature,
}

impl SplitIndex {
    pub fn new() -> Self {
        SplitIndex {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SplitIndex {
    fn name(&self) -> &str {
        "split_index"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [s, separator, index] if is_string_or_null(s) && is_string_or_null(separator) && (index.is_integer() || index.is_null()) => {
                Ok(DataType::Utf8)
            }
            _ => plan_err!("SPLIT_INDEX takes a string, a separator string and an index, not {args:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let strings = strings_of(&args.args[0], rows)?;
        let separators = strings_of(&args.args[1], rows)?;
        let indexes = cast(&args.args[2].to_array(rows)?, &DataType::Int64)?;
        let indexes = indexes.as_primitive::<Int64Type>();
        let pieces: StringArray = (0..rows)
            .map(|i| {
                let (s, separator) = (value(&strings, i)?, value(&separators, i)?);
                let index = usize::try_from(indexes.is_valid(i).then(|| indexes.value(i))?).ok()?;
                // As Flink (commons-lang's splitByWholeSeparatorPreserveAllTokens): an empty
                // string has no pieces, an empty separator splits at whitespace.
                if s.is_empty() {
                    return None;
                }
                if separator.is_empty() {
                    return s.split_whitespace().nth(index);
                }
                s.split(separator).nth(index)
            })
            .collect();
        columnar_result(Arc::new(pieces), &args.args)
    }
}

/// `COUNT_CHAR(s, c)`: how many times the first character of `c` occurs in `s`; 0 for a NULL
/// `s`, as the Nexmark benchmark's `CountChar` UDF (which q14 registers with `CREATE FUNCTION`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CountChar {
    signature: Signature,
}

impl CountChar {
    pub fn new() -> Self {
        CountChar {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CountChar {
    fn name(&self) -> &str {
        "count_char"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [s, c] if is_string_or_null(s) && is_string_or_null(c) => Ok(DataType::Int64),
            _ => plan_err!("COUNT_CHAR takes a string and a character, not {args:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let strings = strings_of(&args.args[0], rows)?;
        let characters = strings_of(&args.args[1], rows)?;
        let mut counts = Vec::with_capacity(rows);
        for i in 0..rows {
            let Some(wanted) = value(&characters, i).and_then(|c| c.chars().next()) else {
                return exec_err!("COUNT_CHAR needs a character to count, not NULL or ''");
            };
            counts.push(value(&strings, i).map_or(0, |s| s.chars().filter(|c| *c == wanted).count() as i64));
        }
        columnar_result(Arc::new(Int64Array::from(counts)), &args.args)
    }
}

/// An argument as a Utf8 array of `rows` values (a constant is repeated).
fn strings_of(arg: &ColumnarValue, rows: usize) -> datafusion::error::Result<ArrayRef> {
    Ok(cast(&arg.to_array(rows)?, &DataType::Utf8)?)
}

fn value(strings: &ArrayRef, i: usize) -> Option<&str> {
    let strings = strings.as_string::<i32>();
    strings.is_valid(i).then(|| strings.value(i))
}
