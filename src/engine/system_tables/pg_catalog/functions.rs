//! The functions of `pg_catalog` clients call (`format_type`, `pg_get_indexdef`, ...) and its
//! set-returning functions (`pg_options_to_table`, ...), registered unqualified: `pg_catalog.f(...)`
//! is rewritten to `f(...)` before planning (`planner/postgres_syntax.rs`).

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, StringArray, new_empty_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};
use pgwire::api::Type;

use super::{Relation, RelationKind, int64, nulls, repeat_bool, repeat_text, table, text, text_array_type, text_lists};
use crate::error::{Error, Result, UserErrorKind};
use crate::planner::postgres_settings::POSTGRES_VERSION;
use crate::planner::postgres_syntax::{PG_CATALOG_RELATIONS, REGCLASS_CAST};
use crate::planner::subquery_apply::LateralFunction;

/// `format_type(oid, typmod)`: the SQL name of a type, as Postgres prints it.
pub(super) fn format_type(oid: i64, typmod: Option<i64>) -> String {
    let Some(pg) = u32::try_from(oid).ok().and_then(Type::from_oid) else {
        return "???".to_string();
    };
    if let Some((_, element)) = super::ARRAY_TYPES.iter().find(|(array, _)| *array == pg) {
        return format!("{}[]", format_type(i64::from(element.oid()), typmod));
    }
    let modifier = typmod.filter(|m| *m >= 0);
    let name = match pg {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::VARCHAR => "character varying",
        Type::BPCHAR => "character",
        // Keywords as type names are quoted, as Postgres' format_type quotes them.
        Type::CHAR => "\"char\"",
        Type::ANY => "\"any\"",
        Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME | Type::TIMETZ => {
            // The precision goes between the name and the zone: `timestamp(3) without time zone`.
            let (base, zone) = match pg {
                Type::TIMESTAMP => ("timestamp", "without"),
                Type::TIMESTAMPTZ => ("timestamp", "with"),
                Type::TIME => ("time", "without"),
                _ => ("time", "with"),
            };
            let precision = modifier.map(|p| format!("({p})")).unwrap_or_default();
            return format!("{base}{precision} {zone} time zone");
        }
        ref other => other.name(),
    };
    match (&pg, modifier) {
        (&Type::VARCHAR | &Type::BPCHAR, Some(m)) if m >= 4 => format!("{name}({})", m - 4),
        (&Type::NUMERIC, Some(m)) if m >= 4 => format!("{name}({},{})", ((m - 4) >> 16) & 0xffff, (m - 4) & 0xffff),
        _ => name.to_string(),
    }
}

/// An identifier as Postgres prints it: quoted unless it is a plain lower-case name.
pub(super) fn quote_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A function of `pg_catalog`, computed row by row over its arguments as arrays.
type Body = Arc<dyn Fn(&[ArrayRef]) -> Result<ArrayRef> + Send + Sync>;

struct PgFunction {
    name: String,
    signature: Signature,
    output: DataType,
    body: Body,
}

impl std::fmt::Debug for PgFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl PartialEq for PgFunction {
    fn eq(&self, other: &Self) -> bool {
        // Two refreshes register different bodies under one name; they are different functions.
        self.name == other.name && Arc::ptr_eq(&self.body, &other.body)
    }
}
impl Eq for PgFunction {}
impl Hash for PgFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(self.output.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let all_scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = (self.body)(&arrays)?;
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// Registers function `name` taking any of `arities` arguments and returning `output`. Arguments
/// are not type-checked: the body casts them as Postgres would (`'16400'` is an oid too).
/// Unqualified: `pg_catalog.f(...)` is rewritten to `f(...)` before planning (`postgres_syntax.rs`).
pub(super) fn register_function(
    ctx: &SessionContext,
    name: &str,
    arities: &[usize],
    output: DataType,
    body: impl Fn(&[ArrayRef]) -> Result<ArrayRef> + Send + Sync + 'static,
) {
    let signature = Signature::one_of(arities.iter().map(|n| TypeSignature::Any(*n)).collect(), Volatility::Stable);
    ctx.register_udf(ScalarUDF::new_from_impl(PgFunction {
        name: name.to_string(),
        signature,
        output,
        body: Arc::new(body),
    }));
}

/// Registers function `name` taking one or more arguments of any types.
pub(super) fn register_variadic(
    ctx: &SessionContext,
    name: &str,
    output: DataType,
    body: impl Fn(&[ArrayRef]) -> Result<ArrayRef> + Send + Sync + 'static,
) {
    ctx.register_udf(ScalarUDF::new_from_impl(PgFunction {
        name: name.to_string(),
        signature: Signature::variadic_any(Volatility::Stable),
        output,
        body: Arc::new(body),
    }));
}

/// Registers function `name()`, without arguments.
pub(super) fn register_nullary(
    ctx: &SessionContext,
    name: &str,
    output: DataType,
    body: impl Fn(&[ArrayRef]) -> Result<ArrayRef> + Send + Sync + 'static,
) {
    ctx.register_udf(ScalarUDF::new_from_impl(PgFunction {
        name: name.to_string(),
        signature: Signature::nullary(Volatility::Stable),
        output,
        body: Arc::new(body),
    }));
}

/// Argument `i` as BIGINTs (oids, numbers), or all NULL when the call left it out.
pub(super) fn int_arg(args: &[ArrayRef], i: usize, rows: usize) -> Result<Int64Array> {
    match args.get(i) {
        Some(array) => Ok(cast(array, &DataType::Int64)?.as_primitive::<Int64Type>().clone()),
        None => Ok(Int64Array::from(vec![None; rows])),
    }
}

/// Argument `i` as text.
pub(super) fn text_arg(args: &[ArrayRef], i: usize, rows: usize) -> Result<StringArray> {
    match args.get(i) {
        Some(array) => Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().clone()),
        None => Ok(StringArray::from(vec![None::<&str>; rows])),
    }
}

