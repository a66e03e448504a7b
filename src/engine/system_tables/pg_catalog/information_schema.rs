//! `information_schema`, the standard's catalog that ORMs and query builders read (knex's
//! `columnInfo`, node and JDBC tools, Grafana's key lookup): `tables`, `columns`, `schemata`,
//! `views` and the primary keys (`table_constraints`, `key_column_usage`), over the same relations
//! as `pg_catalog` and with Postgres' type names (`character varying`, 1-based positions).
//!
//! DataFusion keeps a schema named `information_schema` to itself, so these views live in
//! `pg_catalog` as `information_schema_<name>`; `planner/postgres_syntax.rs` rewrites the
//! `information_schema.<name>` spelling of each of `INFORMATION_SCHEMA_VIEWS`.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use pgwire::api::Type;

use super::functions::format_type;
use super::session_functions::{DATABASE, USER};
use super::{PrimaryKey, Relation, RelationKind, empty_table, int32, nulls, repeat_text, table, text};
use crate::error::Result;
use crate::planner::postgres_syntax::{INFORMATION_SCHEMA_PREFIX, INFORMATION_SCHEMA_VIEWS};

/// Every view, under its name in `pg_catalog`.
pub(super) fn views(relations: &[Relation]) -> Result<Vec<(String, Arc<MemTable>)>> {
    let [table_constraints, key_column_usage] = keys(relations)?;
    let all = [
        ("tables", tables(relations)?),
        ("columns", columns(relations)?),
        ("schemata", schemata()?),
        ("views", views_of_views()?),
        table_constraints,
        key_column_usage,
    ];
    debug_assert!(all.iter().all(|(name, _)| INFORMATION_SCHEMA_VIEWS.contains(name)));
    Ok(all
        .into_iter()
        .map(|(name, provider)| (format!("{INFORMATION_SCHEMA_PREFIX}{name}"), provider))
        .collect())
}

/// The relations `tables` and `columns` list: result tables, sources and system views (not indexes).
fn listed(relations: &[Relation]) -> Vec<&Relation> {
    relations.iter().filter(|r| r.kind != RelationKind::Index).collect()
}

fn tables(relations: &[Relation]) -> Result<Arc<MemTable>> {
    let listed = listed(relations);
    let n = listed.len();
    table(vec![
        ("table_catalog", repeat_text(DATABASE, n)),
        ("table_schema", repeat_text("public", n)),
        ("table_name", text(listed.iter().map(|r| r.name.as_str()))),
        // A source's rows live outside Weir: a foreign table.
        (
            "table_type",
            text(listed.iter().map(|r| match r.kind {
                RelationKind::Source => "FOREIGN",
                RelationKind::SystemView => "VIEW",
                RelationKind::Table | RelationKind::Index => "BASE TABLE",
            })),
        ),
        ("self_referencing_column_name", nulls(&DataType::Utf8, n)),
        ("reference_generation", nulls(&DataType::Utf8, n)),
        ("user_defined_type_catalog", nulls(&DataType::Utf8, n)),
        ("user_defined_type_schema", nulls(&DataType::Utf8, n)),
        ("user_defined_type_name", nulls(&DataType::Utf8, n)),
        // Rows reach a table through its jobs only.
        ("is_insertable_into", repeat_text("NO", n)),
        ("is_typed", repeat_text("NO", n)),
        ("commit_action", nulls(&DataType::Utf8, n)),
    ])
}

