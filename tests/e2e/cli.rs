//! The real `imeidb` binary, run with a clean environment.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::{Client, imei, imeidb, serve};

fn import(data: &Path, list: &str, file: &Path) -> Output {
    imeidb()
        .args(["import", "--list", list, "--data-dir"])
        .arg(data)
        .arg(file)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn import_reports_every_line_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("devices.csv");
    let wrong_cd = format!(
        "{}{}",
        &imei(2).to_string()[..14],
        (imei(2).check_digit() + 1) % 10
    );
    std::fs::write(
        &file,
        format!(
            "imei,manufacturer\n{},Acme\n{wrong_cd},Acme\n{},Acme\n{},Acme\n",
            imei(1),
            imei(3),
            imei(1)
        ),
    )
    .unwrap();
    let first = import(&data, "positive", &file);
    let out = text(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(2),
        "{out}\n{}",
        text(&first.stderr)
    );
    assert!(out.contains("lines read:      4"), "{out}");
    assert!(out.contains("accepted:        2"), "{out}");
    assert!(out.contains("bad check digit: 1"), "{out}");
    assert!(out.contains("line 3: imei: IMEI check digit is"), "{out}");
    assert!(out.contains("line 5: imei: duplicate of line 2"), "{out}");

    let again = import(&data, "positive", &file);
    let out = text(&again.stdout);
    assert!(out.contains("accepted:        0"), "{out}");
    assert!(out.contains("already listed:  2"), "{out}");
}

#[test]
fn a_bad_header_loads_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, "serial\n123\n").unwrap();
    let out = import(&dir.path().join("data"), "negative", &file);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("line 1 (header)"), "{err}");
    assert!(err.contains("unknown column \"serial\""), "{err}");
}

#[test]
fn the_server_serves_imported_lists_refuses_a_concurrent_import_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("stolen.csv");
    std::fs::write(
        &file,
        format!("imei,kind,reference\n{},stolen,CASE-9\n", imei(7)),
    )
    .unwrap();
    assert_eq!(import(&data, "negative", &file).status.code(), Some(0));

    let served = serve(&data);
    let addr = served.addr;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reply = runtime.block_on(async move {
        Client::h2(addr)
            .await
            .get(&format!(
                "/n5g-eir-eic/v1/equipment-status?pei=imei-{}",
                imei(7)
            ))
            .await
    });
    assert_eq!(reply.json()["status"], "BLACKLISTED");

    let refused = import(&data, "negative", &file);
    assert_eq!(refused.status.code(), Some(1));
    let err = text(&refused.stderr);
    assert!(err.contains("in use by another imeidb process"), "{err}");

    let (status, log) = served.terminate();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains(&imei(7).to_string()),
        "an IMEI reached the log"
    );
}

#[test]
fn configuration_errors_name_the_setting() {
    let out = imeidb()
        .args(["serve"])
        .env("IMEIDB_STORE_BLOCK_CACHE_MB", "plenty")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("IMEIDB_STORE_BLOCK_CACHE_MB"), "{err}");
}

#[test]
fn help_describes_both_commands() {
    let out = imeidb().arg("--help").output().unwrap();
    let help = text(&out.stdout);
    assert!(help.contains("serve") && help.contains("import"), "{help}");
    let out = imeidb().args(["import", "--help"]).output().unwrap();
    let help = text(&out.stdout);
    assert!(help.contains("Exit status"), "{help}");
    assert!(help.contains("--list <LIST>"), "{help}");
}

fn run(args: &[&str], data: &Path) -> Output {
    imeidb()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn bootstrap_once_then_the_audit_chain_verifies_until_a_byte_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let form = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/regulator.example.json");
    let form = form.to_str().unwrap();

    let first = run(&["admin", "bootstrap", "--org", form], &data);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out = text(&first.stdout);
    let token = out.lines().last().unwrap();
    assert!(token.starts_with("imeidb_") && token.len() == 88, "{out}");
    let code = out.lines().nth(2).unwrap();
    assert!(out.lines().nth(1).unwrap().contains("/clave"), "{out}");
    assert!(
        code.len() == 32 && code.bytes().all(|b| b.is_ascii_hexdigit()),
        "{out}"
    );

    let again = run(&["admin", "bootstrap", "--org", form], &data);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already bootstrapped"),
        "{}",
        text(&again.stderr)
    );

    // a bad form names its fields
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"kind":"regulator","nit":"899999053-2"}"#).unwrap();
    let other = dir.path().join("other");
    let refused = run(
        &["admin", "bootstrap", "--org", bad.to_str().unwrap()],
        &other,
    );
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("nit: \"899999053-2\": the check digit of 899999053 is 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("administrator.email: is required"),
        "{stderr}"
    );

    // an import is audited too
    let csv = dir.path().join("positive.csv");
    std::fs::write(&csv, format!("imei\n{}\n{}\n", imei(1), imei(2))).unwrap();
    assert!(import(&data, "positive", &csv).status.success());

    let verified = run(&["audit", "verify"], &data);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(
        text(&verified.stdout).starts_with("audit trail intact: 2 entries"),
        "{}",
        text(&verified.stdout)
    );

    // change one byte of the first entry, as someone with the files could
    {
        let opts = rocksdb::Options::default();
        let cfs = rocksdb::DB::list_cf(&opts, &data).unwrap();
        let db = rocksdb::DB::open_cf(&opts, &data, cfs).unwrap();
        let audit = db.cf_handle("audit").unwrap();
        let mut entry = db.get_cf(audit, 1u64.to_be_bytes()).unwrap().unwrap();
        let text = String::from_utf8(entry.clone()).unwrap();
        // the time, one second later: still a well-formed entry, but no longer the one the
        // next entry's hash covers
        let at = text.find("\"at\":").unwrap() + 5;
        let last = at + text[at..].find(',').unwrap() - 1;
        entry[last] = if entry[last] == b'9' {
            b'8'
        } else {
            entry[last] + 1
        };
        db.put_cf(audit, 1u64.to_be_bytes(), entry).unwrap();
    }
    let broken = run(&["audit", "verify"], &data);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        text(&broken.stderr).contains("BROKEN: entry 2 does not follow entry 1"),
        "{}",
        text(&broken.stderr)
    );
}

