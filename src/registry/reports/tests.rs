use super::*;
use crate::accounts::Credential;
use crate::accounts::token::TokenId;
use crate::audit::{Actor, Filter};
use crate::registry::tests::fixture;
use crate::registry::{EquipmentStatus, Interface, RefusalCause};
use crate::roles::OrgKind;

fn principal(user: u64, org: u64, kind: OrgKind, role: Role) -> Principal {
    Principal {
        user,
        org,
        org_kind: kind,
        roles: vec![role],
        credential: Credential::Token(TokenId(user)),
        issued_by: None,
    }
}

fn operator(org: u64) -> Principal {
    principal(100 + org, org, OrgKind::Operator, Role::Operator)
}

fn imei(n: u64) -> Imei {
    Imei::from_body(35_000_000_000_000 + n).unwrap()
}

fn form(n: u64) -> ReportForm {
    ReportForm {
        imei: imei(n).to_string(),
        kind: "stolen".into(),
        reported_by: "user".into(),
        subscriber_id: "79.555.123".into(),
        reference: format!("DEN-2026-{n}"),
        occurred_at: "2026-11-20T18:30:00Z".into(),
    }
}

fn audit_actions(registry: &Registry) -> Vec<(Action, Outcome)> {
    audit::query(registry.store(), &Filter::default(), 0, 1000)
        .unwrap()
        .0
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect()
}

#[test]
fn a_report_blocks_the_next_check_and_is_idempotent_per_reference() {
    let f = fixture();
    let r = &f.registry;
    let op = operator(3);
    assert_eq!(
        r.check(Interface::Native, imei(1), None).answer,
        crate::registry::Answer::Status(EquipmentStatus::Greylisted)
    );
    let Reported::Listed(listed, record) = r.report(&op, form(1)).unwrap() else {
        panic!("a new report lists the IMEI");
    };
    assert_eq!(listed, imei(1));
    assert_eq!((record.org, record.user), (3, 103));
    assert_eq!(record.reporter_kind, ReporterKind::User);
    assert_eq!(
        record.occurred_at,
        timefmt::parse("2026-11-20T18:30:00Z").unwrap()
    );
    assert_eq!(
        r.check(Interface::Native, imei(1), None).answer,
        crate::registry::Answer::Status(EquipmentStatus::Blacklisted)
    );
    // the same report again changes nothing
    assert!(matches!(
        r.report(&op, form(1)).unwrap(),
        Reported::AlreadyReported(..)
    ));
    // another report of a reported IMEI is refused, and does not reveal the other's reference
    let Err(RegistryError::Conflict(message)) = r.report(&operator(4), form(1)) else {
        panic!("a second report must conflict");
    };
    assert!(
        message.contains("held by another organisation"),
        "{message}"
    );
    assert!(!message.contains("DEN-2026-1"), "{message}");
    assert_eq!(r.store().len(List::Negative), 1);
    assert_eq!(
        audit_actions(r),
        [(Action::ReportCreate, Outcome::Done)],
        "one change, one entry"
    );
}

#[test]
fn bad_reports_name_every_field_and_write_nothing() {
    let f = fixture();
    let good = imei(9).to_string();
    let wrong_digit = (good.as_bytes()[14] - b'0' + 1) % 10;
    let bad = ReportForm {
        imei: format!("{}{wrong_digit}", &good[..14]),
        kind: "robbed".into(),
        reported_by: "neighbour".into(),
        subscriber_id: String::new(),
        reference: String::new(),
        occurred_at: "2999-01-01".into(),
    };
    let Err(RegistryError::Invalid(errors)) = f.registry.report(&operator(3), bad) else {
        panic!("expected field errors");
    };
    let fields: Vec<&str> = errors.0.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        ["imei", "kind", "reported_by", "reference", "occurred_at"]
    );
    let user_without_id = ReportForm {
        subscriber_id: String::new(),
        ..form(2)
    };
    let Err(RegistryError::Invalid(errors)) = f.registry.report(&operator(3), user_without_id)
    else {
        panic!("a user's report needs the user's ID");
    };
    assert_eq!(errors.0[0].0, "subscriber_id");
    assert_eq!(f.registry.store().len(List::Negative), 0);
    assert!(audit_actions(&f.registry).is_empty());
}

