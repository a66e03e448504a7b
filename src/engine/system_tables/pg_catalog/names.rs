//! The `reg*` types: `x::regtype`, `::regproc`, `::regnamespace`, `::regrole` (rewritten to
//! `regtype_of(x)` and so on, `planner/postgres_syntax.rs`) read a name as the object's oid; a
//! number, or text that is one, is an oid already. `x::regclass::text` (rewritten to
//! `regclass_name(regclass_of(x))`) prints the object's name as Postgres does: quoted where it
//! must be, unqualified (every object is on the search path), and an unknown oid as its number.
//! `regclass_of` itself is registered with the other relation functions (`functions.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, ListBuilder, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::execution::context::SessionContext;

use super::functions::{catalog_relation_oids, format_type, int_arg, quote_ident, register_function, rows_of};
use super::procs::Proc;
use super::{INFORMATION_SCHEMA_NAMESPACE, OWNER, PG_CATALOG_NAMESPACE, PUBLIC_NAMESPACE, Relation, type_rows};
use crate::error::{Error, Result, UserErrorKind};
use crate::planner::postgres_syntax::{REG_LOOKUP_SUFFIX, REG_NAME_SUFFIX, REG_NAMES_SUFFIX};

/// The oid of the type `name` names: its `pg_type` name (`int8`, `_int8`) or SQL name (`bigint`,
/// `bigint[]`, `character varying`), optionally qualified with `pg_catalog`.
pub(super) fn type_oid(name: &str) -> Option<i64> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name).trim_matches('"');
    // Spellings Postgres' grammar reads as a type of another name.
    let name = match name {
        "int" => "int4",
        "float" => "float8",
        "decimal" => "numeric",
        other => other,
    };
    type_rows().into_iter().find_map(|row| {
        let oid = i64::from(row.pg.oid());
        let matches = row.pg.name() == name
            || format_type(oid, None) == name
            || row.element.as_ref().is_some_and(|element| {
                let element_oid = i64::from(element.oid());
                name == format!("{}[]", element.name()) || name == format!("{}[]", format_type(element_oid, None))
            });
        matches.then_some(oid)
    })
}

/// The schemas of Weir's `pg_namespace`.
const NAMESPACES: [(&str, i64); 3] = [
    ("pg_catalog", PG_CATALOG_NAMESPACE),
    ("public", PUBLIC_NAMESPACE),
    ("information_schema", INFORMATION_SCHEMA_NAMESPACE),
];

/// A name as Postgres reads an identifier: unquoted parts lower-cased, a quoted one as written.
fn identifier(text: &str) -> String {
    let text = text.trim();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_ascii_lowercase(),
    }
}

/// Oids for a reg* argument: numbers (and text that is a number) are oids, other text is looked up.
fn lookup_oids(argument: &ArrayRef, lookup: impl Fn(&str) -> Result<i64>) -> Result<ArrayRef> {
    if argument.data_type().is_numeric() {
        return Ok(cast(argument, &DataType::Int64)?);
    }
    let names = cast(argument, &DataType::Utf8)?;
    let oids = names
        .as_string::<i32>()
        .iter()
        .map(|name| {
            name.map(|name| match name.trim().parse::<i64>() {
                Ok(oid) => Ok(oid),
                Err(_) => lookup(name),
            })
            .transpose()
        })
        .collect::<Result<Int64Array>>()?;
    Ok(Arc::new(oids))
}

fn undefined(what: &str, name: &str) -> Error {
    Error::user(UserErrorKind::UndefinedName, format!("{what} \"{name}\" does not exist"))
}

