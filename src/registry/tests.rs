use super::*;
use crate::metrics::Metrics;
use crate::store::{ReportKind, StoreOptions};

const HOME: &str = "732101234567890";
const ROAMER: &str = "310150123456789";

fn listing(positive: bool, negative: bool) -> Listing {
    Listing { positive, negative }
}

fn imsi(s: &str) -> Imsi {
    Imsi::parse(s).unwrap()
}

#[test]
fn positive_only_is_whitelisted_as_registered() {
    let d = CheckPolicy::default().decide(Interface::N5gEir, listing(true, false), None);
    assert_eq!(d.answer, Answer::Status(EquipmentStatus::Whitelisted));
    assert_eq!(d.reason, Reason::Registered);
}

#[test]
fn negative_wins_over_positive() {
    let policy = CheckPolicy::default();
    for positive in [true, false] {
        let d = policy.decide(
            Interface::Native,
            listing(positive, true),
            Some(&imsi(HOME)),
        );
        assert_eq!(d.answer, Answer::Status(EquipmentStatus::Blacklisted));
        assert_eq!(d.reason, Reason::ReportedStolenOrLost);
    }
}

#[test]
fn not_listed_uses_each_interfaces_configured_answer() {
    let policy = CheckPolicy::default();
    let native = policy.decide(Interface::Native, listing(false, false), None);
    assert_eq!(native.answer, Answer::Status(EquipmentStatus::Greylisted));
    assert_eq!(native.reason, Reason::NotListed);
    let eir = policy.decide(Interface::N5gEir, listing(false, false), None);
    assert_eq!(eir.answer, Answer::Unknown);
    let s13 = policy.decide(Interface::S13, listing(false, false), None);
    assert_eq!(s13.answer, Answer::Unknown);

    let strict = CheckPolicy {
        not_listed: [
            Answer::Status(EquipmentStatus::Blacklisted),
            Answer::Status(EquipmentStatus::Greylisted),
            Answer::Status(EquipmentStatus::Whitelisted),
        ],
        ..CheckPolicy::default()
    };
    assert_eq!(
        strict
            .decide(Interface::Native, listing(false, false), None)
            .answer,
        Answer::Status(EquipmentStatus::Blacklisted)
    );
    assert_eq!(
        strict
            .decide(Interface::N5gEir, listing(false, false), None)
            .answer,
        Answer::Status(EquipmentStatus::Greylisted)
    );
    assert_eq!(
        strict
            .decide(Interface::S13, listing(false, false), None)
            .answer,
        Answer::Status(EquipmentStatus::Whitelisted)
    );
}

#[test]
fn inbound_roamers_are_never_restricted() {
    let policy = CheckPolicy::default();
    for (positive, negative) in [(false, false), (true, false), (false, true), (true, true)] {
        for interface in Interface::ALL {
            let d = policy.decide(interface, listing(positive, negative), Some(&imsi(ROAMER)));
            assert_eq!(d.answer, Answer::Status(EquipmentStatus::Whitelisted));
            assert_eq!(d.reason, Reason::RoamingExempt);
            assert_eq!(
                d.listing,
                listing(positive, negative),
                "listing still reported"
            );
        }
    }
}

#[test]
fn home_subscribers_are_not_exempt() {
    let d =
        CheckPolicy::default().decide(Interface::N5gEir, listing(false, true), Some(&imsi(HOME)));
    assert_eq!(d.reason, Reason::ReportedStolenOrLost);
}

#[test]
fn several_home_mccs_can_be_configured() {
    let policy = CheckPolicy {
        home_mccs: vec![Mcc::parse("732").unwrap(), Mcc::parse("310").unwrap()],
        ..CheckPolicy::default()
    };
    let d = policy.decide(Interface::N5gEir, listing(false, true), Some(&imsi(ROAMER)));
    assert_eq!(d.answer, Answer::Status(EquipmentStatus::Blacklisted));
}

/// A registry over its own temporary store, for the registry's tests and its submodules'.
pub(crate) struct Fixture {
    pub(crate) registry: Registry,
    // The store must drop before its directory.
    _dir: tempfile::TempDir,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        sync_writes: false,
        ..StoreOptions::default()
    };
    let metrics = Metrics::new();
    let store = Store::open(dir.path(), &options, &metrics).unwrap();
    Fixture {
        registry: Registry::new(Arc::new(store), CheckPolicy::default(), &metrics),
        _dir: dir,
    }
}

