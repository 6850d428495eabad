//! The registry's write paths over HTTP with real tokens: reports, recovery, consultation,
//! history, the public status; and durability across SIGKILL.

use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};

use crate::support::{Client, Reply, TestServer, assert_problem, imei, test_config};

/// A regulator, two operator organisations with one operator each, an authority; their
/// tokens. Made with the domain calls (the HTTP paths for them are tested in `authz.rs`).
pub struct Cast {
    pub operator_a: String,
    pub operator_b: String,
    pub police: String,
    pub regulator: String,
}

pub fn cast(accounts: &imeidb::accounts::Accounts) -> Cast {
    use imeidb::accounts::forms::{OrgForm, UserForm};
    use imeidb::roles::{OrgKind, Role};
    let form: OrgForm =
        serde_json::from_str(include_str!("../../config/regulator.example.json")).unwrap();
    let regulator = accounts.bootstrap(form.clone()).unwrap().token;
    let reg = accounts.authenticate(&regulator).unwrap();
    let member = |n: u64, kind: OrgKind, role: Role| -> String {
        let mut org = form.clone();
        org.kind = Some(kind);
        let number = format!("{}", 860_000_000 + n * 11);
        org.data.nit = format!("{number}-{}", imeidb::identity::nit_check_digit(&number));
        org.administrator.id_number = format!("{}", 1_060_000_000 + n * 17);
        let (org, admin) = accounts.create_org(&reg, org).unwrap();
        let (_, admin_token) = accounts.create_token(&reg, admin.id, "admin").unwrap();
        let admin = accounts.authenticate(&admin_token).unwrap();
        let user = accounts
            .create_user(
                &admin,
                org.id,
                UserForm {
                    id_number: format!("{}", 70_000_000 + n * 19),
                    full_name: "Natalia Andrea Cortés Vélez".into(),
                    email: "natalia@example.co".into(),
                    roles: vec![role],
                },
            )
            .unwrap();
        accounts.create_token(&admin, user.id, "t").unwrap().1
    };
    Cast {
        operator_a: member(1, OrgKind::Operator, Role::Operator),
        operator_b: member(2, OrgKind::Operator, Role::Operator),
        police: member(3, OrgKind::Authority, Role::Authority),
        regulator,
    }
}

pub async fn call(
    client: &mut Client,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let (bytes, ct) = match body {
        Some(v) => (Bytes::from(v.to_string()), Some("application/json")),
        None => (Bytes::new(), None),
    };
    client
        .request_as(Some(token), method, path, bytes, ct)
        .await
}

pub fn report(n: u64) -> Value {
    json!({
        "imei": imei(n).to_string(),
        "kind": "stolen",
        "reported_by": "user",
        "subscriber_id": "79.555.123",
        "reference": format!("DEN-{n}"),
        "occurred_at": "2026-11-20",
    })
}

