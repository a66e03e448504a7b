//! Throughput of the keyed tumbling-window aggregate (COUNT and SUM per key), per state backend.
//! Run with `cargo bench --bench window_aggregate`.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{Int64Array, TimestampNanosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::expressions::Column;
use weir::graph::{AggregateCall, AggregateKind, AggregateOutput, AggregateSpec, WindowAggregateSpec, WindowBound, WindowKind};
use weir::message::Message;
use weir::operators::window_aggregate::WindowAggregate;
use weir::runtime::Operator;
use weir::runtime::metrics::LateRows;
use weir::state::StateBackendKind;

const BATCHES: usize = 50;
const ROWS: usize = 8192;
const KEYS: i64 = 10_000;

fn input() -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
    ]));
    let batches = (0..BATCHES)
        .map(|b| {
            let base = (b * ROWS) as i64;
            let keys = Int64Array::from_iter_values((0..ROWS as i64).map(|i| (base + i).wrapping_mul(7919) % KEYS));
            let values = Int64Array::from_iter_values((0..ROWS as i64).map(|i| i % 100));
            // 10,000 rows per second of event time: a 1 s window holds 10,000 rows.
            let times = TimestampNanosecondArray::from_iter_values((0..ROWS as i64).map(|i| (base + i) * 100_000));
            RecordBatch::try_new(schema.clone(), vec![Arc::new(keys), Arc::new(values), Arc::new(times)]).expect("batch")
        })
        .collect();
    (schema, batches)
}

fn spec() -> WindowAggregateSpec {
    let call = |kind, display: &str, output_type| AggregateCall {
        kind,
        arg: Arc::new(Column::new("v", 1)),
        distinct: false,
        output_type,
        display: display.to_string(),
    };
    WindowAggregateSpec {
        sessions_by: None,
        window: WindowKind::Tumble { size: 1_000_000_000 },
        time_column: 2,
        aggregate: AggregateSpec {
            keys: vec![Arc::new(Column::new("k", 0))],
            aggregates: vec![
                call(AggregateKind::Count, "count(v)", DataType::Int64),
                call(AggregateKind::Sum, "sum(v)", DataType::Int64),
            ],
            outputs: vec![
                AggregateOutput::Key(0),
                AggregateOutput::Window(WindowBound::Start),
                AggregateOutput::Window(WindowBound::End),
                AggregateOutput::Aggregate(0),
                AggregateOutput::Aggregate(1),
            ],
        },
    }
}

fn bench(c: &mut Criterion) {
    let (schema, batches) = input();
    let output = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("window_start", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("window_end", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("cnt", DataType::Int64, false),
        Field::new("total", DataType::Int64, true),
    ]));
    let mut group = c.benchmark_group("tumble_count_sum");
    group.throughput(Throughput::Elements((BATCHES * ROWS) as u64));
    group.sample_size(10);
    for (name, kind, cache) in [
        ("hashmap", StateBackendKind::HashMap, 100_000),
        ("rocksdb_spilling", StateBackendKind::RocksDb, 1_000),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let dir = tempfile::tempdir().expect("temp dir");
                let backend = kind.open(&dir.path().join("state")).expect("backend");
                let mut op = WindowAggregate::new(&spec(), schema.clone(), output.clone(), backend, cache, LateRows::unattached())
                    .expect("operator");
                let mut out = Vec::new();
                for batch in &batches {
                    op.process(batch.clone(), &mut out).expect("process");
                    let last = batch
                        .column(2)
                        .as_any()
                        .downcast_ref::<TimestampNanosecondArray>()
                        .expect("ts")
                        .value(ROWS - 1);
                    op.on_watermark(last, &mut out).expect("watermark");
                    while op.resume(&mut out).expect("firing") {}
                }
                op.on_watermark(i64::MAX, &mut out).expect("final watermark");
                while op.resume(&mut out).expect("firing") {}
                let rows: usize = out.iter().map(|m| if let Message::Data(b) = m { b.num_rows() } else { 0 }).sum();
                assert!(rows > 0);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
