//! Who may act on whose account: the rule that keeps rights from travelling through account
//! changes and credentials. The regulator's user form makes accounts personal and not
//! transferable, and an organisation administrator's function "únicamente de administración";
//! so an administrator manages accounts but never borrows the rights they hold.
//!
//! The rule, whole (every account-changing call of `accounts` asks it, and nothing else does):
//!
//! 1. **Administering.** The regulator's administrator administers the users of every
//!    organisation; an organisation administrator those of its own organisation.
//! 2. **Granting.** An administrator grants only roles of the organisation's kind, and
//!    `regulator_admin` only if it holds it. Nobody changes its own roles: a role change is
//!    always one person acting on another's account.
//! 3. **Acting on an account** (change, deactivate, activate, suspend, reactivate, revoke a
//!    token): only an administrator of its organisation who could grant every role the account
//!    holds. The regulator organisation's plain `org_admin` cannot touch a `regulator_admin`.
//! 4. **Credentials.** A user issues its own tokens (at most [`MAX_LIVE_TOKENS`] live). An
//!    administrator who may act on the account (3) issues a token for it only while the account
//!    holds no live credential (no live token, no web password): its first credential, or a
//!    replacement once all of them were revoked. Likewise a one-time code to set the account's
//!    web password (`logins.rs`): an administrator issues one only while the account holds no
//!    live token (issuing it clears the password the account had); a user may ask one for
//!    itself. Never beside a credential its holder is using, so an administrator cannot
//!    quietly act as someone else. Every token records who issued it; every audit entry names
//!    the credential that acted and, when someone other than its holder issued it (or the code
//!    its password was set with), that issuer too: what an administrator could have done with
//!    a credential it issued is recorded under both names. The name travels: a credential its
//!    holder makes through one an administrator issued names that administrator too
//!    ([`Principal::issuer_for`]), so it cannot be shed by making a new one.
//! 5. **No lockout.** The last active, unsuspended `regulator_admin` cannot be deactivated,
//!    suspended, lose the role, or have its last live token revoked (nobody could issue it
//!    another).

use std::collections::BTreeSet;

use super::{Principal, User};
use crate::roles::{OrgKind, Permission, Role};

/// Live tokens one user may hold at once. Revoked tokens do not count: a user rotating its
/// credential revokes the old one.
pub const MAX_LIVE_TOKENS: usize = 16;

/// Why the rule refuses. Each is audited where it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The actor administers no user of that organisation.
    NotAdministrator,
    /// The role is not one of the organisation's kind (field `roles[index]`).
    RoleNotForKind {
        /// Position in the roles given.
        index: usize,
        /// The role.
        role: Role,
        /// The organisation's kind.
        kind: OrgKind,
    },
    /// The actor may not grant this role.
    CannotGrant(Role),
    /// The account holds a role the actor could not grant.
    Outranks(Role),
    /// A change of the actor's own roles.
    OwnRoles,
    /// The account holds a live credential (a token; for a token, a web password too): only
    /// its holder issues more.
    HoldsLiveToken,
    /// The user already holds [`MAX_LIVE_TOKENS`] live tokens.
    TooManyTokens,
    /// It would leave no active `regulator_admin`.
    LastRegulatorAdmin,
}

impl Refusal {
    /// Whether it is a refusal for lack of right (403, audited as denied) rather than one of
    /// the input or of the registry's state (422 or 409, audited as refused).
    pub fn is_denial(&self) -> bool {
        match self {
            Refusal::NotAdministrator
            | Refusal::CannotGrant(_)
            | Refusal::Outranks(_)
            | Refusal::OwnRoles
            | Refusal::HoldsLiveToken => true,
            Refusal::RoleNotForKind { .. }
            | Refusal::TooManyTokens
            | Refusal::LastRegulatorAdmin => false,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotAdministrator => {
                f.write_str("you do not administer the users of this organisation")
            }
            Refusal::RoleNotForKind { role, kind, .. } => write!(
                f,
                "{} is not a role of {} organisations",
                role.as_str(),
                kind.as_str()
            ),
            Refusal::CannotGrant(role) => {
                write!(f, "you may not grant {}", role.as_str())
            }
            Refusal::Outranks(role) => write!(
                f,
                "the account holds {}, which you may not grant, so you may not act on it",
                role.as_str()
            ),
            Refusal::OwnRoles => f.write_str(
                "nobody changes its own roles: another administrator must make the change",
            ),
            Refusal::HoldsLiveToken => f.write_str(
                "the user holds a live credential (a token, or a web password for a token): only that user issues more (revoke its tokens, or issue a new password code, first to issue a replacement)",
            ),
            Refusal::TooManyTokens => write!(
                f,
                "a user holds at most {MAX_LIVE_TOKENS} live tokens: revoke one first"
            ),
            Refusal::LastRegulatorAdmin => f.write_str(
                "this is the last active regulator administrator: make another one first",
            ),
        }
    }
}

