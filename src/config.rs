//! Configuration: the TOML file (or the built-in default, which is `config/imeidb.toml`
//! itself), then `IMEIDB_*` environment overrides, then command-line flags, turned once into a
//! validated [`Config`]. Everything after start-up reads `Config`, never raw values.
//!
//! Environment names are derived from the keys of the default file (`[store] block_cache_mb`
//! is `IMEIDB_STORE_BLOCK_CACHE_MB`), so the two cannot drift apart, and a misspelt variable
//! is an error rather than silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::diameter::{self, peers};
use crate::imsi::Mcc;
use crate::registry::{Answer, CheckPolicy, EquipmentStatus, Interface};
use crate::store::{List, StoreOptions};

/// The default configuration file, embedded: `imeidb serve` without `--config` uses it.
pub const DEFAULT_TOML: &str = include_str!("../config/imeidb.toml");

/// Environment variable naming the config file (read by the CLI, not a config key).
pub const CONFIG_ENV: &str = "IMEIDB_CONFIG";

/// The file as written, before validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    server: RawServer,
    store: RawStore,
    check: RawCheck,
    auth: RawAuth,
    registrations: RawRegistrations,
    public: RawPublic,
    diameter: RawDiameter,
    log: RawLog,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDiameter {
    listen: String,
    origin_host: String,
    origin_realm: String,
    product_name: String,
    watchdog_secs: u64,
    max_connections: u64,
    max_connections_per_peer: u64,
    peers: Vec<RawPeer>,
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
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    origin_host: String,
    realm: String,
    #[serde(default)]
    address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    open_checks: bool,
    refusals_per_minute: u64,
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
struct RawRegistrations {
    max_upload_mb: u64,
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
struct RawPublic {
    requests_per_minute: u64,
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
struct RawServer {
    listen: String,
    max_connections: u64,
    max_body_bytes: u64,
    max_header_bytes: u64,
    idle_timeout_secs: u64,
    shutdown_grace_secs: u64,
    direct_path: bool,
    tls: RawTls,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTls {
    cert_file: String,
    key_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    data_dir: PathBuf,
    block_cache_mb: u64,
    bloom_bits_per_key: f64,
    sync_writes: bool,
    max_wal_mb: u64,
    positive_filter_fp_rate: f64,
    negative_filter_fp_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCheck {
    home_mccs: Vec<String>,
    max_batch: u64,
    native: RawInterface,
    n5g_eir: RawInterface,
    s13: RawInterface,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    not_listed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: String,
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

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Limits of the HTTP server.
    pub server: ServerLimits,
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// Store settings.
    pub store: StoreOptions,
    /// The check rule's settings.
    pub check: CheckPolicy,
    /// Most IMEIs per batch check.
    pub max_batch: usize,
    /// TLS certificate chain and private key (PEM); `None` serves cleartext.
    pub tls: Option<TlsFiles>,
    /// Largest registration upload, in bytes.
    pub max_upload_bytes: u64,
    /// Requests per client address per minute on the public status route.
    pub public_per_minute: u32,
    /// Network checks answered without a token (the listener is on a trusted core network).
    pub open_checks: bool,
    /// Refused requests per user per minute before the rest of the minute's are refused
    /// unread (the routes that wait; not the network checks).
    pub refusals_per_minute: u32,
    /// The Diameter S13 listener.
    pub diameter: diameter::Settings,
    /// Log filter.
    pub log_level: String,
}

/// The PEM files of the listener's TLS identity.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Limits of the HTTP server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// A silent connection is closed after this long.
    pub idle_timeout: Duration,
    /// How long in-flight requests get on shutdown.
    pub shutdown_grace: Duration,
    /// Cleartext HTTP/1.1 requests that never wait are read and answered without hyper.
    pub direct_path: bool,
}

/// A configuration problem, naming the key (or variable, or file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file (or the merged result) is not valid TOML for this program.
    #[error("{origin}: {message}")]
    Parse {
        /// The file, or "environment and flags".
        origin: String,
        /// What the parser said (names the key).
        message: String,
    },
    /// An `IMEIDB_*` variable names no key, or its value does not fit the key.
    #[error("environment variable {name}: {problem}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A value is out of range or malformed.
    #[error("{key}: {problem}")]
    Invalid {
        /// The key, as `section.key`.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Loads `file` (or the built-in default), applies the `IMEIDB_*` variables of `env` and
    /// then `flags`, and validates the result.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, variable or key at fault.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let (origin, text) = match file {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?,
            ),
            None => (
                "built-in default config".to_owned(),
                DEFAULT_TOML.to_owned(),
            ),
        };
        let mut table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
        apply_env(&mut table, env)?;
        if let Some(listen) = &flags.listen {
            set(
                &mut table,
                &["server", "listen"],
                Value::String(listen.clone()),
            );
        }
        if let Some(dir) = &flags.data_dir {
            let dir = dir.display().to_string();
            set(&mut table, &["store", "data_dir"], Value::String(dir));
        }
        let raw: RawConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                origin,
                message: e.to_string(),
            })?;
        raw.validate()
    }

    /// The built-in default configuration.
    pub fn default_config() -> Config {
        RawConfig::default()
            .validate()
            .expect("the default configuration is valid")
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid { key, problem };
        let listen = self.server.listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!(
                    "{:?} is not an address:port such as 127.0.0.1:8080",
                    self.server.listen
                ),
            )
        })?;
        let in_range = |key: &'static str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(invalid(key, format!("{value} is outside {min}..={max}")))
            }
        };
        let server = ServerLimits {
            max_connections: in_range(
                "server.max_connections",
                self.server.max_connections,
                1,
                1_000_000,
            )? as usize,
            max_body_bytes: in_range(
                "server.max_body_bytes",
                self.server.max_body_bytes,
                1024,
                1 << 30,
            )? as usize,
            max_header_bytes: in_range(
                "server.max_header_bytes",
                self.server.max_header_bytes,
                8192,
                1 << 20,
            )? as usize,
            idle_timeout: Duration::from_secs(in_range(
                "server.idle_timeout_secs",
                self.server.idle_timeout_secs,
                1,
                86_400,
            )?),
            shutdown_grace: Duration::from_secs(in_range(
                "server.shutdown_grace_secs",
                self.server.shutdown_grace_secs,
                0,
                3_600,
            )?),
            direct_path: self.server.direct_path,
        };
        let cache_mb = in_range(
            "store.block_cache_mb",
            self.store.block_cache_mb,
            8,
            1 << 20,
        )?;
        let wal_mb = in_range("store.max_wal_mb", self.store.max_wal_mb, 1, 1 << 20)?;
        if !(1.0..=64.0).contains(&self.store.bloom_bits_per_key) {
            return Err(invalid(
                "store.bloom_bits_per_key",
                format!("{} is outside 1..=64", self.store.bloom_bits_per_key),
            ));
        }
        for (key, rate) in [
            (
                "store.positive_filter_fp_rate",
                self.store.positive_filter_fp_rate,
            ),
            (
                "store.negative_filter_fp_rate",
                self.store.negative_filter_fp_rate,
            ),
        ] {
            if !(rate > 0.0 && rate < 1.0) {
                return Err(invalid(key, format!("{rate} must be above 0 and below 1")));
            }
        }
        if self.store.data_dir.as_os_str().is_empty() {
            return Err(invalid("store.data_dir", "must not be empty".into()));
        }
        let store = StoreOptions {
            block_cache_bytes: (cache_mb << 20) as usize,
            bloom_bits_per_key: self.store.bloom_bits_per_key,
            sync_writes: self.store.sync_writes,
            max_wal_bytes: wal_mb << 20,
            filter_fp_rate: List::ALL.map(|list| match list {
                List::Positive => self.store.positive_filter_fp_rate,
                List::Negative => self.store.negative_filter_fp_rate,
            }),
        };
        if self.check.home_mccs.is_empty() {
            return Err(invalid("check.home_mccs", "name at least one MCC".into()));
        }
        let home_mccs = self
            .check
            .home_mccs
            .iter()
            .map(|m| Mcc::parse(m.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|p| invalid("check.home_mccs", p))?;
        let check = CheckPolicy {
            home_mccs,
            not_listed: [
                parse_answer("check.native.not_listed", &self.check.native.not_listed)?,
                parse_answer("check.n5g_eir.not_listed", &self.check.n5g_eir.not_listed)?,
                parse_answer("check.s13.not_listed", &self.check.s13.not_listed)?,
            ],
        };
        let max_batch = in_range("check.max_batch", self.check.max_batch, 1, 1_000_000)? as usize;
        let tls = match (
            self.server.tls.cert_file.trim(),
            self.server.tls.key_file.trim(),
        ) {
            ("", "") => None,
            ("", _) => {
                return Err(invalid(
                    "server.tls.cert_file",
                    "set it too, or neither".into(),
                ));
            }
            (_, "") => {
                return Err(invalid(
                    "server.tls.key_file",
                    "set it too, or neither".into(),
                ));
            }
            (cert, key) => Some(TlsFiles {
                cert_file: PathBuf::from(cert),
                key_file: PathBuf::from(key),
            }),
        };
        Ok(Config {
            listen,
            server,
            data_dir: self.store.data_dir,
            store,
            check,
            max_batch,
            tls,
            open_checks: self.auth.open_checks,
            refusals_per_minute: in_range(
                "auth.refusals_per_minute",
                self.auth.refusals_per_minute,
                1,
                1_000_000,
            )? as u32,
            max_upload_bytes: in_range(
                "registrations.max_upload_mb",
                self.registrations.max_upload_mb,
                1,
                1 << 20,
            )? << 20,
            public_per_minute: in_range(
                "public.requests_per_minute",
                self.public.requests_per_minute,
                1,
                1_000_000,
            )? as u32,
            diameter: self.diameter.validate()?,
            log_level: self.log.level,
        })
    }
}

