//! The adversarial suite: the real server on real sockets under the attacks a server on a
//! national network meets: pipelining floods that read nothing, slowloris, oversize heads,
//! request smuggling, token guessing, floods of the public routes and of forbidden writes.
//!
//! Every attack states its bound in the test: memory (the server's resident set, measured on
//! the real binary in a process of its own), time (how soon a connection is closed, how long a
//! check waits), or the exact answer on the wire (statuses, which responses come back at all,
//! byte-identical refusals, counters that rise by exactly the attempts made). Every attack on
//! HTTP/1.1 runs on both paths: the direct path (`server.direct_path = true`, the default) and
//! hyper alone (`false`).
//!
//! Each server runs in a tokio runtime of its own, and the slowloris clients on a thread of
//! their own, so that the test's clients and the server never wait on each other's tasks; the
//! tests that measure time or memory take [`EXCLUSIVE`] so they do not measure each other.
//! Each prints what it measured (`cargo test ... adversarial -- --nocapture`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use imeidb::audit::{self, Action, Filter, Outcome};
use imeidb::config::Config;
use imeidb::store::PositiveRecord;

use crate::support::{Client, TestServer, Wire, imei, parse_response, serve_with, test_config};

/// Held by the tests that measure time or memory, so that they run one at a time.
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Both paths: the direct path, then hyper alone.
const PATHS: [bool; 2] = [true, false];

fn path_name(direct: bool) -> &'static str {
    if direct { "direct path" } else { "hyper only" }
}

/// A [`TestServer`] in a runtime of its own (two workers: the machine the suite is sized for
/// has two cores), over a directory of its own.
struct Started {
    server: Option<TestServer>,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Started {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        self.server.as_ref().expect("running")
    }
}

impl Started {
    async fn stop(mut self) {
        self.server.take().expect("running").stop().await;
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        // dropping a runtime in an async context would panic
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A server on one path, with `configure` applied to the test config; imei(1) is on the
/// positive list.
async fn start(direct: bool, configure: impl FnOnce(&mut Config)) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.server.direct_path = direct;
    configure(&mut config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.spawn(TestServer::start_with(config)).await.unwrap();
    server
        .registry
        .list_positive(imei(1), &PositiveRecord::default())
        .unwrap();
    Started {
        server: Some(server),
        runtime: Some(runtime),
        _dir: dir,
    }
}

fn check_path() -> String {
    format!("/v1/imeis/{}/status", imei(1))
}

/// A bodiless HTTP/1.1 `GET` with a `host` and `extra` header lines (each ending in CRLF).
fn get(target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nhost: imeidb\r\n{extra}\r\n")
}

/// What a connection got back.
#[derive(Debug)]
struct Answers {
    responses: Vec<Wire>,
    /// The server closed the connection (or reset it).
    closed: bool,
}

impl Answers {
    fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|w| w.status).collect()
    }
}

/// Reads responses off `stream` until the server closes it, or until nothing has come for
/// `quiet`. Panics if that takes longer than `limit` (a server that neither answers nor goes
/// quiet) or if a response is cut short.
async fn read_answers(stream: &mut TcpStream, quiet: Duration, limit: Duration) -> Answers {
    let deadline = Instant::now() + limit;
    let mut read = Vec::new();
    let mut responses = Vec::new();
    let mut closed = false;
    loop {
        while let Some((wire, used)) = parse_response(&read) {
            responses.push(wire);
            read.drain(..used);
        }
        let mut chunk = [0u8; 16 << 10];
        assert!(Instant::now() < deadline, "still talking after {limit:?}");
        match tokio::time::timeout(quiet, stream.read(&mut chunk)).await {
            Err(_) => break, // quiet: the connection stays open
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => read.extend_from_slice(&chunk[..n]),
        }
    }
    while let Some((wire, used)) = parse_response(&read) {
        responses.push(wire);
        read.drain(..used);
    }
    assert!(
        read.is_empty(),
        "a partial response: {:?}",
        String::from_utf8_lossy(&read)
    );
    Answers { responses, closed }
}

/// Writes `bytes` on a fresh connection and reads what comes back (see [`read_answers`]).
async fn talk(addr: SocketAddr, bytes: &[u8]) -> Answers {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // the server may close before reading everything (e.g. after a 431): then the rest of
    // the write fails, and the answer is still read
    let _ = stream.write_all(bytes).await;
    read_answers(
        &mut stream,
        Duration::from_millis(400),
        Duration::from_secs(5),
    )
    .await
}

/// Writes `bytes` on a fresh connection and reads until `count` responses came (or the
/// server closed): for answers that must come however busy the server is.
async fn talk_until(addr: SocketAddr, bytes: &[u8], count: usize) -> Answers {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut read = Vec::new();
    let mut responses = Vec::new();
    let mut closed = false;
    while responses.len() < count {
        if let Some((wire, used)) = parse_response(&read) {
            responses.push(wire);
            read.drain(..used);
            continue;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(n) => read.extend_from_slice(&chunk[..n]),
        }
    }
    Answers { responses, closed }
}

/// `imeidb_requests_refused_total{reason}` off `/metrics`.
async fn refused(addr: SocketAddr, reason: &str) -> u64 {
    let text = Client::h1(addr).await.get("/metrics").await.body;
    let text = String::from_utf8(text.to_vec()).unwrap();
    let series = format!("imeidb_requests_refused_total{{reason=\"{reason}\"}} ");
    (text.lines())
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
        .parse()
        .unwrap()
}

// ------------------------------------------------------------------------------------------
// 1. A pipelining flood that reads nothing
// ------------------------------------------------------------------------------------------

/// A field of `/proc/<pid>/status`, in KiB (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    (status.lines())
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// CPU time the process has used so far, in clock ticks (user and system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The kernel's memory for TCP buffers, all sockets of the machine, in KiB (`/proc/net/sockstat`).
fn kernel_tcp_kib() -> u64 {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap();
    let pages: u64 = (sockstat.lines())
        .find_map(|line| line.strip_prefix("TCP:"))
        .and_then(|tcp| tcp.split_whitespace().skip_while(|w| *w != "mem").nth(1))
        .and_then(|pages| pages.parse().ok())
        .expect("TCP mem in /proc/net/sockstat");
    pages * 4
}

