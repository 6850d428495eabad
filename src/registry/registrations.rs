//! Bulk registration by importers and manufacturers (and operators, for devices they sell):
//! one device per line, millions of lines per upload, read as a stream.
//!
//! Formats: CSV with a header naming `imei`, `manufacturer`, `model`, `reference` (any order,
//! quoted fields allowed), or NDJSON, one object per line with the same fields. Every line is
//! validated; the answer counts accepted lines, lines already registered by the same
//! registrant (idempotent: re-sending a file changes nothing), and rejected lines with their
//! number and reason: bad format, bad check digit, duplicate within the file, registered by
//! another registrant, on the negative list (art. 2.2.11.6).
//!
//! A duplicate within the file is found within its batch, and across batches while the first
//! occurrence was registered by this upload; when a file is re-sent, a repeat of a line that is
//! already registered and lies in another batch counts as already registered (each upload
//! keeps no set of every IMEI it has seen, so memory does not grow with the file).
//!
//! Lines are applied in batches of [`BATCH_LINES`]; each batch is one [`Store::transact`]
//! (entries and the audit entry together), so a crash mid-upload leaves every acknowledged
//! batch in and no half batch. Progress is published to a [`Progress`] as batches land.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Deserialize;

use super::import::RejectReason;
use super::{Registry, RegistryError, now_unix};
use crate::accounts::Principal;
use crate::accounts::audit::{self, Action, Event, Outcome};
use crate::accounts::roles::Permission;
use crate::imei::Imei;
use crate::store::{List, ListRecord, Mutation, PositiveRecord, Store};

/// Lines applied per atomic batch.
pub const BATCH_LINES: usize = 50_000;
/// Longest text field, in characters.
const MAX_FIELD: usize = 100;

/// The upload's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// Counters of a running or finished upload, readable while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Data lines read so far.
    pub lines: AtomicU64,
    /// Lines applied (accepted) so far.
    pub accepted: AtomicU64,
    /// Lines already registered by the same registrant so far.
    pub already_registered: AtomicU64,
    /// Lines rejected so far.
    pub rejected: AtomicU64,
    /// The upload ended (completely or not).
    pub done: AtomicBool,
}

/// The answer to an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationReport {
    /// Data lines read.
    pub lines: u64,
    /// Now registered by this upload.
    pub accepted: u64,
    /// Already registered by the same registrant; unchanged.
    pub already_registered: u64,
    /// Rejected lines by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// The first [`REPORTED_LINES`] rejected lines by line number, with the reason.
    pub first_rejections: BTreeMap<u64, String>,
}

/// Rejected lines reported one by one (the rest are counted by reason).
pub const REPORTED_LINES: usize = 1000;

/// Why a whole upload stopped. Batches applied before it stay applied.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The CSV header lacks a column.
    #[error(
        "the header must name the columns imei, manufacturer, model and reference; missing: {0}"
    )]
    Header(String),
    /// The body could not be read (the client went away).
    #[error("reading the upload failed after line {line}: {message}")]
    Read {
        /// Last line read.
        line: u64,
        /// What failed.
        message: String,
    },
    /// A rule or the store refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine {
    imei: String,
    #[serde(default)]
    manufacturer: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    reference: String,
}

/// One validated line waiting for its batch.
struct Pending {
    line: u64,
    imei: Imei,
    record: PositiveRecord,
}

impl RegistrationReport {
    /// Counts `line` as rejected for `reason`.
    pub(crate) fn reject_line(&mut self, progress: &Progress, line: u64, reason: &RejectReason) {
        *self.rejected.entry(reason.kind()).or_default() += 1;
        progress.rejected.fetch_add(1, Ordering::Relaxed);
        self.first_rejections.insert(line, reason.to_string());
        if self.first_rejections.len() > REPORTED_LINES {
            self.first_rejections.pop_last();
        }
    }

