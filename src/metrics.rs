//! Every Prometheus metric of the server, named `imeidb_*`. Handles are created once, here;
//! the check path only increments pre-resolved counters (no label lookup, no allocation).
//! Label values come from closed enums: never an IMEI, IMSI or token.
//!
//! Lower layers receive handle structs ([`StoreMetrics`]) rather than the registry, so they
//! count without knowing how metrics are exported.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::registry::{Answer, EquipmentStatus, Interface};
use crate::store::List;

/// How a check ended, as counted by `imeidb_checks_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Answered.
    Answered(Answer),
    /// The IMEI or another parameter was malformed (400 or a per-item error).
    Malformed,
    /// The server failed to answer (500).
    Failed,
}

impl CheckResult {
    const COUNT: usize = 6;
    const NAMES: [&'static str; Self::COUNT] = [
        "whitelisted",
        "blacklisted",
        "greylisted",
        "unknown",
        "malformed",
        "failed",
    ];

    fn index(self) -> usize {
        match self {
            CheckResult::Answered(Answer::Status(EquipmentStatus::Whitelisted)) => 0,
            CheckResult::Answered(Answer::Status(EquipmentStatus::Blacklisted)) => 1,
            CheckResult::Answered(Answer::Status(EquipmentStatus::Greylisted)) => 2,
            CheckResult::Answered(Answer::Unknown) => 3,
            CheckResult::Malformed => 4,
            CheckResult::Failed => 5,
        }
    }
}

/// Why a request was refused before its route ran, as counted by
/// `imeidb_requests_refused_total{reason}`: what an operator's SRE watches for a token
/// guesser, a suspended account still calling, or a client over the public limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestRefusal {
    /// No valid token: missing, malformed, unknown, wrong secret, revoked, deactivated user.
    Unauthenticated,
    /// The token's user or organisation is suspended.
    Suspended,
    /// A public route's per-client limit.
    RateLimited,
    /// The user's requests were refused too often this minute (`auth.refusals_per_minute`).
    Throttled,
}

impl RequestRefusal {
    const ALL: [RequestRefusal; 4] = [
        RequestRefusal::Unauthenticated,
        RequestRefusal::Suspended,
        RequestRefusal::RateLimited,
        RequestRefusal::Throttled,
    ];

