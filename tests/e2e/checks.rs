use std::time::Duration;

use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use imeidb::imei::Imei;
use imeidb::store::{NegativeRecord, PositiveRecord, ReportKind};

use crate::support::{Client, TestServer, assert_problem, imei, test_config};

const HOME_SUPI: &str = "imsi-732101234567890";
const ROAMING_SUPI: &str = "imsi-310150123456789";

/// imei(1) registered, imei(2) stolen, imei(3) registered and stolen, imei(4) on neither.
fn seed(server: &TestServer) {
    let r = &server.registry;
    r.list_positive(imei(1), &PositiveRecord::default())
        .unwrap();
    r.list_positive(imei(3), &PositiveRecord::default())
        .unwrap();
    let stolen = NegativeRecord {
        kind: ReportKind::Stolen,
        ..Default::default()
    };
    r.list_negative(imei(2), &stolen).unwrap();
    r.list_negative(imei(3), &stolen).unwrap();
}

fn eir(pei: &str) -> String {
    format!("/n5g-eir-eic/v1/equipment-status?pei={pei}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n5g_eir_answers_each_list_over_http1_and_h2c() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    seed(&server);
    for mut client in [Client::h1(server.addr).await, Client::h2(server.addr).await] {
        for (n, status) in [(1, "WHITELISTED"), (2, "BLACKLISTED"), (3, "BLACKLISTED")] {
            let reply = client.get(&eir(&format!("imei-{}", imei(n)))).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.content_type, "application/json");
            assert_eq!(reply.json(), serde_json::json!({ "status": status }));
        }
        // IMEISV and a spare 0 instead of the check digit name the same device
        let digits = imei(2).to_string();
        let sv = client
            .get(&eir(&format!("imeisv-{}42", &digits[..14])))
            .await;
        assert_eq!(sv.json()["status"], "BLACKLISTED");
        let spare = client.get(&eir(&format!("imei-{}0", &digits[..14]))).await;
        assert_eq!(spare.json()["status"], "BLACKLISTED");

        let unknown = client.get(&eir(&format!("imei-{}", imei(4)))).await;
        assert_problem(&unknown, 404, "ERROR_EQUIPMENT_UNKNOWN");

        // roaming exemption (art. 2.2.11.1) and its absence for home subscribers
        let roaming = client
            .get(&format!(
                "{}&supi={ROAMING_SUPI}&gpsi=msisdn-573001234567",
                eir(&format!("imei-{}", imei(2)))
            ))
            .await;
        assert_eq!(roaming.json()["status"], "WHITELISTED");
        let home = client
            .get(&format!(
                "{}&supi={HOME_SUPI}",
                eir(&format!("imei-{}", imei(2)))
            ))
            .await;
        assert_eq!(home.json()["status"], "BLACKLISTED");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n5g_eir_malformed_queries_name_the_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut client = Client::h2(server.addr).await;

    let missing = client
        .get("/n5g-eir-eic/v1/equipment-status?supi=imsi-732101234567890")
        .await;
    assert_problem(&missing, 400, "MANDATORY_QUERY_PARAM_MISSING");

    let short = client.get(&eir("imei-12345")).await;
    let json = assert_problem(&short, 400, "INVALID_QUERY_PARAM");
    assert_eq!(json["invalidParams"][0]["param"], "query pei");
    assert!(
        json["invalidParams"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("15 digits")
    );

    let bad_supi = client
        .get(&format!(
            "{}&supi=imsi-73x",
            eir(&format!("imei-{}", imei(1)))
        ))
        .await;
    let json = assert_problem(&bad_supi, 400, "INVALID_QUERY_PARAM");
    assert_eq!(json["invalidParams"][0]["param"], "query supi");

    let twice = client
        .get(&format!(
            "{}&pei=imei-{}",
            eir(&format!("imei-{}", imei(1))),
            imei(2)
        ))
        .await;
    assert_problem(&twice, 400, "INVALID_QUERY_PARAM");

    // a MAC PEI is well formed but never registered here; "mac" alone is no PEI form
    let mac = client.get(&eir("mac-00-11-22-33-44-55")).await;
    assert_problem(&mac, 404, "ERROR_EQUIPMENT_UNKNOWN");
    let roaming_mac = client
        .get(&format!(
            "{}&supi={ROAMING_SUPI}",
            eir("mac-00-11-22-33-44-55")
        ))
        .await;
    assert_eq!(roaming_mac.json()["status"], "WHITELISTED");
    let not_a_pei = client.get(&eir("machine")).await;
    let json = assert_problem(&not_a_pei, 400, "INVALID_QUERY_PARAM");
    assert_eq!(json["invalidParams"][0]["param"], "query pei");

    let post = client
        .request(
            Method::POST,
            &eir(&format!("imei-{}", imei(1))),
            bytes::Bytes::new(),
            None,
        )
        .await;
    assert_problem(&post, 405, "METHOD_NOT_ALLOWED");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_check_reports_lists_decision_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    seed(&server);
    let mut client = Client::h1(server.addr).await;

    let reply = client.get(&format!("/v1/imeis/{}/status", imei(3))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "imei": imei(3).to_string(),
            "tac": "35290611",
            "status": "BLACKLISTED",
            "reason": "REPORTED_STOLEN_OR_LOST",
            "positiveList": true,
            "negativeList": true,
        })
    );
    let fourteen = &imei(4).to_string()[..14];
    let unknown = client.get(&format!("/v1/imeis/{fourteen}/status")).await;
    assert_eq!(unknown.json()["status"], "GREYLISTED");
    assert_eq!(unknown.json()["reason"], "NOT_LISTED");
    assert_eq!(unknown.json()["imei"], imei(4).to_string());

    let roaming = client
        .get(&format!(
            "/v1/imeis/{}/status?imsi=310150123456789",
            imei(2)
        ))
        .await;
    assert_eq!(roaming.json()["reason"], "ROAMING_EXEMPT");

    // registry input: a wrong check digit is refused and named
    let wrong = format!("{}{}", fourteen, (imei(4).check_digit() + 1) % 10);
    let bad = client.get(&format!("/v1/imeis/{wrong}/status")).await;
    let json = assert_problem(&bad, 400, "MANDATORY_IE_INCORRECT");
    assert_eq!(json["invalidParams"][0]["param"], "{imei}");
    assert!(
        json["invalidParams"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("check digit")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_answers_every_entry_in_order_and_isolates_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    seed(&server);
    let mut client = Client::h2(server.addr).await;

    let body = serde_json::json!({ "imeis": [
        imei(1).to_string(), "123", imei(2).to_string(), 42, imei(4).to_string(), imei(1).to_string(),
    ]});
    let reply = client.post_json("/v1/checks", body.to_string()).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let results = reply.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 6);
    assert_eq!(results[0]["status"], "WHITELISTED");
    assert_eq!(results[1]["error"]["param"], "/imeis/1");
    assert!(
        results[1]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("digits")
    );
    assert_eq!(results[2]["status"], "BLACKLISTED");
    assert_eq!(
        results[3]["error"]["reason"],
        "must be a string, got a number"
    );
    assert_eq!(results[4]["status"], "GREYLISTED");
    assert_eq!(results[5]["imei"], imei(1).to_string());

    let checks = serde_json::json!({ "checks": [
        { "imei": imei(2).to_string(), "imsi": "310150123456789" },
        { "imei": imei(2).to_string(), "imsi": "732101234567890" },
        { "imei": imei(2).to_string(), "imsi": "7" },
    ]});
    let reply = client.post_json("/v1/checks", checks.to_string()).await;
    let results = reply.json()["results"].as_array().unwrap().clone();
    assert_eq!(results[0]["reason"], "ROAMING_EXEMPT");
    assert_eq!(results[1]["reason"], "REPORTED_STOLEN_OR_LOST");
    assert_eq!(results[2]["error"]["param"], "/checks/2/imsi");

    // one answer per entry, including the largest allowed batch
    let many: Vec<String> = (0..1000).map(|n| imei(n).to_string()).collect();
    let reply = client
        .post_json(
            "/v1/checks",
            serde_json::json!({ "imeis": many }).to_string(),
        )
        .await;
    assert_eq!(reply.json()["results"].as_array().unwrap().len(), 1000);

    let too_many: Vec<String> = (0..1001).map(|n| imei(n).to_string()).collect();
    let reply = client
        .post_json(
            "/v1/checks",
            serde_json::json!({ "imeis": too_many }).to_string(),
        )
        .await;
    assert_problem(&reply, 413, "PAYLOAD_TOO_LARGE");

    let huge = format!("{{\"imeis\":[\"{}\"]}}", "1".repeat(70 * 1024));
    assert_problem(
        &client.post_json("/v1/checks", huge).await,
        413,
        "PAYLOAD_TOO_LARGE",
    );
    assert_problem(
        &client.post_json("/v1/checks", "{\"imeis\":[").await,
        400,
        "INVALID_MSG_FORMAT",
    );
    assert_problem(
        &client.post_json("/v1/checks", "{\"imei\":[]}").await,
        400,
        "INVALID_MSG_FORMAT",
    );
    assert_problem(
        &client.post_json("/v1/checks", "{}").await,
        400,
        "INVALID_MSG_FORMAT",
    );
    let text = client
        .request(
            Method::POST,
            "/v1/checks",
            bytes::Bytes::from_static(b"x"),
            Some("text/csv"),
        )
        .await;
    assert_problem(&text, 415, "UNSUPPORTED_MEDIA_TYPE");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_ops_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    seed(&server);
    let mut client = Client::h1(server.addr).await;
    // deny by default: an unknown route asks for a token first (authz.rs: 404 with one)
    assert_problem(&client.get("/nope").await, 401, "UNAUTHENTICATED");
    assert_eq!(client.get("/healthz").await.status, 200);
    assert_eq!(client.get("/readyz").await.status, 200);

    client.get(&eir(&format!("imei-{}", imei(2)))).await;
    client.get(&eir(&format!("imei-{}", imei(9)))).await;
    let metrics = client.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    for needle in [
        r#"imeidb_checks_total{interface="n5g_eir",result="blacklisted"} 1"#,
        r#"imeidb_checks_total{interface="n5g_eir",result="unknown"} 1"#,
        r#"imeidb_list_entries{list="positive"} 2"#,
        r#"imeidb_list_entries{list="negative"} 2"#,
        r#"imeidb_check_duration_seconds_count{interface="n5g_eir"} 2"#,
        "imeidb_filter_answered_total",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(
        !text.contains(&imei(2).to_string()),
        "an IMEI leaked into metrics"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_never_hides_a_freshly_listed_imei() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut client = Client::h2(server.addr).await;
    let registry = server.registry.clone();
    // insert, check at once, many times; a concurrent writer keeps the filter busy
    let writer = {
        let registry = registry.clone();
        tokio::task::spawn_blocking(move || {
            for n in 100_000..120_000 {
                registry
                    .list_positive(imei(n), &PositiveRecord::default())
                    .unwrap();
            }
        })
    };
    for n in 0..2_000 {
        let registry = registry.clone();
        tokio::task::spawn_blocking(move || {
            registry
                .list_negative(imei(n), &NegativeRecord::default())
                .unwrap()
        })
        .await
        .unwrap();
        let reply = client.get(&eir(&format!("imei-{}", imei(n)))).await;
        assert_eq!(reply.json()["status"], "BLACKLISTED", "imei #{n} hidden");
    }
    writer.await.unwrap();
    let mut h1 = Client::h1(server.addr).await;
    for n in (100_000..120_000).step_by(97) {
        let reply = h1.get(&eir(&format!("imei-{}", imei(n)))).await;
        assert_eq!(reply.json()["status"], "WHITELISTED", "imei #{n} hidden");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    seed(&server);
    server.stop().await;

    let server = TestServer::start(dir.path()).await;
    let mut client = Client::h2(server.addr).await;
    for (n, status) in [(1, "WHITELISTED"), (2, "BLACKLISTED"), (3, "BLACKLISTED")] {
        let reply = client.get(&eir(&format!("imei-{}", imei(n)))).await;
        assert_eq!(reply.json()["status"], status);
    }
    assert_eq!(
        server.registry.store().len(imeidb::store::List::Negative),
        2
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    // and the server still serves
    assert_eq!(
        Client::h1(server.addr).await.get("/healthz").await.status,
        200
    );
    server.stop().await;
}

/// A server with a short idle timeout, and the data directory it must not outlive.
async fn server_with_idle_timeout(timeout: Duration) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.server.idle_timeout = timeout;
    let server = TestServer::start_with(config).await;
    (dir, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let (_dir, server) = server_with_idle_timeout(Duration::from_millis(500)).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the server should have closed the idle connection");
    assert_eq!(read.unwrap_or(0), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_trickled_byte_by_byte_does_not_hold_a_connection() {
    let (_dir, server) = server_with_idle_timeout(Duration::from_millis(500)).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
        .await
        .unwrap();
    // one byte every 100 ms keeps bytes moving, but the head never completes
    let started = std::time::Instant::now();
    let closed = loop {
        if stream.write_all(b"a").await.is_err() {
            break true;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(_)) => panic!("the server answered a request whose head never ended"),
            Err(_) if started.elapsed() > Duration::from_secs(5) => break false,
            Err(_) => {}
        }
    };
    assert!(
        closed,
        "the server kept a connection whose head never completed"
    );
    // a connection that is used stays open past the timeout
    let mut client = Client::h1(server.addr).await;
    for _ in 0..8 {
        assert_eq!(client.get("/healthz").await.status, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[test]
fn imei_helper_makes_valid_imeis() {
    assert!(Imei::parse(&imei(7).to_string()).is_ok());
}
