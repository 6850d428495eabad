//! Offline bulk load of a list from CSV: every line validated, the good ones written as SST
//! files and ingested in one atomic step (all accepted lines or none), the bad ones reported
//! with their line numbers.
//!
//! File format: a header line naming the columns, `imei` required, then one device per line.
//! Optional columns: `manufacturer`, `model`, `registrant`, `reference` (positive list);
//! `kind` (`stolen` | `lost`), `reporter`, `reference` (negative list). Fields may be quoted
//! (RFC 4180). IMEIs are checked as registry input: a 15-digit IMEI must carry its check digit.
//!
//! Rules applied (the same as for online registrations):
//! - an IMEI appearing twice in one file is accepted once; later lines are rejected as
//!   duplicates of the first;
//! - an IMEI already on the target list is left as it is (its record, owner included, is
//!   never overwritten by a bulk load) and counted as already listed;
//! - an IMEI on the negative list cannot be loaded into the positive list (art. 2.2.11.6).

use std::collections::BTreeMap;
use std::io::Read;

use crate::imei::{Imei, ParseImeiError};
use crate::registry::{Registry, RegistryError};
use crate::store::{List, ListRecord, NegativeRecord, PositiveRecord, ReportKind};
use crate::timefmt::now_unix;

/// Rejected lines kept with their line number in the report; the rest are only counted.
pub const REPORTED_REJECTIONS: usize = 20;

/// Longest text field accepted, in bytes.
const MAX_FIELD_BYTES: usize = 200;

/// Why one line was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The `imei` field is not an IMEI (format or check digit).
    #[error("imei: {0}")]
    Imei(ParseImeiError),
    /// The same IMEI was on an earlier line.
    #[error("imei: duplicate of line {first}")]
    Duplicate {
        /// Line of the first occurrence, which was accepted.
        first: u64,
    },
    /// Loading into the positive list an IMEI that is reported stolen or lost.
    #[error("imei: on the negative list (reported stolen or lost)")]
    OnNegativeList,
    /// A text field is wrong.
    #[error("{column}: {problem}")]
    Field {
        /// The column.
        column: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// Registering an IMEI that another registrant registered.
    #[error("imei: registered by another registrant")]
    RegisteredByAnother,
    /// The same IMEI on an earlier line of the same upload, already applied.
    #[error("imei: duplicate of line {first} of this upload")]
    DuplicateInUpload {
        /// Line of the first occurrence.
        first: u64,
    },
    /// A line that is not UTF-8 text.
    #[error("the line is not UTF-8 text")]
    NotUtf8,
    /// A line that is not one JSON object (NDJSON uploads).
    #[error("not a JSON object with string fields: {0}")]
    Json(String),
    /// The line does not have as many fields as the header.
    #[error("has {found} fields, the header has {expected}")]
    FieldCount {
        /// Fields on the line.
        found: usize,
        /// Fields in the header.
        expected: usize,
    },
}

impl RejectReason {
    /// A stable name for the kind of rejection, for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            RejectReason::Imei(ParseImeiError::CheckDigit { .. }) => "bad check digit",
            RejectReason::Imei(_) => "bad IMEI format",
            RejectReason::Duplicate { .. } | RejectReason::DuplicateInUpload { .. } => {
                "duplicate within the file"
            }
            RejectReason::RegisteredByAnother => "registered by another registrant",
            RejectReason::Json(_) => "bad JSON",
            RejectReason::NotUtf8 => "not UTF-8",
            RejectReason::OnNegativeList => "on the negative list",
            RejectReason::Field { .. } => "bad field",
            RejectReason::FieldCount { .. } => "wrong number of fields",
        }
    }
}

/// One rejected line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: RejectReason,
}

/// What a bulk load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data lines read (the header not counted).
    pub lines: u64,
    /// Lines whose IMEI is now on the list and was not before.
    pub accepted: u64,
    /// Lines whose IMEI was already on the list; left unchanged.
    pub already_listed: u64,
    /// Rejected lines, counted by [`RejectReason::kind`].
    pub rejected: BTreeMap<&'static str, u64>,
    /// The first [`REPORTED_REJECTIONS`] rejected lines, in line order.
    pub first_rejections: Vec<Rejection>,
}

