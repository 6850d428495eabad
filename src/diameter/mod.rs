//! The 4G EIR interface: Diameter S13 (3GPP TS 29.272 §5.2.5, ME-Identity-Check) over the
//! Diameter base protocol (RFC 6733), beside the HTTP listener and answering from the same
//! registry with the same decision ([`Registry::check`]).
//!
//! - `codec.rs`: the wire format (framing, AVPs), pure and fuzzed.
//! - `dict.rs`: the commands, AVPs and result codes spoken here.
//! - `peers.rs`: the peer table that authorises nodes (Diameter has no bearer token).
//! - `base.rs`: the base protocol's messages (capabilities exchange, watchdog, disconnect) and
//!   error answers.
//! - `s13.rs`: ME-Identity-Check-Request → Answer.
//! - `connection.rs`: one peer connection's life (RFC 6733 §5.6's responder side, RFC 3539's
//!   watchdog), with many requests outstanding at once.
//! - `metrics.rs`: peer state and refusals.
//!
//! # Who may connect, and what the worst caller can do
//! Anyone who can reach `diameter.listen` may open a TCP connection. A connection from an
//! address no peer table entry admits is closed before it is read. Otherwise the first message
//! must be a CER, within [`CER_TIMEOUT`], naming a peer in the table; anything else closes the
//! connection unanswered, and a CER from an unknown peer gets CEA 3010 and is closed. Until that
//! exchange a connection holds a task, a 4 KiB buffer growing to one message of at most
//! [`MAX_MESSAGE_BYTES`], and one of [`MAX_SILENT`] places, at most [`MAX_SILENT_PER_SOURCE`]
//! per source (`admission.rs`): a client on 10,000 connections from one machine holds 8 places
//! and keeps no MME out. Peers that have exchanged capabilities are trusted operators' nodes;
//! they hold at most `diameter.max_connections` connections between them and
//! `diameter.max_connections_per_peer` each (beyond: CEA 3004), and may send as many checks as
//! the server answers; a connection's queued answers are bounded ([`MAX_QUEUED_ANSWERS`]) and a
//! peer that stops reading them is closed after a watchdog interval. Connections and refusals
//! are logged within a budget of lines a minute; nothing a peer sends is logged with an IMEI or
//! IMSI in it.
//!
//! With `[diameter.tls]` ([`TlsSettings`]) every connection is TLS from its first byte: the
//! handshake runs within the same [`CER_TIMEOUT`] and silent place, and with a peer CA a
//! client without a certificate it signed fails the handshake before any Diameter is read.
//! The worst a reachable stranger does then is cost the server one handshake per connection
//! it opens (bounded like any silent connection; none at all from an address the table does
//! not admit).

mod admission;
pub mod codec;
mod connection;
pub mod dict;
pub mod metrics;
pub mod peers;

mod base;
mod s13;

pub use admission::{MAX_SILENT, MAX_SILENT_PER_SOURCE};
pub use base::{Next, Peering};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::registry::Registry;
use metrics::{DiameterMetrics, Refusal};
use peers::PeerTable;

/// Largest message accepted. An ECR is about 200 bytes and a CER a few hundred; a larger
/// message is refused (5015) and its connection closed, so no peer makes a connection buffer
/// more than this.
pub const MAX_MESSAGE_BYTES: usize = 65_536;

/// How long a new connection has to send its CER.
pub const CER_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes of answers a connection queues before it writes them and reads on: a peer that sends
/// many small requests at once is answered in pieces of about this size.
pub const MAX_QUEUED_ANSWERS: usize = 256 * 1024;

/// The Diameter listener's settings (`[diameter]` in the configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Where to listen; `None` disables Diameter.
    pub listen: Option<SocketAddr>,
    /// TLS from the first byte (RFC 6733 §2.1, port 5658), if configured.
    pub tls: Option<TlsSettings>,
    /// This node's Origin-Host.
    pub origin_host: String,
    /// This node's Origin-Realm: ECRs must be addressed to it.
    pub origin_realm: String,
    /// Product-Name in the CEA.
    pub product_name: String,
    /// Silence on a connection after which a DWR is sent, and after which an unanswered DWR
    /// closes it (RFC 3539's Tw).
    pub watchdog: Duration,
    /// Connections of peers (capabilities exchanged) served at once.
    pub max_connections: usize,
    /// Of those, connections of one peer.
    pub max_connections_per_peer: usize,
    /// Who may connect.
    pub peers: PeerTable,
}

