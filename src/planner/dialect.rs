//! `WeirDialect`: sqlparser's generic dialect with two bounds on what one statement may cost, so a
//! hostile or generated statement gets 54001 (statement too complex) instead of a hang or a stack
//! overflow.
//!
//! - **Parse work.** sqlparser backtracks: a reserved word whose special form fails to parse
//!   (`CAST(... AS BIGINTX)`) is parsed again as a function call, so an error under n nested
//!   `CAST`s costs 2^n parses — 48 levels never end. Every expression atom goes through
//!   [`Dialect::parse_prefix`], so the dialect counts atoms and stops the parse once it has done
//!   far more of them than the statement has tokens, or has started one at the same token
//!   position more than a few times. sqlparser passes `RecursionLimitExceeded` through its
//!   backtracking points, so the stop unwinds at once.
//! - **Operators.** A chain `1+1+1...` parses in a loop but builds a tree as deep as it is long,
//!   and dropping, cloning or planning such a tree recurses once per level. The dialect counts
//!   infix operators ([`Dialect::parse_infix`]) and refuses a statement with more than
//!   [`MAX_OPERATORS`]. Nesting through parentheses, function calls and subqueries is bounded by
//!   sqlparser's recursion limit.
//!
//! Everything else is the generic dialect's: the methods it overrides are forwarded, and
//! [`Dialect::dialect`] answers the generic dialect's type, so the parser's `dialect_of!` checks
//! see the generic dialect.

use std::any::TypeId;
use std::cell::{Cell, RefCell};

use sqlparser::ast::Expr;
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{Error, Result};

/// Infix operators (and set operations) one statement may hold. A chain this long is this deep.
/// DataFusion names a projected expression by printing it, recursively and without stack checks:
/// a debug build on a 16 MiB thread (what `weir` gives its runtime) plans a 2,000-term `1+1+...`
/// and overflows at 2,500; 1,000 leaves room for frames of other shapes.
pub const MAX_OPERATORS: usize = 1_000;

/// Atoms parsed per token of the statement (plus a base) before the parse counts as runaway
/// backtracking. One atom's attempt can scan many tokens (a type name's modifiers), so the budget is
/// tight: the slt corpus needs at most PARSE_WORK_PER_TOKEN / 2 (unit test below).
const PARSE_WORK_PER_TOKEN: usize = 4;
const PARSE_WORK_BASE: usize = 1_000;

/// Atoms started at one token position. An attempt at a position can scan far ahead (a type
/// name's modifiers `f(a, b, ...)`), so the total budget alone still allows quadratic work; this
/// bounds the attempts where the scans happen.
const MAX_VISITS_PER_POSITION: u8 = 8;

