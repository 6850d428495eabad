//! Online backups and what a registry holds in numbers a person can compare.
//!
//! A backup is taken in two steps so that writes wait only for the first:
//! 1. under the write lock, a RocksDB checkpoint of the live store into
//!    `<data_dir>/backup-checkpoint` (hard links to the table files and a flush of the
//!    memtables: no write can fall between the lists, the history and the audit trail);
//! 2. with the lock released, the checkpoint is opened as a database of its own, its
//!    [`Digests`] computed, and RocksDB's `BackupEngine` copies it into the backup directory
//!    (incremental: table files already there from an earlier backup are shared). The digests
//!    are written beside it as `imeidb-backup-<id>.json`, so a restore or a verification can
//!    prove it holds exactly what was backed up.
//!
//! Checks never take the write lock: they go on throughout.

use std::path::{Path, PathBuf};
use std::sync::PoisonError;

use rocksdb::backup::{BackupEngine, BackupEngineOptions, RestoreOptions};
use rocksdb::checkpoint::Checkpoint;
use rocksdb::{Env, ReadOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::rocks::{AUDIT_HEAD_KEY, RocksStore};
use super::{AuditHead, List, Store, StoreError, StoreOptions};
use crate::hex::hex;

/// One list in numbers: how many entries, a SHA-256 of its IMEIs (what a check answers from,
/// the same on a replica) and one of its IMEIs with their records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDigest {
    /// Entries on the list.
    pub entries: u64,
    /// SHA-256 of the 8-byte keys of its IMEIs, in order.
    pub members: String,
    /// SHA-256 of each IMEI's key, its record's length (8 bytes, big-endian) and its record.
    pub records: String,
}

/// The audit trail in numbers: its length and the hash of its last entry (which chains every
/// earlier one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDigest {
    /// Entries in the trail.
    pub entries: u64,
    /// SHA-256 of the last entry (hex); all zeros before the first.
    pub head: String,
}

/// What a registry holds, as one consistent snapshot: two registries with equal digests hold
/// the same lists, records and audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    /// The positive list.
    pub positive: ListDigest,
    /// The negative list.
    pub negative: ListDigest,
    /// The audit trail.
    pub audit: AuditDigest,
}

impl Digests {
    /// The digest of `list`.
    pub fn list(&self, list: List) -> &ListDigest {
        match list {
            List::Positive => &self.positive,
            List::Negative => &self.negative,
        }
    }
}

/// One backup in a backup directory, as recorded when it was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// RocksDB's backup id (increasing).
    pub id: u32,
    /// When it was taken (Unix seconds).
    pub taken_at: u64,
    /// Bytes of the files it uses (shared files counted in every backup that uses them).
    pub bytes: u64,
    /// Files it uses.
    pub files: u32,
    /// What it holds.
    pub digests: Digests,
}

/// The checkpoint a backup is copied from, inside the data directory (hard links need the same
/// file system).
const CHECKPOINT_DIR: &str = "backup-checkpoint";

fn backup_error(what: &'static str) -> impl FnOnce(rocksdb::Error) -> StoreError {
    move |source| StoreError::Backup { what, source }
}

fn record_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("imeidb-backup-{id}.json"))
}

fn open_engine(dir: &Path) -> Result<BackupEngine, StoreError> {
    let options =
        BackupEngineOptions::new(dir).map_err(backup_error("opening the backup directory"))?;
    let env = Env::new().map_err(backup_error("opening the backup directory"))?;
    BackupEngine::open(&options, &env).map_err(backup_error("opening the backup directory"))
}

