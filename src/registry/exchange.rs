//! The exchange with affiliates abroad (art. 2.2.11.6 par. 1): the negative list goes out in
//! full or as the changes since a sequence number, and foreign or GSMA stolen lists come in.
//!
//! - **Export**: CSV `imei,kind,listed_at,source`, from one snapshot, with the number of the
//!   last change it includes; the next delta starts after that number.
//! - **Delta**: CSV `seq,change,imei,kind,listed_at,source`, one line per change (`listed` or
//!   `removed`) in order. A bulk load (`imeidb import --list negative`) is not logged change
//!   by change; a delta across it is refused with `FULL_EXPORT_REQUIRED`.
//! - **Foreign import**: CSV with `imei` and optional `kind` (`stolen`/`lost`) and `reference`,
//!   streamed, applied in atomic batches. Entries carry their `source`, so they stay distinct
//!   from domestic reports; an IMEI already on the negative list is left as it is.
//!
//! Nothing personal leaves: no subscriber ID, no reporter, no case reference.

use std::io::Read;

use super::import::RejectReason;
use super::registrations::{Progress, RegistrationReport, UploadError, read_csv};
use super::{RefusalCause, Registry, RegistryError};
use crate::accounts::Principal;
use crate::audit::{self, Action, Event, Outcome};
use crate::imei::Imei;
use crate::roles::Permission;
use crate::store::{List, ListRecord, Mutation, NegativeRecord, Puts, ReportKind, Store};
use crate::timefmt;
use crate::timefmt::now_unix;

/// Foreign entries applied per atomic batch.
const BATCH: usize = 50_000;

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn export_line(imei: Imei, record: &NegativeRecord) -> String {
    format!(
        "{imei},{},{},{}\n",
        record.kind.as_str(),
        timefmt::rfc3339(record.listed_at),
        csv_field(if record.source.is_empty() {
            "CO"
        } else {
            &record.source
        })
    )
}

