//! Aggregate accumulators: one `AggregateFunction` per aggregate call, one `AccumulatorState` per
//! group. MIN, MAX and COUNT(DISTINCT) work on Arrow's row encoding of the argument, which is
//! order-preserving for every type, so one code path serves strings, timestamps and numbers alike.
//! States merge (panes of a hopping window, partial states spilled to the backend) and serialize
//! to bytes for the state backend (`accumulator_bytes`).
//!
//! FIRST_VALUE and LAST_VALUE follow Flink's: the first / last non-null value in arrival order.
//! A value carries the time it arrived at (wall-clock nanoseconds, as Flink stamps it with its
//! processing time, and the row's place in its batch), so partial states merged in any order
//! (panes, spills, sessions) still keep the earliest / latest.
//!
//! Over a changelog with retractions (an aggregate over an updating result) every aggregate can
//! take a value back, as Flink's `...WithRetract` functions do: SUM keeps how many values it holds
//! (NULL again when none is left), MIN, MAX and COUNT(DISTINCT) keep every value with its count,
//! since the extreme that is taken back must give way to the next one, and FIRST_VALUE /
//! LAST_VALUE keep every value in arrival order (a value taken back removes its earliest copy).

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, Schema, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};

use crate::error::{Error, Result};
use crate::graph::{AggregateCall, AggregateKind};

#[derive(Debug, Clone, PartialEq)]
pub enum AccumulatorState {
    Count(i64),
    SumInt(Option<i64>),
    SumUInt(Option<u64>),
    SumFloat(Option<f64>),
    SumDecimal(Option<i128>),
    Avg {
        sum: f64,
        count: i64,
    },
    /// Row-encoded smallest / largest non-null value.
    Min(Option<Box<[u8]>>),
    Max(Option<Box<[u8]>>),
    /// Row-encoded distinct non-null values.
    Distinct(HashSet<Box<[u8]>>),
    /// SUM with retractions: the sum and how many non-null values are in it.
    RetractableSum {
        sum: SumValue,
        values: i64,
    },
    /// MIN, MAX and COUNT(DISTINCT) with retractions: each row-encoded non-null value and how many
    /// times it is in the group (a partial state may hold negative counts: values taken back).
    Multiset(BTreeMap<Box<[u8]>, i64>),
    /// FIRST_VALUE / LAST_VALUE: the row-encoded value kept and when it arrived (ns since the epoch).
    Arrived(Option<(i64, Box<[u8]>)>),
    /// FIRST_VALUE / LAST_VALUE with retractions: every row-encoded value present, in arrival
    /// order; in a partial state also the values it takes back, applied after its additions.
    ArrivalSequence {
        values: VecDeque<Box<[u8]>>,
        taken_back: Vec<Box<[u8]>>,
    },
}

/// A running sum in the type SUM accumulates in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SumValue {
    Int(i64),
    UInt(u64),
    Float(f64),
    Decimal(i128),
}

impl SumValue {
    /// Adds (or, with `negate`, subtracts) row `row` of `arg`, which holds this sum's type.
    fn accumulate(&mut self, arg: &dyn Array, row: usize, negate: bool) -> Result<()> {
        let mismatch = || Error::internal("SUM argument of an unexpected type");
        match self {
            SumValue::Int(sum) => {
                let v = arg.as_primitive_opt::<Int64Type>().ok_or_else(mismatch)?.value(row);
                *sum = if negate { sum.wrapping_sub(v) } else { sum.wrapping_add(v) };
            }
            SumValue::UInt(sum) => {
                let v = arg.as_primitive_opt::<UInt64Type>().ok_or_else(mismatch)?.value(row);
                *sum = if negate { sum.wrapping_sub(v) } else { sum.wrapping_add(v) };
            }
            SumValue::Float(sum) => {
                let v = arg.as_primitive_opt::<Float64Type>().ok_or_else(mismatch)?.value(row);
                *sum += if negate { -v } else { v };
            }
            SumValue::Decimal(sum) => {
                let v = arg.as_any().downcast_ref::<Decimal128Array>().ok_or_else(mismatch)?.value(row);
                *sum = if negate { sum.wrapping_sub(v) } else { sum.wrapping_add(v) };
            }
        }
        Ok(())
    }

