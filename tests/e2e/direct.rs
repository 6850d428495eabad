//! The direct path (`src/server/direct.rs`): cleartext HTTP/1.1 requests that never wait are
//! answered without hyper, and everything else is handed to hyper on the same connection. Raw
//! bytes over a real socket, so what is on the wire is what is checked.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use imeidb::store::{NegativeRecord, PositiveRecord, ReportKind};

use crate::support::{TestServer, Wire, imei, parse_response, test_config};

/// Writes `bytes` in one go and reads `count` responses, or as many as come before the server
/// closes (then `closed` is true).
async fn exchange(addr: SocketAddr, bytes: &[u8], count: usize) -> (Vec<Wire>, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut read = Vec::new();
    let mut answers = Vec::new();
    let mut closed = false;
    while answers.len() < count {
        if let Some((wire, used)) = parse_response(&read) {
            assert!(wire.dated, "every response has a date");
            answers.push(wire);
            read.drain(..used);
            continue;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("the server should answer")
            .unwrap_or(0);
        if n == 0 {
            closed = true;
            break;
        }
        read.extend_from_slice(&chunk[..n]);
    }
    if !closed && answers.len() == count {
        // nothing more than asked for, and the connection stays open (or closes) as it should
        let mut chunk = [0u8; 64];
        if let Ok(n) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut chunk)).await
        {
            let n = n.unwrap_or(0);
            assert_eq!(n, 0, "unexpected bytes: {:?}", &chunk[..n]);
            closed = true;
        }
    }
    assert!(read.is_empty(), "a partial response: {read:?}");
    (answers, closed)
}

/// imei(1) registered, imei(2) stolen.
fn seed(server: &TestServer) {
    let r = &server.registry;
    r.list_positive(imei(1), &PositiveRecord::default())
        .unwrap();
    let stolen = NegativeRecord {
        kind: ReportKind::Stolen,
        ..Default::default()
    };
    r.list_negative(imei(2), &stolen).unwrap();
}

fn get(target: &str, extra_headers: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nhost: imeidb\r\n{extra_headers}\r\n")
}

fn post(target: &str, json: &str) -> String {
    format!(
        "POST {target} HTTP/1.1\r\nhost: imeidb\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
        json.len()
    )
}

/// Requests whose answers do not depend on what the server served before (not `/metrics`).
fn requests() -> Vec<String> {
    let registered = imei(1).to_string();
    let stolen = imei(2).to_string();
    let mut wrong = imei(1).to_string();
    wrong.replace_range(14.., if wrong.ends_with('0') { "1" } else { "0" });
    vec![
        get(&format!("/v1/imeis/{registered}/status"), ""),
        get(
            &format!("/v1/imeis/{stolen}/status?imsi=732101234567890"),
            "",
        ),
        get(&format!("/v1/imeis/{wrong}/status"), ""),
        get(
            "/v1/imeis/12345/status?imsi=x",
            "connection: keep-alive\r\n",
        ),
        get(
            &format!("/n5g-eir-eic/v1/equipment-status?pei=imei-{stolen}"),
            "",
        ),
        get("/n5g-eir-eic/v1/equipment-status?pei=imei-35", ""),
        get("/n5g-eir-eic/v1/equipment-status", ""),
        get("/healthz", ""),
        get("/readyz", "accept: */*\r\n"),
        get("/v1/public/imeis/12", ""),
        // hyper's from here on: the direct path leaves these, and every request after them
        get("/v1/orgs", ""),
        post(
            "/v1/checks",
            &format!("{{\"imeis\":[\"{}\"]}}", &registered[..8]),
        ),
        get(&format!("/v1/imeis/{registered}/status"), ""),
    ]
}

async fn server(dir: &std::path::Path, direct_path: bool) -> TestServer {
    server_with(dir, direct_path, |_| {}).await
}