#[test]
fn authorities_report_as_authorities_and_others_may_not_report() {
    let f = fixture();
    let police = principal(50, 5, OrgKind::Authority, Role::Authority);
    let by_police = ReportForm {
        reported_by: String::new(),
        subscriber_id: String::new(),
        ..form(3)
    };
    let Reported::Listed(_, record) = f.registry.report(&police, by_police).unwrap() else {
        panic!();
    };
    assert_eq!(record.reporter_kind, ReporterKind::Authority);
    let importer = principal(60, 6, OrgKind::Importer, Role::Importer);
    assert!(matches!(
        f.registry.report(&importer, form(4)),
        Err(RegistryError::Forbidden)
    ));
    assert_eq!(
        audit_actions(&f.registry),
        [
            (Action::ReportCreate, Outcome::Done),
            (Action::ReportCreate, Outcome::Denied)
        ]
    );
}

#[test]
fn only_the_reporting_operator_recovers_and_the_imei_returns_to_where_it_was() {
    let f = fixture();
    let r = &f.registry;
    // imei(5) was never registered; imei(9) was, before its report
    let registered = PositiveRecord {
        registered_at: 1_700_000_000,
        registrant_org: 6,
        ..PositiveRecord::default()
    };
    r.list_positive(imei(9), &registered).unwrap();
    r.report(&operator(3), form(5)).unwrap();
    r.report(&operator(3), form(9)).unwrap();
    assert!(matches!(
        r.recover(&operator(4), imei(5), "owner letter 12"),
        Err(RegistryError::Forbidden)
    ));
    assert!(
        r.store().contains(List::Negative, imei(5)),
        "still reported"
    );
    assert!(matches!(
        r.recover(&operator(3), imei(5), " "),
        Err(RegistryError::Invalid(_))
    ));
    // a device that never entered the positive list leaves the negative list only: a report
    // and its recovery are no way to register a device (issue #18)
    r.recover(&operator(3), imei(5), "owner letter 12").unwrap();
    assert!(!r.store().contains(List::Negative, imei(5)));
    assert!(!r.store().contains(List::Positive, imei(5)));
    assert_eq!(
        r.check(Interface::Native, imei(5), None).reason,
        crate::registry::Reason::NotListed
    );
    let activation = crate::registry::owners::ActivationForm {
        imei: imei(5).to_string(),
        imsi: "732101234567890".into(),
        owner_id_type: "CC".into(),
        owner_id_number: "79555123".into(),
        proof: None,
    };
    assert!(
        matches!(
            r.activate(&operator(3), activation),
            Err(RegistryError::Refused {
                cause: RefusalCause::EquipmentNotRegistered,
                ..
            })
        ),
        "activating it still needs proof of legal acquisition"
    );
    // a registered one returns to the positive list
    r.recover(&operator(3), imei(9), "owner letter 13").unwrap();
    assert!(r.store().contains(List::Positive, imei(9)));
    assert_eq!(
        r.check(Interface::Native, imei(9), None).answer,
        crate::registry::Answer::Status(EquipmentStatus::Whitelisted)
    );
    let kept: PositiveRecord = r.record(imei(9)).unwrap().unwrap();
    assert_eq!(kept, registered, "its registration is untouched");
    assert!(matches!(
        r.recover(&operator(3), imei(5), "again"),
        Err(RegistryError::NotFound("report"))
    ));
    let history = r.history(&operator(3), imei(9)).unwrap();
    assert!(
        matches!(&history.last().unwrap().change, Change::Recovered { reference, positive_list: Some(true) } if reference == "owner letter 13"),
        "{history:?}"
    );
    assert_eq!(
        audit_actions(r),
        [
            (Action::ReportCreate, Outcome::Done),
            (Action::ReportCreate, Outcome::Done),
            (Action::ReportRecover, Outcome::Denied),
            (Action::ReportRecover, Outcome::Done),
            (Action::Activation, Outcome::Refused),
            (Action::ReportRecover, Outcome::Done)
        ]
    );
    // the history keeps both, and masks the subscriber for another operator
    let own = r.history(&operator(3), imei(5)).unwrap();
    assert_eq!(own.len(), 2);
    assert!(
        matches!(&own[0].change, Change::Reported { subscriber_id, .. } if subscriber_id == "79.555.123")
    );
    assert!(
        matches!(&own[1].change, Change::Recovered { reference, positive_list: Some(false) } if reference == "owner letter 12")
    );
    let other = r.history(&operator(4), imei(5)).unwrap();
    assert!(
        matches!(&other[0].change, Change::Reported { subscriber_id, .. } if subscriber_id == "********23")
    );
    let regulator = principal(1, 1, OrgKind::Regulator, Role::RegulatorAdmin);
    assert!(
        matches!(&r.history(&regulator, imei(5)).unwrap()[0].change, Change::Reported { subscriber_id, .. } if subscriber_id == "79.555.123")
    );
    let importer = principal(60, 6, OrgKind::Importer, Role::Importer);
    assert!(matches!(
        r.history(&importer, imei(5)),
        Err(RegistryError::Forbidden)
    ));
    // an auditor outside the regulator reads its own organisation only: no history, which
    // spans organisations (and would be an unaudited consultation for a police auditor)
    let police_auditor = principal(51, 5, OrgKind::Authority, Role::Auditor);
    assert!(matches!(
        r.history(&police_auditor, imei(5)),
        Err(RegistryError::Forbidden)
    ));
    let regulator_auditor = principal(2, 1, OrgKind::Regulator, Role::Auditor);
    assert_eq!(r.history(&regulator_auditor, imei(5)).unwrap().len(), 2);
}

