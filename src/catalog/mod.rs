//! What Weir knows about: sources, result tables and jobs, as plain data. Persisted as one JSON file
//! in the data directory (written to a temp file, fsynced, renamed) so it survives a restart.

pub mod name;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};
use sqlparser::ast::{DataType as SqlType, ExactNumberInfo, TimezoneInfo};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::data_dir::DataDir;
use crate::error::{Error, Result};
use crate::fs::write_atomically;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    /// The type as the user wrote it (`BIGINT`, `TIMESTAMP(3)`); the Arrow type is derived from it.
    pub sql_type: String,
    pub nullable: bool,
    /// Where a source column's values come from; result-table columns are always physical.
    #[serde(default, skip_serializing_if = "ColumnKind::is_physical")]
    pub kind: ColumnKind,
}

impl ColumnDef {
    pub fn data_type(&self) -> Result<DataType> {
        arrow_type_of(&self.sql_type)
    }
}

/// Flink's three kinds of columns in a source's DDL.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Decoded from the records (the value format, or the key format for `key.fields`).
    #[default]
    Physical,
    /// `name TYPE METADATA [FROM 'key'] [VIRTUAL]`: a connector's fact about each record (a Kafka
    /// record's timestamp, partition, offset).
    Metadata { key: String },
    /// `name AS expr`: computed from the other columns of the same row (typed when declared).
    Computed { expr: String },
}

impl ColumnKind {
    pub fn is_physical(&self) -> bool {
        matches!(self, ColumnKind::Physical)
    }
}

/// `WATERMARK FOR column AS column - INTERVAL ...`: bounded out-of-orderness.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatermarkDef {
    pub column: String,
    /// How far behind the largest event time seen the watermark trails, in nanoseconds.
    pub delay_nanos: i64,
    /// The expression as written, for DESCRIBE.
    pub expr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceDef {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    pub watermark: Option<WatermarkDef>,
    pub connector: String,
    /// The WITH options other than `connector`, keys lower-cased.
    pub options: BTreeMap<String, String>,
    /// An 'upsert-kafka' source's PRIMARY KEY (its records' key): rows replace the row with
    /// the same key, a tombstone deletes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum TableConnector {
    /// Rows are stored in Weir (RocksDB) and can be queried.
    Stored,
    /// Rows are discarded (for benchmarks).
    Blackhole,
    /// Rows are printed to standard output (for debugging).
    Print,
    /// Rows are records of a Kafka topic (append-only).
    Kafka,
    /// Rows are the latest value per key of a Kafka topic (an updating result; a delete is a tombstone).
    UpsertKafka,
    /// Rows are files in a directory, per partition (append-only; Flink's `filesystem`).
    Filesystem,
}

