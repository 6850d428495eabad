//! HTTP: the router and one file per area. Handlers translate HTTP into registry calls and
//! the answers back into HTTP; they decide nothing and never touch the store.
//!
//! | route | file |
//! |---|---|
//! | `GET /n5g-eir-eic/v1/equipment-status` | [`eir`] (TS 29.511) |
//! | `GET /v1/imeis/{imei}/status`, `POST /v1/checks` | [`checks`] |
//! | `GET /metrics`, `/healthz`, `/readyz` | [`ops`] |
//! | `/v1/me`, `/v1/orgs/...`, `/v1/users/{user}/tokens/...`, `/v1/audit` | [`admin`] |
//! | `/v1/reports`, `/v1/activations`, `/v1/sellers`, `/v1/imeis/{imei}/recovery`, `/owner`, `/history`, `/v1/negative/{imei}`, `/v1/public/...` | [`registry`] |
//!
//! Two kinds of route: those that never wait ([`answer_now`]: checks, operations, the public
//! status; from memory, on the async worker that read the request), and those that may wait
//! ([`route_waiting`]). A waiting route reads its body on the worker, then runs its domain
//! call on a blocking thread ([`off_worker`]) if that call may wait on the disk: every write
//! (each one fsync'd, audited refusals included) and every scan. A slow disk or a flood of
//! writes then never delays a check.
//!
//! Authorization denies by default: only `/metrics`, `/healthz`, `/readyz` and the
//! rate-limited `/v1/public/imeis/{imei}` and `/v1/public/sellers` are public.
//! Network checks need a token whose user may check (`auth.open_checks` lifts that on a
//! listener only the core network reaches); every other route needs a valid token, and the
//! accounts layer decides what its roles allow.
//!
//! Every error body is RFC 7807 `application/problem+json` ([`problem`]).

pub mod admin;
pub mod checks;
pub mod eir;
pub mod limiter;
pub mod metrics;
pub mod ops;
pub mod problem;
pub mod registry;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};
use hyper::{Method, Request, Response, StatusCode};

use crate::accounts::{Accounts, AccountsError, Principal};
use crate::audit::{Action, Event, Outcome};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::{Registry, owners};
use crate::roles::Permission;
use crate::store::Store;
use metrics::{RequestMetrics, RequestRefusal};
pub use problem::ApiError;
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
    pub jobs: Arc<registry::Jobs>,
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
}

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

/// A response body: a whole buffer (every route but the exports), or chunks streamed from a
/// producer through a bounded channel (the negative list's exports).
pub type Body = Either<Full<Bytes>, ChannelBody>;

/// The response type of every handler.
pub type HttpResponse = Response<Body>;

/// A body whose chunks arrive through a channel; it ends when the sender is dropped.
pub struct ChannelBody {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it (`capacity` chunks in flight).
    pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, chunks) = tokio::sync::mpsc::channel(capacity);
        (tx, ChannelBody { chunks })
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    }
}

/// A whole-buffer body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(bytes.into()))
}

/// A response whose body is one buffer and whose headers are its content type and at most
/// one more: what the routes that never wait answer, and what every error renders as. Lighter
/// than an [`HttpResponse`], whose header map costs two allocations and its body's `Bytes` a
/// third: answering a direct-path check with a `Reply` took it from 6,600 to 5,500 user-space
/// instructions (callgrind). The direct path writes it out as it is (`server/direct.rs`);
/// hyper gets [`Reply::into_response`].
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The `content-type` header's value.
    pub content_type: &'static str,
    /// One more header (`allow`, `www-authenticate`, `retry-after`), if any.
    pub header: Option<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Cow<'static, [u8]>,
}

impl Reply {
    /// A `200` JSON reply.
    pub fn json(body: impl Into<Cow<'static, [u8]>>) -> Reply {
        Reply::new(StatusCode::OK, "application/json", body)
    }

    /// A reply with `status`, a `content-type` and a body, and no other header.
    pub fn new(
        status: StatusCode,
        content_type: &'static str,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Reply {
        Reply {
            status,
            content_type,
            header: None,
            body: body.into(),
        }
    }

