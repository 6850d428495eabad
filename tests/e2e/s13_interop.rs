//! Diameter S13 judged by software imeidb's authors did not write.
//!
//! The unit tests in `src/diameter/` and the other e2e tests encode and decode with imeidb's
//! own codec: a message both sides get wrong the same way would pass them. These two tests
//! take the real `imeidb serve` binary and put a third party on the other end:
//!
//! - [`python_diameter_mme_gets_every_answer`]: a node we did not write. `tests/diameter/mme.py`
//!   is an MME built on python-diameter 0.9.0; it connects, exchanges capabilities, sends one
//!   ME-Identity-Check-Request per check (every answer kind, the roaming exemption, and every
//!   refusal), exchanges watchdogs both ways and is disconnected by the EIR's shutdown. Every
//!   answer is decoded by the library's own parser.
//! - [`tshark_decodes_every_answer_as_s13`]: a decoder we did not write. A conversation with
//!   the server is written to a pcap file and Wireshark's dissector (tshark) must read every
//!   answer as a well-formed 3GPP-ME-Identity-Check with the right Equipment-Status or result
//!   code, without malformed packets or expert warnings.
//!
//! Both tools are installed by `scripts/install-deps.sh`; a machine without them fails these
//! tests (with that advice) rather than skipping them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use imeidb::diameter::codec::{self, flags};
use imeidb::diameter::dict::{self, avp, command};
use imeidb::imei::Imei;

use crate::support::{Client, Served, imei, imeidb, serve_with};

const EIR_HOST: &str = "eir.test.example";
const EIR_REALM: &str = "test.example";
const MME_HOST: &str = "mme.test.example";
const MME_REALM: &str = "mme.example";
/// A subscriber of the home country (MCC 732).
const HOME_IMSI: &str = "732101234567890";
/// An inbound roamer (MCC 214, Spain): never restricted (art. 2.2.11.1).
const ROAMER_IMSI: &str = "214071234567891";
const INSTALL: &str = "run scripts/install-deps.sh to install it";

/// On the positive list: WHITELISTED.
fn registered() -> Imei {
    imei(1)
}

/// On the negative list (stolen): BLACKLISTED.
fn stolen() -> Imei {
    imei(2)
}

/// On neither list: DIAMETER_ERROR_EQUIPMENT_UNKNOWN.
fn unlisted() -> Imei {
    imei(3)
}

/// The 14 digits of an IMEI without its check digit, as an MME may send it.
fn body14(imei: Imei) -> String {
    imei.to_string()[..14].to_owned()
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// `imeidb serve` with Diameter on 127.0.0.1:0, the three IMEIs above loaded with the real
/// `imeidb import`, and [`MME_HOST`] in the peer table.
struct Eir {
    dir: tempfile::TempDir,
    served: Served,
    diameter: SocketAddr,
    /// Every stderr line read so far (the ones `serve_with` read to find the HTTP address,
    /// before any check, are not here).
    log: Vec<String>,
}

impl Eir {
    fn start(watchdog_secs: u32) -> Eir {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        import(
            &data,
            "positive",
            &format!(
                "imei,manufacturer,model,registrant,reference\n{},Acme,A1,Importadora SAS,DEC-1\n",
                registered()
            ),
        );
        import(
            &data,
            "negative",
            &format!(
                "imei,kind,reporter,reference\n{},stolen,Policia,CASE-1\n",
                stolen()
            ),
        );
        let config = dir.path().join("imeidb.toml");
        std::fs::write(
            &config,
            format!(
                r#"[diameter]
listen = "127.0.0.1:0"
origin_host = "{EIR_HOST}"
origin_realm = "{EIR_REALM}"
watchdog_secs = {watchdog_secs}

[[diameter.peers]]
origin_host = "{MME_HOST}"
realm = "{MME_REALM}"
"#
            ),
        )
        .unwrap();
        // `serve_with` turns Diameter off by default; a later setting wins
        let served = serve_with(
            &data,
            &[
                ("IMEIDB_CONFIG", config.to_str().unwrap()),
                ("IMEIDB_DIAMETER_LISTEN", "127.0.0.1:0"),
            ],
        );
        let mut eir = Eir {
            dir,
            served,
            diameter: SocketAddr::from(([0, 0, 0, 0], 0)),
            log: Vec::new(),
        };
        let line = eir.wait_for_line("listening (Diameter S13 over TCP)");
        eir.diameter = line
            .split("diameter=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no diameter=ADDR in {line:?}"));
        eir
    }

    /// Reads stderr until a line containing `text`, and returns it.
    fn wait_for_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.served.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "the server never logged {text:?}; its log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// `GET /metrics` on the HTTP listener.
    fn metrics(&self) -> String {
        let addr = self.served.addr;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reply = runtime.block_on(async move { Client::h1(addr).await.get("/metrics").await });
        assert_eq!(reply.status, 200);
        String::from_utf8(reply.body.to_vec()).unwrap()
    }

    /// Sends SIGTERM, waits (at most 20 s) for the server to exit, and returns its exit status
    /// and its whole log, read to the end of its stderr.
    fn stop(mut self) -> (ExitStatus, String) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.served.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status =
            wait_deadline(&mut self.served.child, Duration::from_secs(20)).unwrap_or_else(|| {
                panic!(
                    "the server did not exit within 20 s of SIGTERM; its log:\n{}",
                    self.log.join("\n")
                )
            });
        // the reader thread ends, and the channel disconnects, at the end of stderr
        loop {
            match self.served.lines.recv_timeout(Duration::from_secs(5)) {
                Ok(line) => self.log.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the server's stderr stayed open"),
            }
        }
        (status, self.log.join("\n"))
    }
}

