//! The store's side of replication: a consistent snapshot of both lists' IMEIs with the number
//! of the last change it includes (the central's), and, on a read replica, changes applied in
//! order with the number of the last one, in the same batch.
//!
//! A replica holds only what a check needs: which IMEIs are on which list. Its records are
//! empty (no owner, subscriber, reporter or case reference ever reaches it).

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::{
    Change, List, ListRecord, Mutation, NegativeRecord, PositiveRecord, Puts, Store, StoreError,
};
use crate::imei::Imei;

/// IMEIs per chunk of a snapshot, and changes per batch when a snapshot is applied.
pub const SNAPSHOT_CHUNK: usize = 50_000;

/// What a replica stores for an IMEI of `list`: an empty record.
fn empty_record(list: List) -> Vec<u8> {
    match list {
        List::Positive => PositiveRecord::default().encode(),
        List::Negative => NegativeRecord::default().encode(),
    }
}

impl Store {
    /// A consistent snapshot of both lists' IMEIs: `begin(last_change, sizes)` first (the
    /// number of the last change it includes, and the entries of each list it will send), then
    /// `f(list, chunk)` for the positive list's IMEIs in order, then the negative list's, until
    /// either returns `false`. Writes wait only while the snapshot is taken.
    ///
    /// # Errors
    /// [`StoreError::Read`], [`StoreError::CorruptKey`].
    pub fn export_members(
        &self,
        begin: impl FnOnce(u64, [u64; 2]) -> bool,
        f: impl FnMut(List, &[Imei]) -> bool,
    ) -> Result<(), StoreError> {
        let heads = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (last, sizes) = (heads.outbox_seq - 1, List::ALL.map(|l| self.len(l)));
        self.rocks.snapshot_keys(
            move || {
                drop(heads);
                begin(last, sizes)
            },
            SNAPSHOT_CHUNK,
            f,
        )
    }

    /// On a read replica: the number of the last central change applied (0: none yet).
    /// Never waits for a write.
    pub fn replicated_through(&self) -> u64 {
        self.replicated.load(Ordering::Acquire)
    }

    /// On a read replica: applies the central's `changes` (in order; those numbered at or
    /// below what was applied already are skipped) and records `through` as applied, in one
    /// atomic batch. Applying the same changes twice changes nothing.
    ///
    /// # Errors
    /// [`StoreError::Write`]; nothing was applied then.
    pub fn apply_replicated(
        &self,
        changes: &[(u64, Change)],
        through: u64,
    ) -> Result<(), StoreError> {
        let records = List::ALL.map(empty_record);
        // one applier per replica: nothing else moves this between here and the batch
        let applied = self.replicated_through();
        // a batch writes its puts before its deletes: keep only each IMEI's last change, so
        // "removed, then listed again" ends listed, as it did on the central. Sorted by IMEI
        // (a stable sort keeps each IMEI's changes in order): the memtable and the index take
        // sorted keys several times faster than the order they were changed in.
        let mut last: Vec<(usize, Imei, bool)> = (changes.iter())
            .filter(|&&(seq, _)| seq > applied)
            .filter_map(|&(_, change)| match change {
                Change::Listed(list, imei) => Some((list.index(), imei, true)),
                Change::Removed(list, imei) => Some((list.index(), imei, false)),
                Change::Bulk(_) => None,
            })
            .collect();
        last.sort_by_key(|&(list, imei, _)| (list, imei));
        let mut keep = vec![true; last.len()];
        for i in 1..last.len() {
            if (last[i].0, last[i].1) == (last[i - 1].0, last[i - 1].1) {
                keep[i - 1] = false; // a later change of the same IMEI follows
            }
        }
        self.transact(|_: &Store| {
            let mut puts = Puts::with_capacity(last.len(), 0);
            let mut deletes = Vec::new();
            for (&(list, imei, listed), _) in last.iter().zip(&keep).filter(|(_, k)| **k) {
                let list = List::ALL[list];
                if listed {
                    puts.push(list, imei, &records[list.index()]);
                } else {
                    deletes.push((list, imei));
                }
            }
            Ok::<_, StoreError>((
                Mutation {
                    puts,
                    deletes,
                    replicated: Some(through.max(applied)),
                    ..Mutation::default()
                },
                (),
            ))
        })
    }

