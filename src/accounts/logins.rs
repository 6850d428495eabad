//! People sign in: passwords, the one-time codes that set them, and web sessions.
//!
//! API tokens are for machines; a person signs in on the web pages with the e-mail of its
//! account and a password. The rule, with `authority.rs`:
//!
//! 1. **Setting a password.** An administrator who may act on an account (`authority.rs`, 3
//!    and 4) issues a one-time code for it while it holds no live token (a user may ask one
//!    for itself), valid [`SETUP_CODE_SECS`]; the person sets its password with the code.
//!    Issuing a code clears the password the account had and ends its sessions, so a code
//!    never sits beside a credential its holder is using: an administrator cannot quietly sign
//!    in as someone else (the holder finds itself locked out), and no administrator issues a
//!    token beside a password (`authority.rs`, 4). Only the code's SHA-256 is kept; a newer
//!    code replaces an older one.
//! 2. **Passwords** are stored as Argon2id PHC strings (their own salt and parameters), at
//!    least [`MIN_PASSWORD_CHARS`] characters, not the account's e-mail.
//! 3. **One account per e-mail signs in**: a password is not set, nor an e-mail changed, for
//!    an account whose e-mail already signs in another account (e-mails are otherwise not
//!    unique), so an account given someone else's e-mail cannot stand in front of theirs.
//!    **Signing in** is slowed and audited: every failed attempt on an existing account is in
//!    the audit trail (actor: the client's address); after [`FAILURES_BEFORE_LOCK`] failures
//!    in [`LOCK_SECS`], the account refuses sign-ins for the rest of that time without
//!    looking at the password. An unknown e-mail costs the same Argon2 verification as a
//!    known one, so the answer's timing does not tell which e-mails have accounts; the first
//!    such attempt from a client address in each window is audited too (target `user/none`),
//!    the others are not, so guessing e-mails cannot make the store write at will.
//! 4. **Sessions** live in memory only (a restart signs everyone out), at most
//!    [`MAX_SESSIONS_PER_USER`] per user, and end when idle or old past the configured limits,
//!    on sign-out, and at once when the user is deactivated or suspended, its organisation
//!    suspended, or its password set again. A session acts with the user's roles as they are
//!    at each request, exactly as a token does: the pages call the same domain functions.
//!
//! Argon2 costs tens of milliseconds of a core by design: [`Accounts::sign_in`] and
//! [`Accounts::set_password`] are for a blocking thread, and the caller bounds how many run.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use super::*;

/// How long a one-time code to set a password is valid.
pub const SETUP_CODE_SECS: u64 = 72 * 3600;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (Argon2 reads all of it).
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Failed sign-ins of one account, within [`LOCK_SECS`], before it refuses sign-ins.
pub const FAILURES_BEFORE_LOCK: u32 = 5;
/// How long failures count, and how long a locked account stays locked.
pub const LOCK_SECS: u64 = 15 * 60;
/// Sessions one user may hold; a new one ends the oldest.
pub const MAX_SESSIONS_PER_USER: usize = 8;
/// Accounts with one e-mail (and a password) a sign-in tries, each an Argon2 verification.
pub const MAX_SAME_EMAIL: usize = 4;
/// Client addresses remembered for [`Accounts::sign_in`]'s audit of e-mails without an
/// account; past it (every one within its window) further such failures are not audited.
pub const MAX_UNKNOWN_EMAIL_CLIENTS: usize = 4096;

/// How long sessions last (config `web.session_idle_mins`, `web.session_max_hours`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle_secs: u64,
    /// A session this old ends, used or not.
    pub max_secs: u64,
}

impl Default for SessionLimits {
    fn default() -> SessionLimits {
        SessionLimits {
            idle_secs: 30 * 60,
            max_secs: 12 * 3600,
        }
    }
}

