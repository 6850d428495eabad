//! The audit trail: one entry per change of anything (organisations, users, tokens, lists,
//! owners), per refused attempt to change something, and per authority lookup.
//!
//! Each entry says when, who (user, organisation, roles), what (action and target), how it
//! ended, and why where the API takes a reason. Owner ID numbers and tokens never appear: a
//! target names a record by its registry id (`user/12`, `token/9f…`), never by a person's
//! number.
//!
//! Entries are hash-chained: each carries the SHA-256 of the entry before it, and the chain's
//! head (last number and hash) is stored with every entry. Changing, removing or reordering
//! any entry in the RocksDB files breaks the chain at that entry, which [`verify`] reports.
//! (Rewriting the whole chain from some entry on, head included, needs the files and this
//! code: anchor the head elsewhere, e.g. print it in a signed report, to detect that too.)

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex::{from_hex, hex};
use crate::roles::Role;
use crate::store::{AuditHead, Store, StoreError};
use crate::timefmt;

/// Encoding version of a stored entry (its first byte); JSON follows.
const VERSION: u8 = 1;

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// An authenticated user, with the roles the user held then.
    User {
        /// The user's id.
        user: u64,
        /// The user's organisation.
        org: u64,
        /// The user's roles.
        roles: Vec<Role>,
        /// The id of the token that acted: with the token's `issued_by`, who could have held
        /// it. Absent in entries written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// The id of the web session that acted (a person signed in with a password), when
        /// no token did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// Who issued the credential that acted, when not the user itself: the administrator
        /// who issued the token, or the one-time code the password was set with, and so could
        /// have held it. Absent when the user made its own credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issued_by: Option<u64>,
    },
    /// Someone not signed in, known only by the address it came from: a failed sign-in.
    Client {
        /// The client's address (IPv4, or the /64 of an IPv6 address).
        address: String,
    },
    /// Someone at the server's console (`imeidb admin bootstrap`, `imeidb import`).
    Console {
        /// The command that was run.
        command: String,
    },
}

