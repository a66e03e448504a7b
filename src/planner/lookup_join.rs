//! Flink's lookup join, `JOIN t FOR SYSTEM_TIME AS OF o.proc_time AS x ON o.k = x.k`: each row
//! of `o` reads the rows of its key from `t` as they are when it arrives (a processing-time
//! temporal join). `t` is a bounded source (read whole when the job starts) or a result table
//! (read by primary key).
//!
//! DataFusion plans no `FOR SYSTEM_TIME AS OF` (it would ignore it), so a job's query is rewritten
//! before planning: the versioned table becomes the table function `weir_lookup(t)`, whose
//! provider tells the lowering which table is looked up. Anywhere else the clause is refused.

use std::ops::ControlFlow;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session as DfSession, TableFunctionArgs as DfTableFunctionArgs, TableFunctionImpl};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr as DfExpr;
use datafusion::physical_plan::ExecutionPlan;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem, SetExpr, Statement, TableAlias,
    TableFactor, TableFunctionArgs, TableVersion, Visit, VisitMut, Visitor, VisitorMut,
};

use crate::catalog::{Catalog, ColumnKind, SourceDef, TableDef, schema_of};
use crate::error::{Error, Result};
use crate::planner::flink_functions::is_proctime_call;
use crate::planner::statement::normalize;

/// The table function a versioned table becomes in a job's query.
pub const LOOKUP_FUNCTION: &str = "weir_lookup";

/// Rewrites every `JOIN t FOR SYSTEM_TIME AS OF o.p [AS x]` of a job's query into
/// `JOIN weir_lookup(t) AS x` (aliased `t` when it had no alias, so `t.col` still resolves),
/// after checking that `o.p` is a processing-time attribute of the join's other side: a column
/// computed as `PROCTIME()`, in a subquery or as a source's computed column. This is checked on
/// the query as written: once planned, nothing reads `o.p` and DataFusion prunes it.
pub fn rewrite_lookup_joins(query: &mut Query, catalog: &Catalog) -> Result<()> {
    match query.visit(&mut LookupJoins { catalog }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

struct LookupJoins<'a> {
    catalog: &'a Catalog,
}

impl VisitorMut for LookupJoins<'_> {
    type Break = Error;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Error> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        match rewrite_select(select, self.catalog) {
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => ControlFlow::Break(error),
        }
    }
}

fn rewrite_select(select: &mut Select, catalog: &Catalog) -> Result<()> {
    for from in &mut select.from {
        if version_of(&from.relation).is_some() {
            return Err(Error::unsupported(
                "the table read FOR SYSTEM_TIME AS OF must be the right side of a JOIN (Flink's lookup join)",
            ));
        }
        for i in 0..from.joins.len() {
            let Some(as_of) = version_of(&from.joins[i].relation) else {
                continue;
            };
            let as_of = as_of.clone();
            // The relations left of this join: where the AS OF column comes from.
            let left: Vec<&TableFactor> = std::iter::once(&from.relation)
                .chain(from.joins[..i].iter().map(|j| &j.relation))
                .collect();
            check_processing_time(&as_of, &left, catalog)?;
            into_lookup_function(&mut from.joins[i].relation)?;
        }
    }
    Ok(())
}

fn version_of(factor: &TableFactor) -> Option<&TableVersion> {
    match factor {
        TableFactor::Table { version, .. } => version.as_ref(),
        _ => None,
    }
}

/// `FOR SYSTEM_TIME AS OF o.p` must name a column computed as PROCTIME() among `left`.
fn check_processing_time(as_of: &TableVersion, left: &[&TableFactor], catalog: &Catalog) -> Result<()> {
    let parts: Vec<&Ident> = match as_of {
        TableVersion::ForSystemTimeAsOf(Expr::Identifier(column)) => vec![column],
        TableVersion::ForSystemTimeAsOf(Expr::CompoundIdentifier(parts)) => parts.iter().collect(),
        other => {
            return Err(Error::unsupported(format!(
                "{other} is not supported; a lookup join reads its table FOR SYSTEM_TIME AS OF a processing-time column of the other side (o.proc_time, computed as PROCTIME())"
            )));
        }
    };
    let (qualifier, column) = match parts.as_slice() {
        [column] => (None, *column),
        [qualifier, column] => (Some(normalize(qualifier)), *column),
        _ => return Err(Error::unsupported(format!("{as_of}: name the column as alias.column"))),
    };
    let column = normalize(column);
    let candidates: Vec<&&TableFactor> = left
        .iter()
        .filter(|f| qualifier.as_ref().is_none_or(|q| &factor_name(f) == q))
        .collect();
    let mut kinds = candidates.iter().filter_map(|f| time_kind(f, &column, catalog));
    match kinds.next() {
        Some(TimeKind::Processing) => Ok(()),
        Some(TimeKind::Event) => Err(Error::unsupported(format!(
            "{as_of}: an event-time temporal join (as of a WATERMARK column) is not supported; look up as of a processing-time column (computed as PROCTIME())"
        ))),
        Some(TimeKind::Other) | None => Err(Error::invalid(format!(
            "{as_of}: a lookup join reads its table as of a processing-time column, one computed as PROCTIME()"
        ))),
    }
}

/// What kind of time a column is.
enum TimeKind {
    /// Computed as PROCTIME().
    Processing,
    /// A source's WATERMARK column.
    Event,
    Other,
}