impl TableConnector {
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "weir" | "table" => Ok(TableConnector::Stored),
            "blackhole" => Ok(TableConnector::Blackhole),
            "print" => Ok(TableConnector::Print),
            "kafka" => Ok(TableConnector::Kafka),
            "upsert-kafka" => Ok(TableConnector::UpsertKafka),
            "filesystem" => Ok(TableConnector::Filesystem),
            other => Err(Error::invalid(format!(
                "unknown connector '{other}' for a table; use 'kafka', 'upsert-kafka', 'filesystem', 'blackhole', 'print', or no connector for a table stored in Weir"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TableConnector::Stored => "weir",
            TableConnector::Blackhole => "blackhole",
            TableConnector::Print => "print",
            TableConnector::Kafka => "kafka",
            TableConnector::UpsertKafka => "upsert-kafka",
            TableConnector::Filesystem => "filesystem",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableDef {
    pub name: String,
    /// Stable id used as the key prefix of the table's rows in the table store.
    pub id: u32,
    pub columns: Vec<ColumnDef>,
    /// Column names of the primary key, in key order; empty for an append-only table.
    pub primary_key: Vec<String>,
    pub connector: TableConnector,
    /// The connector's WITH options other than `connector`, keys lower-cased (external sinks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// `PARTITIONED BY` columns, outermost first (filesystem tables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitioned_by: Vec<String>,
    /// How a stored table's rows are laid out in the table store; catalogs written before the
    /// layout was recorded hold tables of the first one.
    #[serde(default)]
    pub row_layout: StoredRowLayout,
}

/// How the table store (`connectors::table_store`) lays out a stored table's rows. A row's key is
/// the table's id, then its primary key columns (or a generated row id); the layout says what the
/// value holds. Tables keep the layout they were created with.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum StoredRowLayout {
    /// Every column, the key columns again among them (tables created before 2026-12-04).
    #[default]
    WholeRow,
    /// The columns outside the primary key: the key columns are read back from the key. A third
    /// less to sort, write and compact for a result keyed by two of its four columns.
    NonKeyColumns,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum JobStatus {
    Created,
    Running,
    Finished,
    Failed,
    Canceled,
    /// Stopped on request (STOP JOB), possibly with a savepoint; can be restored.
    Stopped,
    /// A task failed; the job is being torn down.
    Failing,
    /// Waiting out the restart strategy's delay before the next attempt.
    Restarting,
    /// Loading a checkpoint or savepoint before its tasks run.
    Restoring,
}

impl JobStatus {
    pub const ALL: [JobStatus; 9] = [
        JobStatus::Created,
        JobStatus::Restoring,
        JobStatus::Running,
        JobStatus::Finished,
        JobStatus::Failed,
        JobStatus::Canceled,
        JobStatus::Stopped,
        JobStatus::Failing,
        JobStatus::Restarting,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Created => "CREATED",
            JobStatus::Running => "RUNNING",
            JobStatus::Finished => "FINISHED",
            JobStatus::Failed => "FAILED",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Stopped => "STOPPED",
            JobStatus::Failing => "FAILING",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Restoring => "RESTORING",
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Failed | JobStatus::Canceled | JobStatus::Stopped
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobDef {
    pub name: String,
    /// The `INSERT INTO ... SELECT ...` the job runs.
    pub insert_sql: String,
    /// Settings in force for the job: session settings overlaid with the job's WITH options.
    pub options: BTreeMap<String, String>,
    pub status: JobStatus,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum SavepointFormat {
    /// Backend-independent rows (key group, key, value) per operator: restorable into the other
    /// backend and at another parallelism.
    Canonical,
    /// A full copy of the backend's own files: fastest to take and restore, same backend and parallelism.
    Native,
}

impl SavepointFormat {
    pub fn parse(value: &str) -> crate::error::Result<Self> {
        match value.to_ascii_lowercase().as_str() {
            "canonical" => Ok(SavepointFormat::Canonical),
            "native" => Ok(SavepointFormat::Native),
            other => Err(Error::invalid(format!(
                "savepoint format '{other}' is unknown; use 'canonical' or 'native'"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            SavepointFormat::Canonical => "canonical",
            SavepointFormat::Native => "native",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavepointDef {
    pub name: String,
    pub job: String,
    pub path: String,
    pub format: SavepointFormat,
    pub created_ms: i64,
    pub size_bytes: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Catalog {
    pub sources: BTreeMap<String, SourceDef>,
    pub tables: BTreeMap<String, TableDef>,
    pub jobs: BTreeMap<String, JobDef>,
    pub next_table_id: u32,
    #[serde(default)]
    pub savepoints: BTreeMap<String, SavepointDef>,
}

impl Catalog {
    fn path(data_dir: &Path) -> PathBuf {
        DataDir::new(data_dir).catalog_file()
    }

    pub fn load(data_dir: &Path) -> Result<Catalog> {
        let path = Self::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::internal(format!("catalog {} is damaged ({e}); restore it or move it away", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A new data directory, unless it holds data: then the catalog was lost, and starting
                // empty would hide the tables and checkpoints beside it (and overwrite them later).
                let paths = DataDir::new(data_dir);
                let held: Vec<String> = [paths.tables(), paths.jobs(), paths.checkpoints(), paths.savepoints()]
                    .iter()
                    .filter(|dir| std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()))
                    .filter_map(|dir| dir.file_name().map(|n| format!("{}/", n.to_string_lossy())))
                    .collect();
                if held.is_empty() {
                    Ok(Catalog::default())
                } else {
                    Err(Error::invalid_state(format!(
                        "{} holds {} but no catalog.json; Weir will not start empty over existing data. \
                         Restore catalog.json (from a backup or a copy), or move the directory away to start a new database",
                        data_dir.display(),
                        held.join(", ")
                    )))
                }
            }
            Err(e) => Err(Error::internal(format!("cannot read catalog {}: {e}", path.display()))),
        }
    }

    pub fn save(&self, data_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        write_atomically(&Self::path(data_dir), &bytes)
    }

    /// Lower-cased name lookup in every namespace (sources and tables share one, as in SQL).
    pub fn relation_exists(&self, name: &str) -> bool {
        self.sources.contains_key(name) || self.tables.contains_key(name)
    }
}

/// Whether the WATERMARK names a TIMESTAMP column of `columns`.
pub fn check_watermark_column(columns: &[ColumnDef], watermark: &WatermarkDef) -> Result<()> {
    let column = columns
        .iter()
        .find(|c| c.name == watermark.column)
        .ok_or_else(|| Error::not_found("watermark column", &watermark.column))?;
    if !matches!(column.data_type()?, DataType::Timestamp(_, _)) {
        return Err(Error::type_mismatch(format!(
            "WATERMARK column '{}' must be a TIMESTAMP, not {}",
            watermark.column, column.sql_type
        )));
    }
    Ok(())
}

pub fn schema_of(columns: &[ColumnDef]) -> Result<SchemaRef> {
    let fields = columns
        .iter()
        .map(|c| Ok(Field::new(&c.name, c.data_type()?, c.nullable)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// The Arrow type of a SQL type name as written in a column definition.
pub fn arrow_type_of(sql_type: &str) -> Result<DataType> {
    let mut parser = Parser::new(&GenericDialect {}).try_with_sql(sql_type)?;
    let parsed = parser.parse_data_type()?;
    arrow_type(&parsed)
}

pub fn arrow_type(sql_type: &SqlType) -> Result<DataType> {
    let unsupported = || {
        Error::unsupported(format!(
            "column type {sql_type} is not supported yet; use BIGINT, INT, SMALLINT, TINYINT, BOOLEAN, DOUBLE, FLOAT, DECIMAL(p,s), VARCHAR, DATE or TIMESTAMP"
        ))
    };
    Ok(match sql_type {
        SqlType::BigInt(_) | SqlType::Int8(_) | SqlType::Int64 => DataType::Int64,
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) | SqlType::Int32 => DataType::Int32,
        SqlType::SmallInt(_) | SqlType::Int2(_) | SqlType::Int16 => DataType::Int16,
        SqlType::TinyInt(_) => DataType::Int8,
        SqlType::Boolean | SqlType::Bool => DataType::Boolean,
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 | SqlType::Float64 => DataType::Float64,
        SqlType::Real | SqlType::Float4 | SqlType::Float32 => DataType::Float32,
        SqlType::Float(info) => match info {
            ExactNumberInfo::Precision(p) if *p > 24 => DataType::Float64,
            _ => DataType::Float32,
        },
        SqlType::Varchar(_)
        | SqlType::CharacterVarying(_)
        | SqlType::CharVarying(_)
        | SqlType::Char(_)
        | SqlType::Character(_)
        | SqlType::Text
        | SqlType::String(_) => DataType::Utf8,
        SqlType::Bytea | SqlType::Varbinary(_) | SqlType::Binary(_) | SqlType::Bytes(_) => DataType::Binary,
        SqlType::Date => DataType::Date32,
        // Flink's MAP<K, V>; Weir reads it only as Kafka's `headers` metadata (checked by the planner).
        SqlType::Map(key, value) => map_type(arrow_type(key)?, arrow_type(value)?),
        SqlType::Timestamp(precision, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            DataType::Timestamp(timestamp_unit(sql_type, *precision)?, None)
        }
        // Flink's TIMESTAMP_LTZ(p): an instant. Weir's timestamps are UTC instants already.
        SqlType::Custom(name, modifiers) if name.to_string().eq_ignore_ascii_case("TIMESTAMP_LTZ") => {
            let precision = match modifiers.as_slice() {
                [] => None,
                [p] => Some(
                    p.parse::<u64>()
                        .map_err(|_| Error::invalid(format!("{sql_type}: the precision must be a number")))?,
                ),
                _ => return Err(unsupported()),
            };
            DataType::Timestamp(timestamp_unit(sql_type, precision)?, None)
        }
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => {
            let (precision, scale) = match info {
                ExactNumberInfo::None => (38, 10),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
            };
            if precision == 0 || precision > 38 || scale < 0 || scale as u64 > precision {
                return Err(Error::invalid(format!(
                    "{sql_type}: DECIMAL needs 1 <= precision <= 38 and 0 <= scale <= precision"
                )));
            }
            DataType::Decimal128(precision as u8, scale as i8)
        }
        _ => return Err(unsupported()),
    })
}

/// The Arrow unit of `TIMESTAMP(precision)`.
fn timestamp_unit(sql_type: &SqlType, precision: Option<u64>) -> Result<TimeUnit> {
    Ok(match precision {
        None | Some(7..=9) => TimeUnit::Nanosecond,
        Some(0) => TimeUnit::Second,
        Some(1..=3) => TimeUnit::Millisecond,
        Some(4..=6) => TimeUnit::Microsecond,
        Some(_) => return Err(Error::invalid(format!("{sql_type}: TIMESTAMP precision is at most 9"))),
    })
}

/// The Arrow type of `MAP<key, value>`, with the field names arrow's `MapBuilder` gives it.
pub fn map_type(key: DataType, value: DataType) -> DataType {
    let entries = Fields::from(vec![Field::new("keys", key, false), Field::new("values", value, true)]);
    DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
}

/// The SQL spelling of an Arrow type Weir's columns can have (the inverse of [`arrow_type`]), for
/// a computed column whose type comes from its expression.
pub fn sql_type_name(data_type: &DataType) -> Result<String> {
    Ok(match data_type {
        DataType::Int64 => "BIGINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTEA".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(unit, None) => format!(
            "TIMESTAMP({})",
            match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            }
        ),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        other => {
            return Err(Error::unsupported(format!(
                "a column of type {other} is not supported; cast the expression to BIGINT, DOUBLE, VARCHAR, TIMESTAMP, ..."
            )));
        }
    })
}
