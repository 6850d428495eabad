//! Activation and owners (art. 2.2.11.8).
//!
//! - **Activation**: an operator activates an IMEI for a subscriber (IMSI) and its owner. On
//!   the positive list and not on the negative list: activated, and the owner is bound if none
//!   is. On the negative list: refused, with the reason. On neither list: refused unless proof
//!   of legal acquisition is given (a numbered invoice naming the seller's NIT, the buyer's ID
//!   and the IMEI; or, for a device bought abroad for personal use, the receipt and the CRC
//!   homologation); with proof the IMEI is added to the positive list and activated.
//! - **One owner per IMEI**: an IMEI bound to another owner is refused unless a transfer is
//!   made. The decision runs under the store's write lock, so two activations of one IMEI
//!   cannot both bind.
//! - **Transfer** (par.): only with the last owner's authorisation: their letter with the
//!   purchase invoice or payment receipt, or the owner present at the operator where the
//!   device is active in their name.
//!
//! Owner ID numbers are personal data: they are stored normalised, shown in full only to the
//! regulator and the operator that bound them, and never written to the audit trail.

use serde::Deserialize;

use super::history::{Change, HistoryEvent, encode_event};
use super::{RefusalCause, Registry, RegistryError};
use crate::accounts::Principal;
use crate::audit::{self, Action, Event, Outcome};
use crate::fields::FieldErrors;
use crate::identity::{check_nit, normalise_id_number};
use crate::imei::Imei;
use crate::imsi::Imsi;
use crate::roles::Permission;
use crate::store::{List, ListRecord, Mutation, NegativeRecord, PositiveRecord, Puts, Store};
use crate::timefmt::now_unix;

/// Identification types an owner may present.
pub const ID_TYPES: &[&str] = &["CC", "CE", "PA", "TI", "NIT", "PEP", "PPT"];

/// Proof of legal acquisition for an IMEI on neither list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Proof {
    /// `invoice` (bought in Colombia) or `personal_import` (bought abroad for personal use).
    pub kind: String,
    /// Invoice: its number.
    pub invoice_number: String,
    /// Invoice: the seller's NIT with check digit.
    pub seller_nit: String,
    /// Invoice: the buyer's ID number as printed (must be the owner's).
    pub buyer_id: String,
    /// Invoice: the IMEI as printed (must be this IMEI).
    pub imei: String,
    /// Personal import: the purchase receipt or payment voucher reference.
    pub receipt: String,
    /// Personal import: the CRC homologation reference of the model.
    pub homologation: String,
}

/// An activation request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActivationForm {
    /// The device.
    pub imei: String,
    /// The subscriber's IMSI.
    pub imsi: String,
    /// The owner's identification type.
    pub owner_id_type: String,
    /// The owner's identification number.
    pub owner_id_number: String,
    /// Proof of legal acquisition, needed only for an IMEI on neither list.
    pub proof: Option<Proof>,
}

/// How an activation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activated {
    /// Activated; `bound` says whether the owner was bound now (false: already this owner).
    Activated {
        /// The owner was bound by this activation.
        bound: bool,
        /// The IMEI was added to the positive list with proof.
        added: bool,
    },
}

/// A transfer of ownership.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferForm {
    /// The current owner's ID number, as the operator has it.
    pub current_owner_id_number: String,
    /// The new owner's ID type.
    pub new_owner_id_type: String,
    /// The new owner's ID number.
    pub new_owner_id_number: String,
    /// `letter` (the owner's letter plus the purchase invoice or receipt) or `owner_present`.
    pub authorisation: String,
    /// The letter's reference (for `letter`).
    pub letter_reference: String,
    /// The purchase invoice or payment receipt reference (for `letter`).
    pub purchase_proof: String,
}

fn field(errors: &mut FieldErrors, name: &str, reason: impl Into<String>) {
    errors.0.push((name.into(), reason.into()));
}

fn check_owner(errors: &mut FieldErrors, prefix: &str, id_type: &str, number: &str) -> String {
    if !ID_TYPES.contains(&id_type.trim()) {
        field(
            errors,
            &format!("{prefix}_id_type"),
            format!("must be one of {}", ID_TYPES.join(", ")),
        );
    }
    let normal = normalise_id_number(number);
    if !(5..=15).contains(&normal.len()) || !normal.chars().all(|c| c.is_ascii_alphanumeric()) {
        field(
            errors,
            &format!("{prefix}_id_number"),
            "must be 5 to 15 digits or letters",
        );
    }
    normal
}

fn text(errors: &mut FieldErrors, name: &str, value: &str) {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 100 || value.chars().any(char::is_control) {
        field(
            errors,
            name,
            "is required (at most 100 printable characters)",
        );
    }
}

