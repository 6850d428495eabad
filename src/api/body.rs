//! Reading request bodies: bounded per request (`server.max_body_bytes`) and over every
//! connection at once ([`BODY_BUDGET`]), and parsed as JSON with errors that name what is
//! wrong.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};

use super::{ApiError, AppState};

/// Request bodies of the largest size (`server.max_body_bytes`) the server holds at once
/// while reading them (`read_body`), over every connection: 256 MiB at the default 1 MiB.
/// Past it a body is refused (503) rather than read: 10,000 connections that each sent most of
/// a 1 MiB body and then stopped would otherwise hold 10 GB until the reaper closed them.
pub const BODY_BUDGET: usize = 256;

/// Reads the whole body, refusing (413) one larger than `state.max_body_bytes` before reading
/// it when `Content-Length` says so, and as soon as it passes the limit otherwise. The bytes
/// held count against the state's body budget ([`BODY_BUDGET`]) until it is read whole.
///
/// # Errors
/// [`ApiError::PayloadTooLarge`] past the limit, [`ApiError::Busy`] past the budget,
/// [`ApiError::MalformedBody`] if the connection fails mid-body.
pub async fn read_body(state: &AppState, request: Request<Incoming>) -> Result<Bytes, ApiError> {
    let max = state.max_body_bytes;
    let too_large = || ApiError::PayloadTooLarge {
        detail: format!("the body is larger than {max} bytes"),
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    let mut body = request.into_body();
    // the chunks as hyper gave them: a body that came in one (most) is not copied
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0;
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::MalformedBody {
            detail: format!("the body could not be read: {e}"),
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > max {
            return Err(too_large());
        }
        let more = u32::try_from(data.len())
            .ok()
            .and_then(|n| {
                Arc::clone(&state.body_budget)
                    .try_acquire_many_owned(n)
                    .ok()
            })
            .ok_or(ApiError::Busy {
                detail: "the server holds as many request bodies as it may; send it again shortly",
            })?;
        match &mut held {
            Some(held) => held.merge(more),
            None => held = Some(more),
        }
        chunks.push(data);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    })
}

/// Reads a JSON body into `T`: 415 for another media type, 400 naming what the JSON parser
/// found wrong (an unknown field included).
pub async fn json_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    let json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| {
            v.starts_with("application/json") || v.starts_with("application/merge-patch+json")
        });
    if !json {
        return Err(ApiError::UnsupportedMediaType {
            detail: "send the body as application/json",
        });
    }
    let body: Bytes = read_body(state, request).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::MalformedBody {
        detail: format!("the body is not valid: {e}"),
    })
}