async fn status(client: &mut Client, token: &str, n: u64) -> String {
    let reply = call(
        client,
        token,
        Method::GET,
        &format!("/v1/imeis/{}/status", imei(n)),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    reply.json()["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn report_blocks_the_next_check_only_the_reporter_recovers_and_authorities_consult() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.open_checks = false;
    config.public_per_minute = 3;
    let server = TestServer::start_with(config).await;
    let cast = cast(&server.accounts);
    let mut client = Client::h2(server.addr).await;

    assert_eq!(status(&mut client, &cast.operator_a, 1).await, "GREYLISTED");
    let reply = call(
        &mut client,
        &cast.operator_a,
        Method::POST,
        "/v1/reports",
        Some(report(1)),
    )
    .await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.json()["subscriber_id"],
        "79.555.123",
        "the reporter sees its own subscriber"
    );
    assert_eq!(
        status(&mut client, &cast.operator_b, 1).await,
        "BLACKLISTED"
    );
    // the same report again: 200, nothing new; another operator's report: 409
    let again = call(
        &mut client,
        &cast.operator_a,
        Method::POST,
        "/v1/reports",
        Some(report(1)),
    )
    .await;
    assert_eq!(again.status, 200);
    let mut other = report(1);
    other["reference"] = json!("DEN-other");
    let reply = call(
        &mut client,
        &cast.operator_b,
        Method::POST,
        "/v1/reports",
        Some(other),
    )
    .await;
    assert_problem(&reply, 409, "RESOURCE_CONFLICT");
    // field errors
    let mut bad = report(2);
    bad["kind"] = json!("robbed");
    bad["subscriber_id"] = json!("");
    let reply = call(
        &mut client,
        &cast.operator_a,
        Method::POST,
        "/v1/reports",
        Some(bad),
    )
    .await;
    let problem = assert_problem(&reply, 422, "INVALID_INPUT");
    assert_eq!(
        problem["invalidParams"].as_array().unwrap().len(),
        2,
        "{problem}"
    );

    // the authority consults one record: the subscriber's ID masked
    let reply = call(
        &mut client,
        &cast.police,
        Method::GET,
        &format!("/v1/negative/{}", imei(1)),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    let record = reply.json();
    assert_eq!(record["reference"], "DEN-1");
    assert_eq!(record["subscriber_id"], "********23");
    let reply = call(
        &mut client,
        &cast.police,
        Method::GET,
        &format!("/v1/negative/{}", imei(9)),
        None,
    )
    .await;
    assert_problem(&reply, 404, "RESOURCE_NOT_FOUND");

    // recovery: another operator is refused, the reporter succeeds
    let recovery = json!({ "reference": "owner letter 2026-55" });
    let path = format!("/v1/imeis/{}/recovery", imei(1));
    let reply = call(
        &mut client,
        &cast.operator_b,
        Method::POST,
        &path,
        Some(recovery.clone()),
    )
    .await;
    assert_problem(&reply, 403, "FORBIDDEN");
    assert_eq!(
        status(&mut client, &cast.operator_b, 1).await,
        "BLACKLISTED"
    );
    let reply = call(
        &mut client,
        &cast.operator_a,
        Method::POST,
        &path,
        Some(recovery),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    // it was never registered: it leaves the negative list and is on neither (issue #18: a
    // report and its recovery are no way onto the positive list)
    assert_eq!(reply.json()["positiveList"], false);
    assert_eq!(status(&mut client, &cast.operator_b, 1).await, "GREYLISTED");

    let history = call(
        &mut client,
        &cast.operator_b,
        Method::GET,
        &format!("/v1/imeis/{}/history", imei(1)),
        None,
    )
    .await
    .json();
    let events: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["reported", "recovered"]);
    assert_eq!(history["events"][1]["positive_list"], false);
    assert_eq!(history["events"][0]["subscriber_id"], "********23");

    // the audit trail has the report, the refused and the done recovery, both consultations
    let audit = call(
        &mut client,
        &cast.regulator,
        Method::GET,
        "/v1/audit?limit=1000",
        None,
    )
    .await
    .json();
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let a = e["action"].as_str().unwrap();
            a.starts_with("report.") || a.starts_with("negative.")
        })
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("report.create", "done"),
        ("negative.consult", "done"),
        ("negative.consult", "done"),
        ("report.recover", "denied"),
        ("report.recover", "done"),
    ]
    .iter()
    .map(|(a, o)| ((*a).to_owned(), (*o).to_owned()))
    .collect();
    assert_eq!(actions, expected);

    // the public status: no token, two facts, and a rate limit
    let mut public = Client::h1(server.addr).await;
    let reply = public.get(&format!("/v1/public/imeis/{}", imei(1))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({ "imei": imei(1).to_string(), "reportedStolenOrLost": false, "registered": false })
    );
    assert_problem(
        &public.get("/v1/public/imeis/123").await,
        400,
        "MANDATORY_IE_INCORRECT",
    );
    assert_eq!(
        public
            .get(&format!("/v1/public/imeis/{}", imei(2)))
            .await
            .status,
        200
    );
    assert_problem(
        &public.get(&format!("/v1/public/imeis/{}", imei(2))).await,
        429,
        "TOO_MANY_REQUESTS",
    );
    server.stop().await;
}