/// One row per column: its type as Postgres names it (`data_type` is `ARRAY` for an array, the
/// element type is in `udt_name` as `_int8`) with the precision columns of numbers and times.
fn columns(relations: &[Relation]) -> Result<Arc<MemTable>> {
    let columns: Vec<(&Relation, i32, &super::Attribute)> = listed(relations)
        .into_iter()
        .flat_map(|r| r.attributes.iter().zip(1..).map(move |(a, position)| (r, position, a)))
        .collect();
    let n = columns.len();
    let types = || columns.iter().map(|(_, _, a)| &a.pg);
    let optional_int =
        |values: Vec<Option<i32>>| -> datafusion::arrow::array::ArrayRef { Arc::new(datafusion::arrow::array::Int32Array::from(values)) };
    table(vec![
        ("table_catalog", repeat_text(DATABASE, n)),
        ("table_schema", repeat_text("public", n)),
        ("table_name", text(columns.iter().map(|(r, _, _)| r.name.as_str()))),
        ("column_name", text(columns.iter().map(|(_, _, a)| a.name.as_str()))),
        ("ordinal_position", int32(columns.iter().map(|(_, position, _)| *position))),
        ("column_default", nulls(&DataType::Utf8, n)),
        (
            "is_nullable",
            text(columns.iter().map(|(_, _, a)| if a.not_null { "NO" } else { "YES" })),
        ),
        ("data_type", text(types().map(data_type_name))),
        ("character_maximum_length", nulls(&DataType::Int32, n)),
        ("character_octet_length", nulls(&DataType::Int32, n)),
        (
            "numeric_precision",
            optional_int(types().map(|t| numeric_precision(t).map(|(p, _, _)| p)).collect()),
        ),
        (
            "numeric_precision_radix",
            optional_int(types().map(|t| numeric_precision(t).map(|(_, r, _)| r)).collect()),
        ),
        (
            "numeric_scale",
            optional_int(types().map(|t| numeric_precision(t).and_then(|(_, _, s)| s)).collect()),
        ),
        ("datetime_precision", optional_int(types().map(datetime_precision).collect())),
        ("interval_type", nulls(&DataType::Utf8, n)),
        ("interval_precision", nulls(&DataType::Int32, n)),
        ("character_set_catalog", nulls(&DataType::Utf8, n)),
        ("character_set_schema", nulls(&DataType::Utf8, n)),
        ("character_set_name", nulls(&DataType::Utf8, n)),
        ("collation_catalog", nulls(&DataType::Utf8, n)),
        ("collation_schema", nulls(&DataType::Utf8, n)),
        ("collation_name", nulls(&DataType::Utf8, n)),
        ("domain_catalog", nulls(&DataType::Utf8, n)),
        ("domain_schema", nulls(&DataType::Utf8, n)),
        ("domain_name", nulls(&DataType::Utf8, n)),
        ("udt_catalog", repeat_text(DATABASE, n)),
        ("udt_schema", repeat_text("pg_catalog", n)),
        ("udt_name", text(types().map(|t| t.name().to_string()))),
        ("scope_catalog", nulls(&DataType::Utf8, n)),
        ("scope_schema", nulls(&DataType::Utf8, n)),
        ("scope_name", nulls(&DataType::Utf8, n)),
        ("maximum_cardinality", nulls(&DataType::Int32, n)),
        ("dtd_identifier", text(columns.iter().map(|(_, position, _)| position.to_string()))),
        ("is_self_referencing", repeat_text("NO", n)),
        ("is_identity", repeat_text("NO", n)),
        ("identity_generation", nulls(&DataType::Utf8, n)),
        ("identity_start", nulls(&DataType::Utf8, n)),
        ("identity_increment", nulls(&DataType::Utf8, n)),
        ("identity_maximum", nulls(&DataType::Utf8, n)),
        ("identity_minimum", nulls(&DataType::Utf8, n)),
        ("identity_cycle", repeat_text("NO", n)),
        ("is_generated", repeat_text("NEVER", n)),
        ("generation_expression", nulls(&DataType::Utf8, n)),
        ("is_updatable", repeat_text("NO", n)),
    ])
}

/// `data_type`: the type's SQL name, `ARRAY` for arrays.
fn data_type_name(pg: &Type) -> String {
    match pg.kind() {
        postgres_types::Kind::Array(_) => "ARRAY".to_string(),
        _ => format_type(i64::from(pg.oid()), None),
    }
}

/// (precision, radix, scale) of a number type, as Postgres reports it (binary digits for
/// integers and floats; a `numeric` without a declared precision has neither).
fn numeric_precision(pg: &Type) -> Option<(i32, i32, Option<i32>)> {
    match *pg {
        Type::INT2 => Some((16, 2, Some(0))),
        Type::INT4 => Some((32, 2, Some(0))),
        Type::INT8 => Some((64, 2, Some(0))),
        Type::FLOAT4 => Some((24, 2, None)),
        Type::FLOAT8 => Some((53, 2, None)),
        _ => None,
    }
}

