//! Sharding shared by the filter and the index: both split a list into [`SHARDS`] parts chosen
//! by an xxh3 hash, each behind its own lock, and both answer a batch shard by shard.
//!
//! Why batches are grouped: a batch of 10,000 random IMEIs probed in arrival order takes one
//! lock per IMEI per structure and jumps across the whole bitmap or table each time (a cache
//! and TLB miss per probe). Grouped by shard, a batch takes each shard's lock once and works
//! inside one shard's memory (a 64th of the list) at a time.

use std::sync::{RwLock, RwLockReadGuard, TryLockError};

use xxhash_rust::xxh3::xxh3_64;

/// Number of shards (a power of two).
pub const SHARDS: usize = 64;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

/// The shard of a key, from its xxh3 hash.
#[inline]
pub fn shard_of(key: &[u8]) -> usize {
    (xxh3_64(key) >> (64 - SHARD_BITS)) as usize
}

/// Positions of a batch's items grouped by shard (a counting sort: two passes, no comparison).
pub struct ByShard {
    order: Vec<u32>,
    /// `order[starts[s]..starts[s + 1]]` are the positions in shard `s`.
    starts: [u32; SHARDS + 1],
}

impl ByShard {
    /// Groups `positions` (indexes into a batch of at most `u32::MAX` items) by `shard(position)`.
    pub fn new(
        positions: impl Iterator<Item = usize> + Clone,
        shard: impl Fn(usize) -> usize,
    ) -> ByShard {
        let shards: Vec<(u32, u8)> = positions
            .map(|position| (position as u32, shard(position) as u8))
            .collect();
        let mut starts = [0u32; SHARDS + 1];
        for &(_, s) in &shards {
            starts[usize::from(s) + 1] += 1;
        }
        for s in 0..SHARDS {
            starts[s + 1] += starts[s];
        }
        let mut next = starts;
        let mut order = vec![0u32; shards.len()];
        for (position, s) in shards {
            let slot = &mut next[usize::from(s)];
            order[*slot as usize] = position;
            *slot += 1;
        }
        ByShard { order, starts }
    }

    /// Each non-empty shard with the positions that fall in it, in the order they were given.
    pub fn groups(&self) -> impl Iterator<Item = (usize, &[u32])> {
        (0..SHARDS).filter_map(|s| {
            let group = &self.order[self.starts[s] as usize..self.starts[s + 1] as usize];
            (!group.is_empty()).then_some((s, group))
        })
    }
}

/// Most checks looked up together (`Store::contains_each`): what a network front end answers
/// from one read of a connection. Their memory waits overlap from a handful on (in
/// `benches/decision.rs`, 4 at a time did nearly as well as 16); more keep the shards
/// read-locked longer and make every check of a group wait for the whole group's lookups,
/// which at 16 put the S13 server-side p99 above its 20 µs.
pub const FEW: usize = 8;

/// Read guards of the shards a few lookups need, all taken before the first lookup and held
/// until the last.
///
/// Why: taking a lock is a locked instruction, which waits for every load before it to
/// complete. Lookups that each lock their shard therefore wait for memory one after another
/// however they are arranged; with the locks taken first, the lookups' loads are independent
/// and the CPU overlaps them.
///
/// Never waits: the guards are taken with `try_read`, and if a shard is being written (or a
/// writer waits for it) all are given back and the caller looks up one by one. A group that
/// held some shards while it waited for another would hold up every writer of those shards,
/// and every reader behind them (the standard `RwLock` lets no new reader in while a writer
/// waits): a long write to one shard, such as a bulk load's, would stall checks of others.
/// For the same reason no deadlock is possible. Shards are taken in ascending order all the
/// same.
pub struct Held<'a, T> {
    guards: [Option<RwLockReadGuard<'a, T>>; SHARDS],
}

// a shard's bit in a `u64`
const _: () = assert!(SHARDS <= 64);

impl<'a, T> Held<'a, T> {
    /// Read-locks the shards of `locks` whose bits are set in `wanted`, in ascending order;
    /// `None`, holding nothing, if one of them is write-locked or awaited by a writer.
    pub fn try_lock(locks: &'a [RwLock<T>], wanted: u64) -> Option<Held<'a, T>> {
        let mut guards = std::array::from_fn(|_| None);
        let mut left = wanted;
        while left != 0 {
            let shard = left.trailing_zeros() as usize;
            guards[shard] = Some(match locks[shard].try_read() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => return None,
            });
            left &= left - 1;
        }
        Some(Held { guards })
    }

    /// The shard `shard`, which must have been in `wanted`.
    #[inline]
    pub fn shard(&self, shard: usize) -> &T {
        self.guards[shard]
            .as_deref()
            .expect("only the shards locked are read")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every position appears once, in its shard's group, and groups keep input order.
        #[test]
        fn groups_partition_the_positions(shards in proptest::collection::vec(0usize..SHARDS, 0..300)) {
            let by = ByShard::new((0..shards.len()).filter(|p| p % 3 != 0), |p| shards[p]);
            let mut seen = Vec::new();
            for (s, group) in by.groups() {
                prop_assert!(!group.is_empty());
                prop_assert!(group.windows(2).all(|w| w[0] < w[1]));
                for &p in group {
                    prop_assert_eq!(shards[p as usize], s);
                    seen.push(p as usize);
                }
            }
            seen.sort_unstable();
            let expected: Vec<usize> = (0..shards.len()).filter(|p| p % 3 != 0).collect();
            prop_assert_eq!(seen, expected);
        }
    }

    #[test]
    fn held_locks_the_shards_wanted_and_no_other() {
        let locks: Vec<RwLock<usize>> = (0..SHARDS).map(RwLock::new).collect();
        let wanted = (1u64 << 3) | (1 << 17) | (1 << 63);
        let held = Held::try_lock(&locks, wanted).expect("nothing is written");
        for (shard, lock) in locks.iter().enumerate() {
            let locked = lock.try_write().is_err();
            assert_eq!(locked, wanted & (1 << shard) != 0, "shard {shard}");
        }
        for shard in [3, 17, 63] {
            assert_eq!(*held.shard(shard), shard);
        }
        drop(held);
        assert!(locks.iter().all(|l| l.try_write().is_ok()));
    }

    #[test]
    fn held_gives_everything_back_when_a_shard_is_being_written() {
        let locks: Vec<RwLock<usize>> = (0..SHARDS).map(RwLock::new).collect();
        let writing = locks[40].write().unwrap();
        let wanted = (1u64 << 3) | (1 << 40) | (1 << 63);
        assert!(Held::try_lock(&locks, wanted).is_none());
        // shard 3 was taken before 40 refused: it was given back
        let free = |s: usize, l: &RwLock<usize>| s == 40 || l.try_write().is_ok();
        assert!(locks.iter().enumerate().all(|(s, l)| free(s, l)));
        drop(writing);
        assert!(Held::try_lock(&locks, wanted).is_some());
    }
}
