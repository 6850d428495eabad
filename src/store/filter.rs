//! The Bloom front of one list: answers "definitely not listed" from memory so that a network
//! check of an unlisted IMEI usually ends at a few bit probes (all but the filter's false
//! positives; the positive list's filter is deliberately loose: see
//! `store.positive_filter_fp_rate` in config/imeidb.toml).
//!
//! Invariants, and how they are kept:
//! - **No false negatives.** Writers call [`ListFilter::insert`] *before* the RocksDB write is
//!   acknowledged, so a check can never miss an acknowledged entry. A "maybe" is always
//!   confirmed by the caller in the list's exact index (`index.rs`).
//! - **Removals never make it lie.** A Bloom filter cannot forget, so a removal leaves a stale
//!   "maybe" (a false positive, harmless). When removals or growth push the false-positive rate
//!   up, a fresh filter is built from the list's exact index in the background and swapped in
//!   shard by shard. It begins under the store's write lock, and from then on inserts go to
//!   both the live and the new filter, so the new one cannot miss an insert that raced with
//!   the walk of the index.
//! - **No global lock on the check path.** The filter is split into shards chosen by the
//!   IMEI's xxh3 hash, each behind its own `RwLock`; a check takes one uncontended read lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use bloomfilter::Bloom;

use super::shards::{ByShard, SHARDS};
use crate::imei::Imei;

/// Smallest number of entries a filter is sized for, so a new or small list does not
/// trigger a rebuild on every few inserts.
const MIN_CAPACITY: u64 = 1 << 16;

/// Headroom over the current size when a filter is (re)built, so growth does not trigger an
/// immediate rebuild. Doubling keeps the rebuilds of a list that grows from nothing to N
/// entries to log2(N) scans of at most 2N entries in all (1.5 needs about 1.7 log2(N) scans,
/// each rescanning the list while an upload writes to it).
const GROWTH_HEADROOM: f64 = 2.0;

type Shards = Box<[Bloom<u64>]>;

/// A sharded Bloom filter over the IMEIs of one list.
pub struct ListFilter {
    /// The live shards. Read on every check; written by inserts and swaps.
    shards: Box<[RwLock<Bloom<u64>>]>,
    /// The filter being rebuilt, if a rebuild is running. Inserts take this lock (never checks)
    /// so that an insert lands in both filters or, after the swap, only in the new one.
    next: Mutex<Option<Shards>>,
    /// Wanted false-positive rate, from config.
    fp_rate: f64,
    /// Entries the live filter was sized for.
    capacity: AtomicU64,
    /// Entries added to the live filter since it was built (inserts after the build count too).
    added: AtomicU64,
    /// Entries removed from the list since the live filter was built: each left a stale bit.
    removed: AtomicU64,
    /// A rebuild is running (mirrors `next.is_some()` without taking its lock).
    rebuilding: AtomicBool,
}

impl ListFilter {
    /// An empty filter sized for `expected` entries at false-positive rate `fp_rate`.
    pub fn new(expected: u64, fp_rate: f64) -> ListFilter {
        let capacity = expected.max(MIN_CAPACITY);
        ListFilter {
            shards: new_shards(capacity, fp_rate)
                .into_vec()
                .into_iter()
                .map(RwLock::new)
                .collect(),
            next: Mutex::new(None),
            fp_rate,
            capacity: AtomicU64::new(capacity),
            added: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            rebuilding: AtomicBool::new(false),
        }
    }

    /// `false` means the IMEI is certainly not on the list; `true` means it may be.
    ///
    /// Performance-critical: one xxh3, one uncontended read lock, no allocation.
    #[inline]
    pub fn may_contain(&self, imei: Imei) -> bool {
        let body = imei.body();
        self.shards[shard_of(body)]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .check(&body)
    }

    /// [`ListFilter::may_contain`] for a batch: `maybe[i]` is set for `imeis[i]`. Probes shard
    /// by shard, one read lock each (see `shards.rs`).
    pub fn may_contain_many(&self, imeis: &[Imei], maybe: &mut [bool]) {
        let by_shard = ByShard::new(0..imeis.len(), |i| shard_of(imeis[i].body()));
        for (shard, positions) in by_shard.groups() {
            let bloom = self.shards[shard]
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if positions.len() * LINES_PER_PROBE_WORTH_TOUCHING >= bloom.as_slice().len() / 64 {
                touch(bloom.as_slice());
            }
            for &i in positions {
                maybe[i as usize] = bloom.check(&imeis[i as usize].body());
            }
        }
    }

