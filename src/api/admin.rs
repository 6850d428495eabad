//! Administration: organisations, their users, users' tokens, and the audit trail.
//!
//! | route | who |
//! |---|---|
//! | `GET /v1/me` | any valid token |
//! | `GET, POST /v1/orgs` | regulator admin (GET also auditors: the regulator's see every organisation, others their own) |
//! | `GET, PATCH /v1/orgs/{org}` | GET: regulator admin, the regulator's auditors, the org's own admin and auditors; PATCH: regulator admin |
//! | `POST /v1/orgs/{org}/suspend`, `/reactivate` | regulator admin |
//! | `GET, POST /v1/orgs/{org}/users` | the org's admin, regulator admin |
//! | `GET, PATCH /v1/orgs/{org}/users/{user}` | the org's admin, regulator admin (PATCH: one who may act on the account) |
//! | `POST /v1/orgs/{org}/users/{user}/deactivate`, `/activate` | the org's admin, regulator admin (one who may act on the account) |
//! | `POST /v1/orgs/{org}/users/{user}/suspend`, `/reactivate` | regulator admin |
//! | `GET, POST /v1/users/{user}/tokens` | the user; POST by an administrator only for an account with no live token |
//! | `DELETE /v1/users/{user}/tokens/{token}` | the user, an administrator who may act on the account |
//! | `GET /v1/audit` | regulator admin, auditors (of another organisation than the regulator: its own entries) |
//!
//! Handlers parse, call `accounts`, and render; who may do what is decided there
//! (`accounts/authority.rs` for who may act on whose account).

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::problem::ParamLocation;
use super::{ApiError, AppState, HttpResponse, Reply, off_worker_as, read_body};
use crate::accounts::forms::{OrgForm, UserForm};
use crate::accounts::{Organisation, Principal, Token, User, time_json};
use crate::audit::{Action, Filter};
use crate::timefmt;

/// Largest page of `GET /v1/audit`.
const MAX_AUDIT_PAGE: usize = 1000;

/// Whether `path` is one of this module's (`/v1/me`, `/v1/orgs...`, `/v1/users...`,
/// `/v1/audit`).
pub fn handles(path: &str) -> bool {
    path == "/v1/me"
        || path == "/v1/audit"
        || path == "/v1/orgs"
        || path.starts_with("/v1/orgs/")
        || path.starts_with("/v1/users/")
}

