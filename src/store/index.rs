//! The exact in-memory membership of one list: which IMEIs are on it, and nothing else.
//!
//! Why it exists: confirming a Bloom filter's "maybe" with a RocksDB point lookup is a
//! block-cache hash lookup, an index binary search and a block decode, all cache misses, and
//! was most of a check's time (docs/performance-history.md). The check only needs membership,
//! so this index answers it from memory and RocksDB keeps the records and the durability.
//!
//! Shape: a device's TAC (8 digits) and the top 4 bits of its 20-bit serial form a *bucket*
//! (`tac * 16 + snr >> 16`, fits a `u32`); the low 16 bits of the serial are the *member*,
//! kept sorted per bucket. Two bytes per entry plus a few dozen per bucket: about 20 MiB at
//! 10 M entries, 200 MiB at 100 M. Buckets live in 64 shards chosen by the bucket's xxh3 hash,
//! each behind its own `RwLock`, so a check takes one uncontended read lock and does one hash
//! lookup and a search of the bucket, without allocating.
//!
//! A popular TAC's bucket holds thousands of members, and a binary search over them waited for
//! one cache miss after another. So a bucket also keeps its *fences*, the first member of
//! every 32-member chunk (one cache line of members): a lookup searches the fences, then one
//! chunk, two memory waits whatever the bucket's size. The chunk a member's rank predicts is
//! read beside the fences (`Bucket::touch`), so where serials are spread evenly the two waits
//! overlap.
//!
//! Consistency: the [`Store`](super::Store) builds it from the same start-up scan as the
//! filter and updates it, under the store's write lock, after each RocksDB write succeeds and
//! before the write is acknowledged. So it never holds an IMEI RocksDB does not, and it holds
//! every acknowledged one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{PoisonError, RwLock};

use xxhash_rust::xxh3::xxh3_64;

use super::shards::{ByShard, FEW, Held, SHARDS};
use crate::imei::Imei;

/// xxh3 for the `u32` bucket keys: fast, and the keys the table holds come from registered
/// devices. Checks look up keys an outsider chooses, but a lookup only reads: it cannot
/// lengthen the probe sequences, which the inserted keys alone shape.
#[derive(Default)]
struct BucketHasher(u64);

