//! Bytes a client sends the server's direct path (`src/server/direct.rs`): never panic, never
//! take a request hyper would read differently. Every request it answers is a whole HTTP/1.1
//! `GET` head with no body, and each gets exactly one response.
#![no_main]

use std::sync::OnceLock;

use imeidb::api::AppState;
use imeidb::config::Config;
use libfuzzer_sys::fuzz_target;

fn state() -> &'static AppState {
    static STATE: OnceLock<(AppState, tempfile::TempDir)> = OnceLock::new();
    &STATE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let mut config = Config::default_config();
            config.data_dir = dir.path().to_owned();
            config.store.sync_writes = false;
            config.store.block_cache_bytes = 8 << 20;
            (AppState::open(&config).unwrap(), dir)
        })
        .0
}

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = imeidb::server::check_direct_path(state(), data) {
        panic!("{broken}");
    }
});
