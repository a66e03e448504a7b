//! The formats of message-queue records (Flink's `format`, `key.format`): JSON, CSV or raw bytes,
//! one record per row. Records are decoded many at a time with arrow's JSON and CSV decoders; only
//! when that fails (or a record holds other than exactly one row) is each record decoded alone, to
//! find the bad one and say which, or skip it (`json.ignore-parse-errors`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, StringArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::json;
use datafusion::arrow::record_batch::RecordBatch;

use crate::connectors::file_reader::{JsonNesting, MAX_JSON_DEPTH};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    Json,
    Csv,
    /// The record's bytes as the one column (VARCHAR: must be UTF-8; BYTEA).
    Raw,
}

impl RecordFormat {
    /// `option`: the option's key, for the error.
    pub fn parse(option: &str, value: &str) -> Result<Self> {
        match value.to_ascii_lowercase().as_str() {
            "json" => Ok(RecordFormat::Json),
            "csv" => Ok(RecordFormat::Csv),
            "raw" => Ok(RecordFormat::Raw),
            other => Err(Error::invalid(format!(
                "'{option}' = '{other}' is unknown; use 'json', 'csv' or 'raw'"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordFormat::Json => "json",
            RecordFormat::Csv => "csv",
            RecordFormat::Raw => "raw",
        }
    }

    /// Whether this format can hold the columns `schema`.
    pub fn check(self, schema: &SchemaRef) -> Result<()> {
        if self == RecordFormat::Raw {
            let fields = schema.fields();
            if fields.len() != 1 || !matches!(fields[0].data_type(), DataType::Utf8 | DataType::Binary) {
                return Err(Error::invalid(format!(
                    "the raw format holds exactly one VARCHAR or BYTEA column, not ({})",
                    fields
                        .iter()
                        .map(|f| format!("{} {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// A record that could not be decoded: its index among the records given, and why.
#[derive(Debug)]
pub struct BadRecord {
    pub index: usize,
    pub reason: String,
}

/// What a decode produced: one row per kept record, and which records were kept (all of them
/// unless bad ones were skipped).
pub struct Decoded {
    pub batch: RecordBatch,
    pub kept: Vec<usize>,
}

/// Decodes records of one format into rows of a projection of their schema, many records at a
/// time. Arrow's decoder is kept between calls, so its buffers are allocated once per source
/// subtask rather than once per batch.
pub struct MessageDecoder {
    format: RecordFormat,
    /// Every field a record holds (CSV fields are positional).
    record_schema: SchemaRef,
    /// Which of them are decoded: a JSON object's other members are skipped unread, as by Flink's
    /// projection push-down into its JSON format.
    projection: Vec<usize>,
    schema: SchemaRef,
    /// Arrow's decoder for up to `capacity` records, kept while it decodes without error.
    kept: Option<(ArrowDecoder, usize)>,
}

/// Boxed: a CSV decoder is four times a JSON one, and the source holds one per record part.
enum ArrowDecoder {
    Json(Box<json::reader::Decoder>),
    Csv(Box<csv::reader::Decoder>),
}

impl MessageDecoder {
    pub fn new(format: RecordFormat, record_schema: SchemaRef, projection: Vec<usize>) -> Result<Self> {
        Ok(MessageDecoder {
            format,
            schema: Arc::new(record_schema.project(&projection)?),
            record_schema,
            projection,
            kept: None,
        })
    }

    /// The decoded rows' columns.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Decodes `records`. A bad record fails the whole call, or with `skip_bad` is left out.
    pub fn decode(&mut self, records: &[&[u8]], skip_bad: bool) -> std::result::Result<Decoded, BadRecord> {
        let all = || (0..records.len()).collect::<Vec<_>>();
        if let Ok(batch) = self.decode_all(records)
            && batch.num_rows() == records.len()
        {
            return Ok(Decoded { batch, kept: all() });
        }
        // Slow path: one record at a time.
        let mut batches = Vec::new();
        let mut kept = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let outcome = match self.decode_all(&[*record]) {
                Ok(batch) if batch.num_rows() == 1 => Ok(batch),
                Ok(batch) => Err(format!("holds {} rows, not one", batch.num_rows())),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(batch) => {
                    batches.push(batch);
                    kept.push(index);
                }
                Err(_) if skip_bad => {}
                Err(reason) => return Err(BadRecord { index, reason }),
            }
        }
        let batch = concat_batches(&self.schema, &batches).map_err(|e| BadRecord {
            index: 0,
            reason: e.to_string(),
        })?;
        Ok(Decoded { batch, kept })
    }

    /// Arrow's decoder for at least `records` records: the kept one, or a new one.
    fn arrow_decoder(&mut self, records: usize) -> Result<ArrowDecoder> {
        if let Some((decoder, capacity)) = self.kept.take()
            && capacity >= records
        {
            return Ok(decoder);
        }
        let capacity = records.max(1);
        Ok(match self.format {
            RecordFormat::Json => ArrowDecoder::Json(Box::new(
                json::ReaderBuilder::new(self.schema.clone())
                    .with_batch_size(capacity)
                    .build_decoder()?,
            )),
            RecordFormat::Csv => ArrowDecoder::Csv(Box::new(
                csv::ReaderBuilder::new(self.record_schema.clone())
                    .with_header(false)
                    .with_projection(self.projection.clone())
                    .with_batch_size(capacity * 2)
                    .build_decoder(),
            )),
            RecordFormat::Raw => return Err(Error::internal("the raw format has no arrow decoder")),
        })
    }

    fn decode_all(&mut self, records: &[&[u8]]) -> Result<RecordBatch> {
        if self.format == RecordFormat::Raw {
            return self.decode_raw(records);
        }
        let capacity = records.len().max(1);
        let mut decoder = self.arrow_decoder(capacity)?;
        let batch = Self::decode_with(&mut decoder, records)?.unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone()));
        // A decoder that failed, or read a row count other than one per record, may hold half a
        // record (an open CSV quote): only one that read exactly the records given is kept.
        if batch.num_rows() == records.len() {
            self.kept = Some((decoder, capacity));
        }
        Ok(batch)
    }

    fn decode_with(decoder: &mut ArrowDecoder, records: &[&[u8]]) -> Result<Option<RecordBatch>> {
        match decoder {
            ArrowDecoder::Json(decoder) => {
                for record in records {
                    // arrow's JSON decoder recurses per level of nesting.
                    if JsonNesting::exceeds(record, MAX_JSON_DEPTH) {
                        return Err(Error::invalid(format!("JSON nested deeper than {MAX_JSON_DEPTH} levels")));
                    }
                    let read = decoder.decode(record)?;
                    if read != record.len() {
                        return Err(Error::invalid("more than one JSON value"));
                    }
                    // A record that ends inside a value must not run into the next one.
                    decoder.decode(b"\n")?;
                    if decoder.has_partial_record() {
                        return Err(Error::invalid("incomplete JSON value"));
                    }
                }
                Ok(decoder.flush()?)
            }
            ArrowDecoder::Csv(decoder) => {
                for record in records {
                    for mut rest in [*record, b"\n"] {
                        while !rest.is_empty() {
                            let read = decoder.decode(rest)?;
                            if read == 0 {
                                return Err(Error::invalid("a CSV record with more rows than expected"));
                            }
                            rest = &rest[read..];
                        }
                    }
                }
                Ok(decoder.flush()?)
            }
        }
    }

    fn decode_raw(&self, records: &[&[u8]]) -> Result<RecordBatch> {
        let column: ArrayRef = match self.record_schema.field(0).data_type() {
            DataType::Utf8 => {
                let texts = records
                    .iter()
                    .map(|r| std::str::from_utf8(r).map_err(|e| Error::invalid(format!("not UTF-8 text: {e}"))))
                    .collect::<Result<Vec<_>>>()?;
                Arc::new(StringArray::from(texts))
            }
            _ => Arc::new(BinaryArray::from(records.to_vec())),
        };
        Ok(RecordBatch::try_new(self.schema.clone(), vec![column])?)
    }
}

/// Encodes each row of `batch` as one record's bytes (JSON objects keyed by column name with
/// explicit nulls; CSV lines without a header; raw: the one column's bytes).
pub fn encode(format: RecordFormat, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    match format {
        RecordFormat::Json => {
            let mut buffer = Vec::new();
            let mut writer = json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, json::writer::LineDelimited>(&mut buffer);
            writer.write(batch)?;
            writer.finish()?;
            drop(writer);
            // JSON escapes newlines inside strings: each line is one row.
            Ok(buffer
                .split(|b| *b == b'\n')
                .filter(|line| !line.is_empty())
                .map(<[u8]>::to_vec)
                .collect())
        }
        RecordFormat::Csv => (0..batch.num_rows())
            .map(|row| {
                let mut line = Vec::new();
                let mut writer = csv::WriterBuilder::new().with_header(false).build(&mut line);
                writer.write(&batch.slice(row, 1))?;
                drop(writer);
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                Ok(line)
            })
            .collect(),
        RecordFormat::Raw => {
            let column = batch.column(0);
            let value = |row: usize| -> Result<Vec<u8>> {
                if column.is_null(row) {
                    return Err(Error::invalid("the raw format cannot write a NULL value"));
                }
                Ok(match column.data_type() {
                    DataType::Utf8 => column.as_string::<i32>().value(row).as_bytes().to_vec(),
                    _ => column.as_binary::<i32>().value(row).to_vec(),
                })
            };
            (0..batch.num_rows()).map(value).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};

    fn decode(format: RecordFormat, schema: &SchemaRef, records: &[&[u8]], skip_bad: bool) -> std::result::Result<Decoded, BadRecord> {
        let all = (0..schema.fields().len()).collect();
        MessageDecoder::new(format, schema.clone(), all).unwrap().decode(records, skip_bad)
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn json_records_decode_and_bad_ones_are_found_or_skipped() {
        let records: Vec<&[u8]> = vec![
            br#"{"a": 1, "b": "x"}"#,
            b"{\n \"a\": 2\n}",
            br#"{"a": "#,
            br#"{"a": 4}{"a": 5}"#,
            b"7",
        ];
        let bad = decode(RecordFormat::Json, &schema(), &records, false).err().unwrap();
        assert_eq!(bad.index, 2);
        let kept = decode(RecordFormat::Json, &schema(), &records, true).unwrap();
        assert_eq!(kept.kept, vec![0, 1]);
        let a = kept.batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(a.values(), &[1, 2]);
        let deep = format!("{}{}", "[".repeat(MAX_JSON_DEPTH + 1), "]".repeat(MAX_JSON_DEPTH + 1));
        assert!(decode(RecordFormat::Json, &schema(), &[deep.as_bytes()], false).is_err());
    }

    #[test]
    fn csv_and_raw_round_trip_through_encode() {
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("a,b"), Some("c")])),
            ],
        )
        .unwrap();
        let lines = encode(RecordFormat::Csv, &batch).unwrap();
        let records: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let back = decode(RecordFormat::Csv, &schema(), &records, false).unwrap();
        assert_eq!(back.batch, batch);
        let json = encode(RecordFormat::Json, &batch).unwrap();
        assert_eq!(json[1], br#"{"a":null,"b":"c"}"#.to_vec());
        let raw_schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, true)]));
        let raw = decode(RecordFormat::Raw, &raw_schema, &[b"hello", b"\xff"], true).unwrap();
        assert_eq!(raw.kept, vec![0]);
    }

    #[test]
    fn a_kept_decoder_reads_only_the_projected_fields_and_recovers_after_a_bad_batch() {
        for (format, good, bad) in [
            (
                RecordFormat::Json,
                [&br#"{"a": 1, "b": "x"}"#[..], br#"{"b": "y", "a": 2}"#],
                &br#"{"a": "#[..],
            ),
            (RecordFormat::Csv, [&b"1,x"[..], b"2,y"], &b"z,\"open"[..]),
        ] {
            let mut decoder = MessageDecoder::new(format, schema(), vec![1]).unwrap();
            assert_eq!(decoder.schema().fields().len(), 1);
            let first = decoder.decode(&good, false).unwrap();
            assert_eq!(
                first.batch.column(0).as_string::<i32>().iter().collect::<Vec<_>>(),
                vec![Some("x"), Some("y")]
            );
            assert!(decoder.decode(&[good[0], bad], false).is_err(), "{format:?}");
            let again = decoder.decode(&good[1..], false).unwrap();
            assert_eq!(again.batch.column(0).as_string::<i32>().value(0), "y", "{format:?}");
        }
    }
}
