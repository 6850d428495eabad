//! imeidb: a national IMEI registry server.
//!
//! It keeps the **positive list** (devices that entered the country legally) and the
//! **negative list** (devices reported stolen or lost) of Decree 1078 of 2015, Title 11, and
//! answers the network's question on every attach, "may this IMEI use the network?", over the
//! TS 29.511 5G EIR API, the TS 29.272 S13 Diameter interface and a native JSON API, in
//! microseconds.
//!
//! # Layout
//!
//! Dependencies point one way: `api`/`diameter` → `registry`/`accounts` → `store` → `imei`.
//! Nothing below `api` knows HTTP and nothing below `diameter` knows Diameter; nothing above
//! `store` knows RocksDB.
//!
//! | module | responsibility |
//! |---|---|
//! | [`imei`], [`imsi`] | the identities and every textual form the interfaces send |
//! | [`store`] | RocksDB (records, durability) behind per-list Bloom filters and exact in-memory indexes; the only code that touches RocksDB |
//! | [`registry`] | the decree's rules: the network check and roaming exemption, registrations, reports and recovery, activation and owners, history, authorised sellers, bulk import |
//! | [`accounts`] | organisations, users, roles, tokens, and the hash-chained audit trail |
//! | [`api`] | HTTP: routing, one file per area, RFC 7807 problems |
//! | [`diameter`] | the 4G EIR: Diameter S13 (TS 29.272 ME-Identity-Check) over RFC 6733, beside HTTP, with its peer table |
//! | [`server`] | accept loop, connection limits, idle timeout, graceful shutdown |
//! | [`config`] | the TOML file, `IMEIDB_*` overrides and flags, validated once |
//! | [`timefmt`] | RFC 3339 times in the APIs and the audit trail |
//! | [`net`] | what both listeners share below their protocols: the listening socket, accept with backoff, who a client is (IPv4, IPv6 /64) |
//! | [`metrics`] | every Prometheus metric; lower layers get handles from it |
//!
//! The binary (`src/bin/imeidb.rs`) is a thin CLI over these: `serve`, `import`,
//! `admin bootstrap` and `audit verify`.

pub mod accounts;
pub mod api;
pub mod config;
pub mod diameter;
pub mod imei;
pub mod imsi;
pub mod metrics;
pub mod net;
pub mod registry;
pub mod server;
pub mod store;
pub mod timefmt;
