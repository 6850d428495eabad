//! The directory: the keyed records of who uses the registry (organisations, users, tokens)
//! and of the authorised sellers, opaque to the store. Each owner reads its own key prefix
//! (`org/`, `user/`, `token/`, `seller/`), and each write carries the audit entry that records
//! it, in one atomic batch (`audit.rs`).

use std::sync::PoisonError;

use super::audit::next_entry;
use super::{AuditHead, SealAudit, Store, StoreError};

/// A stored record: key and value bytes.
pub type RawRecord = (Vec<u8>, Vec<u8>);

impl Store {
    /// The stored records whose keys start with `prefix` (e.g. `seller/`), in key order.
    ///
    /// # Errors
    /// [`StoreError::Read`].
    pub fn records_with_prefix(&self, prefix: &[u8]) -> Result<Vec<RawRecord>, StoreError> {
        self.rocks.account_entries_with_prefix(prefix)
    }

    /// Writes records and, with `audit`, the audit entry that records the change, in
    /// one atomic batch. Returns the new audit head. When this returns, both are in the WAL.
    ///
    /// # Errors
    /// [`StoreError::Write`]; nothing was written then, and the head did not move.
    pub fn write_records(
        &self,
        puts: &[RawRecord],
        audit: Option<SealAudit>,
    ) -> Result<AuditHead, StoreError> {
        let mut heads = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(seal) = audit else {
            self.rocks.write_accounts(puts, None)?;
            return Ok(heads.audit);
        };
        let (entry, next) = next_entry(heads.audit, seal);
        self.rocks.write_accounts(puts, Some((next, &entry)))?;
        heads.audit = next;
        Ok(next)
    }
}
