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
//! Dependencies point one way, down this table: a module uses only modules of a lower layer.
//! Nothing below `api` knows HTTP, nothing below `diameter` knows Diameter, nothing above
//! `store` knows RocksDB. [`layering`] holds the table and a test that fails on an upward
//! import.
//!
//! | layer | module | responsibility |
//! |---|---|---|
//! | 0 | [`imei`], [`imsi`] | the identities and every textual form the interfaces send |
//! | 0 | [`identity`] | Colombian ID numbers and NITs (DIAN check digit): people and organisations named alike everywhere |
//! | 0 | [`fields`], [`timefmt`], [`hex`] | field-by-field input errors; RFC 3339 times and the clock; hex of hashes |
//! | 0 | [`net`] | what both listeners share below their protocols: the listening socket, accept with backoff, who a client is (IPv4, IPv6 /64), TLS from PEM files |
//! | 0 | [`metrics`] | the `/metrics` page every component registers its own metrics into |
//! | 1 | [`roles`] | the roles, the organisation kinds and the one table of what each role permits |
//! | 1 | [`store`] | RocksDB (records, durability) behind per-list Bloom filters and exact in-memory indexes; the only code that touches RocksDB |
//! | 2 | [`audit`] | the hash-chained audit trail that accounts and registry both write through |
//! | 3 | [`accounts`] | organisations, users, tokens, and who may act on whose account |
//! | 4 | [`registry`] | the decree's rules: the network check and roaming exemption, registrations, reports and recovery, activation and owners, history, authorised sellers, bulk import, the exchange |
//! | 5 | [`diameter`] | the 4G EIR: Diameter S13 (TS 29.272 ME-Identity-Check) over RFC 6733, with its peer table |
//! | 5 | [`replication`] | the change feed to read replicas over NATS JetStream, the snapshot, and replica mode |
//! | 6 | [`config`] | the TOML file, `IMEIDB_*` overrides and flags, validated once |
//! | 7 | [`api`] | HTTP: the route table, one file per area, RFC 7807 problems |
//! | 8 | [`web`] | the web pages: the public IMEI check, sign-in, the consoles; HTML over the same domain calls as the API |
//! | 9 | [`server`] | accept loop, connection limits, idle reaper, graceful shutdown |
//!
//! `docs/ARCHITECTURE.md` follows a check and a write through these layers and says where
//! each article of the decree is enforced.
//!
//! The binary (`src/bin/imeidb.rs`) is a thin CLI over these: `serve`, `import`,
//! `admin bootstrap`, `audit verify`, `backup verify` and `restore`.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod config;
pub mod diameter;
pub mod fields;
pub mod hex;
pub mod identity;
pub mod imei;
pub mod imsi;
pub mod layering;
pub mod metrics;
pub mod net;
pub mod registry;
pub mod replication;
pub mod roles;
pub mod server;
pub mod store;
pub mod timefmt;
pub mod web;
