//! The part of Postgres' `pg_catalog` that clients read to describe a database (psql's `\d`, `\dt`,
//! `\l`; drivers' metadata queries), rebuilt from Weir's catalog on every change (`refresh`).
//!
//! How Weir's objects appear:
//! - result tables are relkind 'r' in schema `public`. A PRIMARY KEY is a unique index `<table>_pkey`
//!   (relkind 'i', access method btree: stored rows are kept in key order) and a 'p' constraint;
//! - sources are foreign tables (relkind 'f'): their rows live outside Weir;
//! - a column has the Postgres type its values are sent as (`pgserver::pg_type`, as in RowDescription)
//!   and is NOT NULL when it is part of the primary key or declared NOT NULL;
//! - oids are BIGINT. A table's oids follow from its stable id and a source's from a hash of its name,
//!   so an oid a client has read keeps naming the same object while it exists.
//!
//! Catalogs Weir has no use for (inheritance, policies, triggers, publications, ...) exist with
//! Postgres' columns and no rows, so clients' queries over them plan and return nothing.
//!
//! Beside this file: `pg_proc` and the function-describing functions (`procs.rs`), `pg_settings`
//! and `current_setting` (`settings.rs`), the `reg*` lookups (`names.rs`), session and privilege
//! functions (`session_functions.rs`), the system views (`system_views.rs`), `information_schema`
//! (`information_schema.rs`), and clients' own queries as tests (`client_queries.rs`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Int16Array, Int32Array, Int64Array, ListArray, StringArray, UInt32Array, new_empty_array,
    new_null_array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Int16Type, Int64Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use pgwire::api::Type;

use crate::catalog::{Catalog, ColumnDef};
use crate::engine::postgres_types::pg_type;
use crate::error::{Error, Result};

const PG_CATALOG_NAMESPACE: i64 = 11;
const PUBLIC_NAMESPACE: i64 = 2200;
const INFORMATION_SCHEMA_NAMESPACE: i64 = 13000;
/// The one role: Weir has no users of its own, so everything belongs to the bootstrap superuser.
const OWNER: i64 = 10;
const HEAP_AM: i64 = 2;
const BTREE_AM: i64 = 403;
const DEFAULT_COLLATION: i64 = 100;
const DATABASE_OID: i64 = 16384;
const FOREIGN_DATA_WRAPPER: i64 = 13999;
/// Foreign servers (one per connector sources use) count up from here.
const FIRST_SERVER_OID: i64 = 14000;
/// Result table `id` has oid `FIRST_TABLE_OID + OIDS_PER_TABLE * id`; its primary-key index and
/// constraint take the next two.
const FIRST_TABLE_OID: i64 = 16400;
/// `weir_jobs` and `weir_savepoints`: below the tables', above Postgres' own objects (< 16384).
const FIRST_SYSTEM_VIEW_OID: i64 = 16384;
const OIDS_PER_TABLE: i64 = 4;
/// Sources (which have no numeric id) get `FIRST_SOURCE_OID + crc32(name) % SOURCE_OID_RANGE`.
const FIRST_SOURCE_OID: i64 = 1_000_000_000;
const SOURCE_OID_RANGE: i64 = 1_000_000_000;

/// A column of a relation, as `pg_attribute` shows it.
struct Attribute {
    name: String,
    pg: Type,
    not_null: bool,
}

/// A result table's primary key, shown as a unique btree index plus a 'p' constraint.
struct PrimaryKey {
    index_oid: i64,
    constraint_oid: i64,
    name: String,
    /// 1-based column numbers of the key columns in the table, in key order.
    columns: Vec<i16>,
}

/// What a relation of `pg_class` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelationKind {
    /// A result table.
    Table,
    /// A source: its rows live outside Weir, so Postgres' nearest kind is a foreign table.
    Source,
    /// A primary key's index.
    Index,
    /// `weir_jobs` and `weir_savepoints`: rows computed when read, like a Postgres view.
    SystemView,
}

impl RelationKind {
    /// `pg_class.relkind`.
    fn relkind(self) -> &'static str {
        match self {
            RelationKind::Table => "r",
            RelationKind::Source => "f",
            RelationKind::Index => "i",
            RelationKind::SystemView => "v",
        }
    }
}

/// A table, source, primary-key index or system view, as `pg_class` shows it.
struct Relation {
    oid: i64,
    name: String,
    kind: RelationKind,
    am: i64,
    attributes: Vec<Attribute>,
    primary_key: Option<PrimaryKey>,
    /// For a source: its connector (the foreign server) and its options as `key=value`.
    foreign: Option<(String, Vec<String>)>,
}

