//! Functions about the session, the server and what the user may do: `current_user` (and the
//! other SQL-standard names without parentheses), `current_database()`, `pg_backend_pid()`,
//! `pg_is_in_recovery()`, `has_table_privilege` and its kin, the `pg_*_is_visible` checks,
//! `pg_typeof`, `pg_get_serial_sequence`, `pg_advisory_unlock_all`.
//!
//! Weir has one role (`USER`, see `pg_roles`) that every connection works as, and one database.
//! Privileges say what Weir does: tables and sources can be read (SELECT), not written by SQL
//! (INSERT, UPDATE, DELETE: jobs write result tables); schemas can be used, and tables created in
//! them; the database can be connected to.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int32Array, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::context::SessionContext;

use super::functions::{catalog_relation_oids, register_function, register_nullary, relation_name, rows_of, text_arg};
use super::{
    DATABASE_OID, INFORMATION_SCHEMA_NAMESPACE, PG_CATALOG_NAMESPACE, PUBLIC_NAMESPACE, Relation, nulls, repeat_bool, repeat_text,
};
use crate::engine::postgres_types::pg_type;
use crate::error::{Error, Result, UserErrorKind};

/// The one role, which `pg_roles` lists and every connection works as.
pub(super) const USER: &str = "weir";
/// The one database, as `pg_database` lists it.
pub(super) const DATABASE: &str = "weir";

/// Whether an object named so exists (Err when it does not, as Postgres answers).
type NameCheck = Arc<dyn Fn(&str) -> Result<()> + Send + Sync>;
/// Whether an object with this oid exists.
type OidCheck = Arc<dyn Fn(i64) -> bool + Send + Sync>;

/// What a privilege check asks about.
#[derive(Clone, Copy)]
enum Object {
    Table,
    Schema,
    Database,
}

/// Whether Weir grants `privilege` on an object of this kind; `privileges` may list several,
/// comma-separated, and any one granted is enough (as in Postgres).
fn granted(object: Object, privileges: &str) -> Result<bool> {
    let mut any = false;
    for privilege in privileges.split(',') {
        let privilege = privilege.trim().to_ascii_uppercase();
        let privilege = privilege.strip_suffix("WITH GRANT OPTION").unwrap_or(&privilege).trim();
        let known = match object {
            Object::Table => match privilege {
                "SELECT" => Some(true),
                "INSERT" | "UPDATE" | "DELETE" | "TRUNCATE" | "REFERENCES" | "TRIGGER" | "MAINTAIN" => Some(false),
                _ => None,
            },
            Object::Schema => match privilege {
                "USAGE" | "CREATE" => Some(true),
                _ => None,
            },
            Object::Database => match privilege {
                "CONNECT" => Some(true),
                "CREATE" | "TEMPORARY" | "TEMP" => Some(false),
                _ => None,
            },
        };
        match known {
            Some(g) => any |= g,
            None => {
                return Err(Error::user(
                    UserErrorKind::InvalidParameter,
                    format!("unrecognized privilege type: \"{privilege}\""),
                ));
            }
        }
    }
    Ok(any)
}

/// A `has_*_privilege([user,] object, privilege)` function: the object by name (an unknown one is
/// an error, as in Postgres) or oid (an unknown one is NULL).
fn register_privilege(ctx: &SessionContext, name: &str, object: Object, by_name: NameCheck, by_oid: OidCheck) {
    register_function(ctx, name, &[2, 3], DataType::Boolean, move |args| {
        let rows = rows_of(args);
        let object_index = args.len() - 2;
        let privileges = text_arg(args, args.len() - 1, rows)?;
        let objects = &args[object_index];
        let oids: Option<Int64Array> = match objects.data_type().is_numeric() {
            true => Some(super::functions::int_arg(args, object_index, rows)?),
            false => None,
        };
        let names = text_arg(args, object_index, rows)?;
        let values = (0..rows)
            .map(|r| {
                let exists = match &oids {
                    Some(oids) => oids.is_valid(r).then(|| by_oid(oids.value(r))),
                    None => match names.is_valid(r) {
                        true => {
                            by_name(names.value(r))?;
                            Some(true)
                        }
                        false => None,
                    },
                };
                match (exists, privileges.is_valid(r)) {
                    (Some(true), true) => granted(object, privileges.value(r)).map(Some),
                    _ => Ok(None),
                }
            })
            .collect::<Result<BooleanArray>>()?;
        Ok(Arc::new(values) as ArrayRef)
    });
}

