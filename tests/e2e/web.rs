//! The web pages over raw HTTP, where a browser would hide what matters: escaping of what
//! people type, the CSRF refusals, the cookies' attributes, the public limit's page, the
//! sign-in lock and its audit, and the pages' weight.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

use imeidb::accounts::forms::UserForm;

use crate::authz::regulator_form;
use crate::support::{TestServer, imei, test_config};

/// A visitor with a cookie jar, on one HTTP/1.1 connection per request.
pub struct Visitor {
    addr: SocketAddr,
    cookies: HashMap<String, String>,
}

/// A page as it came.
pub struct Page {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the hidden `csrf` input of the page's first form that has one.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        (self.headers.get_all("set-cookie").iter())
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

impl Visitor {
    pub fn new(addr: SocketAddr) -> Visitor {
        Visitor {
            addr,
            cookies: HashMap::new(),
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        extra: &[(&str, &str)],
    ) -> Page {
        let body = form
            .map(|pairs| {
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs.iter())
                    .finish()
            })
            .unwrap_or_default();
        let mut headers = extra.to_vec();
        if form.is_some() {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
        }
        self.send_body(method, path, body.into_bytes(), &headers)
            .await
    }

    /// Sends `body` as it is, with the `extra` headers (and the cookies).
    pub async fn send_body(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Page {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header("cookie", jar.join("; "));
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = sender
            .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let page = Page {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        for cookie in page.set_cookies() {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form), &[]).await
    }

    /// `user` signed in for the first time, with a code `issuer` gives it and the tests'
    /// password.
    pub async fn first_time(
        server: &TestServer,
        issuer: &imeidb::accounts::Principal,
        user: &imeidb::accounts::User,
    ) -> Visitor {
        let code = server
            .accounts
            .issue_password_setup(issuer, user.id)
            .unwrap();
        let mut v = Visitor::new(server.addr);
        v.sign_in_first_time(&code, &user.email, "una frase larga de prueba")
            .await;
        v
    }

    /// Sets a password with `code` and signs in.
    pub async fn sign_in_first_time(&mut self, code: &str, email: &str, password: &str) {
        let page = self.get("/clave").await;
        let csrf = page.csrf();
        let set = self
            .post(
                "/clave",
                &[
                    ("csrf", &csrf),
                    ("code", code),
                    ("password", password),
                    ("password_again", password),
                ],
            )
            .await;
        assert_eq!(set.status, 303, "{}", set.body);
        let page = self.get("/entrar").await;
        let csrf = page.csrf();
        let signed = self
            .post(
                "/entrar",
                &[("csrf", &csrf), ("email", email), ("password", password)],
            )
            .await;
        assert_eq!(signed.status, 303, "{}", signed.body);
    }
}

/// The page table (`web/pages.rs`) over HTTP, signed in as the regulator: every row answers
/// (neither 404 nor 405), and a method a path lacks answers 405 naming exactly the path's
/// methods in `Allow`.
#[tokio::test]
async fn every_page_of_the_table_answers_and_a_wrong_method_names_the_right_ones() {
    use imeidb::web::pages::{self, Found, PAGES};
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.refusals_per_minute = 1_000_000; // refused on purpose, many times
    let server = TestServer::start_with(config).await;
    let (made, mut v) = regulator_signed_in(&server).await;
    let mut wrong = Vec::new();
    for row in PAGES.iter().filter(|r| r.path != "/salir") {
        let path = row
            .path
            .replace("{org}", "1")
            .replace("{user}", &made.admin.id.to_string())
            .replace("{change}", "activar")
            .replace("{job}", "1f3a09c2b47e5d60");
        // a post without its CSRF token is refused (403) before anything is read: the route
        // exists; a get is answered
        let page = v.send(row.method.method(), &path, Some(&[]), &[]).await;
        // an upload's progress answers its script: an unknown job is the job route's own 404
        let job_unknown = row.page == pages::Page::UploadJob
            && page.status == 404
            && page.body.contains("upload job");
        if [404, 405].contains(&page.status) && !job_unknown {
            wrong.push(format!("{:?} {path}: {}", row.method, page.status));
        }
        for method in [Method::PUT, Method::DELETE, Method::PATCH] {
            let page = v.send(method.clone(), &path, None, &[]).await;
            let Found::WrongMethod { allow } = pages::find(&method, &path) else {
                panic!("{method} {path}");
            };
            let got = page
                .headers
                .get("allow")
                .map(|a| a.to_str().unwrap().to_owned());
            if page.status != 405 || got.as_deref() != Some(allow) {
                wrong.push(format!(
                    "{method} {path}: {} allow {got:?}, want 405 {allow}",
                    page.status
                ));
            }
        }
    }
    // signing out, last
    let page = v.get("/salir").await;
    assert_eq!(page.status, 405);
    assert_eq!(page.headers.get("allow").unwrap(), "POST");
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    server.stop().await;
}

/// Bootstraps the registry and signs its administrator in on the pages.
async fn regulator_signed_in(server: &TestServer) -> (imeidb::accounts::Bootstrapped, Visitor) {
    let made = server.accounts.bootstrap(regulator_form()).unwrap();
    let mut v = Visitor::new(server.addr);
    v.sign_in_first_time(
        &made.password_code,
        &made.admin.email,
        "una frase larga de prueba",
    )
    .await;
    (made, v)
}

const SCRIPT: &str = "<script>alert(1)</script>";

#[tokio::test]
async fn what_people_type_is_escaped_on_every_page_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (made, mut v) = regulator_signed_in(&server).await;

