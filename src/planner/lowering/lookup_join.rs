//! Lowering of a lookup join (`FOR SYSTEM_TIME AS OF`): finding the table side that
//! `planner::lookup_join` rewrote into a `weir_lookup` scan, and the stateless operator over it.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, Join, JoinType, LogicalPlan};
use datafusion::physical_expr::expressions::Column as ColumnExpr;

use super::{Lowering, Stream, physical, strip_alias};
use crate::error::{Error, Result};
use crate::graph::{ChangelogMode, EdgeKind, JoinKind, LookupJoinSpec, LookupSource, OperatorSpec, PhysicalExprRef};
use crate::planner::lookup_join::{LookupTableProvider, LookupTarget};

/// The table side of a lookup join as DataFusion planned it: the scan of `weir_lookup(t, ...)`,
/// under aliases and the filters on the table alone that it pushed below the join.
pub(super) struct LookupSide {
    target: LookupTarget,
    /// The table's columns the lookup reads (the scan's projection).
    columns: Vec<usize>,
    /// Conditions on the table's rows alone, over those columns.
    filters: Vec<PhysicalExprRef>,
    /// Which of those columns the join's right input is, in its order.
    output: Vec<usize>,
}

pub(super) fn lookup_side(plan: &LogicalPlan) -> Result<Option<LookupSide>> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => lookup_side(&alias.input),
        LogicalPlan::Filter(filter) => match lookup_side(&filter.input)? {
            Some(mut side) => {
                let predicate = physical(&filter.predicate, filter.input.schema())?;
                side.filters.push(on_scan_columns(predicate, &side.output)?);
                Ok(Some(side))
            }
            None => Ok(None),
        },
        // Pruned columns: plain column references only.
        LogicalPlan::Projection(projection) => match lookup_side(&projection.input)? {
            Some(mut side) => {
                let mut output = Vec::with_capacity(projection.expr.len());
                for expr in &projection.expr {
                    let Expr::Column(column) = strip_alias(expr) else {
                        return Err(Error::unsupported(format!(
                            "a lookup join's table side computes `{expr}`; compute it after the join"
                        )));
                    };
                    let index = projection.input.schema().index_of_column(column)?;
                    output.push(
                        *side
                            .output
                            .get(index)
                            .ok_or_else(|| Error::internal("projected column out of range"))?,
                    );
                }
                side.output = output;
                Ok(Some(side))
            }
            None => Ok(None),
        },
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source)?;
            let Some(lookup) = provider.downcast_ref::<LookupTableProvider>() else {
                return Ok(None);
            };
            if !scan.filters.is_empty() || scan.fetch.is_some() {
                return Err(Error::internal("filters were pushed into a lookup join's table"));
            }
            let columns = scan
                .projection
                .clone()
                .unwrap_or_else(|| (0..provider.schema().fields().len()).collect());
            Ok(Some(LookupSide {
                target: lookup.target.clone(),
                output: (0..columns.len()).collect(),
                columns,
                filters: Vec::new(),
            }))
        }
        _ => Ok(None),
    }
}

/// `expr`, planned over a layer of the lookup side whose column `j` is the scan's column
/// `output[j]`, made to read the scan's columns.
fn on_scan_columns(expr: PhysicalExprRef, output: &[usize]) -> Result<PhysicalExprRef> {
    let remapped = expr.transform(|e| {
        let Some(column) = e.downcast_ref::<ColumnExpr>() else {
            return Ok(Transformed::no(e));
        };
        let index = *output
            .get(column.index())
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("lookup filter column out of range".into()))?;
        Ok(Transformed::yes(Arc::new(ColumnExpr::new(column.name(), index)) as PhysicalExprRef))
    })?;
    Ok(remapped.data)
}