    /// Total rejected lines.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

fn text(value: &str, column: &'static str) -> Result<String, RejectReason> {
    let value = value.trim();
    if value.is_empty() {
        return Err(RejectReason::Field {
            column,
            problem: "is required",
        });
    }
    if value.chars().count() > MAX_FIELD || value.chars().any(char::is_control) {
        return Err(RejectReason::Field {
            column,
            problem: "at most 100 printable characters",
        });
    }
    Ok(value.to_owned())
}

fn validate(
    imei: &str,
    manufacturer: &str,
    model: &str,
    reference: &str,
) -> Result<(Imei, [String; 3]), RejectReason> {
    let imei = Imei::parse(imei.trim()).map_err(RejectReason::Imei)?;
    Ok((
        imei,
        [
            text(manufacturer, "manufacturer")?,
            text(model, "model")?,
            text(reference, "reference")?,
        ],
    ))
}

impl Registry {
    /// Registers the devices of an upload read from `body`, applying each batch of
    /// [`BATCH_LINES`] atomically. `upload` identifies it (unique per upload).
    ///
    /// # Errors
    /// [`UploadError::Registry`] with [`RegistryError::Forbidden`] for roles that do not
    /// register (audited); [`UploadError::Header`]; [`UploadError::Read`] if the body fails
    /// mid-way (earlier batches stay applied and are counted in `progress`).
    pub fn register_upload(
        &self,
        principal: &Principal,
        format: Format,
        body: impl Read,
        upload: u64,
        progress: &Progress,
    ) -> Result<RegistrationReport, UploadError> {
        if !principal.may(Permission::Register) {
            return Err(self
                .deny(principal, Action::Registration, "list/positive".into())
                .into());
        }
        let mut report = RegistrationReport::default();
        let mut batch: Vec<Pending> = Vec::with_capacity(BATCH_LINES);
        let now = now_unix();
        let handle = |line: u64,
                      parsed: Result<(Imei, [String; 3]), RejectReason>,
                      report: &mut RegistrationReport,
                      batch: &mut Vec<Pending>|
         -> Result<(), UploadError> {
            // data lines, not line numbers: blank lines are skipped and not counted
            report.lines += 1;
            progress.lines.store(report.lines, Ordering::Relaxed);
            match parsed {
                Err(reason) => report.reject_line(progress, line, &reason),
                Ok((imei, [manufacturer, model, reference])) => batch.push(Pending {
                    line,
                    imei,
                    record: PositiveRecord {
                        registered_at: now,
                        // the registrant is `registrant_org`; no text repeated per line
                        manufacturer,
                        model,
                        reference,
                        registrant_org: principal.org,
                        upload,
                        upload_line: line,
                        ..PositiveRecord::default()
                    },
                }),
            }
            if batch.len() >= BATCH_LINES {
                self.apply_batch(principal, std::mem::take(batch), upload, report, progress)?;
            }
            Ok(())
        };
        match format {
            Format::Csv => {
                let mut csv = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .trim(csv::Trim::All)
                    .from_reader(body);
                let header = csv.headers().map_err(|e| UploadError::Read {
                    line: 0,
                    message: e.to_string(),
                })?;
                let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
                let columns: Vec<Option<usize>> = ["imei", "manufacturer", "model", "reference"]
                    .iter()
                    .map(|c| find(c))
                    .collect();
                let missing: Vec<&str> = ["imei", "manufacturer", "model", "reference"]
                    .iter()
                    .zip(&columns)
                    .filter(|(_, c)| c.is_none())
                    .map(|(n, _)| *n)
                    .collect();
                if !missing.is_empty() {
                    return Err(UploadError::Header(missing.join(", ")));
                }
                let columns: Vec<usize> = columns.into_iter().flatten().collect();
                let width = header.len();
                let mut record = csv::StringRecord::new();
                loop {
                    match csv.read_record(&mut record) {
                        Ok(false) => break,
                        Ok(true) => {}
                        Err(e) => {
                            return Err(UploadError::Read {
                                line: report.lines + 1,
                                message: e.to_string(),
                            });
                        }
                    }
                    let line = record.position().map_or(report.lines + 2, |p| p.line());
                    let parsed = if record.len() != width {
                        Err(RejectReason::FieldCount {
                            found: record.len(),
                            expected: width,
                        })
                    } else {
                        let field = |i: usize| record.get(columns[i]).unwrap_or("");
                        validate(field(0), field(1), field(2), field(3))
                    };
                    handle(line, parsed, &mut report, &mut batch)?;
                }
            }
            Format::Ndjson => {
                let reader = std::io::BufReader::with_capacity(1 << 16, body);
                for (i, text) in reader.lines().enumerate() {
                    let line = i as u64 + 1;
                    let text = text.map_err(|e| UploadError::Read {
                        line,
                        message: e.to_string(),
                    })?;
                    if text.trim().is_empty() {
                        continue;
                    }
                    let parsed = serde_json::from_str::<JsonLine>(&text)
                        .map_err(|e| RejectReason::Json(e.to_string()))
                        .and_then(|j| validate(&j.imei, &j.manufacturer, &j.model, &j.reference));
                    handle(line, parsed, &mut report, &mut batch)?;
                }
            }
        }
        if !batch.is_empty() {
            self.apply_batch(principal, batch, upload, &mut report, progress)?;
        }
        progress.done.store(true, Ordering::Relaxed);
        Ok(report)
    }