/// The record of backup `id` in `dir`; a missing or unreadable one is an error naming it (the
/// backup cannot be proven without it).
fn read_record(dir: &Path, id: u32) -> Result<BackupInfo, StoreError> {
    let path = record_path(dir, id);
    let text = std::fs::read_to_string(&path).map_err(|source| StoreError::Io {
        what: "reading a backup's record (imeidb-backup-<id>.json)",
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| StoreError::BackupRecord {
        path,
        problem: e.to_string(),
    })
}

/// The backups in `dir`, oldest first, with what each was recorded to hold; a backup whose
/// record is missing or unreadable is left out (and logged): it cannot be proven.
///
/// # Errors
/// [`StoreError::Backup`] if `dir` is not a backup directory.
pub fn backups(dir: &Path) -> Result<Vec<BackupInfo>, StoreError> {
    if !dir.join("meta").is_dir() {
        return Ok(Vec::new());
    }
    let engine = open_engine(dir)?;
    let mut found = engine.get_backup_info();
    found.sort_by_key(|b| b.backup_id);
    let mut recorded = Vec::with_capacity(found.len());
    for backup in found {
        match read_record(dir, backup.backup_id) {
            Ok(info) => recorded.push(info),
            // taken, but its record never written (a crash, a full disk): it cannot be proven,
            // and must not keep the others from being listed, verified or restored
            Err(e) => {
                tracing::warn!(backup = backup.backup_id, error = %e, "a backup without a readable record is left out")
            }
        }
    }
    Ok(recorded)
}

/// Checks that every file of backup `id` in `dir` is there. (Their contents are proven by
/// restoring it, which checks each file's checksum, and comparing digests.)
///
/// # Errors
/// [`StoreError::Backup`] naming what is missing or wrong.
pub fn verify_backup_files(dir: &Path, id: u32) -> Result<(), StoreError> {
    open_engine(dir)?
        .verify_backup(id)
        .map_err(backup_error("verifying the backup's files"))
}

/// Restores backup `id` (the latest if `None`) from `dir` into `data_dir`, which must not exist
/// or be empty, and returns what the backup was recorded to hold. Open the store there and
/// compare its [`Store::digests`] with it.
///
/// # Errors
/// [`StoreError::RestoreTarget`] if `data_dir` holds anything, [`StoreError::NoBackup`],
/// [`StoreError::Backup`] if RocksDB fails to restore, record errors as [`backups`].
pub fn restore_backup(
    dir: &Path,
    id: Option<u32>,
    data_dir: &Path,
) -> Result<BackupInfo, StoreError> {
    let occupied = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(StoreError::Io {
                what: "reading the directory to restore into",
                source,
            });
        }
    };
    if occupied {
        return Err(StoreError::RestoreTarget {
            path: data_dir.to_path_buf(),
        });
    }
    let recorded = backups(dir)?;
    let info = match id {
        None => recorded.last(),
        Some(id) => recorded.iter().find(|b| b.id == id),
    }
    .cloned()
    .ok_or_else(|| StoreError::NoBackup {
        dir: dir.to_path_buf(),
        id,
    })?;
    let mut engine = open_engine(dir)?;
    let mut options = RestoreOptions::default();
    options.set_keep_log_files(false);
    engine
        .restore_from_backup(data_dir, data_dir, &options, info.id)
        .map_err(backup_error("restoring the backup"))?;
    Ok(info)
}

impl Store {
    /// Backs the running store up into `dir` (created if missing) and keeps the newest `keep`
    /// backups there. Writes wait only while the checkpoint is cut (see the module doc);
    /// checks never wait. One backup runs at a time.
    ///
    /// # Errors
    /// [`StoreError::BackupRunning`] if another is running; [`StoreError::Backup`] or
    /// [`StoreError::Io`] if it could not be taken (nothing is recorded then).
    pub fn backup(&self, dir: &Path, keep: usize, now: u64) -> Result<BackupInfo, StoreError> {
        let _one = self
            .backup_running
            .try_lock()
            .map_err(|_| StoreError::BackupRunning)?;
        let staging = self.rocks.path().join(CHECKPOINT_DIR);
        remove_dir_if_there(&staging)?; // left by a crash mid-backup
        {
            let _writes = self
                .write_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.rocks.checkpoint(&staging)?;
        }
        let taken = copy_checkpoint(&staging, dir, keep, now);
        remove_dir_if_there(&staging)?;
        taken
    }

    /// [`backups`] of `dir`, never while this store is writing a backup there (RocksDB leaves
    /// a backup directory opened twice at once, during a write, undefined).
    ///
    /// # Errors
    /// As [`backups`].
    pub fn backups_in(&self, dir: &Path) -> Result<Vec<BackupInfo>, StoreError> {
        let _one = self
            .backup_running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        backups(dir)
    }

    /// What the store holds now, from one RocksDB snapshot (writes go on meanwhile; they are
    /// not counted). Scans both lists: seconds at tens of millions of entries.
    ///
    /// # Errors
    /// [`StoreError::Read`], [`StoreError::CorruptAuditHead`].
    pub fn digests(&self) -> Result<Digests, StoreError> {
        self.rocks.digests()
    }
}