/// A user's password and its pending set-up code, as stored (`login/{user}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Login {
    /// The user.
    pub(super) user: u64,
    /// Argon2id PHC string, once set.
    #[serde(default)]
    pub(super) password: Option<String>,
    /// When it was set, Unix seconds.
    #[serde(default)]
    pub(super) password_set_at: Option<u64>,
    /// SHA-256 (hex) of the pending one-time code.
    #[serde(default)]
    pub(super) setup_sha256: Option<String>,
    /// When that code expires, Unix seconds.
    #[serde(default)]
    pub(super) setup_expires_at: u64,
    /// Who issued the pending code, when not the user itself (an administrator, who may have
    /// kept it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) setup_by: Option<u64>,
    /// Who issued the code the password was set with, when not the user itself: sessions
    /// opened with the password name it in the audit trail (rule 4 of `authority.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) password_from: Option<u64>,
}

/// A live web session. The cookie holds its id and a secret; only the secret's hash is kept.
pub(super) struct Session {
    user: u64,
    hash: [u8; 32],
    csrf: String,
    created: u64,
    seen: u64,
    /// Order of opening, for ending a user's oldest session.
    opened: u64,
    /// SHA-256 of the password record it was opened with: a session opened while the
    /// password was being reset (the sign-in's Argon2 runs unlocked) ends at its first use.
    password: [u8; 32],
}

/// Sessions and failed sign-ins, in memory.
#[derive(Default)]
pub(super) struct Sessions {
    limits: SessionLimits,
    live: HashMap<u64, Session>,
    /// Per user: failures in the current window, when it started.
    failures: HashMap<u64, (u32, u64)>,
    /// Per client address: when the window began in which its first sign-in with an e-mail
    /// that has no account was audited (at most [`MAX_UNKNOWN_EMAIL_CLIENTS`]).
    unknown_emails: HashMap<String, u64>,
    /// When the audit last said that [`MAX_UNKNOWN_EMAIL_CLIENTS`] addresses were remembered
    /// and others would not be audited (once per [`LOCK_SECS`]).
    unknown_emails_full: Option<u64>,
    /// Sessions opened so far.
    opened: u64,
}

/// A session just opened: the cookie to set and what the pages need.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie's value: shown to the browser once, kept only as a hash.
    pub cookie: String,
    /// The user.
    pub user: User,
}

/// A request's session: who acts, and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The caller, with the roles the user holds now.
    pub principal: Principal,
    /// The session's CSRF token: every form posted in the session carries it.
    pub csrf: String,
    /// The user's name, for the page header.
    pub full_name: String,
    /// The organisation's legal name.
    pub org_name: String,
}

/// Why a sign-in failed. The page says no more than "wrong e-mail or password" for the first
/// two, so that it does not tell which e-mails have accounts.
#[derive(Debug)]
pub enum SignInRefusal {
    /// No account with that e-mail and a password, or the wrong password.
    WrongCredentials,
    /// Too many failures: try again in this many seconds.
    Locked(u64),
    /// The password is right but the account may not act (deactivated or suspended).
    Disabled(AccountsError),
}

impl Accounts {
    /// Sets how long sessions last.
    pub fn set_session_limits(&self, limits: SessionLimits) {
        self.lock_sessions().limits = limits;
    }

    fn lock_sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every session of the users `ended` names (deactivated, suspended, password set).
    pub(super) fn end_sessions(&self, ended: impl Fn(u64) -> bool) {
        self.lock_sessions().live.retain(|_, s| !ended(s.user));
    }