    fn as_str(self) -> &'static str {
        match self {
            RequestRefusal::Unauthenticated => "unauthenticated",
            RequestRefusal::Suspended => "suspended",
            RequestRefusal::RateLimited => "rate_limited",
            RequestRefusal::Throttled => "throttled",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the check-latency buckets, in seconds: fine around the 20 µs target.
const CHECK_BUCKETS: [f64; 18] = [
    1e-6, 2e-6, 3e-6, 5e-6, 7.5e-6, 10e-6, 15e-6, 20e-6, 30e-6, 50e-6, 75e-6, 100e-6, 200e-6,
    500e-6, 1e-3, 5e-3, 25e-3, 100e-3,
];

/// The registry and every handle.
pub struct Metrics {
    registry: Registry,
    /// `imeidb_checks_total{interface, result}`, by [`Interface::index`] then result.
    checks: [[IntCounter; CheckResult::COUNT]; Interface::ALL.len()],
    /// `imeidb_check_duration_seconds{interface}`: request in to response ready.
    check_seconds: [Histogram; Interface::ALL.len()],
    /// `imeidb_batch_check_size`: IMEIs per batch request.
    batch_size: Histogram,
    /// `imeidb_requests_refused_total{reason}`, by [`RequestRefusal::index`].
    refused: [IntCounter; 4],
    store: StoreMetrics,
}

/// Counters and gauges the store updates.
#[derive(Clone)]
pub struct StoreMetrics {
    /// `imeidb_filter_answered_total{list}`: lookups the Bloom filter answered alone.
    filtered: [IntCounter; 2],
    /// `imeidb_index_lookups_total{list, found}`: filter "maybe"s confirmed in the exact index.
    found: [IntCounter; 2],
    not_found: [IntCounter; 2],
    /// `imeidb_list_entries{list}`.
    entries: [IntGauge; 2],
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let checks_vec = IntCounterVec::new(
            Opts::new(
                "imeidb_checks_total",
                "Equipment checks, by interface and result.",
            ),
            &["interface", "result"],
        )
        .expect("valid metric");
        let seconds_vec = HistogramVec::new(
            HistogramOpts::new(
                "imeidb_check_duration_seconds",
                "Server-side time of one check request, from request to response.",
            )
            .buckets(CHECK_BUCKETS.to_vec()),
            &["interface"],
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("imeidb_batch_check_size", "IMEIs per batch check request.")
                .buckets(vec![1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0]),
        )
        .expect("valid metric");
        let filtered_vec = IntCounterVec::new(
            Opts::new(
                "imeidb_filter_answered_total",
                "List lookups the in-memory Bloom filter answered without RocksDB.",
            ),
            &["list"],
        )
        .expect("valid metric");
        let lookups_vec = IntCounterVec::new(
            Opts::new(
                "imeidb_index_lookups_total",
                "List lookups the filter passed on, confirmed in the exact in-memory index \
                 (found=false: filter false positives).",
            ),
            &["list", "found"],
        )
        .expect("valid metric");
        let entries_vec = IntGaugeVec::new(
            Opts::new("imeidb_list_entries", "Entries on each list."),
            &["list"],
        )
        .expect("valid metric");
        let refused_vec = IntCounterVec::new(
            Opts::new(
                "imeidb_requests_refused_total",
                "Requests refused before their route ran: no valid token (unknown and wrong \
                 tokens alike), a suspended account, a public route's rate limit, a user \
                 throttled after too many refused requests.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(checks_vec.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refused_vec.clone()),
            Box::new(seconds_vec.clone()),
            Box::new(batch_size.clone()),
            Box::new(filtered_vec.clone()),
            Box::new(lookups_vec.clone()),
            Box::new(entries_vec.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        let by_interface = |i: Interface| {
            std::array::from_fn(|r| {
                checks_vec.with_label_values(&[i.as_str(), CheckResult::NAMES[r]])
            })
        };
        let by_list = |vec: &IntCounterVec, extra: Option<&str>| {
            List::ALL.map(|list| match extra {
                Some(found) => vec.with_label_values(&[list.as_str(), found]),
                None => vec.with_label_values(&[list.as_str()]),
            })
        };
        Metrics {
            checks: Interface::ALL.map(by_interface),
            check_seconds: Interface::ALL.map(|i| seconds_vec.with_label_values(&[i.as_str()])),
            batch_size,
            refused: RequestRefusal::ALL.map(|r| refused_vec.with_label_values(&[r.as_str()])),
            store: StoreMetrics {
                filtered: by_list(&filtered_vec, None),
                found: by_list(&lookups_vec, Some("true")),
                not_found: by_list(&lookups_vec, Some("false")),
                entries: List::ALL.map(|list| entries_vec.with_label_values(&[list.as_str()])),
            },
            registry,
        }
    }

    /// Handles for the store.
    pub fn store(&self) -> StoreMetrics {
        self.store.clone()
    }

    /// Counts one check and, when `elapsed` is given, its latency.
    #[inline]
    pub fn observe_check(
        &self,
        interface: Interface,
        result: CheckResult,
        elapsed: Option<Duration>,
    ) {
        self.checks[interface.index()][result.index()].inc();
        if let Some(elapsed) = elapsed {
            self.check_seconds[interface.index()].observe(elapsed.as_secs_f64());
        }
    }

    /// Counts the items of one batch request by result, and the request's latency.
    pub fn observe_batch(&self, counts: &[(CheckResult, u64)], elapsed: Duration) {
        let mut total = 0;
        for &(result, n) in counts {
            self.checks[Interface::Native.index()][result.index()].inc_by(n);
            total += n;
        }
        self.batch_size.observe(total as f64);
        self.check_seconds[Interface::Native.index()].observe(elapsed.as_secs_f64());
    }

    /// Registers a component's own metrics (e.g. the Diameter listener's), so `/metrics`
    /// shows them with the rest.
    ///
    /// # Panics
    /// If a metric of the same name is already registered: a programming error.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        self.registry
            .register(collector)
            .expect("metric names are unique");
    }

    /// Counts a request refused before its route ran.
    pub fn refused(&self, refusal: RequestRefusal) {
        self.refused[refusal.index()].inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl StoreMetrics {
    /// One lookup answered by the filter alone.
    #[inline]
    pub fn filtered(&self, list: List) {
        self.filtered[list.index()].inc();
    }

    /// `n` lookups answered by the filter alone.
    pub fn filtered_n(&self, list: List, n: u64) {
        self.filtered[list.index()].inc_by(n);
    }

    /// One lookup confirmed in the exact index.
    #[inline]
    pub fn confirmed(&self, list: List, found: bool) {
        if found {
            self.found[list.index()].inc();
        } else {
            self.not_found[list.index()].inc();
        }
    }

    /// Lookups confirmed in the exact index: `found` hits, `missed` filter false positives.
    pub fn confirmed_n(&self, list: List, found: u64, missed: u64) {
        self.found[list.index()].inc_by(found);
        self.not_found[list.index()].inc_by(missed);
    }

    /// The current size of a list.
    pub fn set_size(&self, list: List, entries: u64) {
        self.entries[list.index()].set(entries as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_closed_labels() {
        let m = Metrics::new();
        m.observe_check(
            Interface::N5gEir,
            CheckResult::Answered(Answer::Unknown),
            Some(Duration::from_micros(3)),
        );
        m.store().filtered(List::Negative);
        m.store().set_size(List::Positive, 12);
        m.refused(RequestRefusal::RateLimited);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"imeidb_checks_total{interface="n5g_eir",result="unknown"} 1"#));
        assert!(text.contains(r#"imeidb_filter_answered_total{list="negative"} 1"#));
        assert!(text.contains(r#"imeidb_list_entries{list="positive"} 12"#));
        assert!(text.contains("imeidb_check_duration_seconds_bucket"));
        assert!(text.contains(r#"imeidb_requests_refused_total{reason="rate_limited"} 1"#));
        assert!(text.contains(r#"imeidb_requests_refused_total{reason="unauthenticated"} 0"#));
    }
}
