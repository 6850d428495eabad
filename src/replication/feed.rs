//! What travels between the central and its replicas: the change feed's messages and the
//! snapshot. Both are parsed from bytes a network handed us, so both refuse anything that is
//! not exactly what the central writes, with a reason.
//!
//! **A feed message** carries the contiguous changes numbered `first..=last` (the outbox's
//! numbers): headers `Nats-Msg-Id` (`first`, so a publish retried after a lost ack is dropped
//! by JetStream's duplicate window), `Imeidb-First`, `Imeidb-Last`, `Imeidb-Committed` (Unix
//! milliseconds when the publisher read it: the replica's lag in seconds starts there); the
//! payload is the changes' 10-byte forms ([`Change::encode`]) in order.
//!
//! **A snapshot** is `IMEIDB-SNAPSHOT1`, the number of the last change it includes, the entries
//! of each list (8 bytes each, big-endian), then the positive list's IMEI keys in order, the
//! negative list's, and a SHA-256 of everything before it.

use sha2::{Digest, Sha256};

use crate::imei::Imei;
use crate::store::{CHANGE_BYTES, Change, List};

/// The header naming the first change of a message.
pub const FIRST: &str = "Imeidb-First";
/// The header naming the last change of a message.
pub const LAST: &str = "Imeidb-Last";
/// The header with the Unix milliseconds at which the central published the changes.
pub const COMMITTED: &str = "Imeidb-Committed";
/// Most changes in one message: 500 KB, under NATS' default 1 MB payload limit.
pub const MAX_CHANGES: usize = 50_000;

/// Why bytes from the network are not a feed message or a snapshot.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FeedError {
    /// A header is missing or not a number.
    #[error("header {0} is missing or not a number")]
    Header(&'static str),
    /// `first..=last` is empty or does not match the payload.
    #[error("changes {first}..={last} do not match a payload of {bytes} bytes")]
    Length {
        /// First change named.
        first: u64,
        /// Last change named.
        last: u64,
        /// Payload length.
        bytes: usize,
    },
    /// A change in the payload does not decode.
    #[error("change {0} is not a change")]
    Change(u64),
    /// A snapshot is cut short, too long, not sorted or fails its checksum.
    #[error("the snapshot is malformed: {0}")]
    Snapshot(&'static str),
}

/// One message of the feed, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Number of the first change.
    pub first: u64,
    /// Number of the last change.
    pub last: u64,
    /// When the central published them (Unix milliseconds).
    pub committed_ms: u64,
    /// The changes, `first..=last`, in order.
    pub changes: Vec<(u64, Change)>,
}

/// The headers (name, value) and payload of the message carrying `changes` (contiguous,
/// non-empty, at most [`MAX_CHANGES`]).
pub fn encode_batch(
    changes: &[(u64, Change)],
    committed_ms: u64,
) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let (first, last) = (changes[0].0, changes[changes.len() - 1].0);
    debug_assert_eq!(last - first + 1, changes.len() as u64);
    let mut payload = Vec::with_capacity(changes.len() * CHANGE_BYTES);
    for (_, change) in changes {
        payload.extend_from_slice(&change.encode());
    }
    let headers = vec![
        ("Nats-Msg-Id", first.to_string()),
        (FIRST, first.to_string()),
        (LAST, last.to_string()),
        (COMMITTED, committed_ms.to_string()),
    ];
    (headers, payload)
}

