//! The registry's write paths and lookups over HTTP.
//!
//! | route | who |
//! |---|---|
//! | `POST /v1/reports` | operators (for a user or an authority), authorities |
//! | `POST /v1/imeis/{imei}/recovery` | the operator organisation that registered the report |
//! | `GET /v1/imeis/{imei}/history` | regulator admin, auditors, operators, authorities |
//! | `POST /v1/activations` | operators |
//! | `POST /v1/imeis/{imei}/owner` | operators, with the last owner's authorisation |
//! | `GET /v1/negative/{imei}` | authorities: one record, every lookup audited |
//! | `POST /v1/registrations` | importers, manufacturers, operators: a CSV or NDJSON stream |
//! | `GET /v1/registrations/jobs/{job}` | the uploading organisation, regulator admin |
//! | `GET /v1/exchange/negative` | regulator admin: the whole negative list as CSV, streamed |
//! | `GET /v1/exchange/negative/changes?since=N` | regulator admin: the changes after N, CSV |
//! | `POST /v1/exchange/foreign?source=NAME` | regulator admin: a foreign list, CSV streamed |
//! | `POST /v1/sellers` | operators, regulator admin (records or updates an authorisation) |
//! | `GET /v1/public/imeis/{imei}` | anyone, no token; rate-limited per client address |
//! | `GET /v1/public/sellers?q=` | anyone, no token; rate-limited per client address |
//!
//! Handlers parse and render; `registry::reports` decides.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{created, json_body, json_reply, json_value};
use super::problem::ParamLocation;
use super::{ApiError, AppState, ChannelBody, HttpResponse, Reply, off_worker, off_worker_as};
use crate::accounts::Principal;
use crate::audit::Action;
use crate::imei::Imei;
use crate::registry::RegistryError;
use crate::registry::owners::{Activated, ActivationForm, TransferForm};
use crate::registry::registrations::{Format, Progress, RegistrationReport, UploadError};
use crate::registry::reports::{self, ReportForm, Reported};
use crate::registry::sellers::{Seller, SellerForm};
use crate::roles::{Permission, Role};
use crate::timefmt;

