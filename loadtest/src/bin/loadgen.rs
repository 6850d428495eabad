//! The load generator of `loadtest/run`: the same queries, clients and schedule against
//! imeidb, the hyper hello-world server, Redis and PostgreSQL.
//!
//! Usage: `loadgen TARGET ADDR QUERIES_FILE [options]`, where `QUERIES_FILE` holds one IMEI
//! per line (a malformed line is sent as it is to HTTP targets and skipped for Redis and
//! PostgreSQL, which would not be asked such a thing), and TARGET is one of
//!
//! | target     | request                                                   | one item is |
//! |------------|-----------------------------------------------------------|-------------|
//! | `native`   | HTTP/1.1 `GET /v1/imeis/{imei}/status`                    | a request   |
//! | `eir-h2`   | h2c `GET /n5g-eir-eic/v1/equipment-status?pei=imei-{imei}`| a request   |
//! | `eir-h1`   | the same over HTTP/1.1                                    | a request   |
//! | `page`     | HTTP/1.1 `GET /?imei={imei}`: the public web page's answer | a request   |
//! | `batch`    | HTTP/1.1 `POST /v1/checks` of `--batch` IMEIs             | an IMEI     |
//! | `report`   | HTTP/1.1 `POST /v1/reports` of one theft report           | a request   |
//! | `s13`      | Diameter S13 ECR, `--pipeline` per round trip             | a request   |
//! | `redis`    | `SISMEMBER imeis {imei}`, `--pipeline` per round trip     | a command   |
//! | `postgres` | prepared `SELECT 1 FROM imeis WHERE imei = $1`            | a query     |
//!
//! Options: `--conns N` (32), `--streams M` h2 streams per connection (4), `--duration S`
//! (10), `--warmup S` (1, not measured), `--rate R` open loop at R requests per second
//! (default: closed loop, each worker sends when its last answer came), `--pipeline P` (1),
//! `--batch N` (10000), `--token T` (`Authorization: Bearer T`).
//!
//! Prints one JSON object: requests and items per second, latency percentiles in
//! microseconds (HdrHistogram, 3 significant digits), answers by HTTP status, errors. In the
//! open loop each request's latency runs from the time the schedule meant to send it, so a
//! stall of the server delays the following requests and shows in the percentiles instead of
//! slowing the client down (no coordinated omission).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use imeidb::imei::Imei;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use imeidb_loadtest::http1;
use imeidb_loadtest::stats::{Schedule, Summary, Tally};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Native,
    Page,
    EirH2,
    EirH1,
    Batch,
    Report,
    S13,
    Redis,
    Postgres,
}

#[derive(Clone)]
struct Options {
    target: Target,
    addr: String,
    conns: usize,
    streams: usize,
    duration: f64,
    warmup: f64,
    rate: Option<f64>,
    pipeline: usize,
    batch: usize,
    token: Option<String>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn usage(problem: &str) -> ! {
    eprintln!("loadgen: {problem}");
    eprintln!(
        "usage: loadgen native|page|eir-h2|eir-h1|batch|report|redis|postgres ADDR QUERIES_FILE \
         [--conns N] [--streams M] [--duration S] [--warmup S] [--rate R] [--pipeline P] \
         [--batch N] [--token T]"
    );
    std::process::exit(2)
}

fn parse_args() -> (Options, String) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        usage("TARGET, ADDR and QUERIES_FILE are required");
    }
    let target = match args[0].as_str() {
        "native" => Target::Native,
        "page" => Target::Page,
        "eir-h2" => Target::EirH2,
        "eir-h1" => Target::EirH1,
        "batch" => Target::Batch,
        "report" => Target::Report,
        "s13" => Target::S13,
        "redis" => Target::Redis,
        "postgres" => Target::Postgres,
        other => usage(&format!("unknown target {other:?}")),
    };
    let mut options = Options {
        target,
        addr: args[1].clone(),
        conns: 32,
        streams: 4,
        duration: 10.0,
        warmup: 1.0,
        rate: None,
        pipeline: 1,
        batch: 10_000,
        token: None,
    };
    let mut rest = args[3..].iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = || -> f64 {
            value
                .parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: {value:?} is not a number")))
        };
        match flag.as_str() {
            "--conns" => options.conns = number().max(1.0) as usize,
            "--streams" => options.streams = number().max(1.0) as usize,
            "--duration" => options.duration = number(),
            "--warmup" => options.warmup = number(),
            "--rate" => options.rate = Some(number()),
            "--pipeline" => options.pipeline = number().max(1.0) as usize,
            "--batch" => options.batch = number().max(1.0) as usize,
            "--token" => options.token = Some(value.clone()),
            other => usage(&format!("unknown option {other}")),
        }
    }
    (options, args[2].clone())
}

