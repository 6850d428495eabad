//! In-process decision benchmark: the network check (`Registry::check`) on one core against
//! a real RocksDB holding the loadtest dataset. Not a test: it prints figures for
//! docs/PERFORMANCE.md.
//!
//! `cargo bench --bench decision` (release profile). Environment:
//! - `BENCH_POSITIVE` (default 10000000), `BENCH_NEGATIVE` (default 1000000): list sizes;
//! - `BENCH_QUERIES` (default 2000000): checks timed;
//! - `BENCH_CACHE_MB` (default 256, the config default): RocksDB block cache;
//! - `BENCH_POSITIVE_FP`: the positive list's filter false-positive rate (default: config's);
//! - `BENCH_ONLY=batch`: skip the single checks (to profile the batch path alone);
//! - `BENCH_DATA_DIR`: keep the store there and reuse it on the next run (otherwise a temp
//!   dir is filled and deleted).
//!
//! Reports: the time to open the store and build both filters, per-check latency
//! percentiles (each check timed alone), single-thread throughput (untimed loop), batched
//! throughput (`check_many` in 10,000s), and the process RSS.

#[path = "../loadtest/src/dataset.rs"]
#[allow(dead_code, unused_imports)]
mod dataset;

use std::sync::Arc;
use std::time::{Duration, Instant};

use imeidb::imei::Imei;
use imeidb::metrics::Metrics;
use imeidb::registry::{CheckPolicy, Interface, Registry};
use imeidb::store::{
    List, ListRecord, NegativeRecord, PositiveRecord, ReportKind, Store, StoreOptions,
};
use imeidb::timefmt::now_unix;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn load<R: ListRecord>(store: &Store, imeis: &[Imei], record: &R) {
    let value = record.encode();
    store
        .ingest(R::LIST, imeis.len(), |i| (imeis[i], value.as_slice()))
        .unwrap();
}

fn main() {
    let positive = env_usize("BENCH_POSITIVE", 10_000_000);
    let negative = env_usize("BENCH_NEGATIVE", 1_000_000);
    let n_queries = env_usize("BENCH_QUERIES", 2_000_000);
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var("BENCH_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| temp.path().join("data"));
    let options = StoreOptions {
        sync_writes: false,
        block_cache_bytes: env_usize("BENCH_CACHE_MB", 256) << 20,
        filter_fp_rate: match std::env::var("BENCH_POSITIVE_FP")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            Some(rate) => {
                let mut rates = StoreOptions::default().filter_fp_rate;
                rates[List::Positive.index()] = rate;
                rates
            }
            None => StoreOptions::default().filter_fp_rate,
        },
        ..StoreOptions::default()
    };

    let started = Instant::now();
    let data = dataset::generate(42, positive, negative, n_queries / 20 + 1000);
    println!(
        "dataset: {} positive, {} negative generated in {:.1} s",
        data.positive.len(),
        data.negative.len(),
        started.elapsed().as_secs_f64()
    );
    {
        let metrics = Metrics::new();
        let store = Store::open(&dir, &options, &metrics).unwrap();
        if store.len(List::Positive) != data.positive.len() as u64 {
            let started = Instant::now();
            let now = now_unix();
            load(
                &store,
                &data.positive,
                &PositiveRecord {
                    registered_at: now,
                    manufacturer: "Bench".into(),
                    ..Default::default()
                },
            );
            load(
                &store,
                &data.negative,
                &NegativeRecord {
                    listed_at: now,
                    kind: ReportKind::Stolen,
                    ..Default::default()
                },
            );
            println!(
                "ingested both lists in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }

    let rss_before = rss_mib();
    let metrics = Metrics::new();
    let store = Store::open(&dir, &options, &metrics).unwrap();
    println!(
        "open + filter and index build: {:.2} s for {} + {} entries; filters and indexes {:.1} MiB; RSS {:.0} MiB (+{:.0})",
        store.open_time().as_secs_f64(),
        store.len(List::Positive),
        store.len(List::Negative),
        (store.memory_bytes(List::Positive) + store.memory_bytes(List::Negative)) as f64
            / (1 << 20) as f64,
        rss_mib(),
        rss_mib() - rss_before,
    );
    let registry = Registry::new(Arc::new(store), CheckPolicy::default(), &metrics);
    let queries: Vec<Imei> = dataset::queries(
        &data,
        &dataset::Mix {
            registered: 0.90,
            stolen: 0.05,
            unknown: 0.05,
        },
        n_queries,
        7,
    )
    .into_iter()
    .filter_map(|(_, imei)| imei)
    .collect();

    let only_batch = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "batch");
    // warm the caches as a running server would be
    for &imei in queries.iter().take(n_queries / 4) {
        registry.check(Interface::N5gEir, imei, None);
    }

    if !only_batch {
        single_checks(&registry, &queries);
    }

    let items: Vec<(Imei, Option<imeidb::imsi::Imsi>)> =
        queries.iter().map(|&i| (i, None)).collect();
    if !only_batch {
        // as S13 answers the ECRs of one read: a few at a time
        for few in [4, imeidb::store::FEW] {
            let started = Instant::now();
            for chunk in items.chunks(few) {
                registry.check_each(Interface::S13, chunk, |_, d| {
                    std::hint::black_box(d);
                });
            }
            println!(
                "check_each ({few} at a time, one core): {:.0} decisions/s",
                items.len() as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let started = Instant::now();
    for _ in 0..if only_batch { 10 } else { 1 } {
        for chunk in items.chunks(10_000) {
            std::hint::black_box(registry.check_many(Interface::Native, chunk));
        }
    }
    let elapsed: Duration = started.elapsed();
    println!(
        "batched check_many (one core, 10,000 per call): {:.0} decisions/s",
        items.len() as f64 * if only_batch { 10.0 } else { 1.0 } / elapsed.as_secs_f64()
    );
    println!("RSS at end: {:.0} MiB", rss_mib());
    drop(registry);
}

/// Each check timed alone (latency), then an untimed loop (throughput).
fn single_checks(registry: &Registry, queries: &[Imei]) {
    let mut histogram =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    for &imei in queries {
        let t = Instant::now();
        let d = registry.check(Interface::N5gEir, imei, None);
        let ns = t.elapsed().as_nanos() as u64;
        std::hint::black_box(d);
        histogram.record(ns.max(1)).unwrap();
    }
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "check latency (one core, each timed): p50 {:.2} us, p90 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.1} us",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        histogram.max() as f64 / 1000.0
    );

    let started = Instant::now();
    for &imei in queries {
        std::hint::black_box(registry.check(Interface::N5gEir, imei, None));
    }
    let elapsed = started.elapsed();
    println!(
        "check throughput (one core): {:.0} decisions/s",
        queries.len() as f64 / elapsed.as_secs_f64()
    );
}
