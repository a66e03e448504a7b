//! Postgres session commands that drivers, pools and tools send on their own: run-time parameters
//! (SET, SHOW, RESET, DISCARD ALL), cursors (DECLARE, FETCH, MOVE, CLOSE), `COPY ... TO STDOUT`,
//! and LISTEN / UNLISTEN. Parsed here into Weir statements; `engine::commands::session_state` runs
//! them.

use sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, SetExpr, Statement as SqlStatement};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::postgres_settings::{PostgresSetting, known_setting};
use super::statement::{Statement, parse_name, peek_word};
use crate::error::{Error, Result};

/// `DECLARE name CURSOR FOR query`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclareCursor {
    pub name: String,
    /// WITH HOLD: the cursor outlives the transaction that declared it.
    pub hold: bool,
    pub query: Box<SqlStatement>,
}

/// `FETCH` or `MOVE`: the next `count` rows of a cursor (`None`: all that are left).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchCursor {
    pub name: String,
    pub count: Option<u64>,
    /// MOVE skips the rows instead of returning them.
    pub skip: bool,
}

/// `COPY table | (query) TO STDOUT`.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyTo {
    /// The rows: the query, or `SELECT columns FROM table`.
    pub query: Box<SqlStatement>,
    pub options: CopyOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// COPY's options, with Postgres' defaults for the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub header: bool,
    pub delimiter: char,
    pub null: String,
    pub quote: char,
    /// Columns always quoted (CSV); `*` quotes every column.
    pub force_quote: Vec<String>,
}

impl CopyOptions {
    fn new(format: CopyFormat) -> Self {
        let csv = format == CopyFormat::Csv;
        CopyOptions {
            format,
            header: false,
            delimiter: if csv { ',' } else { '\t' },
            null: if csv { String::new() } else { "\\N".to_string() },
            quote: '"',
            force_quote: Vec::new(),
        }
    }
}

/// Parses the Postgres session command at the parser's position, if the statement is one.
pub(super) fn parse_postgres_command(parser: &mut Parser) -> Result<Option<Statement>> {
    let first = peek_word(parser, 0);
    let second = peek_word(parser, 1);
    let statement = match (first.as_deref(), second.as_deref()) {
        (Some("SHOW"), Some("TRANSACTION"))
            if peek_word(parser, 2).as_deref() == Some("ISOLATION") && peek_word(parser, 3).as_deref() == Some("LEVEL") =>
        {
            skip_words(parser, 4);
            show("transaction_isolation")?
        }
        (Some("SHOW"), Some("TIME")) if peek_word(parser, 2).as_deref() == Some("ZONE") => {
            skip_words(parser, 3);
            show("TimeZone")?
        }
        (Some("SHOW"), Some(name)) if super::postgres_settings::postgres_setting(name).is_some() => {
            skip_words(parser, 2);
            show(name)?
        }
        // Transaction modes: Weir has no transactions to configure.
        (Some("SET"), Some("TRANSACTION")) => noop(parser, "SET"),
        (Some("SET"), Some("SESSION")) if peek_word(parser, 2).as_deref() == Some("CHARACTERISTICS") => noop(parser, "SET"),
        (Some("SET"), Some("SESSION" | "LOCAL")) if is_postgres_setting(parser, 2) => {
            skip_words(parser, 2);
            parse_set(parser)?
        }
        (Some("SET"), _) if is_postgres_setting(parser, 1) => {
            skip_words(parser, 1);
            parse_set(parser)?
        }
        (Some("RESET"), Some("ALL")) => {
            skip_words(parser, 2);
            Statement::ResetVariable { name: None }
        }
        (Some("RESET"), Some(_)) => {
            skip_words(parser, 1);
            Statement::ResetVariable {
                name: Some(known_setting(&parse_name(parser)?)?.name.to_string()),
            }
        }
        (Some("DISCARD"), Some("ALL")) => {
            skip_words(parser, 2);
            Statement::DiscardAll
        }
        // Weir sends no notifications; listening for them is harmless (asyncpg's pool reset
        // sends UNLISTEN *).
        (Some("LISTEN"), _) => noop(parser, "LISTEN"),
        (Some("UNLISTEN"), _) => noop(parser, "UNLISTEN"),
        (Some("DECLARE"), Some(_)) => {
            parser.next_token();
            Statement::DeclareCursor(parse_declare(parser)?)
        }
        (Some(word @ ("FETCH" | "MOVE")), _) => {
            parser.next_token();
            Statement::FetchCursor(parse_fetch(parser, word == "MOVE")?)
        }
        (Some("CLOSE"), Some("ALL")) => {
            skip_words(parser, 2);
            Statement::CloseCursor { name: None }
        }
        (Some("CLOSE"), Some(_)) => {
            parser.next_token();
            Statement::CloseCursor {
                name: Some(parse_name(parser)?),
            }
        }
        (Some("COPY"), _) => match parser.parse_statement()? {
            SqlStatement::Copy {
                source,
                to,
                target,
                options,
                legacy_options,
                ..
            } => Statement::CopyTo(copy_to(source, to, target, &options, &legacy_options)?),
            _ => return Err(Error::syntax("expected COPY")),
        },
        _ => return Ok(None),
    };
    Ok(Some(statement))
}