pub(super) fn rows_of(args: &[ArrayRef]) -> usize {
    args.first().map_or(1, |a| a.len())
}

/// A text function of an oid (the first argument) and the optional integer second argument.
fn text_by_oid(f: impl Fn(i64, Option<i64>) -> Option<String>) -> impl Fn(&[ArrayRef]) -> Result<ArrayRef> {
    move |args| {
        let rows = rows_of(args);
        let (oids, seconds) = (int_arg(args, 0, rows)?, int_arg(args, 1, rows)?);
        let values: StringArray = (0..rows)
            .map(|r| {
                let second = seconds.is_valid(r).then(|| seconds.value(r));
                oids.is_valid(r).then(|| f(oids.value(r), second)).flatten()
            })
            .collect();
        Ok(Arc::new(values) as ArrayRef)
    }
}

/// A text function of a text argument.
fn text_by_text(f: impl Fn(&str) -> String) -> impl Fn(&[ArrayRef]) -> Result<ArrayRef> {
    move |args| {
        let rows = rows_of(args);
        let texts = text_arg(args, 0, rows)?;
        let values: StringArray = texts.iter().map(|t| t.map(&f)).collect();
        Ok(Arc::new(values) as ArrayRef)
    }
}

/// `pg_size_pretty`: bytes up to 10 kB, then kB, MB, GB, TB, rounded half away from zero.
fn size_pretty(bytes: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    if bytes.abs() < LIMIT {
        return format!("{bytes} bytes");
    }
    // One extra bit is kept for rounding, as Postgres does.
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    let mut size = bytes >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.abs() < LIMIT * 2 - 1 || unit == "TB" {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} PB", half_rounded(size))
}

/// `'text'` as a Postgres string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `array_upper(array, dimension)`: the upper bound of a one-dimensional array (its length, as
/// Postgres arrays from Weir start at 1); NULL for an empty array or another dimension.
fn array_upper(args: &[ArrayRef]) -> Result<ArrayRef> {
    let rows = rows_of(args);
    let dimensions = int_arg(args, 1, rows)?;
    let lengths: Vec<Option<i64>> = match args.first().map(|a| a.data_type()) {
        Some(DataType::List(_)) => args[0].as_list::<i32>().iter().map(|l| l.map(|l| l.len() as i64)).collect(),
        Some(DataType::LargeList(_)) => args[0].as_list::<i64>().iter().map(|l| l.map(|l| l.len() as i64)).collect(),
        _ => vec![None; rows],
    };
    let values: Int64Array = lengths
        .into_iter()
        .enumerate()
        .map(|(r, length)| length.filter(|n| *n > 0 && dimensions.is_valid(r) && dimensions.value(r) == 1))
        .collect();
    Ok(Arc::new(values))
}

/// The relations of `pg_catalog` itself, which Weir's `pg_class` does not list: fixed oids below the
/// first user oid, so that `'pg_catalog.pg_constraint'::regclass` has a value as in Postgres.
pub(super) fn catalog_relation_oids() -> impl Iterator<Item = (String, i64)> {
    PG_CATALOG_RELATIONS
        .iter()
        .zip(12_000..)
        .map(|(name, oid)| (format!("pg_catalog.{name}"), oid))
}

