//! Signing in and out, and setting a password with the one-time code an administrator
//! issued (`accounts/logins.rs` holds the rules: Argon2id, locks, audit).
//!
//! The two forms a visitor posts before it has a session carry the value of its form cookie
//! (double submit), so a page elsewhere cannot sign a browser in to an account of its own.

use std::time::Duration;

use hyper::StatusCode;
use maud::html;

use super::layout::{FormState, Input, field, form_errors, shell};
use super::{
    PageError, PageResult, Visit, clear_cookie, client_label, form_cookie, fresh_secret, html,
    password_work, redirect, session_cookie, set_cookie,
};
use crate::accounts::logins::{FAILURES_BEFORE_LOCK, LOCK_SECS, MIN_PASSWORD_CHARS, SignInRefusal};
use crate::api::{ApiError, HttpResponse};

/// How long a wrong password waits before its answer: with the account lock, what makes
/// guessing slow for one client even below its public limit.
pub const WRONG_PASSWORD_PAUSE: Duration = Duration::from_secs(1);

/// Where to go after signing in: a console page, never another site, and without its query
/// (a link must not make a person's first click an audited consultation it did not ask for).
fn next_page(requested: Option<String>) -> String {
    requested
        .map(|p| p.split(['?', '#']).next().unwrap_or("").to_owned())
        .filter(|p| {
            (p == "/consola" || p.starts_with("/consola/"))
                && !p.contains("//")
                && !p.contains('\\')
                && p.bytes().all(|b| b.is_ascii_graphic())
        })
        .unwrap_or_else(|| "/consola".into())
}

/// `GET /entrar`.
///
/// # Errors
/// None in practice: the form renders.
pub fn form_page(visit: Visit) -> PageResult {
    if visit.session.is_some() {
        return Ok(redirect("/consola"));
    }
    let state = FormState::default();
    let done = visit.query("listo").is_some();
    let next = next_page(visit.query("siguiente"));
    Ok(sign_in_page(
        &visit.form_cookie,
        visit.secure,
        &state,
        &next,
        done,
        StatusCode::OK,
    ))
}

fn sign_in_page(
    cookie: &Option<String>,
    secure: bool,
    state: &FormState,
    next: &str,
    done: bool,
    status: StatusCode,
) -> HttpResponse {
    let token = cookie.clone().unwrap_or_else(fresh_secret);
    let chrome = super::layout::Chrome { session: None };
    let body = html! {
        @if done { p.notice role="status" { "Su contraseña quedó guardada. Ya puede entrar." } }
        p { "Entre con el correo de su cuenta y su contraseña. La primera vez, su administrador le entrega un código para "
            a href="/clave" { "crear su contraseña" } "." }
        (form_errors(state, &["email".into(), "password".into()]))
        form.card method="post" action="/entrar" {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="siguiente" value=(next);
            (field(state, "email", "Correo electrónico", Input::Text("email"), true))
            (field(state, "password", "Contraseña", Input::Text("password"), true))
            button type="submit" { "Entrar" }
        }
    };
    let mut response = html(status, &shell(&chrome, "Entrar", body));
    if cookie.is_none() {
        set_cookie(&mut response, form_cookie(secure), &token, secure);
    }
    response
}

/// `POST /entrar`: signs in, or shows the form again with why not.
///
/// # Errors
/// The CSRF page, the 429 page past the client's public limit, the busy page when as many
/// sign-ins are being checked, the suspended page for a suspended account.
pub async fn sign_in(visit: Visit) -> PageResult {
    if visit.session.is_some() {
        // signed in already: no Argon2 for a session (it would be outside the public limit)
        return Ok(redirect("/consola"));
    }
    let (parts, fields) = visit.form().await?;
    let email = fields.get("email").to_owned();
    let password = fields.get("password").to_owned();
    let next = next_page(Some(fields.get("siguiente").to_owned()));
    let client = client_label(parts.peer);
    let outcome = password_work(&parts.state, move |state| {
        state.accounts.sign_in(&email, &password, &client)
    })
    .await?;
    let mut state = FormState::default();
    state
        .values
        .insert("email".into(), fields.get("email").to_owned());
    match outcome {
        Ok(session) => {
            let mut response = redirect(&next);
            set_cookie(
                &mut response,
                session_cookie(parts.secure),
                &session.cookie,
                parts.secure,
            );
            clear_cookie(&mut response, form_cookie(parts.secure), parts.secure);
            Ok(response)
        }
        // the same answer, after the same pause, whether the e-mail is unknown, the password
        // wrong or the account locked: the page does not tell which e-mails have accounts
        Err(SignInRefusal::WrongCredentials | SignInRefusal::Locked(_)) => {
            tokio::time::sleep(WRONG_PASSWORD_PAUSE).await;
            state.general = Some(format!(
                "El correo o la contraseña no son correctos. Tras {FAILURES_BEFORE_LOCK} intentos fallidos, la cuenta no acepta entradas por {} minutos; si no fue usted, avise a su administrador.",
                LOCK_SECS / 60
            ));
            Ok(sign_in_page(
                &parts.form_cookie,
                parts.secure,
                &state,
                &next,
                false,
                StatusCode::UNAUTHORIZED,
            ))
        }
        Err(SignInRefusal::Disabled(e)) => Err(PageError::Api(ApiError::from(e))),
    }
}

