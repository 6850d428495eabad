//! The administration consoles: the regulator's (organisations from the user form, their
//! suspension, any organisation's users, the audit trail, authorised sellers) and an
//! organisation administrator's (its own users, their tokens and their one-time password
//! codes). One set of pages serves both: which organisations and users a person may see
//! and change is the domain's answer (`accounts/authority.rs`), so an operator's
//! administrator who opens another organisation's page gets the 403 page.

use std::collections::HashMap;

use hyper::StatusCode;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::form::{Fields, flatten};
use super::layout::{
    Chrome, FormState, Input, csrf, field, form_errors, record, shell, token_table,
};
use super::public::seller_table;
use super::{
    PageError, PageResult, Visit, form_refused, html, page, redirect, shown_in_form, submit,
};
use crate::accounts::forms::{OrgForm, UserForm};
use crate::accounts::{Organisation, Principal, Token, User};
use crate::api::admin::audit_query;
use crate::api::routes::id;
use crate::api::{ApiError, off_worker_as};
use crate::registry::sellers::SellerForm;
use crate::roles::OrgKind;
use crate::timefmt;

/// One input of a form: name, label, type (`kind` for the organisation kind), required.
type Spec = (&'static str, &'static str, &'static str, bool);

/// The regulator's user form (`formulario-usuarios-ser.txt`), section by section; the
/// names are the domain's field paths.
const ORG_SECTIONS: &[(&str, &[Spec])] = &[
    (
        "1. Datos de la organización",
        &[
            ("kind", "Tipo de organización", "kind", true),
            (
                "nit",
                "NIT con dígito de verificación (900123456-7)",
                "text",
                true,
            ),
            ("legal_name", "Razón social", "text", true),
            ("address", "Dirección de correspondencia", "text", true),
            ("email", "Correo electrónico 1", "email", true),
            ("email_2", "Correo electrónico 2", "email", false),
            (
                "department",
                "Departamento (código DIVIPOLA, 2 dígitos)",
                "text",
                true,
            ),
            (
                "municipality",
                "Municipio (código DIVIPOLA, 5 dígitos)",
                "text",
                true,
            ),
            ("phones[0]", "Teléfono 1", "tel", true),
            ("phones[1]", "Teléfono 2", "tel", false),
            ("phones[2]", "Teléfono 3", "tel", false),
        ],
    ),
    (
        "2. Representante legal",
        &[
            (
                "legal_representative.id_number",
                "Número de identificación",
                "text",
                true,
            ),
            (
                "legal_representative.full_name",
                "Nombre completo",
                "text",
                true,
            ),
            (
                "legal_representative.email",
                "Correo electrónico 1",
                "email",
                true,
            ),
            (
                "legal_representative.email_2",
                "Correo electrónico 2",
                "email",
                false,
            ),
        ],
    ),
    (
        "3. Contador o revisor fiscal",
        &[
            (
                "accountant.id_number",
                "Número de identificación",
                "text",
                true,
            ),
            ("accountant.full_name", "Nombre completo", "text", true),
            ("accountant.email", "Correo electrónico", "email", true),
            (
                "accountant.professional_card",
                "Tarjeta profesional",
                "text",
                true,
            ),
        ],
    ),
    (
        "4. Contactos con el regulador (hasta tres)",
        &[
            ("contacts[0].full_name", "Contacto 1: nombre", "text", false),
            ("contacts[0].email", "Contacto 1: correo", "email", false),
            ("contacts[1].full_name", "Contacto 2: nombre", "text", false),
            ("contacts[1].email", "Contacto 2: correo", "email", false),
            ("contacts[2].full_name", "Contacto 3: nombre", "text", false),
            ("contacts[2].email", "Contacto 3: correo", "email", false),
        ],
    ),
    (
        "5. Administrador de la organización",
        &[
            (
                "administrator.id_number",
                "Número de identificación",
                "text",
                true,
            ),
            ("administrator.full_name", "Nombre completo", "text", true),
            ("administrator.email", "Correo electrónico 1", "email", true),
            (
                "administrator.email_2",
                "Correo electrónico 2",
                "email",
                false,
            ),
        ],
    ),
];

fn kinds() -> Vec<(&'static str, &'static str)> {
    OrgKind::ALL
        .iter()
        .map(|k| (k.as_str(), k.as_str()))
        .collect()
}

/// The organisation form; `creating` shows the kind and the administrator (section 5),
/// which an edit does not change.
fn org_form(token: &str, state: &FormState, action: &str, creating: bool) -> Markup {
    let kinds = kinds();
    let mut inputs = Vec::new();
    let sections: Vec<(&str, Vec<&Spec>)> = ORG_SECTIONS
        .iter()
        .filter(|(title, _)| creating || !title.starts_with("5."))
        .map(|(title, specs)| {
            let specs: Vec<&Spec> = specs.iter().filter(|s| creating || s.0 != "kind").collect();
            inputs.extend(specs.iter().map(|s| s.0.to_owned()));
            (*title, specs)
        })
        .collect();
    html! {
        (form_errors(state, &inputs))
        form.card method="post" action=(action) novalidate {
            (csrf(token))
            @for (title, specs) in &sections {
                fieldset {
                    legend { (title) }
                    div.grid2 {
                        @for (name, label, kind, required) in specs {
                            @if *kind == "kind" {
                                (field(state, name, label, Input::Select(&kinds), *required))
                            } @else {
                                (field(state, name, label, Input::Text(kind), *required))
                            }
                        }
                    }
                }
            }
            button type="submit" { @if creating { "Crear organización" } @else { "Guardar cambios" } }
        }
    }
}

/// `GET /consola/organizaciones?q=`: the organisations the caller reads, searched by name,
/// NIT or kind.
///
/// # Errors
/// To sign-in; the 403 page.
pub async fn orgs(visit: Visit) -> PageResult {
    let who = visit.signed_in()?.principal.clone();
    let orgs = visit.state.accounts.list_orgs(&who)?;
    let q = visit.query("q").unwrap_or_default();
    let needle = q.trim().to_lowercase();
    let shown: Vec<&Organisation> = orgs
        .iter()
        .filter(|o| {
            needle.is_empty()
                || o.data.legal_name.to_lowercase().contains(&needle)
                || o.data.nit.contains(&needle)
                || o.kind.as_str() == needle
        })
        .collect();
    let mut state = FormState::default();
    state.values.insert("q".into(), q);
    let body = html! {
        div.actions { a href="/consola/organizaciones/nueva" { "Crear organización" } }
        form.card method="get" action="/consola/organizaciones" role="search" {
            (field(&state, "q", "Buscar por razón social, NIT o tipo", Input::Text("search"), false))
            button type="submit" { "Buscar" }
        }
        div.scroll tabindex="0" role="region" aria-label="Tabla (deslice para ver más)" { table {
            caption { (shown.len()) " organizaciones" }
            thead { tr { th scope="col" { "Razón social" } th scope="col" { "NIT" } th scope="col" { "Tipo" } th scope="col" { "Estado" } } }
            tbody { @for org in &shown { tr {
                td { a href=(format!("/consola/organizaciones/{}", org.id)) { (org.data.legal_name) } }
                td { (org.data.nit) } td { (org.kind.as_str()) }
                td { @if org.suspended { "suspendida" } @else { "activa" } }
            } } }
        } }
    };
    page(&shell(&visit.chrome(), "Organizaciones", body))
}

/// `GET /consola/organizaciones/nueva`.
///
/// # Errors
/// To sign-in.
pub fn new_org_page(visit: Visit) -> PageResult {
    let session = visit.signed_in()?;
    let body = org_form(
        &session.csrf,
        &FormState::default(),
        "/consola/organizaciones/nueva",
        true,
    );
    page(&shell(&visit.chrome(), "Nueva organización", body))
}

/// `POST /consola/organizaciones/nueva`: as `POST /v1/orgs`; every wrong field is flagged
/// next to its input.
///
/// # Errors
/// To sign-in; the CSRF page; the 403 page.
pub async fn create_org(visit: Visit) -> PageResult {
    let (parts, fields) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let json = without_empty_kind(fields.to_json(&["csrf"]));
    let (values, result) = submit(&parts, json, |state, who, form: OrgForm| {
        Ok(state.accounts.create_org(who, form)?)
    })
    .await?;
    match result {
        Ok((org, _admin)) => Ok(redirect(&format!(
            "/consola/organizaciones/{}?creada=1",
            org.id
        ))),
        Err(e) if shown_in_form(&e) => {
            let state = FormState::failed(values, &e);
            let body = org_form(&session.csrf, &state, "/consola/organizaciones/nueva", true);
            Ok(form_refused(
                &shell(&parts.chrome(), "Nueva organización", body),
                &e,
            ))
        }
        Err(e) => Err(PageError::Api(e)),
    }
}

fn without_empty_kind(mut json: Value) -> Value {
    if json.get("kind").is_some_and(|k| k.as_str() == Some("")) {
        json.as_object_mut().map(|o| o.remove("kind"));
    }
    json
}

fn org_id(text: &str) -> Result<u64, PageError> {
    Ok(id(text, "{org}")?)
}

/// `GET /consola/organizaciones/{org}`: its data, the edit form (for the regulator), and
/// its suspension.
///
/// # Errors
/// To sign-in; the 403 or 404 page.
pub async fn org_page(visit: Visit, org: &str) -> PageResult {
    let org = org_id(org)?;
    let session = visit.signed_in()?;
    let organisation = visit.state.accounts.get_org(&session.principal, org)?;
    let created = visit.query("creada").is_some();
    let values = flatten(&serde_json::to_value(&organisation.data).unwrap_or_default());
    let state = FormState {
        values,
        ..FormState::default()
    };
    page(&org_view(
        &visit.chrome(),
        &session.csrf,
        &session.principal,
        &organisation,
        &state,
        created,
    ))
}

fn org_view(
    chrome: &Chrome<'_>,
    token: &str,
    who: &Principal,
    org: &Organisation,
    state: &FormState,
    created: bool,
) -> Markup {
    let regulator = who.may(crate::roles::Permission::AdministerOrgs);
    shell(
        chrome,
        &org.data.legal_name,
        html! {
            @if created { p.notice role="status" { "Organización creada con su administrador. Dé al administrador un código para crear su contraseña desde la página de usuarios." } }
            p { "Tipo: " strong { (org.kind.as_str()) } " · Estado: " strong { @if org.suspended { "suspendida" } @else { "activa" } }
                " · Creada: " (timefmt::rfc3339(org.created_at)) }
            div.actions {
                a href=(format!("/consola/organizaciones/{}/usuarios", org.id)) { "Usuarios de la organización" }
            }
            @if regulator {
                div.actions {
                    @if org.suspended {
                        form.inline method="post" action=(format!("/consola/organizaciones/{}/reactivar", org.id)) {
                            (csrf(token)) button.secondary type="submit" { "Reactivar organización" }
                        }
                    } @else {
                        form.inline method="post" action=(format!("/consola/organizaciones/{}/suspender", org.id)) {
                            (csrf(token)) button.danger type="submit" { "Suspender organización" }
                        }
                    }
                }
                h2 { "Datos del formulario" }
                (org_form(token, state, &format!("/consola/organizaciones/{}", org.id), false))
            } @else {
                (record(&serde_json::to_value(&org.data).unwrap_or_default()))
            }
        },
    )
}

/// `POST /consola/organizaciones/{org}`: the regulator's change of the form's sections 1-4,
/// as `PATCH /v1/orgs/{org}`.
///
/// # Errors
/// To sign-in; the CSRF page; the 403 or 404 page.
pub async fn update_org(visit: Visit, org: &str) -> PageResult {
    let org = org_id(org)?;
    let (parts, fields) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let mut patch = fields.to_json(&["csrf"]);
    for list in ["phones", "contacts"] {
        // a list left empty is cleared, not left as it was
        if patch.get(list).is_none() {
            patch[list] = json!([]);
        }
    }
    let values = flatten(&patch);
    let result = off_worker_as(&parts.state, &session.principal, move |state, who| {
        Ok(state.accounts.update_org(who, org, &patch)?)
    })
    .await;
    match result {
        Ok(_) => Ok(redirect(&format!("/consola/organizaciones/{org}"))),
        Err(e) if shown_in_form(&e) => {
            let organisation = parts.state.accounts.get_org(&session.principal, org)?;
            let state = FormState::failed(values, &e);
            Ok(form_refused(
                &org_view(
                    &parts.chrome(),
                    &session.csrf,
                    &session.principal,
                    &organisation,
                    &state,
                    false,
                ),
                &e,
            ))
        }
        Err(e) => Err(PageError::Api(e)),
    }
}

/// `POST /consola/organizaciones/{org}/suspender|reactivar`.
///
/// # Errors
/// To sign-in; the CSRF page; the 403 or 404 page; a refusal as an error page.
pub async fn suspend_org(visit: Visit, org: &str, suspend: bool) -> PageResult {
    let org = org_id(org)?;
    let (parts, fields) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let reason = Some(fields.get("reason").trim().to_owned()).filter(|r| !r.is_empty());
    off_worker_as(&parts.state, &session.principal, move |state, who| {
        Ok(state
            .accounts
            .set_org_suspended(who, org, suspend, reason)?)
    })
    .await?;
    Ok(redirect(&format!("/consola/organizaciones/{org}")))
}

fn user_form(
    token: &str,
    state: &FormState,
    action: &str,
    kind: OrgKind,
    creating: bool,
) -> Markup {
    let mut inputs: Vec<String> = vec!["full_name".into(), "email".into()];
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
            fieldset {
                legend { "Roles" }
                @for role in kind.allowed_roles() {
                    div {
                        input type="checkbox" name="roles[]" value=(role.as_str()) id=(format!("r-{}", role.as_str()))
                            checked[checked.contains(&role.as_str())];
                        label for=(format!("r-{}", role.as_str())) { " " (role.as_str()) }
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
                    td { (user.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) }
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
        Err(e) if shown_in_form(&e) => {
            let state = FormState::failed(values, &e);
            let view = user_view(
                &parts.state,
                &parts.chrome(),
                &session.csrf,
                &session.principal,
                org,
                user,
                &state,
                Shown::Nothing,
            )?;
            Ok(form_refused(&view, &e))
        }
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
        Ok(shown) => {
            let view = user_view(
                &parts.state,
                &parts.chrome(),
                &session.csrf,
                &session.principal,
                org,
                user,
                &FormState::default(),
                shown,
            )?;
            page(&view)
        }
        Err(e) if shown_in_form(&e) && !matches!(e, ApiError::Denied { .. }) => {
            let state = FormState::failed(HashMap::new(), &e);
            let view = user_view(
                &parts.state,
                &parts.chrome(),
                &session.csrf,
                &session.principal,
                org,
                user,
                &state,
                Shown::Nothing,
            )?;
            Ok(form_refused(&view, &e))
        }
        Err(e) => Err(PageError::Api(e)),
    }
}

/// `GET /consola/auditoria`: the audit trail with the API's filters (`actor`, `org`,
/// `action`, `from`, `to`) and paging (`after`, `limit`).
///
/// # Errors
/// To sign-in; the 403 page; a bad filter as an error page naming it.
pub async fn audit(visit: Visit) -> PageResult {
    let who = visit.signed_in()?.principal.clone();
    let query = visit.request.uri().query().map(str::to_owned);
    let (filter, after, limit) = audit_query(query.as_deref())?;
    let (entries, next) = off_worker_as(&visit.state, &who, move |state, who| {
        Ok(state.accounts.audit(who, &filter, after, limit)?)
    })
    .await?;
    let mut state = FormState::default();
    for name in ["actor", "org", "action", "from", "to"] {
        state
            .values
            .insert(name.into(), visit.query(name).unwrap_or_default());
    }
    let keep: String = ["actor", "org", "action", "from", "to", "limit"]
        .iter()
        .filter_map(|n| {
            visit.query(n).filter(|v| !v.is_empty()).map(|v| {
                format!(
                    "{n}={}",
                    form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                )
            })
        })
        .collect::<Vec<_>>()
        .join("&");
    let body = html! {
        form.card method="get" action="/consola/auditoria" {
            div.grid2 {
                (field(&state, "actor", "Usuario (id)", Input::Text("text"), false))
                (field(&state, "org", "Organización (id)", Input::Text("text"), false))
                (field(&state, "action", "Acción (p. ej. negative.consult)", Input::Text("text"), false))
                (field(&state, "from", "Desde (fecha u hora RFC 3339)", Input::Text("text"), false))
                (field(&state, "to", "Hasta", Input::Text("text"), false))
            }
            button type="submit" { "Filtrar" }
        }
        div.scroll tabindex="0" role="region" aria-label="Tabla (deslice para ver más)" { table {
            caption { (entries.len()) " entradas" }
            thead { tr { th scope="col" { "#" } th scope="col" { "Cuándo" } th scope="col" { "Quién" } th scope="col" { "Acción" } th scope="col" { "Sobre" } th scope="col" { "Resultado" } th scope="col" { "Detalle" } } }
            tbody { @for e in &entries { tr {
                td { (e.seq) } td { (timefmt::rfc3339(e.at)) }
                td { (record(&serde_json::to_value(&e.actor).unwrap_or_default())) }
                td { code { (e.action.as_str()) } } td { (e.target) }
                td { (serde_json::to_value(e.outcome).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                td { (e.reason.as_deref().unwrap_or("")) " " (e.detail.as_deref().unwrap_or("")) }
            } } }
        } }
        @if let Some(next) = next {
            p { a href=(format!("/consola/auditoria?after={next}{}{keep}", if keep.is_empty() { "" } else { "&" })) { "Siguientes entradas →" } }
        }
    };
    page(&shell(&visit.chrome(), "Auditoría", body))
}

const SELLER_FIELDS: &[Spec] = &[
    ("id_number", "NIT o identificación", "text", true),
    ("name", "Nombre o razón social", "text", true),
    ("address", "Dirección", "text", true),
    ("municipality", "Municipio (código DIVIPOLA)", "text", true),
    (
        "authorisation_number",
        "Número de autorización",
        "text",
        true,
    ),
    ("valid_from", "Vigente desde", "date", true),
    ("valid_until", "Vigente hasta", "date", true),
];

/// `GET /consola/vendedores?q=`: the sellers search and the form to record one.
///
/// # Errors
/// To sign-in.
pub async fn sellers_page(visit: Visit) -> PageResult {
    let session = visit.signed_in()?.clone();
    let q = visit.query("q").unwrap_or_default();
    sellers_view(
        visit,
        &session.csrf,
        q,
        FormState::default(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn sellers_view(
    visit_or_parts: impl Into<ViewParts>,
    token: &str,
    q: String,
    state: FormState,
    done: Option<&str>,
    status: StatusCode,
) -> PageResult {
    let parts: ViewParts = visit_or_parts.into();
    let query = q.clone();
    // a scan of the sellers in the store: off the workers, and no more of them at once than
    // the public search runs
    let _scan = std::sync::Arc::clone(&parts.app.public_scans)
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy {
            detail: "as many seller searches as the server runs at once are running",
        })?;
    let found = crate::api::off_worker(&parts.app, move |state| {
        let sellers = state.registry.search_sellers(&query)?;
        Ok(sellers
            .into_iter()
            .map(|s| {
                let by = state.accounts.org_name(s.authorised_by);
                (s, by)
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let mut search = FormState::default();
    search.values.insert("q".into(), q);
    let inputs: Vec<String> = SELLER_FIELDS.iter().map(|s| s.0.to_owned()).collect();
    let chrome = Chrome {
        session: parts.session.as_ref(),
    };
    let body = html! {
        @if let Some(done) = done { p.notice role="status" { (done) } }
        form.card method="get" action="/consola/vendedores" role="search" {
            (field(&search, "q", "Buscar", Input::Text("search"), false))
            button type="submit" { "Buscar" }
        }
        (seller_table(&found))
        h2 { "Registrar o actualizar un vendedor autorizado" }
        (form_errors(&state, &inputs))
        form.card method="post" action="/consola/vendedores" novalidate {
            (csrf(token))
            div.grid2 { @for (name, label, kind, required) in SELLER_FIELDS { (field(&state, name, label, Input::Text(kind), *required)) } }
            button type="submit" { "Registrar vendedor" }
        }
    };
    Ok(html(
        status,
        &shell(&chrome, "Vendedores autorizados", body),
    ))
}

/// What [`sellers_view`] needs of a visit.
struct ViewParts {
    app: crate::api::AppState,
    session: Option<crate::accounts::logins::SignedIn>,
}

impl From<Visit> for ViewParts {
    fn from(v: Visit) -> ViewParts {
        ViewParts {
            app: v.state,
            session: v.session,
        }
    }
}

impl From<super::VisitParts> for ViewParts {
    fn from(v: super::VisitParts) -> ViewParts {
        ViewParts {
            app: v.state,
            session: v.session,
        }
    }
}

/// `POST /consola/vendedores`: as `POST /v1/sellers`.
///
/// # Errors
/// To sign-in; the CSRF page; the 403 page.
pub async fn record_seller(visit: Visit) -> PageResult {
    let (parts, fields) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let (values, result) = submit(
        &parts,
        fields.to_json(&["csrf"]),
        |state, who, form: SellerForm| Ok(state.registry.record_seller(who, form)?),
    )
    .await?;
    match result {
        Ok(_) => {
            sellers_view(
                parts,
                &session.csrf,
                String::new(),
                FormState::default(),
                Some("Vendedor registrado."),
                StatusCode::OK,
            )
            .await
        }
        Err(e) if shown_in_form(&e) => {
            let state = FormState::failed(values, &e);
            let mut response = sellers_view(
                parts,
                &session.csrf,
                String::new(),
                state,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await?;
            if crate::api::spends_the_budget(&e) {
                response.extensions_mut().insert(super::SpendsBudget);
            }
            Ok(response)
        }
        Err(e) => Err(PageError::Api(e)),
    }
}
