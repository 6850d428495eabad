//! Who may act on whose account, over real HTTP: every pair of accounts (actor, target),
//! across roles and organisations of every kind, through every route that changes an account,
//! its organisation or its credentials, against a rule table written here independently of
//! `accounts/authority.rs`. Each refusal must be in the audit trail, naming who issued the
//! token that was refused when it was not its holder; each change that succeeds is undone by
//! the regulator so the next cell starts from the same world. At the end, nobody holds a role
//! or a token it was not given.

use hyper::Method;
use serde_json::{Value, json};

use crate::authz::{call, created, org_json, regulator_form, user_json};
use crate::support::{Client, TestServer, test_config};

const PASSWORD: &str = "una frase larga de prueba";

/// One account of the world.
#[derive(Clone, Debug)]
struct Account {
    name: &'static str,
    id: u64,
    org: u64,
    /// Its organisation's kind.
    kind: &'static str,
    roles: Vec<&'static str>,
    /// Its live token; `None` for accounts that hold none.
    token: Option<String>,
    /// Who issued that token, when not the account itself (`None`: itself, or the console).
    issuer: Option<u64>,
    /// Whether it signs in to the web pages with a password (its e-mail).
    web: Option<String>,
}

impl Account {
    fn has(&self, role: &str) -> bool {
        self.roles.contains(&role)
    }
}

/// The rule table, as the issue states it.
fn administers(actor: &Account, target: &Account) -> bool {
    actor.has("regulator_admin") || (actor.has("org_admin") && actor.org == target.org)
}

fn may_act_on(actor: &Account, target: &Account) -> bool {
    administers(actor, target) && (!target.has("regulator_admin") || actor.has("regulator_admin"))
}

/// A route that changes an account, its organisation or its credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    ChangeName,
    /// To `org_admin`, a role of every kind.
    ChangeRoles,
    /// To `regulator_admin`.
    Escalate,
    Deactivate,
    Activate,
    Suspend,
    Reactivate,
    IssueToken,
    ListTokens,
    /// A new account in the target's organisation holding the target's roles.
    CreateTwin,
    PatchOrg,
    SuspendOrg,
    ReactivateOrg,
    /// The target's live token (an id that does not exist, for an account holding none).
    RevokeToken,
    /// Last: a pending code is a credential, which no test undoes.
    PasswordSetup,
}

const ROUTES: [Route; 15] = [
    Route::ChangeName,
    Route::ChangeRoles,
    Route::Escalate,
    Route::Deactivate,
    Route::Activate,
    Route::Suspend,
    Route::Reactivate,
    Route::IssueToken,
    Route::ListTokens,
    Route::CreateTwin,
    Route::PatchOrg,
    Route::SuspendOrg,
    Route::ReactivateOrg,
    Route::RevokeToken,
    Route::PasswordSetup,
];

/// The roles `ChangeRoles` asks for: a role every kind of organisation has.
const NEW_ROLES: [&str; 1] = ["org_admin"];

fn expected(route: Route, actor: &Account, target: &Account) -> u16 {
    let own = actor.id == target.id;
    let act = may_act_on(actor, target);
    let regulator = actor.has("regulator_admin");
    match route {
        Route::ChangeName | Route::Deactivate | Route::Activate if act => 200,
        Route::ChangeRoles if act && target.roles == NEW_ROLES => 200, // no change
        Route::ChangeRoles if act && own => 403, // nobody changes its own roles
        Route::ChangeRoles if act => 200,
        Route::Escalate if act && target.roles == ["regulator_admin"] => 200, // no change
        Route::Escalate if act && target.kind != "regulator" => 422, // not a role of its kind
        Route::Escalate if act && !own && regulator => 200,
        Route::Suspend if regulator && own => 409,
        Route::Suspend | Route::Reactivate if regulator => 200,
        // an administrator issues a credential only to an account holding none
        Route::IssueToken if own => 201,
        Route::IssueToken if act && target.token.is_none() && target.web.is_none() => 201,
        Route::ListTokens if own || act => 200,
        Route::CreateTwin
            if administers(actor, target) && (!target.has("regulator_admin") || regulator) =>
        {
            201
        }
        Route::PatchOrg | Route::ReactivateOrg if regulator => 200,
        Route::SuspendOrg if regulator && target.kind == "regulator" => 409,
        Route::SuspendOrg if regulator => 200,
        Route::RevokeToken if (own || act) && target.token.is_none() => 404,
        Route::RevokeToken if own || act => 200,
        // its holder through a credential it made; an administrator only while it holds no token
        Route::PasswordSetup if own && actor.issuer.is_none() => 200,
        Route::PasswordSetup if !own && act && target.token.is_none() => 200,
        _ => 403,
    }
}

