//! Who may call what: every route of the table (`imeidb::api::routes::ROUTES`) x every kind
//! of caller, with the exact status, over real HTTP against a server that requires tokens.
//! `endpoints()` gives each route a call; `the_matrix_walks_the_route_table` fails when a
//! route has none, or when a case disagrees with the table's access and permission.

use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};

use imeidb::accounts::forms::OrgForm;
use imeidb::api::routes::{self, Access, Found};
use imeidb::roles::Role;

use crate::support::{Client, Reply, TestServer, assert_problem, imei, test_config};

pub(crate) fn regulator_form() -> OrgForm {
    serde_json::from_str(include_str!("../../config/regulator.example.json")).unwrap()
}

/// An organisation's form as JSON; `n` keeps NITs and people apart.
pub(crate) fn org_json(kind: &str, n: u64) -> Value {
    let mut form: Value =
        serde_json::from_str(include_str!("../../config/regulator.example.json")).unwrap();
    let number = 830_000_000 + n * 7;
    form["kind"] = json!(kind);
    form["nit"] = json!(format!(
        "{number}-{}",
        imeidb::identity::nit_check_digit(&number.to_string())
    ));
    form["legal_name"] = json!(format!("Organización {n} S.A.S."));
    form["administrator"]["id_number"] = json!(format!("{}", 1_030_000_000 + n * 13));
    form
}

pub(crate) fn user_json(id_number: u64, roles: &[&str]) -> Value {
    json!({
        "id_number": id_number.to_string(),
        "full_name": "Jorge Iván Ramírez Soto",
        "email": "jorge.ramirez@example.co",
        "roles": roles,
    })
}

/// A client that sends one token (or none).
struct As<'a> {
    client: &'a mut Client,
    token: Option<String>,
}

impl As<'_> {
    async fn call(&mut self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let (body, ct) = match body {
            Some(v) => (Bytes::from(v.to_string()), Some("application/json")),
            None => (Bytes::new(), None),
        };
        self.client
            .request_as(self.token.as_deref(), method, path, body, ct)
            .await
    }
}

pub(crate) async fn call(
    client: &mut Client,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    As {
        client,
        token: Some(token.to_owned()),
    }
    .call(method, path, body)
    .await
}

