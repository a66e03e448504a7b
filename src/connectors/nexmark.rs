//! The `nexmark` source connector: a deterministic generator of the Nexmark benchmark's
//! online-auction event stream (Person, Auction, Bid), producing Arrow batches directly.
//!
//! The model follows the public reference generator (nexmark/nexmark `GeneratorConfig` /
//! `NexmarkConfiguration`):
//!
//! * One global event sequence numbered 0, 1, 2, ...; within every block of 50 events the first is
//!   a Person, the next 3 are Auctions and the remaining 46 are Bids.
//! * Event time of event `n` is `base.time + floor(n * 1e6 / events.per.second)` µs, truncated to
//!   milliseconds, so event time never depends on how fast the generator runs.
//! * Person and auction ids are dense and start at 1000; category is `10 + rand(5)`.
//! * Bids go to a hot auction (the first of the current block of 100 auctions) half of the time,
//!   otherwise to one of the ~100 most recent ("in flight") auctions, plus a small lead of 10 ids.
//!   Bidders and sellers are hot (the first/second person of the current block of 100 people) three
//!   times out of four, otherwise one of the ~1000 most recent ("active") people, plus a lead of 10.
//! * An auction expires after a random time averaging the time it takes to generate 100 more
//!   auctions (which, at the default rate of 10M events/s, is well under a millisecond).
//! * Half of the bids come through one of 4 hot channels, the rest through one of 10,000 channels,
//!   each with a fixed URL.
//! * Rows are padded through `extra` so that rows average ~200 (person), ~500 (auction) and ~100
//!   (bid) bytes, counting 8 bytes per number as the reference does.
//!
//! Every field of every event is a pure function of `(seed, event number, field)`: each field draws
//! from its own small SplitMix64 stream seeded from those three values. The output therefore does
//! not depend on batch size, parallelism, or which columns were declared, and unused columns cost
//! nothing to generate.
//!
//! Parallel subtasks split the sequence round-robin: subtask `s` of `p` owns event numbers
//! `n ≡ s (mod p)`. The union over subtasks is the same for any `p`.
//!
//! Layout: `config` (options), `fields` (the tables' fields and types), `model` (the reference
//! model's draws and the generation of one row); this file is the generator that turns a
//! subtask's share of the sequence into batches of the declared columns.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringBuilder, TimestampMillisecondArray, new_null_array};
use arrow::compute::{can_cast_types, cast};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

mod config;
mod fields;
mod model;

pub use config::{NexmarkConfig, NexmarkTable};
use fields::*;
use model::*;

/// In rate-limited mode a batch covers at most this fraction of a second of the event sequence,
/// so that the caller's pacing stays smooth (see [`NexmarkGenerator::next_batch`]).
const RATE_LIMITED_BATCHES_PER_SECOND: u64 = 100;

/// Generates one subtask's share of one Nexmark table as Arrow record batches.
#[derive(Debug)]
pub struct NexmarkGenerator {
    config: NexmarkConfig,
    /// The declared schema (output schema of every batch).
    schema: SchemaRef,
    /// The declared schema with every field nullable; only used if a narrowing cast produced
    /// NULLs in a column declared NOT NULL.
    nullable_schema: SchemaRef,
    /// Declared column i -> table field index.
    columns: Vec<usize>,
    /// Which table fields are generated.
    needed: Vec<bool>,
    cols: Cols,
    subtask: u64,
    parallelism: u64,
    /// Next global event number this subtask looks at (≡ subtask mod parallelism).
    next: u64,
    /// One past the last event number of the sequence (u64::MAX when unbounded).
    limit: u64,
    /// Events of any type passed over since construction or the last seek.
    passed: u64,
    /// False when this subtask's share of the sequence contains no event of the table.
    share_has_rows: bool,
    /// Max events of this subtask's share one batch spans (rate-limited mode).
    span_cap: u64,
    /// Events read by the subtasks of an earlier parallelism (after a rescaling restore).
    read_before: Option<crate::connectors::rescale::ReadBefore>,
}