/// The audit action a route writes.
fn action(route: Route) -> Option<&'static str> {
    match route {
        Route::ChangeName | Route::ChangeRoles | Route::Escalate => Some("user.update"),
        Route::Deactivate => Some("user.deactivate"),
        Route::Activate => Some("user.activate"),
        Route::Suspend => Some("user.suspend"),
        Route::Reactivate => Some("user.reactivate"),
        Route::IssueToken => Some("token.create"),
        Route::RevokeToken => Some("token.revoke"),
        Route::CreateTwin => Some("user.create"),
        Route::PatchOrg => Some("org.update"),
        Route::SuspendOrg => Some("org.suspend"),
        Route::ReactivateOrg => Some("org.reactivate"),
        Route::PasswordSetup => Some("password.setup"),
        Route::ListTokens => None, // a read
    }
}

struct World {
    accounts: Vec<Account>,
    /// ID numbers of the accounts made so far.
    next_id: u64,
}

impl World {
    fn get(&self, name: &str) -> &Account {
        self.accounts.iter().find(|a| a.name == name).unwrap()
    }

    fn token(&self, name: &str) -> String {
        self.get(name).token.clone().unwrap()
    }

    /// A regulator administrator other than `target`, to undo what was done to it.
    fn undoer(&self, target: &Account) -> String {
        self.token(if target.name == "chief" {
            "chief2"
        } else {
            "chief"
        })
    }
}

/// Three regulator administrators (the bootstrap one, a second, and one that never had a
/// token), the regulator's plain organisation administrator and auditor; two operators with
/// their administrators (one user holding two roles, one that never had a token, one that
/// signs in with a password and holds no token); a police organisation with its administrator,
/// an officer and an auditor; an importer, a manufacturer and a seller with theirs.
async fn world(server: &TestServer, client: &mut Client) -> World {
    let made = server.accounts.bootstrap(regulator_form()).unwrap();
    let (chief_user, chief) = (made.admin, made.token);
    // the first administrator sets its password with the code the console gave it
    server
        .accounts
        .set_password(&made.password_code, PASSWORD)
        .unwrap();
    let mut accounts = vec![Account {
        name: "chief",
        id: chief_user.id,
        org: 1,
        kind: "regulator",
        roles: vec!["regulator_admin", "org_admin"],
        token: Some(chief.clone()),
        issuer: None,
        web: Some(chief_user.email.clone()),
    }];
    let mut orgs = vec![(1u64, "regulator", chief.clone(), chief_user.id)];
    for (n, (name, kind)) in [
        ("a_admin", "operator"),
        ("b_admin", "operator"),
        ("p_admin", "authority"),
        ("i_admin", "importer"),
        ("m_admin", "manufacturer"),
        ("s_admin", "seller"),
    ]
    .into_iter()
    .enumerate()
    {
        let made = created(
            &call(
                client,
                &chief,
                Method::POST,
                "/v1/orgs",
                Some(&org_json(kind, 40 + n as u64)),
            )
            .await,
        );
        let org = made["organisation"]["id"].as_u64().unwrap();
        let admin = made["administrator"]["id"].as_u64().unwrap();
        let token = issue(client, &chief, admin).await;
        accounts.push(Account {
            name,
            id: admin,
            org,
            kind,
            roles: vec!["org_admin"],
            token: Some(token.clone()),
            issuer: Some(chief_user.id),
            web: None,
        });
        orgs.push((org, kind, token, admin));
    }
    let mut next_id = 61_000_000u64;
    let people: [(&str, usize, &[&str], bool); 14] = [
        ("chief2", 0, &["regulator_admin"], true),
        ("reg_fresh", 0, &["regulator_admin"], false),
        ("reg_admin", 0, &["org_admin"], true),
        ("reg_auditor", 0, &["auditor"], true),
        ("a_op", 1, &["operator"], true),
        ("a_both", 1, &["operator", "org_admin"], true),
        ("a_fresh", 1, &["operator"], false),
        ("a_web", 1, &["operator"], false),
        ("b_op", 2, &["operator"], true),
        ("p_police", 3, &["authority"], true),
        ("p_auditor", 3, &["auditor"], true),
        ("i_clerk", 4, &["importer"], true),
        ("m_maker", 5, &["manufacturer"], true),
        ("s_second", 6, &["org_admin"], true),
    ];
    for (name, org, roles, with_token) in people {
        let (org, kind, admin, admin_id) = &orgs[org];
        next_id += 7;
        let id = new_user(client, admin, *org, next_id, roles).await;
        let token = if with_token {
            Some(issue(client, admin, id).await)
        } else {
            None
        };
        let web = (name == "a_web").then(|| email(next_id));
        if web.is_some() {
            let code = password_code(client, admin, id).await;
            server.accounts.set_password(&code, PASSWORD).unwrap();
        }
        accounts.push(Account {
            name,
            id,
            org: *org,
            kind,
            roles: roles.to_vec(),
            issuer: token.as_ref().map(|_| *admin_id),
            token,
            web,
        });
    }
    World { accounts, next_id }
}