impl Registry {
    /// Refuses (and audits) a caller who may not exchange the negative list with other
    /// registries.
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`].
    pub fn require_exchange(
        &self,
        principal: &Principal,
        action: Action,
    ) -> Result<(), RegistryError> {
        self.require(principal, Permission::Exchange, action, "list/negative")
    }

    fn record_export(&self, principal: &Principal, detail: String) -> Result<(), RegistryError> {
        let event = Event {
            actor: principal.actor(),
            action: Action::ExchangeExport,
            target: "list/negative".into(),
            outcome: Outcome::Done,
            reason: None,
            detail: Some(detail),
        };
        self.store.append_audit(&audit::seal(&event, now_unix()))?;
        Ok(())
    }

    /// Exports the whole negative list: `snapshot_taken` gets the number of the last change
    /// included, then `out` gets the header and one line per entry, in IMEI order, until it
    /// returns `false` (the receiver went away). Returns that number.
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] (audited), [`RegistryError::Store`],
    /// [`RegistryError::Corrupt`].
    pub fn export_negative(
        &self,
        principal: &Principal,
        snapshot_taken: impl FnOnce(u64),
        mut out: impl FnMut(String) -> bool,
    ) -> Result<u64, RegistryError> {
        const HEADER: &str = "imei,kind,listed_at,source\n";
        self.require_exchange(principal, Action::ExchangeExport)?;
        let mut corrupt = false;
        let mut lines = 0u64;
        let mut header_sent = false;
        let seq = self.store.export_negative(snapshot_taken, |imei, bytes| {
            if !std::mem::replace(&mut header_sent, true) && !out(HEADER.into()) {
                return false;
            }
            match NegativeRecord::decode(bytes) {
                Ok(record) => {
                    lines += 1;
                    out(export_line(imei, &record))
                }
                Err(_) => {
                    corrupt = true;
                    false
                }
            }
        })?;
        if corrupt {
            return Err(RegistryError::Corrupt("negative-list entry"));
        }
        if !header_sent {
            out(HEADER.into());
        }
        self.record_export(
            principal,
            format!("full, {lines} entries, up to change {seq}"),
        )?;
        Ok(seq)
    }

    /// Exports the changes after `since`: the header, then `seq,change,imei,kind,listed_at,
    /// source` per change (the record's current state for a `listed` change, empty fields
    /// for one removed since).
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] (audited), [`RegistryError::Refused`] with
    /// `FULL_EXPORT_REQUIRED` across a bulk load, [`RegistryError::Store`].
    pub fn export_negative_changes(
        &self,
        principal: &Principal,
        since: u64,
        mut out: impl FnMut(String) -> bool,
    ) -> Result<(), RegistryError> {
        self.require_exchange(principal, Action::ExchangeExport)?;
        if !out("seq,change,imei,kind,listed_at,source\n".into()) {
            return Ok(());
        }
        let mut failed = None;
        let mut count = 0u64;
        let logged = self.store.negative_changes(since, |seq, listed, imei| {
            count += 1;
            let line = if listed {
                match self.store.get::<NegativeRecord>(imei) {
                    Ok(Some(record)) => format!("{seq},listed,{}", export_line(imei, &record)),
                    Ok(None) => format!("{seq},listed,{imei},,,\n"),
                    Err(e) => {
                        failed = Some(e);
                        return false;
                    }
                }
            } else {
                format!("{seq},removed,{imei},,,\n")
            };
            out(line)
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        if logged.is_none() {
            return Err(RegistryError::Refused {
                cause: RefusalCause::FullExportRequired,
                detail: format!(
                    "a bulk load changed the negative list after change {since}; fetch the full list, then ask for the changes after its sequence number"
                ),
            });
        }
        self.record_export(principal, format!("changes after {since}: {count}"))?;
        Ok(())
    }

    /// Imports a foreign or GSMA stolen list from `source` (CSV with `imei` and optional `kind`
    /// and `reference`), in atomic batches.
    ///
    /// # Errors
    /// [`UploadError::Registry`] with [`RegistryError::Forbidden`] (audited) or
    /// [`RegistryError::Invalid`] for a bad source name; [`UploadError::Header`];
    /// [`UploadError::Read`].
    pub fn import_foreign(
        &self,
        principal: &Principal,
        source: &str,
        body: impl Read,
        progress: &Progress,
    ) -> Result<RegistrationReport, UploadError> {
        self.require_exchange(principal, Action::ExchangeImport)?;
        let source = source.trim();
        if source.is_empty()
            || source.len() > 40
            || !source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || source.eq_ignore_ascii_case("CO")
        {
            return Err(RegistryError::Invalid(crate::fields::FieldErrors(vec![(
                "source".into(),
                "name the list's source: 1 to 40 letters, digits, '-' or '_' (e.g. GSMA), not CO"
                    .into(),
            )]))
            .into());
        }
        let mut report = RegistrationReport::default();
        let mut batch: Vec<(u64, Imei, NegativeRecord)> = Vec::with_capacity(BATCH);
        let now = now_unix();
        read_csv(body, &["imei"], &["kind", "reference"], |line, fields| {
            report.count_line(progress);
            let parsed = fields.and_then(|f| {
                let imei = Imei::parse(f.get(0)).map_err(RejectReason::Imei)?;
                let kind = match f.get(1).to_ascii_lowercase().as_str() {
                    "stolen" => ReportKind::Stolen,
                    "lost" => ReportKind::Lost,
                    "" => ReportKind::Unspecified,
                    _ => {
                        return Err(RejectReason::Field {
                            column: "kind",
                            problem: "must be \"stolen\" or \"lost\"",
                        });
                    }
                };
                let reference = f.get(2);
                if reference.chars().count() > 100 || reference.chars().any(char::is_control) {
                    return Err(RejectReason::Field {
                        column: "reference",
                        problem: "at most 100 printable characters",
                    });
                }
                Ok((
                    imei,
                    NegativeRecord {
                        listed_at: now,
                        kind,
                        reporter: format!("foreign list {source}"),
                        reference: reference.to_owned(),
                        source: source.to_owned(),
                        ..NegativeRecord::default()
                    },
                ))
            });
            match parsed {
                Err(reason) => report.reject_line(progress, line, &reason),
                Ok((imei, negative)) => batch.push((line, imei, negative)),
            }
            if batch.len() >= BATCH {
                self.apply_foreign(
                    principal,
                    source,
                    std::mem::take(&mut batch),
                    &mut report,
                    progress,
                )?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            self.apply_foreign(principal, source, batch, &mut report, progress)?;
        }
        Ok(report)
    }

    fn apply_foreign(
        &self,
        principal: &Principal,
        source: &str,
        batch: Vec<(u64, Imei, NegativeRecord)>,
        report: &mut RegistrationReport,
        progress: &Progress,
    ) -> Result<(), UploadError> {
        let now = now_unix();
        let (accepted, already, duplicates) = self.store.transact(|store: &Store| {
            let mut puts = Puts::default();
            let mut seen = std::collections::HashMap::with_capacity(batch.len());
            let mut already = 0u64;
            let mut duplicates = Vec::new();
            for (line, imei, record) in &batch {
                if let Some(&first) = seen.get(imei) {
                    duplicates.push((*line, RejectReason::Duplicate { first }));
                } else if store.is_listed(List::Negative, *imei) {
                    already += 1;
                    seen.insert(*imei, *line);
                } else {
                    seen.insert(*imei, *line);
                    puts.push(List::Negative, *imei, &record.encode());
                }
            }
            let accepted = puts.len() as u64;
            let event = Event {
                actor: principal.actor(),
                action: Action::ExchangeImport,
                target: "list/negative".into(),
                outcome: Outcome::Done,
                reason: None,
                detail: Some(format!(
                    "source {source}: {accepted} listed, {already} already listed"
                )),
            };
            Ok::<_, RegistryError>((
                Mutation {
                    puts,
                    audit: Some(audit::seal_owned(event, now)),
                    ..Mutation::default()
                },
                (accepted, already, duplicates),
            ))
        })?;
        report.add_batch(progress, accepted, already, duplicates);
        self.store.maybe_rebuild_filter(List::Negative);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
