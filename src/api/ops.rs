//! Operations endpoints: `GET /metrics` (Prometheus text), `GET /healthz` (the process
//! answers), `GET /readyz` (the store is open and the server is not shutting down),
//! `GET /openapi.json` (the API's description, `openapi.rs`).

use hyper::StatusCode;

use super::routes::Call;
use super::{ApiError, AppState, Head, HttpResponse, Reply, is_ready, openapi};

/// Prometheus text exposition format 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub fn metrics(state: &AppState, _: &[&str], _: &dyn Head) -> Result<Reply, ApiError> {
    Ok(Reply::new(
        StatusCode::OK,
        PROMETHEUS_TEXT,
        state.metrics.render(),
    ))
}

/// `GET /healthz`: 200 while the process can answer at all.
pub fn healthz(_: &AppState, _: &[&str], _: &dyn Head) -> Result<Reply, ApiError> {
    Ok(Reply::json(&br#"{"status":"ok"}"#[..]))
}

/// `GET /readyz`: 200 once checks can be answered, 503 before and during shutdown.
///
/// # Errors
/// [`ApiError::NotReady`] when not ready.
pub fn readyz(state: &AppState, _: &[&str], _: &dyn Head) -> Result<Reply, ApiError> {
    if is_ready(state) {
        Ok(Reply::json(&br#"{"status":"ready"}"#[..]))
    } else {
        Err(ApiError::NotReady)
    }
}

/// `GET /openapi.json`: built from the route table once, then sent from that one buffer.
pub async fn openapi(_: Call) -> Result<HttpResponse, ApiError> {
    Ok(Reply::json(openapi::json()).into_response())
}
