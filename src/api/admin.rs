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

use hyper::Request;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use super::problem::ParamLocation;
use super::routes::Call;
use super::{
    ApiError, AppState, HttpResponse, created, json_body, json_value, off_worker_as, read_body,
};
use crate::accounts::forms::{OrgForm, UserForm};
use crate::accounts::{Organisation, Principal, Token, User, time_json};
use crate::audit::{Action, Filter};
use crate::timefmt;

/// Largest page of `GET /v1/audit`.
const MAX_AUDIT_PAGE: usize = 1000;

// Reads are answered from memory; every change (and its audit entry, written even when it
// is refused) runs off the workers.

/// `GET /v1/me`.
pub async fn me(call: Call) -> Result<HttpResponse, ApiError> {
    Ok(me_json(call.who()?))
}

/// `GET /v1/orgs`.
pub async fn list_orgs(call: Call) -> Result<HttpResponse, ApiError> {
    let orgs = call.state.accounts.list_orgs(call.who()?)?;
    Ok(json_value(&Value::Array(
        orgs.iter().map(org_json).collect(),
    )))
}

/// `POST /v1/orgs`.
pub async fn create_org(call: Call) -> Result<HttpResponse, ApiError> {
    let who = call.who()?.clone();
    let form: OrgForm = json_body(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        let (org, admin) = state.accounts.create_org(who, form)?;
        Ok(created(
            &format!("/v1/orgs/{}", org.id),
            &json!({ "organisation": org_json(&org), "administrator": user_json(&admin) }),
        ))
    })
    .await
}

/// `GET /v1/orgs/{org}`.
pub async fn get_org(call: Call) -> Result<HttpResponse, ApiError> {
    let org = call.id(0, "{org}")?;
    let org = call.state.accounts.get_org(call.who()?, org)?;
    Ok(json_value(&org_json(&org)))
}

/// `PATCH /v1/orgs/{org}`.
pub async fn update_org(call: Call) -> Result<HttpResponse, ApiError> {
    let (org, who) = (call.id(0, "{org}")?, call.who()?.clone());
    let patch: Value = json_body(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        let org = state.accounts.update_org(who, org, &patch)?;
        Ok(json_value(&org_json(&org)))
    })
    .await
}

/// `POST /v1/orgs/{org}/suspend`.
pub async fn suspend_org(call: Call) -> Result<HttpResponse, ApiError> {
    set_org_suspended(call, true).await
}

/// `POST /v1/orgs/{org}/reactivate`.
pub async fn reactivate_org(call: Call) -> Result<HttpResponse, ApiError> {
    set_org_suspended(call, false).await
}

async fn set_org_suspended(call: Call, suspended: bool) -> Result<HttpResponse, ApiError> {
    let (org, who) = (call.id(0, "{org}")?, call.who()?.clone());
    let reason = reason(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        let org = state
            .accounts
            .set_org_suspended(who, org, suspended, reason)?;
        Ok(json_value(&org_json(&org)))
    })
    .await
}

/// `GET /v1/orgs/{org}/users`.
pub async fn list_users(call: Call) -> Result<HttpResponse, ApiError> {
    let org = call.id(0, "{org}")?;
    let users = call.state.accounts.list_users(call.who()?, org)?;
    Ok(json_value(&Value::Array(
        users.iter().map(user_json).collect(),
    )))
}

/// `POST /v1/orgs/{org}/users`.
pub async fn create_user(call: Call) -> Result<HttpResponse, ApiError> {
    let (org, who) = (call.id(0, "{org}")?, call.who()?.clone());
    let form: UserForm = json_body(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        let user = state.accounts.create_user(who, org, form)?;
        Ok(created(
            &format!("/v1/orgs/{org}/users/{}", user.id),
            &user_json(&user),
        ))
    })
    .await
}

/// `GET /v1/orgs/{org}/users/{user}`.
pub async fn get_user(call: Call) -> Result<HttpResponse, ApiError> {
    let (org, user) = (call.id(0, "{org}")?, call.id(1, "{user}")?);
    let user = call.state.accounts.get_user(call.who()?, org, user)?;
    Ok(json_value(&user_json(&user)))
}

/// `PATCH /v1/orgs/{org}/users/{user}`.
pub async fn update_user(call: Call) -> Result<HttpResponse, ApiError> {
    let (org, user) = (call.id(0, "{org}")?, call.id(1, "{user}")?);
    let who = call.who()?.clone();
    let patch: Value = json_body(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        let user = state.accounts.update_user(who, org, user, &patch)?;
        Ok(json_value(&user_json(&user)))
    })
    .await
}

/// What a `POST /v1/orgs/{org}/users/{user}/{verb}` changes: activation is the
/// organisation's, suspension the regulator's.
#[derive(Clone, Copy)]
enum UserChange {
    Active(bool),
    Suspended(bool),
}

