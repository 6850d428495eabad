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
pub mod token;

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
use token::TokenId;

/// Encoding version of stored account records (their first byte); JSON follows.
const RECORD_VERSION: u8 = 1;
const NEXT_ID_KEY: &[u8] = b"next_id";

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
    /// The token used.
    pub token: TokenId,
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

    /// The caller as the audit trail records it.
    pub fn actor(&self) -> Actor {
        Actor::User {
            user: self.user,
            org: self.org,
            roles: self.roles.clone(),
            token: Some(self.token.to_hex()),
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
    /// (or replacement) credential (`authority.rs`, 4). `None` for tokens issued before this
    /// was recorded, and for the bootstrap token, which the console issued.
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
}

fn org_key(id: u64) -> Vec<u8> {
    format!("org/{id:016x}").into_bytes()
}
fn user_key(id: u64) -> Vec<u8> {
    format!("user/{id:016x}").into_bytes()
}
fn token_key(id: TokenId) -> Vec<u8> {
    format!("token/{}", id.to_hex()).into_bytes()
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut bytes = vec![RECORD_VERSION];
    serde_json::to_writer(&mut bytes, record).expect("a record always serialises");
    bytes
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, AccountsError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => {
            serde_json::from_slice(json).map_err(|_| AccountsError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
            })
        }
        _ => Err(AccountsError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
        }),
    }
}