/// The name a FROM item's columns are qualified with.
fn factor_name(factor: &TableFactor) -> String {
    match factor {
        TableFactor::Table { alias: Some(alias), .. } | TableFactor::Derived { alias: Some(alias), .. } => normalize(&alias.name),
        TableFactor::Table { name, .. } => name.0.last().and_then(|p| p.as_ident()).map(normalize).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The kind of `column` of a FROM item, `None` if it has no such column (as far as can be told
/// from the query as written).
fn time_kind(factor: &TableFactor, column: &str, catalog: &Catalog) -> Option<TimeKind> {
    match factor {
        TableFactor::Table { name, args: None, .. } => {
            let table = name.0.last().and_then(|p| p.as_ident()).map(normalize)?;
            if let Some(source) = catalog.sources.get(&table) {
                let def = source.columns.iter().find(|c| c.name == column)?;
                return Some(match &def.kind {
                    ColumnKind::Computed { expr } if is_proctime_call(expr) => TimeKind::Processing,
                    _ if source.watermark.as_ref().is_some_and(|w| w.column == column) => TimeKind::Event,
                    _ => TimeKind::Other,
                });
            }
            let table = catalog.tables.get(&table)?;
            table.columns.iter().any(|c| c.name == column).then_some(TimeKind::Other)
        }
        TableFactor::Derived { subquery, .. } => {
            let SetExpr::Select(select) = subquery.body.as_ref() else {
                return None;
            };
            let inner = |column: &str| select.from.iter().find_map(|f| time_kind(&f.relation, column, catalog));
            select.projection.iter().find_map(|item| match item {
                SelectItem::ExprWithAlias { expr, alias } if normalize(alias) == column => Some(match expr {
                    Expr::Function(_) if is_proctime_call(&expr.to_string()) => TimeKind::Processing,
                    Expr::Identifier(inner_column) => inner(&normalize(inner_column)).unwrap_or(TimeKind::Other),
                    _ => TimeKind::Other,
                }),
                SelectItem::UnnamedExpr(Expr::Identifier(ident)) if normalize(ident) == column => inner(column),
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => inner(column),
                _ => None,
            })
        }
        _ => None,
    }
}

/// `t [AS x]` (its version taken) -> `weir_lookup(t) AS x`.
fn into_lookup_function(factor: &mut TableFactor) -> Result<()> {
    let TableFactor::Table {
        name,
        alias,
        args,
        version,
        ..
    } = factor
    else {
        return Err(Error::internal("a lookup join's table is not a table"));
    };
    *version = None;
    let Some(ObjectNamePart::Identifier(table)) = name.0.last().cloned() else {
        return Err(Error::invalid(format!("FOR SYSTEM_TIME AS OF needs a table name, not {name}")));
    };
    if args.is_some() {
        return Err(Error::unsupported("FOR SYSTEM_TIME AS OF applies to a table, not a table function"));
    }
    if alias.is_none() {
        *alias = Some(TableAlias {
            explicit: true,
            name: table.clone(),
            columns: Vec::new(),
            at: None,
        });
    }
    *args = Some(TableFunctionArgs {
        args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(table)))],
        settings: None,
    });
    *name = ObjectName::from(vec![Ident::new(LOOKUP_FUNCTION)]);
    Ok(())
}

/// Refuses `FOR SYSTEM_TIME AS OF` (and other table versions) outside a job: DataFusion would
/// read the table as it is now and ignore the clause.
pub fn refuse_table_versions(statement: &Statement) -> Result<()> {
    struct Versions;
    impl Visitor for Versions {
        type Break = Error;
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Error> {
            match factor {
                TableFactor::Table {
                    version: Some(version), ..
                } => ControlFlow::Break(Error::unsupported(format!(
                    "{version} is only supported in a job's lookup join (CREATE JOB ... JOIN t FOR SYSTEM_TIME AS OF o.proc_time ...)"
                ))),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    match statement.visit(&mut Versions) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

/// What a lookup join reads: a bounded source or a result table.
#[derive(Debug, Clone)]
pub enum LookupTarget {
    Source(SourceDef),
    Table(TableDef),
}

/// `weir_lookup(t)`: the table `t` with its columns, read by a lookup join.
#[derive(Debug)]
pub struct LookupTableProvider {
    pub target: LookupTarget,
    schema: SchemaRef,
}

#[derive(Debug)]
pub struct LookupFunction {
    pub catalog: Arc<RwLock<Catalog>>,
}

impl LookupFunction {
    fn plan(&self, args: &[DfExpr]) -> Result<LookupTableProvider> {
        let [DfExpr::Column(table)] = args else {
            return Err(Error::invalid(format!(
                "{LOOKUP_FUNCTION}(table) is how Weir plans FOR SYSTEM_TIME AS OF; write `JOIN t FOR SYSTEM_TIME AS OF o.proc_time`"
            )));
        };
        let catalog = self.catalog.read().map_err(|_| Error::internal("catalog lock poisoned"))?;
        let target = match (catalog.sources.get(&table.name), catalog.tables.get(&table.name)) {
            (Some(source), _) => LookupTarget::Source(source.clone()),
            (None, Some(table)) => LookupTarget::Table(table.clone()),
            (None, None) => return Err(Error::not_found("table", &table.name)),
        };
        let columns = match &target {
            LookupTarget::Source(def) => &def.columns,
            LookupTarget::Table(def) => &def.columns,
        };
        Ok(LookupTableProvider {
            schema: schema_of(columns)?,
            target,
        })
    }
}

impl TableFunctionImpl for LookupFunction {
    fn call_with_args(&self, args: DfTableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        Ok(Arc::new(self.plan(args.exprs())?))
    }
}

#[async_trait]
impl TableProvider for LookupTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Temporary
    }
    async fn scan(
        &self,
        _state: &dyn DfSession,
        _projection: Option<&Vec<usize>>,
        _filters: &[DfExpr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Err(Error::unsupported("FOR SYSTEM_TIME AS OF is only supported in a job's lookup join").into())
    }
}