fn main() -> Result<(), Error> {
    let (options, file) = parse_args();
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
    let mut queries: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if matches!(options.target, Target::Redis | Target::Postgres) {
        queries.retain(|q| Imei::parse(q).is_ok());
    }
    if queries.is_empty() {
        return Err(format!("{file}: no queries").into());
    }
    // one thread: the client is pinned to one core, and a single-threaded runtime spends it
    // on requests rather than on work stealing
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tally, seconds) = runtime.block_on(run(options.clone(), queries))?;
    let summary = Summary::new(&tally, seconds);
    println!("{}", summary.to_json());
    Ok(())
}

/// The measured window, shared by every worker.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

async fn run(options: Options, queries: Vec<String>) -> Result<(Tally, f64), Error> {
    let workers = match options.target {
        Target::EirH2 => options.conns * options.streams,
        _ => options.conns,
    };
    let requests = std::sync::Arc::new(build_requests(&options, &queries));
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs_f64(options.warmup);
    let window = Window {
        start,
        measure_from,
        end: measure_from + Duration::from_secs_f64(options.duration),
    };
    let mut handles = Vec::new();
    let mut h2_sender = None;
    for w in 0..workers {
        let schedule = options
            .rate
            .map(|rate| Schedule::new(start, rate, workers, w));
        let first = w * requests.len() / workers;
        let options = options.clone();
        let requests = std::sync::Arc::clone(&requests);
        let connection = match options.target {
            Target::Native | Target::Page | Target::EirH1 | Target::Batch | Target::Report => {
                Connection::H1(
                    http1::Connection::open(&options.addr)
                        .await
                        .map_err(|e| format!("connecting to {}: {e}", options.addr))?,
                )
            }
            Target::EirH2 => {
                if w % options.streams == 0 {
                    h2_sender = Some(http2(&options.addr).await?);
                }
                Connection::H2(h2_sender.clone().expect("made for the first stream"))
            }
            Target::S13 => {
                Connection::S13(imeidb_loadtest::s13::Connection::open(&options.addr).await?)
            }
            Target::Redis => Connection::Redis(BufReader::new(connect(&options.addr).await?)),
            Target::Postgres => Connection::Postgres(postgres(&options.addr).await?),
        };
        handles.push(tokio::spawn(async move {
            match (connection, schedule) {
                (Connection::S13(connection), Some(schedule)) => {
                    s13_open_loop(connection, &requests, first, schedule, window).await
                }
                (connection, schedule) => {
                    worker(connection, &options, &requests, first, schedule, window).await
                }
            }
        }));
    }
    let mut tally = Tally::new();
    for handle in handles {
        tally.merge(&handle.await??);
    }
    Ok((tally, options.duration))
}

/// What the workers send, prepared before the clock starts.
enum Prepared {
    /// Whole HTTP/1.1 requests, or RESP-encoded Redis commands.
    Raw(Vec<Vec<u8>>),
    /// h2 request URIs.
    Uris(Vec<Bytes>),
    /// Numbers to look up.
    Keys(Vec<i64>),
}

impl Prepared {
    fn len(&self) -> usize {
        match self {
            Prepared::Raw(v) => v.len(),
            Prepared::Uris(v) => v.len(),
            Prepared::Keys(v) => v.len(),
        }
    }
}

