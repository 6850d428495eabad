//! One central registry (all writes) and any number of read replicas, connected through NATS
//! JetStream.
//!
//! - **Central** (`replication.role = "central"`): every committed list change is numbered in
//!   the store's outbox in the same batch as the change (`store/outbox.rs`); the
//!   [`publisher`] tails the outbox and publishes it to the stream in messages of up to
//!   [`feed::MAX_CHANGES`] changes, then forgets what JetStream acknowledged. A write never
//!   waits for NATS: when NATS is down the outbox grows and the publisher catches up when it
//!   returns. `GET /v1/replication/snapshot` serves both lists' IMEIs with the number of the
//!   last change they include ([`write_snapshot`]).
//! - **Replica** (`replication.role = "replica"`): [`replica`] fetches a snapshot from the
//!   central, then follows the stream with a durable consumer from the change after it,
//!   applying changes in order, idempotently, with the number of the last one in the same
//!   batch. It holds only which IMEIs are on which list, answers checks as the central does,
//!   and refuses every other call with a problem naming the central. A gap (changes the
//!   stream no longer has) or a bulk load on the central makes it fetch a fresh snapshot.
//!
//! Who may call what: the snapshot needs [`Permission::Replicate`] (operators, who run
//! replicas next to their cores, and the regulator's administrators); it holds no owner,
//! subscriber or reporter, only IMEIs, which an operator's checks already reveal one by one.
//! Each snapshot is audited. The stream is as trusted as the NATS server's accounts make it:
//! a replica applies what the stream says.

pub mod feed;
pub mod metrics;
pub mod publisher;
pub mod replica;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::accounts::Principal;
use crate::audit::{self, Action, Event, Outcome};
use crate::registry::{Registry, RegistryError};
use crate::roles::Permission;
use crate::store::List;
use crate::timefmt::now_unix;
use feed::SnapshotWriter;

/// What this server is in a replicated registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// No replication: no outbox, no NATS.
    Standalone,
    /// The registry: takes every write, publishes the change feed.
    Central,
    /// A read replica of the central at `central_url`.
    Replica,
}

/// `[replication]` in the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// What this server is.
    pub role: Role,
    /// NATS server(s), comma-separated URLs.
    pub nats_url: String,
    /// The JetStream stream.
    pub stream: String,
    /// The subject the changes are published on.
    pub subject: String,
    /// How long the stream keeps changes (a replica down longer re-bootstraps).
    pub retention: Duration,
    /// Replica: the central's base URL (`http://host:port`), for the snapshot and for the
    /// problems that send writes there.
    pub central_url: String,
    /// Replica: the API token it fetches the snapshot with ([`Permission::Replicate`]).
    pub token: String,
    /// Replica: its durable consumer's name (one per replica).
    pub name: String,
    /// Replica: `/readyz` answers 503 while it is further behind than this.
    pub max_lag: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            role: Role::Standalone,
            nats_url: "nats://127.0.0.1:4222".into(),
            stream: "IMEIDB".into(),
            subject: "imeidb.changes".into(),
            retention: Duration::from_secs(7 * 24 * 3600),
            central_url: String::new(),
            token: String::new(),
            name: String::new(),
            max_lag: Duration::from_secs(5),
        }
    }
}

/// What the front ends of a replica need to know of it.
#[derive(Debug)]
pub struct ReplicaStatus {
    /// The central's base URL, named in every refusal.
    pub central_url: String,
    caught_up: AtomicBool,
}

impl ReplicaStatus {
    /// A replica of `central_url`, not caught up yet.
    pub fn new(central_url: &str) -> ReplicaStatus {
        ReplicaStatus {
            central_url: central_url.to_owned(),
            caught_up: AtomicBool::new(false),
        }
    }

    /// Whether it has a snapshot and is within `replication.max_lag_secs` of the stream.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    fn set_caught_up(&self, caught_up: bool) {
        self.caught_up.store(caught_up, Ordering::Relaxed);
    }
}

/// Shared handle of a replica's status.
pub type Replica = Arc<ReplicaStatus>;

/// Writes a snapshot of both lists for `principal` to `out` (chunk by chunk, until it returns
/// `false`), audited. Runs on a blocking thread: it scans both lists.
///
/// # Errors
/// [`RegistryError::Forbidden`] (audited) without [`Permission::Replicate`];
/// [`RegistryError::Store`].
pub fn write_snapshot(
    registry: &Registry,
    principal: &Principal,
    out: impl FnMut(Vec<u8>) -> bool,
) -> Result<(), RegistryError> {
    const TARGET: &str = "replication/snapshot";
    registry.require(
        principal,
        Permission::Replicate,
        Action::ReplicationSnapshot,
        TARGET,
    )?;
    let store = registry.store();
    // both callbacks write to the same receiver, one after the other
    let sink = std::cell::RefCell::new((SnapshotWriter::default(), out, true));
    let mut audited = Ok(());
    store.export_members(
        |last, sizes| {
            // on the record before the first byte leaves, whatever happens to the rest
            let event = Event {
                actor: principal.actor(),
                action: Action::ReplicationSnapshot,
                target: TARGET.into(),
                outcome: Outcome::Done,
                reason: None,
                detail: Some(format!(
                    "up to change {last}: {} positive, {} negative",
                    sizes[0], sizes[1]
                )),
            };
            audited = store
                .append_audit(&audit::seal(&event, now_unix()))
                .map(|_| ());
            if audited.is_err() {
                return false;
            }
            let (writer, out, open) = &mut *sink.borrow_mut();
            *open = out(writer.begin(last, sizes));
            *open
        },
        |_: List, chunk| {
            let (writer, out, open) = &mut *sink.borrow_mut();
            *open = out(writer.chunk(chunk));
            *open
        },
    )?;
    audited?;
    let (writer, mut out, open) = sink.into_inner();
    if open {
        out(writer.finish());
    }
    Ok(())
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Connects to NATS with the settings' URLs, failing fast (the callers retry).
async fn connect(settings: &Settings, name: &str) -> Result<async_nats::Client, async_nats::Error> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(2))
        .connect(settings.nats_url.as_str())
        .await?;
    Ok(client)
}
