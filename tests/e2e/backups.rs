//! Online backups, end to end: the real binary takes one under write load on request, and
//! `imeidb backup verify` and `imeidb restore` prove (or refuse) it.

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imeidb::accounts::Accounts;
use imeidb::metrics::Metrics;
use imeidb::store::{List, Store, StoreOptions};

use crate::support::{Client, imei, imeidb, serve_with};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn options() -> StoreOptions {
    StoreOptions {
        block_cache_bytes: 16 << 20,
        sync_writes: false,
        ..StoreOptions::default()
    }
}

fn run(args: &[&str], paths: &[&Path]) -> Output {
    let mut cmd = imeidb();
    cmd.args(args);
    for path in paths {
        cmd.arg(path);
    }
    cmd.output().unwrap()
}

#[test]
fn a_backup_under_write_load_restores_to_exactly_what_it_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (data, backups) = (dir.path().join("data"), dir.path().join("backups"));
    let cast = {
        let store = Store::open(&data, &options(), &Metrics::new()).unwrap();
        crate::registry::cast(&Accounts::open(Arc::new(store)).unwrap())
    };
    let served = serve_with(&data, &[("IMEIDB_BACKUP_DIR", backups.to_str().unwrap())]);
    let addr = served.addr;
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // reports go on, one after another, before, during and after the backup
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let writer = {
        let (acked, stop, failures) = (acked.clone(), stop.clone(), failures.clone());
        let operator = cast.operator_a.clone();
        runtime.spawn(async move {
            let mut client = Client::h1(addr).await;
            let mut n = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let body = crate::registry::report(n).to_string();
                let reply = client
                    .request_as(
                        Some(&operator),
                        hyper::Method::POST,
                        "/v1/reports",
                        body.into(),
                        Some("application/json"),
                    )
                    .await;
                if reply.status == 201 {
                    acked.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&reply.body).into_owned());
                }
                n += 1;
            }
        })
    };
    let wait_for = |count: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::Relaxed) < count {
            assert!(Instant::now() < deadline, "reports too slow");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(50);
    let (taken, listed, refused) = runtime.block_on(async {
        let mut client = Client::h1(addr).await;
        let taken = client
            .request_as(
                Some(&cast.regulator),
                hyper::Method::POST,
                "/v1/admin/backups",
                "".into(),
                None,
            )
            .await;
        let listed = client
            .request_as(
                Some(&cast.regulator),
                hyper::Method::GET,
                "/v1/admin/backups",
                "".into(),
                None,
            )
            .await;
        let refused = client
            .request_as(
                Some(&cast.operator_a),
                hyper::Method::POST,
                "/v1/admin/backups",
                "".into(),
                None,
            )
            .await;
        (taken, listed, refused)
    });
    let at_backup = acked.load(Ordering::Relaxed);
    wait_for(at_backup + 50);
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(writer).unwrap();
    assert!(
        failures.lock().unwrap().is_empty(),
        "{:?}",
        failures.lock().unwrap()
    );
    let (status, _) = served.terminate();
    assert!(status.success());

    assert_eq!(
        taken.status,
        201,
        "{}",
        String::from_utf8_lossy(&taken.body)
    );
    assert_eq!(
        refused.status,
        403,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let backup = taken.json();
    assert_eq!(listed.json()["backups"][0], backup);
    let recorded = &backup["digests"];
    let in_backup = recorded["negative"]["entries"].as_u64().unwrap();
    assert!(
        (50..acked.load(Ordering::Relaxed)).contains(&in_backup),
        "the backup holds the reports acknowledged before it, not those after: {in_backup}"
    );

    let verified = run(&["backup", "verify"], &[&backups]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(
        text(&verified).contains("backup 1 (taken "),
        "{}",
        text(&verified)
    );
    assert!(text(&verified).contains("intact"), "{}", text(&verified));

    let restored_dir = dir.path().join("restored");
    let restored = run(
        &["restore", "--from"],
        &[&backups, Path::new("--data-dir"), &restored_dir],
    );
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(text(&restored).contains("intact"), "{}", text(&restored));
    // and independently of the binary: the restored store's digests are the recorded ones
    let copy = Store::open(&restored_dir, &options(), &Metrics::new()).unwrap();
    let digests = serde_json::to_value(copy.digests().unwrap()).unwrap();
    assert_eq!(&digests, recorded);
    assert_eq!(copy.len(List::Negative), in_backup);
    let original = Store::open(&data, &options(), &Metrics::new()).unwrap();
    assert!(original.len(List::Negative) > in_backup);
    assert!(copy.contains(List::Negative, imei(1)));
    drop(copy);

    // a restore never writes over anything
    let again = run(
        &["restore", "--from"],
        &[&backups, Path::new("--data-dir"), &restored_dir],
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("not empty"), "{}", text(&again));

    // a damaged backup is found out
    let table = std::fs::read_dir(backups.join("shared_checksum"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "sst"))
        .unwrap();
    let mut bytes = std::fs::read(&table).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&table, &bytes).unwrap();
    let broken = run(&["backup", "verify"], &[&backups]);
    assert!(!broken.status.success(), "{}", text(&broken));
    assert!(text(&broken).contains("BROKEN"), "{}", text(&broken));
}
