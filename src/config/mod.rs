//! Configuration: the TOML file (or the built-in default, which is `config/imeidb.toml`
//! itself), then `IMEIDB_*` environment overrides, then command-line flags, turned once into a
//! validated [`Config`]. Everything after start-up reads `Config`, never raw values.
//!
//! Environment names are derived from the keys of the default file (`[store] block_cache_mb`
//! is `IMEIDB_STORE_BLOCK_CACHE_MB`), so the two cannot drift apart, and a misspelt variable
//! is an error rather than silently ignored.
//!
//! `raw.rs` holds the file's shape (serde, every key with its default), `validate.rs` turns it
//! into [`Config`], `env.rs` applies the environment; this file holds the validated types and
//! the order of the steps.

mod env;
mod raw;
mod validate;

use crate::accounts::logins::SessionLimits;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::diameter;
use crate::registry::CheckPolicy;
use crate::registry::backups::BackupSettings;
use crate::replication;
use crate::store::StoreOptions;
use env::{apply_env, set};
use raw::RawConfig;

/// The default configuration file, embedded: `imeidb serve` without `--config` uses it.
pub const DEFAULT_TOML: &str = include_str!("../../config/imeidb.toml");

/// Environment variable naming the config file (read by the CLI, not a config key).
pub const CONFIG_ENV: &str = "IMEIDB_CONFIG";

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
    /// How long people's web sessions last.
    pub sessions: SessionLimits,
    /// The web pages' cookies are `Secure` even without TLS on the listener (a proxy in front
    /// terminates it).
    pub secure_cookies: bool,
    /// The Diameter S13 listener.
    pub diameter: diameter::Settings,
    /// Where and how often online backups are taken.
    pub backup: BackupSettings,
    /// Central, replica or neither.
    pub replication: replication::Settings,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Answer, EquipmentStatus, Interface};

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
            (
                "[store]\npositive_filter_fp_rate = 1e-30\n",
                "store.positive_filter_fp_rate",
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
            (
                "[diameter.tls]\ncert_file = \"eir.pem\"\n",
                "diameter.tls.key_file",
            ),
            (
                "[diameter.tls]\nkey_file = \"eir.key\"\n",
                "diameter.tls.cert_file",
            ),
            (
                "[diameter.tls]\npeer_ca_file = \"ca.pem\"\n",
                "diameter.tls.peer_ca_file",
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
        assert_eq!(
            c.diameter.tls, None,
            "plain TCP unless [diameter.tls] names files"
        );
        std::fs::write(
            &path,
            "[diameter.tls]\ncert_file = \"eir.pem\"\nkey_file = \"eir.key\"\npeer_ca_file = \"ca.pem\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap();
        let tls = c.diameter.tls.expect("TLS");
        assert_eq!(tls.cert_file, Path::new("eir.pem"));
        assert_eq!(tls.peer_ca_file.as_deref(), Some(Path::new("ca.pem")));
        let env = vec![("IMEIDB_DIAMETER_PEERS".to_owned(), "mme1".to_owned())];
        let err = Config::load(None, env, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("config file"), "{err}");
    }

    #[test]
    fn backup_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (text, key) in [
            ("[backup]\nevery_hours = 24\n", "needs backup.dir"),
            ("[backup]\ndir = \"b\"\nkeep = 0\n", "backup.keep"),
            (
                "[store]\ndata_dir = \"/srv/imeidb\"\n[backup]\ndir = \"/srv/imeidb/backups\"\n",
                "overlaps the data directory",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
        std::fs::write(&path, "[backup]\ndir = \"/backups\"\nevery_hours = 6\n").unwrap();
        let c = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap();
        assert_eq!(c.backup.dir.as_deref(), Some(Path::new("/backups")));
        assert_eq!(c.backup.every, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(
            (c.backup.keep, Config::default_config().backup.dir),
            (7, None)
        );
    }

    #[test]
    fn replication_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let replica = "[auth]\nopen_checks = true\n[replication]\nrole = \"replica\"\ncentral_url = \"http://c:8080\"\ntoken = \"t\"\nname = \"r1\"\n";
        for (text, key) in [
            ("[replication]\nrole = \"leader\"\n", "replication.role"),
            (
                "[replication]\nsubject = \"imeidb.*\"\n",
                "replication.subject",
            ),
            ("[replication]\nstream = \"a.b\"\n", "replication.stream"),
            (
                "[replication]\nrole = \"central\"\nnats_url = \"\"\n",
                "replication.nats_url",
            ),
            (
                &replica.replace("http://c:8080", "c:8080"),
                "replication.central_url",
            ),
            (
                &replica.replace("token = \"t\"", "token = \"\""),
                "replication.token",
            ),
            (
                &replica.replace("name = \"r1\"", "name = \"r 1\""),
                "replication.name",
            ),
            (
                &replica.replace("open_checks = true", "open_checks = false"),
                "auth.open_checks",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
        std::fs::write(&path, replica).unwrap();
        let c = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap();
        assert_eq!(c.replication.role, replication::Role::Replica);
        assert!(!c.store.outbox, "a replica keeps no outbox");
        std::fs::write(&path, "[replication]\nrole = \"central\"\n").unwrap();
        let c = Config::load(Some(&path), no_env(), &Overrides::default()).unwrap();
        assert!(c.store.outbox, "a central numbers its changes");
        assert!(
            !Config::default_config().store.outbox,
            "standalone: no outbox to grow"
        );
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