fn attribute(column: &ColumnDef, not_null: bool) -> Result<Attribute> {
    Ok(Attribute {
        name: column.name.clone(),
        pg: pg_type(&column.data_type()?),
        not_null: not_null || !column.nullable,
    })
}

/// Oids for sources from a hash of their names; a collision takes the next free oid.
fn source_oids<'a>(names: impl Iterator<Item = &'a String>) -> BTreeMap<&'a str, i64> {
    let mut taken = HashSet::new();
    names
        .map(|name| {
            let mut oid = FIRST_SOURCE_OID + i64::from(crc32fast::hash(name.as_bytes())) % SOURCE_OID_RANGE;
            while !taken.insert(oid) {
                oid += 1;
            }
            (name.as_str(), oid)
        })
        .collect()
}

/// Every relation: result tables (and their primary-key indexes), sources and the system views.
fn relations(catalog: &Catalog) -> Result<Vec<Relation>> {
    let mut relations = Vec::new();
    for table in catalog.tables.values() {
        let oid = FIRST_TABLE_OID + OIDS_PER_TABLE * i64::from(table.id);
        let attributes = table
            .columns
            .iter()
            .map(|c| attribute(c, table.primary_key.contains(&c.name)))
            .collect::<Result<Vec<_>>>()?;
        let primary_key = if table.primary_key.is_empty() {
            None
        } else {
            let columns = table
                .primary_key
                .iter()
                .map(|key| {
                    let position = table
                        .columns
                        .iter()
                        .position(|c| &c.name == key)
                        .ok_or_else(|| Error::internal(format!("primary key column {key} of table {} is missing", table.name)))?;
                    i16::try_from(position + 1).map_err(|_| Error::internal("too many columns for pg_attribute"))
                })
                .collect::<Result<Vec<_>>>()?;
            Some(PrimaryKey {
                index_oid: oid + 1,
                constraint_oid: oid + 2,
                name: format!("{}_pkey", table.name),
                columns,
            })
        };
        relations.push(Relation {
            oid,
            name: table.name.clone(),
            kind: RelationKind::Table,
            am: HEAP_AM,
            attributes,
            primary_key,
            foreign: None,
        });
    }
    let oids = source_oids(catalog.sources.keys());
    for source in catalog.sources.values() {
        relations.push(Relation {
            oid: oids.get(source.name.as_str()).copied().unwrap_or(FIRST_SOURCE_OID),
            name: source.name.clone(),
            kind: RelationKind::Source,
            am: 0,
            attributes: source.columns.iter().map(|c| attribute(c, false)).collect::<Result<Vec<_>>>()?,
            primary_key: None,
            foreign: Some((
                source.connector.clone(),
                source.options.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            )),
        });
    }
    // Each primary key is also an index relation whose columns are the key columns.
    let mut indexes = Vec::new();
    for relation in &relations {
        if let Some(key) = &relation.primary_key {
            let attributes = key
                .columns
                .iter()
                .filter_map(|n| relation.attributes.get(usize::try_from(*n).ok()?.checked_sub(1)?))
                .map(|a| Attribute {
                    name: a.name.clone(),
                    pg: a.pg.clone(),
                    not_null: false,
                })
                .collect();
            indexes.push(Relation {
                oid: key.index_oid,
                name: key.name.clone(),
                kind: RelationKind::Index,
                am: BTREE_AM,
                attributes,
                primary_key: None,
                foreign: None,
            });
        }
    }
    relations.extend(indexes);
    for (kind, oid) in super::SystemTableKind::ALL.into_iter().zip(FIRST_SYSTEM_VIEW_OID..) {
        let schema = kind.schema();
        relations.push(Relation {
            oid,
            name: kind.name().to_string(),
            kind: RelationKind::SystemView,
            am: 0,
            attributes: schema
                .fields()
                .iter()
                .map(|f| Attribute {
                    name: f.name().clone(),
                    pg: pg_type(f.data_type()),
                    not_null: !f.is_nullable(),
                })
                .collect(),
            primary_key: None,
            foreign: None,
        });
    }
    Ok(relations)
}

// Column builders: Postgres `oid` and `int8` are Int64 (but for `pg_attribute.atttypid`), `int4`
// Int32, `int2` Int16; `name`, `text` and `"char"` are Utf8.

