//! The exchange with affiliates abroad (art. 2.2.11.6 par. 1), the regulator's: the negative
//! list exported whole or as changes since a sequence number, streamed as CSV, and foreign
//! lists imported into it.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::Either;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::problem::ParamLocation;
use super::routes::Call;
use super::uploads::{upload_stream, wanted_job};
use super::{ApiError, AppState, ChannelBody, HttpResponse, json_value, off_worker_as};
use crate::accounts::Principal;
use crate::audit::Action;
use crate::registry::RegistryError;

/// `GET /v1/exchange/negative`: the whole list, with the sequence number it holds.
pub async fn export(call: Call) -> Result<HttpResponse, ApiError> {
    let who = call.who()?.clone();
    // refused (and audited) with a permit, before a thread of its own is taken
    require_exchange(&call.state, &who, Action::ExchangeExport).await?;
    let registry = call.state.registry.clone();
    stream_csv(move |out, started| {
        registry
            .export_negative(&who, |seq| started(Some(seq)), out)
            .map(|_| ())
    })
    .await
}

/// `GET /v1/exchange/negative/changes?since=N`.
pub async fn changes(call: Call) -> Result<HttpResponse, ApiError> {
    let since = since(call.request.uri().query())?;
    let who = call.who()?.clone();
    require_exchange(&call.state, &who, Action::ExchangeExport).await?;
    let registry = call.state.registry.clone();
    stream_csv(move |out, _| registry.export_negative_changes(&who, since, out)).await
}

fn since(query: Option<&str>) -> Result<u64, ApiError> {
    let mut since = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match (key.as_ref(), value.parse::<u64>()) {
            ("since", Ok(n)) => since = Some(n),
            (name, _) => {
                return Err(ApiError::InvalidParams {
                    location: ParamLocation::Query,
                    params: vec![(
                        name.to_owned(),
                        "expected since=<the sequence number of your last export or delta>".into(),
                    )],
                });
            }
        }
    }
    since.ok_or(ApiError::MissingQueryParam { param: "since" })
}

/// Streams the CSV that `produce` writes line by line: the response starts when `produce`
/// reports the snapshot's sequence number (sent as `X-Imeidb-Sequence`) or its first 64 KiB;
/// an error before that is an ordinary error response.
async fn stream_csv<F>(produce: F) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut dyn FnMut(String) -> bool, &dyn Fn(Option<u64>)) -> Result<(), RegistryError>
        + Send
        + 'static,
{
    const CHUNK: usize = 64 << 10;
    let (tx, body) = ChannelBody::channel(8);
    let (start_tx, start_rx) = tokio::sync::oneshot::channel::<Option<u64>>();
    let worker = tokio::task::spawn_blocking(move || {
        let start = Mutex::new(Some(start_tx));
        let started = |seq: Option<u64>| {
            if let Some(sender) = start.lock().unwrap_or_else(PoisonError::into_inner).take() {
                let _ = sender.send(seq);
            }
        };
        let mut buffer = String::with_capacity(CHUNK + 256);
        let mut out = |line: String| {
            buffer.push_str(&line);
            if buffer.len() >= CHUNK {
                started(None);
                let chunk = Bytes::from(std::mem::replace(
                    &mut buffer,
                    String::with_capacity(CHUNK + 256),
                ));
                return tx.blocking_send(chunk).is_ok();
            }
            true
        };
        let result = produce(&mut out, &started);
        if result.is_ok() {
            started(None);
            if !buffer.is_empty() {
                let _ = tx.blocking_send(Bytes::from(buffer));
            }
        } else if start
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            // the response has begun: it can only end early; say why in the log
            if let Err(e) = &result {
                tracing::error!(error = %e, "an export failed after it began; the client gets a truncated CSV");
            }
        }
        result
    });
    match start_rx.await {
        Ok(seq) => {
            let mut response = Response::new(Either::Right(body));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Some(seq) = seq {
                response
                    .headers_mut()
                    .insert("x-imeidb-sequence", HeaderValue::from(seq));
            }
            Ok(response)
        }
        Err(_) => match worker.await {
            Ok(Err(e)) => Err(ApiError::from(e)),
            Ok(Ok(())) | Err(_) => Err(ApiError::Internal),
        },
    }
}

/// Refuses (and audits, off the workers) a caller who may not use the exchange.
async fn require_exchange(
    state: &AppState,
    principal: &Principal,
    action: Action,
) -> Result<(), ApiError> {
    off_worker_as(state, principal, move |state, who| {
        Ok(state.registry.require_exchange(who, action)?)
    })
    .await
}

/// `POST /v1/exchange/foreign?source=NAME`: a foreign list streamed into the negative list.
pub async fn foreign(call: Call) -> Result<HttpResponse, ApiError> {
    let (state, principal, request) = call.into_caller_parts()?;
    let (state, principal) = (&state, &principal);
    let mut source = None;
    for (key, value) in form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()) {
        if key == "source" {
            source = Some(value.into_owned());
        }
    }
    require_exchange(state, principal, Action::ExchangeImport).await?;
    let source = source.ok_or(ApiError::MissingQueryParam { param: "source" })?;
    let job = wanted_job(request.uri().query())?;
    let registry = state.registry.clone();
    let who = principal.clone();
    let report = upload_stream(
        state,
        principal,
        request.into_body(),
        job,
        move |reader, _job, progress| registry.import_foreign(&who, &source, reader, progress),
    )
    .await?;
    Ok(json_value(&report))
}
