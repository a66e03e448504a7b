//! The one error type of Weir. Every error is either the user's (bad SQL, unknown names, bad options:
//! the message says what to do) or internal (I/O, RocksDB, bugs). Front ends map it to SQLSTATE.

use std::fmt;
use std::sync::Arc;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of mistake a user error is; decides the SQLSTATE a Postgres client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserErrorKind {
    /// SQL that does not parse (42601).
    Syntax,
    /// A name that does not exist (42P01).
    UndefinedObject,
    /// A type, setting or other named thing that is not a relation and does not exist (42704).
    UndefinedName,
    /// A name that is taken (42P07).
    DuplicateObject,
    /// A column that does not exist (42703).
    UndefinedColumn,
    /// A function that does not exist (42883).
    UndefinedFunction,
    /// A name that breaks the naming rule (42602).
    InvalidName,
    /// A name longer than 63 bytes (42622).
    NameTooLong,
    /// A path outside the directories SQL may use (42501).
    InsufficientPrivilege,
    /// A statement nested too deeply to plan (54001).
    StatementTooComplex,
    /// A value beyond what Weir can hold, e.g. a batch of 10^12 rows (54000).
    ProgramLimitExceeded,
    /// A file operation on a path the user gave failed: not a directory, name too long (58030).
    Io,
    /// The disk is full (53100).
    DiskFull,
    /// A column or expression of the wrong type (42804).
    DatatypeMismatch,
    /// A valid statement Weir does not support yet (0A000).
    FeatureNotSupported,
    /// A bad option, setting or argument value (22023).
    InvalidParameter,
    /// Something that cannot be done in the current state, e.g. dropping a source a job reads (55000).
    InvalidState,
    /// A source file that cannot be read (58P01).
    ExternalData,
    /// A job failed (XX000 is internal; this is 57000, operator intervention).
    JobFailed,
    /// The client canceled the statement (57014).
    Canceled,
    /// A scalar subquery returned more than one row (21000).
    CardinalityViolation,
    /// Division (or modulo) by zero (22012).
    DivisionByZero,
    /// A regular expression that does not compile (2201B).
    InvalidRegularExpression,
    /// A value that does not read as its type, e.g. a failed cast of text (22P02).
    InvalidTextRepresentation,
    /// A result beyond its type's range (22003).
    NumericValueOutOfRange,
    /// A record of an external system (a Kafka message) that its format cannot decode (22P02,
    /// Postgres' invalid input syntax).
    MalformedRecord,
    /// An external system (a Kafka broker) that cannot be reached or refuses the request (08001, as
    /// postgres_fdw reports a server it cannot connect to).
    ExternalSystem,
    /// A run-time parameter that cannot be changed, such as server_version (55P02).
    ReadOnlySetting,
    /// A cursor that does not exist (34000).
    UndefinedCursor,
    /// A cursor name already in use (42P03).
    DuplicateCursor,
    /// A statement that must run in a transaction block (25P01).
    NoActiveTransaction,
    /// A statement that cannot run inside a transaction block (25001).
    ActiveTransaction,
    /// A statement in a transaction block that an error aborted (25P02).
    InFailedTransaction,
    /// Any other error in a query (42000).
    Other,
}

