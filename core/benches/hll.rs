//! Benchmarks of the HLL hot paths at Janssen's setting (log2m 15, regwidth 5), FULL.
//!
//! Run: `cargo bench -p authstat-core --bench hll`. Figures: `docs/benchmarks.md`.

use std::hint::black_box;

use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams, HllType};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn full_hll(seed: u64) -> Hll {
    let mut h = Hll::new(HllParams::janssen());
    for i in 0..200_000u64 {
        h.add_raw(HashAlgorithm::Murmur3.hash(&format!("user{seed}-{i}")));
    }
    assert_eq!(h.hll_type(), HllType::Full);
    h
}

/// Pre-hashed values, so the benchmark measures `add_raw` alone.
fn raw_values(n: usize) -> Vec<i64> {
    (0..n)
        .map(|i| HashAlgorithm::Murmur3.hash(&format!("id-{i}")))
        .collect()
}

fn bench(c: &mut Criterion) {
    let a = full_hll(1);
    let b = full_hll(2);
    let raws = raw_values(4096);

    let mut group = c.benchmark_group("hll_full_15_5");
    group.throughput(Throughput::Elements(raws.len() as u64));
    group.bench_function("add_raw_x4096", |bench| {
        let mut h = a.clone();
        bench.iter(|| {
            for &raw in &raws {
                h.add_raw(black_box(raw));
            }
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("union", |bench| {
        bench.iter_batched_ref(
            || a.clone(),
            |h| h.union(black_box(&b)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("cardinality", |bench| {
        bench.iter(|| black_box(&a).cardinality())
    });
    let bytes = a.to_bytes().unwrap();
    group.bench_function("to_bytes", |bench| {
        bench.iter(|| black_box(&a).to_bytes().unwrap())
    });
    group.bench_function("from_bytes", |bench| {
        bench.iter(|| Hll::from_bytes(black_box(&bytes)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("hash");
    let user = "jose.garcia@example.com";
    group.bench_function("murmur3_username", |bench| {
        bench.iter(|| HashAlgorithm::Murmur3.hash(black_box(user)))
    });
    group.bench_function("java_string_hashcode_username", |bench| {
        bench.iter(|| HashAlgorithm::JavaStringHashCode.hash(black_box(user)))
    });
    group.finish();

    let mut group = c.benchmark_group("hll_sparse_15_5");
    let sparse_raws = raw_values(8000);
    group.throughput(Throughput::Elements(sparse_raws.len() as u64));
    group.bench_function("build_empty_to_sparse_8000_values", |bench| {
        bench.iter(|| {
            let mut h = Hll::new(HllParams::janssen());
            for &raw in &sparse_raws {
                h.add_raw(raw);
            }
            h
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
