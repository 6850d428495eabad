//! In-process benchmark of a read replica's catch-up, without NATS: the change feed's
//! messages (`replication::feed`, 50,000 changes each, as the central publishes a bulk upload)
//! decoded and applied to a real RocksDB on one core, as `replication::replica` does. Not a
//! test: it prints figures for docs/PERFORMANCE.md, to tell the store's share of the catch-up
//! from NATS's (`loadtest/replication` measures the whole).
//!
//! `cargo bench --bench replica_apply` (release profile). Environment:
//! - `BENCH_CHANGES` (default 10000000): changes applied (IMEIs of the loadtest's dataset listed
//!   on the positive list), once in IMEI order (an upload), once in random order;
//! - `BENCH_DATA_DIR`: where the replicas' stores go (otherwise a temp dir, deleted).
//!
//! Reports, for each order: changes per second for the decode alone, the apply alone and both
//! in turn.

#[path = "../loadtest/src/dataset.rs"]
#[allow(dead_code, unused_imports)]
mod dataset;

use std::time::{Duration, Instant};

use imeidb::imei::Imei;
use imeidb::metrics::Metrics;
use imeidb::replication::feed::{MAX_CHANGES, decode_batch, encode_batch};
use imeidb::store::{Change, List, Store, StoreOptions};

/// A message of the feed: its headers and payload.
type Message = (Vec<(&'static str, String)>, Vec<u8>);

fn main() {
    let changes: usize = std::env::var("BENCH_CHANGES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(10_000_000);
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var("BENCH_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| temp.path().to_path_buf());
    // the loadtest's devices (`loadtest/src/dataset.rs`): an importer's upload lists them in
    // IMEI order, as `loadtest/replication` publishes them; reports and registrations from
    // many clerks at once reach the feed in no order
    let mut imeis = dataset::generate(42, changes, 0, 0).positive;
    run("in IMEI order (an upload)", &imeis, &dir.join("sorted"));
    let mut rng = dataset::Rng::new(7);
    for i in (1..imeis.len()).rev() {
        imeis.swap(i, rng.below(i as u64 + 1) as usize);
    }
    run("in random order", &imeis, &dir.join("random"));
}

/// Feeds `imeis` as listed, in messages of [`MAX_CHANGES`], to a fresh replica store at `dir`.
fn run(order: &str, imeis: &[Imei], dir: &std::path::Path) {
    let changes = imeis.len();
    let messages: Vec<Message> = (imeis.iter().enumerate())
        .map(|(n, &imei)| (n as u64 + 1, Change::Listed(List::Positive, imei)))
        .collect::<Vec<_>>()
        .chunks(MAX_CHANGES)
        .map(|chunk| encode_batch(chunk, 0))
        .collect();
    let options = StoreOptions {
        sync_writes: false, // a replica never fsyncs
        ..StoreOptions::default()
    };
    let store = Store::open(dir, &options, &Metrics::new()).unwrap();

    let decode = |(headers, payload): &Message| {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        decode_batch(header, payload).unwrap()
    };
    let started = Instant::now();
    let batches: Vec<_> = messages.iter().map(decode).collect();
    let decoding = started.elapsed();

    let started = Instant::now();
    for batch in &batches {
        store.apply_replicated(&batch.changes, batch.last).unwrap();
    }
    let applying = started.elapsed();
    assert_eq!(store.replicated_through(), changes as u64);
    assert_eq!(store.len(List::Positive), changes as u64);

    let rate = |d: Duration| changes as f64 / d.as_secs_f64();
    println!(
        "{changes} changes {order}, {} messages: decode {:.0}/s, apply {:.0}/s, both in turn {:.0}/s",
        messages.len(),
        rate(decoding),
        rate(applying),
        rate(decoding + applying),
    );
}