impl RawDiameter {
    fn validate(self) -> Result<diameter::Settings, ConfigError> {
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid { key, problem };
        let listen = match self.listen.trim() {
            "" => None,
            text => Some(text.parse().map_err(|_| {
                invalid(
                    "diameter.listen",
                    format!("{text:?} is not an address:port such as 127.0.0.1:3868 (or \"\" to disable Diameter)"),
                )
            })?),
        };
        let identity = |key: &'static str, value: String| {
            let value = value.trim().to_owned();
            if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic())
            {
                Err(invalid(
                    key,
                    format!(
                        "{value:?} is not a Diameter identity (an FQDN such as eir.epc.mnc001.mcc732.3gppnetwork.org)"
                    ),
                ))
            } else {
                Ok(value)
            }
        };
        let origin_host = identity("diameter.origin_host", self.origin_host)?;
        let origin_realm = identity("diameter.origin_realm", self.origin_realm)?;
        if self.product_name.trim().is_empty() {
            return Err(invalid("diameter.product_name", "must not be empty".into()));
        }
        if !(6..=3_600).contains(&self.watchdog_secs) {
            return Err(invalid(
                "diameter.watchdog_secs",
                format!(
                    "{} is outside 6..=3600 (RFC 3539: at least 6, 30 by default)",
                    self.watchdog_secs
                ),
            ));
        }
        if !(1..=100_000).contains(&self.max_connections) {
            return Err(invalid(
                "diameter.max_connections",
                format!("{} is outside 1..=100000", self.max_connections),
            ));
        }
        if !(1..=self.max_connections).contains(&self.max_connections_per_peer) {
            return Err(invalid(
                "diameter.max_connections_per_peer",
                format!(
                    "{} is outside 1..={} (diameter.max_connections)",
                    self.max_connections_per_peer, self.max_connections
                ),
            ));
        }
        let mut table: Vec<peers::Peer> = Vec::with_capacity(self.peers.len());
        for peer in self.peers {
            let origin_host = identity("diameter.peers.origin_host", peer.origin_host)?;
            let realm = identity("diameter.peers.realm", peer.realm)?;
            let source = match peer.address.trim() {
                "" => None,
                text => Some(peers::Cidr::parse(text).map_err(|problem| {
                    invalid(
                        "diameter.peers.address",
                        format!("peer {origin_host}: {problem}"),
                    )
                })?),
            };
            if table.iter().any(|p| {
                p.origin_host.eq_ignore_ascii_case(&origin_host)
                    && p.realm.eq_ignore_ascii_case(&realm)
            }) {
                return Err(invalid(
                    "diameter.peers",
                    format!("peer {origin_host} of realm {realm} is listed twice"),
                ));
            }
            table.push(peers::Peer {
                origin_host,
                realm,
                source,
            });
        }
        Ok(diameter::Settings {
            listen,
            origin_host,
            origin_realm,
            product_name: self.product_name.trim().to_owned(),
            watchdog: Duration::from_secs(self.watchdog_secs),
            max_connections: self.max_connections as usize,
            max_connections_per_peer: self.max_connections_per_peer as usize,
            peers: peers::PeerTable::new(table),
        })
    }
}

