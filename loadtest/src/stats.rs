//! The load generator's arithmetic: latency tallies, their summary (rates and percentiles),
//! and the open loop's send schedule. Kept apart from the I/O so it can be tested.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// What one worker (or all, merged) saw: latencies and answers by status.
pub struct Tally {
    /// Latencies in nanoseconds (at least 1 µs: below that is the clock's noise), up to
    /// 60 s, 3 significant digits.
    latencies: Histogram<u64>,
    /// Answers by HTTP status (200 for a Redis or PostgreSQL answer, 500 for an error).
    statuses: BTreeMap<u16, u64>,
    /// Items answered (IMEIs of a batch, commands of a pipeline).
    items: u64,
    /// An open loop whose writes do not wait for answers splits each latency in two: how
    /// late the request was written after it was due (the load generator's own delay: its
    /// core taken by another task), and the time from that write to the answer. Empty for
    /// every other phase.
    late: Histogram<u64>,
    from_write: Histogram<u64>,
}

/// A latency as the histograms hold it: nanoseconds, at least 1 µs (below that is the
/// clock's noise).
fn nanos(latency: Duration) -> u64 {
    u64::try_from(latency.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1_000)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Tally {
        Tally {
            latencies: histogram(),
            statuses: BTreeMap::new(),
            items: 0,
            late: histogram(),
            from_write: histogram(),
        }
    }

    /// One request answered with `status` after `latency`, carrying `items` items.
    pub fn record(&mut self, status: u16, items: u64, latency: Duration) {
        self.latencies.saturating_record(nanos(latency));
        *self.statuses.entry(status).or_default() += 1;
        self.items += items;
    }

    /// One request of an open loop, due at `due`, written at `written` and answered with
    /// `status` at `answered`: recorded as [`Tally::record`] records it (from `due`), and
    /// its lateness and time from the write kept apart.
    pub fn record_written(
        &mut self,
        status: u16,
        due: Instant,
        written: Instant,
        answered: Instant,
    ) {
        self.record(status, 1, answered.saturating_duration_since(due));
        self.late
            .saturating_record(nanos(written.saturating_duration_since(due)));
        self.from_write
            .saturating_record(nanos(answered.saturating_duration_since(written)));
    }

    /// Adds another worker's tally.
    pub fn merge(&mut self, other: &Tally) {
        self.latencies
            .add(&other.latencies)
            .expect("same bounds on every tally");
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.items += other.items;
        self.late
            .add(&other.late)
            .expect("same bounds on every tally");
        self.from_write
            .add(&other.from_write)
            .expect("same bounds on every tally");
    }

    /// Requests recorded.
    pub fn requests(&self) -> u64 {
        self.latencies.len()
    }
}

/// A run's figures.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub requests: u64,
    pub items: u64,
    pub seconds: f64,
    pub rps: f64,
    pub items_per_s: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub statuses: BTreeMap<u16, u64>,
    /// An open loop's p99 of its writes' lateness and of the time from each write to its
    /// answer ([`Tally::record_written`]); `None` where the phase does not split them.
    pub late_p99_us: Option<f64>,
    pub from_write_p99_us: Option<f64>,
}

impl Summary {
    /// The figures of `tally` over a window of `seconds`.
    pub fn new(tally: &Tally, seconds: f64) -> Summary {
        let us = |q: f64| tally.latencies.value_at_quantile(q) as f64 / 1_000.0;
        let split_p99 = |h: &Histogram<u64>| {
            (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1_000.0)
        };
        let requests = tally.requests();
        let per_s = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        Summary {
            requests,
            items: tally.items,
            seconds,
            rps: per_s(requests),
            items_per_s: per_s(tally.items),
            p50_us: us(0.50),
            p90_us: us(0.90),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: tally.latencies.max() as f64 / 1_000.0,
            statuses: tally.statuses.clone(),
            late_p99_us: split_p99(&tally.late),
            from_write_p99_us: split_p99(&tally.from_write),
        }
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        let mut statuses = String::new();
        for (i, (status, n)) in self.statuses.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(statuses, "{comma}\"{status}\":{n}");
        }
        let mut split = String::new();
        if let (Some(late), Some(from_write)) = (self.late_p99_us, self.from_write_p99_us) {
            let _ = write!(
                split,
                ",\"late_p99_us\":{late:.1},\"from_write_p99_us\":{from_write:.1}"
            );
        }
        format!(
            "{{\"requests\":{},\"items\":{},\"seconds\":{},\"rps\":{:.0},\"items_per_s\":{:.0},\
             \"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1},\
             \"statuses\":{{{statuses}}}{split}}}",
            self.requests,
            self.items,
            self.seconds,
            self.rps,
            self.items_per_s,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
        )
    }
}

