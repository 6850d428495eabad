//! `GET /v1/replication/snapshot`: both lists' IMEIs with the number of the last change they
//! include, for a read replica to start from (`replication/feed.rs` says the format).
//!
//! Worst callers: a token without `replicate` gets 403 and an audit entry; an operator's token
//! asking again and again gets at most [`SNAPSHOTS`] scans at once (then 503), each on a
//! blocking thread of its own, never an async worker; a client that stops reading stops the
//! scan (the channel fills, the sender sees it closed).

use std::sync::Arc;

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
            tx.blocking_send(Bytes::from(bytes)).is_ok()
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
