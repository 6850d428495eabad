use super::*;
use crate::accounts::Credential;
use crate::accounts::token::TokenId;
use crate::registry::reports::ReportForm;
use crate::registry::tests::fixture;
use crate::roles::{OrgKind, Role};

fn who(org: u64, role: Role) -> Principal {
    Principal {
        user: 10 + org,
        org,
        org_kind: OrgKind::Regulator,
        roles: vec![role],
        credential: Credential::Token(TokenId(1)),
        issued_by: None,
    }
}

fn imei(n: u64) -> Imei {
    Imei::from_body(35_000_000_000_000 + n).unwrap()
}

fn report(registry: &Registry, n: u64) {
    let operator = Principal {
        org_kind: OrgKind::Operator,
        ..who(3, Role::Operator)
    };
    registry
        .report(
            &operator,
            ReportForm {
                imei: imei(n).to_string(),
                kind: "stolen".into(),
                reported_by: "user".into(),
                subscriber_id: "79555123".into(),
                reference: format!("DEN-{n}"),
                occurred_at: "2026-11-01".into(),
            },
        )
        .unwrap();
}

fn collect(f: impl FnOnce(&mut dyn FnMut(String) -> bool)) -> String {
    let mut text = String::new();
    f(&mut |line| {
        text.push_str(&line);
        true
    });
    text
}

#[test]
fn export_then_changes_since_its_sequence_with_nothing_personal() {
    let f = fixture();
    let r = &f.registry;
    let regulator = who(1, Role::RegulatorAdmin);
    report(r, 1);
    report(r, 2);
    let mut seq = 0;
    let full = collect(|out| seq = r.export_negative(&regulator, |_| {}, out).unwrap());
    let lines: Vec<&str> = full.lines().collect();
    assert_eq!(lines[0], "imei,kind,listed_at,source");
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with(&format!("{},stolen,", imei(1))) && lines[1].ends_with(",CO"));
    assert!(
        !full.contains("79555123") && !full.contains("DEN-"),
        "nothing personal: {full}"
    );
    assert_eq!(seq, 2);

    report(r, 3);
    let operator = Principal {
        org_kind: OrgKind::Operator,
        ..who(3, Role::Operator)
    };
    r.recover(&operator, imei(1), "owner letter").unwrap();
    let delta = collect(|out| r.export_negative_changes(&regulator, seq, out).unwrap());
    let lines: Vec<&str> = delta.lines().collect();
    assert_eq!(lines.len(), 3, "{delta}");
    assert!(lines[1].starts_with(&format!("3,listed,{},stolen,", imei(3))));
    assert_eq!(lines[2], format!("4,removed,{},,,", imei(1)));
    assert!(matches!(
        r.export_negative(
            &Principal {
                org_kind: OrgKind::Operator,
                ..who(3, Role::Operator)
            },
            |_| {},
            |_| true
        ),
        Err(RegistryError::Forbidden)
    ));
}

#[test]
fn foreign_lists_are_kept_apart_and_leave_domestic_reports_alone() {
    let f = fixture();
    let r = &f.registry;
    let regulator = who(1, Role::RegulatorAdmin);
    report(r, 1);
    let body = format!(
        "imei,kind,reference\n{},stolen,G-1\n{},lost,G-2\n{},stolen,G-3\n123,stolen,G-4\n{},robbed,G-5\n",
        imei(1),
        imei(5),
        imei(5),
        imei(6)
    );
    let report = r
        .import_foreign(&regulator, "GSMA", body.as_bytes(), &Progress::default())
        .unwrap();
    assert_eq!(
        (
            report.lines,
            report.accepted,
            report.already_registered,
            report.rejected_total()
        ),
        (5, 1, 1, 3)
    );
    let domestic: NegativeRecord = r.record(imei(1)).unwrap().unwrap();
    assert_eq!(
        (domestic.source.as_str(), domestic.reference.as_str()),
        ("", "DEN-1")
    );
    let foreign: NegativeRecord = r.record(imei(5)).unwrap().unwrap();
    assert_eq!(
        (foreign.source.as_str(), foreign.kind),
        ("GSMA", ReportKind::Lost)
    );
    let full = collect(|out| {
        r.export_negative(&regulator, |_| {}, out).unwrap();
    });
    assert!(full.contains(&format!("{},lost,", imei(5))) && full.contains(",GSMA"));
    assert!(matches!(
        r.import_foreign(&regulator, "CO", "imei\n".as_bytes(), &Progress::default()),
        Err(UploadError::Registry(RegistryError::Invalid(_)))
    ));
}

#[test]
fn single_list_writes_are_in_the_change_log_too() {
    let f = fixture();
    let r = &f.registry;
    let regulator = who(1, Role::RegulatorAdmin);
    r.list_negative(imei(20), &NegativeRecord::default())
        .unwrap();
    r.unlist_negative(imei(20)).unwrap();
    let delta = collect(|out| r.export_negative_changes(&regulator, 0, out).unwrap());
    let lines: Vec<&str> = delta.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{delta}");
    assert!(lines[0].starts_with(&format!("1,listed,{}", imei(20))));
    assert_eq!(lines[1], format!("2,removed,{},,,", imei(20)));
}

#[test]
fn a_bulk_load_makes_deltas_across_it_ask_for_the_full_list() {
    let f = fixture();
    let r = &f.registry;
    let regulator = who(1, Role::RegulatorAdmin);
    report(r, 1);
    let value = NegativeRecord::default().encode();
    r.store()
        .ingest(List::Negative, 1, |_| (imei(9), value.as_slice()))
        .unwrap();
    let refused = r.export_negative_changes(&regulator, 0, |_| true);
    assert!(matches!(
        refused,
        Err(RegistryError::Refused {
            cause: RefusalCause::FullExportRequired,
            ..
        })
    ));
    let mut seq = 0;
    collect(|out| seq = r.export_negative(&regulator, |_| {}, out).unwrap());
    report(r, 2);
    let delta = collect(|out| r.export_negative_changes(&regulator, seq, out).unwrap());
    assert_eq!(delta.lines().count(), 2, "{delta}");
}
