//! Tests of the Nexmark generator.

use super::config::{DEFAULT_BASE_TIME_MS, DEFAULT_EVENTS_PER_SECOND};
use super::*;
use arrow::array::{Int32Array, StringArray, TimestampNanosecondArray};
use arrow::util::display::array_value_to_string;

fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `max_events` 0: unbounded (no option).
fn config(table: &str, max_events: u64) -> NexmarkConfig {
    let max = max_events.to_string();
    let mut options = vec![("nexmark.table", table)];
    if max_events > 0 {
        options.push(("max.events", &max));
    }
    NexmarkConfig::from_options(&opts(&options)).expect("valid options")
}

fn full_schema(table: NexmarkTable) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .fields()
            .iter()
            .map(|d| Field::new(d.name, generated_type(d.kind), false))
            .collect::<Vec<_>>(),
    ))
}

fn all_batches(mut g: NexmarkGenerator) -> Vec<RecordBatch> {
    std::iter::from_fn(|| g.next_batch()).collect()
}

fn rows_as_strings(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| array_value_to_string(c, r).expect("displayable"))
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows
}

fn int_col(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name(name).expect("column");
            col.as_primitive::<arrow::datatypes::Int64Type>().values().to_vec()
        })
        .collect()
}

fn row_count(table: &str, max: u64) -> usize {
    let cfg = config(table, max);
    let schema = full_schema(cfg.table);
    let g = NexmarkGenerator::new(cfg, schema, 0, 1).expect("generator");
    all_batches(g).iter().map(|b| b.num_rows()).sum()
}

#[test]
fn proportions_1_3_46() {
    assert_eq!(row_count("person", 5000), 100);
    assert_eq!(row_count("auction", 5000), 300);
    assert_eq!(row_count("bid", 5000), 4600);
}

#[test]
fn ids_start_at_1000_and_are_dense() {
    let cfg = config("person", 5000);
    let g = NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("gen");
    let ids = int_col(&all_batches(g), "id");
    assert_eq!(ids, (1000..1100).collect::<Vec<_>>());

    let cfg = config("auction", 5000);
    let g = NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("gen");
    let batches = all_batches(g);
    assert_eq!(int_col(&batches, "id"), (1000..1300).collect::<Vec<_>>());
    for c in int_col(&batches, "category") {
        assert!((10..15).contains(&c), "category {c}");
    }
    for s in int_col(&batches, "seller") {
        assert!((1000..1110).contains(&s), "seller {s}");
    }
    let initial = int_col(&batches, "initial_bid");
    let reserve = int_col(&batches, "reserve");
    assert!(initial.iter().zip(&reserve).all(|(i, r)| r > i && *i >= 100));

    let cfg = config("bid", 5000);
    let g = NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("gen");
    let batches = all_batches(g);
    assert!(int_col(&batches, "auction").iter().all(|&a| (1000..1310).contains(&a)));
    assert!(int_col(&batches, "bidder").iter().all(|&b| (1000..1110).contains(&b)));
}

#[test]
fn union_independent_of_parallelism_and_batch_size() {
    for table in ["person", "auction", "bid"] {
        let cfg = config(table, 20_000);
        let schema = full_schema(cfg.table);
        let g = NexmarkGenerator::new(cfg.clone(), schema.clone(), 0, 1).expect("gen");
        let mut single = rows_as_strings(&all_batches(g));
        let mut union = Vec::new();
        for s in 0..3 {
            let mut c = cfg.clone();
            c.batch_size = 7 + s;
            let g = NexmarkGenerator::new(c, schema.clone(), s, 3).expect("gen");
            union.extend(rows_as_strings(&all_batches(g)));
        }
        assert!(!single.is_empty());
        single.sort();
        union.sort();
        assert_eq!(single, union, "table {table}");
    }
}

#[test]
fn same_seed_same_rows_other_seed_other_rows() {
    let cfg = config("bid", 2000);
    let schema = full_schema(cfg.table);
    let a = rows_as_strings(&all_batches(NexmarkGenerator::new(cfg.clone(), schema.clone(), 0, 1).expect("gen")));
    let b = rows_as_strings(&all_batches(NexmarkGenerator::new(cfg.clone(), schema.clone(), 0, 1).expect("gen")));
    assert_eq!(a, b);
    let mut other = cfg;
    other.seed = 42;
    let c = rows_as_strings(&all_batches(NexmarkGenerator::new(other, schema, 0, 1).expect("gen")));
    assert_ne!(a, c);
}

