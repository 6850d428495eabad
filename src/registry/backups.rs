//! Online backups of the whole registry (lists, records, history, accounts, audit trail), and
//! the proof that a restored copy holds exactly what was backed up.
//!
//! Who: the regulator's administrators ([`Permission::Backup`]) over the API, and the
//! `[backup]` schedule; each backup, taken or failed, is in the audit trail with the digests it
//! recorded. Where: only the configured `backup.dir`, never a path from a request. The
//! mechanics (a checkpoint under the write lock, then RocksDB's `BackupEngine`) are the
//! store's; checks never wait for a backup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Registry, RegistryError};
use crate::accounts::Principal;
use crate::audit::{self, Action, Actor, Event, Outcome, Verified};
use crate::metrics::Metrics;
use crate::roles::Permission;
use crate::store::{self, BackupInfo, Digests, Store, StoreError, StoreOptions};
use crate::timefmt::now_unix;

/// Where and how often backups are taken (`[backup]` in the configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct BackupSettings {
    /// The backup directory; `None`: backups are off.
    pub dir: Option<PathBuf>,
    /// Backups kept in it; older ones are removed after each new one.
    pub keep: usize,
    /// How often the schedule takes one; `None`: only on request.
    pub every: Option<Duration>,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            dir: None,
            keep: 7,
            every: None,
        }
    }
}

/// Who asked for a backup.
#[derive(Clone, Copy)]
pub enum BackupBy<'a> {
    /// A person or machine over the API.
    Caller(&'a Principal),
    /// The `[backup]` schedule.
    Schedule,
}

impl Registry {
    /// Takes a backup into `settings.dir` and records it in the audit trail.
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] (audited) without [`Permission::Backup`];
    /// [`RegistryError::Conflict`] if backups are off or one is being taken already;
    /// [`RegistryError::Store`] if it failed (audited as failed).
    pub fn backup(
        &self,
        by: BackupBy,
        settings: &BackupSettings,
    ) -> Result<BackupInfo, RegistryError> {
        const TARGET: &str = "registry/backups";
        let actor = match by {
            BackupBy::Caller(principal) => {
                self.require(principal, Permission::Backup, Action::BackupCreate, TARGET)?;
                principal.actor()
            }
            BackupBy::Schedule => Actor::Console {
                command: "the backup schedule (backup.every_hours)".into(),
            },
        };
        let Some(dir) = &settings.dir else {
            return Err(RegistryError::Conflict(
                "backups are off: set backup.dir in the configuration".into(),
            ));
        };
        let taken = self.store.backup(dir, settings.keep, now_unix());
        let (outcome, detail) = match &taken {
            Ok(info) => (Outcome::Done, describe(info)),
            Err(StoreError::BackupRunning) => {
                return Err(RegistryError::Conflict(
                    StoreError::BackupRunning.to_string(),
                ));
            }
            Err(e) => (Outcome::Failed, format!("backup failed: {e}")),
        };
        let event = Event {
            actor,
            action: Action::BackupCreate,
            target: TARGET.into(),
            outcome,
            reason: None,
            detail: Some(detail),
        };
        self.store.append_audit(&audit::seal(&event, now_unix()))?;
        Ok(taken?)
    }

    /// The backups in `settings.dir`, oldest first, with what each holds.
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] (audited) without [`Permission::Backup`];
    /// [`RegistryError::Store`] if the directory or a backup's record is unreadable.
    pub fn backups(
        &self,
        principal: &Principal,
        settings: &BackupSettings,
    ) -> Result<Vec<BackupInfo>, RegistryError> {
        self.require(
            principal,
            Permission::Backup,
            Action::BackupCreate,
            "registry/backups",
        )?;
        match &settings.dir {
            None => Ok(Vec::new()),
            Some(dir) => Ok(self.store.backups_in(dir)?),
        }
    }
}

/// One line for the audit trail and the log: the backup's id and what it holds.
pub fn describe(info: &BackupInfo) -> String {
    let d = &info.digests;
    format!(
        "backup {}: positive {} entries (sha256 {}), negative {} entries (sha256 {}), audit trail {} entries (head {})",
        info.id,
        d.positive.entries,
        d.positive.records,
        d.negative.entries,
        d.negative.records,
        d.audit.entries,
        d.audit.head,
    )
}

/// What a restored copy was found to hold, beside what its backup recorded.
pub struct Restored {
    /// What the backup recorded when it was taken.
    pub recorded: BackupInfo,
    /// What the restored copy holds.
    pub found: Digests,
    /// The restored audit trail's chain, checked link by link.
    pub chain: Result<Verified, audit::Broken>,
}

impl Restored {
    /// Whether the copy holds exactly what was backed up, with an intact audit chain.
    pub fn is_exact(&self) -> bool {
        self.found == self.recorded.digests && self.chain.is_ok()
    }