/// The message with headers `header(name)` and `payload`.
///
/// # Errors
/// [`FeedError`] naming what is wrong.
pub fn decode_batch<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    payload: &[u8],
) -> Result<Batch, FeedError> {
    let number = |name: &'static str| {
        header(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or(FeedError::Header(name))
    };
    let (first, last, committed_ms) = (number(FIRST)?, number(LAST)?, number(COMMITTED)?);
    let count = last.checked_sub(first).map(|d| d + 1);
    if first == 0
        || count.and_then(|c| c.checked_mul(CHANGE_BYTES as u64)) != Some(payload.len() as u64)
    {
        return Err(FeedError::Length {
            first,
            last,
            bytes: payload.len(),
        });
    }
    let changes = (first..=last)
        .zip(payload.chunks_exact(CHANGE_BYTES))
        .map(|(seq, bytes)| {
            Change::decode(bytes)
                .map(|c| (seq, c))
                .ok_or(FeedError::Change(seq))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch {
        first,
        last,
        committed_ms,
        changes,
    })
}

/// The snapshot's first bytes.
pub const SNAPSHOT_MAGIC: &[u8; 16] = b"IMEIDB-SNAPSHOT1";

/// Writes a snapshot: [`SnapshotWriter::begin`], the IMEIs of each list in order, then
/// [`SnapshotWriter::finish`].
#[derive(Default)]
pub struct SnapshotWriter {
    hash: Sha256,
}

impl SnapshotWriter {
    /// The header: the last change included and each list's entries.
    pub fn begin(&mut self, last_change: u64, sizes: [u64; 2]) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&last_change.to_be_bytes());
        for size in sizes {
            out.extend_from_slice(&size.to_be_bytes());
        }
        self.hash.update(&out);
        out
    }

    /// The bytes of a chunk of IMEIs.
    pub fn chunk(&mut self, imeis: &[Imei]) -> Vec<u8> {
        let mut out = Vec::with_capacity(imeis.len() * 8);
        for imei in imeis {
            out.extend_from_slice(&imei.key());
        }
        self.hash.update(&out);
        out
    }

    /// The trailer.
    pub fn finish(self) -> Vec<u8> {
        self.hash.finalize().to_vec()
    }
}

/// A snapshot read back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The last change it includes.
    pub last_change: u64,
    /// Each list's IMEIs, sorted, indexed by [`List::index`].
    pub lists: [Vec<Imei>; 2],
}

/// Reads a snapshot incrementally from the bytes as they arrive (a large one never sits in
/// memory twice).
#[derive(Default)]
pub struct SnapshotReader {
    hash: Sha256,
    pending: Vec<u8>,
    sizes: Option<[u64; 2]>,
    snapshot: Snapshot,
    done: bool,
}

impl SnapshotReader {
    /// Takes the next bytes.
    ///
    /// # Errors
    /// [`FeedError::Snapshot`] as soon as they cannot be part of a snapshot.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), FeedError> {
        let bad = FeedError::Snapshot;
        while !bytes.is_empty() {
            if self.done {
                return Err(bad("bytes after the checksum"));
            }
            let sizes = match self.sizes {
                Some(sizes) => sizes,
                None => {
                    let need = 40 - self.pending.len();
                    let take = need.min(bytes.len());
                    self.pending.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.pending.len() < 40 {
                        continue;
                    }
                    if &self.pending[..16] != SNAPSHOT_MAGIC {
                        return Err(bad("it does not start with IMEIDB-SNAPSHOT1"));
                    }
                    let word = |i: usize| {
                        u64::from_be_bytes(self.pending[i..i + 8].try_into().expect("8 bytes"))
                    };
                    let sizes = [word(24), word(32)];
                    self.snapshot.last_change = word(16);
                    // 1,000 M entries per list: ten times a country's devices (8 GB of keys)
                    if sizes.iter().any(|&s| s > 1_000_000_000) {
                        return Err(bad("a list size is beyond any registry"));
                    }
                    self.hash.update(&self.pending);
                    self.pending.clear();
                    self.sizes = Some(sizes);
                    continue;
                }
            };
            let list = if (self.snapshot.lists[0].len() as u64) < sizes[0] {
                Some(List::Positive)
            } else if (self.snapshot.lists[1].len() as u64) < sizes[1] {
                Some(List::Negative)
            } else {
                None
            };
            let want = if list.is_some() { 8 } else { 32 };
            let take = (want - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() < want {
                continue;
            }
            match list {
                Some(list) => {
                    let imei =
                        Imei::from_key(&self.pending).ok_or(bad("an IMEI key is not an IMEI"))?;
                    let held = &mut self.snapshot.lists[list.index()];
                    if held.last().is_some_and(|&prev| prev >= imei) {
                        return Err(bad("IMEIs out of order"));
                    }
                    held.push(imei);
                    self.hash.update(&self.pending);
                }
                None => {
                    let expected = std::mem::take(&mut self.hash).finalize();
                    if self.pending.as_slice() != expected.as_slice() {
                        return Err(bad("its SHA-256 does not match"));
                    }
                    self.done = true;
                }
            }
            self.pending.clear();
        }
        Ok(())
    }

