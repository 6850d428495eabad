//! The one route table of the HTTP API. Each row says the method and path pattern, who may
//! call it ([`Access`], checked here before the handler runs; and the [`Permission`] the
//! domain call then enforces, stated here for the OpenAPI document and checked against the
//! domain by `tests/e2e/authz.rs`), whether it answers from memory on the worker that read the request
//! ([`Handler::Now`]) or may wait ([`Handler::Waits`]), and what the OpenAPI document says of
//! it. The same rows drive hyper and the direct path (`server/direct.rs`), the 405s and their
//! `Allow` header, `GET /openapi.json` (`openapi.rs`) and the authorization matrix of
//! `tests/e2e/authz.rs`, so none of them can drift from the others.
//!
//! Rows of one path pattern are adjacent; patterns do not overlap (tested below). The network
//! checks come first: the table is scanned in order and a check is the commonest request.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

use hyper::body::Incoming;
use hyper::{Method, Request};

use super::problem::ParamLocation;
use super::{
    ApiError, AppState, Head, HttpResponse, Reply, admin, backups, checks, eir, exchange, ops,
    owners, public, replication, reports, sellers, uploads,
};
use crate::accounts::Principal;
use crate::imei::Imei;
use crate::roles::Permission;

/// Who may call a route: checked before its handler runs. Authorization denies by default:
/// a route is open only if its row says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token: the operations routes (`/metrics`, `/healthz`, `/readyz`).
    Open,
    /// Anyone, without a token, within the per-client limit of the public routes
    /// (`public.requests_per_minute`): the public lookups and `/openapi.json`.
    Public,
    /// A token whose user may check ([`Permission::Check`]), unless `auth.open_checks` lifts
    /// that on a listener only the core network reaches.
    Check,
    /// A valid token of an active user in an active organisation; the domain call decides what
    /// its roles allow (the row's `permission`) and in which scope.
    Token,
}

/// What a request body of a route is, for the OpenAPI document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// No body.
    None,
    /// `application/json` (or `application/merge-patch+json` for a `PATCH`).
    Json,
    /// An optional `{"reason": "..."}`.
    Reason,
    /// Devices as `text/csv` or `application/x-ndjson`, streamed.
    Devices,
    /// A foreign negative list as `text/csv`, streamed.
    Csv,
}

/// A route that answers from memory: handed the path parameters and the request's head.
pub type NowHandler = fn(&AppState, &[&str], &dyn Head) -> Result<Reply, ApiError>;

/// The future of a route that may wait.
pub type Waiting = Pin<Box<dyn Future<Output = Result<HttpResponse, ApiError>> + Send>>;

/// A route that may wait (reads a body, writes, scans): handed the whole [`Call`].
pub type WaitsHandler = fn(Call) -> Waiting;

/// How a route runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// From memory, on the async worker that read the request: never waits, never fails for
    /// lack of a thread. The direct path answers these without hyper.
    Now(NowHandler),
    /// Reads its body on the worker, then runs its domain call on a blocking thread if that
    /// call may wait on the disk ([`super::off_worker`]).
    Waits(WaitsHandler),
}

/// One row of the table.
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path pattern: literal segments and `{name}` parameters, one segment each.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The permission the domain call requires of the caller's roles (enforced there, not
    /// here); `None` where it decides by scope alone (the caller's own account, organisation
    /// or upload).
    pub permission: Option<Permission>,
    /// How it runs.
    pub handler: Handler,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Its request body.
    pub payload: Payload,
    /// Its query parameters: name and meaning.
    pub query: &'static [(&'static str, &'static str)],
}

/// Everything a waiting route gets.
pub struct Call {
    /// The server's state.
    pub state: AppState,
    /// The caller, on [`Access::Token`] routes.
    pub principal: Option<Principal>,
    /// The path's parameter values, in the pattern's order.
    pub params: Vec<String>,
    /// The request, body unread.
    pub request: Request<Incoming>,
}

