use std::path::Path;

use super::forms::tests::example_form;
use super::*;
use crate::metrics::Metrics;
use crate::store::StoreOptions;

fn open_store(dir: &Path) -> Arc<Store> {
    let options = StoreOptions {
        sync_writes: false,
        block_cache_bytes: 8 << 20,
        ..StoreOptions::default()
    };
    Arc::new(Store::open(dir, &options, &Metrics::new()).unwrap())
}

/// A bootstrapped registry and its regulator administrator's token.
fn bootstrapped(dir: &Path) -> (Accounts, String) {
    let accounts = Accounts::open(open_store(dir)).unwrap();
    let token = accounts.bootstrap(example_form()).unwrap().token;
    (accounts, token)
}

/// An operator organisation's form; `n` makes its NIT and people distinct.
pub(crate) fn operator_form(n: u64) -> OrgForm {
    let mut form = example_form();
    form.kind = Some(OrgKind::Operator);
    let number = format!("{}", 830_000_000 + n * 7);
    form.data.nit = format!("{number}-{}", crate::identity::nit_check_digit(&number));
    form.data.legal_name = format!("Operador Móvil {n} S.A.S.");
    form.administrator.id_number = format!("{}", 1_030_000_000 + n * 13);
    form.administrator.full_name = "Diana Carolina Suárez Peña".into();
    form
}

fn user_form(id_number: &str, roles: &[Role]) -> UserForm {
    UserForm {
        id_number: id_number.into(),
        full_name: "Jorge Iván Ramírez Soto".into(),
        email: "jorge.ramirez@operador.co".into(),
        roles: roles.to_vec(),
    }
}

fn token_for(accounts: &Accounts, by: &Principal, user: u64) -> (Principal, String) {
    let (_, text) = accounts.create_token(by, user, "test").unwrap();
    (accounts.authenticate(&text).unwrap(), text)
}

/// Operator organisation `n` as the regulator creates it, its administrator signed in, and
/// one operator user the administrator creates.
fn operator_org(
    accounts: &Accounts,
    regulator: &Principal,
    n: u64,
) -> (Organisation, Principal, User) {
    let (org, admin) = accounts.create_org(regulator, operator_form(n)).unwrap();
    let (org_admin, _) = token_for(accounts, regulator, admin.id);
    let user = accounts
        .create_user(&org_admin, org.id, user_form("80123456", &[Role::Operator]))
        .unwrap();
    (org, org_admin, user)
}

fn entries(accounts: &Accounts) -> Vec<audit::Entry> {
    audit::query(&accounts.store, &audit::Filter::default(), 0, 10_000)
        .unwrap()
        .0
}

#[test]
fn bootstrap_makes_the_regulator_once() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, token) = bootstrapped(dir.path());
    let regulator = accounts.authenticate(&token).unwrap();
    assert_eq!(regulator.org_kind, OrgKind::Regulator);
    assert_eq!(regulator.roles, [Role::RegulatorAdmin, Role::OrgAdmin]);
    assert!(matches!(
        accounts.bootstrap(example_form()),
        Err(AccountsError::AlreadyBootstrapped)
    ));
    let log = entries(&accounts);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, Action::Bootstrap);

    let fresh = tempfile::tempdir().unwrap();
    let other = Accounts::open(open_store(fresh.path())).unwrap();
    let Err(AccountsError::Invalid(errors)) = other.bootstrap(operator_form(1)) else {
        panic!("an operator cannot be the first organisation");
    };
    assert_eq!(errors.0[0].0, "kind");
    assert!(!other.is_bootstrapped());
}

#[test]
fn only_the_regulator_creates_organisations_and_nits_and_people_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, token) = bootstrapped(dir.path());
    let regulator = accounts.authenticate(&token).unwrap();
    let (org, admin) = accounts.create_org(&regulator, operator_form(1)).unwrap();
    assert_eq!(admin.org, org.id);
    assert_eq!(admin.roles, [Role::OrgAdmin]);

    // the same NIT written with dots
    let mut same_nit = operator_form(2);
    let number = nit_number(&operator_form(1).data.nit);
    same_nit.data.nit = format!(
        "{}.{}.{}-{}",
        &number[..3],
        &number[3..6],
        &number[6..],
        crate::identity::nit_check_digit(&number)
    );
    assert!(matches!(
        accounts.create_org(&regulator, same_nit),
        Err(AccountsError::Conflict(m)) if m.contains("NIT")
    ));
    // the administrator's ID number with a leading zero and dots is the same person
    let mut same_person = operator_form(3);
    same_person.administrator.id_number = format!("0{}", admin.id_number);
    assert!(matches!(
        accounts.create_org(&regulator, same_person),
        Err(AccountsError::Conflict(m)) if m.contains("one per person")
    ));

    let (org_admin, _) = token_for(&accounts, &regulator, admin.id);
    assert!(matches!(
        accounts.create_org(&org_admin, operator_form(4)),
        Err(AccountsError::Forbidden)
    ));
    let denied = entries(&accounts).pop().unwrap();
    assert_eq!(
        (denied.action, denied.outcome),
        (Action::OrgCreate, Outcome::Denied)
    );
    assert_eq!(
        denied.actor,
        Actor::User {
            user: admin.id,
            org: org.id,
            roles: vec![Role::OrgAdmin],
            token: Some(org_admin.credential.id_hex()),
            session: None,
            issued_by: Some(regulator.user),
        }
    );
}

