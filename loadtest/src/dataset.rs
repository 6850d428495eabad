//! A realistic synthetic dataset: IMEIs from a few thousand TACs with skewed popularity,
//! random serials, correct check digits; a negative list drawn partly from the positive list
//! and partly from outside it; and a query mix. Deterministic for a given seed, so every run
//! and every system under test sees the same IMEIs.
//!
//! Shared by the `gen-dataset` binary and the in-process benchmark (`benches/decision.rs`).

use imeidb::imei::Imei;

/// xorshift64*: fast, deterministic, good enough to spread serials.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The generated lists, each sorted and free of duplicates.
pub struct Dataset {
    pub positive: Vec<Imei>,
    pub negative: Vec<Imei>,
    /// Bodies never put on either list (for "unknown" queries).
    pub unknown: Vec<Imei>,
}

/// Number of distinct TACs; popularity falls off steeply (a few models dominate, as in a
/// real market).
const TACS: u64 = 3_000;

fn tac_table(rng: &mut Rng) -> Vec<u64> {
    // 8-digit TACs starting with 35 or 86 (GSMA-allocated ranges look like this)
    (0..TACS)
        .map(|_| {
            let prefix = if rng.below(2) == 0 { 35 } else { 86 };
            prefix * 1_000_000 + rng.below(1_000_000)
        })
        .collect()
}

fn random_imei(rng: &mut Rng, tacs: &[u64]) -> Imei {
    // u^3 skews towards the first TACs: the top 10% of models hold about half the devices
    let i = ((tacs.len() as f64) * rng.unit().powi(3)) as usize;
    let tac = tacs[i.min(tacs.len() - 1)];
    Imei::from_body(tac * 1_000_000 + rng.below(1_000_000)).expect("14 digits")
}

/// Generates `positive` registered IMEIs, `negative` reported ones (`stolen_share` of them
/// also registered), and `unknown` IMEIs on neither list.
pub fn generate(seed: u64, positive: usize, negative: usize, unknown: usize) -> Dataset {
    let mut rng = Rng::new(seed);
    let tacs = tac_table(&mut rng);
    let fill = |rng: &mut Rng, n: usize, exclude: &[&[Imei]]| {
        let mut out: Vec<Imei> = Vec::with_capacity(n + n / 8);
        while out.len() < n {
            while out.len() < n {
                let imei = random_imei(rng, &tacs);
                if exclude
                    .iter()
                    .all(|list| list.binary_search(&imei).is_err())
                {
                    out.push(imei);
                }
            }
            out.sort_unstable();
            out.dedup();
        }
        out
    };
    let pos = fill(&mut rng, positive, &[]);
    // half of the negative list are registered devices that were then stolen
    let from_positive = (negative / 2).min(pos.len());
    let mut neg: Vec<Imei> = (0..from_positive)
        .map(|_| pos[rng.below(pos.len() as u64) as usize])
        .collect();
    neg.sort_unstable();
    neg.dedup();
    let outside = fill(&mut rng, negative - neg.len(), &[&pos]);
    neg.extend(outside);
    neg.sort_unstable();
    neg.dedup();
    let unk = fill(&mut rng, unknown, &[&pos, &neg]);
    Dataset {
        positive: pos,
        negative: neg,
        unknown: unk,
    }
}

/// What a query asks about, in the shares of a realistic attach mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    Registered,
    Stolen,
    Unknown,
    Malformed,
}

/// A query mix: `registered`, `stolen` and `unknown` shares (the rest malformed).
pub struct Mix {
    pub registered: f64,
    pub stolen: f64,
    pub unknown: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            registered: 0.90,
            stolen: 0.04,
            unknown: 0.05,
        }
    }
}

/// `n` queries drawn from `data` in the shares of `mix`; malformed ones are `None`.
pub fn queries(data: &Dataset, mix: &Mix, n: usize, seed: u64) -> Vec<(QueryKind, Option<Imei>)> {
    let mut rng = Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    let pick = |list: &[Imei], rng: &mut Rng| list[rng.below(list.len() as u64) as usize];
    (0..n)
        .map(|_| {
            let u = rng.unit();
            if u < mix.registered && !data.positive.is_empty() {
                (QueryKind::Registered, Some(pick(&data.positive, &mut rng)))
            } else if u < mix.registered + mix.stolen && !data.negative.is_empty() {
                (QueryKind::Stolen, Some(pick(&data.negative, &mut rng)))
            } else if u < mix.registered + mix.stolen + mix.unknown && !data.unknown.is_empty() {
                (QueryKind::Unknown, Some(pick(&data.unknown, &mut rng)))
            } else {
                (QueryKind::Malformed, None)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_imei_passes_the_parser_and_lists_are_disjoint_where_promised() {
        let data = generate(7, 20_000, 2_000, 1_000);
        assert_eq!(data.positive.len(), 20_000);
        assert!(data.negative.len() >= 1_900);
        for imei in data
            .positive
            .iter()
            .chain(&data.negative)
            .chain(&data.unknown)
        {
            assert_eq!(Imei::parse(&imei.to_string()), Ok(*imei));
        }
        for imei in &data.unknown {
            assert!(data.positive.binary_search(imei).is_err());
            assert!(data.negative.binary_search(imei).is_err());
        }
        let stolen_registered = data
            .negative
            .iter()
            .filter(|i| data.positive.binary_search(i).is_ok())
            .count();
        assert!(stolen_registered > 500, "{stolen_registered}");
    }

    #[test]
    fn generation_is_deterministic() {
        let a = generate(3, 1000, 100, 10);
        let b = generate(3, 1000, 100, 10);
        assert_eq!(a.positive, b.positive);
        assert_eq!(a.negative, b.negative);
    }
}
