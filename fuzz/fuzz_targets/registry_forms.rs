//! What operators and authorities send the registry as JSON: reports, activations, transfers,
//! sellers. Never panic; an accepted report lists the IMEI; an activation leaves the IMEI on
//! the positive list with an owner; nothing refused leaves a trace in the lists.
#![no_main]

use std::sync::{Arc, OnceLock};

use imeidb::accounts::{Credential, Principal};
use imeidb::roles::{OrgKind, Role};
use imeidb::accounts::token::TokenId;
use imeidb::imei::Imei;
use imeidb::metrics::Metrics;
use imeidb::registry::owners::{ActivationForm, TransferForm};
use imeidb::registry::reports::{ReportForm, Reported};
use imeidb::registry::sellers::SellerForm;
use imeidb::registry::{CheckPolicy, Registry};
use imeidb::store::{List, PositiveRecord, Store, StoreOptions};
use libfuzzer_sys::fuzz_target;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<(Registry, tempfile::TempDir)> = OnceLock::new();
    &REGISTRY
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let options = StoreOptions {
                sync_writes: false,
                block_cache_bytes: 8 << 20,
                ..StoreOptions::default()
            };
            let metrics = Metrics::new();
    let store = Store::open(dir.path(), &options, &metrics).unwrap();
            (Registry::new(Arc::new(store), CheckPolicy::default(), &metrics), dir)
        })
        .0
}

fuzz_target!(|data: &[u8]| {
    let Some((&flag, json)) = data.split_first() else {
        return;
    };
    let who = Principal {
        user: 7,
        org: u64::from(flag % 3) + 1,
        org_kind: OrgKind::Operator,
        roles: vec![if flag & 4 == 0 {
            Role::Operator
        } else {
            Role::Authority
        }],
        credential: Credential::Token(TokenId(1)),
        issued_by: None,
    };
    let registry = registry();
    let store = registry.store();
    let sizes = (store.len(List::Positive), store.len(List::Negative));
    match flag % 4 {
        0 => {
            let Ok(form) = serde_json::from_slice::<ReportForm>(json) else {
                return;
            };
            match registry.report(&who, form) {
                Ok(Reported::Listed(imei, _)) => assert!(store.contains(List::Negative, imei)),
                Ok(Reported::AlreadyReported(imei, _)) => {
                    assert!(store.contains(List::Negative, imei))
                }
                Err(_) => assert_eq!(
                    sizes,
                    (store.len(List::Positive), store.len(List::Negative))
                ),
            }
        }
        1 => {
            let Ok(form) = serde_json::from_slice::<ActivationForm>(json) else {
                return;
            };
            let imei = Imei::parse(form.imei.trim()).ok();
            match registry.activate(&who, form) {
                Ok(_) => {
                    let record: PositiveRecord = registry.record(imei.unwrap()).unwrap().unwrap();
                    assert!(!record.owner_id.is_empty());
                }
                Err(_) => assert_eq!(
                    sizes,
                    (store.len(List::Positive), store.len(List::Negative))
                ),
            }
        }
        2 => {
            let Ok(form) = serde_json::from_slice::<TransferForm>(json) else {
                return;
            };
            let imei = Imei::from_body(35_290_611_000_000 + u64::from(flag)).unwrap();
            let _ = registry.transfer(&who, imei, form);
            assert_eq!(
                sizes,
                (store.len(List::Positive), store.len(List::Negative))
            );
        }
        _ => {
            let Ok(form) = serde_json::from_slice::<SellerForm>(json) else {
                return;
            };
            let _ = registry.record_seller(&who, form);
            let _ = registry.search_sellers("a");
        }
    }
});