/// Routes the registry's authenticated paths; `None` if the path is none of them.
pub async fn route(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Option<Result<HttpResponse, ApiError>> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    let result = match (segments.as_slice(), &method) {
        (["v1", "reports"], &Method::POST) => match json_body::<ReportForm>(state, request).await {
            Err(e) => Err(e),
            Ok(form) => {
                off_worker_as(state, principal, move |state, who| {
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
        },
        (["v1", "reports"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "activations"], &Method::POST) => {
            match json_body::<ActivationForm>(state, request).await {
                Err(e) => Err(e),
                Ok(form) => {
                    off_worker_as(state, principal, move |state, who| {
                        let Activated::Activated { bound, added } =
                            state.registry.activate(who, form)?;
                        Ok(json_value(
                            &json!({ "activated": true, "ownerBound": bound, "addedToPositiveList": added }),
                        ))
                    })
                    .await
                }
            }
        }
        (["v1", "activations"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "registrations"], &Method::POST) => upload(state, principal, request).await,
        (["v1", "registrations"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "registrations", "jobs", job], &Method::GET) => job_status(state, principal, job),
        (["v1", "registrations", "jobs", _], _) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (["v1", "exchange", "negative"], &Method::GET) => {
            // refused (and audited) with a permit, before a thread of its own is taken
            if let Err(e) = require_exchange(state, principal, Action::ExchangeExport).await {
                return Some(Err(e));
            }
            let registry = state.registry.clone();
            let who = principal.clone();
            stream_csv(move |out, started| {
                registry
                    .export_negative(&who, |seq| started(Some(seq)), out)
                    .map(|_| ())
            })
            .await
        }
        (["v1", "exchange", "negative", "changes"], &Method::GET) => {
            match since(request.uri().query()) {
                Err(e) => Err(e),
                Ok(since) => {
                    if let Err(e) = require_exchange(state, principal, Action::ExchangeExport).await
                    {
                        return Some(Err(e));
                    }
                    let registry = state.registry.clone();
                    let who = principal.clone();
                    stream_csv(move |out, _| registry.export_negative_changes(&who, since, out))
                        .await
                }
            }
        }
        (["v1", "exchange", "negative", ..], _) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (["v1", "exchange", "foreign"], &Method::POST) => foreign(state, principal, request).await,
        (["v1", "exchange", "foreign"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "sellers"], &Method::POST) => match json_body::<SellerForm>(state, request).await {
            Err(e) => Err(e),
            Ok(form) => {
                off_worker_as(state, principal, move |state, who| {
                    let seller = state.registry.record_seller(who, form)?;
                    Ok(json_value(&seller_json(state, &seller)))
                })
                .await
            }
        },
        (["v1", "sellers"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "imeis", imei, "owner"], &Method::POST) => match path_imei(imei) {
            Err(e) => Err(e),
            Ok(imei) => match json_body::<TransferForm>(state, request).await {
                Err(e) => Err(e),
                Ok(form) => {
                    off_worker_as(state, principal, move |state, who| {
                        state.registry.transfer(who, imei, form)?;
                        Ok(json_value(
                            &json!({ "imei": imei.to_string(), "ownerChanged": true }),
                        ))
                    })
                    .await
                }
            },
        },
        (["v1", "imeis", _, "owner"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "imeis", imei, "recovery"], &Method::POST) => match path_imei(imei) {
            Err(e) => Err(e),
            Ok(imei) => match json_body::<Recovery>(state, request).await {
                Err(e) => Err(e),
                Ok(recovery) => {
                    off_worker_as(state, principal, move |state, who| {
                        state.registry.recover(who, imei, &recovery.reference)?;
                        Ok(json_value(&json!({
                            "imei": imei.to_string(),
                            "negativeList": false,
                            "positiveList": state.registry.listing(imei).positive,
                        })))
                    })
                    .await
                }
            },
        },
        (["v1", "imeis", _, "recovery"], _) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (["v1", "imeis", imei, "history"], &Method::GET) => match path_imei(imei) {
            Err(e) => Err(e),
            Ok(imei) => {
                off_worker_as(state, principal, move |state, who| {
                    let events = state.registry.history(who, imei)?;
                    let events: Vec<Value> = events
                        .iter()
                        .map(|event| {
                            let mut value = serde_json::to_value(event).unwrap_or_default();
                            value["at"] = Value::String(timefmt::rfc3339(event.at));
                            value
                        })
                        .collect();
                    Ok(json_value(
                        &json!({ "imei": imei.to_string(), "events": events }),
                    ))
                })
                .await
            }
        },
        (["v1", "imeis", _, "history"], _) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (["v1", "negative", imei], &Method::GET) => match path_imei(imei) {
            Err(e) => Err(e),
            Ok(imei) => {
                off_worker_as(state, principal, move |state, who| {
                    match state.registry.consult_negative(who, imei)? {
                        Some(record) => Ok(json_value(&reports::negative_json(imei, &record, who))),
                        None => Err(ApiError::ResourceNotFound {
                            what: "report: the IMEI is not on the negative list",
                        }),
                    }
                })
                .await
            }
        },
        (["v1", "negative", _], _) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        _ => return None,
    };
    Some(result)
}

/// Uploads in progress and the last finished ones, for `GET /v1/registrations/jobs/{job}`.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<Vec<(u64, u64, Arc<Progress>)>>,
    /// Uploads running, per organisation: an upload holds a blocking thread and a channel of
    /// body chunks for as long as its client sends, so their number is bounded.
    running: Mutex<HashMap<u64, usize>>,
}

/// Finished uploads remembered.
const KEEP_JOBS: usize = 256;
/// Uploads (registrations, foreign lists) one organisation may run at once.
pub const UPLOADS_PER_ORG: usize = 2;
/// Uploads running at once, over all organisations.
pub const UPLOADS: usize = 8;

/// An upload's place among the running ones, given back when dropped.
struct Running<'a> {
    jobs: &'a Jobs,
    org: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut running = self.jobs.lock_running();
        if let Some(n) = running.get_mut(&self.org) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.org);
            }
        }
    }
}

impl Jobs {
    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<u64, usize>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more upload of `org`.
    fn claim(&self, org: u64) -> Result<Running<'_>, ApiError> {
        let mut running = self.lock_running();
        let total: usize = running.values().sum();
        let own = running.get(&org).copied().unwrap_or(0);
        if own >= UPLOADS_PER_ORG || total >= UPLOADS {
            return Err(ApiError::TooManyUploads {
                detail: format!(
                    "{own} of your organisation's uploads and {total} in all are running (at most {UPLOADS_PER_ORG} and {UPLOADS}); send this one when one ends"
                ),
            });
        }
        *running.entry(org).or_insert(0) += 1;
        Ok(Running { jobs: self, org })
    }

    fn start(&self, org: u64) -> Result<(u64, Arc<Progress>), ApiError> {
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut id).map_err(|_| ApiError::Internal)?;
        let id = u64::from_be_bytes(id) >> 1;
        let progress = Arc::new(Progress::default());
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if jobs.len() >= KEEP_JOBS
            && let Some(oldest_done) = jobs
                .iter()
                .position(|(_, _, p)| p.done.load(Ordering::Relaxed))
        {
            jobs.remove(oldest_done);
        }
        jobs.push((id, org, Arc::clone(&progress)));
        Ok((id, progress))
    }

    fn get(&self, id: u64) -> Option<(u64, Arc<Progress>)> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.iter()
            .find(|(job, _, _)| *job == id)
            .map(|(_, org, p)| (*org, Arc::clone(p)))
    }
}