fn build_requests(options: &Options, queries: &[String]) -> Prepared {
    let token = options.token.as_deref();
    let eir = |q: &String| format!("/n5g-eir-eic/v1/equipment-status?pei=imei-{q}");
    match options.target {
        Target::Native => Prepared::Raw(
            queries
                .iter()
                .map(|q| http1::get(&format!("/v1/imeis/{q}/status"), token))
                .collect(),
        ),
        Target::Page => Prepared::Raw(
            queries
                .iter()
                .map(|q| http1::get(&format!("/?imei={q}"), token))
                .collect(),
        ),
        Target::EirH1 => {
            Prepared::Raw(queries.iter().map(|q| http1::get(&eir(q), token)).collect())
        }
        // h2 sends the scheme and authority as pseudo-headers: an absolute URI
        Target::EirH2 => Prepared::Uris(
            queries
                .iter()
                .map(|q| Bytes::from(format!("http://{}{}", options.addr, eir(q))))
                .collect(),
        ),
        Target::Batch => {
            let bodies = (queries.len() / options.batch).clamp(1, 64);
            Prepared::Raw(
                (0..bodies)
                    .map(|b| {
                        let mut body = String::from("{\"imeis\":[");
                        for i in 0..options.batch {
                            if i > 0 {
                                body.push(',');
                            }
                            let q = &queries[(b * options.batch + i) % queries.len()];
                            let _ = write!(body, "\"{q}\"");
                        }
                        body.push_str("]}");
                        http1::post_json("/v1/checks", body.as_bytes(), token)
                    })
                    .collect(),
            )
        }
        // a report as an operator files it; sent with a token that may not report (loadtest/run's
        // forbidden-writes phase), each one is an fsync'd, audited refusal
        Target::Report => Prepared::Raw(
            queries
                .iter()
                .map(|q| {
                    let body = format!(
                        "{{\"imei\":\"{q}\",\"kind\":\"stolen\",\"reported_by\":\"user\",\
                         \"subscriber_id\":\"79555123\",\"reference\":\"LOAD-1\",\
                         \"occurred_at\":\"2026-11-20T18:30:00Z\"}}"
                    );
                    http1::post_json("/v1/reports", body.as_bytes(), token)
                })
                .collect(),
        ),
        Target::S13 => Prepared::Raw(
            queries
                .iter()
                .enumerate()
                .map(|(n, q)| imeidb_loadtest::s13::ecr(q, n as u32))
                .collect(),
        ),
        Target::Redis => Prepared::Raw(
            queries
                .iter()
                .map(|q| {
                    format!(
                        "*3\r\n$9\r\nSISMEMBER\r\n$5\r\nimeis\r\n${}\r\n{q}\r\n",
                        q.len()
                    )
                    .into_bytes()
                })
                .collect(),
        ),
        Target::Postgres => Prepared::Keys(
            queries
                .iter()
                .filter_map(|q| q.parse::<i64>().ok())
                .collect(),
        ),
    }
}

enum Connection {
    H1(http1::Connection),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
    S13(imeidb_loadtest::s13::Connection),
    Redis(BufReader<TcpStream>),
    Postgres((tokio_postgres::Client, tokio_postgres::Statement)),
}

async fn connect(addr: &str) -> Result<TcpStream, Error> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn http2(addr: &str) -> Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>, Error> {
    let (sender, connection) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(connect(addr).await?),
    )
    .await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn postgres(
    addr: &str,
) -> Result<(tokio_postgres::Client, tokio_postgres::Statement), Error> {
    let (host, port) = addr.rsplit_once(':').ok_or("ADDR is HOST:PORT")?;
    let config = format!("host={host} port={port} user=postgres dbname=postgres");
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let statement = client
        .prepare("SELECT 1 FROM imeis WHERE imei = $1")
        .await?;
    Ok((client, statement))
}