/// `POST /salir`: ends the session.
///
/// # Errors
/// The CSRF page for a post without the session's token.
pub async fn sign_out(visit: Visit) -> PageResult {
    if visit.session.is_none() {
        return Ok(redirect("/"));
    }
    let (parts, _) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let state = parts.state.clone();
    let recorded = crate::api::off_worker(&state, move |state| {
        Ok(state.accounts.sign_out(&session)?)
    })
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = ?e, "could not record a sign-out in the audit trail");
    }
    let mut response = redirect("/");
    clear_cookie(&mut response, session_cookie(parts.secure), parts.secure);
    Ok(response)
}

/// `GET /clave?codigo=`: the form to set a password with a one-time code.
///
/// # Errors
/// None in practice.
pub fn password_page(visit: Visit) -> PageResult {
    let mut state = FormState::default();
    state
        .values
        .insert("code".into(), visit.query("codigo").unwrap_or_default());
    let token = form_token(&visit.session, &visit.form_cookie);
    Ok(password_form(&token, visit.secure, &state, StatusCode::OK))
}

/// The token a form before a session carries: the session's when a person signed in opens
/// it anyway (its post is checked against the session), else the visitor's form cookie.
fn form_token(
    session: &Option<crate::accounts::logins::SignedIn>,
    cookie: &Option<String>,
) -> Option<String> {
    match session {
        Some(session) => Some(session.csrf.clone()),
        None => cookie.clone(),
    }
}

fn password_form(
    cookie: &Option<String>,
    secure: bool,
    state: &FormState,
    status: StatusCode,
) -> HttpResponse {
    let token = cookie.clone().unwrap_or_else(fresh_secret);
    let chrome = super::layout::Chrome { session: None };
    let inputs = [
        "code".to_owned(),
        "password".into(),
        "password_again".into(),
    ];
    let body = html! {
        p { "Escriba el código que le entregó su administrador y elija su contraseña: al menos "
            (MIN_PASSWORD_CHARS) " caracteres (una frase que recuerde es una buena contraseña). El código sirve una sola vez y vence a las 72 horas." }
        (form_errors(state, &inputs))
        form.card method="post" action="/clave" {
            input type="hidden" name="csrf" value=(token);
            (field(state, "code", "Código", Input::Text("text"), true))
            (field(state, "password", "Nueva contraseña", Input::Text("password"), true))
            (field(state, "password_again", "Repita la contraseña", Input::Text("password"), true))
            button type="submit" { "Guardar contraseña" }
        }
    };
    let mut response = html(status, &shell(&chrome, "Crear contraseña", body));
    if cookie.is_none() {
        set_cookie(&mut response, form_cookie(secure), &token, secure);
    }
    response
}

/// `POST /clave`: sets the password, then to the sign-in form.
///
/// # Errors
/// The CSRF page, the 429 page past the client's public limit, the busy page.
pub async fn set_password(visit: Visit) -> PageResult {
    let (parts, fields) = visit.form().await?;
    if parts.session.is_some() {
        // `form` counts only visitors without a session: this Argon2 is counted all the same
        crate::api::admit_public(&parts.state, parts.peer)?;
    }
    let mut state = FormState::default();
    state
        .values
        .insert("code".into(), fields.get("code").to_owned());
    if fields.get("password") != fields.get("password_again") {
        state.errors.push((
            "password_again".into(),
            "no coincide con la contraseña".into(),
        ));
        return Ok(password_form(
            &form_token(&parts.session, &parts.form_cookie),
            parts.secure,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let (code, password) = (
        fields.get("code").to_owned(),
        fields.get("password").to_owned(),
    );
    let result = password_work(&parts.state, move |state| {
        state.accounts.set_password(&code, &password)
    })
    .await?;
    match result {
        Ok(_) => Ok(redirect("/entrar?listo=1")),
        Err(e) => {
            let state = FormState::failed(state.values, &ApiError::from(e));
            Ok(password_form(
                &form_token(&parts.session, &parts.form_cookie),
                parts.secure,
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_page;

    #[test]
    fn after_sign_in_only_a_console_page_without_its_query() {
        for (asked, goes) in [
            (Some("/consola/imei?imei=490154203237518"), "/consola/imei"),
            (
                Some("/consola/organizaciones/3"),
                "/consola/organizaciones/3",
            ),
            (Some("//evil.example/consola"), "/consola"),
            (Some("/consola//evil.example"), "/consola"),
            (Some("/consola/\\evil"), "/consola"),
            (Some("https://evil.example/consola"), "/consola"),
            (Some("/consolax"), "/consola"),
            (Some("/consola/a b"), "/consola"),
            (None, "/consola"),
        ] {
            assert_eq!(next_page(asked.map(str::to_owned)), goes, "{asked:?}");
        }
    }
}
