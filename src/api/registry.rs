//! The registry's write paths and lookups over HTTP.
//!
//! | route | who |
//! |---|---|
//! | `POST /v1/reports` | operators (for a user or an authority), authorities |
//! | `POST /v1/imeis/{imei}/recovery` | the operator organisation that registered the report |
//! | `GET /v1/imeis/{imei}/history` | regulator admin, auditors, operators, authorities |
//! | `POST /v1/activations` | operators |
//! | `POST /v1/imeis/{imei}/owner` | operators, with the last owner's authorisation |
//! | `GET /v1/negative/{imei}` | authorities: one record, every lookup audited |
//! | `POST /v1/sellers` | operators, regulator admin (records or updates an authorisation) |
//! | `GET /v1/public/imeis/{imei}` | anyone, no token; rate-limited per client address |
//! | `GET /v1/public/sellers?q=` | anyone, no token; rate-limited per client address |
//!
//! Handlers parse and render; `registry::reports` decides.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{created, json_body, json_value};
use super::problem::ParamLocation;
use super::{ApiError, AppState, HttpResponse};
use crate::accounts::Principal;
use crate::imei::Imei;
use crate::registry::owners::{Activated, ActivationForm, TransferForm};
use crate::registry::reports::{self, ReportForm, Reported};
use crate::registry::sellers::{Seller, SellerForm};
use crate::store::List;
use crate::timefmt;

