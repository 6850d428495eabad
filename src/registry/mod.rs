//! The decree's rules over the two lists. Handlers call these functions; they never decide
//! anything themselves.
//!
//! So far: the **network check** (art. 2.2.11.5, 2.2.11.9) with the **roaming exemption**
//! (art. 2.2.11.1); **reports, recovery, consultation and history** (art. 2.2.11.6,
//! `reports.rs`); **activation and owners** (art. 2.2.11.8, `owners.rs`); each IMEI's
//! **history** (`history.rs`); **authorised sellers** (art. 2.2.11.3, `sellers.rs`); bulk
//! import (`import.rs`); **registrations** over the API (`registrations.rs`); the
//! **exchange** with affiliates abroad (art. 2.2.11.6 par. 1, `exchange.rs`); online
//! **backups** of the whole registry and the proof of a restore (`backups.rs`).
//!
//! One name per thing in a check, from the inside out: an IMEI's [`Listing`] (on which lists
//! it is) and the subscriber decide, by [`CheckPolicy::decide`], a [`Decision`]: its
//! [`Answer`] (an [`EquipmentStatus`], WHITELISTED, BLACKLISTED or GREYLISTED, or unknown
//! equipment), the [`Reason`] and the listing. The front ends render the answer in their
//! protocol and count it (`metrics.rs`: an answer, or `Unanswered` when the request was
//! malformed or failed).

pub mod backups;
pub mod exchange;
pub mod history;
pub mod import;
pub mod metrics;
pub mod owners;
pub mod registrations;
pub mod reports;
pub mod sellers;

use std::sync::Arc;

use crate::imei::Imei;
use crate::imsi::{Imsi, Mcc};
use crate::metrics::Metrics;
use crate::store::{
    FEW, Inserted, List, ListRecord, NegativeRecord, PositiveRecord, Store, StoreError,
};

/// The three answers of an Equipment Identity Register (TS 29.511 `EquipmentStatus`, S13
/// Equipment-Status, MAP CHECK_IMEI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EquipmentStatus {
    /// May use the network.
    Whitelisted,
    /// Must not use the network.
    Blacklisted,
    /// May use the network; the operator watches it.
    Greylisted,
}

impl EquipmentStatus {
    /// The TS 29.511 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EquipmentStatus::Whitelisted => "WHITELISTED",
            EquipmentStatus::Blacklisted => "BLACKLISTED",
            EquipmentStatus::Greylisted => "GREYLISTED",
        }
    }
}

/// What a check answers: a status, or "unknown equipment" (TS 29.511 404
/// `ERROR_EQUIPMENT_UNKNOWN`, S13 Experimental-Result 5422).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    /// One of the three statuses.
    Status(EquipmentStatus),
    /// The IMEI is on neither list and the interface is configured to say so.
    Unknown,
}

impl Answer {
    /// Upper-case name: the status, or `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Status(status) => status.as_str(),
            Answer::Unknown => "UNKNOWN",
        }
    }
}

/// Why a check answered as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// On the positive list and not on the negative list.
    Registered,
    /// On the negative list (reported stolen or lost, art. 2.2.11.6).
    ReportedStolenOrLost,
    /// On neither list: the interface's configured answer.
    NotListed,
    /// The subscriber is an inbound roamer, never restricted (art. 2.2.11.1).
    RoamingExempt,
}

impl Reason {
    /// Upper-case name for APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Registered => "REGISTERED",
            Reason::ReportedStolenOrLost => "REPORTED_STOLEN_OR_LOST",
            Reason::NotListed => "NOT_LISTED",
            Reason::RoamingExempt => "ROAMING_EXEMPT",
        }
    }
}

/// The interface a check came in on; each may answer "on neither list" differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interface {
    /// `GET /v1/imeis/{imei}/status` and `POST /v1/checks`.
    Native,
    /// TS 29.511 N5g-eir (the AMF).
    N5gEir,
    /// TS 29.272 S13 ME-Identity-Check over Diameter (the MME).
    S13,
}

impl Interface {
    /// Every interface, in a fixed order usable as an array index.
    pub const ALL: [Interface; 3] = [Interface::Native, Interface::N5gEir, Interface::S13];

    /// Index into per-interface arrays.
    pub fn index(self) -> usize {
        match self {
            Interface::Native => 0,
            Interface::N5gEir => 1,
            Interface::S13 => 2,
        }
    }

    /// Lower-case name for config and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Native => "native",
            Interface::N5gEir => "n5g_eir",
            Interface::S13 => "s13",
        }
    }
}

/// On which lists an IMEI is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// On the positive list.
    pub positive: bool,
    /// On the negative list.
    pub negative: bool,
}

/// The outcome of a network check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Which lists hold the IMEI.
    pub listing: Listing,
    /// What to answer.
    pub answer: Answer,
    /// Why.
    pub reason: Reason,
}

