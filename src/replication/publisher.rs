//! The central's publisher: tails the store's outbox and publishes it to JetStream, then
//! forgets what the stream acknowledged. It runs beside the server and never in a write's path:
//! when NATS is down it retries every second while writes go on, and resumes from the last
//! change the stream holds.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};

use super::feed::{self, LAST, MAX_CHANGES};
use super::metrics::ReplicationMetrics;
use super::{Settings, connect, now_ms};
use crate::store::{Change, Store};

/// Forget published changes at most this often: each forget is a write.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Publishes the outbox until `stopped` completes.
pub async fn run(
    store: Arc<Store>,
    settings: Settings,
    metrics: ReplicationMetrics,
    stopped: impl Future<Output = ()>,
) {
    let work = async {
        loop {
            match publish(&store, &settings, &metrics).await {
                Err(Stop::Ahead {
                    published,
                    committed,
                }) => {
                    tracing::error!(
                        published,
                        committed,
                        stream = %settings.stream,
                        "change feed STOPPED: the stream holds changes up to {published}, this registry's last is {committed} (restored from an older backup, or the stream is another registry's); nothing is published or forgotten until the stream is replaced: set replication.stream to a new name and let the replicas start from a snapshot"
                    );
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Err(Stop::Retry(e)) => {
                    metrics.connected.set(0);
                    // NATS down, or the outbox unreadable: say which, retry either way
                    tracing::warn!(error = %e, nats = %settings.nats_url, "change feed paused; writes go on, publishing resumes by itself");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(()) => {}
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = stopped => {}
    }
}

/// The stream, created if missing.
pub async fn stream(
    js: &jetstream::Context,
    settings: &Settings,
) -> Result<stream::Stream, async_nats::Error> {
    Ok(js
        .get_or_create_stream(stream::Config {
            name: settings.stream.clone(),
            subjects: vec![settings.subject.clone()],
            max_age: settings.retention,
            duplicate_window: Duration::from_secs(120),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?)
}

/// The number of the last change in the stream (0: none).
pub async fn last_in_stream(
    stream: &stream::Stream,
    subject: &str,
) -> Result<u64, async_nats::Error> {
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(message) => Ok(message
            .headers
            .get(LAST)
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or(0)),
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Why publishing stopped.
enum Stop {
    /// NATS failed, or the outbox could not be read: retry.
    Retry(async_nats::Error),
    /// The stream holds changes this registry never committed: publishing (or forgetting)
    /// anything would mix two histories under one numbering.
    Ahead { published: u64, committed: u64 },
}

impl<E: Into<async_nats::Error>> From<E> for Stop {
    fn from(e: E) -> Stop {
        Stop::Retry(e.into())
    }
}

async fn publish(
    store: &Arc<Store>,
    settings: &Settings,
    metrics: &ReplicationMetrics,
) -> Result<(), Stop> {
    let client = connect(settings, "imeidb central").await?;
    let js = jetstream::new(client);
    let stream = stream(&js, settings).await?;
    let mut published = last_in_stream(&stream, &settings.subject).await?;
    metrics.connected.set(1);
    metrics.published.set(published as i64);
    tracing::info!(
        nats = %settings.nats_url,
        stream = %settings.stream,
        published,
        committed = store.last_change(),
        "change feed: publishing"
    );
    let mut pruned_at = Instant::now() - PRUNE_EVERY;
    let mut pruned = 0;
    loop {
        let committed = store.last_change();
        metrics.committed.set(committed as i64);
        if published > committed {
            return Err(Stop::Ahead {
                published,
                committed,
            });
        }
        if pruned < published && pruned_at.elapsed() >= PRUNE_EVERY {
            let (store, through) = (Arc::clone(store), published);
            tokio::task::spawn_blocking(move || store.prune_changes(through)).await??;
            (pruned, pruned_at) = (published, Instant::now());
        }
        let batch = next_batch(store, published).await?;
        if batch.is_empty() {
            // woken by the next commit; the timeout also drives the pruning above
            let _ = tokio::time::timeout(PRUNE_EVERY, store.changes_committed().notified()).await;
            continue;
        }
        let first = batch[0].0;
        if first != published + 1 {
            tracing::warn!(
                missing_from = published + 1,
                missing_to = first - 1,
                "change feed: the stream lacks changes the outbox no longer holds (the stream was purged or recreated); replicas that need them re-bootstrap"
            );
        }
        let (headers, payload) = feed::encode_batch(&batch, now_ms());
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(name, value.as_str());
        }
        js.publish_with_headers(settings.subject.clone(), map, payload.into())
            .await?
            .await?;
        published = batch[batch.len() - 1].0;
        metrics.published.set(published as i64);
    }
}

/// The changes after `published`, contiguous, at most [`MAX_CHANGES`]; read off the async
/// workers.
async fn next_batch(
    store: &Arc<Store>,
    published: u64,
) -> Result<Vec<(u64, Change)>, async_nats::Error> {
    let store = Arc::clone(store);
    let batch = tokio::task::spawn_blocking(move || {
        let mut batch: Vec<(u64, Change)> = Vec::new();
        store
            .changes_after(published, |seq, change| {
                if batch.last().is_some_and(|&(last, _)| seq != last + 1) {
                    return false;
                }
                batch.push((seq, change));
                batch.len() < MAX_CHANGES
            })
            .map(|()| batch)
    })
    .await??;
    Ok(batch)
}