impl NexmarkGenerator {
    /// `schema`: the columns the user declared in CREATE SOURCE. Each must name a field of the
    /// table (Person: id, name, email_address, credit_card, city, state, date_time, extra; Auction:
    /// id, item_name, description, initial_bid, reserve, date_time, expires, seller, category,
    /// extra; Bid: auction, bidder, price, channel, url, date_time, extra), in any order/subset,
    /// case-insensitive. Integer fields are generated as Int64, strings as Utf8,
    /// date_time/expires as Timestamp(Millisecond, None); then each column is cast with arrow's
    /// cast kernel to the declared type. Unknown column name or uncastable type -> Err naming the
    /// column and listing valid names.
    ///
    /// Subtask `subtask` of `parallelism` generates the events `n` with
    /// `n % parallelism == subtask`, emitting only those of `config.table`.
    pub fn new(config: NexmarkConfig, schema: SchemaRef, subtask: usize, parallelism: usize) -> Result<NexmarkGenerator, String> {
        if parallelism == 0 {
            return Err("nexmark source: parallelism must be at least 1".to_string());
        }
        if subtask >= parallelism {
            return Err(format!(
                "nexmark source: subtask {subtask} out of range for parallelism {parallelism}"
            ));
        }
        if config.events_per_second == 0 {
            return Err("nexmark option 'events.per.second' must be a positive integer".into());
        }
        let table = config.table;
        let defs = table.fields();
        let mut columns = Vec::with_capacity(schema.fields().len());
        let mut needed = vec![false; defs.len()];
        for field in schema.fields() {
            let lower = field.name().to_ascii_lowercase();
            let Some(idx) = defs.iter().position(|d| d.name == lower) else {
                return Err(format!(
                    "nexmark {} source has no column '{}'; valid columns are: {}",
                    table.name(),
                    field.name(),
                    valid_names(table)
                ));
            };
            let kind = defs[idx].kind;
            if !castable(kind, field.data_type()) {
                return Err(format!(
                    "nexmark {} source: column '{}' is generated as {} and cannot be declared as \
                     {}; valid columns are: {}",
                    table.name(),
                    field.name(),
                    generated_type(kind),
                    field.data_type(),
                    valid_names(table)
                ));
            }
            columns.push(idx);
            needed[idx] = true;
        }
        let nullable_schema = Arc::new(Schema::new_with_metadata(
            schema
                .fields()
                .iter()
                .map(|f| Field::clone(f).with_nullable(true))
                .collect::<Vec<_>>(),
            schema.metadata().clone(),
        ));
        let bufs = needed
            .iter()
            .zip(defs)
            .map(|(&want, def)| match (want, def.kind) {
                (false, _) => Buf::Off,
                (true, Kind::Str) => Buf::Str(StringBuilder::new()),
                (true, _) => Buf::Int(Vec::new()),
            })
            .collect();

        let subtask = subtask as u64;
        let parallelism = parallelism as u64;
        // n mod 50 over this subtask's share cycles within 50 steps.
        let share_has_rows = (0..TOTAL_PROPORTION).any(|k| {
            let residue = (subtask % TOTAL_PROPORTION + k * (parallelism % TOTAL_PROPORTION)) % TOTAL_PROPORTION;
            NexmarkTable::of_event(residue) == table
        });
        let span_cap = if config.rate_limited {
            (config.events_per_second / RATE_LIMITED_BATCHES_PER_SECOND / parallelism).max(1)
        } else {
            u64::MAX
        };
        let limit = config.max_events.filter(|&m| m > 0).unwrap_or(u64::MAX);
        Ok(NexmarkGenerator {
            config,
            schema,
            nullable_schema,
            columns,
            needed,
            cols: Cols { bufs },
            subtask,
            parallelism,
            next: subtask,
            limit,
            passed: 0,
            share_has_rows,
            span_cap,
            read_before: None,
        })
    }

    /// Next batch of up to batch_size rows of the table, in event-number order; None when
    /// max_events is reached (or when this subtask's share holds no event of the table at all,
    /// which happens only for parallelism sharing a factor with 50 like 25 or 50).
    ///
    /// When `config.rate_limited`, a batch spans at most 1/100 s of this subtask's share of the
    /// event sequence (but always holds at least one row), so that pacing stays smooth.
    pub fn next_batch(&mut self) -> Option<RecordBatch> {
        self.next_batch_within(self.span_cap)
    }

    /// Whether no batch is left (`next_batch` returns `None` from now on).
    pub fn is_exhausted(&self) -> bool {
        !self.share_has_rows || self.next >= self.limit
    }

    /// How many events a batch spans at most (`u64::MAX` unless rate limited).
    pub fn batch_span(&self) -> u64 {
        self.span_cap
    }