/// The open loop's schedule for one of `workers` workers sharing a total `rate` (requests per
/// second): worker `w` sends at `start + (w + k * workers) / rate` for k = 0, 1, 2, ..., so
/// the workers' sends interleave evenly and the total is `rate` whatever each answer takes.
pub struct Schedule {
    start: Instant,
    /// Seconds between two sends of the whole client.
    interval: f64,
    workers: u64,
    /// The next send's index in the client-wide sequence.
    next: u64,
}

impl Schedule {
    /// Worker `worker`'s share of `rate` requests per second.
    pub fn new(start: Instant, rate: f64, workers: usize, worker: usize) -> Schedule {
        Schedule {
            start,
            interval: 1.0 / rate,
            workers: workers as u64,
            next: worker as u64,
        }
    }

    /// When this worker's next request is due; advances the schedule.
    pub fn next_send(&mut self) -> Instant {
        let at = self.start + Duration::from_secs_f64(self.next as f64 * self.interval);
        self.next += self.workers;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_rates_and_merging() {
        // 1..=1000 µs, split over two workers
        let mut a = Tally::new();
        let mut b = Tally::new();
        for us in 1..=1000u64 {
            let tally = if us % 2 == 0 { &mut a } else { &mut b };
            tally.record(200, 2, Duration::from_micros(us));
        }
        b.record(404, 1, Duration::from_micros(1000));
        a.merge(&b);
        let s = Summary::new(&a, 2.0);
        assert_eq!(s.requests, 1001);
        assert_eq!(s.items, 2001);
        assert!((s.rps - 500.5).abs() < 1e-9);
        assert!((s.items_per_s - 1000.5).abs() < 1e-9);
        // HdrHistogram at 3 significant digits: within 0.1%
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(near(s.p50_us, 501.0), "{}", s.p50_us);
        assert!(near(s.p90_us, 901.0), "{}", s.p90_us);
        assert!(near(s.p99_us, 991.0), "{}", s.p99_us);
        assert!(near(s.p999_us, 1000.0), "{}", s.p999_us);
        assert!(near(s.max_us, 1000.0), "{}", s.max_us);
        assert_eq!(s.statuses, BTreeMap::from([(200, 1000), (404, 1)]));
        let json = s.to_json();
        assert!(
            json.contains("\"statuses\":{\"200\":1000,\"404\":1}"),
            "{json}"
        );
        assert!(json.contains("\"rps\":500,"), "{json}"); // 500.5, to the nearest even
        assert_eq!((s.late_p99_us, s.from_write_p99_us), (None, None));
        assert!(!json.contains("late_p99_us"), "{json}");
    }

    #[test]
    fn an_open_loop_splits_each_latency_at_its_write() {
        // 100 requests written 0..99 µs late, each answered 500 µs after its write, over two
        // workers
        let due = Instant::now();
        let mut a = Tally::new();
        let mut b = Tally::new();
        for late in 0..100u64 {
            let written = due + Duration::from_micros(late);
            let answered = written + Duration::from_micros(500);
            let tally = if late % 2 == 0 { &mut a } else { &mut b };
            tally.record_written(200, due, written, answered);
        }
        a.merge(&b);
        let s = Summary::new(&a, 1.0);
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert_eq!((s.requests, s.items), (100, 100));
        assert!(near(s.p99_us, 598.0), "{}", s.p99_us);
        // a lateness below 1 µs counts as 1 µs, as every latency does
        let late = s.late_p99_us.expect("split");
        assert!(near(late, 98.0), "{late}");
        let from_write = s.from_write_p99_us.expect("split");
        assert!(near(from_write, 500.0), "{from_write}");
        let json = s.to_json();
        let tail = format!(",\"late_p99_us\":{late:.1},\"from_write_p99_us\":{from_write:.1}}}");
        assert!(json.ends_with(&tail), "{json}");
    }

    #[test]
    fn a_latency_below_a_microsecond_counts_as_one_and_an_empty_run_is_zero() {
        let mut t = Tally::new();
        t.record(200, 1, Duration::from_nanos(10));
        assert_eq!(Summary::new(&t, 1.0).max_us, 1.0);
        let empty = Summary::new(&Tally::new(), 0.0);
        assert_eq!((empty.requests, empty.rps, empty.p99_us), (0, 0.0, 0.0));
    }

    #[test]
    fn workers_interleave_at_the_total_rate() {
        let start = Instant::now();
        let mut schedules: Vec<Schedule> =
            (0..4).map(|w| Schedule::new(start, 1000.0, 4, w)).collect();
        let mut sends: Vec<Duration> = Vec::new();
        for schedule in &mut schedules {
            for _ in 0..250 {
                sends.push(schedule.next_send() - start);
            }
        }
        sends.sort();
        // 1,000 sends in one second, one every millisecond, none twice
        assert_eq!(sends.len(), 1000);
        for (k, at) in sends.iter().enumerate() {
            let want = Duration::from_millis(k as u64);
            let diff = at.abs_diff(want);
            assert!(diff < Duration::from_micros(1), "send {k} at {at:?}");
        }
    }
}
