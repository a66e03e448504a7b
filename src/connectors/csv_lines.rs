//! A CSV push decoder for the common file: most lines hold no quote, so they are split at their
//! commas eight bytes at a time and only the projected fields are parsed, into builders of the
//! column types.
//! A line with a quote or a lone carriage return goes through `csv_core`, the tokenizer arrow's
//! CSV reader uses, so quoted fields (line breaks inside them included) read as they do there.
//!
//! It follows arrow's CSV decoder (`arrow::csv::reader::Decoder`) value for value: an empty field
//! is NULL, blank lines are skipped, numbers, dates and booleans parse with arrow's own parsers and a
//! timestamp as `string_to_datetime` in UTC (its common `YYYY-MM-DD HH:MM:SS[.fff]` spelling is
//! parsed directly, the rest by that function). Arrow spends most of its time in the tokenizer,
//! which copies every byte of every field; this decoder reads the lines of a bids file at several
//! times its speed. Column types it does not build leave the file to arrow's decoder
//! ([`CsvLineDecoder::supports`]).

use std::sync::Arc;

use csv_core::{ReadRecordResult, Reader};
use datafusion::arrow::array::{ArrayRef, BooleanBuilder, PrimitiveBuilder, StringBuilder};
use datafusion::arrow::compute::kernels::cast_utils::{Parser, string_to_datetime};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, ArrowTimestampType, DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

/// Builds one projected column from field text.
trait ColumnBuilder: Send {
    /// Appends one field (`None`: the field is empty, so NULL). The error says what is wrong with
    /// the value; the caller adds where it is.
    fn push(&mut self, field: Option<&str>) -> Result<(), String>;
    fn finish(&mut self) -> ArrayRef;
}

/// Numbers and dates: arrow's parser of the type, as arrow's CSV reader uses it.
struct Primitive<T: ArrowPrimitiveType>(PrimitiveBuilder<T>);

