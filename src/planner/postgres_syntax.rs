//! Postgres spellings that clients' catalog queries use (psql's `\d`, drivers' introspection),
//! rewritten on the parsed statement into what DataFusion plans:
//! - `expr COLLATE "C"` / `COLLATE pg_catalog.default`: Weir compares strings byte by byte, which is
//!   what the C collation and this database's default collation mean, so the clause is dropped;
//!   any other collation is refused rather than silently ignored.
//! - `a OPERATOR(pg_catalog.~) b`: the schema-qualified spelling of a built-in operator becomes the
//!   operator itself.
//! - `::pg_catalog.text`, `::pg_catalog.int8`: a type qualified with `pg_catalog` is the built-in type.
//! - `::oid`, `::regtype` ...: object identifiers are BIGINT in Weir's `pg_catalog`, and the `reg*`
//!   types are oids that Postgres prints by name; here they stay numbers. `x::regclass`,
//!   `::regtype`, `::regproc`, `::regnamespace` and `::regrole` become `regclass_of(x)` and so on,
//!   which look a name up (a number stays itself); `x::regclass::text` (any reg* type cast to a
//!   text type) becomes `regclass_name(regclass_of(x))`, the object's name as Postgres prints it.
//! - `information_schema._pg_expandarray(a)` (a set of `(x, n)` records: element and subscript)
//!   becomes `unnest(pg_expandarray(a))`, a struct per element, and `(expr).field` becomes
//!   `get_field(expr, 'field')`; `generate_subscripts(a, d)` in a select list becomes
//!   `unnest(generate_series(1, array_length(a, d)))`. Several `unnest`s in one select list run in
//!   step, as set-returning functions there do in Postgres.
//! - `x LIKE p ESCAPE '/'`: DataFusion escapes with a backslash only, so `p` becomes
//!   `like_escape(p, '/')`, the same pattern written with backslashes.
//! - `current_schema`, `current_role` without parentheses are the functions, as `current_user`,
//!   `session_user`, `user` and `current_catalog` already are to the parser.
//! - `pg_catalog.f(...)`: `pg_catalog` is always first on Postgres' search path, so a function
//!   qualified with it is the function itself (Weir registers Postgres' functions unqualified).
//! - `ARRAY(SELECT e FROM ... ORDER BY o)` → `(SELECT array_agg(e ORDER BY o) FROM ...)`. One
//!   difference remains: no rows give NULL rather than an empty array.
//! - `FROM generate_series(...) s`: a set-returning function of a base type names its one column
//!   after the alias, so `s` is also the column. `FROM string_to_array(...) s` (a function of one
//!   value, as Grafana uses it) becomes the one-row table `(SELECT string_to_array(...) AS s) s`.
//! - `FROM pg_type`: `pg_catalog` is searched before the user's schema, so an unqualified name of
//!   one of its relations is that relation (drivers look up `pg_type` unqualified).
//! - `SELECT a, NULL, NULL`: Postgres allows one expression twice in a select list, DataFusion
//!   wants distinct names, so a repeat gets the name with `_2`, `_3`, ... appended.

use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, ArrayElemTypeDef, BinaryOperator, DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, ObjectName, ObjectNamePart, OrderByKind, Query, Select, SelectItem,
    SetExpr, Statement, TableAliasColumnDef, TableFactor, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::{Error, Result};

/// Rewrites the Postgres-only spellings in `statement` in place.
/// Select items are named first (`postgres_column_names::name_select_items`), so an item keeps the
/// name of what the client wrote.
pub fn rewrite_postgres_syntax(statement: &mut Statement) -> Result<()> {
    super::postgres_column_names::name_select_items(statement);
    rewrite_spellings(statement)
}

