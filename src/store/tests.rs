use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::metrics::Metrics;

fn options() -> StoreOptions {
    StoreOptions {
        sync_writes: false,
        block_cache_bytes: 8 << 20,
        ..StoreOptions::default()
    }
}

pub(super) fn open(dir: &Path) -> Store {
    Store::open(dir, &options(), &Metrics::new()).unwrap()
}

fn imei(n: u64) -> Imei {
    Imei::from_body(35_000_000_000_000 + n).unwrap()
}

fn positive(model: &str) -> PositiveRecord {
    PositiveRecord {
        model: model.into(),
        ..Default::default()
    }
}

#[test]
fn entries_and_sizes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.insert(imei(1), &positive("a")).unwrap();
        store.insert(imei(2), &positive("b")).unwrap();
        store.insert(imei(2), &NegativeRecord::default()).unwrap();
        store.remove(List::Positive, imei(1)).unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.len(List::Positive), 1);
    assert_eq!(store.len(List::Negative), 1);
    assert!(!store.contains(List::Positive, imei(1)));
    assert!(store.contains(List::Positive, imei(2)));
    assert_eq!(store.get(imei(2)).unwrap(), Some(positive("b")));
}

#[test]
fn a_single_check_asks_the_negative_filter_and_the_positive_index() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let store = Store::open(dir.path(), &options(), &metrics).unwrap();
    store.insert(imei(1), &positive("a")).unwrap();
    let asked = 1_000;
    for n in 100..100 + asked {
        assert!(!store.contains(List::Negative, imei(n)));
        assert!(!store.contains(List::Positive, imei(n)));
    }
    assert!(store.contains(List::Positive, imei(1)));
    let text = String::from_utf8(metrics.render()).unwrap();
    let count = |needle: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(needle));
        line.map_or(0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
    };
    // the negative filter (1% false positives) turned away nearly all unknown IMEIs
    assert!(count(r#"imeidb_filter_answered_total{list="negative"}"#) > asked * 9 / 10);
    assert_eq!(count(r#"imeidb_filter_answered_total{list="positive"}"#), 0);
    assert_eq!(
        count(r#"imeidb_index_lookups_total{found="false",list="positive"}"#),
        asked
    );
    assert_eq!(
        count(r#"imeidb_index_lookups_total{found="true",list="positive"}"#),
        1
    );
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path());
    let second = Store::open(dir.path(), &options(), &Metrics::new());
    let err = second.err().expect("second open must fail");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("in use by another imeidb process"));
}

#[test]
fn ingest_is_visible_to_checks_and_counts_new_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let value = positive("bulk").encode();
    let imeis: Vec<Imei> = (0..10_000).map(|n| imei(n * 3)).collect();
    store
        .ingest(List::Positive, imeis.len(), |i| {
            (imeis[i], value.as_slice())
        })
        .unwrap();
    assert_eq!(store.len(List::Positive), 10_000);
    for &i in &imeis {
        assert!(store.contains(List::Positive, i));
    }
    assert!(!store.contains(List::Positive, imei(1)));
    drop(store);
    assert_eq!(open(dir.path()).len(List::Positive), 10_000);
    // no SST file is left behind
    let leftovers = std::fs::read_dir(dir.path().join("ingest"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn contains_many_matches_contains_and_keeps_order_and_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in [5, 1, 9] {
        store.insert(imei(n), &NegativeRecord::default()).unwrap();
    }
    let asked: Vec<Imei> = [9, 2, 5, 5, 7, 1, 9].map(imei).to_vec();
    let mut out = Vec::new();
    store.contains_many(List::Negative, &asked, &mut out);
    let single: Vec<bool> = asked
        .iter()
        .map(|&i| store.contains(List::Negative, i))
        .collect();
    assert_eq!(out, single);
    assert_eq!(out, [true, false, true, true, false, true, true]);
}

#[test]
fn contains_many_agrees_with_contains_across_shards_and_bucket_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // one crowded bucket (TAC 35000000, serials below 65,536: more members than `touch`
    // reads line by line) and many sparse TACs spread over every shard
    let body = |n: u64| Imei::from_body(n).unwrap();
    let crowded: Vec<Imei> = (0..3_000)
        .map(|s| body(35_000_000_000_000 + s * 7))
        .collect();
    let sparse: Vec<Imei> = (0..2_000u64)
        .map(|t| body((10_000_000 + t * 4_999) * 1_000_000 + t % 1000))
        .collect();
    let mut listed: Vec<Imei> = crowded.iter().chain(&sparse).copied().collect();
    listed.sort_unstable();
    let value = PositiveRecord::default().encode();
    store
        .ingest(List::Positive, listed.len(), |i| (listed[i], &value))
        .unwrap();
    for &i in sparse.iter().step_by(3) {
        store.insert(i, &NegativeRecord::default()).unwrap();
    }
    // listed IMEIs, their neighbours (not listed), and repeats, in a scrambled order
    let mut asked: Vec<Imei> = listed
        .iter()
        .flat_map(|i| [*i, body(i.body() + 1), *i])
        .collect();
    asked.reverse();
    asked.rotate_left(1234);
    for list in List::ALL {
        let mut out = Vec::new();
        store.contains_many(list, &asked, &mut out);
        let single: Vec<bool> = asked.iter().map(|&i| store.contains(list, i)).collect();
        assert_eq!(out, single, "{list}");
    }
    let mut out = Vec::new();
    store.contains_many(List::Positive, &asked, &mut out);
    assert_eq!(out.iter().filter(|&&f| f).count(), 2 * listed.len());
    // the few-at-a-time lookups of the network check, in groups of every size up to FEW
    let mut at = 0;
    for size in (0..=FEW).cycle() {
        if at >= asked.len() {
            break;
        }
        let few = &asked[at..(at + size).min(asked.len())];
        let (mut negative, mut positive) = (vec![false; few.len()], vec![false; few.len()]);
        store.contains_each(few, &mut negative, &mut positive);
        for (list, out) in [(List::Negative, negative), (List::Positive, positive)] {
            let single: Vec<bool> = few.iter().map(|&i| store.contains(list, i)).collect();
            assert_eq!(out, single, "{list} at {at}");
        }
        at += few.len();
    }
    // and more than FEW at once
    let (mut negative, mut positive) = (vec![false; asked.len()], vec![false; asked.len()]);
    store.contains_each(&asked, &mut negative, &mut positive);
    assert_eq!(positive.iter().filter(|&&f| f).count(), 2 * listed.len());
    let stolen = sparse.len().div_ceil(3);
    assert_eq!(negative.iter().filter(|&&f| f).count(), 2 * stolen);
}

/// Checks made together hold several shards at once, beside bulk loads and single writes that
/// write-lock shards: every entry listed throughout is found, none never listed is, and
/// nothing deadlocks (the test would hang).
#[test]
fn checks_together_beside_writers_find_what_is_listed_throughout() {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // listed throughout: multiples of 7; written meanwhile: 7n + 1; never listed: 7n + 2
    let listed: Vec<Imei> = (0..3_000).map(|n| imei(n * 7)).collect();
    let value = PositiveRecord::default().encode();
    store
        .ingest(List::Positive, listed.len(), |i| (listed[i], &value))
        .unwrap();
    for &i in listed.iter().step_by(3) {
        store.insert(i, &NegativeRecord::default()).unwrap();
    }
    let stop = AtomicBool::new(false);
    let written = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Imei> = (0..2_000).map(|n| imei(n * 7 + 1)).collect();
                store
                    .ingest(List::Positive, batch.len(), |i| (batch[i], &value))
                    .unwrap();
                let one = batch[round % batch.len()];
                store.insert(one, &NegativeRecord::default()).unwrap();
                store.remove(List::Negative, one).unwrap();
                round += 1;
                written.store(round, Ordering::Relaxed);
            }
        });
        let asked: Vec<Imei> = (0..3_000)
            .flat_map(|n| [imei(n * 7), imei(n * 7 + 2)])
            .collect();
        // until the writer has loaded its batch a few times over
        let mut checked = 0;
        while checked < 30 || written.load(Ordering::Relaxed) < 5 {
            checked += 1;
            for (group, few) in asked.chunks(FEW).enumerate() {
                let (mut negative, mut positive) = ([false; FEW], [false; FEW]);
                let n = few.len();
                store.contains_each(few, &mut negative[..n], &mut positive[..n]);
                for (k, &i) in few.iter().enumerate() {
                    let throughout = (i.body() - imei(0).body()) % 7 == 0;
                    assert_eq!(positive[k], throughout, "group {group}");
                    let stolen = throughout && (i.body() - imei(0).body()) / 7 % 3 == 0;
                    assert_eq!(negative[k], stolen, "group {group}");
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
}

#[test]
fn checks_together_count_in_the_metrics_as_checks_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let store = Store::open(dir.path(), &options(), &metrics).unwrap();
    for n in 0..40 {
        store.insert(imei(n * 2), &positive("a")).unwrap();
    }
    for n in 0..10 {
        store
            .insert(imei(n * 4), &NegativeRecord::default())
            .unwrap();
    }
    let asked: Vec<Imei> = (0..200).map(imei).collect();
    let counts = || {
        let text = String::from_utf8(metrics.render()).unwrap();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("imeidb_filter_answered") || l.starts_with("imeidb_index"))
            .map(String::from)
            .collect();
        assert!(lines.len() >= 6, "{text}");
        lines
    };
    let before = counts();
    for &i in &asked {
        store.contains(List::Negative, i);
        store.contains(List::Positive, i);
    }
    let once = counts();
    let (mut negative, mut positive) = (vec![false; asked.len()], vec![false; asked.len()]);
    store.contains_each(&asked, &mut negative, &mut positive);
    let twice = counts();
    for ((b, o), t) in before.iter().zip(&once).zip(&twice) {
        let value = |l: &str| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
        assert_eq!(value(t) - value(o), value(o) - value(b), "{t}");
    }
    assert_eq!(negative.iter().filter(|&&f| f).count(), 10);
    assert_eq!(positive.iter().filter(|&&f| f).count(), 40);
}

#[test]
fn removals_trigger_a_background_rebuild_that_keeps_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let n = filter_min_capacity() / 10 + 10;
    for i in 0..2 * n {
        store.insert(imei(i), &NegativeRecord::default()).unwrap();
    }
    for i in 0..n {
        store.remove(List::Negative, imei(i)).unwrap();
    }
    store.maybe_rebuild_filter(List::Negative);
    // inserts keep landing while the rebuild runs
    for i in 2 * n..2 * n + 500 {
        store.insert(imei(i), &NegativeRecord::default()).unwrap();
        assert!(store.contains(List::Negative, imei(i)));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let filter = &store.filters[List::Negative.index()];
    while filter.needs_rebuild() || filter.is_rebuilding() {
        assert!(Instant::now() < deadline, "rebuild did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in n..2 * n + 500 {
        assert!(store.contains(List::Negative, imei(i)), "{i} lost");
    }
    let stale = (0..n)
        .filter(|&i| store.filters[List::Negative.index()].may_contain(imei(i)))
        .count() as u64;
    assert!(
        stale < n / 20,
        "{stale} of {n} removed entries still in the filter"
    );
}

fn filter_min_capacity() -> u64 {
    1 << 16
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, bool),
    Remove(u64, bool),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..64, any::<bool>()).prop_map(|(n, neg)| Op::Insert(n, neg)),
        2 => (0u64..64, any::<bool>()).prop_map(|(n, neg)| Op::Remove(n, neg)),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random operations on the store match a `BTreeMap` model, across reopens.
    #[test]
    fn store_matches_a_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let mut model: [BTreeMap<u64, ()>; 2] = Default::default();
        for op in ops {
            match op {
                Op::Insert(n, neg) => {
                    let list = if neg { List::Negative } else { List::Positive };
                    if neg {
                        store.insert(imei(n), &NegativeRecord::default()).unwrap();
                    } else {
                        store.insert(imei(n), &PositiveRecord::default()).unwrap();
                    }
                    model[list.index()].insert(n, ());
                }
                Op::Remove(n, neg) => {
                    let list = if neg { List::Negative } else { List::Positive };
                    let was = store.remove(list, imei(n)).unwrap();
                    prop_assert_eq!(was, model[list.index()].remove(&n).is_some());
                }
                Op::Reopen => {
                    drop(store);
                    store = open(dir.path());
                }
            }
            let asked: Vec<Imei> = (0..64).map(imei).collect();
            let (mut negative, mut positive) = ([false; 64], [false; 64]);
            store.contains_each(&asked, &mut negative, &mut positive);
            for n in 0..64 {
                prop_assert_eq!(negative[n], model[List::Negative.index()].contains_key(&(n as u64)));
                prop_assert_eq!(positive[n], model[List::Positive.index()].contains_key(&(n as u64)));
            }
            for list in List::ALL {
                prop_assert_eq!(store.len(list), model[list.index()].len() as u64);
                for n in 0..64 {
                    prop_assert_eq!(
                        store.contains(list, imei(n)),
                        model[list.index()].contains_key(&n)
                    );
                }
            }
        }
    }
}

