//! `GET /v1/replication/snapshot`: both lists' IMEIs with the number of the last change they
//! include, for a read replica to start from (`replication/feed.rs` says the format).
//!
//! Worst callers: a token without `replicate` gets 403 and an audit entry; an operator's token
//! asking again and again gets at most [`SNAPSHOTS`] scans at once (then 503), each on a
//! blocking thread of its own, never an async worker; a client that reads nothing for 30 s
//! is abandoned (its thread, permit and RocksDB snapshot released). Each snapshot is audited
//! before its first byte leaves.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Either;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::routes::Call;
use super::{ApiError, ChannelBody, HttpResponse, off_worker_as};
use crate::audit::Action;
use crate::replication;
use crate::roles::Permission;

/// Snapshots served at once.
pub const SNAPSHOTS: usize = 2;

/// A snapshot whose client reads nothing for this long is abandoned: its thread, its permit
/// and its RocksDB snapshot are released.
const STALLED: Duration = Duration::from_secs(30);

/// Sends `bytes` unless the receiver is gone or has not made room for `patience`.
fn send_within(
    tx: &tokio::sync::mpsc::Sender<Bytes>,
    mut bytes: Bytes,
    patience: Duration,
) -> bool {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match tx.try_send(bytes) {
            Ok(()) => return true,
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return false,
            Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                if std::time::Instant::now() >= deadline {
                    return false;
                }
                bytes = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// `GET /v1/replication/snapshot`.
pub async fn snapshot(call: Call) -> Result<HttpResponse, ApiError> {
    let who = call.who()?.clone();
    // refused (and audited) before a scan or a thread is taken
    off_worker_as(&call.state, &who, |state, who| {
        Ok(state.registry.require(
            who,
            Permission::Replicate,
            Action::ReplicationSnapshot,
            "replication/snapshot",
        )?)
    })
    .await?;
    let permit = Arc::clone(&call.state.snapshots)
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy {
            detail: "as many snapshots as the server serves at once are being served; ask again shortly",
        })?;
    let (tx, body) = ChannelBody::channel(8);
    let registry = call.state.registry.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let sent = replication::write_snapshot(&registry, &who, |bytes| {
            send_within(&tx, Bytes::from(bytes), STALLED)
        });
        if let Err(e) = sent {
            // the response has begun: it ends early, and the replica's checksum says so
            tracing::error!(error = %e, "a replication snapshot failed after it began");
        }
    });
    let mut response = Response::new(Either::Right(body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}
