//! Theft and loss reports, recovery, the authority's consultation, and each IMEI's history
//! (art. 2.2.11.6).
//!
//! - A **report** puts the IMEI on the negative list, durably, before the answer: the next
//!   check sees it. An IMEI need not be registered (stolen phones of unknown origin exist). An
//!   operator reports on behalf of a user (whose ID number it records) or of an authority; an
//!   authority reports directly. Re-sending the same report (same organisation, same reference)
//!   changes nothing; another report of a reported IMEI is refused.
//! - **Recovery** (par. 2): only the organisation that registered the report may exclude it,
//!   at the owner's request; the IMEI leaves the negative list and returns to where it was: on
//!   the positive list if it was registered (or activated with proof) before the report,
//!   otherwise on neither list, to be registered or activated with proof of legal acquisition
//!   like any unregistered device (arts. 2.2.11.7-8): a report and its recovery are no way
//!   onto the positive list. Anyone else is refused, and the attempt is audited.
//! - **Consultation**: an authority reads one negative-list record at a time; every lookup,
//!   found or not, is in the audit trail. There is no bulk read for them.
//! - **History**: every change is kept per IMEI (who, when, what); the reporting user's ID
//!   number is shown only to the regulator and the organisation that recorded it.
//!
//! Each change is decided and written in one [`Store::transact`]: the list entries, the
//! history event and the audit entry land together or not at all.

use serde::Deserialize;

use super::history::{Change, HistoryEvent, encode_event, mask_for};
use super::{Registry, RegistryError};
use crate::accounts::Principal;
use crate::audit::{self, Action, Event, Outcome};
use crate::fields::FieldErrors;
use crate::identity::normalise_id_number;
use crate::imei::Imei;
use crate::roles::{OrgKind, Permission, Role};
use crate::store::{
    List, ListRecord, Mutation, NegativeRecord, PositiveRecord, Puts, ReportKind, ReporterKind,
    Store,
};
use crate::timefmt;
use crate::timefmt::now_unix;

/// A theft/loss report as the API receives it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportForm {
    /// The IMEI (15 digits with its check digit, or 14).
    pub imei: String,
    /// `stolen` or `lost`.
    pub kind: String,
    /// `user` (the device's user, through an operator) or `authority`.
    pub reported_by: String,
    /// The user's identification number, when `reported_by` is `user`.
    pub subscriber_id: String,
    /// The case or report reference (denuncia, radicado).
    pub reference: String,
    /// When it happened: RFC 3339 UTC, a date, or Unix seconds.
    pub occurred_at: String,
}

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// The IMEI is now on the negative list.
    Listed(Imei, NegativeRecord),
    /// The same report was already recorded; nothing changed.
    AlreadyReported(Imei, NegativeRecord),
}

fn field(errors: &mut FieldErrors, name: &str, reason: impl Into<String>) {
    errors.0.push((name.into(), reason.into()));
}