/// Connections of the flood: a few hundred, well within the test process's file descriptors
/// (`ulimit -n` is 20,000 here; nothing is raised).
const FLOOD_CONNECTIONS: usize = 200;
/// Bytes of pipelined requests each flooding connection writes.
const FLOOD_BYTES: usize = 16 << 10;
/// The bound: the server's resident set grows by less than this under the whole flood. Before
/// the fix (issue #18) the direct path answered every request of a read into one buffer
/// (about 327 answers of 5.6 KB per 8 KiB read) and kept its capacity, about 1.2 MB per such
/// connection, so these 200 would take about 240 MB; with the fix the growth stays far below
/// the bound (figures: docs/PERFORMANCE.md, "Memory under a pipelining flood").
const FLOOD_GROWTH_BOUND_KIB: u64 = 64 << 10;
/// A fresh client's `/healthz` is answered within this during the flood: the server is not
/// stalled.
const FLOOD_LIVENESS_BOUND: Duration = Duration::from_secs(5);
/// ... and, once connected, within this: promptly, each connection getting a fair share of
/// the workers (see below for each path).
const FLOOD_PROMPT_BOUND: Duration = Duration::from_millis(250);

/// What a flood did to the server.
struct Flooded {
    /// Resident set before the flood, KiB.
    before: u64,
    /// Its peak during the flood (the larger of the sampled `VmRSS` and `VmHWM`), KiB.
    peak: u64,
    /// The slowest of the fresh clients' `/healthz` during the flood, once connected.
    slowest_healthz: Duration,
}