    /// The snapshot, once every byte (checksum included) arrived.
    ///
    /// # Errors
    /// [`FeedError::Snapshot`] if it was cut short.
    pub fn finish(self) -> Result<Snapshot, FeedError> {
        if self.done {
            Ok(self.snapshot)
        } else {
            Err(FeedError::Snapshot("it was cut short"))
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn imei(n: u64) -> Imei {
        Imei::from_body(35_000_000_000_000 + n).unwrap()
    }

    fn snapshot_bytes(last: u64, lists: &[Vec<Imei>; 2]) -> Vec<u8> {
        let mut w = SnapshotWriter::default();
        let mut out = w.begin(last, [lists[0].len() as u64, lists[1].len() as u64]);
        for list in lists {
            out.extend(w.chunk(list));
        }
        out.extend(w.finish());
        out
    }

    fn read(bytes: &[u8], step: usize) -> Result<Snapshot, FeedError> {
        let mut r = SnapshotReader::default();
        for piece in bytes.chunks(step.max(1)) {
            r.feed(piece)?;
        }
        r.finish()
    }

    #[test]
    fn a_batch_round_trips_and_lies_are_refused() {
        let changes = vec![
            (7, Change::Listed(List::Negative, imei(1))),
            (8, Change::Removed(List::Positive, imei(2))),
        ];
        let (headers, payload) = encode_batch(&changes, 1234);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        let batch = decode_batch(get, &payload).unwrap();
        assert_eq!((batch.first, batch.last, batch.committed_ms), (7, 8, 1234));
        assert_eq!(batch.changes, changes);
        assert_eq!(get("Nats-Msg-Id"), Some("7"));
        let short = decode_batch(get, &payload[..15]).unwrap_err();
        assert!(matches!(short, FeedError::Length { .. }));
        let none = decode_batch(|_| None, &payload).unwrap_err();
        assert_eq!(none, FeedError::Header(FIRST));
        let mut bad = payload.clone();
        bad[10] = 9;
        assert_eq!(decode_batch(get, &bad).unwrap_err(), FeedError::Change(8));
    }

    proptest! {
        #[test]
        fn snapshots_round_trip_in_any_pieces_and_every_cut_is_refused(
            pos in proptest::collection::btree_set(0u64..1_000_000, 0..50),
            neg in proptest::collection::btree_set(0u64..1_000_000, 0..50),
            last in any::<u64>(),
            step in 1usize..64,
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let lists = [pos.iter().map(|&n| imei(n)).collect::<Vec<_>>(), neg.iter().map(|&n| imei(n)).collect()];
            let bytes = snapshot_bytes(last, &lists);
            let back = read(&bytes, step).unwrap();
            prop_assert_eq!(back.last_change, last);
            prop_assert_eq!(&back.lists, &lists);
            let at = cut.index(bytes.len());
            prop_assert!(read(&bytes[..at], step).is_err());
            let mut flipped = bytes.clone();
            flipped[flip.index(bytes.len())] ^= 0x40;
            prop_assert!(read(&flipped, step).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(read(&longer, step).is_err());
        }

        #[test]
        fn batch_decoding_never_panics(first in any::<u64>(), last in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (f, l) = (first.to_string(), last.to_string());
            let get = |name: &str| match name {
                FIRST => Some(f.as_str()),
                LAST => Some(l.as_str()),
                COMMITTED => Some("1"),
                _ => None,
            };
            let _ = decode_batch(get, &payload);
        }
    }
}
