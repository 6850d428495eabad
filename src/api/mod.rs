//! HTTP: the router and one file per area. Handlers translate HTTP into registry calls and
//! the answers back into HTTP; they decide nothing and never touch the store.
//!
//! | route | file |
//! |---|---|
//! | `GET /n5g-eir-eic/v1/equipment-status` | [`eir`] (TS 29.511) |
//! | `GET /v1/imeis/{imei}/status`, `POST /v1/checks` | [`checks`] |
//! | `GET /metrics`, `/healthz`, `/readyz` | [`ops`] |
//!
//! Every error body is RFC 7807 `application/problem+json` ([`problem`]).

pub mod checks;
pub mod eir;
pub mod ops;
pub mod problem;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::Registry;
pub use problem::ApiError;

/// What every handler shares. Cheap to clone: a few `Arc`s.
#[derive(Clone)]
pub struct AppState {
    /// The lists and rules.
    pub registry: Registry,
    /// Metric handles.
    pub metrics: Arc<Metrics>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most IMEIs in one batch check.
    pub max_batch: usize,
    /// Set once the store is open and the listener bound; cleared when shutdown starts.
    pub ready: Arc<AtomicBool>,
}

impl AppState {
    /// The state for `registry` under `config`'s limits, not yet ready.
    pub fn new(registry: Registry, metrics: Arc<Metrics>, config: &Config) -> AppState {
        AppState {
            registry,
            metrics,
            max_body_bytes: config.server.max_body_bytes,
            max_batch: config.max_batch,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The response type of every handler.
pub type HttpResponse = Response<Full<Bytes>>;

/// Routes one request. Never fails: every error becomes a problem+json response.
pub async fn route(state: AppState, request: Request<Incoming>) -> HttpResponse {
    let path = request.uri().path();
    let result = match (request.method(), path) {
        (&Method::GET, eir::PATH) => eir::equipment_status(&state, request.uri().query()),
        (_, eir::PATH) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (&Method::POST, checks::BATCH_PATH) => checks::batch(&state, request).await,
        (_, checks::BATCH_PATH) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (&Method::GET, "/metrics") => Ok(ops::metrics(&state)),
        (&Method::GET, "/healthz") => Ok(ops::healthz()),
        (&Method::GET, "/readyz") => ops::readyz(&state),
        (_, "/metrics" | "/healthz" | "/readyz") => {
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        }
        (method, path) => match checks::status_path_imei(path) {
            Some(imei) if method == Method::GET => {
                checks::single(&state, imei, request.uri().query())
            }
            Some(_) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            None => Err(ApiError::NotFound),
        },
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// Whether the server is ready to answer checks.
pub fn is_ready(state: &AppState) -> bool {
    state.ready.load(Ordering::Relaxed)
}

/// A `200` JSON response.
pub fn json_response(body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A response with `status` and a plain-text body.
pub fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Reads the whole body, refusing (413) one larger than `max` bytes before reading it when
/// `Content-Length` says so, and as soon as it passes `max` otherwise.
///
/// # Errors
/// [`ApiError::PayloadTooLarge`] past the limit, [`ApiError::MalformedBody`] if the
/// connection fails mid-body.
pub async fn read_body(request: Request<Incoming>, max: usize) -> Result<Bytes, ApiError> {
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
    match Limited::new(request.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::MalformedBody {
            detail: format!("the body could not be read: {e}"),
        }),
    }
}
