//! The outbox: every change to either list, numbered, written in the same RocksDB batch as the
//! change itself, kept until the replication publisher has handed it to NATS JetStream.
//!
//! So a change is never committed without its outbox entry, nor published without being
//! committed; a write never waits for NATS (the publisher tails the outbox on its own), and a
//! publisher that was down or crashed resumes from the outbox. A bulk load (`imeidb import`,
//! ingested as table files, not change by change) leaves one [`Change::Bulk`] marker, written
//! before the load: a replica that meets it fetches a fresh snapshot.

use std::sync::atomic::Ordering;

use super::{List, Store, StoreError};
use crate::imei::Imei;

/// One change of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The IMEI was put on the list (new, or its record replaced).
    Listed(List, Imei),
    /// The IMEI was taken off the list.
    Removed(List, Imei),
    /// The list was bulk-loaded: its changes are not logged one by one.
    Bulk(List),
}

/// Bytes of one encoded change.
pub const CHANGE_BYTES: usize = 10;

const LISTED: u8 = 1;
const REMOVED: u8 = 2;
const BULK: u8 = 3;

impl Change {
    /// Its 10-byte form: the operation, the list's index, the IMEI's key (zeros for a bulk
    /// load). The same bytes go into the outbox and into the change feed's messages.
    pub fn encode(self) -> [u8; CHANGE_BYTES] {
        let (op, list, key) = match self {
            Change::Listed(list, imei) => (LISTED, list, imei.key()),
            Change::Removed(list, imei) => (REMOVED, list, imei.key()),
            Change::Bulk(list) => (BULK, list, [0; 8]),
        };
        let mut bytes = [0u8; CHANGE_BYTES];
        bytes[0] = op;
        bytes[1] = list.index() as u8;
        bytes[2..].copy_from_slice(&key);
        bytes
    }

    /// The change `bytes` encode; `None` if they encode none.
    pub fn decode(bytes: &[u8]) -> Option<Change> {
        let bytes: &[u8; CHANGE_BYTES] = bytes.try_into().ok()?;
        let list = *List::ALL.get(usize::from(bytes[1]))?;
        match bytes[0] {
            BULK if bytes[2..] == [0; 8] => Some(Change::Bulk(list)),
            LISTED => Some(Change::Listed(list, Imei::from_key(&bytes[2..])?)),
            REMOVED => Some(Change::Removed(list, Imei::from_key(&bytes[2..])?)),
            _ => None,
        }
    }
}

impl Store {
    /// The number of the last change committed (0 before the first). Never waits for a
    /// write.
    pub fn last_change(&self) -> u64 {
        self.last_change.load(Ordering::Acquire)
    }

    /// Calls `f(seq, change)` for each change still in the outbox after `after`, in order,
    /// until it returns `false`.
    ///
    /// # Errors
    /// [`StoreError::Read`], [`StoreError::CorruptOutbox`].
    pub fn changes_after(
        &self,
        after: u64,
        f: impl FnMut(u64, Change) -> bool,
    ) -> Result<(), StoreError> {
        self.rocks.outbox_after(after, f)
    }

    /// Forgets the changes numbered `through` and below: they are in the stream.
    ///
    /// # Errors
    /// [`StoreError::Write`].
    pub fn prune_changes(&self, through: u64) -> Result<(), StoreError> {
        self.rocks.prune_outbox(through)
    }

    /// Woken after each write that committed changes (for the publisher, which also polls).
    pub fn changes_committed(&self) -> &tokio::sync::Notify {
        &self.committed
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::tests::open;
    use super::*;
    use crate::store::{ListRecord, NegativeRecord, PositiveRecord};

    fn imei(n: u64) -> Imei {
        Imei::from_body(35_000_000_000_000 + n).unwrap()
    }

    fn changes(store: &Store, after: u64) -> Vec<(u64, Change)> {
        let mut out = Vec::new();
        store
            .changes_after(after, |seq, change| {
                out.push((seq, change));
                true
            })
            .unwrap();
        out
    }

    #[test]
    fn every_list_change_is_numbered_in_commit_order_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            assert_eq!(store.last_change(), 0);
            store.insert(imei(1), &PositiveRecord::default()).unwrap();
            store.insert(imei(2), &NegativeRecord::default()).unwrap();
            store.remove(List::Positive, imei(1)).unwrap();
            store.remove(List::Positive, imei(1)).unwrap(); // not there: no change
            assert_eq!(store.last_change(), 3);
        }
        let store = open(dir.path());
        assert_eq!(store.last_change(), 3);
        assert_eq!(
            changes(&store, 0),
            [
                (1, Change::Listed(List::Positive, imei(1))),
                (2, Change::Listed(List::Negative, imei(2))),
                (3, Change::Removed(List::Positive, imei(1))),
            ]
        );
        assert_eq!(changes(&store, 2).len(), 1);
        store.prune_changes(2).unwrap();
        assert_eq!(changes(&store, 0).len(), 1);
        store.insert(imei(4), &PositiveRecord::default()).unwrap();
        assert_eq!(
            changes(&store, 0).last().unwrap().0,
            4,
            "pruning keeps the numbering"
        );
    }

    #[test]
    fn a_bulk_load_leaves_a_marker_before_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.insert(imei(1), &PositiveRecord::default()).unwrap();
        let value = NegativeRecord::default().encode();
        store
            .ingest(List::Negative, 2, |i| {
                (imei(10 + i as u64), value.as_slice())
            })
            .unwrap();
        assert_eq!(
            changes(&store, 0),
            [
                (1, Change::Listed(List::Positive, imei(1))),
                (2, Change::Bulk(List::Negative)),
            ]
        );
    }

    proptest! {
        #[test]
        fn changes_round_trip_and_garbage_is_refused(body in 0u64..100_000_000_000_000, list in 0usize..2, op in 0u8..3, bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let (list, imei) = (List::ALL[list], Imei::from_body(body).unwrap());
            let change = match op {
                0 => Change::Listed(list, imei),
                1 => Change::Removed(list, imei),
                _ => Change::Bulk(list),
            };
            prop_assert_eq!(Change::decode(&change.encode()), Some(change));
            if let Some(decoded) = Change::decode(&bytes) {
                let encoded = decoded.encode();
                prop_assert_eq!(encoded.as_slice(), bytes.as_slice());
            }
        }
    }
}