/// A relation name as `regclass` reads it: `public.` dropped, unquoted parts lower-cased, quoted
/// ones as written; `pg_catalog.` kept (and added for a bare name of a catalog relation, which
/// Postgres finds first on the search path).
pub(super) fn relation_name(text: &str) -> String {
    let parts: Vec<String> = text
        .trim()
        .split('.')
        .map(|part| match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => part.to_ascii_lowercase(),
        })
        .collect();
    match parts.as_slice() {
        [schema, name] if schema == "public" => name.clone(),
        [name] if PG_CATALOG_RELATIONS.contains(&name.as_str()) => format!("pg_catalog.{name}"),
        _ => parts.join("."),
    }
}

/// Oids for a `regclass` argument: numbers are oids already, text is looked up.
fn regclass_oids(argument: &ArrayRef, lookup: impl Fn(&str) -> Result<Option<i64>>) -> Result<ArrayRef> {
    if argument.data_type().is_numeric() {
        return Ok(cast(argument, &DataType::Int64)?);
    }
    let names = cast(argument, &DataType::Utf8)?;
    let oids = names
        .as_string::<i32>()
        .iter()
        .map(|name| name.map(&lookup).transpose().map(Option::flatten))
        .collect::<Result<Int64Array>>()?;
    Ok(Arc::new(oids))
}

