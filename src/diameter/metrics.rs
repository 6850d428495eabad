//! The Diameter listener's own metrics: peer state and refused connections. Checks over S13
//! are counted with every other check (`imeidb_checks_total{interface="s13"}`), by the
//! crate's [`Metrics`].
//!
//! The `peer` label is a peer table entry's Origin-Host, from the configuration: a closed set
//! no remote node can extend.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use super::peers::PeerTable;
use crate::metrics::Metrics;

/// Why a connection was closed before it served a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It came from an address no peer may connect from (closed unread).
    Address,
    /// Its CER named a peer that is not in the table (CEA 3010).
    UnknownPeer,
    /// Its CER did not advertise S13 (CEA 5010).
    NoCommonApplication,
    /// It sent something other than a CER first, or nothing in time.
    NoCapabilitiesExchange,
    /// It was still silent when newer connections needed its place.
    Evicted,
    /// Its source already held its share of silent connections: closed unread.
    SilentPerSource,
    /// Its peer, or the listener, had all the connections it may have (CEA 3004).
    TooBusy,
    /// Its TLS handshake failed (no peer certificate of the peer CA, not TLS) or did not
    /// finish in time.
    TlsHandshake,
}

impl Refusal {
    /// Why, in words, for the log.
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Address => "its source address is no peer's",
            Refusal::UnknownPeer => "its CER names no peer of the table (CEA 3010)",
            Refusal::NoCommonApplication => "its CER does not offer S13 (CEA 5010)",
            Refusal::NoCapabilitiesExchange => "no valid CER came first, in time",
            Refusal::Evicted => "evicted while silent",
            Refusal::SilentPerSource => "its source holds its share of silent connections",
            Refusal::TooBusy => "no connection left for the peer (CEA 3004)",
            Refusal::TlsHandshake => "its TLS handshake failed or did not finish in time",
        }
    }

    const ALL: [Refusal; 8] = [
        Refusal::Address,
        Refusal::UnknownPeer,
        Refusal::NoCommonApplication,
        Refusal::NoCapabilitiesExchange,
        Refusal::Evicted,
        Refusal::SilentPerSource,
        Refusal::TooBusy,
        Refusal::TlsHandshake,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Refusal::Address => "address",
            Refusal::UnknownPeer => "unknown_peer",
            Refusal::NoCommonApplication => "no_common_application",
            Refusal::NoCapabilitiesExchange => "no_capabilities_exchange",
            Refusal::Evicted => "evicted",
            Refusal::SilentPerSource => "silent_per_source",
            Refusal::TooBusy => "too_busy",
            Refusal::TlsHandshake => "tls_handshake",
        }
    }
}

/// Handles, resolved once per peer and reason.
pub struct DiameterMetrics {
    /// `imeidb_diameter_peer_connections{peer}`, by peer index.
    connections: Vec<IntGauge>,
    /// `imeidb_diameter_peer_last_watchdog_timestamp_seconds{peer}`, by peer index.
    last_watchdog: Vec<IntGauge>,
    /// `imeidb_diameter_connections_refused_total{reason}`, by [`Refusal`] order.
    refused: [IntCounter; 8],
    /// `imeidb_diameter_errors_total{result_code}`: requests answered with an error.
    errors: IntCounterVec,
}

impl DiameterMetrics {
    /// Creates the handles for `peers` and registers them in `metrics`.
    pub fn new(metrics: &Metrics, peers: &PeerTable) -> DiameterMetrics {
        let connections = IntGaugeVec::new(
            Opts::new(
                "imeidb_diameter_peer_connections",
                "Open Diameter connections of each peer in the table, capabilities exchanged.",
            ),
            &["peer"],
        )
        .expect("valid metric");
        let last_watchdog = IntGaugeVec::new(
            Opts::new(
                "imeidb_diameter_peer_last_watchdog_timestamp_seconds",
                "When a watchdog (DWR or DWA) last came from each peer, Unix time; 0: never.",
            ),
            &["peer"],
        )
        .expect("valid metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "imeidb_diameter_connections_refused_total",
                "Diameter connections closed before serving a request: a source no peer may \
                 use, an unknown peer, no common application, no valid CER in time, evicted \
                 while silent, too many silent from one source, or no connection left for \
                 the peer.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "imeidb_diameter_errors_total",
                "Diameter requests answered with an error, by Result-Code.",
            ),
            &["result_code"],
        )
        .expect("valid metric");
        metrics.register(connections.clone());
        metrics.register(last_watchdog.clone());
        metrics.register(refused.clone());
        metrics.register(errors.clone());
        let hosts = || peers.peers().iter().map(|p| p.origin_host.as_str());
        DiameterMetrics {
            connections: hosts()
                .map(|h| connections.with_label_values(&[h]))
                .collect(),
            last_watchdog: hosts()
                .map(|h| last_watchdog.with_label_values(&[h]))
                .collect(),
            refused: Refusal::ALL.map(|r| refused.with_label_values(&[r.as_str()])),
            errors,
        }
    }

    /// A connection of peer `peer` opened (`+1`) or closed (`-1`).
    pub fn connection(&self, peer: usize, delta: i64) {
        self.connections[peer].add(delta);
    }

    /// A watchdog came from peer `peer` at `unix` seconds.
    pub fn watchdog(&self, peer: usize, unix: u64) {
        self.last_watchdog[peer].set(unix as i64);
    }

    /// A connection was refused.
    pub fn refused(&self, refusal: Refusal) {
        debug_assert_eq!(Refusal::ALL[refusal as usize], refusal);
        self.refused[refusal as usize].inc();
    }

    /// A request was answered with `result_code` (not on the check path's success).
    pub fn error(&self, result_code: u32) {
        self.errors
            .with_label_values(&[result_code.to_string().as_str()])
            .inc();
    }
}
