//! HTTP: one route table ([`routes`]) and one file per area. Handlers translate HTTP into
//! domain calls and the answers back into HTTP; they decide nothing and never touch the store.
//!
//! | routes | file |
//! |---|---|
//! | `GET /n5g-eir-eic/v1/equipment-status` | [`eir`] (TS 29.511) |
//! | `GET /v1/imeis/{imei}/status`, `POST /v1/checks` | [`checks`] |
//! | `GET /metrics`, `/healthz`, `/readyz`, `/openapi.json` | [`ops`], [`openapi`] |
//! | `GET /v1/public/imeis/{imei}`, `/v1/public/sellers` | [`public`] |
//! | `/v1/me`, `/v1/orgs/...`, `/v1/users/{user}/tokens/...`, `/v1/audit` | [`admin`] |
//! | `POST /v1/reports`, `/v1/imeis/{imei}/recovery`; `GET /v1/imeis/{imei}/history`, `/v1/negative/{imei}` | [`reports`] |
//! | `POST /v1/activations`, `/v1/imeis/{imei}/owner` | [`owners`] |
//! | `POST /v1/sellers` | [`sellers`] |
//! | `POST /v1/registrations`, `GET /v1/registrations/jobs/{job}` | [`uploads`] |
//! | `/v1/exchange/...` | [`exchange`] |
//!
//! Two kinds of route ([`routes::Handler`]): those that never wait ([`answer_now`]: checks,
//! operations, the public status; from memory, on the async worker that read the request),
//! and those that may wait ([`route_waiting`]). A waiting route reads its body on the worker,
//! then runs its domain call on a blocking thread ([`off_worker`]) if that call may wait on
//! the disk: every write (each one fsync'd, audited refusals included) and every scan. A slow
//! disk or a flood of writes then never delays a check.
//!
//! Authorization denies by default ([`routes::Access`]): only the operations routes and the
//! rate-limited public routes answer without a token. Network checks need a token whose user
//! may check (`auth.open_checks` lifts that on a listener only the core network reaches);
//! every other route needs a valid token, and the domain decides what its roles allow.
//!
//! Every error body is RFC 7807 `application/problem+json` ([`problem`]).

pub mod admin;
pub mod backups;
pub mod body;
pub mod checks;
pub mod eir;
pub mod exchange;
pub mod limiter;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod owners;
pub mod problem;
pub mod public;
pub mod replication;
pub mod reply;
pub mod reports;
pub mod routes;
pub mod sellers;
pub mod uploads;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use hyper::{Method, Request};

use crate::accounts::{Accounts, AccountsError, Principal};
use crate::audit::{Action, Event, Outcome};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::registry::backups::BackupSettings;
use crate::replication::{Replica, ReplicaStatus, Role};
use crate::roles::Permission;
use crate::store::Store;
pub use body::{BODY_BUDGET, json_body, read_body};
use metrics::{RequestMetrics, RequestRefusal};
pub use problem::ApiError;
pub use reply::{
    Body, ChannelBody, HttpResponse, Reply, created, full, json_reply, json_response, json_value,
};
use routes::{Access, Call, Found, Handler, Route};
use tokio::sync::Semaphore;

/// What every handler shares. Cheap to clone: a few `Arc`s.
#[derive(Clone)]
pub struct AppState {
    /// The lists and rules.
    pub registry: Registry,
    /// Organisations, users, tokens, audit trail.
    pub accounts: Accounts,
    /// Network checks need no token (config `auth.open_checks`).
    pub open_checks: bool,
    /// Per-client limit of the public routes.
    pub public_limiter: Arc<limiter::RateLimiter>,
    /// Public searches (`/v1/public/sellers`) running at once, at most [`PUBLIC_SCANS`]: an
    /// anonymous client may hold no more of the disk permits than these.
    pub public_scans: Arc<Semaphore>,
    /// Bytes of request bodies being read: at most [`BODY_BUDGET`] largest bodies (see
    /// [`read_body`]).
    pub body_budget: Arc<Semaphore>,
    /// Per-user budget of refused requests (`auth.refusals_per_minute`).
    pub refusals: Arc<limiter::RateLimiter>,
    /// Registration uploads, running and recent.
    pub jobs: Arc<uploads::Jobs>,
    /// Largest registration upload, in bytes.
    pub max_upload_bytes: u64,
    /// The `/metrics` page.
    pub metrics: Arc<Metrics>,
    /// What this front end counts of the requests it refuses.
    pub requests: RequestMetrics,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most IMEIs in one batch check.
    pub max_batch: usize,
    /// Set once the store is open and the listener bound; cleared when shutdown starts.
    pub ready: Arc<AtomicBool>,
    /// Permits for domain calls that may wait on the disk, run on blocking threads
    /// ([`off_worker`]): at most [`DISK_WAITS`] at once, the rest wait their turn without a
    /// thread.
    pub disk_waits: Arc<Semaphore>,
    /// Argon2 computations of the web sign-in at once, at most [`PASSWORD_WORK`]: a flood
    /// of sign-ins gets 503 rather than the cores the checks need.
    pub password_work: Arc<Semaphore>,
    /// The web pages' cookies are `Secure` and HSTS is sent (the listener is on TLS, or
    /// `web.secure_cookies` says a proxy in front of it is).
    pub secure_cookies: bool,
    /// Where and how often backups are taken (`[backup]`).
    pub backup: Arc<BackupSettings>,
    /// Replication snapshots served at once, at most [`replication::SNAPSHOTS`].
    pub snapshots: Arc<Semaphore>,
    /// On a read replica: its status (caught up?) and the central it refers writes to.
    pub replica: Option<Replica>,
}

