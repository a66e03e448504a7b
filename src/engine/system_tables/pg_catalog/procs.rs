//! `pg_proc`: the functions Weir's SQL can call (DataFusion's and the ones registered here), one
//! row per signature, and the input/output functions of the types in `pg_type`, which Weir runs to
//! read and write values on the wire (SQL does not call them). Weir has no functions of users.
//!
//! A DataFusion signature names argument types only when it is exact; other arguments are `any`
//! (a variadic one `VARIADIC any`), and a return type that depends on the arguments is
//! `anyelement`. Oids are counted up from `FIRST_PROC_OID` in name order, so they are stable for
//! one build of Weir.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float32Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{TypeSignature, Volatility};
use pgwire::api::Type;

use super::functions::{format_type, int_arg, register_function, rows_of};
use super::{
    ARRAY_TYPES, PG_CATALOG_NAMESPACE, TYPES, boolean, int16, int64, int64_lists, nulls, repeat_bool, repeat_int64, repeat_text, table,
    text, text_array_type,
};
use crate::engine::postgres_types::pg_type;
use crate::error::Result;

const FIRST_PROC_OID: i64 = 5000;
/// `pg_language` rows: functions built into the server.
pub(super) const INTERNAL_LANGUAGE: i64 = 12;
const OWNER: i64 = super::OWNER;

/// One row of `pg_proc`.
pub(super) struct Proc {
    pub oid: i64,
    pub name: String,
    /// 'f' function, 'a' aggregate, 'w' window function.
    pub kind: &'static str,
    /// Set-returning (table functions).
    pub returns_set: bool,
    pub arguments: Vec<i64>,
    /// The type of a VARIADIC last argument (0 when there is none).
    pub variadic: i64,
    pub returns: i64,
    /// 'i' immutable, 's' stable, 'v' volatile.
    pub volatility: &'static str,
}

/// The names of a type's input, output, receive and send functions, as Postgres names them.
fn io_function_names(pg: &Type, is_array: bool) -> [String; 4] {
    if is_array {
        return ["array_in", "array_out", "array_recv", "array_send"].map(str::to_string);
    }
    let name = pg.name();
    let separated = [
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "interval",
        "numeric",
        "any",
        "anyelement",
        "anyarray",
        "record",
        "void",
        "trigger",
    ]
    .contains(&name);
    let sep = if separated { "_" } else { "" };
    ["in", "out", "recv", "send"].map(|suffix| format!("{name}{sep}{suffix}"))
}

/// The oid of a type's input (0), output (1), receive (2) or send (3) function.
pub(super) fn io_function_oid(procs: &[Proc], pg: &Type, is_array: bool, which: usize) -> i64 {
    let names = io_function_names(pg, is_array);
    let Some(name) = names.get(which) else { return 0 };
    procs.iter().find(|p| &p.name == name).map_or(0, |p| p.oid)
}

fn oid_of(pg: &Type) -> i64 {
    i64::from(pg.oid())
}

fn volatility(v: Volatility) -> &'static str {
    match v {
        Volatility::Immutable => "i",
        Volatility::Stable => "s",
        Volatility::Volatile => "v",
    }
}

/// The argument lists of a DataFusion signature: (argument types, variadic type), one per
/// alternative. `None` for an argument type Weir cannot name (Postgres' `any`).
fn argument_lists(signature: &TypeSignature) -> Vec<(Vec<Option<DataType>>, bool)> {
    match signature {
        TypeSignature::Nullary => vec![(Vec::new(), false)],
        TypeSignature::Exact(types) => vec![(types.iter().cloned().map(Some).collect(), false)],
        TypeSignature::Any(n)
        | TypeSignature::Uniform(n, _)
        | TypeSignature::Comparable(n)
        | TypeSignature::Numeric(n)
        | TypeSignature::String(n) => {
            vec![(vec![None; *n], false)]
        }
        TypeSignature::Coercible(coercions) => vec![(vec![None; coercions.len()], false)],
        TypeSignature::OneOf(alternatives) => {
            let mut lists: Vec<(Vec<Option<DataType>>, bool)> = Vec::new();
            for list in alternatives.iter().flat_map(argument_lists) {
                if !lists.contains(&list) {
                    lists.push(list);
                }
            }
            lists
        }
        _ => vec![(vec![None], true)],
    }
}

/// The return type of a function over these arguments: asked with the exact types where the
/// signature names them, else with NULLs; a type that depends on the arguments (NULL back, or an
/// error) is `None`, Postgres' `anyelement`. A variadic signature says nothing of how many
/// arguments the function reads, so it is not asked (some index their arguments unchecked).
fn return_type(
    arguments: &[Option<DataType>],
    variadic: bool,
    ask: impl Fn(&[DataType]) -> datafusion::error::Result<DataType>,
) -> Option<DataType> {
    if variadic {
        return None;
    }
    let types: Vec<DataType> = arguments.iter().map(|a| a.clone().unwrap_or(DataType::Null)).collect();
    ask(&types).ok().filter(|t| *t != DataType::Null)
}

