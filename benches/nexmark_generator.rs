//! The Nexmark generator alone: bids per second with every column, and with only the columns q5
//! reads (unused columns are not generated). Its rate is the ceiling of every Nexmark benchmark.
//! Run with `cargo bench --bench nexmark_generator`.

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use weir::connectors::nexmark::{NexmarkConfig, NexmarkGenerator};

const EVENTS: u64 = 1_000_000;

fn bench(c: &mut Criterion) {
    let options: BTreeMap<String, String> = [("nexmark.table", "bid"), ("max.events", "1000000")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = NexmarkConfig::from_options(&options).expect("options");
    let field = |name: &str, data_type: DataType| Field::new(name, data_type, false);
    let timestamp = DataType::Timestamp(TimeUnit::Millisecond, None);
    let all = Arc::new(Schema::new(vec![
        field("auction", DataType::Int64),
        field("bidder", DataType::Int64),
        field("price", DataType::Int64),
        field("channel", DataType::Utf8),
        field("url", DataType::Utf8),
        field("date_time", timestamp.clone()),
        field("extra", DataType::Utf8),
    ]));
    let q5 = Arc::new(Schema::new(vec![field("auction", DataType::Int64), field("date_time", timestamp)]));
    let mut group = c.benchmark_group("nexmark_bids");
    // 46 of every 50 events are bids.
    group.throughput(Throughput::Elements(EVENTS * 46 / 50));
    group.sample_size(10);
    for (name, schema) in [("all_columns", all), ("q5_columns", q5)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut generator = NexmarkGenerator::new(config.clone(), schema.clone(), 0, 1).expect("generator");
                let mut rows = 0;
                while let Some(batch) = generator.next_batch() {
                    rows += batch.num_rows();
                }
                assert_eq!(rows as u64, EVENTS * 46 / 50);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