pub(super) fn register(ctx: &SessionContext, relations: &[Relation]) {
    use DataType::{Boolean, Utf8};
    for name in ["current_user", "session_user", "user", "current_role"] {
        register_nullary(ctx, name, Utf8, |_| Ok(repeat_text(USER, 1)));
    }
    for name in ["current_database", "current_catalog"] {
        register_nullary(ctx, name, Utf8, |_| Ok(repeat_text(DATABASE, 1)));
    }
    // Every connection is served by this one process.
    register_nullary(ctx, "pg_backend_pid", DataType::Int32, |_| {
        let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        Ok(Arc::new(Int32Array::from(vec![pid])) as ArrayRef)
    });
    // Weir is never a standby replaying another server's log.
    register_nullary(ctx, "pg_is_in_recovery", Boolean, |_| Ok(repeat_bool(false, 1)));
    // Weir has no advisory locks, so there are none to release; the function returns void (NULL).
    register_nullary(ctx, "pg_advisory_unlock_all", Utf8, |_| Ok(nulls(&Utf8, 1)));
    // Every type, function, collation, operator class and so on is in pg_catalog, which is always
    // on the search path.
    for name in [
        "pg_type_is_visible",
        "pg_collation_is_visible",
        "pg_opclass_is_visible",
        "pg_opfamily_is_visible",
        "pg_operator_is_visible",
        "pg_conversion_is_visible",
        "pg_statistics_obj_is_visible",
        "pg_ts_config_is_visible",
        "pg_ts_dict_is_visible",
        "pg_ts_parser_is_visible",
        "pg_ts_template_is_visible",
    ] {
        register_function(ctx, name, &[1], Boolean, |args| Ok(repeat_bool(true, rows_of(args))));
    }
    // No column takes its default from a sequence (Weir has neither defaults nor sequences).
    register_function(ctx, "pg_get_serial_sequence", &[2], Utf8, |args| Ok(nulls(&Utf8, rows_of(args))));
    // `pg_typeof(x)`: the oid of the type x is sent as (a regtype: `::text` prints its name).
    register_function(ctx, "pg_typeof", &[1], DataType::Int64, |args| {
        let oid = i64::from(pg_type(args[0].data_type()).oid());
        Ok(Arc::new(Int64Array::from(vec![oid; rows_of(args)])) as ArrayRef)
    });

    let relation_oids: BTreeMap<String, i64> = relations
        .iter()
        .map(|r| (r.name.clone(), r.oid))
        .chain(catalog_relation_oids())
        .collect();
    let known_oids: HashSet<i64> = relation_oids.values().copied().collect();
    let table_by_name: NameCheck = Arc::new(move |name| match relation_oids.contains_key(&relation_name(name)) {
        true => Ok(()),
        false => Err(Error::user(
            UserErrorKind::UndefinedObject,
            format!("relation \"{name}\" does not exist"),
        )),
    });
    let table_by_oid: OidCheck = Arc::new(move |oid| known_oids.contains(&oid));
    for name in ["has_table_privilege", "has_any_column_privilege"] {
        register_privilege(ctx, name, Object::Table, table_by_name.clone(), table_by_oid.clone());
    }
    register_privilege(
        ctx,
        "has_schema_privilege",
        Object::Schema,
        Arc::new(|name| match name.trim().trim_matches('"') {
            "pg_catalog" | "public" | "information_schema" => Ok(()),
            _ => Err(Error::user(
                UserErrorKind::UndefinedName,
                format!("schema \"{name}\" does not exist"),
            )),
        }),
        Arc::new(|oid| [PG_CATALOG_NAMESPACE, PUBLIC_NAMESPACE, INFORMATION_SCHEMA_NAMESPACE].contains(&oid)),
    );
    register_privilege(
        ctx,
        "has_database_privilege",
        Object::Database,
        Arc::new(|name| match name.trim().trim_matches('"') == DATABASE {
            true => Ok(()),
            false => Err(Error::user(
                UserErrorKind::UndefinedName,
                format!("database \"{name}\" does not exist"),
            )),
        }),
        Arc::new(|oid| oid == DATABASE_OID),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_say_what_weir_does() {
        assert!(granted(Object::Table, "select").unwrap());
        assert!(!granted(Object::Table, "INSERT").unwrap());
        assert!(granted(Object::Table, "INSERT, SELECT WITH GRANT OPTION").unwrap());
        assert!(granted(Object::Schema, "usage").unwrap());
        assert!(!granted(Object::Database, "TEMP").unwrap());
        assert_eq!(granted(Object::Table, "fly").unwrap_err().sqlstate(), "22023");
    }
}