/// `imeidb import --list LIST` of a CSV file with `content`; it must load every line.
fn import(data: &Path, list: &str, content: &str) {
    let file = data.with_file_name(format!("{list}.csv"));
    std::fs::write(&file, content).unwrap();
    let out = imeidb()
        .args(["import", "--list", list, "--data-dir"])
        .arg(data)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import {list}: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for `child` to exit, at most `limit`.
fn wait_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of the sample `series` (name and labels exactly as printed) in a Prometheus text
/// exposition.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// The server logged no IMEI (15 or 14 digits) and no IMSI it was sent, and logged the peer
/// connecting and disconnecting.
fn assert_log_private_and_peer_seen(log: &str) {
    let mut secrets: Vec<String> = [registered(), stolen(), unlisted()]
        .iter()
        .flat_map(|i| [i.to_string(), body14(*i)])
        .collect();
    secrets.extend([HOME_IMSI.to_owned(), ROAMER_IMSI.to_owned()]);
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "{secret} reached the log:\n{log}"
        );
    }
    for event in ["Diameter peer connected", "Diameter peer disconnected"] {
        assert!(
            log.lines()
                .any(|line| line.contains(event) && line.contains(MME_HOST)),
            "no {event:?} line naming {MME_HOST}:\n{log}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Test 1: python-diameter's MME
// ---------------------------------------------------------------------------------------------

/// Fails (never skips) when python-diameter is not importable.
fn require_python_diameter() {
    let out = Command::new("python3")
        .args(["-c", "import diameter"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {INSTALL}"));
    assert!(
        out.status.success(),
        "python3 cannot import diameter (python-diameter 0.9.0, the MME of tests/diameter/mme.py): \
         {}; {INSTALL}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// `tests/diameter/mme.py` running, its stdout's JSON events read as they come.
struct Mme {
    child: Child,
    events: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// Every stdout line so far, for failure messages.
    seen: Vec<String>,
}

impl Mme {
    fn spawn(eir: SocketAddr, checks: &Path) -> Mme {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diameter/mme.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--connect", &eir.to_string()])
            .args(["--origin-host", MME_HOST, "--origin-realm", MME_REALM])
            .args(["--destination-realm", EIR_REALM])
            .args(["--destination-host", EIR_HOST])
            .arg("--checks")
            .arg(checks)
            .args(["--idle-secs", "9", "--wait-dpr-secs", "15"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {INSTALL}"));
        let (tx, events) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Mme {
            child,
            events,
            stderr,
            seen: Vec::new(),
        }
    }

    /// What the script printed so far, for a failure message.
    fn transcript(&self) -> String {
        format!(
            "mme.py stdout:\n{}\nmme.py stderr:\n{}",
            self.seen.join("\n"),
            self.stderr.lock().unwrap()
        )
    }

    /// The next event, which must be `event`, within `timeout`.
    fn next(&mut self, event: &str, timeout: Duration) -> Value {
        let line = match self.events.recv_timeout(timeout) {
            Ok(line) => line,
            Err(_) => {
                // give stderr's reader a moment to catch the reason of an exit
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "mme.py printed no {event:?} event within {timeout:?} (exit {:?})\n{}",
                    self.child.try_wait().ok().flatten(),
                    self.transcript()
                );
            }
        };
        self.seen.push(line.clone());
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", self.transcript()));
        assert_eq!(value["event"], event, "{}", self.transcript());
        value
    }

    /// Asserts that every key of `expected` has that value in `actual`.
    fn assert_fields(&self, actual: &Value, expected: &Value) {
        for (key, want) in expected.as_object().unwrap() {
            assert_eq!(
                &actual[key],
                want,
                "{key} of {actual}\n{}",
                self.transcript()
            );
        }
    }
}

impl Drop for Mme {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One check mme.py sends, and what its ECA must say.
struct Case {
    check: Value,
    answer: Value,
}

/// Every kind of ECA: the three answers, the roaming exemption, and the refusals.
fn cases() -> Vec<Case> {
    let status = |code: u32| {
        json!({"result_code": 2001, "experimental_result_code": null, "equipment_status": code,
               "failed_avp_paths": null})
    };
    let refused = |code: u32, path: Value| {
        json!({"result_code": code, "experimental_result_code": null, "equipment_status": null,
               "failed_avp_paths": path})
    };
    let case = |check: Value, answer: Value| Case { check, answer };
    vec![
        case(
            json!({"name": "whitelisted", "imei": registered().to_string(), "sv": "01",
                   "imsi": HOME_IMSI}),
            status(0),
        ),
        case(
            json!({"name": "blacklisted", "imei": stolen().to_string()}),
            status(1),
        ),
        case(
            json!({"name": "blacklisted 14 digits", "imei": body14(stolen()),
                   "imsi": HOME_IMSI, "vsai": true}),
            status(1),
        ),
        case(
            json!({"name": "unknown", "imei": unlisted().to_string()}),
            json!({"result_code": null, "experimental_result_code": 5422,
                   "experimental_vendor_id": 10415, "equipment_status": null,
                   "failed_avp_paths": null}),
        ),
        case(
            // stolen, but an inbound roamer is never restricted (art. 2.2.11.1)
            json!({"name": "roamer", "imei": stolen().to_string(), "sv": "07",
                   "imsi": ROAMER_IMSI}),
            status(0),
        ),
        case(
            json!({"name": "malformed (too short)", "imei": "35290611"}),
            refused(5004, json!([[1401, 1402]])),
        ),
        case(
            // an IMEISV's 16 digits: S13's IMEI AVP holds 14 or 15
            json!({"name": "IMEISV length", "imei": format!("{}01", body14(registered()))}),
            refused(5004, json!([[1401, 1402]])),
        ),
        case(
            json!({"name": "MEID only", "meid": "a0000012345678"}),
            refused(5001, json!([[1401, 1471]])),
        ),
        case(
            json!({"name": "no Terminal-Information", "omit_terminal_information": true}),
            refused(5005, json!([[1401]])),
        ),
    ]
}

#[test]
fn python_diameter_mme_gets_every_answer() {
    require_python_diameter();
    let eir = Eir::start(6);
    let cases = cases();
    let checks = eir.dir.path().join("checks.json");
    let list: Vec<&Value> = cases.iter().map(|c| &c.check).collect();
    std::fs::write(&checks, serde_json::to_vec(&list).unwrap()).unwrap();

    let mut mme = Mme::spawn(eir.diameter, &checks);
    let step = Duration::from_secs(10);

    let cea = mme.next("cea", step);
    mme.assert_fields(
        &cea,
        &json!({"result_code": 2001, "e_bit": false, "origin_host": EIR_HOST,
                "origin_realm": EIR_REALM, "s13_advertised": true,
                "common_auth_application_ids": [16777252]}),
    );

    for case in &cases {
        let eca = mme.next("eca", step);
        mme.assert_fields(&eca, &json!({"name": case.check["name"]}));
        mme.assert_fields(
            &eca,
            &json!({"session_id_echoed": true, "e_bit": false, "auth_session_state": 1,
                    "origin_host": EIR_HOST, "origin_realm": EIR_REALM}),
        );
        mme.assert_fields(&eca, &case.answer);
    }

    let dwa = mme.next("dwa", step);
    mme.assert_fields(
        &dwa,
        &json!({"result_code": 2001, "e_bit": false, "origin_host": EIR_HOST}),
    );

    // the script idles 9 s: the EIR's 6 s (± 2 s) watchdog must fire, and the library answers it
    let idle = mme.next("dwr_from_eir", step);
    let count = idle["count"].as_u64().unwrap();
    let answered = idle["answered"].as_u64().unwrap();
    assert!(count >= 1 && answered >= 1, "{idle}\n{}", mme.transcript());
    assert!(
        idle["answer_result_codes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|rc| rc == 2001),
        "{idle}"
    );

    // the connection is open and idle: what the operator's monitoring sees
    mme.next("waiting_for_dpr", step);
    let metrics = eir.metrics();
    for (series, holds) in [
        (
            r#"imeidb_checks_total{interface="s13",result="blacklisted"}"#.to_owned(),
            (|v| v >= 2.0) as fn(f64) -> bool,
        ),
        (
            format!(r#"imeidb_diameter_peer_connections{{peer="{MME_HOST}"}}"#),
            |v| v == 1.0,
        ),
        (
            format!(r#"imeidb_diameter_peer_last_watchdog_timestamp_seconds{{peer="{MME_HOST}"}}"#),
            |v| v > 0.0,
        ),
    ] {
        let value = sample(&metrics, &series);
        assert!(holds(value), "{series} is {value}:\n{metrics}");
    }

    // SIGTERM: the EIR says goodbye with a DPR (REBOOTING) and closes after the DPA
    let stopping = std::thread::spawn(move || eir.stop());
    let dpr = mme.next("dpr", Duration::from_secs(15));
    mme.assert_fields(
        &dpr,
        &json!({"disconnect_cause": 0, "origin_host": EIR_HOST, "dpa_sent_result_code": 2001}),
    );
    mme.next("closed", step);
    let exit = wait_deadline(&mut mme.child, step);
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(0),
        "mme.py did not exit 0\n{}",
        mme.transcript()
    );

    let (status, log) = stopping.join().unwrap();
    assert!(status.success(), "server exit {status:?}\n{log}");
    assert_log_private_and_peer_seen(&log);
}

// ---------------------------------------------------------------------------------------------
// Test 2: Wireshark's dissector
// ---------------------------------------------------------------------------------------------

/// A Diameter client on a plain socket, recording the conversation message by message.
struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
    next_id: u32,
    /// Each message, with whether this side (the client) sent it.
    conversation: Vec<(bool, Vec<u8>)>,
}

impl Peer {
    fn connect(eir: SocketAddr) -> Peer {
        let stream = TcpStream::connect(eir).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Peer {
            stream,
            buf: Vec::new(),
            next_id: 0x5100_0000,
            conversation: Vec::new(),
        }
    }

    /// A request of this peer: header, the Session-Id if any (first, RFC 6733 §8.8),
    /// Origin-Host and Origin-Realm, then what `avps` writes.
    fn request(
        &mut self,
        command: u32,
        application: u32,
        session: Option<&str>,
        avps: impl FnOnce(&mut Vec<u8>),
    ) -> Vec<u8> {
        self.next_id += 1;
        // S13's requests may be relayed (TS 29.272 §7.2.19); the base protocol's may not
        let mut bits = flags::REQUEST;
        if application != dict::BASE_APPLICATION {
            bits |= flags::PROXIABLE;
        }
        let mut out = Vec::new();
        let start = codec::begin(
            &mut out,
            bits,
            command,
            application,
            self.next_id,
            self.next_id,
        );
        if let Some(session) = session {
            codec::put(&mut out, avp::SESSION_ID, session.as_bytes());
        }
        codec::put(&mut out, avp::ORIGIN_HOST, MME_HOST.as_bytes());
        codec::put(&mut out, avp::ORIGIN_REALM, MME_REALM.as_bytes());
        avps(&mut out);
        codec::finish(&mut out, start);
        out
    }

    /// Sends `request` and reads its answer (the next message on the stream).
    fn exchange(&mut self, request: Vec<u8>) -> Vec<u8> {
        self.stream.write_all(&request).unwrap();
        let sent = codec::Header::read(&request).unwrap();
        self.conversation.push((true, request));
        let answer = self.read_message();
        let header = codec::Header::read(&answer).unwrap();
        assert!(
            !header.is_request()
                && header.command == sent.command
                && header.hop_by_hop == sent.hop_by_hop,
            "the answer to command {} is {header:?}",
            sent.command
        );
        self.conversation.push((false, answer.clone()));
        answer
    }

    /// The next whole message the server sends.
    fn read_message(&mut self) -> Vec<u8> {
        loop {
            if let Some(length) =
                codec::frame(&self.buf, imeidb::diameter::MAX_MESSAGE_BYTES).unwrap()
            {
                if self.buf.len() >= length {
                    return self.buf.drain(..length).collect();
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the server closed the connection mid-conversation");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Closes the connection; nothing may be left unread.
    fn close(mut self) -> Vec<(bool, Vec<u8>)> {
        self.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = self.stream.read_to_end(&mut rest);
        assert!(
            self.buf.is_empty() && rest.is_empty(),
            "the server sent {} bytes past the DPA",
            self.buf.len() + rest.len()
        );
        self.conversation
    }
}

/// An ECR for `imei` (with a Software-Version and a home IMSI).
fn ecr(peer: &mut Peer, n: u32, imei: &str) -> Vec<u8> {
    let session = format!("{MME_HOST};1700000000;{n}");
    peer.request(
        command::ME_IDENTITY_CHECK,
        dict::S13_APPLICATION,
        Some(&session),
        |out| {
            // in the order of TS 29.272 §7.2.19
            let group = codec::begin_group(out, avp::VENDOR_SPECIFIC_APPLICATION_ID);
            codec::put_u32(out, avp::VENDOR_ID, dict::VENDOR_3GPP);
            codec::put_u32(out, avp::AUTH_APPLICATION_ID, dict::S13_APPLICATION);
            codec::finish_group(out, group);
            codec::put_u32(out, avp::AUTH_SESSION_STATE, dict::NO_STATE_MAINTAINED);
            codec::put(out, avp::DESTINATION_HOST, EIR_HOST.as_bytes());
            codec::put(out, avp::DESTINATION_REALM, EIR_REALM.as_bytes());
            let group = codec::begin_group(out, avp::TERMINAL_INFORMATION);
            codec::put(out, avp::IMEI, imei.as_bytes());
            codec::put(out, avp::SOFTWARE_VERSION, b"01");
            codec::finish_group(out, group);
            codec::put(out, avp::USER_NAME, HOME_IMSI.as_bytes());
        },
    )
}

/// Fails (never skips) when tshark is not installed; returns its version line.
fn require_tshark() -> String {
    let out = Command::new("tshark")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run tshark ({e}); {INSTALL}"));
    assert!(out.status.success(), "tshark --version failed; {INSTALL}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `tshark -r FILE ARGS`: its stdout; it must succeed.
fn tshark(pcap: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tshark ({e}); {INSTALL}"));
    assert!(
        out.status.success(),
        "tshark {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A classic libpcap file (Ethernet) of one TCP connection, 127.0.0.1:40000 (the client) to
/// 127.0.0.1:3868: handshake, one segment per message with the sequence and acknowledgement
/// numbers a real stack would use, and the close. IP and TCP checksums are computed (tshark
/// does not check them unless asked; the test asks).
struct Pcap {
    records: Vec<Vec<u8>>,
    /// Next sequence number of the client and of the server.
    next_seq: [u32; 2],
}

const CLIENT_PORT: u16 = 40000;
const DIAMETER_PORT: u16 = 3868;
const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

impl Pcap {
    /// The handshake.
    fn open() -> Pcap {
        let mut pcap = Pcap {
            records: Vec::new(),
            next_seq: [0x1000_0000, 0x7000_0000],
        };
        pcap.segment(true, SYN, &[]);
        pcap.segment(false, SYN | ACK, &[]);
        pcap.segment(true, ACK, &[]);
        pcap
    }

    /// One TCP segment, from the client or from the server.
    fn segment(&mut self, from_client: bool, bits: u8, payload: &[u8]) {
        let (me, other) = if from_client { (0, 1) } else { (1, 0) };
        let (src_port, dst_port) = if from_client {
            (CLIENT_PORT, DIAMETER_PORT)
        } else {
            (DIAMETER_PORT, CLIENT_PORT)
        };
        let seq = self.next_seq[me];
        let ack = if bits & ACK != 0 {
            self.next_seq[other]
        } else {
            0
        };
        self.next_seq[me] = seq
            .wrapping_add(payload.len() as u32)
            .wrapping_add(u32::from(bits & (SYN | FIN) != 0));

        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend_from_slice(&src_port.to_be_bytes());
        tcp.extend_from_slice(&dst_port.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.extend_from_slice(&[5 << 4, bits]);
        tcp.extend_from_slice(&65535u16.to_be_bytes()); // window
        tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        tcp.extend_from_slice(payload);
        let loopback = [127, 0, 0, 1];
        let mut pseudo = Vec::with_capacity(12 + tcp.len());
        pseudo.extend_from_slice(&loopback);
        pseudo.extend_from_slice(&loopback);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(&tcp);
        let sum = checksum(&pseudo);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());

        let mut ip = Vec::with_capacity(20);
        ip.extend_from_slice(&[0x45, 0]);
        ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&(self.records.len() as u16 + 1).to_be_bytes()); // identification
        ip.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]); // DF, TTL 64, TCP, checksum
        ip.extend_from_slice(&loopback);
        ip.extend_from_slice(&loopback);
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());

        let mut frame = vec![0u8; 12]; // destination and source MAC
        frame.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&tcp);
        self.records.push(frame);
    }

    /// The close: the client's FIN, the server's, the last ACK.
    fn close(&mut self) {
        self.segment(true, FIN | ACK, &[]);
        self.segment(false, FIN | ACK, &[]);
        self.segment(true, ACK, &[]);
    }

    /// The file, one record a millisecond apart.
    fn write(&self, path: &Path) {
        let mut file = Vec::new();
        file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        file.extend_from_slice(&2u16.to_le_bytes());
        file.extend_from_slice(&4u16.to_le_bytes());
        file.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        file.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        file.extend_from_slice(&65_535u32.to_le_bytes()); // snaplen
        file.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        for (i, frame) in self.records.iter().enumerate() {
            let usecs = i as u32 * 1000;
            file.extend_from_slice(&1_700_000_000u32.to_le_bytes());
            file.extend_from_slice(&usecs.to_le_bytes());
            file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            file.extend_from_slice(frame);
        }
        std::fs::write(path, file).unwrap();
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The conversation `tshark_decodes_every_answer_as_s13` has with the server, as a pcap file.
fn record_conversation(eir: SocketAddr, path: &Path) {
    let mut peer = Peer::connect(eir);
    let cer = peer.request(
        command::CAPABILITIES_EXCHANGE,
        dict::BASE_APPLICATION,
        None,
        |out| {
            codec::put_address(
                out,
                avp::HOST_IP_ADDRESS,
                std::net::IpAddr::from([127, 0, 0, 1]),
            );
            codec::put_u32(out, avp::VENDOR_ID, 0);
            codec::put(out, avp::PRODUCT_NAME, b"imeidb-e2e");
            codec::put_u32(out, avp::SUPPORTED_VENDOR_ID, dict::VENDOR_3GPP);
            codec::put_u32(out, avp::AUTH_APPLICATION_ID, dict::S13_APPLICATION);
        },
    );
    peer.exchange(cer);
    for (n, imei) in [
        registered().to_string(),
        stolen().to_string(),
        unlisted().to_string(),
        "3529061100".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let request = ecr(&mut peer, n as u32, imei);
        peer.exchange(request);
    }
    let dwr = peer.request(
        command::DEVICE_WATCHDOG,
        dict::BASE_APPLICATION,
        None,
        |_| {},
    );
    peer.exchange(dwr);
    let dpr = peer.request(
        command::DISCONNECT_PEER,
        dict::BASE_APPLICATION,
        None,
        |out| codec::put_u32(out, avp::DISCONNECT_CAUSE, 2), // DO_NOT_WANT_TO_TALK_TO_YOU
    );
    peer.exchange(dpr);

    let mut pcap = Pcap::open();
    for (from_client, message) in peer.close() {
        pcap.segment(from_client, PSH | ACK, &message);
    }
    pcap.close();
    pcap.write(path);
}

#[test]
fn tshark_decodes_every_answer_as_s13() {
    let version = require_tshark();
    let eir = Eir::start(30);
    let pcap = eir.dir.path().join("s13.pcap");
    record_conversation(eir.diameter, &pcap);

    let fields = tshark(
        &pcap,
        &[
            "-Y",
            "diameter",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "diameter.cmd.code",
            "-e",
            "diameter.flags.request",
            "-e",
            "diameter.Result-Code",
            "-e",
            "diameter.Equipment-Status",
            "-e",
            "diameter.Experimental-Result-Code",
            "-E",
            "separator=;",
        ],
    );
    let rows: Vec<&str> = fields.lines().collect();
    // frame; command; request; Result-Code; Equipment-Status; Experimental-Result-Code. Frames
    // 1 to 3 are the handshake: one segment a message, in the order they were exchanged.
    let expected = [
        "4;257;1;;;",      // CER
        "5;257;0;2001;;",  // CEA
        "6;324;1;;;",      // ECR, registered
        "7;324;0;2001;0;", // ECA: WHITELISTED
        "8;324;1;;;",      // ECR, stolen
        "9;324;0;2001;1;", // ECA: BLACKLISTED
        "10;324;1;;;",     // ECR, on neither list
        "11;324;0;;;5422", // ECA: DIAMETER_ERROR_EQUIPMENT_UNKNOWN (vendor 10415)
        "12;324;1;;;",     // ECR, IMEI too short
        "13;324;0;5004;;", // ECA: DIAMETER_INVALID_AVP_VALUE
        "14;280;1;;;",     // DWR
        "15;280;0;2001;;", // DWA
        "16;282;1;;;",     // DPR
        "17;282;0;2001;;", // DPA
    ];
    assert_eq!(rows, expected, "{version}\n{fields}");

    // and by name, as an operator reads it: Wireshark 4.0's dictionary calls command 324
    // "3GPP-ME-Identity-Check"
    let verbose = tshark(&pcap, &["-V"]);
    let named = verbose
        .lines()
        .filter(|l| l.trim() == "Command Code: 3GPP-ME-Identity-Check (324)")
        .count();
    assert_eq!(named, 8, "{verbose}");
    for decoded in [
        "Equipment-Status: WHITELISTED (0)",
        "Equipment-Status: BLACKLISTED (1)",
        "Experimental-Result-Code: DIAMETER_ERROR_EQUIPMENT_UNKNOWN (5422)",
        "Result-Code: DIAMETER_INVALID_AVP_VALUE (5004)",
    ] {
        assert!(verbose.contains(decoded), "no {decoded:?} in:\n{verbose}");
    }

    // nothing malformed, no expert warning or error, in any layer. The capture's checksums
    // are real, so they are checked too: a wrong one is an expert error, which shows this
    // filter does catch what it looks for. (TCP's own chats and notes on the handshake and
    // the close are below warning.)
    let complaints = tshark(
        &pcap,
        &[
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-Y",
            "_ws.malformed || _ws.expert.severity >= warning",
        ],
    );
    assert!(
        complaints.trim().is_empty(),
        "tshark found malformed packets or expert warnings:\n{complaints}\n{}",
        tshark(&pcap, &["-q", "-z", "expert"])
    );

    let (status, log) = eir.stop();
    assert!(status.success(), "server exit {status:?}\n{log}");
    assert_log_private_and_peer_seen(&log);
}
