//! The network check's metrics: checks by interface and how each ended, their server-side
//! latency, and the size of batch checks. The front ends (HTTP, Diameter) count each check
//! they answer here, with the time from request to response; the handles are resolved once,
//! so counting a check is an increment and a histogram observation, nothing else.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

use super::{Answer, EquipmentStatus, Interface};
use crate::metrics::Metrics;

/// A check that got no [`Answer`], as counted by `imeidb_checks_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// The IMEI or another parameter was malformed (400, a per-item error, a Diameter error).
    Malformed,
    /// The server failed to answer (500).
    Failed,
}

/// The `result` label of each way a check ends.
const RESULTS: usize = 6;
const RESULT_NAMES: [&str; RESULTS] = [
    "whitelisted",
    "blacklisted",
    "greylisted",
    "unknown",
    "malformed",
    "failed",
];

fn result_index(result: Result<Answer, Unanswered>) -> usize {
    match result {
        Ok(Answer::Status(EquipmentStatus::Whitelisted)) => 0,
        Ok(Answer::Status(EquipmentStatus::Blacklisted)) => 1,
        Ok(Answer::Status(EquipmentStatus::Greylisted)) => 2,
        Ok(Answer::Unknown) => 3,
        Err(Unanswered::Malformed) => 4,
        Err(Unanswered::Failed) => 5,
    }
}

/// Upper bounds of the check-latency buckets, in seconds: fine where checks are answered
/// from memory, coarse past a millisecond.
const CHECK_BUCKETS: [f64; 18] = [
    1e-6, 2e-6, 3e-6, 5e-6, 7.5e-6, 10e-6, 15e-6, 20e-6, 30e-6, 50e-6, 75e-6, 100e-6, 200e-6,
    500e-6, 1e-3, 5e-3, 25e-3, 100e-3,
];

/// The handles of the check metrics. Cheap to clone.
#[derive(Clone)]
pub struct CheckMetrics {
    /// `imeidb_checks_total{interface, result}`, by [`Interface::index`] then result.
    checks: [[IntCounter; RESULTS]; Interface::ALL.len()],
    /// `imeidb_check_duration_seconds{interface}`: request in to response ready.
    seconds: [Histogram; Interface::ALL.len()],
    /// `imeidb_batch_check_size`: IMEIs per batch request.
    batch_size: Histogram,
}

impl CheckMetrics {
    /// Creates the check metrics and registers them in `metrics`.
    pub fn new(metrics: &Metrics) -> CheckMetrics {
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
        metrics.register(checks_vec.clone());
        metrics.register(seconds_vec.clone());
        metrics.register(batch_size.clone());
        CheckMetrics {
            checks: Interface::ALL.map(|i| {
                std::array::from_fn(|r| {
                    checks_vec.with_label_values(&[i.as_str(), RESULT_NAMES[r]])
                })
            }),
            seconds: Interface::ALL.map(|i| seconds_vec.with_label_values(&[i.as_str()])),
            batch_size,
        }
    }

    /// Counts one check and, when `elapsed` is given, its latency.
    #[inline]
    pub fn observe(
        &self,
        interface: Interface,
        result: Result<Answer, Unanswered>,
        elapsed: Option<Duration>,
    ) {
        self.checks[interface.index()][result_index(result)].inc();
        if let Some(elapsed) = elapsed {
            self.seconds[interface.index()].observe(elapsed.as_secs_f64());
        }
    }

    /// Counts the items of one batch request by result, and the request's latency.
    pub fn observe_batch(&self, counts: &[(Result<Answer, Unanswered>, u64)], elapsed: Duration) {
        let mut total = 0;
        for &(result, n) in counts {
            self.checks[Interface::Native.index()][result_index(result)].inc_by(n);
            total += n;
        }
        self.batch_size.observe(total as f64);
        self.seconds[Interface::Native.index()].observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_interface_and_result_with_closed_labels() {
        let m = Metrics::new();
        let checks = CheckMetrics::new(&m);
        checks.observe(
            Interface::N5gEir,
            Ok(Answer::Unknown),
            Some(Duration::from_micros(3)),
        );
        checks.observe(Interface::S13, Err(Unanswered::Malformed), None);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"imeidb_checks_total{interface="n5g_eir",result="unknown"} 1"#));
        assert!(text.contains(r#"imeidb_checks_total{interface="s13",result="malformed"} 1"#));
        assert!(text.contains(r#"imeidb_checks_total{interface="native",result="failed"} 0"#));
        assert!(text.contains("imeidb_check_duration_seconds_bucket"));
    }
}
