//! Each IMEI's history: every state change (reported, recovered, activated, owner changed),
//! who made it and when, kept for good in the `history` column family beside the lists.
//! Registration is the positive-list record itself (registrant, time, reference).
//!
//! Owner and subscriber ID numbers in events are personal data: `mask_event` shows them in
//! full only to the regulator and the organisation that recorded them.

use serde::{Deserialize, Serialize};

use crate::accounts::Principal;
use crate::roles::Role;

/// One history event of an IMEI, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// When, Unix seconds.
    pub at: u64,
    /// The acting organisation (absent for console actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<u64>,
    /// The acting user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<u64>,
    /// What happened.
    #[serde(flatten)]
    pub change: Change,
}

/// What happened to an IMEI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Change {
    /// Registered on the positive list (shown from the positive-list record itself).
    Registered {
        /// The declared manufacturer.
        manufacturer: String,
        /// The declared model.
        model: String,
        /// The registrant's reference (import declaration, lot, proof).
        reference: String,
    },
    /// Reported stolen or lost.
    Reported {
        /// `stolen` or `lost`.
        kind: String,
        /// `user` or `authority`.
        reported_by: String,
        /// Case reference.
        reference: String,
        /// The reporting user's ID number (masked for most readers).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        subscriber_id: String,
    },
    /// The report was excluded: the device was recovered.
    Recovered {
        /// The owner's request reference.
        reference: String,
        /// Whether the device is on the positive list after it: it was registered, or
        /// activated with proof, before its report. If not, it is on neither list and needs
        /// registration or proof. Absent in events recorded before this was kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        positive_list: Option<bool>,
    },
    /// Activated on the network; the owner bound if none was.
    Activated {
        /// The owner's ID type.
        owner_id_type: String,
        /// The owner's ID number (masked for most readers).
        owner_id: String,
        /// The proof of legal acquisition, when the IMEI was on neither list.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proof: Option<String>,
    },
    /// The owner changed with the last owner's authorisation (art. 2.2.11.8 par.).
    OwnerChanged {
        /// The previous owner's ID number (masked for most readers).
        from_owner_id: String,
        /// The new owner's ID type.
        owner_id_type: String,
        /// The new owner's ID number (masked for most readers).
        owner_id: String,
        /// How the last owner authorised it.
        authorisation: String,
    },
}

/// Encoding version of a stored event (its first byte); JSON follows.
const HISTORY_VERSION: u8 = 1;

pub(crate) fn encode_event(event: &HistoryEvent) -> Vec<u8> {
    let mut bytes = vec![HISTORY_VERSION];
    serde_json::to_writer(&mut bytes, event).expect("an event always serialises");
    bytes
}

/// Decodes a stored event; `None` if the bytes are not one.
pub(crate) fn decode_event(bytes: &[u8]) -> Option<HistoryEvent> {
    match bytes.split_first() {
        Some((&HISTORY_VERSION, json)) => serde_json::from_slice(json).ok(),
        _ => None,
    }
}

/// `id` in full for the regulator and the organisation `owner_org`; otherwise only its last
/// two characters.
pub fn mask_for(reader: &Principal, owner_org: u64, id: &str) -> String {
    if reader.has(Role::RegulatorAdmin) || reader.org == owner_org {
        id.to_owned()
    } else {
        let visible: String = id
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "{}{visible}",
            "*".repeat(id.chars().count().saturating_sub(2))
        )
    }
}

/// `event` as `reader` may see it.
pub(crate) fn mask_event(mut event: HistoryEvent, reader: &Principal) -> HistoryEvent {
    let org = event.org.unwrap_or(0);
    match &mut event.change {
        Change::Reported { subscriber_id, .. } if !subscriber_id.is_empty() => {
            *subscriber_id = mask_for(reader, org, subscriber_id);
        }
        Change::Activated { owner_id, .. } => *owner_id = mask_for(reader, org, owner_id),
        Change::OwnerChanged {
            from_owner_id,
            owner_id,
            ..
        } => {
            *from_owner_id = mask_for(reader, org, from_owner_id);
            *owner_id = mask_for(reader, org, owner_id);
        }
        Change::Reported { .. } | Change::Recovered { .. } | Change::Registered { .. } => {}
    }
    event
}