#[tokio::test]
async fn one_owner_per_imei_and_transfers_need_authorisation() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.open_checks = false;
    let server = TestServer::start_with(config).await;
    let cast = cast(&server.accounts);
    server
        .registry
        .list_positive(imei(20), &imeidb::store::PositiveRecord::default())
        .unwrap();
    let mut client = Client::h1(server.addr).await;
    let activation = |owner: &str| {
        json!({
            "imei": imei(20).to_string(),
            "imsi": "732101234567890",
            "owner_id_type": "CC",
            "owner_id_number": owner,
        })
    };
    let reply = call(
        &mut client,
        &cast.operator_a,
        Method::POST,
        "/v1/activations",
        Some(activation("79555123")),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["ownerBound"], true);
    // a second operator cannot bind another owner
    let reply = call(
        &mut client,
        &cast.operator_b,
        Method::POST,
        "/v1/activations",
        Some(activation("80111222")),
    )
    .await;
    assert_problem(&reply, 409, "OWNER_CONFLICT");
    // an unregistered IMEI without proof, a reported one: refused with the reason
    let mut unlisted = activation("79555123");
    unlisted["imei"] = json!(imei(21).to_string());
    let reply = call(
        &mut client,
        &cast.operator_a,
        Method::POST,
        "/v1/activations",
        Some(unlisted),
    )
    .await;
    assert_problem(&reply, 409, "EQUIPMENT_NOT_REGISTERED");

    // a transfer without the last owner's authorisation is refused
    let path = format!("/v1/imeis/{}/owner", imei(20));
    let mut transfer = json!({
        "current_owner_id_number": "79555123",
        "new_owner_id_type": "CC",
        "new_owner_id_number": "80111222",
    });
    let reply = call(
        &mut client,
        &cast.operator_b,
        Method::POST,
        &path,
        Some(transfer.clone()),
    )
    .await;
    let problem = assert_problem(&reply, 422, "INVALID_INPUT");
    assert_eq!(problem["invalidParams"][0]["param"], "authorisation");
    transfer["authorisation"] = json!("letter");
    transfer["letter_reference"] = json!("CARTA-2026-9");
    transfer["purchase_proof"] = json!("FV-000123");
    let reply = call(
        &mut client,
        &cast.operator_b,
        Method::POST,
        &path,
        Some(transfer),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let reply = call(
        &mut client,
        &cast.operator_b,
        Method::POST,
        "/v1/activations",
        Some(activation("80111222")),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["ownerBound"],
        false,
        "the new owner is already bound"
    );
    let history = call(
        &mut client,
        &cast.operator_a,
        Method::GET,
        &format!("/v1/imeis/{}/history", imei(20)),
        None,
    )
    .await
    .json();
    let events: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["activated", "owner_changed", "activated"]);
    assert_eq!(
        history["events"][1]["owner_id"], "******22",
        "operator A did not bind the new owner"
    );
    server.stop().await;
}