    /// Records entries shard by shard: one lock per shard, and each shard's bits set together
    /// while its memory is in cache (in IMEI order, every bit set is a cache miss). Must be
    /// called before the entries' write is acknowledged.
    pub fn insert_many(&self, imeis: &[Imei]) {
        let by_shard = ByShard::new(0..imeis.len(), |i| shard_of(imeis[i].body()));
        let mut next = self.lock_next();
        for (shard, positions) in by_shard.groups() {
            let mut live = self.shards[shard]
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for &i in positions {
                let body = imeis[i as usize].body();
                if let Some(next) = next.as_mut() {
                    next[shard].set(&body);
                }
                live.set(&body);
            }
        }
        self.added.fetch_add(imeis.len() as u64, Ordering::Relaxed);
    }

    /// Notes that an entry left the list; its bits stay set until the next rebuild.
    pub fn note_removed(&self) {
        self.removed.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the filter has drifted enough to be worth rebuilding (more entries than it was
    /// sized for, or stale bits from removals above a tenth of its capacity) and no rebuild is
    /// running already.
    pub fn needs_rebuild(&self) -> bool {
        let capacity = self.capacity.load(Ordering::Relaxed);
        !self.is_rebuilding()
            && (self.added.load(Ordering::Relaxed) > capacity
                || self.removed.load(Ordering::Relaxed) > capacity / 10)
    }

    /// Whether a rebuild is running.
    pub fn is_rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::Relaxed)
    }

    /// Starts a rebuild sized for `entries`: from now on inserts also go to the new filter.
    /// Returns `None` if a rebuild is already running.
    pub fn begin_rebuild(&self, entries: u64) -> Option<Rebuild<'_>> {
        let mut next = self.lock_next();
        if next.is_some() {
            return None;
        }
        let capacity = ((entries as f64 * GROWTH_HEADROOM) as u64).max(MIN_CAPACITY);
        *next = Some(new_shards(capacity, self.fp_rate));
        self.rebuilding.store(true, Ordering::Relaxed);
        Some(Rebuild {
            filter: self,
            capacity,
            loaded: 0,
            finished: false,
        })
    }

    fn lock_next(&self) -> MutexGuard<'_, Option<Shards>> {
        self.next.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes of bitmap held by the live filter.
    pub fn memory_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len() / 8)
            .sum()
    }
}

/// A rebuild in progress. Feed it every entry the list held when it began, then
/// [`Rebuild::finish`] swaps it in. Dropping it unfinished abandons the rebuild.
pub struct Rebuild<'a> {
    filter: &'a ListFilter,
    capacity: u64,
    loaded: u64,
    finished: bool,
}

impl Rebuild<'_> {
    /// Adds a chunk of the list's entries, shard by shard (as [`ListFilter::insert_many`]
    /// does: in the order given, every bit was a cache miss and start-up and growth rebuilds
    /// spent most of their time waiting on memory).
    pub fn load(&mut self, chunk: &[Imei]) {
        let by_shard = ByShard::new(0..chunk.len(), |i| shard_of(chunk[i].body()));
        let mut next = self.filter.lock_next();
        if let Some(next) = next.as_mut() {
            for (shard, positions) in by_shard.groups() {
                for &i in positions {
                    next[shard].set(&chunk[i as usize].body());
                }
            }
        }
        self.loaded += chunk.len() as u64;
    }

    /// Swaps the new filter in, shard by shard, and returns how many entries were loaded.
    pub fn finish(mut self) -> u64 {
        let filter = self.filter;
        let mut next = filter.lock_next();
        if let Some(fresh) = next.take() {
            for (live, fresh) in filter.shards.iter().zip(fresh.into_vec()) {
                *live.write().unwrap_or_else(PoisonError::into_inner) = fresh;
            }
        }
        filter.capacity.store(self.capacity, Ordering::Relaxed);
        filter.added.store(self.loaded, Ordering::Relaxed);
        filter.removed.store(0, Ordering::Relaxed);
        filter.rebuilding.store(false, Ordering::Relaxed);
        self.finished = true;
        self.loaded
    }
}

impl Drop for Rebuild<'_> {
    fn drop(&mut self) {
        if !self.finished {
            *self.filter.lock_next() = None;
            self.filter.rebuilding.store(false, Ordering::Relaxed);
        }
    }
}

/// A batch reads a shard's bits in order before probing them when it has at least one probe
/// per this many cache lines of the shard: the probes then hit cache instead of waiting on
/// memory one by one.
const LINES_PER_PROBE_WORTH_TOUCHING: usize = 16;