impl ImportReport {
    /// Total rejected lines.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Why a whole file could not be loaded. Nothing was written then.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The header is missing, lacks `imei`, or names a column this list does not have.
    #[error("line 1 (header): {0}")]
    Header(String),
    /// The file could not be read or is not CSV.
    #[error("reading the file failed at line {line}")]
    Read {
        /// Line being read.
        line: u64,
        /// What failed.
        #[source]
        source: csv::Error,
    },
    /// The store failed; nothing was ingested.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Where a long import is; for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Reading and validating lines; `bytes` read so far.
    Reading {
        /// Bytes of the file consumed.
        bytes: u64,
    },
    /// Checking the lines against both lists.
    Checking,
    /// Writing and ingesting table files.
    Writing,
}

/// The columns each list accepts, in the order they are documented.
fn known_columns(list: List) -> &'static [&'static str] {
    match list {
        List::Positive => &["imei", "manufacturer", "model", "registrant", "reference"],
        List::Negative => &["imei", "kind", "reporter", "reference"],
    }
}

/// Positions of the columns in the file's header.
struct Columns {
    imei: usize,
    /// Optional columns: index into the known columns -> position in the file.
    optional: [Option<usize>; 5],
    count: usize,
}

impl Columns {
    fn from_header(list: List, header: &csv::ByteRecord) -> Result<Columns, ImportError> {
        let known = known_columns(list);
        let mut optional = [None; 5];
        let mut imei = None;
        for (position, raw) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(raw);
            let name = name
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let Some(k) = known.iter().position(|&c| c == name) else {
                return Err(ImportError::Header(format!(
                    "unknown column {name:?} for the {list} list; known columns: {}",
                    known.join(", ")
                )));
            };
            let slot = if k == 0 { &mut imei } else { &mut optional[k] };
            if slot.replace(position).is_some() {
                return Err(ImportError::Header(format!(
                    "column {name:?} appears twice"
                )));
            }
        }
        let imei = imei.ok_or_else(|| {
            ImportError::Header(format!(
                "no \"imei\" column; the header must name the columns, e.g. \"{}\"",
                known.join(",")
            ))
        })?;
        Ok(Columns {
            imei,
            optional,
            count: header.len(),
        })
    }

    /// The text of optional column `k` (index into the known columns) on this line.
    fn text(&self, list: List, record: &csv::ByteRecord, k: usize) -> Result<String, RejectReason> {
        let column = known_columns(list)[k];
        let Some(raw) = self.optional[k].and_then(|p| record.get(p)) else {
            return Ok(String::new());
        };
        let text = std::str::from_utf8(raw)
            .map_err(|_| RejectReason::Field {
                column,
                problem: "not valid UTF-8",
            })?
            .trim();
        if text.len() > MAX_FIELD_BYTES {
            return Err(RejectReason::Field {
                column,
                problem: "longer than 200 bytes",
            });
        }
        if text.chars().any(char::is_control) {
            return Err(RejectReason::Field {
                column,
                problem: "contains a control character",
            });
        }
        Ok(text.to_owned())
    }
}

/// A validated line waiting to be written: its IMEI, line and encoded value in the arena.
struct Parsed {
    imei: Imei,
    line: u64,
    value_start: usize,
    value_len: usize,
}

