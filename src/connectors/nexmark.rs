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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringBuilder, TimestampMillisecondArray, new_null_array};
use arrow::compute::{can_cast_types, cast};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

// ---------------------------------------------------------------------------------------------
// Model constants (the reference generator's defaults).
// ---------------------------------------------------------------------------------------------

const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
const BID_PROPORTION: u64 = 46;
const TOTAL_PROPORTION: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;

const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u64 = 5;

/// P(bid goes to the hot auction) = 1 - 1/HOT_AUCTION_RATIO.
const HOT_AUCTION_RATIO: u64 = 2;
/// P(auction is by a hot seller) = 1 - 1/HOT_SELLERS_RATIO.
const HOT_SELLERS_RATIO: u64 = 4;
/// P(bid is by a hot bidder) = 1 - 1/HOT_BIDDERS_RATIO.
const HOT_BIDDERS_RATIO: u64 = 4;
/// Hot auctions / sellers / bidders are the first (or second) of blocks of this many ids.
const HOT_BLOCK: i64 = 100;

const NUM_IN_FLIGHT_AUCTIONS: i64 = 100;
const NUM_ACTIVE_PEOPLE: i64 = 1000;
/// Number of not-yet-created person / auction ids a random pick may reach ahead.
const ID_LEAD: i64 = 10;

const AVG_PERSON_BYTES: usize = 200;
const AVG_AUCTION_BYTES: usize = 500;
const AVG_BID_BYTES: usize = 100;

const HOT_CHANNELS_RATIO: u64 = 2;
const NUM_CHANNELS: usize = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];

// Option defaults and keys.
const DEFAULT_EVENTS_PER_SECOND: u64 = 10_000_000;
const DEFAULT_BATCH_SIZE: usize = 4096;
const MAX_BATCH_SIZE: usize = 1 << 20;
const DEFAULT_BASE_TIME_MS: i64 = 1_700_000_000_000;
const OPTION_KEYS: &str = "nexmark.table, seed, events.per.second, pace, max.events, batch.size, base.time";

/// In rate-limited mode a batch covers at most this fraction of a second of the event sequence,
/// so that the caller's pacing stays smooth (see [`NexmarkGenerator::next_batch`]).
const RATE_LIMITED_BATCHES_PER_SECOND: u64 = 100;

// ---------------------------------------------------------------------------------------------
// Public configuration.
// ---------------------------------------------------------------------------------------------

/// Which of the three Nexmark streams a source emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkTable {
    Person,
    Auction,
    Bid,
}