fn progress_json(job: u64, progress: &Progress) -> Value {
    json!({
        "job": format!("{job:016x}"),
        "lines": progress.lines.load(Ordering::Relaxed),
        "accepted": progress.accepted.load(Ordering::Relaxed),
        "already_registered": progress.already_registered.load(Ordering::Relaxed),
        "rejected": progress.rejected.load(Ordering::Relaxed),
        "done": progress.done.load(Ordering::Relaxed),
    })
}

fn job_status(
    state: &AppState,
    principal: &Principal,
    job: &str,
) -> Result<HttpResponse, ApiError> {
    let not_found = ApiError::ResourceNotFound { what: "upload job" };
    let id = u64::from_str_radix(job, 16)
        .map_err(|_| ApiError::ResourceNotFound { what: "upload job" })?;
    let (org, progress) = state.jobs.get(id).ok_or(not_found)?;
    if org != principal.org && !principal.has(Role::RegulatorAdmin) {
        return Err(ApiError::ResourceNotFound { what: "upload job" });
    }
    Ok(json_value(&progress_json(id, &progress)))
}

/// A `Read` over body chunks handed over by the async side, so the blocking parser and the
/// store work on a stream without the whole body in memory.
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(message)) => return Err(std::io::Error::other(message)),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// `POST /v1/registrations`: streams the body into the registry, batch by batch.
async fn upload(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    // refused (and audited) before a byte of the body is read
    off_worker_as(state, principal, move |state, who| {
        Ok(state.registry.require(
            who,
            Permission::Register,
            Action::Registration,
            "list/positive",
        )?)
    })
    .await?;
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let format = if content_type.starts_with("text/csv") {
        Format::Csv
    } else if content_type.starts_with("application/x-ndjson")
        || content_type.starts_with("application/ndjson")
    {
        Format::Ndjson
    } else {
        return Err(ApiError::UnsupportedMediaType {
            detail: "send the devices as text/csv (header: imei,manufacturer,model,reference) or application/x-ndjson",
        });
    };
    let registry = state.registry.clone();
    let who = principal.clone();
    upload_stream(state, principal, request, move |reader, job, progress| {
        registry.register_upload(&who, format, reader, job, progress)
    })
    .await
}

/// Streams a request body into `apply` on a blocking thread (through a bounded channel: the
/// body is never whole in memory), with a job others can follow, and renders its report.
async fn upload_stream<F>(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
    apply: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(ChunkReader, u64, &Progress) -> Result<RegistrationReport, UploadError>
        + Send
        + 'static,
{
    let _running = state.jobs.claim(principal.org)?;
    let (job, progress) = state.jobs.start(principal.org)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(16);
    let worker_progress = Arc::clone(&progress);
    let worker = tokio::task::spawn_blocking(move || {
        let reader = ChunkReader {
            chunks: rx,
            current: Bytes::new(),
        };
        let result = apply(reader, job, &worker_progress);
        worker_progress.done.store(true, Ordering::Relaxed);
        result
    });
    let mut body = request.into_body();
    let max = state.max_upload_bytes;
    let mut read = 0u64;
    let mut too_large = false;
    while let Some(frame) = body.frame().await {
        let chunk = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => Ok(data),
                Err(_) => continue, // trailers
            },
            Err(e) => Err(format!("the body could not be read: {e}")),
        };
        let failed = chunk.is_err();
        if let Ok(data) = &chunk {
            read += data.len() as u64;
            if read > max {
                too_large = true;
                let _ = tx
                    .send(Err(format!("the upload is larger than {max} bytes")))
                    .await;
                break;
            }
        }
        if tx.send(chunk).await.is_err() || failed {
            break; // the worker stopped (a header error) or the client went away
        }
    }
    drop(tx);
    let result = worker.await.map_err(|_| ApiError::Internal)?;
    if too_large {
        return Err(ApiError::PayloadTooLarge {
            detail: format!(
                "the upload is larger than {max} bytes (registrations.max_upload_mb); the first {} lines were processed (job {job:016x})",
                progress.lines.load(Ordering::Relaxed)
            ),
        });
    }
    let report = result.map_err(upload_error)?;
    let mut value = progress_json(job, &progress);
    value["rejected"] = json!(report.rejected_total());
    value["rejected_by_reason"] = json!(report.rejected);
    value["rejected_lines"] = json!(
        report
            .first_rejections
            .iter()
            .map(|(line, reason)| json!({ "line": line, "reason": reason }))
            .collect::<Vec<_>>()
    );
    Ok(json_value(&value))
}

