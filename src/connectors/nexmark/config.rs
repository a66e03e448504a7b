//! Options of a `nexmark` source (`NexmarkConfig`) and the table it emits (`NexmarkTable`).

use super::*;

// Option defaults and keys.
pub(super) const DEFAULT_EVENTS_PER_SECOND: u64 = 10_000_000;
const DEFAULT_BATCH_SIZE: usize = 4096;
use crate::connectors::MAX_BATCH_ROWS as MAX_BATCH_SIZE;
pub(super) const DEFAULT_BASE_TIME_MS: i64 = 1_700_000_000_000;
const OPTION_KEYS: &str = "nexmark.table, seed, events.per.second, pace, max.events, batch.size, base.time";

/// Which of the three Nexmark streams a source emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkTable {
    Person,
    Auction,
    Bid,
}

impl NexmarkTable {
    pub(super) fn name(self) -> &'static str {
        match self {
            NexmarkTable::Person => "person",
            NexmarkTable::Auction => "auction",
            NexmarkTable::Bid => "bid",
        }
    }

    pub(super) fn fields(self) -> &'static [FieldDef] {
        match self {
            NexmarkTable::Person => PERSON_FIELDS,
            NexmarkTable::Auction => AUCTION_FIELDS,
            NexmarkTable::Bid => BID_FIELDS,
        }
    }

    /// Small number mixed into per-field random stream tags.
    pub(super) fn code(self) -> u64 {
        match self {
            NexmarkTable::Person => 1,
            NexmarkTable::Auction => 2,
            NexmarkTable::Bid => 3,
        }
    }

    /// The kind of event number `n` in the global sequence.
    pub(super) fn of_event(n: u64) -> NexmarkTable {
        let r = n % TOTAL_PROPORTION;
        if r < PERSON_PROPORTION {
            NexmarkTable::Person
        } else if r < PERSON_PROPORTION + AUCTION_PROPORTION {
            NexmarkTable::Auction
        } else {
            NexmarkTable::Bid
        }
    }
}

/// Options of a `nexmark` source.
#[derive(Debug, Clone)]
pub struct NexmarkConfig {
    /// option 'nexmark.table' = person | auction | bid (required)
    pub table: NexmarkTable,
    /// option 'seed', default 0
    pub seed: u64,
    /// option 'events.per.second', default 10_000_000; sets event-time spacing (1e6/rate µs
    /// between events)
    pub events_per_second: u64,
    /// true iff option 'events.per.second' was given explicitly and option 'pace' is not 'false'; the
    /// caller paces wall-clock with it ('pace' = 'false' keeps the event-time spacing but generates
    /// as fast as the job reads, for benchmarks)
    pub rate_limited: bool,
    /// option 'max.events' (total events of ALL types over the sequence; the source is bounded
    /// when set, and then positive); absent = unbounded
    pub max_events: Option<u64>,
    /// option 'batch.size', default 4096 rows per output batch
    pub batch_size: usize,
    /// option 'base.time' as epoch millis, default 1_700_000_000_000
    pub base_time_ms: i64,
}