/// Routes `/v1/me`, `/v1/orgs...`, `/v1/users...` and `/v1/audit`; `None` if the path is
/// none of them.
pub async fn route(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Option<Result<HttpResponse, ApiError>> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    let accounts = &state.accounts;
    // Reads are answered from memory here; every change (and its audit entry, written even
    // when it is refused) runs off the workers.
    let result = match (segments.as_slice(), &method) {
        (["v1", "me"], &Method::GET) => Ok(me(principal)),
        (["v1", "me"], _) => Err(get_only()),
        (["v1", "orgs"], &Method::GET) => accounts
            .list_orgs(principal)
            .map_err(ApiError::from)
            .map(|orgs| json_value(&Value::Array(orgs.iter().map(org_json).collect()))),
        (["v1", "orgs"], &Method::POST) => match json_body::<OrgForm>(state, request).await {
            Ok(form) => off_worker_as(state, principal, move |state, who| {
                let (org, admin) = state.accounts.create_org(who, form)?;
                Ok(created(
                    &format!("/v1/orgs/{}", org.id),
                    &json!({ "organisation": org_json(&org), "administrator": user_json(&admin) }),
                ))
            })
            .await,
            Err(e) => Err(e),
        },
        (["v1", "orgs"], _) => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        (["v1", "orgs", org], _) => match (id(org, "{org}"), &method) {
            (Err(e), _) => Err(e),
            (Ok(org), &Method::GET) => accounts
                .get_org(principal, org)
                .map(|o| json_value(&org_json(&o)))
                .map_err(ApiError::from),
            (Ok(org), &Method::PATCH) => match json_body::<Value>(state, request).await {
                Ok(patch) => {
                    off_worker_as(state, principal, move |state, who| {
                        let org = state.accounts.update_org(who, org, &patch)?;
                        Ok(json_value(&org_json(&org)))
                    })
                    .await
                }
                Err(e) => Err(e),
            },
            _ => Err(ApiError::MethodNotAllowed {
                allow: "GET, PATCH",
            }),
        },
        (["v1", "orgs", org, verb @ ("suspend" | "reactivate")], &Method::POST) => {
            let suspended = *verb == "suspend";
            match (id(org, "{org}"), reason(state, request).await) {
                (Ok(org), Ok(reason)) => {
                    off_worker_as(state, principal, move |state, who| {
                        let org = state
                            .accounts
                            .set_org_suspended(who, org, suspended, reason)?;
                        Ok(json_value(&org_json(&org)))
                    })
                    .await
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        (["v1", "orgs", _, "suspend" | "reactivate"], _) => Err(post_only()),
        (["v1", "orgs", org, "users"], _) => match (id(org, "{org}"), &method) {
            (Err(e), _) => Err(e),
            (Ok(org), &Method::GET) => accounts
                .list_users(principal, org)
                .map(|users| json_value(&Value::Array(users.iter().map(user_json).collect())))
                .map_err(ApiError::from),
            (Ok(org), &Method::POST) => match json_body::<UserForm>(state, request).await {
                Ok(form) => {
                    off_worker_as(state, principal, move |state, who| {
                        let user = state.accounts.create_user(who, org, form)?;
                        Ok(created(
                            &format!("/v1/orgs/{org}/users/{}", user.id),
                            &user_json(&user),
                        ))
                    })
                    .await
                }
                Err(e) => Err(e),
            },
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        },
        (["v1", "orgs", org, "users", user], _) => {
            match (id(org, "{org}"), id(user, "{user}"), &method) {
                (Err(e), _, _) | (_, Err(e), _) => Err(e),
                (Ok(org), Ok(user), &Method::GET) => accounts
                    .get_user(principal, org, user)
                    .map(|u| json_value(&user_json(&u)))
                    .map_err(ApiError::from),
                (Ok(org), Ok(user), &Method::PATCH) => {
                    match json_body::<Value>(state, request).await {
                        Ok(patch) => {
                            off_worker_as(state, principal, move |state, who| {
                                let user = state.accounts.update_user(who, org, user, &patch)?;
                                Ok(json_value(&user_json(&user)))
                            })
                            .await
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => Err(ApiError::MethodNotAllowed {
                    allow: "GET, PATCH",
                }),
            }
        }
        (
            [
                "v1",
                "orgs",
                org,
                "users",
                user,
                verb @ ("deactivate" | "activate" | "suspend" | "reactivate"),
            ],
            &Method::POST,
        ) => {
            // activation is the organisation's; suspension the regulator's
            let by_org = matches!(*verb, "deactivate" | "activate");
            let on = matches!(*verb, "activate" | "suspend");
            match (
                id(org, "{org}"),
                id(user, "{user}"),
                reason(state, request).await,
            ) {
                (Ok(org), Ok(user), Ok(reason)) => {
                    off_worker_as(state, principal, move |state, who| {
                        let user = if by_org {
                            state.accounts.set_user_active(who, org, user, on, reason)
                        } else {
                            state
                                .accounts
                                .set_user_suspended(who, org, user, on, reason)
                        }?;
                        Ok(json_value(&user_json(&user)))
                    })
                    .await
                }
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
            }
        }
        (
            [
                "v1",
                "orgs",
                _,
                "users",
                _,
                "deactivate" | "activate" | "suspend" | "reactivate",
            ],
            _,
        ) => Err(post_only()),
        (["v1", "users", user, "tokens"], _) => match (id(user, "{user}"), &method) {
            (Err(e), _) => Err(e),
            (Ok(user), &Method::GET) => accounts
                .list_tokens(principal, user)
                .map(|tokens| {
                    json_value(&Value::Array(
                        tokens.iter().map(|t| token_json(t, None)).collect(),
                    ))
                })
                .map_err(ApiError::from),
            (Ok(user), &Method::POST) => match json_body::<NewToken>(state, request).await {
                Ok(new) => {
                    off_worker_as(state, principal, move |state, who| {
                        let (token, text) = state.accounts.create_token(who, user, &new.name)?;
                        Ok(created(
                            &format!("/v1/users/{user}/tokens/{}", token.id),
                            &token_json(&token, Some(&text)),
                        ))
                    })
                    .await
                }
                Err(e) => Err(e),
            },
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        },
        (["v1", "users", user, "tokens", token], _) => match (id(user, "{user}"), &method) {
            (Err(e), _) => Err(e),
            (Ok(user), &Method::DELETE) => {
                let token = (*token).to_owned();
                off_worker_as(state, principal, move |state, who| {
                    let token = state.accounts.revoke_token(who, user, &token)?;
                    Ok(json_value(&token_json(&token, None)))
                })
                .await
            }
            _ => Err(ApiError::MethodNotAllowed { allow: "DELETE" }),
        },
        (["v1", "audit"], &Method::GET) => match audit_query(request.uri().query()) {
            Ok((filter, after, limit)) => {
                // a scan of the audit trail
                off_worker_as(state, principal, move |state, who| {
                    let (entries, next) = state.accounts.audit(who, &filter, after, limit)?;
                    Ok(json_value(&json!({
                        "entries": entries.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
                        "next_after": next,
                    })))
                })
                .await
            }
            Err(e) => Err(e),
        },
        (["v1", "audit"], _) => Err(get_only()),
        _ => return None,
    };
    Some(result)
}

fn get_only() -> ApiError {
    ApiError::MethodNotAllowed { allow: "GET" }
}

fn post_only() -> ApiError {
    ApiError::MethodNotAllowed { allow: "POST" }
}

/// A numeric id from the path.
fn id(segment: &str, name: &str) -> Result<u64, ApiError> {
    segment
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| ApiError::InvalidParams {
            location: ParamLocation::Path,
            params: vec![(name.to_owned(), format!("{segment:?} is not a registry id"))],
        })
}

/// Reads a JSON body into `T`: 415 for another media type, 400 naming what the JSON parser
/// found wrong (an unknown field included).
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

/// The optional `{"reason": "..."}` of a suspension or deactivation; an empty body is none.
async fn reason(state: &AppState, request: Request<Incoming>) -> Result<Option<String>, ApiError> {
    let body = read_body(state, request).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let parsed: ReasonBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedBody {
            detail: format!("the body is not valid: {e}"),
        })?;
    Ok(parsed
        .reason
        .map(|r| r.trim().chars().take(500).collect::<String>())
        .filter(|r| !r.is_empty()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
}

fn me(principal: &Principal) -> HttpResponse {
    json_value(&json!({
        "user": principal.user,
        "org": principal.org,
        "org_kind": principal.org_kind,
        "roles": principal.roles,
        "token": principal.token.to_hex(),
    }))
}

/// The filter, `after` and `limit` of `GET /v1/audit`'s query.
fn audit_query(query: Option<&str>) -> Result<(Filter, u64, usize), ApiError> {
    let mut filter = Filter::default();
    let mut after = 0;
    let mut limit = 100;
    let mut invalid = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let number = || value.parse::<u64>().ok();
        match key.as_ref() {
            "actor" => filter.actor = number().or_else(|| bad(&mut invalid, "actor", "a user id")),
            "org" => {
                filter.org = number().or_else(|| bad(&mut invalid, "org", "an organisation id"))
            }
            "action" => {
                filter.action = Action::from_name(&value)
                    .or_else(|| bad(&mut invalid, "action", "an action name such as org.create"))
            }
            "from" => {
                filter.from = timefmt::parse(&value).or_else(|| {
                    bad(
                        &mut invalid,
                        "from",
                        "RFC 3339 UTC (2026-11-23T00:00:00Z), a date, or Unix seconds",
                    )
                })
            }
            "to" => {
                filter.to = timefmt::parse(&value).or_else(|| {
                    bad(
                        &mut invalid,
                        "to",
                        "RFC 3339 UTC (2026-11-23T00:00:00Z), a date, or Unix seconds",
                    )
                })
            }
            "after" => {
                after = number()
                    .or_else(|| bad(&mut invalid, "after", "an entry number"))
                    .unwrap_or(0)
            }
            "limit" => {
                limit = number()
                    .filter(|&n| (1..=MAX_AUDIT_PAGE as u64).contains(&n))
                    .map(|n| n as usize)
                    .or_else(|| bad(&mut invalid, "limit", "1 to 1000"))
                    .unwrap_or(limit)
            }
            other => invalid.push((other.to_owned(), "unknown parameter".to_owned())),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::InvalidParams {
            location: ParamLocation::Query,
            params: invalid,
        });
    }
    Ok((filter, after, limit))
}

fn bad<T>(invalid: &mut Vec<(String, String)>, param: &str, expected: &str) -> Option<T> {
    invalid.push((param.to_owned(), format!("expected {expected}")));
    None
}

pub(super) fn json_value(value: &Value) -> HttpResponse {
    json_reply(value).into_response()
}

pub(super) fn json_reply(value: &Value) -> Reply {
    Reply::json(serde_json::to_vec(value).unwrap_or_default())
}

pub(super) fn created(location: &str, value: &Value) -> HttpResponse {
    let mut response = json_value(value);
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

fn org_json(org: &Organisation) -> Value {
    let mut value = serde_json::to_value(org).unwrap_or_default();
    value["created_at"] = time_json(Some(org.created_at));
    value
}

fn user_json(user: &User) -> Value {
    let mut value = serde_json::to_value(user).unwrap_or_default();
    value["created_at"] = time_json(Some(user.created_at));
    value
}

/// A token as shown: never its hash; its text only when it was just made.
fn token_json(token: &Token, text: Option<&str>) -> Value {
    let mut value = json!({
        "id": token.id,
        "user": token.user,
        "name": token.name,
        "issued_by": token.issued_by,
        "created_at": time_json(Some(token.created_at)),
        "last_used_at": time_json(token.last_used_at),
        "revoked_at": time_json(token.revoked_at),
    });
    if let Some(text) = text {
        value["token"] = Value::String(text.to_owned());
        value["note"] =
            Value::String("shown once: store it now; the registry keeps only its hash".into());
    }
    value
}