/// (1) Whether `actor` administers the users of organisation `org`.
pub fn administers(actor: &Principal, org: u64) -> bool {
    actor.may(Permission::AdministerUsers)
        && (actor.has(Role::RegulatorAdmin) || (actor.has(Role::OrgAdmin) && actor.org == org))
}

/// (2) Whether `actor` may give `roles` to a user of organisation `org`, of kind `kind`.
/// Reports the first refusal; a role outside the kind comes first, as the input's fault.
pub fn may_grant(
    actor: &Principal,
    org: u64,
    kind: OrgKind,
    roles: &[Role],
) -> Result<(), Refusal> {
    if !administers(actor, org) {
        return Err(Refusal::NotAdministrator);
    }
    not_for_kind(kind, roles)?;
    match roles.iter().find(|&&role| !grantable_by(actor, role)) {
        Some(&role) => Err(Refusal::CannotGrant(role)),
        None => Ok(()),
    }
}

/// Whether `actor`, an administrator, may grant `role` where the kind allows it.
fn grantable_by(actor: &Principal, role: Role) -> bool {
    role != Role::RegulatorAdmin || actor.has(Role::RegulatorAdmin)
}

/// (3) Whether `actor` may act on `target`'s account.
pub fn may_act_on(actor: &Principal, target: &User) -> Result<(), Refusal> {
    if !administers(actor, target.org) {
        return Err(Refusal::NotAdministrator);
    }
    match target
        .roles
        .iter()
        .find(|&&role| !grantable_by(actor, role))
    {
        Some(&role) => Err(Refusal::Outranks(role)),
        None => Ok(()),
    }
}

/// (2, 3) Whether `actor` may change `target`'s roles to `roles`.
pub fn may_change_roles(
    actor: &Principal,
    target: &User,
    kind: OrgKind,
    roles: &[Role],
) -> Result<(), Refusal> {
    may_act_on(actor, target)?;
    let set = |roles: &[Role]| roles.iter().copied().collect::<BTreeSet<Role>>();
    if roles.len() == target.roles.len() && set(roles) == set(&target.roles) {
        return Ok(()); // the same roles, perhaps in another order: no role change
    }
    not_for_kind(kind, roles)?;
    if actor.user == target.id {
        return Err(Refusal::OwnRoles);
    }
    may_grant(actor, target.org, kind, roles)
}

/// The first of `roles` that is not a role of `kind`'s organisations.
fn not_for_kind(kind: OrgKind, roles: &[Role]) -> Result<(), Refusal> {
    match (roles.iter().enumerate()).find(|(_, role)| !kind.allowed_roles().contains(role)) {
        Some((index, &role)) => Err(Refusal::RoleNotForKind { index, role, kind }),
        None => Ok(()),
    }
}

/// (4) Whether `actor` may issue a token for `target`, which holds `live_tokens` live ones
/// and, if `password`, a web password.
pub fn may_issue_token(
    actor: &Principal,
    target: &User,
    live_tokens: usize,
    password: bool,
) -> Result<(), Refusal> {
    if actor.user != target.id {
        may_act_on(actor, target)?;
        if live_tokens > 0 || password {
            return Err(Refusal::HoldsLiveToken);
        }
    }
    if live_tokens >= MAX_LIVE_TOKENS {
        return Err(Refusal::TooManyTokens);
    }
    Ok(())
}

