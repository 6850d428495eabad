//! RocksDB: column families, options, and the raw reads and writes the [`Store`](super::Store)
//! builds on. Nothing outside `store/` sees a RocksDB type.
//!
//! Layout: one column family per list (`positive`, `negative`) keyed by [`Imei::key`] (8-byte
//! big-endian TAC+SNR); `meta` for the schema version and the audit trail's head; `accounts`
//! for organisations, users and tokens (keys chosen by `accounts`); `audit` for the audit
//! trail, keyed by its 8-byte big-endian sequence number, so a scan reads it in order;
//! `history` for every state change of an IMEI, keyed by the IMEI key then a global 8-byte
//! sequence number, so one IMEI's history is one contiguous, ordered range; `negative_log`
//! for every change of the negative list (listed, removed), keyed by its sequence number, for
//! the exchange's deltas; `outbox` for every change of either list, keyed by its sequence
//! number, until the replication publisher has handed it to NATS (`outbox.rs`). Checks never read RocksDB (the
//! store answers them from memory); it serves record reads, writes and the start-up scan.
//! Tables carry a whole-key Bloom filter and a hash index inside each data block.
//!
//! Index and filter blocks are held by the table readers, outside the block cache. A bulk
//! load makes one large SST file whose single filter block (12.5 MB at 10 M entries, 10 bits
//! per key) is bigger than a block-cache shard; kept in the cache it would be evicted at once
//! and re-read from disk on every lookup (measured: that is what happened). In table-reader
//! memory it costs about 1.3 bytes per entry, read once at open; with
//! `optimize_filters_for_hits` the last level carries no filter at all (see `open`).

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB,
    DBCompressionType, DataBlockIndexType, ErrorKind, IngestExternalFileOptions, Options,
    ReadOptions, SstFileWriter, WriteBatch, WriteOptions,
};

use super::outbox::Change;
use super::{AuditHead, List, RawRecord, StoreError, StoreOptions};
use crate::imei::Imei;

const CF_META: &str = "meta";
const CF_ACCOUNTS: &str = "accounts";
const CF_AUDIT: &str = "audit";
const CF_HISTORY: &str = "history";
const HISTORY_SEQ_KEY: &[u8] = b"history_seq";
const CF_NEGATIVE_LOG: &str = "negative_log";
const NEGATIVE_SEQ_KEY: &[u8] = b"negative_seq";
const NEGATIVE_BULK_KEY: &[u8] = b"negative_bulk_seq";
const CF_OUTBOX: &str = "outbox";
const REPLICATED_KEY: &[u8] = b"replicated_through";
const OUTBOX_SEQ_KEY: &[u8] = b"outbox_seq";
const SCHEMA_KEY: &[u8] = b"schema_version";
pub(super) const AUDIT_HEAD_KEY: &[u8] = b"audit_head";
/// Bumped when the key or value layout changes incompatibly.
const SCHEMA_VERSION: u8 = 1;

fn cf_name(list: List) -> &'static str {
    list.as_str()
}

/// The RocksDB database under a data directory.
pub(super) struct RocksStore {
    db: DB,
    /// Column-family options, kept so SST files for bulk ingestion are written with the same
    /// table format the column family reads.
    list_opts: Options,
    write_opts: WriteOptions,
    path: PathBuf,
}

impl RocksStore {
    pub(super) fn open(dir: &Path, options: &StoreOptions) -> Result<RocksStore, StoreError> {
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(options.bloom_bits_per_key, false);
        table.set_whole_key_filtering(true);
        table.set_cache_index_and_filter_blocks(false);
        table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
        table.set_index_type(BlockBasedIndexType::BinarySearch);
        table.set_format_version(5);

        let mut list_opts = Options::default();
        list_opts.set_block_based_table_factory(&table);
        // LZ4: smaller on disk and in the page cache; only record reads and the start-up
        // scan decompress.
        list_opts.set_compression_type(DBCompressionType::Lz4);
        // Record reads are for listed IMEIs (checks are answered from memory), so a RocksDB
        // filter on the last level (where bulk loads land) would only cost a probe per read and
        // 1.3 bytes per entry.
        list_opts.set_optimize_filters_for_hits(true);
        // No memtable Bloom filter either: it cost a cache miss per written entry, to speed up
        // record reads that are rare and for listed IMEIs.

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);
        db_opts.set_keep_log_file_num(4);
        // The small column families (meta, accounts, audit) are written with every upload batch
        // but fill no memtable, so they never flush on their own and kept every WAL file alive: a
        // large upload's whole log stayed on disk and was replayed at the next start.
        // Past this size RocksDB flushes whatever holds the oldest WAL file.
        db_opts.set_max_total_wal_size(options.max_wal_bytes);