async fn server_with(
    dir: &std::path::Path,
    direct_path: bool,
    configure: impl FnOnce(&mut imeidb::config::Config),
) -> TestServer {
    let mut config = test_config(dir);
    config.server.direct_path = direct_path;
    configure(&mut config);
    let server = TestServer::start_with(config).await;
    seed(&server);
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_as_hyper_answers_them() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let direct = server(a.path(), true).await;
    let hyper_only = server(b.path(), false).await;
    let requests = requests();
    let all: String = requests.concat();
    let (pipelined, closed) = exchange(direct.addr, all.as_bytes(), requests.len()).await;
    assert!(!closed);
    assert_eq!(pipelined.len(), requests.len());
    let statuses: Vec<u16> = pipelined.iter().map(|w| w.status).collect();
    assert_eq!(
        statuses,
        [
            200, 200, 400, 400, 200, 400, 400, 200, 200, 400, 401, 200, 200
        ]
    );
    assert!(pipelined[0].text().contains("\"WHITELISTED\""));
    assert!(pipelined[1].text().contains("\"BLACKLISTED\""));
    assert!(
        pipelined[11].text().contains("\"error\""),
        "{:?}",
        pipelined[11]
    );
    // the same bytes, one request per connection, to a server where hyper reads everything
    for (request, answer) in requests.iter().zip(&pipelined) {
        let (alone, _) = exchange(hyper_only.addr, request.as_bytes(), 1).await;
        assert_eq!(alone.first(), Some(answer), "{request}");
    }
    direct.stop().await;
    hyper_only.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_with_a_header_of_their_own_are_written_as_hyper_writes_them() {
    let tokens_and_a_low_rate = |config: &mut imeidb::config::Config| {
        config.open_checks = false;
        config.public_per_minute = 1;
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let direct = server_with(a.path(), true, tokens_and_a_low_rate).await;
    let hyper_only = server_with(b.path(), false, tokens_and_a_low_rate).await;
    let check = format!("/v1/imeis/{}/status", imei(1));
    let public = format!("/v1/public/imeis/{}", imei(1));
    let requests = [
        get(&check, ""),
        get(&check, "authorization: Bearer not-a-token\r\n"),
        get(&public, ""),
        get(&public, ""),
    ];
    let all: String = requests.concat();
    let (pipelined, closed) = exchange(direct.addr, all.as_bytes(), requests.len()).await;
    assert!(!closed);
    let header = |wire: &Wire, name: &str| {
        (wire.headers.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let statuses: Vec<u16> = pipelined.iter().map(|w| w.status).collect();
    assert_eq!(statuses, [401, 401, 200, 429]);
    assert!(header(&pipelined[0], "www-authenticate").is_some());
    // the seconds left in the window may differ by one between the two servers
    let seconds = |wire: &Wire| {
        let mut wire = wire.clone();
        for (name, value) in &mut wire.headers {
            if name == "retry-after" {
                let s: u64 = value.parse().expect("retry-after in seconds");
                assert!((1..=60).contains(&s), "retry-after {s}");
                *value = "<seconds>".into();
            }
        }
        wire
    };
    assert_eq!(
        header(&seconds(&pipelined[3]), "retry-after").as_deref(),
        Some("<seconds>")
    );
    for (request, answer) in requests.iter().zip(&pipelined) {
        let (alone, _) = exchange(hyper_only.addr, request.as_bytes(), 1).await;
        assert_eq!(
            alone.first().map(seconds),
            Some(seconds(answer)),
            "{request}"
        );
    }
    direct.stop().await;
    hyper_only.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_split_anywhere_are_answered_once_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), true).await;
    let request = get(&format!("/v1/imeis/{}/status", imei(1)), "");
    let twice = request.repeat(2);
    for split in [1, 10, request.len() - 1, request.len(), request.len() + 3] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let (first, rest) = twice.as_bytes().split_at(split);
        stream.write_all(first).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(rest).await.unwrap();
        let mut read = Vec::new();
        let mut answers = 0;
        while answers < 2 {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed after {answers} answers (split at {split})");
            read.extend_from_slice(&chunk[..n]);
            while let Some((wire, used)) = parse_response(&read) {
                assert_eq!(wire.status, 200);
                assert!(wire.text().contains("WHITELISTED"));
                read.drain(..used);
                answers += 1;
            }
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_requests_and_http_1_0_are_answered_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), true).await;
    let check = format!("/v1/imeis/{}/status", imei(1));
    for request in [
        get(&check, "connection: close\r\n"),
        format!("GET {check} HTTP/1.0\r\n\r\n"),
        // a check answered directly, then one that closes: both answered, in order
        get(&check, "") + &get("/healthz", "Connection: close\r\n"),
    ] {
        let count = request.matches("GET").count();
        let (answers, closed) = exchange(server.addr, request.as_bytes(), count).await;
        assert_eq!(answers.len(), count, "{request}");
        assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
        assert!(closed, "{request}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_on_a_check_goes_to_hyper_and_cannot_smuggle_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), true).await;
    // the "body" looks like a second request: it must be read as a body, never answered
    let hidden = get("/healthz", "");
    let request = format!(
        "GET /v1/imeis/{}/status HTTP/1.1\r\ncontent-length: {}\r\n\r\n{hidden}",
        imei(1),
        hidden.len()
    );
    // one answer, and no second one (`exchange` fails on bytes past the answers it expects)
    let (answers, _) = exchange(server.addr, request.as_bytes(), 1).await;
    assert!(answers[0].text().contains("WHITELISTED"));
    server.stop().await;
}