#[test]
fn subset_of_columns_matches_full_rows() {
    let cfg = config("auction", 3000);
    let full = all_batches(NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("gen"));
    let subset = Arc::new(Schema::new(vec![
        Field::new("Reserve", DataType::Int64, false),
        Field::new("ID", DataType::Int64, false),
    ]));
    let part = all_batches(NexmarkGenerator::new(cfg, subset, 0, 1).expect("gen"));
    assert_eq!(int_col(&full, "reserve"), int_col(&part, "Reserve"));
    assert_eq!(int_col(&full, "id"), int_col(&part, "ID"));
}

#[test]
fn seek_resumes_identically() {
    for (s, p) in [(0usize, 1usize), (1, 3)] {
        let mut cfg = config("bid", 30_000);
        cfg.batch_size = 500;
        let schema = full_schema(cfg.table);
        let mut g = NexmarkGenerator::new(cfg.clone(), schema.clone(), s, p).expect("gen");
        let _first = g.next_batch().expect("batch");
        let pos = g.position();
        let rest = rows_as_strings(&all_batches(g));

        let mut h = NexmarkGenerator::new(cfg, schema, s, p).expect("gen");
        h.seek(pos);
        assert_eq!(h.position(), pos);
        assert_eq!(h.events_passed(), 0);
        let resumed = rows_as_strings(&all_batches(h));
        assert!(!rest.is_empty());
        assert_eq!(rest, resumed);
    }
}

#[test]
fn event_time_spacing() {
    let cfg = NexmarkConfig::from_options(&opts(&[
        ("nexmark.table", "person"),
        ("events.per.second", "1000"),
        ("max.events", "500"),
    ]))
    .expect("options");
    assert!(cfg.rate_limited);
    let g = NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("gen");
    assert_eq!(g.event_time_ms(0), DEFAULT_BASE_TIME_MS);
    for n in [0u64, 1, 7, 999, 123_456] {
        assert_eq!(g.event_time_ms(n + 1) - g.event_time_ms(n), 1);
    }
    let batches = all_batches(g);
    let times: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("date_time")
                .expect("col")
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .to_vec()
        })
        .collect();
    let expected: Vec<i64> = (0..10).map(|i| DEFAULT_BASE_TIME_MS + 50 * i).collect();
    assert_eq!(times, expected);

    // Default rate: 10M events/s, i.e. 10,000 events per millisecond.
    let cfg = config("bid", 0);
    assert!(!cfg.rate_limited);
    let g = NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("gen");
    assert_eq!(g.event_time_ms(9_999), DEFAULT_BASE_TIME_MS);
    assert_eq!(g.event_time_ms(10_000), DEFAULT_BASE_TIME_MS + 1);
    assert!(g.event_time_ms(u64::MAX) > DEFAULT_BASE_TIME_MS);

    // 'pace' = 'false' keeps the spacing without wall-clock pacing; anything else is refused.
    let unpaced =
        NexmarkConfig::from_options(&opts(&[("nexmark.table", "bid"), ("events.per.second", "1000"), ("pace", "false")])).expect("options");
    assert!(!unpaced.rate_limited);
    assert_eq!(unpaced.events_per_second, 1000);
    let err = NexmarkConfig::from_options(&opts(&[("nexmark.table", "bid"), ("pace", "maybe")])).unwrap_err();
    assert_eq!(err, "nexmark option 'pace' must be 'true' or 'false', got 'maybe'");
}

#[test]
fn rate_limited_batches_are_small_and_paced() {
    let cfg = NexmarkConfig::from_options(&opts(&[("nexmark.table", "bid"), ("events.per.second", "10000")])).expect("options");
    let mut g = NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("g");
    let b = g.next_batch().expect("batch");
    assert!(b.num_rows() > 0 && b.num_rows() <= 100);
    assert_eq!(g.events_passed(), 100);
    assert_eq!(g.position(), 100);
    // Sparse table: 100 events hold 2 persons.
    let mut cfg = cfg;
    cfg.table = NexmarkTable::Person;
    let mut g = NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("g");
    for _ in 0..3 {
        assert_eq!(g.next_batch().expect("batch").num_rows(), 2);
    }
    // Very low rate: the span cap is 1 event, but a batch still holds at least one row.
    cfg.events_per_second = 10;
    let mut g = NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("g");
    g.next_batch().expect("batch");
    let b = g.next_batch().expect("batch");
    assert_eq!(b.num_rows(), 1);
    assert_eq!(g.position(), 51);
    assert_eq!(g.events_passed(), 51);
}