#[tokio::test]
async fn recorded_sellers_are_public() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.open_checks = false;
    let server = TestServer::start_with(config).await;
    let cast = cast(&server.accounts);
    let mut client = Client::h1(server.addr).await;
    let seller = json!({
        "id_number": "800197268-4",
        "name": "Celulares El Centro S.A.S.",
        "address": "Cra. 7 # 32-16",
        "municipality": "11001",
        "authorisation_number": "AUT-2026-77",
        "valid_from": "2026-01-01",
        "valid_until": "2099-12-31",
    });
    let reply = call(
        &mut client,
        &cast.operator_a,
        Method::POST,
        "/v1/sellers",
        Some(seller),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let found = client.get("/v1/public/sellers?q=centro").await;
    assert_eq!(found.status, 200);
    let sellers = found.json()["sellers"].as_array().unwrap().clone();
    assert_eq!(sellers.len(), 1);
    assert_eq!(sellers[0]["authorisation_number"], "AUT-2026-77");
    assert!(sellers[0]["authorised_by"]["name"].is_string());
    assert_eq!(
        client.get("/v1/public/sellers?q=nadie").await.json()["sellers"],
        json!([])
    );
    assert_problem(
        &client.get("/v1/public/sellers?name=x").await,
        400,
        "INVALID_QUERY_PARAM",
    );
    server.stop().await;
}