        let cfs = [
            ColumnFamilyDescriptor::new(cf_name(List::Positive), list_opts.clone()),
            ColumnFamilyDescriptor::new(cf_name(List::Negative), list_opts.clone()),
            ColumnFamilyDescriptor::new(CF_META, Options::default()),
            ColumnFamilyDescriptor::new(CF_ACCOUNTS, Options::default()),
            ColumnFamilyDescriptor::new(CF_AUDIT, Options::default()),
            ColumnFamilyDescriptor::new(CF_HISTORY, Options::default()),
            ColumnFamilyDescriptor::new(CF_NEGATIVE_LOG, Options::default()),
            ColumnFamilyDescriptor::new(CF_OUTBOX, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(|source| {
            if is_lock_error(&source) {
                StoreError::Locked {
                    path: dir.to_path_buf(),
                }
            } else {
                StoreError::Open {
                    path: dir.to_path_buf(),
                    source,
                }
            }
        })?;

        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(options.sync_writes);
        let store = RocksStore {
            db,
            list_opts,
            write_opts,
            path: dir.to_path_buf(),
        };
        store.check_schema()?;
        Ok(store)
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let meta = self.meta_cf();
        match self.db.get_cf(meta, SCHEMA_KEY).map_err(StoreError::Read)? {
            Some(v) if v.as_slice() == [SCHEMA_VERSION] => Ok(()),
            Some(v) => Err(StoreError::SchemaVersion {
                found: v.first().copied().unwrap_or(0),
                expected: SCHEMA_VERSION,
            }),
            None => self
                .db
                .put_cf_opt(meta, SCHEMA_KEY, [SCHEMA_VERSION], &self.write_opts)
                .map_err(StoreError::Write),
        }
    }

    pub(super) fn meta_cf(&self) -> &ColumnFamily {
        self.db
            .cf_handle(CF_META)
            .expect("column family created at open")
    }

    pub(super) fn cf(&self, list: List) -> &ColumnFamily {
        self.db
            .cf_handle(cf_name(list))
            .expect("column family created at open")
    }

    /// The database, for the backups (`backup.rs`).
    pub(super) fn db(&self) -> &DB {
        &self.db
    }

    /// The data directory.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// RocksDB's estimate of the number of entries in `list` (exact enough to size a filter).
    pub(super) fn estimate_len(&self, list: List) -> u64 {
        self.db
            .property_int_value_cf(self.cf(list), "rocksdb.estimate-num-keys")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Calls `f` with the stored value of `imei`, if any, without copying it.
    pub(super) fn with_value<T>(
        &self,
        list: List,
        imei: Imei,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StoreError> {
        let value = self
            .db
            .get_pinned_cf(self.cf(list), imei.key())
            .map_err(StoreError::Read)?;
        Ok(value.map(|v| f(&v)))
    }

    /// Calls `f` with consecutive chunks of `chunk_len` IMEIs of `list` (the last one shorter),
    /// as of a snapshot taken now.
    pub(super) fn for_each_key_chunk(
        &self,
        list: List,
        chunk_len: usize,
        mut f: impl FnMut(&[Imei]),
    ) -> Result<(), StoreError> {
        let snapshot = self.db.snapshot();
        // A full scan must not evict the blocks that checks use.
        let mut read_opts = ReadOptions::default();
        read_opts.fill_cache(false);
        read_opts.set_readahead_size(4 << 20);
        let mut iter = snapshot.raw_iterator_cf_opt(self.cf(list), read_opts);
        iter.seek_to_first();
        let mut chunk = Vec::with_capacity(chunk_len);
        while let Some(key) = iter.key() {
            let imei = Imei::from_key(key).ok_or(StoreError::CorruptKey { list })?;
            chunk.push(imei);
            if chunk.len() == chunk_len {
                f(&chunk);
                chunk.clear();
            }
            iter.next();
        }
        iter.status().map_err(StoreError::Read)?;
        if !chunk.is_empty() {
            f(&chunk);
        }
        Ok(())
    }

    /// Writes `count` sorted entries (`entry(i)` is the i-th) as `runs` SST files, in
    /// parallel, then ingests all of them at once: RocksDB makes a multi-file ingestion
    /// atomic, so either every entry is in or none is.
    pub(super) fn ingest<'a, F>(
        &self,
        list: List,
        count: usize,
        runs: usize,
        entry: &F,
    ) -> Result<(), StoreError>
    where
        F: Fn(usize) -> (Imei, &'a [u8]) + Sync,
    {
        let dir = self.path.join("ingest");
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            what: "creating the ingestion directory",
            source,
        })?;
        let runs = runs.clamp(1, count.max(1));
        let bounds: Vec<(usize, usize)> = (0..runs)
            .map(|r| (count * r / runs, count * (r + 1) / runs))
            .filter(|(start, end)| start < end)
            .collect();
        let paths: Vec<PathBuf> = (0..bounds.len())
            .map(|i| dir.join(format!("{}-{}-{i}.sst", list.as_str(), std::process::id())))
            .collect();
        let written: Result<Vec<()>, StoreError> = std::thread::scope(|scope| {
            let handles: Vec<_> = bounds
                .iter()
                .zip(&paths)
                .map(|(&(start, end), path)| {
                    scope.spawn(move || self.write_sst(path, (start..end).map(entry)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("SST writer thread panicked"))
                .collect()
        });
        let result = written.and_then(|_| {
            if paths.is_empty() {
                return Ok(());
            }
            let mut opts = IngestExternalFileOptions::default();
            opts.set_move_files(true);
            self.db
                .ingest_external_file_cf_opts(self.cf(list), &opts, paths.clone())
                .map_err(StoreError::Ingest)
        });
        for path in &paths {
            let _ = std::fs::remove_file(path);
        }
        result
    }

    /// Writes one sorted, non-empty run to `path`.
    fn write_sst<'a>(
        &self,
        path: &Path,
        run: impl Iterator<Item = (Imei, &'a [u8])>,
    ) -> Result<(), StoreError> {
        let mut writer = SstFileWriter::create(&self.list_opts);
        writer.open(path).map_err(StoreError::Ingest)?;
        for (imei, value) in run {
            writer.put(imei.key(), value).map_err(StoreError::Ingest)?;
        }
        writer.finish().map_err(StoreError::Ingest)
    }

    /// The entries of the `accounts` column family whose keys start with `prefix`, in key
    /// order.
    pub(super) fn account_entries_with_prefix(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<RawRecord>, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.named_cf(CF_ACCOUNTS));
        iter.seek(prefix);
        let mut entries = Vec::new();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if !key.starts_with(prefix) {
                break;
            }
            entries.push((key.to_vec(), value.to_vec()));
            iter.next();
        }
        iter.status().map_err(StoreError::Read)?;
        Ok(entries)
    }

    /// Writes `puts` to `accounts` and, if given, one audit entry and the new head, in one
    /// atomic batch: durable in the WAL (fsynced if configured) when this returns.
    pub(super) fn write_accounts(
        &self,
        puts: &[RawRecord],
        audit: Option<(AuditHead, &[u8])>,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let accounts = self.named_cf(CF_ACCOUNTS);
        for (key, value) in puts {
            batch.put_cf(accounts, key, value);
        }
        if let Some((head, entry)) = audit {
            batch.put_cf(self.named_cf(CF_AUDIT), head.seq.to_be_bytes(), entry);
            batch.put_cf(self.meta_cf(), AUDIT_HEAD_KEY, head.to_bytes());
        }
        self.db
            .write_opt(batch, &self.write_opts)
            .map_err(StoreError::Write)
    }

    /// Writes one [`Mutation`](super::Mutation) and, if given, its audit entry and the new
    /// head, in one atomic batch. History entries get the sequence numbers from `history_seq`
    /// on; the next free one is stored with them.
    pub(super) fn write_mutation(
        &self,
        mutation: &super::Mutation,
        history_seq: u64,
        negative_seq: u64,
        outbox_seq: Option<u64>,
        audit: Option<(AuditHead, &[u8])>,
    ) -> Result<(u64, Option<u64>), StoreError> {
        // Sized up front: a 50,000-line upload batch grew its buffer a dozen times, copying it.
        let bytes = mutation.puts.record_bytes() + 16 * mutation.puts.len();
        let mut batch = WriteBatch::with_capacity_bytes(bytes + 1024);
        let log = self.named_cf(CF_NEGATIVE_LOG);
        let mut next_negative = negative_seq;
        let changes = mutation
            .puts
            .iter()
            .filter(|&(list, _, _)| list == List::Negative)
            .map(|(_, imei, _)| (NEGATIVE_LISTED, imei))
            .chain(
                mutation
                    .deletes
                    .iter()
                    .filter(|(list, _)| *list == List::Negative)
                    .map(|(_, imei)| (NEGATIVE_REMOVED, *imei)),
            );
        for (op, imei) in changes {
            let mut value = [0u8; 9];
            value[0] = op;
            value[1..].copy_from_slice(&imei.key());
            batch.put_cf(log, next_negative.to_be_bytes(), value);
            next_negative += 1;
        }
        if next_negative != negative_seq {
            batch.put_cf(
                self.meta_cf(),
                NEGATIVE_SEQ_KEY,
                next_negative.to_be_bytes(),
            );
        }
        let next_outbox = outbox_seq.map(|first| {
            let outbox = self.named_cf(CF_OUTBOX);
            let changes = (mutation.puts.iter())
                .map(|(list, imei, _)| Change::Listed(list, imei))
                .chain((mutation.deletes.iter()).map(|&(list, imei)| Change::Removed(list, imei)));
            let mut next = first;
            for change in changes {
                batch.put_cf(outbox, next.to_be_bytes(), change.encode());
                next += 1;
            }
            if next != first {
                batch.put_cf(self.meta_cf(), OUTBOX_SEQ_KEY, next.to_be_bytes());
            }
            next
        });
        // looked up once: `cf_handle` is a map lookup by name, which would otherwise run per entry
        let lists = List::ALL.map(|list| self.cf(list));
        for (list, imei, value) in mutation.puts.iter() {
            batch.put_cf(lists[list.index()], imei.key(), value);
        }
        for (list, imei) in &mutation.deletes {
            batch.delete_cf(lists[list.index()], imei.key());
        }
        let history = self.named_cf(CF_HISTORY);
        for (i, (imei, event)) in mutation.history.iter().enumerate() {
            batch.put_cf(history, history_key(*imei, history_seq + i as u64), event);
        }
        if !mutation.history.is_empty() {
            let next = history_seq + mutation.history.len() as u64;
            batch.put_cf(self.meta_cf(), HISTORY_SEQ_KEY, next.to_be_bytes());
        }
        let accounts = self.named_cf(CF_ACCOUNTS);
        for (key, value) in &mutation.records {
            batch.put_cf(accounts, key, value);
        }
        if let Some((head, entry)) = audit {
            batch.put_cf(self.named_cf(CF_AUDIT), head.seq.to_be_bytes(), entry);
            batch.put_cf(self.meta_cf(), AUDIT_HEAD_KEY, head.to_bytes());
        }
        if let Some(through) = mutation.replicated {
            batch.put_cf(self.meta_cf(), REPLICATED_KEY, through.to_be_bytes());
        }
        self.db
            .write_opt(batch, &self.write_opts)
            .map_err(StoreError::Write)?;
        Ok((next_negative, next_outbox))
    }

    /// The last central change a replica applied (0: none).
    pub(super) fn replicated(&self) -> Result<u64, StoreError> {
        self.counter(REPLICATED_KEY, 0)
    }

    /// Calls `f(list, chunk)` with the IMEIs of both lists as of a snapshot taken now, after
    /// calling `snapshot_taken`, until `f` returns `false`.
    pub(super) fn snapshot_keys(
        &self,
        snapshot_taken: impl FnOnce() -> bool,
        chunk_len: usize,
        mut f: impl FnMut(List, &[Imei]) -> bool,
    ) -> Result<(), StoreError> {
        let snapshot = self.db.snapshot();
        if !snapshot_taken() {
            return Ok(());
        }
        let mut chunk = Vec::with_capacity(chunk_len);
        for list in List::ALL {
            let mut read_opts = ReadOptions::default();
            read_opts.fill_cache(false);
            read_opts.set_readahead_size(4 << 20);
            let mut iter = snapshot.raw_iterator_cf_opt(self.cf(list), read_opts);
            iter.seek_to_first();
            while let Some(key) = iter.key() {
                chunk.push(Imei::from_key(key).ok_or(StoreError::CorruptKey { list })?);
                if chunk.len() == chunk_len {
                    if !f(list, &chunk) {
                        return Ok(());
                    }
                    chunk.clear();
                }
                iter.next();
            }
            iter.status().map_err(StoreError::Read)?;
            if !chunk.is_empty() && !f(list, &chunk) {
                return Ok(());
            }
            chunk.clear();
        }
        Ok(())
    }

    /// The next free outbox number.
    pub(super) fn outbox_seq(&self) -> Result<u64, StoreError> {
        self.counter(OUTBOX_SEQ_KEY, 1)
    }

    /// Appends one change to the outbox as number `seq` (a bulk load's marker), durably.
    pub(super) fn append_outbox(&self, seq: u64, change: Change) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.named_cf(CF_OUTBOX), seq.to_be_bytes(), change.encode());
        batch.put_cf(self.meta_cf(), OUTBOX_SEQ_KEY, (seq + 1).to_be_bytes());
        self.db
            .write_opt(batch, &self.write_opts)
            .map_err(StoreError::Write)
    }