impl Call {
    /// The caller of an [`Access::Token`] route.
    ///
    /// # Errors
    /// [`ApiError::Unauthenticated`] on a route without one (a table error caught by tests).
    pub fn who(&self) -> Result<&Principal, ApiError> {
        self.principal.as_ref().ok_or(ApiError::Unauthenticated)
    }

    /// The state, the caller of an [`Access::Token`] route, and the request: for a handler that
    /// reads the body itself (a stream).
    ///
    /// # Errors
    /// [`ApiError::Unauthenticated`] on a route without a caller (a table error).
    pub fn into_caller_parts(self) -> Result<(AppState, Principal, Request<Incoming>), ApiError> {
        let principal = self.principal.ok_or(ApiError::Unauthenticated)?;
        Ok((self.state, principal, self.request))
    }

    /// The `n`th path parameter as a registry id, named `name` in errors.
    ///
    /// # Errors
    /// [`ApiError::InvalidParams`] if it is not a positive number.
    pub fn id(&self, n: usize, name: &str) -> Result<u64, ApiError> {
        id(self.params.get(n).map_or("", String::as_str), name)
    }

    /// The `{imei}` path parameter (the first).
    ///
    /// # Errors
    /// [`ApiError::InvalidParams`] naming `{imei}` if it is not an IMEI.
    pub fn imei(&self) -> Result<Imei, ApiError> {
        path_imei(self.params.first().map_or("", String::as_str))
    }
}

/// A numeric id from the path.
///
/// # Errors
/// [`ApiError::InvalidParams`] naming `name`.
pub fn id(segment: &str, name: &str) -> Result<u64, ApiError> {
    segment
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| ApiError::InvalidParams {
            location: ParamLocation::Path,
            params: vec![(name.to_owned(), format!("{segment:?} is not a registry id"))],
        })
}

/// An IMEI from the path.
///
/// # Errors
/// [`ApiError::InvalidParams`] naming `{imei}`.
pub fn path_imei(segment: &str) -> Result<Imei, ApiError> {
    Imei::parse(segment).map_err(|e| ApiError::InvalidParams {
        location: ParamLocation::Path,
        params: vec![("{imei}".into(), e.to_string())],
    })
}

/// A waiting handler from an `async fn(Call) -> Result<HttpResponse, ApiError>`.
macro_rules! waits {
    ($handler:path) => {
        Handler::Waits(|call| Box::pin($handler(call)))
    };
}

/// A row; `permission`, `payload` and `query` default to none.
const fn row(
    method: Method,
    path: &'static str,
    access: Access,
    handler: Handler,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        access,
        permission: None,
        handler,
        summary,
        payload: Payload::None,
        query: &[],
    }
}

impl Route {
    const fn needs(mut self, permission: Permission) -> Route {
        self.permission = Some(permission);
        self
    }

    const fn body(mut self, payload: Payload) -> Route {
        self.payload = payload;
        self
    }

    const fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Route {
        self.query = query;
        self
    }
}

use Access::{Check, Open, Public, Token};
use Permission as P;

