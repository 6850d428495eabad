//! The one table of the web pages: method, path pattern, and the page that answers. It drives
//! `web::route` (which page runs), the 405s (with exactly the methods a path has in `Allow`),
//! and what a read replica serves (the public check only); its tests walk it. The API's table
//! is `api/routes.rs`; a page calls the same domain functions its API route does, so who may
//! do what is decided there, not here.

use hyper::Method;

/// A page of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `/`: the public IMEI check.
    Home,
    /// The public sellers search.
    Sellers,
    /// The stylesheet.
    Stylesheet,
    /// The upload's script.
    Script,
    /// The sign-in form.
    SignInForm,
    /// A sign-in.
    SignIn,
    /// A sign-out.
    SignOut,
    /// The set-password form.
    PasswordForm,
    /// A password set with a one-time code.
    SetPassword,
    /// The console's home.
    Console,
    /// One's own account: tokens and password.
    Account,
    /// Revokes one of one's own tokens.
    RevokeOwnToken,
    /// Asks a code for a new password.
    NewOwnPassword,
    /// An authority's consultation of one IMEI.
    Consult,
    /// The report form.
    ReportForm,
    /// A report.
    Report,
    /// The activation form.
    ActivationForm,
    /// An activation.
    Activate,
    /// The upload page.
    UploadForm,
    /// An upload.
    Upload,
    /// An upload's progress, for the page's script.
    UploadJob,
    /// The organisations.
    Orgs,
    /// The new organisation form.
    NewOrgForm,
    /// A new organisation.
    CreateOrg,
    /// One organisation.
    Org,
    /// An organisation's change.
    UpdateOrg,
    /// An organisation suspended.
    SuspendOrg,
    /// An organisation reactivated.
    ReactivateOrg,
    /// An organisation's users.
    Users,
    /// A new user.
    CreateUser,
    /// One user.
    User,
    /// A user's change.
    UpdateUser,
    /// The page a token or a code was shown on, reloaded: back to the account.
    UserShown,
    /// A change of a user's state or credentials (`{change}`).
    UserChange,
    /// The audit trail.
    Audit,
    /// The authorised sellers, for the regulator.
    SellersAdmin,
    /// A seller recorded.
    RecordSeller,
}

/// The methods pages have: `GET` (which answers `HEAD` too) and `POST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `GET` and `HEAD`.
    Get,
    /// `POST`.
    Post,
}

impl Verb {
    /// The HTTP method.
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
        }
    }
}

/// A row.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    /// Its method.
    pub method: Verb,
    /// Literal segments and `{name}` parameters, one segment each.
    pub path: &'static str,
    /// The page.
    pub page: Page,
    /// Whether a read replica serves it (it holds no accounts and no sellers).
    pub on_replica: bool,
}

const fn get(path: &'static str, page: Page) -> Row {
    Row {
        method: Verb::Get,
        path,
        page,
        on_replica: false,
    }
}

const fn post(path: &'static str, page: Page) -> Row {
    Row {
        method: Verb::Post,
        path,
        page,
        on_replica: false,
    }
}

const fn everywhere(path: &'static str, page: Page) -> Row {
    Row {
        method: Verb::Get,
        path,
        page,
        on_replica: true,
    }
}

const ORG: &str = "/consola/organizaciones/{org}";
const USER: &str = "/consola/organizaciones/{org}/usuarios/{user}";

/// Every page. The first row that matches a path and method answers: literal rows come before
/// the `{parameter}` rows that would also match.
pub static PAGES: [Row; 37] = [
    everywhere("/", Page::Home),
    everywhere("/estilo.css", Page::Stylesheet),
    everywhere("/carga.js", Page::Script),
    get("/vendedores", Page::Sellers),
    get("/entrar", Page::SignInForm),
    post("/entrar", Page::SignIn),
    post("/salir", Page::SignOut),
    get("/clave", Page::PasswordForm),
    post("/clave", Page::SetPassword),
    get("/consola", Page::Console),
    get("/consola/cuenta", Page::Account),
    post("/consola/cuenta/revocar", Page::RevokeOwnToken),
    post("/consola/cuenta/clave", Page::NewOwnPassword),
    get("/consola/imei", Page::Consult),
    get("/consola/reportes", Page::ReportForm),
    post("/consola/reportes", Page::Report),
    get("/consola/activaciones", Page::ActivationForm),
    post("/consola/activaciones", Page::Activate),
    get("/consola/cargas", Page::UploadForm),
    post("/consola/cargas", Page::Upload),
    get("/consola/cargas/{job}", Page::UploadJob),
    get("/consola/auditoria", Page::Audit),
    get("/consola/vendedores", Page::SellersAdmin),
    post("/consola/vendedores", Page::RecordSeller),
    get("/consola/organizaciones", Page::Orgs),
    get("/consola/organizaciones/nueva", Page::NewOrgForm),
    post("/consola/organizaciones/nueva", Page::CreateOrg),
    get(ORG, Page::Org),
    post(ORG, Page::UpdateOrg),
    post("/consola/organizaciones/{org}/suspender", Page::SuspendOrg),
    post(
        "/consola/organizaciones/{org}/reactivar",
        Page::ReactivateOrg,
    ),
    get("/consola/organizaciones/{org}/usuarios", Page::Users),
    post("/consola/organizaciones/{org}/usuarios", Page::CreateUser),
    get(USER, Page::User),
    post(USER, Page::UpdateUser),
    get(
        "/consola/organizaciones/{org}/usuarios/{user}/{change}",
        Page::UserShown,
    ),
    post(
        "/consola/organizaciones/{org}/usuarios/{user}/{change}",
        Page::UserChange,
    ),
];

