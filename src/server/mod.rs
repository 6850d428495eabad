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
//! Idle and stalled connections, and shutdown: one *reaper* task watches every connection
//! (`reaper.rs`).

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

use crate::api::{self, AppState, Routed};
use crate::config::ServerLimits;
use crate::web;

mod direct;
mod reaper;

use reaper::{CLOSE_GRACEFULLY, CLOSE_NOW, Serving, Tracked, Watch, Watches, reap_idle};

/// Runs the direct path (see `server/direct.rs`) on `bytes` as a client's first bytes, and
/// checks what it promises: only whole, bodiless HTTP/1.1 `GET` heads answered, one whole
/// response each. For fuzzing; `Err` says which promise was broken.
#[doc(hidden)]
pub fn check_direct_path(state: &AppState, bytes: &[u8]) -> Result<(), String> {
    direct::check_answers(state, bytes)
}

pub use crate::net::tls::TlsError;

/// A TLS acceptor from a PEM certificate chain and a PEM private key, offering `h2` and
/// `http/1.1` by ALPN.
///
/// # Errors
/// [`TlsError`] naming the file and the problem.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let mut config = crate::net::tls::server_config(cert, key, None)?;
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
                    if web::is_page(request.uri().path()) {
                        Box::pin(web::serve(&state, peer, request)).await
                    } else {
                        Box::pin(api::route_waiting(&state, peer, request)).await
                    }
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
