//! Personal accounts of an organisation: creation, reading, changes (a JSON merge patch that
//! may not touch what identifies the person), activation and suspension, each only by one who
//! may act on the account (`authority.rs`).

use super::*;

/// What a patch (RFC 7396 JSON merge patch) may not change, and why.
pub(super) const IMMUTABLE_USER_FIELDS: &[(&str, &str)] = &[
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
    /// Checks that `principal` administers `org`'s users and that `org` exists; a refusal of
    /// a change is audited.
    pub(super) fn user_scope(
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
    pub(super) fn enforce(
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
    pub(super) fn user_of(&self, org: u64, id: u64) -> Result<User, AccountsError> {
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
        if !user.active || user.suspended {
            // a session ends with its user's right to act, and is not revived with it
            self.end_sessions(|id| id == user.id);
        }
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
        if logins::email_signs_in(&self.read(), &form.email, id).is_some() {
            // one account signs in with an e-mail (`logins.rs`, 3)
            let why = format!(
                "the e-mail {} already signs in another account: give each person its own",
                form.email.trim()
            );
            return Err(self.conflict(principal, Action::UserUpdate, target, &why));
        }
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
        if !user.active || user.suspended {
            // a session ends with its user's right to act, and is not revived with it
            self.end_sessions(|id| id == user.id);
        }
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
    pub(super) fn check_account_change(
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

    pub(super) fn save_user(
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
        if !user.active || user.suspended {
            // a session ends with its user's right to act, and is not revived with it
            self.end_sessions(|id| id == user.id);
        }
        Ok(user)
    }
}

pub(super) fn new_user(id: u64, org: u64, person: &Person, roles: Vec<Role>, now: u64) -> User {
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
