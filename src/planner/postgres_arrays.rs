//! Postgres array literals written as text: in `roles = '{0}'` or `'{1,2}'::int2[]` Postgres reads
//! the string as an array of the other side's element type. DataFusion would compare a list with a
//! string (no common type) or wrap the whole string as one element. `ArrayLiteralText` turns such a
//! string into a list literal of the list's type: as an expression planner while SQL becomes a plan
//! (a projection's types are computed right then), and as a rewrite before the analyzer's type
//! coercion for casts and for comparisons planned without it (`IS DISTINCT FROM`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ListArray, StringArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator};

use crate::error::{Error, Result};

pub fn register(ctx: &SessionContext) -> Result<()> {
    let state = ctx.state_ref();
    let mut state = state.write();
    state.register_function_rewrite(Arc::new(ArrayLiteralText))?;
    state.register_expr_planner(Arc::new(ArrayLiteralText))?;
    Ok(())
}

/// The two sides of a comparison with a text side that is an array literal of the other side's
/// list type replaced by that list; `None` when there is no such side.
fn compared_sides(left: &Expr, right: &Expr, schema: &DFSchema) -> Option<(Expr, Expr)> {
    if let Some(list) = right.get_type(schema).ok().filter(is_list)
        && let Some(array) = text_literal(left).and_then(|t| array_literal(t, &list))
    {
        return Some((array, right.clone()));
    }
    if let Some(list) = left.get_type(schema).ok().filter(is_list)
        && let Some(array) = text_literal(right).and_then(|t| array_literal(t, &list))
    {
        return Some((left.clone(), array));
    }
    None
}

impl ExprPlanner for ArrayLiteralText {
    fn plan_binary_op(&self, expr: RawBinaryExpr, schema: &DFSchema) -> datafusion::error::Result<PlannerResult<RawBinaryExpr>> {
        use sqlparser::ast::BinaryOperator::*;
        let comparison = matches!(expr.op, Eq | NotEq | Lt | LtEq | Gt | GtEq | AtArrow | ArrowAt);
        Ok(PlannerResult::Original(
            match comparison.then(|| compared_sides(&expr.left, &expr.right, schema)).flatten() {
                Some((left, right)) => RawBinaryExpr { op: expr.op, left, right },
                None => expr,
            },
        ))
    }
}

#[derive(Debug)]
struct ArrayLiteralText;

impl FunctionRewrite for ArrayLiteralText {
    fn name(&self) -> &str {
        "weir_array_literal_text"
    }

    fn rewrite(&self, expr: Expr, schema: &DFSchema, _config: &ConfigOptions) -> datafusion::error::Result<Transformed<Expr>> {
        Ok(match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) if compares_arrays(op) => match compared_sides(&left, &right, schema) {
                Some((left, right)) => Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right)))),
                None => Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
            },
            Expr::Cast(cast) if is_list(cast.field.data_type()) => {
                match text_literal(&cast.expr).and_then(|t| array_literal(t, cast.field.data_type())) {
                    Some(array) => Transformed::yes(array),
                    None => Transformed::no(Expr::Cast(cast)),
                }
            }
            other => Transformed::no(other),
        })
    }
}

/// Operators whose sides Postgres reads as the same array type.
fn compares_arrays(op: Operator) -> bool {
    use Operator::*;
    matches!(
        op,
        Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom | IsNotDistinctFrom | AtArrow | ArrowAt
    )
}

fn is_list(data_type: &DataType) -> bool {
    matches!(data_type, DataType::List(_) | DataType::LargeList(_))
}

fn text_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => Some(s),
        _ => None,
    }
}

/// `'{a,"b c",NULL}'` as a literal of `list_type`, or `None` when the text is not a one-dimensional
/// array literal or its elements do not convert.
fn array_literal(text: &str, list_type: &DataType) -> Option<Expr> {
    let elements = parse_array_text(text).ok()?;
    let strings = StringArray::from(elements);
    let list = ListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Utf8, true)),
        OffsetBuffer::from_lengths([strings.len()]),
        Arc::new(strings),
        None,
    )
    .ok()?;
    let typed = cast(&list, list_type).ok()?;
    // A cast turns elements it cannot convert into NULLs; refuse rather than compare with those.
    let before = list.values().null_count();
    let converted = match typed.data_type() {
        DataType::List(_) => typed.as_any().downcast_ref::<ListArray>().map(|l| l.values().null_count()),
        _ => None,
    };
    if converted.is_some_and(|after| after != before) {
        return None;
    }
    ScalarValue::try_from_array(&typed, 0).ok().map(|value| Expr::Literal(value, None))
}

/// The elements of a one-dimensional Postgres array in text form (`{1,2}`, `{"a b",NULL}`).
pub(super) fn parse_array_text(text: &str) -> Result<Vec<Option<String>>> {
    let bad = || Error::invalid(format!("malformed array literal: \"{text}\""));
    let inner = text.trim().strip_prefix('{').and_then(|t| t.strip_suffix('}')).ok_or_else(bad)?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut elements = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let element = if chars.next_if_eq(&'"').is_some() {
            let mut value = String::new();
            loop {
                match chars.next().ok_or_else(bad)? {
                    '"' => break,
                    '\\' => value.push(chars.next().ok_or_else(bad)?),
                    c => value.push(c),
                }
            }
            Some(value)
        } else {
            let mut value = String::new();
            while let Some(c) = chars.next_if(|c| *c != ',') {
                if c == '{' || c == '"' {
                    // Nested arrays and stray quotes are not one-dimensional literals.
                    return Err(bad());
                }
                value.push(c);
            }
            let value = value.trim().to_string();
            (!value.eq_ignore_ascii_case("null")).then_some(value)
        };
        elements.push(element);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            None => return Ok(elements),
            Some(',') => {}
            Some(_) => return Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_dimensional_array_text() {
        assert_eq!(parse_array_text("{0}").unwrap(), vec![Some("0".to_string())]);
        assert_eq!(
            parse_array_text(r#"{ a , "b,c" ,NULL,"\"q\""}"#).unwrap(),
            vec![Some("a".into()), Some("b,c".into()), None, Some("\"q\"".into())]
        );
        assert!(parse_array_text("{}").unwrap().is_empty());
        assert!(parse_array_text("{{1,2},{3,4}}").is_err());
        assert!(parse_array_text("1,2").is_err());
    }

    #[test]
    fn text_becomes_a_list_of_the_other_sides_type() {
        let list = DataType::new_list(DataType::Int64, true);
        let Some(Expr::Literal(ScalarValue::List(array), _)) = array_literal("{0, 7}", &list) else {
            panic!("not a list literal");
        };
        assert_eq!(array.data_type(), &list);
        assert!(array_literal("{x}", &list).is_none());
    }
}