/// Argon2 computations (web sign-ins, passwords set) at once; more get 503 at once.
pub const PASSWORD_WORK: usize = 2;

/// Public searches at once (see [`AppState::public_scans`]); past them, `503 NF_CONGESTION`.
/// Anonymous clients, even from many addresses, then hold at most these of the
/// [`DISK_WAITS`] permits the writes (a theft report) need.
pub const PUBLIC_SCANS: usize = 4;

/// Domain calls that may wait on the disk at once (see [`off_worker`]). Writes are serialised
/// by the store anyway; this bounds the threads a flood of them can hold.
pub const DISK_WAITS: usize = 32;

impl AppState {
    /// The state for `registry` under `config`'s limits, not yet ready.
    pub fn new(
        registry: Registry,
        accounts: Accounts,
        metrics: Arc<Metrics>,
        config: &Config,
    ) -> AppState {
        accounts.set_session_limits(config.sessions);
        AppState {
            registry,
            accounts,
            open_checks: config.open_checks,
            public_limiter: Arc::new(limiter::RateLimiter::new(config.public_per_minute)),
            refusals: Arc::new(limiter::RateLimiter::new(config.refusals_per_minute)),
            public_scans: Arc::new(Semaphore::new(PUBLIC_SCANS)),
            body_budget: Arc::new(Semaphore::new(
                (BODY_BUDGET * config.server.max_body_bytes).min(u32::MAX as usize),
            )),
            jobs: Arc::default(),
            max_upload_bytes: config.max_upload_bytes,
            requests: RequestMetrics::new(&metrics),
            metrics,
            max_body_bytes: config.server.max_body_bytes,
            max_batch: config.max_batch,
            ready: Arc::new(AtomicBool::new(false)),
            disk_waits: Arc::new(Semaphore::new(DISK_WAITS)),
            password_work: Arc::new(Semaphore::new(PASSWORD_WORK)),
            secure_cookies: config.tls.is_some() || config.secure_cookies,
            backup: Arc::new(config.backup.clone()),
            snapshots: Arc::new(Semaphore::new(replication::SNAPSHOTS)),
            replica: (config.replication.role == Role::Replica)
                .then(|| Arc::new(ReplicaStatus::new(&config.replication.central_url))),
        }
    }

    /// The state over the store at `config.data_dir`, opened, with its accounts loaded and
    /// fresh metrics; not yet ready.
    ///
    /// # Errors
    /// [`AccountsError::Store`] if the store does not open, another [`AccountsError`] if the
    /// accounts do not load.
    pub fn open(config: &Config) -> Result<AppState, AccountsError> {
        let metrics = Arc::new(Metrics::new());
        let store = Arc::new(Store::open(&config.data_dir, &config.store, &metrics)?);
        let accounts = Accounts::open(Arc::clone(&store))?;
        let registry = Registry::new(store, config.check.clone(), &metrics);
        Ok(AppState::new(registry, accounts, metrics, config))
    }
}

/// What [`route_now`] did with a request.
pub enum Routed {
    /// Its response: every error is a problem+json response already.
    Answered(HttpResponse),
    /// The request, whose route waits (batches, uploads, administration): for
    /// [`route_waiting`].
    Waits(Request<Incoming>),
}

