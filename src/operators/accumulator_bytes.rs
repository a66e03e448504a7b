//! The bytes of a group's aggregate states in the state backend (and in spilled panes and
//! snapshots): a tag byte per `AccumulatorState`, then its payload. The tags are the checkpoint
//! format: a new state kind takes a new tag, an old tag keeps its meaning.

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result};
use crate::operators::accumulator::{AccumulatorState, SumValue};

/// Serialization of a group's states for the state backend: a tag byte per state, then its payload.
pub fn encode_states(states: &[AccumulatorState], out: &mut Vec<u8>) {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    fn opt<const N: usize>(out: &mut Vec<u8>, v: Option<[u8; N]>) {
        match v {
            Some(b) => {
                out.push(1);
                out.extend_from_slice(&b);
            }
            None => out.push(0),
        }
    }
    for state in states {
        match state {
            AccumulatorState::Count(c) => {
                out.push(0);
                out.extend_from_slice(&c.to_le_bytes());
            }
            AccumulatorState::SumInt(v) => {
                out.push(1);
                opt(out, v.map(i64::to_le_bytes));
            }
            AccumulatorState::SumUInt(v) => {
                out.push(2);
                opt(out, v.map(u64::to_le_bytes));
            }
            AccumulatorState::SumFloat(v) => {
                out.push(3);
                opt(out, v.map(f64::to_le_bytes));
            }
            AccumulatorState::SumDecimal(v) => {
                out.push(4);
                opt(out, v.map(i128::to_le_bytes));
            }
            AccumulatorState::Avg { sum, count } => {
                out.push(5);
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&count.to_le_bytes());
            }
            AccumulatorState::Min(v) | AccumulatorState::Max(v) => {
                out.push(if matches!(state, AccumulatorState::Min(_)) { 6 } else { 7 });
                match v {
                    Some(b) => {
                        out.push(1);
                        bytes(out, b);
                    }
                    None => out.push(0),
                }
            }
            AccumulatorState::Distinct(set) => {
                out.push(8);
                out.extend_from_slice(&(set.len() as u32).to_le_bytes());
                for v in set {
                    bytes(out, v);
                }
            }
            AccumulatorState::RetractableSum { sum, values } => {
                out.push(9);
                match sum {
                    SumValue::Int(v) => {
                        out.push(0);
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    SumValue::UInt(v) => {
                        out.push(1);
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    SumValue::Float(v) => {
                        out.push(2);
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    SumValue::Decimal(v) => {
                        out.push(3);
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
                out.extend_from_slice(&values.to_le_bytes());
            }
            AccumulatorState::Multiset(values) => {
                out.push(10);
                out.extend_from_slice(&(values.len() as u32).to_le_bytes());
                for (v, n) in values {
                    bytes(out, v);
                    out.extend_from_slice(&n.to_le_bytes());
                }
            }
            AccumulatorState::Arrived(kept) => {
                out.push(11);
                match kept {
                    Some((stamp, v)) => {
                        out.push(1);
                        out.extend_from_slice(&stamp.to_le_bytes());
                        bytes(out, v);
                    }
                    None => out.push(0),
                }
            }
            AccumulatorState::ArrivalSequence { values, taken_back } => {
                out.push(12);
                for list in [values.iter().collect::<Vec<_>>(), taken_back.iter().collect()] {
                    out.extend_from_slice(&(list.len() as u32).to_le_bytes());
                    for v in list {
                        bytes(out, v);
                    }
                }
            }
        }
    }
}

pub fn decode_states(mut input: &[u8]) -> Result<Vec<AccumulatorState>> {
    let corrupt = || Error::internal("corrupt aggregate state in the state backend");
    fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if input.len() < n {
            return None;
        }
        let (head, tail) = input.split_at(n);
        *input = tail;
        Some(head)
    }
    fn fixed<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
        take(input, N)?.try_into().ok()
    }
    fn opt<const N: usize>(input: &mut &[u8]) -> Option<Option<[u8; N]>> {
        match take(input, 1)?[0] {
            0 => Some(None),
            _ => Some(Some(fixed::<N>(input)?)),
        }
    }
    fn bytes(input: &mut &[u8]) -> Option<Box<[u8]>> {
        let len = u32::from_le_bytes(fixed::<4>(input)?) as usize;
        Some(take(input, len)?.into())
    }
    let mut states = Vec::new();
    while !input.is_empty() {
        let tag = take(&mut input, 1).ok_or_else(corrupt)?[0];
        let state = match tag {
            0 => AccumulatorState::Count(i64::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?)),
            1 => AccumulatorState::SumInt(opt(&mut input).ok_or_else(corrupt)?.map(i64::from_le_bytes)),
            2 => AccumulatorState::SumUInt(opt(&mut input).ok_or_else(corrupt)?.map(u64::from_le_bytes)),
            3 => AccumulatorState::SumFloat(opt(&mut input).ok_or_else(corrupt)?.map(f64::from_le_bytes)),
            4 => AccumulatorState::SumDecimal(opt(&mut input).ok_or_else(corrupt)?.map(i128::from_le_bytes)),
            5 => AccumulatorState::Avg {
                sum: f64::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?),
                count: i64::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?),
            },
            6 | 7 => {
                let value = match take(&mut input, 1).ok_or_else(corrupt)?[0] {
                    0 => None,
                    _ => Some(bytes(&mut input).ok_or_else(corrupt)?),
                };
                if tag == 6 {
                    AccumulatorState::Min(value)
                } else {
                    AccumulatorState::Max(value)
                }
            }
            8 => {
                let n = u32::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?);
                let mut set = HashSet::with_capacity(n as usize);
                for _ in 0..n {
                    set.insert(bytes(&mut input).ok_or_else(corrupt)?);
                }
                AccumulatorState::Distinct(set)
            }
            9 => {
                let sum = match take(&mut input, 1).ok_or_else(corrupt)?[0] {
                    0 => SumValue::Int(i64::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?)),
                    1 => SumValue::UInt(u64::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?)),
                    2 => SumValue::Float(f64::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?)),
                    3 => SumValue::Decimal(i128::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?)),
                    _ => return Err(corrupt()),
                };
                let values = i64::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?);
                AccumulatorState::RetractableSum { sum, values }
            }
            10 => {
                let n = u32::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?);
                let mut values = BTreeMap::new();
                for _ in 0..n {
                    let value = bytes(&mut input).ok_or_else(corrupt)?;
                    values.insert(value, i64::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?));
                }
                AccumulatorState::Multiset(values)
            }
            11 => AccumulatorState::Arrived(match take(&mut input, 1).ok_or_else(corrupt)?[0] {
                0 => None,
                _ => {
                    let stamp = i64::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?);
                    Some((stamp, bytes(&mut input).ok_or_else(corrupt)?))
                }
            }),
            12 => {
                let mut lists = [Vec::new(), Vec::new()];
                for list in &mut lists {
                    let n = u32::from_le_bytes(fixed(&mut input).ok_or_else(corrupt)?);
                    for _ in 0..n {
                        list.push(bytes(&mut input).ok_or_else(corrupt)?);
                    }
                }
                let [values, taken_back] = lists;
                AccumulatorState::ArrivalSequence {
                    values: values.into(),
                    taken_back,
                }
            }
            _ => return Err(corrupt()),
        };
        states.push(state);
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_bytes() {
        let mut set = HashSet::new();
        set.insert(Box::<[u8]>::from(&b"ab"[..]));
        let states = vec![
            AccumulatorState::Count(3),
            AccumulatorState::SumInt(Some(-7)),
            AccumulatorState::SumUInt(None),
            AccumulatorState::SumFloat(Some(2.5)),
            AccumulatorState::SumDecimal(Some(12345)),
            AccumulatorState::Avg { sum: 9.0, count: 2 },
            AccumulatorState::Min(Some(Box::from(&b"x"[..]))),
            AccumulatorState::Max(None),
            AccumulatorState::Distinct(set),
            AccumulatorState::RetractableSum {
                sum: SumValue::Decimal(-5),
                values: 2,
            },
            AccumulatorState::RetractableSum {
                sum: SumValue::Float(0.5),
                values: 0,
            },
            AccumulatorState::Multiset([(Box::<[u8]>::from(&b"v"[..]), -2), (Box::from(&b"w"[..]), 3)].into()),
            AccumulatorState::Arrived(Some((17, Box::from(&b"f"[..])))),
            AccumulatorState::Arrived(None),
            AccumulatorState::ArrivalSequence {
                values: [Box::<[u8]>::from(&b"a"[..]), Box::from(&b"b"[..])].into(),
                taken_back: vec![Box::from(&b"c"[..])],
            },
        ];
        let mut bytes = Vec::new();
        encode_states(&states, &mut bytes);
        assert_eq!(decode_states(&bytes).unwrap(), states);
        assert!(decode_states(&bytes[..bytes.len() - 1]).is_err());
    }
}
