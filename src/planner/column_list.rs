//! The column list of CREATE SOURCE / CREATE TABLE: physical, METADATA and computed columns,
//! NOT NULL and PRIMARY KEY, and the WATERMARK clause with its interval.

use sqlparser::ast::{BinaryOperator, DateTimeField, Expr, Interval, Value, ValueWithSpan};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::statement::{normalize, parse_name, peek_word};
use crate::catalog::{ColumnDef, ColumnKind, WatermarkDef, arrow_type, check_watermark_column};
use crate::error::{Error, Result};

pub(super) struct ColumnList {
    pub columns: Vec<ColumnDef>,
    pub watermark: Option<WatermarkDef>,
    pub primary_key: Vec<String>,
}

pub(super) fn parse_column_list(parser: &mut Parser) -> Result<ColumnList> {
    parser.expect_token(&Token::LParen)?;
    let mut list = ColumnList {
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
    };
    loop {
        if peek_word(parser, 0).as_deref() == Some("WATERMARK") {
            parser.next_token();
            parser.expect_keyword(Keyword::FOR)?;
            let column = parse_name(parser)?;
            parser.expect_keyword(Keyword::AS)?;
            let expr = parser.parse_expr()?;
            list.watermark = Some(watermark_def(&column, &expr)?);
        } else if parser.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
            parser.expect_token(&Token::LParen)?;
            list.primary_key = parser
                .parse_comma_separated(|p| p.parse_identifier())?
                .iter()
                .map(normalize)
                .collect();
            parser.expect_token(&Token::RParen)?;
            let _not_enforced = parser.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]);
        } else {
            let name = parse_name(parser)?;
            if list.columns.iter().any(|c: &ColumnDef| c.name == name) {
                return Err(Error::already_exists("column", &name));
            }
            if parser.parse_keyword(Keyword::AS) {
                // Flink's computed column; its type is its expression's, found when the source is created.
                let expr = parser.parse_expr()?;
                list.columns.push(ColumnDef {
                    name,
                    sql_type: String::new(),
                    nullable: true,
                    kind: ColumnKind::Computed { expr: expr.to_string() },
                });
                if !parser.consume_token(&Token::Comma) {
                    break;
                }
                continue;
            }
            let data_type = parser.parse_data_type()?;
            arrow_type(&data_type).map_err(|e| e.context(format!("column '{name}'")))?;
            let mut nullable = true;
            let mut kind = ColumnKind::Physical;
            loop {
                if peek_word(parser, 0).as_deref() == Some("METADATA") {
                    parser.next_token();
                    let key = if parser.parse_keyword(Keyword::FROM) {
                        match parser.next_token().token {
                            Token::SingleQuotedString(key) => key,
                            other => return Err(Error::syntax(format!("expected a quoted metadata key after FROM, found {other}"))),
                        }
                    } else {
                        name.clone()
                    };
                    kind = ColumnKind::Metadata { key };
                } else if peek_word(parser, 0).as_deref() == Some("VIRTUAL") && !kind.is_physical() {
                    // Only matters for sinks (not written); a source reads every metadata column.
                    parser.next_token();
                } else if parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                    nullable = false;
                } else if parser.parse_keyword(Keyword::NULL) {
                    nullable = true;
                } else if parser.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
                    let _not_enforced = parser.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]);
                    list.primary_key = vec![name.clone()];
                } else {
                    break;
                }
            }
            if matches!(data_type, sqlparser::ast::DataType::Map(..)) && !matches!(kind, ColumnKind::Metadata { .. }) {
                return Err(Error::unsupported(format!(
                    "column '{name}': MAP columns are read only as metadata (`headers MAP<STRING, BYTES> METADATA` of a Kafka source)"
                )));
            }
            list.columns.push(ColumnDef {
                name,
                sql_type: data_type.to_string(),
                nullable,
                kind,
            });
        }
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    parser.expect_token(&Token::RParen)?;
    if let Some(w) = &list.watermark {
        // A computed column's type is known only once its expression is planned (CREATE SOURCE checks it then).
        let typed = list.columns.iter().any(|c| c.name == w.column && !c.sql_type.is_empty());
        if typed {
            check_watermark_column(&list.columns, w)?;
        } else if !list.columns.iter().any(|c| c.name == w.column) {
            return Err(Error::not_found("watermark column", &w.column));
        }
    }
    for key in &list.primary_key {
        if !list.columns.iter().any(|c| &c.name == key) {
            return Err(Error::not_found("primary key column", key));
        }
    }
    Ok(list)
}

/// `col` or `col - INTERVAL '2' SECOND`.
fn watermark_def(column: &str, expr: &Expr) -> Result<WatermarkDef> {
    let names_column = |e: &Expr| matches!(e, Expr::Identifier(i) if normalize(i) == column);
    let delay_nanos = match expr {
        e if names_column(e) => 0,
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if names_column(left) => match right.as_ref() {
            Expr::Interval(interval) => interval_nanos(interval)?,
            _ => {
                return Err(Error::unsupported(format!(
                    "WATERMARK expression `{expr}`: use `{column} - INTERVAL 'n' SECOND`"
                )));
            }
        },
        _ => {
            return Err(Error::unsupported(format!(
                "WATERMARK expression `{expr}`: use `{column} - INTERVAL 'n' SECOND`"
            )));
        }
    };
    if delay_nanos < 0 {
        return Err(Error::invalid("a WATERMARK delay must not be negative"));
    }
    Ok(WatermarkDef {
        column: column.to_string(),
        delay_nanos,
        expr: expr.to_string(),
    })
}

/// An interval literal in nanoseconds (`INTERVAL '2' SECOND`, `INTERVAL '1.5 seconds'`).
pub fn interval_nanos(interval: &Interval) -> Result<i64> {
    let text = match interval.value.as_ref() {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s) | Value::Number(s, _),
            ..
        }) => s.clone(),
        other => {
            return Err(Error::unsupported(format!(
                "interval value {other}: use a literal like INTERVAL '5' SECOND"
            )));
        }
    };
    let mut parts = text.split_whitespace();
    let amount: f64 = parts
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::invalid(format!("interval '{text}' does not start with a number")))?;
    let unit_nanos = match (&interval.leading_field, parts.next()) {
        (Some(field), None) => field_nanos(field)?,
        (None, Some(unit)) => unit_name_nanos(unit)?,
        (None, None) => {
            return Err(Error::invalid(format!(
                "interval '{text}' needs a unit, e.g. INTERVAL '{text}' SECOND"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(Error::invalid(format!("interval '{text}' has two units")));
        }
    };
    Ok((amount * unit_nanos as f64).round() as i64)
}

fn field_nanos(field: &DateTimeField) -> Result<i64> {
    unit_name_nanos(&field.to_string())
}

fn unit_name_nanos(unit: &str) -> Result<i64> {
    let unit = unit.to_ascii_lowercase();
    if unit == "ms" {
        return Ok(1_000_000);
    }
    Ok(match unit.trim_end_matches('s') {
        "nanosecond" => 1,
        "microsecond" => 1_000,
        "millisecond" => 1_000_000,
        "second" | "sec" => 1_000_000_000,
        "minute" | "min" => 60_000_000_000,
        "hour" => 3_600_000_000_000,
        "day" => 86_400_000_000_000,
        other => {
            return Err(Error::unsupported(format!(
                "interval unit '{other}': use MILLISECOND, SECOND, MINUTE, HOUR or DAY"
            )));
        }
    })
}