#[test]
fn an_org_admin_manages_only_its_own_users_and_roles_of_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, token) = bootstrapped(dir.path());
    let regulator = accounts.authenticate(&token).unwrap();
    let (org_a, admin_a) = accounts.create_org(&regulator, operator_form(1)).unwrap();
    let (org_b, _) = accounts.create_org(&regulator, operator_form(2)).unwrap();
    let (admin, _) = token_for(&accounts, &regulator, admin_a.id);

    let user = accounts
        .create_user(&admin, org_a.id, user_form("79.111.222", &[Role::Operator]))
        .unwrap();
    assert!(matches!(
        accounts.create_user(&admin, org_b.id, user_form("79111223", &[Role::Operator])),
        Err(AccountsError::Forbidden)
    ));
    assert!(matches!(
        accounts.list_users(&admin, org_b.id),
        Err(AccountsError::Forbidden)
    ));
    for roles in [
        &[Role::Importer][..],
        &[Role::RegulatorAdmin],
        &[Role::Auditor],
    ] {
        assert!(
            matches!(
                accounts.create_user(&admin, org_a.id, user_form("79111224", roles)),
                Err(AccountsError::Invalid(_))
            ),
            "{roles:?}"
        );
    }
    // nor by a change of roles, to itself or anyone
    let patch = serde_json::json!({ "roles": ["org_admin", "regulator_admin"] });
    assert!(matches!(
        accounts.update_user(&admin, org_a.id, admin_a.id, &patch),
        Err(AccountsError::Invalid(_))
    ));
    // a valid role list for its own account is refused too, and audited
    let patch = serde_json::json!({ "roles": ["org_admin", "operator"] });
    assert!(matches!(
        accounts.update_user(&admin, org_a.id, admin_a.id, &patch),
        Err(AccountsError::Refused(authority::Refusal::OwnRoles))
    ));
    let refused = entries(&accounts).pop().unwrap();
    assert_eq!(
        (refused.action, refused.outcome, refused.target),
        (
            Action::UserUpdate,
            Outcome::Denied,
            format!("user/{}", admin_a.id)
        )
    );
    let patch = serde_json::json!({ "id_number": "79111225" });
    let Err(AccountsError::Invalid(errors)) =
        accounts.update_user(&admin, org_a.id, user.id, &patch)
    else {
        panic!("the ID number cannot change");
    };
    assert_eq!(errors.0[0].0, "id_number");
    let patch = serde_json::json!({ "roles": ["operator", "org_admin"], "full_name": "Jorge Iván Ramírez Soto de la Cruz" });
    let changed = accounts
        .update_user(&admin, org_a.id, user.id, &patch)
        .unwrap();
    assert_eq!(changed.roles, [Role::Operator, Role::OrgAdmin]);
    // the organisation administrator itself may not check, nor read organisations
    assert!(!admin.may(Permission::Check));
    assert!(matches!(
        accounts.list_orgs(&admin),
        Err(AccountsError::Forbidden)
    ));
    assert_eq!(accounts.get_org(&admin, org_a.id).unwrap().id, org_a.id);
    assert!(matches!(
        accounts.get_org(&admin, org_b.id),
        Err(AccountsError::Forbidden)
    ));
}