/// What the routes that never wait read of a request: its head, never its body. The server
/// reads it from hyper's request, or from the bytes of a request it answers without hyper
/// (`server/direct.rs`).
pub trait Head {
    /// The method.
    fn method(&self) -> Method;
    /// The path of the request target.
    fn path(&self) -> &str;
    /// The query of the request target, without its `?`.
    fn query(&self) -> Option<&str>;
    /// The first `Authorization` header's value.
    fn authorization(&self) -> Option<&[u8]>;
}

impl<B> Head for Request<B> {
    fn method(&self) -> Method {
        self.method().clone()
    }

    fn path(&self) -> &str {
        self.uri().path()
    }

    fn query(&self) -> Option<&str> {
        self.uri().query()
    }

    fn authorization(&self) -> Option<&[u8]> {
        self.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes)
    }
}

/// Answers a request whose route never waits (network checks, public lookups, operations),
/// or gives it back.
///
/// The server calls this as soon as hyper hands it the request, so the request is dropped
/// before hyper reads the socket again. While a request lives, it shares hyper's read buffer,
/// and hyper's next read (it looks for a peer that hung up while the response is pending)
/// then allocated a fresh buffer: two allocations and a cold buffer on every check.
pub fn route_now(state: &AppState, peer: IpAddr, request: Request<Incoming>) -> Routed {
    match answer_now(state, peer, &request) {
        Some(reply) => Routed::Answered(reply.into_response()),
        None => Routed::Waits(request),
    }
}

/// The reply of a route that never waits ([`routes::Handler::Now`]), or `None` for a request
/// whose route waits, whose path needs a token, or that no route has (see [`route_waiting`]).
pub fn answer_now(state: &AppState, peer: IpAddr, head: &impl Head) -> Option<Reply> {
    let result = match routes::find(&head.method(), head.path()) {
        Found::Route(route, params) => match route.handler {
            Handler::Now(handler) => admit(state, peer, route.access, head.authorization())
                .and_then(|()| handler(state, &params, head)),
            Handler::Waits(_) => return None,
        },
        // who may call the path is checked before it is told the methods it has: an
        // anonymous client gets one answer on every token path, existing or not
        Found::WrongMethod { access, allow } => match access {
            Access::Token => return None,
            Access::Check => authorize_check(state, head.authorization())
                .and(Err(ApiError::MethodNotAllowed { allow })),
            Access::Open | Access::Public => Err(ApiError::MethodNotAllowed { allow }),
        },
        Found::Nothing => return None,
    };
    Some(result.unwrap_or_else(ApiError::into_reply))
}

/// Checks that the caller may use a route of `access` that needs no token of a person:
/// nothing for [`Access::Open`], the client's public limit, or the check permission.
fn admit(
    state: &AppState,
    peer: IpAddr,
    access: Access,
    authorization: Option<&[u8]>,
) -> Result<(), ApiError> {
    match access {
        Access::Open => Ok(()),
        Access::Public => admit_public(state, peer),
        Access::Check => authorize_check(state, authorization),
        // authenticated on the waiting side, where the user's throttling is
        Access::Token => Err(ApiError::Unauthenticated),
    }
}

