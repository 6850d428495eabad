//! Read replicas over a real NATS JetStream (Debian's `nats-server -js`): one central, two
//! replicas, all real processes, killed and restarted as an operator's machines would be.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use imeidb::accounts::Accounts;
use imeidb::metrics::Metrics;
use imeidb::store::{Digests, Store, StoreOptions};

use crate::support::{Client, Served, imei, serve_with};

/// A `nats-server -js` on its own port and store directory; restartable on both.
struct Nats {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Nats {
    fn start(dir: &Path) -> Nats {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = Nats {
            child: None,
            port,
            dir: dir.to_path_buf(),
        };
        nats.restart();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "nats-server (Debian package nats-server; scripts/install-deps.sh installs it)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        block_cache_bytes: 16 << 20,
        sync_writes: false,
        ..StoreOptions::default()
    }
}

fn central(data: &Path, nats: &Nats) -> Served {
    serve_with(
        data,
        &[
            ("IMEIDB_REPLICATION_ROLE", "central"),
            ("IMEIDB_REPLICATION_NATS_URL", &nats.url()),
            ("IMEIDB_STORE_SYNC_WRITES", "false"),
        ],
    )
}

fn replica(data: &Path, nats: &Nats, central: SocketAddr, token: &str, name: &str) -> Served {
    serve_with(
        data,
        &[
            ("IMEIDB_REPLICATION_ROLE", "replica"),
            ("IMEIDB_REPLICATION_NATS_URL", &nats.url()),
            (
                "IMEIDB_REPLICATION_CENTRAL_URL",
                &format!("http://{central}"),
            ),
            ("IMEIDB_REPLICATION_TOKEN", token),
            ("IMEIDB_REPLICATION_NAME", name),
            ("IMEIDB_STORE_SYNC_WRITES", "false"),
        ],
    )
}

/// The IMEIs each list holds, as digests of its members (a replica holds no records).
fn members(data: &Path) -> (u64, String, u64, String) {
    let d: Digests = Store::open(data, &options(), &Metrics::new())
        .unwrap()
        .digests()
        .unwrap();
    (
        d.positive.entries,
        d.positive.members,
        d.negative.entries,
        d.negative.members,
    )
}

async fn status(addr: SocketAddr, n: u64) -> String {
    let mut client = Client::h1(addr).await;
    let reply = client.get(&format!("/v1/imeis/{}/status", imei(n))).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["status"].as_str().unwrap().to_owned()
}

async fn eventually(what: &str, secs: u64, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn report(client: &mut Client, token: &str, n: u64) -> u16 {
    let body = crate::registry::report(n).to_string();
    match client
        .try_request_as(
            Some(token),
            Method::POST,
            "/v1/reports",
            body.into(),
            Some("application/json"),
        )
        .await
    {
        Some(reply) => reply.status.as_u16(),
        None => 0,
    }
}

async fn upload(addr: SocketAddr, token: String, from: u64, lines: u64) -> Option<u16> {
    let mut csv = String::with_capacity(lines as usize * 40);
    csv.push_str("imei,manufacturer,model,reference\n");
    for n in from..from + lines {
        csv.push_str(&format!("{},Acme,X{},DI-{}\n", imei(n), n % 7, n / 1000));
    }
    let mut client = Client::h1(addr).await;
    client
        .try_request_as(
            Some(&token),
            Method::POST,
            "/v1/registrations",
            csv.into(),
            Some("text/csv"),
        )
        .await
        .map(|r| r.status.as_u16())
}

async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let mut client = Client::h1(addr).await;
    let page = client.get("/metrics").await;
    String::from_utf8_lossy(&page.body)
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

async fn caught_up(central: SocketAddr, replica: SocketAddr) -> bool {
    let committed = metric(central, "imeidb_replication_committed_change").await;
    let applied = metric(replica, "imeidb_replication_applied_change").await;
    committed.is_some() && committed == applied
}

#[test]
fn a_central_and_two_replicas_survive_kills_and_a_nats_outage_and_end_identical() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut nats = Nats::start(&root.join("nats"));
    let (c_data, r1_data, r2_data) = (root.join("central"), root.join("r1"), root.join("r2"));
    let cast = {
        let store = Store::open(&c_data, &options(), &Metrics::new()).unwrap();
        crate::registry::cast(&Accounts::open(Arc::new(store)).unwrap())
    };
    let operator = cast.operator_a.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let mut c = central(&c_data, &nats);
    let r1 = replica(&r1_data, &nats, c.addr, &operator, "r1");
    let mut r2 = replica(&r2_data, &nats, c.addr, &operator, "r2");

    runtime.block_on(async {
        // a report on the central answers BLACKLISTED on both replicas
        let mut client = Client::h1(c.addr).await;
        assert_eq!(report(&mut client, &operator, 1).await, 201);
        for r in [r1.addr, r2.addr] {
            eventually("a replica blacklists the report", 30, async || {
                status(r, 1).await == "BLACKLISTED"
            })
            .await;
            // ready once it has followed the stream up to the central's last change
            eventually("a replica is ready", 30, async || {
                Client::h1(r).await.get("/readyz").await.status == 200
            })
            .await;
            let mut rc = Client::h1(r).await;
            // writes go to the central, named in the refusal
            let refused = rc
                .request_as(
                    Some(&operator),
                    Method::POST,
                    "/v1/reports",
                    crate::registry::report(2).to_string().into(),
                    Some("application/json"),
                )
                .await;
            assert_eq!(refused.status, 421);
            let problem = refused.json();
            assert_eq!(problem["cause"], "READ_ONLY_REPLICA");
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap()
                    .contains(&c.addr.to_string())
            );
        }
    });

