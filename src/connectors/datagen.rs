//! The `datagen` source: random rows of the declared columns, deterministic for a seed (every value
//! is a function of seed, row number and column), as Flink's datagen connector. Options:
//! `number-of-rows` (bounded), `rows-per-second` (pacing), `seed`, and per column
//! `fields.<col>.min` / `.max` (numbers), `.length` (strings), `.kind` = `random` | `sequence`
//! (`.start`, `.end`). TIMESTAMP columns advance with the row number at rows-per-second, so event
//! time is deterministic too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::connectors::pacer::Pacer;
use crate::connectors::rescale::{GeneratorPosition, ReadBefore};
use crate::error::{Error, Result};
use crate::runtime::{Source, SourcePosition};

/// Event time of row 0 (2023-11-14T22:13:20Z), fixed so runs are reproducible.
const BASE_TIME_NANOS: i64 = 1_700_000_000_000_000_000;

#[derive(Debug, Clone)]
enum FieldKind {
    Random { min: f64, max: f64, length: usize },
    Sequence { start: i64, end: i64 },
}

/// The longest random string (`fields.<col>.length`); a batch holds 4,096 of them.
pub const MAX_STRING_LENGTH: usize = 10_000;

#[derive(Debug, Clone)]
pub struct DatagenConfig {
    pub number_of_rows: Option<u64>,
    pub rows_per_second: u64,
    pub seed: u64,
    fields: Vec<FieldKind>,
}

impl DatagenConfig {
    pub fn from_options(options: &BTreeMap<String, String>, schema: &Schema) -> Result<Self> {
        let number = |key: &str, value: &str| -> Result<f64> {
            value
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| Error::invalid(format!("option '{key}' must be a finite number, not '{value}'")))
        };
        let integer = |key: &str, value: &str| -> Result<u64> {
            value
                .parse::<u64>()
                .map_err(|_| Error::invalid(format!("option '{key}' must be a non-negative integer, not '{value}'")))
        };
        let mut config = DatagenConfig {
            number_of_rows: None,
            rows_per_second: 10_000,
            seed: 0,
            fields: vec![
                FieldKind::Random {
                    min: 0.0,
                    max: 1000.0,
                    length: 10
                };
                schema.fields().len()
            ],
        };
        let mut sequence_bounds: BTreeMap<usize, (Option<i64>, Option<i64>)> = BTreeMap::new();
        for (key, value) in options {
            match key.as_str() {
                "number-of-rows" => config.number_of_rows = Some(integer(key, value)?),
                "rows-per-second" => {
                    config.rows_per_second = Some(integer(key, value)?)
                        .filter(|r| *r > 0)
                        .ok_or_else(|| Error::invalid(format!("option '{key}' must be a positive integer, not '{value}'")))?
                }
                "seed" => config.seed = integer(key, value)?,
                _ => {
                    let parts: Vec<&str> = key.splitn(3, '.').collect();
                    let [prefix, column, property] = parts.as_slice() else {
                        return Err(Error::invalid(format!("unknown option '{key}' for the datagen connector")));
                    };
                    let index = (*prefix == "fields")
                        .then(|| schema.fields().iter().position(|f| f.name().eq_ignore_ascii_case(column)))
                        .flatten()
                        .ok_or_else(|| Error::invalid(format!("option '{key}' names no declared column")))?;
                    match (*property, &mut config.fields[index]) {
                        ("kind", field) => match value.to_ascii_lowercase().as_str() {
                            "random" => {}
                            "sequence" => *field = FieldKind::Sequence { start: 0, end: i64::MAX },
                            other => {
                                return Err(Error::invalid(format!("'{key}' must be 'random' or 'sequence', not '{other}'")));
                            }
                        },
                        ("min", FieldKind::Random { min, .. }) => *min = number(key, value)?,
                        ("max", FieldKind::Random { max, .. }) => *max = number(key, value)?,
                        ("length", FieldKind::Random { length, .. }) => {
                            *length = Some(integer(key, value)?)
                                .filter(|l| *l <= MAX_STRING_LENGTH as u64)
                                .ok_or_else(|| {
                                    Error::invalid(format!("option '{key}' must be at most {MAX_STRING_LENGTH}, not '{value}'"))
                                })? as usize
                        }
                        ("start", _) => sequence_bounds.entry(index).or_default().0 = Some(number(key, value)? as i64),
                        ("end", _) => sequence_bounds.entry(index).or_default().1 = Some(number(key, value)? as i64),
                        _ => {
                            return Err(Error::invalid(format!("unknown option '{key}' for the datagen connector")));
                        }
                    }
                }
            }
        }
        for (index, (start, end)) in sequence_bounds {
            match &mut config.fields[index] {
                FieldKind::Sequence { start: s, end: e } => {
                    *s = start.unwrap_or(0);
                    *e = end.unwrap_or(i64::MAX);
                }
                FieldKind::Random { .. } => {
                    return Err(Error::invalid(format!(
                        "'start'/'end' need 'fields.{}.kind' = 'sequence'",
                        schema.field(index).name()
                    )));
                }
            }
        }
        for (i, f) in schema.fields().iter().enumerate() {
            let ok = matches!(
                f.data_type(),
                DataType::Timestamp(_, _) | DataType::Utf8 | DataType::Boolean | DataType::Date32
            ) || f.data_type().is_numeric();
            if !ok {
                return Err(Error::unsupported(format!(
                    "datagen cannot generate column '{}' of type {}",
                    f.name(),
                    f.data_type()
                )));
            }
            if let (FieldKind::Random { min, max, .. }, true) = (&config.fields[i], f.data_type().is_numeric())
                && min > max
            {
                return Err(Error::invalid(format!(
                    "fields.{}.min must not exceed fields.{}.max",
                    f.name(),
                    f.name()
                )));
            }
        }
        Ok(config)
    }
}

