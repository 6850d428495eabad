//! An organisation's users, for its administrator and the regulator's: the list, the user
//! form, one account's page with its tokens, and the changes of its state and credentials
//! (deactivate, suspend, issue or revoke a token, a one-time password code). Who may act on
//! whose account is the domain's answer (`accounts/authority.rs`): an operator's
//! administrator who opens another organisation's page gets the 403 page.

use std::collections::HashMap;

use maud::{Markup, html};
use serde_json::json;

use super::form::{Fields, flatten};
use super::layout::{
    Chrome, FormState, Input, csrf, field, form_errors, group_errors, shell, token_table,
};
use super::orgs::org_id;
use super::{
    PageError, PageResult, Visit, VisitParts, form_refused, page, redirect, shown_in_form, submit,
};
use crate::accounts::forms::UserForm;
use crate::accounts::logins::SignedIn;
use crate::accounts::{Organisation, Principal, Token, User};
use crate::api::routes::id;
use crate::api::{ApiError, off_worker_as};
use crate::roles::OrgKind;

fn user_form(
    token: &str,
    state: &FormState,
    action: &str,
    kind: OrgKind,
    creating: bool,
) -> Markup {
    let mut inputs: Vec<String> = vec!["full_name".into(), "email".into(), "roles[]".into()];
    if creating {
        inputs.push("id_number".into());
    }
    let checked: Vec<&str> = state
        .values
        .get("roles")
        .map(|r| r.split(',').collect())
        .unwrap_or_default();
    html! {
        (form_errors(state, &inputs))
        form.card method="post" action=(action) novalidate {
            (csrf(token))
            @if creating { (field(state, "id_number", "Número de identificación", Input::Text("text"), true)) }
            (field(state, "full_name", "Nombre completo", Input::Text("text"), true))
            (field(state, "email", "Correo electrónico (con él entra a estas páginas)", Input::Text("email"), true))
            fieldset.invalid[!state.group_errors("roles").is_empty()] {
                legend { "Roles" }
                (group_errors(state, "roles"))
                @for role in kind.allowed_roles() {
                    div {
                        input type="checkbox" name="roles[]" value=(role.as_str()) id=(format!("r-{}", role.as_str()))
                            checked[checked.contains(&role.as_str())]
                            aria-describedby=[(!state.group_errors("roles").is_empty()).then_some("f-roles-error")];
                        label for=(format!("r-{}", role.as_str())) { " " (super::es::role(*role)) " " small { "(" (role.as_str()) ")" } }
                    }
                }
            }
            button type="submit" { @if creating { "Crear usuario" } @else { "Guardar cambios" } }
        }
    }
}

/// The roles of a form, as the value the role checkboxes are drawn from.
fn roles_value(fields: &Fields) -> String {
    fields.all("roles[]").join(",")
}

/// `GET /consola/organizaciones/{org}/usuarios`: the users, and the form for a new one.
///
/// # Errors
/// To sign-in; the 403 or 404 page.
pub async fn users(visit: Visit, org: &str) -> PageResult {
    let org = org_id(org)?;
    let session = visit.signed_in()?;
    let (organisation, users) = users_of(&visit.state, &session.principal, org)?;
    page(&users_view(
        &visit.chrome(),
        &session.csrf,
        &organisation,
        &users,
        &FormState::default(),
    ))
}

fn users_of(
    state: &crate::api::AppState,
    who: &Principal,
    org: u64,
) -> Result<(Organisation, Vec<User>), PageError> {
    let users = state.accounts.list_users(who, org)?;
    let organisation = state.accounts.get_org(who, org)?;
    Ok((organisation, users))
}

fn users_view(
    chrome: &Chrome<'_>,
    token: &str,
    org: &Organisation,
    users: &[User],
    state: &FormState,
) -> Markup {
    shell(
        chrome,
        &format!("Usuarios de {}", org.data.legal_name),
        html! {
            div.scroll tabindex="0" role="region" aria-label="Tabla (deslice para ver más)" { table {
                caption { (users.len()) " usuarios" }
                thead { tr { th scope="col" { "Nombre" } th scope="col" { "Correo" } th scope="col" { "Roles" } th scope="col" { "Estado" } } }
                tbody { @for user in users { tr {
                    td { a href=(format!("/consola/organizaciones/{}/usuarios/{}", org.id, user.id)) { (user.full_name) } }
                    td { (user.email) }
                    td { (super::es::roles(&user.roles)) }
                    td { (user_status(user)) }
                } } }
            } }
            h2 { "Nuevo usuario" }
            p { "Las cuentas son personales e intransferibles: una por persona, con su número de identificación." }
            (user_form(token, state, &format!("/consola/organizaciones/{}/usuarios", org.id), org.kind, true))
        },
    )
}

fn user_status(user: &User) -> &'static str {
    match (user.active, user.suspended) {
        (_, true) => "suspendido",
        (false, false) => "desactivado",
        (true, false) => "activo",
    }
}

