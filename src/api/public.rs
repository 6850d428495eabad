//! The public routes, without a token, each request counted against its client's limit
//! (`auth.public_per_minute`) before it runs: what anyone about to buy a used phone may know
//! of it (art. 2.2.11.6), and who may sell devices (art. 2.2.11.3 par.).

use std::sync::Arc;

use serde_json::{Value, json};

use super::problem::ParamLocation;
use super::routes::{Call, path_imei};
use super::sellers::seller_json;
use super::{ApiError, AppState, Head, HttpResponse, Reply, json_reply, json_value, off_worker};

/// The public sellers search: answered by the central only (a replica holds no sellers).
pub const SELLERS_PATH: &str = "/v1/public/sellers";

/// `GET /v1/public/imeis/{imei}`: whether an IMEI is reported stolen or lost and whether it is
/// registered, nothing else. From memory.
///
/// # Errors
/// [`ApiError::InvalidParams`] for a malformed IMEI.
pub fn status(state: &AppState, params: &[&str], _: &dyn Head) -> Result<Reply, ApiError> {
    let imei = path_imei(params.first().copied().unwrap_or(""))?;
    let listing = state.registry.listing(imei);
    Ok(json_reply(&json!({
        "imei": imei.to_string(),
        "reportedStolenOrLost": listing.negative,
        "registered": listing.positive,
    })))
}

/// `GET /v1/public/sellers?q=...`: authorised sellers valid today.
///
/// # Errors
/// [`ApiError::InvalidParams`] for an unknown parameter, [`ApiError::Busy`] when as many
/// searches as the server runs at once are running.
pub async fn sellers(call: Call) -> Result<HttpResponse, ApiError> {
    let state = call.state;
    let mut q = String::new();
    for (key, value) in form_urlencoded::parse(call.request.uri().query().unwrap_or("").as_bytes())
    {
        match key.as_ref() {
            "q" => q = value.into_owned(),
            other => {
                return Err(ApiError::InvalidParams {
                    location: ParamLocation::Query,
                    params: vec![(other.to_owned(), "unknown parameter; search with q".into())],
                });
            }
        }
    }
    // a scan of the sellers in the store: off the workers, and never more of them at once
    // than PUBLIC_SCANS, so anonymous clients cannot hold the permits a theft report needs
    let _scan = Arc::clone(&state.public_scans)
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy {
            detail: "as many public searches as the server runs at once are running; search again shortly",
        })?;
    off_worker(&state, move |state| {
        let sellers = state.registry.search_sellers(&q)?;
        let sellers: Vec<Value> = sellers.iter().map(|s| seller_json(state, s)).collect();
        Ok(json_value(&json!({ "sellers": sellers })))
    })
    .await
}