impl NexmarkConfig {
    /// options: lower-cased keys exactly as the user wrote them in WITH (...), minus 'connector'.
    /// Unknown keys and unparsable values -> Err with a message naming the key and what is allowed.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<NexmarkConfig, String> {
        let mut table = None;
        let mut pace = true;
        let mut config = NexmarkConfig {
            table: NexmarkTable::Bid,
            seed: 0,
            events_per_second: DEFAULT_EVENTS_PER_SECOND,
            rate_limited: false,
            max_events: None,
            batch_size: DEFAULT_BATCH_SIZE,
            base_time_ms: DEFAULT_BASE_TIME_MS,
        };
        for (key, raw) in options {
            let value = raw.trim();
            match key.as_str() {
                "nexmark.table" => {
                    table = Some(match value.to_ascii_lowercase().as_str() {
                        "person" => NexmarkTable::Person,
                        "auction" => NexmarkTable::Auction,
                        "bid" => NexmarkTable::Bid,
                        _ => {
                            return Err(format!(
                                "nexmark option 'nexmark.table' must be 'person', 'auction' or \
                                 'bid', got '{raw}'"
                            ));
                        }
                    })
                }
                "seed" => config.seed = parse_u64(key, value, "an unsigned 64-bit integer")?,
                "pace" => {
                    pace = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(format!("nexmark option 'pace' must be 'true' or 'false', got '{raw}'")),
                    }
                }
                "events.per.second" => {
                    let rate = parse_u64(key, value, "a positive integer")?;
                    if rate == 0 {
                        return Err(format!("nexmark option '{key}' must be a positive integer, got '{raw}'"));
                    }
                    config.events_per_second = rate;
                    config.rate_limited = true;
                }
                "max.events" => {
                    // No 0 = unbounded: a bounded job of zero events that never ends surprises; an
                    // unbounded source leaves the option out.
                    let max = parse_u64(key, value, "a positive integer (leave it out for an unbounded source)")?;
                    if max == 0 {
                        return Err(format!(
                            "nexmark option '{key}' must be a positive integer (leave it out for an unbounded source), got '{raw}'"
                        ));
                    }
                    config.max_events = Some(max);
                }
                "batch.size" => {
                    let size = parse_u64(key, value, "an integer between 1 and 1048576")?;
                    if size == 0 || size > MAX_BATCH_SIZE as u64 {
                        return Err(format!(
                            "nexmark option '{key}' must be an integer between 1 and \
                             {MAX_BATCH_SIZE}, got '{raw}'"
                        ));
                    }
                    config.batch_size = size as usize;
                }
                "base.time" => config.base_time_ms = parse_base_time(key, value)?,
                // Normally stripped by the caller; harmless if it is still there.
                "connector" => {}
                other => {
                    return Err(format!("unknown nexmark option '{other}'; allowed options are: {OPTION_KEYS}"));
                }
            }
        }
        config.rate_limited &= pace;
        config.table = table.ok_or_else(|| "nexmark source requires option 'nexmark.table' = 'person' | 'auction' | 'bid'".to_string())?;
        Ok(config)
    }

    /// Event time (epoch millis) of event number `n`.
    pub(super) fn event_time_ms(&self, n: u64) -> i64 {
        // floor(n * 1e6 / rate) µs, then truncated to ms == floor(n * 1000 / rate) ms.
        let rate = self.events_per_second.max(1);
        let offset_ms = match n.checked_mul(1000) {
            Some(x) => x / rate,
            None => {
                let x = (u128::from(n) * 1000) / u128::from(rate);
                u64::try_from(x).unwrap_or(u64::MAX)
            }
        };
        let offset_ms = i64::try_from(offset_ms).unwrap_or(i64::MAX);
        self.base_time_ms.saturating_add(offset_ms)
    }
}

fn parse_u64(key: &str, value: &str, allowed: &str) -> Result<u64, String> {
    let cleaned: String = value.chars().filter(|c| *c != '_').collect();
    cleaned
        .parse::<u64>()
        .map_err(|_| format!("nexmark option '{key}' must be {allowed}, got '{value}'"))
}

/// 'base.time' is epoch milliseconds, or a timestamp such as '2023-11-14 22:13:20' or
/// '2023-11-14T22:13:20Z' (no offset means UTC).
fn parse_base_time(key: &str, value: &str) -> Result<i64, String> {
    let cleaned: String = value.chars().filter(|c| *c != '_').collect();
    if let Ok(ms) = cleaned.parse::<i64>() {
        return Ok(ms);
    }
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(value)
        .map(|nanos| nanos.div_euclid(1_000_000))
        .map_err(|_| {
            format!(
                "nexmark option '{key}' must be epoch milliseconds or a timestamp like \
                 '2023-11-14 22:13:20', got '{value}'"
            )
        })
}