impl Hasher for BucketHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64(bytes) ^ self.0.rotate_left(5);
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = xxh3_64(&n.to_le_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Shard = HashMap<u32, Bucket, BuildHasherDefault<BucketHasher>>;

/// Members per chunk: a 64-byte cache line of `u16`s.
const CHUNK: usize = 32;

/// The members of one bucket and their fences (see the module doc).
#[derive(Default)]
struct Bucket {
    /// Sorted, no repeats.
    members: Vec<u16>,
    /// `members[k * CHUNK]` for every chunk `k`; empty while the members fit one chunk.
    fences: Vec<u16>,
}

impl Bucket {
    /// The chunk of members that holds `member` if the bucket does (never empty: a bucket with
    /// no member is removed).
    #[inline]
    fn chunk_for(&self, member: u16) -> &[u16] {
        let k = self
            .fences
            .partition_point(|&f| f <= member)
            .saturating_sub(1);
        let start = k * CHUNK;
        &self.members[start..(start + CHUNK).min(self.members.len())]
    }

    #[inline]
    fn contains(&self, member: u16) -> bool {
        self.chunk_for(member).binary_search(&member).is_ok()
    }

    /// Adds `member`; returns whether it was new.
    fn insert(&mut self, member: u16) -> bool {
        let Err(position) = self.members.binary_search(&member) else {
            return false;
        };
        self.members.insert(position, member);
        self.refence(position);
        true
    }

    /// Removes `member`; returns whether it was there.
    fn remove(&mut self, member: u16) -> bool {
        let Ok(position) = self.members.binary_search(&member) else {
            return false;
        };
        self.members.remove(position);
        self.refence(position);
        true
    }

    /// Recomputes the fences after the members changed from position `from` on.
    fn refence(&mut self, from: usize) {
        if self.members.len() <= CHUNK {
            self.fences.clear();
            return;
        }
        // fences are complete or (for a bucket that just outgrew one chunk) empty
        let k = (from / CHUNK).min(self.fences.len());
        self.fences.truncate(k);
        (self.fences).extend(self.members[k * CHUNK..].iter().step_by(CHUNK));
    }

    /// Reads the cache lines the first search of a lookup of `member` visits, and the line of
    /// members its rank predicts, so that these loads wait for memory together rather than
    /// one after another (and the lookups of a batch together rather than one by one).
    ///
    /// The prediction: where a bucket's serials are spread about evenly over its 65,536
    /// possible members (random serials, or a fully allocated range), a member's position is
    /// about `member / 65,536` of the way along. A wrong guess (serials bunched in part of the
    /// range) costs one load and changes no answer; a right one lets the chunk search hit
    /// cache instead of waiting for the fences first.
    #[inline]
    fn touch(&self, member: u16) -> u16 {
        let guess = (usize::from(member) * self.members.len()) >> 16;
        let first = touch(if self.fences.is_empty() {
            &self.members
        } else {
            &self.fences
        });
        first ^ self.members.get(guess).copied().unwrap_or(0)
    }
}

/// Exact membership of one list.
pub struct ListIndex {
    shards: Box<[RwLock<Shard>]>,
}

/// Reads the cache lines a binary search of `sorted` will visit first (all of them for a short
/// one, up to 8 lines).
#[inline]
fn touch(sorted: &[u16]) -> u16 {
    const PER_LINE: usize = 32; // u16s in a 64-byte cache line
    if sorted.len() <= 8 * PER_LINE {
        sorted.iter().step_by(PER_LINE).fold(0, |acc, &m| acc ^ m)
    } else {
        let n = sorted.len();
        sorted[n / 4] ^ sorted[n / 2] ^ sorted[3 * n / 4]
    }
}

/// An IMEI's bucket and member (see the module doc).
#[inline]
fn split(imei: Imei) -> (u32, u16) {
    let snr = imei.snr(); // < 1,000,000 < 2^20
    (imei.tac().value() * 16 + (snr >> 16), (snr & 0xffff) as u16)
}

/// The IMEI of a bucket and member: the inverse of [`split`].
#[inline]
fn join(bucket: u32, member: u16) -> Imei {
    let snr = u64::from((bucket % 16) << 16 | u32::from(member));
    Imei::from_body(u64::from(bucket / 16) * 1_000_000 + snr)
        .expect("a bucket and member come from a valid IMEI")
}

#[inline]
fn shard_of(bucket: u32) -> usize {
    super::shards::shard_of(&bucket.to_le_bytes())
}

impl ListIndex {
    /// An empty index.
    pub fn new() -> ListIndex {
        ListIndex {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
        }
    }

    /// Whether `imei` is on the list.
    ///
    /// Performance-critical: one read lock, one hash lookup, a search of the fences and one
    /// chunk.
    #[inline]
    pub fn contains(&self, imei: Imei) -> bool {
        let (bucket, member) = split(imei);
        self.shards[shard_of(bucket)]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&bucket)
            .is_some_and(|bucket| {
                // the search's first loads, issued together rather than one by one
                std::hint::black_box(bucket.touch(member));
                bucket.contains(member)
            })
    }

    /// [`ListIndex::contains`] for at most [`FEW`] IMEIs at once: `found[i]` is set to whether
    /// `imeis[i]` is on the list. The shards' locks are all taken first (see [`Held`]), then
    /// every IMEI's bucket is found, then each search's first lines are read, then the searches
    /// run: in each pass the IMEIs' loads are independent, and wait for memory together. While
    /// one of the shards is being written, the IMEIs are looked up one by one.
    #[inline]
    pub fn contains_few(&self, imeis: &[Imei], found: &mut [bool]) {
        assert!(imeis.len() <= FEW && found.len() == imeis.len());
        let mut keys = [(0u32, 0u16, 0u8); FEW];
        let mut wanted = 0u64;
        for (key, &imei) in keys.iter_mut().zip(imeis) {
            let (bucket, member) = split(imei);
            let shard = shard_of(bucket);
            *key = (bucket, member, shard as u8);
            wanted |= 1 << shard;
        }
        let keys = &keys[..imeis.len()];
        let Some(held) = Held::try_lock(&self.shards, wanted) else {
            // a shard is being written: one by one, each waiting for its own shard only
            for (found, &imei) in found.iter_mut().zip(imeis) {
                *found = self.contains(imei);
            }
            return;
        };
        let mut buckets: [Option<&Bucket>; FEW] = [None; FEW];
        for (slot, &(bucket, _, shard)) in buckets.iter_mut().zip(keys) {
            *slot = held.shard(usize::from(shard)).get(&bucket);
        }
        let mut touched = 0u16;
        for (bucket, &(_, member, _)) in buckets.iter().zip(keys) {
            if let Some(bucket) = bucket {
                touched ^= bucket.touch(member);
            }
        }
        std::hint::black_box(touched);
        for ((found, bucket), &(_, member, _)) in found.iter_mut().zip(&buckets).zip(keys) {
            *found = bucket.is_some_and(|bucket| bucket.contains(member));
        }
    }

    /// Confirms a batch's filter answers: for each `i` where `found[i]` is set (the filter's
    /// "maybe"), sets it to whether `imeis[i]` is on the list. Looks up shard by shard, one
    /// read lock each (see `shards.rs`).
    pub fn confirm_many(&self, imeis: &[Imei], found: &mut [bool]) {
        let by_shard = ByShard::new((0..imeis.len()).filter(|&i| found[i]), |i| {
            shard_of(split(imeis[i]).0)
        });
        for (shard, positions) in by_shard.groups() {
            let shard = self.shards[shard]
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            // Four passes, each issuing the batch's loads together (independent loads the
            // CPU overlaps): every bucket, then their fences, then every IMEI's chunk, then
            // the searches within the chunks, in cache.
            let mut buckets: Vec<(u32, u16, &Bucket)> = Vec::with_capacity(positions.len());
            for &i in positions {
                let (bucket, member) = split(imeis[i as usize]);
                match shard.get(&bucket) {
                    Some(bucket) => buckets.push((i, member, bucket)),
                    None => found[i as usize] = false,
                }
            }
            let mut touched = 0u16;
            for &(_, member, bucket) in &buckets {
                touched ^= bucket.touch(member);
            }
            let chunks: Vec<(u32, u16, &[u16])> = (buckets.into_iter())
                .map(|(i, member, bucket)| {
                    let chunk = bucket.chunk_for(member);
                    touched ^= touch(chunk);
                    (i, member, chunk)
                })
                .collect();
            std::hint::black_box(touched);
            for (i, member, chunk) in chunks {
                found[i as usize] = chunk.binary_search(&member).is_ok();
            }
        }
    }

    /// Calls `f` with every entry, one shard's at a time, each shard copied out under its read
    /// lock and `f` called with no lock held. An entry added or removed during the walk may or
    /// may not be seen; one present throughout is seen exactly once.
    pub fn for_each_chunk(&self, mut f: impl FnMut(&[Imei])) {
        let mut chunk = Vec::new();
        for shard in self.shards.iter() {
            chunk.clear();
            let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
            for (&key, bucket) in shard.iter() {
                chunk.extend(bucket.members.iter().map(|&member| join(key, member)));
            }
            drop(shard);
            f(&chunk);
        }
    }

    /// Adds a batch, shard by shard: one write lock per shard instead of one per IMEI (a
    /// 50,000-line upload batch took 50,000 locks). Returns how many were new.
    pub fn insert_many(&self, imeis: &[Imei]) -> u64 {
        let by_shard = ByShard::new(0..imeis.len(), |i| shard_of(split(imeis[i]).0));
        let mut added = 0;
        for (shard, positions) in by_shard.groups() {
            let mut shard = self.shards[shard]
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for &i in positions {
                let (bucket, member) = split(imeis[i as usize]);
                added += u64::from(shard.entry(bucket).or_default().insert(member));
            }
        }
        added
    }

    /// Removes `imei`; returns whether it was there.
    pub fn remove(&self, imei: Imei) -> bool {
        let (bucket, member) = split(imei);
        let mut shard = self.shards[shard_of(bucket)]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(found) = shard.get_mut(&bucket) else {
            return false;
        };
        if !found.remove(member) {
            return false;
        }
        if found.members.is_empty() {
            shard.remove(&bucket);
        }
        true
    }

    /// Adds IMEIs given in increasing order (a RocksDB scan, a bulk load): each bucket's run is
    /// merged in one step under one lock instead of one insertion per IMEI. Returns how many
    /// were new.
    pub fn extend_sorted(&self, imeis: impl IntoIterator<Item = Imei>) -> u64 {
        let mut run: Vec<u16> = Vec::new();
        let mut current: Option<u32> = None;
        let mut added = 0;
        for imei in imeis {
            let (bucket, member) = split(imei);
            if current != Some(bucket) {
                if let Some(bucket) = current {
                    added += self.merge(bucket, &run);
                }
                run.clear();
                current = Some(bucket);
            }
            run.push(member);
        }
        if let Some(bucket) = current {
            added += self.merge(bucket, &run);
        }
        added
    }

    /// Merges one bucket's increasing run; returns how many members were new.
    fn merge(&self, bucket: u32, run: &[u16]) -> u64 {
        let mut shard = self.shards[shard_of(bucket)]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let bucket = shard.entry(bucket).or_default();
        let members = &mut bucket.members;
        let before = members.len();
        // the common case (a scan, a load into an empty bucket) appends in key order
        let appends = members
            .last()
            .is_none_or(|last| run.first().is_some_and(|first| last < first));
        members.extend_from_slice(run);
        if !appends {
            members.sort_unstable();
        }
        // a caller may repeat an IMEI within a run
        members.dedup();
        let added = (members.len() - before) as u64;
        bucket.refence(if appends { before } else { 0 });
        added
    }

    /// Releases the spare capacity left by building: call once after a bulk build.
    pub fn shrink_to_fit(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
            for bucket in shard.values_mut() {
                bucket.members.shrink_to_fit();
                bucket.fences.shrink_to_fit();
            }
            shard.shrink_to_fit();
        }
    }

    /// Entries held.
    pub fn len(&self) -> u64 {
        self.fold(|bucket| bucket.members.len() as u64)
    }

    /// Approximate bytes held: members, fences, vector headers and hash-table slots.
    pub fn memory_bytes(&self) -> u64 {
        let per_bucket = (std::mem::size_of::<Bucket>() + std::mem::size_of::<u32>() + 8) as u64;
        self.fold(|bucket| {
            (bucket.members.capacity() + bucket.fences.capacity()) as u64 * 2 + per_bucket
        })
    }

    fn fold(&self, f: impl Fn(&Bucket) -> u64) -> u64 {
        self.shards
            .iter()
            .map(|s| {
                s.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .map(&f)
                    .sum::<u64>()
            })
            .sum()
    }
}

