//! The HTTP front end's metrics: requests refused before their route ran.

use prometheus::{IntCounter, IntCounterVec, Opts};

use crate::metrics::Metrics;

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
}

/// The handles of the HTTP front end's metrics. Cheap to clone.
#[derive(Clone)]
pub struct RequestMetrics {
    /// `imeidb_requests_refused_total{reason}`, in the order of [`RequestRefusal::ALL`].
    refused: [IntCounter; 4],
}

impl RequestMetrics {
    /// Creates the front end's metrics and registers them in `metrics`.
    pub fn new(metrics: &Metrics) -> RequestMetrics {
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
        metrics.register(refused_vec.clone());
        RequestMetrics {
            refused: RequestRefusal::ALL.map(|r| refused_vec.with_label_values(&[r.as_str()])),
        }
    }

    /// Counts a request refused before its route ran.
    pub fn refused(&self, refusal: RequestRefusal) {
        self.refused[refusal as usize].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_rendered_from_zero() {
        let m = Metrics::new();
        let requests = RequestMetrics::new(&m);
        requests.refused(RequestRefusal::RateLimited);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"imeidb_requests_refused_total{reason="rate_limited"} 1"#));
        assert!(text.contains(r#"imeidb_requests_refused_total{reason="unauthenticated"} 0"#));
    }
}