/// Routes the registry's authenticated paths; `None` if the path is none of them.
pub async fn route(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Option<Result<HttpResponse, ApiError>> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    let registry = &state.registry;
    let result = match (segments.as_slice(), &method) {
        (["v1", "reports"], &Method::POST) => match json_body::<ReportForm>(state, request).await {
            Err(e) => Err(e),
            Ok(form) => registry
                .report(principal, form)
                .map_err(ApiError::from)
                .map(|reported| match reported {
                    Reported::Listed(imei, record) => created(
                        &format!("/v1/negative/{imei}"),
                        &reports::negative_json(imei, &record, principal),
                    ),
                    Reported::AlreadyReported(imei, record) => {
                        json_value(&reports::negative_json(imei, &record, principal))
                    }
                }),
        },
        (["v1", "reports"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "activations"], &Method::POST) => {
            match json_body::<ActivationForm>(state, request).await {
                Err(e) => Err(e),
                Ok(form) => registry
                    .activate(principal, form)
                    .map_err(ApiError::from)
                    .map(|Activated::Activated { bound, added }| {
                        json_value(&json!({ "activated": true, "ownerBound": bound, "addedToPositiveList": added }))
                    }),
            }
        }
        (["v1", "activations"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "sellers"], &Method::POST) => match json_body::<SellerForm>(state, request).await {
            Err(e) => Err(e),
            Ok(form) => registry
                .record_seller(principal, form)
                .map_err(ApiError::from)
                .map(|seller| json_value(&seller_json(state, &seller))),
        },
        (["v1", "sellers"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "imeis", imei, "owner"], &Method::POST) => match path_imei(imei) {
            Err(e) => Err(e),
            Ok(imei) => match json_body::<TransferForm>(state, request).await {
                Err(e) => Err(e),
                Ok(form) => registry
                    .transfer(principal, imei, form)
                    .map_err(ApiError::from)
                    .map(|()| {
                        json_value(&json!({ "imei": imei.to_string(), "ownerChanged": true }))
                    }),
            },
        },
        (["v1", "imeis", _, "owner"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "imeis", imei, "recovery"], &Method::POST) => match path_imei(imei) {
            Err(e) => Err(e),
            Ok(imei) => match json_body::<Recovery>(state, request).await {
                Err(e) => Err(e),
                Ok(recovery) => registry
                    .recover(principal, imei, &recovery.reference)
                    .map_err(ApiError::from)
                    .map(|()| {
                        json_value(&json!({
                            "imei": imei.to_string(),
                            "negativeList": false,
                            "positiveList": registry.store().contains(List::Positive, imei),
                        }))
                    }),
            },
        },
        (["v1", "imeis", _, "recovery"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "imeis", imei, "history"], &Method::GET) => path_imei(imei).and_then(|imei| {
            let events = registry.history(principal, imei)?;
            let events: Vec<Value> = events
                .iter()
                .map(|event| {
                    let mut value = serde_json::to_value(event).unwrap_or_default();
                    value["at"] = Value::String(timefmt::rfc3339(event.at));
                    value
                })
                .collect();
            Ok(json_value(
                &json!({ "imei": imei.to_string(), "events": events }),
            ))
        }),
        (["v1", "imeis", _, "history"], _) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (["v1", "negative", imei], &Method::GET) => {
            path_imei(imei).and_then(|imei| match registry.consult_negative(principal, imei)? {
                Some(record) => Ok(json_value(&reports::negative_json(
                    imei, &record, principal,
                ))),
                None => Err(ApiError::ResourceNotFound {
                    what: "report: the IMEI is not on the negative list",
                }),
            })
        }
        (["v1", "negative", _], _) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        _ => return None,
    };
    Some(result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recovery {
    /// The owner's request (letter, ticket) that asks for the exclusion.
    reference: String,
}

fn path_imei(segment: &str) -> Result<Imei, ApiError> {
    Imei::parse(segment).map_err(|e| ApiError::InvalidParams {
        location: ParamLocation::Path,
        params: vec![("{imei}".into(), e.to_string())],
    })
}

/// The public path prefix: answered without a token.
pub const PUBLIC_IMEIS: &str = "/v1/public/imeis/";

/// `GET /v1/public/imeis/{imei}`: whether an IMEI is reported stolen or lost and whether it is
/// registered, nothing else (art. 2.2.11.6: what the public needs before buying a used phone).
///
/// # Errors
/// [`ApiError::TooManyRequests`] past the client's rate, [`ApiError::InvalidParams`] for a
/// malformed IMEI.
pub fn public_status(state: &AppState, peer: IpAddr, imei: &str) -> Result<HttpResponse, ApiError> {
    state.public_limiter.admit(peer)?;
    let imei = path_imei(imei)?;
    let store = state.registry.store();
    Ok(json_value(&json!({
        "imei": imei.to_string(),
        "reportedStolenOrLost": store.contains(List::Negative, imei),
        "registered": store.contains(List::Positive, imei),
    })))
}

/// The public sellers path: answered without a token.
pub const PUBLIC_SELLERS: &str = "/v1/public/sellers";

/// `GET /v1/public/sellers?q=...`: authorised sellers valid today (art. 2.2.11.3 par.).
///
/// # Errors
/// [`ApiError::TooManyRequests`], [`ApiError::InvalidParams`] for an unknown parameter.
pub fn public_sellers(
    state: &AppState,
    peer: IpAddr,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    state.public_limiter.admit(peer)?;
    let mut q = String::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
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
    let sellers = state.registry.search_sellers(&q)?;
    let sellers: Vec<Value> = sellers.iter().map(|s| seller_json(state, s)).collect();
    Ok(json_value(&json!({ "sellers": sellers })))
}

fn seller_json(state: &AppState, seller: &Seller) -> Value {
    let mut value = serde_json::to_value(&seller.form).unwrap_or_default();
    value["authorised_by"] = json!({
        "org": seller.authorised_by,
        "name": state.accounts.org_name(seller.authorised_by),
    });
    value
}

/// A fixed-window limit of requests per client address per minute.
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses remembered before old windows are swept.
const MAX_TRACKED: usize = 100_000;

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per address per minute.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `peer`.
    ///
    /// # Errors
    /// [`ApiError::TooManyRequests`] with the seconds until the window ends.
    pub fn admit(&self, peer: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, (start, _)| now.duration_since(*start) < minute);
        }
        let (start, count) = windows.entry(peer).or_insert((now, 0));
        if now.duration_since(*start) >= minute {
            *start = now;
            *count = 0;
        }
        if *count >= self.per_minute {
            let retry = minute
                .saturating_sub(now.duration_since(*start))
                .as_secs()
                .max(1);
            return Err(ApiError::TooManyRequests { retry_after: retry });
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_per_address_and_says_when_to_retry() {
        let limiter = RateLimiter::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            limiter.admit(a).unwrap();
        }
        match limiter.admit(a) {
            Err(ApiError::TooManyRequests { retry_after }) => {
                assert!((1..=60).contains(&retry_after))
            }
            other => panic!("expected 429, got {other:?}"),
        }
        limiter.admit(b).unwrap();
    }
}