/// Every function: the types' I/O functions, then Weir's SQL functions by name.
pub(super) fn procs(ctx: &SessionContext) -> Vec<Proc> {
    // (name, kind, returns_set, arguments, variadic, returns, volatility)
    type Row = (String, &'static str, bool, Vec<i64>, i64, i64, &'static str);
    let mut rows: Vec<Row> = Vec::new();
    let any = oid_of(&Type::ANY);
    let anyelement = oid_of(&Type::ANYELEMENT);
    let io_types = TYPES
        .iter()
        .map(|(pg, _, _)| (pg.clone(), false))
        .chain(ARRAY_TYPES.iter().map(|(array, _)| (array.clone(), true)));
    for (pg, is_array) in io_types {
        let [input, output, receive, send] = io_function_names(&pg, is_array);
        let this = oid_of(&pg);
        let internal = oid_of(&Type::INTERNAL);
        let bytea = oid_of(&Type::BYTEA);
        let cstring = oid_of(&Type::CSTRING);
        for row in [
            (input, vec![cstring], this),
            (output, vec![this], cstring),
            (receive, vec![internal], this),
            (send, vec![this], bytea),
        ] {
            if !rows.iter().any(|r| r.0 == row.0) {
                rows.push((row.0, "f", false, row.1, 0, row.2, "i"));
            }
        }
    }
    let state = ctx.state();
    let pg_oid = |t: &DataType| oid_of(&pg_type(t));
    let mut sql_rows: Vec<Row> = Vec::new();
    for (name, udf) in state.scalar_functions() {
        let signature = udf.signature();
        for (arguments, variadic) in argument_lists(&signature.type_signature) {
            let returns = return_type(&arguments, variadic, |types| udf.return_type(types)).map_or(anyelement, |t| pg_oid(&t));
            let oids = arguments.iter().map(|a| a.as_ref().map_or(any, pg_oid)).collect();
            sql_rows.push((
                name.clone(),
                "f",
                false,
                oids,
                if variadic { any } else { 0 },
                returns,
                volatility(signature.volatility),
            ));
        }
    }
    for (name, udaf) in state.aggregate_functions() {
        let signature = udaf.signature();
        for (arguments, variadic) in argument_lists(&signature.type_signature) {
            let returns = return_type(&arguments, variadic, |types| udaf.return_type(types)).map_or(anyelement, |t| pg_oid(&t));
            let oids = arguments.iter().map(|a| a.as_ref().map_or(any, pg_oid)).collect();
            sql_rows.push((
                name.clone(),
                "a",
                false,
                oids,
                if variadic { any } else { 0 },
                returns,
                volatility(signature.volatility),
            ));
        }
    }
    for (name, udwf) in state.window_functions() {
        let signature = udwf.signature();
        for (arguments, variadic) in argument_lists(&signature.type_signature) {
            let oids = arguments.iter().map(|a| a.as_ref().map_or(any, pg_oid)).collect();
            sql_rows.push((
                name.clone(),
                "w",
                false,
                oids,
                if variadic { any } else { 0 },
                anyelement,
                volatility(signature.volatility),
            ));
        }
    }
    // Table functions take what their implementation accepts: `VARIADIC any`, rows of `record`.
    for name in state.table_functions().keys() {
        sql_rows.push((name.clone(), "f", true, vec![any], any, oid_of(&Type::RECORD), "v"));
    }
    sql_rows.sort_by(|a, b| (&a.0, a.1, &a.3).cmp(&(&b.0, b.1, &b.3)));
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.extend(sql_rows);
    rows.into_iter()
        .zip(FIRST_PROC_OID..)
        .map(|((name, kind, returns_set, arguments, variadic, returns, volatility), oid)| Proc {
            oid,
            name,
            kind,
            returns_set,
            arguments,
            variadic,
            returns,
            volatility,
        })
        .collect()
}