impl<T: ArrowPrimitiveType + Parser> ColumnBuilder for Primitive<T> {
    fn push(&mut self, field: Option<&str>) -> Result<(), String> {
        match field {
            None => self.0.append_null(),
            Some(text) => match T::parse(text) {
                Some(value) => self.0.append_value(value),
                None => return Err(format!("cannot parse '{text}' as {}", T::DATA_TYPE)),
            },
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

/// A timestamp without time zone: the text read as UTC, as arrow's CSV reader does.
struct Timestamp<T: ArrowTimestampType>(PrimitiveBuilder<T>, LastDate);

impl<T: ArrowTimestampType> ColumnBuilder for Timestamp<T> {
    fn push(&mut self, field: Option<&str>) -> Result<(), String> {
        let Some(text) = field else {
            self.0.append_null();
            return Ok(());
        };
        let value = match plain_timestamp(text.as_bytes(), T::UNIT, &mut self.1) {
            Some(value) => value,
            None => {
                let at = string_to_datetime(&chrono::Utc, text).map_err(|e| e.to_string())?;
                match T::UNIT {
                    TimeUnit::Second => at.timestamp(),
                    TimeUnit::Millisecond => at.timestamp_millis(),
                    TimeUnit::Microsecond => at.timestamp_micros(),
                    TimeUnit::Nanosecond => at
                        .timestamp_nanos_opt()
                        .ok_or_else(|| format!("{} would overflow 64-bit signed nanoseconds", at.to_rfc3339()))?,
                }
            }
        };
        self.0.append_value(value);
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

struct Utf8(StringBuilder);

impl ColumnBuilder for Utf8 {
    fn push(&mut self, field: Option<&str>) -> Result<(), String> {
        self.0.append_option(field);
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

struct Boolean(BooleanBuilder);

impl ColumnBuilder for Boolean {
    fn push(&mut self, field: Option<&str>) -> Result<(), String> {
        match field {
            None => self.0.append_null(),
            Some(text) if text.eq_ignore_ascii_case("true") => self.0.append_value(true),
            Some(text) if text.eq_ignore_ascii_case("false") => self.0.append_value(false),
            Some(text) => return Err(format!("cannot parse '{text}' as Boolean")),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

fn primitive<T: ArrowPrimitiveType + Parser>(capacity: usize) -> Box<dyn ColumnBuilder> {
    Box::new(Primitive::<T>(PrimitiveBuilder::with_capacity(capacity)))
}

fn timestamp<T: ArrowTimestampType>(capacity: usize) -> Box<dyn ColumnBuilder> {
    Box::new(Timestamp::<T>(PrimitiveBuilder::with_capacity(capacity), LastDate::default()))
}

/// The builder of a column type, `None` for the types left to arrow's decoder.
fn column_builder(data_type: &DataType, capacity: usize) -> Option<Box<dyn ColumnBuilder>> {
    Some(match data_type {
        DataType::Int8 => primitive::<Int8Type>(capacity),
        DataType::Int16 => primitive::<Int16Type>(capacity),
        DataType::Int32 => primitive::<Int32Type>(capacity),
        DataType::Int64 => primitive::<Int64Type>(capacity),
        DataType::UInt8 => primitive::<UInt8Type>(capacity),
        DataType::UInt16 => primitive::<UInt16Type>(capacity),
        DataType::UInt32 => primitive::<UInt32Type>(capacity),
        DataType::UInt64 => primitive::<UInt64Type>(capacity),
        DataType::Float32 => primitive::<Float32Type>(capacity),
        DataType::Float64 => primitive::<Float64Type>(capacity),
        DataType::Date32 => primitive::<Date32Type>(capacity),
        DataType::Timestamp(TimeUnit::Second, None) => timestamp::<TimestampSecondType>(capacity),
        DataType::Timestamp(TimeUnit::Millisecond, None) => timestamp::<TimestampMillisecondType>(capacity),
        DataType::Timestamp(TimeUnit::Microsecond, None) => timestamp::<TimestampMicrosecondType>(capacity),
        DataType::Timestamp(TimeUnit::Nanosecond, None) => timestamp::<TimestampNanosecondType>(capacity),
        DataType::Utf8 => Box::new(Utf8(StringBuilder::with_capacity(capacity, capacity * 16))),
        DataType::Boolean => Box::new(Boolean(BooleanBuilder::with_capacity(capacity))),
        _ => return None,
    })
}

/// The last date a timestamp column parsed and its day number: the rows of a file mostly share it.
#[derive(Default)]
struct LastDate(Option<([u8; 10], i64)>);

impl LastDate {
    /// The days since the epoch of `YYYY-MM-DD`; `None` when it is not a valid date so spelled.
    fn days(&mut self, text: &[u8; 10]) -> Option<i64> {
        if let Some((date, days)) = self.0
            && date == *text
        {
            return Some(days);
        }
        if text[4] != b'-' || text[7] != b'-' {
            return None;
        }
        let year = two_digits(text, 0)? * 100 + two_digits(text, 2)?;
        let (month, day) = (two_digits(text, 5)?, two_digits(text, 8)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let days = days_from_civil(year, month, day);
        self.0 = Some((*text, days));
        Some(days)
    }
}

fn two_digits(text: &[u8], at: usize) -> Option<i64> {
    let (tens, ones) = (text[at].wrapping_sub(b'0'), text[at + 1].wrapping_sub(b'0'));
    (tens < 10 && ones < 10).then(|| i64::from(tens * 10 + ones))
}

/// `YYYY-MM-DD HH:MM:SS` (or with `T`), optionally with `.` and 1 to 9 fraction digits, in `unit`
/// since the epoch; `None` for any other spelling or an impossible date or time (the caller then
/// asks arrow's parser, which knows every spelling and says what is wrong).
fn plain_timestamp(text: &[u8], unit: TimeUnit, last_date: &mut LastDate) -> Option<i64> {
    let (Some(date), Some(time)) = (text.first_chunk::<10>(), text.get(10..19)) else {
        return None;
    };
    if !matches!(time[0], b' ' | b'T') || time[3] != b':' || time[6] != b':' {
        return None;
    }
    let days = last_date.days(date)?;
    let (hour, minute, second) = (two_digits(time, 1)?, two_digits(time, 4)?, two_digits(time, 7)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let nanos = match &text[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let mut nanos = 0i64;
            for digit in fraction {
                let digit = digit.wrapping_sub(b'0');
                if digit >= 10 {
                    return None;
                }
                nanos = nanos * 10 + i64::from(digit);
            }
            nanos * 10i64.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    match unit {
        TimeUnit::Second => Some(seconds),
        TimeUnit::Millisecond => Some(seconds * 1_000 + nanos / 1_000_000),
        TimeUnit::Microsecond => Some(seconds * 1_000_000 + nanos / 1_000),
        TimeUnit::Nanosecond => seconds.checked_mul(1_000_000_000)?.checked_add(nanos),
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Splits a line at its commas into `spans`, eight bytes at a time; false when the line holds a
/// quote or a carriage return, which the tokenizer must read.
fn split_plain_line(line: &[u8], spans: &mut Vec<(usize, usize)>) -> bool {
    /// 0x80 in each byte of `word` that is 0 (exact: no borrow runs into the next byte).
    fn zero_bytes(word: u64) -> u64 {
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        !(((word & LOW7) + LOW7) | word | LOW7)
    }
    const fn splat(byte: u8) -> u64 {
        u64::from_le_bytes([byte; 8])
    }
    spans.clear();
    let mut start = 0;
    let words = line.chunks_exact(8);
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    let words = words.map(|w| {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        word
    });
    for (index, word) in words.chain(std::iter::once(tail)).enumerate() {
        let (at, word) = (index * 8, u64::from_le_bytes(word));
        if zero_bytes(word ^ splat(b'"')) | zero_bytes(word ^ splat(b'\r')) != 0 {
            return false;
        }
        let mut commas = zero_bytes(word ^ splat(b','));
        while commas != 0 {
            let comma = at + commas.trailing_zeros() as usize / 8;
            spans.push((start, comma));
            start = comma + 1;
            commas &= commas - 1;
        }
    }
    spans.push((start, line.len()));
    true
}

/// A record `csv_core` is reading: its unescaped bytes and the end of each field in them.
#[derive(Default)]
struct QuotedRecord {
    bytes: Vec<u8>,
    len: usize,
    ends: Vec<usize>,
    fields: usize,
    /// A record was started and is not complete yet (its input ended inside it).
    open: bool,
}

/// The projected columns being built, a record at a time.
struct ProjectedRows {
    /// The projected columns' schema.
    schema: SchemaRef,
    /// Fields per record.
    num_fields: usize,
    /// For each field of a record, the builder it goes to (if projected).
    builder_of_field: Vec<Option<usize>>,
    builders: Vec<Box<dyn ColumnBuilder>>,
    /// The declared field index of each builder, for errors.
    field_of_builder: Vec<usize>,
    /// Rows in the builders.
    rows: usize,
    /// The next record is the header line: dropped.
    skip_header: bool,
    /// Records seen, the header included (arrow numbers lines the same way in errors).
    records: u64,
}

impl ProjectedRows {
    /// One record, its fields at `spans` of `bytes`. After an error the decoder is not used again
    /// (the read fails), so a row left half pushed does not matter.
    fn record(&mut self, bytes: &[u8], spans: &[(usize, usize)]) -> Result<(), ArrowError> {
        self.records += 1;
        if self.skip_header {
            self.skip_header = false;
            return Ok(());
        }
        if spans.len() != self.num_fields {
            return Err(ArrowError::CsvError(format!(
                "incorrect number of fields for line {}, expected {} got {}",
                self.records,
                self.num_fields,
                spans.len()
            )));
        }
        // The whole record is checked, as arrow does; commas and field ends are char boundaries.
        let record = std::str::from_utf8(bytes).map_err(|e| {
            ArrowError::CsvError(format!(
                "Encountered invalid UTF-8 data for line {} at byte {}",
                self.records,
                e.valid_up_to()
            ))
        })?;
        for (field, &(start, end)) in spans.iter().enumerate() {
            let Some(builder) = self.builder_of_field[field] else { continue };
            let text = &record[start..end];
            let value = (!text.is_empty()).then_some(text);
            if let Err(what) = self.builders[builder].push(value) {
                return Err(ArrowError::ParseError(format!(
                    "{what} for column {} ({}) at line {}",
                    self.field_of_builder[builder],
                    self.schema.field(builder).name(),
                    self.records
                )));
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows built since the last call; `None` when there are none.
    fn finish(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows == 0 {
            return Ok(None);
        }
        let columns = self.builders.iter_mut().map(|b| b.finish()).collect();
        let rows = std::mem::take(&mut self.rows);
        let options = datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(Some(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?))
    }
}

/// See the module documentation.
pub struct CsvLineDecoder {
    rows: ProjectedRows,
    batch_size: usize,
    tokenizer: Reader,
    quoted: QuotedRecord,
    /// Scratch: the start and end of each field of the record at hand.
    spans: Vec<(usize, usize)>,
}

impl CsvLineDecoder {
    /// Whether every projected column has a type this decoder builds.
    pub fn supports(declared: &SchemaRef, columns: &[usize]) -> bool {
        columns.iter().all(|&i| column_builder(declared.field(i).data_type(), 0).is_some())
    }

    pub fn new(declared: &SchemaRef, columns: &[usize], batch_size: usize, skip_header: bool) -> Result<Self, ArrowError> {
        let mut builder_of_field = vec![None; declared.fields().len()];
        let mut builders = Vec::with_capacity(columns.len());
        for (builder, &field) in columns.iter().enumerate() {
            let data_type = declared.field(field).data_type();
            builders.push(
                column_builder(data_type, batch_size)
                    .ok_or_else(|| ArrowError::NotYetImplemented(format!("the line decoder does not build {data_type} columns")))?,
            );
            builder_of_field[field] = Some(builder);
        }
        Ok(CsvLineDecoder {
            rows: ProjectedRows {
                schema: Arc::new(declared.project(columns)?),
                num_fields: declared.fields().len(),
                builder_of_field,
                builders,
                field_of_builder: columns.to_vec(),
                rows: 0,
                skip_header,
                records: 0,
            },
            batch_size,
            tokenizer: Reader::new(),
            quoted: QuotedRecord::default(),
            spans: Vec::new(),
        })
    }

    /// Decodes whole records from `input` until the batch is full; returns the bytes taken. The
    /// bytes of a record cut by the end of `input` are taken and kept. An empty `input` means the
    /// input ended: a record still open is completed.
    pub fn decode(&mut self, input: &[u8]) -> Result<usize, ArrowError> {
        if input.is_empty() {
            if self.quoted.open {
                self.read_quoted(input)?;
            }
            return Ok(0);
        }
        let mut at = 0;
        while at < input.len() && self.rows.rows < self.batch_size {
            if self.quoted.open {
                at += self.read_quoted(&input[at..])?;
                continue;
            }
            let Some(newline) = memchr::memchr(b'\n', &input[at..]) else {
                // The last line, without its newline: the tokenizer keeps it until the input ends.
                at += self.read_quoted(&input[at..])?;
                continue;
            };
            let mut line = &input[at..at + newline];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                at += newline + 1;
            } else if split_plain_line(line, &mut self.spans) {
                self.rows.record(line, &self.spans)?;
                at += newline + 1;
            } else {
                at += self.read_quoted(&input[at..])?;
            }
        }
        Ok(at)
    }

    /// Runs the tokenizer over `input` for at most one record; returns the bytes it took.
    fn read_quoted(&mut self, input: &[u8]) -> Result<usize, ArrowError> {
        let record = &mut self.quoted;
        if !record.open {
            record.len = 0;
            record.fields = 0;
            record.open = true;
        }
        let mut taken = 0;
        loop {
            if record.bytes.len() - record.len < 1024 {
                record.bytes.resize(record.bytes.len() * 2 + 1024, 0);
            }
            if record.ends.len() <= record.fields {
                record.ends.resize(record.ends.len() * 2 + self.rows.num_fields + 1, 0);
            }
            let (result, read, written, ends) =
                self.tokenizer
                    .read_record(&input[taken..], &mut record.bytes[record.len..], &mut record.ends[record.fields..]);
            taken += read;
            record.len += written;
            record.fields += ends;
            match result {
                ReadRecordResult::InputEmpty | ReadRecordResult::End => {
                    if input.is_empty() {
                        // The input ended with no record open (blank lines only).
                        record.open = false;
                    }
                    return Ok(taken);
                }
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => continue,
                ReadRecordResult::Record => {
                    record.open = false;
                    self.spans.clear();
                    let mut start = 0;
                    for &end in &record.ends[..record.fields] {
                        self.spans.push((start, end));
                        start = end;
                    }
                    self.rows.record(&record.bytes[..record.len], &self.spans)?;
                    return Ok(taken);
                }
            }
        }
    }

    /// The rows decoded since the last flush; `None` when there are none.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.quoted.open && self.quoted.len + self.quoted.fields > 0 {
            return Err(ArrowError::CsvError("Cannot flush part way through record".to_string()));
        }
        self.rows.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::csv;
    use datafusion::arrow::datatypes::{Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("day", DataType::Date32, true),
        ]))
    }

    /// The two push decoders compared.
    trait PushDecoder {
        fn decode(&mut self, bytes: &[u8]) -> Result<usize, ArrowError>;
        fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError>;
    }

    impl PushDecoder for CsvLineDecoder {
        fn decode(&mut self, bytes: &[u8]) -> Result<usize, ArrowError> {
            CsvLineDecoder::decode(self, bytes)
        }
        fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
            CsvLineDecoder::flush(self)
        }
    }

    impl PushDecoder for csv::reader::Decoder {
        fn decode(&mut self, bytes: &[u8]) -> Result<usize, ArrowError> {
            csv::reader::Decoder::decode(self, bytes)
        }
        fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
            csv::reader::Decoder::flush(self)
        }
    }

    fn lines(text: &str, columns: &[usize], batch_size: usize) -> Result<Vec<RecordBatch>, ArrowError> {
        decode_all(text.as_bytes(), CsvLineDecoder::new(&schema(), columns, batch_size, true)?)
    }

    fn arrow(text: &str, columns: &[usize], batch_size: usize) -> Result<Vec<RecordBatch>, ArrowError> {
        let decoder = csv::ReaderBuilder::new(schema())
            .with_header(true)
            .with_batch_size(batch_size)
            .with_projection(columns.to_vec())
            .build_decoder();
        decode_all(text.as_bytes(), decoder)
    }

    /// Feeds `input` a line at a time, the way a reader that just filled its buffer gives it.
    fn decode_all(mut input: &[u8], mut decoder: impl PushDecoder) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut batches = Vec::new();
        loop {
            let line = memchr::memchr(b'\n', input).map_or(input.len(), |i| i + 1);
            let taken = decoder.decode(&input[..line])?;
            input = &input[taken..];
            if taken < line || input.is_empty() {
                if input.is_empty() {
                    decoder.decode(&[])?;
                }
                batches.extend(decoder.flush()?);
                if input.is_empty() {
                    return Ok(batches);
                }
            }
        }
    }

    fn both(text: &str, columns: &[usize], batch_size: usize) -> Vec<RecordBatch> {
        let ours = lines(text, columns, batch_size).expect("line decoder");
        let theirs = arrow(text, columns, batch_size).expect("arrow decoder");
        let concat = |b: &[RecordBatch]| {
            datafusion::arrow::compute::concat_batches(&Arc::new(schema().project(columns).expect("projection")), b).expect("concat")
        };
        assert_eq!(concat(&ours), concat(&theirs), "{text:?}");
        ours
    }

    #[test]
    fn reads_what_arrow_reads() {
        let text = "id,name,price,ok,ts,day\n\
                    1,apple,1.5,true,2023-11-14 22:13:20.123,2023-11-14\n\
                    2,,2,FALSE,2023-11-14T22:13:20,1970-01-01\r\n\
                    \n\
                    3,\"quoted, with comma\",-0.25,,2023-11-14 22:13:20.5,\n\
                    4,\"two\nlines \"\"and\"\" quotes\",,true,1960-02-29 01:02:03.456789,2000-02-29\n\
                    6,a name longer than one block of sixty-four bytes: split across blocks,3,true,2023-11-14 22:13:20.1,\n\
                    5,last,7,false,2024-02-29 23:59:59,2024-02-29";
        let batches = both(text, &[0, 1, 2, 3, 4, 5], 2);
        assert_eq!(batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), vec![2, 2, 2]);
        both(text, &[4, 0], 1024);
        both(text, &[1], 3);
    }

    #[test]
    fn timestamps_in_other_spellings_go_to_arrow_s_parser() {
        let text = "id,name,price,ok,ts,day\n1,a,1,true,2023-11-14T22:13:20Z,2023-11-14\n\
                    2,b,1,true,2023-11-14 22:13:20+02:00,2023-11-14\n3,c,1,true,2023-11-14,2023-11-14\n";
        both(text, &[4], 10);
        for (text, unit, expected) in [
            ("2023-11-14 22:13:20.000", TimeUnit::Millisecond, Some(1_700_000_000_000)),
            ("1969-12-31 23:59:59.5", TimeUnit::Millisecond, Some(-500)),
            ("2023-02-29 00:00:00", TimeUnit::Second, None),
            ("2023-11-14 24:00:00", TimeUnit::Second, None),
            ("2023-11-14 22:13:20.1234567890", TimeUnit::Nanosecond, None),
        ] {
            assert_eq!(plain_timestamp(text.as_bytes(), unit, &mut LastDate::default()), expected, "{text}");
        }
    }

    #[test]
    fn plain_lines_split_at_every_comma_and_no_other_byte() {
        let alphabet: &[u8] = b",a\xac\xff\x2d\x2b\x00\x7f\xc3,,";
        let mut seed = 7u64;
        for length in 0..150 {
            let line: Vec<u8> = (0..length)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    alphabet[(seed >> 33) as usize % alphabet.len()]
                })
                .collect();
            let mut spans = Vec::new();
            assert!(split_plain_line(&line, &mut spans));
            let expected: Vec<&[u8]> = line.split(|b| *b == b',').collect();
            let found: Vec<&[u8]> = spans.iter().map(|&(a, b)| &line[a..b]).collect();
            assert_eq!(found, expected, "{line:?}");
            let mut quoted = line.clone();
            quoted.push(b'"');
            assert!(!split_plain_line(&quoted, &mut spans));
        }
    }

    #[test]
    fn bad_records_fail_with_their_line() {
        let header = "id,name,price,ok,ts,day\n";
        let short = format!("{header}1,a,1,true,2023-11-14 22:13:20,2023-11-14\n2,b\n");
        let error = lines(&short, &[0], 10).expect_err("too few fields");
        assert!(
            error
                .to_string()
                .contains("incorrect number of fields for line 3, expected 6 got 2"),
            "{error}"
        );
        let bad = format!("{header}x1,a,1,true,2023-11-14 22:13:20,2023-11-14\n");
        let error = lines(&bad, &[1, 0], 10).expect_err("not a number");
        assert!(
            error.to_string().contains("cannot parse 'x1' as Int64 for column 0 (id) at line 2"),
            "{error}"
        );
        let bad = format!("{header}1,a,1,true,2023-13-14 22:13:20,2023-11-14\n");
        let error = lines(&bad, &[4], 10).expect_err("no month 13");
        assert!(error.to_string().contains("for column 4 (ts) at line 2"), "{error}");
        assert!(arrow(&bad, &[4], 10).is_err());
    }

    #[test]
    fn an_open_quote_at_the_end_of_the_input_is_not_flushed_as_a_row() {
        let mut decoder = CsvLineDecoder::new(&schema(), &[1], 10, false).expect("decoder");
        let taken = decoder.decode(b"1,\"open\n").expect("decode");
        assert_eq!(taken, 8, "the bytes of the open record are kept");
        assert!(decoder.flush().is_err());
    }
}
