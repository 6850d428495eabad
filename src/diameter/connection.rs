//! One peer connection: the capabilities exchange that admits it (RFC 6733 §5.3), then
//! requests answered as they arrive (many outstanding at once: every complete message in a
//! read is answered, its ECRs looked up together, and the answers go out in one write),
//! watchdogs both ways (RFC 3539), and disconnection (RFC 6733 §5.4) when the peer asks or
//! this node shuts down.
//!
//! A connection never hangs: the CER must come within [`CER_TIMEOUT`]; an open connection
//! silent for the watchdog interval gets a DWR and is closed if the next interval passes
//! without a word; a write that the peer does not read within the interval closes it; a
//! message that cannot be framed is answered (when its header can be read) and closes it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::admission::{PeerPlace, SilentPlace};
use super::base::{Next, Peering};
use super::codec::{self, HEADER_LEN, Message};
use super::dict::command;
use super::metrics::Refusal;
use super::{CER_TIMEOUT, MAX_MESSAGE_BYTES, MAX_QUEUED_ANSWERS, Node};
use crate::registry::CHECKS_AT_ONCE;

/// Bytes asked of the socket per read, once admitted: many pipelined ECRs (about 200 bytes
/// each) at once.
const READ_CHUNK: usize = 64 * 1024;

/// The buffer of a connection that has not exchanged capabilities: a CER is a few hundred
/// bytes; a larger one grows it (up to one message).
const FIRST_CHUNK: usize = 4 * 1024;

/// How long a refused peer gets to read its CEA before the connection is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// How long a peer that sent a DPR (and got its DPA) has to close the connection itself.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// How the capabilities exchange ended without admitting the connection.
enum NotAdmitted {
    /// Refused with an answer (in `out`) the peer should read before the close.
    Answered(Refusal),
    /// Closed without a word (silent, evicted, not a CER, shutting down).
    Dropped(Refusal),
}

/// Serves one accepted connection until it closes; with `tls`, after its handshake.
pub(super) async fn serve(
    node: Arc<Node>,
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<TlsAcceptor>,
    mut stopping: watch::Receiver<bool>,
) {
    let local = stream
        .local_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let Some(silent) = node.admission.silent(remote.ip()) else {
        refused(&node, remote, Refusal::SilentPerSource);
        return;
    };
    let Some(tls) = tls else {
        return serve_on(&node, stream, remote, local, silent, stopping, CER_TIMEOUT).await;
    };
    // the handshake is part of the silent time: bounded by the CER's timeout and evictable
    let started = tokio::time::Instant::now();
    let handshake = tokio::select! {
        done = tls.accept(stream) => done.map_err(|_| Refusal::TlsHandshake),
        () = silent.evicted.notified() => Err(Refusal::Evicted),
        () = tokio::time::sleep(CER_TIMEOUT) => Err(Refusal::TlsHandshake),
        // shutting down: as a silent TCP connection is dropped
        _ = stopping.changed() => Err(Refusal::NoCapabilitiesExchange),
    };
    match handshake {
        Ok(stream) => {
            let left = CER_TIMEOUT.saturating_sub(started.elapsed());
            serve_on(&node, stream, remote, local, silent, stopping, left).await;
        }
        Err(refusal) => refused(&node, remote, refusal),
    }
}