fn int64(values: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}
fn oids(values: impl IntoIterator<Item = u32>) -> ArrayRef {
    Arc::new(UInt32Array::from_iter_values(values))
}
fn int32(values: impl IntoIterator<Item = i32>) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(values))
}
fn int16(values: impl IntoIterator<Item = i16>) -> ArrayRef {
    Arc::new(Int16Array::from_iter_values(values))
}
fn text<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}
fn boolean(values: impl IntoIterator<Item = bool>) -> ArrayRef {
    Arc::new(values.into_iter().map(Some).collect::<BooleanArray>())
}
/// `int2[]` / `int2vector` columns.
fn int16_lists(values: impl IntoIterator<Item = Vec<i16>>) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Int16Type, _, _>(
        values.into_iter().map(|v| Some(v.into_iter().map(Some).collect::<Vec<_>>())),
    ))
}
/// `oid[]` / `oidvector` columns.
fn int64_lists(values: impl IntoIterator<Item = Vec<i64>>) -> ArrayRef {
    Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
        values.into_iter().map(|v| Some(v.into_iter().map(Some).collect::<Vec<_>>())),
    ))
}
/// `text[]` columns with values.
fn text_lists<'a>(values: impl Iterator<Item = &'a [String]>) -> Result<ArrayRef> {
    let lists: Vec<&[String]> = values.collect();
    let strings: StringArray = lists.iter().flat_map(|l| l.iter()).map(Some).collect();
    Ok(Arc::new(ListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Utf8, true)),
        OffsetBuffer::from_lengths(lists.iter().map(|l| l.len())),
        Arc::new(strings),
        None,
    )?))
}
fn nulls(data_type: &DataType, rows: usize) -> ArrayRef {
    new_null_array(data_type, rows)
}
/// `text[]` columns (options, ACLs: Weir has no privileges, so every ACL is NULL).
fn text_array_type() -> DataType {
    DataType::new_list(DataType::Utf8, true)
}
fn repeat_int64(value: i64, rows: usize) -> ArrayRef {
    int64(std::iter::repeat_n(value, rows))
}
fn repeat_int32(value: i32, rows: usize) -> ArrayRef {
    int32(std::iter::repeat_n(value, rows))
}
fn repeat_int16(value: i16, rows: usize) -> ArrayRef {
    int16(std::iter::repeat_n(value, rows))
}
fn repeat_text(value: &str, rows: usize) -> ArrayRef {
    text(std::iter::repeat_n(value, rows))
}
fn repeat_bool(value: bool, rows: usize) -> ArrayRef {
    boolean(std::iter::repeat_n(value, rows))
}

/// A catalog table from named columns (every column nullable, as Postgres' catalogs are to clients).
fn table(columns: Vec<(&str, ArrayRef)>) -> Result<Arc<MemTable>> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, array)| array).collect())?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

fn empty_table(columns: &[(&str, DataType)]) -> Result<Arc<MemTable>> {
    table(columns.iter().map(|(name, t)| (*name, new_empty_array(t))).collect())
}

/// The types `pg_type` lists: those Weir sends (`pgserver::pg_type`), those of the catalog's own
/// columns and the pseudo-types its functions take and return (category 'P'), with Postgres'
/// length (-1: variable, -2: C string) and category.
const TYPES: [(Type, i16, &str); 28] = [
    (Type::BOOL, 1, "B"),
    (Type::BYTEA, -1, "U"),
    (Type::CHAR, 1, "Z"),
    (Type::NAME, 64, "S"),
    (Type::INT8, 8, "N"),
    (Type::INT2, 2, "N"),
    (Type::INT2_VECTOR, -1, "A"),
    (Type::INT4, 4, "N"),
    (Type::TEXT, -1, "S"),
    (Type::OID, 4, "N"),
    (Type::FLOAT4, 4, "N"),
    (Type::FLOAT8, 8, "N"),
    (Type::BPCHAR, -1, "S"),
    (Type::VARCHAR, -1, "S"),
    (Type::DATE, 4, "D"),
    (Type::TIME, 8, "D"),
    (Type::TIMESTAMP, 8, "D"),
    (Type::TIMESTAMPTZ, 8, "D"),
    (Type::INTERVAL, 16, "T"),
    (Type::NUMERIC, -1, "N"),
    (Type::UNKNOWN, -2, "X"),
    (Type::ANY, 4, "P"),
    (Type::ANYELEMENT, 4, "P"),
    (Type::ANYARRAY, -1, "P"),
    (Type::RECORD, -1, "P"),
    (Type::VOID, 4, "P"),
    (Type::TRIGGER, 4, "P"),
    (Type::CSTRING, -2, "P"),
];