/// Floods a real `imeidb serve` (a process of its own, so that its memory is its own) with
/// `connections` connections that each pipeline [`FLOOD_BYTES`] of `GET /metrics` and read
/// nothing, while a fresh client asks `/healthz` on a new connection every 20 ms, until the
/// server has answered all it can and sits idle. (Over loopback the kernel takes nearly every
/// answer, 3.7 MB per connection, into the sockets' buffers, and the server works until it
/// has produced them all; what it must not do is hold those answers itself.)
async fn pipelining_flood(direct: bool, connections: usize) -> Flooded {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(
        &dir.path().join("data"),
        &[(
            "IMEIDB_SERVER_DIRECT_PATH",
            if direct { "true" } else { "false" },
        )],
    );
    let (addr, pid) = (served.addr, served.child.id());
    let request = b"GET /metrics HTTP/1.1\r\n\r\n";
    let pipelined = FLOOD_BYTES / request.len();
    let flood = request.repeat(pipelined);

    // warm up every code path the flood takes, then measure
    let mut warm = TcpStream::connect(addr).await.unwrap();
    warm.write_all(&request.repeat(50)).await.unwrap();
    let warmed = read_answers(
        &mut warm,
        Duration::from_millis(300),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(warmed.responses.len(), 50);
    let metrics_bytes = warmed.responses[0].body.len();
    drop(warm);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = proc_kib(pid, "VmRSS");
    let (cpu_before, kernel_before) = (cpu_ticks(pid), kernel_tcp_kib());

    // a fresh client throughout: how long its connect takes (the kernel's accept queue), and
    // then its answer
    let flooding_now = Arc::new(AtomicBool::new(true));
    let prober = {
        let flooding_now = Arc::clone(&flooding_now);
        tokio::spawn(async move {
            let (mut slowest_connect, mut slowest_answer) = (Duration::ZERO, Duration::ZERO);
            while flooding_now.load(Ordering::Relaxed) {
                let started = Instant::now();
                let answered = tokio::time::timeout(FLOOD_LIVENESS_BOUND, async {
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    let connected = started.elapsed();
                    stream
                        .write_all(get("/healthz", "").as_bytes())
                        .await
                        .unwrap();
                    let mut answer = [0u8; 256];
                    let n = stream.read(&mut answer).await.unwrap();
                    assert!(answer[..n].starts_with(b"HTTP/1.1 200 "));
                    (connected, started.elapsed() - connected)
                })
                .await
                .expect("/healthz answered during the flood");
                slowest_connect = slowest_connect.max(answered.0);
                slowest_answer = slowest_answer.max(answered.1);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (slowest_connect, slowest_answer)
        })
    };

    // every flooding client connects first, while the server is idle and accepts at once:
    // connecting them during the flood would overflow the kernel's accept queue (its backlog
    // is 128; see `a_full_server_queues_clients_in_the_kernel`), and a client whose SYN
    // is dropped waits a second for its retransmission, whatever the server does
    let mut flooding = Vec::with_capacity(connections);
    for _ in 0..connections {
        flooding.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let flooded_at = Instant::now();
    for stream in &mut flooding {
        stream.write_all(&flood).await.unwrap();
    }
    // the server answers what the kernel's buffers take, then waits for readers that never
    // come: its peak until it has used no CPU for 300 ms
    let mut peak = before;
    let mut idle_since = Instant::now();
    let mut cpu = cpu_ticks(pid);
    while idle_since.elapsed() < Duration::from_millis(300) {
        assert!(
            flooded_at.elapsed() < Duration::from_secs(10),
            "the server never settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(proc_kib(pid, "VmRSS"));
        let now = cpu_ticks(pid);
        if now > cpu + 1 {
            idle_since = Instant::now();
        }
        cpu = now;
    }
    let settled = flooded_at.elapsed() - idle_since.elapsed();
    let (after, hwm) = (proc_kib(pid, "VmRSS"), proc_kib(pid, "VmHWM"));
    let kernel = kernel_tcp_kib();
    flooding_now.store(false, Ordering::Relaxed);
    let (slowest_connect, slowest_healthz) = prober.await.unwrap();
    eprintln!(
        "pipelining flood, {}: {connections} connections x {pipelined} pipelined GET /metrics \
         ({metrics_bytes}-byte answers), none read; the server worked {:.1} CPU-s for \
         {settled:.1?}: VmRSS {before} KiB before, {after} KiB after, sampled peak {peak} KiB, \
         VmHWM {hwm} KiB; the kernel's TCP buffers (whole machine) {kernel_before} -> \
         {kernel} KiB; a fresh client meanwhile: slowest connect {slowest_connect:?}, slowest \
         /healthz once connected {slowest_healthz:?}",
        path_name(direct),
        (cpu - cpu_before) as f64 / 100.0,
    );

    // nothing was dropped: a flooding client that starts reading gets every answer
    for stream in flooding.iter_mut().take(2) {
        let answers =
            read_answers(stream, Duration::from_millis(500), Duration::from_secs(10)).await;
        assert_eq!(answers.responses.len(), pipelined);
        assert!(answers.responses.iter().all(|w| w.status == 200));
        assert!(!answers.closed);
    }
    Flooded {
        before,
        peak: peak.max(hwm),
        slowest_healthz,
    }
}

fn assert_little_memory(flooded: &Flooded) {
    let grew = flooded.peak.saturating_sub(flooded.before);
    assert!(
        grew < FLOOD_GROWTH_BOUND_KIB,
        "the server grew by {grew} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelining_flood_that_reads_nothing_holds_little_memory_direct_path() {
    let _alone = EXCLUSIVE.lock().await;
    let flooded = pipelining_flood(true, FLOOD_CONNECTIONS).await;
    assert_little_memory(&flooded);
    // (answered within FLOOD_LIVENESS_BOUND: see the prober; promptly: see below)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelining_flood_that_reads_nothing_holds_little_memory_hyper_only() {
    let _alone = EXCLUSIVE.lock().await;
    let flooded = pipelining_flood(false, FLOOD_CONNECTIONS).await;
    assert_little_memory(&flooded);
    assert!(
        flooded.slowest_healthz < FLOOD_PROMPT_BOUND,
        "a fresh /healthz took {:?} during the flood",
        flooded.slowest_healthz
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_client_is_answered_promptly_during_a_pipelining_flood_direct_path() {
    let _alone = EXCLUSIVE.lock().await;
    let flooded = pipelining_flood(true, FLOOD_CONNECTIONS).await;
    assert!(
        flooded.slowest_healthz < FLOOD_PROMPT_BOUND,
        "a fresh /healthz took {:?} during the flood",
        flooded.slowest_healthz
    );
}

// ------------------------------------------------------------------------------------------
// 2. Slowloris
// ------------------------------------------------------------------------------------------

/// The idle timeout of the slowloris tests.
const IDLE: Duration = Duration::from_millis(500);

fn short_idle(config: &mut Config) {
    config.server.idle_timeout = IDLE;
}

/// The start of a head that never ends: after it, `a`s.
const SLOW_HEAD: &[u8] =
    b"GET /v1/imeis/352906110000011/status HTTP/1.1\r\nhost: imeidb\r\nx-slow: ";

/// Slowloris clients on a thread of their own: each connection sends the first `first` bytes
/// of a head that never ends ([`SLOW_HEAD`], then `a`s), then one more byte every `every`,
/// and never reads until the server closes it (any answer panics). Without `until`, the
/// thread ends when every connection is closed or `limit` has passed; with it, a closed
/// connection is opened again at once, until `until` is set.
struct Slowloris {
    thread: std::thread::JoinHandle<SlowlorisEnded>,
}

/// How long after its connect each connection was closed, and how many were still open.
#[derive(Debug)]
struct SlowlorisEnded {
    closed_after: Vec<Duration>,
    still_open: usize,
}

/// One slowloris connection.
struct Slow {
    stream: std::net::TcpStream,
    /// When its connect ended (the server accepts after that).
    started: Instant,
    sent: usize,
    next: Instant,
}

impl Slow {
    fn open(addr: SocketAddr, first: usize, every: Duration) -> std::io::Result<Slow> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        let started = Instant::now();
        stream.write_all(&SLOW_HEAD[..first])?;
        stream.set_nonblocking(true)?;
        Ok(Slow {
            stream,
            started,
            sent: first,
            next: started + every,
        })
    }

    /// Whether the server closed the connection; sends the next byte when it is due.
    fn closed(&mut self, every: Duration) -> bool {
        let mut buf = [0u8; 512];
        match self.stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => panic!(
                "answered a head that never ended: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return true,
            Err(_) => {}
        }
        if Instant::now() >= self.next {
            let byte = SLOW_HEAD.get(self.sent).copied().unwrap_or(b'a');
            // a failed write shows as a closed connection at the next read
            if self.stream.write(&[byte]).is_ok_and(|n| n == 1) {
                self.sent += 1;
            }
            self.next += every;
        }
        false
    }
}

impl Slowloris {
    fn start(
        addr: SocketAddr,
        firsts: Vec<usize>,
        every: Duration,
        limit: Duration,
        until: Option<Arc<AtomicBool>>,
    ) -> Slowloris {
        let thread = std::thread::spawn(move || {
            let begun = Instant::now();
            // a little apart, so that no connect waits on a full accept queue (its backlog is
            // 128) and then on a SYN retransmitted a second later
            let mut slow: Vec<(usize, Option<Slow>)> = (firsts.iter())
                .map(|&first| {
                    std::thread::sleep(Duration::from_micros(200));
                    let conn = Slow::open(addr, first, every);
                    (first, Some(conn.expect("slowloris connect")))
                })
                .collect();
            let mut closed_after = Vec::new();
            loop {
                let reconnect = match &until {
                    Some(until) if until.load(Ordering::Relaxed) => break,
                    Some(_) => true,
                    None if begun.elapsed() > limit => break,
                    None if slow.iter().all(|(_, s)| s.is_none()) => break,
                    None => false,
                };
                for (first, conn) in &mut slow {
                    if let Some(s) = conn {
                        if s.closed(every) {
                            closed_after.push(s.started.elapsed());
                            *conn = None;
                        }
                    }
                    if conn.is_none() && reconnect {
                        *conn = Slow::open(addr, *first, every).ok();
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let still_open = slow.iter().filter(|(_, s)| s.is_some()).count();
            SlowlorisEnded {
                closed_after,
                still_open,
            }
        });
        Slowloris { thread }
    }

    async fn ended(self) -> SlowlorisEnded {
        tokio::task::spawn_blocking(move || self.thread.join().unwrap())
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_closed_within_two_idle_timeouts() {
    let _alone = EXCLUSIVE.lock().await;
    for direct in PATHS {
        let server = start(direct, short_idle).await;
        // from the first byte, a byte every 50 ms; and a partial head at once, then a byte
        // every 100 ms
        let fast = Slowloris::start(
            server.addr,
            vec![0; 4],
            Duration::from_millis(50),
            4 * IDLE,
            None,
        );
        let slow = Slowloris::start(
            server.addr,
            vec![40; 4],
            Duration::from_millis(100),
            4 * IDLE,
            None,
        );
        for ended in [fast.ended().await, slow.ended().await] {
            eprintln!(
                "slowloris, {}: closed after {:?} (idle timeout {IDLE:?})",
                path_name(direct),
                ended.closed_after
            );
            assert_eq!(
                ended.still_open,
                0,
                "{}: held for 4 idle timeouts",
                path_name(direct)
            );
            for after in ended.closed_after {
                assert!(
                    after < 2 * IDLE,
                    "{}: closed after {after:?}",
                    path_name(direct)
                );
            }
        }
        server.stop().await;
    }
}

/// The idle timeout says "a connection that moves no byte either way for this many seconds is
/// closed, and so is one that starts no request [...] for as long" (`config/imeidb.toml`),
/// "after one to 1.25 periods", counted from the connection's start too (the reaper used to
/// count its first tick after a new connection as a whole quiet one: 0.75 to 1 period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_is_closed_before_the_idle_timeout() {
    let _alone = EXCLUSIVE.lock().await;
    for direct in PATHS {
        let server = start(direct, short_idle).await;
        // connections started 20 ms apart, so that some start just before a reaper tick
        let mut silent = Vec::new();
        let mut trickling = Vec::new();
        for _ in 0..8 {
            silent.push(Slowloris::start(
                server.addr,
                vec![0],
                Duration::from_secs(3600),
                4 * IDLE,
                None,
            ));
            trickling.push(Slowloris::start(
                server.addr,
                vec![0],
                Duration::from_millis(50),
                4 * IDLE,
                None,
            ));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut closed = Vec::new();
        for (what, clients) in [("silent", silent), ("trickling", trickling)] {
            for client in clients {
                let ended = client.ended().await;
                assert_eq!(ended.still_open, 0);
                closed.push((what, ended.closed_after[0]));
            }
        }
        eprintln!(
            "{}: closed after {closed:?} (idle timeout {IDLE:?})",
            path_name(direct)
        );
        for (what, after) in closed {
            // measured from the client's connect, which precedes the server's accept
            assert!(
                after >= IDLE,
                "{}: a {what} connection closed after {after:?}",
                path_name(direct)
            );
            assert!(
                after < IDLE * 5 / 4 + Duration::from_millis(100),
                "{}: {what}: {after:?}",
                path_name(direct)
            );
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_slowloris_clients_does_not_delay_other_clients() {
    const CROWD: usize = 200;
    let _alone = EXCLUSIVE.lock().await;
    for direct in PATHS {
        let server = start(direct, short_idle).await;
        let crowd = Slowloris::start(
            server.addr,
            (0..CROWD).map(|i| 20 + i % 30).collect(),
            Duration::from_millis(100),
            4 * IDLE,
            None,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        // a normal client meanwhile: checks for 1 s, every tenth on a new connection
        let mut client = Client::h1(server.addr).await;
        let mut slowest = Duration::ZERO;
        let mut answered = 0;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1) {
            let asked = Instant::now();
            let reply = if answered % 10 == 0 {
                Client::h1(server.addr).await.get(&check_path()).await
            } else {
                client.get(&check_path()).await
            };
            slowest = slowest.max(asked.elapsed());
            assert_eq!(reply.status, 200);
            answered += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ended = crowd.ended().await;
        let latest = ended.closed_after.iter().max().copied().unwrap_or_default();
        eprintln!(
            "slowloris crowd, {}: {CROWD} trickling connections; a normal client got {answered} \
             answers in 1 s, slowest {slowest:?}; the last trickler was closed after {latest:?}",
            path_name(direct)
        );
        assert!(
            slowest < Duration::from_millis(200),
            "slowest answer {slowest:?}"
        );
        assert!(answered >= 100, "{answered} answers in 1 s");
        assert_eq!(ended.still_open, 0);
        assert!(latest < 2 * IDLE, "a trickler was closed after {latest:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_every_connection_slot_delays_a_client_by_at_most_three_idle_timeouts() {
    const SLOTS: usize = 32;
    let _alone = EXCLUSIVE.lock().await;
    for direct in PATHS {
        let server = start(direct, |config| {
            short_idle(config);
            config.server.max_connections = SLOTS;
        })
        .await;
        // twice as many tricklers as slots, each reconnecting as soon as it is closed: the
        // client queues behind one wave of them in the kernel's backlog, so it waits for two
        // waves to be closed, each within 1.25 idle timeouts
        let stop = Arc::new(AtomicBool::new(false));
        let attack = Slowloris::start(
            server.addr,
            vec![30; 2 * SLOTS],
            Duration::from_millis(100),
            Duration::MAX,
            Some(Arc::clone(&stop)),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = Instant::now();
        let answers = talk_until(server.addr, get(&check_path(), "").as_bytes(), 1).await;
        let waited = asked.elapsed();
        stop.store(true, Ordering::Relaxed);
        let ended = attack.ended().await;
        eprintln!(
            "slowloris on every slot, {}: {SLOTS} slots, {} tricklers ({} closed meanwhile); \
             a client waited {waited:?}",
            path_name(direct),
            2 * SLOTS,
            ended.closed_after.len()
        );
        assert_eq!(answers.statuses(), [200]);
        assert!(waited < 3 * IDLE, "waited {waited:?}");
        server.stop().await;
    }
}

/// `server.max_connections`: "Connections served at once; further clients wait in the kernel's
/// accept queue." The queue the binary asks of the kernel holds 128 (the `listen(2)` backlog
/// of tokio's `TcpListener::bind`, although `net.core.somaxconn` allows 4,096 here); the SYN
/// of a client beyond it is dropped, and the client tries again a second later (then 3 s,
/// 7 s...). The real binary, as only it binds its own listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_queues_clients_in_the_kernel() {
    const WAITING: usize = 300;
    let _alone = EXCLUSIVE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(
        &dir.path().join("data"),
        &[("IMEIDB_SERVER_MAX_CONNECTIONS", "1")],
    );
    let addr = served.addr;
    // the one slot, taken
    let mut holder = TcpStream::connect(addr).await.unwrap();
    holder
        .write_all(get("/healthz", "").as_bytes())
        .await
        .unwrap();
    let mut answer = [0u8; 256];
    assert!(holder.read(&mut answer).await.unwrap() > 0);
    // clients queue behind it, each asking one check and closing
    let freed = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut waiting = JoinSet::new();
    for _ in 0..WAITING {
        let freed = Arc::clone(&freed);
        waiting.spawn(async move {
            let answers = talk_until(
                addr,
                get(&check_path(), "connection: close\r\n").as_bytes(),
                1,
            )
            .await;
            assert_eq!(answers.statuses(), [200]);
            freed
                .get()
                .expect("answered only once the slot was freed")
                .elapsed()
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    freed.set(Instant::now()).unwrap();
    drop(holder);
    let mut after: Vec<Duration> = waiting.join_all().await;
    after.sort();
    eprintln!(
        "{WAITING} clients waiting for the one slot: once it was freed, answered after {:?} \
         (median), {:?} (129th), {:?} (last)",
        after[WAITING / 2],
        after[128],
        after[WAITING - 1]
    );
    // the queue drains in milliseconds: 200 ms is plenty
    assert!(
        after[WAITING - 1] < Duration::from_millis(200),
        "the last waiting client was answered {:?} after the slot was freed",
        after[WAITING - 1]
    );
}

// ------------------------------------------------------------------------------------------
// 3. Oversize heads
// ------------------------------------------------------------------------------------------

/// `server.max_header_bytes` of the test config (the default).
const MAX_HEAD: usize = 16 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_heads_get_431_and_are_closed() {
    for direct in PATHS {
        let server = start(direct, |config| {
            assert_eq!(config.server.max_header_bytes, MAX_HEAD);
        })
        .await;
        let check = check_path();
        let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
        let cases = [
            (
                "one header larger than the limit",
                get(
                    &check,
                    &format!("x-pad: {}\r\n", "a".repeat(MAX_HEAD + 100)),
                ),
            ),
            (
                "a target larger than the limit",
                get(&format!("{check}?pad={}", "a".repeat(MAX_HEAD + 100)), ""),
            ),
            ("200 small headers (2 KB in all)", get(&check, &many)),
            (
                "a head that never ends",
                format!(
                    "GET {check} HTTP/1.1\r\nx-pad: {}",
                    "a".repeat(4 * MAX_HEAD)
                ),
            ),
        ];
        for (what, bytes) in cases {
            let started = Instant::now();
            let answers = talk(server.addr, bytes.as_bytes()).await;
            assert_eq!(answers.statuses(), [431], "{}: {what}", path_name(direct));
            assert_eq!(answers.responses[0].body, b"");
            assert!(answers.closed, "{}: {what}", path_name(direct));
            assert!(started.elapsed() < Duration::from_secs(2), "{what}");
        }
        // a head just within the limit is answered
        let within = get(
            &check,
            &format!("x-pad: {}\r\n", "a".repeat(MAX_HEAD - 200)),
        );
        let answers = talk(server.addr, within.as_bytes()).await;
        assert_eq!(answers.statuses(), [200], "{}", path_name(direct));
        server.stop().await;
    }
}

/// Writes `head` in `pieces` (50 ms apart), then the rest, and reads the answers.
async fn split_head(addr: SocketAddr, head: &[u8], pieces: &[usize]) -> Answers {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut at = 0;
    for piece in pieces {
        stream.write_all(&head[at..at + piece]).await.unwrap();
        at += piece;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stream.write_all(&head[at..]).await;
    read_answers(
        &mut stream,
        Duration::from_millis(400),
        Duration::from_secs(5),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_the_limit_gets_431_however_it_is_split() {
    for direct in PATHS {
        let server = start(direct, |_| {}).await;
        for size in [MAX_HEAD + 1_000, 20_000, 2 * MAX_HEAD - 100] {
            let pad = size - get(&check_path(), "x-pad: \r\n").len();
            let head = get(&check_path(), &format!("x-pad: {}\r\n", "a".repeat(pad)));
            assert_eq!(head.len(), size);
            for pieces in [&[][..], &[12_000], &[4_000, 5_000], &[8_192, 8_000]] {
                let answers = split_head(server.addr, head.as_bytes(), pieces).await;
                assert_eq!(
                    answers.statuses(),
                    [431],
                    "{}: a {size}-byte head (limit {MAX_HEAD}) in pieces {pieces:?} and the rest",
                    path_name(direct)
                );
            }
        }
        server.stop().await;
    }
}

// ------------------------------------------------------------------------------------------
// 4. Request smuggling
// ------------------------------------------------------------------------------------------

/// The request the smuggling attempts hide: a public lookup of an IMEI no other request names.
fn hidden() -> String {
    get(&format!("/v1/public/imeis/{}", imei(77)), "")
}

fn chunked(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n0\r\n\r\n", data.len())
}

/// A smuggling attempt: its bytes, the statuses that must come back, and whether the server
/// must close the connection after them.
struct Attempt {
    what: &'static str,
    bytes: String,
    statuses: Vec<u16>,
    closes: bool,
}

fn attempts() -> Vec<Attempt> {
    let hidden = hidden();
    let check = check_path();
    let batch = format!("{{\"imeis\":[\"{}\"]}}", imei(1));
    let post = |headers: &str, body: &str| {
        format!(
            "POST /v1/checks HTTP/1.1\r\nhost: imeidb\r\ncontent-type: application/json\r\n{headers}\r\n{body}"
        )
    };
    let body = chunked(&batch) + &hidden;
    let attempt = |what, bytes: String, statuses: &[u16], closes| Attempt {
        what,
        bytes,
        statuses: statuses.to_vec(),
        closes,
    };
    vec![
        attempt(
            "content-length and transfer-encoding: chunked (a length covering the hidden request)",
            post(
                &format!(
                    "content-length: {}\r\ntransfer-encoding: chunked\r\n",
                    body.len()
                ),
                &body,
            ),
            &[200],
            true,
        ),
        attempt(
            "transfer-encoding: chunked then content-length",
            post(
                &format!(
                    "transfer-encoding: chunked\r\ncontent-length: {}\r\n",
                    body.len()
                ),
                &body,
            ),
            &[200],
            true,
        ),
        attempt(
            "content-length and transfer-encoding on a check",
            get(
                &check,
                &format!(
                    "transfer-encoding: chunked\r\ncontent-length: {}\r\n",
                    5 + hidden.len()
                ),
            ) + "0\r\n\r\n"
                + &hidden,
            &[200],
            true,
        ),
        attempt(
            "two content-lengths that differ",
            post(
                &format!(
                    "content-length: {}\r\ncontent-length: {}\r\n",
                    batch.len(),
                    batch.len() + hidden.len()
                ),
                &(batch.clone() + &hidden),
            ),
            &[400],
            true,
        ),
        attempt(
            "two content-lengths that differ, on a check",
            get(
                &check,
                &format!("content-length: 0\r\ncontent-length: {}\r\n", hidden.len()),
            ) + &hidden,
            &[400],
            true,
        ),
        attempt(
            "a content-length list",
            post(
                &format!(
                    "content-length: {}, {}\r\n",
                    batch.len(),
                    batch.len() + hidden.len()
                ),
                &(batch.clone() + &hidden),
            ),
            &[400],
            true,
        ),
        attempt(
            "a signed content-length",
            post(
                &format!("content-length: +{}\r\n", batch.len()),
                &(batch.clone() + &hidden),
            ),
            &[400],
            true,
        ),
        attempt(
            "obs-fold (a header line starting with a space) on a check",
            get(&check, "x-folded: a\r\n b\r\n") + &hidden,
            &[400],
            true,
        ),
        attempt(
            "obs-fold (a tab) continuing content-length",
            post(
                &format!("content-length: 0\r\n\t{}\r\n", hidden.len()),
                &hidden,
            ),
            &[400],
            true,
        ),
        attempt(
            "a space before the colon",
            post(&format!("content-length : {}\r\n", hidden.len()), &hidden),
            &[400],
            true,
        ),
        attempt(
            "a bare CR inside the head",
            get(
                &check,
                &format!("x-a: b\rcontent-length: {}\r\n", hidden.len()),
            ) + &hidden,
            &[400],
            true,
        ),
        attempt(
            "transfer-encoding that is not chunked",
            post("transfer-encoding: xchunked\r\n", &chunked(&hidden)),
            &[400],
            true,
        ),
        attempt(
            "chunked, then another transfer-encoding",
            post(
                "transfer-encoding: chunked\r\ntransfer-encoding: identity\r\n",
                &chunked(&hidden),
            ),
            &[400],
            true,
        ),
        attempt(
            "transfer-encoding on HTTP/1.0",
            format!(
                "POST /v1/checks HTTP/1.0\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{}",
                chunked(&hidden)
            ),
            &[400],
            true,
        ),
        attempt(
            "a chunked body whose data is a request (read as a body; the connection goes on)",
            post("transfer-encoding: chunked\r\n", &chunked(&hidden)) + &get("/healthz", ""),
            &[400, 200],
            false,
        ),
        attempt(
            "a chunk shorter than its size line says",
            post(
                "transfer-encoding: chunked\r\n",
                &format!("3\r\nabc{hidden}0\r\n\r\n"),
            ),
            &[400],
            true,
        ),
        attempt(
            "a chunk size that overflows",
            post(
                "transfer-encoding: chunked\r\n",
                &format!("fffffffffffffffff1\r\n{hidden}"),
            ),
            &[400],
            true,
        ),
        attempt(
            "a request after connection: close",
            get(&check, "connection: close\r\n") + &hidden,
            &[200],
            true,
        ),
        attempt(
            "a request after an HTTP/1.0 request",
            format!("GET {check} HTTP/1.0\r\n\r\n") + &hidden,
            &[200],
            true,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_requests_are_refused_and_never_answered() {
    for direct in PATHS {
        // one public lookup a minute: a hidden lookup answered anywhere would use it up
        let server = start(direct, |config| config.public_per_minute = 1).await;
        let mut set = JoinSet::new();
        for attempt in attempts() {
            // alone, and behind a check the direct path answers (a hand-over mid-buffer)
            for behind_a_check in [false, true] {
                let addr = server.addr;
                let (what, mut bytes, mut statuses, closes) = (
                    attempt.what,
                    attempt.bytes.clone(),
                    attempt.statuses.clone(),
                    attempt.closes,
                );
                if behind_a_check {
                    bytes = get(&check_path(), "") + &bytes;
                    statuses.insert(0, 200);
                }
                set.spawn(async move {
                    let answers = talk(addr, bytes.as_bytes()).await;
                    (what, behind_a_check, statuses, closes, answers)
                });
            }
        }
        let hidden_imei = imei(77).to_string();
        let mut wrong = Vec::new();
        for (what, behind_a_check, statuses, closes, answers) in set.join_all().await {
            for wire in &answers.responses {
                assert!(
                    !wire.text().contains(&hidden_imei),
                    "{}: {what}: the hidden request was answered",
                    path_name(direct)
                );
            }
            if answers.statuses() != statuses || answers.closed != closes {
                wrong.push(format!(
                    "{what}{}: {:?}, closed {} (expected {statuses:?}, closed {closes})",
                    if behind_a_check {
                        " (behind a check)"
                    } else {
                        ""
                    },
                    answers.statuses(),
                    answers.closed
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{}:\n{}",
            path_name(direct),
            wrong.join("\n")
        );
        // the public budget is untouched: no hidden lookup was ever admitted
        let once = talk(server.addr, hidden().as_bytes()).await;
        assert_eq!(once.statuses(), [200], "{}", path_name(direct));
        assert!(once.responses[0].text().contains(&hidden_imei));
        assert_eq!(
            talk(server.addr, hidden().as_bytes()).await.statuses(),
            [429]
        );
        server.stop().await;
    }
}

// ------------------------------------------------------------------------------------------
// 5. Token brute force
// ------------------------------------------------------------------------------------------

fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    getrandom::getrandom(&mut random).unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessed_tokens_are_all_refused_alike_and_counted() {
    const PER_KIND: usize = 200;
    let mut every_refusal: Option<Wire> = None;
    for direct in PATHS {
        let server = start(direct, |config| config.open_checks = false).await;
        let real = server
            .accounts
            .bootstrap(crate::authz::regulator_form())
            .unwrap()
            .token;
        let real_id = &real[7..23];
        // the real token works (the regulator administrator may not check: 403)
        let mut client = Client::h1(server.addr).await;
        let me = client
            .request_as(Some(&real), Method::GET, "/v1/me", Bytes::new(), None)
            .await;
        assert_eq!(me.status, 200);
        let check = client
            .request_as(Some(&real), Method::GET, &check_path(), Bytes::new(), None)
            .await;
        assert_eq!(check.status, 403);
        let before = refused(server.addr, "unauthenticated").await;

        let guesses: Vec<(&str, String)> = (0..PER_KIND)
            .flat_map(|_| {
                [
                    (
                        "an unknown id",
                        format!("imeidb_{}_{}", random_hex(8), random_hex(32)),
                    ),
                    (
                        "the real id, a wrong secret",
                        format!("imeidb_{real_id}_{}", random_hex(32)),
                    ),
                ]
            })
            .chain([
                (
                    "the real id, the real secret in capitals",
                    format!("imeidb_{real_id}_{}", real[24..].to_ascii_uppercase()),
                ),
                (
                    "the real token, one character short",
                    real[..real.len() - 1].to_owned(),
                ),
                ("the real token with a character more", format!("{real}0")),
                ("garbage", "x".repeat(88)),
            ])
            .collect();
        let mut requests = Vec::new();
        for (n, (what, token)) in guesses.iter().enumerate() {
            // the check on the direct path where it is on; /v1/me is always hyper's
            let target = if n % 2 == 0 {
                check_path()
            } else {
                "/v1/me".to_owned()
            };
            requests.push((
                *what,
                get(&target, &format!("authorization: Bearer {token}\r\n")),
            ));
        }
        // pipelined, 50 to a connection
        let mut set = JoinSet::new();
        for (c, chunk) in requests.chunks(50).enumerate() {
            let bytes: String = chunk.iter().map(|(_, r)| r.as_str()).collect();
            let count = chunk.len();
            let addr = server.addr;
            set.spawn(async move {
                let answers = talk(addr, bytes.as_bytes()).await;
                assert_eq!(answers.responses.len(), count);
                (c, answers.responses)
            });
        }
        let mut answers: Vec<(usize, Vec<Wire>)> = set.join_all().await;
        answers.sort_by_key(|(c, _)| *c);
        let answers: Vec<Wire> = answers.into_iter().flat_map(|(_, w)| w).collect();
        assert_eq!(answers.len(), requests.len());
        let first = every_refusal
            .get_or_insert_with(|| answers[0].clone())
            .clone();
        assert_eq!(first.status, 401);
        assert_eq!(
            first.header("www-authenticate"),
            Some("Bearer realm=\"imeidb\"")
        );
        for ((what, request), answer) in requests.iter().zip(&answers) {
            assert_eq!(answer, &first, "{}: {what}: {request}", path_name(direct));
        }
        let after = refused(server.addr, "unauthenticated").await;
        eprintln!(
            "token guessing, {}: {} guesses, refused{{unauthenticated}} {before} -> {after}; \
             every answer {} {:?} {}",
            path_name(direct),
            requests.len(),
            first.status,
            first.headers,
            first.text()
        );
        assert_eq!(after - before, requests.len() as u64);
        server.stop().await;
    }
}

// ------------------------------------------------------------------------------------------
// 6. The public rate limit
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_the_public_limit_gets_429_with_retry_after_and_is_counted() {
    const LIMIT: u32 = 5;
    for direct in PATHS {
        let server = start(direct, |config| config.public_per_minute = LIMIT).await;
        let before = refused(server.addr, "rate_limited").await;
        let lookup = get(&format!("/v1/public/imeis/{}", imei(1)), "");
        // pipelined: lookups (the direct path's), a sellers search (hyper's: the connection is
        // handed over), and lookups again
        let mut requests: Vec<String> = vec![lookup.clone(); 8];
        requests.push(get("/v1/public/sellers?q=acme", ""));
        requests.extend(vec![lookup.clone(); 3]);
        let answers = talk(server.addr, requests.concat().as_bytes()).await;
        assert!(!answers.closed);
        let statuses = answers.statuses();
        let mut expected = vec![200; LIMIT as usize];
        expected.resize(requests.len(), 429);
        assert_eq!(statuses, expected, "{}", path_name(direct));
        for wire in &answers.responses[LIMIT as usize..] {
            let seconds: u64 = wire
                .header("retry-after")
                .expect("retry-after")
                .parse()
                .unwrap();
            assert!((1..=60).contains(&seconds), "retry-after {seconds}");
            assert_eq!(
                wire.header("content-type"),
                Some("application/problem+json")
            );
            assert!(wire.text().contains("TOO_MANY_REQUESTS"), "{}", wire.text());
        }
        // a new connection is the same client
        let again = talk(server.addr, lookup.as_bytes()).await;
        assert_eq!(again.statuses(), [429]);
        let limited = (requests.len() - LIMIT as usize + 1) as u64;
        let after = refused(server.addr, "rate_limited").await;
        assert_eq!(after - before, limited, "{}", path_name(direct));
        // the checks are not limited
        let checks = talk(server.addr, get(&check_path(), "").repeat(20).as_bytes()).await;
        assert_eq!(checks.statuses(), [200; 20]);
        server.stop().await;
    }
}

// ------------------------------------------------------------------------------------------
// 7. A flood of forbidden writes
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forbidden_writes_does_not_stop_checks() {
    const WRITERS: usize = 8;
    const FLOOD: Duration = Duration::from_secs(2);
    let _alone = EXCLUSIVE.lock().await;
    for direct in PATHS {
        let server = start(direct, |config| config.store.sync_writes = true).await;
        // the regulator administrator may not report: every report is refused and audited,
        // each refusal an fsync'd write
        let regulator = server
            .accounts
            .bootstrap(crate::authz::regulator_form())
            .unwrap()
            .token;
        let stop = Arc::new(AtomicBool::new(false));
        let refused_writes = Arc::new(AtomicU64::new(0));
        let throttled_writes = Arc::new(AtomicU64::new(0));
        let mut writers = JoinSet::new();
        for w in 0..WRITERS {
            let (addr, stop, refused_writes, throttled_writes, token) = (
                server.addr,
                Arc::clone(&stop),
                Arc::clone(&refused_writes),
                Arc::clone(&throttled_writes),
                regulator.clone(),
            );
            writers.spawn(async move {
                let mut client = Client::h1(addr).await;
                let mut n = 1_000 * w as u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let reply = client
                        .request_as(
                            Some(&token),
                            Method::POST,
                            "/v1/reports",
                            crate::registry::report(n).to_string().into(),
                            Some("application/json"),
                        )
                        .await;
                    // refused and audited, then, past auth.refusals_per_minute, refused
                    // unread after a pause
                    match reply.status.as_u16() {
                        403 => refused_writes.fetch_add(1, Ordering::Relaxed),
                        429 => {
                            assert_eq!(
                                reply.json()["cause"],
                                "TOO_MANY_REFUSALS",
                                "{}",
                                String::from_utf8_lossy(&reply.body)
                            );
                            throttled_writes.fetch_add(1, Ordering::Relaxed)
                        }
                        other => panic!("{other}: {}", String::from_utf8_lossy(&reply.body)),
                    };
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut checker = Client::h1(server.addr).await;
        let mut slowest = Duration::ZERO;
        let mut checks = 0u64;
        let started = Instant::now();
        while started.elapsed() < FLOOD {
            let asked = Instant::now();
            let reply = checker.get(&check_path()).await;
            slowest = slowest.max(asked.elapsed());
            assert_eq!(reply.status, 200);
            checks += 1;
        }
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        writers.join_all().await;
        let writes = refused_writes.load(Ordering::Relaxed);
        let throttled = throttled_writes.load(Ordering::Relaxed);
        let per_second = checks as f64 / took.as_secs_f64();
        eprintln!(
            "forbidden writes, {}: {writes} reports refused and {throttled} throttled, by \
             {WRITERS} writers in {took:?}; meanwhile {checks} checks ({per_second:.0}/s), \
             slowest {slowest:?}",
            path_name(direct)
        );
        // the default budget: 60 refusals a minute (two if the flood spans a minute's end),
        // then one request per second per connection, refused unread
        assert!((60..=120).contains(&writes), "{writes} refused writes");
        assert!(
            throttled <= WRITERS as u64 * (FLOOD.as_secs() + 1),
            "{throttled} throttled writes"
        );
        // one client checking in a loop beside them: unthrottled refused writes (on the async
        // workers or off them) held it below this rate on the 2-core machine of issue #18
        assert!(per_second >= 2_500.0, "{per_second:.0} checks/s");
        assert!(
            slowest < Duration::from_millis(200),
            "slowest check {slowest:?}"
        );
        // each refusal is in the audit trail, and the throttling once
        let entries = |action| {
            let filter = Filter {
                action: Some(action),
                ..Filter::default()
            };
            audit::query(server.registry.store(), &filter, 0, 10_000)
                .unwrap()
                .0
        };
        let denied = entries(Action::ReportCreate)
            .iter()
            .filter(|e| e.outcome == Outcome::Denied)
            .count() as u64;
        assert_eq!(denied, writes, "{}", path_name(direct));
        let throttles = entries(Action::AccessThrottle);
        assert!(
            (1..=2).contains(&throttles.len()),
            "{}: {throttles:?}",
            path_name(direct)
        );
        // and it is counted
        assert_eq!(refused(server.addr, "throttled").await, throttled);
        server.stop().await;
    }
}

// ------------------------------------------------------------------------------------------
// 8. Bodies that stop coming, and refusals of every kind
// ------------------------------------------------------------------------------------------

/// Connections that each send most of a request body and then stop: with checks open (a
/// trusted core-network listener), any client can. The bodies held are bounded (past 256
/// largest bodies, the next is refused 503 NF_CONGESTION rather than read), checks are
/// answered meanwhile, and the connections are closed after two idle timeouts without a byte,
/// although each has a request in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_stop_coming_are_bounded_and_closed() {
    const STALLED: usize = 300;
    let _alone = EXCLUSIVE.lock().await;
    for direct in PATHS {
        let server = start(direct, short_idle).await;
        let max_body = 64 * 1024; // test_config's server.max_body_bytes
        let sent = 60_000;
        let head = format!(
            "POST /v1/checks HTTP/1.1\r\nhost: imeidb\r\ncontent-type: application/json\r\ncontent-length: {max_body}\r\n\r\n"
        );
        let mut request = head.into_bytes();
        request.extend(std::iter::repeat_n(b' ', sent));
        let started = Instant::now();
        let mut stalled = Vec::new();
        for _ in 0..STALLED {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            stream.write_all(&request).await.unwrap();
            stalled.push(stream);
        }
        // checks are answered meanwhile
        let checks = talk(server.addr, get(&check_path(), "").repeat(5).as_bytes()).await;
        assert_eq!(checks.statuses(), [200; 5], "{}", path_name(direct));
        // every stalled connection ends: refused at once past the budget, closed after two
        // idle timeouts without a byte otherwise
        let mut busy = 0;
        let mut slowest = Duration::ZERO;
        for mut stream in stalled {
            let answers =
                read_answers(&mut stream, Duration::from_secs(5), Duration::from_secs(10)).await;
            assert!(
                answers.closed,
                "{}: a stalled body kept its connection",
                path_name(direct)
            );
            match answers.statuses().as_slice() {
                [] => {}
                [503] => {
                    assert_eq!(answers.responses[0].header("retry-after"), Some("1"));
                    assert!(answers.responses[0].text().contains("NF_CONGESTION"));
                    busy += 1;
                }
                other => panic!("{}: {other:?}", path_name(direct)),
            }
            slowest = slowest.max(started.elapsed());
        }
        eprintln!(
            "stalled bodies, {}: {STALLED} connections of {sent} of {max_body} body bytes: {busy} \
             refused 503, the last closed after {slowest:?} (idle timeout {IDLE:?})",
            path_name(direct)
        );
        let budget = 256 * max_body;
        assert!(
            busy >= STALLED - budget / sent,
            "{}: only {busy} refused",
            path_name(direct)
        );
        assert!(
            slowest < 3 * IDLE + Duration::from_secs(1),
            "{}: {slowest:?}",
            path_name(direct)
        );
        // and the budget is back: a whole body is read again
        let mut client = Client::h1(server.addr).await;
        let reply = client
            .post_json(
                "/v1/checks",
                format!("{{\"imeis\":[\"{}\"]}}", imei(1)).into_bytes(),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", path_name(direct));
        server.stop().await;
    }
}

/// Refusals that are not for lack of right spend a user's budget too: a user that holds its
/// 16 tokens and asks for more, in a loop, gets 409s (each an fsync'd audit entry), then is
/// throttled.
#[tokio::test]
async fn a_loop_of_conflicts_is_throttled_like_a_loop_of_forbidden_requests() {
    let server = start(true, |config| {
        config.open_checks = false;
        config.refusals_per_minute = 5;
    })
    .await;
    let made = server
        .accounts
        .bootstrap(crate::authz::regulator_form())
        .unwrap();
    let (chief, token) = (made.admin, made.token);
    let mut client = Client::h1(server.addr).await;
    let path = format!("/v1/users/{}/tokens", chief.id);
    let mut statuses = Vec::new();
    for _ in 0..15 + 5 + 1 {
        let reply = client
            .request_as(
                Some(&token),
                Method::POST,
                &path,
                Bytes::from_static(br#"{"name":"spare"}"#),
                Some("application/json"),
            )
            .await;
        statuses.push(reply.status.as_u16());
        if reply.status == 429 {
            assert_eq!(reply.json()["cause"], "TOO_MANY_REFUSALS");
        }
    }
    let mut want = vec![201; 15];
    want.extend([409; 5]);
    want.push(429);
    assert_eq!(statuses, want);
    // the network checks are not throttled
    let reply = client
        .request_as(Some(&token), Method::GET, "/metrics", Bytes::new(), None)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(refused(server.addr, "throttled").await, 1);
    let throttles = audit::query(
        server.registry.store(),
        &Filter {
            action: Some(Action::AccessThrottle),
            ..Filter::default()
        },
        0,
        10,
    )
    .unwrap()
    .0;
    assert_eq!(throttles.len(), 1);
    server.stop().await;
}