    /// Decides and writes one batch atomically, under the store's write lock.
    fn apply_batch(
        &self,
        principal: &Principal,
        batch: Vec<Pending>,
        upload: u64,
        report: &mut RegistrationReport,
        progress: &Progress,
    ) -> Result<(), UploadError> {
        let now = now_unix();
        let outcome = self.store.transact(|store: &Store| {
            let mut puts = Vec::with_capacity(batch.len());
            let mut rejected: Vec<(u64, RejectReason)> = Vec::new();
            let mut already = 0u64;
            let mut first_in_batch: HashMap<Imei, u64> = HashMap::with_capacity(batch.len());
            for pending in &batch {
                if store.is_listed(List::Negative, pending.imei) {
                    rejected.push((pending.line, RejectReason::OnNegativeList));
                    continue;
                }
                if let Some(&first) = first_in_batch.get(&pending.imei) {
                    rejected.push((pending.line, RejectReason::Duplicate { first }));
                    continue;
                }
                if store.is_listed(List::Positive, pending.imei) {
                    let existing = store
                        .get::<PositiveRecord>(pending.imei)?
                        .unwrap_or_default();
                    if existing.registrant_org != principal.org {
                        rejected.push((pending.line, RejectReason::RegisteredByAnother));
                    } else if existing.upload == upload {
                        rejected.push((
                            pending.line,
                            RejectReason::DuplicateInUpload {
                                first: existing.upload_line,
                            },
                        ));
                    } else {
                        already += 1;
                        first_in_batch.insert(pending.imei, pending.line);
                    }
                    continue;
                }
                first_in_batch.insert(pending.imei, pending.line);
                puts.push((List::Positive, pending.imei, pending.record.encode()));
            }
            let accepted = puts.len() as u64;
            let event = Event {
                actor: principal.actor(),
                action: Action::Registration,
                target: "list/positive".into(),
                outcome: Outcome::Done,
                reason: None,
                detail: Some(format!(
                    "upload {upload:x}, lines {}-{}: {accepted} registered, {already} already registered, {} rejected",
                    batch.first().map_or(0, |p| p.line),
                    batch.last().map_or(0, |p| p.line),
                    rejected.len()
                )),
            };
            Ok::<_, RegistryError>((
                Mutation {
                    puts,
                    audit: Some(audit::seal_owned(event, now)),
                    ..Mutation::default()
                },
                (accepted, already, rejected),
            ))
        })?;
        let (accepted, already, rejected) = outcome;
        report.accepted += accepted;
        report.already_registered += already;
        progress.accepted.fetch_add(accepted, Ordering::Relaxed);
        progress
            .already_registered
            .fetch_add(already, Ordering::Relaxed);
        for (line, reason) in rejected {
            report.reject_line(progress, line, &reason);
        }
        self.store.maybe_rebuild_filter(List::Positive);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
