//! Key encoding shared by every keyed operator and the hash exchange. Keys are Arrow's row format
//! (order-preserving, any column types), hashed with a fixed function so the key group of a key is
//! the same in every run and every Weir version: state can be restored and rescaled by key group.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{RowConverter, Rows, SortField};

use crate::error::Result;
pub use crate::partition::{key_group, stable_hash, subtask_of_key_group};

/// Builds the converter that turns key columns of these types into comparable byte rows.
pub fn key_converter(types: &[DataType]) -> Result<RowConverter> {
    Ok(RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())?)
}

pub fn encode_keys(converter: &RowConverter, columns: &[ArrayRef]) -> Result<Rows> {
    Ok(converter.convert_columns(columns)?)
}

/// Order-preserving encoding of a signed timestamp (flip the sign bit, big-endian).
pub fn encode_time(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn decode_time(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_encoding_preserves_order() {
        let times = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in times.windows(2) {
            assert!(encode_time(w[0]) < encode_time(w[1]));
            assert_eq!(decode_time(&encode_time(w[0])), Some(w[0]));
        }
    }
}
