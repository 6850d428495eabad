//! Streamed uploads: `POST /v1/registrations` (devices for the positive list, as CSV or
//! NDJSON) and the foreign lists of the exchange (`exchange.rs`), and the jobs that let the
//! uploader follow one (`GET /v1/registrations/jobs/{job}`).
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
use hyper::Request;
use hyper::body::Incoming;
use serde_json::{Value, json};

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
    // refused (and audited) before a byte of the body is read
    off_worker_as(&state, &principal, move |state, who| {
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
    upload_stream(&state, &principal, request, move |reader, job, progress| {
        registry.register_upload(&who, format, reader, job, progress)
    })
    .await
}

/// Streams a request body into `apply` on a blocking thread (through a bounded channel: the
/// body is never whole in memory), with a job others can follow, and renders its report.
pub async fn upload_stream<F>(
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
