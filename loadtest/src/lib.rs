//! Load-test helpers for imeidb: the synthetic dataset (shared with `benches/`), the load
//! generator's arithmetic (`stats`) and its HTTP/1.1 client (`http1`). The dataset writer, the load generator and the hyper
//! hello-world baseline live in `src/bin/`.

pub mod dataset;
pub mod http1;
pub mod s13;
pub mod stats;
