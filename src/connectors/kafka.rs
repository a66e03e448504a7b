//! The `kafka` source's options (Flink's option keys, so Flink DDL moves over), its checkpointed
//! position and how partitions are spread over source subtasks. The consumer itself is in
//! `kafka_source.rs`.
//!
//! Weir assigns partitions itself (as Flink's KafkaSource does, not through a group subscription):
//! partition p of topic t belongs to subtask (crc32(t) + p) mod parallelism, so every subtask finds
//! its share from the same metadata, and a restore at another parallelism redistributes them. The
//! position is partition -> next offset; committing offsets to the group is for lag tools only.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::catalog::{ColumnDef, ColumnKind, map_type, schema_of};
use crate::connectors::MAX_BATCH_ROWS;
use crate::connectors::record_format::RecordFormat;
use crate::error::{Error, Result, UserErrorKind};
use crate::runtime::SourcePosition;
use crate::settings::parse_duration;

/// Which topics a source reads.
#[derive(Debug, Clone)]
pub enum Topics {
    /// `topic` = 't' or 't1;t2'.
    Named(Vec<String>),
    /// `topic-pattern`: every topic whose whole name matches (also topics created later).
    Pattern(Regex),
}

impl Topics {
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Topics::Named(names) => names.iter().any(|n| n == topic),
            Topics::Pattern(pattern) => pattern.is_match(topic),
        }
    }
}

/// `scan.startup.mode`: where partitions start when no checkpoint says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupMode {
    EarliestOffset,
    LatestOffset,
    /// The group's committed offsets; without one, `properties.auto.offset.reset` decides.
    GroupOffsets,
    /// The first record at or after this time (epoch milliseconds).
    Timestamp(i64),
    /// `partition:0,offset:42;partition:1,offset:300`; partitions not listed start at the group's
    /// committed offsets, as Flink does.
    SpecificOffsets(BTreeMap<i32, i64>),
}

/// `scan.bounded.mode`: where a bounded source stops (Flink's option; `unbounded` is the default).
/// Each partition's stop offset is resolved once, when the partition is first assigned, and kept
/// in the checkpoint, so a restore stops at the same records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundedMode {
    /// The partitions' ends when the job starts.
    LatestOffset,
    /// The group's committed offsets (a partition without one stops at its end).
    GroupOffsets,
    /// Before the first record at or after this time (epoch milliseconds).
    Timestamp(i64),
    /// `partition:0,offset:42;...`; partitions not listed stop at their end.
    SpecificOffsets(BTreeMap<i32, i64>),
}

/// An error of librdkafka for the client `client` (a source or a table) while doing `what`: a bad
/// option is the user's to fix, the rest is the broker's side.
pub(crate) fn client_error(client: &str, what: &str, error: rdkafka::error::KafkaError) -> Error {
    use rdkafka::error::KafkaError;
    let kind = match &error {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => UserErrorKind::InvalidParameter,
        _ => UserErrorKind::ExternalSystem,
    };
    Error::user(kind, format!("{client}: {what}: {error}"))
}

/// A fact about each record, declared as a METADATA column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMeta {
    Topic,
    Partition,
    Offset,
    /// The record's timestamp (create or log-append time), milliseconds.
    Timestamp,
    /// `CreateTime`, `LogAppendTime` or `NoTimestampType`.
    TimestampType,
    /// The record's headers, key to value (a header without a value maps to NULL).
    Headers,
}

