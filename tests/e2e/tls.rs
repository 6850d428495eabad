//! The listener over TLS: h2 and HTTP/1.1 by ALPN, and nothing in cleartext.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use imeidb::config::TlsFiles;

use crate::support::{TestServer, imei, test_config};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/tls")
        .join(name)
}

fn connector(alpn: &[u8]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(fixture("cert.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_serves_h2_and_http1_by_alpn_and_refuses_cleartext() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.tls = Some(TlsFiles {
        cert_file: fixture("cert.pem"),
        key_file: fixture("key.pem"),
    });
    let server = TestServer::start_with(config).await;
    let path = format!("/v1/imeis/{}/status", imei(4));

    // h2
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector(b"h2").connect(name.clone(), tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = Request::get(format!("https://localhost{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = h2.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("GREYLISTED"));

    // HTTP/1.1
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let tls = connector(b"http/1.1").connect(name, tcp).await.unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::get(&path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(h1.send_request(request).await.unwrap().status(), 200);

    // cleartext gets no HTTP answer: the connection is dropped
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    server.stop().await;
}

#[test]
fn a_missing_or_mismatched_key_is_named() {
    let err = imeidb::server::tls_acceptor(&fixture("cert.pem"), &fixture("nope.pem"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("private key") && err.contains("nope.pem"),
        "{err}"
    );
    let err = imeidb::server::tls_acceptor(&fixture("key.pem"), &fixture("key.pem"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("certificate") && err.contains("key.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn on_tls_the_pages_cookies_are_secure_and_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.tls = Some(TlsFiles {
        cert_file: fixture("cert.pem"),
        key_file: fixture("key.pem"),
    });
    let server = TestServer::start_with(config).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector(b"http/1.1").connect(name, tcp).await.unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::get("/entrar")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = h1.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-imeidb_form="), "{cookie}");
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Strict", "; Secure"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    server.stop().await;
}