fn parse_answer(key: &'static str, value: &str) -> Result<Answer, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "whitelisted" => Ok(Answer::Status(EquipmentStatus::Whitelisted)),
        "blacklisted" => Ok(Answer::Status(EquipmentStatus::Blacklisted)),
        "greylisted" => Ok(Answer::Status(EquipmentStatus::Greylisted)),
        "unknown" => Ok(Answer::Unknown),
        _ => Err(ConfigError::Invalid {
            key,
            problem: format!(
                "{value:?} is not one of \"greylisted\", \"whitelisted\", \"blacklisted\", \"unknown\""
            ),
        }),
    }
}

/// Every leaf key of the default config with its default value, as (`["store","data_dir"]`,
/// value): the source of truth for environment variable names and types.
fn leaf_keys() -> Vec<(Vec<String>, Value)> {
    fn walk(prefix: &mut Vec<String>, table: &Table, out: &mut Vec<(Vec<String>, Value)>) {
        for (key, value) in table {
            prefix.push(key.clone());
            match value {
                Value::Table(t) => walk(prefix, t, out),
                leaf => out.push((prefix.clone(), leaf.clone())),
            }
            prefix.pop();
        }
    }
    let defaults = Table::try_from(RawConfig::default()).expect("the default config serialises");
    let mut out = Vec::new();
    walk(&mut Vec::new(), &defaults, &mut out);
    out
}

