//! Bytes a Diameter peer sends (`src/diameter/`): never panic, and every request among them
//! gets exactly one answer a peer can read (the request's identifiers, well formed down to
//! its groups, a result, the E bit exactly on protocol errors). The first message is taken as
//! the peer's CER when it is one.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use imeidb::config::Config;
use imeidb::diameter::peers::{Peer, PeerTable};
use imeidb::diameter::{Node, Settings, check_answers};
use imeidb::metrics::Metrics;
use imeidb::registry::Registry;
use imeidb::store::Store;
use libfuzzer_sys::fuzz_target;

fn node() -> &'static Node {
    static NODE: OnceLock<(Node, tempfile::TempDir)> = OnceLock::new();
    &NODE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let mut config = Config::default_config();
            config.store.sync_writes = false;
            config.store.block_cache_bytes = 8 << 20;
            let metrics = Arc::new(Metrics::new());
            let store = Store::open(dir.path(), &config.store, &metrics).unwrap();
            let registry = Registry::new(Arc::new(store), config.check.clone(), &metrics);
            let settings = Settings {
                // the second is the peer of the corpus' seed (python-diameter's CER)
                peers: PeerTable::new(vec![
                    Peer {
                        origin_host: "mme.test.example".into(),
                        realm: "mme.example".into(),
                        source: None,
                    },
                    Peer {
                        origin_host: "mme.test".into(),
                        realm: "mme.realm".into(),
                        source: None,
                    },
                ]),
                ..Settings::default()
            };
            let node = Node::new(settings, registry, &metrics, Duration::from_secs(1));
            (node, dir)
        })
        .0
}

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = check_answers(node(), data) {
        panic!("{broken}");
    }
});
