//! A read replica: fetches a snapshot from the central, then follows the change feed with a
//! durable JetStream consumer, applying each message's changes in order and idempotently (a
//! change numbered at or below what was applied is skipped), with the number of the last one
//! in the same batch, so a replica killed at any moment resumes where its store says. Its
//! writes are not fsynced (`config` turns `store.sync_writes` off on a replica): what a power
//! loss takes from its disk it reads again from the stream.
//!
//! A message that skips changes (the stream no longer holds them), that cannot be read, or
//! that carries a bulk load makes it fetch a fresh snapshot: it says so in its log, and
//! counts it in `imeidb_replication_bootstraps_total`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{self, DeliverPolicy, pull};
use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

use super::feed::{self, Batch, FeedError, SnapshotReader};
use super::metrics::ReplicationMetrics;
use super::publisher::last_in_stream;
use super::{Replica, Settings, connect, now_ms};
use crate::store::{Change, List, Store};

/// Follows the central until `stopped` completes.
pub async fn run(
    store: Arc<Store>,
    settings: Settings,
    metrics: ReplicationMetrics,
    status: Replica,
    stopped: impl Future<Output = ()>,
) {
    let work = async {
        loop {
            if let Err(e) = follow(&store, &settings, &metrics, &status).await {
                // cut off from the stream, it cannot say how far behind it is: not ready
                status.set_caught_up(false);
                metrics.connected.set(0);
                tracing::warn!(error = %e, central = %settings.central_url, nats = %settings.nats_url, "replica: cannot follow the central; checks go on from what was applied, retrying");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        () = work => {}
        () = stopped => {}
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Why the replica fetches a snapshot.
enum Resync {
    /// A message starts after the change it needs: the stream no longer has some.
    Gap { needed: u64, found: u64 },
    /// The central bulk-loaded a list.
    Bulk(List),
    /// A message is not one the central writes.
    Unreadable(FeedError),
}

async fn follow(
    store: &Arc<Store>,
    settings: &Settings,
    metrics: &ReplicationMetrics,
    status: &Replica,
) -> Result<(), Error> {
    let client = connect(settings, &format!("imeidb replica {}", settings.name)).await?;
    let js = jetstream::new(client);
    let stream = js.get_stream(&settings.stream).await.map_err(|e| {
        format!(
            "stream {} on {}: {e} (is the central publishing?)",
            settings.stream, settings.nats_url
        )
    })?;
    metrics.connected.set(1);
    if store.replicated_through() == 0 {
        status.set_caught_up(false);
        bootstrap(store, settings, metrics, "first start").await?;
    }
    let consumer = consumer_from(&stream, settings, store.replicated_through()).await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(64)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // the stream's last change, asked beside the loop: a request that NATS answers slowly (as
    // right after a reconnection) must never hold back the messages being applied
    let newest = Arc::new(Newest::default());
    let _poller = Poller(tokio::spawn(poll_newest(
        stream.clone(),
        settings.subject.clone(),
        Arc::clone(&newest),
    )));
    // when a change was last applied, and how old it was then: while nothing more is applied,
    // the lag grows from there
    let mut progress = (Instant::now(), 0.0f64);
    loop {
        tokio::select! {
            next = messages.next() => {
                let message = next.ok_or("the consumer's message stream ended")??;
                let pending = message.info().map(|i| i.pending).unwrap_or(0);
                let headers = message.headers.clone().unwrap_or_default();
                let batch = feed::decode_batch(
                    |name| headers.get(name).map(|v| v.as_str()),
                    &message.payload,
                );
                match apply(store, batch).await? {
                    Ok(batch) => {
                        message.ack().await?;
                        let applied = store.replicated_through();
                        let central = (metrics.central.get() as u64).max(batch.last);
                        metrics.applied.set(applied as i64);
                        metrics.central.set(central as i64);
                        metrics.lag_changes.set(central.saturating_sub(applied) as i64);
                        let lag = if pending == 0 {
                            0.0
                        } else {
                            now_ms().saturating_sub(batch.committed_ms) as f64 / 1000.0
                        };
                        metrics.lag_seconds.set(lag);
                        status.set_caught_up(lag <= settings.max_lag.as_secs_f64());
                        progress = (Instant::now(), lag);
                    }
                    Err(resync) => {
                        let why = match resync {
                            Resync::Gap { needed, found } => format!(
                                "gap: needed change {needed}, the stream's next message starts at {found} (the changes between are no longer in the stream)"
                            ),
                            Resync::Bulk(list) => format!("the central bulk-loaded the {list} list"),
                            Resync::Unreadable(e) => format!("a message is unreadable: {e}"),
                        };
                        status.set_caught_up(false); // the lists are replaced meanwhile
                        bootstrap(store, settings, metrics, &why).await?;
                        return Ok(()); // follow again, from the snapshot's change
                    }
                }
            }
            _ = tick.tick() => {
                // the stream's last change as seen up to a few seconds ago: never behind what
                // was applied since (the stream only grows)
                let Some(central) = newest.fresh() else {
                    // not known lately: the lag grows from the last change applied
                    let lag = progress.1 + progress.0.elapsed().as_secs_f64();
                    metrics.lag_seconds.set(lag);
                    status.set_caught_up(lag <= settings.max_lag.as_secs_f64());
                    continue;
                };
                let central = central.max(metrics.central.get() as u64);
                let applied = store.replicated_through();
                metrics.central.set(central as i64);
                metrics.applied.set(applied as i64);
                metrics.lag_changes.set(central.saturating_sub(applied) as i64);
                if applied >= central {
                    progress = (Instant::now(), 0.0);
                    metrics.lag_seconds.set(0.0);
                    status.set_caught_up(true);
                } else {
                    let lag = progress.1 + progress.0.elapsed().as_secs_f64();
                    metrics.lag_seconds.set(lag);
                    status.set_caught_up(lag <= settings.max_lag.as_secs_f64());
                }
            }
        }
    }
}

/// The stream's last change as last seen by [`poll_newest`], and when (0: never).
#[derive(Default)]
struct Newest {
    change: AtomicU64,
    seen_ms: AtomicU64,
}

impl Newest {
    /// The stream's last change, if it was seen in the last few seconds.
    fn fresh(&self) -> Option<u64> {
        let seen = self.seen_ms.load(Ordering::Acquire);
        (seen > 0 && now_ms().saturating_sub(seen) <= 3_000)
            .then(|| self.change.load(Ordering::Acquire))
    }
}

/// Asks the stream for its last change every second, each request bounded; a slow or failed
/// one leaves the last answer to age (the follow loop finds out about a lost connection from
/// its own messages' heartbeats).
async fn poll_newest(stream: stream::Stream, subject: String, newest: Arc<Newest>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Ok(Ok(change)) =
            tokio::time::timeout(Duration::from_secs(2), last_in_stream(&stream, &subject)).await
        {
            newest.change.store(change, Ordering::Release);
            newest.seen_ms.store(now_ms(), Ordering::Release);
        }
    }
}

/// Stops the poller with the loop that started it.
struct Poller(tokio::task::JoinHandle<()>);

impl Drop for Poller {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Applies one message off the async workers; `Err(Resync)` when it cannot be applied in
/// order.
async fn apply(
    store: &Arc<Store>,
    batch: Result<Batch, FeedError>,
) -> Result<Result<Batch, Resync>, Error> {
    let batch = match batch {
        Ok(batch) => batch,
        Err(e) => return Ok(Err(Resync::Unreadable(e))),
    };
    let applied = store.replicated_through();
    if batch.last <= applied {
        return Ok(Ok(batch)); // delivered again: applied already
    }
    if batch.first > applied + 1 {
        return Ok(Err(Resync::Gap {
            needed: applied + 1,
            found: batch.first,
        }));
    }
    if let Some(&(_, Change::Bulk(list))) = (batch.changes.iter())
        .find(|(seq, change)| *seq > applied && matches!(change, Change::Bulk(_)))
    {
        return Ok(Err(Resync::Bulk(list)));
    }
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        store
            .apply_replicated(&batch.changes, batch.last)
            .map(|()| Ok(batch))
    })
    .await?
    .map_err(Into::into)
}

/// The durable consumer `settings.name`, made afresh from the change after `applied`.
///
/// The replica's store, not the consumer's acknowledgements, says where it is: a replica
/// does not fsync what it applies (it can always read it again from the stream), so after a
/// power loss its store may be behind what it acknowledged. Each time it (re)connects, its
/// consumer starts at the first message it needs.
async fn consumer_from(
    stream: &stream::Stream,
    settings: &Settings,
    applied: u64,
) -> Result<consumer::Consumer<pull::Config>, Error> {
    let _ = stream.delete_consumer(&settings.name).await; // none yet is fine
    let start = position(stream, applied + 1).await?;
    Ok(stream
        .create_consumer(pull::Config {
            durable_name: Some(settings.name.clone()),
            description: Some("an imeidb read replica".into()),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ack_policy: consumer::AckPolicy::Explicit,
            filter_subject: settings.subject.clone(),
            ..Default::default()
        })
        .await?)
}

/// The stream sequence of the first message holding change `change` or a later one (the
/// messages' change numbers grow with their stream sequence): a binary search over the
/// stream, a few dozen reads at most.
async fn position(stream: &stream::Stream, change: u64) -> Result<u64, Error> {
    let state = stream.get_info().await?.state;
    if state.messages == 0 {
        return Ok(state.last_sequence + 1);
    }
    let (mut lo, mut hi) = (state.first_sequence, state.last_sequence + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let message = stream.get_raw_message(mid).await?;
        let last: u64 = message
            .headers
            .get(feed::LAST)
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or(0);
        if last >= change {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Fetches a snapshot from the central and makes the store hold exactly it.
async fn bootstrap(
    store: &Arc<Store>,
    settings: &Settings,
    metrics: &ReplicationMetrics,
    why: &str,
) -> Result<(), Error> {
    let started = Instant::now();
    tracing::info!(central = %settings.central_url, why, "replica: fetching a snapshot from the central");
    let snapshot = fetch_snapshot(settings).await?;
    let last = snapshot.last_change;
    let sizes = snapshot.lists.each_ref().map(Vec::len);
    let store = Arc::clone(store);
    let changed = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        let [positive, negative] = &snapshot.lists;
        let p = store.reconcile(List::Positive, positive, None)?;
        let n = store.reconcile(List::Negative, negative, Some(last))?;
        Ok((p.0 + n.0, p.1 + n.1))
    })
    .await??;
    metrics.bootstraps.inc();
    metrics.applied.set(last as i64);
    tracing::info!(
        up_to_change = last,
        positive = sizes[0],
        negative = sizes[1],
        added = changed.0,
        removed = changed.1,
        ms = started.elapsed().as_millis() as u64,
        "replica: snapshot applied"
    );
    Ok(())
}

/// How long a snapshot may send nothing before it is given up on.
const STALLED: Duration = Duration::from_secs(60);

/// `GET {central}/v1/replication/snapshot` over HTTP/1.1, read as it arrives.
async fn fetch_snapshot(settings: &Settings) -> Result<feed::Snapshot, Error> {
    let base = settings.central_url.trim_end_matches('/');
    let authority = base
        .strip_prefix("http://")
        .ok_or("replication.central_url must start with http://")?;
    let tcp = tokio::time::timeout(STALLED, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| format!("no connection to the central at {authority} in 60 s"))??;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(format!("{base}/v1/replication/snapshot"))
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", settings.token),
        )
        .body(Empty::<Bytes>::new())?;
    let response = tokio::time::timeout(STALLED, sender.send_request(request))
        .await
        .map_err(|_| "the central did not answer the snapshot request in 60 s")??;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = http_body_util::Limited::new(body, 4096)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(format!(
            "the central answered {status} to the snapshot request: {}",
            String::from_utf8_lossy(&text[..text.len().min(500)])
        )
        .into());
    }
    let mut reader = SnapshotReader::default();
    // a central that stops sending is given up on, not waited for
    while let Some(frame) = tokio::time::timeout(STALLED, body.frame())
        .await
        .map_err(|_| "the snapshot stalled for 60 s")?
    {
        if let Ok(data) = frame?.into_data() {
            reader.feed(&data)?;
        }
    }
    driver.abort();
    Ok(reader.finish()?)
}
