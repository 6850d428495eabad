//! A small W3C WebDriver client for Debian's `chromium-driver`, driving a real headless
//! Chromium: the commands the browser tests use, over HTTP/1.1 to a chromedriver this test
//! starts, and axe-core (npm, installed by `scripts/install-deps.sh`) injected into pages.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process, killed on drop.
pub struct Driver {
    port: u16,
    child: Child,
    _profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the chromedriver is: `IMEIDB_CHROMEDRIVER`, else Debian's.
fn chromedriver() -> String {
    std::env::var("IMEIDB_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

/// axe-core's script: `IMEIDB_AXE_JS`, else where install-deps puts it.
pub fn axe_script() -> String {
    let path = std::env::var("IMEIDB_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/imeidb-node/node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is not at {} ({e}): run scripts/install-deps.sh (npm install axe-core)",
            path.display()
        )
    })
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it answers.
    pub async fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} does not run ({e}): install chromium and chromium-driver (scripts/install-deps.sh)",
                    chromedriver()
                )
            });
        let driver = Driver {
            port,
            child,
            _profiles: tempfile::tempdir().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = call(port, "GET", "/status", None).await {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A new headless browser (its own profile: its own cookies).
    pub async fn browser(&self, width: u32, height: u32) -> Browser {
        let profile = self._profiles.path().join(format!("p{}", rand_suffix()));
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": std::env::var("IMEIDB_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        format!("--window-size={width},{height}"),
                        format!("--user-data-dir={}", profile.display()),
                        "--lang=es-CO",
                    ],
                },
            } }
        });
        let (status, value) = call(self.port, "POST", "/session", Some(caps))
            .await
            .unwrap();
        assert_eq!(status, 200, "new session: {value}");
        Browser {
            port: self.port,
            session: value["sessionId"].as_str().unwrap().to_owned(),
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// One WebDriver HTTP exchange: status and the `value` of the answer.
async fn call(
    port: u16,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    // chromedriver keeps the connection open whatever the request says: read by length
    let mut read = Vec::new();
    let mut chunk = [0u8; 16384];
    let (head_len, body_len) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("chromedriver closed the connection"));
        }
        read.extend_from_slice(&chunk[..n]);
        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
            let length = (head.lines())
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while read.len() < head_len + body_len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        read.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&read[..head_len]);
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = serde_json::from_slice::<Value>(&read[head_len..]).unwrap_or(Value::Null);
    Ok((status, json.get("value").cloned().unwrap_or(Value::Null)))
}

/// One browser session.
pub struct Browser {
    port: u16,
    session: String,
}

/// An element of the page.
#[derive(Clone)]
pub struct Element(String);

impl Browser {
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        let (status, value) = call(self.port, method, &full, body).await.unwrap();
        assert_eq!(status, 200, "{method} {path}: {value}");
        value
    }

    /// Goes to `url` and waits for the page to load.
    pub async fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The page's title.
    pub async fn title(&self) -> String {
        self.cmd("GET", "/title", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The first element `css` selects.
    pub async fn find(&self, css: &str) -> Element {
        let value = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        Element(
            value[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("no element {css}"))
                .to_owned(),
        )
    }

    /// How many elements `css` selects.
    pub async fn count(&self, css: &str) -> usize {
        let value = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        value.as_array().map_or(0, Vec::len)
    }

    /// Types `text` into the input `css` selects (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{}/clear", element.0),
            Some(json!({})),
        )
        .await;
        self.cmd(
            "POST",
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Picks `value` in the select `css` selects.
    pub async fn select(&self, css: &str, value: &str) {
        self.toggle(&format!("{css} option[value=\"{value}\"]"))
            .await;
    }

    /// Clicks what `css` selects, which stays on the page (a checkbox, an option, a
    /// script's button).
    pub async fn toggle(&self, css: &str) {
        let element = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{}/click", element.0),
            Some(json!({})),
        )
        .await;
    }

    /// Clicks a link or a submit button and waits for the next page to load.
    pub async fn click(&self, css: &str) {
        self.run("window.__imeidbOld = true;").await;
        self.toggle(css).await;
        self.wait_for("return !window.__imeidbOld && document.readyState === 'complete'")
            .await;
    }

    /// The visible text of what `css` selects.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.cmd("GET", &format!("/element/{}/text", element.0), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Runs `script` in the page; its return value.
    pub async fn run(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// The browser's cookies.
    pub async fn cookies(&self) -> Vec<Value> {
        self.cmd("GET", "/cookie", None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `script` returns true (up to 30 s).
    pub async fn wait_for(&self, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.run(script).await != Value::Bool(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {script}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Limits what the browser sends to `bytes_per_s` (chromedriver's network emulation), as
    /// on a slow link; `None` lifts the limit.
    pub async fn limit_upload(&self, bytes_per_s: Option<u64>) {
        let path = "/chromium/network_conditions";
        match bytes_per_s {
            Some(rate) => {
                let conditions = json!({ "network_conditions": {
                    "offline": false, "latency": 0,
                    "download_throughput": -1, "upload_throughput": rate,
                } });
                self.cmd("POST", path, Some(conditions)).await;
            }
            None => {
                self.cmd("DELETE", path, None).await;
            }
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        base64_decode(
            self.cmd("GET", "/screenshot", None)
                .await
                .as_str()
                .unwrap_or(""),
        )
    }

    /// axe-core's serious and critical violations on the current page, each as
    /// `rule: nodes`.
    pub async fn accessibility_violations(&self, axe: &str) -> Vec<String> {
        self.run(axe).await;
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] }).then(r => done(
                r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                  .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.html).join(' | '))
            ), e => done(['axe failed: ' + e]));";
        let value = self
            .cmd(
                "POST",
                "/execute/async",
                Some(json!({ "script": script, "args": [] })),
            )
            .await;
        value
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|s| s.as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_else(|| vec![format!("axe answered {value}")])
    }

    /// Ends the session (closes the browser).
    pub async fn quit(self) {
        let full = format!("/session/{}", self.session);
        let _ = call(self.port, "DELETE", &full, None).await;
    }
}

/// Standard base64 (the screenshot's encoding).
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