impl NexmarkTable {
    fn name(self) -> &'static str {
        match self {
            NexmarkTable::Person => "person",
            NexmarkTable::Auction => "auction",
            NexmarkTable::Bid => "bid",
        }
    }

    fn fields(self) -> &'static [FieldDef] {
        match self {
            NexmarkTable::Person => PERSON_FIELDS,
            NexmarkTable::Auction => AUCTION_FIELDS,
            NexmarkTable::Bid => BID_FIELDS,
        }
    }

    /// Small number mixed into per-field random stream tags.
    fn code(self) -> u64 {
        match self {
            NexmarkTable::Person => 1,
            NexmarkTable::Auction => 2,
            NexmarkTable::Bid => 3,
        }
    }

    /// The kind of event number `n` in the global sequence.
    fn of_event(n: u64) -> NexmarkTable {
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
    /// when set); 0 or absent = unbounded
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
                    let max = parse_u64(key, value, "a non-negative integer (0 = unbounded)")?;
                    config.max_events = (max > 0).then_some(max);
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
    fn event_time_ms(&self, n: u64) -> i64 {
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

// ---------------------------------------------------------------------------------------------
// Table definitions.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Generated as Int64.
    Int,
    /// Generated as Utf8.
    Str,
    /// Generated as Timestamp(Millisecond, None).
    Ts,
}

#[derive(Debug)]
struct FieldDef {
    name: &'static str,
    kind: Kind,
    /// Rough average byte length, to size string buffers.
    avg_len: usize,
}

const fn fd(name: &'static str, kind: Kind, avg_len: usize) -> FieldDef {
    FieldDef { name, kind, avg_len }
}

const P_ID: usize = 0;
const P_NAME: usize = 1;
const P_EMAIL: usize = 2;
const P_CARD: usize = 3;
const P_CITY: usize = 4;
const P_STATE: usize = 5;
const P_DATE_TIME: usize = 6;
const P_EXTRA: usize = 7;
const PERSON_FIELDS: &[FieldDef] = &[
    fd("id", Kind::Int, 8),
    fd("name", Kind::Str, 12),
    fd("email_address", Kind::Str, 14),
    fd("credit_card", Kind::Str, 19),
    fd("city", Kind::Str, 8),
    fd("state", Kind::Str, 2),
    fd("date_time", Kind::Ts, 8),
    fd("extra", Kind::Str, 140),
];

const A_ID: usize = 0;
const A_ITEM_NAME: usize = 1;
const A_DESCRIPTION: usize = 2;
const A_INITIAL_BID: usize = 3;
const A_RESERVE: usize = 4;
const A_DATE_TIME: usize = 5;
const A_EXPIRES: usize = 6;
const A_SELLER: usize = 7;
const A_CATEGORY: usize = 8;
const A_EXTRA: usize = 9;
const AUCTION_FIELDS: &[FieldDef] = &[
    fd("id", Kind::Int, 8),
    fd("item_name", Kind::Str, 11),
    fd("description", Kind::Str, 51),
    fd("initial_bid", Kind::Int, 8),
    fd("reserve", Kind::Int, 8),
    fd("date_time", Kind::Ts, 8),
    fd("expires", Kind::Ts, 8),
    fd("seller", Kind::Int, 8),
    fd("category", Kind::Int, 8),
    fd("extra", Kind::Str, 400),
];

const B_AUCTION: usize = 0;
const B_BIDDER: usize = 1;
const B_PRICE: usize = 2;
const B_CHANNEL: usize = 3;
const B_URL: usize = 4;
const B_DATE_TIME: usize = 5;
const B_EXTRA: usize = 6;
const BID_FIELDS: &[FieldDef] = &[
    fd("auction", Kind::Int, 8),
    fd("bidder", Kind::Int, 8),
    fd("price", Kind::Int, 8),
    fd("channel", Kind::Str, 10),
    fd("url", Kind::Str, 72),
    fd("date_time", Kind::Ts, 8),
    fd("extra", Kind::Str, 68),
];

fn valid_names(table: NexmarkTable) -> String {
    table.fields().iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

/// Whether a generated column of `kind` may be declared as `to`: arrow must be able to cast it,
/// and the cast must be meaningful (no string-to-number casts that would yield all NULLs).
fn castable(kind: Kind, to: &DataType) -> bool {
    let from = generated_type(kind);
    if from == *to {
        return true;
    }
    let is_string = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let family_ok = match kind {
        Kind::Int => to.is_numeric() || is_string(to),
        Kind::Str => match to {
            DataType::Dictionary(_, value) => is_string(value),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => true,
            other => is_string(other),
        },
        Kind::Ts => {
            matches!(
                to,
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Int64
            ) || is_string(to)
        }
    };
    family_ok && can_cast_types(&from, to)
}

fn generated_type(kind: Kind) -> DataType {
    match kind {
        Kind::Int => DataType::Int64,
        Kind::Str => DataType::Utf8,
        Kind::Ts => DataType::Timestamp(TimeUnit::Millisecond, None),
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness: one SplitMix64 stream per (seed, event number, field).
// ---------------------------------------------------------------------------------------------

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, event: u64, tag: u64) -> Rng {
        let key = event
            .wrapping_mul(GOLDEN_GAMMA)
            .wrapping_add(tag.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        Rng(mix64(seed.wrapping_add(0x6A09_E667_F3BC_C909) ^ mix64(key)))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix64(self.0)
    }

    /// Uniform in `0..bound` (0 when `bound` is 0).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// `below` for small non-negative i64 bounds.
    fn below_i64(&mut self, bound: i64) -> i64 {
        self.below(bound.max(0) as u64) as i64
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Distinct stream tag for field `field` of `table`.
fn tag(table: NexmarkTable, field: usize) -> u64 {
    (table.code() << 8) | field as u64
}

/// Prices are log-uniform between 1.00 and 1,000,000.00 (in cents).
fn next_price(r: &mut Rng) -> i64 {
    (10f64.powf(r.unit() * 6.0) * 100.0).round() as i64
}

/// Last person id (base 0) created at or before event `n`.
fn last_base0_person_id(n: u64) -> i64 {
    let epoch = (n / TOTAL_PROPORTION) as i64;
    let offset = n % TOTAL_PROPORTION;
    // Past the person slots of this epoch: the last person of the epoch.
    let offset = if offset >= PERSON_PROPORTION {
        PERSON_PROPORTION - 1
    } else {
        offset
    } as i64;
    epoch * PERSON_PROPORTION as i64 + offset
}

/// Last auction id (base 0) created at or before event `n` (-1 before the first auction).
fn last_base0_auction_id(n: u64) -> i64 {
    let mut epoch = (n / TOTAL_PROPORTION) as i64;
    let mut offset = (n % TOTAL_PROPORTION) as i64;
    let pp = PERSON_PROPORTION as i64;
    let ap = AUCTION_PROPORTION as i64;
    if offset < pp {
        // A person: the last auction is the last one of the previous epoch.
        epoch -= 1;
        offset = ap - 1;
    } else if offset >= pp + ap {
        // A bid: the last auction of this epoch.
        offset = ap - 1;
    } else {
        offset -= pp;
    }
    epoch * ap + offset
}

/// A random recently active person (base 0), possibly a few ids ahead of the last one created.
fn next_base0_person_id(n: u64, r: &mut Rng) -> i64 {
    let num_people = last_base0_person_id(n) + 1;
    let active = num_people.min(NUM_ACTIVE_PEOPLE);
    num_people - active + r.below_i64(active + ID_LEAD)
}

/// A random auction among those likely still in flight, possibly a few ids ahead.
fn next_base0_auction_id(n: u64, r: &mut Rng) -> i64 {
    let max_auction = last_base0_auction_id(n);
    let min_auction = (max_auction - NUM_IN_FLIGHT_AUCTIONS).max(0);
    min_auction + r.below_i64(max_auction - min_auction + 1 + ID_LEAD)
}

/// A short random word of 3..max_len characters: lowercase letters with an occasional
/// `separator`; spaces at the ends are trimmed.
#[derive(Debug)]
struct Word {
    buf: [u8; 128],
    len: usize,
}

impl Word {
    fn random(r: &mut Rng, max_len: usize, separator: u8) -> Word {
        const MIN_LEN: usize = 3;
        let len = (MIN_LEN + r.index(max_len.saturating_sub(MIN_LEN))).min(128);
        let mut buf = [0u8; 128];
        for b in buf.iter_mut().take(len) {
            let x = r.next_u64();
            // High half picks separator vs letter, low half picks the letter.
            *b = if ((x >> 32) * 13) >> 32 == 0 {
                separator
            } else {
                b'a' + (((x & 0xFFFF_FFFF) * 26) >> 32) as u8
            };
        }
        let mut word = Word { buf, len };
        if separator == b' ' {
            let text = word.as_str();
            let trimmed = text.trim_matches(' ');
            let start = text.len() - text.trim_start_matches(' ').len();
            let new_len = trimmed.len();
            word.buf.copy_within(start..start + new_len, 0);
            word.len = new_len;
        }
        word
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Appends `len` random lowercase letters to `out`.
fn write_letters(out: &mut impl std::fmt::Write, r: &mut Rng, len: usize) {
    let mut buf = [0u8; 65];
    let mut remaining = len;
    while remaining > 0 {
        let chunk = remaining.min(65);
        // 13 letters per 64-bit draw (26^13 < 2^64).
        for group in buf[..chunk].chunks_mut(13) {
            let mut x = r.next_u64();
            for b in group {
                *b = b'a' + (x % 26) as u8;
                x /= 26;
            }
        }
        let _ = out.write_str(std::str::from_utf8(&buf[..chunk]).unwrap_or(""));
        remaining -= chunk;
    }
}

/// Appends the `extra` padding so that `current_size + extra.len()` averages `avg_size`
/// (uniform within ±20% of the missing size), and finishes the value.
fn append_extra(out: &mut StringBuilder, r: &mut Rng, current_size: usize, avg_size: usize) {
    if current_size < avg_size {
        let missing = avg_size - current_size;
        let delta = (missing as f64 * 0.2).round() as usize;
        let min = missing - delta;
        let size = if delta == 0 { min } else { min + r.index(2 * delta) };
        write_letters(out, r, size);
    }
    out.append_value("");
}

/// Fixed channel names and URLs (independent of the seed so a channel always has the same URL).
#[derive(Debug)]
struct Channels {
    hot_urls: Vec<String>,
    names: Vec<String>,
    urls: Vec<String>,
}

const CHANNEL_SEED: u64 = 0x4E45_584D_4152_4B21;

fn channels() -> &'static Channels {
    static CHANNELS: OnceLock<Channels> = OnceLock::new();
    CHANNELS.get_or_init(|| {
        let hot_urls = (0..HOT_CHANNELS.len())
            .map(|i| {
                let mut r = Rng::new(CHANNEL_SEED, i as u64, 1);
                base_url(&mut r)
            })
            .collect();
        let mut names = Vec::with_capacity(NUM_CHANNELS);
        let mut urls = Vec::with_capacity(NUM_CHANNELS);
        for c in 0..NUM_CHANNELS {
            let mut r = Rng::new(CHANNEL_SEED, c as u64, 2);
            let mut url = base_url(&mut r);
            if r.below(10) > 0 {
                let id = (c as i32).reverse_bits().unsigned_abs();
                let _ = write!(url, "&channel_id={id}");
            }
            names.push(format!("channel-{c}"));
            urls.push(url);
        }
        Channels { hot_urls, names, urls }
    })
}

fn base_url(r: &mut Rng) -> String {
    let a = Word::random(r, 5, b'_');
    let b = Word::random(r, 5, b'_');
    let c = Word::random(r, 5, b'_');
    format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        a.as_str(),
        b.as_str(),
        c.as_str()
    )
}

// ---------------------------------------------------------------------------------------------
// Column buffers.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Buf {
    /// Field not declared: not generated.
    Off,
    /// Int64 and timestamp (epoch millis) fields.
    Int(Vec<i64>),
    Str(StringBuilder),
}

#[derive(Debug)]
struct Cols {
    bufs: Vec<Buf>,
}

impl Cols {
    fn wants(&self, f: usize) -> bool {
        !matches!(self.bufs[f], Buf::Off)
    }

    fn push(&mut self, f: usize, v: i64) {
        if let Buf::Int(vec) = &mut self.bufs[f] {
            vec.push(v);
        }
    }

    fn text(&mut self, f: usize) -> Option<&mut StringBuilder> {
        match &mut self.bufs[f] {
            Buf::Str(b) => Some(b),
            _ => None,
        }
    }

    fn push_str(&mut self, f: usize, s: &str) {
        if let Some(b) = self.text(f) {
            b.append_value(s);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row generation.
// ---------------------------------------------------------------------------------------------

fn gen_person(cfg: &NexmarkConfig, cols: &mut Cols, n: u64) {
    const T: NexmarkTable = NexmarkTable::Person;
    let seed = cfg.seed;
    cols.push(P_ID, last_base0_person_id(n) + FIRST_PERSON_ID);
    cols.push(P_DATE_TIME, cfg.event_time_ms(n));

    let want_extra = cols.wants(P_EXTRA);
    // The padding depends on the other fields' lengths, so those are drawn whenever either they
    // or `extra` are wanted.
    let mut size = 8 + 19 + 2; // id, credit card, state

    if want_extra || cols.wants(P_NAME) {
        let mut r = Rng::new(seed, n, tag(T, P_NAME));
        let first = FIRST_NAMES[r.index(FIRST_NAMES.len())];
        let last = LAST_NAMES[r.index(LAST_NAMES.len())];
        size += first.len() + 1 + last.len();
        if let Some(b) = cols.text(P_NAME) {
            let _ = b.write_str(first);
            let _ = b.write_str(" ");
            b.append_value(last);
        }
    }
    if want_extra || cols.wants(P_EMAIL) {
        let mut r = Rng::new(seed, n, tag(T, P_EMAIL));
        let user = Word::random(&mut r, 7, b' ');
        let domain = Word::random(&mut r, 5, b' ');
        size += user.len + 1 + domain.len + 4;
        if let Some(b) = cols.text(P_EMAIL) {
            let _ = b.write_str(user.as_str());
            let _ = b.write_str("@");
            let _ = b.write_str(domain.as_str());
            b.append_value(".com");
        }
    }
    if let Some(b) = cols.text(P_CARD) {
        let mut r = Rng::new(seed, n, tag(T, P_CARD));
        let (a, c, d, e) = (r.below(10_000), r.below(10_000), r.below(10_000), r.below(10_000));
        let _ = write!(b, "{a:04} {c:04} {d:04} {e:04}");
        b.append_value("");
    }
    if want_extra || cols.wants(P_CITY) {
        let mut r = Rng::new(seed, n, tag(T, P_CITY));
        let city = US_CITIES[r.index(US_CITIES.len())];
        size += city.len();
        cols.push_str(P_CITY, city);
    }
    if cols.wants(P_STATE) {
        let mut r = Rng::new(seed, n, tag(T, P_STATE));
        cols.push_str(P_STATE, US_STATES[r.index(US_STATES.len())]);
    }
    if let Some(b) = cols.text(P_EXTRA) {
        let mut r = Rng::new(seed, n, tag(T, P_EXTRA));
        append_extra(b, &mut r, size, AVG_PERSON_BYTES);
    }
}

fn gen_auction(cfg: &NexmarkConfig, cols: &mut Cols, n: u64) {
    const T: NexmarkTable = NexmarkTable::Auction;
    let seed = cfg.seed;
    let ts = cfg.event_time_ms(n);
    cols.push(A_ID, last_base0_auction_id(n) + FIRST_AUCTION_ID);
    cols.push(A_DATE_TIME, ts);

    if cols.wants(A_SELLER) {
        let mut r = Rng::new(seed, n, tag(T, A_SELLER));
        let seller = if r.below(HOT_SELLERS_RATIO) > 0 {
            // The first person of the current block of people.
            (last_base0_person_id(n) / HOT_BLOCK) * HOT_BLOCK
        } else {
            next_base0_person_id(n, &mut r)
        };
        cols.push(A_SELLER, seller + FIRST_PERSON_ID);
    }
    if cols.wants(A_CATEGORY) {
        let mut r = Rng::new(seed, n, tag(T, A_CATEGORY));
        cols.push(A_CATEGORY, FIRST_CATEGORY_ID + r.below(NUM_CATEGORIES) as i64);
    }
    if cols.wants(A_INITIAL_BID) || cols.wants(A_RESERVE) {
        // One stream for both, so that reserve = initial_bid + another price.
        let mut r = Rng::new(seed, n, tag(T, A_INITIAL_BID));
        let initial = next_price(&mut r);
        cols.push(A_INITIAL_BID, initial);
        cols.push(A_RESERVE, initial + next_price(&mut r));
    }
    if cols.wants(A_EXPIRES) {
        let mut r = Rng::new(seed, n, tag(T, A_EXPIRES));
        // Average auction length: the time to generate NUM_IN_FLIGHT_AUCTIONS more auctions.
        let events_ahead = NUM_IN_FLIGHT_AUCTIONS as u64 * TOTAL_PROPORTION / AUCTION_PROPORTION;
        let horizon_ms = cfg.event_time_ms(n.saturating_add(events_ahead)) - ts;
        let length = 1 + r.below_i64((horizon_ms.saturating_mul(2)).max(1));
        cols.push(A_EXPIRES, ts.saturating_add(length));
    }

    let want_extra = cols.wants(A_EXTRA);
    let mut size = 8 * 7; // id, initial_bid, reserve, date_time, expires, seller, category
    if want_extra || cols.wants(A_ITEM_NAME) {
        let mut r = Rng::new(seed, n, tag(T, A_ITEM_NAME));
        let name = Word::random(&mut r, 20, b' ');
        size += name.len;
        cols.push_str(A_ITEM_NAME, name.as_str());
    }
    if want_extra || cols.wants(A_DESCRIPTION) {
        let mut r = Rng::new(seed, n, tag(T, A_DESCRIPTION));
        let desc = Word::random(&mut r, 100, b' ');
        size += desc.len;
        cols.push_str(A_DESCRIPTION, desc.as_str());
    }
    if let Some(b) = cols.text(A_EXTRA) {
        let mut r = Rng::new(seed, n, tag(T, A_EXTRA));
        append_extra(b, &mut r, size, AVG_AUCTION_BYTES);
    }
}

fn gen_bid(cfg: &NexmarkConfig, cols: &mut Cols, n: u64) {
    const T: NexmarkTable = NexmarkTable::Bid;
    let seed = cfg.seed;
    if cols.wants(B_AUCTION) {
        let mut r = Rng::new(seed, n, tag(T, B_AUCTION));
        let auction = if r.below(HOT_AUCTION_RATIO) > 0 {
            // The first auction of the current block of auctions.
            (last_base0_auction_id(n) / HOT_BLOCK) * HOT_BLOCK
        } else {
            next_base0_auction_id(n, &mut r)
        };
        cols.push(B_AUCTION, auction + FIRST_AUCTION_ID);
    }
    if cols.wants(B_BIDDER) {
        let mut r = Rng::new(seed, n, tag(T, B_BIDDER));
        let bidder = if r.below(HOT_BIDDERS_RATIO) > 0 {
            // The second person of the current block, so hot bidders and hot sellers differ.
            (last_base0_person_id(n) / HOT_BLOCK) * HOT_BLOCK + 1
        } else {
            next_base0_person_id(n, &mut r)
        };
        cols.push(B_BIDDER, bidder + FIRST_PERSON_ID);
    }
    if cols.wants(B_PRICE) {
        let mut r = Rng::new(seed, n, tag(T, B_PRICE));
        cols.push(B_PRICE, next_price(&mut r));
    }
    if cols.wants(B_CHANNEL) || cols.wants(B_URL) {
        let mut r = Rng::new(seed, n, tag(T, B_CHANNEL));
        let ch = channels();
        let (name, url) = if r.below(HOT_CHANNELS_RATIO) > 0 {
            let i = r.index(HOT_CHANNELS.len());
            (HOT_CHANNELS[i], ch.hot_urls[i].as_str())
        } else {
            let c = r.index(NUM_CHANNELS);
            (ch.names[c].as_str(), ch.urls[c].as_str())
        };
        cols.push_str(B_CHANNEL, name);
        cols.push_str(B_URL, url);
    }
    cols.push(B_DATE_TIME, cfg.event_time_ms(n));
    if let Some(b) = cols.text(B_EXTRA) {
        let mut r = Rng::new(seed, n, tag(T, B_EXTRA));
        // As in the reference, the size counts the four numeric-ish fields only.
        append_extra(b, &mut r, 8 * 4, AVG_BID_BYTES);
    }
}

// ---------------------------------------------------------------------------------------------
// The generator.
// ---------------------------------------------------------------------------------------------

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
        if !self.share_has_rows || self.next >= self.limit {
            return None;
        }
        let batch_size = self.config.batch_size.max(1);
        let capacity = batch_size.min(usize::try_from(self.span_cap).unwrap_or(usize::MAX));
        self.prepare(capacity);

        let table = self.config.table;
        let mut rows = 0usize;
        let mut span = 0u64;
        while self.next < self.limit && rows < batch_size {
            if span >= self.span_cap && rows > 0 {
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

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;
