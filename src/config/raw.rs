//! The configuration file's shape, as serde reads it: every key with its default (the defaults
//! are `config/imeidb.toml`'s), unknown keys refused. Nothing here is validated; `validate.rs`
//! makes a [`super::Config`] of it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::diameter;
use crate::registry::backups::BackupSettings;
use crate::registry::{CheckPolicy, Interface};
use crate::replication;
use crate::store::{List, StoreOptions};

/// The file as written, before validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) store: RawStore,
    pub(super) check: RawCheck,
    pub(super) auth: RawAuth,
    pub(super) registrations: RawRegistrations,
    pub(super) public: RawPublic,
    pub(super) web: RawWeb,
    pub(super) diameter: RawDiameter,
    pub(super) backup: RawBackup,
    pub(super) replication: RawReplication,
    pub(super) log: RawLog,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawReplication {
    pub(super) role: String,
    pub(super) nats_url: String,
    pub(super) stream: String,
    pub(super) subject: String,
    pub(super) retention_hours: u64,
    pub(super) central_url: String,
    pub(super) token: String,
    pub(super) name: String,
    pub(super) max_lag_secs: u64,
}

impl Default for RawReplication {
    fn default() -> Self {
        let d = replication::Settings::default();
        RawReplication {
            role: "standalone".into(),
            nats_url: d.nats_url,
            stream: d.stream,
            subject: d.subject,
            retention_hours: d.retention.as_secs() / 3600,
            central_url: d.central_url,
            token: d.token,
            name: d.name,
            max_lag_secs: d.max_lag.as_secs(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBackup {
    pub(super) dir: String,
    pub(super) keep: u64,
    pub(super) every_hours: u64,
}

impl Default for RawBackup {
    fn default() -> Self {
        RawBackup {
            dir: String::new(),
            keep: BackupSettings::default().keep as u64,
            every_hours: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDiameter {
    pub(super) listen: String,
    pub(super) origin_host: String,
    pub(super) origin_realm: String,
    pub(super) product_name: String,
    pub(super) watchdog_secs: u64,
    pub(super) max_connections: u64,
    pub(super) max_connections_per_peer: u64,
    pub(super) peers: Vec<RawPeer>,
    pub(super) tls: RawDiameterTls,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDiameterTls {
    pub(super) cert_file: String,
    pub(super) key_file: String,
    pub(super) peer_ca_file: String,
}

impl Default for RawDiameter {
    fn default() -> Self {
        let defaults = diameter::Settings::default();
        RawDiameter {
            listen: defaults.listen.map(|a| a.to_string()).unwrap_or_default(),
            origin_host: defaults.origin_host,
            origin_realm: defaults.origin_realm,
            product_name: defaults.product_name,
            watchdog_secs: defaults.watchdog.as_secs(),
            max_connections: defaults.max_connections as u64,
            max_connections_per_peer: defaults.max_connections_per_peer as u64,
            peers: Vec::new(),
            tls: RawDiameterTls::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub(super) origin_host: String,
    pub(super) realm: String,
    #[serde(default)]
    pub(super) address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuth {
    pub(super) open_checks: bool,
    pub(super) refusals_per_minute: u64,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            open_checks: false,
            refusals_per_minute: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRegistrations {
    pub(super) max_upload_mb: u64,
}

impl Default for RawRegistrations {
    fn default() -> Self {
        RawRegistrations {
            max_upload_mb: 4096,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPublic {
    pub(super) requests_per_minute: u64,
}

impl Default for RawPublic {
    fn default() -> Self {
        RawPublic {
            requests_per_minute: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWeb {
    pub(super) session_idle_mins: u64,
    pub(super) session_max_hours: u64,
    pub(super) secure_cookies: bool,
}

impl Default for RawWeb {
    fn default() -> Self {
        RawWeb {
            session_idle_mins: 30,
            session_max_hours: 12,
            secure_cookies: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) listen: String,
    pub(super) max_connections: u64,
    pub(super) max_body_bytes: u64,
    pub(super) max_header_bytes: u64,
    pub(super) idle_timeout_secs: u64,
    pub(super) shutdown_grace_secs: u64,
    pub(super) direct_path: bool,
    pub(super) tls: RawTls,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTls {
    pub(super) cert_file: String,
    pub(super) key_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    pub(super) data_dir: PathBuf,
    pub(super) block_cache_mb: u64,
    pub(super) bloom_bits_per_key: f64,
    pub(super) sync_writes: bool,
    pub(super) max_wal_mb: u64,
    pub(super) positive_filter_fp_rate: f64,
    pub(super) negative_filter_fp_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCheck {
    pub(super) home_mccs: Vec<String>,
    pub(super) max_batch: u64,
    pub(super) native: RawInterface,
    pub(super) n5g_eir: RawInterface,
    pub(super) s13: RawInterface,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInterface {
    pub(super) not_listed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub(super) level: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            max_connections: 10_000,
            max_body_bytes: 1 << 20,
            max_header_bytes: 16 << 10,
            idle_timeout_secs: 60,
            shutdown_grace_secs: 10,
            direct_path: true,
            tls: RawTls::default(),
        }
    }
}

impl Default for RawStore {
    fn default() -> Self {
        let defaults = StoreOptions::default();
        RawStore {
            data_dir: PathBuf::from("./data"),
            block_cache_mb: (defaults.block_cache_bytes >> 20) as u64,
            bloom_bits_per_key: defaults.bloom_bits_per_key,
            sync_writes: defaults.sync_writes,
            max_wal_mb: defaults.max_wal_bytes >> 20,
            positive_filter_fp_rate: defaults.filter_fp_rate[List::Positive.index()],
            negative_filter_fp_rate: defaults.filter_fp_rate[List::Negative.index()],
        }
    }
}

impl Default for RawCheck {
    fn default() -> Self {
        let policy = CheckPolicy::default();
        let name = |i: Interface| RawInterface {
            not_listed: policy.not_listed[i.index()].as_str().to_ascii_lowercase(),
        };
        RawCheck {
            home_mccs: policy.home_mccs.iter().map(ToString::to_string).collect(),
            max_batch: 10_000,
            native: name(Interface::Native),
            n5g_eir: name(Interface::N5gEir),
            s13: name(Interface::S13),
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
        }
    }
}
