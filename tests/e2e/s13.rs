//! The Diameter S13 listener over real sockets: who it admits, how it answers many requests
//! at once, watchdogs both ways, disconnection on request and on shutdown, and the bounds
//! that keep a silent or a non-reading client from holding it. (What each request is answered
//! is tested beside the rules, in `src/diameter/tests.rs`; a Diameter node we did not write
//! talks to it in `s13_interop.rs`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use imeidb::diameter::codec::{self, Message, flags};
use imeidb::diameter::dict::{self, avp, command};
use imeidb::diameter::peers::{self, Cidr, PeerTable};
use imeidb::diameter::{self, Node, Settings};
use imeidb::imei::Imei;
use imeidb::store::{NegativeRecord, PositiveRecord, ReportKind};

use crate::support::{Client, TestServer, imei, test_config};

const PEER_HOST: &str = "mme.test.example";
const PEER_REALM: &str = "mme.example";
const OUR_REALM: &str = "test.example";

/// imeidb's HTTP server and a Diameter listener beside it on the same registry and metrics.
struct Eir {
    http: TestServer,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Eir {
    /// imei(1) registered, imei(2) stolen; the settings as the test wants them.
    async fn start(dir: &std::path::Path, configure: impl FnOnce(&mut Settings)) -> Eir {
        let http = TestServer::start_with(test_config(dir)).await;
        http.registry
            .list_positive(imei(1), &PositiveRecord::default())
            .unwrap();
        let stolen = NegativeRecord {
            kind: ReportKind::Stolen,
            ..Default::default()
        };
        http.registry.list_negative(imei(2), &stolen).unwrap();
        let mut settings = Settings {
            listen: None,
            origin_host: "eir.test.example".into(),
            origin_realm: OUR_REALM.into(),
            peers: PeerTable::new(vec![peers::Peer {
                origin_host: PEER_HOST.into(),
                realm: PEER_REALM.into(),
                source: None,
            }]),
            ..Settings::default()
        };
        configure(&mut settings);
        let settings_tls = settings.tls.clone();
        let node = Arc::new(Node::new(
            settings,
            http.registry.clone(),
            &http.metrics,
            Duration::from_secs(2),
        ));
        let listener = diameter::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let tls = settings_tls.map(|t| diameter::tls_acceptor(&t).unwrap());
        let task = tokio::spawn(diameter::run(listener, node, tls, async {
            let _ = stopped.await;
        }));
        Eir {
            http,
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts the shutdown; the listener's task, to await its end.
    fn shut_down(&mut self) -> JoinHandle<std::io::Result<()>> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap()
    }

    async fn metrics(&self) -> String {
        let mut client = Client::h1(self.http.addr).await;
        String::from_utf8(client.get("/metrics").await.body.to_vec()).unwrap()
    }
}

/// A message, built with the crate's codec.
fn message(
    bits: u8,
    command: u32,
    application: u32,
    id: u32,
    avps: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::new();
    let start = codec::begin(&mut out, bits, command, application, id, id ^ 0x5a5a_0000);
    avps(&mut out);
    codec::finish(&mut out, start);
    out
}

fn cer(host: &str, realm: &str, application: u32) -> Vec<u8> {
    message(
        flags::REQUEST,
        command::CAPABILITIES_EXCHANGE,
        0,
        1,
        |out| {
            codec::put(out, avp::ORIGIN_HOST, host.as_bytes());
            codec::put(out, avp::ORIGIN_REALM, realm.as_bytes());
            codec::put_address(out, avp::HOST_IP_ADDRESS, [127, 0, 0, 1].into());
            codec::put_u32(out, avp::VENDOR_ID, 0);
            codec::put(out, avp::PRODUCT_NAME, b"e2e");
            codec::put_u32(out, avp::AUTH_APPLICATION_ID, application);
        },
    )
}

fn ecr(id: u32, imei: &str) -> Vec<u8> {
    message(
        flags::REQUEST | flags::PROXIABLE,
        command::ME_IDENTITY_CHECK,
        dict::S13_APPLICATION,
        id,
        |out| {
            codec::put(
                out,
                avp::SESSION_ID,
                format!("{PEER_HOST};e2e;{id}").as_bytes(),
            );
            codec::put_u32(out, avp::AUTH_SESSION_STATE, 1);
            codec::put(out, avp::ORIGIN_HOST, PEER_HOST.as_bytes());
            codec::put(out, avp::ORIGIN_REALM, PEER_REALM.as_bytes());
            codec::put(out, avp::DESTINATION_REALM, OUR_REALM.as_bytes());
            let group = codec::begin_group(out, avp::TERMINAL_INFORMATION);
            codec::put(out, avp::IMEI, imei.as_bytes());
            codec::finish_group(out, group);
        },
    )
}

fn watchdog(bits: u8, id: u32) -> Vec<u8> {
    message(bits, command::DEVICE_WATCHDOG, 0, id, |out| {
        if bits & flags::REQUEST == 0 {
            codec::put_u32(out, avp::RESULT_CODE, 2001);
        }
        codec::put(out, avp::ORIGIN_HOST, PEER_HOST.as_bytes());
        codec::put(out, avp::ORIGIN_REALM, PEER_REALM.as_bytes());
    })
}

/// One answer's header, Result-Code (or Experimental-Result-Code) and Equipment-Status.
#[derive(Debug)]
struct Answer {
    header: codec::Header,
    result: Option<u32>,
    status: Option<u32>,
}

fn read(bytes: &[u8]) -> Answer {
    let message = Message::new(bytes).unwrap();
    let mut answer = Answer {
        header: message.header,
        result: None,
        status: None,
    };
    for a in message.avps().map(Result::unwrap) {
        if a.is(avp::RESULT_CODE) {
            answer.result = a.u32().ok();
        } else if a.is(avp::EXPERIMENTAL_RESULT) {
            answer.result = a
                .group()
                .map(Result::unwrap)
                .find(|i| i.is(avp::EXPERIMENTAL_RESULT_CODE))
                .and_then(|i| i.u32().ok());
        } else if a.is(avp::EQUIPMENT_STATUS) {
            answer.status = a.u32().ok();
        }
    }
    answer
}

/// A TCP (or TLS) connection speaking Diameter, one whole message at a time.
struct Conn<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// Connected, capabilities exchanged.
    async fn admitted(addr: SocketAddr) -> Conn {
        let mut peer = Conn::connect(addr).await;
        peer.send(&cer(PEER_HOST, PEER_REALM, dict::S13_APPLICATION))
            .await;
        let cea = read(&peer.next().await.expect("a CEA"));
        assert_eq!(cea.result, Some(2001));
        peer
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Conn<S> {
    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next whole message; `None` when the server closed the connection. Panics if
    /// nothing comes for 10 s: the server must never leave a peer hanging.
    async fn next(&mut self) -> Option<Vec<u8>> {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("the server answered or closed within 10 s")
    }

    /// The next whole message, `Ok(None)` on close, `Err` after `limit` of silence.
    async fn next_within(&mut self, limit: Duration) -> Result<Option<Vec<u8>>, ()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(length)) = codec::frame(&self.buf, 1 << 20) {
                if self.buf.len() >= length {
                    return Ok(Some(self.buf.drain(..length).collect()));
                }
            }
            let mut chunk = [0u8; 65536];
            let read = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut chunk)).await;
            match read {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_peer_table_is_admitted_and_nothing_is_answered_before() {
    let dir = tempfile::tempdir().unwrap();
    let eir = Eir::start(dir.path(), |_| {}).await;

    // the peer of the table, its host in any case
    let mut peer = Conn::connect(eir.addr).await;
    peer.send(&cer("MME.Test.Example", PEER_REALM, dict::S13_APPLICATION))
        .await;
    let cea = peer.next().await.unwrap();
    let answer = read(&cea);
    assert_eq!(
        (answer.result, answer.header.flags & flags::ERROR),
        (Some(2001), 0)
    );
    let advertised = Message::new(&cea).unwrap();
    let vsai = advertised
        .avps()
        .map(Result::unwrap)
        .find(|a| a.is(avp::VENDOR_SPECIFIC_APPLICATION_ID))
        .expect("Vendor-Specific-Application-Id");
    let inner: Vec<(u32, u32)> = vsai
        .group()
        .map(|a| a.unwrap())
        .map(|a| (a.code, a.u32().unwrap()))
        .collect();
    assert_eq!(inner, [(266, 10415), (258, 16777252)]);
    assert!(
        advertised
            .avps()
            .map(Result::unwrap)
            .any(|a| a.is(avp::SUPPORTED_VENDOR_ID) && a.u32() == Ok(10415))
    );
    peer.send(&ecr(7, &imei(2).to_string())).await;
    let eca = read(&peer.next().await.unwrap());
    assert_eq!((eca.result, eca.status), (Some(2001), Some(1)));
    assert_eq!(
        (eca.header.hop_by_hop, eca.header.end_to_end),
        (7, 7 ^ 0x5a5a_0000)
    );
    // a CER on the open connection gets a CEA (RFC 6733 §5.6) and changes nothing: a second
    // one naming a stranger is refused without closing the admitted peer's connection
    peer.send(&cer(PEER_HOST, PEER_REALM, dict::S13_APPLICATION))
        .await;
    let cea = read(&peer.next().await.unwrap());
    assert_eq!((cea.header.command, cea.result), (257, Some(2001)));
    peer.send(&cer("intruder.example", PEER_REALM, dict::S13_APPLICATION))
        .await;
    assert_eq!(read(&peer.next().await.unwrap()).result, Some(3010));
    peer.send(&ecr(8, &imei(2).to_string())).await;
    let eca = read(&peer.next().await.unwrap());
    assert_eq!((eca.result, eca.status), (Some(2001), Some(1)));

    // an unknown host, or the right host in another realm: 3010 with the E bit, then closed
    for (host, realm) in [("intruder.example", PEER_REALM), (PEER_HOST, "elsewhere")] {
        let mut stranger = Conn::connect(eir.addr).await;
        stranger
            .send(&cer(host, realm, dict::S13_APPLICATION))
            .await;
        let cea = read(&stranger.next().await.unwrap());
        assert_eq!(cea.result, Some(3010));
        assert_ne!(cea.header.flags & flags::ERROR, 0);
        assert!(stranger.next().await.is_none(), "closed after the refusal");
    }
    // no common application: 5010, closed
    let mut other = Conn::connect(eir.addr).await;
    other.send(&cer(PEER_HOST, PEER_REALM, 16777251)).await;
    assert_eq!(read(&other.next().await.unwrap()).result, Some(5010));
    assert!(other.next().await.is_none());
    // anything before a CER (here an ECR, then a DWR) is not answered: the connection closes
    for first in [ecr(1, &imei(2).to_string()), watchdog(flags::REQUEST, 1)] {
        let mut eager = Conn::connect(eir.addr).await;
        eager.send(&first).await;
        assert!(
            eager.next().await.is_none(),
            "nothing answered before the CER"
        );
    }
    let metrics = eir.metrics().await;
    for line in [
        r#"imeidb_diameter_connections_refused_total{reason="unknown_peer"} 2"#,
        r#"imeidb_diameter_connections_refused_total{reason="no_common_application"} 1"#,
        r#"imeidb_diameter_connections_refused_total{reason="no_capabilities_exchange"} 2"#,
        r#"imeidb_diameter_peer_connections{peer="mme.test.example"} 1"#,
        r#"imeidb_checks_total{interface="s13",result="blacklisted"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    drop(peer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_pinned_to_other_addresses_is_closed_unread() {
    let dir = tempfile::tempdir().unwrap();
    let eir = Eir::start(dir.path(), |s| {
        s.peers = PeerTable::new(vec![peers::Peer {
            origin_host: PEER_HOST.into(),
            realm: PEER_REALM.into(),
            source: Some(Cidr::parse("192.0.2.0/24").unwrap()),
        }]);
    })
    .await;
    let mut peer = Conn::connect(eir.addr).await;
    // the connection is closed before the CER could be read; writing may or may not fail
    let _ = peer
        .stream
        .write_all(&cer(PEER_HOST, PEER_REALM, dict::S13_APPLICATION))
        .await;
    assert!(peer.next().await.is_none());
    let metrics = eir.metrics().await;
    assert!(metrics.contains(r#"imeidb_diameter_connections_refused_total{reason="address"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_outstanding_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let eir = Eir::start(dir.path(), |_| {}).await;
    let peer = Conn::admitted(eir.addr).await;
    let (mut reader, mut writer) = peer.stream.into_split();
    const N: u32 = 20_000;
    let texts = [
        imei(1).to_string(),
        imei(2).to_string(),
        imei(3).to_string(),
    ];
    let sender = tokio::spawn(async move {
        // in chunks of 500 requests, each chunk one write: as a busy MME pool sends them
        let mut chunk = Vec::new();
        for id in 0..N {
            chunk.extend(ecr(id, &texts[id as usize % 3]));
            if chunk.len() > 500 * 150 {
                writer.write_all(&chunk).await.unwrap();
                chunk.clear();
            }
        }
        writer.write_all(&chunk).await.unwrap();
        writer
    });
    let mut buf = peer.buf;
    let mut expected = 0u32;
    let deadline = Instant::now() + Duration::from_secs(30);
    while expected < N {
        let mut at = 0;
        while let Ok(Some(length)) = codec::frame(&buf[at..], 1 << 20) {
            if buf.len() - at < length {
                break;
            }
            let answer = read(&buf[at..at + length]);
            assert_eq!(
                answer.header.hop_by_hop, expected,
                "answers in request order"
            );
            let want = match expected % 3 {
                0 => (Some(2001), Some(0)),
                1 => (Some(2001), Some(1)),
                _ => (Some(5422), None),
            };
            assert_eq!((answer.result, answer.status), want, "answer {expected}");
            expected += 1;
            at += length;
        }
        buf.drain(..at);
        if expected == N {
            break;
        }
        let mut chunk = vec![0u8; 256 * 1024];
        let n = tokio::time::timeout_at(deadline.into(), reader.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("all answers within 30 s; {expected} came"))
            .unwrap();
        if n == 0 {
            assert_eq!(expected, N, "closed early");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    sender.await.unwrap();
    let metrics = eir.metrics().await;
    assert!(metrics.contains(&format!(
        r#"imeidb_checks_total{{interface="s13",result="unknown"}} {}"#,
        N / 3
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdogs_go_both_ways_and_a_silent_peer_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let eir = Eir::start(dir.path(), |s| s.watchdog = Duration::from_secs(1)).await;
    let mut peer = Conn::admitted(eir.addr).await;
    // the peer's own DWR is answered
    peer.send(&watchdog(flags::REQUEST, 99)).await;
    let dwa = read(&peer.next().await.unwrap());
    assert_eq!(
        (dwa.header.command, dwa.result, dwa.header.hop_by_hop),
        (280, Some(2001), 99)
    );
    // silent for a watchdog interval: the server asks
    let started = Instant::now();
    let dwr = Message::new(&peer.next().await.unwrap()).unwrap().header;
    assert!(dwr.is_request() && dwr.command == command::DEVICE_WATCHDOG);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    peer.send(&watchdog(0, dwr.hop_by_hop)).await;
    // answered, the connection stays up and the next DWR comes an interval later
    let dwr = Message::new(&peer.next().await.unwrap()).unwrap().header;
    assert_eq!(dwr.command, command::DEVICE_WATCHDOG);
    let metrics = eir.metrics().await;
    assert!(!metrics.contains(
        r#"imeidb_diameter_peer_last_watchdog_timestamp_seconds{peer="mme.test.example"} 0"#
    ));
    // not answered: closed after another interval
    let unanswered = Instant::now();
    assert!(
        peer.next().await.is_none(),
        "closed when the DWR goes unanswered"
    );
    let waited = unanswered.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    let metrics = eir.metrics().await;
    assert!(metrics.contains(r#"imeidb_diameter_peer_connections{peer="mme.test.example"} 0"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_asks_to_disconnect_is_answered_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let eir = Eir::start(dir.path(), |_| {}).await;
    let mut peer = Conn::admitted(eir.addr).await;
    let dpr = message(flags::REQUEST, command::DISCONNECT_PEER, 0, 5, |out| {
        codec::put(out, avp::ORIGIN_HOST, PEER_HOST.as_bytes());
        codec::put(out, avp::ORIGIN_REALM, PEER_REALM.as_bytes());
        codec::put_u32(out, avp::DISCONNECT_CAUSE, 2);
    });
    peer.send(&dpr).await;
    let dpa = read(&peer.next().await.unwrap());
    assert_eq!((dpa.header.command, dpa.result), (282, Some(2001)));
    // the peer should close now; one that does not is closed for it
    let started = Instant::now();
    assert!(peer.next().await.is_none());
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(eir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_dpr_and_answers_until_the_dpa() {
    let dir = tempfile::tempdir().unwrap();
    let mut eir = Eir::start(dir.path(), |_| {}).await;
    let mut polite = Conn::admitted(eir.addr).await;
    let mut deaf = Conn::admitted(eir.addr).await;
    let started = Instant::now();
    let listener = eir.shut_down();
    for peer in [&mut polite, &mut deaf] {
        let dpr = Message::new(&peer.next().await.unwrap()).unwrap().header;
        assert!(dpr.is_request() && dpr.command == command::DISCONNECT_PEER);
    }
    // a request in flight while disconnecting is still answered
    polite.send(&ecr(3, &imei(1).to_string())).await;
    let eca = read(&polite.next().await.unwrap());
    assert_eq!((eca.result, eca.status), (Some(2001), Some(0)));
    // the DPA ends the connection at once
    let dpa = message(0, command::DISCONNECT_PEER, 0, 0, |out| {
        codec::put_u32(out, avp::RESULT_CODE, 2001);
        codec::put(out, avp::ORIGIN_HOST, PEER_HOST.as_bytes());
        codec::put(out, avp::ORIGIN_REALM, PEER_REALM.as_bytes());
    });
    polite.send(&dpa).await;
    assert!(polite.next().await.is_none());
    // a peer that never answers is closed after the shutdown grace (2 s here)
    assert!(deaf.next().await.is_none());
    listener.await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // and nobody is listening any more
    assert!(TcpStream::connect(eir.addr).await.is_err());
}

/// A TCP connection from `source` (any 127.x.y.z is this machine's loopback), so that a test
/// can be many clients.
async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// The metric line's value.
fn metric(metrics: &str, line: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line} in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_lock_the_peers_out() {
    let dir = tempfile::tempdir().unwrap();
    let eir = Eir::start(dir.path(), |_| {}).await;
    // one machine opens 100 connections and says nothing (or half a CER): it keeps 8, the
    // others are closed at once
    let mut one_source = Vec::new();
    for n in 0..100 {
        let mut stream = connect_from("127.0.0.2", eir.addr).await;
        if n % 2 == 0 {
            stream
                .write_all(&cer(PEER_HOST, PEER_REALM, 16777252)[..30])
                .await
                .unwrap();
        }
        one_source.push(Conn {
            stream,
            buf: Vec::new(),
        });
    }
    let last = one_source.last_mut().unwrap();
    assert!(
        last.next_within(Duration::from_secs(1))
            .await
            .unwrap()
            .is_none()
    );
    // the real MME (another address) gets in at once
    let started = Instant::now();
    let mut peer = Conn::admitted(eir.addr).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    peer.send(&ecr(1, &imei(1).to_string())).await;
    assert_eq!(read(&peer.next().await.unwrap()).status, Some(0));
    // 300 silent connections from 100 addresses: the oldest are evicted as new ones come
    let mut many = Vec::new();
    for n in 0..300 {
        many.push(Conn {
            stream: connect_from(&format!("127.0.1.{}", 1 + n % 100), eir.addr).await,
            buf: Vec::new(),
        });
    }
    assert!(
        many[0]
            .next_within(Duration::from_millis(500))
            .await
            .unwrap()
            .is_none()
    );
    // an MME still gets in, its CER coming right after its connection
    let mut again = Conn::admitted(eir.addr).await;
    again.send(&ecr(2, &imei(2).to_string())).await;
    assert_eq!(read(&again.next().await.unwrap()).status, Some(1));
    // the rest go when the CER timeout passes
    for mut silent in many.drain(..).rev().take(10) {
        let closed = silent
            .next_within(diameter::CER_TIMEOUT + Duration::from_secs(2))
            .await
            .unwrap();
        assert!(closed.is_none());
    }
    let metrics = eir.metrics().await;
    let refused = |reason: &str| {
        metric(
            &metrics,
            &format!(r#"imeidb_diameter_connections_refused_total{{reason="{reason}"}}"#),
        )
    };
    assert!(refused("silent_per_source") >= 92 - 1, "{metrics}");
    assert!(
        refused("evicted") >= 300 - diameter::MAX_SILENT as u64,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gets_its_share_of_connections_and_then_3004() {
    let dir = tempfile::tempdir().unwrap();
    let eir = Eir::start(dir.path(), |s| s.max_connections_per_peer = 2).await;
    let first = Conn::admitted(eir.addr).await;
    let _second = Conn::admitted(eir.addr).await;
    let mut third = Conn::connect(eir.addr).await;
    third
        .send(&cer(PEER_HOST, PEER_REALM, dict::S13_APPLICATION))
        .await;
    let cea = read(&third.next().await.unwrap());
    assert_eq!(
        cea.result,
        Some(3004),
        "DIAMETER_TOO_BUSY, not a success and a close"
    );
    assert_ne!(cea.header.flags & flags::ERROR, 0);
    assert!(third.next().await.is_none());
    // a place given back is a place to take
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut retry = Conn::connect(eir.addr).await;
        retry
            .send(&cer(PEER_HOST, PEER_REALM, dict::S13_APPLICATION))
            .await;
        if read(&retry.next().await.unwrap()).result == Some(2001) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection's place came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = eir.metrics().await;
    assert!(
        metric(
            &metrics,
            r#"imeidb_diameter_connections_refused_total{reason="too_busy"}"#
        ) >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unframeable_messages_are_answered_and_the_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    let eir = Eir::start(dir.path(), |_| {}).await;
    let good = ecr(9, &imei(1).to_string());
    let mut version = good.clone();
    version[0] = 2;
    let mut ragged = good.clone();
    ragged[3] = ragged[3].wrapping_add(2); // not a multiple of 4
    let mut huge = good.clone();
    huge[1] = 0x10; // 1 MiB and more
    for (name, bytes, code) in [
        ("version", version, 5011),
        ("length", ragged, 5015),
        ("too long", huge, 5015),
    ] {
        let mut peer = Conn::admitted(eir.addr).await;
        peer.send(&bytes).await;
        let answer = read(&peer.next().await.expect(name));
        assert_eq!(
            (answer.result, answer.header.hop_by_hop),
            (Some(code), 9),
            "{name}"
        );
        assert!(
            peer.next().await.is_none(),
            "{name}: closed after the answer"
        );
    }
    // an unknown command on a good connection is answered, and the connection goes on
    let mut peer = Conn::admitted(eir.addr).await;
    peer.send(&message(flags::REQUEST, 999, 0, 4, |out| {
        codec::put(out, avp::ORIGIN_HOST, PEER_HOST.as_bytes());
    }))
    .await;
    let answer = read(&peer.next().await.unwrap());
    assert_eq!(answer.result, Some(3001));
    assert_ne!(answer.header.flags & flags::ERROR, 0);
    peer.send(&good).await;
    assert_eq!(read(&peer.next().await.unwrap()).status, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_reads_nothing_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let eir = Eir::start(dir.path(), |s| s.watchdog = Duration::from_secs(1)).await;
    let peer = Conn::admitted(eir.addr).await;
    let (_reader, mut writer) = peer.stream.into_split();
    let batch: Vec<u8> = (0..1000)
        .flat_map(|id| ecr(id, &imei(1).to_string()))
        .collect();
    // its answers fill the socket buffers; the server then waits one watchdog interval for
    // the peer to read, and closes: the writes start failing
    let started = Instant::now();
    let failed = loop {
        match tokio::time::timeout(Duration::from_secs(20), writer.write_all(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break e,
            Err(_) => panic!("a write blocked for 20 s: the server neither read nor closed"),
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never closed");
    };
    assert!(
        matches!(
            failed.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{failed}"
    );
    // the server is fine
    let mut fresh = Conn::admitted(eir.addr).await;
    fresh.send(&ecr(1, &imei(2).to_string())).await;
    assert_eq!(read(&fresh.next().await.unwrap()).status, Some(1));
}

/// Checks of every kind arrive through both the HTTP and the Diameter interface: the same
/// registry, the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_and_n5g_eir_give_the_same_decision() {
    let dir = tempfile::tempdir().unwrap();
    let eir = Eir::start(dir.path(), |_| {}).await;
    let mut peer = Conn::admitted(eir.addr).await;
    let mut http = Client::h1(eir.http.addr).await;
    for (n, s13_status, http_status) in [(1, 0, "WHITELISTED"), (2, 1, "BLACKLISTED")] {
        let imei: Imei = imei(n);
        peer.send(&ecr(n as u32, &imei.to_string())).await;
        assert_eq!(read(&peer.next().await.unwrap()).status, Some(s13_status));
        let reply = http
            .get(&format!("/n5g-eir-eic/v1/equipment-status?pei=imei-{imei}"))
            .await;
        assert_eq!(reply.json()["status"], http_status);
    }
    // a report made now is seen by the next ECR
    eir.http
        .registry
        .list_negative(imei(1), &NegativeRecord::default())
        .unwrap();
    peer.send(&ecr(10, &imei(1).to_string())).await;
    assert_eq!(read(&peer.next().await.unwrap()).status, Some(1));
}

/// A CA, the listener's certificate (for eir.test.example) and two peers' certificates, one
/// signed by the CA and one by another CA, made with the `openssl` command.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl (Debian package openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            run(&[
                &["req", "-x509"][..],
                &key,
                &[
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={ca}"),
                ],
            ]
            .concat());
        }
        for (name, ca, san, usage) in [
            ("eir", "ca", "DNS:eir.test.example", "serverAuth"),
            ("mme", "ca", "DNS:mme.test.example", "clientAuth"),
            ("rogue", "other-ca", "DNS:mme.test.example", "clientAuth"),
        ] {
            std::fs::write(
                dir.path().join(format!("{name}.ext")),
                format!(
                    "subjectAltName={san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"
                ),
            )
            .unwrap();
            run(&[
                &["req"][..],
                &key,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={name}"),
                ],
            ]
            .concat());
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }
        Pki { dir }
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.path().join(file)
    }

    /// `[diameter.tls]` with this listener certificate, peers' certificates from the CA.
    fn settings(&self) -> diameter::TlsSettings {
        diameter::TlsSettings {
            cert_file: self.path("eir.pem"),
            key_file: self.path("eir.key"),
            peer_ca_file: Some(self.path("ca.pem")),
        }
    }

    /// A TLS connection to `addr` as a peer with certificate `name` (none: `None`); `Err` if
    /// the handshake fails.
    async fn connect(
        &self,
        addr: SocketAddr,
        name: Option<&str>,
    ) -> std::io::Result<Conn<tokio_rustls::client::TlsStream<TcpStream>>> {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(self.path("ca.pem")).unwrap())
            .unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let builder = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match name {
            None => builder.with_no_client_auth(),
            Some(name) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_file(self.path(&format!("{name}.pem"))).unwrap()],
                    PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).unwrap(),
                )
                .unwrap(),
        };
        let tcp = TcpStream::connect(addr).await?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("eir.test.example").unwrap(), tcp)
            .await?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }
}

/// A listener over TLS with a fresh PKI, and the directory its registry lives in.
async fn tls_eir() -> (tempfile::TempDir, Pki, Eir) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let tls = pki.settings();
    let eir = Eir::start(dir.path(), |s| s.tls = Some(tls)).await;
    (dir, pki, eir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_peer_with_the_ca_certificate_is_served_and_others_are_refused() {
    let (_dir, pki, eir) = tls_eir().await;

    // a peer with a certificate of the peer CA: CER/CEA, then checks, over TLS
    let mut peer = pki.connect(eir.addr, Some("mme")).await.unwrap();
    peer.send(&cer(PEER_HOST, PEER_REALM, dict::S13_APPLICATION))
        .await;
    assert_eq!(read(&peer.next().await.expect("a CEA")).result, Some(2001));
    let mut both = ecr(10, &imei(1).to_string());
    both.extend(ecr(11, &imei(2).to_string()));
    peer.send(&both).await;
    let (white, black) = (
        read(&peer.next().await.unwrap()),
        read(&peer.next().await.unwrap()),
    );
    assert_eq!((white.header.hop_by_hop, white.status), (10, Some(0)));
    assert_eq!((black.header.hop_by_hop, black.status), (11, Some(1)));

    // the table still decides who the TLS peer is: a good certificate, an unknown Origin-Host
    let mut stranger = pki.connect(eir.addr, Some("mme")).await.unwrap();
    stranger
        .send(&cer(
            "other.test.example",
            PEER_REALM,
            dict::S13_APPLICATION,
        ))
        .await;
    assert_eq!(read(&stranger.next().await.unwrap()).result, Some(3010));
    assert!(stranger.next().await.is_none());

    // no certificate, or one of another CA: the handshake fails, nothing is answered
    for name in [None, Some("rogue")] {
        let refused = match pki.connect(eir.addr, name).await {
            Err(_) => true,
            // TLS 1.3: the client learns of the refusal at its first read
            Ok(mut conn) => {
                conn.send(&cer(PEER_HOST, PEER_REALM, dict::S13_APPLICATION))
                    .await;
                conn.next().await.is_none()
            }
        };
        assert!(refused, "{name:?} was served");
    }
    // plain TCP to the TLS listener: a CER in clear gets no answer
    let mut clear = Conn::connect(eir.addr).await;
    clear
        .send(&cer(PEER_HOST, PEER_REALM, dict::S13_APPLICATION))
        .await;
    assert!(clear.next().await.is_none());
    let metrics = eir.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "imeidb_diameter_connections_refused_total{reason=\"tls_handshake\"}"
        ),
        3
    );
    assert_eq!(
        metric(
            &metrics,
            "imeidb_checks_total{interface=\"s13\",result=\"blacklisted\"}"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_as_the_peer_exchanges_capabilities_and_checks_over_tls() {
    // a TLS implementation we did not write: openssl s_client with the peer's certificate,
    // carrying a CER and an ECR written to its standard input, the answers read from its
    // standard output
    use tokio::io::AsyncWriteExt as _;
    let (_dir, pki, eir) = tls_eir().await;
    let mut client = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-verify_return_error",
            "-servername",
            "eir.test.example",
        ])
        .arg("-connect")
        .arg(eir.addr.to_string())
        .arg("-CAfile")
        .arg(pki.path("ca.pem"))
        .arg("-cert")
        .arg(pki.path("mme.pem"))
        .arg("-key")
        .arg(pki.path("mme.key"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl");
    let mut input = client.stdin.take().unwrap();
    let mut requests = cer(PEER_HOST, PEER_REALM, dict::S13_APPLICATION);
    requests.extend(ecr(20, &imei(2).to_string()));
    input.write_all(&requests).await.unwrap();
    input.flush().await.unwrap();
    let mut answers = Conn {
        stream: tokio::io::join(client.stdout.take().unwrap(), tokio::io::sink()),
        buf: Vec::new(),
    };
    let cea = read(&answers.next().await.expect("a CEA through openssl"));
    assert_eq!((cea.header.command, cea.result), (257, Some(2001)));
    let eca = read(&answers.next().await.expect("an ECA through openssl"));
    assert_eq!(
        (eca.header.command, eca.header.hop_by_hop, eca.status),
        (324, 20, Some(1))
    );
    drop(input);
    let _ = client.kill().await;
}