#[test]
fn cast_to_declared_types() {
    let cfg = config("bid", 1000);
    let schema = Arc::new(Schema::new(vec![
        Field::new("date_time", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("price", DataType::Int32, true),
        Field::new("auction", DataType::Int32, true),
        Field::new("channel", DataType::Utf8View, true),
        Field::new("DATE_TIME", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
    ]));
    let full = all_batches(NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("gen"));
    let cast_batches = all_batches(NexmarkGenerator::new(cfg, schema.clone(), 0, 1).expect("g"));
    assert_eq!(cast_batches[0].schema(), schema);
    let b = &cast_batches[0];
    let ns = b.column(0).as_any().downcast_ref::<TimestampNanosecondArray>().expect("ns");
    assert_eq!(ns.value(0), DEFAULT_BASE_TIME_MS * 1_000_000);
    let price = b.column(1).as_any().downcast_ref::<Int32Array>().expect("i32");
    let full_price = int_col(&full, "price");
    assert_eq!(i64::from(price.value(0)), full_price[0]);
    assert_eq!(price.null_count(), 0);
    let us = b.column(4).as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(us.value(0), DEFAULT_BASE_TIME_MS * 1000);
}

#[test]
fn errors_for_bad_columns_and_options() {
    let cfg = config("bid", 10);
    let bad = Arc::new(Schema::new(vec![Field::new("nope", DataType::Int64, true)]));
    let err = NexmarkGenerator::new(cfg.clone(), bad, 0, 1).expect_err("unknown column");
    assert!(err.contains("nope") && err.contains("auction, bidder, price"), "{err}");
    let bad = Arc::new(Schema::new(vec![Field::new("channel", DataType::Int64, true)]));
    let err = NexmarkGenerator::new(cfg.clone(), bad, 0, 1).expect_err("bad type");
    assert!(err.contains("channel"), "{err}");
    assert!(NexmarkGenerator::new(cfg, full_schema(NexmarkTable::Bid), 3, 3).is_err());

    let err = NexmarkConfig::from_options(&opts(&[("nexmark.table", "bid"), ("colour", "x")])).expect_err("unknown option");
    assert!(err.contains("colour") && err.contains("events.per.second"), "{err}");
    let err = NexmarkConfig::from_options(&opts(&[("nexmark.table", "bids?")])).expect_err("bad table");
    assert!(err.contains("nexmark.table"), "{err}");
    let err = NexmarkConfig::from_options(&opts(&[("nexmark.table", "bid"), ("seed", "-1")])).expect_err("bad seed");
    assert!(err.contains("seed"), "{err}");
    let err = NexmarkConfig::from_options(&opts(&[("nexmark.table", "bid"), ("events.per.second", "0")])).expect_err("zero rate");
    assert!(err.contains("events.per.second"), "{err}");
    let err = NexmarkConfig::from_options(&opts(&[("seed", "1")])).expect_err("no table");
    assert!(err.contains("nexmark.table"), "{err}");
    let err = NexmarkConfig::from_options(&opts(&[("nexmark.table", "bid"), ("batch.size", "0")])).expect_err("zero batch");
    assert!(err.contains("batch.size"), "{err}");
}

#[test]
fn option_parsing() {
    let cfg = NexmarkConfig::from_options(&opts(&[
        ("nexmark.table", "Auction"),
        ("seed", "7"),
        ("max.events", "1_000"),
        ("batch.size", "10"),
        ("base.time", "2024-01-01 00:00:00"),
    ]))
    .expect("options");
    assert_eq!(cfg.table, NexmarkTable::Auction);
    assert_eq!(cfg.seed, 7);
    assert_eq!(cfg.max_events, Some(1000));
    assert_eq!(cfg.batch_size, 10);
    assert_eq!(cfg.base_time_ms, 1_704_067_200_000);
    assert!(!cfg.rate_limited);
    assert_eq!(cfg.events_per_second, DEFAULT_EVENTS_PER_SECOND);
    let cfg = NexmarkConfig::from_options(&opts(&[("nexmark.table", "person"), ("base.time", "123")])).expect("options");
    assert_eq!(cfg.max_events, None);
    assert_eq!(cfg.base_time_ms, 123);
    let err = NexmarkConfig::from_options(&opts(&[("nexmark.table", "person"), ("max.events", "0")])).expect_err("zero events");
    assert!(err.contains("leave it out for an unbounded source"), "{err}");
}

#[test]
fn hot_auction_ratio_about_half() {
    let cfg = config("bid", 50_000);
    let schema = Arc::new(Schema::new(vec![Field::new("auction", DataType::Int64, false)]));
    let auctions = int_col(&all_batches(NexmarkGenerator::new(cfg, schema, 0, 1).expect("gen")), "auction");
    let bid_events = (0..50_000u64).filter(|&n| NexmarkTable::of_event(n) == NexmarkTable::Bid);
    let mut hot = 0usize;
    let mut total = 0usize;
    for (n, a) in bid_events.zip(&auctions) {
        let hot_id = (last_base0_auction_id(n) / HOT_BLOCK) * HOT_BLOCK + FIRST_AUCTION_ID;
        total += 1;
        if *a == hot_id {
            hot += 1;
        }
    }
    assert_eq!(total, auctions.len());
    let ratio = hot as f64 / total as f64;
    assert!((0.47..0.56).contains(&ratio), "hot ratio {ratio}");
}

#[test]
fn average_sizes_near_reference() {
    fn avg_size(table: &str) -> f64 {
        let cfg = config(table, 50_000);
        let batches = all_batches(NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("gen"));
        let mut bytes = 0usize;
        let mut rows = 0usize;
        for b in &batches {
            rows += b.num_rows();
            for c in b.columns() {
                bytes += match c.as_any().downcast_ref::<StringArray>() {
                    Some(s) => s.value_data().len(),
                    None => 8 * c.len(),
                };
            }
        }
        bytes as f64 / rows as f64
    }
    let p = avg_size("person");
    let a = avg_size("auction");
    let b = avg_size("bid");
    assert!((180.0..230.0).contains(&p), "person {p}");
    assert!((470.0..540.0).contains(&a), "auction {a}");
    // Bids also carry channel and url on top of the reference's 100-byte padding target.
    assert!((100.0..220.0).contains(&b), "bid {b}");
}

#[test]
fn expires_after_date_time() {
    let mut cfg = config("auction", 5000);
    cfg.events_per_second = 1000;
    let batches = all_batches(NexmarkGenerator::new(cfg.clone(), full_schema(cfg.table), 0, 1).expect("gen"));
    let ts = |name: &str| -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column_by_name(name)
                    .expect("col")
                    .as_primitive::<TimestampMillisecondType>()
                    .values()
                    .to_vec()
            })
            .collect()
    };
    let (dt, ex) = (ts("date_time"), ts("expires"));
    let lengths: Vec<i64> = dt.iter().zip(&ex).map(|(d, e)| e - d).collect();
    assert!(lengths.iter().all(|&l| l >= 1));
    // Horizon is 1666 events = 1666 ms at 1000 events/s; mean length ≈ horizon.
    let mean = lengths.iter().sum::<i64>() as f64 / lengths.len() as f64;
    assert!((1300.0..2000.0).contains(&mean), "mean auction length {mean}");
}

#[test]
fn empty_share_and_zero_columns() {
    // With parallelism 50, subtask 1 only sees auction events: no bids, no persons.
    let cfg = config("person", 0);
    let mut g = NexmarkGenerator::new(cfg, full_schema(NexmarkTable::Person), 1, 50).expect("gen");
    assert!(g.next_batch().is_none());
    // No declared columns: batches still carry the row count.
    let cfg = config("bid", 100);
    let mut g = NexmarkGenerator::new(cfg, Arc::new(Schema::empty()), 0, 1).expect("gen");
    assert_eq!(g.next_batch().expect("batch").num_rows(), 92);
    assert!(g.next_batch().is_none());
}