pub(super) fn proc_table(procs: &[Proc]) -> Result<Arc<MemTable>> {
    let n = procs.len();
    let arguments = |p: &Proc| i16::try_from(p.arguments.len()).unwrap_or(i16::MAX);
    table(vec![
        ("oid", int64(procs.iter().map(|p| p.oid))),
        ("proname", text(procs.iter().map(|p| p.name.as_str()))),
        ("pronamespace", repeat_int64(PG_CATALOG_NAMESPACE, n)),
        ("proowner", repeat_int64(OWNER, n)),
        ("prolang", repeat_int64(INTERNAL_LANGUAGE, n)),
        ("procost", Arc::new(Float32Array::from(vec![1.0; n])) as ArrayRef),
        (
            "prorows",
            Arc::new(Float32Array::from_iter_values(
                procs.iter().map(|p| if p.returns_set { 1000.0 } else { 0.0 }),
            )),
        ),
        ("provariadic", int64(procs.iter().map(|p| p.variadic))),
        ("prosupport", repeat_int64(0, n)),
        ("prokind", text(procs.iter().map(|p| p.kind))),
        ("prosecdef", repeat_bool(false, n)),
        ("proleakproof", repeat_bool(false, n)),
        ("proisstrict", repeat_bool(false, n)),
        ("proretset", boolean(procs.iter().map(|p| p.returns_set))),
        ("provolatile", text(procs.iter().map(|p| p.volatility))),
        ("proparallel", repeat_text("s", n)),
        ("pronargs", int16(procs.iter().map(arguments))),
        ("pronargdefaults", int16(std::iter::repeat_n(0, n))),
        ("prorettype", int64(procs.iter().map(|p| p.returns))),
        ("proargtypes", int64_lists(procs.iter().map(|p| p.arguments.clone()))),
        ("proallargtypes", nulls(&DataType::new_list(DataType::Int64, true), n)),
        ("proargmodes", nulls(&text_array_type(), n)),
        ("proargnames", nulls(&text_array_type(), n)),
        ("proargdefaults", nulls(&DataType::Utf8, n)),
        ("protrftypes", nulls(&DataType::new_list(DataType::Int64, true), n)),
        ("prosrc", text(procs.iter().map(|p| p.name.as_str()))),
        ("probin", nulls(&DataType::Utf8, n)),
        ("prosqlbody", nulls(&DataType::Utf8, n)),
        ("proconfig", nulls(&text_array_type(), n)),
        ("proacl", nulls(&text_array_type(), n)),
    ])
}

/// `integer, VARIADIC "any"`: a function's arguments as `pg_get_function_arguments` prints them.
fn argument_text(proc: &Proc) -> String {
    let count = proc.arguments.len();
    proc.arguments
        .iter()
        .enumerate()
        .map(|(i, oid)| {
            let name = format_type(*oid, None);
            if proc.variadic != 0 && i + 1 == count {
                format!("VARIADIC {name}")
            } else {
                name
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn result_text(proc: &Proc) -> String {
    let name = format_type(proc.returns, None);
    if proc.returns_set { format!("SETOF {name}") } else { name }
}

/// `pg_get_function_result`, `pg_get_function_arguments`, `pg_get_function_identity_arguments`,
/// `pg_get_functiondef` and `pg_function_is_visible` over these functions.
pub(super) fn register_functions(ctx: &SessionContext, procs: &[Proc]) {
    let by_oid: Arc<BTreeMap<i64, (String, String, String)>> = Arc::new(
        procs
            .iter()
            .map(|p| {
                let definition = format!(
                    "CREATE OR REPLACE FUNCTION pg_catalog.{}({})\n RETURNS {}\n LANGUAGE internal\nAS $function${}$function$\n",
                    super::functions::quote_ident(&p.name),
                    argument_text(p),
                    result_text(p),
                    p.name
                );
                (p.oid, (argument_text(p), result_text(p), definition))
            })
            .collect(),
    );
    let texts = |pick: fn(&(String, String, String)) -> &String| {
        let by_oid = by_oid.clone();
        move |args: &[ArrayRef]| -> Result<ArrayRef> {
            let oids = int_arg(args, 0, rows_of(args))?;
            let values: StringArray = oids
                .iter()
                .map(|oid| oid.and_then(|o| by_oid.get(&o)).map(|t| pick(t).clone()))
                .collect();
            Ok(Arc::new(values) as ArrayRef)
        }
    };
    register_function(ctx, "pg_get_function_arguments", &[1], DataType::Utf8, texts(|t| &t.0));
    register_function(ctx, "pg_get_function_identity_arguments", &[1], DataType::Utf8, texts(|t| &t.0));
    register_function(ctx, "pg_get_function_result", &[1], DataType::Utf8, texts(|t| &t.1));
    register_function(ctx, "pg_get_functiondef", &[1], DataType::Utf8, texts(|t| &t.2));
    // Every function is in pg_catalog, which is first on the search path: visible if it exists.
    let known = by_oid.clone();
    register_function(ctx, "pg_function_is_visible", &[1], DataType::Boolean, move |args| {
        let oids = int_arg(args, 0, rows_of(args))?;
        Ok(Arc::new(
            oids.iter()
                .map(|o| o.and_then(|o| known.contains_key(&o).then_some(true)))
                .collect::<BooleanArray>(),
        ) as ArrayRef)
    });
}