fn rewrite_spellings(statement: &mut Statement) -> Result<()> {
    match statement.visit(&mut PostgresSyntax) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

struct PostgresSyntax;

impl VisitorMut for PostgresSyntax {
    type Break = Error;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Error> {
        if let TableFactor::Table {
            name, args: None, alias, ..
        } = factor
            && let [ObjectNamePart::Identifier(schema), ObjectNamePart::Identifier(view)] = name.0.as_slice()
            && schema.value.eq_ignore_ascii_case("information_schema")
            && let Some(view) = INFORMATION_SCHEMA_VIEWS.iter().find(|v| view.value.eq_ignore_ascii_case(v))
        {
            *name = ObjectName::from(vec![
                Ident::new("pg_catalog"),
                Ident::new(format!("{INFORMATION_SCHEMA_PREFIX}{view}")),
            ]);
            // Columns qualified with the view's name still name its columns.
            if alias.is_none() {
                *alias = Some(sqlparser::ast::TableAlias {
                    explicit: true,
                    name: Ident::new(*view),
                    columns: Vec::new(),
                    at: None,
                });
            }
        }
        if let TableFactor::Table { name, args: None, .. } = factor
            && let [ObjectNamePart::Identifier(relation)] = name.0.as_slice()
            && PG_CATALOG_RELATIONS.contains(&relation.value.to_ascii_lowercase().as_str())
        {
            name.0.insert(0, ObjectNamePart::Identifier(Ident::new("pg_catalog")));
        }
        if let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } = factor
            && is_named(name, "string_to_array")
        {
            // A function of one value in FROM is a one-row table whose column is named as the table.
            let column = alias.as_ref().map_or_else(|| Ident::new("string_to_array"), |a| a.name.clone());
            let arguments: Vec<String> = args.args.iter().map(ToString::to_string).collect();
            let call = format!("SELECT string_to_array({}) AS {column}", arguments.join(", "));
            match Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&call)
                .and_then(|mut p| p.parse_query())
            {
                Ok(query) => {
                    *factor = TableFactor::Derived {
                        lateral: false,
                        subquery: query,
                        alias: Some(alias.clone().unwrap_or_else(|| sqlparser::ast::TableAlias {
                            explicit: true,
                            name: column,
                            columns: Vec::new(),
                            at: None,
                        })),
                        sample: None,
                    };
                    return ControlFlow::Continue(());
                }
                Err(e) => return ControlFlow::Break(Error::internal(format!("string_to_array in FROM: {e}"))),
            }
        }
        if let TableFactor::Table {
            name,
            alias,
            args: Some(_),
            ..
        } = factor
        {
            strip_pg_catalog(name);
            let single_column = name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .is_some_and(|f| SINGLE_COLUMN_SET_FUNCTIONS.contains(&f.value.to_ascii_lowercase().as_str()));
            if let Some(alias) = alias
                && single_column
                && alias.columns.is_empty()
            {
                alias.columns.push(TableAliasColumnDef::from_name(alias.name.value.clone()));
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, select: &mut Select) -> ControlFlow<Error> {
        let mut seen: Vec<(Expr, usize)> = Vec::new();
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(expr) = item {
                match seen.iter_mut().find(|(e, _)| e == expr) {
                    Some((_, count)) => {
                        *count += 1;
                        let alias = Ident::with_quote('"', format!("{expr}_{count}"));
                        *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias };
                    }
                    None => seen.push((expr.clone(), 1)),
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
        // `x::regclass::text`: the name, decided before the inner cast becomes an oid lookup.
        if let Expr::Cast {
            data_type, expr: inner, ..
        } = expr
            && is_text_type(data_type)
            && let Expr::Cast {
                data_type: reg_type,
                expr: object,
                ..
            } = unnested(inner)
            && let Some(kind) = reg_kind(reg_type)
        {
            let object = std::mem::replace(object.as_mut(), Expr::value(Value::Null));
            let oid = function_call(&format!("{kind}{REG_LOOKUP_SUFFIX}"), vec![object], vec![]);
            *expr = function_call(&format!("{kind}{REG_NAME_SUFFIX}"), vec![oid], vec![]);
        } else if let Expr::Cast {
            data_type, expr: inner, ..
        } = expr
            && is_text_type(data_type)
            && let Expr::Function(function) = unnested(inner)
            && (is_named(&function.name, "pg_typeof") || is_named(&function.name, "pg_catalog.pg_typeof"))
        {
            // `pg_typeof(x)` is a regtype too.
            let call = std::mem::replace(unnested(inner), Expr::value(Value::Null));
            *expr = function_call(&format!("regtype{REG_NAME_SUFFIX}"), vec![call], vec![]);
        } else if let Expr::Cast {
            data_type, expr: inner, ..
        } = expr
            && array_element(data_type).is_some_and(is_text_type)
            && reg_arrays_to_names(unnested(inner))
        {
            // `x::regtype[]::text[]`: the names already are text.
            *expr = std::mem::replace(unnested(inner), Expr::value(Value::Null));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
        let rewritten = match expr {
            Expr::Function(function) => {
                if is_expandarray(&function.name) {
                    function.name = ObjectName::from(vec![Ident::new(EXPANDARRAY)]);
                    let elements = std::mem::replace(expr, Expr::value(Value::Null));
                    *expr = function_call("unnest", vec![elements], vec![]);
                    return ControlFlow::Continue(());
                }
                strip_pg_catalog(&mut function.name);
                if is_named(&function.name, "regexp_split_to_table") {
                    function.name = ObjectName::from(vec![Ident::new(REGEXP_SPLIT_TO_ARRAY)]);
                    let split = std::mem::replace(expr, Expr::value(Value::Null));
                    *expr = function_call("unnest", vec![split], vec![]);
                    return ControlFlow::Continue(());
                }
                match &mut function.args {
                    FunctionArguments::Subquery(query) if is_named(&function.name, "array") => {
                        match array_subquery(std::mem::replace(query, Box::new(empty_query()))) {
                            Ok(aggregated) => Some(aggregated),
                            Err(e) => return ControlFlow::Break(e),
                        }
                    }
                    FunctionArguments::List(list) if is_named(&function.name, "generate_subscripts") => match generate_subscripts(list) {
                        Some(subscripts) => Some(subscripts),
                        None => {
                            return ControlFlow::Break(Error::unsupported("generate_subscripts takes an array and a dimension"));
                        }
                    },
                    _ => None,
                }
            }
            Expr::Identifier(ident)
                if ident.quote_style.is_none()
                    && ["current_schema", "current_role"].contains(&ident.value.to_ascii_lowercase().as_str()) =>
            {
                Some(Expr::Function(Function {
                    name: ObjectName::from(vec![Ident::new(ident.value.to_ascii_lowercase())]),
                    uses_odbc_syntax: false,
                    parameters: FunctionArguments::None,
                    args: FunctionArguments::None,
                    filter: None,
                    null_treatment: None,
                    over: None,
                    within_group: Vec::new(),
                }))
            }
            Expr::CompoundFieldAccess { root, access_chain } if matches!(root.as_ref(), Expr::Nested(_)) => {
                // `(record).field`: the leading field accesses become `get_field` calls.
                let mut value = std::mem::replace(root.as_mut(), Expr::value(Value::Null));
                let mut rest = std::mem::take(access_chain).into_iter().peekable();
                while let Some(AccessExpr::Dot(Expr::Identifier(field))) = rest.peek() {
                    let name = match field.quote_style {
                        Some(_) => field.value.clone(),
                        None => field.value.to_ascii_lowercase(),
                    };
                    value = function_call("get_field", vec![value, Expr::value(Value::SingleQuotedString(name))], vec![]);
                    rest.next();
                }
                let rest: Vec<AccessExpr> = rest.collect();
                Some(match rest.is_empty() {
                    true => value,
                    false => Expr::CompoundFieldAccess {
                        root: Box::new(Expr::Nested(Box::new(value))),
                        access_chain: rest,
                    },
                })
            }
            Expr::Like { pattern, escape_char, .. } | Expr::ILike { pattern, escape_char, .. } => {
                if let Some(escape) = escape_char.take() {
                    match &escape.value {
                        Value::SingleQuotedString(c) if c == "\\" => {}
                        Value::SingleQuotedString(c) => {
                            let original = std::mem::replace(pattern.as_mut(), Expr::value(Value::Null));
                            **pattern = function_call(
                                LIKE_ESCAPE,
                                vec![original, Expr::value(Value::SingleQuotedString(c.clone()))],
                                vec![],
                            );
                        }
                        other => {
                            return ControlFlow::Break(Error::unsupported(format!("LIKE ... ESCAPE {other} is not supported")));
                        }
                    }
                }
                None
            }
            Expr::Collate { expr: inner, collation } => match is_bytewise_collation(collation) {
                true => Some(std::mem::replace(inner.as_mut(), Expr::value(Value::Null))),
                false => {
                    return ControlFlow::Break(Error::unsupported(format!(
                        "collation {collation} is not supported; Weir compares strings byte by byte (COLLATE \"C\")"
                    )));
                }
            },
            Expr::BinaryOp { op, .. } => {
                if let BinaryOperator::PGCustomBinaryOperator(path) = op {
                    match builtin_operator(path) {
                        Some(builtin) => *op = builtin,
                        None => {
                            return ControlFlow::Break(Error::unsupported(format!("operator {op} is not supported")));
                        }
                    }
                }
                None
            }
            // `x = ANY('{a,b}')`: an untyped array literal is an array of its elements.
            Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } => {
                if let Expr::Value(value) = unnested(right)
                    && let Value::SingleQuotedString(text) = &value.value
                    && let Ok(elements) = super::postgres_arrays::parse_array_text(text)
                {
                    **right = Expr::Array(sqlparser::ast::Array {
                        elem: elements
                            .into_iter()
                            .map(|e| Expr::value(e.map_or(Value::Null, Value::SingleQuotedString)))
                            .collect(),
                        named: true,
                    });
                }
                None
            }
            // A name becomes an oid by lookup (the engine registers the functions).
            Expr::Cast {
                data_type, expr: inner, ..
            } if reg_kind(data_type).is_some() => {
                let kind = reg_kind(data_type).unwrap_or("regclass");
                Some(function_call(
                    &format!("{kind}{REG_LOOKUP_SUFFIX}"),
                    vec![std::mem::replace(inner.as_mut(), Expr::value(Value::Null))],
                    vec![],
                ))
            }
            Expr::Cast {
                data_type, expr: inner, ..
            } => {
                let parameter = matches!(inner.as_ref(), Expr::Value(v) if matches!(v.value, Value::Placeholder(_)));
                if let Some(builtin) = builtin_type(data_type) {
                    *data_type = match parameter {
                        // `$1::oid`, `$1::oid[]`: the parameter is announced as oid (an unsigned
                        // 32-bit number), which drivers know without asking: asyncpg looks a type
                        // up with `$1::oid[]`, so an int8[] there would send it looking again.
                        true => oid_to_unsigned(builtin),
                        false => builtin,
                    };
                }
                None
            }
            _ => None,
        };
        if let Some(rewritten) = rewritten {
            *expr = rewritten;
        }
        ControlFlow::Continue(())
    }
}

/// The relations of Weir's `pg_catalog` (engine::system_tables::pg_catalog registers them; a test
/// there checks the two lists agree).
pub const PG_CATALOG_RELATIONS: [&str; 38] = [
    "pg_am",
    "pg_attrdef",
    "pg_attribute",
    "pg_auth_members",
    "pg_class",
    "pg_collation",
    "pg_constraint",
    "pg_database",
    "pg_depend",
    "pg_description",
    "pg_enum",
    "pg_extension",
    "pg_foreign_data_wrapper",
    "pg_foreign_server",
    "pg_foreign_table",
    "pg_index",
    "pg_inherits",
    "pg_language",
    "pg_matviews",
    "pg_namespace",
    "pg_opclass",
    "pg_policy",
    "pg_proc",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_range",
    "pg_rewrite",
    "pg_roles",
    "pg_sequence",
    "pg_settings",
    "pg_stat_user_tables",
    "pg_statistic_ext",
    "pg_tables",
    "pg_tablespace",
    "pg_trigger",
    "pg_type",
    "pg_views",
];

/// The views of `information_schema` Weir answers itself, as Postgres does: `information_schema.<name>`
/// is `pg_catalog.information_schema_<name>` (DataFusion keeps the `information_schema` schema to
/// itself; its other views stay DataFusion's).
pub const INFORMATION_SCHEMA_VIEWS: [&str; 6] = ["columns", "key_column_usage", "schemata", "table_constraints", "tables", "views"];
pub const INFORMATION_SCHEMA_PREFIX: &str = "information_schema_";

/// Set-returning functions of a base type: in `FROM f(...) AS s`, Postgres names their column `s`.
const SINGLE_COLUMN_SET_FUNCTIONS: [&str; 5] = [
    "generate_series",
    "unnest",
    "pg_partition_ancestors",
    "regexp_split_to_table",
    "generate_subscripts",
];

/// `pg_catalog.f` → `f`.
fn strip_pg_catalog(name: &mut ObjectName) {
    let qualified = matches!(name.0.as_slice(), [ObjectNamePart::Identifier(schema), _] if schema.value.eq_ignore_ascii_case("pg_catalog"));
    if qualified {
        name.0.remove(0);
    }
}

fn is_named(name: &ObjectName, function: &str) -> bool {
    matches!(name.0.as_slice(), [ObjectNamePart::Identifier(f)] if f.value.eq_ignore_ascii_case(function) && f.quote_style.is_none())
}

fn empty_query() -> Query {
    Query {
        with: None,
        body: Box::new(SetExpr::Values(sqlparser::ast::Values {
            explicit_row: false,
            value_keyword: false,
            rows: Vec::new(),
        })),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: Vec::new(),
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: Vec::new(),
    }
}

fn function_call(name: &str, args: Vec<Expr>, clauses: Vec<FunctionArgumentClause>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect(),
            clauses,
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// `ARRAY(SELECT e FROM ... WHERE ... ORDER BY o)` → `(SELECT array_agg(e ORDER BY o) FROM ... WHERE ...)`:
/// the aggregate runs in the subquery itself, so a correlated subquery stays correlated the same way.
/// Any other query shape is aggregated from outside: `(SELECT array_agg(v) FROM (query) AS a(v))`.
fn array_subquery(mut query: Box<Query>) -> Result<Expr> {
    let simple = query.with.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && match query.body.as_ref() {
            SetExpr::Select(select) => {
                select.projection.len() == 1
                    && matches!(select.projection[0], SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. })
                    && select.distinct.is_none()
                    && select.having.is_none()
                    && matches!(&select.group_by, GroupByExpr::Expressions(exprs, _) if exprs.is_empty())
            }
            _ => false,
        };
    if simple {
        let order_by = query.order_by.take();
        if let SetExpr::Select(select) = query.body.as_mut() {
            let (element, alias) = match select.projection.pop() {
                Some(SelectItem::UnnamedExpr(e)) => (e, None),
                Some(SelectItem::ExprWithAlias { expr, alias }) => (expr, Some(alias)),
                _ => return Err(Error::internal("ARRAY(subquery) lost its projection")),
            };
            let mut clauses = Vec::new();
            if let Some(order_by) = order_by
                && let OrderByKind::Expressions(mut keys) = order_by.kind
            {
                // `ORDER BY 1` and `ORDER BY alias` name the projected element.
                for key in &mut keys {
                    let names_element = match &key.expr {
                        Expr::Value(v) => matches!(&v.value, Value::Number(n, _) if n == "1"),
                        Expr::Identifier(ident) => alias.as_ref().is_some_and(|a| a.value == ident.value),
                        _ => false,
                    };
                    if names_element {
                        key.expr = element.clone();
                    }
                }
                clauses.push(FunctionArgumentClause::OrderBy(keys));
            }
            select.projection = vec![SelectItem::UnnamedExpr(function_call("array_agg", vec![element], clauses))];
        }
        return Ok(Expr::Subquery(query));
    }
    let element = Ident::new("element");
    let outer = format!("SELECT array_agg({element}) FROM (SELECT 1) AS array_elements({element})");
    match Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&outer)
        .and_then(|mut p| p.parse_query())
    {
        Ok(mut aggregated) => {
            if let SetExpr::Select(select) = aggregated.body.as_mut()
                && let Some(from) = select.from.first_mut()
                && let TableFactor::Derived { subquery, .. } = &mut from.relation
            {
                *subquery = query;
            }
            Ok(Expr::Subquery(aggregated))
        }
        Err(e) => Err(Error::internal(format!("ARRAY(subquery) template: {e}"))),
    }
}

/// The unqualified, lower-cased parts of a name, with a leading `pg_catalog` schema removed.
fn catalog_name(parts: impl Iterator<Item = String>) -> Option<String> {
    let parts: Vec<String> = parts.collect();
    match parts.as_slice() {
        [name] => Some(name.clone()),
        [schema, name] if schema.eq_ignore_ascii_case("pg_catalog") => Some(name.clone()),
        _ => None,
    }
}

fn object_name(name: &ObjectName) -> Option<String> {
    let mut parts = Vec::new();
    for part in &name.0 {
        parts.push(part.as_ident()?.value.clone());
    }
    catalog_name(parts.into_iter())
}

/// Collations that order strings by their bytes, as Weir does: `default` (this database's), `C`, `POSIX`.
fn is_bytewise_collation(collation: &ObjectName) -> bool {
    object_name(collation).is_some_and(|name| ["default", "c", "posix", "ucs_basic"].contains(&name.to_ascii_lowercase().as_str()))
}

/// `OPERATOR(pg_catalog.~)` → `~`: the built-in operators a qualified spelling may name.
fn builtin_operator(path: &[String]) -> Option<BinaryOperator> {
    let symbol = catalog_name(path.iter().cloned())?;
    Some(match symbol.as_str() {
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "+" => BinaryOperator::Plus,
        "-" => BinaryOperator::Minus,
        "*" => BinaryOperator::Multiply,
        "/" => BinaryOperator::Divide,
        "%" => BinaryOperator::Modulo,
        "||" => BinaryOperator::StringConcat,
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "~~" => BinaryOperator::PGLikeMatch,
        "~~*" => BinaryOperator::PGILikeMatch,
        "!~~" => BinaryOperator::PGNotLikeMatch,
        "!~~*" => BinaryOperator::PGNotILikeMatch,
        _ => return None,
    })
}

/// The function a `::regclass` cast becomes: a relation's oid from its name (or the oid given).
pub const REGCLASS_CAST: &str = "regclass_of";
/// `x::regtype` becomes `regtype_of(x)` (`REG_LOOKUP_SUFFIX`), `x::regtype::text` becomes
/// `regtype_name(regtype_of(x))` (`REG_NAME_SUFFIX`); likewise for the other `REG_TYPES`.
pub const REG_LOOKUP_SUFFIX: &str = "_of";
pub const REG_NAME_SUFFIX: &str = "_name";
/// `x::regtype[]::text[]` becomes `regtype_names(x)`: the names of an array of oids.
pub const REG_NAMES_SUFFIX: &str = "_names";
/// The `reg*` types whose names are looked up (`regprocedure` reads as `regproc`: Weir's
/// functions are not overloaded in `pg_proc`).
pub const REG_TYPES: [&str; 5] = ["regclass", "regtype", "regproc", "regnamespace", "regrole"];
/// `information_schema._pg_expandarray(a)` becomes `unnest(pg_expandarray(a))`.
pub const EXPANDARRAY: &str = "pg_expandarray";
/// `regexp_split_to_table(s, p)` in a select list becomes `unnest(regexp_split_to_array(s, p))`.
pub const REGEXP_SPLIT_TO_ARRAY: &str = "regexp_split_to_array";
/// `p ESCAPE 'c'` becomes `like_escape(p, 'c')`: the pattern with backslash escapes.
pub const LIKE_ESCAPE: &str = "like_escape";

/// Which lookup a `reg*` type is, if it is one (`regclass`, `regtype`, ...).
fn reg_kind(data_type: &DataType) -> Option<&'static str> {
    let name = match data_type {
        DataType::Regclass => return Some("regclass"),
        DataType::Custom(name, modifiers) if modifiers.is_empty() => object_name(name)?.to_ascii_lowercase(),
        _ => return None,
    };
    let name = if name == "regprocedure" { "regproc".to_string() } else { name };
    REG_TYPES.iter().find(|t| **t == name).copied()
}