impl ReportForm {
    /// Checks the form for `principal` and returns the IMEI and the record to store.
    fn into_record(
        self,
        principal: &Principal,
        now: u64,
    ) -> Result<(Imei, NegativeRecord), RegistryError> {
        let mut errors = FieldErrors::default();
        let imei = Imei::parse(self.imei.trim())
            .map_err(|e| field(&mut errors, "imei", e.to_string()))
            .ok();
        let kind = match self.kind.trim() {
            "stolen" => Some(ReportKind::Stolen),
            "lost" => Some(ReportKind::Lost),
            _ => {
                field(&mut errors, "kind", "must be \"stolen\" or \"lost\"");
                None
            }
        };
        let by_authority_role = principal.has(Role::Authority);
        let reporter_kind = match (self.reported_by.trim(), by_authority_role) {
            ("authority", _) | ("", true) => ReporterKind::Authority,
            ("user", false) => ReporterKind::User,
            ("user", true) => {
                field(
                    &mut errors,
                    "reported_by",
                    "an authority reports as \"authority\"",
                );
                ReporterKind::Authority
            }
            _ => {
                field(
                    &mut errors,
                    "reported_by",
                    "must be \"user\" or \"authority\"",
                );
                ReporterKind::Unspecified
            }
        };
        let subscriber_id = self.subscriber_id.trim();
        match reporter_kind {
            ReporterKind::User if subscriber_id.is_empty() => field(
                &mut errors,
                "subscriber_id",
                "the reporting user's identification number is required",
            ),
            ReporterKind::User => {
                let normal = normalise_id_number(subscriber_id);
                if !(5..=15).contains(&normal.len())
                    || !normal.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    field(
                        &mut errors,
                        "subscriber_id",
                        "must be 5 to 15 digits or letters",
                    );
                }
            }
            _ if !subscriber_id.is_empty() => field(
                &mut errors,
                "subscriber_id",
                "only for reports by a user; an authority's report carries its case reference",
            ),
            _ => {}
        }
        let reference = self.reference.trim();
        if reference.is_empty() {
            field(
                &mut errors,
                "reference",
                "the case or report reference is required",
            );
        } else if reference.chars().count() > 100 || reference.chars().any(char::is_control) {
            field(&mut errors, "reference", "at most 100 printable characters");
        }
        let occurred_at = match self.occurred_at.trim() {
            "" => {
                field(
                    &mut errors,
                    "occurred_at",
                    "when it happened is required (e.g. 2026-11-20T18:30:00Z)",
                );
                0
            }
            text => match timefmt::parse(text) {
                Some(t) if t <= now + 300 => t,
                Some(_) => {
                    field(&mut errors, "occurred_at", "is in the future");
                    0
                }
                None => {
                    field(
                        &mut errors,
                        "occurred_at",
                        "expected RFC 3339 UTC (2026-11-20T18:30:00Z), a date, or Unix seconds",
                    );
                    0
                }
            },
        };
        errors.into_result().map_err(RegistryError::Invalid)?;
        let record = NegativeRecord {
            listed_at: now,
            kind: kind.expect("validated"),
            reporter: String::new(),
            reference: reference.to_owned(),
            org: principal.org,
            user: principal.user,
            reporter_kind,
            occurred_at,
            subscriber_id: subscriber_id.to_owned(),
            source: String::new(),
        };
        Ok((imei.expect("validated"), record))
    }
}

/// A negative-list record as the reader may see it: the subscriber's ID only for the
/// regulator and the reporting organisation.
pub fn negative_json(imei: Imei, record: &NegativeRecord, reader: &Principal) -> serde_json::Value {
    let mut value = serde_json::json!({
        "imei": imei.to_string(),
        "kind": record.kind.as_str(),
        "reported_by": record.reporter_kind.as_str(),
        "reference": record.reference,
        "listed_at": timefmt::rfc3339(record.listed_at),
        "occurred_at": (record.occurred_at != 0).then(|| timefmt::rfc3339(record.occurred_at)),
        "org": (record.org != 0).then_some(record.org),
    });
    if !record.reporter.is_empty() {
        value["reporter"] = record.reporter.clone().into();
    }
    if !record.source.is_empty() {
        value["source"] = record.source.clone().into();
    }
    if !record.subscriber_id.is_empty() {
        value["subscriber_id"] = mask_for(reader, record.org, &record.subscriber_id).into();
    }
    value
}

