//! Bulk-import files: never panic, every line is accounted for exactly once, and the list
//! grows by exactly the accepted lines. One store for the whole run (opening RocksDB per
//! input would be too slow).
#![no_main]

use std::sync::{Arc, OnceLock};

use imeidb::metrics::Metrics;
use imeidb::registry::import::import_csv;
use imeidb::registry::{CheckPolicy, Registry};
use imeidb::store::{List, Store, StoreOptions};
use libfuzzer_sys::fuzz_target;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<(Registry, tempfile::TempDir)> = OnceLock::new();
    &REGISTRY
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let options = StoreOptions {
                sync_writes: false,
                block_cache_bytes: 8 << 20,
                ..StoreOptions::default()
            };
            let metrics = Metrics::new();
    let store = Store::open(dir.path(), &options, &metrics).unwrap();
            (Registry::new(Arc::new(store), CheckPolicy::default(), &metrics), dir)
        })
        .0
}

fuzz_target!(|data: &[u8]| {
    let (list, file) = match data.split_first() {
        Some((flag, rest)) if flag % 2 == 0 => (List::Positive, rest),
        Some((_, rest)) => (List::Negative, rest),
        None => return,
    };
    let registry = registry();
    let before = registry.store().len(list);
    if let Ok(report) = import_csv(registry, list, file, &mut |_| {}) {
        assert_eq!(
            report.accepted + report.already_listed + report.rejected_total(),
            report.lines
        );
        assert_eq!(registry.store().len(list), before + report.accepted);
    } else {
        assert_eq!(
            registry.store().len(list),
            before,
            "a refused file changed the list"
        );
    }
});
