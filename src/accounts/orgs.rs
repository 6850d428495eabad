//! Organisations: the regulator's bootstrap, creation from the user form, reading (the
//! regulator's readers every one, others their own), changes and suspension.

use super::*;

/// What the bootstrap made: the regulator, its administrator, and the administrator's two
/// credentials, each shown once.
#[derive(Debug)]
pub struct Bootstrapped {
    /// The regulator organisation.
    pub org: Organisation,
    /// Its administrator.
    pub admin: User,
    /// The administrator's API token.
    pub token: String,
    /// The one-time code with which the administrator sets its web password at `/clave`.
    pub password_code: String,
}

impl Accounts {
    /// First start: creates the regulator organisation from its form, its administrator
    /// (regulator administrator and organisation administrator), a token for it and a
    /// one-time code with which that person sets its web password (`logins.rs`). Refuses
    /// once any organisation exists.
    ///
    /// # Errors
    /// [`AccountsError::AlreadyBootstrapped`], [`AccountsError::Invalid`] for a bad form or a
    /// kind other than `regulator`, [`AccountsError::Store`].
    pub fn bootstrap(&self, form: OrgForm) -> Result<Bootstrapped, AccountsError> {
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
        let (code, login) = logins::setup_code(admin.id, None)?;
        change
            .puts
            .push((logins::login_key(admin.id), encode(&login)));
        change.event.action = Action::Bootstrap;
        let (org_c, admin_c) = (org.clone(), admin.clone());
        self.commit(change, move |state| {
            insert_org(state, org_c);
            insert_user(state, admin_c);
            state.logins.insert(login.user, login);
            state
                .tokens
                .insert(new.id, live_token(record).expect("made here"));
        })?;
        Ok(Bootstrapped {
            org,
            admin,
            token: new.text,
            password_code: code,
        })
    }

    /// Builds a new organisation and its administrator (not yet written).
    pub(super) fn new_org(
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

    pub(super) fn check_new_person(
        &self,
        state: &State,
        id_number: &str,
    ) -> Result<(), AccountsError> {
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
        if suspended {
            let members: Vec<u64> = (self.read().users.values())
                .filter(|u| u.org == id)
                .map(|u| u.id)
                .collect();
            self.end_sessions(|user| members.contains(&user));
        }
        Ok(org)
    }
}