    /// What differs, one line each; empty if [`Restored::is_exact`].
    pub fn differences(&self) -> Vec<String> {
        let (want, got) = (&self.recorded.digests, &self.found);
        let mut out = Vec::new();
        for (name, w, g) in [
            ("positive list", &want.positive, &got.positive),
            ("negative list", &want.negative, &got.negative),
        ] {
            if w != g {
                out.push(format!(
                    "{name}: recorded {} entries (sha256 {}), found {} (sha256 {})",
                    w.entries, w.records, g.entries, g.records
                ));
            }
        }
        if want.audit != got.audit {
            out.push(format!(
                "audit trail: recorded {} entries (head {}), found {} (head {})",
                want.audit.entries, want.audit.head, got.audit.entries, got.audit.head
            ));
        }
        if let Err(broken) = &self.chain {
            out.push(format!("audit trail: {broken}"));
        }
        out
    }
}

/// Restores backup `id` (the latest if `None`) from `dir` into `data_dir` (new or empty),
/// opens it and proves what it holds against what the backup recorded.
///
/// # Errors
/// [`StoreError`]s of the restore or of opening the copy.
pub fn restore(
    dir: &Path,
    id: Option<u32>,
    data_dir: &Path,
    options: &StoreOptions,
) -> Result<Restored, StoreError> {
    let recorded = store::restore_backup(dir, id, data_dir)?;
    let copy = Store::open(data_dir, options, &Metrics::new())?;
    Ok(Restored {
        recorded,
        found: copy.digests()?,
        chain: audit::verify(&copy),
    })
}

/// Verifies backup `id` of `dir`: its files are all there, and restored into a scratch
/// directory under `scratch` (removed afterwards) it holds what it recorded.
///
/// # Errors
/// [`StoreError`]s of the check, the restore or of opening the copy.
pub fn verify(
    dir: &Path,
    id: u32,
    scratch: &Path,
    options: &StoreOptions,
) -> Result<Restored, StoreError> {
    store::verify_backup_files(dir, id)?;
    // the copy holds the whole registry, owners' IDs included: in a directory only this user
    // may enter, made fresh (never one that was there: it could be a link elsewhere)
    let private = scratch.join(format!("imeidb-verify-{}-{id}", std::process::id()));
    let mut builder = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&private).map_err(|source| StoreError::Io {
        what: "creating a private scratch directory for the verification",
        source,
    })?;
    let proven = restore(dir, Some(id), &private.join("data"), options);
    let _ = std::fs::remove_dir_all(&private);
    proven
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Credential;
    use crate::accounts::token::TokenId;
    use crate::registry::tests::fixture;
    use crate::roles::{OrgKind, Role};

    fn principal_with(role: Role, org_kind: OrgKind) -> Principal {
        Principal {
            user: 2,
            org: 1,
            org_kind,
            roles: vec![role],
            credential: Credential::Token(TokenId(1)),
            issued_by: None,
        }
    }

    #[test]
    fn only_the_regulator_backs_up_and_each_backup_is_audited_and_proven() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture();
        let registry = &f.registry;
        let settings = BackupSettings {
            dir: Some(dir.path().join("backups")),
            ..BackupSettings::default()
        };
        let operator = principal_with(Role::Operator, OrgKind::Operator);
        let refused = registry.backup(BackupBy::Caller(&operator), &settings);
        assert!(matches!(refused, Err(RegistryError::Forbidden)));
        let regulator = principal_with(Role::RegulatorAdmin, OrgKind::Regulator);
        let off = registry.backup(BackupBy::Caller(&regulator), &BackupSettings::default());
        assert!(matches!(off, Err(RegistryError::Conflict(ref m)) if m.contains("backup.dir")));

        let info = registry
            .backup(BackupBy::Caller(&regulator), &settings)
            .unwrap();
        let scheduled = registry.backup(BackupBy::Schedule, &settings).unwrap();
        assert!(scheduled.id > info.id);
        // the scheduled backup holds the entry recording the first one
        assert_eq!(
            scheduled.digests.audit.entries,
            info.digests.audit.entries + 1
        );
        let listed = registry.backups(&regulator, &settings).unwrap();
        assert_eq!(listed, [info.clone(), scheduled.clone()]);

        let trail = registry.store().audit_head().seq;
        assert_eq!(trail, scheduled.digests.audit.entries + 1);

        let restored = restore(
            settings.dir.as_deref().unwrap(),
            Some(info.id),
            &dir.path().join("restored"),
            &StoreOptions::default(),
        )
        .unwrap();
        assert!(restored.is_exact(), "{:?}", restored.differences());
        let verified = verify(
            settings.dir.as_deref().unwrap(),
            scheduled.id,
            dir.path(),
            &StoreOptions::default(),
        )
        .unwrap();
        assert!(verified.is_exact(), "{:?}", verified.differences());
    }
}
