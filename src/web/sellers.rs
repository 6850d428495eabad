//! The authorised sellers (art. 2.2.11.3), for the regulator: the list and the form that
//! records or changes one.

use hyper::StatusCode;
use maud::html;

use super::layout::{Chrome, FormState, Input, csrf, field, form_errors, shell};
use super::orgs::Spec;
use super::public::seller_table;
use super::{PageError, PageResult, Visit, html, shown_in_form, submit};
use crate::api::ApiError;
use crate::registry::sellers::SellerForm;

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