/// Reads one byte of every cache line of `bytes`, in order (the hardware prefetcher streams
/// them in), so later random reads hit cache.
fn touch(bytes: &[u8]) {
    let mut seen = 0u8;
    for line in bytes.chunks(64) {
        seen ^= line[0];
    }
    std::hint::black_box(seen);
}

/// The shard of an IMEI body. 64 shards keep read-lock contention negligible on any core
/// count this server runs on, and each shard's bitmap still large enough to be accurate.
#[inline]
fn shard_of(body: u64) -> usize {
    super::shards::shard_of(&body.to_le_bytes())
}

fn new_shards(capacity: u64, fp_rate: f64) -> Shards {
    let per_shard = (capacity as usize).div_ceil(SHARDS).max(1);
    let bytes = Bloom::<u64>::compute_bitmap_size(per_shard, fp_rate);
    (0..SHARDS)
        // A random seed per shard: an attacker cannot craft IMEIs that all collide.
        .map(|_| Bloom::new(bytes, per_shard).expect("bitmap size and item count are non-zero"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn imei(n: u64) -> Imei {
        Imei::from_body(n).unwrap()
    }

    #[test]
    fn false_positive_rate_is_near_the_configured_one() {
        let filter = ListFilter::new(100_000, 0.01);
        for n in 0..100_000 {
            filter.insert_many(&[imei(n * 7)]);
        }
        let fps = (0..100_000u64)
            .filter(|n| filter.may_contain(imei(10_000_000 + n * 7 + 1)))
            .count();
        assert!(fps < 2_000, "{fps} false positives in 100000");
    }

    #[test]
    fn probes_follow_the_rate_one_at_one_half() {
        // the default positive rate (0.5) is chosen for one probe per check; see config
        for (rate, probes) in [(0.5, 1), (0.1, 3), (0.01, 7)] {
            let filter = ListFilter::new(100_000, rate);
            for shard in filter.shards.iter() {
                let bloom = shard.read().unwrap();
                assert_eq!(bloom.number_of_hash_functions(), probes, "at {rate}");
            }
        }
    }

    #[test]
    fn inserts_during_a_rebuild_survive_the_swap() {
        let filter = ListFilter::new(1000, 0.01);
        filter.insert_many(&[imei(1)]);
        let mut rebuild = filter.begin_rebuild(10).unwrap();
        assert!(filter.begin_rebuild(10).is_none(), "one rebuild at a time");
        // the snapshot did not see 2, which was inserted concurrently
        filter.insert_many(&[imei(2)]);
        rebuild.load(&[imei(1)]);
        assert_eq!(rebuild.finish(), 1);
        assert!(filter.may_contain(imei(1)));
        assert!(filter.may_contain(imei(2)));
    }

    #[test]
    fn a_rebuild_forgets_removed_entries() {
        let filter = ListFilter::new(1000, 0.001);
        for n in 0..1000 {
            filter.insert_many(&[imei(n)]);
        }
        let rebuild = filter.begin_rebuild(0).unwrap();
        rebuild.finish();
        let still = (0..1000).filter(|&n| filter.may_contain(imei(n))).count();
        assert!(
            still < 20,
            "{still} stale entries after rebuilding from nothing"
        );
    }

    #[test]
    fn an_abandoned_rebuild_leaves_the_live_filter() {
        let filter = ListFilter::new(1000, 0.01);
        filter.insert_many(&[imei(5)]);
        drop(filter.begin_rebuild(0).unwrap());
        assert!(filter.may_contain(imei(5)));
        assert!(filter.begin_rebuild(0).is_some());
    }

    #[test]
    fn drift_triggers_a_rebuild_unless_one_is_running() {
        let filter = ListFilter::new(0, 0.01);
        assert!(!filter.needs_rebuild());
        for _ in 0..=MIN_CAPACITY / 10 {
            filter.note_removed();
        }
        assert!(filter.needs_rebuild());
        let rebuild = filter.begin_rebuild(0).unwrap();
        assert!(
            !filter.needs_rebuild(),
            "a running rebuild is not started again"
        );
        rebuild.finish();
        assert!(!filter.needs_rebuild() && !filter.is_rebuilding());
    }

    proptest! {
        #[test]
        fn never_a_false_negative(bodies in proptest::collection::vec(0u64..99_999_999_999_999, 1..500)) {
            let filter = ListFilter::new(10, 0.05);
            for &b in &bodies {
                filter.insert_many(&[imei(b)]);
            }
            for &b in &bodies {
                prop_assert!(filter.may_contain(imei(b)));
            }
        }
    }
}
