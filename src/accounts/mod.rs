//! Organisations, users, roles, tokens and the audit trail: who may use the registry, and
//! the record of what they did.
//!
//! The regulator creates organisations (with the data of its user form, `forms.rs`) and their
//! first administrator; each organisation's administrator manages its own users; users hold
//! roles (`roles.rs`, one table of what each permits) and bearer tokens (`token.rs`). Every
//! change, and every refused attempt at one, is recorded in the hash-chained audit trail
//! (`audit.rs`) *in the same atomic write* as the change.
//!
//! Accounts are few (thousands), so they live in memory, loaded at start-up, and every request
//! is authenticated without I/O: one map lookup and a SHA-256. Changes are serialised by one
//! mutex and written to the store (with their audit entry) *before* memory changes, so what
//! a request sees was durable first. A suspension or deactivation takes effect on the next
//! request, tokens already issued included.

pub mod authority;
pub mod forms;
pub mod logins;
mod orgs;
pub use orgs::Bootstrapped;
mod records;
pub mod token;
mod tokens;
mod users;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Action, Actor, Event, Outcome};
use crate::identity::nit_number;
use crate::roles::{OrgKind, Permission, Role};
use crate::store::{RawRecord, Store, StoreError};
use crate::timefmt;
use crate::timefmt::now_unix;
use authority::Refusal;
use forms::{FieldErrors, OrgData, OrgForm, Person, UserForm, normalise_id_number};
use records::{NEXT_ID_KEY, apply_patch, decode, encode, org_key, token_key, user_key};
use token::TokenId;
use tokens::live_token;
use users::new_user;

/// Errors of the accounts layer. The API maps each to one status.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// No credential, or one that is not (or no longer) valid: unknown, revoked, or of a
    /// deactivated user.
    #[error("a valid API token is required")]
    Unauthenticated,
    /// The credential is valid but its user or organisation is suspended by the regulator.
    #[error("the {0} is suspended")]
    Suspended(&'static str),
    /// The role or scope does not allow it.
    #[error("your roles do not allow this")]
    Forbidden,
    /// The rule of who may act on whose account refuses it (`authority.rs`); audited.
    #[error("{0}")]
    Refused(Refusal),
    /// No such record (or not one the caller may know of).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// It would duplicate an existing record.
    #[error("{0}")]
    Conflict(String),
    /// Field by field, what is wrong with the input.
    #[error("the input is invalid")]
    Invalid(FieldErrors),
    /// `imeidb admin bootstrap` ran before.
    #[error(
        "the registry is already bootstrapped (organisations exist); ask the regulator's administrator for an account"
    )]
    AlreadyBootstrapped,
    /// A stored record does not decode.
    #[error("stored account record {key} is corrupt")]
    Corrupt {
        /// Its key.
        key: String,
    },
    /// The OS random source failed.
    #[error(transparent)]
    Random(#[from] token::RandomError),
    /// The store failed; nothing changed.
    #[error("the account store failed")]
    Store(#[from] StoreError),
    /// The audit trail could not be read.
    #[error(transparent)]
    Audit(#[from] audit::Broken),
}

/// An authenticated caller: the user behind a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user: u64,
    /// The user's organisation.
    pub org: u64,
    /// Its kind.
    pub org_kind: OrgKind,
    /// The user's roles.
    pub roles: Vec<Role>,
    /// The credential that authenticated it.
    pub credential: Credential,
    /// Who issued that credential, when not the user itself (an administrator issued the
    /// token, or the one-time code the password was set with): the audit trail names both.
    pub issued_by: Option<u64>,
}

/// What authenticated a caller: an API token (machines, scripts) or a web session (a person
/// signed in with a password, `logins.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The token, by id.
    Token(TokenId),
    /// The session, by its public id.
    Session(u64),
}

impl Credential {
    /// Its id as listings and the audit trail show it: sixteen hex digits.
    pub fn id_hex(self) -> String {
        match self {
            Credential::Token(id) => id.to_hex(),
            Credential::Session(id) => format!("{id:016x}"),
        }
    }
}

