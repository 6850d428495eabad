//! Reports of stolen or lost devices and what follows them (art. 2.2.11.6): the report, the
//! reporting operator's recovery, an authority's consultation of one record (audited), and an
//! IMEI's history as the caller's role may see it. Handlers parse and render;
//! `registry::reports` decides.

use serde::Deserialize;
use serde_json::{Value, json};

use super::routes::Call;
use super::{ApiError, HttpResponse, created, json_body, json_value, off_worker_as};
use crate::registry::history::HistoryEvent;
use crate::registry::reports::{self, ReportForm, Reported};
use crate::timefmt;

/// `POST /v1/reports`: 201 with the record when listed, 200 when it already was.
pub async fn report(call: Call) -> Result<HttpResponse, ApiError> {
    let who = call.who()?.clone();
    let form: ReportForm = json_body(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        Ok(match state.registry.report(who, form)? {
            Reported::Listed(imei, record) => created(
                &format!("/v1/negative/{imei}"),
                &reports::negative_json(imei, &record, who),
            ),
            Reported::AlreadyReported(imei, record) => {
                json_value(&reports::negative_json(imei, &record, who))
            }
        })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recovery {
    /// The owner's request (letter, ticket) that asks for the exclusion.
    reference: String,
}

/// `POST /v1/imeis/{imei}/recovery`.
pub async fn recover(call: Call) -> Result<HttpResponse, ApiError> {
    let (imei, who) = (call.imei()?, call.who()?.clone());
    let recovery: Recovery = json_body(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        state.registry.recover(who, imei, &recovery.reference)?;
        Ok(json_value(&json!({
            "imei": imei.to_string(),
            "negativeList": false,
            "positiveList": state.registry.listing(imei).positive,
        })))
    })
    .await
}

/// `GET /v1/imeis/{imei}/history`.
pub async fn history(call: Call) -> Result<HttpResponse, ApiError> {
    let imei = call.imei()?;
    off_worker_as(&call.state, call.who()?, move |state, who| {
        let events = events_json(&state.registry.history(who, imei)?);
        Ok(json_value(
            &json!({ "imei": imei.to_string(), "events": events }),
        ))
    })
    .await
}

/// An IMEI's history as the API (and the police console) shows it.
pub fn events_json(events: &[HistoryEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|event| {
            let mut value = serde_json::to_value(event).unwrap_or_default();
            value["at"] = Value::String(timefmt::rfc3339(event.at));
            value
        })
        .collect()
}

/// `GET /v1/negative/{imei}`: an authority's consultation, audited whatever it finds.
pub async fn consult(call: Call) -> Result<HttpResponse, ApiError> {
    let imei = call.imei()?;
    off_worker_as(&call.state, call.who()?, move |state, who| {
        match state.registry.consult_negative(who, imei)? {
            Some(record) => Ok(json_value(&reports::negative_json(imei, &record, who))),
            None => Err(ApiError::ResourceNotFound {
                what: "report: the IMEI is not on the negative list",
            }),
        }
    })
    .await
}
