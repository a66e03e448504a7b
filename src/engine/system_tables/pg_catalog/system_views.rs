//! The rest of `pg_catalog` clients read: the views over tables (`pg_tables`, `pg_views`,
//! `pg_matviews`, `pg_stat_user_tables`), storage (`pg_tablespace`), languages and the catalogs of
//! objects Weir has none of (extensions, enums, ranges), and the two `information_schema` views
//! of keys DataFusion's `information_schema` lacks (`table_constraints`, `key_column_usage`),
//! which live in `pg_catalog` under `information_schema_<name>` (`planner/postgres_syntax.rs`
//! rewrites the `information_schema.<name>` spelling; DataFusion keeps its schema to itself).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;

use super::functions::{register_function, rows_of};
use super::procs::INTERNAL_LANGUAGE;
use super::session_functions::{DATABASE, USER};
use super::{
    OWNER, PrimaryKey, Relation, empty_table, int32, int64, nulls, repeat_bool, repeat_int64, repeat_text, table, text, text_array_type,
};
use crate::error::Result;
use crate::planner::postgres_syntax::INFORMATION_SCHEMA_PREFIX;

/// Weir keeps all its data under its data directory: the one tablespace, `pg_default`.
pub(super) const DEFAULT_TABLESPACE: i64 = 1663;

pub(super) fn tables(relations: &[Relation]) -> Result<Vec<(&'static str, Arc<MemTable>)>> {
    use DataType::{Boolean, Float32, Int64, Timestamp, Utf8};
    let oid = Int64;
    let stored: Vec<&Relation> = relations.iter().filter(|r| r.kind == "r").collect();
    let n = stored.len();
    let pg_tables = table(vec![
        ("schemaname", repeat_text("public", n)),
        ("tablename", text(stored.iter().map(|r| r.name.as_str()))),
        ("tableowner", repeat_text(USER, n)),
        ("tablespace", nulls(&Utf8, n)),
        ("hasindexes", super::boolean(stored.iter().map(|r| r.primary_key.is_some()))),
        ("hasrules", repeat_bool(false, n)),
        ("hastriggers", repeat_bool(false, n)),
        ("rowsecurity", repeat_bool(false, n)),
    ])?;
    // Weir does not count scans, rows or vacuums per table: the counters are unknown (NULL).
    let timestamp = Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
    let mut statistics = vec![
        ("relid", int64(stored.iter().map(|r| r.oid))),
        ("schemaname", repeat_text("public", n)),
        ("relname", text(stored.iter().map(|r| r.name.as_str()))),
    ];
    for (name, data_type) in [
        ("seq_scan", &Int64),
        ("last_seq_scan", &timestamp),
        ("seq_tup_read", &Int64),
        ("idx_scan", &Int64),
        ("last_idx_scan", &timestamp),
        ("idx_tup_fetch", &Int64),
        ("n_tup_ins", &Int64),
        ("n_tup_upd", &Int64),
        ("n_tup_del", &Int64),
        ("n_tup_hot_upd", &Int64),
        ("n_tup_newpage_upd", &Int64),
        ("n_live_tup", &Int64),
        ("n_dead_tup", &Int64),
        ("n_mod_since_analyze", &Int64),
        ("n_ins_since_vacuum", &Int64),
        ("last_vacuum", &timestamp),
        ("last_autovacuum", &timestamp),
        ("last_analyze", &timestamp),
        ("last_autoanalyze", &timestamp),
        ("vacuum_count", &Int64),
        ("autovacuum_count", &Int64),
        ("analyze_count", &Int64),
        ("autoanalyze_count", &Int64),
    ] {
        statistics.push((name, nulls(data_type, n)));
    }
    let tablespaces = table(vec![
        ("oid", int64([DEFAULT_TABLESPACE])),
        ("spcname", text(["pg_default"])),
        ("spcowner", int64([OWNER])),
        ("spcacl", nulls(&text_array_type(), 1)),
        ("spcoptions", nulls(&text_array_type(), 1)),
    ])?;
    let languages = table(vec![
        ("oid", int64([INTERNAL_LANGUAGE])),
        ("lanname", text(["internal"])),
        ("lanowner", int64([OWNER])),
        ("lanispl", repeat_bool(false, 1)),
        ("lanpltrusted", repeat_bool(false, 1)),
        ("lanplcallfoid", repeat_int64(0, 1)),
        ("laninline", repeat_int64(0, 1)),
        ("lanvalidator", repeat_int64(0, 1)),
        ("lanacl", nulls(&text_array_type(), 1)),
    ])?;
    let mut all = vec![
        ("pg_tables", pg_tables),
        ("pg_stat_user_tables", table(statistics)?),
        ("pg_tablespace", tablespaces),
        ("pg_language", languages),
    ];
    // Weir has no views, materialized views, extensions, enums or range types.
    for (name, columns) in [
        (
            "pg_views",
            vec![("schemaname", Utf8), ("viewname", Utf8), ("viewowner", Utf8), ("definition", Utf8)],
        ),
        (
            "pg_matviews",
            vec![
                ("schemaname", Utf8),
                ("matviewname", Utf8),
                ("matviewowner", Utf8),
                ("tablespace", Utf8),
                ("hasindexes", Boolean),
                ("ispopulated", Boolean),
                ("definition", Utf8),
            ],
        ),
        (
            "pg_extension",
            vec![
                ("oid", oid.clone()),
                ("extname", Utf8),
                ("extowner", oid.clone()),
                ("extnamespace", oid.clone()),
                ("extrelocatable", Boolean),
                ("extversion", Utf8),
                ("extconfig", DataType::new_list(Int64, true)),
                ("extcondition", text_array_type()),
            ],
        ),
        (
            "pg_enum",
            vec![
                ("oid", oid.clone()),
                ("enumtypid", oid.clone()),
                ("enumsortorder", Float32),
                ("enumlabel", Utf8),
            ],
        ),
        (
            "pg_range",
            vec![
                ("rngtypid", oid.clone()),
                ("rngsubtype", oid.clone()),
                ("rngmultitypid", oid.clone()),
                ("rngcollation", oid.clone()),
                ("rngsubopc", oid.clone()),
                ("rngcanonical", oid.clone()),
                ("rngsubdiff", oid.clone()),
            ],
        ),
    ] {
        all.push((name, empty_table(&columns)?));
    }
    Ok(all)
}

/// `information_schema.table_constraints` and `key_column_usage`: the primary keys.
pub(super) fn information_schema_tables(relations: &[Relation]) -> Result<Vec<(String, Arc<MemTable>)>> {
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
    Ok(vec![
        (format!("{INFORMATION_SCHEMA_PREFIX}table_constraints"), table_constraints),
        (format!("{INFORMATION_SCHEMA_PREFIX}key_column_usage"), key_column_usage),
    ])
}

/// `pg_tablespace_location(oid)`: the default tablespace is the data directory itself, which
/// Postgres shows as an empty location.
pub(super) fn register(ctx: &SessionContext) {
    register_function(ctx, "pg_tablespace_location", &[1], DataType::Utf8, |args| {
        Ok(repeat_text("", rows_of(args)))
    });
}