/// Bytes of write-ahead log files in `dir`.
fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

#[test]
fn the_write_ahead_log_stays_within_its_bound() {
    // 12.6 MB of list entries and history through a store that may keep 1 MB of log: without
    // the bound, nothing flushes (no memtable fills) and every byte stays in the log
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        max_wal_bytes: 1 << 20,
        ..options()
    };
    let store = Store::open(dir.path(), &options, &Metrics::new()).unwrap();
    let record = positive(&"m".repeat(200)).encode();
    for batch in 0..48u64 {
        store
            .transact(|_| {
                let imeis = (0..1000).map(|i| imei(batch * 1000 + i));
                let mutation = Mutation {
                    puts: imeis.clone().fold(Puts::default(), |mut puts, imei| {
                        puts.push(List::Positive, imei, &record);
                        puts
                    }),
                    history: imeis.map(|imei| (imei, vec![7; 16])).collect(),
                    ..Mutation::default()
                };
                Ok::<_, StoreError>((mutation, ()))
            })
            .unwrap();
    }
    // RocksDB checks the bound at each write and deletes old files after their flush, in the
    // background: as a live server does, keep writing (a little) while the flushes catch up
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while wal_bytes(dir.path()) > 4 << 20 {
        assert!(
            Instant::now() < deadline,
            "{} bytes of WAL kept past a 1 MiB bound",
            wal_bytes(dir.path())
        );
        n += 1;
        store.insert(imei(1_000_000 + n), &positive("x")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(store.len(List::Positive), 48_000 + n);
}