/// The array types of the base types (`_int8` is `bigint[]`): Weir's SQL has arrays of each.
const ARRAY_TYPES: [(Type, Type); 20] = [
    (Type::BOOL_ARRAY, Type::BOOL),
    (Type::BYTEA_ARRAY, Type::BYTEA),
    (Type::CHAR_ARRAY, Type::CHAR),
    (Type::NAME_ARRAY, Type::NAME),
    (Type::INT8_ARRAY, Type::INT8),
    (Type::INT2_ARRAY, Type::INT2),
    (Type::INT2_VECTOR_ARRAY, Type::INT2_VECTOR),
    (Type::INT4_ARRAY, Type::INT4),
    (Type::TEXT_ARRAY, Type::TEXT),
    (Type::OID_ARRAY, Type::OID),
    (Type::FLOAT4_ARRAY, Type::FLOAT4),
    (Type::FLOAT8_ARRAY, Type::FLOAT8),
    (Type::BPCHAR_ARRAY, Type::BPCHAR),
    (Type::VARCHAR_ARRAY, Type::VARCHAR),
    (Type::DATE_ARRAY, Type::DATE),
    (Type::TIME_ARRAY, Type::TIME),
    (Type::TIMESTAMP_ARRAY, Type::TIMESTAMP),
    (Type::TIMESTAMPTZ_ARRAY, Type::TIMESTAMPTZ),
    (Type::INTERVAL_ARRAY, Type::INTERVAL),
    (Type::NUMERIC_ARRAY, Type::NUMERIC),
];

/// One row of `pg_type`: a type of `TYPES` or an array type of `ARRAY_TYPES`.
struct TypeRow {
    pg: Type,
    length: i16,
    category: &'static str,
    /// For an array type: its element type.
    element: Option<Type>,
    /// For a base type: its array type.
    array: Option<Type>,
}

fn type_rows() -> Vec<TypeRow> {
    let base = TYPES.iter().map(|(pg, length, category)| TypeRow {
        pg: pg.clone(),
        length: *length,
        category,
        element: None,
        array: ARRAY_TYPES.iter().find(|(_, e)| e == pg).map(|(a, _)| a.clone()),
    });
    let arrays = ARRAY_TYPES.iter().map(|(array, element)| TypeRow {
        pg: array.clone(),
        length: -1,
        category: "A",
        element: Some(element.clone()),
        array: None,
    });
    base.chain(arrays).collect()
}

/// The collation of a column of this type: text types collate (by bytes, see `postgres_syntax.rs`).
fn collation_of(pg: &Type) -> i64 {
    match TYPES.iter().find(|(t, _, _)| t == pg) {
        Some((_, _, "S")) => DEFAULT_COLLATION,
        _ => 0,
    }
}

fn type_length(pg: &Type) -> i16 {
    TYPES.iter().find(|(t, _, _)| t == pg).map_or(-1, |(_, length, _)| *length)
}

mod array_functions;
mod catalog_tables;
#[cfg(test)]
mod client_queries;
mod functions;
mod information_schema;
mod keywords;
mod names;
mod procs;
mod session_functions;
mod settings;
mod system_views;
mod text_functions;

/// (Re)builds the tables and functions from the catalog; called whenever sources or tables change.
pub fn refresh(ctx: &SessionContext, catalog: &Catalog) -> Result<()> {
    let datafusion_catalog = ctx.catalog("datafusion").ok_or_else(|| Error::internal("no default catalog"))?;
    if datafusion_catalog.schema("pg_catalog").is_none() {
        datafusion_catalog.register_schema("pg_catalog", Arc::new(MemorySchemaProvider::new()))?;
        functions::register_table_functions(ctx);
        array_functions::register(ctx);
        text_functions::register(ctx);
        settings::register(ctx);
        system_views::register(ctx);
        keywords::register(ctx);
    }
    let relations = relations(catalog)?;
    functions::register_functions(ctx, &relations);
    session_functions::register(ctx, &relations);
    // Last: pg_proc lists every function registered so far.
    let procs = procs::procs(ctx);
    names::register(ctx, &relations, &procs);
    procs::register_functions(ctx, &procs);
    for (name, provider) in catalog_tables::tables(&relations, &procs)? {
        let reference = format!("pg_catalog.{name}");
        ctx.deregister_table(reference.as_str())?;
        ctx.register_table(reference.as_str(), provider)?;
    }
    for (name, provider) in information_schema::views(&relations)? {
        let reference = format!("pg_catalog.{name}");
        ctx.deregister_table(reference.as_str())?;
        ctx.register_table(reference.as_str(), provider)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planner_knows_every_relation_for_the_implicit_search() {
        let mut registered: Vec<&str> = catalog_tables::tables(&[], &[])
            .expect("tables")
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        registered.sort_unstable();
        let mut known = crate::planner::postgres_syntax::PG_CATALOG_RELATIONS.to_vec();
        known.sort_unstable();
        assert_eq!(registered, known);
    }

    #[test]
    fn source_oids_are_stable_and_distinct() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let all = source_oids(names.iter());
        let fewer = source_oids(names[1..].iter());
        assert_eq!(all["b"], fewer["b"]);
        assert_eq!(all.values().collect::<HashSet<_>>().len(), 3);
    }
}