    // every free-text field of the organisation form, twice: refused (echoed back next to
    // the fields) and, where the rules accept the text, stored and shown on other pages
    let form = v.get("/consola/organizaciones/nueva").await;
    let csrf = form.csrf();
    let names: Vec<String> = input_names(&form.body)
        .into_iter()
        .filter(|n| n != "kind")
        .collect();
    assert!(names.len() >= 25, "{names:?}");
    let mut pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), SCRIPT)).collect();
    pairs.push(("csrf", &csrf));
    pairs.push(("kind", "operator"));
    let refused = v.post("/consola/organizaciones/nueva", &pairs).await;
    assert_eq!(refused.status, 422);
    assert_escaped(&refused.body, "the refused organisation form");
    // the domain's reasons in Spanish, next to their fields
    for spanish in [
        "no es una dirección de correo electrónico",
        "debe ser el código DIVIPOLA del departamento",
        "debe tener de 7 a 15 dígitos",
    ] {
        assert!(
            refused.body.contains(spanish),
            "{spanish}: {}",
            refused.body
        );
    }
    assert!(!refused.body.contains("is not an e-mail address"));

    // a name with markup that the rules accept: stored, then shown on the lists and the audit
    let mut org = crate::authz::org_json("operator", 5);
    org["legal_name"] = json!(format!("Andina {SCRIPT} S.A.S."));
    let regulator = server.accounts.authenticate(&made.token).unwrap();
    let created = server
        .accounts
        .create_org(&regulator, serde_json::from_value(org).unwrap());
    let user: UserForm = serde_json::from_value(json!({
        "id_number": "1020304099", "full_name": format!("Ana {SCRIPT} Ruiz"), "email": "ana@example.co", "roles": ["operator"],
    }))
    .unwrap();
    if let Ok((org, _)) = &created {
        let _ = server.accounts.create_user(&regulator, org.id, user);
        for path in [
            "/consola/organizaciones".to_owned(),
            format!("/consola/organizaciones/{}", org.id),
            format!("/consola/organizaciones/{}/usuarios", org.id),
        ] {
            let page = v.get(&path).await;
            assert_eq!(page.status, 200, "{path}");
            assert_escaped(&page.body, &path);
        }
    }

    // the other forms' free text: user, report, seller, the searches
    let users = v.get("/consola/organizaciones/1/usuarios").await;
    let csrf = users.csrf();
    let page = v
        .post(
            "/consola/organizaciones/1/usuarios",
            &[
                ("csrf", &csrf),
                ("id_number", SCRIPT),
                ("full_name", SCRIPT),
                ("email", SCRIPT),
            ],
        )
        .await;
    assert_escaped(&page.body, "the refused user form");
    // no role chosen: said in the roles' fieldset, not only above the form
    let legend = page.body.find("<legend>Roles</legend>").expect("the roles");
    let said = page
        .body
        .find("id=\"f-roles-error\"")
        .expect("the roles' error");
    assert!(said > legend, "{}", page.body);
    assert!(page.body[said..].contains("elija al menos un rol"));
    let page = v
        .post(
            "/consola/vendedores",
            &[
                ("csrf", &csrf),
                ("id_number", SCRIPT),
                ("name", SCRIPT),
                ("address", SCRIPT),
                ("municipality", SCRIPT),
                ("authorisation_number", SCRIPT),
                ("valid_from", SCRIPT),
                ("valid_until", SCRIPT),
            ],
        )
        .await;
    assert_escaped(&page.body, "the refused seller form");
    let encoded: String = form_urlencoded::byte_serialize(SCRIPT.as_bytes()).collect();
    for path in [
        format!("/?imei={encoded}"),
        format!("/vendedores?q={encoded}"),
        format!("/consola/organizaciones?q={encoded}"),
        format!("/consola/imei?imei={encoded}"),
        format!("/clave?codigo={encoded}"),
        format!("/consola/auditoria?actor={encoded}"),
        format!("/consola/auditoria?action={encoded}&from={encoded}&to={encoded}"),
    ] {
        let page = v.get(&path).await;
        assert_escaped(&page.body, &path);
    }

    // an operator's desks: the report and the activation, every field markup
    let (operator, _) = server
        .accounts
        .create_org(
            &regulator,
            serde_json::from_value(crate::authz::org_json("operator", 8)).unwrap(),
        )
        .unwrap();
    let person = |id: &str, email: &str| -> UserForm {
        serde_json::from_value(json!({
            "id_number": id, "full_name": "Luisa Fernanda Mora Díaz", "email": email, "roles": ["operator"],
        }))
        .unwrap()
    };
    let agent = (server.accounts)
        .create_user(
            &regulator,
            operator.id,
            person("1020304088", "luisa.mora@example.co"),
        )
        .unwrap();
    let mut desk = Visitor::first_time(&server, &regulator, &agent).await;
    for path in ["/consola/reportes", "/consola/activaciones"] {
        let form = desk.get(path).await;
        let csrf = form.csrf();
        let names = input_names(&form.body);
        assert!(names.len() >= 6, "{path}: {names:?}");
        let mut pairs: Vec<(&str, &str)> = names.iter().map(|f| (f.as_str(), SCRIPT)).collect();
        pairs.push(("csrf", &csrf));
        let page = desk.post(path, &pairs).await;
        assert_eq!(page.status, 422, "{path}: {}", page.body);
        assert_escaped(&page.body, path);
    }

    // a token's name, shown with the token once issued
    let machine = (server.accounts)
        .create_user(
            &regulator,
            operator.id,
            person("1020304089", "eir@example.co"),
        )
        .unwrap();
    let base = format!(
        "/consola/organizaciones/{}/usuarios/{}",
        operator.id, machine.id
    );
    let csrf = v.get(&base).await.csrf();
    let page = v
        .post(
            &format!("{base}/token"),
            &[("csrf", &csrf), ("name", SCRIPT)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_escaped(&page.body, "the token issued");
    let page = v.get(&base).await;
    assert_escaped(&page.body, "the user's tokens");

    // the sign-in form, typed by someone not signed in
    let mut stranger = Visitor::new(server.addr);
    let csrf = stranger.get("/entrar").await.csrf();
    let page = stranger
        .post(
            "/entrar",
            &[("csrf", &csrf), ("email", SCRIPT), ("password", SCRIPT)],
        )
        .await;
    assert_escaped(&page.body, "the refused sign-in");
    server.stop().await;
}

/// The names of a page's form inputs (its CSRF token aside).
fn input_names(body: &str) -> Vec<String> {
    let form = &body[body.find("<main").unwrap_or(0)..];
    form.match_indices("name=\"")
        .map(|(at, _)| {
            let rest = &form[at + 6..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .filter(|n| n != "csrf")
        .collect()
}

fn assert_escaped(body: &str, what: &str) {
    assert!(
        !body.contains("<script>alert"),
        "{what} carries a live script: {body}"
    );
    assert!(
        body.contains("&lt;script&gt;"),
        "{what} does not show the text typed: {body}"
    );
}

#[tokio::test]
async fn forms_without_their_csrf_token_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let made = server.accounts.bootstrap(regulator_form()).unwrap();
    let mut v = Visitor::new(server.addr);

    // signing in: the token must match the visitor's own form cookie
    let page = v.get("/entrar").await;
    let csrf = page.csrf();
    let cookie = page.set_cookies().join(" ");
    assert!(
        cookie.contains("imeidb_form=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "no TLS, no Secure: {cookie}");
    let mut stranger = Visitor::new(server.addr);
    let refused = stranger
        .post(
            "/entrar",
            &[
                ("csrf", &csrf),
                ("email", &made.admin.email),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "another visitor's token is no token");
    assert!(refused.body.contains("Formulario no válido"));

    v.sign_in_first_time(
        &made.password_code,
        &made.admin.email,
        "una frase larga de prueba",
    )
    .await;
    let session = v.cookies.get("imeidb_sesion").cloned().expect("a session");
    // a state-changing post without the session's token: refused, and the organisation stays
    let regulator = server.accounts.authenticate(&made.token).unwrap();
    let (org, _) = server
        .accounts
        .create_org(
            &regulator,
            serde_json::from_value(crate::authz::org_json("operator", 7)).unwrap(),
        )
        .unwrap();
    for form in [vec![], vec![("csrf", "0123456789abcdef0123456789abcdef")]] {
        let refused = v
            .post(
                &format!("/consola/organizaciones/{}/suspender", org.id),
                &form,
            )
            .await;
        assert_eq!(refused.status, 403);
        assert!(
            !server
                .accounts
                .get_org(&regulator, org.id)
                .unwrap()
                .suspended
        );
    }
    // the upload takes its token in a header
    let refused = v
        .send(
            Method::POST,
            "/consola/cargas",
            None,
            &[("content-type", "text/csv")],
        )
        .await;
    assert_eq!(refused.status, 403);
    // signing out needs it too; with it, the session is over
    let refused = v.post("/salir", &[]).await;
    assert_eq!(refused.status, 403);
    let csrf = v.get("/consola").await.csrf();
    assert_eq!(v.post("/salir", &[("csrf", &csrf)]).await.status, 303);
    let mut replay = Visitor::new(server.addr);
    replay.cookies.insert("imeidb_sesion".into(), session);
    let after = replay.get("/consola").await;
    assert_eq!(after.status, 303, "a signed-out session does not come back");
    assert!(
        after.headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/entrar")
    );
    server.stop().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let made = server.accounts.bootstrap(regulator_form()).unwrap();
    let mut v = Visitor::new(server.addr);
    let csrf = v.get("/clave").await.csrf();
    let password = "una frase larga de prueba";
    v.post(
        "/clave",
        &[
            ("csrf", &csrf),
            ("code", &made.password_code),
            ("password", password),
            ("password_again", password),
        ],
    )
    .await;
    let code_again = v
        .post(
            "/clave",
            &[
                ("csrf", &csrf),
                ("code", &made.password_code),
                ("password", password),
                ("password_again", password),
            ],
        )
        .await;
    assert_eq!(code_again.status, 422, "a code sets a password once");
    assert!(code_again.body.contains("ya se usó"), "{}", code_again.body);
    let csrf = v.get("/entrar").await.csrf();
    let started = std::time::Instant::now();
    for attempt in 1..=5 {
        let page = v
            .post(
                "/entrar",
                &[
                    ("csrf", &csrf),
                    ("email", &made.admin.email),
                    ("password", "not it at all"),
                ],
            )
            .await;
        assert_eq!(page.status, 401, "attempt {attempt}");
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "each wrong password waits"
    );
    // locked: the right password is refused too, with the answer a wrong one gets (the page
    // does not tell which e-mails have accounts)
    let locked = v
        .post(
            "/entrar",
            &[
                ("csrf", &csrf),
                ("email", &made.admin.email),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(locked.status, 401);
    assert!(locked.body.contains("no son correctos") && locked.body.contains("15 minutos"));
    let regulator = server.accounts.authenticate(&made.token).unwrap();
    let (entries, _) = server
        .accounts
        .audit(&regulator, &imeidb::audit::Filter::default(), 0, 100)
        .unwrap();
    let failures: Vec<_> = entries
        .iter()
        .filter(|e| {
            e.action.as_str() == "session.sign_in" && e.outcome == imeidb::audit::Outcome::Denied
        })
        .collect();
    assert_eq!(
        failures.len(),
        5,
        "every failure is audited, the lock's refusals are not"
    );
    assert_eq!(
        serde_json::to_value(&failures[0].actor).unwrap(),
        json!({ "kind": "client", "address": "127.0.0.1" })
    );
    assert_eq!(failures[0].target, format!("user/{}", made.admin.id));
    // an unknown e-mail is answered as a wrong password, and audits nothing
    let unknown = v
        .post(
            "/entrar",
            &[
                ("csrf", &csrf),
                ("email", "nobody@example.co"),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.body.contains("no son correctos"));
    server.stop().await;
}

#[tokio::test]
async fn the_public_pages_are_small_limited_and_friendly() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.public_per_minute = 3;
    let server = TestServer::start_with(config).await;
    let mut v = Visitor::new(server.addr);
    let home = v.get("/").await;
    let css = v.get("/estilo.css").await;
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    assert!(
        home.body.len() + css.body.len() < 30 * 1024,
        "the public page and its stylesheet weigh {} bytes",
        home.body.len() + css.body.len()
    );
    let csp = home.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    // the form alone does not count; each check does
    for _ in 0..3 {
        assert_eq!(v.get(&format!("/?imei={}", imei(1))).await.status, 200);
    }
    let limited = v.get(&format!("/?imei={}", imei(1))).await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    assert!(
        limited.body.contains("Demasiadas consultas"),
        "{}",
        limited.body
    );
    assert_eq!(v.get("/").await.status, 200);
    // the same budget as the public API
    let api = v.get(&format!("/v1/public/imeis/{}", imei(1))).await;
    assert_eq!(api.status, 429);
    // a method pages do not take, a page that does not exist
    assert_eq!(v.send(Method::PUT, "/", None, &[]).await.status, 405);
    let missing = v.get("/consola/nada").await;
    assert_eq!(
        missing.status, 303,
        "the console asks who you are before what exists"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_person_refused_too_often_is_throttled_like_its_tokens_and_forms_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.refusals_per_minute = 3;
    let server = TestServer::start_with(config).await;
    let made = server.accounts.bootstrap(regulator_form()).unwrap();
    let regulator = server.accounts.authenticate(&made.token).unwrap();
    let (org, _) = server
        .accounts
        .create_org(
            &regulator,
            serde_json::from_value(crate::authz::org_json("operator", 3)).unwrap(),
        )
        .unwrap();
    let agent: UserForm = serde_json::from_value(json!({
        "id_number": "1020304088", "full_name": "Ana María Ruiz Peña", "email": "ana.ruiz@example.co", "roles": ["operator"],
    }))
    .unwrap();
    let agent = server
        .accounts
        .create_user(&regulator, org.id, agent)
        .unwrap();
    let mut v = Visitor::first_time(&server, &regulator, &agent).await;
    let csrf = v.get("/consola").await.csrf();
    // an operator may not create organisations: refused, audited, and counted
    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let page = v
                .post(
                    "/consola/organizaciones/nueva",
                    &[("csrf", &csrf), ("kind", "operator")],
                )
                .await;
            statuses.push(page.status);
        }
        statuses
    };
    assert_eq!(
        statuses,
        [403, 403, 403, 429, 429],
        "the budget is the API's"
    );
    let throttled = v.get("/consola").await;
    assert_eq!(throttled.status, 429);
    assert!(
        throttled.body.contains("Demasiadas solicitudes rechazadas"),
        "{}",
        throttled.body
    );

    // forms are bounded before they are parsed: a person's at 64 KiB, a visitor's at 4 KiB,
    // and a visitor without its form cookie is refused unread
    let big = "x".repeat(5 * 1024);
    let mut visitor = Visitor::new(server.addr);
    let no_cookie = visitor
        .post("/entrar", &[("csrf", "x"), ("email", &big)])
        .await;
    assert_eq!(no_cookie.status, 403);
    let csrf = visitor.get("/entrar").await.csrf();
    let too_big = visitor
        .post("/entrar", &[("csrf", &csrf), ("email", &big)])
        .await;
    assert_eq!(too_big.status, 413);
    server.stop().await;
}

#[tokio::test]
async fn refused_uploads_spend_the_budget_and_a_session_does_not_sign_in_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.refusals_per_minute = 3;
    let server = TestServer::start_with(config).await;
    let (_, mut v) = regulator_signed_in(&server).await;
    // signed in, the sign-in form does no Argon2 (it would escape the public limit)
    let csrf = v.get("/consola").await.csrf();
    let again = v
        .post(
            "/entrar",
            &[
                ("csrf", &csrf),
                ("email", "x@example.co"),
                ("password", "y"),
            ],
        )
        .await;
    assert_eq!(again.status, 303);
    // the regulator's administrator may not register devices: each upload refused, counted,
    // the form sent without the page's script (multipart) as the script's
    let mut statuses = Vec::new();
    let boundary = "----imeidb9d2f";
    let multipart = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nimei,manufacturer,model,reference\n{},Samsung,SM-A155M,DIAN-1\n\r\n--{boundary}--\r\n",
        imei(40_001)
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    for i in 0..4 {
        let page = if i == 0 {
            v.send_body(
                Method::POST,
                "/consola/cargas",
                multipart.clone().into_bytes(),
                &[("content-type", &content_type)],
            )
            .await
        } else {
            v.send(
                Method::POST,
                "/consola/cargas",
                None,
                &[("content-type", "text/csv"), ("x-csrf-token", &csrf)],
            )
            .await
        };
        if i == 0 {
            // refused for its right, its token read: not the CSRF page
            assert!(page.body.contains("No tiene permiso"), "{}", page.body);
        }
        statuses.push(page.status);
    }
    assert_eq!(statuses, [403, 403, 403, 429]);
    assert!(!server.registry.listing(imei(40_001)).positive);
    // a throttled person may still sign out
    let out = v.post("/salir", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    server.stop().await;
}

#[tokio::test]
async fn a_person_sees_and_revokes_its_own_tokens_and_renews_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let accounts = &server.accounts;
    let made = accounts.bootstrap(regulator_form()).unwrap();
    let regulator = accounts.authenticate(&made.token).unwrap();
    let (org, _) = accounts
        .create_org(
            &regulator,
            serde_json::from_value(crate::authz::org_json("operator", 4)).unwrap(),
        )
        .unwrap();
    let agent: UserForm = serde_json::from_value(json!({
        "id_number": "1020304077", "full_name": "Luis Fernando Díaz Mora", "email": "luis.diaz@example.co", "roles": ["operator"],
    }))
    .unwrap();
    let agent = accounts.create_user(&regulator, org.id, agent).unwrap();
    // the first credential, a code the regulator issued; the person signs in with it, and the
    // token it makes for its scripts names the regulator too (who held the code could have
    // made it)
    let mut v = Visitor::first_time(&server, &regulator, &agent).await;
    let person = accounts
        .sign_in(
            "luis.diaz@example.co",
            "una frase larga de prueba",
            "192.0.2.9",
        )
        .unwrap();
    let person = accounts.session(&person.cookie).unwrap().principal;
    let (own, own_text) = accounts
        .create_token(&person, agent.id, "core-network-1")
        .unwrap();
    assert_eq!(own.issued_by, Some(regulator.user));

    let page = v.get("/consola/cuenta").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("core-network-1") && page.body.contains(&own.id),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("administrador (usuario {})", regulator.user)),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let revoked = v
        .post(
            "/consola/cuenta/revocar",
            &[("csrf", &csrf), ("token", &own.id)],
        )
        .await;
    assert_eq!(revoked.status, 303);
    assert!(
        accounts.authenticate(&own_text).is_err(),
        "revoked from the page"
    );
    assert!(
        v.get("/consola/cuenta")
            .await
            .body
            .contains("Sin tokens vigentes")
    );

    // a new password: the code is shown once, the password and this session end
    let renewed = v.post("/consola/cuenta/clave", &[("csrf", &csrf)]).await;
    assert_eq!(renewed.status, 200);
    assert!(renewed.body.contains("class=\"secret\""));
    assert!(!accounts.has_password(agent.id));
    assert_eq!(v.get("/consola").await.status, 303, "signed out");
    server.stop().await;
}

/// An importer's clerk and an operator's agent, signed in on the pages.
async fn importer_and_operator(server: &TestServer) -> (Visitor, Visitor) {
    let accounts = &server.accounts;
    let made = accounts.bootstrap(regulator_form()).unwrap();
    let regulator = accounts.authenticate(&made.token).unwrap();
    let mut visitors = Vec::new();
    for (n, kind, email) in [
        (5, "importer", "sara.gil@importador.example.co"),
        (6, "operator", "ana.rios@operador.example.co"),
    ] {
        let (org, _) = accounts
            .create_org(
                &regulator,
                serde_json::from_value(crate::authz::org_json(kind, n)).unwrap(),
            )
            .unwrap();
        let form: UserForm = serde_json::from_value(json!({
            "id_number": (1_040_000_000 + n).to_string(), "full_name": "Sara Gil Mejía", "email": email, "roles": [kind],
        }))
        .unwrap();
        let user = accounts.create_user(&regulator, org.id, form).unwrap();
        visitors.push(Visitor::first_time(server, &regulator, &user).await);
    }
    let operator = visitors.pop().unwrap();
    (visitors.pop().unwrap(), operator)
}

#[tokio::test]
async fn the_upload_page_follows_its_job_while_the_file_is_still_coming() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (mut clerk, mut other) = importer_and_operator(&server).await;
    let csrf = clerk.get("/consola/cargas").await.csrf();
    let job = "1f3a09c2b47e5d60";
    let line = |n: u64| format!("{},Samsung,SM-A155M,DIAN-{n}\n", imei(20_000 + n));

    // the first 1,000 lines, then the clerk's page asks the job while the rest is unsent
    let cookie = clerk
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut upload = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /consola/cargas?job={job} HTTP/1.1\r\nhost: localhost\r\ncookie: {cookie}\r\nx-csrf-token: {csrf}\r\ncontent-type: text/csv\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    let chunk = |text: String| format!("{:x}\r\n{text}\r\n", text.len());
    let first: String = std::iter::once("imei,manufacturer,model,reference\n".to_owned())
        .chain((0..1_000).map(line))
        .collect();
    upload.write_all(chunk(first).as_bytes()).await.unwrap();
    let mut seen = json!(null);
    for _ in 0..200 {
        let page = clerk.get(&format!("/consola/cargas/{job}")).await;
        if page.status == 200 {
            seen = serde_json::from_str(&page.body).unwrap();
            if seen["lines"] == json!(1000) {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen["job"], json!(job), "{seen}");
    assert_eq!(seen["lines"], json!(1000), "{seen}");
    assert_eq!(seen["done"], json!(false), "{seen}");
    // another organisation's person does not see it, nor does anyone signed out
    assert_eq!(
        other.get(&format!("/consola/cargas/{job}")).await.status,
        404
    );
    let anonymous = Visitor::new(server.addr)
        .get(&format!("/consola/cargas/{job}"))
        .await;
    assert_eq!(anonymous.status, 303);
    // the same name for a second upload meanwhile: refused, the first goes on
    let again = clerk
        .send_body(
            Method::POST,
            &format!("/consola/cargas?job={job}"),
            b"imei,manufacturer,model,reference\n".to_vec(),
            &[("content-type", "text/csv"), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains(job), "{}", again.body);
    let rest: String = (1_000..1_500).map(line).collect();
    upload.write_all(chunk(rest).as_bytes()).await.unwrap();
    upload.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\"done\"") {
        let n = upload.read(&mut buf).await.unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"accepted\":1500"), "{answer}");
    let done: serde_json::Value =
        serde_json::from_str(&clerk.get(&format!("/consola/cargas/{job}")).await.body).unwrap();
    assert_eq!(
        (&done["lines"], &done["accepted"], &done["done"]),
        (&json!(1500), &json!(1500), &json!(true))
    );
    assert!(server.registry.listing(imei(21_499)).positive);

    // a job name that is not 16 hexadecimal digits: named in the problem, nothing read
    let bad = clerk
        .send_body(
            Method::POST,
            "/consola/cargas?job=xyz",
            line(2_000).into_bytes(),
            &[("content-type", "text/csv"), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let problem: serde_json::Value = serde_json::from_str(&bad.body).unwrap();
    assert_eq!(
        problem["invalidParams"][0]["param"],
        json!("job"),
        "{problem}"
    );
    assert!(!server.registry.listing(imei(22_000)).positive);
    server.stop().await;
}

#[tokio::test]
async fn the_upload_form_sent_without_its_script_registers_the_file_and_shows_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (mut clerk, _) = importer_and_operator(&server).await;
    let csrf = clerk.get("/consola/cargas").await.csrf();
    let boundary = "----imeidb7c1e";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    // the form as a browser without the page's script sends it: the token, then the file
    let multipart = |fields: &[(&str, &str)]| {
        let mut body = String::new();
        for (name, value) in fields {
            let file = if *name == "file" {
                "; filename=\"lote.csv\"\r\ncontent-type: text/csv"
            } else {
                ""
            };
            body.push_str(&format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"{file}\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        body.into_bytes()
    };
    let (good, other) = (imei(30_001), imei(30_002));
    let csv = format!(
        "imei,manufacturer,model,reference\n{good},Samsung,SM-A155M,DIAN-1\n12345,Samsung,SM-A155M,DIAN-1\n{good},Samsung,SM-A155M,DIAN-1\n"
    );
    let post = async |v: &mut Visitor, body: Vec<u8>| {
        v.send_body(
            Method::POST,
            "/consola/cargas",
            body,
            &[("content-type", &content_type)],
        )
        .await
    };

    // more than 1 MiB before a boundary, or in a part's headers: refused once past 1 MiB,
    // while the client still sends (it announced 100 MiB), not kept in memory to the end
    let flood = vec![b'x'; 2 << 20];
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let cookie = (clerk.cookies.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut raw = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /consola/cargas HTTP/1.1\r\nhost: localhost\r\ncookie: {cookie}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            100 << 20
        );
        raw.write_all(head.as_bytes()).await.unwrap();
        raw.write_all(&flood).await.unwrap();
        let mut answer = vec![0u8; 16];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), raw.read(&mut answer))
            .await
            .expect("answered before the announced body came")
            .unwrap();
        assert_eq!(&answer[..n.min(12)], b"HTTP/1.1 403");
    }
    let mut endless_head = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\ncontent-disposition: form-data; name=\"file\"\r\nx-long: "
    )
    .into_bytes();
    endless_head.extend(&flood);
    let page = post(&mut clerk, endless_head).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("más de 1 MiB antes del archivo"),
        "{}",
        page.body
    );
    // a wrong token, or the file before the token: the CSRF page, nothing registered
    for fields in [
        vec![
            ("csrf", "0123456789abcdef0123456789abcdef"),
            ("file", csv.as_str()),
        ],
        vec![("file", csv.as_str()), ("csrf", csrf.as_str())],
    ] {
        let page = post(&mut clerk, multipart(&fields)).await;
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(page.body.contains("<html"));
    }
    // no file, a file without the CSV header: said in Spanish
    let page = post(&mut clerk, multipart(&[("csrf", &csrf)])).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("no trae ningún archivo"),
        "{}",
        page.body
    );
    let no_header = format!("{good},Samsung,SM-A155M,DIAN-1\n");
    let page = post(
        &mut clerk,
        multipart(&[("csrf", &csrf), ("file", &no_header)]),
    )
    .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("el encabezado del CSV"), "{}", page.body);
    assert!(!server.registry.listing(good).positive);

    // the form as it comes: registered, and the report as a page, rejected lines by number
    let page = post(&mut clerk, multipart(&[("csrf", &csrf), ("file", &csv)])).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<title>Carga terminada"),
        "{}",
        page.body
    );
    assert!(server.registry.listing(good).positive);
    for shown in [
        "<dt>Líneas leídas</dt><dd>3</dd>",
        "<dt>Registradas</dt><dd>1</dd>",
        "<dt>Rechazadas</dt><dd>2</dd>",
        "<td>3</td>",
        "<td>4</td><td>imei: repetido: es el de la línea 2</td>",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    assert!(!page.body.contains("duplicate of line"));

    // the page's script gets the same reasons in Spanish
    let csv = format!(
        "imei,manufacturer,model,reference\n{other},Samsung,SM-A155M,DIAN-1\n{other},Samsung,SM-A155M,DIAN-1\n"
    );
    let page = clerk
        .send_body(
            Method::POST,
            "/consola/cargas",
            csv.into_bytes(),
            &[("content-type", "text/csv"), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let report: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(report["rejected_lines"][0]["line"], 3);
    assert_eq!(
        report["rejected_lines"][0]["reason"],
        "imei: repetido: es el de la línea 2"
    );

    // anything else without the header is the CSRF page; signed out, the sign-in
    let body = multipart(&[("csrf", &csrf), ("file", "imei\n")]);
    let page = clerk
        .send_body(
            Method::POST,
            "/consola/cargas",
            body.clone(),
            &[("content-type", "text/csv")],
        )
        .await;
    assert_eq!(page.status, 403);
    let page = post(&mut Visitor::new(server.addr), body).await;
    assert_eq!(page.status, 303);
    server.stop().await;
}

#[tokio::test]
async fn the_audit_form_sent_with_empty_filters_filters_nothing_and_a_wrong_one_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (_, mut v) = regulator_signed_in(&server).await;
    // what the form sends untouched
    let page = v
        .get("/consola/auditoria?actor=&issued_by=&org=&action=&from=&to=")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let rows = |body: &str| body[body.find("<tbody").expect("the trail")..].to_owned();
    let all = rows(&page.body);
    assert!(
        all.contains("registry.bootstrap") && all.contains("session.sign_in"),
        "{all}"
    );
    assert!(all.contains("entrada a la consola"), "{all}");
    let page = v
        .get("/consola/auditoria?action=session.sign_in&actor=&from=")
        .await;
    assert_eq!(page.status, 200);
    let some = rows(&page.body);
    assert!(
        some.contains("session.sign_in") && !some.contains("registry.bootstrap"),
        "{some}"
    );
    // a wrong one: next to its field, in Spanish, the value kept, the trail not shown
    let page = v.get("/consola/auditoria?actor=ana&to=ayer").await;
    assert_eq!(page.status, 400, "{}", page.body);
    for (field, value) in [("actor", "ana"), ("to", "ayer")] {
        let error = page
            .body
            .find(&format!("id=\"f-{field}-error\""))
            .unwrap_or_else(|| panic!("{field}: {}", page.body));
        assert!(page.body[error..].contains("se espera"), "{field}");
        assert!(page.body.contains(&format!("value=\"{value}\"")), "{field}");
    }
    assert!(!page.body.contains("<table"), "{}", page.body);
    server.stop().await;
}

#[tokio::test]
async fn the_organisation_page_changes_the_form_date_and_sections_and_names_its_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (made, mut v) = regulator_signed_in(&server).await;
    let regulator = server.accounts.authenticate(&made.token).unwrap();
    let mut form = crate::authz::org_json("operator", 9);
    form["administrator"]["email"] = json!("admin.operador9@example.co");
    let (org, admin) = server
        .accounts
        .create_org(&regulator, serde_json::from_value(form).unwrap())
        .unwrap();
    let path = format!("/consola/organizaciones/{}", org.id);
    let page = v.get(&path).await;
    assert_eq!(page.status, 200);
    // section 5: the administrator, linked to its own page; the form's date is an input
    assert!(page.body.contains("5. Administrador de la organización"));
    let link = format!("/consola/organizaciones/{}/usuarios/{}", org.id, admin.id);
    assert!(page.body.contains(&link), "{}", page.body);
    assert!(page.body.contains(&admin.email));
    let mut values = input_values(&page.body);
    assert!(
        values.iter().any(|(n, _)| n == "request_date"),
        "{values:?}"
    );
    assert!(!values.iter().any(|(n, _)| n.starts_with("administrator")));

    // a date that is not one: refused next to its field, in Spanish, nothing changed
    let csrf = page.csrf();
    let date = |values: &mut Vec<(String, String)>, to: &str| {
        values.retain(|(n, _)| n != "request_date");
        values.push(("request_date".into(), to.into()));
    };
    for (wrong, spanish) in [
        ("2026-02-30", "debe ser una fecha AAAA-MM-DD"),
        ("2999-01-01", "2999-01-01 es una fecha futura"),
    ] {
        date(&mut values, wrong);
        let refused = v.post(&path, &as_form(&values, &csrf)).await;
        assert_eq!(refused.status, 422, "{wrong}");
        assert!(refused.body.contains(spanish), "{wrong}: {}", refused.body);
        assert!(refused.body.contains("aria-invalid=\"true\""));
        assert!(refused.body.contains("5. Administrador de la organización"));
    }
    let unchanged = server.accounts.get_org(&regulator, org.id).unwrap();
    assert_eq!(unchanged.data, org.data);

    // the date of the request received, with a change to section 2: stored and shown
    date(&mut values, "2026-11-23");
    for (name, value) in &mut values {
        if name == "legal_representative.full_name" {
            *value = "Lucía Fernanda Ortiz Mejía".into();
        }
    }
    let saved = v.post(&path, &as_form(&values, &csrf)).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let changed = server.accounts.get_org(&regulator, org.id).unwrap();
    assert_eq!(changed.data.request_date, "2026-11-23");
    assert_eq!(
        changed.data.legal_representative.full_name,
        "Lucía Fernanda Ortiz Mejía"
    );
    assert_eq!(changed.data.nit, org.data.nit);
    assert_eq!(changed.data.contacts, org.data.contacts);
    let shown = v.get(&path).await;
    assert!(shown.body.contains("value=\"2026-11-23\""));

    // the organisation's own administrator reads its organisation, not section 5 nor the form
    let mut own = Visitor::first_time(&server, &regulator, &admin).await;
    let read = own.get(&path).await;
    assert_eq!(read.status, 200);
    assert!(read.body.contains("2026-11-23"), "{}", read.body);
    assert!(!read.body.contains("5. Administrador de la organización"));
    assert!(!read.body.contains("name=\"request_date\""));
    server.stop().await;
}

/// `values` and the CSRF token, as a form to post.
fn as_form<'a>(values: &'a [(String, String)], csrf: &'a str) -> Vec<(&'a str, &'a str)> {
    (values.iter())
        .map(|(n, x)| (n.as_str(), x.as_str()))
        .chain([("csrf", csrf)])
        .collect()
}

/// A page's `<input>`s with their values (its CSRF token aside), as a browser would send
/// them (selects and text areas are not read).
fn input_values(body: &str) -> Vec<(String, String)> {
    let main = &body[body.find("<main").unwrap_or(0)..];
    let attribute = |tag: &str, name: &str| {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &tag[at..at + tag[at..].find('"')?];
        Some(
            value
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    let mut out = Vec::new();
    for (at, _) in main.match_indices("<input ") {
        let tag = &main[at..at + main[at..].find('>').unwrap()];
        if let Some(name) = attribute(tag, "name").filter(|n| n != "csrf") {
            out.push((name, attribute(tag, "value").unwrap_or_default()));
        }
    }
    out
}
