//! Replication's metrics: on the central, how far the publisher got; on a replica, how far it
//! applied and how far behind the central it is. Gauges only: a scrape reads the state.

use prometheus::{Gauge, IntCounter, IntGauge, Opts};

use crate::metrics::Metrics;

/// The gauges the publisher and the replica set.
#[derive(Clone)]
pub struct ReplicationMetrics {
    /// `imeidb_replication_nats_connected`: 1 while connected to NATS JetStream.
    pub connected: IntGauge,
    /// `imeidb_replication_committed_change`: the last change committed (central).
    pub committed: IntGauge,
    /// `imeidb_replication_published_change`: the last change JetStream acknowledged (central).
    pub published: IntGauge,
    /// `imeidb_replication_applied_change`: the last change applied (replica).
    pub applied: IntGauge,
    /// `imeidb_replication_central_change`: the last change in the stream (replica).
    pub central: IntGauge,
    /// `imeidb_replication_lag_changes`: changes in the stream not yet applied (replica).
    pub lag_changes: IntGauge,
    /// `imeidb_replication_lag_seconds`: how old the oldest change not yet applied is; 0 when
    /// caught up (replica).
    pub lag_seconds: Gauge,
    /// `imeidb_replication_bootstraps_total`: snapshots fetched from the central (replica).
    pub bootstraps: IntCounter,
}

impl ReplicationMetrics {
    /// Creates them and registers them in `metrics`.
    pub fn new(metrics: &Metrics) -> ReplicationMetrics {
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help)).expect("valid metric");
            metrics.register(g.clone());
            g
        };
        let lag_seconds = Gauge::with_opts(Opts::new(
            "imeidb_replication_lag_seconds",
            "Replica: age of the oldest change in the stream not yet applied (0 when caught up).",
        ))
        .expect("valid metric");
        metrics.register(lag_seconds.clone());
        let bootstraps = IntCounter::with_opts(Opts::new(
            "imeidb_replication_bootstraps_total",
            "Replica: snapshots fetched from the central (the first start, a gap, a bulk load).",
        ))
        .expect("valid metric");
        metrics.register(bootstraps.clone());
        ReplicationMetrics {
            connected: gauge(
                "imeidb_replication_nats_connected",
                "1 while connected to NATS JetStream.",
            ),
            committed: gauge(
                "imeidb_replication_committed_change",
                "Central: number of the last list change committed.",
            ),
            published: gauge(
                "imeidb_replication_published_change",
                "Central: number of the last list change JetStream acknowledged.",
            ),
            applied: gauge(
                "imeidb_replication_applied_change",
                "Replica: number of the last central change applied.",
            ),
            central: gauge(
                "imeidb_replication_central_change",
                "Replica: number of the last change in the stream.",
            ),
            lag_changes: gauge(
                "imeidb_replication_lag_changes",
                "Replica: changes in the stream not yet applied.",
            ),
            lag_seconds,
            bootstraps,
        }
    }
}
