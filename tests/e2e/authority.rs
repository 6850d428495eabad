//! Who may act on whose account, over real HTTP: every pair of accounts (actor, target),
//! across roles and organisations, through every route that changes an account or its
//! credentials, against a rule table written here independently of `accounts/authority.rs`.
//! Each refusal must be in the audit trail; each change that succeeds is undone by the
//! regulator so the next pair starts from the same world. At the end, nobody holds a role or a
//! token it was not given.

use hyper::Method;
use serde_json::{Value, json};

use crate::authz::{call, created, org_json, regulator_form, user_json};
use crate::support::{Client, TestServer, test_config};

/// One account of the world.
#[derive(Clone, Debug)]
struct Account {
    name: &'static str,
    id: u64,
    org: u64,
    roles: Vec<&'static str>,
    /// Its own token; `None` for accounts that never had one.
    token: Option<String>,
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

/// A route that changes an account, and what the table says of it: the status, and whether
/// the call changed something the test must undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    ChangeName,
    ChangeRoles,
    Deactivate,
    Activate,
    Suspend,
    Reactivate,
    IssueToken,
    ListTokens,
    RevokeToken,
}

const ROUTES: [Route; 9] = [
    Route::ChangeName,
    Route::ChangeRoles,
    Route::Deactivate,
    Route::Activate,
    Route::Suspend,
    Route::Reactivate,
    Route::IssueToken,
    Route::ListTokens,
    Route::RevokeToken,
];

/// The roles `ChangeRoles` asks for: a role every kind of organisation has.
const NEW_ROLES: [&str; 1] = ["org_admin"];

fn expected(route: Route, actor: &Account, target: &Account) -> u16 {
    let own = actor.id == target.id;
    let act = may_act_on(actor, target);
    match route {
        Route::ChangeName | Route::Deactivate | Route::Activate if act => 200,
        Route::ChangeRoles if act && target.roles == NEW_ROLES => 200, // no change
        Route::ChangeRoles if act && own => 403, // nobody changes its own roles
        Route::ChangeRoles if act => 200,
        Route::Suspend if actor.has("regulator_admin") && own => 409,
        Route::Suspend | Route::Reactivate if actor.has("regulator_admin") => 200,
        Route::IssueToken if own => 201,
        // an administrator issues only the first credential of an account holding none
        Route::IssueToken if act && target.token.is_none() => 201,
        Route::ListTokens if own || act => 200,
        Route::RevokeToken if own || act => 404, // a token id that does not exist
        _ => 403,
    }
}

/// The audit action a route writes.
fn action(route: Route) -> Option<&'static str> {
    match route {
        Route::ChangeName | Route::ChangeRoles => Some("user.update"),
        Route::Deactivate => Some("user.deactivate"),
        Route::Activate => Some("user.activate"),
        Route::Suspend => Some("user.suspend"),
        Route::Reactivate => Some("user.reactivate"),
        Route::IssueToken => Some("token.create"),
        Route::RevokeToken => Some("token.revoke"),
        Route::ListTokens => None, // a read
    }
}

struct World {
    accounts: Vec<Account>,
}

impl World {
    fn get(&self, name: &str) -> &Account {
        self.accounts.iter().find(|a| a.name == name).unwrap()
    }

    fn token(&self, name: &str) -> String {
        self.get(name).token.clone().unwrap()
    }
}

/// Three regulator administrators (the bootstrap one, a second, and one that never had a
/// token), the regulator's plain organisation administrator and auditor, two operators with
/// their administrators (one user holding two roles), a police organisation with its
/// administrator, an officer and an auditor, and an operator that never had a token.
async fn world(server: &TestServer, client: &mut Client) -> World {
    let made = server.accounts.bootstrap(regulator_form()).unwrap();
    let (chief_user, chief) = (made.admin, made.token);
    let mut accounts = vec![Account {
        name: "chief",
        id: chief_user.id,
        org: 1,
        roles: vec!["regulator_admin", "org_admin"],
        token: Some(chief.clone()),
    }];
    let mut next_id = 61_000_000u64;
    let mut orgs = vec![("regulator", 1u64, chief.clone())];
    for (n, (name, kind)) in [("a", "operator"), ("b", "operator"), ("p", "authority")]
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
            name: ["a_admin", "b_admin", "p_admin"][n],
            id: admin,
            org,
            roles: vec!["org_admin"],
            token: Some(token.clone()),
        });
        orgs.push((name, org, token));
    }
    let people: [(&str, usize, &[&str], bool); 10] = [
        ("chief2", 0, &["regulator_admin"], true),
        ("reg_fresh", 0, &["regulator_admin"], false),
        ("reg_admin", 0, &["org_admin"], true),
        ("reg_auditor", 0, &["auditor"], true),
        ("a_op", 1, &["operator"], true),
        ("a_both", 1, &["operator", "org_admin"], true),
        ("a_fresh", 1, &["operator"], false),
        ("b_op", 2, &["operator"], true),
        ("p_police", 3, &["authority"], true),
        ("p_auditor", 3, &["auditor"], true),
    ];
    for (name, org, roles, with_token) in people {
        let (_, org, admin) = &orgs[org];
        next_id += 7;
        let id = new_user(client, admin, *org, next_id, roles).await;
        let token = if with_token {
            Some(issue(client, admin, id).await)
        } else {
            None
        };
        accounts.push(Account {
            name,
            id,
            org: *org,
            roles: roles.to_vec(),
            token,
        });
    }
    World { accounts }
}