    /// Like `next_batch`, passing over at most `max_events` events (still at least one row).
    pub fn next_batch_within(&mut self, max_events: u64) -> Option<RecordBatch> {
        if self.is_exhausted() {
            return None;
        }
        let span_cap = max_events.min(self.span_cap).max(1);
        let batch_size = self.config.batch_size.max(1);
        let capacity = batch_size.min(usize::try_from(span_cap).unwrap_or(usize::MAX));
        self.prepare(capacity);

        let table = self.config.table;
        let mut rows = 0usize;
        let mut span = 0u64;
        while self.next < self.limit && rows < batch_size {
            if span >= span_cap && rows > 0 {
                break;
            }
            let n = self.next;
            if NexmarkTable::of_event(n) == table && !self.read_before.as_ref().is_some_and(|r| r.contains(n)) {
                match table {
                    NexmarkTable::Person => gen_person(&self.config, &mut self.cols, n),
                    NexmarkTable::Auction => gen_auction(&self.config, &mut self.cols, n),
                    NexmarkTable::Bid => gen_bid(&self.config, &mut self.cols, n),
                }
                rows += 1;
            }
            self.next = self.next.saturating_add(self.parallelism);
            self.passed += 1;
            span += 1;
        }
        if rows == 0 {
            return None;
        }
        self.finish(rows)
    }

    /// Next event number this subtask will look at (its position; used for checkpoints).
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Events already read at an earlier parallelism (still relevant while below their horizon).
    pub fn read_before(&self) -> Option<&crate::connectors::rescale::ReadBefore> {
        self.read_before.as_ref().filter(|r| self.next < r.horizon())
    }

    /// Skips the events an earlier parallelism's subtasks read (restore after rescaling).
    pub fn set_read_before(&mut self, read_before: Option<crate::connectors::rescale::ReadBefore>) {
        self.read_before = read_before;
    }

    /// Resume at a position previously returned by position(). A position not in this subtask's
    /// share is rounded up to the next one that is. Resets `events_passed` to 0.
    pub fn seek(&mut self, position: u64) {
        let rem = position % self.parallelism;
        let ahead = (self.subtask + self.parallelism - rem) % self.parallelism;
        self.next = position.saturating_add(ahead);
        self.passed = 0;
    }

    /// Event time (epoch millis) of event number n.
    pub fn event_time_ms(&self, n: u64) -> i64 {
        self.config.event_time_ms(n)
    }

    /// Number of events of ANY type this subtask has passed over since it was created or last
    /// seeked. This subtask passes over events at `events_per_second / parallelism` per second of
    /// event time, so a caller pacing wall-clock time should not ask for the next batch before
    /// `events_passed() * parallelism / events_per_second` seconds after it started (or seeked).
    pub fn events_passed(&self) -> u64 {
        self.passed
    }

    fn prepare(&mut self, capacity: usize) {
        for ((buf, def), &want) in self.cols.bufs.iter_mut().zip(self.config.table.fields()).zip(&self.needed) {
            if !want {
                continue;
            }
            match buf {
                Buf::Int(v) => v.reserve(capacity),
                Buf::Str(b) => *b = StringBuilder::with_capacity(capacity, capacity * def.avg_len),
                Buf::Off => {}
            }
        }
    }

    fn finish(&mut self, rows: usize) -> Option<RecordBatch> {
        let defs = self.config.table.fields();
        let built: Vec<Option<ArrayRef>> = self
            .cols
            .bufs
            .iter_mut()
            .zip(defs)
            .map(|(buf, def)| match buf {
                Buf::Off => None,
                Buf::Int(v) => {
                    let values = std::mem::take(v);
                    Some(match def.kind {
                        Kind::Ts => Arc::new(TimestampMillisecondArray::from(values)) as ArrayRef,
                        _ => Arc::new(Int64Array::from(values)) as ArrayRef,
                    })
                }
                Buf::Str(b) => Some(Arc::new(b.finish()) as ArrayRef),
            })
            .collect();

        let mut out = Vec::with_capacity(self.columns.len());
        for (i, &f) in self.columns.iter().enumerate() {
            let target = self.schema.field(i).data_type();
            let generated = built[f].clone()?;
            out.push(convert(generated, defs[f].kind, target, rows));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), out.clone(), &options)
            .or_else(|_| RecordBatch::try_new_with_options(self.nullable_schema.clone(), out, &options))
            .ok()
    }
}

/// Casts a generated column to its declared type. Timestamps are epoch based (UTC): when the
/// declared type has a time zone, the values are tagged with it rather than shifted.
fn convert(array: ArrayRef, kind: Kind, target: &DataType, rows: usize) -> ArrayRef {
    if array.data_type() == target {
        return array;
    }
    let array = match (kind, target) {
        (Kind::Ts, DataType::Timestamp(_, Some(tz))) => match array.as_primitive_opt::<TimestampMillisecondType>() {
            Some(ts) => Arc::new(ts.clone().with_timezone(tz.clone())) as ArrayRef,
            None => array,
        },
        _ => array,
    };
    if array.data_type() == target {
        return array;
    }
    cast(&array, target).unwrap_or_else(|_| new_null_array(target, rows))
}

#[cfg(test)]
mod tests;