impl Lowering<'_> {
    /// A lookup join: the left input's rows, each joined with the rows of its key in the table
    /// as they are when it arrives. A forward edge: any subtask can read any key.
    pub(super) fn lookup_join(&mut self, join: &Join, table: LookupSide) -> Result<Stream> {
        let kind = match join.join_type {
            JoinType::Inner => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            other => {
                return Err(Error::unsupported(format!(
                    "a lookup join (FOR SYSTEM_TIME AS OF) is INNER or LEFT, not {other}"
                )));
            }
        };
        let left = self.lower(&join.left)?;
        if left.changelog != ChangelogMode::AppendOnly {
            return Err(Error::unsupported(
                "a lookup join of updating rows (an aggregate without a window, an 'upsert-kafka' source) is not supported",
            ));
        }
        // That it reads as of a processing-time column was checked on the query as written
        // (`planner::lookup_join`): the column itself is pruned by now.
        let right_schema = join.right.schema();
        // Each equality's table column, as an index into the columns the join reads.
        let mut pairs = Vec::with_capacity(join.on.len());
        for (l, r) in &join.on {
            let Expr::Column(column) = strip_alias(r) else {
                return Err(Error::unsupported(format!(
                    "a lookup join equates columns of the table with the other side, not `{r}`"
                )));
            };
            let index = right_schema.index_of_column(column)?;
            let scan_index = *table
                .output
                .get(index)
                .ok_or_else(|| Error::internal("lookup key column out of range"))?;
            pairs.push((scan_index, index, l));
        }
        if pairs.is_empty() {
            return Err(Error::unsupported(
                "a lookup join needs an equality between a column of the table and the other side",
            ));
        }
        let (source, key_order) = match &table.target {
            // Whether the source ends is the connector's to say: CREATE JOB checks it.
            LookupTarget::Source(def) => {
                let key_columns = pairs.iter().map(|(column, _, _)| *column).collect();
                let order: Vec<usize> = (0..pairs.len()).collect();
                (
                    LookupSource::Source {
                        def: def.clone(),
                        columns: table.columns.clone(),
                        key_columns,
                    },
                    order,
                )
            }
            LookupTarget::Table(def) => {
                // The equated columns must be the primary key or a leading part of it.
                let mut order = Vec::with_capacity(pairs.len());
                for key in def.primary_key.iter().take(pairs.len()) {
                    let position = pairs.iter().position(|(column, _, _)| {
                        table
                            .columns
                            .get(*column)
                            .and_then(|c| def.columns.get(*c))
                            .is_some_and(|c| &c.name == key)
                    });
                    match position {
                        Some(position) if !order.contains(&position) => order.push(position),
                        _ => break,
                    }
                }
                if order.len() != pairs.len() {
                    return Err(Error::unsupported(format!(
                        "a lookup join on result table '{}' must equate its PRIMARY KEY ({}) or a leading part of it",
                        def.name,
                        def.primary_key.join(", ")
                    )));
                }
                (
                    LookupSource::Table {
                        def: def.clone(),
                        columns: table.columns.clone(),
                        key_len: pairs.len(),
                    },
                    order,
                )
            }
        };
        // The left keys, in the table's key order, of the table's key types.
        let mut keys = Vec::with_capacity(pairs.len());
        for position in key_order {
            let (_, right_index, left_key) = pairs[position];
            let key_type = right_schema.field(right_index).data_type().clone();
            let left_key = if left_key.get_type(&left.schema)? == key_type {
                left_key.clone()
            } else {
                Expr::Cast(Cast::new(Box::new(left_key.clone()), key_type))
            };
            keys.push(physical(&left_key, &left.schema)?);
        }
        let both_sides = left.schema.join(right_schema)?;
        let filter = join.filter.as_ref().map(|f| physical(f, &both_sides)).transpose()?;
        let spec = OperatorSpec::LookupJoin(LookupJoinSpec {
            kind,
            keys,
            table: source,
            table_filters: table.filters,
            table_output: table.output,
            filter,
        });
        let op = self.add(spec, &join.schema, Some((left.op, EdgeKind::Forward)));
        Ok(Stream {
            op,
            schema: Arc::clone(&join.schema),
            window: None,
            changelog: ChangelogMode::AppendOnly,
            upsert_from: None,
            // The left columns come first, unchanged.
            rowtime: left.rowtime,
            window_end: None,
        })
    }
}
