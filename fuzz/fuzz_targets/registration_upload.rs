//! Registration uploads (CSV and NDJSON bodies): never panic, every data line is accounted
//! for exactly once (accepted, already registered or rejected), and the positive list grows
//! by exactly the accepted lines. One store for the whole run.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use imeidb::accounts::{Credential, Principal};
use imeidb::roles::{OrgKind, Role};
use imeidb::accounts::token::TokenId;
use imeidb::metrics::Metrics;
use imeidb::registry::registrations::{Format, Progress};
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
    static UPLOAD: AtomicU64 = AtomicU64::new(1);
    let Some((&flag, body)) = data.split_first() else {
        return;
    };
    let format = if flag % 2 == 0 {
        Format::Csv
    } else {
        Format::Ndjson
    };
    let who = Principal {
        user: 2,
        org: u64::from(flag % 3) + 1, // a few registrants, so "registered by another" happens
        org_kind: OrgKind::Importer,
        roles: vec![Role::Importer],
        credential: Credential::Token(TokenId(1)),
        issued_by: None,
    };
    let registry = registry();
    let before = registry.store().len(List::Positive);
    let upload = UPLOAD.fetch_add(1, Ordering::Relaxed);
    if let Ok(report) = registry.register_upload(&who, format, body, upload, &Progress::default()) {
        assert_eq!(
            report.accepted + report.already_registered + report.rejected_total(),
            report.lines,
            "every line accounted for once"
        );
        assert_eq!(
            registry.store().len(List::Positive),
            before + report.accepted
        );
    }
});