/// (4) Whether `actor` may issue a one-time code to set `target`'s web password, `target`
/// holding `live_tokens` live tokens: itself through a credential it made (`own_credential`),
/// or an administrator who may act on the account while it holds no live token.
pub fn may_issue_password_setup(
    actor: &Principal,
    target: &User,
    live_tokens: usize,
    own_credential: bool,
) -> Result<(), Refusal> {
    if actor.user == target.id {
        // through a credential the holder made (a session, a token it issued): never through
        // the first token an administrator issued, which that administrator may still hold
        return if own_credential {
            Ok(())
        } else {
            Err(Refusal::HoldsLiveToken)
        };
    }
    may_act_on(actor, target)?;
    if live_tokens > 0 {
        return Err(Refusal::HoldsLiveToken);
    }
    Ok(())
}

/// (4) Whether `actor` may list or revoke `target`'s tokens: its own, or those of an account
/// it may act on.
pub fn may_manage_tokens_of(actor: &Principal, target: &User) -> Result<(), Refusal> {
    if actor.user == target.id {
        Ok(())
    } else {
        may_act_on(actor, target)
    }
}

/// (5) Refuses a change after which `target` would not be an active `regulator_admin`
/// (`still_one_after` false) if it is the last one: `active_regulator_admins` counts the
/// active, unsuspended holders, `target` included if it is one.
pub fn keeps_a_regulator_admin(
    target: &User,
    still_one_after: bool,
    active_regulator_admins: usize,
) -> Result<(), Refusal> {
    let is_one = target.active && !target.suspended && target.roles.contains(&Role::RegulatorAdmin);
    if is_one && !still_one_after && active_regulator_admins <= 1 {
        Err(Refusal::LastRegulatorAdmin)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Credential;
    use crate::accounts::token::TokenId;

    fn principal(user: u64, org: u64, kind: OrgKind, roles: &[Role]) -> Principal {
        Principal {
            user,
            org,
            org_kind: kind,
            roles: roles.to_vec(),
            credential: Credential::Token(TokenId(user)),
            issued_by: None,
        }
    }

    fn user(id: u64, org: u64, roles: &[Role]) -> User {
        User {
            id,
            org,
            id_number: format!("{}", 79_000_000 + id),
            full_name: "Jorge Iván Ramírez Soto".into(),
            email: "j@example.co".into(),
            roles: roles.to_vec(),
            active: true,
            suspended: false,
            created_at: 0,
        }
    }

    const REGULATOR: u64 = 1;
    const OPERATOR: u64 = 3;

    #[test]
    fn the_regulators_plain_org_admin_cannot_touch_or_mint_for_a_regulator_admin() {
        let org_admin = principal(5, REGULATOR, OrgKind::Regulator, &[Role::OrgAdmin]);
        let chief = user(2, REGULATOR, &[Role::RegulatorAdmin, Role::OrgAdmin]);
        let auditor = user(6, REGULATOR, &[Role::Auditor]);
        assert_eq!(
            may_act_on(&org_admin, &chief),
            Err(Refusal::Outranks(Role::RegulatorAdmin))
        );
        assert_eq!(
            may_issue_token(&org_admin, &chief, 0, false),
            Err(Refusal::Outranks(Role::RegulatorAdmin))
        );
        assert_eq!(
            may_grant(
                &org_admin,
                REGULATOR,
                OrgKind::Regulator,
                &[Role::RegulatorAdmin]
            ),
            Err(Refusal::CannotGrant(Role::RegulatorAdmin))
        );
        assert_eq!(may_act_on(&org_admin, &auditor), Ok(()));
        assert_eq!(may_issue_token(&org_admin, &auditor, 0, false), Ok(()));
    }

    #[test]
    fn an_administrator_issues_only_a_first_or_replacement_credential() {
        let admin = principal(4, OPERATOR, OrgKind::Operator, &[Role::OrgAdmin]);
        let agent = user(7, OPERATOR, &[Role::Operator]);
        assert_eq!(may_issue_token(&admin, &agent, 0, false), Ok(()));
        assert_eq!(
            may_issue_token(&admin, &agent, 1, false),
            Err(Refusal::HoldsLiveToken)
        );
        // a web password is a credential in use too: no token beside it, and no password code
        // beside a live token (the code would let the administrator sign in as the holder)
        assert_eq!(
            may_issue_token(&admin, &agent, 0, true),
            Err(Refusal::HoldsLiveToken)
        );
        assert_eq!(may_issue_password_setup(&admin, &agent, 0, false), Ok(()));
        assert_eq!(
            may_issue_password_setup(&admin, &agent, 1, false),
            Err(Refusal::HoldsLiveToken)
        );
        let itself = principal(7, OPERATOR, OrgKind::Operator, &[Role::Operator]);
        assert_eq!(may_issue_password_setup(&itself, &agent, 3, true), Ok(()));
        assert_eq!(
            may_issue_password_setup(&itself, &agent, 1, false),
            Err(Refusal::HoldsLiveToken),
            "not through the token an administrator issued"
        );
        assert_eq!(may_issue_token(&itself, &agent, 1, true), Ok(()));
        assert_eq!(
            may_issue_token(&itself, &agent, MAX_LIVE_TOKENS, false),
            Err(Refusal::TooManyTokens)
        );
        // another organisation's administrator, and a user of the same organisation, may not
        let other = principal(9, 8, OrgKind::Operator, &[Role::OrgAdmin]);
        assert_eq!(
            may_issue_token(&other, &agent, 0, false),
            Err(Refusal::NotAdministrator)
        );
        let colleague = principal(10, OPERATOR, OrgKind::Operator, &[Role::Operator]);
        assert_eq!(
            may_issue_token(&colleague, &agent, 0, false),
            Err(Refusal::NotAdministrator)
        );
        assert_eq!(
            may_manage_tokens_of(&colleague, &agent),
            Err(Refusal::NotAdministrator)
        );
    }

    #[test]
    fn nobody_changes_its_own_roles_and_kinds_bound_every_grant() {
        let admin = principal(4, OPERATOR, OrgKind::Operator, &[Role::OrgAdmin]);
        let itself = user(4, OPERATOR, &[Role::OrgAdmin]);
        assert_eq!(
            may_change_roles(
                &admin,
                &itself,
                OrgKind::Operator,
                &[Role::OrgAdmin, Role::Operator]
            ),
            Err(Refusal::OwnRoles)
        );
        // an unchanged role list (a change of name or e-mail) is no role change
        assert_eq!(
            may_change_roles(&admin, &itself, OrgKind::Operator, &[Role::OrgAdmin]),
            Ok(())
        );
        let agent = user(7, OPERATOR, &[Role::Operator]);
        assert_eq!(
            may_change_roles(
                &admin,
                &agent,
                OrgKind::Operator,
                &[Role::Operator, Role::Auditor]
            ),
            Err(Refusal::RoleNotForKind {
                index: 1,
                role: Role::Auditor,
                kind: OrgKind::Operator
            })
        );
        let chief = principal(2, REGULATOR, OrgKind::Regulator, &[Role::RegulatorAdmin]);
        assert_eq!(
            may_change_roles(&chief, &agent, OrgKind::Operator, &[Role::RegulatorAdmin]),
            Err(Refusal::RoleNotForKind {
                index: 0,
                role: Role::RegulatorAdmin,
                kind: OrgKind::Operator
            })
        );
        assert_eq!(
            may_change_roles(&chief, &agent, OrgKind::Operator, &[Role::OrgAdmin]),
            Ok(())
        );
    }

    #[test]
    fn the_last_active_regulator_admin_stays() {
        let chief = user(2, REGULATOR, &[Role::RegulatorAdmin, Role::OrgAdmin]);
        assert_eq!(
            keeps_a_regulator_admin(&chief, false, 1),
            Err(Refusal::LastRegulatorAdmin)
        );
        assert_eq!(keeps_a_regulator_admin(&chief, false, 2), Ok(()));
        assert_eq!(keeps_a_regulator_admin(&chief, true, 1), Ok(()));
        let mut retired = chief.clone();
        retired.active = false;
        assert_eq!(keeps_a_regulator_admin(&retired, false, 0), Ok(()));
        let agent = user(7, OPERATOR, &[Role::Operator]);
        assert_eq!(keeps_a_regulator_admin(&agent, false, 1), Ok(()));
    }

    #[test]
    fn denials_and_refusals_are_told_apart() {
        assert!(Refusal::HoldsLiveToken.is_denial());
        assert!(Refusal::Outranks(Role::RegulatorAdmin).is_denial());
        assert!(!Refusal::LastRegulatorAdmin.is_denial());
        assert!(
            !Refusal::RoleNotForKind {
                index: 0,
                role: Role::Auditor,
                kind: OrgKind::Importer
            }
            .is_denial()
        );
    }
}