fn env_name(path: &[String]) -> String {
    format!("IMEIDB_{}", path.join("_").to_ascii_uppercase())
}

fn apply_env(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let keys = leaf_keys();
    for (name, raw) in env {
        if !name.starts_with("IMEIDB_") || name == CONFIG_ENV {
            continue;
        }
        let Some((path, default)) = keys.iter().find(|(path, _)| env_name(path) == name) else {
            let known: Vec<String> = keys.iter().map(|(p, _)| env_name(p)).collect();
            return Err(ConfigError::Env {
                name,
                problem: format!("no such setting; known: {}, {CONFIG_ENV}", known.join(", ")),
            });
        };
        let env_err = |problem: String| ConfigError::Env {
            name: name.clone(),
            problem,
        };
        let value = match default {
            Value::String(_) => Value::String(raw),
            Value::Integer(_) => Value::Integer(
                raw.trim()
                    .parse()
                    .map_err(|_| env_err(format!("{raw:?} is not a whole number")))?,
            ),
            Value::Float(_) => Value::Float(
                raw.trim()
                    .parse()
                    .map_err(|_| env_err(format!("{raw:?} is not a number")))?,
            ),
            Value::Boolean(_) => Value::Boolean(
                raw.trim()
                    .parse()
                    .map_err(|_| env_err(format!("{raw:?} is not true or false")))?,
            ),
            Value::Array(_) if path.last().is_some_and(|k| k == "peers") => {
                return Err(env_err(
                    "the peer table cannot be set from the environment; write it in the config file".into(),
                ));
            }
            Value::Array(_) => Value::Array(
                raw.split(',')
                    .map(|s| Value::String(s.trim().to_owned()))
                    .collect(),
            ),
            Value::Datetime(_) | Value::Table(_) => {
                return Err(env_err("cannot be set from the environment".into()));
            }
        };
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        set(table, &path, value);
    }
    Ok(())
}

