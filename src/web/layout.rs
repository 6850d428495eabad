//! What every page shares: the page shell (header, menu by the caller's permissions, footer),
//! form inputs with their error next to them, the error pages, and a record shown as the
//! API shows it (a JSON value rendered as a definition list or a table).

use std::collections::HashMap;

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::es;
use crate::accounts::logins::SignedIn;
use crate::accounts::{Principal, Token};
use crate::api::ApiError;
use crate::roles::Permission;
use crate::timefmt;

/// Who the page is for: the header shows the signed-in person and its menu.
pub struct Chrome<'s> {
    /// The session, if any.
    pub session: Option<&'s SignedIn>,
}

/// The console's menu: a page, and the permission that makes it useful. The menu only
/// guides; the domain decides on each page.
const MENU: &[(&str, &str, Permission)] = &[
    (
        "/consola/imei",
        "Consultar IMEI",
        Permission::ConsultNegative,
    ),
    (
        "/consola/reportes",
        "Reportar hurto o extravío",
        Permission::Report,
    ),
    (
        "/consola/activaciones",
        "Activar equipo",
        Permission::Activate,
    ),
    ("/consola/cargas", "Cargar registros", Permission::Register),
    (
        "/consola/organizaciones",
        "Organizaciones",
        Permission::ReadOrgs,
    ),
    ("/consola/auditoria", "Auditoría", Permission::ReadAudit),
    (
        "/consola/vendedores",
        "Vendedores autorizados",
        Permission::ManageSellers,
    ),
];

/// A whole page: `title`, then `body` in the shell.
pub fn shell(chrome: &Chrome<'_>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="es" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Registro de IMEI" }
                link rel="stylesheet" href="/estilo.css";
            }
            body {
                a.skip href="#contenido" { "Saltar al contenido" }
                header.top {
                    a.brand href="/" { "Registro de IMEI" }
                    nav aria-label="Sesión" {
                        @if let Some(session) = chrome.session {
                            span.who { (session.full_name) " · " (session.org_name) }
                            a href="/consola" { "Consola" }
                            form.inline method="post" action="/salir" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button.link type="submit" { "Salir" }
                            }
                        } @else {
                            a href="/vendedores" { "Vendedores autorizados" }
                            a href="/entrar" { "Entrar" }
                        }
                    }
                }
                @if let Some(session) = chrome.session {
                    nav.menu aria-label="Consola" {
                        ul {
                            @for (href, label, permission) in MENU {
                                @if session.principal.may(*permission) {
                                    li { a href=(href) { (label) } }
                                }
                            }
                            li { a href="/consola/cuenta" { "Mi cuenta" } }
                            @if session.principal.may(Permission::AdministerUsers) {
                                li {
                                    a href=(format!("/consola/organizaciones/{}/usuarios", session.principal.org)) {
                                        "Usuarios de mi organización"
                                    }
                                }
                            }
                        }
                    }
                }
                main #contenido {
                    h1 { (title) }
                    (body)
                }
                footer {
                    p { "Registro nacional de IMEI · Decreto 1078 de 2015, Título 11" }
                }
            }
        }
    }
}

/// An error page.
pub fn error_page(chrome: &Chrome<'_>, title: &str, text: &str) -> Markup {
    shell(
        chrome,
        title,
        html! {
            p.error role="alert" { (text) }
            p { a href="/" { "Volver al inicio" } }
        },
    )
}