    fn add(&mut self, other: &SumValue) {
        match (self, other) {
            (SumValue::Int(a), SumValue::Int(b)) => *a = a.wrapping_add(*b),
            (SumValue::UInt(a), SumValue::UInt(b)) => *a = a.wrapping_add(*b),
            (SumValue::Float(a), SumValue::Float(b)) => *a += b,
            (SumValue::Decimal(a), SumValue::Decimal(b)) => *a = a.wrapping_add(*b),
            _ => {}
        }
    }
}

/// How an aggregate call accumulates, fixed by its kind and argument type at operator start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Count,
    CountDistinct,
    SumInt,
    SumUInt,
    SumFloat,
    SumDecimal,
    Avg,
    Min,
    Max,
    First,
    Last,
}

pub struct AggregateFunction {
    pub call: AggregateCall,
    method: Method,
    arg_type: DataType,
    /// Row encoding of the argument (MIN, MAX, COUNT DISTINCT, FIRST_VALUE, LAST_VALUE).
    converter: Option<RowConverter>,
    /// The input takes rows back: states that can be taken from (`RetractableSum`, `Multiset`).
    retracting: bool,
    /// The arrival stamp after the last one given (FIRST_VALUE / LAST_VALUE).
    next_stamp: Cell<i64>,
}

impl AggregateFunction {
    /// `retracting`: the input is a changelog with retractions.
    pub fn new(call: &AggregateCall, input_schema: &Schema, retracting: bool) -> Result<Self> {
        let arg_type = call.arg.data_type(input_schema)?;
        let unsupported = || Error::unsupported(format!("aggregate {} over {arg_type} is not supported yet", call.display));
        if call.distinct && call.kind != AggregateKind::Count {
            return Err(Error::unsupported(format!(
                "{} is not supported yet: DISTINCT only works with COUNT",
                call.display
            )));
        }
        let method = match call.kind {
            AggregateKind::Count if call.distinct => Method::CountDistinct,
            AggregateKind::Count => Method::Count,
            AggregateKind::Min => Method::Min,
            AggregateKind::Max => Method::Max,
            AggregateKind::FirstValue => Method::First,
            AggregateKind::LastValue => Method::Last,
            AggregateKind::Sum => match &arg_type {
                t if t.is_signed_integer() => Method::SumInt,
                t if t.is_unsigned_integer() => Method::SumUInt,
                t if t.is_floating() => Method::SumFloat,
                DataType::Decimal128(_, _) => Method::SumDecimal,
                _ => return Err(unsupported()),
            },
            AggregateKind::Avg => match &arg_type {
                t if t.is_integer() || t.is_floating() => Method::Avg,
                _ => return Err(unsupported()),
            },
        };
        let converter = match method {
            Method::Min | Method::Max | Method::CountDistinct | Method::First | Method::Last => {
                Some(RowConverter::new(vec![SortField::new(arg_type.clone())])?)
            }
            _ => None,
        };
        Ok(AggregateFunction {
            call: call.clone(),
            method,
            arg_type,
            converter,
            retracting,
            next_stamp: Cell::new(0),
        })
    }

    pub fn init(&self) -> AccumulatorState {
        if self.retracting {
            let sum = |zero| AccumulatorState::RetractableSum { sum: zero, values: 0 };
            match self.method {
                Method::SumInt => return sum(SumValue::Int(0)),
                Method::SumUInt => return sum(SumValue::UInt(0)),
                Method::SumFloat => return sum(SumValue::Float(0.0)),
                Method::SumDecimal => return sum(SumValue::Decimal(0)),
                Method::Min | Method::Max | Method::CountDistinct => return AccumulatorState::Multiset(BTreeMap::new()),
                Method::First | Method::Last => {
                    return AccumulatorState::ArrivalSequence {
                        values: VecDeque::new(),
                        taken_back: Vec::new(),
                    };
                }
                Method::Count | Method::Avg => {}
            }
        }
        match self.method {
            Method::Count => AccumulatorState::Count(0),
            Method::CountDistinct => AccumulatorState::Distinct(HashSet::new()),
            Method::SumInt => AccumulatorState::SumInt(None),
            Method::SumUInt => AccumulatorState::SumUInt(None),
            Method::SumFloat => AccumulatorState::SumFloat(None),
            Method::SumDecimal => AccumulatorState::SumDecimal(None),
            Method::Avg => AccumulatorState::Avg { sum: 0.0, count: 0 },
            Method::Min => AccumulatorState::Min(None),
            Method::Max => AccumulatorState::Max(None),
            Method::First | Method::Last => AccumulatorState::Arrived(None),
        }
    }