impl Registry {
    /// Records a theft/loss report: the IMEI is on the negative list, durably, when this
    /// returns.
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] without the report permission (audited),
    /// [`RegistryError::Invalid`] naming every wrong field, [`RegistryError::Conflict`] if the
    /// IMEI is already reported by another report, [`RegistryError::Store`].
    pub fn report(
        &self,
        principal: &Principal,
        form: ReportForm,
    ) -> Result<Reported, RegistryError> {
        self.require(
            principal,
            Permission::Report,
            Action::ReportCreate,
            "imei/unknown",
        )?;
        let now = now_unix();
        let (imei, record) = form.into_record(principal, now)?;
        let reported = self.store.transact(|store: &Store| {
            if let Some(existing) = store.get::<NegativeRecord>(imei)? {
                if existing.org == record.org && existing.reference == record.reference {
                    return Ok((
                        Mutation::default(),
                        Reported::AlreadyReported(imei, existing),
                    ));
                }
                return Err(RegistryError::Conflict(format!(
                    "{} is already on the negative list (reported {} on {}, reference {:?})",
                    imei,
                    existing.kind.as_str(),
                    timefmt::rfc3339(existing.listed_at),
                    if existing.org == record.org {
                        existing.reference.as_str()
                    } else {
                        "held by another organisation"
                    },
                )));
            }
            let event = HistoryEvent {
                at: now,
                org: Some(principal.org),
                user: Some(principal.user),
                change: Change::Reported {
                    kind: record.kind.as_str().into(),
                    reported_by: record.reporter_kind.as_str().into(),
                    reference: record.reference.clone(),
                    subscriber_id: record.subscriber_id.clone(),
                },
            };
            let audit_event = Event {
                actor: principal.actor(),
                action: Action::ReportCreate,
                target: format!("imei/{imei}"),
                outcome: Outcome::Done,
                reason: None,
                detail: Some(format!(
                    "{}, reported by {}",
                    record.kind.as_str(),
                    record.reporter_kind.as_str()
                )),
            };
            Ok((
                Mutation {
                    puts: Puts::one(List::Negative, imei, &record.encode()),
                    history: vec![(imei, encode_event(&event))],
                    audit: Some(audit::seal_owned(audit_event, now)),
                    ..Mutation::default()
                },
                Reported::Listed(imei, record.clone()),
            ))
        })?;
        self.store.maybe_rebuild_filter(List::Negative);
        Ok(reported)
    }

    /// Excludes a report because the device was recovered, at the owner's request
    /// (`reference`): only the organisation that registered the report may. The IMEI stays
    /// on the positive list if it was there; it is never added to it here.
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] for anyone else (audited), [`RegistryError::NotFound`] if
    /// the IMEI is not reported, [`RegistryError::Invalid`], [`RegistryError::Store`].
    pub fn recover(
        &self,
        principal: &Principal,
        imei: Imei,
        reference: &str,
    ) -> Result<(), RegistryError> {
        let target = format!("imei/{imei}");
        self.require(
            principal,
            Permission::Recover,
            Action::ReportRecover,
            &target,
        )?;
        let reference = reference.trim();
        if reference.is_empty() || reference.chars().count() > 100 {
            return Err(RegistryError::Invalid(FieldErrors(vec![(
                "reference".into(),
                "the owner's request reference is required (at most 100 characters)".into(),
            )])));
        }
        let now = now_unix();
        let outcome = self.store.transact(|store: &Store| {
            let Some(report) = store.get::<NegativeRecord>(imei)? else {
                return Err(RegistryError::NotFound("report"));
            };
            if report.org != principal.org {
                // audited below, once the write lock is released
                return Err(RegistryError::Forbidden);
            }
            // Back to where it was (arts. 2.2.11.7-8): a device registered, or activated with
            // proof, before its report is still on the positive list; one that never was
            // leaves the negative list only, and needs registration or proof like any
            // other unregistered device. A recovery is no proof of legal acquisition.
            let registered = store.is_listed(List::Positive, imei);
            let event = HistoryEvent {
                at: now,
                org: Some(principal.org),
                user: Some(principal.user),
                change: Change::Recovered {
                    reference: reference.to_owned(),
                    positive_list: Some(registered),
                },
            };
            let audit_event = Event {
                actor: principal.actor(),
                action: Action::ReportRecover,
                target: target.clone(),
                outcome: Outcome::Done,
                reason: Some(reference.to_owned()),
                detail: None,
            };
            Ok((
                Mutation {
                    deletes: vec![(List::Negative, imei)],
                    history: vec![(imei, encode_event(&event))],
                    audit: Some(audit::seal_owned(audit_event, now)),
                    ..Mutation::default()
                },
                (),
            ))
        });
        match outcome {
            Err(RegistryError::Forbidden) => {
                Err(self.deny(principal, Action::ReportRecover, target))
            }
            Err(e) => Err(e),
            Ok(()) => {
                self.store.maybe_rebuild_filter(List::Negative);
                Ok(())
            }
        }
    }

    /// An authority reads one negative-list record. Every lookup is audited, found or not.
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] without the consultation permission,
    /// [`RegistryError::Store`] (also if the lookup could not be audited: no unaudited read).
    pub fn consult_negative(
        &self,
        principal: &Principal,
        imei: Imei,
    ) -> Result<Option<NegativeRecord>, RegistryError> {
        self.require(
            principal,
            Permission::ConsultNegative,
            Action::NegativeConsult,
            &format!("imei/{imei}"),
        )?;
        let record = self.store.get::<NegativeRecord>(imei)?;
        let event = Event {
            actor: principal.actor(),
            action: Action::NegativeConsult,
            target: format!("imei/{imei}"),
            outcome: Outcome::Done,
            reason: None,
            detail: Some(
                if record.is_some() {
                    "found"
                } else {
                    "not listed"
                }
                .into(),
            ),
        };
        self.store.append_audit(&audit::seal(&event, now_unix()))?;
        Ok(record)
    }

    /// The history of `imei`, oldest first (its registration, from the positive-list record,
    /// then the stored events), as `reader` may see it (subscriber IDs masked
    /// except for the regulator and the organisation that recorded them).
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] for roles that may not read histories (only the
    /// regulator's administrator and auditors, operators and authorities may),
    /// [`RegistryError::Store`].
    pub fn history(
        &self,
        reader: &Principal,
        imei: Imei,
    ) -> Result<Vec<HistoryEvent>, RegistryError> {
        // an auditor reads every IMEI's history only at the regulator: outside it, an auditor
        // reads its own organisation alone, and a history spans organisations
        let regulator_auditor =
            reader.may(Permission::ReadAudit) && reader.org_kind == OrgKind::Regulator;
        let allowed = regulator_auditor
            || reader.may(Permission::Check)
            || reader.may(Permission::ConsultNegative);
        if !allowed {
            return Err(RegistryError::Forbidden);
        }
        if reader.may(Permission::ConsultNegative) {
            // an authority's lookup, like its negative-list consultations, is audited
            let event = Event {
                actor: reader.actor(),
                action: Action::NegativeConsult,
                target: format!("imei/{imei}"),
                outcome: Outcome::Done,
                reason: None,
                detail: Some("history".into()),
            };
            self.store.append_audit(&audit::seal(&event, now_unix()))?;
        }
        let mut events = Vec::new();
        // An upload or a bulk load registered it; a recovery or an activation with proof
        // (registrant_org set, no upload) has its own event below.
        if let Some(record) = self.store.get::<PositiveRecord>(imei)?
            && record.registered_at != 0
            && (record.upload != 0 || record.registrant_org == 0)
        {
            events.push(HistoryEvent {
                at: record.registered_at,
                org: (record.registrant_org != 0).then_some(record.registrant_org),
                user: None,
                change: Change::Registered {
                    manufacturer: record.manufacturer,
                    model: record.model,
                    reference: record.reference,
                },
            });
        }
        for bytes in self.store.history(imei)? {
            let event = super::history::decode_event(&bytes)
                .ok_or(RegistryError::Corrupt("history event"))?;
            events.push(super::history::mask_event(event, reader));
        }
        Ok(events)
    }

    /// Records a refused attempt in the audit trail and returns the refusal.
    /// Refuses unless one of the caller's roles permits `permission`, and records the refusal
    /// in the audit trail as `action` on `target`. Every registry operation starts with it;
    /// the API also calls it before work that must not start for a caller who may not, such
    /// as reading an upload's body.
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`].
    pub fn require(
        &self,
        principal: &Principal,
        permission: Permission,
        action: Action,
        target: &str,
    ) -> Result<(), RegistryError> {
        if principal.may(permission) {
            Ok(())
        } else {
            Err(self.deny(principal, action, target.to_owned()))
        }
    }

    pub(super) fn deny(
        &self,
        principal: &Principal,
        action: Action,
        target: String,
    ) -> RegistryError {
        let event = Event {
            actor: principal.actor(),
            action,
            target,
            outcome: Outcome::Denied,
            reason: None,
            detail: None,
        };
        if let Err(e) = self.store.append_audit(&audit::seal(&event, now_unix())) {
            tracing::error!(error = %e, "could not record a refused attempt in the audit trail");
        }
        RegistryError::Forbidden
    }
}

#[cfg(test)]
mod tests;