/// What was done. The names are stable: auditors filter by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// The regulator organisation and its first administrator were created.
    #[serde(rename = "registry.bootstrap")]
    Bootstrap,
    /// An organisation was created.
    #[serde(rename = "org.create")]
    OrgCreate,
    /// An organisation's data changed.
    #[serde(rename = "org.update")]
    OrgUpdate,
    /// An organisation was suspended.
    #[serde(rename = "org.suspend")]
    OrgSuspend,
    /// An organisation was reactivated.
    #[serde(rename = "org.reactivate")]
    OrgReactivate,
    /// A user was created.
    #[serde(rename = "user.create")]
    UserCreate,
    /// A user's data or roles changed.
    #[serde(rename = "user.update")]
    UserUpdate,
    /// An organisation administrator deactivated a user.
    #[serde(rename = "user.deactivate")]
    UserDeactivate,
    /// An organisation administrator reactivated a user.
    #[serde(rename = "user.activate")]
    UserActivate,
    /// The regulator suspended a user.
    #[serde(rename = "user.suspend")]
    UserSuspend,
    /// The regulator lifted a user's suspension.
    #[serde(rename = "user.reactivate")]
    UserReactivate,
    /// A token was issued.
    #[serde(rename = "token.create")]
    TokenCreate,
    /// A token was revoked.
    #[serde(rename = "token.revoke")]
    TokenRevoke,
    /// A list was bulk-loaded.
    #[serde(rename = "list.import")]
    ListImport,
    /// A device was reported stolen or lost.
    #[serde(rename = "report.create")]
    ReportCreate,
    /// A report was excluded because the device was recovered.
    #[serde(rename = "report.recover")]
    ReportRecover,
    /// An authority consulted the negative list (one record).
    #[serde(rename = "negative.consult")]
    NegativeConsult,
    /// A device was activated (and its owner bound), or an activation was refused.
    #[serde(rename = "activation.create")]
    Activation,
    /// A device's owner changed.
    #[serde(rename = "owner.transfer")]
    OwnerTransfer,
    /// An authorised seller was recorded or changed.
    #[serde(rename = "seller.record")]
    SellerRecord,
    /// A batch of an upload was registered on the positive list.
    #[serde(rename = "registration.batch")]
    Registration,
    /// The negative list (or its changes) was exported for the exchange.
    #[serde(rename = "exchange.export")]
    ExchangeExport,
    /// A batch of a foreign list was imported into the negative list.
    #[serde(rename = "exchange.import")]
    ExchangeImport,
    /// A user's requests were refused so often that the rest of the minute's are refused
    /// unread (`api`: a flood of forbidden requests).
    #[serde(rename = "access.throttle")]
    AccessThrottle,
    /// An administrator issued a one-time code to set a user's password (clearing any
    /// password the user had).
    #[serde(rename = "password.setup")]
    PasswordSetup,
    /// A user set its password with a one-time code.
    #[serde(rename = "password.set")]
    PasswordSet,
    /// A person signed in on the web pages, or failed to (wrong password, locked account).
    #[serde(rename = "session.sign_in")]
    SignIn,
    /// A person signed out.
    #[serde(rename = "session.sign_out")]
    SignOut,
    /// A backup of the registry was taken (by the regulator or on the `[backup]` schedule),
    /// or failed.
    #[serde(rename = "backup.create")]
    BackupCreate,
    /// A read replica fetched a snapshot of both lists (IMEIs only).
    #[serde(rename = "replication.snapshot")]
    ReplicationSnapshot,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 30] = [
        Action::Bootstrap,
        Action::OrgCreate,
        Action::OrgUpdate,
        Action::OrgSuspend,
        Action::OrgReactivate,
        Action::UserCreate,
        Action::UserUpdate,
        Action::UserDeactivate,
        Action::UserActivate,
        Action::UserSuspend,
        Action::UserReactivate,
        Action::TokenCreate,
        Action::TokenRevoke,
        Action::ListImport,
        Action::ReportCreate,
        Action::ReportRecover,
        Action::NegativeConsult,
        Action::Activation,
        Action::OwnerTransfer,
        Action::SellerRecord,
        Action::Registration,
        Action::ExchangeExport,
        Action::ExchangeImport,
        Action::AccessThrottle,
        Action::PasswordSetup,
        Action::PasswordSet,
        Action::SignIn,
        Action::SignOut,
        Action::BackupCreate,
        Action::ReplicationSnapshot,
    ];

    /// The stable name (`org.create`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Bootstrap => "registry.bootstrap",
            Action::OrgCreate => "org.create",
            Action::OrgUpdate => "org.update",
            Action::OrgSuspend => "org.suspend",
            Action::OrgReactivate => "org.reactivate",
            Action::UserCreate => "user.create",
            Action::UserUpdate => "user.update",
            Action::UserDeactivate => "user.deactivate",
            Action::UserActivate => "user.activate",
            Action::UserSuspend => "user.suspend",
            Action::UserReactivate => "user.reactivate",
            Action::TokenCreate => "token.create",
            Action::TokenRevoke => "token.revoke",
            Action::ListImport => "list.import",
            Action::ReportCreate => "report.create",
            Action::ReportRecover => "report.recover",
            Action::NegativeConsult => "negative.consult",
            Action::Activation => "activation.create",
            Action::OwnerTransfer => "owner.transfer",
            Action::SellerRecord => "seller.record",
            Action::Registration => "registration.batch",
            Action::ExchangeExport => "exchange.export",
            Action::ExchangeImport => "exchange.import",
            Action::AccessThrottle => "access.throttle",
            Action::PasswordSetup => "password.setup",
            Action::PasswordSet => "password.set",
            Action::SignIn => "session.sign_in",
            Action::SignOut => "session.sign_out",
            Action::BackupCreate => "backup.create",
            Action::ReplicationSnapshot => "replication.snapshot",
        }
    }

    /// The action named `name`.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Done,
    /// Refused: the actor's role or scope does not allow it.
    Denied,
    /// Refused by the decree's rules (e.g. activation of a reported device); `reason` says why.
    Refused,
    /// Allowed, but it could not be done (a backup the disk refused); `detail` says why.
    Failed,
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event {
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: Action,
    /// On what: a registry id such as `org/3`, `user/12`, `token/9f2c…`, `list/positive`.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, where the API takes a reason.
    pub reason: Option<String>,
    /// Counts or other facts that are not personal data (`12000 entries`).
    pub detail: Option<String>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When, Unix seconds.
    pub at: u64,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: Action,
    /// On what.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// SHA-256 of the previous entry's stored bytes, hex (64 zeros for the first).
    pub prev: String,
}

impl Entry {
    /// The entry as the API shows it: the stored fields plus `time` in RFC 3339.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        value["time"] = serde_json::Value::String(timefmt::rfc3339(self.at));
        value
    }
}

/// Builds the sealing function the store calls under its write lock: the entry for `event`
/// after `head`, stamped `at`, and its hash.
pub fn seal(event: &Event, at: u64) -> impl Fn(AuditHead) -> (Vec<u8>, [u8; 32]) + '_ {
    move |head: AuditHead| {
        let entry = Entry {
            seq: head.seq + 1,
            at,
            actor: event.actor.clone(),
            action: event.action,
            target: event.target.clone(),
            outcome: event.outcome,
            reason: event.reason.clone(),
            detail: event.detail.clone(),
            prev: hex(&head.hash),
        };
        let mut bytes = vec![VERSION];
        serde_json::to_writer(&mut bytes, &entry).expect("an entry always serialises");
        let hash = Sha256::digest(&bytes).into();
        (bytes, hash)
    }
}

