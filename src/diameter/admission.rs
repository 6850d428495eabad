//! Who holds the listener's places. Two kinds of connection compete for them:
//!
//! - **silent** ones, accepted but without a capabilities exchange yet: anyone who can reach
//!   the port makes these. At most [`MAX_SILENT`] are kept, at most [`MAX_SILENT_PER_SOURCE`]
//!   from one source (an IPv4 address or an IPv6 /64, as the HTTP rate limit counts clients);
//!   a new one beyond the total evicts the oldest, one beyond its source's share is closed at
//!   once. A flood from one machine therefore holds 8 places and evicts nobody else's; an MME
//!   mid-CER is only at risk from a flood spread over many sources it cannot be told from.
//! - **admitted** ones, of peers in the table: at most `diameter.max_connections` in all and
//!   `diameter.max_connections_per_peer` per peer, counted before the CEA is written, so a
//!   peer over its share gets CEA 3004 DIAMETER_TOO_BUSY instead of a success and a close.
//!
//! And one budget of log lines: connections and refusals are logged at most
//! [`LOG_LINES_PER_MINUTE`] a minute, so that a peer in a reconnect loop or a stranger knocking
//! cannot flood the log (each still counts in the metrics).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Silent connections kept at once.
pub const MAX_SILENT: usize = 64;

/// Silent connections kept at once from one source.
pub const MAX_SILENT_PER_SOURCE: usize = 8;

/// Connection and refusal log lines per minute, over the whole listener.
pub const LOG_LINES_PER_MINUTE: u64 = 60;

/// The listener's places and log budget.
pub struct Admission {
    silent: Mutex<VecDeque<Silent>>,
    next_ticket: AtomicU64,
    /// Admitted connections, in all and by peer index.
    admitted: AtomicUsize,
    per_peer: Vec<AtomicUsize>,
    max_admitted: usize,
    max_per_peer: usize,
    /// The minute of the log budget and the lines spent in it, in one word (minute << 32 |
    /// lines) so that a new minute and its first line are one compare-and-swap.
    log_budget: AtomicU64,
}

struct Silent {
    ticket: u64,
    source: u128,
    evict: Arc<Notify>,
}

/// A silent connection's place; dropping it gives the place back.
pub struct SilentPlace<'a> {
    admission: &'a Admission,
    ticket: u64,
    /// Notified when a newer connection takes the place.
    pub evicted: Arc<Notify>,
}

/// An admitted connection's place; dropping it gives the place back.
pub struct PeerPlace<'a> {
    admission: &'a Admission,
    peer: usize,
}

impl Admission {
    /// Places for `peers` peers.
    pub fn new(peers: usize, max_admitted: usize, max_per_peer: usize) -> Admission {
        Admission {
            silent: Mutex::new(VecDeque::with_capacity(MAX_SILENT)),
            next_ticket: AtomicU64::new(0),
            admitted: AtomicUsize::new(0),
            per_peer: (0..peers).map(|_| AtomicUsize::new(0)).collect(),
            max_admitted,
            max_per_peer,
            log_budget: AtomicU64::new(0),
        }
    }

    /// A place for a new connection from `source` until its CER: `None` when its source
    /// already holds its share. Evicts the oldest silent connection when all are taken.
    pub fn silent(&self, source: IpAddr) -> Option<SilentPlace<'_>> {
        let source = crate::net::client(source);
        let mut silent = self.silent.lock().unwrap_or_else(|e| e.into_inner());
        if silent.iter().filter(|s| s.source == source).count() >= MAX_SILENT_PER_SOURCE {
            return None;
        }
        while silent.len() >= MAX_SILENT {
            if let Some(oldest) = silent.pop_front() {
                oldest.evict.notify_one();
            }
        }
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(Notify::new());
        silent.push_back(Silent {
            ticket,
            source,
            evict: Arc::clone(&evicted),
        });
        Some(SilentPlace {
            admission: self,
            ticket,
            evicted,
        })
    }

    /// A place for an admitted connection of peer `peer`, if it and the listener are under
    /// their limits.
    pub fn peer(&self, peer: usize) -> Option<PeerPlace<'_>> {
        let within = |count: &AtomicUsize, max: usize| {
            count
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok()
        };
        if !within(&self.admitted, self.max_admitted) {
            return None;
        }
        if !within(&self.per_peer[peer], self.max_per_peer) {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(PeerPlace {
            admission: self,
            peer,
        })
    }

    /// Whether a connection or refusal may be logged now (at most [`LOG_LINES_PER_MINUTE`]
    /// a minute; `now` in seconds).
    pub fn may_log(&self, now: u64) -> bool {
        let minute = now / 60;
        self.log_budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                let (at, spent) = (word >> 32, word & 0xffff_ffff);
                if at != minute {
                    Some(minute << 32 | 1)
                } else if spent < LOG_LINES_PER_MINUTE {
                    Some(word + 1)
                } else {
                    None
                }
            })
            .is_ok()
    }
}