/// Every route of the API.
pub static ROUTES: &[Route] = &[
    // the network checks (TS 29.511 N5g-eir; native): first, the commonest requests
    row(
        Method::GET,
        eir::PATH,
        Check,
        Handler::Now(eir::equipment_status),
        "TS 29.511 N5g-eir EIC: the equipment status of a PEI (see TS29511_N5g-eir_EquipmentIdentityCheck.yaml)",
    )
    .needs(P::Check)
    .query(&[
        ("pei", "the PEI: imei-, imeisv-, mac- or eui64- form"),
        ("supi", "the subscriber (imsi-...): an inbound roamer is never restricted"),
        ("gpsi", "accepted and ignored"),
    ]),
    row(
        Method::GET,
        "/v1/imeis/{imei}/status",
        Check,
        Handler::Now(checks::single),
        "The network check of one IMEI: the answer, why, and on which lists it is",
    )
    .needs(P::Check)
    .query(&[("imsi", "the subscriber's IMSI: an inbound roamer is never restricted")]),
    row(
        Method::POST,
        checks::BATCH_PATH,
        Check,
        waits!(checks::batch),
        "The network check of many IMEIs at once, in order (at most checks.max_batch)",
    )
    .needs(P::Check)
    .body(Payload::Json),
    // operations
    row(
        Method::GET,
        "/metrics",
        Open,
        Handler::Now(ops::metrics),
        "Prometheus metrics",
    ),
    row(
        Method::GET,
        "/healthz",
        Open,
        Handler::Now(ops::healthz),
        "200 while the process answers",
    ),
    row(
        Method::GET,
        "/readyz",
        Open,
        Handler::Now(ops::readyz),
        "200 once checks are answered; 503 before and during shutdown",
    ),
    // public, not open: tens of KiB answered to a request of tens of bytes; and it waits, so
    // hyper sends the static body as it is where the direct path would copy it per request
    row(
        Method::GET,
        "/openapi.json",
        Public,
        waits!(ops::openapi),
        "This document",
    ),
    // public (art. 2.2.11.3, 2.2.11.6)
    row(
        Method::GET,
        "/v1/public/imeis/{imei}",
        Public,
        Handler::Now(public::status),
        "Whether an IMEI is reported stolen or lost and whether it is registered",
    ),
    row(
        Method::GET,
        public::SELLERS_PATH,
        Public,
        waits!(public::sellers),
        "Authorised sellers valid today",
    )
    .query(&[("q", "words of the seller's name, NIT or municipality")]),
    // who am I; organisations, users, tokens; the audit trail
    row(
        Method::GET,
        "/v1/me",
        Token,
        waits!(admin::me),
        "The caller: user, organisation, roles",
    ),
    row(
        Method::GET,
        "/v1/orgs",
        Token,
        waits!(admin::list_orgs),
        "Organisations (an auditor outside the regulator: its own)",
    )
    .needs(P::ReadOrgs),
    row(
        Method::POST,
        "/v1/orgs",
        Token,
        waits!(admin::create_org),
        "Creates an organisation and its administrator from the user form",
    )
    .needs(P::AdministerOrgs)
    .body(Payload::Json),
    row(
        Method::GET,
        "/v1/orgs/{org}",
        Token,
        waits!(admin::get_org),
        "One organisation (the regulator's readers, or the organisation's own administrator and auditors)",
    ),
    row(
        Method::PATCH,
        "/v1/orgs/{org}",
        Token,
        waits!(admin::update_org),
        "Changes an organisation (JSON merge patch)",
    )
    .needs(P::AdministerOrgs)
    .body(Payload::Json),
    row(
        Method::POST,
        "/v1/orgs/{org}/suspend",
        Token,
        waits!(admin::suspend_org),
        "Suspends an organisation: its tokens stop at once",
    )
    .needs(P::AdministerOrgs)
    .body(Payload::Reason),
    row(
        Method::POST,
        "/v1/orgs/{org}/reactivate",
        Token,
        waits!(admin::reactivate_org),
        "Ends an organisation's suspension",
    )
    .needs(P::AdministerOrgs)
    .body(Payload::Reason),
    row(
        Method::GET,
        "/v1/orgs/{org}/users",
        Token,
        waits!(admin::list_users),
        "An organisation's users",
    )
    .needs(P::AdministerUsers),
    row(
        Method::POST,
        "/v1/orgs/{org}/users",
        Token,
        waits!(admin::create_user),
        "Creates a personal account in an organisation",
    )
    .needs(P::AdministerUsers)
    .body(Payload::Json),
    row(
        Method::GET,
        "/v1/orgs/{org}/users/{user}",
        Token,
        waits!(admin::get_user),
        "One user",
    )
    .needs(P::AdministerUsers),
    row(
        Method::PATCH,
        "/v1/orgs/{org}/users/{user}",
        Token,
        waits!(admin::update_user),
        "Changes a user (JSON merge patch): only one who may act on the account",
    )
    .needs(P::AdministerUsers)
    .body(Payload::Json),
    row(
        Method::POST,
        "/v1/orgs/{org}/users/{user}/deactivate",
        Token,
        waits!(admin::deactivate_user),
        "Deactivates a user: its tokens stop at once",
    )
    .needs(P::AdministerUsers)
    .body(Payload::Reason),
    row(
        Method::POST,
        "/v1/orgs/{org}/users/{user}/activate",
        Token,
        waits!(admin::activate_user),
        "Activates a user again",
    )
    .needs(P::AdministerUsers)
    .body(Payload::Reason),
    row(
        Method::POST,
        "/v1/orgs/{org}/users/{user}/suspend",
        Token,
        waits!(admin::suspend_user),
        "Suspends a user (the regulator)",
    )
    .needs(P::AdministerOrgs)
    .body(Payload::Reason),
    row(
        Method::POST,
        "/v1/orgs/{org}/users/{user}/reactivate",
        Token,
        waits!(admin::reactivate_user),
        "Ends a user's suspension (the regulator)",
    )
    .needs(P::AdministerOrgs)
    .body(Payload::Reason),
    row(
        Method::GET,
        "/v1/users/{user}/tokens",
        Token,
        waits!(admin::list_tokens),
        "A user's live tokens (the user, its administrator, the regulator)",
    ),
    row(
        Method::POST,
        "/v1/users/{user}/tokens",
        Token,
        waits!(admin::create_token),
        "Issues a token: the user its own; an administrator only for an account with no live token",
    )
    .body(Payload::Json),
    row(
        Method::DELETE,
        "/v1/users/{user}/tokens/{token}",
        Token,
        waits!(admin::revoke_token),
        "Revokes a token",
    ),
    row(
        Method::POST,
        "/v1/users/{user}/password-setup",
        Token,
        waits!(admin::password_setup),
        "Issues a one-time code with which the user sets its web password (an administrator who may act on the account); clears the password it had",
    ),
    row(
        Method::GET,
        "/v1/audit",
        Token,
        waits!(admin::audit),
        "The audit trail, filtered and paged",
    )
    .needs(P::ReadAudit)
    .query(&[
        ("actor", "a user id"),
        (
            "issued_by",
            "a user id: entries made with credentials that user issued for someone else",
        ),
        ("org", "an organisation id"),
        ("action", "an action name (org.create, report.create, ...)"),
        ("from", "Unix seconds or an RFC 3339 time"),
        ("to", "Unix seconds or an RFC 3339 time"),
        ("after", "the sequence number the previous page ended with"),
        ("limit", "entries per page, at most 1000"),
    ]),
    // online backups (the regulator's), into backup.dir only
    row(
        Method::POST,
        "/v1/admin/backups",
        Token,
        waits!(backups::create),
        "Takes an online backup of the whole registry into backup.dir and answers what it holds (entries and SHA-256 per list, audit head)",
    )
    .needs(P::Backup),
    row(
        Method::GET,
        "/v1/admin/backups",
        Token,
        waits!(backups::list),
        "The backups in backup.dir, each with what it holds",
    )
    .needs(P::Backup),
    // read replicas start from this (the central's; IMEIs only)
    row(
        Method::GET,
        "/v1/replication/snapshot",
        Token,
        waits!(replication::snapshot),
        "Both lists' IMEIs (no records) with the number of the last change they include, for a read replica to start from (binary: see src/replication/feed.rs)",
    )
    .needs(P::Replicate),
    // the registry's write paths and lookups
    row(
        Method::POST,
        "/v1/reports",
        Token,
        waits!(reports::report),
        "Reports a device stolen or lost (art. 2.2.11.6)",
    )
    .needs(P::Report)
    .body(Payload::Json),
    row(
        Method::POST,
        "/v1/activations",
        Token,
        waits!(owners::activate),
        "Activates a device and binds its owner, with proof of legal acquisition if unregistered (art. 2.2.11.8)",
    )
    .needs(P::Activate)
    .body(Payload::Json),
    row(
        Method::POST,
        "/v1/registrations",
        Token,
        waits!(uploads::register),
        "Registers devices on the positive list from a CSV or NDJSON stream",
    )
    .needs(P::Register)
    .body(Payload::Devices)
    .query(&[(
        "job",
        "16 hexadecimal digits drawn at random, to follow the upload at /v1/registrations/jobs/{job} while it runs",
    )]),
    row(
        Method::GET,
        "/v1/registrations/jobs/{job}",
        Token,
        waits!(uploads::job),
        "The progress of an upload (the uploading organisation, the regulator)",
    ),
    row(
        Method::GET,
        "/v1/exchange/negative",
        Token,
        waits!(exchange::export),
        "The whole negative list as CSV, streamed, with its sequence number (art. 2.2.11.6 par. 1)",
    )
    .needs(P::Exchange),
    row(
        Method::GET,
        "/v1/exchange/negative/changes",
        Token,
        waits!(exchange::changes),
        "The negative list's changes after a sequence number, as CSV",
    )
    .needs(P::Exchange)
    .query(&[("since", "the sequence number of the last export or delta")]),
    row(
        Method::POST,
        "/v1/exchange/foreign",
        Token,
        waits!(exchange::foreign),
        "Imports a foreign negative list (CSV, streamed)",
    )
    .needs(P::Exchange)
    .body(Payload::Csv)
    .query(&[
        ("source", "who sent the list (GSMA, a country's regulator)"),
        (
            "job",
            "16 hexadecimal digits drawn at random, to follow the import at /v1/registrations/jobs/{job} while it runs",
        ),
    ]),
    row(
        Method::POST,
        "/v1/sellers",
        Token,
        waits!(sellers::record),
        "Records or updates an authorised seller (art. 2.2.11.3)",
    )
    .needs(P::ManageSellers)
    .body(Payload::Json),
    row(
        Method::POST,
        "/v1/imeis/{imei}/owner",
        Token,
        waits!(owners::transfer),
        "Changes a device's owner, with the last owner's authorisation (art. 2.2.11.8)",
    )
    .needs(P::Activate)
    .body(Payload::Json),
    row(
        Method::POST,
        "/v1/imeis/{imei}/recovery",
        Token,
        waits!(reports::recover),
        "Excludes a recovered device's report: the reporting operator (art. 2.2.11.6 par. 2)",
    )
    .needs(P::Recover)
    .body(Payload::Json),
    row(
        Method::GET,
        "/v1/imeis/{imei}/history",
        Token,
        waits!(reports::history),
        "An IMEI's history, as the caller's role may see it",
    ),
    row(
        Method::GET,
        "/v1/negative/{imei}",
        Token,
        waits!(reports::consult),
        "An authority's consultation of one negative-list record; every lookup audited (art. 2.2.11.6)",
    )
    .needs(P::ConsultNegative),
];