/// Checks a proof for `imei` and `owner`; returns how it reads in the history.
fn check_proof(proof: &Proof, imei: Imei, owner: &str, errors: &mut FieldErrors) -> String {
    match proof.kind.trim() {
        "invoice" => {
            text(errors, "proof.invoice_number", &proof.invoice_number);
            if let Err(reason) = check_nit(&proof.seller_nit) {
                field(errors, "proof.seller_nit", reason);
            }
            if normalise_id_number(&proof.buyer_id) != owner {
                field(
                    errors,
                    "proof.buyer_id",
                    "must be the owner's identification number",
                );
            }
            if Imei::parse(proof.imei.trim()).ok() != Some(imei) {
                field(errors, "proof.imei", "must be the IMEI being activated");
            }
            format!(
                "invoice {} of seller NIT {}",
                proof.invoice_number.trim(),
                proof.seller_nit.trim()
            )
        }
        "personal_import" => {
            text(errors, "proof.receipt", &proof.receipt);
            text(errors, "proof.homologation", &proof.homologation);
            format!(
                "personal import, receipt {}, homologation {}",
                proof.receipt.trim(),
                proof.homologation.trim()
            )
        }
        _ => {
            field(
                errors,
                "proof.kind",
                "must be \"invoice\" or \"personal_import\"",
            );
            String::new()
        }
    }
}