#[test]
fn acknowledged_reports_and_registrations_survive_sigkill() {
    use std::sync::{Arc, Mutex};

    use imeidb::accounts::Accounts;
    use imeidb::metrics::Metrics;
    use imeidb::store::{List, Store, StoreOptions};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let options = StoreOptions {
        block_cache_bytes: 16 << 20,
        ..StoreOptions::default()
    };
    let operator = {
        let store = Store::open(&data, &options, &Metrics::new()).unwrap();
        let accounts = Accounts::open(Arc::new(store)).unwrap();
        crate::registry::cast(&accounts).operator_a
    };

    // the real binary on its default config: every acknowledged write fsynced first
    let mut served = serve(&data);
    let addr = served.addr;
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let registered: Arc<Mutex<Vec<u64>>> = Arc::default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sender = {
        let acked = Arc::clone(&acked);
        let registered = Arc::clone(&registered);
        runtime.spawn(async move {
            let mut client = Client::h1(addr).await;
            for n in 1..100_000u64 {
                let body = crate::registry::report(n).to_string();
                let sent = client
                    .try_request_as(
                        Some(&operator),
                        hyper::Method::POST,
                        "/v1/reports",
                        body.into(),
                        Some("application/json"),
                    )
                    .await;
                match sent {
                    Some(reply) if reply.status == 201 => acked.lock().unwrap().push(n),
                    Some(reply) => panic!("report {n}: {}", String::from_utf8_lossy(&reply.body)),
                    None => return, // the server is gone
                }
                if n % 10 == 0 {
                    // a small registration upload between reports: 5 devices
                    let devices: Vec<u64> = (0..5).map(|i| 500_000 + n * 5 + i).collect();
                    let mut csv = String::from("imei,manufacturer,model,reference\n");
                    for d in &devices {
                        csv.push_str(&format!("{},Acme,X1,DI-{n}\n", imei(*d)));
                    }
                    let sent = client
                        .try_request_as(
                            Some(&operator),
                            hyper::Method::POST,
                            "/v1/registrations",
                            csv.into(),
                            Some("text/csv"),
                        )
                        .await;
                    match sent {
                        Some(reply) if reply.status == 200 => {
                            registered.lock().unwrap().extend(devices)
                        }
                        Some(reply) => {
                            panic!("upload {n}: {}", String::from_utf8_lossy(&reply.body))
                        }
                        None => return,
                    }
                }
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 200 {
        assert!(std::time::Instant::now() < deadline, "reports too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    served.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    served.child.wait().unwrap();
    runtime.block_on(sender).unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);

    let store = Store::open(&data, &options, &Metrics::new()).unwrap();
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|&n| !store.contains(List::Negative, imei(n)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged reports lost: {missing:?}",
        missing.len(),
        acked.len()
    );
    let registered = registered.lock().unwrap().clone();
    // an upload follows every tenth report; the one after the last report may be cut off
    assert!(
        registered.len() >= 5 * (acked.len() / 10 - 1),
        "{} devices registered after {} reports",
        registered.len(),
        acked.len()
    );
    let lost: Vec<u64> = registered
        .iter()
        .copied()
        .filter(|&d| !store.contains(List::Positive, imei(d)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged registrations lost",
        lost.len()
    );
    // a write in flight at the kill may be in or out, but never half: the chain verifies and
    // every listed report and every applied upload batch has its entry (set-up: 13 entries)
    let entries = imeidb::audit::verify(&store).unwrap().entries;
    let batches = store.len(List::Positive).div_ceil(5);
    assert_eq!(
        entries,
        13 + store.len(List::Negative) + batches,
        "one entry per listed report and per applied upload"
    );
}
