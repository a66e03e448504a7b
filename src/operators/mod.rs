//! The operators a job graph is made of. Each implements `runtime::Operator`.

pub mod accumulator;
pub mod accumulator_bytes;
pub mod changelog_normalize;
pub mod expiry_index;
pub mod grouping;
pub mod interval_join;
pub mod join;
pub mod join_sides;
pub mod keyed_cache;
pub mod lookup_join;
pub mod over_aggregate;
pub mod pane_layout;
pub mod session_window;
pub mod state_bytes;
pub mod state_ttl;
pub mod stateless;
pub mod testing;
pub mod top_n;
pub mod updating_aggregate;
pub mod watermark;
pub mod window_aggregate;
pub mod window_join;
pub mod window_table_function;

use datafusion::arrow::array::Array;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::message::EventTime;

/// An operator's snapshot metadata as the manifest stores it (JSON; the struct's field names are
/// the checkpoint format).
pub fn encode_meta<T: Serialize>(meta: &T) -> Result<serde_json::Value> {
    serde_json::to_value(meta).map_err(|e| Error::internal(format!("cannot encode operator metadata: {e}")))
}

/// Reads back what `encode_meta` wrote; `operator` names the operator kind in the error.
pub fn decode_meta<T: DeserializeOwned>(meta: &serde_json::Value, operator: &str) -> Result<T> {
    T::deserialize(meta).map_err(|e| Error::internal(format!("{operator} checkpoint metadata is malformed: {e}")))
}

/// What an event-time operator whose state is keyed rows (session windows, interval and window
/// joins) records beside its state: the input watermark. Its index of what expires when is
/// rebuilt from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkMeta {
    pub watermark: EventTime,
}

impl WatermarkMeta {
    /// Restored from several old subtasks (rescaling): the lowest watermark, so nothing a
    /// subtask still held counts as closed or expired.
    pub fn merged(parts: &[WatermarkMeta]) -> Self {
        WatermarkMeta {
            watermark: parts.iter().map(|p| p.watermark).min().unwrap_or(EventTime::MIN),
        }
    }
}

/// Rows a window or session firing emits in one step before it lets the task deliver them
/// (`runtime::Operator::resume`): a watermark that closes millions of groups never has all of
/// their rows in memory at once.
pub const FIRE_STEP_ROWS: usize = 128 * 1024;

/// `a` divided by `b`, rounded towards negative infinity (window arithmetic before 1970 too).
pub fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

pub fn is_null_at(column: &dyn Array, row: usize) -> bool {
    column.is_null(row)
}