/// Sets `path` in `table`, creating intermediate tables.
fn set(table: &mut Table, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut current = table;
    for key in parents {
        let entry = current
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        current = entry.as_table_mut().expect("just made a table");
    }
    current.insert((*last).to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn the_example_file_parses_and_equals_the_defaults() {
        let from_file: RawConfig = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(from_file, RawConfig::default());
        let loaded = Config::load(None, no_env(), &Overrides::default()).unwrap();
        assert_eq!(loaded, Config::default_config());
        assert_eq!(loaded.data_dir, PathBuf::from("./data"));
        assert_eq!(loaded.check, CheckPolicy::default());
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let env = vec![
            ("IMEIDB_STORE_BLOCK_CACHE_MB".to_owned(), "512".to_owned()),
            ("IMEIDB_SERVER_LISTEN".to_owned(), "0.0.0.0:9000".to_owned()),
            ("IMEIDB_CHECK_HOME_MCCS".to_owned(), "732, 734".to_owned()),
            (
                "IMEIDB_CHECK_N5G_EIR_NOT_LISTED".to_owned(),
                "greylisted".to_owned(),
            ),
            ("IMEIDB_STORE_SYNC_WRITES".to_owned(), "false".to_owned()),
            ("IMEIDB_CONFIG".to_owned(), "ignored.toml".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let flags = Overrides {
            listen: Some("127.0.0.1:7000".into()),
            data_dir: Some("/tmp/x".into()),
        };
        let c = Config::load(None, env, &flags).unwrap();
        assert_eq!(c.store.block_cache_bytes, 512 << 20);
        assert_eq!(c.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.check.home_mccs.len(), 2);
        assert_eq!(
            c.check.not_listed[Interface::N5gEir.index()],
            Answer::Status(EquipmentStatus::Greylisted)
        );
        assert!(!c.store.sync_writes);
    }

    #[test]
    fn unknown_and_bad_environment_variables_are_named() {
        let err = Config::load(
            None,
            vec![("IMEIDB_STORE_BLOK_CACHE_MB".into(), "1".into())],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("IMEIDB_STORE_BLOK_CACHE_MB: no such setting")
        );
        let err = Config::load(
            None,
            vec![("IMEIDB_STORE_BLOCK_CACHE_MB".into(), "lots".into())],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a whole number"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        for (text, key) in [
            ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
            (
                "[store]\nnegative_filter_fp_rate = 1.5\n",
                "store.negative_filter_fp_rate",
            ),
            ("[store]\nblock_cache_mb = 1\n", "store.block_cache_mb"),
            ("[check]\nhome_mccs = [\"73\"]\n", "check.home_mccs"),
            (
                "[check.native]\nnot_listed = \"maybe\"\n",
                "check.native.not_listed",
            ),
            ("[store]\nbogus = 1\n", "bogus"),
            (
                "[server.tls]\ncert_file = \"cert.pem\"\n",
                "server.tls.key_file",
            ),
        ] {
            let path = dir.path().join("c.toml");
            std::fs::write(&path, text).unwrap();
            let err = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn diameter_settings_and_the_peer_table_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let peer = "[[diameter.peers]]\norigin_host = \"mme1.example\"\nrealm = \"example\"\n";
        for (text, key) in [
            ("[diameter]\nwatchdog_secs = 1\n", "diameter.watchdog_secs"),
            ("[diameter]\nlisten = \"3868\"\n", "diameter.listen"),
            (
                "[diameter]\norigin_host = \"eir host\"\n",
                "diameter.origin_host",
            ),
            (
                "[diameter]\nmax_connections = 4\nmax_connections_per_peer = 5\n",
                "diameter.max_connections_per_peer",
            ),
            (
                &format!("{peer}address = \"10.0.0.1/8\"\n"),
                "diameter.peers.address",
            ),
            (&format!("{peer}{peer}"), "listed twice"),
            (
                "[check.s13]\nnot_listed = \"maybe\"\n",
                "check.s13.not_listed",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
        std::fs::write(
            &path,
            format!("[diameter]\nlisten = \"\"\n{peer}address = \"10.0.0.0/8\"\n"),
        )
        .unwrap();
        let c = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap();
        assert_eq!(c.diameter.listen, None, "\"\" disables Diameter");
        assert_eq!(c.diameter.peers.peers().len(), 1);
        let env = vec![("IMEIDB_DIAMETER_PEERS".to_owned(), "mme1".to_owned())];
        let err = Config::load(None, env, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("config file"), "{err}");
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[store]\nblock_cache_mb = 64\n").unwrap();
        let c = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap();
        assert_eq!(c.store.block_cache_bytes, 64 << 20);
        assert_eq!(c.listen, Config::default_config().listen);
    }
}