/// `x::regtype[]` (or a COALESCE of such casts, as pgcli writes it) as the objects' names,
/// `regtype_names(x)`; false, with `expr` unchanged, for anything else.
fn reg_arrays_to_names(expr: &mut Expr) -> bool {
    match expr {
        Expr::Cast {
            data_type, expr: objects, ..
        } => match array_element(data_type).and_then(reg_kind) {
            Some(kind) => {
                let objects = std::mem::replace(objects.as_mut(), Expr::value(Value::Null));
                *expr = function_call(&format!("{kind}{REG_NAMES_SUFFIX}"), vec![objects], vec![]);
                true
            }
            None => false,
        },
        Expr::Function(function) if is_named(&function.name, "coalesce") => {
            let FunctionArguments::List(list) = &mut function.args else {
                return false;
            };
            let convertible = list.args.iter().all(|arg| {
                matches!(arg, FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Cast { data_type, .. }))
                    if array_element(data_type).and_then(reg_kind).is_some())
            });
            if !convertible {
                return false;
            }
            for arg in &mut list.args {
                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg {
                    reg_arrays_to_names(e);
                }
            }
            true
        }
        Expr::Nested(inner) => reg_arrays_to_names(inner),
        _ => false,
    }
}

/// The element type of an array type (`regtype[]`, `text[]`).
fn array_element(data_type: &DataType) -> Option<&DataType> {
    match data_type {
        DataType::Array(
            ArrayElemTypeDef::SquareBracket(element, _) | ArrayElemTypeDef::AngleBracket(element) | ArrayElemTypeDef::Parenthesis(element),
        ) => Some(element),
        _ => None,
    }
}

