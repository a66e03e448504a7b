//! Run-time settings as Postgres shows them: `pg_settings`, `current_setting(name [, missing_ok])`
//! and `set_config(name, value, is_local)`. The values are SHOW's (`POSTGRES_VARIABLES`) plus a few
//! that drivers read and Weir fixes: the search path Weir resolves names on, the limits Postgres
//! fixes when it is built, and the table access method of `pg_am`. `SET` of a Postgres setting is
//! accepted and not kept (`planner::statement`), so `set_config` returns the value it was given
//! and the setting keeps its value, as after `SET`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;

use super::functions::{register_function, rows_of, text_arg};
use super::{nulls, repeat_bool, repeat_text, table, text, text_array_type};
use crate::error::{Error, Result, UserErrorKind};
use crate::planner::statement::{POSTGRES_SESSION_SETTINGS, POSTGRES_VARIABLES};

/// Settings SHOW does not answer that clients read with `current_setting` or from `pg_settings`.
const FIXED_SETTINGS: [(&str, &str); 5] = [
    // Unqualified names resolve in pg_catalog, then public (`planner::postgres_syntax`).
    ("search_path", "\"$user\", public"),
    ("max_index_keys", "32"),
    ("max_identifier_length", "63"),
    ("default_table_access_method", "heap"),
    ("is_superuser", "on"),
];

/// Every setting with its value: SHOW's first, then the fixed ones SHOW does not name.
fn settings() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<(&str, &str)> = POSTGRES_VARIABLES.to_vec();
    for (name, value) in FIXED_SETTINGS {
        if !all.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            all.push((name, value));
        }
    }
    all.sort_by_key(|(name, _)| *name);
    all
}

/// The value of setting `name` (any case), or 42704 as Postgres answers an unknown name.
fn setting(name: &str) -> Result<&'static str> {
    settings()
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(_, value)| value)
        .ok_or_else(|| {
            Error::user(
                UserErrorKind::UndefinedName,
                format!("unrecognized configuration parameter \"{name}\""),
            )
        })
}

fn vartype(value: &str) -> &'static str {
    if value == "on" || value == "off" {
        "bool"
    } else if value.parse::<i64>().is_ok() {
        "integer"
    } else {
        "string"
    }
}

pub(super) fn settings_table() -> Result<Arc<MemTable>> {
    let all = settings();
    let n = all.len();
    let values: Vec<&str> = all.iter().map(|(_, v)| *v).collect();
    table(vec![
        ("name", text(all.iter().map(|(name, _)| *name))),
        ("setting", text(values.iter().copied())),
        ("unit", nulls(&DataType::Utf8, n)),
        ("category", repeat_text("Preset Options", n)),
        ("short_desc", repeat_text("", n)),
        ("extra_desc", nulls(&DataType::Utf8, n)),
        // Weir keeps none of them per session: each is what this server has.
        ("context", repeat_text("internal", n)),
        ("vartype", text(values.iter().map(|v| vartype(v)))),
        ("source", repeat_text("default", n)),
        ("min_val", nulls(&DataType::Utf8, n)),
        ("max_val", nulls(&DataType::Utf8, n)),
        ("enumvals", nulls(&text_array_type(), n)),
        ("boot_val", text(values.iter().copied())),
        ("reset_val", text(values.iter().copied())),
        ("sourcefile", nulls(&DataType::Utf8, n)),
        ("sourceline", nulls(&DataType::Int32, n)),
        ("pending_restart", repeat_bool(false, n)),
    ])
}

pub(super) fn register(ctx: &SessionContext) {
    register_function(ctx, "current_setting", &[1, 2], DataType::Utf8, |args| {
        let rows = rows_of(args);
        let names = text_arg(args, 0, rows)?;
        let missing_ok = match args.get(1) {
            Some(flag) => Some(cast(flag, &DataType::Boolean)?),
            None => None,
        };
        let values = (0..rows)
            .map(|r| {
                if names.is_null(r) {
                    return Ok(None);
                }
                match setting(names.value(r)) {
                    Ok(value) => Ok(Some(value)),
                    Err(_) if missing_ok.as_ref().is_some_and(|m| m.is_valid(r) && m.as_boolean().value(r)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .collect::<Result<StringArray>>()?;
        Ok(Arc::new(values) as ArrayRef)
    });
    register_function(ctx, "set_config", &[3], DataType::Utf8, |args| {
        let rows = rows_of(args);
        let (names, values) = (text_arg(args, 0, rows)?, text_arg(args, 1, rows)?);
        // The names SET accepts (and does not keep), or that SHOW knows.
        for name in names.iter().flatten() {
            if !POSTGRES_SESSION_SETTINGS.iter().any(|s| s.eq_ignore_ascii_case(name.trim())) {
                setting(name)?;
            }
        }
        Ok(Arc::new(values) as ArrayRef)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_shows_and_the_fixed_ones() {
        assert_eq!(setting("server_version_num").unwrap(), "160000");
        assert_eq!(setting("TimeZone").unwrap(), "UTC");
        assert_eq!(setting("max_index_keys").unwrap(), "32");
        let unknown = setting("jit").unwrap_err();
        assert_eq!(unknown.sqlstate(), "42704");
        assert_eq!(unknown.to_string(), "unrecognized configuration parameter \"jit\"");
    }
}