    /// Evaluates the argument on a batch.
    pub fn argument(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let arg = self.call.arg.evaluate(batch)?.into_array(batch.num_rows())?;
        // Sums and averages accumulate in 64 bits (or f64); cast once per batch.
        Ok(match self.method {
            Method::SumInt => cast(&arg, &DataType::Int64)?,
            Method::SumUInt => cast(&arg, &DataType::UInt64)?,
            Method::SumFloat | Method::Avg => cast(&arg, &DataType::Float64)?,
            _ => arg,
        })
    }

    /// Adds row `rows[i]` of `arg` to `states[slots[i]]` for every i: `slots` maps each selected row
    /// to its group's state.
    pub fn update(&self, arg: &ArrayRef, rows: &[usize], slots: &[usize], states: &mut [&mut AccumulatorState]) -> Result<()> {
        if self.retracting {
            return self.update_retractable(arg, rows, slots, states, false);
        }
        let pairs = rows.iter().zip(slots);
        match self.method {
            Method::Count => {
                for (&r, &s) in pairs {
                    if arg.is_valid(r)
                        && let AccumulatorState::Count(c) = states[s]
                    {
                        *c += 1;
                    }
                }
            }
            Method::SumInt => {
                let values = arg.as_primitive::<Int64Type>();
                for (&r, &s) in pairs {
                    if values.is_valid(r)
                        && let AccumulatorState::SumInt(sum) = states[s]
                    {
                        *sum = Some(sum.unwrap_or(0).wrapping_add(values.value(r)));
                    }
                }
            }
            Method::SumUInt => {
                let values = arg.as_primitive::<UInt64Type>();
                for (&r, &s) in pairs {
                    if values.is_valid(r)
                        && let AccumulatorState::SumUInt(sum) = states[s]
                    {
                        *sum = Some(sum.unwrap_or(0).wrapping_add(values.value(r)));
                    }
                }
            }
            Method::SumFloat => {
                let values = arg.as_primitive::<Float64Type>();
                for (&r, &s) in pairs {
                    if values.is_valid(r)
                        && let AccumulatorState::SumFloat(sum) = states[s]
                    {
                        *sum = Some(sum.unwrap_or(0.0) + values.value(r));
                    }
                }
            }
            Method::SumDecimal => {
                let values = arg
                    .as_any()
                    .downcast_ref::<Decimal128Array>()
                    .ok_or_else(|| Error::internal("SUM expects a decimal"))?;
                for (&r, &s) in pairs {
                    if values.is_valid(r)
                        && let AccumulatorState::SumDecimal(sum) = states[s]
                    {
                        *sum = Some(sum.unwrap_or(0).wrapping_add(values.value(r)));
                    }
                }
            }
            Method::Avg => {
                let values = arg.as_primitive::<Float64Type>();
                for (&r, &s) in pairs {
                    if values.is_valid(r)
                        && let AccumulatorState::Avg { sum, count } = states[s]
                    {
                        *sum += values.value(r);
                        *count += 1;
                    }
                }
            }
            Method::Min | Method::Max | Method::CountDistinct => {
                let converter = self.converter.as_ref().ok_or_else(|| Error::internal("row converter missing"))?;
                let encoded = converter.convert_columns(std::slice::from_ref(arg))?;
                for (&r, &s) in pairs {
                    if !arg.is_valid(r) {
                        continue;
                    }
                    let value = encoded.row(r);
                    match states[s] {
                        AccumulatorState::Min(current) if current.as_deref().is_none_or(|c| value.as_ref() < c) => {
                            *current = Some(value.as_ref().into());
                        }
                        AccumulatorState::Max(current) if current.as_deref().is_none_or(|c| value.as_ref() > c) => {
                            *current = Some(value.as_ref().into());
                        }
                        AccumulatorState::Distinct(set) if !set.contains(value.as_ref()) => {
                            set.insert(value.as_ref().into());
                        }
                        _ => {}
                    }
                }
            }
            Method::First | Method::Last => {
                let converter = self.converter.as_ref().ok_or_else(|| Error::internal("row converter missing"))?;
                let encoded = converter.convert_columns(std::slice::from_ref(arg))?;
                let first_stamp = self.arrival_stamps(arg.len());
                for (&r, &s) in pairs {
                    if let AccumulatorState::Arrived(kept) = states[s]
                        && arg.is_valid(r)
                        && (self.method == Method::Last || kept.is_none())
                    {
                        *kept = Some((first_stamp + r as i64, encoded.row(r).as_ref().into()));
                    }
                }
            }
        }
        Ok(())
    }

