//! Flink's window table-valued-function spelling, rewritten on tokens to Weir's table functions
//! before parsing: `TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), size))` → `TUMBLE(src, ts, size)`.

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};
use crate::planner::window_function::WindowFunctionKind;

/// Rewrites Flink's window TVF spelling to Weir's table functions, on tokens:
/// `TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), size))` → `TUMBLE(src, ts, size)`. Flink's SESSION
/// forms sessions per its PARTITION BY columns (over all rows without one), unlike Weir's short
/// SESSION (per GROUP BY key), so it becomes the partitioned session function with the partition
/// columns last: `TABLE(SESSION(TABLE src PARTITION BY (a, b), DESCRIPTOR(ts), gap))` →
/// `<partitioned session>(src, ts, gap, a, b)`.
/// Returns `None` when the text has no such call.
pub fn rewrite_flink_window_syntax(sql: &str) -> Result<Option<String>> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| Error::syntax(format!("syntax error: {e}")))?;
    let is_word = |t: &Token, w: &str| matches!(t, Token::Word(word) if word.value.eq_ignore_ascii_case(w));
    let significant: Vec<usize> = (0..tokens.len()).filter(|i| !matches!(tokens[*i], Token::Whitespace(_))).collect();
    let mut drop = vec![false; tokens.len()];
    // Text that replaces a token (the SESSION name) or goes before it (partition columns).
    let mut replace: Vec<Option<String>> = vec![None; tokens.len()];
    let mut insert_before: Vec<Option<String>> = vec![None; tokens.len()];
    let mut found = false;
    for (n, &i) in significant.iter().enumerate() {
        let next = |k: usize| significant.get(n + k).map(|&j| &tokens[j]);
        let is_window_call = is_word(&tokens[i], "TABLE")
            && next(1) == Some(&Token::LParen)
            && next(2).is_some_and(|t| is_word(t, "TUMBLE") || is_word(t, "HOP") || is_word(t, "SESSION") || is_word(t, "CUMULATE"))
            && next(3) == Some(&Token::LParen);
        if !is_window_call {
            continue;
        }
        found = true;
        // Drop `TABLE (`, then walk the call, dropping the inner `TABLE`, `DESCRIPTOR(`/`)` and
        // `PARTITION BY ...` up to the next top-level comma, and the outer `)`.
        drop[i] = true;
        drop[significant[n + 1]] = true;
        let mut depth = 0i32;
        let mut k = n + 3;
        let mut descriptor_depth: Option<i32> = None;
        let mut in_partition = false;
        let session = is_word(&tokens[significant[n + 2]], "SESSION");
        if session {
            replace[significant[n + 2]] = Some(WindowFunctionKind::PartitionedSession.name().to_string());
        }
        // Flink's PARTITION BY columns, without the keywords.
        let mut partition: Vec<usize> = Vec::new();
        while k < significant.len() {
            let j = significant[k];
            match &tokens[j] {
                Token::LParen => {
                    depth += 1;
                    if k > 0 && is_word(&tokens[significant[k - 1]], "DESCRIPTOR") {
                        drop[j] = true;
                        drop[significant[k - 1]] = true;
                        descriptor_depth = Some(depth);
                    }
                }
                Token::RParen => {
                    if descriptor_depth == Some(depth) {
                        drop[j] = true;
                        descriptor_depth = None;
                    }
                    depth -= 1;
                    if depth == 0 {
                        if session && !partition.is_empty() {
                            insert_before[j] = Some(partition_list(&tokens, &partition));
                        }
                        // End of the window call; the next significant token closes `TABLE(`.
                        if let Some(&close) = significant.get(k + 1)
                            && tokens[close] == Token::RParen
                        {
                            drop[close] = true;
                        }
                        break;
                    }
                }
                Token::Comma if depth == 1 => in_partition = false,
                t if depth == 1 && is_word(t, "TABLE") => drop[j] = true,
                t if depth == 1 && is_word(t, "PARTITION") => in_partition = true,
                _ => {}
            }
            if in_partition {
                drop[j] = true;
                if !is_word(&tokens[j], "PARTITION") && !is_word(&tokens[j], "BY") {
                    partition.push(j);
                }
            }
            k += 1;
        }
    }
    if !found {
        return Ok(None);
    }
    let mut out = String::with_capacity(sql.len());
    for (i, token) in tokens.iter().enumerate() {
        if let Some(text) = &insert_before[i] {
            out.push_str(text);
        }
        match (&replace[i], drop[i]) {
            (_, true) => {}
            (Some(text), false) => out.push_str(text),
            (None, false) => out.push_str(&token.to_string()),
        }
    }
    Ok(Some(out))
}

/// `, a, b` for the partition tokens `a` or `(a, b)`: arguments after the gap.
fn partition_list(tokens: &[Token], partition: &[usize]) -> String {
    let mut inner: &[usize] = partition;
    if let (Some(first), Some(last)) = (partition.first(), partition.last())
        && tokens[*first] == Token::LParen
        && tokens[*last] == Token::RParen
    {
        inner = &partition[1..partition.len() - 1];
    }
    let mut out = String::from(", ");
    for i in inner {
        out.push_str(&tokens[*i].to_string());
        if tokens[*i] == Token::Comma {
            out.push(' ');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(sql: &str) -> String {
        let rewritten = rewrite_flink_window_syntax(sql).unwrap().unwrap();
        rewritten.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn rewrites_flink_window_spelling() {
        assert_eq!(
            compact("SELECT * FROM TABLE(HOP(TABLE bids, DESCRIPTOR(date_time), INTERVAL '1' SECOND, INTERVAL '2' SECOND))"),
            "SELECT * FROM HOP( bids, date_time, INTERVAL '1' SECOND, INTERVAL '2' SECOND)"
        );
        assert_eq!(
            compact("SELECT * FROM TABLE(SESSION(TABLE bids PARTITION BY bidder, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) GROUP BY 1"),
            "SELECT * FROM weir_partitioned_session( bids , date_time, INTERVAL '10' SECOND, bidder) GROUP BY 1"
        );
        assert_eq!(
            compact("SELECT * FROM TABLE(SESSION(TABLE bids PARTITION BY (bidder, auction), DESCRIPTOR(date_time), INTERVAL '10' SECOND))"),
            "SELECT * FROM weir_partitioned_session( bids , date_time, INTERVAL '10' SECOND, bidder, auction)"
        );
        assert_eq!(
            compact("SELECT * FROM TABLE(SESSION(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND))"),
            "SELECT * FROM weir_partitioned_session( bids, date_time, INTERVAL '10' SECOND)"
        );
    }
}
