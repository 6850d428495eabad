//! The audit trail's page: the API's filters and paging (`GET /v1/audit`), as a form.

use std::collections::HashMap;

use hyper::StatusCode;
use maud::html;

use super::es;
use super::layout::{FormState, Input, field, form_errors, record, shell};
use super::{PageResult, Visit, html, page};
use crate::api::ApiError;
use crate::api::admin::audit_query;
use crate::api::off_worker_as;
use crate::audit::Action;
use crate::timefmt;

/// `GET /consola/auditoria`: the audit trail with the API's filters (`actor`, `org`,
/// `action`, `from`, `to`) and paging (`after`, `limit`).
///
/// # Errors
/// To sign-in; the 403 page. A bad filter is shown next to its field (400).
pub async fn audit(visit: Visit) -> PageResult {
    let who = visit.signed_in()?.principal.clone();
    // the form sends its empty fields too: a filter left empty is no filter
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            form_urlencoded::parse(visit.request.uri().query().unwrap_or("").as_bytes())
                .filter(|(_, value)| !value.trim().is_empty()),
        )
        .finish();
    let values: HashMap<String, String> = ["actor", "issued_by", "org", "action", "from", "to"]
        .iter()
        .map(|name| ((*name).to_owned(), visit.query(name).unwrap_or_default()))
        .collect();
    // a wrong filter is shown next to its field, the trail not read (as the API answers 400)
    let (state, found) = match audit_query(Some(&query)) {
        Ok((filter, after, limit)) => {
            let found = off_worker_as(&visit.state, &who, move |state, who| {
                Ok(state.accounts.audit(who, &filter, after, limit)?)
            })
            .await?;
            let state = FormState {
                values,
                ..FormState::default()
            };
            (state, Some(found))
        }
        Err(e @ ApiError::InvalidParams { .. }) => (FormState::failed(values, &e), None),
        Err(e) => return Err(e.into()),
    };
    let keep: String = ["actor", "issued_by", "org", "action", "from", "to", "limit"]
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
    let actions: Vec<(&str, &str)> = (Action::ALL.iter())
        .map(|a| (a.as_str(), es::action(*a)))
        .collect();
    let inputs: Vec<String> = ["actor", "issued_by", "org", "action", "from", "to"]
        .map(String::from)
        .to_vec();
    let body = html! {
        (form_errors(&state, &inputs))
        form.card method="get" action="/consola/auditoria" novalidate {
            div.grid2 {
                (field(&state, "actor", "Usuario (id)", Input::Text("text"), false))
                (field(&state, "issued_by", "Credencial emitida por (id de usuario)", Input::Text("text"), false))
                (field(&state, "org", "Organización (id)", Input::Text("text"), false))
                (field(&state, "action", "Acción", Input::Select(&actions), false))
                (field(&state, "from", "Desde (fecha u hora RFC 3339)", Input::Text("text"), false))
                (field(&state, "to", "Hasta", Input::Text("text"), false))
            }
            button type="submit" { "Filtrar" }
        }
        @if let Some((entries, next)) = &found {
        div.scroll tabindex="0" role="region" aria-label="Tabla (deslice para ver más)" { table {
            caption { (entries.len()) " entradas" }
            thead { tr { th scope="col" { "#" } th scope="col" { "Cuándo" } th scope="col" { "Quién" } th scope="col" { "Acción" } th scope="col" { "Sobre" } th scope="col" { "Resultado" } th scope="col" { "Detalle" } } }
            tbody { @for e in entries.iter() { tr {
                td { (e.seq) } td { (timefmt::rfc3339(e.at)) }
                td { (record(&serde_json::to_value(&e.actor).unwrap_or_default())) }
                td { (es::action(e.action)) br; code { (e.action.as_str()) } } td { (e.target) }
                td { (es::outcome(e.outcome)) }
                td { (e.reason.as_deref().unwrap_or("")) " " (e.detail.as_deref().unwrap_or("")) }
            } } }
        } }
        @if let Some(next) = next {
            p { a href=(format!("/consola/auditoria?after={next}{}{keep}", if keep.is_empty() { "" } else { "&" })) { "Siguientes entradas →" } }
        }
        }
    };
    let markup = shell(&visit.chrome(), "Auditoría", body);
    if found.is_some() {
        page(&markup)
    } else {
        Ok(html(StatusCode::BAD_REQUEST, &markup))
    }
}
