//! The store: the positive and negative lists on disk (RocksDB), each fronted by an in-memory
//! Bloom filter and an exact in-memory membership index. This module is the only code that
//! knows RocksDB exists; everything above it speaks in [`Imei`]s and records.
//!
//! A check asks the list's Bloom filter; a "definitely not" ends there, a "maybe" is confirmed
//! in the list's exact index (`index.rs`), which mirrors the keys RocksDB holds. RocksDB keeps
//! the records and the durability; the check path never reads it (a RocksDB point lookup is
//! several cache misses; see `index.rs`).
//!
//! Guarantees the rest of the crate relies on:
//! - An insert is written to the WAL (fsynced when `sync_writes` is set), then added to the
//!   filter and the index, all before the call returns: an acknowledged entry is never missed
//!   by a check and survives a crash, and a failed write leaves no trace in memory.
//! - Writes are serialised by one mutex (they are rare next to checks), which keeps the list
//!   sizes exact and gives later rules (one owner per IMEI) a place to be atomic.
//! - Checks take no global lock and allocate nothing.

mod audit;
mod backup;
mod directory;
mod filter;
mod index;
pub mod metrics;
mod mutation;
mod outbox;
pub mod records;
mod replica;
mod rocks;
mod shards;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use audit::{AuditHead, SealAudit};
pub use backup::{
    AuditDigest, BackupInfo, Digests, ListDigest, backups, restore_backup, verify_backup_files,
};
pub use directory::RawRecord;
pub use mutation::{Mutation, OwnedSeal, Puts};
pub use outbox::{CHANGE_BYTES, Change};
pub use records::{List, ListRecord, NegativeRecord, PositiveRecord, ReportKind, ReporterKind};
pub use shards::FEW;

use crate::imei::Imei;
use crate::metrics::Metrics;
use filter::ListFilter;
use index::ListIndex;
use metrics::StoreMetrics;
use rocks::RocksStore;

