//! API tokens of a user: issued (by the user; by an administrator only for an account with no
//! live token), listed and revoked. The token's own format and hashing are `token.rs`.

use super::*;

impl Accounts {
    /// The user `id`, for an action on its tokens. A user that does not exist is
    /// [`AccountsError::NotFound`] only to the regulator's administrator, who administers every
    /// user; anyone else learns nothing about which user ids exist.
    pub(super) fn token_holder(
        &self,
        principal: &Principal,
        id: u64,
    ) -> Result<User, AccountsError> {
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
        let (live, password) = {
            let state = self.read();
            let web = logins::holds_web_credential(&state, user, now_unix());
            (live_tokens(&state, user), web)
        };
        let verdict = authority::may_issue_token(principal, &holder, live, password);
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
            issued_by: Some(principal.issuer_for(user)),
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
}

/// `user`'s live tokens.
pub(super) fn live_tokens(state: &State, user: u64) -> usize {
    (state.tokens.values())
        .filter(|t| t.record.user == user && t.record.revoked_at.is_none())
        .count()
}

pub(super) fn live_token(record: Token) -> Option<LiveToken> {
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
