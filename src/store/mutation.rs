//! Atomic changes across the lists, the IMEI history and the audit trail.
//!
//! A rule of the registry often reads before it writes (report an IMEI only if no report is
//! open, bind an owner only if none is bound). [`Store::transact`] runs the rule's decision
//! under the store's write lock, so no other write can come between the read and the write,
//! and writes everything the decision produced (list entries, history events, account
//! records, the audit entry) in one RocksDB batch: all of it is durable, or none of it.
//! Memory (filters, indexes, sizes) follows only after the batch is in the WAL.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::audit::next_entry;
use super::{AuditHead, List, RawRecord, Store, StoreError};
use crate::imei::Imei;

/// A sealing function that owns what it seals (see [`SealAudit`](super::SealAudit)).
pub type OwnedSeal = Box<dyn Fn(AuditHead) -> (Vec<u8>, [u8; 32]) + Send>;

/// List entries to put: each an IMEI and its encoded record, the records kept in one buffer.
/// A 50,000-line upload batch costs two allocations instead of one per line: the per-line
/// vectors were allocated by the upload's reader thread and freed by its writer thread, a
/// malloc and a cross-thread free per line.
#[derive(Default)]
pub struct Puts {
    /// List, IMEI, and where its record ends in `bytes` (it starts where the previous one ends).
    entries: Vec<(List, Imei, usize)>,
    bytes: Vec<u8>,
}

impl Puts {
    /// Room for `entries` records of `bytes` bytes in all.
    pub fn with_capacity(entries: usize, bytes: usize) -> Puts {
        Puts {
            entries: Vec::with_capacity(entries),
            bytes: Vec::with_capacity(bytes),
        }
    }

    /// One entry.
    pub fn one(list: List, imei: Imei, record: &[u8]) -> Puts {
        let mut puts = Puts::with_capacity(1, record.len());
        puts.push(list, imei, record);
        puts
    }

    /// Adds an entry.
    pub fn push(&mut self, list: List, imei: Imei, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.entries.push((list, imei, self.bytes.len()));
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of all records together.
    pub fn record_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The entries in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = (List, Imei, &[u8])> {
        let starts = std::iter::once(0).chain(self.entries.iter().map(|&(_, _, end)| end));
        (self.entries.iter())
            .zip(starts)
            .map(|(&(list, imei, end), start)| (list, imei, &self.bytes[start..end]))
    }
}

/// Everything one decision writes.
#[derive(Default)]
pub struct Mutation {
    /// List entries to put.
    pub puts: Puts,
    /// List entries to remove.
    pub deletes: Vec<(List, Imei)>,
    /// History events to append, per IMEI, in order.
    pub history: Vec<(Imei, Vec<u8>)>,
    /// Account records to put.
    pub records: Vec<RawRecord>,
    /// The audit entry recording the change.
    pub audit: Option<OwnedSeal>,
    /// On a read replica: the number of the last central change this mutation applies.
    pub replicated: Option<u64>,
}

impl Mutation {
    /// Whether it writes nothing.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
            && self.deletes.is_empty()
            && self.history.is_empty()
            && self.records.is_empty()
            && self.audit.is_none()
            && self.replicated.is_none()
    }
}

impl Store {
    /// Runs `decide` under the write lock and writes the mutation it returns, atomically.
    /// `decide` may read the store (`contains`, `get`, `history`) but must not write to it.
    /// Returns what `decide` returned beside the mutation.
    ///
    /// # Errors
    /// Whatever `decide` returns (nothing is written then), or [`StoreError::Write`]
    /// converted into `E` (nothing was written).
    pub fn transact<T, E: From<StoreError>>(
        &self,
        decide: impl FnOnce(&Store) -> Result<(Mutation, T), E>,
    ) -> Result<T, E> {
        let mut heads = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (mutation, answer) = decide(self)?;
        if mutation.is_empty() {
            return Ok(answer);
        }
        let sealed = mutation
            .audit
            .as_ref()
            .map(|seal| next_entry(heads.audit, seal.as_ref()));
        let (negative_seq, outbox_seq) = self.rocks.write_mutation(
            &mutation,
            heads.history_seq,
            heads.negative_seq,
            // a store that ever numbered its changes keeps numbering them (opened once
            // without the outbox, it would leave replicas a hole they cannot see)
            (self.outbox || heads.outbox_seq > 1).then_some(heads.outbox_seq),
            sealed
                .as_ref()
                .map(|(entry, head)| (*head, entry.as_slice())),
        )?;
        heads.negative_seq = negative_seq;
        if let Some(next) = outbox_seq.filter(|&next| next != heads.outbox_seq) {
            heads.outbox_seq = next;
            self.last_change.store(next - 1, Ordering::Release);
            self.committed.notify_one();
        }
        heads.history_seq += mutation.history.len() as u64;
        if let Some(through) = mutation.replicated {
            self.replicated.store(through, Ordering::Release);
        }
        if let Some((_, head)) = sealed {
            heads.audit = head;
        }
        for list in List::ALL {
            let put: Vec<Imei> = (mutation.puts.iter())
                .filter(|&(on, _, _)| on == list)
                .map(|(_, imei, _)| imei)
                .collect();
            if put.is_empty() {
                continue;
            }
            self.filters[list.index()].insert_many(&put);
            let added = self.indexes[list.index()].insert_many(&put);
            self.sizes[list.index()].fetch_add(added, Ordering::Relaxed);
        }
        for &(list, imei) in &mutation.deletes {
            if self.indexes[list.index()].remove(imei) {
                self.filters[list.index()].note_removed();
                self.sizes[list.index()].fetch_sub(1, Ordering::Relaxed);
            }
        }
        if !mutation.puts.is_empty() || !mutation.deletes.is_empty() {
            self.publish_sizes();
        }
        Ok(answer)
    }