/// `version()` as Postgres spells it, which drivers parse for the server's major version
/// (SQLAlchemy, psycopg 3), with Weir and its version after it.
fn version_text() -> String {
    format!(
        "PostgreSQL {POSTGRES_VERSION} (Weir {}) on {}-{}, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

pub(super) fn register_functions(ctx: &SessionContext, relations: &[Relation]) {
    use DataType::{Boolean, Int64, Utf8};
    // Replaces DataFusion's own `version()` ("Apache DataFusion ...").
    register_nullary(ctx, "version", Utf8, |_| Ok(repeat_text(&version_text(), 1)));
    // One schema for the user's objects, after pg_catalog (which Postgres searches first).
    register_nullary(ctx, "current_schema", Utf8, |_| Ok(repeat_text("public", 1)));
    register_function(ctx, "to_regtype", &[1], Int64, |args| {
        let names = text_arg(args, 0, rows_of(args))?;
        Ok(Arc::new(
            names
                .iter()
                .map(|name| name.and_then(super::names::type_oid))
                .collect::<Int64Array>(),
        ) as ArrayRef)
    });
    // `current_schemas(include_implicit)`: the search path, with pg_catalog when asked.
    register_function(ctx, "current_schemas", &[1], text_array_type(), |args| {
        let include_implicit = cast(&args[0], &Boolean)?;
        let paths = [vec!["pg_catalog".to_string(), "public".to_string()], vec!["public".to_string()]];
        let chosen = include_implicit
            .as_boolean()
            .iter()
            .map(|implicit| paths[usize::from(implicit != Some(true))].as_slice());
        text_lists(chosen)
    });
    // Weir has one owner, one encoding and every table visible (one schema on the search path).
    register_function(ctx, "pg_get_userbyid", &[1], Utf8, |args| Ok(repeat_text("weir", rows_of(args))));
    register_function(ctx, "pg_table_is_visible", &[1], Boolean, |args| {
        Ok(repeat_bool(true, rows_of(args)))
    });
    register_function(ctx, "pg_encoding_to_char", &[1], Utf8, |args| {
        Ok(repeat_text("UTF8", rows_of(args)))
    });
    register_function(
        ctx,
        "format_type",
        &[2],
        Utf8,
        text_by_oid(|oid, typmod| Some(format_type(oid, typmod))),
    );
    register_function(ctx, "quote_ident", &[1], Utf8, text_by_text(quote_ident));
    register_function(ctx, "quote_literal", &[1], Utf8, text_by_text(quote_literal));
    register_function(ctx, "array_upper", &[2], Int64, array_upper);
    // Weir stores no expressions (defaults, index predicates) other than as their text.
    register_function(ctx, "pg_get_expr", &[2, 3], Utf8, |args| {
        Ok(Arc::new(text_arg(args, 0, rows_of(args))?))
    });
    // Objects Weir does not have (views, rules, triggers, partitions, extended statistics) and
    // comments, which it does not keep: no definition, no description.
    for (name, arities) in [
        ("pg_get_viewdef", &[1, 2][..]),
        ("pg_get_ruledef", &[1, 2]),
        ("pg_get_triggerdef", &[1, 2]),
        ("pg_get_partkeydef", &[1]),
        ("pg_get_partition_constraintdef", &[1]),
        ("pg_get_statisticsobjdef_columns", &[1]),
        ("col_description", &[2]),
        ("obj_description", &[1, 2]),
        ("shobj_description", &[2]),
    ] {
        register_function(ctx, name, arities, Utf8, |args| Ok(nulls(&Utf8, rows_of(args))));
    }
    // Sizes on disk are not tracked per relation (rows share one RocksDB): unknown, so NULL.
    for name in [
        "pg_table_size",
        "pg_relation_size",
        "pg_total_relation_size",
        "pg_indexes_size",
        "pg_database_size",
    ] {
        register_function(ctx, name, &[1], Int64, |args| Ok(nulls(&Int64, rows_of(args))));
    }
    register_function(ctx, "pg_size_pretty", &[1], Utf8, |args| {
        let sizes = int_arg(args, 0, rows_of(args))?;
        Ok(Arc::new(sizes.iter().map(|s| s.map(size_pretty)).collect::<StringArray>()))
    });
    // `x::regclass` (rewritten to `regclass_of(x)` by the planner, see `postgres_syntax.rs`) and
    // `to_regclass(text)`: a relation's oid from its name; a number is an oid already.
    let by_name: BTreeMap<String, i64> = relations
        .iter()
        .map(|r| (r.name.clone(), r.oid))
        .chain(catalog_relation_oids())
        .collect();
    let by_name = Arc::new(by_name);
    let lookup = by_name.clone();
    register_function(ctx, REGCLASS_CAST, &[1], Int64, move |args| {
        regclass_oids(&args[0], |name| {
            lookup
                .get(&relation_name(name))
                .copied()
                .map(Some)
                .ok_or_else(|| Error::user(UserErrorKind::UndefinedObject, format!("relation \"{name}\" does not exist")))
        })
    });
    register_function(ctx, "to_regclass", &[1], Int64, move |args| {
        regclass_oids(&args[0], |name| Ok(by_name.get(&relation_name(name)).copied()))
    });
    // Only tables could be published (Weir has no publications).
    let tables: HashSet<i64> = relations.iter().filter(|r| r.kind == RelationKind::Table).map(|r| r.oid).collect();
    register_function(ctx, "pg_relation_is_publishable", &[1], Boolean, move |args| {
        let oids = int_arg(args, 0, rows_of(args))?;
        Ok(Arc::new(
            oids.iter().map(|o| o.map(|o| tables.contains(&o))).collect::<BooleanArray>(),
        ))
    });

    // Definitions of the primary keys: `CREATE UNIQUE INDEX t_pkey ON public.t USING btree (k)` and
    // `PRIMARY KEY (k)`; with a column number, pg_get_indexdef names that key column.
    let mut index_defs: BTreeMap<i64, (String, Vec<String>)> = BTreeMap::new();
    let mut constraint_defs: BTreeMap<i64, String> = BTreeMap::new();
    for relation in relations {
        let Some(key) = &relation.primary_key else { continue };
        let columns: Vec<String> = key
            .columns
            .iter()
            .filter_map(|n| relation.attributes.get(usize::try_from(*n).ok()?.checked_sub(1)?))
            .map(|a| quote_ident(&a.name))
            .collect();
        let list = columns.join(", ");
        index_defs.insert(
            key.index_oid,
            (
                format!(
                    "CREATE UNIQUE INDEX {} ON public.{} USING btree ({list})",
                    quote_ident(&key.name),
                    quote_ident(&relation.name)
                ),
                columns,
            ),
        );
        constraint_defs.insert(key.constraint_oid, format!("PRIMARY KEY ({list})"));
    }
    register_function(
        ctx,
        "pg_get_indexdef",
        &[1, 3],
        Utf8,
        text_by_oid(move |oid, column| {
            let (definition, columns) = index_defs.get(&oid)?;
            match column.filter(|c| *c > 0) {
                Some(c) => columns.get(usize::try_from(c - 1).ok()?).cloned(),
                None => Some(definition.clone()),
            }
        }),
    );
    register_function(
        ctx,
        "pg_get_constraintdef",
        &[1, 2],
        Utf8,
        text_by_oid(move |oid, _| constraint_defs.get(&oid).cloned()),
    );
}

/// `pg_options_to_table(options)`: `key=value` option strings as (option_name, option_value) rows.
#[derive(Debug)]
struct OptionsToTable;

impl TableFunctionImpl for OptionsToTable {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let options: Vec<String> = match args.exprs().first() {
            Some(Expr::Literal(ScalarValue::List(list), _)) if !list.is_empty() && list.is_valid(0) => {
                let values = cast(&list.value(0), &DataType::Utf8)?;
                values.as_string::<i32>().iter().flatten().map(str::to_string).collect()
            }
            Some(Expr::Literal(value, _)) if value.is_null() => Vec::new(),
            _ => return Err(Error::invalid("pg_options_to_table takes an array of options").into()),
        };
        let (names, values): (Vec<&str>, Vec<Option<&str>>) = options
            .iter()
            .map(|o| match o.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (o.as_str(), None),
            })
            .unzip();
        Ok(table(vec![
            ("option_name", text(names)),
            ("option_value", Arc::new(StringArray::from(values)) as ArrayRef),
        ])?)
    }
}