/// What the table says of a request.
pub enum Found<'p> {
    /// Its route, and the path's parameters (unused places are empty).
    Route(&'static Route, [&'p str; MAX_PARAMS]),
    /// The path is a route's, the method none of its: 405 with `allow`, after the access of
    /// the path's routes is checked.
    WrongMethod {
        /// Who may call the path's routes.
        access: Access,
        /// The `Allow` header: the path's methods.
        allow: &'static str,
    },
    /// No route has the path.
    Nothing,
}

/// Most parameters a path pattern has.
pub const MAX_PARAMS: usize = 2;

/// Longest path a route has: ids, IMEIs and token ids are short. A longer path is no route's,
/// found without scanning it once per row (a request head may be 16 KiB).
pub const MAX_PATH: usize = 256;

/// The route of `method` and `path`.
///
/// Performance-critical: on every request. Compares segments in place; no allocation.
pub fn find<'p>(method: &Method, path: &'p str) -> Found<'p> {
    if path.len() > MAX_PATH {
        return Found::Nothing;
    }
    let mut params = [""; MAX_PARAMS];
    let pieces: &[Vec<Piece>] = &PIECES;
    let Some(first) = pieces
        .iter()
        .position(|row| matches_row(row, path, &mut params))
    else {
        return Found::Nothing;
    };
    let group = &GROUPS[first];
    match ROUTES[first..group.end]
        .iter()
        .find(|route| route.method == *method)
    {
        Some(route) => Found::Route(route, params),
        None => Found::WrongMethod {
            access: ROUTES[first].access,
            allow: group.allow,
        },
    }
}

