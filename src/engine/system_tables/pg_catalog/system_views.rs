//! The rest of `pg_catalog` clients read: the views over tables (`pg_tables`, `pg_views`,
//! `pg_matviews`, `pg_stat_user_tables`), storage (`pg_tablespace`), languages and the catalogs of
//! objects Weir has none of (extensions, enums, ranges).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;

use super::functions::{register_function, rows_of};
use super::procs::INTERNAL_LANGUAGE;
use super::session_functions::USER;
use super::{
    OWNER, Relation, RelationKind, empty_table, int64, nulls, repeat_bool, repeat_int64, repeat_text, table, text, text_array_type,
};
use crate::error::Result;

/// Weir keeps all its data under its data directory: the one tablespace, `pg_default`.
pub(super) const DEFAULT_TABLESPACE: i64 = 1663;

pub(super) fn tables(relations: &[Relation]) -> Result<Vec<(&'static str, Arc<MemTable>)>> {
    use DataType::{Boolean, Float32, Int64, Timestamp, Utf8};
    let oid = Int64;
    let stored: Vec<&Relation> = relations.iter().filter(|r| r.kind == RelationKind::Table).collect();
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
    // weir_jobs and weir_savepoints: their rows are Weir's own, computed when read (no SQL body).
    let views: Vec<&Relation> = relations.iter().filter(|r| r.kind == RelationKind::SystemView).collect();
    let pg_views = table(vec![
        ("schemaname", repeat_text("public", views.len())),
        ("viewname", text(views.iter().map(|r| r.name.as_str()))),
        ("viewowner", repeat_text(USER, views.len())),
        ("definition", repeat_text(" -- a Weir system view, computed when read", views.len())),
    ])?;
    let mut all = vec![
        ("pg_tables", pg_tables),
        ("pg_views", pg_views),
        ("pg_stat_user_tables", table(statistics)?),
        ("pg_tablespace", tablespaces),
        ("pg_language", languages),
    ];
    // Weir has no materialized views, extensions, enums or range types.
    for (name, columns) in [
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

/// `pg_tablespace_location(oid)`: the default tablespace is the data directory itself, which
/// Postgres shows as an empty location.
pub(super) fn register(ctx: &SessionContext) {
    register_function(ctx, "pg_tablespace_location", &[1], DataType::Utf8, |args| {
        Ok(repeat_text("", rows_of(args)))
    });
}