/// `POST /consola/organizaciones/{org}/usuarios`: as `POST /v1/orgs/{org}/users`.
///
/// # Errors
/// To sign-in; the CSRF page; the 403 or 404 page.
pub async fn create_user(visit: Visit, org: &str) -> PageResult {
    let org = org_id(org)?;
    let (parts, fields) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let (mut values, result) = submit(
        &parts,
        fields.to_json(&["csrf"]),
        move |state, who, form: UserForm| Ok(state.accounts.create_user(who, org, form)?),
    )
    .await?;
    values.insert("roles".into(), roles_value(&fields));
    match result {
        Ok(user) => Ok(redirect(&format!(
            "/consola/organizaciones/{org}/usuarios/{}",
            user.id
        ))),
        Err(e) if shown_in_form(&e) => {
            let (organisation, users) = users_of(&parts.state, &session.principal, org)?;
            let state = FormState::failed(values, &e);
            Ok(form_refused(
                &users_view(
                    &parts.chrome(),
                    &session.csrf,
                    &organisation,
                    &users,
                    &state,
                ),
                &e,
            ))
        }
        Err(e) => Err(PageError::Api(e)),
    }
}

/// A secret shown once on the user page: a token's text or a password code.
enum Shown {
    Nothing,
    Token(String),
    Code(String),
}

/// `GET /consola/organizaciones/{org}/usuarios/{user}`.
///
/// # Errors
/// To sign-in; the 403 or 404 page.
pub async fn user_page(visit: Visit, org: &str, user: &str) -> PageResult {
    let (org, user) = (org_id(org)?, id(user, "{user}")?);
    let session = visit.signed_in()?;
    let view = user_view(
        &visit.state,
        &visit.chrome(),
        &session.csrf,
        &session.principal,
        org,
        user,
        &FormState::default(),
        Shown::Nothing,
    )?;
    page(&view)
}

