//! The regulator's organisation pages: the list and search, the user form's every section
//! (`formulario-usuarios-ser.txt`) to create and change one, and its suspension. Which
//! organisations a person may see and change is the domain's answer.

use maud::{Markup, html};
use serde_json::{Value, json};

use super::form::flatten;
use super::layout::{Chrome, FormState, Input, csrf, field, form_errors, record, shell};
use super::{PageError, PageResult, Visit, form_refused, page, redirect, shown_in_form, submit};
use crate::accounts::forms::OrgForm;
use crate::accounts::{Organisation, Principal, User};
use crate::api::off_worker_as;
use crate::api::routes::id;
use crate::roles::{OrgKind, Role};
use crate::timefmt;

/// One input of a form: name, label, type (`kind` for the organisation kind), required.
pub(super) type Spec = (&'static str, &'static str, &'static str, bool);

/// The regulator's user form (`formulario-usuarios-ser.txt`), section by section; the
/// names are the domain's field paths.
const ORG_SECTIONS: &[(&str, &[Spec])] = &[
    (
        "Solicitud",
        &[(
            "request_date",
            "Fecha de la solicitud (la del formulario recibido)",
            "date",
            false,
        )],
    ),
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
            // the form asks one e-mail of the administrator (the one it signs in with)
            ("administrator.email", "Correo electrónico", "email", true),
        ],
    ),
];

fn kinds() -> Vec<(&'static str, &'static str)> {
    OrgKind::ALL
        .iter()
        .map(|k| (k.as_str(), super::es::kind(*k)))
        .collect()
}

/// The organisation form; `creating` shows the kind and the administrator (section 5),
/// which an edit does not change (the edit page lists the administrators beside it).
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
                || super::es::kind(o.kind).to_lowercase() == needle
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
                td { (org.data.nit) } td { (super::es::kind(org.kind)) }
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

pub(super) fn org_id(text: &str) -> Result<u64, PageError> {
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
    let admins = administrators(&visit.state, &session.principal, org)?;
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
        (&organisation, &admins),
        &state,
        created,
    ))
}

/// The organisation's active administrators (section 5 of its form), for the regulator's
/// edit page; none for a person who does not administer organisations.
fn administrators(
    state: &crate::api::AppState,
    who: &Principal,
    org: u64,
) -> Result<Vec<User>, PageError> {
    if !who.may(crate::roles::Permission::AdministerOrgs) {
        return Ok(Vec::new());
    }
    let mut users = state.accounts.list_users(who, org)?;
    users.retain(|u| u.active && u.roles.contains(&Role::OrgAdmin));
    Ok(users)
}

/// Section 5 on the edit page: the administrator is an account, changed on its own page; a
/// new form naming another administrator is a new account made on the users page.
fn administrators_section(org: &Organisation, admins: &[User]) -> Markup {
    html! {
        section.card aria-labelledby="seccion-5" {
            h2 #seccion-5 { "5. Administrador de la organización" }
            @if admins.is_empty() {
                p { "La organización no tiene ningún administrador activo." }
            } @else {
                ul { @for user in admins { li {
                    a href=(format!("/consola/organizaciones/{}/usuarios/{}", org.id, user.id)) { (user.full_name) }
                    " · identificación " (user.id_number) " · " (user.email)
                    @if user.suspended { " · suspendido" }
                } } }
            }
            p { "El administrador es una cuenta de usuario: sus datos se cambian en su página. Si una nueva solicitud nombra a otro administrador, créelo con el rol de administrador en "
                a href=(format!("/consola/organizaciones/{}/usuarios", org.id)) { "la página de usuarios" } "." }
        }
    }
}

fn org_view(
    chrome: &Chrome<'_>,
    token: &str,
    who: &Principal,
    (org, admins): (&Organisation, &[User]),
    state: &FormState,
    created: bool,
) -> Markup {
    let regulator = who.may(crate::roles::Permission::AdministerOrgs);
    shell(
        chrome,
        &org.data.legal_name,
        html! {
            @if created { p.notice role="status" { "Organización creada con su administrador. Dé al administrador un código para crear su contraseña desde la página de usuarios." } }
            p { "Tipo: " strong { (super::es::kind(org.kind)) } " · Estado: " strong { @if org.suspended { "suspendida" } @else { "activa" } }
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
                (administrators_section(org, admins))
            } @else {
                (record(&serde_json::to_value(&org.data).unwrap_or_default()))
            }
        },
    )
}

/// `POST /consola/organizaciones/{org}`: the regulator's change of the form's date and sections 1-4,
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
            let admins = administrators(&parts.state, &session.principal, org)?;
            let state = FormState::failed(values, &e);
            Ok(form_refused(
                &org_view(
                    &parts.chrome(),
                    &session.csrf,
                    &session.principal,
                    (&organisation, &admins),
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