fn skip_words(parser: &mut Parser, n: usize) {
    for _ in 0..n {
        parser.next_token();
    }
}

/// Consumes the rest of the statement.
fn noop(parser: &mut Parser, tag: &str) -> Statement {
    while !matches!(parser.peek_token().token, Token::SemiColon | Token::EOF) {
        parser.next_token();
    }
    Statement::PostgresNoop { tag: tag.to_string() }
}

fn show(name: &str) -> Result<Statement> {
    Ok(Statement::ShowVariable {
        name: known_setting(name)?.name.to_string(),
    })
}

/// Whether the word at `n` names a Postgres parameter (`TIME ZONE` and `NAMES` included) rather
/// than a Weir job setting.
fn is_postgres_setting(parser: &Parser, n: usize) -> bool {
    match parser.peek_nth_token(n).token {
        Token::Word(w) if w.quote_style.is_none() => {
            matches!(w.value.to_ascii_uppercase().as_str(), "TIME" | "NAMES" | "ROLE" | "SESSION")
                || super::postgres_settings::postgres_setting(&w.value).is_some()
        }
        _ => false,
    }
}

/// `name {= | TO} value [, value ...] | DEFAULT`, `TIME ZONE value`, `NAMES value`.
fn parse_set(parser: &mut Parser) -> Result<Statement> {
    let word = peek_word(parser, 0).unwrap_or_default();
    let setting: &PostgresSetting = match word.as_str() {
        "TIME" if peek_word(parser, 1).as_deref() == Some("ZONE") => {
            skip_words(parser, 2);
            known_setting("TimeZone")?
        }
        "NAMES" => {
            skip_words(parser, 1);
            known_setting("client_encoding")?
        }
        // SET ROLE / SET SESSION AUTHORIZATION: Weir has one role.
        "ROLE" | "SESSION" => return Ok(noop(parser, "SET")),
        _ => {
            skip_words(parser, 1);
            if !parser.consume_token(&Token::Eq) {
                parser.expect_keyword(Keyword::TO)?;
            }
            known_setting(&word)?
        }
    };
    let mut values = Vec::new();
    while !matches!(parser.peek_token().token, Token::SemiColon | Token::EOF) {
        let token = parser.next_token();
        match token.token {
            Token::Comma => {}
            Token::SingleQuotedString(s) => values.push(s),
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("DEFAULT") && values.is_empty() => {
                return Ok(Statement::SetVariable {
                    name: setting.name.to_string(),
                    value: None,
                });
            }
            // SET TIME ZONE LOCAL is the default time zone.
            Token::Word(w) if setting.name == "TimeZone" && w.value.eq_ignore_ascii_case("LOCAL") => {
                return Ok(Statement::SetVariable {
                    name: setting.name.to_string(),
                    value: None,
                });
            }
            Token::Word(w) if w.quote_style.is_some() => values.push(w.value),
            Token::Word(w) => values.push(w.value.to_ascii_lowercase()),
            Token::Number(n, _) => values.push(n),
            Token::Minus => values.push("-".to_string()),
            other => return Err(Error::syntax(format!("syntax error at or near \"{other}\""))),
        }
    }
    // A sign belongs to the number after it.
    let mut joined: Vec<String> = Vec::new();
    for value in values {
        match joined.last_mut() {
            Some(last) if last == "-" => last.push_str(&value),
            _ => joined.push(value),
        }
    }
    if joined.is_empty() {
        return Err(Error::syntax(format!("SET {} needs a value", setting.name)));
    }
    Ok(Statement::SetVariable {
        name: setting.name.to_string(),
        value: Some(setting.normalize(&joined.join(", "))?),
    })
}