/// `pg_partition_ancestors(relation)`: a relation and the partitioned tables above it; Weir has no
/// partitions, so the relation itself.
#[derive(Debug)]
struct PartitionAncestors;

impl TableFunctionImpl for PartitionAncestors {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let relid = match args.exprs().first() {
            Some(Expr::Literal(value, _)) => value.cast_to(&DataType::Int64)?,
            _ => return Err(Error::invalid("pg_partition_ancestors takes a relation oid").into()),
        };
        let relids = match relid {
            ScalarValue::Int64(Some(oid)) => vec![oid],
            _ => Vec::new(),
        };
        Ok(table(vec![("relid", int64(relids))])?)
    }
}

/// `unnest(array)` called as `pg_catalog.unnest` (the unqualified spelling is DataFusion's UNNEST):
/// one row per element, in a column named `unnest`.
#[derive(Debug)]
struct Unnest;

impl TableFunctionImpl for Unnest {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let elements = match args.exprs().first() {
            Some(Expr::Literal(ScalarValue::List(list), _)) if list.len() == 1 => match list.is_valid(0) {
                true => list.value(0),
                false => new_empty_array(&list.value_type()),
            },
            Some(Expr::Literal(value, _)) if value.is_null() => new_empty_array(&DataType::Utf8),
            _ => return Err(Error::invalid("unnest takes an array").into()),
        };
        Ok(table(vec![("unnest", elements)])?)
    }
}

/// Set-returning functions of `pg_catalog`; they may take another table's column inside a
/// correlated subquery (`FROM pg_options_to_table(ftoptions)`), hence `LateralFunction`.
pub(super) fn register_table_functions(ctx: &SessionContext) {
    ctx.register_udtf("pg_options_to_table", Arc::new(LateralFunction::new(Arc::new(OptionsToTable))));
    ctx.register_udtf(
        "pg_partition_ancestors",
        Arc::new(LateralFunction::new(Arc::new(PartitionAncestors))),
    );
    ctx.register_udtf("unnest", Arc::new(LateralFunction::new(Arc::new(Unnest))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_type_prints_sql_names() {
        assert_eq!(format_type(i64::from(Type::VARCHAR.oid()), Some(-1)), "character varying");
        assert_eq!(format_type(i64::from(Type::VARCHAR.oid()), Some(14)), "character varying(10)");
        assert_eq!(format_type(i64::from(Type::TIMESTAMP.oid()), None), "timestamp without time zone");
        assert_eq!(
            format_type(i64::from(Type::TIMESTAMPTZ.oid()), Some(3)),
            "timestamp(3) with time zone"
        );
        assert_eq!(format_type(i64::from(Type::INT8.oid()), Some(-1)), "bigint");
        assert_eq!(format_type(i64::from(Type::TEXT.oid()), Some(-1)), "text");
        assert_eq!(format_type(i64::from(Type::ANY.oid()), None), "\"any\"");
        assert_eq!(format_type(123_456_789, None), "???");
    }

    #[test]
    fn regclass_reads_names_as_postgres_does() {
        assert_eq!(relation_name("public.Totals"), "totals");
        assert_eq!(relation_name("\"Totals\""), "Totals");
        assert_eq!(relation_name("pg_constraint"), "pg_catalog.pg_constraint");
        assert_eq!(relation_name("PG_CATALOG.pg_constraint"), "pg_catalog.pg_constraint");
    }

    #[test]
    fn version_reads_as_postgres_for_drivers() {
        // SQLAlchemy's pattern: r".*(?:PostgreSQL|EnterpriseDB) (\d+)\.?(\d+)?"
        let text = version_text();
        assert!(text.starts_with("PostgreSQL 16.0 (Weir "), "{text}");
    }

    #[test]
    fn sizes_print_as_postgres_does() {
        assert_eq!(size_pretty(8192), "8192 bytes");
        assert_eq!(size_pretty(10 * 1024), "10 kB");
        assert_eq!(size_pretty(123_456_789), "118 MB");
        assert_eq!(size_pretty(-20_000), "-20 kB");
    }
}
