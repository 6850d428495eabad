//! The web pages in a real browser: Debian's headless Chromium, driven through
//! chromium-driver (`webdriver.rs`), against the real server on a real socket. Every page
//! visited is checked with axe-core for serious or critical accessibility violations.
//!
//! With `IMEIDB_WRITE_SCREENSHOTS=1`, the README's screenshots are written to
//! `docs/screenshots/`.

use std::collections::BTreeSet;

use serde_json::json;

use imeidb::accounts::forms::{OrgForm, UserForm};
use imeidb::accounts::{Accounts, Principal};
use imeidb::identity::nit_check_digit;

use crate::authz::{org_json, regulator_form};
use crate::support::{TestServer, imei, test_config};
use crate::webdriver::{Browser, Driver, axe_script};

const PASSWORD: &str = "una frase larga de prueba";

/// Visits and checks pages, remembering which were checked with axe.
struct Visitor<'a> {
    base: String,
    axe: &'a str,
    checked: BTreeSet<String>,
}

impl Visitor<'_> {
    /// Checks the current page with axe-core, once per distinct title in each state (with
    /// and without errors shown).
    async fn check(&mut self, browser: &Browser) {
        let title = browser.title().await;
        let errors = browser.count(".invalid, [role=alert]").await > 0;
        if !self
            .checked
            .insert(format!("{title} (errors shown: {errors})"))
        {
            return;
        }
        let violations = browser.accessibility_violations(self.axe).await;
        assert!(
            violations.is_empty(),
            "{title} ({}): accessibility violations:\n{}",
            browser.url().await,
            violations.join("\n")
        );
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

async fn set_password(browser: &Browser, v: &mut Visitor<'_>, code: &str) {
    browser.go(&v.url(&format!("/clave?codigo={code}"))).await;
    v.check(browser).await;
    browser.fill("#f-password", PASSWORD).await;
    browser.fill("#f-password_again", PASSWORD).await;
    browser.click("form.card button[type=submit]").await;
    assert!(
        browser.url().await.ends_with("/entrar?listo=1"),
        "{}",
        browser.url().await
    );
}

async fn sign_in(browser: &Browser, v: &mut Visitor<'_>, email: &str, password: &str) {
    browser.go(&v.url("/entrar")).await;
    v.check(browser).await;
    browser.fill("#f-email", email).await;
    browser.fill("#f-password", password).await;
    browser.click("form.card button[type=submit]").await;
    if password == PASSWORD {
        assert!(
            browser.url().await.ends_with("/consola"),
            "{email} did not sign in: {}",
            browser.text("main").await
        );
    }
}

async fn sign_out(browser: &Browser) {
    browser.click("header form button").await;
}

/// Sets an input's value from script (date inputs take typed text by locale).
async fn set_value(browser: &Browser, id: &str, value: &str) {
    browser
        .run(&format!(
            "document.getElementById({}).value = {};",
            json!(id),
            json!(value)
        ))
        .await;
}

fn person(
    accounts: &Accounts,
    who: &Principal,
    org: u64,
    id_number: u64,
    name: &str,
    email: &str,
    roles: &[&str],
) -> (u64, String) {
    let form: UserForm = serde_json::from_value(json!({
        "id_number": id_number.to_string(), "full_name": name, "email": email, "roles": roles,
    }))
    .unwrap();
    let user = accounts.create_user(who, org, form).unwrap();
    let code = accounts.issue_password_setup(who, user.id).unwrap();
    (user.id, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_use_the_registry_through_its_pages_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.open_checks = false;
    let server = TestServer::start_with(config).await;
    let accounts = &server.accounts;
    let made = accounts.bootstrap(regulator_form()).unwrap();
    let regulator = accounts.authenticate(&made.token).unwrap();
    let regulator_email = made.admin.email.clone();

    // the people the scenario needs beside those the pages create: a police analyst and an
    // importer's clerk, each with a one-time code as an administrator would issue it
    let police_form: OrgForm = serde_json::from_value(org_json("authority", 1)).unwrap();
    let (police_org, _) = accounts.create_org(&regulator, police_form).unwrap();
    let (police_user, police_code) = person(
        accounts,
        &regulator,
        police_org.id,
        52_100_200,
        "Laura Patricia Gómez Ruiz",
        "laura.gomez@policia.example.co",
        &["authority"],
    );
    let importer_form: OrgForm = serde_json::from_value(org_json("importer", 2)).unwrap();
    let (importer_org, _) = accounts.create_org(&regulator, importer_form).unwrap();
    let (_, importer_code) = person(
        accounts,
        &regulator,
        importer_org.id,
        52_100_300,
        "Carlos Andrés Peña Díaz",
        "carlos.pena@importador.example.co",
        &["importer"],
    );

    let driver = Driver::start().await;
    let browser = driver.browser(1280, 900).await;
    let axe = axe_script();
    let mut v = Visitor {
        base: format!("http://{}", server.addr),
        axe: &axe,
        checked: BTreeSet::new(),
    };

    // --- the public check: an unknown IMEI, then a malformed one
    let unknown = imei(9_001).to_string();
    browser.go(&v.url("/")).await;
    v.check(&browser).await;
    assert_eq!(browser.text("h1").await, "¿Es robado este celular?");
    assert!(browser.text("main").await.contains("*#06#"));
    browser.fill("#f-imei", &unknown).await;
    browser.click("form.card button").await;
    assert_eq!(browser.text(".verdict h2").await, "No registrado");
    v.check(&browser).await;
    browser.fill("#f-imei", "12345").await;
    browser.click("form.card button").await;
    assert_eq!(
        browser.count(".field.invalid #f-imei").await,
        1,
        "the error is on the IMEI field"
    );
    assert!(browser.text("#f-imei-error").await.contains("*#06#"));
    assert_eq!(
        browser
            .run("return document.getElementById('f-imei').getAttribute('aria-describedby')")
            .await,
        json!("f-imei-error")
    );
    // a phone's width: nothing wider than the screen
    let phone = driver.browser(390, 844).await;
    phone.go(&v.url(&format!("/?imei={unknown}"))).await;
    assert_eq!(
        phone
            .run("return document.documentElement.scrollWidth <= window.innerWidth")
            .await,
        json!(true),
        "the public page fits a phone's screen"
    );
    phone.quit().await;

    // --- the regulator's administrator sets its password, fails once, signs in
    set_password(&browser, &mut v, &made.password_code).await;
    sign_in(
        &browser,
        &mut v,
        &regulator_email,
        "not the password at all",
    )
    .await;
    assert!(browser.text(".error").await.contains("no son correctos"));
    sign_in(&browser, &mut v, &regulator_email, PASSWORD).await;
    assert!(
        browser.url().await.ends_with("/consola"),
        "{}",
        browser.url().await
    );
    v.check(&browser).await;
    let session = (browser.cookies().await.into_iter())
        .find(|c| c["name"] == "imeidb_sesion")
        .expect("a session cookie");
    assert_eq!(session["httpOnly"], json!(true));
    assert_eq!(session["sameSite"], json!("Strict"));

    // --- it creates an operator from the full user form; wrong fields are flagged in place
    browser.go(&v.url("/consola/organizaciones/nueva")).await;
    v.check(&browser).await;
    let operator_nit = 860_123_457u64;
    let good_nit = format!(
        "{operator_nit}-{}",
        nit_check_digit(&operator_nit.to_string())
    );
    let wrong_digit = (nit_check_digit(&operator_nit.to_string()) + 1) % 10;
    let fill_org = [
        ("#f-nit", format!("{operator_nit}-{wrong_digit}")),
        ("#f-legal_name", "Comunicaciones Andinas S.A.S.".to_owned()),
        ("#f-address", "Calle 100 # 7-33, Bogotá".to_owned()),
        ("#f-email", "not-an-email".to_owned()),
        ("#f-department", "11".to_owned()),
        ("#f-municipality", "11001".to_owned()),
        ("#f-phones-0-", "6017420000".to_owned()),
        ("#f-legal_representative-id_number", "79456123".to_owned()),
        (
            "#f-legal_representative-full_name",
            "María Fernanda Ríos Vargas".to_owned(),
        ),
        (
            "#f-legal_representative-email",
            "mfrios@andinas.example.co".to_owned(),
        ),
        ("#f-accountant-id_number", "80123987".to_owned()),
        (
            "#f-accountant-full_name",
            "Pedro Luis Castaño Mejía".to_owned(),
        ),
        (
            "#f-accountant-email",
            "contador@andinas.example.co".to_owned(),
        ),
        ("#f-accountant-professional_card", "145678-T".to_owned()),
        (
            "#f-contacts-0--full_name",
            "Sandra Milena Torres Gil".to_owned(),
        ),
        (
            "#f-contacts-0--email",
            "sandra.torres@andinas.example.co".to_owned(),
        ),
        ("#f-administrator-id_number", "1020304050".to_owned()),
        (
            "#f-administrator-full_name",
            "Juan Camilo Herrera López".to_owned(),
        ),
        (
            "#f-administrator-email",
            "jc.herrera@andinas.example.co".to_owned(),
        ),
    ];
    browser.select("#f-kind", "operator").await;
    for (css, value) in &fill_org {
        browser.fill(css, value).await;
    }
    browser.click("form.card button[type=submit]").await;
    for wrong in ["#f-nit", "#f-email"] {
        assert_eq!(
            browser.count(&format!(".field.invalid {wrong}")).await,
            1,
            "{wrong} is flagged: {}",
            browser.text("main").await
        );
    }
    assert_eq!(
        browser.count(".field.invalid").await,
        2,
        "only the wrong fields are flagged"
    );
    // in Spanish: the NIT's check digit, the e-mail
    let said = browser.text("#f-nit-error").await;
    assert!(said.contains("dígito de verificación"), "{said}");
    let said = browser.text("#f-email-error").await;
    assert!(
        said.contains("no es una dirección de correo electrónico"),
        "{said}"
    );
    v.check(&browser).await;
    if std::env::var_os("IMEIDB_WRITE_SCREENSHOTS").is_some() {
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("consola-errores.png"), browser.screenshot().await).unwrap();
    }
    browser.fill("#f-nit", &good_nit).await;
    browser.fill("#f-email", "info@andinas.example.co").await;
    browser.click("form.card button[type=submit]").await;
    assert!(
        browser.url().await.contains("creada=1"),
        "{}",
        browser.text("main").await
    );
    v.check(&browser).await;
    let operator_org: u64 = browser
        .url()
        .await
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // its administrator's one-time code, from the users page
    browser.click("main a[href$='/usuarios']").await;
    v.check(&browser).await;
    browser.click("main tbody a").await;
    browser.click("form[action$='/clave'] button").await;
    let operator_admin_code = browser.text("p.secret").await;
    v.check(&browser).await;
    sign_out(&browser).await;
    assert!(browser.url().await.ends_with('/'));

    // --- the operator's administrator: a user, its token, and nothing of another organisation
    set_password(&browser, &mut v, &operator_admin_code).await;
    sign_in(&browser, &mut v, "jc.herrera@andinas.example.co", PASSWORD).await;
    browser
        .click(&format!(
            "a[href='/consola/organizaciones/{operator_org}/usuarios']"
        ))
        .await;
    browser.fill("#f-id_number", "1098765432").await;
    browser
        .fill("#f-full_name", "Diana Marcela Ortiz Ruiz")
        .await;
    browser
        .fill("#f-email", "diana.ortiz@andinas.example.co")
        .await;
    browser.toggle("#r-operator").await;
    browser.click("form.card button[type=submit]").await;
    assert!(
        browser.text("h1").await.contains("Diana Marcela"),
        "{}",
        browser.text("main").await
    );
    browser.fill("#f-name", "core-network-1").await;
    browser.click("form[action$='/token'] button").await;
    let token = browser.text("p.secret").await;
    assert!(token.starts_with("imeidb_"), "{token}");
    assert!(browser.text("main").await.contains("core-network-1"));
    v.check(&browser).await;
    // shown once: the page after is the account without it; revoked, it is gone
    browser.go(&browser.url().await).await;
    assert_eq!(browser.count("p.secret").await, 0);
    browser.click("form[action$='/revocar'] button").await;
    assert!(browser.text("main").await.contains("Sin tokens vigentes"));
    // a change of name and roles
    browser
        .fill("#f-full_name", "Diana Marcela Ortiz Rueda")
        .await;
    browser.click("form.card button[type=submit]").await;
    assert!(browser.text("h1").await.contains("Ortiz Rueda"));
    browser.click("form[action$='/clave'] button").await;
    let agent_code = browser.text("p.secret").await;
    for other in [
        "/consola/organizaciones/1",
        "/consola/organizaciones/1/usuarios",
    ] {
        browser.go(&v.url(other)).await;
        assert_eq!(browser.text("h1").await, "No tiene permiso", "{other}");
        v.check(&browser).await;
    }
    sign_out(&browser).await;

    // --- the operator's agent reports a theft and activates a device with proof
    let stolen = imei(9_002).to_string();
    let activated = imei(9_003).to_string();
    set_password(&browser, &mut v, &agent_code).await;
    sign_in(&browser, &mut v, "diana.ortiz@andinas.example.co", PASSWORD).await;
    browser.click("a[href='/consola/cuenta']").await;
    assert!(browser.text("main").await.contains("Sin tokens vigentes"));
    v.check(&browser).await;
    browser.click("a[href='/consola/reportes']").await;
    v.check(&browser).await;
    browser.fill("#f-imei", &stolen).await;
    browser.select("#f-kind", "stolen").await;
    browser.select("#f-reported_by", "user").await;
    browser.fill("#f-subscriber_id", "1020304050").await;
    browser
        .fill("#f-reference", "SPOA-110016000050202600123")
        .await;
    set_value(&browser, "f-occurred_at", "2026-11-30").await;
    browser.click("form.card button[type=submit]").await;
    assert!(
        browser.text("main").await.contains("Reporte registrado"),
        "{}",
        browser.text("main").await
    );
    v.check(&browser).await;
    browser.click("a[href='/consola/activaciones']").await;
    v.check(&browser).await;
    let seller_nit = 900_555_123u64;
    for (css, value) in [
        ("#f-imei", activated.clone()),
        ("#f-imsi", "732101234567890".to_owned()),
        ("#f-owner_id_number", "1020304050".to_owned()),
        ("#f-proof-invoice_number", "FE-2026-4471".to_owned()),
        (
            "#f-proof-seller_nit",
            format!("{seller_nit}-{}", nit_check_digit(&seller_nit.to_string())),
        ),
        ("#f-proof-buyer_id", "1020304050".to_owned()),
        ("#f-proof-imei", activated.clone()),
    ] {
        browser.fill(css, &value).await;
    }
    browser.select("#f-owner_id_type", "CC").await;
    browser.select("#f-proof-kind", "invoice").await;
    browser.click("form.card button[type=submit]").await;
    assert!(
        browser.text("main").await.contains("Equipo activado"),
        "{}",
        browser.text("main").await
    );
    sign_out(&browser).await;

    // --- the importer's clerk uploads a CSV and sees the rejected line by number
    set_password(&browser, &mut v, &importer_code).await;
    sign_in(
        &browser,
        &mut v,
        "carlos.pena@importador.example.co",
        PASSWORD,
    )
    .await;
    browser.click("a[href='/consola/cargas']").await;
    v.check(&browser).await;
    let registered = imei(9_004).to_string();
    let csv = dir.path().join("lote.csv");
    std::fs::write(
        &csv,
        format!("imei,manufacturer,model,reference\n{registered},Samsung,SM-A155M,DIAN-1\n12345,Samsung,SM-A155M,DIAN-1\n{},Xiaomi,Redmi 13,DIAN-2\n", imei(9_005)),
    )
    .unwrap();
    browser.fill("#f-file", csv.to_str().unwrap()).await;
    browser.toggle("#upload button").await;
    browser.wait_for("return document.getElementById('upload-status').textContent.startsWith('Carga terminada')").await;
    assert_eq!(
        browser
            .run("return document.getElementById('upload-progress').value")
            .await,
        json!(100)
    );
    let result = browser.text("#upload-result").await;
    assert!(
        result.contains("Registradas\n2") || result.contains("Registradas 2"),
        "{result}"
    );
    assert_eq!(
        browser.text("#upload-result tbody td").await,
        "3",
        "the rejected line is line 3 (the header is 1)"
    );
    v.check(&browser).await;
    // a file that takes seconds to send: while it runs, the page shows what its job says
    // (the lines the registry has read and registered so far), not only the bytes sent
    let big = dir.path().join("lote-grande.csv");
    let mut text = String::from("imei,manufacturer,model,reference\n");
    for n in 0..1_500_000u64 {
        text.push_str(&imei(1_000_000 + n).to_string());
        text.push_str(",Xiaomi,Redmi 13,DIAN-3\n");
    }
    std::fs::write(&big, text).unwrap();
    browser
        .run("window.seen = []; const s = document.getElementById('upload-status'); new MutationObserver(() => seen.push(s.textContent)).observe(s, { childList: true, characterData: true, subtree: true }); return true;")
        .await;
    browser.fill("#f-file", big.to_str().unwrap()).await;
    // sent at 10 MB/s, as over a clerk's link: 6 s, where on loopback a fast machine
    // registers the 60 MB in half a second, before the page's first look at the job
    browser.limit_upload(Some(10_000_000)).await;
    browser.toggle("#upload button").await;
    browser.wait_for("return document.getElementById('upload-status').textContent.startsWith('Carga terminada')").await;
    browser.limit_upload(None).await;
    let seen = browser.run("return window.seen").await;
    let following: Vec<&str> = (seen.as_array().unwrap().iter())
        .filter_map(|s| s.as_str())
        .filter(|s| s.contains("líneas leídas"))
        .collect();
    assert!(!following.is_empty(), "the job was never shown: {seen}");
    let registered_so_far = |status: &str| -> u64 {
        let words = status.split("líneas leídas: ").nth(1).unwrap_or("");
        let digits: String = words
            .split(' ')
            .next()
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap_or(0)
    };
    assert!(
        following
            .iter()
            .any(|s| (1..1_500_000).contains(&registered_so_far(s))),
        "no status showed part of the file registered: {following:?}"
    );
    let result = browser.text("#upload-result").await;
    assert!(
        result
            .replace(['.', '\u{a0}', ' '], "")
            .contains("Registradas\n1500000")
            || result
                .replace(['.', '\u{a0}'], "")
                .contains("Registradas 1500000"),
        "{result}"
    );
    sign_out(&browser).await;

    // --- the public check of a registered and a reported device
    for (number, verdict) in [
        (&registered, "Registrado"),
        (&stolen, "Reportado como hurtado o extraviado"),
        (&activated, "Registrado"),
    ] {
        browser.go(&v.url(&format!("/?imei={number}"))).await;
        assert_eq!(browser.text(".verdict h2").await, verdict, "{number}");
        v.check(&browser).await;
    }
    if std::env::var_os("IMEIDB_WRITE_SCREENSHOTS").is_some() {
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::write(out.join("publica.png"), browser.screenshot().await).unwrap();
    }

    // --- a police analyst consults the reported IMEI, record by record
    let police = driver.browser(1280, 900).await;
    set_password(&police, &mut v, &police_code).await;
    sign_in(&police, &mut v, "laura.gomez@policia.example.co", PASSWORD).await;
    police.click("a[href='/consola/imei']").await;
    police.fill("#f-imei", &stolen).await;
    police.click("form.card button").await;
    let shown = police.text("main").await;
    assert!(shown.contains("SPOA-110016000050202600123"), "{shown}");
    assert!(shown.contains("Historia del IMEI"), "{shown}");
    v.check(&police).await;

    // --- the regulator finds that consultation in its audit view
    sign_in(&browser, &mut v, &regulator_email, PASSWORD).await;
    browser
        .go(&v.url(&format!(
            "/consola/auditoria?action=negative.consult&actor={police_user}"
        )))
        .await;
    let audit = browser.text("tbody").await;
    // as over the API: the record's consultation, and the history read as an authority
    assert!(audit.contains(&format!("imei/{stolen}")), "{audit}");
    assert!(
        audit.contains("found") && audit.contains("history"),
        "{audit}"
    );
    assert_eq!(browser.count("main tbody > tr").await, 2, "{audit}");
    v.check(&browser).await;
    // paging: one entry a page, the next link goes on from the last shown
    browser
        .go(&v.url("/consola/auditoria?limit=1&action=negative.consult"))
        .await;
    assert_eq!(browser.count("main tbody > tr").await, 1);
    let first = browser.text("main tbody td").await;
    browser.click("main p a[href*='after=']").await;
    assert_eq!(browser.count("main tbody > tr").await, 1);
    assert_ne!(
        browser.text("main tbody td").await,
        first,
        "the second page shows the next entry"
    );
    // the regulator's other pages
    for page in [
        "/consola/organizaciones?q=operator",
        "/consola/vendedores",
        "/vendedores?q=Bogot",
    ] {
        browser.go(&v.url(page)).await;
        assert_eq!(browser.count(".error").await, 0, "{page}");
        v.check(&browser).await;
    }

    // --- a form posted without its CSRF token is refused, and changes nothing
    browser
        .go(&v.url(&format!("/consola/organizaciones/{}", police_org.id)))
        .await;
    browser.run("document.querySelectorAll('form[action$=\"/suspender\"] input[name=csrf]').forEach(e => e.remove());").await;
    browser.click("form[action$='/suspender'] button").await;
    assert_eq!(browser.text("h1").await, "Formulario no válido");
    v.check(&browser).await;
    browser.go(&v.url("/consola/no-existe")).await;
    assert_eq!(browser.text("h1").await, "No encontrado");
    v.check(&browser).await;
    assert!(
        !accounts
            .get_org(&regulator, police_org.id)
            .unwrap()
            .suspended
    );

    // --- the regulator suspends the analyst: the analyst's open session ends on the next click
    browser
        .go(&v.url(&format!(
            "/consola/organizaciones/{}/usuarios/{police_user}",
            police_org.id
        )))
        .await;
    browser.click("form[action$='/suspender'] button").await;
    assert!(browser.text("main").await.contains("suspendido"));
    police.click("a[href='/consola/imei']").await;
    assert!(
        police.url().await.contains("/entrar") || police.text("h1").await == "Cuenta suspendida",
        "the suspended analyst's session goes on: {}",
        police.url().await
    );
    if police.text("h1").await == "Cuenta suspendida" {
        v.check(&police).await;
    }
    police.go(&v.url("/consola/imei")).await;
    assert!(
        police.url().await.contains("/entrar"),
        "{}",
        police.url().await
    );
    police.quit().await;

    // the sign-ins, the failed one and the consultation are on the record
    let (entries, _) = accounts
        .audit(&regulator, &imeidb::audit::Filter::default(), 0, 1000)
        .unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "password.set",
        "session.sign_in",
        "session.sign_out",
        "password.setup",
        "negative.consult",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    assert!(
        entries
            .iter()
            .any(|e| e.action.as_str() == "session.sign_in"
                && serde_json::to_value(&e.actor).unwrap()["kind"] == json!("client")),
        "the failed sign-in is audited with the client's address"
    );
    // --- last, the friendly 429 page: this browser spends the public limit of its address
    // (`public.requests_per_minute`) on the public check, then visits it once more
    let spent = browser
        .run(&format!(
            "for (let i = 0; i < 200; i++) {{
                 const x = new XMLHttpRequest();
                 x.open('GET', '/?imei={unknown}', false);
                 x.send();
                 if (x.status === 429) return i;
             }}
             return -1;"
        ))
        .await;
    assert!(
        spent.as_i64().is_some_and(|n| n >= 0),
        "never throttled: {spent}"
    );
    browser.go(&v.url(&format!("/?imei={unknown}"))).await;
    assert!(
        browser.title().await.contains("Demasiadas consultas"),
        "{}",
        browser.title().await
    );
    v.check(&browser).await;
    assert!(
        v.checked.len() >= 16,
        "pages checked with axe: {:?}",
        v.checked
    );
    browser.quit().await;
    server.stop().await;
}