/// `name [BINARY] [ASENSITIVE | INSENSITIVE] [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`.
fn parse_declare(parser: &mut Parser) -> Result<DeclareCursor> {
    let name = parse_name(parser)?;
    let mut hold = false;
    loop {
        match peek_word(parser, 0).as_deref() {
            Some("ASENSITIVE" | "INSENSITIVE") => skip_words(parser, 1),
            Some("NO") if peek_word(parser, 1).as_deref() == Some("SCROLL") => skip_words(parser, 2),
            Some("BINARY") => return Err(Error::unsupported("BINARY cursors are not supported; FETCH returns text rows")),
            Some("SCROLL") => {
                return Err(Error::unsupported(
                    "SCROLL cursors are not supported; Weir's cursors read forward only",
                ));
            }
            Some("CURSOR") => {
                skip_words(parser, 1);
                break;
            }
            _ => {
                return Err(Error::syntax(format!(
                    "syntax error at or near \"{}\": expected CURSOR",
                    parser.peek_token()
                )));
            }
        }
    }
    match (peek_word(parser, 0).as_deref(), peek_word(parser, 1).as_deref()) {
        (Some("WITH"), Some("HOLD")) => {
            skip_words(parser, 2);
            hold = true;
        }
        (Some("WITHOUT"), Some("HOLD")) => skip_words(parser, 2),
        _ => {}
    }
    parser.expect_keyword(Keyword::FOR)?;
    let mut query = parser.parse_statement()?;
    if !matches!(query, SqlStatement::Query(_)) {
        return Err(Error::syntax("DECLARE ... CURSOR FOR needs a SELECT"));
    }
    super::postgres_syntax::rewrite_postgres_syntax(&mut query)?;
    Ok(DeclareCursor {
        name,
        hold,
        query: Box::new(query),
    })
}

/// `[NEXT | FORWARD [count | ALL] | count | ALL] [FROM | IN] name`; only forward directions, as
/// for a NO SCROLL cursor in Postgres.
fn parse_fetch(parser: &mut Parser, skip: bool) -> Result<FetchCursor> {
    let backward = || Error::user(crate::error::UserErrorKind::InvalidState, "cursor can only scan forward");
    let count_at = |parser: &mut Parser| -> Result<Option<Option<u64>>> {
        match parser.peek_token().token {
            Token::Number(n, _) => {
                parser.next_token();
                let count: i64 = n.parse().map_err(|_| Error::syntax(format!("bad row count {n}")))?;
                if count < 0 {
                    return Err(backward());
                }
                Ok(Some(Some(count as u64)))
            }
            Token::Word(w) if w.value.eq_ignore_ascii_case("ALL") => {
                parser.next_token();
                Ok(Some(None))
            }
            _ => Ok(None),
        }
    };
    let count = match peek_word(parser, 0).as_deref() {
        Some("NEXT") => {
            skip_words(parser, 1);
            Some(1)
        }
        Some("FORWARD") => {
            skip_words(parser, 1);
            count_at(parser)?.unwrap_or(Some(1))
        }
        Some("PRIOR" | "FIRST" | "LAST" | "ABSOLUTE" | "RELATIVE" | "BACKWARD") => return Err(backward()),
        _ => count_at(parser)?.unwrap_or(Some(1)),
    };
    if matches!(peek_word(parser, 0).as_deref(), Some("FROM" | "IN")) {
        skip_words(parser, 1);
    }
    Ok(FetchCursor {
        name: parse_name(parser)?,
        count,
        skip,
    })
}