/// What an error means for the person who met it, in words.
pub fn explain(error: &ApiError) -> (&'static str, String) {
    match error {
        ApiError::Forbidden | ApiError::Denied { .. } => (
            "No tiene permiso",
            match error {
                ApiError::Denied { detail } => {
                    format!("Sus roles no le permiten esta acción: {}.", es::reason(detail))
                }
                _ => "Sus roles no le permiten ver esta página ni hacer esta acción. Si la necesita, pida a su administrador que le asigne el rol."
                    .into(),
            },
        ),
        ApiError::Suspended { what } => (
            "Cuenta suspendida",
            format!(
                "El regulador suspendió {}: ninguna acción es posible hasta que la reactive.",
                if *what == "user" { "su usuario" } else { "su organización" }
            ),
        ),
        ApiError::Unauthenticated => (
            "Sesión terminada",
            "Su sesión terminó. Entre de nuevo.".into(),
        ),
        ApiError::TooManyRequests { retry_after } => (
            "Demasiadas consultas",
            format!(
                "Ha hecho muchas consultas en poco tiempo. Espere {retry_after} segundos y vuelva a intentarlo."
            ),
        ),
        ApiError::TooManyRefusals { retry_after } => (
            "Demasiadas solicitudes rechazadas",
            format!("Espere {retry_after} segundos y vuelva a intentarlo."),
        ),
        ApiError::Busy { .. } | ApiError::TooManyUploads { .. } => (
            "Servidor ocupado",
            "El servidor está atendiendo muchas solicitudes como esta. Intente de nuevo en unos segundos."
                .into(),
        ),
        ApiError::ReadOnlyReplica { central } => (
            "Réplica de consulta",
            format!(
                "Este servidor es una réplica del registro: solo responde la consulta pública de un IMEI. Para entrar, reportar, cargar o administrar use el registro central: {central}"
            ),
        ),
        ApiError::NotFound | ApiError::ResourceNotFound { .. } => (
            "No encontrado",
            "Esta página o este registro no existe.".into(),
        ),
        ApiError::MethodNotAllowed { .. } => (
            "Método no permitido",
            "Esta página no acepta esa clase de solicitud.".into(),
        ),
        ApiError::PayloadTooLarge { .. } => (
            "Formulario demasiado grande",
            "El formulario enviado es más grande de lo que el servidor acepta.".into(),
        ),
        ApiError::Internal | ApiError::NotReady => (
            "Error del servidor",
            "El servidor no pudo atender la solicitud. Intente más tarde; si persiste, avise al administrador."
                .into(),
        ),
        other => ("Solicitud no válida", detail_of(other)),
    }
}

/// The detail an error carries (the domain's words, in Spanish where the catalogue knows
/// them: `es.rs`), or its title.
pub fn detail_of(error: &ApiError) -> String {
    match error {
        ApiError::Refused { cause, .. } => es::refusal(*cause).to_owned(),
        ApiError::Conflict { detail } | ApiError::Denied { detail } => {
            es::reason(detail).into_owned()
        }
        ApiError::MalformedBody { detail } | ApiError::PayloadTooLarge { detail } => {
            es::reason(detail).into_owned()
        }
        ApiError::InvalidParams { params, .. } | ApiError::Unprocessable { params } => params
            .iter()
            .map(|(p, r)| format!("{p}: {}", es::reason(r)))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.status_and_cause().2.to_owned(),
    }
}

/// A form's current values and its errors by input name.
#[derive(Default)]
pub struct FormState {
    /// Values by input name.
    pub values: HashMap<String, String>,
    /// Errors by input name.
    pub errors: Vec<(String, String)>,
    /// An error for the whole form (a conflict, a refusal), shown above it.
    pub general: Option<String>,
}

impl FormState {
    /// The state after `error`: field errors by name, anything else above the form.
    pub fn failed(values: HashMap<String, String>, error: &ApiError) -> FormState {
        match error {
            ApiError::Unprocessable { params } | ApiError::InvalidParams { params, .. } => {
                FormState {
                    values,
                    errors: (params.iter())
                        .map(|(field, reason)| (field.clone(), es::reason(reason).into_owned()))
                        .collect(),
                    general: None,
                }
            }
            other => FormState {
                values,
                errors: Vec::new(),
                general: Some(explain(other).1),
            },
        }
    }

    /// The value of input `name`.
    pub fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// The error of input `name`; the first input of a list (`phones[0]`) also shows the
    /// list's own error (`phones`: "give at least one").
    pub fn error(&self, name: &str) -> Option<&str> {
        let list = name.strip_suffix("[0]");
        (self.errors.iter())
            .find(|(field, _)| field == name)
            .or_else(|| {
                (self.errors.iter()).find(|(field, _)| list.is_some_and(|list| field == list))
            })
            .map(|(_, reason)| reason.as_str())
    }

    /// The errors of a group of choices named `list` (its own, and its items' `list[i]`), shown
    /// in the group's fieldset.
    pub fn group_errors(&self, list: &str) -> Vec<&str> {
        (self.errors.iter())
            .filter(|(field, _)| in_group(field, list))
            .map(|(_, reason)| reason.as_str())
            .collect()
    }

