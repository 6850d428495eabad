//! The work desks of signed-in people: the console's home, the authority's consultation of
//! one IMEI (its negative-list record, audited as over the API, and its history), the theft
//! or loss report, the activation with proof of legal acquisition, and the registration
//! upload with its progress bar. Each calls the domain function the API calls, as the
//! session's user.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::StatusCode;
use maud::{Markup, html};
use serde_json::Value;

use super::SignedIn;
use super::layout::{FormState, Input, csrf, field, form_errors, has_tasks, record, shell};
use super::{
    PageError, PageResult, Visit, form_refused, html, page, same_secret, shown_in_form, submit,
};
use crate::api::routes::Call;
use crate::api::{off_worker_as, reports as api_reports, uploads};
use crate::imei::Imei;
use crate::registry::owners::{Activated, ActivationForm, ID_TYPES};
use crate::registry::reports::{self, ReportForm, Reported};

/// `GET /consola`: what the person's roles let it do.
///
/// # Errors
/// To sign-in without a session.
pub fn home(visit: Visit) -> PageResult {
    let session = visit.signed_in()?;
    let roles = super::es::roles(&session.principal.roles);
    let body = html! {
        p { "Bienvenido, " (session.full_name) ". Sus roles: " (roles) "." }
        p { "Elija una tarea en el menú. Cada acción queda en el registro de auditoría a su nombre." }
        @if !has_tasks(&session.principal) {
            p.notice { "Sus roles no incluyen tareas de esta consola." }
        }
    };
    page(&shell(&visit.chrome(), "Consola", body))
}

/// `GET /consola/imei?imei=`: an authority's consultation of one record (art. 2.2.11.6),
/// audited whatever it finds, and the IMEI's history as the caller's role may see it.
///
/// # Errors
/// To sign-in; the 403 page when the domain refuses.
pub async fn consult(visit: Visit) -> PageResult {
    let who = visit.signed_in()?.principal.clone();
    let typed = visit
        .query("imei")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mut state = FormState::default();
    state.values.insert("imei".into(), typed.clone());
    let mut found: Option<(Option<Value>, Vec<Value>)> = None;
    if !typed.is_empty() {
        match Imei::parse(&typed) {
            Err(e) => state.errors.push((
                "imei".into(),
                format!(
                    "no es un IMEI válido: {}",
                    super::es::reason(&e.to_string())
                ),
            )),
            Ok(imei) => {
                found = Some(
                    off_worker_as(&visit.state, &who, move |state, who| {
                        let record = state
                            .registry
                            .consult_negative(who, imei)?
                            .map(|r| reports::negative_json(imei, &r, who));
                        let history = api_reports::events_json(&state.registry.history(who, imei)?);
                        Ok((record, history))
                    })
                    .await?,
                );
            }
        }
    }
    let body = html! {
        p { "Consulte un IMEI en la lista negativa, registro por registro. Cada consulta queda en el registro de auditoría." }
        form.card method="get" action="/consola/imei" role="search" {
            (field(&state, "imei", "IMEI", Input::Text("text"), true))
            button type="submit" { "Consultar" }
        }
        @if let Some((negative, history)) = &found {
            section aria-labelledby="negativo" {
                h2 #negativo { "Lista negativa" }
                @match negative {
                    Some(record_json) => { p.verdict.bad { "Reportado como hurtado o extraviado." } (record(record_json)) }
                    None => p.notice { "El IMEI no está en la lista negativa." },
                }
            }
            section aria-labelledby="historia" {
                h2 #historia { "Historia del IMEI" }
                @if history.is_empty() { p { "Sin eventos." } } @else { (record(&Value::Array(history.clone()))) }
            }
        }
    };
    let status = if state.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(html(
        status,
        &shell(&visit.chrome(), "Consultar IMEI", body),
    ))
}

const REPORT_KINDS: &[(&str, &str)] = &[("stolen", "Hurto"), ("lost", "Extravío")];
const REPORTERS: &[(&str, &str)] = &[
    ("user", "El usuario del equipo (a través del operador)"),
    ("authority", "Una autoridad"),
];

