//! The input gate alone: data batches from several upstream channels with a barrier every 100
//! batches per channel, aligned (exactly-once), unaligned (exactly-once, the barrier announced on
//! the priority lane and the records before it recorded) or not aligned at all (at-least-once).
//! Measures messages through the gate per second. Run with `cargo bench --bench barrier_alignment`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use weir::message::{Barrier, BarrierKind, Message};
use weir::runtime::barrier_aligner::Alignment;
use weir::runtime::exchange::channel;
use weir::runtime::gate::InputGate;

const CHANNELS: usize = 4;
const BATCHES_PER_CHANNEL: u64 = 10_000;
const BATCHES_PER_BARRIER: u64 = 100;

fn bench(c: &mut Criterion) {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1i64; 64]))]).expect("batch");
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut group = c.benchmark_group("input_gate");
    group.throughput(Throughput::Elements(CHANNELS as u64 * BATCHES_PER_CHANNEL));
    group.sample_size(10);
    for (name, alignment) in [
        ("aligned", Alignment::Aligned),
        ("unaligned", Alignment::Unaligned { timeout: Duration::ZERO }),
        ("at_least_once", Alignment::AtLeastOnce),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let mut receivers = Vec::new();
                    let mut producers = Vec::new();
                    for _ in 0..CHANNELS {
                        let (tx, rx) = channel(1024);
                        receivers.push(rx);
                        let batch = batch.clone();
                        producers.push(tokio::spawn(async move {
                            for i in 0..BATCHES_PER_CHANNEL {
                                if i % BATCHES_PER_BARRIER == 0 {
                                    let barrier = Barrier::new(i / BATCHES_PER_BARRIER + 1, BarrierKind::Checkpoint);
                                    let _ = tx.priority.send(barrier);
                                    tx.data.send(Message::Barrier(barrier)).await.expect("send");
                                }
                                tx.data.send(Message::Data(batch.clone())).await.expect("send");
                            }
                            tx.data.send(Message::End).await.expect("send");
                        }));
                    }
                    let mut gate = InputGate::new(receivers, alignment);
                    let (mut data, mut barriers) = (0u64, 0u64);
                    while let Some(message) = gate.next().await {
                        match message {
                            Message::Data(_) => data += 1,
                            Message::Barrier(_) => barriers += 1,
                            Message::End => break,
                            _ => {}
                        }
                    }
                    assert_eq!(data, CHANNELS as u64 * BATCHES_PER_CHANNEL);
                    assert_eq!(barriers, BATCHES_PER_CHANNEL / BATCHES_PER_BARRIER);
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