/// What the table says of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a> {
    /// A page, with its parameters' values in the pattern's order.
    Page(&'static Row, Vec<&'a str>),
    /// The path is a page's, not with this method: the methods it has.
    WrongMethod {
        /// For the `Allow` header.
        allow: &'static str,
    },
    /// No page has this path.
    NotFound,
}

/// The row for `method` and `path` (a trailing `/` aside).
pub fn find<'a>(method: &Method, path: &'a str) -> Found<'a> {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    let verb = match *method {
        Method::GET | Method::HEAD => Some(Verb::Get),
        Method::POST => Some(Verb::Post),
        _ => None,
    };
    let (mut get, mut post) = (false, false);
    for row in &PAGES {
        let Some(params) = matches(row.path, path) else {
            continue;
        };
        if Some(row.method) == verb {
            return Found::Page(row, params);
        }
        get |= row.method == Verb::Get;
        post |= row.method == Verb::Post;
    }
    match (get, post) {
        (true, true) => Found::WrongMethod {
            allow: "GET, HEAD, POST",
        },
        (true, false) => Found::WrongMethod { allow: "GET, HEAD" },
        (false, true) => Found::WrongMethod { allow: "POST" },
        (false, false) => Found::NotFound,
    }
}

/// Whether a read replica serves `path` (with some method): the public check only.
pub fn on_replica(path: &str) -> bool {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    PAGES
        .iter()
        .any(|row| row.on_replica && matches(row.path, path).is_some())
}

/// The values of `pattern`'s parameters in `path`, if it matches.
fn matches<'a>(pattern: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let (mut want, mut have) = (pattern.split('/'), path.split('/'));
    let mut params = Vec::new();
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(h)) if w.starts_with('{') && !h.is_empty() => params.push(h),
            (Some(w), Some(h)) if w == h => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_reached_by_its_own_path_and_method() {
        for row in &PAGES {
            let path = row
                .path
                .replace("{org}", "7")
                .replace("{user}", "9")
                .replace("{change}", "token")
                .replace("{job}", "1f3a09c2b47e5d60");
            let Found::Page(found, params) = find(&row.method.method(), &path) else {
                panic!("{:?} {}: not found", row.method, row.path);
            };
            assert!(
                std::ptr::eq(found, row),
                "{:?} {}: answered by {:?} {}, an earlier row",
                row.method,
                row.path,
                found.method,
                found.path
            );
            assert_eq!(params.len(), row.path.matches('{').count());
            if row.method == Verb::Get {
                assert!(
                    matches!(find(&Method::HEAD, &path), Found::Page(r, _) if std::ptr::eq(r, row))
                );
            }
        }
    }

    #[test]
    fn a_wrong_method_names_the_methods_the_path_has_and_other_paths_are_unknown() {
        let allow = |method: Method, path: &str| match find(&method, path) {
            Found::WrongMethod { allow } => allow,
            other => panic!("{method} {path}: {other:?}"),
        };
        assert_eq!(allow(Method::GET, "/salir"), "POST");
        assert_eq!(allow(Method::PUT, "/salir"), "POST");
        assert_eq!(allow(Method::POST, "/"), "GET, HEAD");
        assert_eq!(allow(Method::DELETE, "/entrar"), "GET, HEAD, POST");
        assert_eq!(
            allow(Method::PUT, "/consola/organizaciones/7"),
            "GET, HEAD, POST"
        );
        assert_eq!(
            allow(Method::GET, "/consola/organizaciones/7/suspender"),
            "POST"
        );
        for path in [
            "/nada",
            "/consola/nada",
            "/consola/organizaciones/7/usuarios/9/token/x",
            "/consola/organizaciones//usuarios",
        ] {
            assert_eq!(find(&Method::GET, path), Found::NotFound, "{path}");
        }
        // a trailing slash is the same page
        assert!(
            matches!(find(&Method::GET, "/consola/"), Found::Page(r, _) if r.page == Page::Console)
        );
        assert!(matches!(find(&Method::GET, "/"), Found::Page(r, _) if r.page == Page::Home));
        let Found::Page(row, params) = find(
            &Method::POST,
            "/consola/organizaciones/7/usuarios/9/revocar",
        ) else {
            panic!()
        };
        assert_eq!(
            (row.page, params),
            (Page::UserChange, vec!["7", "9", "revocar"])
        );
    }

    #[test]
    fn a_replica_serves_the_public_check_only() {
        let served: Vec<&str> = PAGES
            .iter()
            .filter(|r| r.on_replica)
            .map(|r| r.path)
            .collect();
        assert_eq!(served, ["/", "/estilo.css", "/carga.js"]);
        assert!(on_replica("/") && on_replica("/carga.js") && !on_replica("/entrar"));
    }
}