    /// The arrival stamps of `rows` rows arriving now: the first of `rows` consecutive stamps,
    /// wall-clock nanoseconds (Flink stamps FIRST_VALUE / LAST_VALUE values with its processing
    /// time), always after those given before, so row `r` of a batch gets `first + r` and a later
    /// batch's rows come after every row of this one. Stamps keep their order across a restart.
    fn arrival_stamps(&self, rows: usize) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let first = now.max(self.next_stamp.get());
        self.next_stamp.set(first.saturating_add(rows as i64));
        first
    }

    /// Takes row `rows[i]` of `arg` back from `states[slots[i]]` for every i (an update-before or
    /// a delete of the input).
    pub fn retract(&self, arg: &ArrayRef, rows: &[usize], slots: &[usize], states: &mut [&mut AccumulatorState]) -> Result<()> {
        if !self.retracting {
            return Err(Error::internal(format!("{} cannot take rows back", self.call.display)));
        }
        self.update_retractable(arg, rows, slots, states, true)
    }

    /// Adds rows to (or, with `negate`, takes them from) states that can be taken from.
    fn update_retractable(
        &self,
        arg: &ArrayRef,
        rows: &[usize],
        slots: &[usize],
        states: &mut [&mut AccumulatorState],
        negate: bool,
    ) -> Result<()> {
        let step: i64 = if negate { -1 } else { 1 };
        let encoded = match &self.converter {
            Some(converter) => Some(converter.convert_columns(std::slice::from_ref(arg))?),
            None => None,
        };
        let floats = match self.method {
            Method::Avg => Some(arg.as_primitive::<Float64Type>()),
            _ => None,
        };
        for (&r, &s) in rows.iter().zip(slots) {
            if !arg.is_valid(r) {
                continue;
            }
            match &mut *states[s] {
                AccumulatorState::Count(c) => *c += step,
                AccumulatorState::Avg { sum, count } => {
                    let v = floats.map_or(0.0, |f| f.value(r));
                    *sum += if negate { -v } else { v };
                    *count += step;
                }
                AccumulatorState::RetractableSum { sum, values } => {
                    sum.accumulate(arg.as_ref(), r, negate)?;
                    *values += step;
                }
                AccumulatorState::Multiset(values) => {
                    let value = encoded.as_ref().ok_or_else(|| Error::internal("row converter missing"))?.row(r);
                    add_count(values, value.as_ref(), step);
                }
                AccumulatorState::ArrivalSequence { values, taken_back } => {
                    let value = encoded.as_ref().ok_or_else(|| Error::internal("row converter missing"))?.row(r);
                    if negate {
                        take_back_earliest(values, taken_back, value.as_ref());
                    } else {
                        values.push_back(value.as_ref().into());
                    }
                }
                _ => return Err(Error::internal("aggregate state cannot take rows back")),
            }
        }
        Ok(())
    }

    /// The output column for these group states, in order.
    pub fn finish<'a>(&self, states: impl Iterator<Item = &'a AccumulatorState>) -> Result<ArrayRef> {
        let out: ArrayRef = match self.method {
            Method::Count | Method::CountDistinct => Arc::new(Int64Array::from_iter_values(states.map(|s| match s {
                AccumulatorState::Count(c) => *c,
                AccumulatorState::Distinct(set) => set.len() as i64,
                AccumulatorState::Multiset(values) => values.values().filter(|n| **n > 0).count() as i64,
                _ => 0,
            }))),
            Method::SumInt | Method::SumUInt | Method::SumFloat | Method::SumDecimal if self.retracting => {
                self.finish_retractable_sum(states)?
            }
            Method::SumInt => Arc::new(Int64Array::from_iter(states.map(|s| match s {
                AccumulatorState::SumInt(v) => *v,
                _ => None,
            }))),
            Method::SumUInt => Arc::new(UInt64Array::from_iter(states.map(|s| match s {
                AccumulatorState::SumUInt(v) => *v,
                _ => None,
            }))),
            Method::SumFloat => Arc::new(Float64Array::from_iter(states.map(|s| match s {
                AccumulatorState::SumFloat(v) => *v,
                _ => None,
            }))),
            Method::SumDecimal => {
                let values = Decimal128Array::from_iter(states.map(|s| match s {
                    AccumulatorState::SumDecimal(v) => *v,
                    _ => None,
                }));
                match &self.call.output_type {
                    DataType::Decimal128(p, s) => Arc::new(values.with_precision_and_scale(*p, *s)?),
                    _ => Arc::new(values),
                }
            }
            Method::Avg => Arc::new(Float64Array::from_iter(states.map(|s| match s {
                AccumulatorState::Avg { sum, count } if *count > 0 => Some(sum / *count as f64),
                _ => None,
            }))),
            Method::Min | Method::Max => {
                let converter = self.converter.as_ref().ok_or_else(|| Error::internal("row converter missing"))?;
                let values: Vec<Option<Box<[u8]>>> = states
                    .map(|s| match s {
                        AccumulatorState::Min(v) | AccumulatorState::Max(v) => v.clone(),
                        AccumulatorState::Multiset(values) => {
                            let mut present = values.iter().filter(|(_, n)| **n > 0).map(|(v, _)| v);
                            let extreme = if self.method == Method::Min {
                                present.next()
                            } else {
                                present.next_back()
                            };
                            extreme.cloned()
                        }
                        _ => None,
                    })
                    .collect();
                decode_optional_rows(converter, &self.arg_type, &values)?
            }
            Method::First | Method::Last => {
                let converter = self.converter.as_ref().ok_or_else(|| Error::internal("row converter missing"))?;
                let values: Vec<Option<Box<[u8]>>> = states
                    .map(|s| match s {
                        AccumulatorState::Arrived(kept) => kept.as_ref().map(|(_, v)| v.clone()),
                        AccumulatorState::ArrivalSequence { values, .. } => {
                            let kept = if self.method == Method::First {
                                values.front()
                            } else {
                                values.back()
                            };
                            kept.cloned()
                        }
                        _ => None,
                    })
                    .collect();
                decode_optional_rows(converter, &self.arg_type, &values)?
            }
        };
        if out.data_type() != &self.call.output_type {
            return Ok(cast(&out, &self.call.output_type)?);
        }
        Ok(out)
    }

    /// SUM's output over `RetractableSum` states: NULL where no value is left.
    fn finish_retractable_sum<'a>(&self, states: impl Iterator<Item = &'a AccumulatorState>) -> Result<ArrayRef> {
        let sums: Vec<Option<SumValue>> = states
            .map(|s| match s {
                AccumulatorState::RetractableSum { sum, values } if *values > 0 => Some(*sum),
                _ => None,
            })
            .collect();
        Ok(match self.method {
            Method::SumInt => Arc::new(Int64Array::from_iter(sums.iter().map(|s| match s {
                Some(SumValue::Int(v)) => Some(*v),
                _ => None,
            }))),
            Method::SumUInt => Arc::new(UInt64Array::from_iter(sums.iter().map(|s| match s {
                Some(SumValue::UInt(v)) => Some(*v),
                _ => None,
            }))),
            Method::SumFloat => Arc::new(Float64Array::from_iter(sums.iter().map(|s| match s {
                Some(SumValue::Float(v)) => Some(*v),
                _ => None,
            }))),
            _ => {
                let values = Decimal128Array::from_iter(sums.iter().map(|s| match s {
                    Some(SumValue::Decimal(v)) => Some(*v),
                    _ => None,
                }));
                match &self.call.output_type {
                    DataType::Decimal128(p, s) => Arc::new(values.with_precision_and_scale(*p, *s)?),
                    _ => Arc::new(values),
                }
            }
        })
    }

    /// Folds `other` into `into` (two partial states of the same group).
    pub fn merge(&self, into: &mut AccumulatorState, other: &AccumulatorState) {
        use AccumulatorState as S;
        fn add<T: Copy + std::ops::Add<Output = T>>(a: &mut Option<T>, b: &Option<T>) {
            if let Some(b) = b {
                *a = Some(match a {
                    Some(a) => *a + *b,
                    None => *b,
                });
            }
        }
        match (into, other) {
            (S::Count(a), S::Count(b)) => *a += b,
            (S::SumInt(a), S::SumInt(Some(b))) => *a = Some(a.unwrap_or(0).wrapping_add(*b)),
            (S::SumUInt(a), S::SumUInt(Some(b))) => *a = Some(a.unwrap_or(0).wrapping_add(*b)),
            (S::SumFloat(a), S::SumFloat(b)) => add(a, b),
            (S::SumDecimal(a), S::SumDecimal(Some(b))) => *a = Some(a.unwrap_or(0).wrapping_add(*b)),
            (S::Avg { sum, count }, S::Avg { sum: s2, count: c2 }) => {
                *sum += s2;
                *count += c2;
            }
            (S::Min(a), S::Min(b)) => {
                if let Some(b) = b
                    && a.as_ref().is_none_or(|a| b < a)
                {
                    *a = Some(b.clone());
                }
            }
            (S::Max(a), S::Max(b)) => {
                if let Some(b) = b
                    && a.as_ref().is_none_or(|a| b > a)
                {
                    *a = Some(b.clone());
                }
            }
            (S::Distinct(a), S::Distinct(b)) => a.extend(b.iter().cloned()),
            (S::RetractableSum { sum, values }, S::RetractableSum { sum: s2, values: v2 }) => {
                sum.add(s2);
                *values += v2;
            }
            (S::Multiset(a), S::Multiset(b)) => {
                for (value, n) in b {
                    add_count(a, value, *n);
                }
            }
            // The earliest (FIRST_VALUE) or latest (LAST_VALUE) arrival.
            (S::Arrived(a), S::Arrived(Some((stamp, value)))) => {
                let replace = match a {
                    None => true,
                    Some((kept, _)) if self.method == Method::First => stamp < kept,
                    Some((kept, _)) => stamp > kept,
                };
                if replace {
                    *a = Some((*stamp, value.clone()));
                }
            }
            // `other` arrived after `into`: its values go last, then it takes back its values.
            (
                S::ArrivalSequence { values, taken_back },
                S::ArrivalSequence {
                    values: added,
                    taken_back: removed,
                },
            ) => {
                values.extend(added.iter().cloned());
                for value in removed {
                    take_back_earliest(values, taken_back, value);
                }
            }
            _ => {}
        }
    }
}

