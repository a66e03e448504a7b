//! State backends alone: writing a batch of puts and reading keys back, RocksDB against the
//! in-memory backend. Keys are shaped like the window aggregate's (key group, pane, key).
//! Run with `cargo bench --bench state_backend`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use weir::state::{StateBackendKind, StateWriteBatch};

const ENTRIES: u64 = 100_000;

fn key(i: u64) -> Vec<u8> {
    let mut key = ((i % 128) as u16).to_be_bytes().to_vec();
    key.extend_from_slice(&1_700_000_000_000_000_000i64.to_be_bytes());
    key.extend_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes());
    key
}

fn filled_batch() -> StateWriteBatch {
    let mut batch = StateWriteBatch::default();
    for i in 0..ENTRIES {
        batch.put(key(i), i.to_le_bytes().repeat(3));
    }
    batch
}

fn bench(c: &mut Criterion) {
    for kind in [StateBackendKind::RocksDb, StateBackendKind::HashMap] {
        let mut group = c.benchmark_group(format!("state_{}", kind.name()));
        group.throughput(Throughput::Elements(ENTRIES));
        group.sample_size(10);
        group.bench_function("write_batch_100k", |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let backend = kind.open(&dir.path().join("state")).expect("backend");
                    (dir, backend, filled_batch())
                },
                |(_dir, mut backend, batch)| backend.write(batch).expect("write"),
                BatchSize::PerIteration,
            )
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let mut backend = kind.open(&dir.path().join("state")).expect("backend");
        backend.write(filled_batch()).expect("write");
        // A checkpoint flushes the memtable, so the reads below go to SST files.
        backend
            .checkpoint(&dir.path().join("flushed"), None)
            .and_then(|files| files.wait())
            .expect("flush");
        group.bench_function("get_100k", |b| {
            b.iter(|| {
                for i in 0..ENTRIES {
                    let value = backend.get(&key(i.wrapping_mul(7919) % ENTRIES)).expect("get");
                    assert!(value.is_some());
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