fn report_form(
    visit_chrome: &super::layout::Chrome<'_>,
    token: &str,
    state: &FormState,
    done: Option<Markup>,
) -> Markup {
    let inputs: Vec<String> = [
        "imei",
        "kind",
        "reported_by",
        "subscriber_id",
        "reference",
        "occurred_at",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    shell(
        visit_chrome,
        "Reportar hurto o extravío",
        html! {
            @if let Some(done) = done { (done) }
            p { "El reporte lleva el IMEI a la lista negativa: las redes le niegan el servicio desde ese momento (art. 2.2.11.6)." }
            (form_errors(state, &inputs))
            form.card method="post" action="/consola/reportes" {
                (csrf(token))
                (field(state, "imei", "IMEI", Input::Text("text"), true))
                (field(state, "kind", "Tipo", Input::Select(REPORT_KINDS), true))
                (field(state, "reported_by", "Quién reporta", Input::Select(REPORTERS), true))
                (field(state, "subscriber_id", "Identificación del usuario (si reporta el usuario)", Input::Text("text"), false))
                (field(state, "reference", "Número de denuncia o radicado", Input::Text("text"), true))
                (field(state, "occurred_at", "Fecha del hecho", Input::Text("date"), true))
                button type="submit" { "Reportar" }
            }
        },
    )
}

/// `GET /consola/reportes`.
///
/// # Errors
/// To sign-in.
pub fn report_page(visit: Visit) -> PageResult {
    let session = visit.signed_in()?;
    page(&report_form(
        &visit.chrome(),
        &session.csrf,
        &FormState::default(),
        None,
    ))
}

/// `POST /consola/reportes`: the report, as `POST /v1/reports`.
///
/// # Errors
/// To sign-in; the CSRF page; the 403 page when the domain refuses.
pub async fn report(visit: Visit) -> PageResult {
    let (parts, fields) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let (values, result) = submit(
        &parts,
        fields.to_json(&["csrf"]),
        |state, who, form: ReportForm| {
            Ok(match state.registry.report(who, form)? {
                Reported::Listed(imei, r) => (true, reports::negative_json(imei, &r, who)),
                Reported::AlreadyReported(imei, r) => {
                    (false, reports::negative_json(imei, &r, who))
                }
            })
        },
    )
    .await?;
    match result {
        Ok((listed, json)) => {
            let done = html! {
                div.notice role="status" {
                    p { @if listed { "Reporte registrado: el IMEI está en la lista negativa." } @else { "Ese reporte ya estaba registrado; nada cambió." } }
                    (record(&json))
                }
            };
            page(&report_form(
                &parts.chrome(),
                &session.csrf,
                &FormState::default(),
                Some(done),
            ))
        }
        Err(e) if shown_in_form(&e) => {
            let state = FormState::failed(values, &e);
            Ok(form_refused(
                &report_form(&parts.chrome(), &session.csrf, &state, None),
                &e,
            ))
        }
        Err(e) => Err(PageError::Api(e)),
    }
}

const PROOF_KINDS: &[(&str, &str)] = &[
    ("invoice", "Factura de compra en Colombia"),
    (
        "personal_import",
        "Importación personal (compra en el exterior)",
    ),
];

fn id_types() -> Vec<(&'static str, &'static str)> {
    ID_TYPES.iter().map(|t| (*t, *t)).collect()
}

fn activation_form(
    chrome: &super::layout::Chrome<'_>,
    token: &str,
    state: &FormState,
    done: Option<Markup>,
) -> Markup {
    let types = id_types();
    let inputs: Vec<String> = [
        "imei",
        "imsi",
        "owner_id_type",
        "owner_id_number",
        "proof.kind",
        "proof.invoice_number",
        "proof.seller_nit",
        "proof.buyer_id",
        "proof.imei",
        "proof.receipt",
        "proof.homologation",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    shell(
        chrome,
        "Activar equipo",
        html! {
            @if let Some(done) = done { (done) }
            p { "Active un equipo en la red y vincule a su propietario (art. 2.2.11.8). Un equipo que no está en la lista positiva necesita prueba de adquisición legal." }
            (form_errors(state, &inputs))
            form.card method="post" action="/consola/activaciones" {
                (csrf(token))
                fieldset {
                    legend { "Equipo y propietario" }
                    (field(state, "imei", "IMEI", Input::Text("text"), true))
                    (field(state, "imsi", "IMSI del suscriptor", Input::Text("text"), true))
                    (field(state, "owner_id_type", "Tipo de identificación", Input::Select(&types), true))
                    (field(state, "owner_id_number", "Número de identificación", Input::Text("text"), true))
                }
                fieldset {
                    legend { "Prueba de adquisición legal (si el equipo no está registrado)" }
                    (field(state, "proof.kind", "Tipo de prueba", Input::Select(PROOF_KINDS), false))
                    div.grid2 {
                        (field(state, "proof.invoice_number", "Factura: número", Input::Text("text"), false))
                        (field(state, "proof.seller_nit", "Factura: NIT del vendedor", Input::Text("text"), false))
                        (field(state, "proof.buyer_id", "Factura: identificación del comprador", Input::Text("text"), false))
                        (field(state, "proof.imei", "Factura: IMEI impreso", Input::Text("text"), false))
                        (field(state, "proof.receipt", "Importación: recibo o comprobante de pago", Input::Text("text"), false))
                        (field(state, "proof.homologation", "Importación: homologación CRC del modelo", Input::Text("text"), false))
                    }
                }
                button type="submit" { "Activar" }
            }
        },
    )
}

/// `GET /consola/activaciones`.
///
/// # Errors
/// To sign-in.
pub fn activation_page(visit: Visit) -> PageResult {
    let session = visit.signed_in()?;
    page(&activation_form(
        &visit.chrome(),
        &session.csrf,
        &FormState::default(),
        None,
    ))
}

/// `POST /consola/activaciones`: as `POST /v1/activations`.
///
/// # Errors
/// To sign-in; the CSRF page; the 403 page when the domain refuses.
pub async fn activate(visit: Visit) -> PageResult {
    let (parts, fields) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let (values, result) = submit(
        &parts,
        fields.to_json(&["csrf"]),
        |state, who, form: ActivationForm| {
            let Activated::Activated { bound, added } = state.registry.activate(who, form)?;
            Ok((bound, added))
        },
    )
    .await?;
    match result {
        Ok((bound, added)) => {
            let done = html! {
                div.notice role="status" {
                    p { "Equipo activado." }
                    ul {
                        li { @if bound { "Propietario vinculado." } @else { "El propietario ya estaba vinculado." } }
                        @if added { li { "El equipo entró a la lista positiva con la prueba de adquisición legal." } }
                    }
                }
            };
            page(&activation_form(
                &parts.chrome(),
                &session.csrf,
                &FormState::default(),
                Some(done),
            ))
        }
        Err(e) if shown_in_form(&e) => {
            let state = FormState::failed(values, &e);
            Ok(form_refused(
                &activation_form(&parts.chrome(), &session.csrf, &state, None),
                &e,
            ))
        }
        Err(e) => Err(PageError::Api(e)),
    }
}

/// `GET /consola/cargas`: the upload form; its script sends the file, follows the upload's
/// job and shows the report.
///
/// # Errors
/// To sign-in.
pub fn upload_page(visit: Visit) -> PageResult {
    let session = visit.signed_in()?;
    let state = FormState::default();
    let body = html! {
        p { "Registre equipos en la lista positiva con un archivo CSV: una línea por equipo, con el encabezado "
            code { "imei,manufacturer,model,reference" } ". Los lotes se registran de 50.000 en 50.000 líneas; una línea con error no detiene el resto y aparece abajo con su número." }
        // multipart, the one way a browser sends a file without a script; the script sends
        // the file as the body instead, the CSRF token in a header
        form.card #upload method="post" action="/consola/cargas" enctype="multipart/form-data" {
            (csrf(&session.csrf))
            (field(&state, "file", "Archivo CSV", Input::Text("file"), true))
            button type="submit" { "Cargar" }
        }
        progress #upload-progress max="100" value="0" hidden aria-label="Progreso de la carga" {}
        p #upload-status role="status" aria-live="polite" {}
        div #upload-result {}
        noscript { p.notice { "Sin JavaScript la carga funciona igual, sin la barra de esta página: el navegador muestra cuánto ha enviado y, al terminar, esta página muestra el informe." } }
        script src="/carga.js" defer {}
    };
    page(&shell(&visit.chrome(), "Cargar registros", body))
}

/// `POST /consola/cargas[?job=ID]`: the CSV as the body (sent by the page's script with the
/// session's CSRF token in `X-CSRF-Token`), streamed as `POST /v1/registrations` streams it,
/// as the job the script named; answers the API's JSON report for the script to show. The
/// form posted without the script (multipart) is streamed the same way and answered with
/// the report as a page.
///
/// # Errors
/// To sign-in; the CSRF page; what the upload answers, as problem+json.
pub async fn upload(visit: Visit) -> PageResult {
    let session = visit.signed_in()?.clone();
    let headers = visit.request.headers();
    let Some(given) = headers.get("x-csrf-token") else {
        let boundary = (headers.get(hyper::header::CONTENT_TYPE))
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
            .and_then(|v| multer::parse_boundary(v).ok());
        return match boundary {
            Some(boundary) => upload_form(visit, session, boundary).await,
            None => Err(PageError::Csrf),
        };
    };
    if !same_secret(&session.csrf, given.to_str().unwrap_or("")) {
        return Err(PageError::Csrf);
    }
    let (parts, request) = visit.split();
    // the report for the page's script, the rejected lines' reasons in Spanish; problem+json
    // for a refusal, which spends the budget as over the API
    let report = uploads::register_request(&parts.state, &session.principal, request).await;
    Ok(as_json(report.map(|mut report| {
        in_spanish(&mut report);
        crate::api::json_value(&report)
    })))
}

/// An upload's report with each rejected line's reason in Spanish.
fn in_spanish(report: &mut Value) {
    if let Some(lines) = report["rejected_lines"].as_array_mut() {
        for line in lines {
            if let Some(reason) = line["reason"].as_str() {
                line["reason"] = Value::String(super::es::line_reason(reason));
            }
        }
    }
}

/// The upload form as a browser sends it without the page's script (`multipart/form-data`):
/// its CSRF token, the form's first field, is read and checked before anything else, the
/// caller's right to register before the file; the file is then streamed as the script's
/// body is, and the report comes back as a page.
async fn upload_form(visit: Visit, session: SignedIn, boundary: String) -> PageResult {
    let (parts, request) = visit.split();
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["csrf", "file"])
        .size_limit(multer::SizeLimit::new().for_field("csrf", 256));
    // the parser keeps what comes before a boundary or a part's blank line: until the file's
    // part begins, the body may hold at most BEFORE_THE_FILE bytes; the file itself is then
    // bounded as an upload's body is (`registrations.max_upload_mb`)
    let limit = Arc::new(AtomicU64::new(BEFORE_THE_FILE));
    let bound = Arc::clone(&limit);
    let mut read = 0u64;
    let body = request.into_body().into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        read += chunk.len() as u64;
        if read > bound.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("more than 1 MiB before the file"));
        }
        Ok(chunk)
    });
    let mut form = multer::Multipart::with_constraints(body, boundary, constraints);
    let token = match form.next_field().await {
        Ok(Some(field)) if field.name() == Some("csrf") => field.text().await.ok(),
        _ => None,
    };
    if !token.is_some_and(|token| same_secret(&session.csrf, &token)) {
        return Err(PageError::Csrf);
    }
    uploads::require_register(&parts.state, &session.principal).await?;
    let file = match form.next_field().await {
        Ok(Some(field)) if field.name() == Some("file") => field,
        Ok(_) => {
            return Err(PageError::Api(crate::api::ApiError::MalformedBody {
                detail: "the form carries no file: choose the CSV file and send it again".into(),
            }));
        }
        Err(_) => {
            return Err(PageError::Api(crate::api::ApiError::MalformedBody {
                detail: "the form could not be read: it was cut off, or held more than 1 MiB before its file".into(),
            }));
        }
    };
    limit.store(u64::MAX, Ordering::Relaxed);
    let body = http_body_util::StreamBody::new(Box::pin(
        file.map(|chunk| chunk.map(hyper::body::Frame::data)),
    ));
    let report = uploads::register_body(
        &parts.state,
        &session.principal,
        crate::registry::registrations::Format::Csv,
        None,
        body,
    )
    .await;
    match report {
        Ok(mut report) => {
            in_spanish(&mut report);
            page(&shell(
                &parts.chrome(),
                "Carga terminada",
                upload_report(&report),
            ))
        }
        // the lines before the bound are registered: say so, not only that it was too big
        Err(crate::api::ApiError::PayloadTooLarge { detail }) => Ok(html(
            StatusCode::PAYLOAD_TOO_LARGE,
            &super::layout::error_page(
                &parts.chrome(),
                "Archivo demasiado grande",
                &super::es::reason(&detail),
            ),
        )),
        Err(e) => Err(PageError::Api(e)),
    }
}

