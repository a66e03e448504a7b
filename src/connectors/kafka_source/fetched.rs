//! A Kafka source subtask's fetched records and their decoding: the records of one partition as
//! fetched (`Fetched`, buffers reused from fetch to fetch), and `KafkaSource::decode`, which turns
//! them into rows of the handed-out columns (value and key parts, metadata columns, tombstones).
//! A record that cannot be read fails the job with its topic, partition and offset, or is skipped
//! and counted when parse errors are ignored.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Int32Array, Int64Array, MapArray, MapBuilder, StringArray, StringBuilder, TimestampMillisecondArray,
    UInt32Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::KafkaSource;
use crate::connectors::kafka::{RecordColumn, RecordMeta};
use crate::connectors::record_format::{self, BadRecord, MessageDecoder, RecordFormat};
use crate::error::{Error, Result, UserErrorKind};
use crate::message::{RowKind, with_row_kinds};
use crate::runtime::SplitId;

/// Records of one partition fetched but not yet decoded.
#[derive(Default)]
pub(super) struct Fetched {
    pub(super) offsets: Vec<i64>,
    /// The values, one after the other (one buffer, not an allocation per record).
    pub(super) values: Vec<u8>,
    pub(super) value_ends: Vec<usize>,
    /// Only where key columns are read (`take_fetched`).
    pub(super) keys: Vec<Option<Vec<u8>>>,
    pub(super) timestamps: Vec<Option<i64>>,
    pub(super) timestamp_types: Vec<&'static str>,
    /// Only when a `headers` column is read: every record's headers one after the other, and where
    /// each record's end.
    pub(super) headers: Vec<(String, Option<Vec<u8>>)>,
    pub(super) header_ends: Vec<usize>,
    /// Which records are tombstones (records without a value): kept by an upsert source only,
    /// whose deletes they are.
    pub(super) tombstones: Vec<bool>,
    /// After the last record, tombstones (records without a value, skipped) included.
    pub(super) next: i64,
}

/// The `headers` column of the `kept` records. A key a record repeats maps to its last value, as
/// in Flink (which puts the headers into a map one after the other).
fn headers_map(records: &Fetched, kept: &[usize]) -> Result<MapArray> {
    let mut map = MapBuilder::new(None, StringBuilder::new(), BinaryBuilder::new());
    for &record in kept {
        let start = if record == 0 { 0 } else { records.header_ends[record - 1] };
        let headers = &records.headers[start..records.header_ends[record]];
        for (index, (key, value)) in headers.iter().enumerate() {
            if headers[index + 1..].iter().any(|(later, _)| later == key) {
                continue;
            }
            map.keys().append_value(key);
            map.values().append_option(value.as_deref());
        }
        map.append(true)?;
    }
    Ok(map.finish())
}

/// Decodes one part of the records (value or key) into the part's columns that are read.
pub(super) struct PartDecoder {
    decoder: MessageDecoder,
    /// Which of the part's columns those are, ascending: column `read[n]` is decoded column n.
    read: Vec<usize>,
}

impl PartDecoder {
    /// `None` when no column of the part is read.
    pub(super) fn of(format: RecordFormat, schema: &SchemaRef, read: impl Iterator<Item = usize>) -> Result<Option<Self>> {
        let read: Vec<usize> = read.collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        if read.is_empty() {
            return Ok(None);
        }
        Ok(Some(PartDecoder {
            decoder: MessageDecoder::new(format, schema.clone(), read.clone())?,
            read,
        }))
    }

    /// The decoded column holding the part's column `column`.
    fn position(&self, column: usize) -> Result<usize> {
        self.read
            .binary_search(&column)
            .map_err(|_| Error::internal(format!("column {column} of a Kafka record part is not decoded")))
    }
}

impl Fetched {
    /// Empties the buffers, keeping their memory.
    pub(super) fn clear(&mut self) {
        self.offsets.clear();
        self.values.clear();
        self.value_ends.clear();
        self.keys.clear();
        self.timestamps.clear();
        self.timestamp_types.clear();
        self.headers.clear();
        self.header_ends.clear();
        self.tombstones.clear();
        self.next = 0;
    }
}