/// `POST /v1/orgs/{org}/users/{user}/deactivate`.
pub async fn deactivate_user(call: Call) -> Result<HttpResponse, ApiError> {
    change_user(call, UserChange::Active(false)).await
}

/// `POST /v1/orgs/{org}/users/{user}/activate`.
pub async fn activate_user(call: Call) -> Result<HttpResponse, ApiError> {
    change_user(call, UserChange::Active(true)).await
}

/// `POST /v1/orgs/{org}/users/{user}/suspend`.
pub async fn suspend_user(call: Call) -> Result<HttpResponse, ApiError> {
    change_user(call, UserChange::Suspended(true)).await
}

/// `POST /v1/orgs/{org}/users/{user}/reactivate`.
pub async fn reactivate_user(call: Call) -> Result<HttpResponse, ApiError> {
    change_user(call, UserChange::Suspended(false)).await
}

async fn change_user(call: Call, change: UserChange) -> Result<HttpResponse, ApiError> {
    let (org, user) = (call.id(0, "{org}")?, call.id(1, "{user}")?);
    let who = call.who()?.clone();
    let reason = reason(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        let user = match change {
            UserChange::Active(on) => state.accounts.set_user_active(who, org, user, on, reason),
            UserChange::Suspended(on) => state
                .accounts
                .set_user_suspended(who, org, user, on, reason),
        }?;
        Ok(json_value(&user_json(&user)))
    })
    .await
}

/// `GET /v1/users/{user}/tokens`.
pub async fn list_tokens(call: Call) -> Result<HttpResponse, ApiError> {
    let user = call.id(0, "{user}")?;
    let tokens = call.state.accounts.list_tokens(call.who()?, user)?;
    Ok(json_value(&Value::Array(
        tokens.iter().map(|t| token_json(t, None)).collect(),
    )))
}

/// `POST /v1/users/{user}/tokens`.
pub async fn create_token(call: Call) -> Result<HttpResponse, ApiError> {
    let (user, who) = (call.id(0, "{user}")?, call.who()?.clone());
    let new: NewToken = json_body(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        let (token, text) = state.accounts.create_token(who, user, &new.name)?;
        Ok(created(
            &format!("/v1/users/{user}/tokens/{}", token.id),
            &token_json(&token, Some(&text)),
        ))
    })
    .await
}

/// `DELETE /v1/users/{user}/tokens/{token}`.
pub async fn revoke_token(call: Call) -> Result<HttpResponse, ApiError> {
    let user = call.id(0, "{user}")?;
    let token = call.params.get(1).cloned().unwrap_or_default();
    off_worker_as(&call.state, call.who()?, move |state, who| {
        let token = state.accounts.revoke_token(who, user, &token)?;
        Ok(json_value(&token_json(&token, None)))
    })
    .await
}

/// `POST /v1/users/{user}/password-setup`: the one-time code, shown this once, with which the
/// user sets its password at `/clave` (`accounts/logins.rs`).
pub async fn password_setup(call: Call) -> Result<HttpResponse, ApiError> {
    let user = call.id(0, "{user}")?;
    off_worker_as(&call.state, call.who()?, move |state, who| {
        let code = state.accounts.issue_password_setup(who, user)?;
        Ok(json_value(&json!({
            "user": user,
            "code": code,
            "expires_in_secs": crate::accounts::logins::SETUP_CODE_SECS,
            "set_password_at": "/clave",
        })))
    })
    .await
}

/// `GET /v1/audit`: a scan of the audit trail, off the workers.
pub async fn audit(call: Call) -> Result<HttpResponse, ApiError> {
    let (filter, after, limit) = audit_query(call.request.uri().query())?;
    off_worker_as(&call.state, call.who()?, move |state, who| {
        let (entries, next) = state.accounts.audit(who, &filter, after, limit)?;
        Ok(json_value(&json!({
            "entries": entries.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
            "next_after": next,
        })))
    })
    .await
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

fn me_json(principal: &Principal) -> HttpResponse {
    json_value(&json!({
        "user": principal.user,
        "org": principal.org,
        "org_kind": principal.org_kind,
        "roles": principal.roles,
        "token": principal.credential.id_hex(),
    }))
}

/// The filter, `after` and `limit` of `GET /v1/audit`'s query.
pub fn audit_query(query: Option<&str>) -> Result<(Filter, u64, usize), ApiError> {
    let mut filter = Filter::default();
    let mut after = 0;
    let mut limit = 100;
    let mut invalid = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let number = || value.parse::<u64>().ok();
        match key.as_ref() {
            "actor" => filter.actor = number().or_else(|| bad(&mut invalid, "actor", "a user id")),
            "issued_by" => {
                filter.issued_by = number().or_else(|| bad(&mut invalid, "issued_by", "a user id"))
            }
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
