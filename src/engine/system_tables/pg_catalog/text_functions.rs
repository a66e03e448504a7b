//! Text-valued functions catalog queries use: `json_build_object` (JSON text, laid out as Postgres
//! prints it), `like_escape`, which writes a LIKE pattern with another escape character in
//! the backslash form DataFusion understands (`planner/postgres_syntax.rs` rewrites `ESCAPE`), and
//! `regexp_split_to_array` (`regexp_split_to_table(s, p)` in a select list is its `unnest`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, ListBuilder, StringArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::execution::context::SessionContext;

use super::functions::{register_function, register_variadic, rows_of, text_arg};
use crate::error::{Error, Result, UserErrorKind};
use crate::planner::postgres_syntax::{LIKE_ESCAPE, REGEXP_SPLIT_TO_ARRAY};

/// One value as JSON: numbers and booleans as themselves, NULL as null, anything else as a string
/// of its text.
fn json_value(value: &ScalarValue) -> Result<String> {
    if value.is_null() {
        return Ok("null".to_string());
    }
    Ok(match value {
        ScalarValue::Boolean(Some(b)) => b.to_string(),
        ScalarValue::Float32(Some(f)) if f.is_finite() => value.to_string(),
        ScalarValue::Float64(Some(f)) if f.is_finite() => value.to_string(),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Decimal128(..) => value.to_string(),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            serde_json::to_string(s).map_err(|e| Error::internal(format!("JSON string: {e}")))?
        }
        other => serde_json::to_string(&other.to_string()).map_err(|e| Error::internal(format!("JSON string: {e}")))?,
    })
}

/// `json_build_object(key, value, ...)`: `{"key" : value, ...}`.
fn json_build_object(args: &[ArrayRef]) -> Result<ArrayRef> {
    if !args.len().is_multiple_of(2) {
        return Err(Error::user(
            UserErrorKind::InvalidParameter,
            "argument list must have even number of elements",
        ));
    }
    let rows = rows_of(args);
    let keys = (0..args.len() / 2)
        .map(|i| text_arg(args, 2 * i, rows))
        .collect::<Result<Vec<_>>>()?;
    let objects = (0..rows)
        .map(|r| {
            let members = keys
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    if key.is_null(r) {
                        return Err(Error::user(
                            UserErrorKind::InvalidParameter,
                            "null value not allowed for object key",
                        ));
                    }
                    let value = json_value(&ScalarValue::try_from_array(&args[2 * i + 1], r)?)?;
                    let key = serde_json::to_string(key.value(r)).map_err(|e| Error::internal(format!("JSON key: {e}")))?;
                    Ok(format!("{key} : {value}"))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(format!("{{{}}}", members.join(", "))))
        })
        .collect::<Result<StringArray>>()?;
    Ok(Arc::new(objects))
}

/// `pattern` with escape character `escape` (none when empty) rewritten to use a backslash.
fn backslash_pattern(pattern: &str, escape: &str) -> Result<String> {
    let mut escape_chars = escape.chars();
    let escape = escape_chars.next();
    if escape_chars.next().is_some() {
        return Err(Error::user(UserErrorKind::InvalidParameter, "invalid escape string"));
    }
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            let escaped = chars
                .next()
                .ok_or_else(|| Error::user(UserErrorKind::InvalidParameter, "LIKE pattern must not end with escape character"))?;
            if matches!(escaped, '%' | '_' | '\\') {
                out.push('\\');
            }
            out.push(escaped);
        } else if c == '\\' {
            // A backslash that is no escape matches itself.
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// `regexp_split_to_array(string, pattern [, flags])`: the parts of `string` between matches of
/// `pattern` (flag `i`: case-insensitive). Patterns are compiled once per distinct pattern.
fn regexp_split_to_array(args: &[ArrayRef]) -> Result<ArrayRef> {
    let rows = rows_of(args);
    let (strings, patterns, flags) = (text_arg(args, 0, rows)?, text_arg(args, 1, rows)?, text_arg(args, 2, rows)?);
    let mut compiled: std::collections::HashMap<(String, bool), regex::Regex> = std::collections::HashMap::new();
    let mut parts = ListBuilder::new(StringBuilder::new());
    for r in 0..rows {
        if !strings.is_valid(r) || !patterns.is_valid(r) {
            parts.append(false);
            continue;
        }
        let flags = if flags.is_valid(r) { flags.value(r) } else { "" };
        if let Some(flag) = flags.chars().find(|f| !matches!(f, 'i' | 'c' | 'g')) {
            return Err(Error::user(
                UserErrorKind::InvalidParameter,
                format!("invalid regular expression option: \"{flag}\""),
            ));
        }
        let key = (patterns.value(r).to_string(), flags.contains('i'));
        let pattern = match compiled.entry(key) {
            std::collections::hash_map::Entry::Occupied(found) => found.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => {
                let (pattern, insensitive) = new.key();
                let regex = regex::RegexBuilder::new(pattern)
                    .case_insensitive(*insensitive)
                    .build()
                    .map_err(|e| Error::user(UserErrorKind::InvalidRegularExpression, format!("invalid regular expression: {e}")))?;
                new.insert(regex)
            }
        };
        for part in pattern.split(strings.value(r)) {
            parts.values().append_value(part);
        }
        parts.append(true);
    }
    Ok(Arc::new(parts.finish()))
}

pub(super) fn register(ctx: &SessionContext) {
    register_function(
        ctx,
        REGEXP_SPLIT_TO_ARRAY,
        &[2, 3],
        DataType::new_list(DataType::Utf8, true),
        regexp_split_to_array,
    );
    register_variadic(ctx, "json_build_object", DataType::Utf8, json_build_object);
    register_function(ctx, LIKE_ESCAPE, &[2], DataType::Utf8, |args| {
        let rows = rows_of(args);
        let (patterns, escapes) = (text_arg(args, 0, rows)?, text_arg(args, 1, rows)?);
        let rewritten = (0..rows)
            .map(|r| match (patterns.is_valid(r), escapes.is_valid(r)) {
                (true, true) => backslash_pattern(patterns.value(r), escapes.value(r)).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<StringArray>>()?;
        Ok(Arc::new(rewritten) as ArrayRef)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_backslashes() {
        assert_eq!(backslash_pattern("pg/_%", "/").unwrap(), "pg\\_%");
        assert_eq!(backslash_pattern("a//b\\c", "/").unwrap(), "a/b\\\\c");
        assert_eq!(backslash_pattern("a\\_", "").unwrap(), "a\\\\_");
        assert!(backslash_pattern("a/", "/").is_err());
    }

    #[test]
    fn regexp_split_splits_between_matches() {
        let args: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("select a, B"), None])),
            Arc::new(StringArray::from(vec![Some("\\W+"), Some("x")])),
            Arc::new(StringArray::from(vec![Some("i"), None])),
        ];
        let split = regexp_split_to_array(&args).unwrap();
        let list = datafusion::arrow::array::AsArray::as_list::<i32>(&split);
        let parts = datafusion::arrow::array::AsArray::as_string::<i32>(list.values());
        assert_eq!(parts.value(0), "select");
        assert_eq!(list.value_length(0), 3);
        assert!(list.is_null(1));
    }

    #[test]
    fn json_values_print_as_postgres_does() {
        assert_eq!(json_value(&ScalarValue::Int64(Some(3))).unwrap(), "3");
        assert_eq!(json_value(&ScalarValue::Utf8(Some("a\"b".into()))).unwrap(), "\"a\\\"b\"");
        assert_eq!(json_value(&ScalarValue::Boolean(None)).unwrap(), "null");
    }
}