/// Store settings, validated by `config`.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreOptions {
    /// Bytes of RocksDB block cache shared by both lists.
    pub block_cache_bytes: usize,
    /// Bits per key of the Bloom filters inside RocksDB's table files.
    pub bloom_bits_per_key: f64,
    /// fsync the WAL before acknowledging each write (otherwise it is written to the OS, which
    /// survives a process crash but not a power loss).
    pub sync_writes: bool,
    /// Bytes of write-ahead log kept before RocksDB flushes the column families that hold the
    /// oldest log file. Without a bound, the small column families (written with every change
    /// but too small to fill a memtable) keep every log file alive.
    pub max_wal_bytes: u64,
    /// False-positive rate of the in-memory filter of each list, indexed by [`List::index`].
    pub filter_fp_rate: [f64; 2],
    /// Number every list change in the outbox for the replication publisher (`outbox.rs`).
    /// Off on a read replica, whose changes come from the central and go nowhere.
    pub outbox: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            block_cache_bytes: 256 << 20,
            bloom_bits_per_key: 10.0,
            sync_writes: true,
            max_wal_bytes: 256 << 20,
            // The positive list is asked mostly about its members, which pay every probe of its
            // filter; a looser filter costs them fewer probes, and its false positives cost only
            // a lookup in the exact index: at 0.5 a member costs one probe. The negative list is
            // asked mostly about non-members, which the filter should answer alone.
            filter_fp_rate: [0.5, 0.01],
            outbox: true,
        }
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (usually a running server) has the data directory open.
    #[error(
        "data directory {} is in use by another imeidb process (RocksDB LOCK is held); stop the server first",
        path.display()
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// RocksDB could not open the directory.
    #[error("cannot open the store at {}", path.display())]
    Open {
        /// The data directory.
        path: PathBuf,
        /// What RocksDB said.
        #[source]
        source: rocksdb::Error,
    },
    /// The directory holds data in a layout this binary does not know.
    #[error("store schema version is {found}, this imeidb reads version {expected}")]
    SchemaVersion {
        /// Version found on disk.
        found: u8,
        /// Version this binary writes.
        expected: u8,
    },
    /// A read failed.
    #[error("store read failed")]
    Read(#[source] rocksdb::Error),
    /// A write failed; it was not acknowledged.
    #[error("store write failed")]
    Write(#[source] rocksdb::Error),
    /// Writing or ingesting SST files failed; nothing was ingested.
    #[error("bulk ingestion failed")]
    Ingest(#[source] rocksdb::Error),
    /// A file operation around ingestion failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A key in a list is not an IMEI key.
    #[error("a key in the {list} list is corrupt")]
    CorruptKey {
        /// The list.
        list: List,
    },
    /// A backup could not be taken, verified or restored.
    #[error("{what}")]
    Backup {
        /// What was being done.
        what: &'static str,
        /// What RocksDB said.
        #[source]
        source: rocksdb::Error,
    },
    /// A backup is being taken already.
    #[error("a backup is being taken already; try again when it ends")]
    BackupRunning,
    /// A backup's record (`imeidb-backup-<id>.json`) does not say what the backup holds.
    #[error("the backup record {} is unreadable: {problem}", path.display())]
    BackupRecord {
        /// The record.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The backup asked for is not in the directory.
    #[error("{} holds no backup{}", dir.display(), id.map(|id| format!(" with id {id}")).unwrap_or_default())]
    NoBackup {
        /// The backup directory.
        dir: PathBuf,
        /// The id asked for; `None`: any.
        id: Option<u32>,
    },
    /// A restore was pointed at a directory that holds something.
    #[error("{} is not empty: a restore writes only into a new or empty directory", path.display())]
    RestoreTarget {
        /// The directory.
        path: PathBuf,
    },
    /// The audit trail's recorded head is not 40 bytes.
    #[error("the audit trail's head record is corrupt")]
    CorruptAuditHead,
    /// An audit entry's key is not an 8-byte sequence number.
    #[error("an audit trail key is corrupt")]
    CorruptAuditKey,
    /// An outbox entry is not a change.
    #[error("an outbox entry is corrupt")]
    CorruptOutbox,
    /// A stored value could not be decoded.
    #[error("the {list} list entry of {} is corrupt", imei.redacted())]
    CorruptValue {
        /// The list.
        list: List,
        /// The entry's IMEI.
        imei: Imei,
        /// What is wrong with it.
        #[source]
        source: records::DecodeError,
    },
}

/// What the next write extends: the audit trail's head and the next history number.
struct Heads {
    audit: AuditHead,
    history_seq: u64,
    /// The next negative-list change number.
    negative_seq: u64,
    /// The next outbox number (changes of either list).
    outbox_seq: u64,
}

/// Whether an insert added an entry or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The IMEI was not on the list before.
    New,
    /// The IMEI was on the list; its record was replaced.
    Replaced,
}

/// The two lists on disk behind their filters. Share it as `Arc<Store>`.
pub struct Store {
    rocks: RocksStore,
    filters: [ListFilter; 2],
    /// Exact membership per list, mirroring RocksDB's keys.
    indexes: [ListIndex; 2],
    /// Entries per list: counted at open, kept exact by the write lock.
    sizes: [AtomicU64; 2],
    /// Serialises writes (see the module doc) and guards the heads every write extends.
    write_lock: Mutex<Heads>,
    /// Held while a backup is taken: one at a time.
    backup_running: Mutex<()>,
    /// Whether list changes go into the outbox.
    outbox: bool,
    /// The last change numbered (`Heads::outbox_seq - 1`), mirrored out of the write lock: the
    /// publisher runs on an async worker and must not wait for a write's fsync to read it.
    last_change: AtomicU64,
    /// On a read replica: the last central change applied. Written under the write lock with
    /// the batch that applied it; read without it, by the replica's task.
    replicated: AtomicU64,
    /// Woken when changes were committed (see [`Store::changes_committed`]).
    committed: tokio::sync::Notify,
    metrics: StoreMetrics,
    /// How long opening took, filter build included.
    open_time: Duration,
}

/// Entries handed to a filter at a time (bulk ingestion, the start-up scan): it sets their
/// bits shard by shard, which pays when each shard gets many entries at once.
const FILTER_CHUNK: usize = 1 << 16;
impl Store {
    /// Opens (or creates) the store in `dir` and builds both lists' filters and indexes from it;
    /// registers its metrics in `metrics`.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another process holds the directory, [`StoreError::Open`] or
    /// [`StoreError::SchemaVersion`] if it cannot be used, read errors while scanning the lists.
    pub fn open(
        dir: &Path,
        options: &StoreOptions,
        metrics: &Metrics,
    ) -> Result<Store, StoreError> {
        let started = Instant::now();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            what: "creating the data directory",
            source,
        })?;
        let rocks = RocksStore::open(dir, options)?;
        let heads = Heads {
            audit: rocks.audit_head()?,
            history_seq: rocks.history_seq()?,
            negative_seq: rocks.negative_seq()?,
            outbox_seq: rocks.outbox_seq()?,
        };
        let (last_change, replicated) = (heads.outbox_seq - 1, rocks.replicated()?);
        let mut store = Store {
            rocks,
            filters: [
                ListFilter::new(0, options.filter_fp_rate[List::Positive.index()]),
                ListFilter::new(0, options.filter_fp_rate[List::Negative.index()]),
            ],
            indexes: [ListIndex::new(), ListIndex::new()],
            sizes: [AtomicU64::new(0), AtomicU64::new(0)],
            write_lock: Mutex::new(heads),
            backup_running: Mutex::new(()),
            outbox: options.outbox,
            last_change: AtomicU64::new(last_change),
            replicated: AtomicU64::new(replicated),
            committed: tokio::sync::Notify::new(),
            metrics: StoreMetrics::new(metrics),
            open_time: Duration::ZERO,
        };
        // Load both lists at once: each is one sequential scan of its column family.
        let counts: Result<Vec<u64>, StoreError> = std::thread::scope(|scope| {
            let store = &store;
            let handles: Vec<_> = List::ALL
                .map(|list| scope.spawn(move || store.load(list)))
                .into_iter()
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("list loading thread panicked"))
                .collect()
        });
        for (list, count) in List::ALL.into_iter().zip(counts?) {
            store.sizes[list.index()].store(count, Ordering::Relaxed);
        }
        store.open_time = started.elapsed();
        store.publish_sizes();
        Ok(store)
    }

    /// Builds the filter and the index of `list` in one scan at open; returns the entries.
    fn load(&self, list: List) -> Result<u64, StoreError> {
        let index = &self.indexes[list.index()];
        let mut rebuild = self.filters[list.index()]
            .begin_rebuild(self.rocks.estimate_len(list))
            .expect("no rebuild runs before open returns");
        self.rocks.for_each_key_chunk(list, FILTER_CHUNK, |chunk| {
            rebuild.load(chunk);
            index.extend_sorted(chunk.iter().copied());
        })?;
        index.shrink_to_fit();
        rebuild.finish();
        Ok(index.len())
    }

    /// Rebuilds the filter of `list` from its exact index and returns how many entries it
    /// holds. Safe while checks and writes run; see `filter.rs`.
    ///
    /// From memory rather than a RocksDB scan: a 10 M-line upload spent most of its rebuild
    /// time iterating a list that was being written (docs/PERFORMANCE.md).
    fn rebuild_filter(&self, list: List) -> u64 {
        let filter = &self.filters[list.index()];
        // made before the write lock: zeroing a large filter must not hold up writes
        let fresh = filter.fresh(self.len(list));
        // Writes update memory under the write lock, so with it held every write so far is in
        // the index and every later one also goes into the new filter: the walk cannot miss one.
        let begun = {
            let _writes = self
                .write_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            filter.begin_rebuild_with(fresh)
        };
        let Some(mut rebuild) = begun else {
            return self.len(list); // another rebuild is running
        };
        self.indexes[list.index()].for_each_chunk(|chunk| rebuild.load(chunk));
        rebuild.finish()
    }

    /// Rebuilds the filter of `list` in a background thread if removals or growth have made it
    /// inaccurate. Cheap to call after every write.
    pub fn maybe_rebuild_filter(self: &Arc<Self>, list: List) {
        if !self.filters[list.index()].needs_rebuild() {
            return;
        }
        let store = Arc::clone(self);
        std::thread::spawn(move || {
            let started = Instant::now();
            let entries = store.rebuild_filter(list);
            tracing::info!(
                list = list.as_str(),
                entries,
                ms = started.elapsed().as_millis() as u64,
                "filter rebuilt"
            );
        });
    }

    /// Whether `imei` is on `list`. On the negative list the filter answers unlisted IMEIs but
    /// for its false positives, and a "maybe" is confirmed in the exact index; the positive
    /// list is asked its index directly.
    ///
    /// Why not the positive list's filter: a network check is mostly about a registered
    /// device, which that filter can only answer "maybe", after a wait for memory that the
    /// index then waits again. Skipping it saves that wait on nine checks in ten and costs an
    /// unregistered IMEI the index's own (two more). Batches still use it
    /// ([`Store::contains_many`]), where it is read shard by shard and turns away unknowns.
    ///
    /// Performance-critical: the network check path. No allocation, no global lock, no I/O.
    #[inline]
    pub fn contains(&self, list: List, imei: Imei) -> bool {
        if list == List::Negative && !self.filters[list.index()].may_contain(imei) {
            self.metrics.filtered(list);
            return false;
        }
        let found = self.indexes[list.index()].contains(imei);
        self.metrics.confirmed(list, found);
        found
    }

    /// For each of `imeis`, whether it is on the negative list and on the positive list:
    /// the answers of [`Store::contains`] for both lists, in `negative[i]` and `positive[i]`,
    /// counted in the metrics the same way.
    ///
    /// For the few checks a front end holds at once (those of one read of a connection): each
    /// step is taken for all of them before the next, under locks taken beforehand, so their
    /// memory waits overlap where one check after another waits for each in turn.
    ///
    /// Performance-critical: the network check path. No allocation, no global lock, no I/O.
    pub fn contains_each(&self, imeis: &[Imei], negative: &mut [bool], positive: &mut [bool]) {
        assert!(negative.len() == imeis.len() && positive.len() == imeis.len());
        let negatives = List::Negative.index();
        for ((imeis, negative), positive) in imeis
            .chunks(FEW)
            .zip(negative.chunks_mut(FEW))
            .zip(positive.chunks_mut(FEW))
        {
            self.filters[negatives].may_contain_few(imeis, negative);
            // the filter's "maybe"s (stolen devices and false positives), confirmed together
            let mut maybes = [imeis[0]; FEW];
            let mut maybe = 0;
            for (&listed, &imei) in negative.iter().zip(imeis) {
                maybes[maybe] = imei;
                maybe += usize::from(listed);
            }
            let mut confirmed = [false; FEW];
            let confirmed = &mut confirmed[..maybe];
            // most groups hold no stolen device: then there is nothing to lock or look up
            if maybe > 0 {
                self.indexes[negatives].contains_few(&maybes[..maybe], confirmed);
            }
            for (listed, &found) in negative.iter_mut().filter(|l| **l).zip(&*confirmed) {
                *listed = found;
            }
            let found = confirmed.iter().filter(|&&f| f).count() as u64;
            let maybe = maybe as u64;
            self.metrics
                .filtered_n(List::Negative, imeis.len() as u64 - maybe);
            self.metrics
                .confirmed_n(List::Negative, found, maybe - found);
            self.indexes[List::Positive.index()].contains_few(imeis, positive);
            let found = positive.iter().filter(|&&f| f).count() as u64;
            self.metrics
                .confirmed_n(List::Positive, found, imeis.len() as u64 - found);
        }
    }

    /// Whether `imei` is on `list`, from the exact index alone: for write-path decisions, which
    /// need the exact answer anyway (the filter would only add its probes) and must not count
    /// in the check metrics.
    pub fn is_listed(&self, list: List, imei: Imei) -> bool {
        self.indexes[list.index()].contains(imei)
    }

    /// For each of `imeis`, whether it is on `list`, written to `out` (cleared first) in the
    /// same order, counting the metrics once per batch. Same answers as [`Store::contains`],
    /// found faster: the filter and then the index are probed shard by shard.
    pub fn contains_many(&self, list: List, imeis: &[Imei], out: &mut Vec<bool>) {
        out.clear();
        out.resize(imeis.len(), false);
        self.filters[list.index()].may_contain_many(imeis, out);
        let maybe = out.iter().filter(|&&m| m).count() as u64;
        self.indexes[list.index()].confirm_many(imeis, out);
        let found = out.iter().filter(|&&f| f).count() as u64;
        self.metrics.filtered_n(list, imeis.len() as u64 - maybe);
        self.metrics.confirmed_n(list, found, maybe - found);
    }

    /// The record of `imei` on the list of `R`, if it is there.
    ///
    /// # Errors
    /// [`StoreError::Read`], or [`StoreError::CorruptValue`] if the stored bytes do not decode.
    pub fn get<R: ListRecord>(&self, imei: Imei) -> Result<Option<R>, StoreError> {
        self.rocks
            .with_value(R::LIST, imei, R::decode)?
            .transpose()
            .map_err(|source| StoreError::CorruptValue {
                list: R::LIST,
                imei,
                source,
            })
    }

    /// Puts `imei` on the list of `R` with `record`, replacing any record it had. When this
    /// returns, every later check sees it and the write is in the WAL.
    ///
    /// # Errors
    /// [`StoreError::Write`]; nothing changed then.
    pub fn insert<R: ListRecord>(&self, imei: Imei, record: &R) -> Result<Inserted, StoreError> {
        // through `transact`, so the negative list's change log sees every write
        let value = record.encode();
        self.transact(|store: &Store| {
            let existed = store.is_listed(R::LIST, imei);
            Ok::<_, StoreError>((
                Mutation {
                    puts: Puts::one(R::LIST, imei, &value),
                    ..Mutation::default()
                },
                if existed {
                    Inserted::Replaced
                } else {
                    Inserted::New
                },
            ))
        })
    }

    /// Takes `imei` off `list`. Returns whether it was there.
    ///
    /// # Errors
    /// [`StoreError::Write`]; the entry is still there then.
    pub fn remove(&self, list: List, imei: Imei) -> Result<bool, StoreError> {
        self.transact(|store: &Store| {
            let listed = store.is_listed(list, imei);
            let deletes = if listed {
                vec![(list, imei)]
            } else {
                Vec::new()
            };
            Ok::<_, StoreError>((
                Mutation {
                    deletes,
                    ..Mutation::default()
                },
                listed,
            ))
        })
    }

    /// Bulk-loads `count` entries into `list`: `entry(i)` is the i-th IMEI with its encoded
    /// value (from [`ListRecord::encode_into`]), in strictly increasing IMEI order. The entries
    /// are written as one SST file per core, in parallel, and ingested in one atomic step. An
    /// ingested entry replaces any stored record of the same IMEI, so callers leave out the
    /// IMEIs they must not overwrite; the list's size counts only the new ones. Returns how many
    /// were new.
    ///
    /// # Errors
    /// [`StoreError::Ingest`] or [`StoreError::Io`]; nothing was ingested then.
    pub fn ingest<'a, F>(&self, list: List, count: usize, entry: F) -> Result<u64, StoreError>
    where
        F: Fn(usize) -> (Imei, &'a [u8]) + Sync,
    {
        let mut heads = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let runs = std::thread::available_parallelism().map_or(2, |n| n.get());
        // a store that ever numbered its changes keeps marking bulk loads, even when opened
        // without the outbox (an `imeidb import` run without the central's configuration)
        if self.outbox || heads.outbox_seq > 1 {
            // before the load: a crash between the two costs replicas a needless snapshot,
            // never a missed change
            self.rocks
                .append_outbox(heads.outbox_seq, outbox::Change::Bulk(list))?;
            heads.outbox_seq += 1;
            self.last_change
                .store(heads.outbox_seq - 1, Ordering::Release);
        }
        self.rocks.ingest(list, count, runs, &entry)?;
        if list == List::Negative {
            // not logged change by change: deltas across it must fetch the full list
            self.rocks.mark_negative_bulk(heads.negative_seq)?;
            heads.negative_seq += 1;
        }
        let filter = &self.filters[list.index()];
        let mut chunk = Vec::with_capacity(FILTER_CHUNK.min(count));
        for start in (0..count).step_by(FILTER_CHUNK) {
            chunk.clear();
            chunk.extend((start..count.min(start + FILTER_CHUNK)).map(|i| entry(i).0));
            filter.insert_many(&chunk);
        }
        let added = self.indexes[list.index()].extend_sorted((0..count).map(|i| entry(i).0));
        self.sizes[list.index()].fetch_add(added, Ordering::Relaxed);
        self.publish_sizes();
        Ok(added)
    }

    /// Number of entries on `list`.
    pub fn len(&self, list: List) -> u64 {
        self.sizes[list.index()].load(Ordering::Relaxed)
    }

    /// Whether both lists are empty.
    pub fn is_empty(&self) -> bool {
        List::ALL.iter().all(|&list| self.len(list) == 0)
    }

    /// How long [`Store::open`] took, filter build included.
    pub fn open_time(&self) -> Duration {
        self.open_time
    }

    /// Bytes held in memory for `list`'s checks: its filter and its index.
    pub fn memory_bytes(&self, list: List) -> u64 {
        self.filters[list.index()].memory_bytes() + self.indexes[list.index()].memory_bytes()
    }

    /// Makes everything written so far durable (syncs the WAL). Called on shutdown.
    ///
    /// # Errors
    /// [`StoreError::Write`] if the sync fails.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.rocks.sync_wal()
    }

    fn publish_sizes(&self) {
        for list in List::ALL {
            self.metrics.set_size(list, self.len(list));
        }
    }
}

#[cfg(test)]
mod tests;