impl Drop for SilentPlace<'_> {
    fn drop(&mut self) {
        let mut silent = self
            .admission
            .silent
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(i) = silent.iter().position(|s| s.ticket == self.ticket) {
            silent.remove(i);
        }
    }
}

impl PeerPlace<'_> {
    /// The peer's index in the table.
    pub fn peer(&self) -> usize {
        self.peer
    }
}

impl Drop for PeerPlace<'_> {
    fn drop(&mut self) {
        self.admission.per_peer[self.peer].fetch_sub(1, Ordering::AcqRel);
        self.admission.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_source_holds_its_share_and_evicts_nobody() {
        let admission = Admission::new(1, 10, 10);
        let flood: Vec<_> = (0..MAX_SILENT_PER_SOURCE)
            .map(|_| admission.silent(ip("192.0.2.1")).unwrap())
            .collect();
        assert!(admission.silent(ip("192.0.2.1")).is_none());
        assert!(admission.silent(ip("::ffff:192.0.2.1")).is_none());
        // one /64 is one source
        let v6: Vec<_> = (0..MAX_SILENT_PER_SOURCE)
            .map(|i| admission.silent(ip(&format!("2001:db8::{i}"))).unwrap())
            .collect();
        assert!(admission.silent(ip("2001:db8::ffff")).is_none());
        assert!(admission.silent(ip("2001:db8:0:1::1")).is_some());
        drop(flood);
        assert!(admission.silent(ip("192.0.2.1")).is_some());
        drop(v6);
    }

    #[test]
    fn many_sources_evict_the_oldest() {
        let admission = Admission::new(1, 10, 10);
        let first = admission.silent(ip("10.0.0.1")).unwrap();
        let _others: Vec<_> = (0..MAX_SILENT - 1)
            .map(|i| {
                admission
                    .silent(ip(&format!("10.1.{}.{}", i / 200, i % 200)))
                    .unwrap()
            })
            .collect();
        let evicted = Arc::clone(&first.evicted);
        let _newest = admission.silent(ip("10.2.0.1")).unwrap();
        // the permit is stored: the first connection sees it when it next waits
        let waited = evicted.notified();
        tokio::pin!(waited);
        assert!(
            futures_poll(waited.as_mut()),
            "the oldest silent connection is told to go"
        );
    }

    fn futures_poll(future: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        std::future::Future::poll(future, &mut context).is_ready()
    }

    #[test]
    fn admitted_places_are_bounded_overall_and_per_peer() {
        let admission = Admission::new(2, 3, 2);
        let a1 = admission.peer(0).unwrap();
        let _a2 = admission.peer(0).unwrap();
        assert!(admission.peer(0).is_none(), "per peer");
        let _b1 = admission.peer(1).unwrap();
        assert!(admission.peer(1).is_none(), "overall");
        drop(a1);
        assert!(admission.peer(1).is_some());
    }

    #[test]
    fn the_log_budget_refills_each_minute() {
        let admission = Admission::new(0, 1, 1);
        let spent = (0..100).filter(|_| admission.may_log(120)).count();
        assert_eq!(spent as u64, LOG_LINES_PER_MINUTE);
        assert!(!admission.may_log(179));
        assert!(admission.may_log(180));
    }
}