    /// A consistent export of the negative list: `f` gets each entry of a snapshot; returns
    /// the number of the last change the snapshot includes (ask for changes after it).
    ///
    /// # Errors
    /// [`StoreError::Read`].
    /// `snapshot_taken` gets that number before the first entry.
    pub fn export_negative(
        &self,
        snapshot_taken: impl FnOnce(u64),
        f: impl FnMut(Imei, &[u8]) -> bool,
    ) -> Result<u64, StoreError> {
        let heads = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let seq = heads.negative_seq - 1;
        self.rocks.scan_values(
            List::Negative,
            move || {
                drop(heads);
                snapshot_taken(seq);
            },
            f,
        )?;
        Ok(seq)
    }

    /// The negative-list changes after `after`: `f(seq, listed, imei)` in order, until it
    /// returns `false`. `Ok(None)` if a bulk load since `after` was not logged change by
    /// change (the caller must fetch the full list).
    ///
    /// # Errors
    /// [`StoreError::Read`].
    pub fn negative_changes(
        &self,
        after: u64,
        f: impl FnMut(u64, bool, Imei) -> bool,
    ) -> Result<Option<()>, StoreError> {
        if self.rocks.negative_bulk_seq()? > after {
            return Ok(None);
        }
        self.rocks.negative_changes(after, f)?;
        Ok(Some(()))
    }

    /// The stored history events of `imei`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Read`].
    pub fn history(&self, imei: Imei) -> Result<Vec<Vec<u8>>, StoreError> {
        self.rocks.history(imei)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::open;
    use super::*;
    use crate::store::{ListRecord, NegativeRecord, PositiveRecord};

    #[test]
    fn puts_give_back_each_record_in_order() {
        let records: [&[u8]; 4] = [b"first", b"", b"third record", b"4"];
        let mut puts = Puts::with_capacity(1, 1);
        for (i, record) in records.iter().enumerate() {
            let list = if i % 2 == 0 {
                List::Positive
            } else {
                List::Negative
            };
            puts.push(list, imei(i as u64), record);
        }
        assert_eq!(puts.len(), 4);
        assert_eq!(puts.record_bytes(), 18);
        let back: Vec<(List, Imei, &[u8])> = puts.iter().collect();
        for (i, (list, at, record)) in back.into_iter().enumerate() {
            assert_eq!(
                list,
                if i % 2 == 0 {
                    List::Positive
                } else {
                    List::Negative
                }
            );
            assert_eq!((at, record), (imei(i as u64), records[i]));
        }
        assert!(Puts::default().is_empty() && Puts::default().iter().next().is_none());
    }

    fn imei(n: u64) -> Imei {
        Imei::from_body(35_000_000_000_000 + n).unwrap()
    }

    #[test]
    fn a_mutation_moves_an_imei_between_lists_with_history_and_audit_at_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.insert(imei(1), &NegativeRecord::default()).unwrap();
            let moved: Result<bool, StoreError> = store.transact(|s| {
                let was = s.contains(List::Negative, imei(1));
                Ok((
                    Mutation {
                        puts: Puts::one(
                            List::Positive,
                            imei(1),
                            &PositiveRecord::default().encode(),
                        ),
                        deletes: vec![(List::Negative, imei(1))],
                        history: vec![(imei(1), b"recovered".to_vec()), (imei(2), b"x".to_vec())],
                        audit: Some(Box::new(|head: AuditHead| {
                            (b"entry".to_vec(), [head.seq as u8 + 1; 32])
                        })),
                        ..Mutation::default()
                    },
                    was,
                ))
            });
            assert!(moved.unwrap());
            assert!(!store.contains(List::Negative, imei(1)));
            assert!(store.contains(List::Positive, imei(1)));
            assert_eq!(
                (store.len(List::Positive), store.len(List::Negative)),
                (1, 0)
            );
            assert_eq!(store.audit_head().seq, 1);
            // a refused decision writes nothing
            let refused: Result<(), StoreError> =
                store.transact(|_| Err(StoreError::CorruptAuditKey));
            assert!(refused.is_err());
            store
                .transact(|_| {
                    Ok::<_, StoreError>((
                        Mutation {
                            history: vec![(imei(1), b"later".to_vec())],
                            ..Mutation::default()
                        },
                        (),
                    ))
                })
                .unwrap();
        }
        let store = open(dir.path());
        assert!(
            store.contains(List::Positive, imei(1)) && !store.contains(List::Negative, imei(1))
        );
        assert_eq!(
            store.history(imei(1)).unwrap(),
            [b"recovered".to_vec(), b"later".to_vec()]
        );
        assert_eq!(store.history(imei(2)).unwrap(), [b"x".to_vec()]);
        assert!(store.history(imei(3)).unwrap().is_empty());
        assert_eq!(store.audit_head().seq, 1);
    }
}