/// Fractional-second digits of a time type (Weir keeps microseconds); 0 for a date.
fn datetime_precision(pg: &Type) -> Option<i32> {
    match *pg {
        Type::DATE => Some(0),
        Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::INTERVAL => Some(6),
        _ => None,
    }
}

fn schemata() -> Result<Arc<MemTable>> {
    let schemas = ["pg_catalog", "public", "information_schema"];
    let n = schemas.len();
    table(vec![
        ("catalog_name", repeat_text(DATABASE, n)),
        ("schema_name", text(schemas)),
        ("schema_owner", repeat_text(USER, n)),
        ("default_character_set_catalog", nulls(&DataType::Utf8, n)),
        ("default_character_set_schema", nulls(&DataType::Utf8, n)),
        ("default_character_set_name", nulls(&DataType::Utf8, n)),
        ("sql_path", nulls(&DataType::Utf8, n)),
    ])
}

/// `views`: Weir has no user-defined views.
fn views_of_views() -> Result<Arc<MemTable>> {
    let text_column = |name| (name, DataType::Utf8);
    empty_table(&[
        text_column("table_catalog"),
        text_column("table_schema"),
        text_column("table_name"),
        text_column("view_definition"),
        text_column("check_option"),
        text_column("is_updatable"),
        text_column("is_insertable_into"),
        text_column("is_trigger_updatable"),
        text_column("is_trigger_deletable"),
        text_column("is_trigger_insertable_into"),
    ])
}

/// `table_constraints` and `key_column_usage`: the primary keys.
fn keys(relations: &[Relation]) -> Result<[(&'static str, Arc<MemTable>); 2]> {
    let keyed: Vec<(&Relation, &PrimaryKey)> = relations.iter().filter_map(|r| Some((r, r.primary_key.as_ref()?))).collect();
    let k = keyed.len();
    let table_constraints = table(vec![
        ("constraint_catalog", repeat_text(DATABASE, k)),
        ("constraint_schema", repeat_text("public", k)),
        ("constraint_name", text(keyed.iter().map(|(_, key)| key.name.as_str()))),
        ("table_catalog", repeat_text(DATABASE, k)),
        ("table_schema", repeat_text("public", k)),
        ("table_name", text(keyed.iter().map(|(r, _)| r.name.as_str()))),
        ("constraint_type", repeat_text("PRIMARY KEY", k)),
        ("is_deferrable", repeat_text("NO", k)),
        ("initially_deferred", repeat_text("NO", k)),
        ("enforced", repeat_text("YES", k)),
        ("nulls_distinct", repeat_text("YES", k)),
    ])?;
    // One row per key column, in key order.
    let columns: Vec<(&Relation, &PrimaryKey, &str, i32)> = keyed
        .iter()
        .flat_map(|(r, key)| {
            key.columns.iter().zip(1..).filter_map(move |(number, position)| {
                let attribute = r.attributes.get(usize::try_from(*number).ok()?.checked_sub(1)?)?;
                Some((*r, *key, attribute.name.as_str(), position))
            })
        })
        .collect();
    let c = columns.len();
    let key_column_usage = table(vec![
        ("constraint_catalog", repeat_text(DATABASE, c)),
        ("constraint_schema", repeat_text("public", c)),
        ("constraint_name", text(columns.iter().map(|(_, key, _, _)| key.name.as_str()))),
        ("table_catalog", repeat_text(DATABASE, c)),
        ("table_schema", repeat_text("public", c)),
        ("table_name", text(columns.iter().map(|(r, _, _, _)| r.name.as_str()))),
        ("column_name", text(columns.iter().map(|(_, _, column, _)| *column))),
        ("ordinal_position", int32(columns.iter().map(|(_, _, _, position)| *position))),
        ("position_in_unique_constraint", nulls(&DataType::Int32, c)),
    ])?;
    Ok([("table_constraints", table_constraints), ("key_column_usage", key_column_usage)])
}
