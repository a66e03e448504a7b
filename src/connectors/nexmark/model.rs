//! The Nexmark model: the reference generator's constants, one SplitMix64 stream per (seed,
//! event number, field), the id, word, price and channel draws, and the generation of one
//! Person, Auction or Bid row into column buffers.

use super::*;

// Model constants (the reference generator's defaults).

pub(super) const PERSON_PROPORTION: u64 = 1;
pub(super) const AUCTION_PROPORTION: u64 = 3;
const BID_PROPORTION: u64 = 46;
pub(super) const TOTAL_PROPORTION: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;

const FIRST_PERSON_ID: i64 = 1000;
pub(super) const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u64 = 5;

/// P(bid goes to the hot auction) = 1 - 1/HOT_AUCTION_RATIO.
const HOT_AUCTION_RATIO: u64 = 2;
/// P(auction is by a hot seller) = 1 - 1/HOT_SELLERS_RATIO.
const HOT_SELLERS_RATIO: u64 = 4;
/// P(bid is by a hot bidder) = 1 - 1/HOT_BIDDERS_RATIO.
const HOT_BIDDERS_RATIO: u64 = 4;
/// Hot auctions / sellers / bidders are the first (or second) of blocks of this many ids.
pub(super) const HOT_BLOCK: i64 = 100;

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
    pub(super) fn new(seed: u64, event: u64, tag: u64) -> Rng {
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
    pub(super) fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// `below` for small non-negative i64 bounds.
    fn below_i64(&mut self, bound: i64) -> i64 {
        self.below(bound.max(0) as u64) as i64
    }

    pub(super) fn index(&mut self, len: usize) -> usize {
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
pub(super) fn last_base0_auction_id(n: u64) -> i64 {
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
    pub(super) fn random(r: &mut Rng, max_len: usize, separator: u8) -> Word {
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

    pub(super) fn as_str(&self) -> &str {
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
pub(super) enum Buf {
    /// Field not declared: not generated.
    Off,
    /// Int64 and timestamp (epoch millis) fields.
    Int(Vec<i64>),
    Str(StringBuilder),
}

#[derive(Debug)]
pub(super) struct Cols {
    pub(super) bufs: Vec<Buf>,
}

impl Cols {
    fn wants(&self, f: usize) -> bool {
        !matches!(self.bufs[f], Buf::Off)
    }

    pub(super) fn push(&mut self, f: usize, v: i64) {
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

pub(super) fn gen_person(cfg: &NexmarkConfig, cols: &mut Cols, n: u64) {
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

pub(super) fn gen_auction(cfg: &NexmarkConfig, cols: &mut Cols, n: u64) {
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

pub(super) fn gen_bid(cfg: &NexmarkConfig, cols: &mut Cols, n: u64) {
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