/// The configurable parts of the check rule.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckPolicy {
    /// MCCs of the home country (732 for Colombia). An IMSI from any other MCC is roaming.
    pub home_mccs: Vec<Mcc>,
    /// Answer per interface for an IMEI on neither list, indexed by [`Interface::index`].
    pub not_listed: [Answer; Interface::ALL.len()],
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy {
            home_mccs: vec![Mcc::parse("732").expect("valid MCC")],
            not_listed: [
                Answer::Status(EquipmentStatus::Greylisted),
                Answer::Unknown,
                Answer::Unknown,
            ],
        }
    }
}

impl CheckPolicy {
    /// The check rule, given where the IMEI is listed and who is attaching.
    ///
    /// - An inbound roamer (IMSI with a foreign MCC) is never restricted (art. 2.2.11.1).
    /// - On the negative list: blacklisted, whether or not also on the positive list
    ///   (art. 2.2.11.6, 2.2.11.9).
    /// - On the positive list only: whitelisted (art. 2.2.11.8).
    /// - On neither: the interface's configured answer.
    ///
    /// Without an IMSI, or with one that is not an IMSI, nothing is exempt.
    pub fn decide(&self, interface: Interface, listing: Listing, imsi: Option<&Imsi>) -> Decision {
        let (answer, reason) = if imsi.is_some_and(|imsi| !self.home_mccs.contains(&imsi.mcc())) {
            (
                Answer::Status(EquipmentStatus::Whitelisted),
                Reason::RoamingExempt,
            )
        } else if listing.negative {
            (
                Answer::Status(EquipmentStatus::Blacklisted),
                Reason::ReportedStolenOrLost,
            )
        } else if listing.positive {
            (
                Answer::Status(EquipmentStatus::Whitelisted),
                Reason::Registered,
            )
        } else {
            (self.not_listed[interface.index()], Reason::NotListed)
        };
        Decision {
            listing,
            answer,
            reason,
        }
    }
}

/// Errors of the registry's operations.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed; nothing was decided or changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller's roles or scope do not allow it (refused changes are audited).
    #[error("your roles do not allow this")]
    Forbidden,
    /// Field by field, what is wrong with the input.
    #[error("the input is invalid")]
    Invalid(crate::fields::FieldErrors),
    /// It contradicts what is recorded.
    #[error("{0}")]
    Conflict(String),
    /// Nothing recorded to act on.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The decree's rules refuse it; `cause` names the rule for machines.
    #[error("{detail}")]
    Refused {
        /// Which rule.
        cause: RefusalCause,
        /// The reason, for people.
        detail: String,
    },
    /// A stored record does not decode.
    #[error("a stored {0} is corrupt")]
    Corrupt(&'static str),
}

/// Which of the decree's rules refused an operation ([`RegistryError::Refused`]); the API
/// names each in its problem's `cause`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalCause {
    /// The device is on the negative list: it may not be activated (art. 2.2.11.8).
    EquipmentReported,
    /// The device is on neither list and no proof of legal acquisition was given
    /// (art. 2.2.11.8), or a recovery finds no report to exclude.
    EquipmentNotRegistered,
    /// The device is bound to another owner: a transfer comes first.
    OwnerConflict,
    /// A transfer names a current owner who is not the one on record.
    OwnerMismatch,
    /// A delta export across a bulk load: export the whole list.
    FullExportRequired,
}

impl RefusalCause {
    /// Whether the refusal tells a caller its guess of an owner's ID number was wrong: whoever
    /// meets it often is guessing (the API counts it against the caller's refusal budget).
    pub fn is_owner_guess(self) -> bool {
        matches!(
            self,
            RefusalCause::OwnerConflict | RefusalCause::OwnerMismatch
        )
    }
}

/// Most checks [`Registry::check_each`] looks up together; front ends gather at most this
/// many requests of one read for it.
pub const CHECKS_AT_ONCE: usize = FEW;

/// The registry: the lists and the rules over them. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    store: Arc<Store>,
    policy: Arc<CheckPolicy>,
    /// What the front ends count of each check they answer.
    metrics: metrics::CheckMetrics,
}

impl Registry {
    /// A registry over `store` applying `policy`, its check metrics registered in `metrics`.
    pub fn new(store: Arc<Store>, policy: CheckPolicy, metrics: &Metrics) -> Registry {
        Registry {
            store,
            policy: Arc::new(policy),
            metrics: metrics::CheckMetrics::new(metrics),
        }
    }

    /// The check metrics, for the front ends to count the checks they answer.
    pub fn metrics(&self) -> &metrics::CheckMetrics {
        &self.metrics
    }

    /// The network check of one IMEI. Answered from memory: it cannot fail.
    ///
    /// Performance-critical: every attach runs it. No allocation, no lock but one filter
    /// shard's and one index shard's read lock, no I/O, no log line.
    #[inline]
    pub fn check(&self, interface: Interface, imei: Imei, imsi: Option<&Imsi>) -> Decision {
        self.policy.decide(interface, self.listing(imei), imsi)
    }

