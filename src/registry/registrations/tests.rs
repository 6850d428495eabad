use super::*;
use crate::accounts::Credential;
use crate::accounts::token::TokenId;
use crate::registry::tests::fixture;
use crate::roles::{OrgKind, Role};
use crate::store::{Mutation, NegativeRecord, Puts};

fn importer(org: u64) -> Principal {
    Principal {
        user: 10 + org,
        org,
        org_kind: OrgKind::Importer,
        roles: vec![Role::Importer],
        credential: Credential::Token(TokenId(org)),
        issued_by: None,
    }
}

fn imei(n: u64) -> Imei {
    Imei::from_body(35_000_000_000_000 + n).unwrap()
}

fn upload(
    registry: &Registry,
    who: &Principal,
    format: Format,
    body: &str,
    id: u64,
) -> RegistrationReport {
    registry
        .register_upload(who, format, body.as_bytes(), id, &Progress::default())
        .unwrap()
}

#[test]
fn an_upload_reports_every_line_and_resending_it_changes_nothing() {
    let f = fixture();
    let r = &f.registry;
    r.list_negative(imei(9), &NegativeRecord::default())
        .unwrap();
    let good = imei(1).to_string();
    let bad_digit = format!("{}{}", &good[..14], (good.as_bytes()[14] - b'0' + 1) % 10);
    let body = format!(
        "imei,manufacturer,model,reference\n{},Acme,X1,DI-1\n{bad_digit},Acme,X1,DI-1\n12345,Acme,X1,DI-1\n{},Acme,X1,DI-1\n{},Acme,,DI-1\n{},Acme,X1,DI-1\n{},\"Acme, Inc.\",X2,DI-1\n",
        imei(1),
        imei(1),
        imei(2),
        imei(9),
        imei(3),
    );
    let report = upload(r, &importer(3), Format::Csv, &body, 1);
    assert_eq!(report.lines, 7);
    assert_eq!(
        (
            report.accepted,
            report.already_registered,
            report.rejected_total()
        ),
        (2, 0, 5)
    );
    let lines: Vec<(u64, &str)> = report
        .first_rejections
        .iter()
        .map(|(l, r)| (*l, r.as_str()))
        .collect();
    assert_eq!(lines[0].0, 3);
    assert!(lines[0].1.contains("check digit"), "{lines:?}");
    assert_eq!(lines[1].0, 4);
    assert_eq!(lines[2], (5, "imei: duplicate of line 2"));
    assert_eq!(lines[3], (6, "model: is required"));
    assert_eq!(
        lines[4],
        (7, "imei: on the negative list (reported stolen or lost)")
    );
    let record: PositiveRecord = r.record(imei(3)).unwrap().unwrap();
    assert_eq!(
        (record.manufacturer.as_str(), record.registrant_org),
        ("Acme, Inc.", 3)
    );

    // the same file again: nothing new, nothing changed
    let again = upload(r, &importer(3), Format::Csv, &body, 2);
    assert_eq!((again.accepted, again.already_registered), (0, 2));
    assert_eq!(r.store().len(List::Positive), 2);
    // another registrant cannot take them
    let theirs = upload(
        r,
        &importer(4),
        Format::Ndjson,
        &format!(
            "{{\"imei\":\"{}\",\"manufacturer\":\"B\",\"model\":\"M\",\"reference\":\"L-9\"}}\n",
            imei(1)
        ),
        3,
    );
    assert_eq!(
        theirs.rejected.get("registered by another registrant"),
        Some(&1)
    );
}

#[test]
fn duplicates_across_batches_name_the_first_line_and_batches_are_audited() {
    let f = fixture();
    let r = &f.registry;
    let mut body = String::from("imei,manufacturer,model,reference\n");
    for n in 0..(BATCH_LINES as u64 + 10) {
        body.push_str(&format!("{},Acme,X1,DI-1\n", imei(100 + n)));
    }
    body.push_str(&format!("{},Acme,X1,DI-1\n", imei(100)));
    let report = upload(r, &importer(3), Format::Csv, &body, 7);
    assert_eq!(report.accepted, BATCH_LINES as u64 + 10);
    assert_eq!(
        report.first_rejections.values().next().map(String::as_str),
        Some("imei: duplicate of line 2 of this upload")
    );
    let entries = audit::query(
        r.store(),
        &audit::Filter {
            action: Some(Action::Registration),
            ..audit::Filter::default()
        },
        0,
        10,
    )
    .unwrap()
    .0;
    assert_eq!(entries.len(), 2, "one entry per batch");
}

