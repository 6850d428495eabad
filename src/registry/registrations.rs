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
//! Batches are written, in order, on a second thread while the next one is read; a batch that
//! cannot be written stops the upload with that error.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Deserialize;

use super::import::RejectReason;
use super::{Registry, RegistryError};
use crate::accounts::Principal;
use crate::audit::{self, Action, Event, Outcome};
use crate::imei::Imei;
use crate::roles::Permission;
use crate::store::{List, ListRecord, Mutation, PositiveRecord, Puts, Store};
use crate::timefmt::now_unix;

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

/// One validated line waiting for its batch, its record already encoded.
struct Pending {
    line: u64,
    imei: Imei,
    /// Where the line's encoded record is in its batch's `records`.
    record: std::ops::Range<usize>,
}

/// Read lines on their way to the writer, their records in one buffer (see [`Puts`]).
#[derive(Default)]
struct LineBatch {
    lines: Vec<Pending>,
    records: Vec<u8>,
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

    /// Counts one more data line read.
    pub(crate) fn count_line(&mut self, progress: &Progress) {
        self.lines += 1;
        progress.lines.store(self.lines, Ordering::Relaxed);
    }

    /// Adds the outcome of one applied batch.
    pub(crate) fn add_batch(
        &mut self,
        progress: &Progress,
        accepted: u64,
        already: u64,
        rejected: Vec<(u64, RejectReason)>,
    ) {
        self.accepted += accepted;
        self.already_registered += already;
        progress.accepted.fetch_add(accepted, Ordering::Relaxed);
        progress
            .already_registered
            .fetch_add(already, Ordering::Relaxed);
        for (line, reason) in rejected {
            self.reject_line(progress, line, &reason);
        }
    }

    /// Adds what another part of the same upload counted (its batches' outcomes).
    fn merge(&mut self, other: RegistrationReport) {
        self.lines += other.lines;
        self.accepted += other.accepted;
        self.already_registered += other.already_registered;
        for (kind, count) in other.rejected {
            *self.rejected.entry(kind).or_default() += count;
        }
        self.first_rejections.extend(other.first_rejections);
        while self.first_rejections.len() > REPORTED_LINES {
            self.first_rejections.pop_last();
        }
    }

    /// Total rejected lines.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

fn text<'a>(value: &'a str, column: &'static str) -> Result<&'a str, RejectReason> {
    let value = trimmed(value);
    if value.is_empty() {
        return Err(RejectReason::Field {
            column,
            problem: "is required",
        });
    }
    // Bytes first: printable ASCII (nearly every line) needs no decoding.
    let printable = if value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        value.len() <= MAX_FIELD
    } else {
        value.chars().count() <= MAX_FIELD && !value.chars().any(char::is_control)
    };
    if !printable {
        return Err(RejectReason::Field {
            column,
            problem: "at most 100 printable characters",
        });
    }
    Ok(value)
}

fn validate<'a>(
    imei: &str,
    manufacturer: &'a str,
    model: &'a str,
    reference: &'a str,
) -> Result<(Imei, [&'a str; 3]), RejectReason> {
    let imei = Imei::parse(trimmed(imei)).map_err(RejectReason::Imei)?;
    Ok((
        imei,
        [
            text(manufacturer, "manufacturer")?,
            text(model, "model")?,
            text(reference, "reference")?,
        ],
    ))
}

/// One CSV data line's fields, in the order the reader was asked for them.
pub(crate) struct CsvFields<'a> {
    record: &'a csv::StringRecord,
    columns: &'a [Option<usize>],
}

impl CsvFields<'_> {
    /// The `i`-th asked column's value, trimmed; empty if the column is absent.
    pub(crate) fn get(&self, i: usize) -> &str {
        self.columns[i]
            .and_then(|c| self.record.get(c))
            .map_or("", trimmed)
    }
}

