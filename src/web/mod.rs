//! The web pages, for the people who are not programmers: the public IMEI check and the
//! sellers search (anyone), and the consoles of the police, the regulator, the organisations'
//! administrators and the operators' and importers' desks (people signed in with a
//! password, `accounts/logins.rs`). In Spanish, server-rendered (maud: templates checked at
//! compile time, every interpolation escaped), one stylesheet and one small script served
//! from the binary, nothing fetched from anywhere else; every form works without JavaScript
//! (the upload then has the browser's own progress, not the page's bar).
//!
//! The pages translate, like the API: a form becomes the same domain call the API makes, with
//! the session's [`Principal`](crate::accounts::Principal), and the domain decides (roles,
//! scope, audit). Nothing here knows a rule; a page the caller's roles do not allow answers
//! the 403 page because the domain refused, not because a page decided.
//!
//! Which page answers which method and path is one table, [`pages`]:
//!
//! | pages | file |
//! |---|---|
//! | `/`, `/vendedores`, `/estilo.css`, `/carga.js` | [`public`] |
//! | `/entrar`, `/salir`, `/clave` | [`signin`] |
//! | `/consola`, `/consola/imei`, `/consola/reportes`, `/consola/activaciones`, `/consola/cargas` | [`desks`] |
//! | `/consola/cuenta` (one's own tokens and password) | [`account`] |
//! | `/consola/organizaciones`, `.../nueva`, `.../{org}` and its suspension | [`orgs`] |
//! | `/consola/organizaciones/{org}/usuarios/...` (users, their tokens and codes) | [`users`] |
//! | `/consola/auditoria` | [`audit`] |
//! | `/consola/vendedores` | [`sellers`] |
//!
//! Who may call what, and the worst a caller could do:
//! - **anyone**: the public pages, each check or search counted against the client's
//!   `public.requests_per_minute` like the public API (a friendly 429 page past it); the
//!   sign-in and set-password forms, counted the same way, with at most [`crate::api::PASSWORD_WORK`]
//!   Argon2 computations at once (a flood of sign-ins gets 503, never the CPU the checks
//!   need) and each failure on an existing account audited and counted towards its lock.
//! - **a signed-in person**: exactly what its roles allow over the API, nothing more: the
//!   pages call the same functions. Every state-changing form carries the session's CSRF
//!   token (and `SameSite=Strict` keeps the cookie off other sites' requests); a post
//!   without it is refused with 403 before anything is read into the domain. The upload
//!   form sent without the script is `multipart/form-data`: its token must be the first
//!   part (at most 256 bytes), the right to register is checked next, and only then is the
//!   file read, streamed and bounded as `POST /v1/registrations` bounds its body.
//!
//! Security headers on every page: a Content-Security-Policy that allows only this origin
//! (no inline script or style), `frame-ancestors 'none'`, `nosniff`, no referrer (the
//! set-password link carries a code), and `no-store` for everything but the stylesheet and
//! the script.

pub mod account;
pub mod audit;
pub mod desks;
pub mod es;
pub mod form;
pub mod layout;
pub mod orgs;
pub mod pages;
pub mod public;
pub mod sellers;
pub mod signin;
pub mod users;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{
    CACHE_CONTROL, CONTENT_TYPE, COOKIE, HeaderName, HeaderValue, LOCATION, SET_COOKIE,
};
use hyper::{Method, Request, Response, StatusCode};
use maud::Markup;

use self::pages::{Found, Page};
use crate::accounts::logins::SignedIn;
use crate::accounts::token::constant_time_eq;
use crate::api::{
    ApiError, AppState, HttpResponse, admit_public, admit_user, full, holding, read_body,
    spend_budget, spends_the_budget,
};
use layout::{Chrome, error_page};

/// Largest form a signed-in person posts (the organisation form is about 3 KiB).
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// Largest form posted before a session (sign-in, set password).
pub const MAX_ANONYMOUS_FORM_BYTES: usize = 4 * 1024;

/// The session cookie's name. `__Host-` when served over TLS: the browser then refuses it
/// unless it is `Secure`, has `Path=/` and no `Domain`.
const SESSION_COOKIE: &str = "imeidb_sesion";
const SESSION_COOKIE_TLS: &str = "__Host-imeidb_sesion";
/// The cookie of a visitor not signed in, whose value the sign-in and set-password forms
/// carry too (double submit): a form posted from elsewhere lacks it.
const FORM_COOKIE: &str = "imeidb_form";
const FORM_COOKIE_TLS: &str = "__Host-imeidb_form";

