//! Streamed uploads: `POST /v1/registrations` (devices for the positive list, as CSV or
//! NDJSON) and the foreign lists of the exchange (`exchange.rs`), and the jobs that let the
//! uploader follow one (`GET /v1/registrations/jobs/{job}`). The job is named by the answer
//! when the upload ends; to follow it while it runs, the client names it beforehand
//! (`?job=`, 16 hexadecimal digits it draws at random).
//!
//! A body is never whole in memory: it is handed chunk by chunk through a bounded channel to
//! a blocking thread that parses and stores it batch by batch. Uploads are bounded per
//! organisation and in all ([`UPLOADS_PER_ORG`], [`UPLOADS`]).

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::problem::ParamLocation;
use super::routes::Call;
use super::{ApiError, AppState, HttpResponse, json_value, off_worker_as};
use crate::accounts::Principal;
use crate::audit::Action;
use crate::registry::registrations::{Format, Progress, RegistrationReport, UploadError};
use crate::roles::{Permission, Role};

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

    /// A new job of `org`: named `wanted` if the client named it (refused if a job of that
    /// name is remembered, whoever's it is), else at random.
    fn start(&self, org: u64, wanted: Option<u64>) -> Result<(u64, Arc<Progress>), ApiError> {
        let id = match wanted {
            Some(id) => id,
            None => {
                let mut id = [0u8; 8];
                getrandom::getrandom(&mut id).map_err(|_| ApiError::Internal)?;
                u64::from_be_bytes(id) >> 1
            }
        };
        let progress = Arc::new(Progress::default());
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if jobs.iter().any(|(job, _, _)| *job == id) {
            return Err(ApiError::Conflict {
                detail: format!(
                    "upload job {id:016x} exists; name the upload with another random job"
                ),
            });
        }
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

/// The job a client names for its upload (`?job=`, 16 hexadecimal digits), if it names one.
///
/// # Errors
/// `InvalidParams` naming `job` when it is not 16 hexadecimal digits.
pub fn wanted_job(query: Option<&str>) -> Result<Option<u64>, ApiError> {
    let mut wanted = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "job" {
            let id = (value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u64::from_str_radix(&value, 16).ok())
                .flatten()
                .ok_or_else(|| ApiError::InvalidParams {
                    location: ParamLocation::Query,
                    params: vec![(
                        "job".into(),
                        format!("{value:?} is not 16 hexadecimal digits (draw them at random, e.g. 1f3a09c2b47e5d60)"),
                    )],
                })?;
            wanted = Some(id);
        }
    }
    Ok(wanted)
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

/// `GET /v1/registrations/jobs/{job}`: the uploading organisation's, or the regulator's.
pub async fn job(call: Call) -> Result<HttpResponse, ApiError> {
    let principal = call.who()?;
    let job = call.params.first().map_or("", String::as_str);
    let not_found = ApiError::ResourceNotFound { what: "upload job" };
    let id = u64::from_str_radix(job, 16)
        .map_err(|_| ApiError::ResourceNotFound { what: "upload job" })?;
    let (org, progress) = call.state.jobs.get(id).ok_or(not_found)?;
    if org != principal.org && !principal.has(Role::RegulatorAdmin) {
        return Err(ApiError::ResourceNotFound { what: "upload job" });
    }
    Ok(json_value(&progress_json(id, &progress)))
}

/// A `Read` over body chunks handed over by the async side, so the blocking parser and the
/// store work on a stream without the whole body in memory.
pub struct ChunkReader {
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
pub async fn register(call: Call) -> Result<HttpResponse, ApiError> {
    let (state, principal, request) = call.into_caller_parts()?;
    Ok(json_value(
        &register_request(&state, &principal, request).await?,
    ))
}

/// What `POST /v1/registrations` does with `request` for `principal`: its report.
///
/// # Errors
/// As `POST /v1/registrations`.
pub async fn register_request(
    state: &AppState,
    principal: &Principal,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<Value, ApiError> {
    // refused (and audited) before a byte of the body is read
    require_register(state, principal).await?;
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
    let job = wanted_job(request.uri().query())?;
    register_body(state, principal, format, job, request.into_body()).await
}

/// Refuses (and audits) a caller that may not register devices: before a byte of an upload
/// is read.
///
/// # Errors
/// [`ApiError::Forbidden`] and the refusals of [`crate::registry::Registry::require`].
pub async fn require_register(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    off_worker_as(state, principal, move |state, who| {
        Ok(state.registry.require(
            who,
            Permission::Register,
            Action::Registration,
            "list/positive",
        )?)
    })
    .await
}

/// Registers the devices of `body` (in `format`) for `principal`, who may register
/// ([`require_register`]), as job `job` if named: the report of `POST /v1/registrations`.
///
/// # Errors
/// As `POST /v1/registrations`.
pub async fn register_body<B>(
    state: &AppState,
    principal: &Principal,
    format: Format,
    job: Option<u64>,
    body: B,
) -> Result<Value, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let registry = state.registry.clone();
    let who = principal.clone();
    upload_stream(state, principal, body, job, move |reader, job, progress| {
        registry.register_upload(&who, format, reader, job, progress)
    })
    .await
}

/// Streams a body into `apply` on a blocking thread (through a bounded channel: the body is
/// never whole in memory), with a job others can follow (named `job` if the client named
/// it); answers its report.
pub async fn upload_stream<B, F>(
    state: &AppState,
    principal: &Principal,
    mut body: B,
    job: Option<u64>,
    apply: F,
) -> Result<Value, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
    F: FnOnce(ChunkReader, u64, &Progress) -> Result<RegistrationReport, UploadError>
        + Send
        + 'static,
{
    let _running = state.jobs.claim(principal.org)?;
    let (job, progress) = state.jobs.start(principal.org, job)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(16);
    let worker_progress = Arc::clone(&progress);
    let worker = tokio::task::spawn_blocking(move || {
        // done however the work ends, a panic included, so the job can be forgotten in turn
        struct Done(Arc<Progress>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.done.store(true, Ordering::Relaxed);
            }
        }
        let done = Done(worker_progress);
        let reader = ChunkReader {
            chunks: rx,
            current: Bytes::new(),
        };
        apply(reader, job, &done.0)
    });
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
    Ok(value)
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

    #[test]
    fn a_job_named_by_its_client_is_followed_under_that_name_once() {
        let jobs = Jobs::default();
        let (id, progress) = jobs.start(7, Some(0x1f3a_09c2_b47e_5d60)).unwrap();
        assert_eq!(id, 0x1f3a_09c2_b47e_5d60);
        progress.lines.store(12, Ordering::Relaxed);
        let (org, seen) = jobs.get(id).unwrap();
        assert_eq!((org, seen.lines.load(Ordering::Relaxed)), (7, 12));
        // the same name again, by the same organisation or another: refused, the first kept
        for org in [7, 8] {
            assert!(matches!(
                jobs.start(org, Some(id)),
                Err(ApiError::Conflict { .. })
            ));
        }
        assert_eq!(jobs.get(id).unwrap().0, 7);
        let (other, _) = jobs.start(7, None).unwrap();
        assert_ne!(other, id);
    }

    #[test]
    fn a_job_name_is_sixteen_hexadecimal_digits() {
        assert_eq!(wanted_job(None).unwrap(), None);
        assert_eq!(wanted_job(Some("x=1")).unwrap(), None);
        assert_eq!(
            wanted_job(Some("job=1F3A09c2b47e5d60")).unwrap(),
            Some(0x1f3a_09c2_b47e_5d60)
        );
        for bad in [
            "job=",
            "job=1f3a",
            "job=1f3a09c2b47e5d600",
            "job=1f3a09c2b47e5d6g",
            "job=%2B1f3a09c2b47e5d6",
        ] {
            match wanted_job(Some(bad)) {
                Err(ApiError::InvalidParams { params, .. }) => {
                    assert_eq!(params[0].0, "job", "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
