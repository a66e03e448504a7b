//! Parsing: SQL text → Weir `Statement`s. Weir-only commands (CREATE SOURCE / TABLE / JOB, SHOW,
//! DESCRIBE, DROP, SET, WAIT JOB, EXPLAIN CREATE JOB) are parsed here with sqlparser's primitives;
//! standard SQL is parsed by sqlparser and handed to DataFusion, with Postgres-only spellings
//! rewritten (`postgres_syntax.rs`). Errors keep sqlparser's line and column.

use std::collections::BTreeMap;

use sqlparser::ast::{Ident, Insert, Statement as SqlStatement};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::column_list::parse_column_list;
use super::dialect::{WeirDialect, check_set_operations};
use super::postgres_commands::{CopyTo, DeclareCursor, FetchCursor};
use crate::catalog::name::check_name;
use crate::catalog::{ColumnDef, WatermarkDef};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    CreateSource {
        name: String,
        columns: Vec<ColumnDef>,
        watermark: Option<WatermarkDef>,
        primary_key: Vec<String>,
        options: BTreeMap<String, String>,
        if_not_exists: bool,
    },
    CreateTable {
        name: String,
        columns: Vec<ColumnDef>,
        primary_key: Vec<String>,
        /// `PARTITIONED BY (a, b)` (Flink's, between the columns and WITH).
        partitioned_by: Vec<String>,
        options: BTreeMap<String, String>,
        if_not_exists: bool,
    },
    CreateJob(CreateJob),
    ExplainCreateJob(CreateJob),
    Show(ShowTarget),
    ShowCheckpoints {
        job: String,
    },
    /// `SHOW` of a Postgres run-time parameter (`name` as Postgres spells it).
    ShowVariable {
        name: String,
    },
    /// `SET` of a Postgres run-time parameter; `None` is DEFAULT.
    SetVariable {
        name: String,
        value: Option<String>,
    },
    /// `RESET name`; `None` is RESET ALL.
    ResetVariable {
        name: Option<String>,
    },
    /// DISCARD ALL (a pool's reset): parameters back to their defaults, cursors closed.
    DiscardAll,
    DeclareCursor(DeclareCursor),
    /// FETCH or MOVE.
    FetchCursor(FetchCursor),
    /// `CLOSE name`; `None` is CLOSE ALL.
    CloseCursor {
        name: Option<String>,
    },
    CopyTo(CopyTo),
    Describe {
        name: String,
    },
    DescribeJob {
        name: String,
    },
    Drop {
        kind: ObjectKind,
        name: String,
        if_exists: bool,
    },
    Set {
        key: String,
        value: String,
    },
    WaitJob {
        name: String,
    },
    /// Standard SQL for DataFusion (SELECT, EXPLAIN SELECT, ...).
    Query(Box<SqlStatement>),
    SavepointJob {
        job: String,
        dir: Option<String>,
        options: BTreeMap<String, String>,
    },
    StopJob {
        job: String,
        savepoint: bool,
    },
    CancelJob {
        job: String,
    },
    RestoreJob(RestoreJob),
    ExplainRestoreJob(RestoreJob),
    ShowSavepoints,
    DescribeSavepoint {
        name: String,
    },
    DropSavepoint {
        name: String,
        if_exists: bool,
    },
    /// Transaction control. Weir's reads see committed epochs only, so a transaction block changes
    /// no data; it bounds cursors declared without HOLD and, after an error, refuses statements
    /// until it ends, as Postgres does.
    Transaction(TransactionCommand),
    /// LISTEN, UNLISTEN, DEALLOCATE and session characteristics: Postgres clients send these on
    /// their own; they succeed and change nothing (`tag` names the command).
    PostgresNoop {
        tag: String,
    },
}

/// A transaction-control statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionCommand {
    /// BEGIN, START TRANSACTION.
    Begin,
    /// COMMIT, END.
    Commit,
    /// ROLLBACK, ABORT.
    Rollback,
    Savepoint,
    Release,
    RollbackToSavepoint,
}

