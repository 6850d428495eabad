use super::*;
use crate::accounts::Credential;
use crate::accounts::token::TokenId;
use crate::audit::Filter;
use crate::registry::history::Change;
use crate::registry::reports::ReportForm;
use crate::registry::tests::fixture;
use crate::roles::{OrgKind, Role};

fn operator(org: u64) -> Principal {
    Principal {
        user: 100 + org,
        org,
        org_kind: OrgKind::Operator,
        roles: vec![Role::Operator],
        credential: Credential::Token(TokenId(org)),
        issued_by: None,
    }
}

fn imei(n: u64) -> Imei {
    Imei::from_body(35_000_000_000_000 + n).unwrap()
}

fn activation(n: u64, owner: &str) -> ActivationForm {
    ActivationForm {
        imei: imei(n).to_string(),
        imsi: "732101234567890".into(),
        owner_id_type: "CC".into(),
        owner_id_number: owner.into(),
        proof: None,
    }
}

fn register(registry: &Registry, n: u64) {
    registry
        .list_positive(imei(n), &PositiveRecord::default())
        .unwrap();
}

fn refusal(result: Result<Activated, RegistryError>) -> RefusalCause {
    match result {
        Err(RegistryError::Refused { cause, .. }) => cause,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_registered_imei_is_activated_and_its_owner_bound_once() {
    let f = fixture();
    let r = &f.registry;
    register(r, 1);
    assert_eq!(
        r.activate(&operator(3), activation(1, "79.555.123"))
            .unwrap(),
        Activated::Activated {
            bound: true,
            added: false
        }
    );
    let record: PositiveRecord = r.record(imei(1)).unwrap().unwrap();
    assert_eq!(
        (record.owner_id.as_str(), record.owner_org),
        ("79555123", 3)
    );
    // the same owner again (another SIM, another operator): activated, nothing re-bound
    assert_eq!(
        r.activate(&operator(4), activation(1, "79555123")).unwrap(),
        Activated::Activated {
            bound: false,
            added: false
        }
    );
    // another owner: refused until a transfer
    assert_eq!(
        refusal(r.activate(&operator(4), activation(1, "80111222"))),
        RefusalCause::OwnerConflict
    );
    let record: PositiveRecord = r.record(imei(1)).unwrap().unwrap();
    assert_eq!(record.owner_id, "79555123");
}

#[test]
fn reported_and_unregistered_imeis_are_refused_with_the_reason() {
    let f = fixture();
    let r = &f.registry;
    register(r, 2);
    r.report(
        &operator(3),
        ReportForm {
            imei: imei(2).to_string(),
            kind: "lost".into(),
            reported_by: "user".into(),
            subscriber_id: "79555123".into(),
            reference: "DEN-2".into(),
            occurred_at: "2026-11-01".into(),
        },
    )
    .unwrap();
    assert_eq!(
        refusal(r.activate(&operator(3), activation(2, "79555123"))),
        RefusalCause::EquipmentReported
    );
    assert_eq!(
        refusal(r.activate(&operator(3), activation(5, "79555123"))),
        RefusalCause::EquipmentNotRegistered
    );
    assert!(!r.store().contains(List::Positive, imei(5)));
    let refused: Vec<Outcome> = audit::query(
        r.store(),
        &Filter {
            action: Some(Action::Activation),
            ..Filter::default()
        },
        0,
        10,
    )
    .unwrap()
    .0
    .iter()
    .map(|e| e.outcome)
    .collect();
    assert_eq!(refused, [Outcome::Refused, Outcome::Refused]);
}

#[test]
fn with_proof_an_unlisted_imei_is_added_and_activated_and_bad_proof_names_its_fields() {
    let f = fixture();
    let r = &f.registry;
    let mut form = activation(6, "79555123");
    form.proof = Some(Proof {
        kind: "invoice".into(),
        invoice_number: "FV-000123".into(),
        seller_nit: "800197268-5".into(),
        buyer_id: "80111222".into(),
        imei: imei(7).to_string(),
        ..Proof::default()
    });
    let Err(RegistryError::Invalid(errors)) = r.activate(&operator(3), form.clone()) else {
        panic!("bad proof must be refused field by field");
    };
    let fields: Vec<&str> = errors.0.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["proof.seller_nit", "proof.buyer_id", "proof.imei"]);
    form.proof = Some(Proof {
        kind: "invoice".into(),
        invoice_number: "FV-000123".into(),
        seller_nit: "800197268-4".into(),
        buyer_id: "79.555.123".into(),
        imei: imei(6).to_string(),
        ..Proof::default()
    });
    assert_eq!(
        r.activate(&operator(3), form).unwrap(),
        Activated::Activated {
            bound: true,
            added: true
        }
    );
    let record: PositiveRecord = r.record(imei(6)).unwrap().unwrap();
    assert!(record.reference.contains("FV-000123"));
    let mut abroad = activation(8, "79555123");
    abroad.proof = Some(Proof {
        kind: "personal_import".into(),
        receipt: "VOUCHER-991".into(),
        homologation: "CRC-2026-0042".into(),
        ..Proof::default()
    });
    assert!(r.activate(&operator(3), abroad).is_ok());
}

#[test]
fn two_concurrent_activations_cannot_both_bind() {
    let f = fixture();
    register(&f.registry, 9);
    let outcomes: Vec<Result<Activated, RegistryError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u64)
            .map(|i| {
                let registry = f.registry.clone();
                scope.spawn(move || {
                    registry.activate(&operator(3 + i), activation(9, &format!("7955512{i}")))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let bound = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Err(RegistryError::Refused {
                    cause: RefusalCause::OwnerConflict,
                    ..
                })
            )
        })
        .count();
    assert_eq!((bound, refused), (1, 7));
}

#[test]
fn a_transfer_needs_the_last_owners_authorisation() {
    let f = fixture();
    let r = &f.registry;
    register(r, 10);
    r.activate(&operator(3), activation(10, "79555123"))
        .unwrap();
    let transfer = |authorisation: &str, current: &str| TransferForm {
        current_owner_id_number: current.into(),
        new_owner_id_type: "CE".into(),
        new_owner_id_number: "E-4455667".into(),
        authorisation: authorisation.into(),
        letter_reference: if authorisation == "letter" {
            "CARTA-77".into()
        } else {
            String::new()
        },
        purchase_proof: if authorisation == "letter" {
            "FV-000123".into()
        } else {
            String::new()
        },
    };
    let Err(RegistryError::Invalid(errors)) =
        r.transfer(&operator(3), imei(10), transfer("", "79555123"))
    else {
        panic!("no authorisation, no transfer");
    };
    assert_eq!(errors.0[0].0, "authorisation");
    assert!(matches!(
        r.transfer(&operator(3), imei(10), transfer("letter", "11223344")),
        Err(RegistryError::Refused {
            cause: RefusalCause::OwnerMismatch,
            ..
        })
    ));
    // the owner presents itself only where the device is active in its name; elsewhere the
    // answer is the same whatever ID number is given, so it tells nothing of the owner's
    for guess in ["79555123", "11223344"] {
        assert!(matches!(
            r.transfer(&operator(4), imei(10), transfer("owner_present", guess)),
            Err(RegistryError::Forbidden)
        ));
    }
    r.transfer(&operator(4), imei(10), transfer("letter", "79555123"))
        .unwrap();
    let record: PositiveRecord = r.record(imei(10)).unwrap().unwrap();
    assert_eq!(
        (
            record.owner_id.as_str(),
            record.owner_id_type.as_str(),
            record.owner_org
        ),
        ("E4455667", "CE", 4)
    );
    // history: activation then transfer; the old operator sees the new owner masked
    let history = r.history(&operator(3), imei(10)).unwrap();
    assert!(
        matches!(&history[0].change, Change::Activated { owner_id, .. } if owner_id == "79555123")
    );
    assert!(
        matches!(&history[1].change, Change::OwnerChanged { owner_id, from_owner_id, .. } if owner_id == "******67" && from_owner_id == "******23")
    );
    // no owner ID in the audit trail
    let entries = audit::query(r.store(), &Filter::default(), 0, 100)
        .unwrap()
        .0;
    let text = serde_json::to_string(&entries).unwrap();
    assert!(
        !text.contains("79555123") && !text.contains("4455667"),
        "{text}"
    );
}