impl UserErrorKind {
    pub fn sqlstate(self) -> &'static str {
        match self {
            UserErrorKind::Syntax => "42601",
            UserErrorKind::UndefinedObject => "42P01",
            UserErrorKind::UndefinedName => "42704",
            UserErrorKind::DuplicateObject => "42P07",
            UserErrorKind::UndefinedColumn => "42703",
            UserErrorKind::UndefinedFunction => "42883",
            UserErrorKind::InvalidName => "42602",
            UserErrorKind::NameTooLong => "42622",
            UserErrorKind::InsufficientPrivilege => "42501",
            UserErrorKind::StatementTooComplex => "54001",
            UserErrorKind::ProgramLimitExceeded => "54000",
            UserErrorKind::Io => "58030",
            UserErrorKind::DiskFull => "53100",
            UserErrorKind::DatatypeMismatch => "42804",
            UserErrorKind::FeatureNotSupported => "0A000",
            UserErrorKind::InvalidParameter => "22023",
            UserErrorKind::InvalidState => "55000",
            UserErrorKind::ExternalData => "58P01",
            UserErrorKind::JobFailed => "57000",
            UserErrorKind::Canceled => "57014",
            UserErrorKind::CardinalityViolation => "21000",
            UserErrorKind::DivisionByZero => "22012",
            UserErrorKind::InvalidRegularExpression => "2201B",
            UserErrorKind::InvalidTextRepresentation => "22P02",
            UserErrorKind::NumericValueOutOfRange => "22003",
            UserErrorKind::MalformedRecord => "22P02",
            UserErrorKind::ExternalSystem => "08001",
            UserErrorKind::ReadOnlySetting => "55P02",
            UserErrorKind::UndefinedCursor => "34000",
            UserErrorKind::DuplicateCursor => "42P03",
            UserErrorKind::NoActiveTransaction => "25P01",
            UserErrorKind::ActiveTransaction => "25001",
            UserErrorKind::InFailedTransaction => "25P02",
            UserErrorKind::Other => "42000",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's mistake; `message` tells them what is wrong and, where it can, what to do.
    #[error("{message}")]
    User { kind: UserErrorKind, message: String },
    /// Weir's or the machine's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn user(kind: UserErrorKind, message: impl fmt::Display) -> Self {
        Error::User {
            kind,
            message: message.to_string(),
        }
    }
    pub fn syntax(message: impl fmt::Display) -> Self {
        Self::user(UserErrorKind::Syntax, message)
    }
    pub fn not_found(what: &str, name: &str) -> Self {
        Self::user(UserErrorKind::UndefinedObject, format!("{what} '{name}' does not exist"))
    }
    pub fn already_exists(what: &str, name: &str) -> Self {
        Self::user(UserErrorKind::DuplicateObject, format!("{what} '{name}' already exists"))
    }
    pub fn unsupported(message: impl fmt::Display) -> Self {
        Self::user(UserErrorKind::FeatureNotSupported, message)
    }
    pub fn invalid(message: impl fmt::Display) -> Self {
        Self::user(UserErrorKind::InvalidParameter, message)
    }
    pub fn type_mismatch(message: impl fmt::Display) -> Self {
        Self::user(UserErrorKind::DatatypeMismatch, message)
    }
    pub fn invalid_state(message: impl fmt::Display) -> Self {
        Self::user(UserErrorKind::InvalidState, message)
    }
    /// 54001: what Postgres answers when a statement nests deeper than its stack allows.
    pub fn too_complex() -> Self {
        Self::user(
            UserErrorKind::StatementTooComplex,
            "statement is too complex: expressions or set operations nest too deeply; split it or use fewer terms",
        )
    }
    /// 57014: the client canceled the statement (or it was dropped: timeout, disconnect).
    pub fn canceled() -> Self {
        Self::user(UserErrorKind::Canceled, "canceling statement due to user request")
    }
    pub fn internal(message: impl fmt::Display) -> Self {
        Error::Internal(message.to_string())
    }

    pub fn is_user(&self) -> bool {
        matches!(self, Error::User { .. })
    }

    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::User { kind, .. } => kind.sqlstate(),
            Error::Internal(_) => "XX000",
        }
    }

    /// Prefixes the message with context, keeping the kind.
    pub fn context(self, context: impl fmt::Display) -> Self {
        match self {
            Error::User { kind, message } => Error::User {
                kind,
                message: format!("{context}: {message}"),
            },
            Error::Internal(message) => Error::Internal(format!("{context}: {message}")),
        }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e {
            D::SQL(e, _) => Error::syntax(e),
            D::Plan(m) => match (missing_table(&m), missing_function(&m)) {
                (Some(table), _) => Error::user(UserErrorKind::UndefinedObject, format!("relation \"{table}\" does not exist")),
                (_, Some(function)) => Error::user(UserErrorKind::UndefinedFunction, format!("function {function} does not exist")),
                _ => Error::user(UserErrorKind::Other, m),
            },
            D::SchemaError(e, _) => match e.as_ref() {
                // Postgres' words: `column "x" does not exist`, `column t.x does not exist`.
                datafusion::common::SchemaError::FieldNotFound { field, .. } => Error::user(
                    UserErrorKind::UndefinedColumn,
                    match &field.relation {
                        Some(relation) => format!("column {}.{} does not exist", relation.table(), field.name),
                        None => format!("column \"{}\" does not exist", field.name),
                    },
                ),
                _ => Error::user(UserErrorKind::Other, e),
            },
            D::NotImplemented(m) => Error::unsupported(format!("not supported: {m}")),
            D::Execution(m) => Error::user(UserErrorKind::Other, m),
            D::Context(c, inner) => Error::from(*inner).context(c),
            D::ArrowError(e, _) => Error::from(*e),
            D::External(e) => match e.downcast::<Error>() {
                Ok(weir) => *weir,
                Err(other) => Error::user(UserErrorKind::Other, other),
            },
            D::Diagnostic(_, inner) => Error::from(*inner),
            // Several errors of one statement: the first says what to fix first.
            D::Collection(errors) => match errors.into_iter().next() {
                Some(first) => Error::from(first),
                None => Error::internal("an empty collection of errors"),
            },
            D::Configuration(m) => Error::invalid(m),
            D::ResourcesExhausted(m) => Error::user(UserErrorKind::ProgramLimitExceeded, m),
            D::Shared(shared) => match Arc::try_unwrap(shared) {
                Ok(inner) => Error::from(inner),
                Err(shared) => Error::user(UserErrorKind::Other, shared),
            },
            D::IoError(e) => Error::internal(e),
            other => Error::internal(other),
        }
    }
}