/// Adds `n` to the count of `value`, forgetting values whose count reaches zero.
fn add_count(values: &mut BTreeMap<Box<[u8]>, i64>, value: &[u8], n: i64) {
    match values.get_mut(value) {
        Some(count) => {
            *count += n;
            if *count == 0 {
                values.remove(value);
            }
        }
        None if n != 0 => {
            values.insert(value.into(), n);
        }
        None => {}
    }
}

/// Decodes row-encoded single values back to an array, with `None` as null.
fn decode_optional_rows(converter: &RowConverter, data_type: &DataType, values: &[Option<Box<[u8]>>]) -> Result<ArrayRef> {
    let parser = converter.parser();
    let present: Vec<_> = values.iter().flatten().map(|v| parser.parse(v)).collect();
    let decoded = converter.convert_rows(present)?;
    let dense = decoded
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("row decoding returned no column"))?;
    if present_count(values) == values.len() {
        return Ok(dense);
    }
    // Spread the decoded values over the non-null positions.
    let mut indices = Vec::with_capacity(values.len());
    let mut next = 0u32;
    for v in values {
        indices.push(v.as_ref().map(|_| {
            next += 1;
            next - 1
        }));
    }
    let indices = datafusion::arrow::array::UInt32Array::from(indices);
    let _ = data_type;
    Ok(datafusion::arrow::compute::take(dense.as_ref(), &indices, None)?)
}

