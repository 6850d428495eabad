use proptest::prelude::*;

use super::*;
use crate::registry::tests::fixture;
use crate::registry::{Interface, Reason};

fn load(r: &Registry, list: List, csv: &str) -> Result<ImportReport, ImportError> {
    import_csv(r, list, csv.as_bytes(), &mut |_| {})
}

fn valid(n: u64) -> String {
    Imei::from_body(35_209_900_000_000 + n).unwrap().to_string()
}

#[test]
fn good_and_bad_lines_are_reported_exactly() {
    let f = fixture();
    let csv = format!(
        "imei,manufacturer,model\n\
         {a},Acme,X1\n\
         {b},\"Samsung Electronics Co., Ltd\",S\n\
         352099000000001,Acme,X1\n\
         35209900000,Acme,X1\n\
         {a},Acme,X1\n\
         {c},Acme\n\
         {d},Acme,\"bad\u{7}model\"\n",
        a = valid(10),
        b = valid(11),
        c = valid(12),
        d = valid(13),
    );
    let report = load(&f.registry, List::Positive, &csv).unwrap();
    assert_eq!(report.lines, 7);
    assert_eq!(report.accepted, 2);
    assert_eq!(report.rejected_total(), 5);
    let lines: Vec<(u64, &str)> = report
        .first_rejections
        .iter()
        .map(|r| (r.line, r.reason.kind()))
        .collect();
    assert_eq!(
        lines,
        [
            (4, "bad check digit"),
            (5, "bad IMEI format"),
            (6, "duplicate within the file"),
            (7, "wrong number of fields"),
            (8, "bad field"),
        ]
    );
    assert_eq!(
        report.first_rejections[2].reason,
        RejectReason::Duplicate { first: 2 }
    );
    let record: PositiveRecord = f
        .registry
        .record(Imei::parse(&valid(11)).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(record.manufacturer, "Samsung Electronics Co., Ltd");
}

#[test]
fn loading_the_same_file_twice_changes_nothing() {
    let f = fixture();
    let csv = format!("imei,model\n{},A\n{},B\n", valid(1), valid(2));
    let first = load(&f.registry, List::Positive, &csv).unwrap();
    assert_eq!(first.accepted, 2);
    let before: PositiveRecord = f
        .registry
        .record(Imei::parse(&valid(1)).unwrap())
        .unwrap()
        .unwrap();
    let changed = format!("imei,model\n{},CHANGED\n{},B\n", valid(1), valid(2));
    let second = load(&f.registry, List::Positive, &changed).unwrap();
    assert_eq!((second.accepted, second.already_listed), (0, 2));
    assert_eq!(f.registry.store().len(List::Positive), 2);
    let after: PositiveRecord = f
        .registry
        .record(Imei::parse(&valid(1)).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(before, after, "a bulk load never overwrites a record");
}

#[test]
fn stolen_imeis_cannot_be_loaded_into_the_positive_list() {
    let f = fixture();
    let neg = load(
        &f.registry,
        List::Negative,
        &format!(
            "imei,kind,reference\n{},stolen,CASE-1\n{},LOST,\n",
            valid(1),
            valid(2)
        ),
    )
    .unwrap();
    assert_eq!(neg.accepted, 2);
    let record: NegativeRecord = f
        .registry
        .record(Imei::parse(&valid(2)).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(record.kind, ReportKind::Lost);

    let pos = load(
        &f.registry,
        List::Positive,
        &format!("imei\n{}\n{}\n", valid(1), valid(3)),
    )
    .unwrap();
    assert_eq!(pos.accepted, 1);
    assert_eq!(pos.rejected.get("on the negative list"), Some(&1));
    let d = f
        .registry
        .check(Interface::Native, Imei::parse(&valid(3)).unwrap(), None);
    assert_eq!(d.reason, Reason::Registered);
}

#[test]
fn bad_kinds_are_rejected_by_field() {
    let f = fixture();
    let report = load(
        &f.registry,
        List::Negative,
        &format!("imei,kind\n{},robbed\n", valid(1)),
    )
    .unwrap();
    assert_eq!(
        report.first_rejections[0].reason.to_string(),
        "kind: must be \"stolen\" or \"lost\""
    );
}

#[test]
fn header_problems_fail_the_whole_file_and_write_nothing() {
    let f = fixture();
    for (csv, expected) in [
        ("", "empty"),
        ("manufacturer\nAcme\n", "no \"imei\" column"),
        ("imei,colour\n", "unknown column \"colour\""),
        (
            "imei,kind\n",
            "unknown column \"kind\" for the positive list",
        ),
        ("imei,IMEI\n", "appears twice"),
    ] {
        let err = load(&f.registry, List::Positive, csv).unwrap_err();
        assert!(err.to_string().contains(expected), "{csv:?}: {err}");
    }
    assert!(f.registry.store().is_empty());
}

#[test]
fn a_bom_and_spaces_around_values_are_tolerated() {
    let f = fixture();
    let report = load(
        &f.registry,
        List::Positive,
        &format!("\u{feff}IMEI , Model\n {} , X \n", valid(4)),
    )
    .unwrap();
    assert_eq!(report.accepted, 1, "{report:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Whatever the lines, each is accounted for exactly once, and only valid IMEIs land.
    #[test]
    fn every_line_is_accounted_for(lines in proptest::collection::vec(
        prop_oneof![
            (0u64..50).prop_map(valid),
            (0u64..50).prop_map(|n| valid(n)[..14].to_string()),
            "[0-9]{15}",
            ".{0,20}",
        ],
        0..80,
    )) {
        let f = fixture();
        let mut csv = String::from("imei\n");
        for l in &lines {
            csv.push_str(&l.replace(['\n', '\r', '"', ','], ""));
            csv.push('\n');
        }
        let Ok(report) = load(&f.registry, List::Positive, &csv) else {
            return Ok(()); // not CSV at all (e.g. invalid quoting): refused whole
        };
        prop_assert_eq!(
            report.accepted + report.already_listed + report.rejected_total(),
            report.lines
        );
        prop_assert_eq!(f.registry.store().len(List::Positive), report.accepted);
    }
}
