//! The Bloom front of one list: answers "definitely not listed" from memory so that a network
//! check of an IMEI not on the negative list usually ends at one cache line (all but the
//! filter's false positives). The positive list's filter serves batches only (single checks
//! ask its index directly: `Store::contains`) and is deliberately loose: see
//! `store.positive_filter_fp_rate` in config/imeidb.toml.
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
//!
//! Layout: a *blocked* Bloom filter. Every probe of a key falls in one 64-byte block, a cache
//! line, chosen by the key's hash; the probes inside it follow from the rest of the hash. A
//! check therefore waits for memory once per list, where the classic layout spread a key's k
//! probes over k lines and waited for them one after another (the two filters' probes were
//! a sixth of a check's time). The price is a few more bits for the same false-positive
//! rate (keys do not spread evenly over blocks); [`shape`] sizes the filter for the rate
//! configured all the same.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::shards::{ByShard, FEW, Held, SHARDS};
use crate::imei::Imei;

/// Smallest number of entries a filter is sized for, so a new or small list does not
/// trigger a rebuild on every few inserts.
const MIN_CAPACITY: u64 = 1 << 16;

/// Headroom over the current size when a filter is (re)built, so growth does not trigger an
/// immediate rebuild. Doubling keeps the rebuilds of a list that grows from nothing to N
/// entries to log2(N) scans of at most 2N entries in all (1.5 needs about 1.7 log2(N) scans,
/// each rescanning the list while an upload writes to it).
const GROWTH_HEADROOM: f64 = 2.0;

type Shards = Box<[Bits]>;

/// A sharded Bloom filter over the IMEIs of one list.
pub struct ListFilter {
    /// The live shards. Read on every check; written by inserts and swaps.
    shards: Box<[RwLock<Bits>]>,
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
    /// Performance-critical: two xxh3 (shard, then block), one uncontended read lock, one
    /// cache line read, no allocation.
    #[inline]
    pub fn may_contain(&self, imei: Imei) -> bool {
        let body = imei.body();
        self.shards[shard_of(body)]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .check(body)
    }

    /// [`ListFilter::may_contain`] for at most [`FEW`] IMEIs at once: `maybe[i]` is set for
    /// `imeis[i]`. The shards' locks are all taken first (see [`Held`]), so the probes' loads
    /// overlap; while one of them is being written, the IMEIs are probed one by one.
    #[inline]
    pub fn may_contain_few(&self, imeis: &[Imei], maybe: &mut [bool]) {
        assert!(imeis.len() <= FEW && maybe.len() == imeis.len());
        let mut shards = [0u8; FEW];
        let mut wanted = 0u64;
        for (shard, imei) in shards.iter_mut().zip(imeis) {
            *shard = shard_of(imei.body()) as u8;
            wanted |= 1 << *shard;
        }
        let Some(held) = Held::try_lock(&self.shards, wanted) else {
            // a shard is being written: one by one, each waiting for its own shard only
            for (maybe, &imei) in maybe.iter_mut().zip(imeis) {
                *maybe = self.may_contain(imei);
            }
            return;
        };
        // first every block is read (a few instructions each, so that many of the loads are
        // in flight at once), then the bits are compared, in cache
        let mut blocks = [(0u64, 0usize); FEW];
        let mut touched = 0u64;
        for ((located, imei), &shard) in blocks.iter_mut().zip(imeis).zip(&shards) {
            let bits = held.shard(usize::from(shard));
            let hash = bits.hash(imei.body());
            let block = block_of(hash, bits.blocks.len());
            touched ^= bits.blocks[block].0[0];
            *located = (hash, block);
        }
        std::hint::black_box(touched);
        for ((maybe, &(hash, block)), &shard) in maybe.iter_mut().zip(&blocks).zip(&shards) {
            let bits = held.shard(usize::from(shard));
            *maybe = bits.has(block, &bits.mask(hash));
        }
    }