/// Routes a request [`route_now`] gave back: the batch check, the public sellers search (it
/// reads the store), and every route that needs a token. Never fails: every error becomes a
/// problem+json response.
pub async fn route_waiting(
    state: &AppState,
    peer: IpAddr,
    request: Request<Incoming>,
) -> HttpResponse {
    // the table is read once: a path with another method or no route keeps the answer it
    // gets once its caller is known
    let target = match routes::find(request.method(), request.uri().path()) {
        Found::Route(route, params) => Ok((
            route,
            params[..route_params(route)]
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<String>>(),
        )),
        Found::WrongMethod { allow, .. } => Err(ApiError::MethodNotAllowed { allow }),
        Found::Nothing => Err(ApiError::NotFound),
    };
    let result = match target {
        // a replica holds no accounts and no sellers: it sends whoever needs them to the
        // central
        Ok((route, _))
            if state.replica.is_some()
                && (route.access == Access::Token || route.path == public::SELLERS_PATH) =>
        {
            Err(ApiError::ReadOnlyReplica {
                central: (state.replica.as_ref())
                    .map(|r| r.central_url.clone())
                    .unwrap_or_default(),
            })
        }
        Ok((route, params)) if route.access != Access::Token => {
            match admit(state, peer, route.access, request.authorization()) {
                Err(e) => Err(e),
                Ok(()) => match route.handler {
                    Handler::Now(handler) => {
                        let params: Vec<&str> = params.iter().map(String::as_str).collect();
                        handler(state, &params, &request).map(Reply::into_response)
                    }
                    Handler::Waits(handler) => {
                        handler(Call {
                            state: state.clone(),
                            principal: None,
                            params,
                            request,
                        })
                        .await
                    }
                },
            }
        }
        // a route that needs a token, a path with another method, or no route: who asks is
        // known before what exists is told
        _ => match authenticate(state, request.headers()) {
            Err(e) => Err(e),
            Ok(principal) => route_authenticated(state, principal, target, request).await,
        },
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// How many parameters `route`'s path has.
fn route_params(route: &Route) -> usize {
    route.path.split('/').filter(|s| s.starts_with('{')).count()
}

/// How long a throttled request waits before its refusal (`auth.refusals_per_minute`): a
/// client that sends as fast as it is answered then sends one request per second per
/// connection.
pub const THROTTLED_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Routes an authenticated request to its route, or answers the 405 or 404 `target` holds,
/// unless its user is throttled: past `auth.refusals_per_minute` refused requests, the user's
/// requests on the routes that wait are refused unread for the rest of the minute, each after
/// [`THROTTLED_PAUSE`]. A refused write costs the server an fsync'd audit entry and a parse of
/// its body; a low-privilege token on a few connections could otherwise spend a core on them
/// (issue #18). The network checks are not throttled.
async fn route_authenticated(
    state: &AppState,
    principal: Principal,
    target: Result<(&'static Route, Vec<String>), ApiError>,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    admit_user(state, principal.user).await?;
    let user = principal.user;
    let actor = principal.actor();
    let result = match target {
        Ok((route, params)) => match route.handler {
            Handler::Waits(handler) => {
                handler(Call {
                    state: state.clone(),
                    principal: Some(principal),
                    params,
                    request,
                })
                .await
            }
            // a token route answers from memory: none does (tested in routes.rs)
            Handler::Now(_) => Err(ApiError::Internal),
        },
        // 405 or 404, told now that the caller is known
        Err(e) => Err(e),
    };
    if let Err(e) = &result
        && spends_the_budget(e)
    {
        spend_budget(state, actor, user).await;
    }
    result
}

/// Refuses, after [`THROTTLED_PAUSE`], a request of `user` while the user is throttled
/// (`auth.refusals_per_minute`): the routes that wait and the web pages share the budget.
///
/// # Errors
/// [`ApiError::TooManyRefusals`].
pub async fn admit_user(state: &AppState, user: u64) -> Result<(), ApiError> {
    if let Err(limiter::RetryAfter(seconds)) = state.refusals.check(user) {
        state.requests.refused(RequestRefusal::Throttled);
        tokio::time::sleep(THROTTLED_PAUSE).await;
        return Err(ApiError::TooManyRefusals {
            retry_after: seconds.saturating_sub(THROTTLED_PAUSE.as_secs()).max(1),
        });
    }
    Ok(())
}

/// Counts a refusal of `user` (acting as `actor`; one that [`spends_the_budget`]) against the
/// user's refusal budget; the minute the budget is spent, the throttling is recorded in the
/// audit trail.
pub async fn spend_budget(state: &AppState, actor: crate::audit::Actor, user: u64) {
    if state.refusals.spend(user) {
        // the budget is spent: the throttling itself is on the record, once a minute
        let event = Event {
            actor,
            action: Action::AccessThrottle,
            target: format!("user/{user}"),
            outcome: Outcome::Refused,
            reason: Some(
                "auth.refusals_per_minute requests refused this minute: the rest of the minute's are refused unread"
                    .into(),
            ),
            detail: None,
        };
        let recorded = off_worker(state, move |state| Ok(state.accounts.record(&event)?)).await;
        if let Err(e) = recorded {
            tracing::error!(error = ?e, "could not record a throttling in the audit trail");
        }
    }
}

/// Whether a refusal counts against its user's `auth.refusals_per_minute`: every refusal for
/// lack of right, every conflict with the accounts (a 17th token, the last regulator
/// administrator, a person who has an account), and the refusals that answer a guess of an
/// owner's ID number. Not the decree's refusals of ordinary work (activating an unregistered
/// device), which an operator meets many times a day.
pub fn spends_the_budget(error: &ApiError) -> bool {
    match error {
        ApiError::Forbidden | ApiError::Denied { .. } | ApiError::Conflict { .. } => true,
        ApiError::Refused { cause, .. } => cause.is_owner_guess(),
        _ => false,
    }
}

/// The caller behind the request's `Authorization: Bearer` token.
///
/// # Errors
/// [`ApiError::Unauthenticated`] without a valid token, [`ApiError::Suspended`]; each counted
/// in `imeidb_requests_refused_total`.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    bearer(headers)
        .and_then(|token| Ok(state.accounts.authenticate(token)?))
        .inspect_err(|e| count_refusal(state, e))
}

/// Counts one request of `peer` on a public route.
///
/// # Errors
/// [`ApiError::TooManyRequests`] past the client's limit (counted in
/// `imeidb_requests_refused_total`).
pub fn admit_public(state: &AppState, peer: IpAddr) -> Result<(), ApiError> {
    state
        .public_limiter
        .admit(peer)
        .map_err(|limiter::RetryAfter(seconds)| {
            let e = ApiError::TooManyRequests {
                retry_after: seconds,
            };
            count_refusal(state, &e);
            e
        })
}

/// Counts a refusal before any route ran: no valid token, a suspended account, a rate limit.
/// An unknown token and a wrong secret are one reason: `/metrics` is public, and must not
/// tell a guesser which token ids exist.
fn count_refusal(state: &AppState, error: &ApiError) {
    let refusal = match error {
        ApiError::Unauthenticated => RequestRefusal::Unauthenticated,
        ApiError::Suspended { .. } => RequestRefusal::Suspended,
        ApiError::TooManyRequests { .. } => RequestRefusal::RateLimited,
        ApiError::TooManyRefusals { .. } => RequestRefusal::Throttled,
        _ => return,
    };
    state.requests.refused(refusal);
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    bearer_token(headers.get(AUTHORIZATION).map(HeaderValue::as_bytes))
}

/// The token of an `Authorization` header's value, if it is `Bearer TOKEN`.
fn bearer_token(authorization: Option<&[u8]>) -> Result<&str, ApiError> {
    authorization
        // visible ASCII, as `HeaderValue::to_str` wants
        .filter(|v| v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(ApiError::Unauthenticated)
}

/// Network checks: open on a trusted listener, otherwise for users who may check.
///
/// Performance-critical: on every check when tokens are required (no allocation, no I/O,
/// see [`Accounts::authorize`]).
fn authorize_check(state: &AppState, authorization: Option<&[u8]>) -> Result<(), ApiError> {
    if state.open_checks {
        return Ok(());
    }
    bearer_token(authorization)
        .and_then(|token| Ok(state.accounts.authorize(token, Permission::Check)?))
        .inspect_err(|e| count_refusal(state, e))
}

/// Runs `work`, a domain call that may wait on the disk (an fsync'd write, an audited
/// refusal, a scan), on a blocking thread, so that the async workers, which answer the network
/// checks, never wait on the disk (issue #18: forbidden writes from one token, each an
/// fsync'd audit entry, held the checks back when they ran on the workers).
/// At most [`DISK_WAITS`] run at once.
///
/// # Errors
/// What `work` returns; [`ApiError::Internal`] if it panicked.
pub async fn off_worker<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = Arc::clone(&state.disk_waits)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Internal)?;
    holding(state, permit, work).await?
}

/// Runs `work` on a blocking thread, holding `permit` (a place of a bounded pool: the disk
/// waits, the web sign-in's Argon2) until it ends.
///
/// # Errors
/// [`ApiError::Internal`] if it panicked.
pub async fn holding<T: Send + 'static>(
    state: &AppState,
    permit: tokio::sync::OwnedSemaphorePermit,
    work: impl FnOnce(&AppState) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let result = work(&state);
        drop(permit);
        result
    })
    .await
    .map_err(|_| ApiError::Internal)
}

/// [`off_worker`] for a domain call of `principal`, which gets the caller as it is when the
/// call starts: a request that waited for its turn while its user or organisation was
/// suspended, its user deactivated or its token revoked is refused then, and one whose roles
/// changed runs with the new roles (a suspension takes effect at once).
///
/// # Errors
/// What `work` returns; [`ApiError::Unauthenticated`] or [`ApiError::Suspended`] if the caller
/// no longer may act; [`ApiError::Internal`] if it panicked.
pub async fn off_worker_as<T: Send + 'static>(
    state: &AppState,
    principal: &Principal,
    work: impl FnOnce(&AppState, &Principal) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let caller = principal.clone();
    off_worker(state, move |state| {
        let now = state.accounts.recheck(&caller)?;
        work(state, &now)
    })
    .await
}

/// Whether the server is ready to answer checks: started, not stopping, and on a replica,
/// caught up with the central within `replication.max_lag_secs`.
pub fn is_ready(state: &AppState) -> bool {
    state.ready.load(Ordering::Relaxed) && state.replica.as_ref().is_none_or(|r| r.caught_up())
}