impl Settings {
    /// The peers another machine could claim to be on a listener at `at`: those with no
    /// `address`, on a listener other machines reach. A CER with such a peer's Origin-Host
    /// and realm is admitted from anywhere (with a peer CA, from any holder of one of its
    /// certificates, which do not name the peer), and a claimant that keeps answering
    /// watchdogs holds that peer's connections, so its MMEs get CEA 3004.
    pub fn claimable_peers(&self, at: SocketAddr) -> impl Iterator<Item = &peers::Peer> {
        let exposed = !at.ip().is_loopback();
        self.peers
            .peers()
            .iter()
            .filter(move |peer| exposed && peer.source.is_none())
    }
}

/// `[diameter.tls]`: the listener's certificate and key, and the CA whose certificates
/// peers must present (mutual authentication, as RFC 6733 §13 asks), if given.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert_file: std::path::PathBuf,
    /// PEM private key.
    pub key_file: std::path::PathBuf,
    /// PEM certificates of the CA that signs the peers' certificates.
    pub peer_ca_file: Option<std::path::PathBuf>,
}

/// The TLS acceptor of `[diameter.tls]`: no ALPN; a peer without a certificate of the peer
/// CA, when one is configured, fails the handshake.
///
/// # Errors
/// [`TlsError`](crate::net::tls::TlsError) naming the file and the problem.
pub fn tls_acceptor(
    tls: &TlsSettings,
) -> Result<tokio_rustls::TlsAcceptor, crate::net::tls::TlsError> {
    let config =
        crate::net::tls::server_config(&tls.cert_file, &tls.key_file, tls.peer_ca_file.as_deref())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 3868))),
            tls: None,
            origin_host: "eir.imeidb.localdomain".into(),
            origin_realm: "imeidb.localdomain".into(),
            product_name: "imeidb".into(),
            watchdog: Duration::from_secs(30),
            max_connections: 256,
            max_connections_per_peer: 32,
            peers: PeerTable::default(),
        }
    }
}

/// This Diameter node: its identity, the registry it answers from, and what its connections
/// share. Built once by [`Node::new`].
pub struct Node {
    settings: Settings,
    registry: Registry,
    stats: DiameterMetrics,
    /// Origin-Host and Origin-Realm, encoded once: every message carries them.
    origin: Vec<u8>,
    /// The ECA after its Session-Id, for each answer, encoded once.
    answers: s13::Answers,
    /// Origin-State-Id: the start time, so peers see a restart.
    state_id: u32,
    /// Hop-by-Hop and End-to-End identifiers of the requests this node sends.
    next_id: AtomicU32,
    /// How long a connection waits for the DPA of its DPR at shutdown.
    shutdown_grace: Duration,
    /// The places of silent and admitted connections, and the log budget.
    admission: admission::Admission,
}

impl Node {
    /// The node for `settings`, answering from `registry`, its peer metrics registered in
    /// `metrics` (the checks it answers are counted in the registry's).
    pub fn new(
        settings: Settings,
        registry: Registry,
        metrics: &Metrics,
        shutdown_grace: Duration,
    ) -> Node {
        let stats = DiameterMetrics::new(metrics, &settings.peers);
        let mut origin = Vec::new();
        codec::put(
            &mut origin,
            dict::avp::ORIGIN_HOST,
            settings.origin_host.as_bytes(),
        );
        codec::put(
            &mut origin,
            dict::avp::ORIGIN_REALM,
            settings.origin_realm.as_bytes(),
        );
        let now = crate::timefmt::now_unix();
        Node {
            answers: s13::Answers::new(&origin),
            admission: admission::Admission::new(
                settings.peers.peers().len(),
                settings.max_connections,
                settings.max_connections_per_peer,
            ),
            settings,
            registry,
            stats,
            origin,
            state_id: now as u32,
            // RFC 6733 §3: End-to-End identifiers start from the time, so they do not repeat
            // across restarts
            next_id: AtomicU32::new((now as u32) << 20),
            shutdown_grace,
        }
    }

    /// A fresh identifier for a request this node sends.
    fn next_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Serves Diameter on `listener` until `shutdown` completes; then stops accepting, sends each
/// peer a DPR (Disconnect-Cause REBOOTING), keeps answering until its DPA or the node's
/// shutdown grace, and returns once every connection is closed. With `tls`, a connection is
/// TLS from its first byte; its handshake is part of the time a silent connection has to
/// send its CER.
///
/// # Errors
/// None today: accept errors are logged and retried.
pub async fn run(
    listener: TcpListener,
    node: Arc<Node>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop, stopping) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = crate::net::accept(&listener) => accepted,
            () = &mut shutdown => break,
            // reap finished connections so the set does not grow
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        if !node.settings.peers.admits_address(remote.ip()) {
            node.stats.refused(Refusal::Address);
            drop(stream);
            continue;
        }
        let node = Arc::clone(&node);
        let stopping = stopping.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            connection::serve(node, stream, remote, tls, stopping).await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let deadline = node.shutdown_grace + Duration::from_secs(1);
    if tokio::time::timeout(deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "Diameter shutdown grace over; closing the remaining connections"
        );
        tasks.abort_all();
    }
    Ok(())
}