    /// Errors that name no input of the form (`inputs`, where a list `phones` is placed by
    /// its first input `phones[0]`, and a group of choices `roles` by the name its inputs
    /// share, `roles[]`), shown above it.
    pub fn unplaced(&self, inputs: &[String]) -> Vec<(String, String)> {
        (self.errors.iter())
            .filter(|(field, _)| {
                !inputs.iter().any(|i| {
                    i == field
                        || *i == format!("{field}[0]")
                        || i.strip_suffix("[]")
                            .is_some_and(|group| in_group(field, group))
                })
            })
            .cloned()
            .collect()
    }
}

/// Whether `field` is group `list` or one of its items (`roles`, `roles[1]`).
fn in_group(field: &str, list: &str) -> bool {
    field.strip_prefix(list).is_some_and(|rest| {
        rest.is_empty()
            || (rest.starts_with('[')
                && rest.ends_with(']')
                && !rest[1..rest.len() - 1].contains(['[', ']']))
    })
}

/// A group's errors (see [`FormState::group_errors`]), for its fieldset, with the id its
/// inputs point at.
pub fn group_errors(state: &FormState, list: &str) -> Markup {
    let errors = state.group_errors(list);
    html! {
        @if !errors.is_empty() {
            div id=(format!("f-{list}-error")) role="alert" {
                @for error in &errors { p.field-error { (error) } }
            }
        }
    }
}

/// What kind of input a field is.
#[derive(Clone, Copy)]
pub enum Input<'a> {
    /// One line of text, with an HTML input type (`text`, `email`, `tel`, `date`...).
    Text(&'a str),
    /// A choice among `(value, label)`.
    Select(&'a [(&'a str, &'a str)]),
    /// Several lines.
    Area,
}

/// A labelled input named `name`, with its value and, if any, its error right after it (and
/// tied to it for screen readers).
pub fn field(
    state: &FormState,
    name: &str,
    label: &str,
    input: Input<'_>,
    required: bool,
) -> Markup {
    let id = format!("f-{}", name.replace(['.', '[', ']'], "-"));
    let error = state.error(name);
    let error_id = format!("{id}-error");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) @if required { span.req aria-hidden="true" { " *" } } }
            @match input {
                Input::Text(kind) => {
                    input id=(id) name=(name) type=(kind) value=(state.value(name))
                        required[required]
                        aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[error.map(|_| error_id.as_str())];
                }
                Input::Select(options) => {
                    select id=(id) name=(name) required[required]
                        aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[error.map(|_| error_id.as_str())] {
                        option value="" { "Elija…" }
                        @for (value, text) in options {
                            option value=(value) selected[state.value(name) == *value] { (text) }
                        }
                    }
                }
                Input::Area => {
                    textarea id=(id) name=(name) rows="3" required[required]
                        aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[error.map(|_| error_id.as_str())] { (state.value(name)) }
                }
            }
            @if let Some(error) = error {
                p.field-error id=(error_id) { (error) }
            }
        }
    }
}

/// The errors a form shows above its fields: the general one, and those naming no input.
pub fn form_errors(state: &FormState, inputs: &[String]) -> Markup {
    let unplaced = state.unplaced(inputs);
    html! {
        @if state.general.is_some() || !unplaced.is_empty() || !state.errors.is_empty() {
            div.error role="alert" {
                p { "El formulario tiene errores; corríjalos y envíelo de nuevo." }
                @if let Some(general) = &state.general { p { (general) } }
                @if !unplaced.is_empty() {
                    ul { @for (field, reason) in &unplaced { li { code { (field) } ": " (reason) } } }
                }
            }
        }
    }
}

/// An account's live API tokens, each with who issued it (`holder` is the account, named
/// `holder_name`: "usted" on its own page) and a button posting its id (field `token`) to
/// `revoke`.
pub fn token_table(
    tokens: &[Token],
    (holder, holder_name): (u64, &str),
    csrf_token: &str,
    revoke: &str,
) -> Markup {
    html! {
        @if tokens.is_empty() { p { "Sin tokens vigentes." } } @else {
            div.scroll tabindex="0" role="region" aria-label="Tabla (deslice para ver más)" { table {
                thead { tr {
                    th scope="col" { "Nombre" } th scope="col" { "Id" } th scope="col" { "Emitido por" }
                    th scope="col" { "Creado" } th scope="col" { "Último uso" } th scope="col" { "" }
                } }
                tbody { @for t in tokens { tr {
                    td { (t.name) } td { code { (t.id) } }
                    td { @match t.issued_by {
                        Some(by) if by == holder => (holder_name),
                        Some(by) => { "administrador (usuario " (by) ")" },
                        None => "consola del servidor",
                    } }
                    td { (timefmt::rfc3339(t.created_at)) }
                    td { (t.last_used_at.map(timefmt::rfc3339).unwrap_or_else(|| "—".into())) }
                    td { form.inline method="post" action=(revoke) {
                        (csrf(csrf_token)) input type="hidden" name="token" value=(t.id);
                        button.danger type="submit" aria-label=(format!("Revocar {}", t.name)) { "Revocar" }
                    } }
                } } }
            } }
        }
    }
}