    // a 1 M-line upload; replica 2 is killed (-9) in the middle of applying it and restarted
    runtime.block_on(async {
        let uploading = tokio::spawn(upload(c.addr, operator.clone(), 1_000_000, 1_000_000));
        eventually("replica 2 applies part of the upload", 120, async || {
            metric(r2.addr, "imeidb_replication_applied_change")
                .await
                .is_some_and(|a| a > 10.0)
        })
        .await;
        r2.child.kill().unwrap();
        r2.child.wait().unwrap();
        assert_eq!(uploading.await.unwrap(), Some(200));
    });
    drop(r2);
    let r2 = replica(&r2_data, &nats, c.addr, &operator, "r2");
    runtime.block_on(async {
        for r in [r1.addr, r2.addr] {
            eventually("the replicas apply the upload", 180, async || {
                caught_up(c.addr, r).await
            })
            .await;
            assert_eq!(status(r, 1_999_999).await, "WHITELISTED");
        }
    });

    // NATS stops under write load: no write fails; every change arrives once it is back
    runtime.block_on(async {
        let mut client = Client::h1(c.addr).await;
        nats.stop();
        for n in 10..200 {
            assert_eq!(
                report(&mut client, &operator, n).await,
                201,
                "report {n} with NATS down"
            );
        }
        assert_eq!(
            status(r1.addr, 199).await,
            "GREYLISTED",
            "not published while NATS is down"
        );
        nats.restart();
        for n in 200..300 {
            assert_eq!(report(&mut client, &operator, n).await, 201);
        }
        for r in [r1.addr, r2.addr] {
            eventually("the replicas catch up after the outage", 60, async || {
                caught_up(c.addr, r).await
            })
            .await;
            assert_eq!(status(r, 150).await, "BLACKLISTED");
        }
    });

    // the central is killed (-9) mid-upload and restarted: nothing lost, nothing doubled
    runtime.block_on(async {
        let uploading = tokio::spawn(upload(c.addr, operator.clone(), 3_000_000, 400_000));
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.child.kill().unwrap();
        c.child.wait().unwrap();
        let _ = uploading.await;
    });
    drop(c);
    let c = central(&c_data, &nats);
    // the replicas keep the address they were given: the restarted central publishes from its
    // outbox whatever the stream lacks
    runtime.block_on(async {
        let mut client = Client::h1(c.addr).await;
        assert_eq!(report(&mut client, &operator, 300).await, 201);
        for r in [r1.addr, r2.addr] {
            eventually(
                "the replicas hold the restarted central's changes",
                120,
                async || caught_up(c.addr, r).await,
            )
            .await;
            assert_eq!(status(r, 300).await, "BLACKLISTED");
            assert_eq!(metric(r, "imeidb_replication_lag_changes").await, Some(0.0));
        }
    });

