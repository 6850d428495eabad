//! Raw configuration to validated [`Config`]: every value checked once, with the key at fault
//! named, and turned into the types the components take.

use crate::accounts::logins::SessionLimits;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawBackup, RawConfig, RawDiameter, RawReplication};
use super::{Config, ConfigError, ServerLimits, TlsFiles};
use crate::diameter::{self, peers};
use crate::imsi::Mcc;
use crate::registry::backups::BackupSettings;
use crate::registry::{Answer, CheckPolicy, EquipmentStatus};
use crate::replication::{self, Role};
use crate::store::{List, StoreOptions};

impl RawConfig {
    /// The validated configuration this raw one describes.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key at fault.
    pub(super) fn validate(self) -> Result<Config, ConfigError> {
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
            // below 1e-6 a blocked filter's size grows much faster than a classic one's (see
            // store/filter.rs): a typo such as 1e-30 would ask for gigabytes
            if !((1e-6..1.0).contains(&rate)) {
                return Err(invalid(
                    key,
                    format!("{rate} must be at least 0.000001 and below 1"),
                ));
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
            outbox: false, // set below from [replication]
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
        let tls = pem_pair(
            (&self.server.tls.cert_file, "server.tls.cert_file"),
            (&self.server.tls.key_file, "server.tls.key_file"),
        )?
        .map(|(cert_file, key_file)| TlsFiles {
            cert_file,
            key_file,
        });
        let backup = self.backup.validate(&self.store.data_dir)?;
        let replication = self.replication.validate(self.auth.open_checks)?;
        let store = StoreOptions {
            outbox: replication.role == Role::Central,
            // a replica reads again from the stream whatever its disk loses (replica.rs)
            sync_writes: store.sync_writes && replication.role != Role::Replica,
            ..store
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
            sessions: SessionLimits {
                idle_secs: in_range(
                    "web.session_idle_mins",
                    self.web.session_idle_mins,
                    1,
                    24 * 60,
                )? * 60,
                max_secs: in_range(
                    "web.session_max_hours",
                    self.web.session_max_hours,
                    1,
                    24 * 30,
                )? * 3600,
            },
            secure_cookies: self.web.secure_cookies,
            diameter: self.diameter.validate()?,
            backup,
            replication,
            log_level: self.log.level,
        })
    }
}

