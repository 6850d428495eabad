//! Operations endpoints: `GET /metrics` (Prometheus text), `GET /healthz` (the process
//! answers), `GET /readyz` (the store is open and the server is not shutting down).

use hyper::StatusCode;

use super::{ApiError, AppState, Reply, is_ready};

/// Prometheus text exposition format 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub fn metrics(state: &AppState) -> Reply {
    Reply::new(StatusCode::OK, PROMETHEUS_TEXT, state.metrics.render())
}

/// `GET /healthz`: 200 while the process can answer at all.
pub fn healthz() -> Reply {
    Reply::json(&br#"{"status":"ok"}"#[..])
}

/// `GET /readyz`: 200 once checks can be answered, 503 before and during shutdown.
///
/// # Errors
/// [`ApiError::NotReady`] when not ready.
pub fn readyz(state: &AppState) -> Result<Reply, ApiError> {
    if is_ready(state) {
        Ok(Reply::json(&br#"{"status":"ready"}"#[..]))
    } else {
        Err(ApiError::NotReady)
    }
}