#[test]
fn suspension_deactivation_and_revocation_refuse_issued_tokens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, token) = bootstrapped(dir.path());
    let regulator = accounts.authenticate(&token).unwrap();
    let (org, org_admin, user) = operator_org(&accounts, &regulator, 1);
    let (operator, text) = token_for(&accounts, &org_admin, user.id);
    assert!(operator.may(Permission::Check));
    assert!(accounts.authorize(&text, Permission::Check).is_ok());
    assert!(matches!(
        accounts.authorize(&text, Permission::AdministerOrgs),
        Err(AccountsError::Forbidden)
    ));
    assert!(matches!(
        accounts.authorize("imeidb_nonsense", Permission::Check),
        Err(AccountsError::Unauthenticated)
    ));

    accounts
        .set_org_suspended(&regulator, org.id, true, Some("unpaid fees".into()))
        .unwrap();
    assert!(matches!(
        accounts.authenticate(&text),
        Err(AccountsError::Suspended("organisation"))
    ));
    assert!(matches!(
        accounts.authorize(&text, Permission::Check),
        Err(AccountsError::Suspended("organisation"))
    ));
    accounts
        .set_org_suspended(&regulator, org.id, false, None)
        .unwrap();
    assert!(accounts.authenticate(&text).is_ok());

    assert!(matches!(
        accounts.set_user_suspended(&org_admin, org.id, user.id, true, None),
        Err(AccountsError::Forbidden)
    ));
    accounts
        .set_user_suspended(&regulator, org.id, user.id, true, None)
        .unwrap();
    assert!(matches!(
        accounts.authenticate(&text),
        Err(AccountsError::Suspended("user"))
    ));
    // the organisation's administrator cannot lift the regulator's suspension
    accounts
        .set_user_active(&org_admin, org.id, user.id, true, None)
        .unwrap();
    assert!(accounts.authenticate(&text).is_err());
    accounts
        .set_user_suspended(&regulator, org.id, user.id, false, None)
        .unwrap();
    assert!(accounts.authenticate(&text).is_ok());

    accounts
        .set_user_active(&org_admin, org.id, user.id, false, Some("left".into()))
        .unwrap();
    assert!(matches!(
        accounts.authenticate(&text),
        Err(AccountsError::Unauthenticated)
    ));
    accounts
        .set_user_active(&org_admin, org.id, user.id, true, None)
        .unwrap();

    let listed = accounts.list_tokens(&operator, user.id).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());
    accounts
        .revoke_token(&operator, user.id, &listed[0].id)
        .unwrap();
    assert!(matches!(
        accounts.authenticate(&text),
        Err(AccountsError::Unauthenticated)
    ));
    // another user's tokens are out of reach; a user that does not exist is 404 only to
    // those who may know
    assert!(matches!(
        accounts.list_tokens(&operator, org_admin.user),
        Err(AccountsError::Forbidden)
    ));
    assert!(matches!(
        accounts.list_tokens(&operator, 999),
        Err(AccountsError::Forbidden)
    ));
    assert!(matches!(
        accounts.list_tokens(&regulator, 999),
        Err(AccountsError::NotFound("user"))
    ));
}

#[test]
fn everything_survives_a_restart_and_the_audit_chain_verifies_then_detects_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let (text, org_id, log_len) = {
        let (accounts, token) = bootstrapped(dir.path());
        let regulator = accounts.authenticate(&token).unwrap();
        let (org, org_admin, user) = operator_org(&accounts, &regulator, 1);
        let (_, text) = token_for(&accounts, &org_admin, user.id);
        accounts
            .update_org(
                &regulator,
                org.id,
                &serde_json::json!({ "address": "Calle 100 # 7-33" }),
            )
            .unwrap();
        let _ = accounts.create_org(&org_admin, operator_form(5));
        accounts.save_last_use().unwrap();
        let log = entries(&accounts);
        (text, org.id, log.len())
    };
    let store = open_store(dir.path());
    let accounts = Accounts::open(Arc::clone(&store)).unwrap();
    let operator = accounts.authenticate(&text).unwrap();
    assert_eq!(operator.org, org_id);
    let tokens = accounts.list_tokens(&operator, operator.user).unwrap();
    assert!(tokens[0].last_used_at.is_some(), "last use was saved");
    let log = entries(&accounts);
    assert_eq!(log.len(), log_len);
    let actions: Vec<Action> = log.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            Action::Bootstrap,
            Action::OrgCreate,
            Action::TokenCreate,
            Action::UserCreate,
            Action::TokenCreate,
            Action::OrgUpdate,
            Action::OrgCreate
        ]
    );
    assert_eq!(log.last().unwrap().outcome, Outcome::Denied);
    // no token and no ID number in any entry
    let raw: Vec<String> = log
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    for entry in &raw {
        assert!(
            !entry.contains(&text[7..23]) || entry.contains("token/"),
            "{entry}"
        );
        assert!(
            !entry.contains(&text[24..]),
            "a token secret leaked: {entry}"
        );
        assert!(!entry.contains("80123456"), "an ID number leaked: {entry}");
    }
    let verified = audit::verify(&store).unwrap();
    assert_eq!(verified.entries, log_len as u64);

    store.tamper_audit_entry(3, |bytes| {
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
    });
    let broken = audit::verify(&store).unwrap_err();
    assert!(
        matches!(
            broken,
            audit::Broken::Chain { seq: 4 } | audit::Broken::Unreadable { seq: 3, .. }
        ),
        "{broken}"
    );
}

#[test]
fn audit_queries_filter_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, token) = bootstrapped(dir.path());
    let regulator = accounts.authenticate(&token).unwrap();
    for n in 1..=5 {
        accounts.create_org(&regulator, operator_form(n)).unwrap();
    }
    let filter = audit::Filter {
        action: Some(Action::OrgCreate),
        actor: Some(regulator.user),
        ..audit::Filter::default()
    };
    let (page, next) = accounts.audit(&regulator, &filter, 0, 2).unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    let (page, next) = accounts
        .audit(&regulator, &filter, next.unwrap(), 2)
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
    let (page, next) = accounts
        .audit(&regulator, &filter, next.unwrap(), 2)
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [6]);
    assert_eq!(next, None);
    let none = audit::Filter {
        org: Some(999),
        ..audit::Filter::default()
    };
    assert!(
        accounts
            .audit(&regulator, &none, 0, 10)
            .unwrap()
            .0
            .is_empty()
    );
    let future = audit::Filter {
        from: Some(now_unix() + 3600),
        ..audit::Filter::default()
    };
    assert!(
        accounts
            .audit(&regulator, &future, 0, 10)
            .unwrap()
            .0
            .is_empty()
    );
}