    for served in [r1, r2, c] {
        let (status, _) = served.terminate();
        assert!(status.success());
    }
    let central = members(&c_data);
    assert!(central.0 >= 1_000_000 && central.2 == 292, "{central:?}");
    assert_eq!(members(&r1_data), central);
    assert_eq!(members(&r2_data), central);
}

#[test]
fn a_replica_that_finds_a_gap_in_the_stream_fetches_a_snapshot_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let nats = Nats::start(&root.join("nats"));
    let (c_data, r_data) = (root.join("central"), root.join("r"));
    let cast = {
        let store = Store::open(&c_data, &options(), &Metrics::new()).unwrap();
        crate::registry::cast(&Accounts::open(Arc::new(store)).unwrap())
    };
    let operator = cast.operator_a.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let c = central(&c_data, &nats);
    let r = replica(&r_data, &nats, c.addr, &operator, "gappy");
    runtime.block_on(async {
        let mut client = Client::h1(c.addr).await;
        for n in 1..=5 {
            assert_eq!(report(&mut client, &operator, n).await, 201);
        }
        eventually("the replica follows", 30, async || {
            caught_up(c.addr, r.addr).await
        })
        .await;
    });
    let (exit, _) = r.terminate();
    assert!(exit.success());
    runtime.block_on(async {
        let mut client = Client::h1(c.addr).await;
        for n in 6..=10 {
            assert_eq!(report(&mut client, &operator, n).await, 201);
        }
        eventually("the central publishes", 30, async || {
            metric(c.addr, "imeidb_replication_published_change").await == Some(10.0)
        })
        .await;
        // the stream loses what the replica missed (retention, or an operator's purge)
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        js.get_stream("IMEIDB")
            .await
            .unwrap()
            .purge()
            .await
            .unwrap();
        assert_eq!(report(&mut client, &operator, 11).await, 201);
    });
    let r = replica(&r_data, &nats, c.addr, &operator, "gappy");
    runtime.block_on(async {
        eventually(
            "the replica catches up through a snapshot",
            60,
            async || caught_up(c.addr, r.addr).await,
        )
        .await;
        for n in [8, 11] {
            assert_eq!(status(r.addr, n).await, "BLACKLISTED");
        }
        assert_eq!(
            metric(r.addr, "imeidb_replication_bootstraps_total").await,
            Some(1.0)
        );
    });
    runtime.block_on(async {
        // the public check is served; sign-in, consoles and sellers are the central's
        let mut rc = Client::h1(r.addr).await;
        assert_eq!(rc.get("/").await.status, 200);
        for path in ["/entrar", "/consola", "/vendedores", "/v1/public/sellers"] {
            let reply = rc.get(path).await;
            assert_eq!(reply.status, 421, "{path}");
            assert!(
                String::from_utf8_lossy(&reply.body).contains(&c.addr.to_string()),
                "{path}"
            );
        }
    });
    let log: Vec<String> = r.lines.try_iter().collect();
    assert!(
        log.iter().any(|l| l.contains("gap: needed change 6")),
        "the replica says why it fetched a snapshot: {log:#?}"
    );
    for served in [r, c] {
        let (exit, _) = served.terminate();
        assert!(exit.success());
    }
    assert_eq!(members(&r_data), members(&c_data));
    // a replica never starts on a registry's data (accounts, records with owners' IDs)
    let refused = crate::support::imeidb()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&c_data)
        .env("IMEIDB_DIAMETER_LISTEN", "")
        .env("IMEIDB_AUTH_OPEN_CHECKS", "true")
        .env("IMEIDB_REPLICATION_ROLE", "replica")
        .env("IMEIDB_REPLICATION_CENTRAL_URL", "http://127.0.0.1:9")
        .env("IMEIDB_REPLICATION_TOKEN", "x")
        .env("IMEIDB_REPLICATION_NAME", "wrong")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("holds a registry of its own"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