/// Whether `path` is a page (else it is the API's).
pub fn is_page(path: &str) -> bool {
    matches!(
        path,
        "/" | "/vendedores" | "/estilo.css" | "/carga.js" | "/entrar" | "/salir" | "/clave"
    ) || path == "/consola"
        || path.starts_with("/consola/")
}

/// One request to a page: who asks, and what it sent.
pub struct Visit {
    /// The server's state.
    pub state: AppState,
    /// The client's address (for the public limit and the audit of failed sign-ins).
    pub peer: IpAddr,
    /// The request, body unread.
    pub request: Request<Incoming>,
    /// The session, when a valid session cookie came.
    pub session: Option<SignedIn>,
    /// Why a session cookie that came is not valid (suspended, ended), if one did.
    pub session_refused: Option<ApiError>,
    /// The value of the visitor's form cookie, if it sent one.
    pub form_cookie: Option<String>,
    /// Whether the server is on TLS (cookies then `Secure`).
    pub secure: bool,
}

impl Visit {
    /// The query's `name` parameter, decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        query_param(self.request.uri().query(), name)
    }

    /// The page chrome for this visitor.
    pub fn chrome(&self) -> Chrome<'_> {
        Chrome {
            session: self.session.as_ref(),
        }
    }

    /// The signed-in caller, or the refusal that sends the visitor to sign in.
    ///
    /// # Errors
    /// [`PageError::SignIn`] without a session; the session's refusal (suspended).
    pub fn signed_in(&self) -> Result<&SignedIn, PageError> {
        match (&self.session, &self.session_refused) {
            (Some(session), _) => Ok(session),
            (None, Some(ApiError::Suspended { what })) => {
                Err(PageError::Api(ApiError::Suspended { what }))
            }
            (None, _) => Err(PageError::SignIn),
        }
    }

    /// Reads a posted form (`application/x-www-form-urlencoded`) after checking its CSRF
    /// token: the session's, or for a visitor not signed in, the form cookie's. A visitor not
    /// signed in is counted against its public limit, and must hold a form cookie, before a
    /// byte of the body is read; bodies are bounded ([`MAX_FORM_BYTES`], before a session
    /// [`MAX_ANONYMOUS_FORM_BYTES`]).
    ///
    /// # Errors
    /// [`PageError::Csrf`] without the right token, [`PageError::Api`] for a body too large or
    /// the public limit.
    pub async fn form(self) -> Result<(VisitParts, form::Fields), PageError> {
        let (expected, limit) = match (&self.session, &self.form_cookie) {
            (Some(session), _) => (session.csrf.clone(), MAX_FORM_BYTES),
            (None, Some(cookie)) => (cookie.clone(), MAX_ANONYMOUS_FORM_BYTES),
            (None, None) => return Err(PageError::Csrf),
        };
        if self.session.is_none() {
            admit_public(&self.state, self.peer)?;
        }
        let (parts, request) = self.split();
        let mut bounded = parts.state.clone();
        bounded.max_body_bytes = bounded.max_body_bytes.min(limit);
        let body = read_body(&bounded, request).await?;
        let fields = form::Fields::parse(&body);
        let given = fields.get("csrf");
        if same_secret(&expected, given) {
            Ok((parts, fields))
        } else {
            Err(PageError::Csrf)
        }
    }

    /// The visit without its request.
    pub fn split(self) -> (VisitParts, Request<Incoming>) {
        (
            VisitParts {
                state: self.state,
                peer: self.peer,
                session: self.session,
                form_cookie: self.form_cookie,
                secure: self.secure,
            },
            self.request,
        )
    }
}

/// A visit whose request was read (or handed on).
pub struct VisitParts {
    /// The server's state.
    pub state: AppState,
    /// The client's address.
    pub peer: IpAddr,
    /// The session, if any.
    pub session: Option<SignedIn>,
    /// The visitor's form cookie, if any.
    pub form_cookie: Option<String>,
    /// Whether the server is on TLS.
    pub secure: bool,
}

impl VisitParts {
    /// The page chrome.
    pub fn chrome(&self) -> Chrome<'_> {
        Chrome {
            session: self.session.as_ref(),
        }
    }

    /// The signed-in caller.
    ///
    /// # Errors
    /// [`PageError::SignIn`] without a session.
    pub fn signed_in(&self) -> Result<&SignedIn, PageError> {
        self.session.as_ref().ok_or(PageError::SignIn)
    }
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum PageError {
    /// The page needs a signed-in person: to `/entrar`.
    SignIn,
    /// A post without the right CSRF token.
    Csrf,
    /// What the domain (or the request) said, as the API would.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        PageError::Api(e)
    }
}