    /// [`ListFilter::may_contain`] for a batch: `maybe[i]` is set for `imeis[i]`. Probes shard
    /// by shard, one read lock each (see `shards.rs`).
    pub fn may_contain_many(&self, imeis: &[Imei], maybe: &mut [bool]) {
        let by_shard = ByShard::new(0..imeis.len(), |i| shard_of(imeis[i].body()));
        for (shard, positions) in by_shard.groups() {
            let bloom = self.shards[shard]
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if positions.len() * LINES_PER_PROBE_WORTH_TOUCHING >= bloom.blocks.len() {
                touch(&bloom.blocks);
            }
            for &i in positions {
                maybe[i as usize] = bloom.check(imeis[i as usize].body());
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
                    next[shard].set(body);
                }
                live.set(body);
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
        self.begin_rebuild_with(self.fresh(entries))
    }

    /// An empty filter for a rebuild sized for `entries`, allocated (and zeroed: tens of MB
    /// for a large list) before the caller takes any lock that writes wait on.
    pub fn fresh(&self, entries: u64) -> Fresh {
        let capacity = ((entries as f64 * GROWTH_HEADROOM) as u64).max(MIN_CAPACITY);
        Fresh {
            shards: new_shards(capacity, self.fp_rate),
            capacity,
        }
    }

    /// [`ListFilter::begin_rebuild`] with a filter made by [`ListFilter::fresh`].
    pub fn begin_rebuild_with(&self, fresh: Fresh) -> Option<Rebuild<'_>> {
        let mut next = self.lock_next();
        if next.is_some() {
            return None;
        }
        *next = Some(fresh.shards);
        self.rebuilding.store(true, Ordering::Relaxed);
        Some(Rebuild {
            filter: self,
            capacity: fresh.capacity,
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
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).bytes())
            .sum()
    }
}