/// Set operations and joins build a tree one level deeper per keyword, like an operator chain (see
/// [`WeirDialect`]), but are no expressions: they are counted here, per statement.
pub fn check_set_operations(tokens: &[TokenWithSpan]) -> Result<()> {
    let mut count = 0;
    for token in tokens {
        match &token.token {
            Token::SemiColon => count = 0,
            Token::Word(w) if matches!(w.keyword, Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::JOIN) => {
                count += 1;
                if count > MAX_OPERATORS {
                    return Err(Error::too_complex());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[derive(Debug)]
pub struct WeirDialect {
    inner: GenericDialect,
    work_limit: usize,
    /// Atoms the parse may still start.
    work_left: Cell<usize>,
    /// Infix operators the parse may still read.
    operators_left: Cell<usize>,
    /// How often an atom was started at each token position.
    visits: RefCell<Vec<u8>>,
}

impl WeirDialect {
    /// A dialect for parsing a text of `tokens` tokens.
    pub fn new(tokens: usize) -> Self {
        let work_limit = tokens.saturating_mul(PARSE_WORK_PER_TOKEN).saturating_add(PARSE_WORK_BASE);
        WeirDialect {
            inner: GenericDialect {},
            work_limit,
            work_left: Cell::new(work_limit),
            operators_left: Cell::new(MAX_OPERATORS),
            visits: RefCell::new(Vec::new()),
        }
    }

    /// Prefix parses done so far.
    pub fn work_done(&self) -> usize {
        self.work_limit - self.work_left.get()
    }

    /// A new statement begins: its operators are counted afresh.
    pub fn start_statement(&self) {
        self.operators_left.set(MAX_OPERATORS);
    }

    fn spend(counter: &Cell<usize>) -> Option<Result<Expr, ParserError>> {
        match counter.get() {
            0 => Some(Err(ParserError::RecursionLimitExceeded)),
            n => {
                counter.set(n - 1);
                None
            }
        }
    }
}

macro_rules! forward {
    ($($method:ident),* $(,)?) => {
        $(fn $method(&self) -> bool { self.inner.$method() })*
    };
}

impl Dialect for WeirDialect {
    fn dialect(&self) -> TypeId {
        self.inner.dialect()
    }

    /// Flink's spelling of a map type, `MAP<STRING, BYTES>` (Kafka's `headers` metadata).
    fn supports_map_literal_with_angle_brackets(&self) -> bool {
        true
    }

    /// `t FOR SYSTEM_TIME AS OF o.proc_time`, Flink's lookup join (`planner::lookup_join`).
    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        // One position parsed again and again is backtracking gone exponential; a real statement
        // starts an atom at one position a few times at most.
        let index = parser.index();
        let mut visits = self.visits.borrow_mut();
        if visits.len() <= index {
            visits.resize(index + 1, 0);
        }
        visits[index] = visits[index].saturating_add(1);
        if visits[index] > MAX_VISITS_PER_POSITION {
            return Some(Err(ParserError::RecursionLimitExceeded));
        }
        Self::spend(&self.work_left)
    }

    fn parse_infix(&self, _parser: &mut Parser, _expr: &Expr, _precedence: u8) -> Option<Result<Expr, ParserError>> {
        Self::spend(&self.operators_left)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.inner.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.inner.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.inner.is_identifier_part(ch)
    }

    forward!(
        supports_unicode_string_literal,
        supports_partition_by_after_order_by,
        supports_array_join_syntax,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_limit_comma,
        supports_update_order_by,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_multiline_comment_hints,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
        supports_key_column_option,
        supports_comma_separated_trim,
        supports_cte_without_as,
        supports_select_item_multi_column_alias,
        supports_xml_expressions,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::tokenizer::Tokenizer;

    /// Every statement of the slt files that parses needs at most half the budget per token.
    #[test]
    fn real_statements_stay_well_within_the_parse_budget() {
        let mut worst = (0.0f64, String::new());
        let mut files = Vec::new();
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "slt" || e == "sql") {
                    out.push(path);
                }
            }
        }
        // Cargo names the checkout at run time as well: a binary built in another clone reads this one.
        let repo = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from);
        walk(&repo.join("sql"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            for sql in text.split("\n\n") {
                let sql: String = sql
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.starts_with("statement") && !l.starts_with("query"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let sql = sql.split("----").next().unwrap_or_default();
                let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
                    continue;
                };
                let count = tokens.len().max(1);
                // Measured with 16 times the budget; statements that do not parse within it (the
                // hostile ones) are left out.
                let dialect = WeirDialect::new(count * 16);
                let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
                if parser.parse_statements().is_err() {
                    continue;
                }
                let most_visits = dialect.visits.borrow().iter().copied().max().unwrap_or(0);
                assert!(
                    most_visits <= MAX_VISITS_PER_POSITION / 2,
                    "{most_visits} atoms at one position: {sql}"
                );
                let ratio = dialect.work_done() as f64 / count as f64;
                if ratio > worst.0 {
                    worst = (ratio, sql.chars().take(200).collect());
                }
            }
        }
        println!("worst: {:.2} prefix parses per token: {}", worst.0, worst.1);
        assert!(
            worst.0 <= PARSE_WORK_PER_TOKEN as f64 / 2.0,
            "{:.2} prefix parses per token: {}",
            worst.0,
            worst.1
        );
    }
}