    /// On which lists an IMEI is: all the public may know of it (art. 2.2.11.6), and what a
    /// check decides from. From memory, like the check.
    #[inline]
    pub fn listing(&self, imei: Imei) -> Listing {
        // A blacklisted IMEI's positive listing does not change the answer, but the native
        // API reports both lists, so look it up anyway: one filter probe when unknown.
        Listing {
            negative: self.store.contains(List::Negative, imei),
            positive: self.store.contains(List::Positive, imei),
        }
    }

    /// The network checks of several IMEIs, those a front end holds at once (the requests of
    /// one read of a connection): `decided(i, decision)` for each of `checks` in order, the
    /// decision [`Registry::check`] makes of it. Looked up [`CHECKS_AT_ONCE`] at a time, each
    /// step for all of them before the next ([`Store::contains_each`]), so that their waits
    /// for memory overlap.
    ///
    /// Performance-critical: the network check path. No allocation, no I/O, no log line.
    pub fn check_each(
        &self,
        interface: Interface,
        checks: &[(Imei, Option<Imsi>)],
        mut decided: impl FnMut(usize, Decision),
    ) {
        for (group, checks) in checks.chunks(FEW).enumerate() {
            // past `checks.len()`, unused copies of the first
            let mut imeis = [checks[0].0; FEW];
            for (imei, &(check, _)) in imeis.iter_mut().zip(checks) {
                *imei = check;
            }
            let n = checks.len();
            let (mut negative, mut positive) = ([false; FEW], [false; FEW]);
            self.store
                .contains_each(&imeis[..n], &mut negative[..n], &mut positive[..n]);
            for (i, (_, imsi)) in checks.iter().enumerate() {
                let listing = Listing {
                    negative: negative[i],
                    positive: positive[i],
                };
                decided(
                    group * FEW + i,
                    self.policy.decide(interface, listing, imsi.as_ref()),
                );
            }
        }
    }

    /// The network check of equipment identified by something other than an IMEI (a MAC or
    /// EUI-64 PEI of wireline access, TS 29.571): such equipment is on neither list, so it gets
    /// the interface's not-listed answer, and an inbound roamer is still exempt.
    pub fn check_without_imei(&self, interface: Interface, imsi: Option<&Imsi>) -> Decision {
        self.policy.decide(interface, Listing::default(), imsi)
    }

    /// The network check of many IMEIs at once, in order.
    pub fn check_many(
        &self,
        interface: Interface,
        items: &[(Imei, Option<Imsi>)],
    ) -> Vec<Decision> {
        let imeis: Vec<Imei> = items.iter().map(|(imei, _)| *imei).collect();
        let mut negative = Vec::new();
        let mut positive = Vec::new();
        self.store
            .contains_many(List::Negative, &imeis, &mut negative);
        self.store
            .contains_many(List::Positive, &imeis, &mut positive);
        items
            .iter()
            .zip(negative.iter().zip(&positive))
            .map(|((_, imsi), (&negative, &positive))| {
                self.policy
                    .decide(interface, Listing { positive, negative }, imsi.as_ref())
            })
            .collect()
    }

    /// Puts an IMEI on the positive list (or replaces its record). The filter is rebuilt,
    /// larger, in the background once the list outgrows it.
    ///
    /// # Errors
    /// [`RegistryError::Store`] if the write fails; nothing changed then.
    pub fn list_positive(
        &self,
        imei: Imei,
        record: &PositiveRecord,
    ) -> Result<Inserted, RegistryError> {
        let inserted = self.store.insert(imei, record)?;
        self.store.maybe_rebuild_filter(List::Positive);
        Ok(inserted)
    }

    /// Puts an IMEI on the negative list (or replaces its record). Visible to every check
    /// when this returns.
    ///
    /// # Errors
    /// [`RegistryError::Store`] if the write fails; nothing changed then.
    pub fn list_negative(
        &self,
        imei: Imei,
        record: &NegativeRecord,
    ) -> Result<Inserted, RegistryError> {
        let inserted = self.store.insert(imei, record)?;
        self.store.maybe_rebuild_filter(List::Negative);
        Ok(inserted)
    }

    /// Takes an IMEI off the negative list; returns whether it was there. The filter is
    /// rebuilt in the background once enough removals have accumulated.
    ///
    /// # Errors
    /// [`RegistryError::Store`] if the write fails; the IMEI is still listed then.
    pub fn unlist_negative(&self, imei: Imei) -> Result<bool, RegistryError> {
        let removed = self.store.remove(List::Negative, imei)?;
        self.store.maybe_rebuild_filter(List::Negative);
        Ok(removed)
    }

    /// The record of an IMEI on the list of `R`.
    ///
    /// # Errors
    /// [`RegistryError::Store`] if the read fails or the record is corrupt.
    pub fn record<R: ListRecord>(&self, imei: Imei) -> Result<Option<R>, RegistryError> {
        Ok(self.store.get(imei)?)
    }

    /// The store underneath, for bulk import and sizes.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

#[cfg(test)]
pub(crate) mod tests;