fn remove_dir_if_there(dir: &Path) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
            what: "removing the backup checkpoint",
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Step 2 of a backup: digests of the checkpoint, then its copy into `dir`.
fn copy_checkpoint(
    staging: &Path,
    dir: &Path,
    keep: usize,
    now: u64,
) -> Result<BackupInfo, StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        what: "creating the backup directory",
        source,
    })?;
    let copy = RocksStore::open(
        staging,
        &StoreOptions {
            block_cache_bytes: 8 << 20,
            sync_writes: false,
            ..StoreOptions::default()
        },
    )?;
    let digests = copy.digests()?;
    let mut engine = open_engine(dir)?;
    engine
        .create_new_backup_flush(copy.db(), true)
        .map_err(backup_error(
            "copying the checkpoint into the backup directory",
        ))?;
    let made = engine
        .get_backup_info()
        .into_iter()
        .max_by_key(|b| b.backup_id)
        .ok_or(StoreError::BackupRecord {
            path: dir.to_path_buf(),
            problem: "RocksDB lists no backup after taking one".into(),
        })?;
    let info = BackupInfo {
        id: made.backup_id,
        taken_at: now,
        bytes: made.size,
        files: made.num_files,
        digests,
    };
    let text = serde_json::to_string_pretty(&info).expect("a backup record serialises");
    write_durably(&record_path(dir, info.id), text.as_bytes())?;
    engine
        .purge_old_backups(keep.max(1))
        .map_err(backup_error("removing backups older than backup.keep"))?;
    let live: Vec<u32> = engine
        .get_backup_info()
        .iter()
        .map(|b| b.backup_id)
        .collect();
    forget_purged_records(dir, &live);
    Ok(info)
}

/// Writes `bytes` to `path` through a temporary file and a rename, synced: a crash leaves the
/// old record or the new one, never half of one.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let io = |what| move |source| StoreError::Io { what, source };
    let partial = path.with_extension("json.partial");
    let mut file = std::fs::File::create(&partial).map_err(io("writing a backup's record"))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io("writing a backup's record"))?;
    std::fs::rename(&partial, path).map_err(io("writing a backup's record"))
}