#[test]
fn an_auditor_outside_the_regulator_reads_only_its_own_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, token) = bootstrapped(dir.path());
    let regulator = accounts.authenticate(&token).unwrap();
    let mut police_form = operator_form(1);
    police_form.kind = Some(OrgKind::Authority);
    let (police, police_admin) = accounts.create_org(&regulator, police_form).unwrap();
    let (operator, operator_admin) = accounts.create_org(&regulator, operator_form(2)).unwrap();
    let (admin, _) = token_for(&accounts, &regulator, police_admin.id);
    let auditor = accounts
        .create_user(&admin, police.id, user_form("80123456", &[Role::Auditor]))
        .unwrap();
    let (auditor, _) = token_for(&accounts, &admin, auditor.id);
    let (operator_admin, _) = token_for(&accounts, &regulator, operator_admin.id);
    accounts
        .create_user(
            &operator_admin,
            operator.id,
            user_form("80123457", &[Role::Operator]),
        )
        .unwrap();

    // organisations: its own, not the operator's nor the regulator's (their legal
    // representatives' and accountants' ID numbers)
    let listed: Vec<u64> = accounts
        .list_orgs(&auditor)
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(listed, [police.id]);
    assert_eq!(accounts.get_org(&auditor, police.id).unwrap().id, police.id);
    for other in [operator.id, regulator.org] {
        assert!(matches!(
            accounts.get_org(&auditor, other),
            Err(AccountsError::Forbidden)
        ));
    }
    // the audit trail: its own organisation's entries only, and asking for another's is refused
    let (entries, _) = accounts
        .audit(&auditor, &audit::Filter::default(), 0, 1000)
        .unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries
            .iter()
            .all(|e| matches!(&e.actor, Actor::User { org, .. } if *org == police.id)),
        "{entries:?}"
    );
    let theirs = audit::Filter {
        org: Some(operator.id),
        ..audit::Filter::default()
    };
    assert!(matches!(
        accounts.audit(&auditor, &theirs, 0, 10),
        Err(AccountsError::Forbidden)
    ));
    // the regulator's auditor still reads everything
    let regulator_auditor = accounts
        .create_user(
            &regulator,
            regulator.org,
            user_form("80123458", &[Role::Auditor]),
        )
        .unwrap();
    let (regulator_auditor, _) = token_for(&accounts, &regulator, regulator_auditor.id);
    assert_eq!(accounts.list_orgs(&regulator_auditor).unwrap().len(), 3);
    assert!(
        accounts
            .audit(&regulator_auditor, &theirs, 0, 10)
            .unwrap()
            .0
            .iter()
            .any(|e| e.action == Action::UserCreate)
    );
}

#[test]
fn a_revoked_token_leaves_memory_and_a_user_holds_a_bounded_number() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, token) = bootstrapped(dir.path());
    let regulator = accounts.authenticate(&token).unwrap();
    let (_, admin) = accounts.create_org(&regulator, operator_form(1)).unwrap();
    let (admin, first) = token_for(&accounts, &regulator, admin.id);
    // a user rotating its tokens in a loop does not grow the server's memory
    for _ in 0..50 {
        let (made, _) = accounts
            .create_token(&admin, admin.user, "rotating")
            .unwrap();
        accounts.revoke_token(&admin, admin.user, &made.id).unwrap();
    }
    assert_eq!(
        accounts.read().tokens.len(),
        2,
        "the bootstrap token and `first`"
    );
    for _ in 1..authority::MAX_LIVE_TOKENS {
        accounts.create_token(&admin, admin.user, "spare").unwrap();
    }
    assert!(matches!(
        accounts.create_token(&admin, admin.user, "one more"),
        Err(AccountsError::Refused(authority::Refusal::TooManyTokens))
    ));
    assert!(accounts.authenticate(&first).is_ok());
    // after a restart, revoked tokens stay out of memory and still do not authenticate
    drop(accounts);
    let accounts = Accounts::open(open_store(dir.path())).unwrap();
    assert_eq!(accounts.read().tokens.len(), 1 + authority::MAX_LIVE_TOKENS);
}