impl RawReplication {
    fn validate(self, open_checks: bool) -> Result<replication::Settings, ConfigError> {
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid { key, problem };
        let role = match self.role.trim() {
            "standalone" => Role::Standalone,
            "central" => Role::Central,
            "replica" => Role::Replica,
            other => {
                return Err(invalid(
                    "replication.role",
                    format!("{other:?} is not standalone, central or replica"),
                ));
            }
        };
        let name_ok = |text: &str| {
            !text.is_empty()
                && text.len() <= 64
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name_ok(&self.stream) {
            return Err(invalid(
                "replication.stream",
                format!(
                    "{:?} is not a stream name (letters, digits, - and _)",
                    self.stream
                ),
            ));
        }
        let subject_ok = !self.subject.is_empty()
            && self.subject.split('.').all(|token| {
                !token.is_empty()
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
            });
        if !subject_ok {
            return Err(invalid(
                "replication.subject",
                format!(
                    "{:?} is not a NATS subject without wildcards (e.g. imeidb.changes)",
                    self.subject
                ),
            ));
        }
        if role != Role::Standalone && self.nats_url.trim().is_empty() {
            return Err(invalid(
                "replication.nats_url",
                "a central or a replica needs NATS (e.g. nats://127.0.0.1:4222)".into(),
            ));
        }
        if !(1..=24 * 365).contains(&self.retention_hours) {
            return Err(invalid(
                "replication.retention_hours",
                format!("{} is outside 1..=8760", self.retention_hours),
            ));
        }
        if !(1..=86_400).contains(&self.max_lag_secs) {
            return Err(invalid(
                "replication.max_lag_secs",
                format!("{} is outside 1..=86400", self.max_lag_secs),
            ));
        }
        if role == Role::Replica {
            if !self.central_url.starts_with("http://") || self.central_url.len() <= 7 {
                return Err(invalid(
                    "replication.central_url",
                    format!(
                        "{:?} is not the central's http:// base URL (e.g. http://central.registry:8080)",
                        self.central_url
                    ),
                ));
            }
            if self.token.trim().is_empty() {
                return Err(invalid(
                    "replication.token",
                    "a replica needs an API token of the central with the replicate permission (an operator's); set IMEIDB_REPLICATION_TOKEN".into(),
                ));
            }
            if !name_ok(&self.name) {
                return Err(invalid(
                    "replication.name",
                    format!(
                        "{:?} is not a replica name (letters, digits, - and _; one per replica: it names its durable consumer)",
                        self.name
                    ),
                ));
            }
            if !open_checks {
                return Err(invalid(
                    "auth.open_checks",
                    "a replica holds no accounts: it answers checks without a token, so it must listen where only the core network reaches and set auth.open_checks = true".into(),
                ));
            }
        }
        Ok(replication::Settings {
            role,
            nats_url: self.nats_url.trim().to_owned(),
            stream: self.stream,
            subject: self.subject,
            retention: Duration::from_secs(self.retention_hours * 3600),
            central_url: self.central_url.trim_end_matches('/').to_owned(),
            token: self.token.trim().to_owned(),
            name: self.name,
            max_lag: Duration::from_secs(self.max_lag_secs),
        })
    }
}

impl RawBackup {
    fn validate(self, data_dir: &Path) -> Result<BackupSettings, ConfigError> {
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid { key, problem };
        let dir = match self.dir.trim() {
            "" => None,
            text => Some(PathBuf::from(text)),
        };
        if let Some(dir) = &dir
            && (dir.starts_with(data_dir) || data_dir.starts_with(dir))
        {
            return Err(invalid(
                "backup.dir",
                format!(
                    "{} overlaps the data directory {}: a backup belongs on another disk, or at least beside the data",
                    dir.display(),
                    data_dir.display()
                ),
            ));
        }
        if !(1..=1_000).contains(&self.keep) {
            return Err(invalid(
                "backup.keep",
                format!("{} is outside 1..=1000", self.keep),
            ));
        }
        if self.every_hours > 24 * 365 {
            return Err(invalid(
                "backup.every_hours",
                format!("{} is outside 0..=8760 (0: no schedule)", self.every_hours),
            ));
        }
        let every = match self.every_hours {
            0 => None,
            _ if dir.is_none() => {
                return Err(invalid(
                    "backup.every_hours",
                    "a schedule needs backup.dir (where the backups go)".into(),
                ));
            }
            hours => Some(Duration::from_secs(hours * 3600)),
        };
        Ok(BackupSettings {
            dir,
            keep: self.keep as usize,
            every,
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
        let pair = pem_pair(
            (&self.tls.cert_file, "diameter.tls.cert_file"),
            (&self.tls.key_file, "diameter.tls.key_file"),
        )?;
        let tls = match (pair, self.tls.peer_ca_file.trim()) {
            (None, "") => None,
            (None, _) => {
                return Err(invalid(
                    "diameter.tls.peer_ca_file",
                    "needs diameter.tls.cert_file and key_file: peers are checked over TLS".into(),
                ));
            }
            (Some((cert_file, key_file)), ca) => Some(diameter::TlsSettings {
                cert_file,
                key_file,
                peer_ca_file: (!ca.is_empty()).then(|| PathBuf::from(ca)),
            }),
        };
        Ok(diameter::Settings {
            listen,
            tls,
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

/// A certificate and its key (`[server.tls]`, `[diameter.tls]`), each with its key name:
/// both or neither.
fn pem_pair(
    (cert, cert_key): (&str, &'static str),
    (key, key_key): (&str, &'static str),
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    let missing = |key| ConfigError::Invalid {
        key,
        problem: "set it too, or neither".into(),
    };
    match (cert.trim(), key.trim()) {
        ("", "") => Ok(None),
        ("", _) => Err(missing(cert_key)),
        (_, "") => Err(missing(key_key)),
        (cert, key) => Ok(Some((PathBuf::from(cert), PathBuf::from(key)))),
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