/// What the upload form sent without its script may hold before its file's part: its token,
/// the part headers, what a browser adds.
const BEFORE_THE_FILE: u64 = 1 << 20;

/// An upload's report, as the upload page's script draws it: the counts, then the rejected
/// lines by number with their reasons in Spanish.
fn upload_report(report: &Value) -> Markup {
    let count = |key: &str| report[key].as_u64().unwrap_or(0);
    let rejected = report["rejected_lines"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    html! {
        p role="status" { "El archivo llegó completo y el registro lo procesó (carga " (report["job"].as_str().unwrap_or("")) ")." }
        dl.record {
            dt { "Líneas leídas" } dd { (count("lines")) }
            dt { "Registradas" } dd { (count("accepted")) }
            dt { "Ya estaban registradas" } dd { (count("already_registered")) }
            dt { "Rechazadas" } dd { (count("rejected")) }
        }
        @if !rejected.is_empty() {
            h2 { "Líneas rechazadas" }
            @if (rejected.len() as u64) < count("rejected") {
                p { "Se muestran las primeras " (rejected.len()) "." }
            }
            div.scroll tabindex="0" role="region" aria-label="Tabla (deslice para ver más)" { table {
                thead { tr { th scope="col" { "Línea" } th scope="col" { "Motivo" } } }
                tbody { @for line in rejected { tr {
                    td { (line["line"].as_u64().unwrap_or(0)) }
                    td { (line["reason"].as_str().unwrap_or("")) }
                } } }
            } }
        }
        p { a href="/consola/cargas" { "Cargar otro archivo" } }
    }
}

/// `GET /consola/cargas/{job}`: an upload's progress, as `GET /v1/registrations/jobs/{job}`
/// shows it to the session's user (its organisation's uploads; the regulator's, all), for
/// the upload page's script.
///
/// # Errors
/// To sign-in; what the job route answers, as problem+json.
pub async fn upload_job(visit: Visit, job: &str) -> PageResult {
    let session = visit.signed_in()?.clone();
    let (parts, request) = visit.split();
    let call = Call {
        state: parts.state,
        principal: Some(session.principal),
        params: vec![job.to_owned()],
        request,
    };
    Ok(as_json(uploads::job(call).await))
}

/// An API route's answer for a page's script: the route's JSON, or its problem+json (a
/// refusal spends the budget as over the API).
fn as_json(
    answer: Result<crate::api::HttpResponse, crate::api::ApiError>,
) -> crate::api::HttpResponse {
    match answer {
        Ok(response) => response,
        Err(e) => {
            let spends = crate::api::spends_the_budget(&e);
            let mut response = e.into_response();
            if spends {
                response.extensions_mut().insert(super::SpendsBudget);
            }
            response
        }
    }
}
