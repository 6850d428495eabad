//! Load-test helpers for imeidb: the synthetic dataset (shared with `benches/`), the
//! dataset writer and the hyper hello-world baseline live in `src/bin/`.

pub mod dataset;