    /// On a read replica: makes `list` hold exactly `members` (sorted, as a snapshot sends
    /// them), in batches, and records `through` as applied once both lists are done (call it
    /// for the positive list with `None`, then the negative list with `Some(through)`).
    /// Returns how many IMEIs it added and removed.
    ///
    /// # Errors
    /// [`StoreError::Write`]; the batches written before it stay (a later reconcile
    /// finishes the job: it is idempotent).
    pub fn reconcile(
        &self,
        list: List,
        members: &[Imei],
        through: Option<u64>,
    ) -> Result<(u64, u64), StoreError> {
        let mut held = Vec::with_capacity(self.len(list) as usize);
        self.indexes[list.index()].for_each_chunk(|chunk| held.extend_from_slice(chunk));
        held.sort_unstable();
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        let (mut a, mut b) = (members.iter().peekable(), held.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x == y => {
                    a.next();
                    b.next();
                }
                (Some(&&x), Some(&&y)) if x < y => {
                    add.push(x);
                    a.next();
                }
                (Some(_), Some(&&y)) => {
                    remove.push(y);
                    b.next();
                }
                (Some(&&x), None) => {
                    add.push(x);
                    a.next();
                }
                (None, Some(&&y)) => {
                    remove.push(y);
                    b.next();
                }
                (None, None) => break,
            }
        }
        let record = empty_record(list);
        for chunk in add.chunks(SNAPSHOT_CHUNK) {
            let mut puts = Puts::with_capacity(chunk.len(), chunk.len() * record.len());
            for &imei in chunk {
                puts.push(list, imei, &record);
            }
            self.transact(|_: &Store| {
                Ok::<_, StoreError>((
                    Mutation {
                        puts,
                        ..Mutation::default()
                    },
                    (),
                ))
            })?;
        }
        for chunk in remove.chunks(SNAPSHOT_CHUNK) {
            let deletes = chunk.iter().map(|&imei| (list, imei)).collect();
            self.transact(|_: &Store| {
                Ok::<_, StoreError>((
                    Mutation {
                        deletes,
                        ..Mutation::default()
                    },
                    (),
                ))
            })?;
        }
        if let Some(through) = through {
            self.transact(|_: &Store| {
                Ok::<_, StoreError>((
                    Mutation {
                        replicated: Some(through),
                        ..Mutation::default()
                    },
                    (),
                ))
            })?;
        }
        Ok((add.len() as u64, remove.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::open;
    use super::*;

    fn imei(n: u64) -> Imei {
        Imei::from_body(35_000_000_000_000 + n).unwrap()
    }

    fn snapshot(store: &Store) -> (u64, [Vec<Imei>; 2]) {
        let mut lists: [Vec<Imei>; 2] = Default::default();
        let mut last = 0;
        store
            .export_members(
                |seq, sizes| {
                    last = seq;
                    assert_eq!(
                        sizes,
                        [store.len(List::Positive), store.len(List::Negative)]
                    );
                    true
                },
                |list, chunk| {
                    lists[list.index()].extend_from_slice(chunk);
                    true
                },
            )
            .unwrap();
        (last, lists)
    }

    #[test]
    fn a_replica_reconciled_to_a_snapshot_then_fed_changes_holds_what_the_central_holds() {
        let dir = tempfile::tempdir().unwrap();
        let central = open(&dir.path().join("c"));
        let replica = open(&dir.path().join("r"));
        for n in 0..1_000 {
            central
                .insert(
                    imei(n),
                    &PositiveRecord {
                        model: "X".into(),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        central.insert(imei(5), &NegativeRecord::default()).unwrap();
        // the replica held things the central does not: a reconcile removes them
        replica
            .insert(imei(9_999), &PositiveRecord::default())
            .unwrap();
        let (last, lists) = snapshot(&central);
        assert_eq!(last, 1_001);
        assert_eq!(
            replica.reconcile(List::Positive, &lists[0], None).unwrap(),
            (1_000, 1)
        );
        replica
            .reconcile(List::Negative, &lists[1], Some(last))
            .unwrap();
        assert_eq!(replica.replicated_through(), 1_001);
        assert_eq!(
            replica.reconcile(List::Positive, &lists[0], None).unwrap(),
            (0, 0)
        );

        // later changes, delivered twice and overlapping: applied once, in order
        central.remove(List::Positive, imei(1)).unwrap();
        central
            .insert(imei(2_000), &NegativeRecord::default())
            .unwrap();
        let mut changes = Vec::new();
        central
            .changes_after(last, |seq, change| {
                changes.push((seq, change));
                true
            })
            .unwrap();
        assert_eq!(changes.len(), 2);
        replica.apply_replicated(&changes[..1], 1_002).unwrap();
        replica.apply_replicated(&changes, 1_003).unwrap();
        replica.apply_replicated(&changes, 1_003).unwrap();
        assert_eq!(replica.replicated_through(), 1_003);
        let (c, r) = (central.digests().unwrap(), replica.digests().unwrap());
        assert_eq!(c.positive.members, r.positive.members);
        assert_eq!(c.negative.members, r.negative.members);
        assert_ne!(
            c.positive.records, r.positive.records,
            "the replica holds no records"
        );
        assert!(!replica.contains(List::Positive, imei(1)));
        assert!(replica.contains(List::Negative, imei(2_000)));
        // one message may remove an IMEI and list it again, or the reverse: the last change wins
        let (x, y) = (imei(3_000), imei(3_001));
        let churn = [
            (1_004, Change::Listed(List::Negative, x)),
            (1_005, Change::Removed(List::Negative, x)),
            (1_006, Change::Listed(List::Negative, x)),
            (1_007, Change::Listed(List::Negative, y)),
            (1_008, Change::Removed(List::Negative, y)),
        ];
        replica.apply_replicated(&churn, 1_008).unwrap();
        assert!(replica.contains(List::Negative, x));
        assert!(!replica.contains(List::Negative, y));
        drop(replica);
        let replica = open(&dir.path().join("r"));
        assert!(replica.contains(List::Negative, x) && !replica.contains(List::Negative, y));
        // a replica stores no record beyond an empty one
        assert_eq!(
            replica.get::<PositiveRecord>(imei(3)).unwrap(),
            Some(PositiveRecord::default())
        );
    }
}
