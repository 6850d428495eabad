//! End-to-end tests: the real server on 127.0.0.1:0 over a temporary RocksDB, real HTTP/1.1
//! and HTTP/2 clients, and the real `imeidb` binary.

mod adversarial;
mod authority;
mod authz;
mod backups;
mod browser;
mod checks;
mod cli;
mod direct;
mod registry;
mod replication;
mod s13;
mod s13_interop;
mod support;
mod tls;
mod web;
mod webdriver;