#[test]
fn a_caller_is_checked_again_when_its_waiting_request_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, token) = bootstrapped(dir.path());
    let regulator = accounts.authenticate(&token).unwrap();
    let (org, org_admin, user) = operator_org(&accounts, &regulator, 1);
    let (operator, _) = token_for(&accounts, &org_admin, user.id);
    assert_eq!(accounts.recheck(&operator).unwrap(), operator);
    // its roles changed while it waited: it runs with the new ones
    let patch = serde_json::json!({ "roles": ["org_admin"] });
    accounts
        .update_user(&org_admin, org.id, user.id, &patch)
        .unwrap();
    assert_eq!(accounts.recheck(&operator).unwrap().roles, [Role::OrgAdmin]);
    // suspended, deactivated or revoked while it waited: refused
    accounts
        .set_user_suspended(&regulator, org.id, user.id, true, None)
        .unwrap();
    assert!(matches!(
        accounts.recheck(&operator),
        Err(AccountsError::Suspended("user"))
    ));
    accounts
        .set_user_suspended(&regulator, org.id, user.id, false, None)
        .unwrap();
    accounts
        .set_org_suspended(&regulator, org.id, true, None)
        .unwrap();
    assert!(matches!(
        accounts.recheck(&operator),
        Err(AccountsError::Suspended("organisation"))
    ));
    accounts
        .set_org_suspended(&regulator, org.id, false, None)
        .unwrap();
    accounts
        .revoke_token(&operator, user.id, &operator.credential.id_hex())
        .unwrap();
    assert!(matches!(
        accounts.recheck(&operator),
        Err(AccountsError::Unauthenticated)
    ));
}

#[test]
fn the_regulator_stays_one_reachable_and_refusals_on_accounts_leave_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, token) = bootstrapped(dir.path());
    let regulator = accounts.authenticate(&token).unwrap();
    // one regulator organisation
    let mut second = operator_form(1);
    second.kind = Some(OrgKind::Regulator);
    let Err(AccountsError::Invalid(errors)) = accounts.create_org(&regulator, second) else {
        panic!("a second regulator organisation");
    };
    assert_eq!(errors.0[0].0, "kind");
    // the last active regulator administrator keeps its last token
    assert!(matches!(
        accounts.revoke_token(&regulator, regulator.user, &regulator.credential.id_hex()),
        Err(AccountsError::Refused(
            authority::Refusal::LastRegulatorAdmin
        ))
    ));
    let (spare, _) = accounts
        .create_token(&regulator, regulator.user, "spare")
        .unwrap();
    accounts
        .revoke_token(&regulator, regulator.user, &spare.id)
        .unwrap();
    // a patch of what no patch changes is refused on the record
    let (org, org_admin, user) = operator_org(&accounts, &regulator, 2);
    let patch = serde_json::json!({ "suspended": false });
    assert!(matches!(
        accounts.update_user(&org_admin, org.id, user.id, &patch),
        Err(AccountsError::Invalid(_))
    ));
    let refused = entries(&accounts).pop().unwrap();
    assert_eq!(
        (refused.action, refused.outcome),
        (Action::UserUpdate, Outcome::Refused)
    );
    assert!(refused.reason.unwrap().contains("suspended"));
    // a person who has an account elsewhere: refused without naming the account
    let Err(AccountsError::Conflict(message)) = accounts.create_user(
        &org_admin,
        org.id,
        user_form("80.123.456", &[Role::Operator]),
    ) else {
        panic!("one account per person");
    };
    assert!(!message.contains("user/"), "{message}");
    // the regulator suspending its own organisation is refused on the record
    assert!(matches!(
        accounts.set_org_suspended(&regulator, regulator.org, true, None),
        Err(AccountsError::Conflict(_))
    ));
    let refused = entries(&accounts).pop().unwrap();
    assert_eq!(
        (refused.action, refused.outcome),
        (Action::OrgSuspend, Outcome::Refused)
    );
}

mod logins {
    use super::*;
    use crate::accounts::logins::{self, MAX_SESSIONS_PER_USER, SessionLimits, SignInRefusal};

    const PASSWORD: &str = "una frase larga de prueba";

    /// A bootstrapped registry, its regulator, and operator organisation 1 with its
    /// administrator and one operator user whose password is [`PASSWORD`].
    fn with_password(dir: &Path) -> (Accounts, Principal, Organisation, Principal, User) {
        let (accounts, token) = bootstrapped(dir);
        let regulator = accounts.authenticate(&token).unwrap();
        let (org, org_admin, user) = operator_org(&accounts, &regulator, 1);
        let code = accounts.issue_password_setup(&org_admin, user.id).unwrap();
        accounts.set_password(&code, PASSWORD).unwrap();
        (accounts, regulator, org, org_admin, user)
    }

    fn signed_in(accounts: &Accounts, email: &str) -> String {
        accounts
            .sign_in(email, PASSWORD, "192.0.2.1")
            .unwrap()
            .cookie
    }