impl RecordMeta {
    fn parse(key: &str) -> Result<Self> {
        Ok(match key {
            "topic" => RecordMeta::Topic,
            "partition" => RecordMeta::Partition,
            "offset" => RecordMeta::Offset,
            "timestamp" => RecordMeta::Timestamp,
            "timestamp-type" => RecordMeta::TimestampType,
            "headers" => RecordMeta::Headers,
            "leader-epoch" => {
                return Err(Error::unsupported(format!("the Kafka metadata key '{key}' is not supported yet")));
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown Kafka metadata key '{other}'; use 'timestamp', 'partition', 'offset', 'topic', 'timestamp-type' or 'headers'"
                )));
            }
        })
    }

    /// The type the value is built in (then cast to the declared type).
    pub fn data_type(self) -> DataType {
        match self {
            RecordMeta::Topic | RecordMeta::TimestampType => DataType::Utf8,
            RecordMeta::Partition => DataType::Int32,
            RecordMeta::Offset => DataType::Int64,
            RecordMeta::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            RecordMeta::Headers => map_type(DataType::Utf8, DataType::Binary),
        }
    }
}

/// Where a column of the source's records comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordColumn {
    /// Column `n` of the decoded value.
    Value(usize),
    /// Column `n` of the decoded key (`key.fields`).
    Key(usize),
    Meta(RecordMeta),
}

#[derive(Debug, Clone)]
pub struct KafkaSourceConfig {
    /// The source's name, for errors and the consumer's client.id.
    pub source: String,
    pub topics: Topics,
    /// `properties.*` without the prefix, given to librdkafka as they are.
    pub properties: BTreeMap<String, String>,
    pub startup: StartupMode,
    /// `scan.bounded.mode`; `None`: unbounded.
    pub bounded: Option<BoundedMode>,
    /// `scan.topic-partition-discovery.interval`; `None` turns discovery off (always for a
    /// bounded source: its set of partitions is fixed at start, as in Flink).
    pub discovery_interval: Option<Duration>,
    /// `scan.watermark.idle-timeout`.
    pub idle_timeout: Option<Duration>,
    pub value_format: RecordFormat,
    pub value_schema: SchemaRef,
    /// `key.format` and the columns of `key.fields`.
    pub key: Option<(RecordFormat, SchemaRef)>,
    /// `json.ignore-parse-errors` / `csv.ignore-parse-errors`: skip records the format cannot
    /// decode (counted), instead of failing the job.
    pub ignore_parse_errors: bool,
    /// Records per batch at most.
    pub batch_size: usize,
    /// Each column of the source's records (declared order, computed ones left out).
    pub columns: Vec<RecordColumn>,
    /// 'upsert-kafka': a record is the latest row of its key, a tombstone deletes it; batches
    /// carry row kinds (update-after, delete).
    pub upsert: bool,
}

/// Flink's default discovery interval.
const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The options the Kafka source and sinks share: librdkafka's `properties.*` and the record
/// layout (`format`, `key.format`, `value.fields-include`), with Flink's keys.
#[derive(Debug, Default)]
pub struct SharedOptions {
    pub properties: BTreeMap<String, String>,
    pub value_format: Option<RecordFormat>,
    pub key_format: Option<RecordFormat>,
    /// `value.fields-include` = `EXCEPT_KEY`.
    pub except_key: bool,
}

