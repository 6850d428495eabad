use proptest::prelude::*;

use super::*;

/// The example the README's bootstrap step uses: it must stay valid.
pub(crate) fn example_form() -> OrgForm {
    serde_json::from_str(include_str!("../../../config/regulator.example.json")).unwrap()
}

fn fields(errors: &FieldErrors) -> Vec<&str> {
    errors.0.iter().map(|(field, _)| field.as_str()).collect()
}

#[test]
fn the_example_form_is_valid() {
    assert_eq!(example_form().validate(), FieldErrors::default());
}

#[test]
fn an_empty_form_names_every_required_field() {
    let form: OrgForm = serde_json::from_str("{}").unwrap();
    let errors = form.validate();
    for field in [
        "kind",
        "nit",
        "legal_name",
        "address",
        "email",
        "department",
        "municipality",
        "phones",
        "legal_representative.id_number",
        "legal_representative.full_name",
        "legal_representative.email",
        "accountant.id_number",
        "accountant.full_name",
        "accountant.email",
        "accountant.professional_card",
        "administrator.id_number",
        "administrator.full_name",
        "administrator.email",
    ] {
        assert!(
            fields(&errors).contains(&field),
            "{field} not in {errors:?}"
        );
    }
    assert!(!fields(&errors).contains(&"email_2"), "email 2 is optional");
}

#[test]
fn contacts_differ_from_the_representative_and_the_accountant_and_repeat_no_email() {
    let mut form = example_form();
    let rep = form.data.legal_representative.clone();
    form.data.contacts = vec![
        Contact {
            full_name: format!("  {} ", rep.full_name.to_uppercase()),
            email: "otro@mintic.gov.co".into(),
        },
        Contact {
            full_name: "Sofía Herrera Vargas".into(),
            email: "CONTADOR@mintic.gov.co".into(),
        },
        Contact {
            full_name: "Julián David Ortiz León".into(),
            email: "otro@mintic.gov.co".into(),
        },
        Contact {
            full_name: "Paula Andrea Gil Mejía".into(),
            email: "cuarta@mintic.gov.co".into(),
        },
    ];
    let errors = form.validate();
    assert_eq!(
        fields(&errors),
        [
            "contacts",
            "contacts[0].full_name",
            "contacts[1].email",
            "contacts[2].email"
        ],
        "{errors:?}"
    );
}

#[test]
fn places_phones_and_emails_are_checked() {
    let mut form = example_form();
    form.data.municipality = "05001".into();
    form.data.phones = vec!["123".into(), "+57 (601) 344-3460".into(), "call me".into()];
    form.data.email = "not-an-address".into();
    form.data.email_2 = "a@b".into();
    let errors = form.validate();
    assert_eq!(
        fields(&errors),
        ["email", "email_2", "municipality", "phones[0]", "phones[2]"],
        "{errors:?}"
    );
    assert!(errors.0[2].1.contains("05001 is not in department 11"));
}

#[test]
fn the_request_date_is_a_calendar_date_not_after_tomorrow() {
    let now = crate::timefmt::parse("2026-12-03T12:00:00Z").unwrap();
    for (text, wanted) in [
        ("2026-11-23", None),
        ("2024-02-29", None),
        ("2026-12-04", None),
        ("2026-12-05", Some("2026-12-05 is in the future")),
        (
            "2025-02-29",
            Some("must be a date YYYY-MM-DD, e.g. 2026-11-23"),
        ),
        (
            "1795000000",
            Some("must be a date YYYY-MM-DD, e.g. 2026-11-23"),
        ),
        (
            "23/11/2026",
            Some("must be a date YYYY-MM-DD, e.g. 2026-11-23"),
        ),
        (
            "2026-11-23T00:00:00Z",
            Some("must be a date YYYY-MM-DD, e.g. 2026-11-23"),
        ),
        (
            "2026-1-230",
            Some("must be a date YYYY-MM-DD, e.g. 2026-11-23"),
        ),
        (
            "2026-+1-+5",
            Some("must be a date YYYY-MM-DD, e.g. 2026-11-23"),
        ),
        (
            "2026-11-é",
            Some("must be a date YYYY-MM-DD, e.g. 2026-11-23"),
        ),
    ] {
        let mut errors = FieldErrors::default();
        request_date(text, now, &mut errors);
        let got: Vec<(&str, &str)> = errors
            .0
            .iter()
            .map(|(f, m)| (f.as_str(), m.as_str()))
            .collect();
        match wanted {
            None => assert_eq!(got, [], "{text}"),
            Some(message) => assert_eq!(got, [("request_date", message)], "{text}"),
        }
    }
    // optional: the example has none; a wrong one is named by its field
    let mut form = example_form();
    assert!(form.data.request_date.is_empty());
    form.data.request_date = "ayer".into();
    assert_eq!(fields(&form.validate()), ["request_date"]);
}

#[test]
fn placeholder_people_are_refused() {
    let mut form = example_form();
    form.administrator.full_name = "Usuario Prueba".into();
    form.administrator.id_number = "123456789".into();
    form.data.legal_representative.id_number = "11.111.111".into();
    form.data.accountant.full_name = "Carlos".into();
    let errors = form.validate();
    assert_eq!(
        fields(&errors),
        [
            "legal_representative.id_number",
            "accountant.full_name",
            "administrator.id_number",
            "administrator.full_name"
        ],
        "{errors:?}"
    );
}

#[test]
fn id_numbers_that_differ_only_in_punctuation_or_leading_zeros_are_one() {
    let a = normalise_id_number("1.020.304.050");
    assert_eq!(a, normalise_id_number("1020304050"));
    assert_eq!(a, normalise_id_number("01020304050"));
    assert_eq!(a, normalise_id_number(" 1020 304-050 "));
    assert_ne!(a, normalise_id_number("1020304051"));
    assert_eq!(normalise_id_number("pa-x1234567"), "PAX1234567");
}

#[test]
fn roles_must_fit_the_organisation() {
    let user = UserForm {
        id_number: "1020304050".into(),
        full_name: "Ana María López".into(),
        email: "ana@operador.co".into(),
        roles: vec![Role::Operator, Role::RegulatorAdmin, Role::Operator],
    };
    let errors = user.validate(OrgKind::Operator);
    assert_eq!(fields(&errors), ["roles[1]", "roles[2]"], "{errors:?}");
    assert!(
        errors.0[0]
            .1
            .contains("regulator_admin is not a role of operator")
    );
    let none = UserForm {
        roles: vec![],
        ..user
    };
    assert_eq!(fields(&none.validate(OrgKind::Operator)), ["roles"]);
}

proptest! {
    /// Validation never panics, whatever the text.
    #[test]
    fn validation_never_panics(text in "\\PC{0,40}", phones in proptest::collection::vec("\\PC{0,20}", 0..3)) {
        let mut form = example_form();
        form.data.nit = text.clone();
        form.data.email = text.clone();
        form.data.municipality = text.clone();
        form.data.request_date = text.clone();
        form.data.phones = phones;
        form.administrator.full_name = text.clone();
        form.administrator.id_number = text.clone();
        let _ = form.validate();
        let _ = check_nit(&text);
        let _ = normalise_id_number(&text);
    }
}