    #[test]
    fn a_code_sets_a_password_once_and_a_new_code_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, token) = bootstrapped(dir.path());
        let regulator = accounts.authenticate(&token).unwrap();
        let (_, org_admin, user) = operator_org(&accounts, &regulator, 1);
        let code = accounts.issue_password_setup(&org_admin, user.id).unwrap();
        // the rules name the field
        for (bad, why) in [("short", "at least"), (user.email.as_str(), "")] {
            let Err(AccountsError::Invalid(errors)) = accounts.set_password(&code, bad) else {
                panic!("{bad} accepted");
            };
            assert_eq!(errors.0[0].0, "password");
            assert!(errors.0[0].1.contains(why));
        }
        assert!(matches!(
            accounts.set_password("0123456789abcdef0123456789abcdef", PASSWORD),
            Err(AccountsError::Invalid(e)) if e.0[0].0 == "code"
        ));
        accounts.set_password(&code, PASSWORD).unwrap();
        assert!(accounts.has_password(user.id));
        assert!(accounts.set_password(&code, PASSWORD).is_err(), "used once");
        let cookie = signed_in(&accounts, &user.email.to_uppercase());
        let session = accounts.session(&cookie).unwrap();
        assert_eq!(session.principal.user, user.id);
        assert!(matches!(
            session.principal.credential,
            Credential::Session(_)
        ));
        assert_eq!(accounts.recheck(&session.principal).unwrap().user, user.id);
        // a new code: the password and the sessions end at once
        accounts.issue_password_setup(&org_admin, user.id).unwrap();
        assert!(!accounts.has_password(user.id));
        assert!(matches!(
            accounts.session(&cookie),
            Err(AccountsError::Unauthenticated)
        ));
        assert!(accounts.recheck(&session.principal).is_err());
        assert!(matches!(
            accounts.sign_in(&user.email, PASSWORD, "192.0.2.1"),
            Err(SignInRefusal::WrongCredentials)
        ));
        // and it all survives a restart
        drop(accounts);
        let accounts = Accounts::open(open_store(dir.path())).unwrap();
        assert!(!accounts.has_password(user.id));
    }

    #[test]
    fn sign_ins_with_an_unknown_email_are_audited_once_per_client_and_window() {
        use crate::accounts::logins::{LOCK_SECS, MAX_UNKNOWN_EMAIL_CLIENTS};
        let dir = tempfile::tempdir().unwrap();
        let (accounts, _, _, _, _) = with_password(dir.path());
        let unknown = |accounts: &Accounts| -> Vec<String> {
            entries(accounts)
                .into_iter()
                .filter(|e| e.action == Action::SignIn && e.target == "user/none")
                .map(|e| {
                    assert_eq!(e.outcome, Outcome::Denied);
                    serde_json::to_value(&e.actor).unwrap()["address"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        for client in ["192.0.2.7", "192.0.2.7", "192.0.2.8", "192.0.2.7"] {
            assert!(matches!(
                accounts.sign_in("nadie@example.co", "una-clave-cualquiera", client),
                Err(SignInRefusal::WrongCredentials)
            ));
        }
        assert_eq!(unknown(&accounts), ["192.0.2.7", "192.0.2.8"]);
        // what was typed is not in the trail (it may be a password in the wrong field)
        let text = serde_json::to_string(&entries(&accounts)).unwrap();
        assert!(!text.contains("nadie@example.co") && !text.contains("una-clave-cualquiera"));
        // a window past: audited again; the memory of clients is bounded
        let now = crate::timefmt::now_unix();
        accounts.record_unknown_email("192.0.2.7", now + LOCK_SECS);
        assert_eq!(unknown(&accounts).len(), 3);
        for n in 0..MAX_UNKNOWN_EMAIL_CLIENTS + 10 {
            accounts.record_unknown_email(&format!("10.0.{}.{}", n / 256, n % 256), now);
        }
        assert_eq!(accounts.unknown_email_clients(), MAX_UNKNOWN_EMAIL_CLIENTS);
        // full: the trail says so once in the window (for the first address turned away)
        let full = 3 + MAX_UNKNOWN_EMAIL_CLIENTS - 2 + 1;
        assert_eq!(unknown(&accounts).len(), full);
        let said = entries(&accounts).pop().unwrap();
        assert!(
            said.reason
                .as_deref()
                .unwrap()
                .contains("4096 other addresses"),
            "{said:?}"
        );
        accounts.record_unknown_email("10.9.9.9", now + 60);
        assert_eq!(unknown(&accounts).len(), full);
        // once the remembered addresses' windows end, a new address is audited again
        accounts.record_unknown_email("10.9.9.9", now + 2 * LOCK_SECS + 1);
        assert_eq!(unknown(&accounts).len(), full + 1);
        assert_eq!(accounts.unknown_email_clients(), 1);
    }

    #[test]
    fn codes_follow_who_may_act_on_the_account_and_refusals_are_audited() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, token) = bootstrapped(dir.path());
        let regulator = accounts.authenticate(&token).unwrap();
        let (_, org_admin, user) = operator_org(&accounts, &regulator, 1);
        let (_, admin_2) = accounts.create_org(&regulator, operator_form(2)).unwrap();
        let (other_admin, _) = token_for(&accounts, &regulator, admin_2.id);
        let (operator, _) = token_for(&accounts, &org_admin, user.id);
        for (who, target) in [(&other_admin, user.id), (&org_admin, regulator.user)] {
            assert!(matches!(
                accounts.issue_password_setup(who, target),
                Err(AccountsError::Forbidden | AccountsError::Refused(_))
            ));
        }
        // the account now holds a live token: no administrator issues a code beside it
        assert!(matches!(
            accounts.issue_password_setup(&org_admin, user.id),
            Err(AccountsError::Refused(authority::Refusal::HoldsLiveToken))
        ));
        assert!(accounts.issue_password_setup(&regulator, user.id).is_err());
        let refused = entries(&accounts)
            .into_iter()
            .filter(|e| e.action == Action::PasswordSetup && e.outcome != Outcome::Done)
            .count();
        assert_eq!(refused, 4);
        // its holder may not ask one through the token its administrator issued (the
        // administrator may still hold it), nor through a token made with that one (which the
        // administrator could have made): only through a session, or a token of its own line
        assert!(matches!(
            accounts.issue_password_setup(&operator, user.id),
            Err(AccountsError::Refused(authority::Refusal::HoldsLiveToken))
        ));
        let (_, own) = accounts.create_token(&operator, user.id, "own").unwrap();
        let own = accounts.authenticate(&own).unwrap();
        accounts
            .revoke_token(&own, user.id, &operator.credential.id_hex())
            .unwrap();
        assert!(matches!(
            accounts.issue_password_setup(&own, user.id),
            Err(AccountsError::Refused(authority::Refusal::HoldsLiveToken))
        ));
        // the account holding only `own`, its administrator issues no code beside it either;
        // once `own` is revoked, it does
        assert!(accounts.issue_password_setup(&org_admin, user.id).is_err());
        let (_, keep) = accounts.create_token(&own, user.id, "kept").unwrap();
        let keep = accounts.authenticate(&keep).unwrap();
        accounts
            .revoke_token(&keep, user.id, &own.credential.id_hex())
            .unwrap();
        accounts
            .revoke_token(&keep, user.id, &keep.credential.id_hex())
            .unwrap();
        let code = accounts.issue_password_setup(&org_admin, user.id).unwrap();
        // a pending code is a credential: no administrator issues a token beside it
        assert!(matches!(
            accounts.create_token(&org_admin, user.id, "beside"),
            Err(AccountsError::Refused(authority::Refusal::HoldsLiveToken))
        ));
        accounts.set_password(&code, PASSWORD).unwrap();
        assert!(matches!(
            accounts.create_token(&org_admin, user.id, "beside"),
            Err(AccountsError::Refused(authority::Refusal::HoldsLiveToken))
        ));
    }

    #[test]
    fn the_audit_trail_names_who_issued_a_credential_someone_else_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, token) = bootstrapped(dir.path());
        let regulator = accounts.authenticate(&token).unwrap();
        let (_, org_admin, user) = operator_org(&accounts, &regulator, 1);
        let issued_by = |entry: &audit::Entry| match &entry.actor {
            Actor::User { issued_by, .. } => *issued_by,
            other => panic!("{other:?}"),
        };
        // the first token of the account, issued by its administrator: what it does names both
        let (operator, _) = token_for(&accounts, &org_admin, user.id);
        assert_eq!(operator.issued_by, Some(org_admin.user));
        let (_, own) = accounts.create_token(&operator, user.id, "own").unwrap();
        let made_own = entries(&accounts).pop().unwrap();
        assert_eq!(made_own.action, Action::TokenCreate);
        assert_eq!(issued_by(&made_own), Some(org_admin.user));
        // a token the user issued through that one names the administrator still: who held
        // the first could have made it (no laundering through one's own credentials)
        let own = accounts.authenticate(&own).unwrap();
        assert_eq!(own.issued_by, Some(org_admin.user));
        accounts
            .revoke_token(&own, user.id, &operator.credential.id_hex())
            .unwrap();
        assert_eq!(
            issued_by(&entries(&accounts).pop().unwrap()),
            Some(org_admin.user)
        );
        // the bootstrap token names nobody (the console issued it)
        assert_eq!(regulator.issued_by, None);
        // an auditor finds everything done with credentials an administrator issued
        let filter = audit::Filter {
            issued_by: Some(org_admin.user),
            ..audit::Filter::default()
        };
        let (found, _) = accounts.audit(&regulator, &filter, 0, 1_000).unwrap();
        assert!(found.len() >= 2);
        assert!(found.iter().all(|e| issued_by(e) == Some(org_admin.user)));

        // a password set with a code the administrator issued: its sessions name it, across a
        // restart, and so do the codes, passwords and tokens those sessions make
        accounts
            .revoke_token(&own, user.id, &own.credential.id_hex())
            .unwrap();
        let code = accounts.issue_password_setup(&org_admin, user.id).unwrap();
        accounts.set_password(&code, PASSWORD).unwrap();
        assert_eq!(
            issued_by(&entries(&accounts).pop().unwrap()),
            Some(org_admin.user),
            "password.set"
        );
        drop(accounts);
        let accounts = Accounts::open(open_store(dir.path())).unwrap();
        let cookie = signed_in(&accounts, &user.email);
        assert_eq!(
            issued_by(&entries(&accounts).pop().unwrap()),
            Some(org_admin.user),
            "sign-in"
        );
        let person = accounts.session(&cookie).unwrap().principal;
        assert_eq!(person.issued_by, Some(org_admin.user));
        assert_eq!(
            accounts.recheck(&person).unwrap().issued_by,
            Some(org_admin.user)
        );
        let code = accounts.issue_password_setup(&person, user.id).unwrap();
        accounts.set_password(&code, PASSWORD).unwrap();
        let cookie = signed_in(&accounts, &user.email);
        let person = accounts.session(&cookie).unwrap().principal;
        assert_eq!(person.issued_by, Some(org_admin.user));
        let (token, _) = accounts.create_token(&person, user.id, "script").unwrap();
        assert_eq!(token.issued_by, Some(org_admin.user));
    }

    #[test]
    fn sessions_end_with_the_right_to_act_and_do_not_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, regulator, org, org_admin, user) = with_password(dir.path());

        let cookie = signed_in(&accounts, &user.email);
        accounts
            .set_user_active(&org_admin, org.id, user.id, false, None)
            .unwrap();
        assert!(accounts.session(&cookie).is_err());
        accounts
            .set_user_active(&org_admin, org.id, user.id, true, None)
            .unwrap();
        assert!(
            accounts.session(&cookie).is_err(),
            "reactivation revives no session"
        );

        let cookie = signed_in(&accounts, &user.email);
        accounts
            .set_user_suspended(&regulator, org.id, user.id, true, None)
            .unwrap();
        assert!(accounts.session(&cookie).is_err());
        assert!(matches!(
            accounts.sign_in(&user.email, PASSWORD, "192.0.2.1"),
            Err(SignInRefusal::Disabled(AccountsError::Suspended("user")))
        ));
        accounts
            .set_user_suspended(&regulator, org.id, user.id, false, None)
            .unwrap();

        let cookie = signed_in(&accounts, &user.email);
        accounts
            .set_org_suspended(&regulator, org.id, true, None)
            .unwrap();
        accounts
            .set_org_suspended(&regulator, org.id, false, None)
            .unwrap();
        assert!(
            accounts.session(&cookie).is_err(),
            "the organisation's suspension ended it"
        );

        // a tampered cookie is no session
        let cookie = signed_in(&accounts, &user.email);
        let mut tampered = cookie.clone();
        tampered.pop();
        tampered.push(if cookie.ends_with('0') { '1' } else { '0' });
        assert!(accounts.session(&tampered).is_err());
        assert!(accounts.session(&cookie).is_ok());
        // at most MAX_SESSIONS_PER_USER: the oldest goes
        let first = signed_in(&accounts, &user.email);
        for _ in 0..MAX_SESSIONS_PER_USER {
            signed_in(&accounts, &user.email);
        }
        assert!(accounts.session(&first).is_err());
    }

    #[test]
    fn one_account_signs_in_with_an_email() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, _, org, org_admin, first) = with_password(dir.path());
        // an account given the same e-mail (another case) sets no password with it
        let mut form = user_form("80999111", &[Role::Operator]);
        form.email = first.email.to_uppercase();
        let second = accounts.create_user(&org_admin, org.id, form).unwrap();
        let code = accounts
            .issue_password_setup(&org_admin, second.id)
            .unwrap();
        assert!(matches!(
            accounts.set_password(&code, "otra frase larga distinta"),
            Err(AccountsError::Conflict(_))
        ));
        // nor does an account with a password take that e-mail (refused and audited)
        let mut form = user_form("80999222", &[Role::Operator]);
        form.email = "tercero@operador.co".into();
        let third = accounts.create_user(&org_admin, org.id, form).unwrap();
        let code = accounts.issue_password_setup(&org_admin, third.id).unwrap();
        accounts
            .set_password(&code, "una tercera frase larga")
            .unwrap();
        let patch = serde_json::json!({ "email": first.email.to_uppercase() });
        assert!(matches!(
            accounts.update_user(&org_admin, org.id, third.id, &patch),
            Err(AccountsError::Conflict(_))
        ));
        let cookie = signed_in(&accounts, &first.email);
        assert_eq!(accounts.session(&cookie).unwrap().principal.user, first.id);
    }

    #[test]
    fn a_session_opened_with_a_password_since_replaced_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, _, _, _, user) = with_password(dir.path());
        let cookie = signed_in(&accounts, &user.email);
        let principal = accounts.session(&cookie).unwrap().principal;
        // what a sign-in racing a reset would leave: a session whose password is not the
        // account's any more (here replaced without ending sessions)
        let other = logins::tests_support::phc_of("una frase distinta y larga");
        accounts
            .state
            .write()
            .unwrap()
            .logins
            .get_mut(&user.id)
            .unwrap()
            .password = Some(other);
        assert!(accounts.session(&cookie).is_err());
        assert!(accounts.recheck(&principal).is_err());
    }

    #[test]
    fn sessions_expire_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, _, _, _, user) = with_password(dir.path());
        // two seconds, not one: the clock is read in whole seconds, so a session made at the
        // end of one second and read at the start of the next is a second "old"
        accounts.set_session_limits(SessionLimits {
            idle_secs: 2,
            max_secs: 3600,
        });
        let cookie = signed_in(&accounts, &user.email);
        assert!(accounts.session(&cookie).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(3100));
        assert!(matches!(
            accounts.session(&cookie),
            Err(AccountsError::Unauthenticated)
        ));
    }
}