#[test]
fn every_consultation_is_audited_found_or_not() {
    let f = fixture();
    let r = &f.registry;
    r.report(&operator(3), form(6)).unwrap();
    let police = principal(50, 5, OrgKind::Authority, Role::Authority);
    let found = r.consult_negative(&police, imei(6)).unwrap().unwrap();
    assert_eq!(found.reference, "DEN-2026-6");
    assert!(r.consult_negative(&police, imei(7)).unwrap().is_none());
    assert!(matches!(
        r.consult_negative(&operator(3), imei(6)),
        Err(RegistryError::Forbidden)
    ));
    let entries = audit::query(
        r.store(),
        &Filter {
            action: Some(Action::NegativeConsult),
            ..Filter::default()
        },
        0,
        10,
    )
    .unwrap()
    .0;
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].target, format!("imei/{}", imei(6)));
    // the operator's refused attempt is on the record too
    assert_eq!(entries[2].outcome, Outcome::Denied);
    assert!(matches!(entries[2].actor, Actor::User { user: 103, .. }));
    // reading a history is a lookup too
    r.history(&police, imei(6)).unwrap();
    let entries = audit::query(
        r.store(),
        &Filter {
            action: Some(Action::NegativeConsult),
            ..Filter::default()
        },
        0,
        10,
    )
    .unwrap()
    .0;
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[3].detail.as_deref(), Some("history"));
    let entries = &entries[..2];
    assert_eq!(entries[1].detail.as_deref(), Some("not listed"));
    // what an authority sees: the report, the subscriber's ID masked
    let json = negative_json(imei(6), &found, &police);
    assert_eq!(json["subscriber_id"], "********23");
    assert_eq!(json["reference"], "DEN-2026-6");
}

#[test]
fn concurrent_reports_of_one_imei_list_it_once() {
    let f = fixture();
    let registry = f.registry.clone();
    let outcomes: Vec<Result<Reported, RegistryError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u64)
            .map(|org| {
                let registry = registry.clone();
                scope.spawn(move || registry.report(&operator(10 + org), form(8)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let listed = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Reported::Listed(..))))
        .count();
    let conflicts = outcomes
        .iter()
        .filter(|o| matches!(o, Err(RegistryError::Conflict(_))))
        .count();
    assert_eq!((listed, conflicts), (1, 7));
    assert_eq!(f.registry.history(&operator(10), imei(8)).unwrap().len(), 1);
}
