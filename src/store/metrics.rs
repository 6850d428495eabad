//! The store's metrics: how each list's lookups were answered (the Bloom filter alone, or the
//! exact index), and each list's size. Handles are resolved once; a lookup only increments a
//! counter.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use super::List;
use crate::metrics::Metrics;

/// Counters and gauges the store updates.
#[derive(Clone)]
pub struct StoreMetrics {
    /// `imeidb_filter_answered_total{list}`: lookups the Bloom filter answered alone.
    filtered: [IntCounter; 2],
    /// `imeidb_index_lookups_total{list, found}`: lookups the exact index answered (a filter's
    /// "maybe", or a single check of the positive list, which skips its filter).
    found: [IntCounter; 2],
    not_found: [IntCounter; 2],
    /// `imeidb_list_entries{list}`.
    entries: [IntGauge; 2],
}

impl StoreMetrics {
    /// Creates the store's metrics and registers them in `metrics`.
    pub fn new(metrics: &Metrics) -> StoreMetrics {
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
                "List lookups answered by the exact in-memory index: those the filter passed \
                 on (found=false: its false positives) and single checks of the positive \
                 list, which skip its filter.",
            ),
            &["list", "found"],
        )
        .expect("valid metric");
        let entries_vec = IntGaugeVec::new(
            Opts::new("imeidb_list_entries", "Entries on each list."),
            &["list"],
        )
        .expect("valid metric");
        metrics.register(filtered_vec.clone());
        metrics.register(lookups_vec.clone());
        metrics.register(entries_vec.clone());
        let by_list = |vec: &IntCounterVec, found: Option<&str>| {
            List::ALL.map(|list| match found {
                Some(found) => vec.with_label_values(&[list.as_str(), found]),
                None => vec.with_label_values(&[list.as_str()]),
            })
        };
        StoreMetrics {
            filtered: by_list(&filtered_vec, None),
            found: by_list(&lookups_vec, Some("true")),
            not_found: by_list(&lookups_vec, Some("false")),
            entries: List::ALL.map(|list| entries_vec.with_label_values(&[list.as_str()])),
        }
    }

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
    fn renders_each_list_with_closed_labels() {
        let m = Metrics::new();
        let store = StoreMetrics::new(&m);
        store.filtered(List::Negative);
        store.confirmed(List::Positive, false);
        store.set_size(List::Positive, 12);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"imeidb_filter_answered_total{list="negative"} 1"#));
        assert!(text.contains(r#"imeidb_index_lookups_total{found="false",list="positive"} 1"#));
        assert!(text.contains(r#"imeidb_list_entries{list="positive"} 12"#));
    }
}
