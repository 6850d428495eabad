//! The public routes' rate limit: at most `public.requests_per_minute` requests per client per
//! minute, in O(1) per request and bounded memory whatever the number of source addresses.
//!
//! - **Who is a client**: [`crate::net::client`], an IPv4 address or an IPv6 /64 (a client
//!   that owns a /64 holds 2^64 addresses and would otherwise be 2^64 clients).
//! - **Windows**: fixed minutes, common to all clients; a client's count is forgotten when the
//!   minute ends, so nothing needs sweeping: each shard clears its table at its first request
//!   of a new minute, without freeing it.
//! - **O(1)**: the table is split in [`SHARDS`] shards by a hash of the client, each behind its
//!   own mutex held for one map operation.
//! - **Bound**: each shard tracks at most [`MAX_TRACKED`] / [`SHARDS`] clients per minute
//!   (about 4 MB in all). Past it, the clients that are not tracked share one budget per shard,
//!   [`OVERFLOW_SHARE`] times a client's, until the minute ends. So a flood from more addresses
//!   than the table holds cannot grow the server's memory nor lift the limit; what it can do is
//!   slow the public routes for other new clients for the rest of that minute, never the
//!   network checks, which are not limited here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use xxhash_rust::xxh3::xxh3_64;

use crate::net::client;

/// Shards of the table.
pub const SHARDS: usize = 64;
/// Clients tracked per minute, at most, over all shards.
pub const MAX_TRACKED: usize = 100_000;
/// How many clients' budgets the untracked clients of a full shard share.
pub const OVERFLOW_SHARE: u32 = 8;

const PER_SHARD: usize = MAX_TRACKED / SHARDS;

/// A client past the limit may retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// A fixed-window limit of requests per client per minute.
pub struct RateLimiter {
    per_minute: u32,
    started: Instant,
    shards: [Mutex<Shard>; SHARDS],
}

#[derive(Default)]
struct Shard {
    /// The minute (since `started`) the counts are for.
    minute: u64,
    counts: HashMap<u128, u32>,
    /// Requests this minute of clients the full table did not track.
    overflow: u32,
}