#[tokio::test]
async fn an_importer_uploads_a_file_gets_the_exact_report_and_a_resend_changes_nothing() {
    use imeidb::accounts::forms::{OrgForm, UserForm};
    use imeidb::roles::{OrgKind, Role};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(test_config(dir.path())).await;
    let accounts = &server.accounts;
    let cast = cast(accounts);
    // an importer organisation and user
    let regulator = accounts.authenticate(&cast.regulator).unwrap();
    let mut form: OrgForm =
        serde_json::from_str(include_str!("../../config/regulator.example.json")).unwrap();
    form.kind = Some(OrgKind::Importer);
    form.data.nit = "800197268-4".into();
    form.administrator.id_number = "1090000001".into();
    let (org, admin) = accounts.create_org(&regulator, form).unwrap();
    let (_, admin_token) = accounts.create_token(&regulator, admin.id, "a").unwrap();
    let admin = accounts.authenticate(&admin_token).unwrap();
    let clerk = accounts
        .create_user(
            &admin,
            org.id,
            UserForm {
                id_number: "1090000002".into(),
                full_name: "Paula Andrea Gil Mejía".into(),
                email: "paula@importadora.co".into(),
                roles: vec![Role::Importer],
            },
        )
        .unwrap();
    let (_, importer) = accounts.create_token(&admin, clerk.id, "t").unwrap();
    server
        .registry
        .list_negative(imei(59), &imeidb::store::NegativeRecord::default())
        .unwrap();

    let mut body = String::from("imei,manufacturer,model,reference\n");
    for n in 40..50 {
        body.push_str(&format!("{},Acme,X1,DI-2026-7\n", imei(n)));
    }
    body.push_str(&format!("{},Acme,X1,DI-2026-7\n", imei(40)));
    body.push_str("123,Acme,X1,DI-2026-7\n");
    body.push_str(&format!("{},Acme,X1,DI-2026-7\n", imei(59)));
    let mut client = Client::h2(server.addr).await;
    let send = async |client: &mut Client| {
        client
            .request_as(
                Some(&importer),
                Method::POST,
                "/v1/registrations",
                Bytes::from(body.clone()),
                Some("text/csv"),
            )
            .await
    };
    let reply = send(&mut client).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let report = reply.json();
    assert_eq!(report["lines"], 13);
    assert_eq!(report["accepted"], 10);
    assert_eq!(report["already_registered"], 0);
    assert_eq!(report["rejected"], 3);
    let lines: Vec<u64> = report["rejected_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [12, 13, 14]);
    assert_eq!(
        report["rejected_lines"][0]["reason"],
        "imei: duplicate of line 2"
    );
    assert_eq!(report["rejected_by_reason"]["on the negative list"], 1);
    assert_eq!(report["done"], true);
    let job = report["job"].as_str().unwrap().to_owned();
    let history = call(
        &mut client,
        &cast.operator_a,
        Method::GET,
        &format!("/v1/imeis/{}/history", imei(40)),
        None,
    )
    .await
    .json();
    assert_eq!(history["events"][0]["event"], "registered");
    assert_eq!(history["events"][0]["org"], org.id);
    assert_eq!(history["events"][0]["manufacturer"], "Acme");
    let status = call(
        &mut client,
        &importer,
        Method::GET,
        &format!("/v1/registrations/jobs/{job}"),
        None,
    )
    .await;
    assert_eq!(status.json()["accepted"], 10);
    // another organisation cannot see the job
    let other = call(
        &mut client,
        &cast.operator_a,
        Method::GET,
        &format!("/v1/registrations/jobs/{job}"),
        None,
    )
    .await;
    assert_problem(&other, 404, "RESOURCE_NOT_FOUND");

    let again = send(&mut client).await.json();
    assert_eq!(
        (
            again["accepted"].as_u64(),
            again["already_registered"].as_u64()
        ),
        (Some(0), Some(10))
    );
    assert_eq!(
        server.registry.store().len(imeidb::store::List::Positive),
        10
    );
    // a header without the required columns
    let reply = client
        .request_as(
            Some(&importer),
            Method::POST,
            "/v1/registrations",
            Bytes::from("imei\n1\n"),
            Some("text/csv"),
        )
        .await;
    let problem = assert_problem(&reply, 422, "INVALID_INPUT");
    assert!(
        problem["invalidParams"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("manufacturer, model, reference")
    );
    server.stop().await;
}

#[tokio::test]
async fn the_exchange_exports_in_full_then_by_changes_and_imports_foreign_lists() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(test_config(dir.path())).await;
    let cast = cast(&server.accounts);
    let mut client = Client::h2(server.addr).await;
    for n in 70..73 {
        let reply = call(
            &mut client,
            &cast.operator_a,
            Method::POST,
            "/v1/reports",
            Some(report(n)),
        )
        .await;
        assert_eq!(reply.status, 201);
    }
    let full = call(
        &mut client,
        &cast.regulator,
        Method::GET,
        "/v1/exchange/negative",
        None,
    )
    .await;
    assert_eq!(full.status, 200);
    assert!(full.content_type.starts_with("text/csv"));
    let text = String::from_utf8(full.body.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], "imei,kind,listed_at,source");
    assert!(
        !text.contains("79.555.123") && !text.contains("DEN-"),
        "nothing personal leaves"
    );

    // the foreign list: one new entry, one already reported here, one bad line
    let foreign = format!(
        "imei,kind\n{},lost\n{},stolen\n12,stolen\n",
        imei(80),
        imei(70)
    );
    let reply = client
        .request_as(
            Some(&cast.regulator),
            Method::POST,
            "/v1/exchange/foreign?source=GSMA",
            Bytes::from(foreign),
            Some("text/csv"),
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let report = reply.json();
    assert_eq!(
        (
            report["accepted"].as_u64(),
            report["already_registered"].as_u64(),
            report["rejected"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let check = call(
        &mut client,
        &cast.operator_b,
        Method::GET,
        &format!("/v1/imeis/{}/status", imei(80)),
        None,
    )
    .await;
    assert_eq!(check.json()["status"], "BLACKLISTED");

    // the changes since the full export: the foreign entry
    let reply = call(
        &mut client,
        &cast.regulator,
        Method::GET,
        "/v1/exchange/negative/changes?since=3",
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    let delta = String::from_utf8(reply.body.to_vec()).unwrap();
    let lines: Vec<&str> = delta.lines().collect();
    assert_eq!(lines.len(), 2, "{delta}");
    assert!(
        lines[1].starts_with(&format!("4,listed,{},lost,", imei(80)))
            && lines[1].ends_with(",GSMA"),
        "{delta}"
    );
    assert_problem(
        &call(
            &mut client,
            &cast.regulator,
            Method::GET,
            "/v1/exchange/negative/changes",
            None,
        )
        .await,
        400,
        "MANDATORY_QUERY_PARAM_MISSING",
    );
    server.stop().await;
}