/// `s.trim()`, without looking for Unicode white space when `s` begins and ends with a visible
/// ASCII character, as nearly every field does.
#[inline]
fn trimmed(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// Reads a CSV upload: the header must name every `required` column (any order, any case);
/// `optional` ones are found if present. `each` gets every data line's number and its
/// fields (required then optional), or why the line cannot be read (wrong number of fields,
/// not UTF-8), which rejects that line only.
///
/// # Errors
/// [`UploadError::Header`] naming the missing columns; [`UploadError::Read`] if the body
/// fails; whatever `each` returns.
pub(crate) fn read_csv(
    body: impl Read,
    required: &[&str],
    optional: &[&str],
    mut each: impl FnMut(u64, Result<CsvFields<'_>, RejectReason>) -> Result<(), UploadError>,
) -> Result<(), UploadError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(body);
    let read_error = |line: u64, e: csv::Error| UploadError::Read {
        line,
        message: e.to_string(),
    };
    let header = csv.byte_headers().map_err(|e| read_error(1, e))?.clone();
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| find(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(UploadError::Header(missing.join(", ")));
    }
    let columns: Vec<Option<usize>> = required.iter().chain(optional).map(|c| find(c)).collect();
    let mut bytes = csv::ByteRecord::new();
    let mut last_line = 1;
    while csv
        .read_byte_record(&mut bytes)
        .map_err(|e| read_error(last_line + 1, e))?
    {
        let line = bytes.position().map_or(last_line + 1, |p| p.line());
        last_line = line;
        if bytes.len() != header.len() {
            each(
                line,
                Err(RejectReason::FieldCount {
                    found: bytes.len(),
                    expected: header.len(),
                }),
            )?;
            continue;
        }
        match csv::StringRecord::from_byte_record(std::mem::take(&mut bytes)) {
            Ok(record) => {
                each(
                    line,
                    Ok(CsvFields {
                        record: &record,
                        columns: &columns,
                    }),
                )?;
                bytes = record.into_byte_record();
            }
            Err(_) => each(line, Err(RejectReason::NotUtf8))?,
        }
    }
    Ok(())
}

/// Reads a line-per-record upload: `each` gets every non-blank line's number and text, or
/// [`RejectReason::NotUtf8`] for a line that is not UTF-8 (that line only is rejected).
///
/// # Errors
/// [`UploadError::Read`] if the body fails; whatever `each` returns.
fn read_lines(
    body: impl Read,
    mut each: impl FnMut(u64, Result<&str, RejectReason>) -> Result<(), UploadError>,
) -> Result<(), UploadError> {
    let mut reader = std::io::BufReader::with_capacity(1 << 16, body);
    let mut buffer = Vec::new();
    let mut line = 0u64;
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .map_err(|e| UploadError::Read {
                line: line + 1,
                message: e.to_string(),
            })?;
        if read == 0 {
            return Ok(());
        }
        line += 1;
        match std::str::from_utf8(&buffer) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => each(line, Ok(text))?,
            Err(_) => each(line, Err(RejectReason::NotUtf8))?,
        }
    }
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
        self.require(
            principal,
            Permission::Register,
            Action::Registration,
            "list/positive",
        )?;
        // What every line's record shares; `read_upload` fills in the rest line by line.
        let record = PositiveRecord {
            registered_at: now_unix(),
            // the registrant is `registrant_org`; no text repeated per line
            registrant_org: principal.org,
            upload,
            ..PositiveRecord::default()
        };
        // Batches are written on a second thread while the next one is read, so reading and
        // parsing go on while a batch waits for its fsync. Up to two read batches wait for the
        // writer (with one, the reader waited and the core sat idle whenever an fsync ran
        // long). A failed write ends the writer with its error, which is the upload's; the
        // reader stops at its next batch, whose send fails once the writer has hung up.
        let (to_writer, batches) = std::sync::mpsc::sync_channel::<LineBatch>(2);
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                let mut applied = RegistrationReport::default();
                for batch in batches {
                    self.apply_batch(principal, batch, upload, &mut applied, progress)?;
                }
                Ok::<_, UploadError>(applied)
            });
            let read = read_upload(format, body, record, progress, |batch| {
                // the writer's own error (or panic) is what the upload reports; see below
                to_writer.send(batch).map_err(|_| UploadError::Read {
                    line: 0,
                    message: "the batch writer stopped".into(),
                })
            });
            drop(to_writer);
            let applied = writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            let mut report = read?;
            report.merge(applied);
            Ok(report)
        })
    }
}