#[test]
fn bad_headers_ndjson_errors_and_roles_are_refused_clearly() {
    let f = fixture();
    let r = &f.registry;
    let err = r
        .register_upload(
            &importer(3),
            Format::Csv,
            "imei,model\n".as_bytes(),
            1,
            &Progress::default(),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("missing: manufacturer, reference"),
        "{err}"
    );
    let report = upload(
        r,
        &importer(3),
        Format::Ndjson,
        "\n{\"imei\": 5}\nnot json\n\n",
        2,
    );
    assert_eq!(report.rejected.get("bad JSON"), Some(&2));
    // found by fuzzing: blank lines are not data lines, so they are not counted
    assert_eq!(report.lines, 2);
    assert_eq!(
        report.first_rejections.keys().copied().collect::<Vec<_>>(),
        [2, 3]
    );
    let authority = Principal {
        roles: vec![Role::Authority],
        ..importer(5)
    };
    assert!(matches!(
        r.register_upload(
            &authority,
            Format::Csv,
            "".as_bytes(),
            3,
            &Progress::default()
        ),
        Err(UploadError::Registry(RegistryError::Forbidden))
    ));
}

#[test]
fn duplicates_in_a_batch_name_their_first_line_whatever_the_imei_order() {
    let f = fixture();
    let r = &f.registry;
    let body = format!(
        "imei,manufacturer,model,reference\n{five},A,M,R\n{two},A,M,R\n{five},A,M,R\n{two},A,M,R\n{two},A,M,R\n",
        five = imei(5),
        two = imei(2),
    );
    let report = upload(r, &importer(3), Format::Csv, &body, 1);
    assert_eq!((report.accepted, report.rejected_total()), (2, 3));
    let lines: Vec<(u64, &str)> = report
        .first_rejections
        .iter()
        .map(|(l, r)| (*l, r.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (4, "imei: duplicate of line 2"),
            (5, "imei: duplicate of line 3"),
            (6, "imei: duplicate of line 3"),
        ]
    );
    let record: PositiveRecord = r.record(imei(5)).unwrap().unwrap();
    assert_eq!(record.upload_line, 2, "the first line's record is kept");
}

#[test]
fn fields_are_trimmed_and_limited_to_100_printable_characters() {
    let f = fixture();
    let r = &f.registry;
    let long_ascii = "x".repeat(101);
    let long_accented = "é".repeat(100); // 200 bytes, 100 characters: accepted
    let body = format!(
        " IMEI , Manufacturer ,model,reference\n {} ,  Acme  ,X1,DI-1\n{},{long_ascii},X1,DI-1\n{},{long_accented},X1,DI-1\n{},Ac\tme,X1,DI-1\n{},Ac\u{85}me,X1,DI-1\n",
        imei(1),
        imei(2),
        imei(3),
        imei(4),
        imei(5),
    );
    let report = upload(r, &importer(3), Format::Csv, &body, 1);
    assert_eq!(
        (report.accepted, report.rejected_total()),
        (2, 3),
        "{report:?}"
    );
    let record: PositiveRecord = r.record(imei(1)).unwrap().unwrap();
    assert_eq!(
        (record.manufacturer.as_str(), record.model.as_str()),
        ("Acme", "X1")
    );
    let rejected: Vec<u64> = report.first_rejections.keys().copied().collect();
    assert_eq!(rejected, [3, 5, 6]);
    assert!(
        (report.first_rejections.values())
            .all(|reason| reason == "manufacturer: at most 100 printable characters"),
        "{report:?}"
    );
}

#[test]
fn a_batch_that_cannot_be_written_stops_the_upload_and_earlier_batches_stay() {
    let f = fixture();
    let r = &f.registry;
    // a record that does not decode: checking the line against it fails in the second batch
    let corrupt = imei(100 + BATCH_LINES as u64 + 5);
    r.store()
        .transact(|_| {
            Ok::<_, crate::store::StoreError>((
                Mutation {
                    puts: Puts::one(List::Positive, corrupt, b"\xffnot a record"),
                    ..Mutation::default()
                },
                (),
            ))
        })
        .unwrap();
    let mut body = String::from("imei,manufacturer,model,reference\n");
    for n in 0..(3 * BATCH_LINES as u64) {
        body.push_str(&format!("{},Acme,X1,DI-1\n", imei(100 + n)));
    }
    let progress = Progress::default();
    let failed = r.register_upload(&importer(3), Format::Csv, body.as_bytes(), 1, &progress);
    assert!(
        matches!(failed, Err(UploadError::Registry(RegistryError::Store(_)))),
        "{failed:?}"
    );
    assert_eq!(
        r.store().len(List::Positive),
        BATCH_LINES as u64 + 1,
        "the first batch stays, the failed one is not half applied"
    );
    assert_eq!(
        progress.accepted.load(Ordering::Relaxed),
        BATCH_LINES as u64
    );
}

proptest::proptest! {
    /// The fast path of `trimmed` never changes what `str::trim` gives.
    #[test]
    fn trimmed_is_trim(s in "\\PC{0,6}|[ \t\u{b}\u{a0}\u{3000}a-z~!é]{0,6}") {
        proptest::prop_assert_eq!(trimmed(&s), s.trim());
    }
}