impl SharedOptions {
    /// Takes the option if it is one of these; false if not.
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            k if k.starts_with("properties.") => {
                self.properties.insert(k["properties.".len()..].to_string(), value.to_string());
            }
            "format" | "value.format" => self.value_format = Some(RecordFormat::parse(key, value)?),
            "key.format" => self.key_format = Some(RecordFormat::parse(key, value)?),
            "value.fields-include" => {
                self.except_key = match value.to_ascii_uppercase().as_str() {
                    "ALL" => false,
                    "EXCEPT_KEY" => true,
                    _ => {
                        return Err(Error::invalid(format!(
                            "'value.fields-include' is 'ALL' or 'EXCEPT_KEY', not '{value}'"
                        )));
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl KafkaSourceConfig {
    /// `columns`: the source's columns but computed ones.
    pub fn from_options(source: &str, options: &BTreeMap<String, String>, columns: &[ColumnDef]) -> Result<Self> {
        let mut topic = None;
        let mut pattern = None;
        let mut shared = SharedOptions::default();
        let mut mode = None;
        let mut timestamp = None;
        let mut specific = None;
        let mut bounded_mode = None;
        let mut bounded_timestamp = None;
        let mut bounded_specific = None;
        let mut discovery_interval = Some(DEFAULT_DISCOVERY_INTERVAL);
        let mut idle_timeout = None;
        let mut key_fields: Vec<String> = Vec::new();
        let mut ignore_parse_errors = false;
        let mut batch_size = 8192;
        for (key, value) in options {
            if shared.take(key, value)? {
                continue;
            }
            match key.as_str() {
                "topic" => topic = Some(list(value)),
                "topic-pattern" => {
                    pattern = Some(
                        Regex::new(&format!("^(?:{value})$"))
                            .map_err(|e| Error::invalid(format!("'topic-pattern' is not a valid regular expression: {e}")))?,
                    )
                }
                "scan.startup.mode" => mode = Some(value.to_ascii_lowercase()),
                "scan.startup.timestamp-millis" => timestamp = Some(epoch_millis(key, value)?),
                "scan.startup.specific-offsets" => specific = Some(specific_offsets(key, value)?),
                "scan.bounded.mode" => bounded_mode = Some(value.to_ascii_lowercase()),
                "scan.bounded.timestamp-millis" => bounded_timestamp = Some(epoch_millis(key, value)?),
                "scan.bounded.specific-offsets" => bounded_specific = Some(specific_offsets(key, value)?),
                "scan.topic-partition-discovery.interval" => {
                    let interval = parse_duration(key, value)?;
                    discovery_interval = (!interval.is_zero()).then_some(interval);
                }
                "scan.watermark.idle-timeout" => {
                    let timeout = parse_duration(key, value)?;
                    idle_timeout = (!timeout.is_zero()).then_some(timeout);
                }
                "key.fields" => key_fields = list(value),
                "json.ignore-parse-errors"
                | "value.json.ignore-parse-errors"
                | "csv.ignore-parse-errors"
                | "value.csv.ignore-parse-errors" => ignore_parse_errors = parse_bool(key, value)?,
                "batch.size" => {
                    batch_size = value.parse().ok().filter(|n| (1..=MAX_BATCH_ROWS).contains(n)).ok_or_else(|| {
                        Error::invalid(format!(
                            "'batch.size' must be an integer between 1 and {MAX_BATCH_ROWS}, not '{value}'"
                        ))
                    })?
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown option '{other}' for the kafka connector; it takes topic, topic-pattern, properties.*, scan.startup.mode, scan.startup.timestamp-millis, scan.startup.specific-offsets, scan.bounded.mode, scan.bounded.timestamp-millis, scan.bounded.specific-offsets, scan.topic-partition-discovery.interval, scan.watermark.idle-timeout, format, key.format, key.fields, value.fields-include, json.ignore-parse-errors, csv.ignore-parse-errors, batch.size, batch.linger"
                    )));
                }
            }
        }
        let SharedOptions {
            properties,
            value_format,
            key_format,
            except_key,
        } = shared;
        let topics = match (topic, pattern) {
            (Some(names), None) if !names.is_empty() => Topics::Named(names),
            (None, Some(pattern)) => Topics::Pattern(pattern),
            (Some(_), Some(_)) => return Err(Error::invalid("give either 'topic' or 'topic-pattern', not both")),
            _ => {
                return Err(Error::invalid(
                    "the kafka connector needs 'topic' (one name, or several separated by ';') or 'topic-pattern'",
                ));
            }
        };
        if !properties.contains_key("bootstrap.servers") {
            return Err(Error::invalid("the kafka connector needs 'properties.bootstrap.servers'"));
        }
        for reserved in ["enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof"] {
            if properties.contains_key(reserved) {
                return Err(Error::invalid(format!(
                    "'properties.{reserved}' is set by Weir: offsets are committed when a checkpoint completes"
                )));
            }
        }
        let startup = match mode.as_deref().unwrap_or("group-offsets") {
            "earliest-offset" => StartupMode::EarliestOffset,
            "latest-offset" => StartupMode::LatestOffset,
            "group-offsets" => StartupMode::GroupOffsets,
            "timestamp" => StartupMode::Timestamp(
                timestamp.ok_or_else(|| Error::invalid("'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis'"))?,
            ),
            "specific-offsets" => StartupMode::SpecificOffsets(
                specific.ok_or_else(|| Error::invalid("'scan.startup.mode' = 'specific-offsets' needs 'scan.startup.specific-offsets'"))?,
            ),
            other => {
                return Err(Error::invalid(format!(
                    "'scan.startup.mode' = '{other}' is unknown; use 'earliest-offset', 'latest-offset', 'group-offsets', 'timestamp' or 'specific-offsets'"
                )));
            }
        };
        let bounded = match bounded_mode.as_deref().unwrap_or("unbounded") {
            "unbounded" => None,
            "latest-offset" => Some(BoundedMode::LatestOffset),
            "group-offsets" => Some(BoundedMode::GroupOffsets),
            "timestamp" => Some(BoundedMode::Timestamp(bounded_timestamp.ok_or_else(|| {
                Error::invalid("'scan.bounded.mode' = 'timestamp' needs 'scan.bounded.timestamp-millis'")
            })?)),
            "specific-offsets" => Some(BoundedMode::SpecificOffsets(bounded_specific.ok_or_else(|| {
                Error::invalid("'scan.bounded.mode' = 'specific-offsets' needs 'scan.bounded.specific-offsets'")
            })?)),
            other => {
                return Err(Error::invalid(format!(
                    "'scan.bounded.mode' = '{other}' is unknown; use 'unbounded', 'latest-offset', 'group-offsets', 'timestamp' or 'specific-offsets'"
                )));
            }
        };
        if bounded.is_some() {
            discovery_interval = None;
        }
        let needs_group =
            matches!(startup, StartupMode::GroupOffsets | StartupMode::SpecificOffsets(_)) || bounded == Some(BoundedMode::GroupOffsets);
        if needs_group && !properties.contains_key("group.id") {
            return Err(Error::invalid(
                "'group-offsets' and 'specific-offsets' ('scan.startup.mode' = 'group-offsets' is the default) need 'properties.group.id'; or set 'scan.startup.mode' = 'earliest-offset'",
            ));
        }
        let value_format = value_format.ok_or_else(|| Error::invalid("the kafka connector needs 'format' ('json', 'csv' or 'raw')"))?;

        // Which record column comes from the key, the value or the record's metadata.
        let physical: Vec<&ColumnDef> = columns.iter().filter(|c| c.kind.is_physical()).collect();
        for field in &key_fields {
            if !physical.iter().any(|c| &c.name == field) {
                return Err(Error::not_found("key.fields column", field));
            }
        }
        let key = match (key_format, key_fields.is_empty()) {
            (Some(format), false) => {
                let key_columns: Vec<ColumnDef> = key_fields
                    .iter()
                    .filter_map(|f| physical.iter().find(|c| &c.name == f).map(|c| (*c).clone()))
                    .collect();
                let schema = schema_of(&key_columns)?;
                format.check(&schema).map_err(|e| e.context("key.format"))?;
                Some((format, schema))
            }
            (None, true) => None,
            (Some(_), true) => return Err(Error::invalid("'key.format' needs 'key.fields'")),
            (None, false) => return Err(Error::invalid("'key.fields' needs 'key.format'")),
        };
        if except_key && key.is_none() {
            return Err(Error::invalid("'value.fields-include' = 'EXCEPT_KEY' needs 'key.fields'"));
        }
        let value_columns: Vec<ColumnDef> = physical
            .iter()
            .filter(|c| !(except_key && key_fields.contains(&c.name)))
            .map(|c| (*c).clone())
            .collect();
        let value_schema = schema_of(&value_columns)?;
        value_format.check(&value_schema).map_err(|e| e.context("format"))?;
        let mut record_columns = Vec::with_capacity(columns.len());
        for column in columns {
            record_columns.push(match &column.kind {
                ColumnKind::Metadata { key } => {
                    let meta = RecordMeta::parse(key).map_err(|e| e.context(format!("column '{}'", column.name)))?;
                    let declared = column.data_type()?;
                    if !can_cast_types(&meta.data_type(), &declared) {
                        return Err(Error::type_mismatch(format!(
                            "column '{}': the Kafka metadata '{key}' is {}, which cannot be read as {}",
                            column.name,
                            meta.data_type(),
                            column.sql_type
                        )));
                    }
                    RecordColumn::Meta(meta)
                }
                // Key fields come from the key, as in Flink (also when the value holds them too).
                _ => match key_fields.iter().position(|f| f == &column.name) {
                    Some(k) => RecordColumn::Key(k),
                    None => RecordColumn::Value(
                        value_columns
                            .iter()
                            .position(|c| c.name == column.name)
                            .ok_or_else(|| Error::internal(format!("column '{}' is in no format", column.name)))?,
                    ),
                },
            });
        }
        Ok(KafkaSourceConfig {
            source: source.to_string(),
            topics,
            properties,
            startup,
            bounded,
            discovery_interval,
            idle_timeout,
            value_format,
            value_schema,
            key,
            ignore_parse_errors,
            batch_size,
            columns: record_columns,
            upsert: false,
        })
    }

    /// Flink's 'upsert-kafka' source: the PRIMARY KEY is the record key (`key.format` decodes
    /// it), and the topic is always read from its earliest offset, since the latest row of every
    /// key may lie anywhere in it.
    pub fn from_upsert_options(
        source: &str,
        options: &BTreeMap<String, String>,
        columns: &[ColumnDef],
        primary_key: &[String],
    ) -> Result<Self> {
        let mut options = options.clone();
        for own in ["key.fields", "topic-pattern"] {
            if options.contains_key(own) {
                return Err(Error::invalid(format!(
                    "'{own}' is not an option of the upsert-kafka connector: its PRIMARY KEY is the record key, read from one 'topic'"
                )));
            }
        }
        if let Some(option) = options.keys().find(|k| k.starts_with("scan.startup.")) {
            return Err(Error::invalid(format!(
                "'{option}' is not an option of the upsert-kafka connector: it reads the topic from the earliest offset"
            )));
        }
        if !options.contains_key("key.format") {
            return Err(Error::invalid("the upsert-kafka connector needs 'key.format' for its PRIMARY KEY"));
        }
        // A tombstone's row has its key only.
        if let Some(column) = columns
            .iter()
            .find(|c| c.kind.is_physical() && !c.nullable && !primary_key.contains(&c.name))
        {
            return Err(Error::invalid(format!(
                "column '{}' of an upsert-kafka source cannot be NOT NULL: a delete (tombstone) carries only the key",
                column.name
            )));
        }
        options.insert("key.fields".into(), primary_key.join(";"));
        options.insert("scan.startup.mode".into(), "earliest-offset".into());
        let mut config = Self::from_options(source, &options, columns)?;
        config.upsert = true;
        Ok(config)
    }

    /// The group the source commits offsets to (for lag monitoring), if any.
    pub fn group(&self) -> Option<&str> {
        self.properties.get("group.id").map(String::as_str)
    }
}

/// Flink's list syntax: `a;b`.
fn list(value: &str) -> Vec<String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid(format!("'{key}' is 'true' or 'false', not '{value}'"))),
    }
}