/// An empty filter made for a rebuild, not yet begun.
pub struct Fresh {
    shards: Shards,
    capacity: u64,
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
                    next[shard].set(chunk[i as usize].body());
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

/// Reads one word of every block, in order (the hardware prefetcher streams them in), so later
/// random reads hit cache.
fn touch(blocks: &[Block]) {
    let mut seen = 0u64;
    for block in blocks {
        seen ^= block.0[0];
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
    let per_shard = capacity.div_ceil(SHARDS as u64).max(1);
    let (blocks, probes) = shape(per_shard, fp_rate);
    let mut seeds = [0u8; 8 * SHARDS];
    // A random seed per shard, so that which IMEIs collide differs from filter to filter. Even
    // a caller who found colliding IMEIs would only make their checks confirm in the index,
    // which is what a registered IMEI costs anyway; so a clock seed does if the OS has none.
    if getrandom::getrandom(&mut seeds).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        for (i, seed) in seeds.chunks_mut(8).enumerate() {
            seed.copy_from_slice(&(nanos ^ i as u64).to_le_bytes());
        }
    }
    seeds
        .chunks(8)
        // mixed and odd: seed 0 would make the block's hash the shard's own (unseeded) xxh3,
        // and a shard's keys would all fall in a 64th of its blocks
        .map(|seed| u64::from_le_bytes(seed.try_into().expect("8")))
        .map(|seed| Bits::new(blocks, probes, splitmix64(seed) | 1))
        .collect()
}

/// Bits in a block: one 64-byte cache line.
const BLOCK_BITS: u32 = 512;

/// The block a hash picks among `blocks` (at most `u32::MAX`): its high 32 bits scaled to
/// the count, a multiplication where `%` would be a division.
#[inline]
fn block_of(hash: u64, blocks: usize) -> usize {
    (((hash >> 32) * blocks as u64) >> 32) as usize
}

/// Probes drawn from one 64-bit mix: 7 of 9 bits each.
const PROBES_PER_DRAW: u32 = 7;

/// The splitmix64 finalizer: 64 well-mixed bits from a counter.
#[inline]
fn splitmix64(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One block of a filter, aligned to a cache line so that it is read with one memory wait.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

/// One shard's bits: a blocked Bloom filter (see the module doc).
struct Bits {
    blocks: Box<[Block]>,
    /// Bits set per key (k).
    probes: u32,
    /// The hash's seed.
    seed: u64,
}

impl Bits {
    fn new(blocks: usize, probes: u32, seed: u64) -> Bits {
        Bits {
            blocks: vec![Block::default(); blocks].into_boxed_slice(),
            probes,
            seed,
        }
    }

    /// The block of `body` and the bits it has there.
    ///
    /// One seeded xxh3: its high 32 bits pick the block (by multiplication, not division).
    /// The probes take 9 bits each from splitmix64 outputs seeded by the whole hash, so that
    /// they are independent of each other and of the block. (A start and step inside the
    /// block, as double hashing does across a classic filter, gave 1.12% false positives
    /// where 1% was asked: 512 bits hold too few different patterns.)
    #[inline]
    fn locate(&self, body: u64) -> (usize, Block) {
        let hash = self.hash(body);
        (block_of(hash, self.blocks.len()), self.mask(hash))
    }

    /// The seeded hash of `body` that [`Bits::locate`] picks its block and bits from.
    #[inline]
    fn hash(&self, body: u64) -> u64 {
        xxh3_64_with_seed(&body.to_le_bytes(), self.seed)
    }

    /// The bits a key of hash `hash` has in its block.
    #[inline]
    fn mask(&self, hash: u64) -> Block {
        let mut mask = Block::default();
        let mut state = hash;
        let mut pool = 0u64;
        for i in 0..self.probes {
            if i % PROBES_PER_DRAW == 0 {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                pool = splitmix64(state);
            }
            let bit = (pool % u64::from(BLOCK_BITS)) as usize;
            pool /= u64::from(BLOCK_BITS);
            mask.0[bit / 64] |= 1 << (bit % 64);
        }
        mask
    }

    /// Whether every bit of `body` is set.
    #[inline]
    fn check(&self, body: u64) -> bool {
        let (block, mask) = self.locate(body);
        self.has(block, &mask)
    }

    /// Whether every bit of `mask` is set in block `block`.
    #[inline]
    fn has(&self, block: usize, mask: &Block) -> bool {
        let words = &self.blocks[block].0;
        // no early exit: the words are in one cache line already, a branch would only mispredict
        words
            .iter()
            .zip(mask.0)
            .fold(true, |all, (&word, mask)| all & (word & mask == mask))
    }

    fn set(&mut self, body: u64) {
        let (block, mask) = self.locate(body);
        for (word, mask) in self.blocks[block].0.iter_mut().zip(mask.0) {
            *word |= mask;
        }
    }

    fn bytes(&self) -> u64 {
        (self.blocks.len() * size_of::<Block>()) as u64
    }
}

/// Blocks and probes per key for a shard of `entries` keys at false-positive rate `fp_rate`.
///
/// The probes are the classic filter's (`-log2(rate)`, rounded). The size starts at the
/// classic filter's and grows by 2% steps until the blocked filter's rate, computed exactly
/// ([`blocked_fp_rate`]), is at most the one asked for.
fn shape(entries: u64, fp_rate: f64) -> (usize, u32) {
    let probes = (-fp_rate.log2()).round().clamp(1.0, 64.0) as u32;
    let entries = entries as f64;
    let mut bits = entries * -fp_rate.ln() / std::f64::consts::LN_2.powi(2);
    // 200 steps of 2% is 52 times the classic size: far past any rate this is asked for
    for _ in 0..200 {
        if blocked_fp_rate(entries, bits, probes) <= fp_rate {
            break;
        }
        bits *= 1.02;
    }
    let blocks = (bits / f64::from(BLOCK_BITS))
        .ceil()
        .clamp(1.0, f64::from(u32::MAX));
    (blocks as usize, probes)
}

/// The false-positive rate of a blocked filter of `bits` holding `entries` keys with `probes`
/// bits each: the chance that a key's block holds j keys (Poisson) times the chance that all
/// its probes hit bits those j keys set, summed over j.
///
/// Summed over j within 12 standard deviations of the mean (the rest weighs under e^-70), so
/// that a very loose rate, where a shard's keys crowd into one block, costs a few thousand
/// terms rather than one per key.
fn blocked_fp_rate(entries: f64, bits: f64, probes: u32) -> f64 {
    let per_block = entries * f64::from(BLOCK_BITS) / bits.max(f64::from(BLOCK_BITS));
    let clear = 1.0 - 1.0 / f64::from(BLOCK_BITS);
    let spread = 12.0 * per_block.sqrt() + 20.0;
    let first = (per_block - spread).max(0.0).floor() as u64;
    let last = (per_block + spread).ceil() as u64;
    // the Poisson weights in logarithms: e^-per_block underflows for dense filters
    let mut ln_weight = -per_block + first as f64 * per_block.ln() - ln_factorial(first);
    let mut rate = 0.0;
    for j in first..=last {
        let set = 1.0 - clear.powf(f64::from(probes) * j as f64);
        rate += ln_weight.exp() * set.powi(probes as i32);
        ln_weight += per_block.ln() - ((j + 1) as f64).ln();
    }
    rate
}

/// ln(n!), by Stirling's series (error under 1e-3 at n = 1, under 1e-10 from n = 20).
fn ln_factorial(n: u64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let n = n as f64;
    n * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI * n).ln() + 1.0 / (12.0 * n)
        - 1.0 / (360.0 * n.powi(3))
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
    fn every_rate_is_kept_despite_the_blocks() {
        // keys do not spread evenly over blocks: sized as a classic filter, a blocked one
        // misses its rate; shape() must make up for it
        for rate in [0.5, 0.1, 0.01, 0.001] {
            let filter = ListFilter::new(200_000, rate);
            let members: Vec<Imei> = (0..200_000).map(|n| imei(n * 13)).collect();
            filter.insert_many(&members);
            let asked = 400_000u64;
            let fps = (0..asked)
                .filter(|n| filter.may_contain(imei(50_000_000 + n * 13 + 1)))
                .count() as f64;
            // 3 standard deviations of the count above the rate
            let bound = rate * asked as f64 + 3.0 * (rate * asked as f64).sqrt();
            assert!(
                fps <= bound,
                "at {rate}: {fps} false positives, bound {bound}"
            );
            assert!(
                fps >= 0.3 * rate * asked as f64,
                "at {rate}: {fps}, far too few"
            );
        }
    }

    #[test]
    fn the_computed_rate_matches_the_classic_one_for_one_probe() {
        // with one probe a block is just a range of bits: 1 - e^(-n/m)
        for bits_per_key in [1.0f64, 1.44, 4.0] {
            let n = 10_000.0;
            let classic = 1.0 - (-1.0 / bits_per_key).exp();
            let blocked = blocked_fp_rate(n, n * bits_per_key, 1);
            assert!((blocked - classic).abs() < 0.002, "{blocked} vs {classic}");
        }
        // and more probes need more bits than the classic filter's for the same rate
        let (blocks, probes) = shape(100_000, 0.01);
        assert_eq!(probes, 7);
        let classic_bits = 100_000.0 * -(0.01f64.ln()) / std::f64::consts::LN_2.powi(2);
        assert!(blocks as f64 * 512.0 > classic_bits);
        assert!(blocked_fp_rate(100_000.0, blocks as f64 * 512.0, probes) <= 0.01);
    }

    #[test]
    fn extreme_rates_are_shaped_at_once() {
        // 100 M entries a shard at the loosest and tightest rates the config allows
        for rate in [0.999_999, 0.9, 1e-6] {
            let (blocks, probes) = shape(100_000_000, rate);
            assert!(
                blocks >= 1 && (1..=64).contains(&probes),
                "{rate}: {blocks} {probes}"
            );
        }
        let (blocks, probes) = shape(1_000, 1e-6);
        assert_eq!(probes, 20);
        // blocked filters pay for tight rates: 40 bits per key where a classic filter has 29
        assert!(blocks * 512 < 1_000 * 45, "{blocks} blocks");
        assert!((ln_factorial(20) - (2_432_902_008_176_640_000f64).ln()).abs() < 1e-9);
        assert!((ln_factorial(5) - 120f64.ln()).abs() < 1e-4);
    }

    #[test]
    fn a_key_sets_its_probes_in_one_block() {
        for body in [1u64, 2, 99_999_999_999_999] {
            let mut bits = Bits::new(1000, 7, 42);
            let (block, mask) = bits.locate(body);
            let set: u32 = mask.0.iter().map(|w| w.count_ones()).sum();
            // 7 probes, independent: two may fall on one bit
            assert!((5..=7).contains(&set), "{set} bits for {body}");
            assert!(!bits.check(body));
            bits.set(body);
            assert!(bits.check(body));
            for (n, b) in bits.blocks.iter().enumerate() {
                let ones: u32 = b.0.iter().map(|w| w.count_ones()).sum();
                assert_eq!(
                    ones,
                    if n == block { set } else { 0 },
                    "block {n} for {body}"
                );
            }
        }
    }

    #[test]
    fn the_block_is_always_in_range() {
        for blocks in [1usize, 2, 61, 1 << 20, u32::MAX as usize] {
            for hash in [0, 1, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
                assert!(block_of(hash, blocks) < blocks, "{hash} among {blocks}");
            }
        }
        assert_eq!(block_of(u64::MAX, u32::MAX as usize), u32::MAX as usize - 1);
        assert_eq!(block_of(0, 61), 0);
    }

    #[test]
    fn probes_follow_the_rate_one_at_one_half() {
        // the default positive rate (0.5) is chosen for one probe per check; see config
        for (rate, probes) in [(0.5, 1), (0.1, 3), (0.01, 7)] {
            let filter = ListFilter::new(100_000, rate);
            for shard in filter.shards.iter() {
                assert_eq!(shard.read().unwrap().probes, probes, "at {rate}");
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