/// Whether `principal` has any task of the console's menu (beside its own account).
pub fn has_tasks(principal: &Principal) -> bool {
    MENU.iter()
        .any(|(_, _, permission)| principal.may(*permission))
        || principal.may(Permission::AdministerUsers)
}

/// The hidden CSRF input of a form.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A record as the API shows it: an object as a definition list, a list of objects as a
/// table, scalars as text.
pub fn record(value: &Value) -> Markup {
    match value {
        Value::Object(map) => html! {
            dl.record {
                @for (key, value) in map {
                    dt { (label_of(key)) }
                    dd { (record(value)) }
                }
            }
        },
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            let mut columns: Vec<&str> = Vec::new();
            for item in items {
                for key in item.as_object().into_iter().flat_map(|m| m.keys()) {
                    if !columns.contains(&key.as_str()) {
                        columns.push(key);
                    }
                }
            }
            html! {
                div.scroll tabindex="0" role="region" aria-label="Tabla (deslice para ver más)" {
                    table {
                        thead { tr { @for c in &columns { th scope="col" { (label_of(c)) } } } }
                        tbody {
                            @for item in items {
                                tr { @for c in &columns { td { (record(item.get(*c).unwrap_or(&Value::Null))) } } }
                            }
                        }
                    }
                }
            }
        }
        Value::Array(items) => html! {
            @for (i, item) in items.iter().enumerate() {
                @if i > 0 { ", " }
                (record(item))
            }
        },
        Value::String(s) => html! { (s) },
        Value::Null => html! { "—" },
        Value::Bool(true) => html! { "sí" },
        Value::Bool(false) => html! { "no" },
        Value::Number(n) => html! { (n.to_string()) },
    }
}

/// A field name as a heading: `reported_by` → `reported by`, `occurredAt` → `occurred at`.
fn label_of(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c == '_' {
            out.push(' ');
        } else if c.is_ascii_uppercase() {
            out.push(' ');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(errors: &[(&str, &str)]) -> FormState {
        FormState {
            values: HashMap::new(),
            errors: (errors.iter())
                .map(|(f, r)| ((*f).to_owned(), (*r).to_owned()))
                .collect(),
            general: None,
        }
    }

    #[test]
    fn a_list_or_group_error_is_shown_where_its_inputs_are_not_above_the_form() {
        let state = failed(&[
            ("phones", "give at least one phone number"),
            (
                "roles[1]",
                "auditor is not a role of this organisation's kind",
            ),
            ("roles", "give at least one role"),
            ("rolesx", "not a field"),
            ("nit", "bad check digit"),
        ]);
        // the list's error by its first input only
        assert_eq!(
            state.error("phones[0]"),
            Some("give at least one phone number")
        );
        assert_eq!(state.error("phones[1]"), None);
        assert_eq!(state.error("nit"), Some("bad check digit"));
        // a group's, its items' too
        assert_eq!(
            state.group_errors("roles"),
            [
                "auditor is not a role of this organisation's kind",
                "give at least one role"
            ]
        );
        let inputs: Vec<String> = ["phones[0]", "roles[]", "nit"].map(String::from).to_vec();
        let above: Vec<String> = (state.unplaced(&inputs).into_iter())
            .map(|(f, _)| f)
            .collect();
        assert_eq!(above, ["rolesx"]);
        // a plain input places no group: `nit[x]` (an unknown parameter) stays above
        let odd = failed(&[("nit[x]", "unknown parameter")]);
        assert_eq!(odd.unplaced(&inputs).len(), 1);
        // without the inputs on the form, everything is above it
        assert_eq!(state.unplaced(&[]).len(), 5);
        let html = group_errors(&state, "roles").into_string();
        assert_eq!(html.matches("id=\"f-roles-error\"").count(), 1, "{html}");
    }
}