fn epoch_millis(key: &str, value: &str) -> Result<i64> {
    value
        .parse::<i64>()
        .ok()
        .filter(|t| *t >= 0)
        .ok_or_else(|| Error::invalid(format!("'{key}' must be epoch milliseconds, not '{value}'")))
}

/// `partition:0,offset:42;partition:1,offset:300` (the value of option `key`).
fn specific_offsets(key: &str, value: &str) -> Result<BTreeMap<i32, i64>> {
    let bad = || Error::invalid(format!("'{key}' = '{value}': write 'partition:0,offset:42;partition:1,offset:300'"));
    let mut offsets = BTreeMap::new();
    for entry in list(value) {
        let mut partition = None;
        let mut offset = None;
        for part in entry.split(',') {
            match part.trim().split_once(':') {
                Some(("partition", p)) => partition = Some(p.trim().parse::<i32>().map_err(|_| bad())?),
                Some(("offset", o)) => offset = Some(o.trim().parse::<i64>().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        match (partition, offset) {
            (Some(p), Some(o)) if p >= 0 && o >= 0 => offsets.insert(p, o),
            _ => return Err(bad()),
        };
    }
    if offsets.is_empty() {
        return Err(bad());
    }
    Ok(offsets)
}

/// The source subtask that reads `partition` of `topic` at `parallelism`.
pub fn owner(topic: &str, partition: i32, parallelism: usize) -> usize {
    let start = crc32fast::hash(topic.as_bytes()) as u64;
    ((start + partition.max(0) as u64) % parallelism.max(1) as u64) as usize
}

/// What a Kafka source subtask's checkpoint records: topic -> partition -> the offset of the next
/// record to read, and for a bounded source the offset it stops at (field names: the checkpoint
/// format).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaPosition {
    pub offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stops: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl KafkaPosition {
    pub fn encode(&self) -> SourcePosition {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub fn decode(position: &SourcePosition) -> Result<Self> {
        KafkaPosition::deserialize(position).map_err(|e| Error::internal(format!("Kafka source position {position} is malformed: {e}")))
    }

    /// Every old subtask's partitions together: on a restore each new subtask takes the
    /// partitions it owns now, whatever the old parallelism was.
    pub fn merged(positions: &[SourcePosition]) -> Result<SourcePosition> {
        let mut merged = KafkaPosition::default();
        for position in positions {
            let position = KafkaPosition::decode(position)?;
            for (topic, partitions) in position.offsets {
                merged.offsets.entry(topic).or_default().extend(partitions);
            }
            for (topic, partitions) in position.stops {
                merged.stops.entry(topic).or_default().extend(partitions);
            }
        }
        Ok(merged.encode())
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets.get(topic).and_then(|p| p.get(&partition)).copied()
    }

    pub fn stop(&self, topic: &str, partition: i32) -> Option<i64> {
        self.stops.get(topic).and_then(|p| p.get(&partition)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_offsets_parse_flinks_syntax() {
        let key = "scan.startup.specific-offsets";
        let offsets = specific_offsets(key, "partition:0,offset:42;partition:1,offset:300").unwrap();
        assert_eq!(offsets, BTreeMap::from([(0, 42), (1, 300)]));
        assert!(specific_offsets(key, "partition:0").is_err());
        assert!(specific_offsets(key, "partition:-1,offset:3").is_err());
    }

    #[test]
    fn partitions_spread_over_subtasks_and_positions_merge() {
        let counts = (0..8).fold([0; 2], |mut c, p| {
            c[owner("bids", p, 2)] += 1;
            c
        });
        assert_eq!(counts, [4, 4]);
        let a = KafkaPosition {
            offsets: BTreeMap::from([("t".to_string(), BTreeMap::from([(0, 5)]))]),
            stops: BTreeMap::from([("t".to_string(), BTreeMap::from([(0, 9)]))]),
        };
        let b = KafkaPosition {
            offsets: BTreeMap::from([("t".to_string(), BTreeMap::from([(1, 7)]))]),
            ..KafkaPosition::default()
        };
        // An unbounded source's position has no "stops" (checkpoints written before it existed).
        assert_eq!(b.encode(), serde_json::json!({"offsets": {"t": {"1": 7}}}));
        let merged = KafkaPosition::decode(&KafkaPosition::merged(&[a.encode(), b.encode()]).unwrap()).unwrap();
        assert_eq!(merged.get("t", 0), Some(5));
        assert_eq!(merged.get("t", 1), Some(7));
        assert_eq!(merged.stop("t", 0), Some(9));
        assert_eq!(merged.stop("t", 1), None);
    }
}
