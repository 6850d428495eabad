//! The public pages, for anyone: "¿Es robado este celular?" (whether an IMEI is reported
//! stolen or lost, and whether it is registered: what `GET /v1/public/imeis/{imei}` tells,
//! art. 2.2.11.6) and the authorised sellers search (art. 2.2.11.3 par.), each check and
//! search counted against the client's public limit; the stylesheet and the upload script.

use std::sync::Arc;

use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use maud::{Markup, html};

use super::layout::{FormState, Input, field, shell};
use super::{PageError, PageResult, Visit, html, page};
use crate::api::{ApiError, HttpResponse, admit_public, off_worker};
use crate::imei::Imei;
use crate::registry::sellers::Seller;

const STYLESHEET: &str = include_str!("estilo.css");
const SCRIPT: &str = include_str!("carga.js");

/// `GET /`: the form, and with `?imei=`, the answer in words.
///
/// # Errors
/// The 429 page past the client's public limit.
pub async fn home(visit: Visit) -> PageResult {
    let typed = visit.query("imei").map(|s| s.trim().to_owned());
    let mut state = FormState::default();
    let mut answer = None;
    if let Some(typed) = typed.filter(|t| !t.is_empty()) {
        admit_public(&visit.state, visit.peer)?;
        state.values.insert("imei".into(), typed.clone());
        match Imei::parse(&typed) {
            Ok(imei) => answer = Some((imei, visit.state.registry.listing(imei))),
            Err(e) => state.errors.push((
                "imei".into(),
                format!(
                    "No es un IMEI válido ({}). Escriba los 15 dígitos que muestra el celular al marcar *#06#.",
                    super::es::reason(&e.to_string())
                ),
            )),
        }
    }
    let status = if state.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let body = html! {
        p.lead {
            "Antes de comprar un celular usado, consulte su IMEI: sabrá si fue reportado como hurtado o extraviado y si está registrado en Colombia."
        }
        form.card method="get" action="/" role="search" {
            (field(&state, "imei", "IMEI del celular", Input::Text("text"), true))
            p.hint { "Marque " strong { "*#06#" } " en el celular para ver su IMEI (15 dígitos). También está en la caja y en la bandeja de la SIM." }
            button type="submit" { "Consultar" }
        }
        @if let Some((imei, listing)) = answer {
            (verdict(imei, listing.negative, listing.positive))
        }
        p { a href="/vendedores" { "¿Quién puede vender celulares? Busque un vendedor autorizado." } }
    };
    Ok(html(
        status,
        &shell(&visit.chrome(), "¿Es robado este celular?", body),
    ))
}

/// The answer, in words, with what it means for a buyer.
fn verdict(imei: Imei, negative: bool, positive: bool) -> Markup {
    let (class, title, meaning) = if negative {
        (
            "verdict bad",
            "Reportado como hurtado o extraviado",
            "Este celular está en la lista negativa: fue reportado como hurtado o extraviado. No lo compre. Las redes móviles de Colombia le niegan el servicio.",
        )
    } else if positive {
        (
            "verdict good",
            "Registrado",
            "Este celular está en la lista positiva: entró legalmente al país y no tiene reporte de hurto ni extravío. Pida al vendedor la factura o el documento de compra.",
        )
    } else {
        (
            "verdict unknown",
            "No registrado",
            "Este IMEI no está en ninguna lista. No tiene reporte de hurto, pero tampoco consta que haya entrado legalmente: para usarlo en una red móvil hay que probar su adquisición legal ante el operador. Exija al vendedor la factura o la declaración de importación.",
        )
    };
    html! {
        section class=(class) aria-live="polite" {
            h2 { (title) }
            p.imei { "IMEI " (imei.to_string()) }
            p { (meaning) }
        }
    }
}

/// `GET /vendedores?q=`: the authorised sellers valid today.
///
/// # Errors
/// The 429 page past the client's public limit; the busy page when as many searches run.
pub async fn sellers(visit: Visit) -> PageResult {
    let q = visit
        .query("q")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mut found: Option<Vec<(Seller, Option<String>)>> = None;
    if !q.is_empty() {
        admit_public(&visit.state, visit.peer)?;
        let _scan = Arc::clone(&visit.state.public_scans)
            .try_acquire_owned()
            .map_err(|_| ApiError::Busy {
                detail: "as many public searches as the server runs at once are running",
            })?;
        let query = q.clone();
        found = Some(
            off_worker(&visit.state, move |state| {
                let sellers = state.registry.search_sellers(&query)?;
                Ok(sellers
                    .into_iter()
                    .map(|s| {
                        let name = state.accounts.org_name(s.authorised_by);
                        (s, name)
                    })
                    .collect())
            })
            .await
            .map_err(PageError::Api)?,
        );
    }
    let mut state = FormState::default();
    state.values.insert("q".into(), q);
    let body = html! {
        p.lead { "Solo las personas y empresas autorizadas pueden vender celulares en Colombia. Busque por nombre, número de identificación o municipio." }
        form.card method="get" action="/vendedores" role="search" {
            (field(&state, "q", "Nombre, NIT o municipio", Input::Text("search"), true))
            button type="submit" { "Buscar" }
        }
        @if let Some(found) = &found {
            @if found.is_empty() {
                p.notice { "Ningún vendedor autorizado vigente coincide con la búsqueda." }
            } @else {
                (seller_table(found))
            }
        }
    };
    page(&shell(&visit.chrome(), "Vendedores autorizados", body))
}

/// Sellers as a table, each with who authorised it.
pub fn seller_table(found: &[(Seller, Option<String>)]) -> Markup {
    html! {
        div.scroll tabindex="0" role="region" aria-label="Tabla (deslice para ver más)" {
            table {
                caption { (found.len()) " vendedores" }
                thead { tr {
                    th scope="col" { "Nombre" } th scope="col" { "Identificación" }
                    th scope="col" { "Dirección" } th scope="col" { "Municipio" }
                    th scope="col" { "Autorización" } th scope="col" { "Vigencia" }
                    th scope="col" { "Autorizado por" }
                } }
                tbody {
                    @for (seller, by) in found {
                        tr {
                            td { (seller.form.name) } td { (seller.form.id_number) }
                            td { (seller.form.address) } td { (seller.form.municipality) }
                            td { (seller.form.authorisation_number) }
                            td { (seller.form.valid_from) " a " (seller.form.valid_until) }
                            td { (by.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /estilo.css`.
pub fn stylesheet() -> HttpResponse {
    asset(STYLESHEET, "text/css; charset=utf-8")
}

/// `GET /carga.js`: the upload page's progress bar.
pub fn script() -> HttpResponse {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

fn asset(text: &'static str, content_type: &'static str) -> HttpResponse {
    let mut response = html(StatusCode::OK, &maud::PreEscaped(String::new()));
    *response.body_mut() = crate::api::full(text);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}