impl TransactionCommand {
    /// The command tag Postgres answers with.
    pub fn tag(self) -> &'static str {
        match self {
            TransactionCommand::Begin => "BEGIN",
            TransactionCommand::Commit => "COMMIT",
            TransactionCommand::Rollback | TransactionCommand::RollbackToSavepoint => "ROLLBACK",
            TransactionCommand::Savepoint => "SAVEPOINT",
            TransactionCommand::Release => "RELEASE",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RestoreFrom {
    Savepoint(String),
    Path(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestoreJob {
    pub job: String,
    pub from: RestoreFrom,
    pub allow_non_restored: bool,
    pub options: BTreeMap<String, String>,
    /// A new query for the job; `None` re-plans the SQL stored with the state.
    pub insert: Option<Box<Insert>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateJob {
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub insert: Box<Insert>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowTarget {
    Sources,
    Tables,
    Jobs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Source,
    Table,
    Job,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Source => "source",
            ObjectKind::Table => "table",
            ObjectKind::Job => "job",
        }
    }
}

/// Parses every statement in `sql` (separated by `;`).
pub fn parse_statements(sql: &str) -> Result<Vec<Statement>> {
    let rewritten = super::flink_syntax::rewrite_flink_window_syntax(sql)?;
    let sql = rewritten.as_deref().unwrap_or(sql);
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location()?;
    check_set_operations(&tokens)?;
    let dialect = WeirDialect::new(tokens.len());
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token().token == Token::EOF {
            break;
        }
        dialect.start_statement();
        statements.push(parse_statement(&mut parser)?);
        if !parser.consume_token(&Token::SemiColon) && parser.peek_token().token != Token::EOF {
            return Err(expected_error(&parser, "end of statement", parser.peek_token()));
        }
    }
    Ok(statements)
}

pub(super) fn peek_word(parser: &Parser, n: usize) -> Option<String> {
    match parser.peek_nth_token(n).token {
        Token::Word(w) => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn parse_statement(parser: &mut Parser) -> Result<Statement> {
    if let Some(statement) = super::postgres_commands::parse_postgres_command(parser)? {
        return Ok(statement);
    }
    let first = peek_word(parser, 0);
    let second = peek_word(parser, 1);
    match (first.as_deref(), second.as_deref()) {
        (Some("CREATE"), Some("SOURCE")) => {
            parser.next_token();
            parser.next_token();
            parse_create_source(parser)
        }
        (Some("CREATE"), Some("TABLE")) => {
            parser.next_token();
            parser.next_token();
            parse_create_table(parser)
        }
        (Some("CREATE"), Some("JOB")) => {
            parser.next_token();
            parser.next_token();
            Ok(Statement::CreateJob(parse_create_job(parser)?))
        }
        (Some("EXPLAIN"), Some("CREATE")) if peek_word(parser, 2).as_deref() == Some("JOB") => {
            for _ in 0..3 {
                parser.next_token();
            }
            Ok(Statement::ExplainCreateJob(parse_create_job(parser)?))
        }
        (Some("SHOW"), Some(target @ ("SOURCES" | "TABLES" | "JOBS"))) => {
            let target = match target {
                "SOURCES" => ShowTarget::Sources,
                "TABLES" => ShowTarget::Tables,
                _ => ShowTarget::Jobs,
            };
            parser.next_token();
            parser.next_token();
            Ok(Statement::Show(target))
        }
        (Some("SHOW"), Some("CHECKPOINTS")) => {
            parser.next_token();
            parser.next_token();
            parser.expect_keyword(Keyword::FOR)?;
            let job = peek_word(parser, 0);
            if job.as_deref() != Some("JOB") {
                return Err(expected_error(parser, "JOB", parser.peek_token()));
            }
            parser.next_token();
            Ok(Statement::ShowCheckpoints { job: parse_name(parser)? })
        }
        (Some("DESCRIBE" | "DESC"), Some("JOB")) => {
            parser.next_token();
            parser.next_token();
            Ok(Statement::DescribeJob { name: parse_name(parser)? })
        }
        (Some("DESCRIBE" | "DESC"), second) if second != Some("SAVEPOINT") => {
            parser.next_token();
            Ok(Statement::Describe { name: parse_name(parser)? })
        }
        (Some("DROP"), Some(kind @ ("SOURCE" | "TABLE" | "JOB"))) => {
            let kind = match kind {
                "SOURCE" => ObjectKind::Source,
                "TABLE" => ObjectKind::Table,
                _ => ObjectKind::Job,
            };
            parser.next_token();
            parser.next_token();
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            Ok(Statement::Drop {
                kind,
                name: parse_name(parser)?,
                if_exists,
            })
        }
        (Some("SET"), _) => {
            parser.next_token();
            let key = parse_option_key(parser)?;
            if !parser.consume_token(&Token::Eq) {
                parser.expect_keyword(Keyword::TO)?;
            }
            let value = parse_option_value(parser)?;
            Ok(Statement::Set { key, value })
        }
        (Some("SAVEPOINT"), Some("JOB")) => {
            parser.next_token();
            parser.next_token();
            let job = parse_name(parser)?;
            let dir = if parser.parse_keyword(Keyword::TO) {
                Some(parser.parse_literal_string()?)
            } else {
                None
            };
            Ok(Statement::SavepointJob {
                job,
                dir,
                options: parse_with_options(parser)?,
            })
        }
        (Some("STOP"), Some("JOB")) => {
            parser.next_token();
            parser.next_token();
            let job = parse_name(parser)?;
            let savepoint = parser.parse_keyword(Keyword::WITH);
            if savepoint {
                parser.expect_keyword(Keyword::SAVEPOINT)?;
            }
            Ok(Statement::StopJob { job, savepoint })
        }
        (Some("CANCEL"), Some("JOB")) => {
            parser.next_token();
            parser.next_token();
            Ok(Statement::CancelJob { job: parse_name(parser)? })
        }
        (Some("RESTORE"), Some("JOB")) => {
            parser.next_token();
            parser.next_token();
            Ok(Statement::RestoreJob(parse_restore_job(parser)?))
        }
        (Some("EXPLAIN"), Some("RESTORE")) if peek_word(parser, 2).as_deref() == Some("JOB") => {
            for _ in 0..3 {
                parser.next_token();
            }
            Ok(Statement::ExplainRestoreJob(parse_restore_job(parser)?))
        }
        (Some("SHOW"), Some("SAVEPOINTS")) => {
            parser.next_token();
            parser.next_token();
            Ok(Statement::ShowSavepoints)
        }
        (Some("DESCRIBE" | "DESC"), Some("SAVEPOINT")) => {
            parser.next_token();
            parser.next_token();
            Ok(Statement::DescribeSavepoint { name: parse_name(parser)? })
        }
        (Some("DROP"), Some("SAVEPOINT")) => {
            parser.next_token();
            parser.next_token();
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            Ok(Statement::DropSavepoint {
                name: parse_name(parser)?,
                if_exists,
            })
        }
        // Prepared statements live in the wire protocol's per-connection store, where a Parse of a
        // name replaces the old one; psycopg sends DEALLOCATE ALL after DDL.
        (Some("DEALLOCATE"), second) => {
            let tag = if second == Some("ALL") || peek_word(parser, 2).as_deref() == Some("ALL") {
                "DEALLOCATE ALL"
            } else {
                "DEALLOCATE"
            };
            while !matches!(parser.peek_token().token, Token::SemiColon | Token::EOF) {
                parser.next_token();
            }
            Ok(Statement::PostgresNoop { tag: tag.into() })
        }
        (Some("SAVEPOINT" | "RELEASE" | "BEGIN" | "COMMIT" | "ROLLBACK" | "START" | "END" | "ABORT"), second) => {
            let command = match first.as_deref() {
                Some("BEGIN" | "START") => TransactionCommand::Begin,
                Some("COMMIT" | "END") => TransactionCommand::Commit,
                Some("SAVEPOINT") => TransactionCommand::Savepoint,
                Some("RELEASE") => TransactionCommand::Release,
                // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] x
                _ if second == Some("TO") || peek_word(parser, 2).as_deref() == Some("TO") => TransactionCommand::RollbackToSavepoint,
                _ => TransactionCommand::Rollback,
            };
            // Consume the rest of the statement (names, TRANSACTION, isolation levels ...).
            while !matches!(parser.peek_token().token, Token::SemiColon | Token::EOF) {
                parser.next_token();
            }
            Ok(Statement::Transaction(command))
        }
        (Some("WAIT"), Some("JOB")) => {
            parser.next_token();
            parser.next_token();
            Ok(Statement::WaitJob { name: parse_name(parser)? })
        }
        _ => {
            let mut statement = parser.parse_statement()?;
            super::lookup_join::refuse_table_versions(&statement)?;
            super::postgres_syntax::rewrite_postgres_syntax(&mut statement)?;
            Ok(Statement::Query(Box::new(statement)))
        }
    }
}

/// An identifier as SQL resolves it: unquoted names are lower-cased.
pub fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

pub(super) fn parse_name(parser: &mut Parser) -> Result<String> {
    Ok(normalize(&parser.parse_identifier()?))
}

/// The name of an object the statement creates: it must follow the naming rule.
fn parse_new_name(parser: &mut Parser, what: &str) -> Result<String> {
    let name = parse_name(parser)?;
    check_name(what, &name)?;
    Ok(name)
}

fn parse_if_not_exists(parser: &mut Parser) -> bool {
    parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS])
}

/// `( column TYPE [NOT NULL] [PRIMARY KEY], ..., [WATERMARK FOR c AS expr], [PRIMARY KEY (a, b) [NOT ENFORCED]] )`
fn parse_create_source(parser: &mut Parser) -> Result<Statement> {
    let if_not_exists = parse_if_not_exists(parser);
    let name = parse_new_name(parser, "source")?;
    let list = parse_column_list(parser)?;
    let options = parse_with_options(parser)?;
    Ok(Statement::CreateSource {
        name,
        columns: list.columns,
        watermark: list.watermark,
        primary_key: list.primary_key,
        options,
        if_not_exists,
    })
}

fn parse_create_table(parser: &mut Parser) -> Result<Statement> {
    let if_not_exists = parse_if_not_exists(parser);
    let name = parse_new_name(parser, "table")?;
    let list = parse_column_list(parser)?;
    if list.watermark.is_some() {
        return Err(Error::unsupported(
            "a result table has no WATERMARK; declare event time on a CREATE SOURCE",
        ));
    }
    if let Some(column) = list.columns.iter().find(|c| !c.kind.is_physical()) {
        return Err(Error::unsupported(format!(
            "column '{}': a table's columns are written by its job; METADATA and computed columns are for sources",
            column.name
        )));
    }
    let mut partitioned_by = Vec::new();
    if parser.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
        parser.expect_token(&Token::LParen)?;
        partitioned_by = parser
            .parse_comma_separated(|p| p.parse_identifier())?
            .into_iter()
            .map(|i| i.value)
            .collect();
        parser.expect_token(&Token::RParen)?;
    }
    let options = parse_with_options(parser)?;
    Ok(Statement::CreateTable {
        name,
        columns: list.columns,
        primary_key: list.primary_key,
        partitioned_by,
        options,
        if_not_exists,
    })
}

fn parse_create_job(parser: &mut Parser) -> Result<CreateJob> {
    let name = parse_new_name(parser, "job")?;
    let options = parse_with_options(parser)?;
    parser.expect_keyword(Keyword::AS)?;
    match parser.parse_statement()? {
        SqlStatement::Insert(insert) => Ok(CreateJob {
            name,
            options,
            insert: Box::new(insert),
        }),
        other => Err(Error::unsupported(format!(
            "a job runs an INSERT INTO <table> SELECT ...; not supported: {}",
            other.to_string().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        ))),
    }
}

/// `<job> FROM SAVEPOINT name | FROM 'path' [ALLOW NON RESTORED STATE] [WITH (...)] [AS INSERT ...]`
fn parse_restore_job(parser: &mut Parser) -> Result<RestoreJob> {
    let job = parse_new_name(parser, "job")?;
    parser.expect_keyword(Keyword::FROM)?;
    let from = if parser.parse_keyword(Keyword::SAVEPOINT) {
        RestoreFrom::Savepoint(parse_name(parser)?)
    } else {
        RestoreFrom::Path(parser.parse_literal_string()?)
    };
    let allow_non_restored = if peek_word(parser, 0).as_deref() == Some("ALLOW") {
        parser.next_token();
        for word in ["NON", "RESTORED", "STATE"] {
            if peek_word(parser, 0).as_deref() != Some(word) {
                return Err(expected_error(parser, word, parser.peek_token()));
            }
            parser.next_token();
        }
        true
    } else {
        false
    };
    let options = parse_with_options(parser)?;
    let insert = if parser.parse_keyword(Keyword::AS) {
        match parser.parse_statement()? {
            SqlStatement::Insert(insert) => Some(Box::new(insert)),
            _ => return Err(Error::unsupported("RESTORE JOB ... AS takes an INSERT INTO <table> SELECT ...")),
        }
    } else {
        None
    };
    Ok(RestoreJob {
        job,
        from,
        allow_non_restored,
        options,
        insert,
    })
}

/// `[WITH] ( key = value, ... )`: keys are identifiers (dotted allowed) or quoted strings; keys are
/// lower-cased.
fn parse_with_options(parser: &mut Parser) -> Result<BTreeMap<String, String>> {
    let mut options = BTreeMap::new();
    if !parser.parse_keyword(Keyword::WITH) {
        return Ok(options);
    }
    parser.expect_token(&Token::LParen)?;
    loop {
        if parser.consume_token(&Token::RParen) {
            break;
        }
        let key = parse_option_key(parser)?;
        parser.expect_token(&Token::Eq)?;
        let value = parse_option_value(parser)?;
        if options.insert(key.clone(), value).is_some() {
            return Err(Error::invalid(format!("option '{key}' is given twice")));
        }
        if !parser.consume_token(&Token::Comma) {
            parser.expect_token(&Token::RParen)?;
            break;
        }
    }
    Ok(options)
}

fn parse_option_key(parser: &mut Parser) -> Result<String> {
    let token = parser.next_token();
    let mut key = match &token.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
            return Ok(s.to_ascii_lowercase());
        }
        Token::Word(w) => w.value.clone(),
        _ => return Err(expected_error(parser, "an option name", token)),
    };
    while parser.consume_token(&Token::Period) {
        key.push('.');
        key.push_str(&parser.parse_identifier()?.value);
    }
    Ok(key.to_ascii_lowercase())
}

