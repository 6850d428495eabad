//! The `/metrics` page: one Prometheus collector set that every component registers its own
//! metrics into, rendered in the text format.
//!
//! Each component owns its metrics, in its own `metrics.rs` (the store's lookups and list
//! sizes, the registry's checks, the HTTP front end's refusals, the Diameter peers), and
//! creates its handles from a [`Metrics`] when it starts; the top of the server (`api`, the
//! binary) only serves the page. So this module imports nothing from the crate, and the
//! layers below need nothing above them to count. Names are `imeidb_*`; label values come from
//! closed enums, never an IMEI, IMSI or token.

use prometheus::core::Collector;
use prometheus::{Encoder, TextEncoder};

/// The collectors of every component, for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    /// Named so, not `Registry`, to keep apart from the IMEI registry (`crate::registry`).
    collectors: prometheus::Registry,
}

impl Metrics {
    /// An empty page.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Registers a component's collector, so `/metrics` shows it with the rest.
    ///
    /// # Panics
    /// If a metric of the same name is already registered: a programming error (a component
    /// started twice over one page).
    pub fn register(&self, collector: impl Collector + 'static) {
        self.collectors
            .register(Box::new(collector))
            .expect("metric names are unique");
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.collectors.gather(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_components_register() {
        let m = Metrics::new();
        let counter = prometheus::IntCounter::new("imeidb_test_total", "A test counter.").unwrap();
        m.register(counter.clone());
        counter.inc_by(3);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains("imeidb_test_total 3"), "{text}");
    }

    #[test]
    #[should_panic(expected = "metric names are unique")]
    fn a_name_registered_twice_is_a_programming_error() {
        let m = Metrics::new();
        for _ in 0..2 {
            m.register(prometheus::IntCounter::new("imeidb_twice_total", "Twice.").unwrap());
        }
    }
}