impl Default for ListIndex {
    fn default() -> Self {
        ListIndex::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn imei(body: u64) -> Imei {
        Imei::from_body(body).unwrap()
    }

    impl ListIndex {
        fn insert(&self, imei: Imei) -> bool {
            self.insert_many(&[imei]) == 1
        }
    }

    /// The rank guess of `Bucket::touch` stays inside the bucket at both extremes (one member,
    /// every member) and for members far from where the guess puts them.
    #[test]
    fn the_rank_guess_never_leaves_the_bucket() {
        let mut one = Bucket::default();
        one.insert(u16::MAX);
        // the fold over the members and the guess both read the one member: x ^ x
        assert_eq!(one.touch(u16::MAX), 0);
        assert!(one.contains(u16::MAX) && !one.contains(0));

        let mut full = Bucket::default();
        for member in 0..=u16::MAX {
            full.insert(member);
        }
        for member in [0, 1, 32_767, u16::MAX - 1, u16::MAX] {
            full.touch(member);
            assert!(full.contains(member));
        }

        // bunched serials: the guess lands far from the member, the answer does not change
        let mut bunched = Bucket::default();
        (60_000..60_100).for_each(|m| {
            bunched.insert(m);
        });
        for member in [0, 59_999, 60_000, 60_050, 60_099, 60_100, u16::MAX] {
            bunched.touch(member);
            assert_eq!(bunched.contains(member), (60_000..60_100).contains(&member));
        }
    }

    #[test]
    fn buckets_split_tac_and_serial_without_collisions() {
        // same TAC, serials differing only above bit 16, and the extremes
        let a = imei(35_290_611_000_001);
        let b = imei(35_290_611_065_537); // 65,537 = 1 << 16 | 1: same member, other bucket
        let c = imei(99_999_999_999_999);
        let d = imei(0);
        let index = ListIndex::new();
        assert!(index.insert(a));
        assert!(!index.contains(b));
        for i in [b, c, d] {
            assert!(index.insert(i));
        }
        assert!(!index.insert(a));
        assert_eq!(index.len(), 4);
        assert!(index.remove(b));
        assert!(!index.remove(b));
        assert!(index.contains(a) && !index.contains(b) && index.contains(c) && index.contains(d));
    }

    #[test]
    fn extend_sorted_merges_into_existing_buckets() {
        let index = ListIndex::new();
        index.insert(imei(35_000_000_000_500));
        index.extend_sorted([10, 500, 900].map(|s| imei(35_000_000_000_000 + s)));
        index.extend_sorted([20].map(|s| imei(35_000_000_000_000 + s)));
        assert_eq!(index.len(), 4);
        for s in [10, 20, 500, 900] {
            assert!(index.contains(imei(35_000_000_000_000 + s)));
        }
        index.shrink_to_fit();
        assert!(index.memory_bytes() > 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        InsertMany(Vec<u64>),
        Remove(u64),
        Extend(Vec<u64>),
    }

    fn body() -> impl Strategy<Value = u64> {
        prop_oneof![
            // few TACs, so buckets fill and collide
            (0u64..3, 0u64..1_000_000).prop_map(|(tac, snr)| (35_000_000 + tac) * 1_000_000 + snr),
            // one bucket of hundreds of members: many chunks, fences moving on every change
            (0u64..600).prop_map(|snr| 35_000_000_000_000 + snr),
        ]
    }

    proptest! {
        /// Random operations agree with a `BTreeSet` model.
        #[test]
        fn matches_a_set_model(ops in proptest::collection::vec(prop_oneof![
            4 => body().prop_map(Op::Insert),
            1 => proptest::collection::vec(body(), 0..40).prop_map(Op::InsertMany),
            2 => body().prop_map(Op::Remove),
            1 => proptest::collection::vec(body(), 0..40).prop_map(Op::Extend),
        ], 1..400)) {
            let index = ListIndex::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(b) => prop_assert_eq!(index.insert(imei(b)), model.insert(b)),
                    Op::InsertMany(bodies) => {
                        // unsorted, possibly repeating: each IMEI counts once
                        let imeis: Vec<Imei> = bodies.iter().map(|&b| imei(b)).collect();
                        let before = model.len();
                        model.extend(bodies);
                        prop_assert_eq!(index.insert_many(&imeis), (model.len() - before) as u64);
                    }
                    Op::Remove(b) => prop_assert_eq!(index.remove(imei(b)), model.remove(&b)),
                    Op::Extend(mut bodies) => {
                        bodies.sort_unstable();
                        let added = index.extend_sorted(bodies.iter().map(|&b| imei(b)));
                        let before = model.len();
                        model.extend(bodies);
                        prop_assert_eq!(added, (model.len() - before) as u64);
                    }
                }
            }
            prop_assert_eq!(index.len(), model.len() as u64);
            let mut walked = Vec::new();
            index.for_each_chunk(|chunk| walked.extend(chunk.iter().map(|i| i.body())));
            walked.sort_unstable();
            prop_assert_eq!(walked, model.iter().copied().collect::<Vec<_>>());
            for &b in &model {
                prop_assert!(index.contains(imei(b)));
            }
            for b in 35_000_000_000_000u64..35_000_000_000_700 {
                prop_assert_eq!(index.contains(imei(b)), model.contains(&b));
            }
            let imeis: Vec<Imei> = (35_000_000_000_000u64..35_000_000_000_700).map(imei).collect();
            let mut found = vec![true; imeis.len()];
            index.confirm_many(&imeis, &mut found);
            for (i, b) in (35_000_000_000_000u64..35_000_000_000_700).enumerate() {
                prop_assert_eq!(found[i], model.contains(&b));
            }
        }
    }
}