impl Principal {
    /// Whether any of the caller's roles permits `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.roles.iter().any(|role| role.permits(permission))
    }

    /// Whether the caller holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Who a credential this caller issues for `user` is issued by, as the credential and the
    /// audit trail record it: the caller, or, when it issues one for itself through a
    /// credential someone else issued, that issuer still (an administrator who held the first
    /// token could have made the next one with it, so the next one names it too).
    pub fn issuer_for(&self, user: u64) -> u64 {
        if user == self.user {
            self.issued_by.unwrap_or(self.user)
        } else {
            self.user
        }
    }

    /// The caller as the audit trail records it.
    pub fn actor(&self) -> Actor {
        Actor::User {
            user: self.user,
            org: self.org,
            roles: self.roles.clone(),
            token: matches!(self.credential, Credential::Token(_))
                .then(|| self.credential.id_hex()),
            session: matches!(self.credential, Credential::Session(_))
                .then(|| self.credential.id_hex()),
            issued_by: self.issued_by,
        }
    }
}

/// An organisation as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    /// Registry id.
    pub id: u64,
    /// Kind.
    pub kind: OrgKind,
    /// The form's data.
    #[serde(flatten)]
    pub data: OrgData,
    /// Suspended by the regulator: none of its users may act.
    pub suspended: bool,
    /// Created, Unix seconds.
    pub created_at: u64,
}

/// A user as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Registry id.
    pub id: u64,
    /// Organisation.
    pub org: u64,
    /// ID number as given.
    pub id_number: String,
    /// Full name.
    pub full_name: String,
    /// E-mail.
    pub email: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// Set by the organisation's administrator; an inactive user cannot authenticate.
    pub active: bool,
    /// Set by the regulator; a suspended user is refused.
    pub suspended: bool,
    /// Created, Unix seconds.
    pub created_at: u64,
}

/// A token as stored and shown (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Id, hex.
    pub id: String,
    /// Owner.
    pub user: u64,
    /// A label chosen at creation (`core-network-1`).
    pub name: String,
    /// SHA-256 of the secret, hex.
    #[serde(rename = "secret_sha256")]
    secret_hash: String,
    /// Created, Unix seconds.
    pub created_at: u64,
    /// The user who issued it: the holder itself, or the administrator who issued its first
    /// (or replacement) credential (`authority.rs`, 4), and who stays named on every token
    /// the holder issues through a credential that administrator issued. `None` for tokens
    /// issued before this was recorded, and for the bootstrap token, which the console issued.
    #[serde(default)]
    pub issued_by: Option<u64>,
    /// Revoked, Unix seconds.
    pub revoked_at: Option<u64>,
    /// Last used, Unix seconds (written to disk at most once a minute per token).
    pub last_used_at: Option<u64>,
}

/// Tokens in memory: the record, its hash, and when it was last used (updated by every
/// request under the state's read lock, hence atomic).
struct LiveToken {
    record: Token,
    hash: [u8; 32],
    last_used: AtomicU64,
    /// `last_used` as last written to the store.
    saved_last_used: AtomicU64,
}

#[derive(Default)]
struct State {
    orgs: BTreeMap<u64, Organisation>,
    users: BTreeMap<u64, User>,
    tokens: HashMap<TokenId, LiveToken>,
    /// Normalised ID number -> user: one account per person.
    id_numbers: HashMap<String, u64>,
    /// NIT number (without check digit and dots) -> organisation.
    nits: HashMap<String, u64>,
    /// Passwords and pending set-up codes, by user (`logins.rs`).
    logins: HashMap<u64, logins::Login>,
    next_id: u64,
}

/// A change to write: records to put, and the event that records it.
struct Change {
    puts: Vec<RawRecord>,
    event: Event,
}

/// The accounts service. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<Store>,
    state: Arc<RwLock<State>>,
    /// Serialises changes (they are rare), so a change validated against the state is still
    /// valid when it is written.
    writer: Arc<Mutex<()>>,
    /// Web sessions and failed sign-ins (`logins.rs`), in memory only.
    sessions: Arc<Mutex<logins::Sessions>>,
}