    /// Calls `f(seq, change)` for the outbox entries after `after`, in order, until it returns
    /// `false`.
    pub(super) fn outbox_after(
        &self,
        after: u64,
        mut f: impl FnMut(u64, Change) -> bool,
    ) -> Result<(), StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.named_cf(CF_OUTBOX));
        iter.seek(after.saturating_add(1).to_be_bytes());
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            let seq = <[u8; 8]>::try_from(key).map(u64::from_be_bytes);
            let (Ok(seq), Some(change)) = (seq, Change::decode(value)) else {
                return Err(StoreError::CorruptOutbox);
            };
            if !f(seq, change) {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(StoreError::Read)
    }

    /// Deletes the outbox entries numbered `through` and below.
    pub(super) fn prune_outbox(&self, through: u64) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.named_cf(CF_OUTBOX),
            0u64.to_be_bytes(),
            through.saturating_add(1).to_be_bytes(),
        );
        self.db
            .write_opt(batch, &self.write_opts)
            .map_err(StoreError::Write)
    }

    fn counter(&self, key: &[u8], default: u64) -> Result<u64, StoreError> {
        match self
            .db
            .get_cf(self.meta_cf(), key)
            .map_err(StoreError::Read)?
        {
            None => Ok(default),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::CorruptAuditHead),
        }
    }

    /// The next free history sequence number.
    pub(super) fn history_seq(&self) -> Result<u64, StoreError> {
        self.counter(HISTORY_SEQ_KEY, 1)
    }

    /// The next free negative-list change number.
    pub(super) fn negative_seq(&self) -> Result<u64, StoreError> {
        self.counter(NEGATIVE_SEQ_KEY, 1)
    }

    /// The change number of the last bulk load into the negative list (0: none).
    pub(super) fn negative_bulk_seq(&self) -> Result<u64, StoreError> {
        self.counter(NEGATIVE_BULK_KEY, 0)
    }

    /// Records that a bulk load (not logged change by change) took change number `seq`.
    pub(super) fn mark_negative_bulk(&self, seq: u64) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.meta_cf(), NEGATIVE_BULK_KEY, seq.to_be_bytes());
        batch.put_cf(self.meta_cf(), NEGATIVE_SEQ_KEY, (seq + 1).to_be_bytes());
        self.db
            .write_opt(batch, &self.write_opts)
            .map_err(StoreError::Write)
    }

    /// Calls `f(seq, listed, imei)` for each negative-list change after `after`, in order,
    /// until it returns `false`.
    pub(super) fn negative_changes(
        &self,
        after: u64,
        mut f: impl FnMut(u64, bool, Imei) -> bool,
    ) -> Result<(), StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.named_cf(CF_NEGATIVE_LOG));
        iter.seek(after.saturating_add(1).to_be_bytes());
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            let seq = <[u8; 8]>::try_from(key).map(u64::from_be_bytes);
            let imei = value.get(1..).and_then(Imei::from_key);
            let (Ok(seq), Some(imei)) = (seq, imei) else {
                return Err(StoreError::CorruptKey {
                    list: List::Negative,
                });
            };
            if !f(seq, value[0] == NEGATIVE_LISTED, imei) {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(StoreError::Read)
    }

    /// Takes a snapshot, calls `snapshot_taken`, then calls `f` with each entry of `list` in
    /// the snapshot, in key order, until it returns `false`.
    pub(super) fn scan_values(
        &self,
        list: List,
        snapshot_taken: impl FnOnce(),
        mut f: impl FnMut(Imei, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let snapshot = self.db.snapshot();
        snapshot_taken();
        let mut read_opts = ReadOptions::default();
        read_opts.fill_cache(false);
        let mut iter = snapshot.raw_iterator_cf_opt(self.cf(list), read_opts);
        iter.seek_to_first();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            let imei = Imei::from_key(key).ok_or(StoreError::CorruptKey { list })?;
            if !f(imei, value) {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(StoreError::Read)
    }

    /// The history entries of `imei`, oldest first.
    pub(super) fn history(&self, imei: Imei) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.named_cf(CF_HISTORY));
        let prefix = imei.key();
        iter.seek(prefix);
        let mut events = Vec::new();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if !key.starts_with(&prefix) {
                break;
            }
            events.push(value.to_vec());
            iter.next();
        }
        iter.status().map_err(StoreError::Read)?;
        Ok(events)
    }

    /// The audit head recorded with the last audit entry (zero before the first).
    pub(super) fn audit_head(&self) -> Result<AuditHead, StoreError> {
        let stored = self
            .db
            .get_cf(self.meta_cf(), AUDIT_HEAD_KEY)
            .map_err(StoreError::Read)?;
        match stored {
            None => Ok(AuditHead::default()),
            Some(bytes) => AuditHead::from_bytes(&bytes).ok_or(StoreError::CorruptAuditHead),
        }
    }

    /// Calls `f` with each audit entry after sequence number `after`, in order, until it
    /// returns `false`.
    pub(super) fn audit_entries(
        &self,
        after: u64,
        mut f: impl FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mut read_opts = ReadOptions::default();
        read_opts.fill_cache(false);
        let mut iter = self
            .db
            .raw_iterator_cf_opt(self.named_cf(CF_AUDIT), read_opts);
        iter.seek(after.saturating_add(1).to_be_bytes());
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            let seq = <[u8; 8]>::try_from(key)
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::CorruptAuditKey)?;
            if !f(seq, value) {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(StoreError::Read)
    }

    #[cfg(test)]
    pub(super) fn tamper_audit_entry(&self, seq: u64, f: impl FnOnce(&mut Vec<u8>)) {
        let cf = self.named_cf(CF_AUDIT);
        let mut bytes = self.db.get_cf(cf, seq.to_be_bytes()).unwrap().unwrap();
        f(&mut bytes);
        self.db.put_cf(cf, seq.to_be_bytes(), bytes).unwrap();
    }

    fn named_cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// Flushes and syncs the WAL: called on shutdown so nothing acknowledged is only in memory.
    pub(super) fn sync_wal(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(StoreError::Write)
    }
}

const NEGATIVE_LISTED: u8 = 1;
const NEGATIVE_REMOVED: u8 = 2;

fn history_key(imei: Imei, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&imei.key());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// RocksDB reports a held `LOCK` file as an IO error whose text names the lock.
fn is_lock_error(e: &rocksdb::Error) -> bool {
    matches!(e.kind(), ErrorKind::IOError | ErrorKind::Busy) && e.as_ref().contains("LOCK")
}