/// [`seal`] for an event it owns: for a [`Mutation`](crate::store::Mutation), which outlives
/// the caller's borrow.
pub fn seal_owned(event: Event, at: u64) -> crate::store::OwnedSeal {
    Box::new(move |head| seal(&event, at)(head))
}

/// Why a stored entry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The first byte is not a known version.
    #[error("unknown encoding version {0}")]
    Version(u8),
    /// Empty value.
    #[error("empty entry")]
    Empty,
    /// The JSON does not parse.
    #[error("malformed entry: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes stored bytes.
///
/// # Errors
/// [`DecodeError`] if the bytes are not an entry this version wrote.
pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&VERSION, json)) => Ok(serde_json::from_slice(json)?),
        Some((&other, _)) => Err(DecodeError::Version(other)),
    }
}

/// The outcome of a successful [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// Hash of the last entry, hex.
    pub head: String,
}

/// Where and how the chain is broken.
#[derive(Debug, thiserror::Error)]
pub enum Broken {
    /// An entry does not decode.
    #[error("entry {seq} is unreadable: {source}")]
    Unreadable {
        /// Its key.
        seq: u64,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// An entry is missing, or its key and its own number disagree.
    #[error("entry {expected} is missing or out of place (found {found})")]
    Sequence {
        /// The number that should come next.
        expected: u64,
        /// The number found there.
        found: u64,
    },
    /// An entry does not carry the hash of the one before it: it or its predecessor changed.
    #[error("entry {seq} does not follow entry {}: one of them was changed", seq - 1)]
    Chain {
        /// The entry.
        seq: u64,
    },
    /// The stored head does not match the last entry: entries were removed or appended
    /// around the server.
    #[error(
        "the chain ends at entry {last} but the recorded head is entry {head_seq}; entries were removed or the last one changed"
    )]
    Head {
        /// The last entry found.
        last: u64,
        /// The head's number.
        head_seq: u64,
    },
    /// The store could not be read.
    #[error("the audit trail could not be read")]
    Store(#[from] StoreError),
}

/// Walks the whole chain and checks every link and the recorded head.
///
/// # Errors
/// [`Broken`] naming the first entry where the chain fails.
pub fn verify(store: &Store) -> Result<Verified, Broken> {
    let mut prev = [0u8; 32];
    let mut expected = 1u64;
    let mut failure: Option<Broken> = None;
    store.audit_entries(0, |seq, bytes| {
        let check = || -> Result<[u8; 32], Broken> {
            let entry = decode(bytes).map_err(|source| Broken::Unreadable { seq, source })?;
            if seq != expected || entry.seq != seq {
                return Err(Broken::Sequence {
                    expected,
                    found: if seq == expected { entry.seq } else { seq },
                });
            }
            if from_hex::<32>(&entry.prev) != Some(prev) {
                return Err(Broken::Chain { seq });
            }
            Ok(Sha256::digest(bytes).into())
        };
        match check() {
            Ok(hash) => {
                prev = hash;
                expected += 1;
                true
            }
            Err(broken) => {
                failure = Some(broken);
                false
            }
        }
    })?;
    if let Some(broken) = failure {
        return Err(broken);
    }
    let head = store.audit_head();
    let last = expected - 1;
    if head.seq != last || head.hash != prev {
        return Err(Broken::Head {
            last,
            head_seq: head.seq,
        });
    }
    Ok(Verified {
        entries: last,
        head: hex(&prev),
    })
}

/// What `GET /v1/audit` filters by; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Acting user.
    pub actor: Option<u64>,
    /// Who issued the credential that acted, when not the acting user (`actor.issued_by`).
    pub issued_by: Option<u64>,
    /// Acting user's organisation.
    pub org: Option<u64>,
    /// Action.
    pub action: Option<Action>,
    /// At or after, Unix seconds.
    pub from: Option<u64>,
    /// Before, Unix seconds.
    pub to: Option<u64>,
}

impl Filter {
    fn matches(&self, entry: &Entry) -> bool {
        let (user, org, issuer) = match &entry.actor {
            Actor::User {
                user,
                org,
                issued_by,
                ..
            } => (Some(*user), Some(*org), *issued_by),
            Actor::Console { .. } | Actor::Client { .. } => (None, None, None),
        };
        self.actor.is_none_or(|a| user == Some(a))
            && self.issued_by.is_none_or(|i| issuer == Some(i))
            && self.org.is_none_or(|o| org == Some(o))
            && self.action.is_none_or(|a| entry.action == a)
            && self.from.is_none_or(|f| entry.at >= f)
            && self.to.is_none_or(|t| entry.at < t)
    }
}

