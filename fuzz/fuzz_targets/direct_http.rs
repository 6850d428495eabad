//! Bytes a client sends the server's direct path (`src/server/direct.rs`): never panic, never
//! take a request hyper would read differently. Every request it answers is a whole HTTP/1.1
//! `GET` head with no body, and each gets exactly one response.
#![no_main]

use std::sync::{Arc, OnceLock};

use imeidb::accounts::Accounts;
use imeidb::api::AppState;
use imeidb::config::Config;
use imeidb::metrics::Metrics;
use imeidb::registry::Registry;
use imeidb::store::Store;
use libfuzzer_sys::fuzz_target;

fn state() -> &'static AppState {
    static STATE: OnceLock<(AppState, tempfile::TempDir)> = OnceLock::new();
    &STATE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let mut config = Config::default_config();
            config.store.sync_writes = false;
            config.store.block_cache_bytes = 8 << 20;
            let metrics = Arc::new(Metrics::new());
            let store = Arc::new(Store::open(dir.path(), &config.store, metrics.store()).unwrap());
            let accounts = Accounts::open(Arc::clone(&store)).unwrap();
            let registry = Registry::new(store, config.check.clone());
            (AppState::new(registry, accounts, metrics, &config), dir)
        })
        .0
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let Ok((used, _)) = imeidb::server::answer_direct(state(), data, &mut out) else {
        panic!("a route answered at once streamed its body");
    };
    assert!(used <= data.len());
    let mut rest = &data[..used];
    let mut requests = 0;
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(length)) = request.parse(rest) else {
            panic!("answered bytes that are not a whole request head");
        };
        assert_eq!(request.method, Some("GET"));
        assert_eq!(request.version, Some(1));
        assert!(request.headers.iter().all(|h| {
            !h.name.eq_ignore_ascii_case("content-length")
                && !h.name.eq_ignore_ascii_case("transfer-encoding")
        }));
        rest = &rest[length..];
        requests += 1;
    }
    let responses = out.windows(9).filter(|w| *w == b"HTTP/1.1 ").count();
    assert!(responses >= requests, "{requests} requests, {responses} responses");
});