/// A Diameter listener on `addr` (address reuse on).
///
/// # Errors
/// The socket's errors (the address is in use, not ours, malformed).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    crate::net::listen(addr)
}

/// Answers `bytes` as a peer connection would (the first message as its CER if it is one, the
/// rest as an admitted peer's) and checks every answer: one per request and none per answer,
/// each a well-formed message of the request's command with its Hop-by-Hop and End-to-End
/// identifiers, a Result-Code or Experimental-Result, the E bit exactly on protocol errors.
/// For the `diameter_message` fuzz target and the property tests: whatever a peer sends, this
/// node never answers with something a peer could not read.
///
/// # Errors
/// What is wrong with which answer.
pub fn check_answers(node: &Node, bytes: &[u8]) -> Result<(), String> {
    use codec::Message;
    let mut at = 0;
    let mut out = Vec::new();
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut peering = Peering {
        peer: 0,
        remote: ip,
        local: ip,
    };
    while at < bytes.len() {
        let rest = &bytes[at..];
        let length = match codec::frame(rest, MAX_MESSAGE_BYTES) {
            Ok(Some(length)) if rest.len() >= length => length,
            Ok(_) => return Ok(()),
            Err(error) => {
                out.clear();
                node.refuse_unframed(&mut out, rest, error);
                if rest.len() >= codec::HEADER_LEN {
                    let request = codec::Header::read(rest).expect("a whole header");
                    if request.is_request() {
                        check_answer(&request, &out, error.result_code())?;
                    }
                }
                return Ok(());
            }
        };
        let message = Message::new(&rest[..length]).expect("framed");
        out.clear();
        let header = message.header;
        if at == 0 && header.is_request() && header.command == dict::command::CAPABILITIES_EXCHANGE
        {
            // the rest is served as the connection of the peer it named, if any
            if let Ok(peer) = node.answer_cer(&mut out, &message, ip, ip, Some) {
                peering.peer = peer;
            }
        } else {
            node.handle(&mut out, &message, &peering);
        }
        if header.is_request() {
            check_answer(&header, &out, 0)?;
        } else if !out.is_empty() {
            return Err(format!(
                "an answer (command {}) was answered",
                header.command
            ));
        }
        at += length;
    }
    Ok(())
}

/// Checks that `out` is one well-formed answer to `request` (with `expected` as its result,
/// unless 0).
fn check_answer(request: &codec::Header, out: &[u8], expected: u32) -> Result<(), String> {
    use codec::{Message, flags};
    let length = match codec::frame(out, MAX_MESSAGE_BYTES * 2) {
        Ok(Some(length)) if length == out.len() => length,
        other => {
            return Err(format!(
                "the answer is not one whole message: {other:?}, {} bytes",
                out.len()
            ));
        }
    };
    let answer = Message::new(&out[..length]).expect("framed");
    let h = answer.header;
    if h.is_request()
        || h.command != request.command
        || h.hop_by_hop != request.hop_by_hop
        || h.end_to_end != request.end_to_end
    {
        return Err(format!(
            "the answer's header does not match the request: {h:?} to {request:?}"
        ));
    }
    answer
        .validate(dict::is_grouped)
        .map_err(|e| format!("the answer has a malformed AVP: {e:?}"))?;
    let mut result = None;
    for a in answer.avps().map_while(Result::ok) {
        if a.is(dict::avp::RESULT_CODE) {
            result = a.u32().ok();
        } else if a.is(dict::avp::EXPERIMENTAL_RESULT) {
            result = a
                .group()
                .map_while(Result::ok)
                .find(|i| i.is(dict::avp::EXPERIMENTAL_RESULT_CODE))
                .and_then(|i| i.u32().ok());
        }
    }
    let Some(result) = result else {
        return Err("the answer has no Result-Code or Experimental-Result".into());
    };
    if expected != 0 && result != expected {
        return Err(format!("answered {result}, expected {expected}"));
    }
    if (h.flags & flags::ERROR != 0) != dict::result::is_protocol_error(result) {
        return Err(format!("E bit {:#x} with result {result}", h.flags));
    }
    Ok(())
}
#[cfg(test)]
mod tests;