fn copy_to(source: CopySource, to: bool, target: CopyTarget, options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyTo> {
    if !to {
        return Err(Error::unsupported(
            "COPY FROM is not supported: result tables are written by jobs (CREATE JOB name AS INSERT INTO ...)",
        ));
    }
    if target != CopyTarget::Stdout {
        return Err(Error::unsupported(format!(
            "COPY TO {target} is not supported; use COPY ... TO STDOUT (psql: \\copy)"
        )));
    }
    let query = match source {
        CopySource::Query(query) => *query,
        CopySource::Table { table_name, columns } => {
            let columns = if columns.is_empty() {
                "*".to_string()
            } else {
                columns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            let sql = format!("SELECT {columns} FROM {table_name}");
            match Parser::new(&sqlparser::dialect::GenericDialect {})
                .try_with_sql(&sql)?
                .parse_query()
            {
                Ok(query) => *query,
                Err(e) => return Err(Error::syntax(e.to_string())),
            }
        }
    };
    if !matches!(
        *query.body,
        SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::SetOperation { .. } | SetExpr::Values(_)
    ) {
        return Err(Error::unsupported("COPY (...) TO STDOUT needs a SELECT"));
    }
    let mut statement = SqlStatement::Query(Box::new(query));
    super::postgres_syntax::rewrite_postgres_syntax(&mut statement)?;
    Ok(CopyTo {
        query: Box::new(statement),
        options: copy_options(options, legacy)?,
    })
}

fn copy_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyOptions> {
    let format_of = |name: &str| match name.to_ascii_lowercase().as_str() {
        "text" => Ok(CopyFormat::Text),
        "csv" => Ok(CopyFormat::Csv),
        "binary" => Ok(CopyFormat::Binary),
        other => Err(Error::invalid(format!("COPY format \"{other}\" not recognized"))),
    };
    // The format decides the other options' defaults.
    let mut format = CopyFormat::Text;
    for option in options {
        if let CopyOption::Format(name) = option {
            format = format_of(&name.value)?;
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => format = CopyFormat::Binary,
            CopyLegacyOption::Csv(_) => format = CopyFormat::Csv,
            _ => {}
        }
    }
    let mut copy = CopyOptions::new(format);
    let mut csv_options: Vec<&CopyLegacyCsvOption> = Vec::new();
    for option in options {
        match option {
            CopyOption::Format(_) | CopyOption::Encoding(_) | CopyOption::Freeze(_) => {}
            CopyOption::Delimiter(c) => copy.delimiter = *c,
            CopyOption::Null(s) => copy.null = s.clone(),
            CopyOption::Header(h) => copy.header = *h,
            CopyOption::Quote(c) => copy.quote = *c,
            CopyOption::Escape(c) if *c == copy.quote => {}
            CopyOption::ForceQuote(columns) => copy.force_quote = columns.iter().map(|c| c.value.clone()).collect(),
            other => return Err(Error::unsupported(format!("COPY option {other} is not supported"))),
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => {}
            CopyLegacyOption::Csv(options) => csv_options.extend(options),
            CopyLegacyOption::Delimiter(c) => copy.delimiter = *c,
            CopyLegacyOption::Null(s) => copy.null = s.clone(),
            CopyLegacyOption::Header => copy.header = true,
            other => return Err(Error::unsupported(format!("COPY option {other} is not supported"))),
        }
    }
    for option in csv_options {
        match option {
            CopyLegacyCsvOption::Header => copy.header = true,
            CopyLegacyCsvOption::Quote(c) => copy.quote = *c,
            CopyLegacyCsvOption::Escape(c) if *c == copy.quote => {}
            CopyLegacyCsvOption::ForceQuote(columns) => copy.force_quote = columns.iter().map(|c| c.value.clone()).collect(),
            other => return Err(Error::unsupported(format!("COPY option {other} is not supported"))),
        }
    }
    if copy.header && format == CopyFormat::Binary {
        return Err(Error::invalid("cannot specify HEADER in BINARY mode"));
    }
    Ok(copy)
}