impl Registry {
    /// Activates an IMEI for its owner (art. 2.2.11.8).
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] for non-operators (audited), [`RegistryError::Invalid`]
    /// naming every wrong field, [`RegistryError::Refused`] with the reason (reported stolen or
    /// lost; not registered and no proof; bound to another owner), [`RegistryError::Store`].
    pub fn activate(
        &self,
        principal: &Principal,
        form: ActivationForm,
    ) -> Result<Activated, RegistryError> {
        self.require(
            principal,
            Permission::Activate,
            Action::Activation,
            "imei/unknown",
        )?;
        let mut errors = FieldErrors::default();
        let imei = Imei::parse(form.imei.trim())
            .map_err(|e| field(&mut errors, "imei", e.to_string()))
            .ok();
        if let Err(e) = Imsi::parse(form.imsi.trim()) {
            field(&mut errors, "imsi", e.to_string());
        }
        let owner = check_owner(
            &mut errors,
            "owner",
            &form.owner_id_type,
            &form.owner_id_number,
        );
        let proof = match (&form.proof, imei) {
            (Some(proof), Some(imei)) => Some(check_proof(proof, imei, &owner, &mut errors)),
            _ => None,
        };
        errors.into_result().map_err(RegistryError::Invalid)?;
        let imei = imei.expect("validated");
        let id_type = form.owner_id_type.trim().to_owned();
        let now = now_unix();
        let target = format!("imei/{imei}");
        let decided = self.store.transact(|store: &Store| {
            if let Some(report) = store.get::<NegativeRecord>(imei)? {
                return Err(RegistryError::Refused {
                    cause: RefusalCause::EquipmentReported,
                    detail: format!(
                        "the IMEI is on the negative list (reported {} on {})",
                        report.kind.as_str(),
                        crate::timefmt::rfc3339(report.listed_at)
                    ),
                });
            }
            let (mut record, added) = match store.get::<PositiveRecord>(imei)? {
                Some(record) => (record, false),
                None => match &proof {
                    None => {
                        return Err(RegistryError::Refused {
                            cause: RefusalCause::EquipmentNotRegistered,
                            detail: "the IMEI is on neither list: give proof of legal acquisition (an invoice, or a personal import's receipt and homologation)".into(),
                        });
                    }
                    Some(proof) => (
                        PositiveRecord {
                            registered_at: now,
                            registrant: format!("org/{} (activation with proof)", principal.org),
                            registrant_org: principal.org,
                            reference: proof.clone(),
                            ..PositiveRecord::default()
                        },
                        true,
                    ),
                },
            };
            let bound = if record.owner_id.is_empty() {
                record.owner_id_type = id_type.clone();
                record.owner_id = owner.clone();
                record.owner_org = principal.org;
                record.owner_since = now;
                true
            } else if record.owner_id == owner {
                false
            } else {
                return Err(RegistryError::Refused {
                    cause: RefusalCause::OwnerConflict,
                    detail: "the IMEI is bound to another owner; the last owner must authorise a transfer first".into(),
                });
            };
            let event = HistoryEvent {
                at: now,
                org: Some(principal.org),
                user: Some(principal.user),
                change: Change::Activated {
                    owner_id_type: id_type.clone(),
                    owner_id: owner.clone(),
                    proof: if added { proof.clone() } else { None },
                },
            };
            let audit_event = Event {
                actor: principal.actor(),
                action: Action::Activation,
                target: target.clone(),
                outcome: Outcome::Done,
                reason: None,
                detail: Some(
                    match (added, bound) {
                        (true, _) => "added with proof and activated",
                        (false, true) => "activated, owner bound",
                        (false, false) => "activated, same owner",
                    }
                    .into(),
                ),
            };
            Ok((
                Mutation {
                    puts: if bound || added {
                        Puts::one(List::Positive, imei, &record.encode())
                    } else {
                        Puts::default()
                    },
                    history: vec![(imei, encode_event(&event))],
                    audit: Some(audit::seal_owned(audit_event, now)),
                    ..Mutation::default()
                },
                Activated::Activated { bound, added },
            ))
        });
        if let Err(RegistryError::Refused { detail, .. }) = &decided {
            self.record_refusal(principal, Action::Activation, target, detail);
        }
        if matches!(decided, Ok(Activated::Activated { added: true, .. })) {
            self.store.maybe_rebuild_filter(List::Positive);
        }
        decided
    }

    /// Changes an IMEI's owner with the last owner's authorisation (art. 2.2.11.8 par.).
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] for non-operators, or for `owner_present` at an operator
    /// other than the one the device is active with (audited); [`RegistryError::Invalid`];
    /// [`RegistryError::NotFound`] if the IMEI has no owner; [`RegistryError::Refused`] if the
    /// current owner given is not the one on record; [`RegistryError::Store`].
    pub fn transfer(
        &self,
        principal: &Principal,
        imei: Imei,
        form: TransferForm,
    ) -> Result<(), RegistryError> {
        let target = format!("imei/{imei}");
        self.require(
            principal,
            Permission::Activate,
            Action::OwnerTransfer,
            &target,
        )?;
        let mut errors = FieldErrors::default();
        let current = normalise_id_number(&form.current_owner_id_number);
        if current.is_empty() {
            field(&mut errors, "current_owner_id_number", "is required");
        }
        let new_owner = check_owner(
            &mut errors,
            "new_owner",
            &form.new_owner_id_type,
            &form.new_owner_id_number,
        );
        let authorisation = match form.authorisation.trim() {
            "letter" => {
                text(&mut errors, "letter_reference", &form.letter_reference);
                text(&mut errors, "purchase_proof", &form.purchase_proof);
                format!(
                    "letter {} with purchase proof {}",
                    form.letter_reference.trim(),
                    form.purchase_proof.trim()
                )
            }
            "owner_present" => "owner present at the operator".to_owned(),
            _ => {
                field(
                    &mut errors,
                    "authorisation",
                    "the last owner's authorisation is required: \"letter\" (with letter_reference and purchase_proof) or \"owner_present\"",
                );
                String::new()
            }
        };
        errors.into_result().map_err(RegistryError::Invalid)?;
        let present = form.authorisation.trim() == "owner_present";
        let id_type = form.new_owner_id_type.trim().to_owned();
        let now = now_unix();
        let decided = self.store.transact(|store: &Store| {
            let Some(mut record) = store.get::<PositiveRecord>(imei)? else {
                return Err(RegistryError::NotFound("owner: the IMEI is not registered"));
            };
            if record.owner_id.is_empty() {
                return Err(RegistryError::NotFound(
                    "owner: none is bound; activate instead",
                ));
            }
            // where first, then who: an operator where the device is not active learns
            // nothing about the owner on record (its ID number is not an oracle)
            if present && record.owner_org != principal.org {
                // the owner presents itself where the device is active in its name
                return Err(RegistryError::Forbidden);
            }
            if record.owner_id != current {
                return Err(RegistryError::Refused {
                    cause: RefusalCause::OwnerMismatch,
                    detail: "the current owner given is not the owner on record".into(),
                });
            }
            let from = std::mem::replace(&mut record.owner_id, new_owner.clone());
            record.owner_id_type = id_type.clone();
            record.owner_org = principal.org;
            record.owner_since = now;
            let event = HistoryEvent {
                at: now,
                org: Some(principal.org),
                user: Some(principal.user),
                change: Change::OwnerChanged {
                    from_owner_id: from,
                    owner_id_type: id_type.clone(),
                    owner_id: new_owner.clone(),
                    authorisation: authorisation.clone(),
                },
            };
            let audit_event = Event {
                actor: principal.actor(),
                action: Action::OwnerTransfer,
                target: target.clone(),
                outcome: Outcome::Done,
                reason: Some(authorisation.clone()),
                detail: None,
            };
            Ok((
                Mutation {
                    puts: Puts::one(List::Positive, imei, &record.encode()),
                    history: vec![(imei, encode_event(&event))],
                    audit: Some(audit::seal_owned(audit_event, now)),
                    ..Mutation::default()
                },
                (),
            ))
        });
        match decided {
            Err(RegistryError::Forbidden) => {
                Err(self.deny(principal, Action::OwnerTransfer, target))
            }
            Err(RegistryError::Refused { cause, detail }) => {
                self.record_refusal(principal, Action::OwnerTransfer, target, &detail);
                Err(RegistryError::Refused { cause, detail })
            }
            other => other,
        }
    }

    /// Records a refusal by the rules (not by role) in the audit trail.
    fn record_refusal(&self, principal: &Principal, action: Action, target: String, why: &str) {
        let event = Event {
            actor: principal.actor(),
            action,
            target,
            outcome: Outcome::Refused,
            reason: Some(why.to_owned()),
            detail: None,
        };
        if let Err(e) = self.store.append_audit(&audit::seal(&event, now_unix())) {
            tracing::error!(error = %e, "could not record a refusal in the audit trail");
        }
    }
}

#[cfg(test)]
mod tests;