/// Takes a FIRST_VALUE / LAST_VALUE value back as Flink's `...WithRetract` does: its earliest copy
/// goes. A partial state that does not hold it keeps it in `taken_back`, for an earlier state.
fn take_back_earliest(values: &mut VecDeque<Box<[u8]>>, taken_back: &mut Vec<Box<[u8]>>, value: &[u8]) {
    match values.iter().position(|v| v.as_ref() == value) {
        Some(position) => {
            values.remove(position);
        }
        None => taken_back.push(value.into()),
    }
}

fn present_count(values: &[Option<Box<[u8]>>]) -> usize {
    values.iter().filter(|v| v.is_some()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::col;

    fn first_and_last(retracting: bool) -> (Schema, [AggregateFunction; 2]) {
        let schema = Schema::new(vec![Field::new("v", DataType::Int64, true)]);
        let function = |kind| {
            let call = AggregateCall {
                kind,
                arg: col("v", &schema).expect("column v"),
                distinct: false,
                output_type: DataType::Int64,
                display: format!("{kind:?}(v)"),
            };
            AggregateFunction::new(&call, &schema, retracting).expect("function")
        };
        let functions = [function(AggregateKind::FirstValue), function(AggregateKind::LastValue)];
        (schema, functions)
    }

    fn values(rows: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(rows.to_vec()))
    }

    fn finished(function: &AggregateFunction, state: &AccumulatorState) -> Option<i64> {
        let out = function.finish(std::iter::once(state)).expect("finish");
        let out = out.as_primitive::<Int64Type>();
        out.is_valid(0).then(|| out.value(0))
    }

    /// Partial states merged in either order keep the value that arrived first / last; NULLs
    /// are skipped.
    #[test]
    fn first_and_last_value_follow_arrival_across_merges() {
        let (_, functions) = first_and_last(false);
        let earlier = values(&[None, Some(5), Some(7)]);
        let later = values(&[Some(1), Some(9), None]);
        for function in &functions {
            let (mut a, mut b) = (function.init(), function.init());
            function.update(&earlier, &[0, 1, 2], &[0, 0, 0], &mut [&mut a]).unwrap();
            function.update(&later, &[0, 1, 2], &[0, 0, 0], &mut [&mut b]).unwrap();
            let mut forward = a.clone();
            function.merge(&mut forward, &b);
            let mut backward = b.clone();
            function.merge(&mut backward, &a);
            let expected = if function.method == Method::First { Some(5) } else { Some(9) };
            assert_eq!(finished(function, &forward), expected);
            assert_eq!(finished(function, &backward), expected);
            assert_eq!(finished(function, &function.init()), None);
        }
    }

    /// With retractions a value taken back removes its earliest copy, also when the partial
    /// state taking it back is merged into the state holding it.
    #[test]
    fn first_and_last_value_take_back_the_earliest_copy() {
        let (_, [first, last]) = first_and_last(true);
        let rows = values(&[Some(3), Some(4), Some(3)]);
        let mut state = first.init();
        first.update(&rows, &[0, 1], &[0, 0], &mut [&mut state]).unwrap();
        // A later partial: 3 taken back, then 3 added again (an update to the same value).
        let mut partial = first.init();
        first.retract(&rows, &[2], &[0], &mut [&mut partial]).unwrap();
        first.update(&rows, &[2], &[0], &mut [&mut partial]).unwrap();
        first.merge(&mut state, &partial);
        assert_eq!(finished(&first, &state), Some(4));
        assert_eq!(finished(&last, &state), Some(3));
        first.retract(&rows, &[1], &[0], &mut [&mut state]).unwrap();
        assert_eq!(finished(&first, &state), Some(3));
        first.retract(&rows, &[0], &[0], &mut [&mut state]).unwrap();
        assert_eq!(finished(&first, &state), None);
    }
}