fn parse_option_value(parser: &mut Parser) -> Result<String> {
    let token = parser.next_token();
    match token.token {
        Token::SingleQuotedString(s) => Ok(s),
        Token::Number(n, _) => Ok(n),
        Token::Word(w) => Ok(w.value),
        Token::Minus => match parser.next_token().token {
            Token::Number(n, _) => Ok(format!("-{n}")),
            _ => Err(Error::syntax("expected a number after '-'")),
        },
        _ => Err(expected_error(parser, "an option value (a quoted string or a number)", token)),
    }
}

/// The "expected X, found Y" error at the parser's position (sqlparser's message carries the line
/// and column).
fn expected_error(parser: &Parser, what: &str, found: sqlparser::tokenizer::TokenWithSpan) -> Error {
    match parser.expected::<()>(what, found) {
        Err(e) => Error::from(e),
        Ok(()) => Error::syntax(format!("syntax error: expected {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_create_source_with_watermark_and_options() {
        let sql = "CREATE SOURCE bids (auction BIGINT, price BIGINT, date_time TIMESTAMP(3), \
                   WATERMARK FOR date_time AS date_time - INTERVAL '2' SECOND) \
                   WITH (connector = 'nexmark', 'nexmark.table' = 'bid', events.per.second = 1000)";
        let stmts = parse_statements(sql).unwrap();
        let Statement::CreateSource {
            name,
            columns,
            watermark,
            options,
            ..
        } = &stmts[0]
        else {
            panic!("{stmts:?}")
        };
        assert_eq!(name, "bids");
        assert_eq!(columns.len(), 3);
        assert_eq!(watermark.as_ref().unwrap().delay_nanos, 2_000_000_000);
        assert_eq!(options.get("connector").unwrap(), "nexmark");
        assert_eq!(options.get("events.per.second").unwrap(), "1000");
        assert_eq!(options.get("nexmark.table").unwrap(), "bid");
    }

    #[test]
    fn syntax_errors_carry_the_position() {
        let err = parse_statements("SELEC 1").unwrap_err().to_string();
        assert!(err.contains("Line: 1, Column: 1"), "{err}");
    }
}
