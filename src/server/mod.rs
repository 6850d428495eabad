//! The HTTP server: HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on one port, or both over
//! TLS (rustls, ALPN `h2` and `http/1.1`) when a certificate is configured, with the
//! connection, header, body and idle limits from config, and graceful shutdown.
//!
//! Cleartext HTTP/1.1 connections start on the *direct path* (`direct.rs`): the requests
//! that never wait (network checks, operations, public lookups) are read with `httparse` and
//! answered without hyper; the first request that is anything else hands the connection to
//! hyper, from that request's first byte, for the rest of its life. `server.direct_path =
//! false` gives every connection to hyper from the start.
//!
//! [`run`] takes the listener and a shutdown future, so tests pass a oneshot and `main` passes
//! SIGTERM/ctrl-c. Shape: one task per connection holding a semaphore permit (at most
//! `max_connections` at once; further clients wait in the kernel's backlog), accept errors
//! (e.g. out of file descriptors) retried with backoff instead of spinning or exiting.
//!
//! Idle and stalled connections, and shutdown: one *reaper* task watches every connection. A
//! connection counts its reads, writes and requests; the reaper samples the counts four times
//! per idle timeout and asks a connection to close gracefully (every connection, at shutdown)
//! when, for a whole timeout, either
//! - it moved no byte either way (an idle keep-alive connection, a stalled upload), or
//! - no request started, nothing was written and no request was being served (a client
//!   trickling a request head byte by byte to hold a connection: "slowloris"; it is closed at
//!   once rather than gracefully, since hyper would wait for its head to end).
//!
//! A connection serving a request is closed at once only when it moved no byte for two
//! timeouts: a request body that stopped coming.
//!
//! Why not hyper's `header_read_timeout` and a `select!` per connection, as before: the timer
//! made hyper run its connection loop a second time per request and arm a fresh timer each
//! time (1,460 of 13,380 instructions per single check, measured with callgrind), and the
//! `select!` over the connection, a shutdown receiver and an idle timer, with a clock read per
//! read and write, cost 690 more. The reaper costs a check a few counter updates.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::api::{self, AppState, Routed};
use crate::config::ServerLimits;

mod direct;

/// Runs the direct path (see `server/direct.rs`) on `bytes` as a client's first bytes, and
/// checks what it promises: only whole, bodiless HTTP/1.1 `GET` heads answered, one whole
/// response each. For fuzzing; `Err` says which promise was broken.
#[doc(hidden)]
pub fn check_direct_path(state: &AppState, bytes: &[u8]) -> Result<(), String> {
    direct::check_answers(state, bytes)
}

/// Why the TLS certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {}: {problem}", path.display())]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("the certificate and key cannot be used together: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
}

/// A TLS acceptor from a PEM certificate chain and a PEM private key, offering `h2` and
/// `http/1.1` by ALPN.
///
/// # Errors
/// [`TlsError`] naming the file and the problem.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let pem = |what, path: &Path, problem: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        problem,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem("certificate", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem("certificate", cert, "no CERTIFICATE block".into()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| pem("private key", key, e.to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub use crate::net::{LISTEN_BACKLOG, accept, listen};

/// Serves `listener` until `shutdown` completes, then stops accepting, lets in-flight requests
/// finish for up to `limits.shutdown_grace`, and returns. With `tls`, every connection is a
/// TLS connection (a handshake that does not finish within the idle timeout is dropped).
///
/// # Errors
/// None today: accept errors are logged and retried. The `Result` leaves room for listener
/// set-up errors.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    limits: &ServerLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    // one allocation shared by every request: cloning the state itself would be a dozen
    // reference-count updates per request
    let state = Arc::new(state);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let watches = Arc::new(Watches::default());
    let reaper = tokio::spawn(reap_idle(Arc::clone(&watches), limits.idle_timeout));
    let builder = Arc::new(connection_builder(limits));
    let idle_timeout = limits.idle_timeout;
    let direct = limits.direct_path.then_some(limits.max_header_bytes);
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            (stream, peer) = accept(&listener) => (stream, peer.ip()),
            () = &mut shutdown => break,
        };
        let builder = Arc::clone(&builder);
        let state = Arc::clone(&state);
        let watch = watches.add();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, &builder, state, watch, direct).await,
                Some(tls) => match tokio::time::timeout(idle_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        serve_connection(stream, peer, &builder, state, watch, None).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                },
            }
            drop(permit);
        });
    }

    state.ready.store(false, Ordering::Relaxed);
    drop(listener);
    reaper.abort();
    watches.close_all();
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            open = limits.max_connections - permits.available_permits(),
            "shutdown grace period over; closing the remaining connections"
        );
    }
    Ok(())
}