/// What a patch (RFC 7396 JSON merge patch) may not change, and why.
const IMMUTABLE_USER_FIELDS: &[(&str, &str)] = &[
    (
        "id_number",
        "an account is personal and not transferable: create a new user instead",
    ),
    ("id", "is assigned by the registry"),
    ("org", "a user cannot move to another organisation"),
    ("active", "use /deactivate or /activate"),
    ("suspended", "only the regulator suspends, with /suspend"),
    ("created_at", "is set by the registry"),
];

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
        for prefix in [NEXT_ID_KEY, b"org/", b"user/", b"token/"] {
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
            }
        }
        Ok(Accounts {
            store,
            state: Arc::new(RwLock::new(state)),
            writer: Arc::new(Mutex::new(())),
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
        self.with_caller(bearer, |user, org, token| Principal {
            user: user.id,
            org: org.id,
            org_kind: org.kind,
            roles: user.roles.clone(),
            token,
        })
    }

    /// Whether the caller behind `bearer` may do `permission`, without building a
    /// [`Principal`]: the network check's path (no allocation, no I/O).
    ///
    /// # Errors
    /// As [`Accounts::authenticate`], and [`AccountsError::Forbidden`] if no role of the
    /// caller permits it.
    pub fn authorize(&self, bearer: &str, permission: Permission) -> Result<(), AccountsError> {
        self.with_caller(bearer, |user, _, _| {
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
        let state = self.read();
        let live = (state.tokens.get(&principal.token))
            .filter(|t| t.record.user == principal.user)
            .ok_or(AccountsError::Unauthenticated)?;
        let (user, org) = acting(&state, live)?;
        Ok(Principal {
            user: user.id,
            org: org.id,
            org_kind: org.kind,
            roles: user.roles.clone(),
            token: principal.token,
        })
    }

    /// Resolves `bearer` to its live user and organisation (and records the token's use),
    /// then gives them to `then`.
    fn with_caller<R>(
        &self,
        bearer: &str,
        then: impl FnOnce(&User, &Organisation, TokenId) -> R,
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
        Ok(then(user, org, id))
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

    /// First start: creates the regulator organisation from its form, its administrator
    /// (regulator administrator and organisation administrator) and a token for it. Refuses
    /// once any organisation exists.
    ///
    /// # Errors
    /// [`AccountsError::AlreadyBootstrapped`], [`AccountsError::Invalid`] for a bad form or a
    /// kind other than `regulator`, [`AccountsError::Store`].
    pub fn bootstrap(&self, form: OrgForm) -> Result<(Organisation, User, String), AccountsError> {
        let _writer = self.lock_writer();
        if self.is_bootstrapped() {
            return Err(AccountsError::AlreadyBootstrapped);
        }
        let mut errors = form.validate();
        if form.kind.is_some_and(|k| k != OrgKind::Regulator) {
            errors.0.push((
                "kind".into(),
                "the first organisation is the regulator".into(),
            ));
        }
        errors.into_result().map_err(AccountsError::Invalid)?;
        let actor = Actor::Console {
            command: "imeidb admin bootstrap".into(),
        };
        let roles = vec![Role::RegulatorAdmin, Role::OrgAdmin];
        let (org, admin, mut change) = self.new_org(form, roles, actor)?;
        let new = token::generate()?;
        let record = Token {
            id: new.id.to_hex(),
            user: admin.id,
            name: "bootstrap".into(),
            secret_hash: token::hex(&new.secret_hash),
            created_at: now_unix(),
            issued_by: None,
            revoked_at: None,
            last_used_at: None,
        };
        change.puts.push((token_key(new.id), encode(&record)));
        change.event.action = Action::Bootstrap;
        let (org_c, admin_c) = (org.clone(), admin.clone());
        self.commit(change, move |state| {
            insert_org(state, org_c);
            insert_user(state, admin_c);
            state
                .tokens
                .insert(new.id, live_token(record).expect("made here"));
        })?;
        Ok((org, admin, new.text))
    }

    /// Builds a new organisation and its administrator (not yet written).
    fn new_org(
        &self,
        form: OrgForm,
        admin_roles: Vec<Role>,
        actor: Actor,
    ) -> Result<(Organisation, User, Change), AccountsError> {
        let state = self.read();
        let kind = form.kind.expect("validated");
        if let Some(other) = state.nits.get(&nit_number(&form.data.nit)) {
            return Err(AccountsError::Conflict(format!(
                "an organisation with NIT {} exists already (org/{other})",
                form.data.nit.trim()
            )));
        }
        self.check_new_person(&state, &form.administrator.id_number)?;
        let now = now_unix();
        let org = Organisation {
            id: state.next_id,
            kind,
            data: form.data,
            suspended: false,
            created_at: now,
        };
        let admin = new_user(
            state.next_id + 1,
            org.id,
            &form.administrator,
            admin_roles,
            now,
        );
        let next_id = state.next_id + 2;
        let change = Change {
            puts: vec![
                (org_key(org.id), encode(&org)),
                (user_key(admin.id), encode(&admin)),
                (NEXT_ID_KEY.to_vec(), next_id.to_be_bytes().to_vec()),
            ],
            event: Event {
                actor,
                action: Action::OrgCreate,
                target: format!("org/{}", org.id),
                outcome: Outcome::Done,
                reason: None,
                detail: Some(format!(
                    "kind {}, administrator user/{}",
                    kind.as_str(),
                    admin.id
                )),
            },
        };
        Ok((org, admin, change))
    }

    fn check_new_person(&self, state: &State, id_number: &str) -> Result<(), AccountsError> {
        match state.id_numbers.get(&normalise_id_number(id_number)) {
            // which account, and of which organisation, is not the caller's to learn
            Some(_) => Err(AccountsError::Conflict(
                "this ID number already holds an account; accounts are personal, one per person"
                    .into(),
            )),
            None => Ok(()),
        }
    }

    /// The regulator creates an organisation and its administrator.
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] (audited), [`AccountsError::Invalid`],
    /// [`AccountsError::Conflict`] for a NIT or administrator ID number already registered,
    /// [`AccountsError::Store`].
    pub fn create_org(
        &self,
        principal: &Principal,
        form: OrgForm,
    ) -> Result<(Organisation, User), AccountsError> {
        if !principal.may(Permission::AdministerOrgs) {
            return Err(self.deny(principal, Action::OrgCreate, "org/new".into()));
        }
        let mut errors = form.validate();
        if form.kind == Some(OrgKind::Regulator) {
            // one regulator: its auditors read everything, and two could suspend each other
            errors.0.push((
                "kind".into(),
                "there is one regulator organisation, made by imeidb admin bootstrap".into(),
            ));
        }
        errors.into_result().map_err(AccountsError::Invalid)?;
        let _writer = self.lock_writer();
        let (org, admin, change) = self.new_org(form, vec![Role::OrgAdmin], principal.actor())?;
        let (org_c, admin_c) = (org.clone(), admin.clone());
        self.commit(change, move |state| {
            insert_org(state, org_c);
            insert_user(state, admin_c);
        })?;
        Ok((org, admin))
    }

    /// The organisations `principal` reads: every one for the regulator's administrator and
    /// auditors, only its own for an auditor of any other organisation.
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`].
    pub fn list_orgs(&self, principal: &Principal) -> Result<Vec<Organisation>, AccountsError> {
        if !principal.may(Permission::ReadOrgs) {
            return Err(AccountsError::Forbidden);
        }
        let state = self.read();
        let every = reads_every_org(principal);
        Ok((state.orgs.values())
            .filter(|o| every || o.id == principal.org)
            .cloned()
            .collect())
    }

    /// One organisation: for the regulator's readers, and for its own administrator and
    /// auditors.
    ///
    /// # Errors
    /// [`AccountsError::NotFound`], [`AccountsError::Forbidden`].
    pub fn get_org(&self, principal: &Principal, id: u64) -> Result<Organisation, AccountsError> {
        let own = principal.org == id
            && (principal.has(Role::OrgAdmin) || principal.may(Permission::ReadOrgs));
        let every = principal.may(Permission::ReadOrgs) && reads_every_org(principal);
        if !(every || own) {
            return Err(AccountsError::Forbidden);
        }
        self.read()
            .orgs
            .get(&id)
            .cloned()
            .ok_or(AccountsError::NotFound("organisation"))
    }

    /// The regulator changes an organisation's data with a JSON merge patch (RFC 7396) over
    /// the form's sections 1-4; the result is validated whole.
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] (audited), [`AccountsError::NotFound`],
    /// [`AccountsError::Invalid`], [`AccountsError::Conflict`] for another organisation's
    /// NIT, [`AccountsError::Store`].
    pub fn update_org(
        &self,
        principal: &Principal,
        id: u64,
        patch: &serde_json::Value,
    ) -> Result<Organisation, AccountsError> {
        if !principal.may(Permission::AdministerOrgs) {
            return Err(self.deny(principal, Action::OrgUpdate, format!("org/{id}")));
        }
        let _writer = self.lock_writer();
        let (org, change) = {
            let state = self.read();
            let mut org = state
                .orgs
                .get(&id)
                .cloned()
                .ok_or(AccountsError::NotFound("organisation"))?;
            let mut errors = FieldErrors::default();
            for (field, why) in [
                ("kind", "the kind of an organisation cannot change"),
                (
                    "administrator",
                    "manage administrators as users of the organisation",
                ),
                ("id", "is assigned by the registry"),
                ("suspended", "use /suspend or /reactivate"),
                ("created_at", "is set by the registry"),
            ] {
                if patch.get(field).is_some() {
                    errors.0.push((field.into(), why.into()));
                }
            }
            errors.into_result().map_err(AccountsError::Invalid)?;
            org.data = apply_patch(&org.data, patch)?;
            org.data
                .validate()
                .into_result()
                .map_err(AccountsError::Invalid)?;
            if let Some(&other) = state.nits.get(&nit_number(&org.data.nit))
                && other != id
            {
                return Err(AccountsError::Conflict(format!(
                    "NIT {} belongs to org/{other}",
                    org.data.nit.trim()
                )));
            }
            let change = Change {
                puts: vec![(org_key(id), encode(&org))],
                event: Event {
                    actor: principal.actor(),
                    action: Action::OrgUpdate,
                    target: format!("org/{id}"),
                    outcome: Outcome::Done,
                    reason: None,
                    detail: patch.as_object().map(|o| {
                        format!(
                            "fields: {}",
                            o.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    }),
                },
            };
            (org, change)
        };
        let org_c = org.clone();
        self.commit(change, move |state| insert_org(state, org_c))?;
        Ok(org)
    }

    /// The regulator suspends or reactivates an organisation; its users are refused at once.
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] (audited), [`AccountsError::NotFound`],
    /// [`AccountsError::Store`].
    pub fn set_org_suspended(
        &self,
        principal: &Principal,
        id: u64,
        suspended: bool,
        reason: Option<String>,
    ) -> Result<Organisation, AccountsError> {
        let action = if suspended {
            Action::OrgSuspend
        } else {
            Action::OrgReactivate
        };
        if !principal.may(Permission::AdministerOrgs) {
            return Err(self.deny(principal, action, format!("org/{id}")));
        }
        if suspended && id == principal.org {
            let why = "the regulator cannot suspend its own organisation";
            return Err(self.conflict(principal, action, format!("org/{id}"), why));
        }
        let _writer = self.lock_writer();
        let mut org = self
            .read()
            .orgs
            .get(&id)
            .cloned()
            .ok_or(AccountsError::NotFound("organisation"))?;
        org.suspended = suspended;
        let change = Change {
            puts: vec![(org_key(id), encode(&org))],
            event: Event {
                actor: principal.actor(),
                action,
                target: format!("org/{id}"),
                outcome: Outcome::Done,
                reason,
                detail: None,
            },
        };
        let org_c = org.clone();
        self.commit(change, move |state| insert_org(state, org_c))?;
        Ok(org)
    }

    /// Checks that `principal` administers `org`'s users and that `org` exists; a refusal of
    /// a change is audited.
    fn user_scope(
        &self,
        principal: &Principal,
        org: u64,
        denied: Option<(Action, String)>,
    ) -> Result<OrgKind, AccountsError> {
        if !authority::administers(principal, org) {
            return Err(match denied {
                Some((action, target)) => self.deny(principal, action, target),
                None => AccountsError::Forbidden,
            });
        }
        self.read()
            .orgs
            .get(&org)
            .map(|o| o.kind)
            .ok_or(AccountsError::NotFound("organisation"))
    }

    /// Applies the rule's verdict (`authority.rs`): a refusal is audited with its reason and
    /// returned; `errors` are the input's field errors, which a role outside the
    /// organisation's kind is answered with (they name it).
    fn enforce(
        &self,
        principal: &Principal,
        action: Action,
        target: &str,
        verdict: Result<(), Refusal>,
        errors: &FieldErrors,
    ) -> Result<(), AccountsError> {
        let Err(refusal) = verdict else {
            return Ok(());
        };
        let outcome = if refusal.is_denial() {
            Outcome::Denied
        } else {
            Outcome::Refused
        };
        self.record_refusal(
            principal,
            action,
            target.to_owned(),
            outcome,
            Some(refusal.to_string()),
        );
        Err(match refusal {
            Refusal::NotAdministrator => AccountsError::Forbidden,
            Refusal::RoleNotForKind { .. } if !errors.0.is_empty() => {
                AccountsError::Invalid(errors.clone())
            }
            refusal => AccountsError::Refused(refusal),
        })
    }

    /// The user `id` of `org`.
    fn user_of(&self, org: u64, id: u64) -> Result<User, AccountsError> {
        self.read()
            .users
            .get(&id)
            .filter(|u| u.org == org)
            .cloned()
            .ok_or(AccountsError::NotFound("user"))
    }

    /// An organisation's administrator (or the regulator's) creates a user of that
    /// organisation, with roles it may grant (`authority.rs`, 2).
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] (audited), [`AccountsError::Refused`] for a role the
    /// caller may not grant (audited), [`AccountsError::NotFound`],
    /// [`AccountsError::Invalid`] (roles outside the organisation's kind included, audited),
    /// [`AccountsError::Conflict`] for an ID number that holds an account,
    /// [`AccountsError::Store`].
    pub fn create_user(
        &self,
        principal: &Principal,
        org: u64,
        form: UserForm,
    ) -> Result<User, AccountsError> {
        let target = format!("org/{org}");
        let kind = self.user_scope(principal, org, Some((Action::UserCreate, target.clone())))?;
        let errors = form.validate(kind);
        let grant = authority::may_grant(principal, org, kind, &form.roles);
        self.enforce(principal, Action::UserCreate, &target, grant, &errors)?;
        errors.into_result().map_err(AccountsError::Invalid)?;
        let _writer = self.lock_writer();
        let (user, change) = {
            let state = self.read();
            self.check_new_person(&state, &form.id_number)?;
            let person = Person {
                id_number: form.id_number,
                full_name: form.full_name,
                email: form.email,
                email_2: String::new(),
            };
            let user = new_user(state.next_id, org, &person, form.roles, now_unix());
            let change = Change {
                puts: vec![
                    (user_key(user.id), encode(&user)),
                    (
                        NEXT_ID_KEY.to_vec(),
                        (state.next_id + 1).to_be_bytes().to_vec(),
                    ),
                ],
                event: Event {
                    actor: principal.actor(),
                    action: Action::UserCreate,
                    target: format!("user/{}", user.id),
                    outcome: Outcome::Done,
                    reason: None,
                    detail: Some(format!("org/{org}, roles {}", role_names(&user.roles))),
                },
            };
            (user, change)
        };
        let user_c = user.clone();
        self.commit(change, move |state| insert_user(state, user_c))?;
        Ok(user)
    }

    /// The users of `org`.
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`], [`AccountsError::NotFound`].
    pub fn list_users(&self, principal: &Principal, org: u64) -> Result<Vec<User>, AccountsError> {
        self.user_scope(principal, org, None)?;
        Ok(self
            .read()
            .users
            .values()
            .filter(|u| u.org == org)
            .cloned()
            .collect())
    }

    /// One user of `org`.
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`], [`AccountsError::NotFound`].
    pub fn get_user(
        &self,
        principal: &Principal,
        org: u64,
        id: u64,
    ) -> Result<User, AccountsError> {
        self.user_scope(principal, org, None)?;
        self.user_of(org, id)
    }

    /// Changes a user's name, e-mail or roles with a JSON merge patch. The ID number never
    /// changes: an account is personal and not transferable. Only an administrator who may
    /// act on the account changes it, and nobody its own roles (`authority.rs`, 2 and 3).
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] and [`AccountsError::Refused`] (audited),
    /// [`AccountsError::NotFound`], [`AccountsError::Invalid`], [`AccountsError::Store`].
    pub fn update_user(
        &self,
        principal: &Principal,
        org: u64,
        id: u64,
        patch: &serde_json::Value,
    ) -> Result<User, AccountsError> {
        let target = format!("user/{id}");
        let kind = self.user_scope(principal, org, Some((Action::UserUpdate, target.clone())))?;
        let _writer = self.lock_writer();
        let mut user = self.user_of(org, id)?;
        let none = FieldErrors::default();
        let act = authority::may_act_on(principal, &user);
        self.enforce(principal, Action::UserUpdate, &target, act, &none)?;
        let mut errors = FieldErrors::default();
        for (field, why) in IMMUTABLE_USER_FIELDS {
            if patch.get(field).is_some() {
                errors.0.push(((*field).into(), (*why).into()));
            }
        }
        if !errors.0.is_empty() {
            // an attempt at what no patch may change (`suspended`, `active`, `org`, ...)
            let fields: Vec<&str> = errors.0.iter().map(|(f, _)| f.as_str()).collect();
            let why = format!("fields no patch changes: {}", fields.join(", "));
            self.record_refusal(
                principal,
                Action::UserUpdate,
                target,
                Outcome::Refused,
                Some(why),
            );
            return Err(AccountsError::Invalid(errors));
        }
        let form = UserForm {
            id_number: user.id_number.clone(),
            full_name: user.full_name.clone(),
            email: user.email.clone(),
            roles: user.roles.clone(),
        };
        let form: UserForm = apply_patch(&form, patch)?;
        let errors = form.validate(kind);
        let change = authority::may_change_roles(principal, &user, kind, &form.roles);
        self.enforce(principal, Action::UserUpdate, &target, change, &errors)?;
        errors.into_result().map_err(AccountsError::Invalid)?;
        let keeps = authority::keeps_a_regulator_admin(
            &user,
            form.roles.contains(&Role::RegulatorAdmin),
            active_regulator_admins(&self.read()),
        );
        self.enforce(principal, Action::UserUpdate, &target, keeps, &none)?;
        user.full_name = form.full_name;
        user.email = form.email;
        user.roles = form.roles;
        let change = Change {
            puts: vec![(user_key(id), encode(&user))],
            event: Event {
                actor: principal.actor(),
                action: Action::UserUpdate,
                target,
                outcome: Outcome::Done,
                reason: None,
                detail: Some(format!("roles {}", role_names(&user.roles))),
            },
        };
        let user_c = user.clone();
        self.commit(change, move |state| insert_user(state, user_c))?;
        Ok(user)
    }

    /// An organisation's administrator (or the regulator's) deactivates a user who left, or
    /// activates one again. A deactivated user's tokens stop working at once. Only an
    /// administrator who may act on the account, and never the last active regulator
    /// administrator (`authority.rs`, 3 and 5).
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] and [`AccountsError::Refused`] (audited),
    /// [`AccountsError::NotFound`], [`AccountsError::Store`].
    pub fn set_user_active(
        &self,
        principal: &Principal,
        org: u64,
        id: u64,
        active: bool,
        reason: Option<String>,
    ) -> Result<User, AccountsError> {
        let action = if active {
            Action::UserActivate
        } else {
            Action::UserDeactivate
        };
        let target = format!("user/{id}");
        self.user_scope(principal, org, Some((action, target.clone())))?;
        let _writer = self.lock_writer();
        let mut user = self.user_of(org, id)?;
        self.check_account_change(principal, action, &target, &user, !active)?;
        user.active = active;
        self.save_user(principal, user, action, reason)
    }

    /// The regulator suspends a user, or lifts the suspension. Only the regulator's
    /// administrator can, and never on the last active regulator administrator.
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] and [`AccountsError::Refused`] (audited),
    /// [`AccountsError::NotFound`], [`AccountsError::Store`].
    pub fn set_user_suspended(
        &self,
        principal: &Principal,
        org: u64,
        id: u64,
        suspended: bool,
        reason: Option<String>,
    ) -> Result<User, AccountsError> {
        let action = if suspended {
            Action::UserSuspend
        } else {
            Action::UserReactivate
        };
        let target = format!("user/{id}");
        if !principal.may(Permission::AdministerOrgs) {
            return Err(self.deny(principal, action, target));
        }
        if suspended && id == principal.user {
            let why = "an administrator cannot suspend itself";
            return Err(self.conflict(principal, action, target, why));
        }
        let _writer = self.lock_writer();
        let mut user = self.user_of(org, id)?;
        self.check_account_change(principal, action, &target, &user, suspended)?;
        user.suspended = suspended;
        self.save_user(principal, user, action, reason)
    }

    /// May `principal` act on `user` (and, when `disables`, is `user` not the last active
    /// regulator administrator)? A refusal is audited. Call with the writer lock held.
    fn check_account_change(
        &self,
        principal: &Principal,
        action: Action,
        target: &str,
        user: &User,
        disables: bool,
    ) -> Result<(), AccountsError> {
        let none = FieldErrors::default();
        let act = authority::may_act_on(principal, user);
        self.enforce(principal, action, target, act, &none)?;
        if disables {
            let keeps = authority::keeps_a_regulator_admin(
                user,
                false,
                active_regulator_admins(&self.read()),
            );
            self.enforce(principal, action, target, keeps, &none)?;
        }
        Ok(())
    }

    fn save_user(
        &self,
        principal: &Principal,
        user: User,
        action: Action,
        reason: Option<String>,
    ) -> Result<User, AccountsError> {
        let change = Change {
            puts: vec![(user_key(user.id), encode(&user))],
            event: Event {
                actor: principal.actor(),
                action,
                target: format!("user/{}", user.id),
                outcome: Outcome::Done,
                reason,
                detail: None,
            },
        };
        let user_c = user.clone();
        self.commit(change, move |state| insert_user(state, user_c))?;
        Ok(user)
    }

    /// The user `id`, for an action on its tokens. A user that does not exist is
    /// [`AccountsError::NotFound`] only to the regulator's administrator, who administers every
    /// user; anyone else learns nothing about which user ids exist.
    fn token_holder(&self, principal: &Principal, id: u64) -> Result<User, AccountsError> {
        match self.read().users.get(&id) {
            Some(user) => Ok(user.clone()),
            None if principal.has(Role::RegulatorAdmin) => Err(AccountsError::NotFound("user")),
            None => Err(AccountsError::Forbidden),
        }
    }

    /// Issues a token for `user`; returns its record and its text, shown this once. A user
    /// issues its own; an administrator only a first or replacement credential of an account
    /// it may act on (`authority.rs`, 4).
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] and [`AccountsError::Refused`] (audited),
    /// [`AccountsError::NotFound`], [`AccountsError::Invalid`] for a bad name,
    /// [`AccountsError::Random`], [`AccountsError::Store`].
    pub fn create_token(
        &self,
        principal: &Principal,
        user: u64,
        name: &str,
    ) -> Result<(Token, String), AccountsError> {
        let target = format!("user/{user}");
        let _writer = self.lock_writer();
        let holder = self.token_holder(principal, user)?;
        let live = live_tokens(&self.read(), user);
        let verdict = authority::may_issue_token(principal, &holder, live);
        let none = FieldErrors::default();
        self.enforce(principal, Action::TokenCreate, &target, verdict, &none)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(AccountsError::Invalid(FieldErrors(vec![(
                "name".into(),
                "give the token a name of 1 to 64 characters, e.g. core-network-1".into(),
            )])));
        }
        let new = token::generate()?;
        let record = Token {
            id: new.id.to_hex(),
            user,
            name: name.to_owned(),
            secret_hash: token::hex(&new.secret_hash),
            created_at: now_unix(),
            issued_by: Some(principal.user),
            revoked_at: None,
            last_used_at: None,
        };
        let issued = if principal.user == user {
            format!("{target}, issued by its holder")
        } else {
            format!("{target}, issued by user/{} for it", principal.user)
        };
        let change = Change {
            puts: vec![(token_key(new.id), encode(&record))],
            event: Event {
                actor: principal.actor(),
                action: Action::TokenCreate,
                target: format!("token/{}", record.id),
                outcome: Outcome::Done,
                reason: None,
                detail: Some(issued),
            },
        };
        let record_c = record.clone();
        self.commit(change, move |state| {
            state
                .tokens
                .insert(new.id, live_token(record_c).expect("made here"));
        })?;
        Ok((record, new.text))
    }

    /// `user`'s live tokens, newest first: for the user, and for an administrator who may act
    /// on the account. Revoked tokens are not listed (the audit trail records each
    /// revocation).
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`], [`AccountsError::Refused`], [`AccountsError::NotFound`].
    pub fn list_tokens(
        &self,
        principal: &Principal,
        user: u64,
    ) -> Result<Vec<Token>, AccountsError> {
        let holder = self.token_holder(principal, user)?;
        authority::may_manage_tokens_of(principal, &holder).map_err(|refusal| match refusal {
            Refusal::NotAdministrator => AccountsError::Forbidden,
            refusal => AccountsError::Refused(refusal),
        })?;
        let state = self.read();
        let mut tokens: Vec<Token> = state
            .tokens
            .values()
            .filter(|t| t.record.user == user)
            .map(|t| {
                let mut record = t.record.clone();
                let used = t.last_used.load(Ordering::Relaxed);
                record.last_used_at = (used > 0).then_some(used);
                record
            })
            .collect();
        tokens.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(tokens)
    }

    /// Revokes one of `user`'s tokens; it is refused from the next request on. The user, or
    /// an administrator who may act on the account.
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] and [`AccountsError::Refused`] (audited),
    /// [`AccountsError::NotFound`], [`AccountsError::Store`].
    pub fn revoke_token(
        &self,
        principal: &Principal,
        user: u64,
        token: &str,
    ) -> Result<Token, AccountsError> {
        let target = format!("user/{user}");
        let _writer = self.lock_writer();
        let holder = self.token_holder(principal, user)?;
        let verdict = authority::may_manage_tokens_of(principal, &holder);
        let none = FieldErrors::default();
        self.enforce(principal, Action::TokenRevoke, &target, verdict, &none)?;
        let id = TokenId::from_hex(token).ok_or(AccountsError::NotFound("token"))?;
        let (mut record, keeps) = {
            let state = self.read();
            let live = state
                .tokens
                .get(&id)
                .filter(|t| t.record.user == user)
                .ok_or(AccountsError::NotFound("token"))?;
            // nobody could issue the last active regulator administrator another credential
            let keeps = authority::keeps_a_regulator_admin(
                &holder,
                live_tokens(&state, user) > 1,
                active_regulator_admins(&state),
            );
            (live.record.clone(), keeps)
        };
        self.enforce(principal, Action::TokenRevoke, &target, keeps, &none)?;
        record.revoked_at = Some(now_unix());
        let change = Change {
            puts: vec![(token_key(id), encode(&record))],
            event: Event {
                actor: principal.actor(),
                action: Action::TokenRevoke,
                target: format!("token/{}", record.id),
                outcome: Outcome::Done,
                reason: None,
                detail: Some(target),
            },
        };
        // a revoked token leaves memory: it can never authenticate again, and keeping it
        // would let a user grow the server's memory by issuing and revoking in a loop
        self.commit(change, move |state| {
            state.tokens.remove(&id);
        })?;
        Ok(record)
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
    let user = (state.users.get(&live.record.user))
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

/// `user`'s live tokens.
fn live_tokens(state: &State, user: u64) -> usize {
    (state.tokens.values())
        .filter(|t| t.record.user == user && t.record.revoked_at.is_none())
        .count()
}

/// Active, unsuspended holders of `regulator_admin` in an organisation that is not suspended.
fn active_regulator_admins(state: &State) -> usize {
    (state.users.values())
        .filter(|u| u.active && !u.suspended && u.roles.contains(&Role::RegulatorAdmin))
        .filter(|u| state.orgs.get(&u.org).is_some_and(|o| !o.suspended))
        .count()
}

fn new_user(id: u64, org: u64, person: &Person, roles: Vec<Role>, now: u64) -> User {
    User {
        id,
        org,
        id_number: person.id_number.trim().to_owned(),
        full_name: person
            .full_name
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        email: person.email.trim().to_owned(),
        roles,
        active: true,
        suspended: false,
        created_at: now,
    }
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

fn live_token(record: Token) -> Option<LiveToken> {
    TokenId::from_hex(&record.id)?;
    let hash = token::from_hex::<32>(&record.secret_hash)?;
    let used = record.last_used_at.unwrap_or(0);
    Some(LiveToken {
        record,
        hash,
        last_used: AtomicU64::new(used),
        saved_last_used: AtomicU64::new(used),
    })
}

fn role_names(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies a JSON merge patch (RFC 7396) to `current` and reads the result back; a result of
/// the wrong shape is a field error naming what serde found wrong.
fn apply_patch<T: Serialize + DeserializeOwned>(
    current: &T,
    patch: &serde_json::Value,
) -> Result<T, AccountsError> {
    if !patch.is_object() {
        return Err(AccountsError::Invalid(FieldErrors(vec![(
            "body".into(),
            "must be a JSON object of the fields to change".into(),
        )])));
    }
    let mut value = serde_json::to_value(current).expect("a record always serialises");
    merge(&mut value, patch);
    serde_json::from_value(value)
        .map_err(|e| AccountsError::Invalid(FieldErrors(vec![("body".into(), e.to_string())])))
}

fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(target), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(
                        target.entry(key.clone()).or_insert(serde_json::Value::Null),
                        value,
                    );
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// Times as the API shows them.
pub fn time_json(unix: Option<u64>) -> serde_json::Value {
    unix.map_or(serde_json::Value::Null, |t| {
        serde_json::Value::String(timefmt::rfc3339(t))
    })
}

#[cfg(test)]
mod tests;