    /// An administrator issues a one-time code to set `user`'s password; returns the code,
    /// shown this once. Clears the password the account had and ends its sessions (rule 1).
    ///
    /// # Errors
    /// [`AccountsError::Forbidden`] and [`AccountsError::Refused`] (audited),
    /// [`AccountsError::NotFound`], [`AccountsError::Random`], [`AccountsError::Store`].
    pub fn issue_password_setup(
        &self,
        principal: &Principal,
        user: u64,
    ) -> Result<String, AccountsError> {
        let target = format!("user/{user}");
        let _writer = self.lock_writer();
        let holder = self.token_holder(principal, user)?;
        let (live, own_credential) = {
            let state = self.read();
            // a user asking a code for itself does so with a credential it made: a session, or
            // a token it issued, not the first token an administrator issued for it
            let own = match principal.credential {
                Credential::Session(_) => true,
                Credential::Token(id) => (state.tokens.get(&id))
                    .is_some_and(|t| t.record.issued_by.is_none_or(|by| by == user)),
            };
            (tokens::live_tokens(&state, user), own)
        };
        let verdict = authority::may_issue_password_setup(principal, &holder, live, own_credential);
        let none = FieldErrors::default();
        self.enforce(principal, Action::PasswordSetup, &target, verdict, &none)?;
        let (code, login) = setup_code(user, Some(principal.issuer_for(user)))?;
        let had_password = (self.read().logins.get(&user)).is_some_and(|l| l.password.is_some());
        let detail = if had_password {
            "one-time code issued; the password the account had is cleared and its sessions ended"
        } else {
            "one-time code issued"
        };
        let change = Change {
            puts: vec![(login_key(user), encode(&login))],
            event: Event {
                actor: principal.actor(),
                action: Action::PasswordSetup,
                target,
                outcome: Outcome::Done,
                reason: None,
                detail: Some(detail.into()),
            },
        };
        self.commit(change, move |state| {
            state.logins.insert(user, login);
        })?;
        self.end_sessions(|u| u == user);
        Ok(code)
    }

    /// Sets the password of the account whose pending one-time `code` this is, and ends its
    /// sessions. Hashes with Argon2: call on a blocking thread.
    ///
    /// # Errors
    /// [`AccountsError::Invalid`] naming `code` (wrong, used or expired) or `password`
    /// (too short, too long, the e-mail), [`AccountsError::Store`].
    pub fn set_password(&self, code: &str, password: &str) -> Result<User, AccountsError> {
        let hash = token::hex(&Sha256::digest(code.trim().as_bytes()));
        let wrong_code = || {
            AccountsError::Invalid(FieldErrors(vec![(
                "code".into(),
                "the code is wrong, already used or expired: ask your administrator for a new one"
                    .into(),
            )]))
        };
        let now = now_unix();
        let pending = |state: &State| -> Option<(User, Organisation)> {
            let login = (state.logins.values())
                .find(|l| l.setup_sha256.as_deref() == Some(&hash) && l.setup_expires_at > now)?;
            let user = state.users.get(&login.user)?;
            Some((user.clone(), state.orgs.get(&user.org)?.clone()))
        };
        let (user, org) = pending(&self.read()).ok_or_else(wrong_code)?;
        check_password(password, &user)?;
        let taken = || {
            AccountsError::Conflict(format!(
                "the e-mail {} already signs in another account: ask the regulator to correct one of them",
                user.email
            ))
        };
        if email_signs_in(&self.read(), &user.email, user.id).is_some() {
            return Err(taken());
        }
        let phc = hash_password(password)?;
        let _writer = self.lock_writer();
        // the code may have been used or replaced while Argon2 ran
        let (user, _) = (pending(&self.read()))
            .filter(|(u, _)| u.id == user.id)
            .ok_or_else(wrong_code)?;
        let from = (self.read().logins.get(&user.id)).and_then(|l| l.setup_by);
        if email_signs_in(&self.read(), &user.email, user.id).is_some() {
            return Err(taken());
        }
        let login = Login {
            user: user.id,
            password: Some(phc),
            password_set_at: Some(now),
            setup_sha256: None,
            setup_expires_at: 0,
            setup_by: None,
            password_from: from,
        };
        let change = Change {
            puts: vec![(login_key(user.id), encode(&login))],
            event: Event {
                actor: person(&user, &org, None, from),
                action: Action::PasswordSet,
                target: format!("user/{}", user.id),
                outcome: Outcome::Done,
                reason: None,
                detail: None,
            },
        };
        let id = user.id;
        self.commit(change, move |state| {
            state.logins.insert(id, login);
        })?;
        self.end_sessions(|u| u == id);
        Ok(user)
    }