fn imei(n: u64) -> Imei {
    Imei::from_body(35_000_000_000_000 + n).unwrap()
}

#[test]
fn checks_read_both_lists_from_the_store() {
    let f = fixture();
    let r = &f.registry;
    r.list_positive(imei(1), &PositiveRecord::default())
        .unwrap();
    r.list_positive(imei(2), &PositiveRecord::default())
        .unwrap();
    r.list_negative(
        imei(2),
        &NegativeRecord {
            kind: ReportKind::Stolen,
            ..Default::default()
        },
    )
    .unwrap();
    r.list_negative(imei(3), &NegativeRecord::default())
        .unwrap();

    let check = |n| r.check(Interface::Native, imei(n), None);
    assert_eq!(check(1).reason, Reason::Registered);
    assert_eq!(check(2).reason, Reason::ReportedStolenOrLost);
    assert_eq!(check(2).listing, listing(true, true));
    assert_eq!(check(3).listing, listing(false, true));
    assert_eq!(check(4).reason, Reason::NotListed);

    let items: Vec<_> = (1..=4).map(|n| (imei(n), None)).collect();
    let batch = r.check_many(Interface::Native, &items);
    let single: Vec<_> = (1..=4).map(check).collect();
    assert_eq!(batch, single);
}

#[test]
fn checks_together_decide_as_checks_one_by_one_roamers_included() {
    let f = fixture();
    let r = &f.registry;
    for n in (0..60).step_by(2) {
        r.list_positive(imei(n), &PositiveRecord::default())
            .unwrap();
    }
    for n in (0..60).step_by(5) {
        r.list_negative(imei(n), &NegativeRecord::default())
            .unwrap();
    }
    // more than FEW, every combination of lists, home subscribers, roamers and no IMSI
    let items: Vec<(Imei, Option<Imsi>)> = (0..60)
        .map(|n| {
            let who = [None, Some(imsi(HOME)), Some(imsi(ROAMER))][n as usize % 3];
            (imei(n), who)
        })
        .collect();
    assert!(items.len() > FEW);
    let mut together = Vec::new();
    r.check_each(Interface::S13, &items, |i, decision| {
        together.push((i, decision));
    });
    let single: Vec<(usize, Decision)> = (items.iter().enumerate())
        .map(|(i, (imei, imsi))| (i, r.check(Interface::S13, *imei, imsi.as_ref())))
        .collect();
    assert_eq!(together, single);
    let reasons = |reason| single.iter().filter(|(_, d)| d.reason == reason).count();
    assert!(reasons(Reason::RoamingExempt) > 0 && reasons(Reason::ReportedStolenOrLost) > 0);
    assert!(reasons(Reason::Registered) > 0 && reasons(Reason::NotListed) > 0);
}

#[test]
fn equipment_without_an_imei_gets_the_not_listed_answer_and_roaming_exemption() {
    let f = fixture();
    let d = f.registry.check_without_imei(Interface::N5gEir, None);
    assert_eq!((d.answer, d.reason), (Answer::Unknown, Reason::NotListed));
    let d = f
        .registry
        .check_without_imei(Interface::N5gEir, Some(&imsi(ROAMER)));
    assert_eq!(d.reason, Reason::RoamingExempt);
}

#[test]
fn unlisting_takes_effect_at_once() {
    let f = fixture();
    let r = &f.registry;
    r.list_negative(imei(9), &NegativeRecord::default())
        .unwrap();
    assert!(r.unlist_negative(imei(9)).unwrap());
    assert!(!r.unlist_negative(imei(9)).unwrap());
    assert_eq!(
        r.check(Interface::Native, imei(9), None).reason,
        Reason::NotListed
    );
    assert_eq!(r.store().len(List::Negative), 0);
}

#[test]
fn records_round_trip_through_the_store() {
    let f = fixture();
    let record = PositiveRecord {
        registered_at: 5,
        manufacturer: "Acme".into(),
        ..Default::default()
    };
    assert_eq!(
        f.registry.list_positive(imei(1), &record).unwrap(),
        Inserted::New
    );
    assert_eq!(
        f.registry.list_positive(imei(1), &record).unwrap(),
        Inserted::Replaced
    );
    assert_eq!(f.registry.store().len(List::Positive), 1);
    assert_eq!(
        f.registry.record::<PositiveRecord>(imei(1)).unwrap(),
        Some(record)
    );
    assert_eq!(f.registry.record::<NegativeRecord>(imei(1)).unwrap(), None);
}