    /// The same response for hyper.
    pub fn into_response(self) -> HttpResponse {
        let body = match self.body {
            Cow::Borrowed(bytes) => Bytes::from_static(bytes),
            Cow::Owned(bytes) => Bytes::from(bytes),
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        if let Some((name, value)) = self.header {
            headers.insert(name, value);
        }
        response
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
    /// Whether the method is `GET`.
    fn is_get(&self) -> bool;
    /// The path of the request target.
    fn path(&self) -> &str;
    /// The query of the request target, without its `?`.
    fn query(&self) -> Option<&str>;
    /// The first `Authorization` header's value.
    fn authorization(&self) -> Option<&[u8]>;
}

impl<B> Head for Request<B> {
    fn is_get(&self) -> bool {
        self.method() == Method::GET
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

/// The reply of a route that never waits, or `None` for a request whose route waits (see
/// [`route_waiting`]). The one routing table of those routes, whoever read the request.
pub fn answer_now(state: &AppState, peer: IpAddr, head: &impl Head) -> Option<Reply> {
    let path = head.path();
    let result = match path {
        "/metrics" | "/healthz" | "/readyz" if !head.is_get() => {
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        }
        "/metrics" => Ok(ops::metrics(state)),
        "/healthz" => Ok(ops::healthz()),
        "/readyz" => ops::readyz(state),
        eir::PATH => match authorize_check(state, head.authorization()) {
            Err(e) => Err(e),
            Ok(()) if head.is_get() => eir::equipment_status(state, head.query()),
            Ok(()) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        path if path.starts_with(registry::PUBLIC_IMEIS) => {
            let imei = &path[registry::PUBLIC_IMEIS.len()..];
            if head.is_get() && !imei.contains('/') {
                registry::public_status(state, peer, imei)
            } else if imei.contains('/') {
                Err(ApiError::NotFound)
            } else {
                Err(ApiError::MethodNotAllowed { allow: "GET" })
            }
        }
        path => match checks::status_path_imei(path) {
            Some(imei) => match authorize_check(state, head.authorization()) {
                Err(e) => Err(e),
                Ok(()) if head.is_get() => checks::single(state, imei, head.query()),
                Ok(()) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            },
            None => return None,
        },
    };
    Some(result.unwrap_or_else(ApiError::into_reply))
}

/// Routes a request [`route_now`] gave back: the batch check, the public sellers search (it
/// reads the store), and every authenticated route of the registry and its administration.
/// Never fails: every error becomes a problem+json response.
pub async fn route_waiting(
    state: &AppState,
    peer: IpAddr,
    request: Request<Incoming>,
) -> HttpResponse {
    let result = if request.uri().path() == registry::PUBLIC_SELLERS {
        if request.method() == Method::GET {
            registry::public_sellers(state, peer, request.uri().query()).await
        } else {
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        }
    } else if request.uri().path() == checks::BATCH_PATH {
        match authorize_check(state, request.authorization()) {
            Err(e) => Err(e),
            Ok(()) if request.method() == Method::POST => checks::batch(state, request).await,
            Ok(()) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        }
    } else {
        match authenticate(state, request.headers()) {
            Err(e) => Err(e),
            Ok(principal) => route_authenticated(state, principal, request).await,
        }
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// How long a throttled request waits before its refusal (`auth.refusals_per_minute`): a
/// client that sends as fast as it is answered then sends one request per second per
/// connection.
pub const THROTTLED_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Routes an authenticated request, unless its user is throttled: past
/// `auth.refusals_per_minute` refused requests, the user's requests on the routes that wait
/// are refused unread for the rest of the minute, each after [`THROTTLED_PAUSE`]. A refused
/// write costs the server an fsync'd audit entry and a parse of its body; a low-privilege
/// token on a few connections could otherwise spend a core on them (issue #18). The network
/// checks are not throttled.
async fn route_authenticated(
    state: &AppState,
    principal: Principal,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    if let Err(limiter::RetryAfter(seconds)) = state.refusals.check(principal.user) {
        state.requests.refused(RequestRefusal::Throttled);
        tokio::time::sleep(THROTTLED_PAUSE).await;
        return Err(ApiError::TooManyRefusals {
            retry_after: seconds.saturating_sub(THROTTLED_PAUSE.as_secs()).max(1),
        });
    }
    let result = if admin::handles(request.uri().path()) {
        admin::route(state, &principal, request).await
    } else {
        registry::route(state, &principal, request).await
    }
    .unwrap_or(Err(ApiError::NotFound));
    if result.as_ref().is_err_and(spends_the_budget) && state.refusals.spend(principal.user) {
        // the budget is spent: the throttling itself is on the record, once a minute
        let event = Event {
            actor: principal.actor(),
            action: Action::AccessThrottle,
            target: format!("user/{}", principal.user),
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
    result
}

/// Whether a refusal counts against its user's `auth.refusals_per_minute`: every refusal for
/// lack of right, every conflict with the accounts (a 17th token, the last regulator
/// administrator, a person who has an account), and the refusals that answer a guess of an
/// owner's ID number. Not the decree's refusals of ordinary work (activating an unregistered
/// device), which an operator meets many times a day.
fn spends_the_budget(error: &ApiError) -> bool {
    match error {
        ApiError::Forbidden | ApiError::Denied { .. } | ApiError::Conflict { .. } => true,
        ApiError::Refused { cause, .. } => owners::OWNER_GUESS_REFUSALS.contains(cause),
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
/// fsync'd audit entry, took checks from 53.6 K/s to 3.0 K/s when they ran on the workers).
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
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let result = work(&state);
        drop(permit);
        result
    })
    .await
    .map_err(|_| ApiError::Internal)?
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

/// Whether the server is ready to answer checks.
pub fn is_ready(state: &AppState) -> bool {
    state.ready.load(Ordering::Relaxed)
}

/// A `200` JSON response.
pub fn json_response(body: impl Into<Cow<'static, [u8]>>) -> HttpResponse {
    Reply::json(body).into_response()
}

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