pub(crate) fn created(reply: &Reply) -> Value {
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

/// Every caller of the matrix, by name, and its token.
struct World {
    callers: Vec<(&'static str, Option<String>)>,
    operator_org: u64,
    operator_user: u64,
    /// An operator user whose only token was revoked: it holds no credential.
    revoked_user: u64,
}

/// Bootstraps, then over HTTP makes an operator, an importer, a manufacturer and an authority
/// organisation, a user of every role, and the broken callers.
async fn world(server: &TestServer, client: &mut Client) -> World {
    let regulator = server.accounts.bootstrap(regulator_form()).unwrap().token;
    let mut orgs = Vec::new();
    let mut admins = Vec::new();
    for (n, kind) in [
        "operator",
        "importer",
        "manufacturer",
        "authority",
        "operator",
    ]
    .into_iter()
    .enumerate()
    {
        let made = created(
            &call(
                client,
                &regulator,
                Method::POST,
                "/v1/orgs",
                Some(&org_json(kind, n as u64)),
            )
            .await,
        );
        let org = made["organisation"]["id"].as_u64().unwrap();
        let admin = made["administrator"]["id"].as_u64().unwrap();
        let token = created(
            &call(
                client,
                &regulator,
                Method::POST,
                &format!("/v1/users/{admin}/tokens"),
                Some(&json!({ "name": "admin" })),
            )
            .await,
        )["token"]
            .as_str()
            .unwrap()
            .to_owned();
        orgs.push(org);
        admins.push(token);
    }
    let regulator_org = 1;
    let mut next_id = 52_000_000u64;
    let mut user = async |org: u64, admin: &str, roles: &[&str]| -> (u64, String) {
        next_id += 7;
        let user = created(
            &call(
                client,
                admin,
                Method::POST,
                &format!("/v1/orgs/{org}/users"),
                Some(&user_json(next_id, roles)),
            )
            .await,
        )["id"]
            .as_u64()
            .unwrap();
        let token = created(
            &call(
                client,
                admin,
                Method::POST,
                &format!("/v1/users/{user}/tokens"),
                Some(&json!({ "name": "t" })),
            )
            .await,
        )["token"]
            .as_str()
            .unwrap()
            .to_owned();
        (user, token)
    };
    let (operator_user, operator) = user(orgs[0], &admins[0], &["operator"]).await;
    let (_, importer) = user(orgs[1], &admins[1], &["importer"]).await;
    let (_, manufacturer) = user(orgs[2], &admins[2], &["manufacturer"]).await;
    let (_, authority) = user(orgs[3], &admins[3], &["authority"]).await;
    let (_, auditor) = user(regulator_org, &regulator, &["auditor"]).await;
    let (revoked_user, revoked) = user(orgs[0], &admins[0], &["operator"]).await;
    let (suspended_user, suspended) = user(orgs[0], &admins[0], &["operator"]).await;
    let (deactivated_user, deactivated) = user(orgs[0], &admins[0], &["operator"]).await;
    let (_, of_suspended_org) = user(orgs[4], &admins[4], &["operator"]).await;

    let token_id = &revoked[7..23];
    let reply = call(
        client,
        &admins[0],
        Method::DELETE,
        &format!("/v1/users/{revoked_user}/tokens/{token_id}"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.json()["revoked_at"].is_string());
    let reason = json!({ "reason": "investigation 2026-114" });
    for (path, token) in [
        (
            format!("/v1/orgs/{}/users/{suspended_user}/suspend", orgs[0]),
            &regulator,
        ),
        (
            format!("/v1/orgs/{}/users/{deactivated_user}/deactivate", orgs[0]),
            &admins[0],
        ),
        (format!("/v1/orgs/{}/suspend", orgs[4]), &regulator),
    ] {
        let reply = call(client, token, Method::POST, &path, Some(&reason)).await;
        assert_eq!(
            reply.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    World {
        callers: vec![
            ("no token", None),
            ("malformed token", Some("imeidb_nonsense".into())),
            (
                "unknown token",
                Some(format!("imeidb_0123456789abcdef_{}", "ab".repeat(32))),
            ),
            ("revoked token", Some(revoked)),
            ("deactivated user", Some(deactivated)),
            ("suspended user", Some(suspended)),
            ("suspended org", Some(of_suspended_org)),
            ("regulator_admin", Some(regulator)),
            ("org_admin", Some(admins[0].clone())),
            ("other org_admin", Some(admins[1].clone())),
            ("operator", Some(operator)),
            ("importer", Some(importer)),
            ("manufacturer", Some(manufacturer)),
            ("authority", Some(authority)),
            ("auditor", Some(auditor)),
        ],
        operator_org: orgs[0],
        operator_user,
        revoked_user,
    }
}

/// One endpoint: method, path, body, the callers allowed, and the status they get. Bodies
/// are chosen so that an allowed call changes nothing (an invalid body, a missing target),
/// so the matrix can run in any order.
struct Endpoint {
    method: Method,
    path: String,
    body: Option<Value>,
    allowed: &'static [&'static str],
    allowed_status: u16,
}

const EVERYONE: &[&str] = &[
    "regulator_admin",
    "org_admin",
    "other org_admin",
    "operator",
    "importer",
    "manufacturer",
    "authority",
    "auditor",
];

fn endpoints(world: &World) -> Vec<Endpoint> {
    let org = world.operator_org;
    let user = world.operator_user;
    let e = |method: Method, path: String, body: Option<Value>, allowed, allowed_status| Endpoint {
        method,
        path,
        body,
        allowed,
        allowed_status,
    };
    let pei = format!("imei-{}", imei(1));
    vec![
        // network checks
        e(
            Method::GET,
            format!("/v1/imeis/{}/status", imei(1)),
            None,
            &["operator"],
            200,
        ),
        e(
            Method::GET,
            format!("/n5g-eir-eic/v1/equipment-status?pei={pei}"),
            None,
            &["operator"],
            404,
        ),
        e(
            Method::POST,
            "/v1/checks".into(),
            Some(json!({ "imeis": [imei(1).to_string()] })),
            &["operator"],
            200,
        ),
        // who am I
        e(Method::GET, "/v1/me".into(), None, EVERYONE, 200),
        // organisations
        e(
            Method::GET,
            "/v1/orgs".into(),
            None,
            &["regulator_admin", "auditor"],
            200,
        ),
        e(
            Method::POST,
            "/v1/orgs".into(),
            Some(json!({})),
            &["regulator_admin"],
            422,
        ),
        e(
            Method::GET,
            format!("/v1/orgs/{org}"),
            None,
            &["regulator_admin", "auditor", "org_admin"],
            200,
        ),
        e(
            Method::PATCH,
            format!("/v1/orgs/{org}"),
            Some(json!({ "kind": "seller" })),
            &["regulator_admin"],
            422,
        ),
        e(
            Method::POST,
            "/v1/orgs/999/suspend".into(),
            None,
            &["regulator_admin"],
            404,
        ),
        e(
            Method::POST,
            "/v1/orgs/999/reactivate".into(),
            None,
            &["regulator_admin"],
            404,
        ),
        // users
        e(
            Method::GET,
            format!("/v1/orgs/{org}/users"),
            None,
            &["regulator_admin", "org_admin"],
            200,
        ),
        e(
            Method::POST,
            format!("/v1/orgs/{org}/users"),
            Some(json!({})),
            &["regulator_admin", "org_admin"],
            422,
        ),
        e(
            Method::GET,
            format!("/v1/orgs/{org}/users/{user}"),
            None,
            &["regulator_admin", "org_admin"],
            200,
        ),
        e(
            Method::PATCH,
            format!("/v1/orgs/{org}/users/{user}"),
            Some(json!({ "id_number": "1" })),
            &["regulator_admin", "org_admin"],
            422,
        ),
        e(
            Method::POST,
            format!("/v1/orgs/{org}/users/999/deactivate"),
            None,
            &["regulator_admin", "org_admin"],
            404,
        ),
        e(
            Method::POST,
            format!("/v1/orgs/{org}/users/999/activate"),
            None,
            &["regulator_admin", "org_admin"],
            404,
        ),
        e(
            Method::POST,
            format!("/v1/orgs/{org}/users/999/suspend"),
            None,
            &["regulator_admin"],
            404,
        ),
        e(
            Method::POST,
            format!("/v1/orgs/{org}/users/999/reactivate"),
            None,
            &["regulator_admin"],
            404,
        ),
        // tokens (the user itself, its organisation's administrator, the regulator)
        e(
            Method::GET,
            format!("/v1/users/{user}/tokens"),
            None,
            &["regulator_admin", "org_admin", "operator"],
            200,
        ),
        // the user issues its own; an administrator only for an account with no live token
        e(
            Method::POST,
            format!("/v1/users/{user}/tokens"),
            Some(json!({ "name": "" })),
            &["operator"],
            422,
        ),
        e(
            Method::DELETE,
            format!("/v1/users/{user}/tokens/ffffffffffffffff"),
            None,
            &["regulator_admin", "org_admin", "operator"],
            404,
        ),
        // a one-time code to set a web password: an administrator who may act on the account,
        // while it holds no live token (the operator user holds the operator caller's: nobody
        // but itself, through a token it made, which the matrix's is not)
        e(
            Method::POST,
            format!("/v1/users/{}/password-setup", world.revoked_user),
            None,
            &["regulator_admin", "org_admin"],
            200,
        ),
        e(
            Method::POST,
            format!("/v1/users/{user}/password-setup"),
            None,
            &[],
            403,
        ),
        // audit
        e(
            Method::GET,
            "/v1/audit?limit=5".into(),
            None,
            &["regulator_admin", "auditor"],
            200,
        ),
        // online backups, into backup.dir only
        e(
            Method::POST,
            "/v1/admin/backups".into(),
            None,
            &["regulator_admin"],
            201,
        ),
        e(
            Method::GET,
            "/v1/admin/backups".into(),
            None,
            &["regulator_admin"],
            200,
        ),
        // a read replica's snapshot: operators run replicas
        e(
            Method::GET,
            "/v1/replication/snapshot".into(),
            None,
            &["regulator_admin", "operator"],
            200,
        ),
        // reports, recovery, history, consultation
        e(
            Method::POST,
            "/v1/reports".into(),
            Some(json!({})),
            &["operator", "authority"],
            422,
        ),
        e(
            Method::POST,
            format!("/v1/imeis/{}/recovery", imei(2)),
            Some(json!({ "reference": "owner letter" })),
            &["operator"],
            404,
        ),
        e(
            Method::GET,
            format!("/v1/imeis/{}/history", imei(2)),
            None,
            &["regulator_admin", "auditor", "operator", "authority"],
            200,
        ),
        e(
            Method::GET,
            format!("/v1/negative/{}", imei(2)),
            None,
            &["authority"],
            404,
        ),
        // activation and owners
        e(
            Method::POST,
            "/v1/activations".into(),
            Some(json!({})),
            &["operator"],
            422,
        ),
        e(
            Method::POST,
            format!("/v1/imeis/{}/owner", imei(2)),
            Some(json!({})),
            &["operator"],
            422,
        ),
        // sellers
        e(
            Method::POST,
            "/v1/sellers".into(),
            Some(json!({})),
            &["operator", "regulator_admin"],
            422,
        ),
        // registrations: the matrix sends JSON, which an allowed caller is told to send as CSV
        e(
            Method::POST,
            "/v1/registrations".into(),
            Some(json!({})),
            &["operator", "importer", "manufacturer"],
            415,
        ),
        e(
            Method::GET,
            "/v1/registrations/jobs/0123456789abcdef".into(),
            None,
            EVERYONE,
            404,
        ),
        // exchange
        e(
            Method::GET,
            "/v1/exchange/negative".into(),
            None,
            &["regulator_admin"],
            200,
        ),
        e(
            Method::GET,
            "/v1/exchange/negative/changes?since=0".into(),
            None,
            &["regulator_admin"],
            200,
        ),
        e(
            Method::POST,
            "/v1/exchange/foreign?source=GSMA".into(),
            Some(json!({})),
            &["regulator_admin"],
            422,
        ),
        // public: no token needed, a token changes nothing
        e(
            Method::GET,
            format!("/v1/public/imeis/{}", imei(1)),
            None,
            PUBLIC,
            200,
        ),
        e(
            Method::GET,
            "/v1/public/sellers?q=x".into(),
            None,
            PUBLIC,
            200,
        ),
        // operations: open
        e(Method::GET, "/metrics".into(), None, PUBLIC, 200),
        e(Method::GET, "/healthz".into(), None, PUBLIC, 200),
        e(Method::GET, "/readyz".into(), None, PUBLIC, 200),
        e(Method::GET, "/openapi.json".into(), None, PUBLIC, 200),
        // an unknown route: a valid token learns it does not exist
        e(Method::GET, UNKNOWN.into(), None, EVERYONE, 404),
    ]
}

/// A path no route has.
const UNKNOWN: &str = "/v1/nothing";

/// The role a caller of the matrix holds.
fn role_of(caller: &str) -> Option<Role> {
    Some(match caller {
        "regulator_admin" => Role::RegulatorAdmin,
        "org_admin" | "other org_admin" => Role::OrgAdmin,
        "operator" => Role::Operator,
        "importer" => Role::Importer,
        "manufacturer" => Role::Manufacturer,
        "authority" => Role::Authority,
        "auditor" => Role::Auditor,
        _ => return None,
    })
}

#[test]
fn the_matrix_walks_the_route_table() {
    let world = World {
        callers: Vec::new(),
        operator_org: 7,
        operator_user: 9,
        revoked_user: 10,
    };
    let mut covered = Vec::new();
    let mut wrong = Vec::new();
    for endpoint in endpoints(&world) {
        let path = endpoint.path.split('?').next().unwrap();
        let Found::Route(route, _) = routes::find(&endpoint.method, path) else {
            if path != UNKNOWN {
                wrong.push(format!("{} {path}: no route has it", endpoint.method));
            }
            continue;
        };
        covered.push((route.method.clone(), route.path));
        let public = endpoint.allowed == PUBLIC;
        if public != matches!(route.access, Access::Open | Access::Public) {
            wrong.push(format!(
                "{} {}: the case says public={public}, the table {:?}",
                route.method, route.path, route.access
            ));
        }
        if route.access == Access::Check && endpoint.allowed != ["operator"] {
            wrong.push(format!(
                "{} {}: a check route allows operators only",
                route.method, route.path
            ));
        }
        // every caller the case allows holds a role the table's permission is granted to
        if let Some(permission) = route.permission {
            for caller in endpoint.allowed {
                if role_of(caller).is_some_and(|role| !role.permits(permission)) {
                    wrong.push(format!(
                        "{} {}: {caller} is allowed, but its role lacks {}",
                        route.method,
                        route.path,
                        permission.as_str()
                    ));
                }
            }
        }
    }
    for route in routes::ROUTES {
        if !covered.contains(&(route.method.clone(), route.path)) {
            wrong.push(format!(
                "{} {}: no case in endpoints(): add one",
                route.method, route.path
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// What `caller` must get from `endpoint`.
/// Routes answered without a token: every caller, whatever its token, gets the same answer.
const PUBLIC: &[&str] = &["public"];

fn expected(caller: &str, endpoint: &Endpoint) -> u16 {
    if endpoint.allowed == PUBLIC {
        return endpoint.allowed_status;
    }
    match caller {
        "no token" | "malformed token" | "unknown token" | "revoked token" | "deactivated user" => {
            401
        }
        "suspended user" | "suspended org" => 403,
        _ if endpoint.allowed.contains(&caller) => endpoint.allowed_status,
        _ => 403,
    }
}

#[tokio::test]
async fn every_endpoint_for_every_caller() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.open_checks = false;
    config.public_per_minute = 10_000; // the matrix calls the public routes as every caller
    let backups = tempfile::tempdir().unwrap();
    config.backup.dir = Some(backups.path().join("backups"));
    let server = TestServer::start_with(config).await;
    let mut client = Client::h1(server.addr).await;
    let world = world(&server, &mut client).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for endpoint in endpoints(&world) {
        for (caller, token) in &world.callers {
            let reply = As {
                client: &mut client,
                token: token.clone(),
            }
            .call(
                endpoint.method.clone(),
                &endpoint.path,
                endpoint.body.as_ref(),
            )
            .await;
            cells += 1;
            let want = expected(caller, &endpoint);
            if reply.status.as_u16() != want {
                failures.push(format!(
                    "{} {} as {caller}: got {}, want {want}: {}",
                    endpoint.method,
                    endpoint.path,
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ));
            } else if want >= 400 {
                assert_eq!(reply.content_type, "application/problem+json");
            } else if !reply.body.is_empty() {
                // what the OpenAPI document says the route answers
                let path = endpoint.path.split('?').next().unwrap();
                let Found::Route(route, _) = routes::find(&endpoint.method, path) else {
                    panic!("{} {path}: no route", endpoint.method);
                };
                let documented = imeidb::api::openapi::success_type(route.path);
                if !reply.content_type.starts_with(documented) {
                    failures.push(format!(
                        "{} {path} as {caller}: answered {}, the OpenAPI document says {documented}",
                        endpoint.method, reply.content_type
                    ));
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
}

#[tokio::test]
async fn organisations_users_tokens_and_audit_over_http_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.open_checks = false;
    let server = TestServer::start_with(config.clone()).await;
    let regulator = server.accounts.bootstrap(regulator_form()).unwrap().token;
    let mut client = Client::h2(server.addr).await;

    // field-by-field errors
    let mut bad = org_json("operator", 1);
    bad["nit"] = json!("830000007-0");
    bad["contacts"] = json!([{ "full_name": "María Fernanda Rojas Gómez", "email": "x@y.co" }]);
    let reply = call(
        &mut client,
        &regulator,
        Method::POST,
        "/v1/orgs",
        Some(&bad),
    )
    .await;
    let problem = assert_problem(&reply, 422, "INVALID_INPUT");
    let fields: Vec<&str> = problem["invalidParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["param"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["nit", "contacts[0].full_name"], "{problem}");
    // malformed JSON and unknown fields are 400 naming the problem
    let mut unknown = org_json("operator", 1);
    unknown["nickname"] = json!("x");
    let reply = call(
        &mut client,
        &regulator,
        Method::POST,
        "/v1/orgs",
        Some(&unknown),
    )
    .await;
    let problem = assert_problem(&reply, 400, "INVALID_MSG_FORMAT");
    assert!(
        problem["detail"].as_str().unwrap().contains("nickname"),
        "{problem}"
    );

    let made = created(
        &call(
            &mut client,
            &regulator,
            Method::POST,
            "/v1/orgs",
            Some(&org_json("operator", 1)),
        )
        .await,
    );
    let org = made["organisation"]["id"].as_u64().unwrap();
    let admin = made["administrator"]["id"].as_u64().unwrap();
    assert_eq!(made["administrator"]["roles"], json!(["org_admin"]));
    // the same NIT again, or the administrator's ID number written with dots: 409
    let reply = call(
        &mut client,
        &regulator,
        Method::POST,
        "/v1/orgs",
        Some(&org_json("operator", 1)),
    )
    .await;
    assert_problem(&reply, 409, "RESOURCE_CONFLICT");
    let admin_token = created(
        &call(
            &mut client,
            &regulator,
            Method::POST,
            &format!("/v1/users/{admin}/tokens"),
            Some(&json!({ "name": "admin" })),
        )
        .await,
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = call(
        &mut client,
        &admin_token,
        Method::POST,
        &format!("/v1/orgs/{org}/users"),
        Some(&user_json(1_030_000_013, &["operator"])),
    )
    .await;
    assert_problem(&reply, 409, "RESOURCE_CONFLICT");
    // an org admin cannot grant a role outside its organisation's kind
    let reply = call(
        &mut client,
        &admin_token,
        Method::POST,
        &format!("/v1/orgs/{org}/users"),
        Some(&user_json(79_555_123, &["auditor"])),
    )
    .await;
    assert_problem(&reply, 422, "INVALID_INPUT");
    let operator = created(
        &call(
            &mut client,
            &admin_token,
            Method::POST,
            &format!("/v1/orgs/{org}/users"),
            Some(&user_json(79_555_123, &["operator"])),
        )
        .await,
    )["id"]
        .as_u64()
        .unwrap();
    let operator_token = created(
        &call(
            &mut client,
            &admin_token,
            Method::POST,
            &format!("/v1/users/{operator}/tokens"),
            Some(&json!({ "name": "core-1" })),
        )
        .await,
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = call(
        &mut client,
        &operator_token,
        Method::GET,
        &format!("/v1/imeis/{}/status", imei(3)),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    // the token listing never shows a secret or its hash
    let listing = call(
        &mut client,
        &operator_token,
        Method::GET,
        &format!("/v1/users/{operator}/tokens"),
        None,
    )
    .await;
    let text = String::from_utf8_lossy(&listing.body).into_owned();
    assert!(
        !text.contains(&operator_token[24..]) && !text.contains("sha256"),
        "{text}"
    );
    assert!(listing.json()[0]["last_used_at"].is_string());

    let audit = call(
        &mut client,
        &regulator,
        Method::GET,
        "/v1/audit?action=user.create",
        None,
    )
    .await;
    assert_eq!(audit.status, 200);
    let entries = audit.json()["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "{entries:?}");
    // the refused grant of a role outside the organisation's kind is on the record, with why
    assert_eq!(entries[0]["outcome"], "refused");
    assert_eq!(entries[0]["target"], format!("org/{org}"));
    assert_eq!(
        entries[0]["reason"],
        "auditor is not a role of operator organisations"
    );
    assert_eq!(entries[1]["outcome"], "done");
    assert_eq!(entries[1]["target"], format!("user/{operator}"));
    assert_eq!(entries[1]["actor"]["user"], admin);
    // with the token that acted, whose record names who issued it
    assert_eq!(entries[1]["actor"]["token"], admin_token[7..23]);
    assert!(entries[1]["time"].as_str().unwrap().ends_with('Z'));
    let audit_text = String::from_utf8_lossy(
        &call(
            &mut client,
            &regulator,
            Method::GET,
            "/v1/audit?limit=1000",
            None,
        )
        .await
        .body,
    )
    .into_owned();
    assert!(
        !audit_text.contains("79555123"),
        "an ID number in the audit trail"
    );
    assert!(
        !audit_text.contains(&operator_token[24..]),
        "a token in the audit trail"
    );
    let reply = call(
        &mut client,
        &regulator,
        Method::GET,
        "/v1/audit?from=yesterday&limit=0",
        None,
    )
    .await;
    let problem = assert_problem(&reply, 400, "INVALID_QUERY_PARAM");
    assert_eq!(problem["invalidParams"].as_array().unwrap().len(), 2);

    server.stop().await;
    let server = TestServer::start_with(config).await;
    let mut client = Client::h1(server.addr).await;
    let reply = call(
        &mut client,
        &operator_token,
        Method::GET,
        &format!("/v1/imeis/{}/status", imei(3)),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "the token survives a restart");
    let orgs = call(&mut client, &regulator, Method::GET, "/v1/orgs", None)
        .await
        .json();
    assert_eq!(orgs.as_array().unwrap().len(), 2);
    let users = call(
        &mut client,
        &admin_token,
        Method::GET,
        &format!("/v1/orgs/{org}/users"),
        None,
    )
    .await
    .json();
    assert_eq!(users.as_array().unwrap().len(), 2);
    let audit = call(
        &mut client,
        &regulator,
        Method::GET,
        "/v1/audit?limit=1000",
        None,
    )
    .await
    .json();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "registry.bootstrap",
            "org.create",
            "token.create",
            "user.create",
            "user.create",
            "token.create"
        ]
    );
    server.stop().await;
}

/// `GET /openapi.json` serves the route table's description; a wrong method is told the
/// path's methods only once the caller may use the path.
#[tokio::test]
async fn the_api_describes_itself_and_405s_follow_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.open_checks = false;
    let server = TestServer::start_with(config).await;
    let mut client = Client::h1(server.addr).await;
    let reply = client.get("/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), imeidb::api::openapi::document());
    for route in routes::ROUTES {
        let path = route.path.replace("{imei}", &imei(1).to_string());
        let path = path.replace('{', "1").replace('}', "");
        let wrong = if route.method == Method::PUT {
            Method::PATCH
        } else {
            Method::PUT
        };
        let reply = client.request(wrong, &path, Bytes::new(), None).await;
        let want = match route.access {
            Access::Open | Access::Public => 405,
            Access::Check | Access::Token => 401,
        };
        assert_eq!(reply.status.as_u16(), want, "PUT {path}");
        if want == 405 {
            let detail = reply.json()["detail"].as_str().unwrap().to_owned();
            assert!(detail.contains(route.method.as_str()), "{path}: {detail}");
        }
    }
    let regulator = server.accounts.bootstrap(regulator_form()).unwrap().token;
    let reply = call(&mut client, &regulator, Method::DELETE, "/v1/orgs/1", None).await;
    assert_eq!(reply.status, 405);
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("GET, PATCH")
    );
}