/// The function of DataFusion's "Invalid function 'f'.\nDid you mean 'g'?" (or of a table function's
/// "table function 'f' not found").
fn missing_function(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("Invalid function '")
        .or_else(|| message.strip_prefix("table function '"))?;
    rest.split('\'').next()
}

/// The table of DataFusion's "table 'datafusion.public.t' not found".
fn missing_table(message: &str) -> Option<&str> {
    let quoted = message.strip_prefix("table '")?.strip_suffix("' not found")?;
    Some(quoted.rsplit('.').next().unwrap_or(quoted))
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        use datafusion::arrow::error::ArrowError as A;
        match e {
            // A cast in a query; the file and Kafka readers report theirs with ParseError / CsvError.
            A::CastError(m) => Error::user(UserErrorKind::InvalidTextRepresentation, m),
            A::ParseError(m) | A::CsvError(m) | A::JsonError(m) | A::InvalidArgumentError(m) => Error::user(UserErrorKind::ExternalData, m),
            A::ComputeError(m) => Error::user(UserErrorKind::Other, m),
            A::DivideByZero => Error::user(UserErrorKind::DivisionByZero, "division by zero"),
            A::ArithmeticOverflow(m) => Error::user(UserErrorKind::NumericValueOutOfRange, format!("value out of range: {m}")),
            A::IoError(_, e) => Error::from(e),
            A::ExternalError(e) => match e.downcast::<Error>() {
                Ok(weir) => *weir,
                Err(other) => Error::internal(other),
            },
            other => Error::internal(other),
        }
    }
}

impl From<sqlparser::parser::ParserError> for Error {
    fn from(e: sqlparser::parser::ParserError) -> Self {
        use sqlparser::parser::ParserError as P;
        match e {
            P::ParserError(m) | P::TokenizerError(m) => Error::syntax(format!("syntax error: {m}")),
            P::RecursionLimitExceeded => Error::too_complex(),
        }
    }
}

impl From<sqlparser::tokenizer::TokenizerError> for Error {
    fn from(e: sqlparser::tokenizer::TokenizerError) -> Self {
        Error::syntax(format!("syntax error: {e}"))
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::internal(format!("RocksDB: {e}"))
    }
}

impl From<std::io::Error> for Error {
    /// Errors that a path or the machine's state explain get Postgres' class 58 (or 42501, 53100);
    /// the rest are internal.
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound | K::InvalidData => UserErrorKind::ExternalData,
            K::PermissionDenied | K::ReadOnlyFilesystem => UserErrorKind::InsufficientPrivilege,
            K::StorageFull | K::QuotaExceeded => UserErrorKind::DiskFull,
            K::IsADirectory | K::NotADirectory | K::InvalidFilename | K::DirectoryNotEmpty | K::AlreadyExists | K::FileTooLarge => {
                UserErrorKind::Io
            }
            _ => return Error::internal(format!("I/O: {e}")),
        };
        Error::user(kind, format!("I/O: {e}"))
    }
}

impl From<parquet::errors::ParquetError> for Error {
    /// The parquet writer's I/O errors (a full disk) keep their class; the rest are internal.
    fn from(e: parquet::errors::ParquetError) -> Self {
        match e {
            parquet::errors::ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
                Ok(io) => Error::from(*io),
                Err(other) => Error::internal(format!("parquet: {other}")),
            },
            other => Error::internal(format!("parquet: {other}")),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::internal(format!("JSON: {e}"))
    }
}

impl From<Error> for datafusion::error::DataFusionError {
    fn from(e: Error) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}