/// The table's key of an identity that is not an address ([`RateLimiter::check`]): unlike an
/// IPv4 client (high 96 bits zero) and an IPv6 one (low 64 bits `1 << 32`), low 64 bits
/// `2 << 32`.
fn keyed(key: u64) -> u128 {
    (u128::from(key) << 64) | (2 << 32)
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per client per minute.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            started: Instant::now(),
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        }
    }

    /// Counts one request of `peer`.
    ///
    /// # Errors
    /// [`RetryAfter`] the seconds until the minute ends, past the client's limit.
    pub fn admit(&self, peer: IpAddr) -> Result<(), RetryAfter> {
        self.admit_at(peer, self.now())
    }

    /// [`RateLimiter::admit`] `seconds` after the limiter started.
    fn admit_at(&self, peer: IpAddr, seconds: u64) -> Result<(), RetryAfter> {
        self.at(client(peer), seconds, true).map(|_| ())
    }

    /// Whether `key` (any identity but an address: a user id) has spent its own budget this
    /// minute, without counting anything. A key the table does not track (it was never
    /// counted this minute, or the table was full) has not.
    ///
    /// # Errors
    /// [`RetryAfter`] the seconds until the minute ends, once it has.
    pub fn check(&self, key: u64) -> Result<(), RetryAfter> {
        self.at(keyed(key), self.now(), false).map(|_| ())
    }

    /// Spends one of `key`'s budget; returns whether this spent the last of it.
    pub fn spend(&self, key: u64) -> bool {
        let used = self.at(keyed(key), self.now(), true);
        used.is_ok_and(|used| used == self.per_minute)
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts one against `key` when `count`, `seconds` after the limiter started; returns
    /// the count this minute.
    fn at(&self, key: u128, seconds: u64, count: bool) -> Result<u32, RetryAfter> {
        let minute = seconds / 60;
        let retry = RetryAfter((60 - seconds % 60).max(1));
        let shard = xxh3_64(&key.to_le_bytes()) as usize % SHARDS;
        let mut shard = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.minute != minute {
            shard.minute = minute;
            shard.counts.clear();
            shard.overflow = 0;
        }
        let tracked = shard.counts.contains_key(&key);
        if !count && !tracked {
            // a key's budget is its own: looking at it neither adds it to the table nor
            // charges it with the overflow that other keys share (or those keys could spend
            // it for a key they never met)
            return Ok(0);
        }
        let tracked = tracked || shard.counts.len() < PER_SHARD;
        let (used, limit) = if tracked {
            (shard.counts.entry(key).or_insert(0), self.per_minute)
        } else {
            (
                &mut shard.overflow,
                self.per_minute.saturating_mul(OVERFLOW_SHARE),
            )
        };
        if *used >= limit {
            return Err(retry);
        }
        if count {
            *used += 1;
        }
        Ok(*used)
    }

    /// Clients tracked now, over all shards (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        (self.shards.iter())
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .counts
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xC000_0200 + n))
    }

    #[test]
    fn the_limit_is_per_client_and_says_when_to_retry() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            limiter.admit_at(v4(1), 70).unwrap();
        }
        assert_eq!(limiter.admit_at(v4(1), 75), Err(RetryAfter(45)));
        limiter.admit_at(v4(2), 75).unwrap();
        // the next minute starts afresh
        limiter.admit_at(v4(1), 120).unwrap();
    }

    #[test]
    fn an_ipv6_slash_64_is_one_client_and_a_mapped_ipv4_is_its_ipv4() {
        let limiter = RateLimiter::new(2);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        limiter.admit_at(a, 0).unwrap();
        limiter.admit_at(b, 0).unwrap();
        assert!(limiter.admit_at(a, 0).is_err(), "same /64");
        limiter.admit_at(other, 0).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        let plain = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        limiter.admit_at(mapped, 0).unwrap();
        limiter.admit_at(plain, 0).unwrap();
        assert!(limiter.admit_at(plain, 0).is_err());
        // an IPv4 address is not the IPv6 /64 whose low bits look like it
        let low = IpAddr::V6(Ipv6Addr::from(u128::from(0xC000_0207u32)));
        assert_ne!(client(low), client(plain));
    }

    #[test]
    fn a_budget_is_checked_without_spending_and_says_when_it_is_spent() {
        let budget = RateLimiter::new(2);
        assert_eq!(budget.check(7), Ok(()));
        assert!(!budget.spend(7));
        assert_eq!(budget.check(7), Ok(()));
        assert!(budget.spend(7), "the last of it");
        assert!(budget.check(7).is_err());
        assert!(!budget.spend(7), "nothing left to spend");
        assert_eq!(budget.check(8), Ok(()), "another key's budget is its own");
        // keys that fill the table and spend the shared overflow cannot throttle a key
        // whose own budget is untouched
        let crowd = RateLimiter::new(1);
        for key in 0..(3 * MAX_TRACKED as u64) {
            crowd.spend(1_000 + key);
        }
        assert_eq!(crowd.check(7), Ok(()));
        assert!(
            crowd.check(1_000).is_err(),
            "a tracked key that spent is throttled"
        );
        // a key is not the IPv4 address with the same number
        budget.admit(IpAddr::V4(Ipv4Addr::from(7u32))).unwrap();
    }

    #[test]
    fn many_addresses_cannot_grow_the_table_or_lift_the_limit() {
        let limiter = RateLimiter::new(1);
        let mut admitted = 0u64;
        for n in 0..3 * MAX_TRACKED as u32 {
            admitted += u64::from(limiter.admit_at(v4(n), 0).is_ok());
        }
        assert!(limiter.tracked() <= MAX_TRACKED);
        // every tracked client got its one request; the rest shared the overflow budgets
        let most = (MAX_TRACKED + SHARDS * OVERFLOW_SHARE as usize) as u64;
        assert!(admitted <= most, "{admitted} > {most}");
        // a tracked client keeps its own limit
        assert!(limiter.admit_at(v4(0), 1).is_err());
        // and the next minute forgets them
        limiter.admit_at(v4(0), 60).unwrap();
    }
}