/// Serves a connection (TCP, or TLS after its handshake) whose CER must come within
/// `cer_timeout`.
pub(super) async fn serve_on<S: AsyncRead + AsyncWrite + Unpin>(
    node: &Node,
    mut stream: S,
    remote: SocketAddr,
    local: IpAddr,
    silent: SilentPlace<'_>,
    mut stopping: watch::Receiver<bool>,
    cer_timeout: Duration,
) {
    let mut buf = BytesMut::with_capacity(FIRST_CHUNK);
    let mut out = Vec::new();
    let admitted = tokio::select! {
        admitted = exchange_capabilities(node, &mut stream, &mut buf, &mut out, remote.ip(), local) => admitted,
        () = silent.evicted.notified() => Err(NotAdmitted::Dropped(Refusal::Evicted)),
        () = tokio::time::sleep(cer_timeout) => Err(NotAdmitted::Dropped(Refusal::NoCapabilitiesExchange)),
        _ = stopping.changed() => Err(NotAdmitted::Dropped(Refusal::NoCapabilitiesExchange)),
    };
    let place = match admitted {
        Ok(place) => place,
        Err(NotAdmitted::Dropped(refusal)) => {
            refused(node, remote, refusal);
            return;
        }
        Err(NotAdmitted::Answered(refusal)) => {
            refused(node, remote, refusal);
            // let the peer read why before the connection goes; the connection keeps its
            // silent place meanwhile, so refusals cannot pile up beyond the silent bound
            let _ = tokio::select! {
                lingered = tokio::time::timeout(REFUSAL_LINGER, async {
                    stream.write_all(&out).await?;
                    stream.shutdown().await?;
                    let mut sink = [0u8; 512];
                    while stream.read(&mut sink).await? > 0 {}
                    std::io::Result::Ok(())
                }) => lingered.ok(),
                () = silent.evicted.notified() => None,
            };
            return;
        }
    };
    drop(silent);
    let peer = place.peer();
    let host = &node.settings.peers.peers()[peer].origin_host;
    if node.admission.may_log(crate::timefmt::now_unix()) {
        tracing::info!(peer = %host, %remote, "Diameter peer connected");
    }
    node.stats.connection(peer, 1);
    buf.reserve(READ_CHUNK);
    let ended = Open {
        node,
        peering: Peering {
            peer,
            remote: remote.ip(),
            local,
        },
        stream: &mut stream,
        buf,
        out,
    }
    .serve(&mut stopping)
    .await;
    node.stats.connection(peer, -1);
    drop(place);
    if node.admission.may_log(crate::timefmt::now_unix()) {
        tracing::info!(peer = %host, %remote, reason = ended, "Diameter peer disconnected");
    }
}

/// Counts a refused connection, and logs it within the log budget (the address, never what
/// the peer sent).
fn refused(node: &Node, remote: SocketAddr, refusal: Refusal) {
    node.stats.refused(refusal);
    let logged = !matches!(refusal, Refusal::Evicted | Refusal::SilentPerSource);
    if logged && node.admission.may_log(crate::timefmt::now_unix()) {
        tracing::warn!(%remote, why = refusal.describe(), "Diameter connection refused");
    }
}

/// Reads the first message; admits the connection if it is a CER from a peer in the table
/// with a place left, and writes the CEA. A refusing CEA is left in `out`.
async fn exchange_capabilities<'n, S: AsyncRead + AsyncWrite + Unpin>(
    node: &'n Node,
    stream: &mut S,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    remote: IpAddr,
    local: IpAddr,
) -> Result<PeerPlace<'n>, NotAdmitted> {
    let dropped = Err(NotAdmitted::Dropped(Refusal::NoCapabilitiesExchange));
    let length = loop {
        match codec::frame(buf, MAX_MESSAGE_BYTES) {
            Ok(Some(length)) if buf.len() >= length => break length,
            Ok(Some(length)) => buf.reserve(length - buf.len()),
            Ok(None) => buf.reserve(HEADER_LEN),
            Err(_) => return dropped,
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return dropped,
            Ok(_) => {}
        }
    };
    let message = Message::new(&buf[..length]).expect("framed");
    let header = message.header;
    if header.command != command::CAPABILITIES_EXCHANGE || !header.is_request() {
        // RFC 6733 §5.6: nothing but a CER is answered before the exchange
        return dropped;
    }
    let place = node
        .answer_cer(out, &message, remote, local, |peer| {
            node.admission.peer(peer)
        })
        .map_err(NotAdmitted::Answered)?;
    buf.advance(length);
    // a CEA that is cut off by an eviction or the timeout is never sent twice: those drop the
    // connection without writing `out` again
    // flushed: a TLS stream holds what it was given until then
    if stream.write_all(out).await.is_err() || stream.flush().await.is_err() {
        return dropped;
    }
    out.clear();
    Ok(place)
}