impl Accounts {
    /// Loads every organisation, user and token from `store`.
    ///
    /// # Errors
    /// [`AccountsError::Store`] if the store cannot be read, [`AccountsError::Corrupt`] if a
    /// record does not decode.
    pub fn open(store: Arc<Store>) -> Result<Accounts, AccountsError> {
        let mut state = State {
            next_id: 1,
            ..State::default()
        };
        // each its own prefix: the directory holds the registry's authorised sellers too
        let mut records = Vec::new();
        for prefix in [NEXT_ID_KEY, b"org/", b"user/", b"token/", b"login/"] {
            records.extend(store.records_with_prefix(prefix)?);
        }
        for (key, value) in records {
            if key == NEXT_ID_KEY {
                let bytes: [u8; 8] =
                    value
                        .as_slice()
                        .try_into()
                        .map_err(|_| AccountsError::Corrupt {
                            key: "next_id".into(),
                        })?;
                state.next_id = u64::from_be_bytes(bytes);
            } else if key.starts_with(b"org/") {
                let org: Organisation = decode(&key, &value)?;
                state.nits.insert(nit_number(&org.data.nit), org.id);
                state.orgs.insert(org.id, org);
            } else if key.starts_with(b"user/") {
                let user: User = decode(&key, &value)?;
                state
                    .id_numbers
                    .insert(normalise_id_number(&user.id_number), user.id);
                state.users.insert(user.id, user);
            } else if key.starts_with(b"token/") {
                let record: Token = decode(&key, &value)?;
                if record.revoked_at.is_some() {
                    continue; // never authenticates again: kept on disk, not in memory
                }
                let live = live_token(record).ok_or_else(|| AccountsError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                })?;
                let id = TokenId::from_hex(&live.record.id).expect("checked by live_token");
                state.tokens.insert(id, live);
            } else if key.starts_with(b"login/") {
                let login: logins::Login = decode(&key, &value)?;
                state.logins.insert(login.user, login);
            }
        }
        Ok(Accounts {
            store,
            state: Arc::new(RwLock::new(state)),
            writer: Arc::new(Mutex::new(())),
            sessions: Arc::default(),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `change` with its audit entry, then applies `apply` to memory. Call with the
    /// writer lock held.
    fn commit(&self, change: Change, apply: impl FnOnce(&mut State)) -> Result<(), AccountsError> {
        let seal = audit::seal(&change.event, now_unix());
        self.store.write_records(&change.puts, Some(&seal))?;
        apply(&mut self.state.write().unwrap_or_else(PoisonError::into_inner));
        Ok(())
    }

    /// Records a refused attempt for lack of right and returns the refusal.
    fn deny(&self, principal: &Principal, action: Action, target: String) -> AccountsError {
        self.record_refusal(principal, action, target, Outcome::Denied, None);
        AccountsError::Forbidden
    }

    /// Records an attempt refused because it would leave the accounts in a state they must
    /// not reach (`why`), and returns the conflict.
    fn conflict(
        &self,
        principal: &Principal,
        action: Action,
        target: String,
        why: &str,
    ) -> AccountsError {
        self.record_refusal(
            principal,
            action,
            target,
            Outcome::Refused,
            Some(why.into()),
        );
        AccountsError::Conflict(why.into())
    }

    /// Records a refused attempt: `Denied` (no right) or `Refused` (the rules), and why.
    fn record_refusal(
        &self,
        principal: &Principal,
        action: Action,
        target: String,
        outcome: Outcome,
        reason: Option<String>,
    ) {
        let event = Event {
            actor: principal.actor(),
            action,
            target,
            outcome,
            reason,
            detail: None,
        };
        if let Err(e) = self.record(&event) {
            tracing::error!(error = %e, "could not record a refused attempt in the audit trail");
        }
    }

    /// Appends an event that changes no account record (a bulk import, an authority lookup).
    ///
    /// # Errors
    /// [`AccountsError::Store`] if the entry could not be written.
    pub fn record(&self, event: &Event) -> Result<(), AccountsError> {
        self.store.append_audit(&audit::seal(event, now_unix()))?;
        Ok(())
    }

    /// The caller behind `bearer` (the text after `Bearer `).
    ///
    /// Performance-critical: on every authenticated request. One read lock, one map lookup,
    /// one SHA-256, no I/O.
    ///
    /// # Errors
    /// [`AccountsError::Unauthenticated`] for an unknown, malformed or revoked token or a
    /// deactivated user; [`AccountsError::Suspended`] if the user or its organisation is.
    pub fn authenticate(&self, bearer: &str) -> Result<Principal, AccountsError> {
        self.with_caller(bearer, |user, org, token, issued_by| Principal {
            user: user.id,
            org: org.id,
            org_kind: org.kind,
            roles: user.roles.clone(),
            credential: Credential::Token(token),
            issued_by,
        })
    }

    /// Whether the caller behind `bearer` may do `permission`, without building a
    /// [`Principal`]: the network check's path (no allocation, no I/O).
    ///
    /// # Errors
    /// As [`Accounts::authenticate`], and [`AccountsError::Forbidden`] if no role of the
    /// caller permits it.
    pub fn authorize(&self, bearer: &str, permission: Permission) -> Result<(), AccountsError> {
        self.with_caller(bearer, |user, _, _, _| {
            user.roles.iter().any(|role| role.permits(permission))
        })?
        .then_some(())
        .ok_or(AccountsError::Forbidden)
    }

    /// The caller of `principal` as it is now: for a request that waited (on a disk permit)
    /// after it was authenticated.
    ///
    /// # Errors
    /// As [`Accounts::authenticate`]: the token was revoked or the user deactivated, or the
    /// user or its organisation was suspended since.
    pub fn recheck(&self, principal: &Principal) -> Result<Principal, AccountsError> {
        if let Credential::Session(id) = principal.credential {
            self.session_is_live(id, principal.user)?;
        }
        let state = self.read();
        let (user, org) = match principal.credential {
            Credential::Token(id) => {
                let live = (state.tokens.get(&id))
                    .filter(|t| t.record.user == principal.user)
                    .ok_or(AccountsError::Unauthenticated)?;
                acting(&state, live)?
            }
            Credential::Session(_) => acting_user(&state, principal.user)?,
        };
        Ok(Principal {
            user: user.id,
            org: org.id,
            org_kind: org.kind,
            roles: user.roles.clone(),
            credential: principal.credential,
            issued_by: principal.issued_by,
        })
    }

    /// Resolves `bearer` to its live user and organisation (and records the token's use),
    /// then gives them to `then`.
    fn with_caller<R>(
        &self,
        bearer: &str,
        then: impl FnOnce(&User, &Organisation, TokenId, Option<u64>) -> R,
    ) -> Result<R, AccountsError> {
        let (id, hash) = token::parse(bearer).ok_or(AccountsError::Unauthenticated)?;
        let state = self.read();
        let live = state
            .tokens
            .get(&id)
            .ok_or(AccountsError::Unauthenticated)?;
        if !token::constant_time_eq(&live.hash, &hash) {
            return Err(AccountsError::Unauthenticated);
        }
        let (user, org) = acting(&state, live)?;
        live.last_used.store(now_unix(), Ordering::Relaxed);
        let issued_by = live.record.issued_by.filter(|&by| by != user.id);
        Ok(then(user, org, id, issued_by))
    }

    /// Writes tokens' last use to the store (at most once a minute each; called periodically
    /// and at shutdown). Not audited: it is bookkeeping, not a change by anyone.
    ///
    /// # Errors
    /// [`AccountsError::Store`]; the times stay in memory and are tried again next time.
    pub fn save_last_use(&self) -> Result<usize, AccountsError> {
        let _writer = self.lock_writer();
        let state = self.read();
        let mut puts = Vec::new();
        let mut saved = Vec::new();
        for (id, live) in &state.tokens {
            let used = live.last_used.load(Ordering::Relaxed);
            let stored = live.saved_last_used.load(Ordering::Relaxed);
            if used > stored && (used >= stored + 60 || stored == 0) {
                let mut record = live.record.clone();
                record.last_used_at = Some(used);
                puts.push((token_key(*id), encode(&record)));
                saved.push((live, used));
            }
        }
        if puts.is_empty() {
            return Ok(0);
        }
        self.store.write_records(&puts, None)?;
        for (live, used) in &saved {
            live.saved_last_used.store(*used, Ordering::Relaxed);
        }
        Ok(saved.len())
    }

    /// An organisation's legal name, for public listings that name who authorised something.
    pub fn org_name(&self, id: u64) -> Option<String> {
        self.read().orgs.get(&id).map(|o| o.data.legal_name.clone())
    }

    /// Whether any organisation exists (the registry has been bootstrapped).
    pub fn is_bootstrapped(&self) -> bool {
        !self.read().orgs.is_empty()
    }

    /// A page of the audit trail: the regulator's administrator and auditors read every
    /// entry; an auditor of any other organisation only its own organisation's.
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] (also for another organisation's entries),
    /// [`AccountsError::Audit`] if an entry is unreadable.
    pub fn audit(
        &self,
        principal: &Principal,
        filter: &audit::Filter,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<audit::Entry>, Option<u64>), AccountsError> {
        if !principal.may(Permission::ReadAudit) {
            return Err(AccountsError::Forbidden);
        }
        let mut filter = filter.clone();
        if !reads_every_org(principal) {
            match filter.org {
                Some(org) if org != principal.org => return Err(AccountsError::Forbidden),
                _ => filter.org = Some(principal.org),
            }
        }
        Ok(audit::query(&self.store, &filter, after, limit)?)
    }
}

/// Whether `principal` reads every organisation (and the whole audit trail): a reader of the
/// regulator. A reader of any other organisation reads only its own.
fn reads_every_org(principal: &Principal) -> bool {
    principal.org_kind == OrgKind::Regulator
}

/// The user and organisation behind `live`, if they may act: the token is not revoked, the
/// user active, neither suspended.
#[inline]
fn acting<'s>(
    state: &'s State,
    live: &LiveToken,
) -> Result<(&'s User, &'s Organisation), AccountsError> {
    if live.record.revoked_at.is_some() {
        return Err(AccountsError::Unauthenticated);
    }
    acting_user(state, live.record.user)
}

/// User `id` and its organisation, if the user may act: active, neither suspended.
#[inline]
fn acting_user(state: &State, id: u64) -> Result<(&User, &Organisation), AccountsError> {
    let user = (state.users.get(&id))
        .filter(|u| u.active)
        .ok_or(AccountsError::Unauthenticated)?;
    let org = (state.orgs.get(&user.org)).ok_or(AccountsError::Unauthenticated)?;
    if user.suspended {
        return Err(AccountsError::Suspended("user"));
    }
    if org.suspended {
        return Err(AccountsError::Suspended("organisation"));
    }
    Ok((user, org))
}

/// Active, unsuspended holders of `regulator_admin` in an organisation that is not suspended.
fn active_regulator_admins(state: &State) -> usize {
    (state.users.values())
        .filter(|u| u.active && !u.suspended && u.roles.contains(&Role::RegulatorAdmin))
        .filter(|u| state.orgs.get(&u.org).is_some_and(|o| !o.suspended))
        .count()
}

fn insert_org(state: &mut State, org: Organisation) {
    state.nits.retain(|_, id| *id != org.id);
    state.nits.insert(nit_number(&org.data.nit), org.id);
    if org.id >= state.next_id {
        state.next_id = org.id + 1;
    }
    state.orgs.insert(org.id, org);
}

fn insert_user(state: &mut State, user: User) {
    state
        .id_numbers
        .insert(normalise_id_number(&user.id_number), user.id);
    if user.id >= state.next_id {
        state.next_id = user.id + 1;
    }
    state.users.insert(user.id, user);
}

fn role_names(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Times as the API shows them.
pub fn time_json(unix: Option<u64>) -> serde_json::Value {
    unix.map_or(serde_json::Value::Null, |t| {
        serde_json::Value::String(timefmt::rfc3339(t))
    })
}

#[cfg(test)]
mod tests;
