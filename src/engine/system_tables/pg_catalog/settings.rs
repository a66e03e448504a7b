//! Run-time settings as Postgres shows them: `pg_settings`, `current_setting(name [, missing_ok])`
//! and `set_config(name, value, is_local)`, from the parameters Weir knows
//! (`planner::postgres_settings`) with their defaults. A session's SET (`engine::commands::
//! postgres_session`) is not seen here: these functions have no session, so they answer the
//! server's defaults, and `set_config` checks the name and returns the value it was given.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;

use super::functions::{register_function, rows_of, text_arg};
use super::{nulls, repeat_bool, repeat_text, table, text, text_array_type};
use crate::error::{Error, Result, UserErrorKind};
use crate::planner::postgres_settings::POSTGRES_SETTINGS;

/// Every setting with its default value, by name.
fn settings() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<(&str, &str)> = POSTGRES_SETTINGS.iter().map(|s| (s.name, s.default)).collect();
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
        for name in names.iter().flatten() {
            setting(name)?;
        }
        Ok(Arc::new(values) as ArrayRef)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_the_known_parameters() {
        assert_eq!(setting("server_version_num").unwrap(), "160000");
        assert_eq!(setting("TimeZone").unwrap(), "UTC");
        assert_eq!(setting("max_index_keys").unwrap(), "32");
        let unknown = setting("no_such").unwrap_err();
        assert_eq!(unknown.sqlstate(), "42704");
        assert_eq!(unknown.to_string(), "unrecognized configuration parameter \"no_such\"");
    }
}