/// Reads and validates an upload's lines into records like `record` (whose text fields and
/// line it fills in), handing each full batch (and the last one) to `write`; stops at the
/// first error `write` returns. Returns the lines read and rejected.
///
/// `record` is reused for every line (its strings keep their capacity) and encoded as the line
/// is read into the batch's buffer: a line costs no allocation.
fn read_upload(
    format: Format,
    body: impl Read,
    mut record: PositiveRecord,
    progress: &Progress,
    mut write: impl FnMut(LineBatch) -> Result<(), UploadError>,
) -> Result<RegistrationReport, UploadError> {
    let mut report = RegistrationReport::default();
    let new_batch = || LineBatch {
        lines: Vec::with_capacity(BATCH_LINES),
        records: Vec::with_capacity(BATCH_LINES * 96),
    };
    let mut batch = new_batch();
    let mut handle =
        |line: u64, parsed: Result<(Imei, [&str; 3]), RejectReason>| -> Result<(), UploadError> {
            report.count_line(progress);
            match parsed {
                Err(reason) => report.reject_line(progress, line, &reason),
                Ok((imei, [manufacturer, model, reference])) => {
                    for (field, text) in [
                        (&mut record.manufacturer, manufacturer),
                        (&mut record.model, model),
                        (&mut record.reference, reference),
                    ] {
                        field.clear();
                        field.push_str(text);
                    }
                    record.upload_line = line;
                    let start = batch.records.len();
                    record.encode_into(&mut batch.records);
                    batch.lines.push(Pending {
                        line,
                        imei,
                        record: start..batch.records.len(),
                    });
                }
            }
            if batch.lines.len() >= BATCH_LINES {
                write(std::mem::replace(&mut batch, new_batch()))?;
            }
            Ok(())
        };
    match format {
        Format::Csv => read_csv(
            body,
            &["imei", "manufacturer", "model", "reference"],
            &[],
            |line, fields| match fields {
                Ok(f) => handle(line, validate(f.get(0), f.get(1), f.get(2), f.get(3))),
                Err(reason) => handle(line, Err(reason)),
            },
        )?,
        Format::Ndjson => read_lines(body, |line, text| {
            match text.and_then(|text| {
                serde_json::from_str::<JsonLine>(text)
                    .map_err(|e| RejectReason::Json(e.to_string()))
            }) {
                Ok(j) => handle(
                    line,
                    validate(&j.imei, &j.manufacturer, &j.model, &j.reference),
                ),
                Err(reason) => handle(line, Err(reason)),
            }
        })?,
    }
    if !batch.lines.is_empty() {
        write(batch)?;
    }
    Ok(report)
}

impl Registry {
    /// Decides and writes one batch atomically, under the store's write lock.
    fn apply_batch(
        &self,
        principal: &Principal,
        batch: LineBatch,
        upload: u64,
        report: &mut RegistrationReport,
        progress: &Progress,
    ) -> Result<(), UploadError> {
        let now = now_unix();
        let LineBatch { mut lines, records } = batch;
        let span = (
            lines.first().map_or(0, |p| p.line),
            lines.last().map_or(0, |p| p.line),
        );
        // In IMEI order (sorted outside the lock), a line's duplicates follow it.
        lines.sort_unstable_by_key(|p| (p.imei, p.line));
        let outcome = self.store.transact(|store: &Store| {
            let mut puts = Puts::with_capacity(lines.len(), records.len());
            let mut rejected: Vec<(u64, RejectReason)> = Vec::new();
            let mut already = 0u64;
            // the IMEI's earliest line in this batch that was registered or already was
            let mut first: Option<(Imei, u64)> = None;
            for pending in lines {
                if store.is_listed(List::Negative, pending.imei) {
                    rejected.push((pending.line, RejectReason::OnNegativeList));
                    continue;
                }
                if let Some((_, first)) = first.filter(|&(imei, _)| imei == pending.imei) {
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
                        first = Some((pending.imei, pending.line));
                    }
                    continue;
                }
                first = Some((pending.imei, pending.line));
                puts.push(List::Positive, pending.imei, &records[pending.record]);
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
                    span.0,
                    span.1,
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
        report.add_batch(progress, accepted, already, rejected);
        self.store.maybe_rebuild_filter(List::Positive);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