/// An admitted connection.
struct Open<'a, S> {
    node: &'a Node,
    peering: Peering,
    stream: &'a mut S,
    buf: BytesMut,
    out: Vec<u8>,
}

/// Where the connection stands in its watchdog and disconnection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Serving; `dwr_sent` when this node's DWR awaits an answer.
    Serving { dwr_sent: bool },
    /// This node sent a DPR (shutting down) and serves until the DPA.
    Disconnecting,
    /// The peer sent a DPR and was answered; it closes the connection.
    Released,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Open<'_, S> {
    /// Serves until the connection ends; returns why, for the log.
    async fn serve(mut self, stopping: &mut watch::Receiver<bool>) -> &'static str {
        let watchdog = jittered(self.node.settings.watchdog);
        let mut phase = Phase::Serving { dwr_sent: false };
        let mut last_heard = Instant::now();
        let timer = tokio::time::sleep(watchdog);
        tokio::pin!(timer);
        // what came right behind the CER
        if let Err(why) = self.answer_all(&mut phase, watchdog).await {
            return why;
        }
        loop {
            if *stopping.borrow() && matches!(phase, Phase::Serving { .. }) {
                // shutting down: ask the peer to disconnect, and serve until it agrees
                self.node.disconnect_request(&mut self.out);
                phase = Phase::Disconnecting;
                timer
                    .as_mut()
                    .reset((Instant::now() + self.node.shutdown_grace).into());
                if let Err(why) = self.flush(watchdog).await {
                    return why;
                }
            }
            tokio::select! {
                read = self.stream.read_buf(&mut self.buf) => {
                    match read {
                        Ok(0) => return "closed by the peer",
                        Err(_) => return "connection lost",
                        Ok(_) => {}
                    }
                    last_heard = Instant::now();
                    if let Phase::Serving { dwr_sent: true } = phase {
                        // RFC 3539: any message from the peer shows it is alive
                        phase = Phase::Serving { dwr_sent: false };
                    }
                    let was = phase;
                    if let Err(why) = self.answer_all(&mut phase, watchdog).await {
                        return why;
                    }
                    if phase == Phase::Released && was != Phase::Released {
                        timer.as_mut().reset((Instant::now() + RELEASE_WAIT).into());
                    }
                    if self.buf.capacity() - self.buf.len() < 4096 {
                        self.buf.reserve(READ_CHUNK);
                    }
                }
                () = &mut timer => {
                    match phase {
                        Phase::Disconnecting => return "no DPA within the shutdown grace",
                        Phase::Released => return "the peer did not close after its DPR",
                        Phase::Serving { dwr_sent } => {
                            let quiet = last_heard.elapsed();
                            if quiet < watchdog {
                                timer.as_mut().reset((last_heard + watchdog).into());
                            } else if dwr_sent {
                                return "no answer to the watchdog";
                            } else {
                                self.node.watchdog_request(&mut self.out);
                                phase = Phase::Serving { dwr_sent: true };
                                timer.as_mut().reset((Instant::now() + watchdog).into());
                                if let Err(why) = self.flush(watchdog).await {
                                    return why;
                                }
                            }
                        }
                    }
                }
                // the loop's head sends the DPR
                changed = stopping.changed(), if matches!(phase, Phase::Serving { .. }) => {
                    if changed.is_err() {
                        return "the listener stopped";
                    }
                }
            }
        }
    }

    /// Answers every whole message in the buffer and writes the answers, in pieces of about
    /// [`MAX_QUEUED_ANSWERS`]. `Err(why)` when the connection must close after what was
    /// written (a message that cannot be framed, the peer's DPA, a write that failed).
    async fn answer_all(&mut self, phase: &mut Phase, limit: Duration) -> Result<(), &'static str> {
        loop {
            let answered = self.answer_buffered(phase);
            self.flush(limit).await?;
            if !answered? {
                return Ok(());
            }
        }
    }

    /// Answers the whole messages in the buffer until [`MAX_QUEUED_ANSWERS`] bytes of answers
    /// are queued; `Ok(true)` if whole messages are left. `Err(why)` when the connection must
    /// close after what was queued. ECRs are gathered, up to [`CHECKS_AT_ONCE`], and answered
    /// together ([`Node::answer_ecrs`]); any other message first has the ECRs before it
    /// answered, so the answers keep the requests' order.
    fn answer_buffered(&mut self, phase: &mut Phase) -> Result<bool, &'static str> {
        let mut at = 0;
        let mut ecrs: SmallVec<[Message<'_>; CHECKS_AT_ONCE]> = SmallVec::new();
        // the gathered ECRs' bytes: their answers echo their Session-Id and Proxy-Info, so
        // they count towards the bound on what is queued
        let mut gathered = 0;
        let result = loop {
            let rest = &self.buf[at..];
            if self.out.len() + gathered >= MAX_QUEUED_ANSWERS {
                break Ok(!rest.is_empty());
            }
            let length = match codec::frame(rest, MAX_MESSAGE_BYTES) {
                Ok(Some(length)) if rest.len() >= length => length,
                Ok(_) => break Ok(false),
                Err(error) => {
                    self.node.answer_ecrs(&mut self.out, &ecrs);
                    ecrs.clear();
                    self.node.refuse_unframed(&mut self.out, rest, error);
                    break Err("a message that cannot be framed");
                }
            };
            let message = Message::new(&rest[..length]).expect("framed");
            at += length;
            if Node::is_identity_check(&message) {
                ecrs.push(message);
                gathered += length;
                if ecrs.len() == CHECKS_AT_ONCE {
                    self.node.answer_ecrs(&mut self.out, &ecrs);
                    ecrs.clear();
                    gathered = 0;
                }
                continue;
            }
            self.node.answer_ecrs(&mut self.out, &ecrs);
            ecrs.clear();
            gathered = 0;
            match self.node.handle(&mut self.out, &message, &self.peering) {
                Next::Serve => {}
                Next::WatchdogAnswered | Next::WatchdogReceived => {
                    self.node
                        .stats
                        .watchdog(self.peering.peer, crate::timefmt::now_unix());
                }
                Next::Disconnecting => {
                    *phase = Phase::Released;
                }
                Next::Close => {
                    if *phase == Phase::Disconnecting {
                        break Err("disconnected (DPR answered)");
                    }
                }
            }
        };
        self.node.answer_ecrs(&mut self.out, &ecrs);
        drop(ecrs);
        self.buf.advance(at);
        result
    }

    /// Writes what is queued. A peer that reads nothing for the watchdog interval is closed.
    async fn flush(&mut self, limit: Duration) -> Result<(), &'static str> {
        if self.out.is_empty() {
            return Ok(());
        }
        // flushed too: a TLS stream keeps what the socket did not take in its own buffer
        // until the next write or flush, and the peer may send nothing more until it has
        // its answers
        let written = tokio::time::timeout(limit, async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        })
        .await;
        self.out.clear();
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("connection lost"),
            Err(_) => Err("the peer read nothing for a watchdog interval"),
        }
    }
}

/// RFC 3539 §3.4.1: each connection's watchdog interval varies by up to ±2 s around the
/// configured one (of at least 6 s), so that a node's many connections do not all send their
/// DWRs at once. Shorter intervals (tests) are kept as they are.
fn jittered(interval: Duration) -> Duration {
    if interval < Duration::from_secs(6) {
        return interval;
    }
    // not secret, just spread: the clock's nanoseconds are random enough
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    interval - Duration::from_secs(2) + Duration::from_millis(u64::from(nanos % 4001))
}