pub struct DatagenSource {
    config: DatagenConfig,
    schema: SchemaRef,
    columns: Vec<usize>,
    /// Next row number this subtask generates (rows subtask, subtask + p, ...).
    next_row: u64,
    parallelism: u64,
    subtask: u64,
    produced: u64,
    pacer: Pacer,
    /// Rows read at an earlier parallelism (after a rescaling restore).
    read_before: Option<ReadBefore>,
}

impl DatagenSource {
    pub fn new(
        config: DatagenConfig,
        full_schema: SchemaRef,
        columns: Vec<usize>,
        subtask: usize,
        parallelism: usize,
        paced: bool,
        linger: Duration,
    ) -> Self {
        let rate = paced.then_some(config.rows_per_second as f64 / parallelism as f64);
        DatagenSource {
            config,
            schema: full_schema,
            columns,
            next_row: subtask as u64,
            parallelism: parallelism as u64,
            subtask: subtask as u64,
            produced: 0,
            pacer: Pacer::new(rate, linger),
            read_before: None,
        }
    }

    fn value(&self, row: u64, column: usize) -> u64 {
        let mut x = self.config.seed ^ row.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (column as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        // splitmix64 finaliser
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    fn column(&self, column: usize, rows: &[u64]) -> Result<ArrayRef> {
        let field = self.schema.field(column);
        let unit = |r: u64| (self.value(r, column) >> 11) as f64 / (1u64 << 53) as f64;
        let array: ArrayRef = match (&self.config.fields[column], field.data_type()) {
            (_, DataType::Timestamp(_, _) | DataType::Date32) => {
                let step = 1_000_000_000 / self.config.rows_per_second as i64;
                Arc::new(TimestampNanosecondArray::from_iter_values(
                    rows.iter().map(|r| BASE_TIME_NANOS + *r as i64 * step.max(1)),
                ))
            }
            (FieldKind::Sequence { start, end }, _) => {
                // In i128: `end - start` of i64s can exceed i64 (and the span u64).
                let span = (*end as i128 - *start as i128).max(0) as u128 + 1;
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| (*start as i128 + (*r as u128 % span) as i128) as i64),
                ))
            }
            (FieldKind::Random { length, .. }, DataType::Utf8) => {
                const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| {
                    (0..*length)
                        .map(|i| ALPHABET[(self.value(*r, column + 1000 * (i + 1)) % ALPHABET.len() as u64) as usize] as char)
                        .collect::<String>()
                })))
            }
            (FieldKind::Random { .. }, DataType::Boolean) => {
                Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(self.value(*r, column) & 1 == 1))))
            }
            (FieldKind::Random { min, max, .. }, t) if t.is_floating() => {
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| min + unit(*r) * (max - min))))
            }
            (FieldKind::Random { min, max, .. }, _) => {
                // In i128: the span of [i64::MIN, i64::MAX] has 2^64 values, one more than u64 holds.
                let (lo, hi) = (*min as i64 as i128, *max as i64 as i128);
                let span = (hi - lo) as u128 + 1;
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| (lo + (self.value(*r, column) as u128 % span) as i128) as i64),
                ))
            }
        };
        Ok(if array.data_type() == field.data_type() {
            array
        } else {
            cast(&array, field.data_type())?
        })
    }
}

#[async_trait]
impl Source for DatagenSource {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        const BATCH: u64 = 4096;
        let limit = self.config.number_of_rows.unwrap_or(u64::MAX);
        loop {
            if self.next_row >= limit {
                return Ok(None);
            }
            // Wait first, change state after: a barrier may drop this call while it waits.
            let len = self.pacer.next_batch_len(self.produced, BATCH).await;
            let mut rows = Vec::with_capacity(len as usize);
            while rows.len() < len as usize && self.next_row < limit {
                if !self.read_before.as_ref().is_some_and(|r| r.contains(self.next_row)) {
                    rows.push(self.next_row);
                }
                self.next_row += self.parallelism;
            }
            // Every row of this stretch may have been read before a rescale; then go on.
            if rows.is_empty() {
                continue;
            }
            self.produced += rows.len() as u64;
            let columns = self.columns.iter().map(|c| self.column(*c, &rows)).collect::<Result<Vec<_>>>()?;
            let schema = Arc::new(self.schema.project(&self.columns)?);
            let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
            return Ok(Some(RecordBatch::try_new_with_options(schema, columns, &options)?));
        }
    }

    fn position(&self) -> SourcePosition {
        let read_before = self.read_before.clone().filter(|r| self.next_row < r.horizon());
        GeneratorPosition {
            next: self.next_row,
            read_before,
        }
        .encode()
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<()> {
        let position = GeneratorPosition::decode(position)?;
        // Round up to the next row of this subtask's share.
        let (p, s) = (self.parallelism, self.subtask);
        self.next_row = position.next + (s + p - position.next % p) % p;
        self.read_before = position.read_before;
        self.produced = 0;
        self.pacer = self.pacer.resumed(0);
        Ok(())
    }
}