fn connection_builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // no header_read_timeout: the reaper closes slow heads (see the module doc)
    builder.http1().max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Serves one connection: first on the direct path when `direct` gives its largest head (see
/// `direct.rs`), then, from the first request that path leaves, with hyper.
async fn serve_connection<S>(
    stream: S,
    peer: IpAddr,
    builder: &auto::Builder<TokioExecutor>,
    state: Arc<AppState>,
    watch: Arc<Watch>,
    direct: Option<usize>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut stream = Tracked {
        inner: stream,
        watch: Arc::clone(&watch),
        unread: Bytes::new(),
    };
    if let Some(max_head) = direct {
        match serve_direct(&mut stream, peer, &state, &watch, max_head).await {
            Ok(direct::Ended::HandOver(unread)) => stream.unread = unread,
            Ok(direct::Ended::Closed) => return,
            Err(e) => {
                tracing::debug!(error = %e, "connection ended with an error");
                return;
            }
        }
    }
    let io = TokioIo::new(stream);
    let serving = Arc::clone(&watch);
    let service = service_fn(move |request| {
        // answered here, before hyper reads again: see `api::route_now`. A check is answered
        // by the time it could be counted as being served, so it only counts as started (no
        // reference counts, no shared counter updated twice).
        let waiting = match api::route_now(&state, peer, request) {
            Routed::Answered(response) => {
                serving.note_started();
                Ok(response)
            }
            Routed::Waits(request) => Err((request, Serving::start(&serving), Arc::clone(&state))),
        };
        async move {
            Ok::<_, Infallible>(match waiting {
                Ok(response) => response,
                // boxed: unboxed, the waiting routes made every check's future kilobytes
                // to build and move
                Err((request, _served, state)) => {
                    Box::pin(api::route_waiting(&state, peer, request)).await
                }
            })
        }
    });
    let mut connection = std::pin::pin!(builder.serve_connection(io, service));
    let mut closing = false;
    // The connection, closed once the reaper asks: a poll reads one flag.
    let ended = std::future::poll_fn(|cx| {
        watch.keep_waker(cx);
        match watch.close.load(Ordering::Acquire) {
            CLOSE_NOW => return Poll::Ready(Ok(())), // dropping the connection closes it
            CLOSE_GRACEFULLY if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ => {}
        }
        connection.as_mut().poll(cx)
    });
    if let Err(e) = ended.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The direct path on one connection, closed when the reaper asks unless a response is being
/// written: the direct path answers every request it reads at once, so between writes it
/// holds none.
async fn serve_direct<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut Tracked<S>,
    peer: IpAddr,
    state: &AppState,
    watch: &Watch,
    max_head: usize,
) -> io::Result<direct::Ended> {
    let writing = AtomicBool::new(false);
    let mut served = std::pin::pin!(direct::serve(
        stream, state, peer, watch, max_head, &writing
    ));
    std::future::poll_fn(|cx| {
        watch.keep_waker(cx);
        let poll = served.as_mut().poll(cx);
        let asked = watch.close.load(Ordering::Acquire);
        match poll {
            Poll::Pending if asked == CLOSE_NOW => Poll::Ready(Ok(direct::Ended::Closed)),
            Poll::Pending if asked != 0 && !writing.load(Ordering::Relaxed) => {
                Poll::Ready(Ok(direct::Ended::Closed))
            }
            poll => poll,
        }
    })
    .await
}

/// One connection as the reaper sees it.
#[derive(Default)]
struct Watch {
    /// Reads that moved bytes so far. Only the connection's task writes it (and `written`).
    read: AtomicU64,
    /// Writes that moved bytes so far.
    written: AtomicU64,
    /// Requests whose head was read, so far. Only the connection's task writes it.
    started: AtomicU64,
    /// Requests being served (HTTP/2 serves several at once, on other tasks).
    in_flight: AtomicU64,
    /// Set by the reaper: [`CLOSE_GRACEFULLY`] or [`CLOSE_NOW`].
    close: AtomicU8,
    /// The connection task's waker, kept at its first poll so the reaper can wake it to close.
    /// A task's waker stays valid for the task's life, so it is stored once and the task's
    /// polls touch nothing.
    waker: OnceLock<Waker>,
}

impl Watch {
    #[inline]
    fn note_read(&self) {
        bump(&self.read);
    }

    #[inline]
    fn note_written(&self) {
        bump(&self.written);
    }

    /// Keeps the connection task's waker for the reaper, at the task's first poll.
    #[inline]
    fn keep_waker(&self, cx: &Context<'_>) {
        if self.waker.get().is_none() {
            let _ = self.waker.set(cx.waker().clone());
            // pairs with the fence in `ask_to_close`: the reaper sees the waker or this poll
            // sees the flag
            fence(Ordering::SeqCst);
        }
    }

    /// A request's head was read. Called on the connection's task, as hyper calls the service
    /// there for HTTP/1.1 and HTTP/2 alike.
    #[inline]
    fn note_started(&self) {
        bump(&self.started);
    }

    /// Asks the connection to close: `how` is [`CLOSE_GRACEFULLY`] or [`CLOSE_NOW`].
    fn ask_to_close(&self, how: u8) {
        self.close.fetch_max(how, Ordering::Release);
        fence(Ordering::SeqCst);
        if let Some(waker) = self.waker.get() {
            waker.wake_by_ref();
        }
    }
}

/// Adds one to a counter only the connection's task writes: no read-modify-write instruction.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// A request whose route waits, being served: counted in its connection's [`Watch`] until
/// dropped (on whichever task runs it).
struct Serving(Arc<Watch>);

impl Serving {
    fn start(watch: &Arc<Watch>) -> Serving {
        watch.note_started();
        watch.in_flight.fetch_add(1, Ordering::Relaxed);
        Serving(Arc::clone(watch))
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every open connection's [`Watch`], for the reaper and for shutdown.
#[derive(Default)]
struct Watches(Mutex<Vec<WatchedConnection>>);

struct WatchedConnection {
    watch: Weak<Watch>,
    /// `read + written` at the reaper's last tick, and for how many ticks in a row it had not
    /// changed.
    seen_moved: u64,
    quiet_ticks: u32,
    /// `written + started` at the last tick, and for how many ticks in a row it had not
    /// changed while no request was being served.
    seen_progress: u64,
    stalled_ticks: u32,
}

/// Ticks per idle timeout: a connection is closed after one to 1.25 idle timeouts of silence.
const TICKS_PER_TIMEOUT: u32 = 4;

/// Finish the requests being served, then close (hyper's graceful shutdown).
const CLOSE_GRACEFULLY: u8 = 1;
/// Close without waiting: for an idle or stalled connection that serves no request and did not
/// close gracefully within a tick (hyper waits for a request whose head never ends).
const CLOSE_NOW: u8 = 2;

impl Watches {
    fn add(&self) -> Arc<Watch> {
        let watch = Arc::new(Watch::default());
        let mut watched = self.lock();
        // Closed connections leave at the next tick, or here before the list would grow: many
        // short connections between two ticks keep it within twice the open ones.
        if watched.len() == watched.capacity() {
            watched.retain(|c| c.watch.strong_count() > 0);
        }
        watched.push(WatchedConnection {
            watch: Arc::downgrade(&watch),
            // no count can equal these, so the first tick, however soon after the connection
            // came, only records where it starts: a silent new connection is closed after one
            // to 1.25 idle timeouts, like any other, not after three quarters of one
            seen_moved: u64::MAX,
            quiet_ticks: 0,
            seen_progress: u64::MAX,
            stalled_ticks: 0,
        });
        watch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<WatchedConnection>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One reaper tick: forgets closed connections and asks those idle or stalled (see the
    /// module doc) for [`TICKS_PER_TIMEOUT`] ticks to close (again at every later tick: asking
    /// is idempotent).
    fn tick(&self) {
        self.lock().retain_mut(|c| {
            let Some(watch) = c.watch.upgrade() else {
                return false;
            };
            let written = watch.written.load(Ordering::Relaxed);
            let moved = watch.read.load(Ordering::Relaxed) + written;
            let progress = written + watch.started.load(Ordering::Relaxed);
            let serving = watch.in_flight.load(Ordering::Relaxed) > 0;
            c.quiet_ticks = if moved == c.seen_moved {
                c.quiet_ticks + 1
            } else {
                0
            };
            c.stalled_ticks = if progress == c.seen_progress && !serving {
                c.stalled_ticks + 1
            } else {
                0
            };
            c.seen_moved = moved;
            c.seen_progress = progress;
            let ticks = c.quiet_ticks.max(c.stalled_ticks);
            // a connection that moves bytes but starts no request is trickling a head: it gets
            // no grace (hyper would wait for the head to end), so it is closed within 1.25
            // timeouts like a silent one
            let trickling = c.stalled_ticks >= TICKS_PER_TIMEOUT && c.quiet_ticks < c.stalled_ticks;
            if (ticks > TICKS_PER_TIMEOUT || trickling) && !serving {
                watch.ask_to_close(CLOSE_NOW);
            } else if c.quiet_ticks > 2 * TICKS_PER_TIMEOUT {
                // a request in flight on a connection that moved no byte for two timeouts
                // waits on its client (a body that stopped coming): it is not worth the
                // connection slot and the bytes it holds
                watch.ask_to_close(CLOSE_NOW);
            } else if ticks >= TICKS_PER_TIMEOUT {
                watch.ask_to_close(CLOSE_GRACEFULLY);
            }
            true
        });
    }

    /// Asks every open connection to close gracefully (shutdown).
    fn close_all(&self) {
        for c in self.lock().iter() {
            if let Some(watch) = c.watch.upgrade() {
                watch.ask_to_close(CLOSE_GRACEFULLY);
            }
        }
    }
}

/// Closes connections idle for `idle_timeout` (see the module doc). Runs until aborted.
async fn reap_idle(watches: Arc<Watches>, idle_timeout: Duration) {
    let period = (idle_timeout / TICKS_PER_TIMEOUT).max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        watches.tick();
    }
}

/// A stream that counts its reads and writes for the reaper.
struct Tracked<S> {
    inner: S,
    watch: Arc<Watch>,
    /// Bytes the direct path read and left to hyper: read before the socket.
    unread: Bytes,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.unread.is_empty() {
            // counted as read when the direct path read them
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread.split_to(n));
            if self.unread.is_empty() {
                // let go of the direct path's read buffer
                self.unread = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.note_read();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.note_written();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.note_written();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close_of(watch: &Watch) -> u8 {
        watch.close.load(Ordering::Relaxed)
    }

    #[test]
    fn the_reaper_closes_idle_and_stalled_connections_and_spares_busy_ones() {
        let watches = Watches::default();
        let idle = watches.add();
        let trickling = watches.add(); // reads a byte now and then, nothing else
        let serving = watches.add(); // one long request in flight, nothing moving
        let active = watches.add(); // requests and answers every tick
        let _request = Serving::start(&serving);
        watches.tick(); // where each connection starts: no tick counts before it
        assert_eq!(close_of(&idle), 0);
        for tick in 1..=TICKS_PER_TIMEOUT + 1 {
            trickling.note_read();
            let _ = Serving::start(&active);
            active.note_written();
            watches.tick();
            let expected = match tick {
                t if t < TICKS_PER_TIMEOUT => 0,
                t if t == TICKS_PER_TIMEOUT => CLOSE_GRACEFULLY,
                _ => CLOSE_NOW,
            };
            assert_eq!(close_of(&idle), expected, "idle, tick {tick}");
            let trickled = if tick >= TICKS_PER_TIMEOUT {
                CLOSE_NOW
            } else {
                0
            };
            assert_eq!(close_of(&trickling), trickled, "trickling, tick {tick}");
            let graceful = if tick >= TICKS_PER_TIMEOUT {
                CLOSE_GRACEFULLY
            } else {
                0
            };
            assert_eq!(close_of(&serving), graceful, "serving is never cut off");
            assert_eq!(close_of(&active), 0, "active, tick {tick}");
        }
        // unless nothing moved on it for two timeouts: a body that stopped coming
        for _ in TICKS_PER_TIMEOUT + 1..2 * TICKS_PER_TIMEOUT {
            watches.tick();
        }
        assert_eq!(close_of(&serving), CLOSE_GRACEFULLY);
        watches.tick();
        watches.tick();
        assert_eq!(close_of(&serving), CLOSE_NOW);
    }

    #[test]
    fn closed_connections_leave_the_list() {
        let watches = Watches::default();
        let kept = watches.add();
        for _ in 0..100 {
            drop(watches.add());
        }
        assert!(watches.lock().len() <= 2 * 2, "pruned before growing");
        watches.tick();
        assert_eq!(watches.lock().len(), 1);
        watches.close_all();
        assert_eq!(close_of(&kept), CLOSE_GRACEFULLY);
    }
}