/// A user of `org` that `by` creates, with `roles`; its id.
async fn new_user(client: &mut Client, by: &str, org: u64, id_number: u64, roles: &[&str]) -> u64 {
    created(
        &call(
            client,
            by,
            Method::POST,
            &format!("/v1/orgs/{org}/users"),
            Some(&person_json(id_number, roles)),
        )
        .await,
    )["id"]
        .as_u64()
        .unwrap()
}

/// A person's e-mail, one per person: only one account signs in with an e-mail.
fn email(id_number: u64) -> String {
    format!("persona.{id_number}@example.co")
}

/// A user form for person `id_number`, with `roles`.
fn person_json(id_number: u64, roles: &[&str]) -> Value {
    let mut form = user_json(id_number, roles);
    form["email"] = json!(email(id_number));
    form
}

/// A token `by` issues for `user`.
async fn issue(client: &mut Client, by: &str, user: u64) -> String {
    created(
        &call(
            client,
            by,
            Method::POST,
            &format!("/v1/users/{user}/tokens"),
            Some(&json!({ "name": "t" })),
        )
        .await,
    )["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A one-time password code `by` issues for `user`.
async fn password_code(client: &mut Client, by: &str, user: u64) -> String {
    let reply = call(
        client,
        by,
        Method::POST,
        &format!("/v1/users/{user}/password-setup"),
        None,
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["code"].as_str().unwrap().to_owned()
}

/// The audit entries after `after`, read by `reader`.
async fn audit_after(client: &mut Client, reader: &str, after: u64) -> Vec<Value> {
    let reply = call(
        client,
        reader,
        Method::GET,
        &format!("/v1/audit?after={after}&limit=1000"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    reply.json()["entries"].as_array().unwrap().clone()
}

/// Sends `route` as `actor` on `target`; returns the status and the JSON body.
async fn send(
    client: &mut Client,
    world: &mut World,
    route: Route,
    actor: &Account,
    target: &Account,
) -> (u16, Value) {
    let token = actor.token.as_deref().unwrap();
    let user = format!("/v1/orgs/{}/users/{}", target.org, target.id);
    let org = format!("/v1/orgs/{}", target.org);
    let (method, path, body) = match route {
        Route::ChangeName => (
            Method::PATCH,
            user,
            Some(json!({ "full_name": "Jorge Iván Ramírez Soto de la Cruz" })),
        ),
        Route::ChangeRoles => (Method::PATCH, user, Some(json!({ "roles": NEW_ROLES }))),
        Route::Escalate => (
            Method::PATCH,
            user,
            Some(json!({ "roles": ["regulator_admin"] })),
        ),
        Route::Deactivate => (Method::POST, format!("{user}/deactivate"), None),
        Route::Activate => (Method::POST, format!("{user}/activate"), None),
        Route::Suspend => (Method::POST, format!("{user}/suspend"), None),
        Route::Reactivate => (Method::POST, format!("{user}/reactivate"), None),
        Route::IssueToken => (
            Method::POST,
            format!("/v1/users/{}/tokens", target.id),
            Some(json!({ "name": "matrix" })),
        ),
        Route::ListTokens => (Method::GET, format!("/v1/users/{}/tokens", target.id), None),
        Route::CreateTwin => {
            world.next_id += 7;
            (
                Method::POST,
                format!("{org}/users"),
                Some(person_json(world.next_id, &target.roles)),
            )
        }
        Route::PatchOrg => (
            Method::PATCH,
            org.clone(),
            Some(json!({ "legal_name": format!("Organización {} revisada S.A.S.", target.org) })),
        ),
        Route::SuspendOrg => (Method::POST, format!("{org}/suspend"), None),
        Route::ReactivateOrg => (Method::POST, format!("{org}/reactivate"), None),
        Route::RevokeToken => {
            let id = match &target.token {
                Some(token) => token[7..23].to_owned(),
                None => "ffffffffffffffff".to_owned(),
            };
            (
                Method::DELETE,
                format!("/v1/users/{}/tokens/{id}", target.id),
                None,
            )
        }
        Route::PasswordSetup => (
            Method::POST,
            format!("/v1/users/{}/password-setup", target.id),
            None,
        ),
    };
    let reply = call(client, token, method, &path, body.as_ref()).await;
    let json = if reply.body.is_empty() {
        Value::Null
    } else {
        reply.json()
    };
    (reply.status.as_u16(), json)
}

/// Puts back what a successful `route` changed, as a regulator administrator other than the
/// target; a revoked token is replaced, and the world learns the new one.
async fn undo(
    client: &mut Client,
    server: &TestServer,
    world: &mut World,
    route: Route,
    target: &Account,
    body: &Value,
) {
    let admin = world.undoer(target);
    let user = format!("/v1/orgs/{}/users/{}", target.org, target.id);
    let org = format!("/v1/orgs/{}", target.org);
    let (method, path, body) = match route {
        Route::ChangeRoles | Route::Escalate => {
            (Method::PATCH, user, Some(json!({ "roles": target.roles })))
        }
        Route::Deactivate => (Method::POST, format!("{user}/activate"), None),
        Route::Suspend => (Method::POST, format!("{user}/reactivate"), None),
        Route::SuspendOrg => (Method::POST, format!("{org}/reactivate"), None),
        Route::CreateTwin => {
            let twin = body["id"].as_u64().unwrap();
            (Method::POST, format!("{org}/users/{twin}/deactivate"), None)
        }
        Route::IssueToken => {
            // the holder revokes it: the accounts hold what they held again
            let token = body["token"].as_str().unwrap();
            let path = format!("/v1/users/{}/tokens/{}", target.id, &token[7..23]);
            let reply = call(client, token, Method::DELETE, &path, None).await;
            assert_eq!(
                reply.status,
                200,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            return;
        }
        Route::RevokeToken if target.token.is_some() => {
            let (token, issuer) = if let Some(email) = &target.web {
                // no administrator issues a token beside a password: its holder signs in and
                // issues its own
                let cookie = (server.accounts.sign_in(email, PASSWORD, "192.0.2.1"))
                    .unwrap()
                    .cookie;
                let person = server.accounts.session(&cookie).unwrap().principal;
                let (_, token) = (server.accounts)
                    .create_token(&person, target.id, "replacement")
                    .unwrap();
                (token, None)
            } else {
                let issuer = (world.accounts.iter())
                    .find(|a| a.token.as_deref() == Some(admin.as_str()))
                    .map(|a| a.id);
                (issue(client, &admin, target.id).await, issuer)
            };
            let account = (world.accounts.iter_mut())
                .find(|a| a.id == target.id)
                .unwrap();
            account.token = Some(token);
            account.issuer = issuer;
            return;
        }
        Route::PasswordSetup if target.web.is_some() && target.token.is_none() => {
            // the account signs in with a password again
            let code = body["code"].as_str().unwrap();
            server.accounts.set_password(code, PASSWORD).unwrap();
            return;
        }
        _ => return,
    };
    let reply = call(client, &admin, method, &path, body.as_ref()).await;
    assert_eq!(
        reply.status,
        200,
        "undo {route:?} on {}: {}",
        target.name,
        String::from_utf8_lossy(&reply.body)
    );
}

#[tokio::test]
async fn every_pair_of_accounts_through_every_account_changing_route() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.open_checks = false;
    config.refusals_per_minute = 1_000_000; // this test is refused on purpose, many times
    let server = TestServer::start_with(config).await;
    let mut client = Client::h1(server.addr).await;
    let mut world = world(&server, &mut client).await;
    let mut cursor = audit_after(&mut client, &world.token("chief"), 0)
        .await
        .last()
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    let mut failures = Vec::new();
    let mut cells = 0;
    let names: Vec<&'static str> = world.accounts.iter().map(|a| a.name).collect();
    // target by target, so that the one change no cell undoes (a pending password code) comes
    // after every other route has been tried on that account
    for &target in &names {
        for route in ROUTES {
            for &actor in &names {
                let (actor, target) = (world.get(actor).clone(), world.get(target).clone());
                if actor.token.is_none() {
                    continue;
                }
                cells += 1;
                let want = expected(route, &actor, &target);
                let (got, body) = send(&mut client, &mut world, route, &actor, &target).await;
                let cell = format!("{route:?} by {} on {}", actor.name, target.name);
                if got != want {
                    failures.push(format!("{cell}: got {got}, want {want}: {body}"));
                }
                if (200..300).contains(&got) {
                    if route == Route::IssueToken {
                        // its issuer: the actor, or for one's own token the administrator who
                        // issued the credential it was made through
                        let issuer = if actor.id == target.id {
                            actor.issuer.unwrap_or(actor.id)
                        } else {
                            actor.id
                        };
                        assert_eq!(body["issued_by"], issuer, "{cell}: records its issuer");
                    }
                    undo(&mut client, &server, &mut world, route, &target, &body).await;
                }
                let entries = audit_after(&mut client, &world.token("chief"), cursor).await;
                if let Some(last) = entries.last() {
                    cursor = last["seq"].as_u64().unwrap();
                }
                let refused = [403, 409, 422].contains(&got);
                if let (Some(action), true) = (action(route), refused) {
                    let audited = entries.iter().any(|e| {
                        e["actor"]["user"] == actor.id
                            && e["action"] == action
                            && e["outcome"] != "done"
                            && e["actor"]["issued_by"].as_u64() == actor.issuer
                    });
                    if !audited {
                        failures.push(format!(
                            "{cell}: refused with {got} but not audited naming the token's issuer"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Nobody ended up with a right it was not given: every account holds the roles it was
    // created with, and every live token was issued by its holder or, for an account that held
    // none, by an administrator who may act on it. No twin holds a token or is still active.
    let chief = world.token("chief");
    let users: Vec<Value> = {
        let mut all = Vec::new();
        for org in world
            .accounts
            .iter()
            .map(|a| a.org)
            .collect::<std::collections::BTreeSet<_>>()
        {
            let reply = call(
                &mut client,
                &chief,
                Method::GET,
                &format!("/v1/orgs/{org}/users"),
                None,
            )
            .await;
            assert_eq!(reply.status, 200);
            all.extend(reply.json().as_array().unwrap().iter().cloned());
        }
        all
    };
    let twins = users
        .iter()
        .filter(|u| {
            world
                .accounts
                .iter()
                .all(|a| Some(a.id) != u["id"].as_u64())
        })
        .count();
    assert!(twins > 50, "{twins} twins made");
    for user in &users {
        let id = user["id"].as_u64().unwrap();
        let tokens = call(
            &mut client,
            &chief,
            Method::GET,
            &format!("/v1/users/{id}/tokens"),
            None,
        )
        .await
        .json();
        let tokens = tokens.as_array().unwrap();
        let Some(target) = world.accounts.iter().find(|a| a.id == id) else {
            assert_eq!(user["active"], false, "twin {user}");
            assert!(tokens.is_empty(), "twin {user}: {tokens:?}");
            continue;
        };
        assert_eq!(user["roles"], json!(target.roles), "{}", target.name);
        assert_eq!(user["active"], true, "{}", target.name);
        assert_eq!(user["suspended"], false, "{}", target.name);
        assert_eq!(
            tokens.len(),
            usize::from(target.token.is_some()),
            "{}: {tokens:?}",
            target.name
        );
        for token in tokens {
            let issuer = token["issued_by"].as_u64();
            let fine = match issuer {
                None => target.name == "chief", // the console issued the bootstrap token
                Some(issuer) => {
                    let issuer = world.accounts.iter().find(|a| a.id == issuer).unwrap();
                    issuer.id == target.id || may_act_on(issuer, target)
                }
            };
            assert!(fine, "{}: token issued by {issuer:?}", target.name);
        }
    }
    for actor in world.accounts.iter().filter(|a| a.token.is_some()) {
        let me = call(
            &mut client,
            actor.token.as_deref().unwrap(),
            Method::GET,
            "/v1/me",
            None,
        )
        .await
        .json();
        assert_eq!(me["roles"], json!(actor.roles), "{}", actor.name);
    }
    server.stop().await;
}

#[tokio::test]
async fn the_last_active_regulator_admin_cannot_be_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.open_checks = false;
    config.refusals_per_minute = 1_000_000; // this test is refused on purpose, many times
    let server = TestServer::start_with(config).await;
    let mut client = Client::h1(server.addr).await;
    let made = server.accounts.bootstrap(regulator_form()).unwrap();
    let (chief_user, chief) = (made.admin, made.token);
    let me = format!("/v1/orgs/1/users/{}", chief_user.id);
    // a plain organisation administrator of the regulator can neither touch it nor mint for it
    let admin = new_user(&mut client, &chief, 1, 62_000_001, &["org_admin"]).await;
    let admin = issue(&mut client, &chief, admin).await;
    for (method, path, body) in [
        (Method::POST, format!("{me}/deactivate"), None),
        (
            Method::PATCH,
            me.clone(),
            Some(json!({ "full_name": "X Y" })),
        ),
        (
            Method::POST,
            format!("/v1/users/{}/tokens", chief_user.id),
            Some(json!({ "name": "x" })),
        ),
        (Method::POST, "/v1/orgs/1/suspend".into(), None),
    ] {
        let reply = call(&mut client, &admin, method.clone(), &path, body.as_ref()).await;
        assert_eq!(reply.status, 403, "{method} {path}");
    }
    // the last one cannot deactivate itself (409), nor give up the role (403: nobody
    // changes its own roles, and any other regulator administrator would not be the last)
    for (method, path, body, status) in [
        (Method::POST, format!("{me}/deactivate"), None, 409),
        (
            Method::PATCH,
            me.clone(),
            Some(json!({ "roles": ["org_admin"] })),
            403,
        ),
    ] {
        let reply = call(&mut client, &chief, method, &path, body.as_ref()).await;
        assert_eq!(
            reply.status,
            status,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    // with a second one, it can retire; the second is then the last
    let second = new_user(&mut client, &chief, 1, 62_000_002, &["regulator_admin"]).await;
    let second_token = issue(&mut client, &chief, second).await;
    let reply = call(
        &mut client,
        &chief,
        Method::POST,
        &format!("{me}/deactivate"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    for path in [
        format!("/v1/orgs/1/users/{second}/deactivate"),
        format!("/v1/orgs/1/users/{second}/suspend"),
    ] {
        let reply = call(&mut client, &second_token, Method::POST, &path, None).await;
        assert_eq!(
            reply.status,
            409,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    server.stop().await;
}