/// A user of `org` that `by` creates, with `roles`; its id.
async fn new_user(client: &mut Client, by: &str, org: u64, id_number: u64, roles: &[&str]) -> u64 {
    created(
        &call(
            client,
            by,
            Method::POST,
            &format!("/v1/orgs/{org}/users"),
            Some(&user_json(id_number, roles)),
        )
        .await,
    )["id"]
        .as_u64()
        .unwrap()
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
    route: Route,
    actor: &Account,
    target: &Account,
) -> (u16, Value) {
    let token = actor.token.as_deref().unwrap();
    let user = format!("/v1/orgs/{}/users/{}", target.org, target.id);
    let (method, path, body) = match route {
        Route::ChangeName => (
            Method::PATCH,
            user,
            Some(json!({ "full_name": "Jorge Iván Ramírez Soto de la Cruz" })),
        ),
        Route::ChangeRoles => (Method::PATCH, user, Some(json!({ "roles": NEW_ROLES }))),
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
        Route::RevokeToken => (
            Method::DELETE,
            format!("/v1/users/{}/tokens/ffffffffffffffff", target.id),
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
/// target.
async fn undo(client: &mut Client, world: &World, route: Route, target: &Account, body: &Value) {
    let admin = if target.name == "chief" {
        world.token("chief2")
    } else {
        world.token("chief")
    };
    let user = format!("/v1/orgs/{}/users/{}", target.org, target.id);
    let (method, path, body) = match route {
        Route::ChangeRoles => (Method::PATCH, user, Some(json!({ "roles": target.roles }))),
        Route::Deactivate => (Method::POST, format!("{user}/activate"), None),
        Route::Suspend => (Method::POST, format!("{user}/reactivate"), None),
        Route::IssueToken => {
            let token = body["token"].as_str().unwrap();
            // the holder revokes it: the fresh accounts hold none again
            let reply = call(
                client,
                token,
                Method::DELETE,
                &format!("/v1/users/{}/tokens/{}", target.id, &token[7..23]),
                None,
            )
            .await;
            assert_eq!(
                reply.status,
                200,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
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
    let world = world(&server, &mut client).await;
    let chief = world.token("chief");
    let mut cursor = audit_after(&mut client, &chief, 0).await.last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    let mut failures = Vec::new();
    let mut cells = 0;
    let actors: Vec<&Account> = world
        .accounts
        .iter()
        .filter(|a| a.token.is_some())
        .collect();
    for &actor in &actors {
        for target in &world.accounts {
            for route in ROUTES {
                cells += 1;
                let want = expected(route, actor, target);
                let (got, body) = send(&mut client, route, actor, target).await;
                let cell = format!("{route:?} by {} on {}", actor.name, target.name);
                if got != want {
                    failures.push(format!("{cell}: got {got}, want {want}: {body}"));
                }
                if (200..300).contains(&got) {
                    if route == Route::IssueToken {
                        assert_eq!(body["issued_by"], actor.id, "{cell}: records its issuer");
                    }
                    undo(&mut client, &world, route, target, &body).await;
                }
                let entries = audit_after(&mut client, &chief, cursor).await;
                if let Some(last) = entries.last() {
                    cursor = last["seq"].as_u64().unwrap();
                }
                let refused = [403, 409, 422].contains(&got);
                if let (Some(action), true) = (action(route), refused) {
                    let audited = entries.iter().any(|e| {
                        e["actor"]["user"] == actor.id
                            && e["action"] == action
                            && e["outcome"] != "done"
                    });
                    if !audited {
                        failures.push(format!("{cell}: refused with {got} but not audited"));
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
    // created with, and every live token was issued by its holder or, for an account that had
    // none, by an administrator who may act on it.
    for target in &world.accounts {
        let user = call(
            &mut client,
            &chief,
            Method::GET,
            &format!("/v1/orgs/{}/users/{}", target.org, target.id),
            None,
        )
        .await
        .json();
        assert_eq!(user["roles"], json!(target.roles), "{}", target.name);
        assert_eq!(user["active"], true, "{}", target.name);
        assert_eq!(user["suspended"], false, "{}", target.name);
        let tokens = call(
            &mut client,
            &chief,
            Method::GET,
            &format!("/v1/users/{}/tokens", target.id),
            None,
        )
        .await
        .json();
        let tokens = tokens.as_array().unwrap();
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
    for actor in &actors {
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