/// Types whose value is a reg* object's name when cast from it: `text`, `varchar`, `name`.
fn is_text_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Text | DataType::Varchar(None) | DataType::CharacterVarying(None) | DataType::String(None) => true,
        DataType::Custom(name, modifiers) if modifiers.is_empty() => {
            object_name(name).is_some_and(|n| ["text", "name", "varchar"].contains(&n.to_ascii_lowercase().as_str()))
        }
        _ => false,
    }
}

/// `expr` without the parentheses around it.
fn unnested(expr: &mut Expr) -> &mut Expr {
    match expr {
        Expr::Nested(inner) => unnested(inner),
        other => other,
    }
}

/// `information_schema._pg_expandarray`, as pgjdbc and Metabase spell it.
fn is_expandarray(name: &ObjectName) -> bool {
    matches!(name.0.as_slice(), [ObjectNamePart::Identifier(schema), ObjectNamePart::Identifier(f)]
        if schema.value.eq_ignore_ascii_case("information_schema") && f.value.eq_ignore_ascii_case("_pg_expandarray"))
}

/// `generate_subscripts(a, d)` → `unnest(generate_series(1, CAST(array_length(a, d) AS BIGINT)))`:
/// Weir's arrays start at 1, so the subscripts of dimension `d` are 1 up to its length (none for
/// an empty or NULL array, or a dimension the array does not have).
fn generate_subscripts(list: &FunctionArgumentList) -> Option<Expr> {
    let [
        FunctionArg::Unnamed(FunctionArgExpr::Expr(array)),
        FunctionArg::Unnamed(FunctionArgExpr::Expr(dimension)),
    ] = list.args.as_slice()
    else {
        return None;
    };
    let length = Expr::Cast {
        kind: sqlparser::ast::CastKind::Cast,
        expr: Box::new(function_call("array_length", vec![array.clone(), dimension.clone()], vec![])),
        data_type: DataType::BigInt(None),
        array: false,
        format: None,
    };
    let subscripts = function_call(
        "generate_series",
        vec![Expr::value(Value::Number("1".into(), false)), length],
        vec![],
    );
    Some(function_call("unnest", vec![subscripts], vec![]))
}

