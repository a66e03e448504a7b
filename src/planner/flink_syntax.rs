//! Flink's window table-valued-function spelling, rewritten on tokens to Weir's table functions
//! before parsing: `TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), size))` → `TUMBLE(src, ts, size)`.

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};

/// Rewrites Flink's window TVF spelling to Weir's table functions, on tokens:
/// `TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), size))` → `TUMBLE(src, ts, size)`, and
/// `TABLE src PARTITION BY k` → `src` (session windows are per GROUP BY key anyway).
/// Returns `None` when the text has no such call.
pub fn rewrite_flink_window_syntax(sql: &str) -> Result<Option<String>> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| Error::syntax(format!("syntax error: {e}")))?;
    let is_word = |t: &Token, w: &str| matches!(t, Token::Word(word) if word.value.eq_ignore_ascii_case(w));
    let significant: Vec<usize> = (0..tokens.len()).filter(|i| !matches!(tokens[*i], Token::Whitespace(_))).collect();
    let mut drop = vec![false; tokens.len()];
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
            }
            k += 1;
        }
    }
    if !found {
        return Ok(None);
    }
    Ok(Some(
        tokens.iter().zip(drop).filter(|(_, d)| !d).map(|(t, _)| t.to_string()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_flink_window_spelling() {
        let sql = "SELECT * FROM TABLE(SESSION(TABLE bids PARTITION BY bidder, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) GROUP BY 1";
        let rewritten = rewrite_flink_window_syntax(sql).unwrap().unwrap();
        let compact: String = rewritten.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(compact, "SELECT * FROM SESSION( bids , date_time, INTERVAL '10' SECOND) GROUP BY 1");
    }
}