impl KafkaSource {
    /// One partition's records as rows of the handed-out columns.
    pub(super) fn decode(&mut self, split: SplitId, records: &Fetched) -> Result<RecordBatch> {
        let config = self.config.clone();
        let skip_bad = config.ignore_parse_errors;
        let Some(split) = self.splits.get(split as usize) else {
            return Err(Error::internal(format!("Kafka split {split} is unknown")));
        };
        let (topic, partition) = (split.topic.clone(), split.partition);
        let bad_record = |format: RecordFormat, part: &str, bad: BadRecord| {
            Error::user(
                UserErrorKind::MalformedRecord,
                format!(
                    "Kafka source '{}': the record in topic '{topic}' partition {partition} at offset {} cannot be read as {} ({part}): {}{}",
                    config.source,
                    records.offsets.get(bad.index).copied().unwrap_or(-1),
                    format.name(),
                    bad.reason,
                    if skip_bad {
                        ""
                    } else {
                        "; set 'json.ignore-parse-errors' = 'true' to skip such records"
                    }
                ),
            )
        };
        let values: Vec<&[u8]> = records
            .value_ends
            .iter()
            .scan(0, |start, &end| {
                let value = &records.values[*start..end];
                *start = end;
                Some(value)
            })
            .collect();
        // Tombstones have no value to decode: their value columns are null.
        let valued: Vec<usize> = (0..values.len()).filter(|i| !records.tombstones[*i]).collect();
        let mut value = if let Some(part) = self.value.as_mut() {
            let present: Vec<&[u8]> = valued.iter().map(|i| values[*i]).collect();
            let mut decoded = part.decoder.decode(&present, skip_bad).map_err(|mut b| {
                b.index = valued.get(b.index).copied().unwrap_or(b.index);
                bad_record(config.value_format, "value", b)
            })?;
            decoded.kept = decoded.kept.iter().map(|k| valued[*k]).collect();
            Some(decoded)
        } else {
            None
        };
        let mut key = match (&config.key, self.key.as_mut()) {
            (Some((format, _)), Some(part)) => {
                let mut keyed = Vec::with_capacity(records.keys.len());
                let mut missing = None;
                for (i, key) in records.keys.iter().enumerate() {
                    match key {
                        Some(key) => keyed.push(key.as_slice()),
                        None if skip_bad => keyed.push(&[]),
                        None => {
                            missing.get_or_insert(i);
                            keyed.push(&[]);
                        }
                    }
                }
                if let Some(index) = missing {
                    return Err(bad_record(
                        *format,
                        "key",
                        BadRecord {
                            index,
                            reason: "the record has no key".into(),
                        },
                    ));
                }
                Some(part.decoder.decode(&keyed, skip_bad).map_err(|b| bad_record(*format, "key", b))?)
            }
            _ => None,
        };
        // The records every part could read (all of them unless bad ones are skipped).
        let all: Vec<usize> = (0..records.offsets.len()).collect();
        let mut kept = all.clone();
        if let Some(decoded) = &value {
            kept.retain(|i| records.tombstones[*i] || decoded.kept.binary_search(i).is_ok());
        }
        if let Some(decoded) = &key {
            kept.retain(|i| decoded.kept.binary_search(i).is_ok());
        }
        let skipped = records.offsets.len() - kept.len();
        if skipped > 0 {
            self.skipped += skipped as u64;
            self.skipped_untaken += skipped as u64;
            tracing::warn!(
                "Kafka source '{}': skipped {skipped} malformed record(s) in topic '{topic}' partition {partition} ({} so far)",
                config.source,
                self.skipped
            );
        }
        // Rows of a decoded part for the kept records.
        let narrow = |decoded: &mut Option<record_format::Decoded>| -> Result<()> {
            if let Some(decoded) = decoded
                && decoded.kept.len() != kept.len()
            {
                // A tombstone's row in the value part is null.
                let rows: UInt32Array = kept.iter().map(|i| decoded.kept.binary_search(i).ok().map(|r| r as u32)).collect();
                let columns = decoded
                    .batch
                    .columns()
                    .iter()
                    .map(|c| Ok(take(c.as_ref(), &rows, None)?))
                    .collect::<Result<Vec<_>>>()?;
                decoded.batch = RecordBatch::try_new(decoded.batch.schema(), columns)?;
                decoded.kept = kept.clone();
            }
            Ok(())
        };
        narrow(&mut value)?;
        narrow(&mut key)?;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (out, column) in self.columns.iter().enumerate() {
            let array: ArrayRef = match &config.columns[*column] {
                RecordColumn::Value(i) => Self::part_column(&self.value, &value, *i)?,
                RecordColumn::Key(i) => Self::part_column(&self.key, &key, *i)?,
                RecordColumn::Meta(meta) => {
                    let meta: ArrayRef = match meta {
                        RecordMeta::Topic => Arc::new(StringArray::from(vec![topic.as_str(); kept.len()])),
                        RecordMeta::Partition => Arc::new(Int32Array::from(vec![partition; kept.len()])),
                        RecordMeta::Offset => Arc::new(Int64Array::from(kept.iter().map(|i| records.offsets[*i]).collect::<Vec<_>>())),
                        RecordMeta::Timestamp => Arc::new(TimestampMillisecondArray::from(
                            kept.iter().map(|i| records.timestamps[*i]).collect::<Vec<_>>(),
                        )),
                        RecordMeta::TimestampType => Arc::new(StringArray::from(
                            kept.iter().map(|i| records.timestamp_types[*i]).collect::<Vec<_>>(),
                        )),
                        RecordMeta::Headers => Arc::new(headers_map(records, &kept)?),
                    };
                    cast(&meta, self.schema.field(out).data_type())?
                }
            };
            arrays.push(array);
        }
        let options = datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(kept.len()));
        let rows = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)?;
        if !config.upsert {
            return Ok(rows);
        }
        let kinds = kept
            .iter()
            .map(|i| {
                if records.tombstones[*i] {
                    RowKind::Delete
                } else {
                    RowKind::UpdateAfter
                }
            })
            .collect();
        with_row_kinds(&rows, kinds)
    }

    /// Column `column` of a record part, from the part's decoded rows.
    fn part_column(part: &Option<PartDecoder>, decoded: &Option<record_format::Decoded>, column: usize) -> Result<ArrayRef> {
        match (part, decoded) {
            (Some(part), Some(decoded)) => Ok(decoded.batch.column(part.position(column)?).clone()),
            _ => Err(Error::internal(format!("column {column} of a Kafka record part is not decoded"))),
        }
    }
}