/// Object identifier types: Weir's `pg_catalog` stores oids as BIGINT.
const OID_TYPES: [&str; 13] = [
    "oid",
    "regclass",
    "regtype",
    "regproc",
    "regprocedure",
    "regoper",
    "regoperator",
    "regnamespace",
    "regrole",
    "regconfig",
    "regdictionary",
    "regcollation",
    "xid",
];

/// An oid type's BIGINT (what `builtin_type` makes of it) as `INT UNSIGNED`, which Weir sends as
/// Postgres' `oid`; arrays likewise; other types unchanged.
fn oid_to_unsigned(data_type: DataType) -> DataType {
    match data_type {
        DataType::BigInt(None) => DataType::IntUnsigned(None),
        DataType::Array(ArrayElemTypeDef::SquareBracket(element, size)) => {
            DataType::Array(ArrayElemTypeDef::SquareBracket(Box::new(oid_to_unsigned(*element)), size))
        }
        other => other,
    }
}

/// The type a Postgres catalog type name stands for, or `None` when `data_type` needs no change.
fn builtin_type(data_type: &DataType) -> Option<DataType> {
    let name = match data_type {
        // `x::pg_catalog.int2[]`: the element type.
        DataType::Array(ArrayElemTypeDef::SquareBracket(element, size)) => {
            return builtin_type(element).map(|e| DataType::Array(ArrayElemTypeDef::SquareBracket(Box::new(e), *size)));
        }
        DataType::Regclass => "regclass".to_string(),
        DataType::Custom(name, modifiers) if modifiers.is_empty() => object_name(name)?,
        _ => return None,
    };
    let lower = name.to_ascii_lowercase();
    if OID_TYPES.contains(&lower.as_str()) {
        return Some(DataType::BigInt(None));
    }
    // `name` (identifiers), `"char"` (one byte) and `bpchar` are text to Weir.
    if ["name", "char", "bpchar"].contains(&lower.as_str()) {
        return Some(DataType::Text);
    }
    // Any other built-in (`pg_catalog.int8`, `pg_catalog.text`): the type as written without its schema.
    match Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&lower)
        .and_then(|mut parser| parser.parse_data_type())
    {
        Ok(DataType::Custom(..)) | Err(_) => None,
        Ok(builtin) => Some(builtin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;

    fn rewritten(sql: &str) -> Result<String> {
        let mut statement = Parser::new(&GenericDialect {}).try_with_sql(sql)?.parse_statement()?;
        rewrite_spellings(&mut statement)?;
        Ok(statement.to_string())
    }

    #[test]
    fn psql_catalog_spellings_become_plain_sql() {
        assert_eq!(
            rewritten("SELECT c.oid FROM pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default").unwrap(),
            "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname ~ '^(t)$'"
        );
        // pg_catalog comes first on the search path; other names stay as written.
        assert_eq!(
            rewritten("SELECT t.oid FROM PG_TYPE t JOIN public.pg_type p ON true JOIN my_pg_type m ON true").unwrap(),
            "SELECT t.oid FROM pg_catalog.PG_TYPE t JOIN public.pg_type p ON true JOIN my_pg_type m ON true"
        );
        assert_eq!(
            rewritten("SELECT x::pg_catalog.regtype::pg_catalog.text, '1'::oid, y COLLATE \"C\", z::pg_catalog.int2[]").unwrap(),
            "SELECT regtype_name(regtype_of(x)), '1'::BIGINT, y, z::INT2[]"
        );
        assert_eq!(
            rewritten("SELECT COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::text[], a::regtype[]::text[]").unwrap(),
            "SELECT COALESCE(regtype_names(proallargtypes), regtype_names(proargtypes)), regtype_names(a)"
        );
        assert_eq!(
            rewritten("SELECT pg_catalog.regexp_split_to_table(prosrc, '\\W+') AS word FROM p").unwrap(),
            "SELECT unnest(regexp_split_to_array(prosrc, '\\W+')) AS word FROM p"
        );
        // A parameter cast to oid is announced as oid; `::bigint` stays itself.
        assert_eq!(
            rewritten("SELECT 1 WHERE t.oid = ANY($1::oid[]) AND c = $2::oid AND d = $3::bigint").unwrap(),
            "SELECT 1 WHERE t.oid = ANY($1::INT UNSIGNED[]) AND c = $2::INT UNSIGNED AND d = $3::BIGINT"
        );
        assert_eq!(
            rewritten("SELECT pg_catalog.format_type(t, NULL), x FROM pg_catalog.generate_series(0, 3) s").unwrap(),
            "SELECT format_type(t, NULL), x FROM generate_series(0, 3) s (s)"
        );
    }

    #[test]
    fn untyped_array_literals_compared_with_any_are_arrays() {
        assert_eq!(
            rewritten(r#"SELECT 1 WHERE c.relkind = ANY ('{r,p,""}') AND x <> ALL('{"a \"b\"", NULL, c d}')"#).unwrap(),
            r#"SELECT 1 WHERE c.relkind = ANY(ARRAY['r', 'p', '']) AND x <> ALL(ARRAY['a "b"', NULL, 'c d'])"#
        );
        // Not an array literal, or a nested one: left as written.
        assert_eq!(
            rewritten("SELECT 1 WHERE x = ANY('{{1},{2}}')").unwrap(),
            "SELECT 1 WHERE x = ANY('{{1},{2}}')"
        );
        assert_eq!(
            rewritten("SELECT 1 WHERE x = ANY('{}')").unwrap(),
            "SELECT 1 WHERE x = ANY(ARRAY[])"
        );
    }

    #[test]
    fn repeated_select_items_get_distinct_names() {
        assert_eq!(
            rewritten("SELECT a, NULL, NULL, NULL FROM t").unwrap(),
            "SELECT a, NULL, NULL AS \"NULL_2\", NULL AS \"NULL_3\" FROM t"
        );
    }

    #[test]
    fn array_subqueries_aggregate() {
        assert_eq!(
            rewritten("SELECT array_to_string(ARRAY(SELECT rolname FROM r WHERE oid = ANY(p.roles) ORDER BY 1), ',') FROM p").unwrap(),
            "SELECT array_to_string((SELECT array_agg(rolname ORDER BY rolname) FROM r WHERE oid = ANY(p.roles)), ',') FROM p"
        );
        assert_eq!(
            rewritten("SELECT ARRAY(SELECT 1 UNION SELECT 2)").unwrap(),
            "SELECT (SELECT array_agg(element) FROM (SELECT 1 UNION SELECT 2) AS array_elements (element))"
        );
    }

    #[test]
    fn client_spellings_of_records_subscripts_and_reg_names() {
        assert_eq!(
            rewritten("SELECT (information_schema._pg_expandarray(i.indkey)).n, (r.keys).x, generate_subscripts(a, 1) FROM i").unwrap(),
            "SELECT get_field((unnest(pg_expandarray(i.indkey))), 'n'), get_field((r.keys), 'x'), unnest(generate_series(1, CAST(array_length(a, 1) AS BIGINT))) FROM i"
        );
        assert_eq!(
            rewritten("SELECT CAST(CAST(attrelid AS REGCLASS) AS TEXT), t::regtype::text, 'int8'::regtype, current_schema, current_role")
                .unwrap(),
            "SELECT regclass_name(regclass_of(attrelid)), regtype_name(regtype_of(t)), regtype_of('int8'), current_schema, current_role"
        );
        assert_eq!(
            rewritten("SELECT n FROM x WHERE n NOT LIKE 'pg/_%' ESCAPE '/' AND m LIKE 'a' ESCAPE '\\'").unwrap(),
            "SELECT n FROM x WHERE n NOT LIKE like_escape('pg/_%', '/') AND m LIKE 'a'"
        );
        assert_eq!(
            rewritten("SELECT c FROM information_schema.table_constraints, string_to_array('a,b', ',') s").unwrap(),
            "SELECT c FROM pg_catalog.information_schema_table_constraints AS table_constraints, (SELECT string_to_array('a,b', ',') AS s) s"
        );
    }

    #[test]
    fn other_collations_and_operators_are_refused() {
        assert!(rewritten("SELECT a COLLATE \"de_DE\"").unwrap_err().to_string().contains("de_DE"));
        assert!(rewritten("SELECT a OPERATOR(pg_catalog.@@) b").is_err());
    }
}