fn upload_error(error: UploadError) -> ApiError {
    match error {
        UploadError::Header(missing) => ApiError::Unprocessable {
            params: vec![(
                "header".into(),
                format!(
                    "the CSV header must name imei, manufacturer, model and reference; missing: {missing}"
                ),
            )],
        },
        UploadError::Read { line, message } => ApiError::MalformedBody {
            detail: format!("after line {line}: {message}; the batches before it are registered"),
        },
        UploadError::Registry(e) => ApiError::from(e),
    }
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
async fn foreign(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let mut source = None;
    for (key, value) in form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()) {
        if key == "source" {
            source = Some(value.into_owned());
        }
    }
    require_exchange(state, principal, Action::ExchangeImport).await?;
    let source = source.ok_or(ApiError::MissingQueryParam { param: "source" })?;
    let registry = state.registry.clone();
    let who = principal.clone();
    upload_stream(state, principal, request, move |reader, _job, progress| {
        registry.import_foreign(&who, &source, reader, progress)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recovery {
    /// The owner's request (letter, ticket) that asks for the exclusion.
    reference: String,
}

fn path_imei(segment: &str) -> Result<Imei, ApiError> {
    Imei::parse(segment).map_err(|e| ApiError::InvalidParams {
        location: ParamLocation::Path,
        params: vec![("{imei}".into(), e.to_string())],
    })
}

/// The public path prefix: answered without a token.
pub const PUBLIC_IMEIS: &str = "/v1/public/imeis/";

/// `GET /v1/public/imeis/{imei}`: whether an IMEI is reported stolen or lost and whether it is
/// registered, nothing else (art. 2.2.11.6: what the public needs before buying a used phone).
///
/// # Errors
/// [`ApiError::TooManyRequests`] past the client's rate, [`ApiError::InvalidParams`] for a
/// malformed IMEI.
pub fn public_status(state: &AppState, peer: IpAddr, imei: &str) -> Result<Reply, ApiError> {
    super::admit_public(state, peer)?;
    let imei = path_imei(imei)?;
    let listing = state.registry.listing(imei);
    Ok(json_reply(&json!({
        "imei": imei.to_string(),
        "reportedStolenOrLost": listing.negative,
        "registered": listing.positive,
    })))
}

/// The public sellers path: answered without a token.
pub const PUBLIC_SELLERS: &str = "/v1/public/sellers";

/// `GET /v1/public/sellers?q=...`: authorised sellers valid today (art. 2.2.11.3 par.). The
/// limit is counted before the search runs.
///
/// # Errors
/// [`ApiError::TooManyRequests`], [`ApiError::InvalidParams`] for an unknown parameter.
pub async fn public_sellers(
    state: &AppState,
    peer: IpAddr,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    super::admit_public(state, peer)?;
    let mut q = String::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "q" => q = value.into_owned(),
            other => {
                return Err(ApiError::InvalidParams {
                    location: ParamLocation::Query,
                    params: vec![(other.to_owned(), "unknown parameter; search with q".into())],
                });
            }
        }
    }
    // a scan of the sellers in the store: off the workers, and never more of them at once
    // than PUBLIC_SCANS, so anonymous clients cannot hold the permits a theft report needs
    let _scan = Arc::clone(&state.public_scans)
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy {
            detail: "as many public searches as the server runs at once are running; search again shortly",
        })?;
    off_worker(state, move |state| {
        let sellers = state.registry.search_sellers(&q)?;
        let sellers: Vec<Value> = sellers.iter().map(|s| seller_json(state, s)).collect();
        Ok(json_value(&json!({ "sellers": sellers })))
    })
    .await
}

fn seller_json(state: &AppState, seller: &Seller) -> Value {
    let mut value = serde_json::to_value(&seller.form).unwrap_or_default();
    value["authorised_by"] = json!({
        "org": seller.authorised_by,
        "name": state.accounts.org_name(seller.authorised_by),
    });
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_bounded_per_organisation_and_in_all() {
        let jobs = Jobs::default();
        let first = jobs.claim(1).unwrap();
        let _second = jobs.claim(1).unwrap();
        assert!(matches!(
            jobs.claim(1),
            Err(ApiError::TooManyUploads { .. })
        ));
        drop(first);
        let _again = jobs.claim(1).unwrap();
        let others: Vec<_> = (2..2 + (UPLOADS - UPLOADS_PER_ORG) as u64)
            .map(|org| jobs.claim(org).unwrap())
            .collect();
        assert!(matches!(
            jobs.claim(99),
            Err(ApiError::TooManyUploads { .. })
        ));
        drop(others);
        let _late = jobs.claim(99).unwrap();
        assert_eq!(
            jobs.lock_running().values().sum::<usize>(),
            UPLOADS_PER_ORG + 1
        );
    }
}
