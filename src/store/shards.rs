//! Sharding shared by the filter and the index: both split a list into [`SHARDS`] parts chosen
//! by an xxh3 hash, each behind its own lock, and both answer a batch shard by shard.
//!
//! Why batches are grouped: a batch of 10,000 random IMEIs probed in arrival order takes one
//! lock per IMEI per structure and jumps across the whole bitmap or table each time (a cache
//! and TLB miss per probe). Grouped by shard, a batch takes each shard's lock once and works
//! inside one shard's memory (a 64th of the list) at a time.

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
}