/// A path pattern cut where its parameters are: literal runs (`/v1/imeis/`) between
/// parameters, so matching compares whole runs rather than segment by segment.
enum Piece {
    Literal(&'static [u8]),
    Param,
}

/// The pieces of `pattern`.
fn pieces(pattern: &'static str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = pattern.as_bytes();
    while !rest.is_empty() {
        match rest.iter().position(|&b| b == b'{') {
            Some(0) => {
                out.push(Piece::Param);
                let close = rest
                    .iter()
                    .position(|&b| b == b'}')
                    .unwrap_or(rest.len() - 1);
                rest = &rest[close + 1..];
            }
            Some(k) => {
                out.push(Piece::Literal(&rest[..k]));
                rest = &rest[k..];
            }
            None => {
                out.push(Piece::Literal(rest));
                rest = &[];
            }
        }
    }
    out
}

/// Each row's pattern in pieces.
static PIECES: LazyLock<Vec<Vec<Piece>>> =
    LazyLock::new(|| ROUTES.iter().map(|route| pieces(route.path)).collect());

/// Whether `path` has the shape of a row's pattern (its `pieces`), filling `params` with its parameters:
/// a literal run that differs ends it (most rows differ in their first bytes), a parameter
/// takes the path up to its next `/`. Not `str::split`, whose searcher costs more per segment
/// than the whole comparison on the check path.
fn matches_row<'p>(pieces: &[Piece], path: &'p str, params: &mut [&'p str; MAX_PARAMS]) -> bool {
    let given = path.as_bytes();
    let (mut j, mut n) = (0, 0);
    for piece in pieces {
        match piece {
            Piece::Literal(literal) => {
                if !given[j..].starts_with(literal) {
                    return false;
                }
                j += literal.len();
            }
            Piece::Param => {
                let end = given[j..]
                    .iter()
                    .position(|&b| b == b'/')
                    .map_or(given.len(), |k| j + k);
                let Some(place) = params.get_mut(n) else {
                    return false;
                };
                // `j` and `end` are the path's ends or next to an ASCII byte: char boundaries
                *place = &path[j..end];
                n += 1;
                j = end;
            }
        }
    }
    j == given.len()
}

/// [`matches_row`] for a pattern given as text (tests).
#[cfg(test)]
fn matches<'p>(pattern: &str, path: &'p str, params: &mut [&'p str; MAX_PARAMS]) -> bool {
    let row = ROUTES
        .iter()
        .position(|r| r.path == pattern)
        .expect("a row's pattern");
    matches_row(&PIECES[row], path, params)
}

/// The rows of one path pattern: where they end, and their methods for `Allow`.
struct Group {
    end: usize,
    allow: &'static str,
}

/// For each row, its pattern's group (meaningful at the group's first row).
static GROUPS: LazyLock<Vec<Group>> = LazyLock::new(|| {
    (0..ROUTES.len())
        .map(|start| {
            let end = (start..ROUTES.len())
                .find(|&i| ROUTES[i].path != ROUTES[start].path)
                .unwrap_or(ROUTES.len());
            let allow = ROUTES[start..end]
                .iter()
                .map(|r| r.method.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            // once per row, at start: the header must live as long as the table
            Group {
                end,
                allow: Box::leak(allow.into_boxed_str()),
            }
        })
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    /// A path of `pattern` with `value` for each parameter.
    fn sample(pattern: &str, value: &str) -> String {
        pattern
            .split('/')
            .map(|s| if s.starts_with('{') { value } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn a_pattern_s_rows_are_adjacent_and_patterns_do_not_overlap() {
        for (i, route) in ROUTES.iter().enumerate() {
            let path = sample(route.path, "x");
            let first = PIECES
                .iter()
                .position(|row| matches_row(row, &path, &mut [""; MAX_PARAMS]))
                .unwrap();
            assert_eq!(
                ROUTES[first].path, route.path,
                "{path} is taken by {} first",
                ROUTES[first].path
            );
            assert!(
                i < GROUPS[first].end,
                "{} {} is not beside its pattern's other rows",
                route.method,
                route.path
            );
            let same = ROUTES[..i]
                .iter()
                .filter(|r| r.path == route.path && r.method == route.method);
            assert_eq!(same.count(), 0, "{} {} twice", route.method, route.path);
        }
    }

    #[test]
    fn a_pattern_s_rows_share_their_access_and_routes_that_answer_now_are_gets() {
        for route in ROUTES {
            let first = ROUTES.iter().position(|r| r.path == route.path).unwrap();
            assert_eq!(route.access, ROUTES[first].access, "{}", route.path);
            if let Handler::Now(_) = route.handler {
                // the direct path reads only GETs, and a token route must be authenticated
                // (and throttled) on the waiting side
                assert_eq!(route.method, Method::GET, "{}", route.path);
                assert_ne!(route.access, Token, "{}", route.path);
            }
            assert!(route.path.split('/').filter(|s| s.starts_with('{')).count() <= MAX_PARAMS);
        }
    }

    /// The same answer as matching segment by segment with `split`.
    fn by_segments<'p>(pattern: &str, path: &'p str) -> Option<Vec<&'p str>> {
        let (expected, given): (Vec<_>, Vec<_>) =
            (pattern.split('/').collect(), path.split('/').collect());
        if expected.len() != given.len() {
            return None;
        }
        let mut params = Vec::new();
        for (e, g) in expected.iter().zip(&given) {
            if e.starts_with('{') {
                params.push(*g);
            } else if e != g {
                return None;
            }
        }
        (params.len() <= MAX_PARAMS).then_some(params)
    }

    proptest::proptest! {
        #[test]
        fn matching_is_segment_by_segment(
            route in 0..ROUTES.len(),
            path in "(/(v1|orgs|users|7|é|x{0,3}|imeis|status|tokens|){0,7})|/v1/orgs/[0-9/]{0,12}",
        ) {
            let pattern = ROUTES[route].path;
            let mut params = [""; MAX_PARAMS];
            let found = matches(pattern, &path, &mut params);
            let want = by_segments(pattern, &path);
            proptest::prop_assert_eq!(found, want.is_some(), "{} {}", pattern, path);
            if let Some(want) = want {
                proptest::prop_assert_eq!(&params[..want.len()], &want[..]);
            }
        }
    }

    #[test]
    fn matches_every_row_s_own_shape() {
        for route in ROUTES {
            for value in ["", "1", "abc", "é"] {
                let path = sample(route.path, value);
                let mut params = [""; MAX_PARAMS];
                assert!(matches(route.path, &path, &mut params), "{path}");
                assert!(by_segments(route.path, &path).is_some());
            }
        }
    }

    #[test]
    fn finds_a_route_its_parameters_and_the_methods_of_a_path() {
        let Found::Route(route, params) = find(&Method::GET, "/v1/orgs/7/users/9") else {
            panic!("not found")
        };
        assert_eq!(route.path, "/v1/orgs/{org}/users/{user}");
        assert_eq!(params, ["7", "9"]);
        let Found::WrongMethod { access, allow } = find(&Method::DELETE, "/v1/orgs/7") else {
            panic!("no 405")
        };
        assert_eq!((access, allow), (Token, "GET, PATCH"));
        let Found::WrongMethod { allow, .. } = find(&Method::POST, "/metrics") else {
            panic!("no 405")
        };
        assert_eq!(allow, "GET");
        assert!(matches!(
            find(&Method::GET, "/v1/orgs/7/nothing"),
            Found::Nothing
        ));
        let long = format!("/v1/imeis/{}/status", "1".repeat(MAX_PATH));
        for path in [
            long.as_str(),
            "/v1/public/imeis/1/2",
            "/v1/imeis/1/2/status",
            "/v1/imeis/123",
            "/v1/other/123/status",
        ] {
            assert!(matches!(find(&Method::GET, path), Found::Nothing), "{path}");
        }
        let Found::Route(route, params) = find(&Method::GET, "/v1/imeis/490154203237518/status")
        else {
            panic!("not found")
        };
        assert_eq!(
            (route.path, params[0]),
            ("/v1/imeis/{imei}/status", "490154203237518")
        );
    }
}