/// Removes the records of backups RocksDB no longer holds.
fn forget_purged_records(dir: &Path, live: &[u32]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_prefix("imeidb-backup-"))
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<u32>().ok());
        if id.is_some_and(|id| !live.contains(&id)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl RocksStore {
    /// A checkpoint of the whole database in `dir` (which must not exist).
    pub(super) fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        Checkpoint::new(self.db())
            .and_then(|checkpoint| checkpoint.create_checkpoint(dir))
            .map_err(backup_error("cutting a checkpoint of the store"))
    }

    /// [`Digests`] of one snapshot of the database.
    pub(super) fn digests(&self) -> Result<Digests, StoreError> {
        let snapshot = self.db().snapshot();
        let head = match snapshot
            .get_cf(self.meta_cf(), AUDIT_HEAD_KEY)
            .map_err(StoreError::Read)?
        {
            None => AuditHead::default(),
            Some(bytes) => AuditHead::from_bytes(&bytes).ok_or(StoreError::CorruptAuditHead)?,
        };
        let [positive, negative] = List::ALL.map(|list| {
            let mut read_opts = ReadOptions::default();
            read_opts.fill_cache(false);
            read_opts.set_readahead_size(4 << 20);
            let mut iter = snapshot.raw_iterator_cf_opt(self.cf(list), read_opts);
            iter.seek_to_first();
            let (mut members, mut records, mut entries) = (Sha256::new(), Sha256::new(), 0u64);
            while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
                members.update(key);
                records.update(key);
                records.update((value.len() as u64).to_be_bytes());
                records.update(value);
                entries += 1;
                iter.next();
            }
            iter.status()
                .map_err(StoreError::Read)
                .map(|()| ListDigest {
                    entries,
                    members: hex(&members.finalize()),
                    records: hex(&records.finalize()),
                })
        });
        Ok(Digests {
            positive: positive?,
            negative: negative?,
            audit: AuditDigest {
                entries: head.seq,
                head: hex(&head.hash),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::super::tests::open;
    use super::*;
    use crate::imei::Imei;
    use crate::store::{ListRecord, NegativeRecord, PositiveRecord};

    fn imei(n: u64) -> Imei {
        Imei::from_body(35_000_000_000_000 + n).unwrap()
    }

    fn audit(store: &Store, text: &'static [u8]) {
        store
            .append_audit(&|head: AuditHead| {
                let mut hash = [0u8; 32];
                hash[..8].copy_from_slice(&(head.seq + 1).to_be_bytes());
                (text.to_vec(), hash)
            })
            .unwrap();
    }

    #[test]
    fn a_backup_taken_under_writes_restores_to_exactly_what_it_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let (data, backups_dir) = (dir.path().join("data"), dir.path().join("backups"));
        let store = Arc::new(open(&data));
        for n in 0..2_000 {
            store.insert(imei(n), &PositiveRecord::default()).unwrap();
        }
        store.insert(imei(7), &NegativeRecord::default()).unwrap();
        audit(&store, b"first");
        let before = store.digests().unwrap();
        assert_eq!(
            (
                before.positive.entries,
                before.negative.entries,
                before.audit.entries
            ),
            (2_000, 1, 1)
        );

        // writes go on while the backup is taken; it holds a consistent cut of them
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 10_000;
                while !stop.load(Ordering::Relaxed) {
                    store.insert(imei(n), &NegativeRecord::default()).unwrap();
                    n += 1;
                }
                n - 10_000
            })
        };
        let info = store.backup(&backups_dir, 3, 1_700_000_000).unwrap();
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().unwrap();
        assert!(written > 0);
        assert_eq!(info.digests.positive, before.positive);
        assert!(info.digests.negative.entries >= 1);
        assert!(
            !data.join(CHECKPOINT_DIR).exists(),
            "the checkpoint is removed"
        );
        assert_eq!(backups(&backups_dir).unwrap(), std::slice::from_ref(&info));
        verify_backup_files(&backups_dir, info.id).unwrap();

        let restored_dir = dir.path().join("restored");
        let recorded = restore_backup(&backups_dir, None, &restored_dir).unwrap();
        assert_eq!(recorded, info);
        let restored = open(&restored_dir);
        assert_eq!(restored.digests().unwrap(), info.digests);
        assert_eq!(
            restored.len(List::Negative),
            info.digests.negative.entries,
            "the restored store's filters and indexes hold what its lists hold"
        );
        assert_eq!(restored.audit_head(), store.audit_head());

        // a restore never writes over anything
        let refused = restore_backup(&backups_dir, None, &restored_dir).unwrap_err();
        assert!(
            matches!(refused, StoreError::RestoreTarget { .. }),
            "{refused}"
        );
        let missing = restore_backup(&backups_dir, Some(99), &dir.path().join("x")).unwrap_err();
        assert!(
            missing.to_string().contains("no backup with id 99"),
            "{missing}"
        );
    }

    #[test]
    fn backups_beyond_keep_are_purged_with_their_records_and_one_runs_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let backups_dir = dir.path().join("backups");
        let store = open(&dir.path().join("data"));
        let mut ids = Vec::new();
        for n in 0..3 {
            store.insert(imei(n), &PositiveRecord::default()).unwrap();
            ids.push(store.backup(&backups_dir, 2, n).unwrap().id);
        }
        let kept: Vec<u32> = backups(&backups_dir)
            .unwrap()
            .iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(kept, ids[1..]);
        assert!(!record_path(&backups_dir, ids[0]).exists());
        assert_eq!(
            backups(&backups_dir).unwrap()[1].digests.positive.entries,
            3
        );

        let _running = store.backup_running.lock().unwrap();
        let refused = store.backup(&backups_dir, 2, 9).unwrap_err();
        assert!(matches!(refused, StoreError::BackupRunning), "{refused}");
    }

    #[test]
    fn a_damaged_backup_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        let backups_dir = dir.path().join("backups");
        let store = open(&dir.path().join("data"));
        for n in 0..100 {
            store.insert(imei(n), &PositiveRecord::default()).unwrap();
        }
        let info = store.backup(&backups_dir, 1, 0).unwrap();
        let table = std::fs::read_dir(backups_dir.join("shared_checksum"))
            .unwrap()
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "sst"))
            .expect("a table file in the backup")
            .path();
        let bytes = std::fs::read(&table).unwrap();
        std::fs::write(&table, &bytes[..bytes.len() / 2]).unwrap();
        // RocksDB's file check compares sizes it reads at open: the restore's checksums catch it
        let broken =
            restore_backup(&backups_dir, Some(info.id), &dir.path().join("r")).unwrap_err();
        assert!(matches!(broken, StoreError::Backup { .. }), "{broken}");
    }

    #[test]
    fn digests_tell_members_from_records() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (open(&dir.path().join("a")), open(&dir.path().join("b")));
        let record = |model: &str| PositiveRecord {
            model: model.into(),
            ..PositiveRecord::default()
        };
        a.insert(imei(1), &record("x")).unwrap();
        b.insert(imei(1), &record("y")).unwrap();
        let (da, db) = (a.digests().unwrap(), b.digests().unwrap());
        assert_eq!(da.positive.members, db.positive.members);
        assert_ne!(da.positive.records, db.positive.records);
        assert_eq!(da.list(List::Negative), db.list(List::Negative));
        assert_eq!(PositiveRecord::LIST, List::Positive);
    }
}
