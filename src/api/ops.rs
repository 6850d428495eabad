//! Operations endpoints: `GET /metrics` (Prometheus text), `GET /healthz` (the process
//! answers), `GET /readyz` (the store is open and the server is not shutting down).

use bytes::Bytes;
use hyper::StatusCode;

use super::{ApiError, AppState, HttpResponse, is_ready, json_response, text_response};

/// Prometheus text exposition format 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub fn metrics(state: &AppState) -> HttpResponse {
    text_response(StatusCode::OK, PROMETHEUS_TEXT, state.metrics.render())
}

/// `GET /healthz`: 200 while the process can answer at all.
pub fn healthz() -> HttpResponse {
    json_response(Bytes::from_static(br#"{"status":"ok"}"#))
}

/// `GET /readyz`: 200 once checks can be answered, 503 before and during shutdown.
///
/// # Errors
/// [`ApiError::NotReady`] when not ready.
pub fn readyz(state: &AppState) -> Result<HttpResponse, ApiError> {
    if is_ready(state) {
        Ok(json_response(Bytes::from_static(br#"{"status":"ready"}"#)))
    } else {
        Err(ApiError::NotReady)
    }
}