    /// Signs a person in with `email` and `password`, from `client` (an address, for the
    /// audit trail). Verifies with Argon2: call on a blocking thread.
    ///
    /// # Errors
    /// A [`SignInRefusal`]; a failure to write the audit trail refuses the sign-in too.
    pub fn sign_in(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> Result<NewSession, SignInRefusal> {
        let email = email.trim();
        let now = now_unix();
        // one account signs in with an e-mail (rule 3); accounts from before that rule, which
        // may share one, are each tried
        let candidates: Vec<(User, String)> = {
            let state = self.read();
            (state.users.values())
                .filter(|u| !email.is_empty() && u.email.eq_ignore_ascii_case(email))
                .filter_map(|u| {
                    let phc = state.logins.get(&u.id)?.password.clone()?;
                    Some((u.clone(), phc))
                })
                .take(MAX_SAME_EMAIL)
                .collect()
        };
        if candidates.is_empty() {
            // as slow as a wrong password, so the timing does not tell the e-mail is unknown
            let _ = verify_password(password, dummy_phc());
            self.record_unknown_email(client, now);
            return Err(SignInRefusal::WrongCredentials);
        }
        let mut matched = None;
        let mut locked = None;
        let mut verified = false;
        for (user, phc) in &candidates {
            if let Some(wait) = self.locked_for(user.id, now) {
                locked = Some(wait);
                continue;
            }
            verified = true;
            if verify_password(password, phc) {
                matched = Some((user.clone(), phc.clone()));
                break;
            }
        }
        if !verified {
            // a locked account costs what an unknown e-mail costs: its timing tells nothing
            let _ = verify_password(password, dummy_phc());
        }
        let Some((user, phc)) = matched else {
            for (user, _) in &candidates {
                if self.locked_for(user.id, now).is_some() {
                    continue; // a locked account writes nothing more
                }
                let locks = self.count_failure(user.id, now);
                let reason = if locks {
                    locked = Some(LOCK_SECS);
                    format!(
                        "wrong password; {FAILURES_BEFORE_LOCK} failures: sign-ins refused for {} minutes",
                        LOCK_SECS / 60
                    )
                } else {
                    "wrong password".to_owned()
                };
                self.record_sign_in_failure(client, format!("user/{}", user.id), reason);
            }
            return Err(match locked {
                Some(wait) => SignInRefusal::Locked(wait),
                None => SignInRefusal::WrongCredentials,
            });
        };
        let (user, org, from) = {
            let state = self.read();
            let (user, org) = acting_user(&state, user.id).map_err(SignInRefusal::Disabled)?;
            let from = (state.logins.get(&user.id)).and_then(|l| l.password_from);
            (user.clone(), org.clone(), from)
        };
        self.lock_sessions().failures.remove(&user.id);
        let mut bytes = [0u8; 40];
        if getrandom::getrandom(&mut bytes).is_err() {
            return Err(SignInRefusal::Disabled(token::RandomError.into()));
        }
        let (id, secret) = bytes.split_at(8);
        let id = u64::from_be_bytes(id.try_into().expect("8 bytes"));
        let secret = token::hex(secret);
        let mut csrf = [0u8; 16];
        let _ = getrandom::getrandom(&mut csrf);
        let event = Event {
            actor: person(&user, &org, Some(id), from),
            action: Action::SignIn,
            target: format!("user/{}", user.id),
            outcome: Outcome::Done,
            reason: None,
            detail: Some(format!("from {client}")),
        };
        self.record(&event).map_err(SignInRefusal::Disabled)?;
        let mut sessions = self.lock_sessions();
        let mine: Vec<(u64, u64)> = (sessions.live.iter())
            .filter(|(_, s)| s.user == user.id)
            .map(|(&id, s)| (s.opened, id))
            .collect();
        if mine.len() >= MAX_SESSIONS_PER_USER
            && let Some(&(_, oldest)) = mine.iter().min()
        {
            sessions.live.remove(&oldest);
        }
        sessions.opened += 1;
        let opened = sessions.opened;
        sessions.live.insert(
            id,
            Session {
                user: user.id,
                hash: Sha256::digest(secret.as_bytes()).into(),
                csrf: token::hex(&csrf),
                created: now,
                seen: now,
                opened,
                password: Sha256::digest(phc.as_bytes()).into(),
            },
        );
        Ok(NewSession {
            cookie: format!("{id:016x}.{secret}"),
            user,
        })
    }

    /// The session of `cookie`, if it is live and its user may act now; marks it used.
    ///
    /// # Errors
    /// [`AccountsError::Unauthenticated`] for no such session (signed out, expired, ended) or
    /// a deactivated user, [`AccountsError::Suspended`]. A session whose user may no longer
    /// act is ended.
    pub fn session(&self, cookie: &str) -> Result<SignedIn, AccountsError> {
        let (id, secret) = cookie
            .split_once('.')
            .filter(|(id, secret)| id.len() == 16 && secret.len() == 64)
            .ok_or(AccountsError::Unauthenticated)?;
        let id = u64::from_str_radix(id, 16).map_err(|_| AccountsError::Unauthenticated)?;
        let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let now = now_unix();
        let (user, csrf, password) = {
            let mut sessions = self.lock_sessions();
            let limits = sessions.limits;
            let session = (sessions.live.get_mut(&id))
                .filter(|s| token::constant_time_eq(&s.hash, &hash))
                .ok_or(AccountsError::Unauthenticated)?;
            if expired(session, limits, now) {
                sessions.live.remove(&id);
                return Err(AccountsError::Unauthenticated);
            }
            session.seen = now;
            (session.user, session.csrf.clone(), session.password)
        };
        let state = self.read();
        let same_password = (state.logins.get(&user))
            .and_then(|l| l.password.as_deref())
            .is_some_and(|phc| {
                let digest: [u8; 32] = Sha256::digest(phc.as_bytes()).into();
                digest == password
            });
        let acting = if same_password {
            acting_user(&state, user)
        } else {
            Err(AccountsError::Unauthenticated)
        };
        match acting {
            Ok((user, org)) => Ok(SignedIn {
                principal: Principal {
                    user: user.id,
                    org: org.id,
                    org_kind: org.kind,
                    roles: user.roles.clone(),
                    credential: Credential::Session(id),
                    issued_by: (state.logins.get(&user.id)).and_then(|l| l.password_from),
                },
                csrf,
                full_name: user.full_name.clone(),
                org_name: org.data.legal_name.clone(),
            }),
            Err(e) => {
                drop(state);
                self.lock_sessions().live.remove(&id);
                Err(e)
            }
        }
    }

    /// Whether session `id` of `user` is still live (not signed out, ended or expired, and
    /// its user's password the one it was opened with).
    pub(super) fn session_is_live(&self, id: u64, user: u64) -> Result<(), AccountsError> {
        let password = {
            let sessions = self.lock_sessions();
            (sessions.live.get(&id))
                .filter(|s| s.user == user && !expired(s, sessions.limits, now_unix()))
                .map(|s| s.password)
                .ok_or(AccountsError::Unauthenticated)?
        };
        let state = self.read();
        let phc = (state.logins.get(&user))
            .and_then(|l| l.password.as_deref())
            .ok_or(AccountsError::Unauthenticated)?;
        let digest: [u8; 32] = Sha256::digest(phc.as_bytes()).into();
        (digest == password)
            .then_some(())
            .ok_or(AccountsError::Unauthenticated)
    }

    /// Ends the session of `signed_in` (sign-out), and records it.
    ///
    /// # Errors
    /// [`AccountsError::Store`] if the audit entry could not be written; the session is ended
    /// anyway.
    pub fn sign_out(&self, signed_in: &SignedIn) -> Result<(), AccountsError> {
        let Credential::Session(id) = signed_in.principal.credential else {
            return Ok(());
        };
        self.lock_sessions().live.remove(&id);
        self.record(&Event {
            actor: signed_in.principal.actor(),
            action: Action::SignOut,
            target: format!("user/{}", signed_in.principal.user),
            outcome: Outcome::Done,
            reason: None,
            detail: None,
        })
    }

    /// Whether `user` has a password (it can sign in on the web pages).
    pub fn has_password(&self, user: u64) -> bool {
        (self.read().logins.get(&user)).is_some_and(|l| l.password.is_some())
    }

    /// Seconds until `user`'s sign-ins are accepted again, if it is locked now.
    fn locked_for(&self, user: u64, now: u64) -> Option<u64> {
        let sessions = self.lock_sessions();
        let &(count, since) = sessions.failures.get(&user)?;
        (count >= FAILURES_BEFORE_LOCK && now < since + LOCK_SECS).then(|| since + LOCK_SECS - now)
    }

    /// Counts a failure of `user`; whether it locks the account.
    fn count_failure(&self, user: u64, now: u64) -> bool {
        let mut sessions = self.lock_sessions();
        let entry = sessions.failures.entry(user).or_insert((0, now));
        if now >= entry.1 + LOCK_SECS {
            *entry = (0, now);
        }
        entry.0 += 1;
        if entry.0 >= FAILURES_BEFORE_LOCK {
            // the lock runs from this failure
            entry.1 = now;
        }
        entry.0 == FAILURES_BEFORE_LOCK
    }

    /// Audits a sign-in with an e-mail that has no account: the first from `client` in each
    /// [`LOCK_SECS`] window, so that guessing e-mails shows in the trail while a client
    /// cannot make the store write at will (an unknown e-mail never locks anything). What was
    /// typed is not written: a password typed in the e-mail field would be kept.
    ///
    /// Past [`MAX_UNKNOWN_EMAIL_CLIENTS`] addresses in one window, the trail says so once per
    /// window and audits no other address until remembered ones expire.
    pub(super) fn record_unknown_email(&self, client: &str, now: u64) {
        let minutes = LOCK_SECS / 60;
        let reason = {
            let mut sessions = self.lock_sessions();
            let windows = &mut sessions.unknown_emails;
            if windows
                .get(client)
                .is_some_and(|&since| now < since + LOCK_SECS)
            {
                return;
            }
            let mut full = false;
            if windows.len() >= MAX_UNKNOWN_EMAIL_CLIENTS && !windows.contains_key(client) {
                windows.retain(|_, &mut since| now < since + LOCK_SECS);
                full = windows.len() >= MAX_UNKNOWN_EMAIL_CLIENTS;
            }
            if full {
                if (sessions.unknown_emails_full).is_some_and(|since| now < since + LOCK_SECS) {
                    return;
                }
                sessions.unknown_emails_full = Some(now);
                format!(
                    "no account signs in with that e-mail; {MAX_UNKNOWN_EMAIL_CLIENTS} other addresses did the same within {minutes} minutes: such attempts from further addresses are not audited until theirs expire"
                )
            } else {
                windows.insert(client.to_owned(), now);
                format!(
                    "no account signs in with that e-mail; further such attempts from this address in the next {minutes} minutes are not audited"
                )
            }
        };
        self.record_sign_in_failure(client, "user/none".to_owned(), reason);
    }

    /// Client addresses remembered by [`Self::record_unknown_email`].
    #[cfg(test)]
    pub(super) fn unknown_email_clients(&self) -> usize {
        self.lock_sessions().unknown_emails.len()
    }

    fn record_sign_in_failure(&self, client: &str, target: String, reason: String) {
        let event = Event {
            actor: Actor::Client {
                address: client.to_owned(),
            },
            action: Action::SignIn,
            target,
            outcome: Outcome::Denied,
            reason: Some(reason),
            detail: None,
        };
        if let Err(e) = self.record(&event) {
            tracing::error!(error = %e, "could not record a failed sign-in in the audit trail");
        }
    }
}

/// The account other than `except` whose web sign-in `email` already is: an account with a
/// password and that e-mail (compared without case). Rule 3 keeps this to one account, so
/// that an account given someone else's e-mail can never stand in front of theirs.
pub(super) fn email_signs_in(state: &State, email: &str, except: u64) -> Option<u64> {
    (state.users.values())
        .filter(|u| u.id != except && u.email.trim().eq_ignore_ascii_case(email.trim()))
        .find(|u| (state.logins.get(&u.id)).is_some_and(|l| l.password.is_some()))
        .map(|u| u.id)
}

/// Whether `user` holds a web credential an administrator must not issue a token beside: a
/// password, or a one-time code to set one that has not expired.
pub(super) fn holds_web_credential(state: &State, user: u64, now: u64) -> bool {
    (state.logins.get(&user)).is_some_and(|l| {
        l.password.is_some() || (l.setup_sha256.is_some() && l.setup_expires_at > now)
    })
}

/// A fresh one-time code for `user`, issued by `by` (`None`: the console), and the record
/// that holds its hash (and no password).
pub(super) fn setup_code(user: u64, by: Option<u64>) -> Result<(String, Login), AccountsError> {
    let mut secret = [0u8; 16];
    getrandom::getrandom(&mut secret).map_err(|_| token::RandomError)?;
    let code = token::hex(&secret);
    let login = Login {
        user,
        password: None,
        password_set_at: None,
        setup_sha256: Some(token::hex(&Sha256::digest(code.as_bytes()))),
        setup_expires_at: now_unix() + SETUP_CODE_SECS,
        setup_by: by.filter(|&by| by != user),
        password_from: None,
    };
    Ok((code, login))
}

/// The key of `user`'s password record.
pub(super) fn login_key(user: u64) -> Vec<u8> {
    format!("login/{user:016x}").into_bytes()
}

/// A person acting through a session (or, with `None`, setting its password), whose password
/// was set with a code `issued_by` issued (`None`: the person's own).
fn person(user: &User, org: &Organisation, session: Option<u64>, issued_by: Option<u64>) -> Actor {
    Actor::User {
        user: user.id,
        org: org.id,
        roles: user.roles.clone(),
        token: None,
        session: session.map(|id| format!("{id:016x}")),
        issued_by,
    }
}

fn expired(session: &Session, limits: SessionLimits, now: u64) -> bool {
    now >= session.seen + limits.idle_secs || now >= session.created + limits.max_secs
}

/// Refuses a password that breaks rule 2, naming the field.
fn check_password(password: &str, user: &User) -> Result<(), AccountsError> {
    let chars = password.chars().count();
    let why = if chars < MIN_PASSWORD_CHARS {
        Some(format!("use at least {MIN_PASSWORD_CHARS} characters"))
    } else if chars > MAX_PASSWORD_CHARS {
        Some(format!("use at most {MAX_PASSWORD_CHARS} characters"))
    } else if password.trim().eq_ignore_ascii_case(user.email.trim()) {
        Some("must not be your e-mail".to_owned())
    } else {
        None
    };
    match why {
        Some(why) => Err(AccountsError::Invalid(FieldErrors(vec![(
            "password".into(),
            why,
        )]))),
        None => Ok(()),
    }
}

fn hash_password(password: &str) -> Result<String, AccountsError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|_| token::RandomError)?;
    let salt = SaltString::encode_b64(&bytes).map_err(|_| token::RandomError)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AccountsError::Random(token::RandomError))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A valid hash of no one's password, verified against when the e-mail is unknown.
fn dummy_phc() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no account has this password").unwrap_or_default())
}

/// For the accounts' tests: a password record made as `set_password` makes it.
#[cfg(test)]
pub(super) mod tests_support {
    /// The PHC string of `password`.
    pub(crate) fn phc_of(password: &str) -> String {
        super::hash_password(password).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_when_idle_or_old_whichever_comes_first() {
        let limits = SessionLimits {
            idle_secs: 60,
            max_secs: 600,
        };
        let session = |created, seen| Session {
            user: 1,
            hash: [0; 32],
            csrf: String::new(),
            created,
            seen,
            opened: 0,
            password: [0; 32],
        };
        assert!(!expired(&session(1000, 1000), limits, 1059));
        assert!(expired(&session(1000, 1000), limits, 1060), "idle");
        assert!(!expired(&session(1000, 1590), limits, 1599));
        assert!(
            expired(&session(1000, 1599), limits, 1600),
            "old, though used"
        );
    }
}