/// Entries one page examines at most: a filter that matches little (an auditor outside the
/// regulator sees only its own organisation's entries) must not make one request read the
/// whole trail. A page that stops there may hold fewer than `limit` entries, or none, and
/// says where to go on.
pub const MAX_EXAMINED: u64 = 100_000;

/// One page of entries matching `filter` after sequence number `after`, at most `limit` (and
/// at most [`MAX_EXAMINED`] examined), and the `after` of the next page if there may be one.
///
/// # Errors
/// [`Broken`] if an entry cannot be read.
pub fn query(
    store: &Store,
    filter: &Filter,
    after: u64,
    limit: usize,
) -> Result<(Vec<Entry>, Option<u64>), Broken> {
    query_examining(store, filter, after, limit, MAX_EXAMINED)
}

fn query_examining(
    store: &Store,
    filter: &Filter,
    after: u64,
    limit: usize,
    max_examined: u64,
) -> Result<(Vec<Entry>, Option<u64>), Broken> {
    let mut page = Vec::new();
    let mut failure = None;
    let mut next = None;
    let mut examined = 0;
    store.audit_entries(after, |seq, bytes| {
        if page.len() == limit || examined == max_examined {
            next = Some(seq - 1); // this one is the next page's first
            return false;
        }
        examined += 1;
        match decode(bytes) {
            Ok(entry) => {
                if filter.matches(&entry) {
                    page.push(entry);
                }
                true
            }
            Err(source) => {
                failure = Some(Broken::Unreadable { seq, source });
                false
            }
        }
    })?;
    if let Some(broken) = failure {
        return Err(broken);
    }
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_examines_a_bounded_number_of_entries_and_says_where_to_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::store::StoreOptions {
            sync_writes: false,
            block_cache_bytes: 8 << 20,
            ..crate::store::StoreOptions::default()
        };
        let store = Store::open(dir.path(), &options, &crate::metrics::Metrics::new()).unwrap();
        for n in 0..25u64 {
            let event = Event {
                actor: Actor::User {
                    user: 10 + n % 5,
                    org: if n == 22 { 7 } else { 3 },
                    roles: vec![Role::Auditor],
                    token: None,
                    session: None,
                    issued_by: None,
                },
                action: Action::NegativeConsult,
                target: format!("imei/{n}"),
                outcome: Outcome::Done,
                reason: None,
                detail: None,
            };
            store.append_audit(&seal(&event, 1_795_388_523)).unwrap();
        }
        let only_7 = Filter {
            org: Some(7),
            ..Filter::default()
        };
        // examining 10 at a time, the one match (entry 23) is on the third page
        let mut after = 0;
        let mut pages = Vec::new();
        loop {
            let (page, next) = query_examining(&store, &only_7, after, 100, 10).unwrap();
            pages.push(page.iter().map(|e| e.seq).collect::<Vec<_>>());
            match next {
                Some(next) => after = next,
                None => break,
            }
        }
        assert_eq!(pages, [vec![], vec![], vec![23]]);
        // a full page says where the next begins
        let (page, next) = query_examining(&store, &Filter::default(), 0, 4, 10).unwrap();
        assert_eq!((page.len(), next), (4, Some(4)));
        let (_, next) = query(&store, &Filter::default(), 20, 100).unwrap();
        assert_eq!(next, None);
    }

    #[test]
    fn action_names_round_trip_and_match_serde() {
        for action in Action::ALL {
            assert_eq!(Action::from_name(action.as_str()), Some(action));
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::Value::String(action.as_str().into())
            );
        }
        assert_eq!(Action::from_name("org.delete"), None);
    }

    #[test]
    fn sealed_entries_decode_and_chain() {
        let event = Event {
            actor: Actor::Console {
                command: "imeidb import".into(),
            },
            action: Action::ListImport,
            target: "list/positive".into(),
            outcome: Outcome::Done,
            reason: None,
            detail: Some("10 entries".into()),
        };
        let head = AuditHead {
            seq: 4,
            hash: [7; 32],
        };
        let (bytes, hash) = seal(&event, 1_795_388_523)(head);
        let entry = decode(&bytes).unwrap();
        assert_eq!(entry.seq, 5);
        assert_eq!(entry.prev, hex(&[7; 32]));
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(&bytes)));
        assert_eq!(entry.to_json()["time"], "2026-11-22T23:02:03Z");
        assert!(matches!(decode(&[2, b'{']), Err(DecodeError::Version(2))));
        assert!(matches!(decode(&[]), Err(DecodeError::Empty)));
        assert!(matches!(decode(&[1, b'{']), Err(DecodeError::Json(_))));
    }
}