async fn worker(
    mut connection: Connection,
    options: &Options,
    requests: &Prepared,
    first: usize,
    mut schedule: Option<Schedule>,
    window: Window,
) -> Result<Tally, Error> {
    let mut tally = Tally::new();
    let mut statuses = Vec::new();
    let mut next = first;
    let len = requests.len();
    tokio::time::sleep_until(window.start.into()).await;
    loop {
        let intended = match &mut schedule {
            Some(schedule) => {
                let at = schedule.next_send();
                wait_until(at).await;
                at
            }
            None => Instant::now(),
        };
        if intended >= window.end {
            break;
        }
        let (status, items) = match &mut connection {
            Connection::H1(connection) => {
                let Prepared::Raw(raw) = requests else {
                    unreachable!("HTTP/1.1 requests are prepared whole")
                };
                let status = connection.exchange(&raw[next % len]).await?;
                let items = if options.target == Target::Batch {
                    options.batch as u64
                } else {
                    1
                };
                (status, items)
            }
            Connection::H2(sender) => {
                let Prepared::Uris(uris) = requests else {
                    unreachable!("h2 requests are prepared as URIs")
                };
                let mut request = Request::builder()
                    .method(Method::GET)
                    .uri(hyper::Uri::from_maybe_shared(uris[next % len].clone())?);
                if let Some(token) = &options.token {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                let request = request.body(Full::new(Bytes::new()))?;
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status().as_u16();
                response.into_body().collect().await?;
                (status, 1)
            }
            Connection::S13(connection) => {
                let Prepared::Raw(ecrs) = requests else {
                    unreachable!("ECRs are prepared whole")
                };
                let mut out = Vec::with_capacity(options.pipeline * 256);
                for i in 0..options.pipeline {
                    out.extend_from_slice(&ecrs[(next + i) % len]);
                }
                statuses.clear();
                connection
                    .exchange(&out, options.pipeline, &mut statuses)
                    .await?;
                // a round of answers counts as one request, as a Redis pipeline does: 200 when
                // every ECR got a decision (an Equipment-Status or 5422 unknown), else the worst
                let status = statuses
                    .iter()
                    .copied()
                    .filter(|s| !matches!(s, 200 | 404))
                    .max()
                    .unwrap_or(200);
                next += options.pipeline - 1;
                (status, options.pipeline as u64)
            }
            Connection::Redis(stream) => {
                let Prepared::Raw(commands) = requests else {
                    unreachable!("redis commands are prepared for redis")
                };
                let mut out = Vec::with_capacity(options.pipeline * 64);
                for i in 0..options.pipeline {
                    out.extend_from_slice(&commands[(next + i) % len]);
                }
                stream.get_mut().write_all(&out).await?;
                let mut line = String::new();
                let mut status = 200;
                for _ in 0..options.pipeline {
                    line.clear();
                    if stream.read_line(&mut line).await? == 0 {
                        return Err("redis closed the connection".into());
                    }
                    if !line.starts_with(':') {
                        status = 500;
                    }
                }
                next += options.pipeline - 1;
                (status, options.pipeline as u64)
            }
            Connection::Postgres((client, statement)) => {
                let Prepared::Keys(keys) = requests else {
                    unreachable!("keys are prepared for postgres")
                };
                let status = match client.query_opt(&*statement, &[&keys[next % len]]).await {
                    Ok(Some(_)) => 200,
                    Ok(None) => 404,
                    Err(_) => 500,
                };
                (status, 1)
            }
        };
        let done = Instant::now();
        next = (next + 1) % len;
        if done >= window.measure_from && done < window.end {
            tally.record(status, items, done - intended);
        }
        if done >= window.end {
            break;
        }
    }
    Ok(tally)
}

/// The open loop of the `s13` target: a Diameter peer does not wait for one answer before it
/// sends the next request, so each connection writes, on the schedule alone, every request
/// that is due in one write, and reads answers (in order, as the server sends them) apart
/// from its writes, so a slow answer never holds a request back. Each answer's latency runs
/// from the time its request was due; how late the generator wrote it, and the time from
/// that write to the answer, are recorded beside (`Tally::record_written`), so a stall of
/// the generator's own core is told apart from the server's time.
async fn s13_open_loop(
    connection: imeidb_loadtest::s13::Connection,
    requests: &Prepared,
    first: usize,
    mut schedule: Schedule,
    window: Window,
) -> Result<Tally, Error> {
    let Prepared::Raw(ecrs) = requests else {
        unreachable!("ECRs are prepared whole")
    };
    let (mut writer, mut reader) = connection.split();
    // (due, written) of every request written and not yet answered, oldest first; shared by
    // the two halves below, which run in this one task and never hold it across an await
    let pending = std::sync::Mutex::new(std::collections::VecDeque::<(Instant, Instant)>::new());
    let wrote = tokio::sync::Notify::new();
    let writing_done = std::sync::atomic::AtomicBool::new(false);
    let write = async {
        let mut next = first;
        let mut due = schedule.next_send();
        let mut out = Vec::new();
        while due < window.end {
            wait_until(due).await;
            let written = Instant::now();
            {
                let mut pending = pending.lock().expect("never poisoned: no panic holds it");
                while due <= written && due < window.end {
                    out.extend_from_slice(&ecrs[next % ecrs.len()]);
                    next += 1;
                    pending.push_back((due, written));
                    due = schedule.next_send();
                }
            }
            wrote.notify_one();
            writer.send(&out).await?;
            out.clear();
        }
        writing_done.store(true, std::sync::atomic::Ordering::Release);
        wrote.notify_one();
        Ok::<(), Error>(())
    };
    let read = async {
        let mut tally = Tally::new();
        let mut statuses = Vec::new();
        loop {
            let done = writing_done.load(std::sync::atomic::Ordering::Acquire);
            if pending.lock().expect("never poisoned").is_empty() {
                if done {
                    return Ok::<Tally, Error>(tally);
                }
                wrote.notified().await;
                continue;
            }
            statuses.clear();
            reader.receive(&mut statuses).await?;
            let answered = Instant::now();
            let mut pending = pending.lock().expect("never poisoned");
            for &status in &statuses {
                let (due, written) = pending.pop_front().ok_or("an answer to nothing sent")?;
                if due >= window.measure_from {
                    tally.record_written(status, due, written, answered);
                }
            }
        }
    };
    let ((), tally) = tokio::try_join!(write, read)?;
    Ok(tally)
}

/// Sleeps on the timer while the wait is long, then spins (yielding to other workers) for
/// the last stretch: tokio's timer has millisecond granularity, and the open loop's
/// latencies are measured from the intended send time, so a late wake-up would count
/// against the server.
async fn wait_until(at: Instant) {
    const SPIN: Duration = Duration::from_millis(2);
    let now = Instant::now();
    if at > now + SPIN {
        tokio::time::sleep_until((at - SPIN).into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}
