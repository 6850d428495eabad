//! The store's side of the audit trail: an append-only sequence of entries, each written in
//! the same atomic batch as the change it records (see `directory.rs` and `mutation.rs`).
//!
//! The store does not know what an entry says or how it is hashed (`crate::audit` does);
//! it keeps the order: entries are numbered from 1 under the write lock, each sealed by a
//! function that is handed the head it follows (the previous entry's number and hash), and the
//! new head is stored with the entry. So there is one chain, with no gap and no fork, and a
//! change is never durable without its entry, nor an entry without its change.

use std::sync::PoisonError;

use super::{Store, StoreError};

/// The audit trail's last entry: its sequence number and hash; all zero before the first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditHead {
    /// Sequence number of the last entry (the first entry is 1).
    pub seq: u64,
    /// SHA-256 of the last entry's stored bytes.
    pub hash: [u8; 32],
}

impl AuditHead {
    pub(super) fn to_bytes(self) -> [u8; 40] {
        let mut bytes = [0u8; 40];
        bytes[..8].copy_from_slice(&self.seq.to_be_bytes());
        bytes[8..].copy_from_slice(&self.hash);
        bytes
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Option<AuditHead> {
        let bytes: &[u8; 40] = bytes.try_into().ok()?;
        let (seq, hash) = bytes.split_at(8);
        Some(AuditHead {
            seq: u64::from_be_bytes(seq.try_into().ok()?),
            hash: hash.try_into().ok()?,
        })
    }
}

/// Seals one audit entry: given the head it follows, returns the entry's bytes and their hash.
/// Called under the store's write lock, so it must be quick and must not call the store.
pub type SealAudit<'a> = &'a dyn Fn(AuditHead) -> (Vec<u8>, [u8; 32]);

/// Seals the entry after `head`; returns its bytes and the head it makes.
pub(super) fn next_entry(head: AuditHead, seal: SealAudit) -> (Vec<u8>, AuditHead) {
    let (entry, hash) = seal(head);
    (
        entry,
        AuditHead {
            seq: head.seq + 1,
            hash,
        },
    )
}

impl Store {
    /// Appends one audit entry that records no stored change (an authority's lookup, a
    /// refused attempt, a bulk import). Returns the new head.
    ///
    /// # Errors
    /// [`StoreError::Write`]; the entry was not written then.
    pub fn append_audit(&self, seal: SealAudit) -> Result<AuditHead, StoreError> {
        self.write_records(&[], Some(seal))
    }

    /// The head as of the last appended entry.
    pub fn audit_head(&self) -> AuditHead {
        self.write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .audit
    }

    /// Calls `f` with the sequence number and stored bytes of each audit entry after `after`,
    /// in order, until `f` returns `false`.
    ///
    /// # Errors
    /// [`StoreError::Read`], or [`StoreError::CorruptAuditKey`] for a key that is not a
    /// sequence number.
    pub fn audit_entries(
        &self,
        after: u64,
        f: impl FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.rocks.audit_entries(after, f)
    }
}

#[cfg(test)]
impl Store {
    /// Changes the stored bytes of audit entry `seq` behind the store's back, as someone
    /// editing the files would.
    pub(crate) fn tamper_audit_entry(&self, seq: u64, f: impl FnOnce(&mut Vec<u8>)) {
        self.rocks.tamper_audit_entry(seq, f);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::open;
    use super::*;

    fn seal_with(text: &'static str) -> impl Fn(AuditHead) -> (Vec<u8>, [u8; 32]) {
        move |head: AuditHead| {
            let mut hash = head.hash;
            hash[0] = hash[0].wrapping_add(1);
            (format!("{}:{text}", head.seq + 1).into_bytes(), hash)
        }
    }

    #[test]
    fn entries_are_numbered_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            assert_eq!(store.audit_head(), AuditHead::default());
            let head = store
                .write_records(&[(b"k".to_vec(), b"v".to_vec())], Some(&seal_with("a")))
                .unwrap();
            assert_eq!(head.seq, 1);
            store.append_audit(&seal_with("b")).unwrap();
            // a write without an entry leaves the head where it was
            let head = store
                .write_records(&[(b"k2".to_vec(), b"v2".to_vec())], None)
                .unwrap();
            assert_eq!(head.seq, 2);
        }
        let store = open(dir.path());
        assert_eq!(store.audit_head().seq, 2);
        assert_eq!(store.audit_head().hash[0], 2);
        let mut seen = Vec::new();
        store
            .audit_entries(0, |seq, bytes| {
                seen.push((seq, String::from_utf8(bytes.to_vec()).unwrap()));
                true
            })
            .unwrap();
        assert_eq!(seen, [(1, "1:a".to_string()), (2, "2:b".to_string())]);
        let mut after_first = Vec::new();
        store
            .audit_entries(1, |seq, _| {
                after_first.push(seq);
                true
            })
            .unwrap();
        assert_eq!(after_first, [2]);
        assert_eq!(
            store.records_with_prefix(b"").unwrap(),
            [
                (b"k".to_vec(), b"v".to_vec()),
                (b"k2".to_vec(), b"v2".to_vec())
            ]
        );
    }

    #[test]
    fn head_bytes_round_trip_and_reject_other_lengths() {
        let head = AuditHead {
            seq: 7,
            hash: [9; 32],
        };
        assert_eq!(AuditHead::from_bytes(&head.to_bytes()), Some(head));
        assert_eq!(AuditHead::from_bytes(&[0; 39]), None);
    }
}