impl From<crate::accounts::AccountsError> for PageError {
    fn from(e: crate::accounts::AccountsError) -> PageError {
        PageError::Api(e.into())
    }
}

impl From<crate::registry::RegistryError> for PageError {
    fn from(e: crate::registry::RegistryError) -> PageError {
        PageError::Api(e.into())
    }
}

/// A page's answer.
pub type PageResult = Result<HttpResponse, PageError>;

/// Serves a page request. Never fails: every error is a page.
pub async fn serve(state: &AppState, peer: IpAddr, request: Request<Incoming>) -> HttpResponse {
    let secure = state.secure_cookies;
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let cookies = cookies(&request);
    let session_name = if secure {
        SESSION_COOKIE_TLS
    } else {
        SESSION_COOKIE
    };
    let form_name = if secure { FORM_COOKIE_TLS } else { FORM_COOKIE };
    let (session, session_refused) = match cookie(&cookies, session_name) {
        Some(value) => match state.accounts.session(value) {
            Ok(session) => (Some(session), None),
            Err(e) => (None, Some(ApiError::from(e))),
        },
        None => (None, None),
    };
    let form_cookie = cookie(&cookies, form_name).map(str::to_owned);
    let visit = Visit {
        state: state.clone(),
        peer,
        request,
        session,
        session_refused,
        form_cookie,
        secure,
    };
    let chrome_session = visit.session.clone();
    // a person's refused requests count against the same budget as its tokens' (`api`)
    let console = path == "/consola" || path.starts_with("/consola/");
    let result = match &chrome_session {
        // the console only: a throttled person may still sign out and read the public pages
        Some(session) if console => match admit_user(state, session.principal.user).await {
            Ok(()) => route(visit, &method, &path).await,
            Err(e) => Err(PageError::Api(e)),
        },
        _ => route(visit, &method, &path).await,
    };
    if let Some(session) = &chrome_session {
        let spent = match &result {
            Err(PageError::Api(e)) => spends_the_budget(e),
            Err(PageError::Csrf) => true,
            Ok(response) => response.extensions().get::<SpendsBudget>().is_some(),
            Err(PageError::SignIn) => false,
        };
        if spent {
            let user = session.principal.user;
            spend_budget(state, session.principal.actor(), user).await;
        }
    }
    let mut response = match result {
        Ok(response) => response,
        Err(PageError::SignIn) => {
            let next = if method == Method::GET {
                path.as_str()
            } else {
                "/consola"
            };
            let target = format!(
                "/entrar?siguiente={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            let mut response = redirect(&target);
            // a cookie that no longer signs anyone in is forgotten
            clear_cookie(&mut response, session_name, secure);
            response
        }
        Err(PageError::Csrf) => html(
            StatusCode::FORBIDDEN,
            &error_page(
                &Chrome {
                    session: chrome_session.as_ref(),
                },
                "Formulario no válido",
                "El formulario no trae el código de seguridad de su sesión (CSRF): puede venir de otro sitio, o su sesión cambió. Vuelva a la página, recárguela y envíelo de nuevo.",
            ),
        ),
        Err(PageError::Api(e)) => {
            let status = e.status_and_cause().0;
            let (title, text) = layout::explain(&e);
            let mut response = html(
                status,
                &error_page(
                    &Chrome {
                        session: chrome_session.as_ref(),
                    },
                    title,
                    &text,
                ),
            );
            match e {
                ApiError::TooManyRequests { retry_after } => {
                    (response.headers_mut())
                        .insert(hyper::header::RETRY_AFTER, HeaderValue::from(retry_after));
                }
                ApiError::MethodNotAllowed { allow } => {
                    (response.headers_mut())
                        .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
                }
                _ => {}
            }
            response
        }
    };
    secure_headers(&mut response, &path, secure);
    response
}

async fn route(visit: Visit, method: &Method, path: &str) -> PageResult {
    let found = pages::find(method, path);
    // a replica holds no accounts and no sellers: only the public check is served there
    // (a wrong method on a page it serves is a 405 there too, not a pointer to the central)
    if let Some(replica) = &visit.state.replica
        && !pages::on_replica(path)
    {
        return Err(PageError::Api(ApiError::ReadOnlyReplica {
            central: replica.central_url.clone(),
        }));
    }
    if (path == "/consola" || path.starts_with("/consola/")) && visit.session.is_none() {
        // who asks is known before what exists is told
        visit.signed_in()?;
    }
    let (row, p) = match found {
        Found::Page(row, params) => (row, params),
        Found::WrongMethod { allow } => {
            return Err(PageError::Api(ApiError::MethodNotAllowed { allow }));
        }
        Found::NotFound => return Err(PageError::Api(ApiError::NotFound)),
    };
    match row.page {
        Page::Home => public::home(visit).await,
        Page::Sellers => public::sellers(visit).await,
        Page::Stylesheet => Ok(public::stylesheet()),
        Page::Script => Ok(public::script()),
        Page::SignInForm => signin::form_page(visit),
        Page::SignIn => signin::sign_in(visit).await,
        Page::SignOut => signin::sign_out(visit).await,
        Page::PasswordForm => signin::password_page(visit),
        Page::SetPassword => signin::set_password(visit).await,
        Page::Console => desks::home(visit),
        Page::Account => account::page_of(visit),
        Page::RevokeOwnToken => account::revoke(visit).await,
        Page::NewOwnPassword => account::new_password(visit).await,
        Page::Consult => desks::consult(visit).await,
        Page::ReportForm => desks::report_page(visit),
        Page::Report => desks::report(visit).await,
        Page::ActivationForm => desks::activation_page(visit),
        Page::Activate => desks::activate(visit).await,
        Page::UploadForm => desks::upload_page(visit),
        Page::Upload => desks::upload(visit).await,
        Page::UploadJob => desks::upload_job(visit, p[0]).await,
        Page::Orgs => orgs::orgs(visit).await,
        Page::NewOrgForm => orgs::new_org_page(visit),
        Page::CreateOrg => orgs::create_org(visit).await,
        Page::Org => orgs::org_page(visit, p[0]).await,
        Page::UpdateOrg => orgs::update_org(visit, p[0]).await,
        Page::SuspendOrg => orgs::suspend_org(visit, p[0], true).await,
        Page::ReactivateOrg => orgs::suspend_org(visit, p[0], false).await,
        Page::Users => users::users(visit, p[0]).await,
        Page::CreateUser => users::create_user(visit, p[0]).await,
        Page::User => users::user_page(visit, p[0], p[1]).await,
        Page::UpdateUser => users::update_user(visit, p[0], p[1]).await,
        // the page a token or a code was shown on, reloaded: back to the account, the secret
        // not shown again
        Page::UserShown => Ok(redirect(&format!(
            "/consola/organizaciones/{}/usuarios/{}",
            p[0], p[1]
        ))),
        Page::UserChange => users::user_change(visit, p[0], p[1], p[2]).await,
        Page::Audit => audit::audit(visit).await,
        Page::SellersAdmin => sellers::sellers_page(visit).await,
        Page::RecordSeller => sellers::record_seller(visit).await,
    }
}

/// An HTML response.
pub fn html(status: StatusCode, markup: &Markup) -> HttpResponse {
    let mut response = Response::new(full(Bytes::from(markup.0.clone())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Reads a posted form's `json` into the domain's form `F` and runs `work` with it as the
/// session's user, off the workers (`api::off_worker_as`): the form's values, to show it
/// again, and what the domain answered (a form that does not read is `MalformedBody`).
///
/// # Errors
/// To sign-in without a session.
pub async fn submit<F, T>(
    parts: &VisitParts,
    json: serde_json::Value,
    work: impl FnOnce(&AppState, &crate::accounts::Principal, F) -> Result<T, ApiError> + Send + 'static,
) -> Result<
    (
        std::collections::HashMap<String, String>,
        Result<T, ApiError>,
    ),
    PageError,
>
where
    F: serde::de::DeserializeOwned + Send + 'static,
    T: Send + 'static,
{
    let session = parts.signed_in()?;
    let values = form::flatten(&json);
    let result = match serde_json::from_value::<F>(json) {
        Err(e) => Err(ApiError::MalformedBody {
            detail: e.to_string(),
        }),
        Ok(form) => {
            crate::api::off_worker_as(&parts.state, &session.principal, move |state, who| {
                work(state, who, form)
            })
            .await
        }
    };
    Ok((values, result))
}

/// Whether a form shows `error` next to its fields or above them (what was typed, or what
/// the rules said of it), rather than as an error page.
pub fn shown_in_form(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::Unprocessable { .. }
            | ApiError::InvalidParams { .. }
            | ApiError::Conflict { .. }
            | ApiError::Refused { .. }
            | ApiError::MalformedBody { .. }
            | ApiError::Denied { .. }
    )
}

/// Marks a response that shows a refusal inside its form (the domain refused, the page shows
/// why next to the fields) as spending the person's refusal budget, as the API's would.
#[derive(Debug, Clone, Copy)]
pub struct SpendsBudget;

/// A form shown again with `error`: `422`, and counted against the refusal budget when the
/// API's answer would be.
pub fn form_refused(markup: &Markup, error: &ApiError) -> HttpResponse {
    let mut response = html(StatusCode::UNPROCESSABLE_ENTITY, markup);
    if spends_the_budget(error) {
        response.extensions_mut().insert(SpendsBudget);
    }
    response
}

/// A `200` HTML response.
pub fn page(markup: &Markup) -> PageResult {
    Ok(html(StatusCode::OK, markup))
}

/// A `303 See Other` to `target` (after a form that changed something).
pub fn redirect(target: &str) -> HttpResponse {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(target) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Sets a cookie for the whole site: HttpOnly, SameSite=Strict, Secure on TLS.
pub fn set_cookie(response: &mut HttpResponse, name: &str, value: &str, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}");
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

/// Makes the browser forget a cookie.
pub fn clear_cookie(response: &mut HttpResponse, name: &str, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

/// The session cookie's name on this server.
pub fn session_cookie(secure: bool) -> &'static str {
    if secure {
        SESSION_COOKIE_TLS
    } else {
        SESSION_COOKIE
    }
}

/// The form cookie's name on this server.
pub fn form_cookie(secure: bool) -> &'static str {
    if secure { FORM_COOKIE_TLS } else { FORM_COOKIE }
}

fn secure_headers(response: &mut HttpResponse, path: &str, secure: bool) {
    let headers = response.headers_mut();
    if secure {
        headers.insert(
            HeaderName::from_static("strict-transport-security"),
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    let set = |headers: &mut hyper::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        HeaderName::from_static("content-security-policy"),
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(
        headers,
        HeaderName::from_static("x-content-type-options"),
        "nosniff",
    );
    set(
        headers,
        HeaderName::from_static("referrer-policy"),
        "no-referrer",
    );
    set(headers, HeaderName::from_static("x-frame-options"), "DENY");
    if !headers.contains_key(CACHE_CONTROL) {
        let cache = if path == "/estilo.css" || path == "/carga.js" {
            "public, max-age=3600"
        } else {
            "no-store"
        };
        set(headers, CACHE_CONTROL, cache);
    }
}

/// The `Cookie` headers' pairs.
fn cookies(request: &Request<Incoming>) -> Vec<(String, String)> {
    (request.headers().get_all(COOKIE).iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn cookie<'c>(cookies: &'c [(String, String)], name: &str) -> Option<&'c str> {
    (cookies.iter())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The query's `name` parameter, decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Whether `given` is `expected`, compared in constant time.
fn same_secret(expected: &str, given: &str) -> bool {
    use sha2::{Digest, Sha256};
    let a: [u8; 32] = Sha256::digest(expected.as_bytes()).into();
    let b: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    !expected.is_empty() && constant_time_eq(&a, &b)
}

/// A fresh random value for a form cookie.
pub fn fresh_secret() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::getrandom(&mut bytes);
    crate::hex::hex(&bytes)
}

/// The client `peer` as the audit trail names it: the IPv4 address, or the IPv6 /64.
pub fn client_label(peer: IpAddr) -> String {
    match peer {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// How long a sign-in waits for its turn at Argon2 before the busy page.
pub const PASSWORD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs Argon2 work (`accounts/logins.rs`) on a blocking thread, at most
/// [`crate::api::PASSWORD_WORK`] at once; more wait up to [`PASSWORD_WAIT`].
///
/// # Errors
/// [`ApiError::Busy`] when as many run; [`ApiError::Internal`] if it panicked.
pub async fn password_work<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&AppState) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let busy = || ApiError::Busy {
        detail: "as many sign-ins as the server checks at once are being checked; try again shortly",
    };
    let permit = tokio::time::timeout(
        PASSWORD_WAIT,
        Arc::clone(&state.password_work).acquire_owned(),
    )
    .await
    .map_err(|_| busy())?
    .map_err(|_| busy())?;
    holding(state, permit, work).await
}