/// Reads, validates and loads one CSV file into `list`.
///
/// # Errors
/// [`ImportError`] if the header is wrong, the file cannot be read, or the store fails. Bad
/// lines are not errors: they are in the report.
pub fn import_csv(
    registry: &Registry,
    list: List,
    input: impl Read,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let read = |reader: &mut csv::Reader<_>, record: &mut csv::ByteRecord, line: u64| {
        reader
            .read_byte_record(record)
            .map_err(|source| ImportError::Read { line, source })
    };
    if !read(&mut reader, &mut record, 1)? {
        return Err(ImportError::Header("the file is empty".into()));
    }
    let columns = Columns::from_header(list, &record)?;

    let now = now_unix();
    let mut report = ImportReport::default();
    let mut rejections = Vec::new();
    let mut parsed = Vec::new();
    let mut arena = Vec::new();
    let mut line = 1;
    while read(&mut reader, &mut record, line + 1)? {
        line = record.position().map_or(line + 1, |p| p.line());
        report.lines += 1;
        if report.lines % 65_536 == 0 {
            progress(Progress::Reading {
                bytes: reader.position().byte(),
            });
        }
        let value_start = arena.len();
        match parse_line(list, &columns, &record, now, &mut arena) {
            Ok(imei) => parsed.push(Parsed {
                imei,
                line,
                value_start,
                value_len: arena.len() - value_start,
            }),
            Err(reason) => {
                arena.truncate(value_start);
                rejections.push(Rejection { line, reason });
            }
        }
    }
    progress(Progress::Reading {
        bytes: reader.position().byte(),
    });

    progress(Progress::Checking);
    // Sorting by IMEI groups duplicates (first line first) and is the order SST files need.
    parsed.sort_unstable_by_key(|p| (p.imei, p.line));
    let store = registry.store();
    let check_target = store.len(list) > 0;
    let check_negative = list == List::Positive && store.len(List::Negative) > 0;
    let mut accepted: Vec<&Parsed> = Vec::with_capacity(parsed.len());
    let mut previous: Option<&Parsed> = None;
    for p in &parsed {
        if let Some(first) = previous.filter(|first| first.imei == p.imei) {
            rejections.push(Rejection {
                line: p.line,
                reason: RejectReason::Duplicate { first: first.line },
            });
            continue;
        }
        previous = Some(p);
        if check_negative && store.is_listed(List::Negative, p.imei) {
            rejections.push(Rejection {
                line: p.line,
                reason: RejectReason::OnNegativeList,
            });
        } else if check_target && store.is_listed(list, p.imei) {
            report.already_listed += 1;
        } else {
            accepted.push(p);
        }
    }

    progress(Progress::Writing);
    report.accepted = store
        .ingest(list, accepted.len(), |i| {
            let p = accepted[i];
            (p.imei, &arena[p.value_start..p.value_start + p.value_len])
        })
        .map_err(RegistryError::from)?;

    for r in &rejections {
        *report.rejected.entry(r.reason.kind()).or_default() += 1;
    }
    rejections.sort_unstable_by_key(|r| r.line);
    rejections.truncate(REPORTED_REJECTIONS);
    report.first_rejections = rejections;
    Ok(report)
}

/// Validates one data line and appends its encoded record to `arena`.
fn parse_line(
    list: List,
    columns: &Columns,
    record: &csv::ByteRecord,
    now: u64,
    arena: &mut Vec<u8>,
) -> Result<Imei, RejectReason> {
    if record.len() != columns.count {
        return Err(RejectReason::FieldCount {
            found: record.len(),
            expected: columns.count,
        });
    }
    let raw = record.get(columns.imei).unwrap_or_default();
    let imei = std::str::from_utf8(raw)
        .map_err(|_| RejectReason::Imei(ParseImeiError::NonDigit { position: 1 }))
        .and_then(|s| Imei::parse(s.trim()).map_err(RejectReason::Imei))?;
    match list {
        List::Positive => PositiveRecord {
            registered_at: now,
            manufacturer: columns.text(list, record, 1)?,
            model: columns.text(list, record, 2)?,
            registrant: columns.text(list, record, 3)?,
            reference: columns.text(list, record, 4)?,
            ..PositiveRecord::default()
        }
        .encode_into(arena),
        List::Negative => NegativeRecord {
            listed_at: now,
            kind: match columns.text(list, record, 1)?.to_ascii_lowercase().as_str() {
                "stolen" => ReportKind::Stolen,
                "lost" => ReportKind::Lost,
                "" => ReportKind::Unspecified,
                _ => {
                    return Err(RejectReason::Field {
                        column: "kind",
                        problem: "must be \"stolen\" or \"lost\"",
                    });
                }
            },
            reporter: columns.text(list, record, 2)?,
            reference: columns.text(list, record, 3)?,
            ..NegativeRecord::default()
        }
        .encode_into(arena),
    }
    Ok(imei)
}

#[cfg(test)]
mod tests;