/// Registers `kind_of` (name → oid) and `kind_name` (oid → name) for one reg* type.
fn register_reg_type(
    ctx: &SessionContext,
    kind: &str,
    lookup: impl Fn(&str) -> Result<i64> + Send + Sync + 'static,
    name_of: impl Fn(i64) -> Option<String> + Send + Sync + 'static,
) {
    if kind != "regclass" {
        register_function(ctx, &format!("{kind}{REG_LOOKUP_SUFFIX}"), &[1], DataType::Int64, move |args| {
            lookup_oids(&args[0], &lookup)
        });
    }
    let name_of = Arc::new(move |oid: i64| name_of(oid).unwrap_or_else(|| oid.to_string()));
    let one = name_of.clone();
    register_function(ctx, &format!("{kind}{REG_NAME_SUFFIX}"), &[1], DataType::Utf8, move |args| {
        let oids = int_arg(args, 0, rows_of(args))?;
        let names: StringArray = oids.iter().map(|oid| oid.map(|o| one(o))).collect();
        Ok(Arc::new(names) as ArrayRef)
    });
    let text_list = DataType::new_list(DataType::Utf8, true);
    register_function(ctx, &format!("{kind}{REG_NAMES_SUFFIX}"), &[1], text_list, move |args| {
        let list_type = DataType::new_list(DataType::Int64, true);
        let lists = cast(&args[0], &list_type)?;
        let mut names = ListBuilder::new(StringBuilder::new());
        for oids in lists.as_list::<i32>().iter() {
            match oids {
                Some(oids) => {
                    for oid in oids.as_primitive::<Int64Type>().iter() {
                        names.values().append_option(oid.map(|o| name_of(o)));
                    }
                    names.append(true);
                }
                None => names.append(false),
            }
        }
        Ok(Arc::new(names.finish()) as ArrayRef)
    });
}

pub(super) fn register(ctx: &SessionContext, relations: &[Relation], procs: &[Proc]) {
    let relation_names: BTreeMap<i64, String> = relations
        .iter()
        .map(|r| (r.oid, quote_ident(&r.name)))
        .chain(catalog_relation_oids().map(|(name, oid)| (oid, name.trim_start_matches("pg_catalog.").to_string())))
        .collect();
    register_reg_type(
        ctx,
        "regclass",
        |_| Err(Error::internal("regclass_of is registered with the relations")),
        move |oid| relation_names.get(&oid).cloned(),
    );
    register_reg_type(
        ctx,
        "regtype",
        |name| type_oid(name).ok_or_else(|| undefined("type", name)),
        |oid| {
            type_rows()
                .iter()
                .any(|row| i64::from(row.pg.oid()) == oid)
                .then(|| format_type(oid, None))
        },
    );
    // A function by name; `name(argument types)` (regprocedure's spelling) by its name too.
    let proc_oids: BTreeMap<String, i64> = procs.iter().rev().map(|p| (p.name.clone(), p.oid)).collect();
    let proc_names: BTreeMap<i64, String> = procs.iter().map(|p| (p.oid, quote_ident(&p.name))).collect();
    register_reg_type(
        ctx,
        "regproc",
        move |name| {
            let bare = name.split('(').next().unwrap_or(name);
            let bare = identifier(bare.trim().strip_prefix("pg_catalog.").unwrap_or(bare.trim()));
            proc_oids
                .get(&bare)
                .copied()
                .ok_or_else(|| Error::user(UserErrorKind::UndefinedName, format!("function \"{name}\" does not exist")))
        },
        move |oid| proc_names.get(&oid).cloned(),
    );
    register_reg_type(
        ctx,
        "regnamespace",
        |name| {
            let wanted = identifier(name);
            NAMESPACES
                .iter()
                .find(|(n, _)| *n == wanted)
                .map(|(_, oid)| *oid)
                .ok_or_else(|| undefined("schema", name))
        },
        |oid| NAMESPACES.iter().find(|(_, o)| *o == oid).map(|(n, _)| n.to_string()),
    );
    register_reg_type(
        ctx,
        "regrole",
        |name| match identifier(name).as_str() {
            super::session_functions::USER => Ok(OWNER),
            _ => Err(undefined("role", name)),
        },
        |oid| (oid == OWNER).then(|| super::session_functions::USER.to_string()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_read_as_postgres_does() {
        assert_eq!(type_oid("int8"), Some(20));
        assert_eq!(type_oid("pg_catalog.bigint"), Some(20));
        assert_eq!(type_oid("Character Varying"), Some(1043));
        assert_eq!(type_oid("_int8"), Some(1016));
        assert_eq!(type_oid("bigint[]"), Some(1016));
        assert_eq!(type_oid("int"), Some(23));
        assert_eq!(type_oid("trigger"), Some(2279));
        assert_eq!(type_oid("hstore"), None);
    }
}