#[allow(clippy::too_many_arguments)]
fn user_view(
    app: &crate::api::AppState,
    chrome: &Chrome<'_>,
    token: &str,
    who: &Principal,
    org: u64,
    user: u64,
    state: &FormState,
    shown: Shown,
) -> Result<Markup, PageError> {
    let account = app.accounts.get_user(who, org, user)?;
    let organisation = app.accounts.get_org(who, org)?;
    // an administrator who may not manage the account's tokens sees the account without them
    let tokens: Option<Vec<Token>> = app.accounts.list_tokens(who, user).ok();
    let has_password = app.accounts.has_password(user);
    let mut state_values = state.values.clone();
    if state_values.is_empty() {
        state_values.insert("full_name".into(), account.full_name.clone());
        state_values.insert("email".into(), account.email.clone());
        state_values.insert(
            "roles".into(),
            account
                .roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    let form_state = FormState {
        values: state_values,
        errors: state.errors.clone(),
        general: state.general.clone(),
    };
    let base = format!("/consola/organizaciones/{org}/usuarios/{user}");
    let regulator = who.may(crate::roles::Permission::AdministerOrgs);
    Ok(shell(
        chrome,
        &account.full_name,
        html! {
            @match &shown {
                Shown::Token(text) => div.notice role="status" {
                    p { "Token creado. Cópielo ahora: no se volverá a mostrar." }
                    p.secret { (text) }
                },
                Shown::Code(code) => div.notice role="status" {
                    p { "Código para crear la contraseña. Entréguelo a la persona por un medio seguro: sirve una vez y vence en 72 horas. Lo usa en " a href="/clave" { "/clave" } "." }
                    p.secret { (code) }
                },
                Shown::Nothing => {},
            }
            p { "Organización: " a href=(format!("/consola/organizaciones/{org}")) { (organisation.data.legal_name) }
                " · Identificación: " (account.id_number) " · Estado: " strong { (user_status(&account)) }
                " · Contraseña: " @if has_password { "creada" } @else { "sin crear" } }
            div.actions {
                @if account.active {
                    form.inline method="post" action=(format!("{base}/desactivar")) { (csrf(token)) button.danger type="submit" { "Desactivar" } }
                } @else {
                    form.inline method="post" action=(format!("{base}/activar")) { (csrf(token)) button.secondary type="submit" { "Activar" } }
                }
                @if regulator {
                    @if account.suspended {
                        form.inline method="post" action=(format!("{base}/reactivar")) { (csrf(token)) button.secondary type="submit" { "Levantar suspensión" } }
                    } @else {
                        form.inline method="post" action=(format!("{base}/suspender")) { (csrf(token)) button.danger type="submit" { "Suspender" } }
                    }
                }
                form.inline method="post" action=(format!("{base}/clave")) { (csrf(token)) button.secondary type="submit" { "Código para crear contraseña" } }
            }
            h2 { "Datos y roles" }
            (user_form(token, &form_state, &base, organisation.kind, false))
            @if let Some(tokens) = &tokens {
                h2 { "Tokens de API" }
                p { "Los tokens son para máquinas (la red del operador, los sistemas del importador). Las personas entran con su contraseña." }
                (token_table(tokens, (user, "su titular"), token, &format!("{base}/revocar")))
                form.card method="post" action=(format!("{base}/token")) {
                    (csrf(token))
                    (field(&form_state, "name", "Nombre del nuevo token (p. ej. core-network-1)", Input::Text("text"), true))
                    button type="submit" { "Crear token" }
                }
            }
        },
    ))
}

/// `POST /consola/organizaciones/{org}/usuarios/{user}`: name, e-mail and roles, as
/// `PATCH /v1/orgs/{org}/users/{user}`.
///
/// # Errors
/// To sign-in; the CSRF page; the 403 or 404 page.
pub async fn update_user(visit: Visit, org: &str, user: &str) -> PageResult {
    let (org, user) = (org_id(org)?, id(user, "{user}")?);
    let (parts, fields) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let mut patch = fields.to_json(&["csrf"]);
    if patch.get("roles").is_none() {
        patch["roles"] = json!([]);
    }
    let mut values: HashMap<String, String> = flatten(&patch);
    values.insert("roles".into(), roles_value(&fields));
    let result = off_worker_as(&parts.state, &session.principal, move |state, who| {
        Ok(state.accounts.update_user(who, org, user, &patch)?)
    })
    .await;
    match result {
        Ok(_) => Ok(redirect(&format!(
            "/consola/organizaciones/{org}/usuarios/{user}"
        ))),
        Err(e) if shown_in_form(&e) => refused(&parts, &session, (org, user), values, &e),
        Err(e) => Err(PageError::Api(e)),
    }
}

/// `POST /consola/organizaciones/{org}/usuarios/{user}/{change}`: `desactivar`, `activar`,
/// `suspender`, `reactivar`, `clave` (a one-time password code), `token` (a new token,
/// field `name`), `revocar` (field `token`).
///
/// # Errors
/// To sign-in; the CSRF page; the 403 or 404 page; a refusal as an error page.
pub async fn user_change(visit: Visit, org: &str, user: &str, change: &str) -> PageResult {
    let (org, user) = (org_id(org)?, id(user, "{user}")?);
    let change = change.to_owned();
    if !matches!(
        change.as_str(),
        "desactivar" | "activar" | "suspender" | "reactivar" | "clave" | "token" | "revocar"
    ) {
        return Err(PageError::Api(ApiError::NotFound));
    }
    let (parts, fields) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let (name, token_id) = (
        fields.get("name").to_owned(),
        fields.get("token").to_owned(),
    );
    let result = off_worker_as(&parts.state, &session.principal, move |state, who| {
        let accounts = &state.accounts;
        // the account of the page's organisation, or nothing happens: a secret issued for a
        // user the page then cannot show would be lost
        if let Err(e) = accounts.get_user(who, org, user) {
            return Ok(Err(ApiError::from(e)));
        }
        Ok(match change.as_str() {
            "desactivar" => accounts
                .set_user_active(who, org, user, false, None)
                .map(|_| Shown::Nothing),
            "activar" => accounts
                .set_user_active(who, org, user, true, None)
                .map(|_| Shown::Nothing),
            "suspender" => accounts
                .set_user_suspended(who, org, user, true, None)
                .map(|_| Shown::Nothing),
            "reactivar" => accounts
                .set_user_suspended(who, org, user, false, None)
                .map(|_| Shown::Nothing),
            "clave" => accounts.issue_password_setup(who, user).map(Shown::Code),
            "token" => accounts
                .create_token(who, user, &name)
                .map(|(_, text)| Shown::Token(text)),
            _ => accounts
                .revoke_token(who, user, &token_id)
                .map(|_| Shown::Nothing),
        }
        .map_err(ApiError::from))
    })
    .await?;
    match result {
        Ok(Shown::Nothing) => Ok(redirect(&format!(
            "/consola/organizaciones/{org}/usuarios/{user}"
        ))),
        Ok(shown) => page(&again(
            &parts,
            &session,
            (org, user),
            &FormState::default(),
            shown,
        )?),
        Err(e) if shown_in_form(&e) && !matches!(e, ApiError::Denied { .. }) => {
            refused(&parts, &session, (org, user), HashMap::new(), &e)
        }
        Err(e) => Err(PageError::Api(e)),
    }
}

/// The user's page again, with what the domain refused shown in its form.
fn refused(
    parts: &VisitParts,
    session: &SignedIn,
    ids: (u64, u64),
    values: HashMap<String, String>,
    error: &ApiError,
) -> PageResult {
    let state = FormState::failed(values, error);
    let view = again(parts, session, ids, &state, Shown::Nothing)?;
    Ok(form_refused(&view, error))
}

/// The user's page after a post, as the session's user sees it.
fn again(
    parts: &VisitParts,
    session: &SignedIn,
    (org, user): (u64, u64),
    state: &FormState,
    shown: Shown,
) -> Result<Markup, PageError> {
    user_view(
        &parts.state,
        &parts.chrome(),
        &session.csrf,
        &session.principal,
        org,
        user,
        state,
        shown,
    )
}
