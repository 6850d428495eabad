//! A real server on a real socket, and real HTTP/1.1 and HTTP/2 clients to talk to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use imeidb::accounts::Accounts;
use imeidb::api::AppState;
use imeidb::config::Config;
use imeidb::imei::Imei;
use imeidb::registry::Registry;

/// The server, started on 127.0.0.1:0 over a data directory.
pub struct TestServer {
    pub addr: SocketAddr,
    pub registry: Registry,
    pub accounts: Accounts,
    pub metrics: std::sync::Arc<imeidb::metrics::Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The test configuration: the defaults with small limits so tests can exceed them, and
/// checks open (a listener on a trusted core network) so check tests need no accounts;
/// `authz.rs` turns that off.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default_config();
    config.data_dir = dir.to_path_buf();
    config.store.sync_writes = false;
    config.store.block_cache_bytes = 16 << 20;
    config.server.max_body_bytes = 64 * 1024;
    config.max_batch = 1000;
    config.open_checks = true;
    config
}

impl TestServer {
    pub async fn start(dir: &Path) -> TestServer {
        Self::start_with(test_config(dir)).await
    }

    pub async fn start_with(config: Config) -> TestServer {
        let state = AppState::open(&config).unwrap();
        let (registry, accounts) = (state.registry.clone(), state.accounts.clone());
        let metrics = std::sync::Arc::clone(&state.metrics);
        state.ready.store(true, Ordering::Relaxed);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = config.server.clone();
        let tls = config
            .tls
            .as_ref()
            .map(|files| imeidb::server::tls_acceptor(&files.cert_file, &files.key_file).unwrap());
        let task = tokio::spawn(async move {
            imeidb::server::run(listener, state, &limits, tls, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            addr,
            registry,
            accounts,
            metrics,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and closes the store, so the directory can be reopened.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.registry.store().sync().unwrap();
    }
}

/// A response, body collected.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP connection, HTTP/1.1 or HTTP/2 (prior knowledge).
pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Client {
    pub async fn h1(addr: SocketAddr) -> Client {
        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        Client::H1(sender)
    }

    pub async fn h2(addr: SocketAddr) -> Client {
        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        Client::H2(sender)
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Reply {
        self.request_as(None, method, path, body, content_type)
            .await
    }

    /// [`Client::request_as`], or `None` if the connection fails (the server went away).
    pub async fn try_request_as(
        &mut self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Option<Reply> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if let Client::H1(_) = self {
            builder = builder.header("host", "localhost");
        }
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        let request = builder.body(Full::new(body)).unwrap();
        let response = match self {
            Client::H1(sender) => {
                sender.ready().await.ok()?;
                sender.send_request(request).await.ok()?
            }
            Client::H2(sender) => {
                sender.ready().await.ok()?;
                sender.send_request(request).await.ok()?
            }
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some(Reply {
            status,
            content_type,
            body,
        })
    }

    /// A request with `Authorization: Bearer {token}` when a token is given.
    pub async fn request_as(
        &mut self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Reply {
        self.try_request_as(token, method, path, body, content_type)
            .await
            .unwrap_or_else(|| panic!("no answer to a request for {path}"))
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.request(Method::GET, path, Bytes::new(), None).await
    }

    pub async fn post_json(&mut self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.request(Method::POST, path, body.into(), Some("application/json"))
            .await
    }
}

/// The `n`th IMEI of a test TAC, as 15 digits with its check digit.
pub fn imei(n: u64) -> Imei {
    Imei::from_body(35_290_611_000_000 + n).unwrap()
}

/// Asserts an RFC 7807 body with this status and cause, and returns it.
pub fn assert_problem(reply: &Reply, status: u16, cause: &str) -> serde_json::Value {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.content_type, "application/problem+json");
    let json = reply.json();
    assert_eq!(json["status"], status);
    assert_eq!(json["cause"], cause, "{json}");
    json
}

/// The real `imeidb` binary, with a clean environment.
pub fn imeidb() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imeidb"));
    cmd.env_clear();
    cmd
}

/// A running `imeidb serve`, with its stderr lines.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub lines: mpsc::Receiver<String>,
}

/// `imeidb serve` on 127.0.0.1:0 over `data`, with a 16 MiB block cache and open checks.
pub fn serve(data: &Path) -> Served {
    serve_with(data, &[])
}

/// [`serve`] with more `IMEIDB_*` settings (later ones win).
pub fn serve_with(data: &Path, env: &[(&str, &str)]) -> Served {
    let mut child = imeidb()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("IMEIDB_STORE_BLOCK_CACHE_MB", "16")
        .env("IMEIDB_AUTH_OPEN_CHECKS", "true")
        // tests run at once: none takes Diameter's fixed port unless it asks for Diameter
        .env("IMEIDB_DIAMETER_LISTEN", "")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(rest) = line.split("addr=").nth(1) {
                    break rest.split_whitespace().next().unwrap().parse().unwrap();
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not report its address");
            }
        }
    };
    Served { child, addr, lines }
}

impl Drop for Served {
    /// A failed assertion must not leave a server running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Served {
    /// Sends SIGTERM, waits, and returns the exit status and the rest of stderr.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.try_iter().collect();
        (status, rest.join("\n"))
    }
}

/// One response off the wire: status, headers (lower-case names, sorted, `date` left out), body.
#[derive(Clone, Debug, PartialEq)]
pub struct Wire {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// It had a valid `date` header.
    pub dated: bool,
}

impl Wire {
    pub fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One whole response at the front of `read`, for the tests that speak raw HTTP/1.1 over a
/// socket (every response of this server has a
/// `content-length`, hyper's own error responses included).
pub fn parse_response(read: &[u8]) -> Option<(Wire, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response
        .parse(read)
        .unwrap_or_else(|e| panic!("not a response ({e}): {:?}", String::from_utf8_lossy(read)))
    else {
        return None;
    };
    let mut length = 0;
    let mut kept = Vec::new();
    let mut dated = false;
    for h in response.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8(h.value.to_vec()).unwrap();
        assert_ne!(name, "transfer-encoding", "a response without a length");
        if name == "content-length" {
            length = value.parse::<usize>().unwrap();
        }
        if name == "date" {
            assert!(httpdate::parse_http_date(&value).is_ok(), "date {value}");
            dated = true;
        } else {
            kept.push((name, value));
        }
    }
    kept.sort();
    if read.len() < head + length {
        return None;
    }
    let wire = Wire {
        status: response.code.unwrap(),
        headers: kept,
        body: read[head..head + length].to_vec(),
        dated,
    };
    Some((wire, head + length))
}
