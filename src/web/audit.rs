//! The audit trail's page: the API's filters and paging (`GET /v1/audit`), as a form.

use maud::html;

use super::layout::{FormState, Input, field, record, shell};
use super::{PageResult, Visit, page};
use crate::api::admin::audit_query;
use crate::api::off_worker_as;
use crate::timefmt;

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
    for name in ["actor", "issued_by", "org", "action", "from", "to"] {
        state
            .values
            .insert(name.into(), visit.query(name).unwrap_or_default());
    }
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
    let body = html! {
        form.card method="get" action="/consola/auditoria" {
            div.grid2 {
                (field(&state, "actor", "Usuario (id)", Input::Text("text"), false))
                (field(&state, "issued_by", "Credencial emitida por (id de usuario)", Input::Text("text"), false))
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
