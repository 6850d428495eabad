//! The `imeidb` command: `serve`, `import`, `admin bootstrap`, `audit verify`, `backup verify`,
//! `restore`. A thin layer over the library: it reads the
//! configuration, opens the store and hands over; errors are printed with their causes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use imeidb::accounts::forms::OrgForm;
use imeidb::accounts::{Accounts, AccountsError};
use imeidb::api::AppState;
use imeidb::audit::{self, Actor, Event, Outcome};
use imeidb::config::{CONFIG_ENV, Config, Overrides};
use imeidb::diameter::Node;
use imeidb::metrics::Metrics;
use imeidb::registry::Registry;
use imeidb::registry::backups::{self, BackupBy, BackupSettings, Restored, describe};
use imeidb::registry::import::{ImportReport, Progress, import_csv};
use imeidb::replication::metrics::ReplicationMetrics;
use imeidb::replication::{Role, publisher, replica};
use imeidb::store::{List, Store, StoreOptions};

/// imeidb: national IMEI registry server.
///
/// Keeps the positive list (devices that entered the country legally) and the negative list
/// (devices reported stolen or lost) and answers the network's equipment checks over the 5G
/// EIR API (TS 29.511) and a native JSON API, on HTTP/1.1 and HTTP/2 cleartext.
#[derive(Parser)]
#[command(name = "imeidb", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the check APIs until SIGTERM or ctrl-c.
    ///
    /// Without --config the built-in default (config/imeidb.toml) is used: listen on
    /// 127.0.0.1:8080, data under ./data. IMEIDB_<SECTION>_<KEY> variables override the file;
    /// flags override both.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on, e.g. 0.0.0.0:8080 (overrides server.listen).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Bulk-load a CSV file into a list (the server must be stopped).
    ///
    /// The file needs a header naming its columns; `imei` is required. Positive list:
    /// manufacturer, model, registrant, reference. Negative list: kind (stolen|lost), reporter,
    /// reference. Every line is validated; good lines are loaded in one atomic step, bad ones
    /// are reported with their line numbers. IMEIs already on the list are left unchanged.
    ///
    /// Exit status: 0 all lines loaded or already listed; 2 some lines rejected (the others
    /// were loaded); 1 nothing loaded (bad header, unreadable file, data dir in use).
    Import {
        #[command(flatten)]
        common: Common,
        /// The list to load into.
        #[arg(long, value_enum)]
        list: ListArg,
        /// The CSV file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Administration from the server's console.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Online backups (taken by the server: POST /v1/admin/backups or the [backup] schedule).
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Restore a backup into a new data directory and prove it holds what was backed up.
    ///
    /// Restores the latest backup of DIR (or --backup ID) into --data-dir, which must not exist
    /// or be empty, then opens it and compares each list's entries and SHA-256 and the audit
    /// trail's head with what the backup recorded when it was taken, and checks the audit
    /// chain link by link. Start a server on the new directory afterwards.
    /// Exit status: 0 restored and exact; 1 refused, failed or different.
    Restore {
        /// The backup directory (backup.dir of the server that took it).
        #[arg(long = "from", value_name = "DIR")]
        from: PathBuf,
        /// Which backup (default: the latest).
        #[arg(long = "backup", value_name = "ID")]
        id: Option<u32>,
        /// Where to restore it: a new or empty directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Prove the backups of DIR: each one's files are there, and restored into a scratch
    /// directory (removed afterwards) it holds exactly what it recorded when it was taken
    /// (entries and SHA-256 per list, the audit trail's head and unbroken chain).
    /// Exit status: 0 every backup checked is intact; 1 any is not, or DIR holds none.
    Verify {
        /// The backup directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Only this backup (default: every backup in DIR).
        #[arg(long = "backup", value_name = "ID")]
        id: Option<u32>,
        /// Where to restore each backup while checking it (default: the system's temp dir).
        #[arg(long, value_name = "DIR")]
        scratch: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// First start: create the regulator organisation and its first administrator, and print
    /// that administrator's API token once (the server must be stopped).
    ///
    /// FILE is the regulator's user form as JSON (see config/regulator.example.json): the
    /// organisation's data, legal representative, accountant, contacts and administrator.
    /// Refuses if any organisation exists. Exit status: 0 done; 1 refused or failed.
    Bootstrap {
        #[command(flatten)]
        common: Common,
        /// The regulator's form (JSON).
        #[arg(long, value_name = "FILE")]
        org: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit trail's hash chain from the first entry to the recorded head (the
    /// server must be stopped). Exit status: 0 intact; 1 broken or unreadable.
    Verify {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(clap::Args)]
struct Common {
    /// Configuration file (TOML). Default: the built-in config/imeidb.toml.
    #[arg(long, value_name = "FILE", env = CONFIG_ENV)]
    config: Option<PathBuf>,
    /// Data directory (overrides store.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListArg {
    /// Devices that entered the country legally or were made here.
    Positive,
    /// Devices reported stolen or lost.
    Negative,
}

impl From<ListArg> for List {
    fn from(list: ListArg) -> List {
        match list {
            ListArg::Positive => List::Positive,
            ListArg::Negative => List::Negative,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { common, listen } => serve(&common, listen),
        Command::Import { common, list, file } => import(&common, list.into(), &file),
        Command::Admin {
            command: AdminCommand::Bootstrap { common, org },
        } => bootstrap(&common, &org),
        Command::Audit {
            command: AuditCommand::Verify { common },
        } => verify_audit(&common),
        Command::Backup {
            command: BackupCommand::Verify { dir, id, scratch },
        } => verify_backups(&dir, id, scratch),
        Command::Restore { from, id, data_dir } => restore(&from, id, &data_dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("imeidb: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(common: &Common, listen: Option<String>) -> anyhow::Result<Config> {
    let overrides = Overrides {
        listen,
        data_dir: common.data_dir.clone(),
    };
    Ok(Config::load(
        common.config.as_deref(),
        std::env::vars(),
        &overrides,
    )?)
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn serve(common: &Common, listen: Option<String>) -> anyhow::Result<ExitCode> {
    let config = load_config(common, listen)?;
    init_logging(&config.log_level);
    let metrics = Arc::new(Metrics::new());
    let store = Store::open(&config.data_dir, &config.store, &metrics)
        .with_context(|| format!("opening the store at {}", config.data_dir.display()))?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        positive = store.len(List::Positive),
        negative = store.len(List::Negative),
        memory_mib = (store.memory_bytes(List::Positive) + store.memory_bytes(List::Negative)) >> 20,
        open_ms = store.open_time().as_millis() as u64,
        "store open"
    );
    let tls = match &config.tls {
        None => None,
        Some(files) => Some(
            imeidb::server::tls_acceptor(&files.cert_file, &files.key_file)
                .context("setting up TLS (server.tls)")?,
        ),
    };
    let diameter_tls = match &config.diameter.tls {
        None => None,
        Some(files) => {
            Some(imeidb::diameter::tls_acceptor(files).context("setting up TLS (diameter.tls)")?)
        }
    };
    let store = Arc::new(store);
    let accounts = Accounts::open(Arc::clone(&store)).context("loading the accounts")?;
    if config.replication.role == Role::Replica
        && (accounts.is_bootstrapped() || (store.replicated_through() == 0 && !store.is_empty()))
    {
        anyhow::bail!(
            "{} holds a registry of its own (accounts, or lists that did not come from a central): a replica holds only what it replicates; start it on a new, empty data directory",
            config.data_dir.display()
        );
    }
    if config.replication.role != Role::Replica && !accounts.is_bootstrapped() {
        tracing::warn!(
            "no organisation exists yet: run `imeidb admin bootstrap --org FILE` (server stopped) to create the regulator and its first token"
        );
    }
    let registry = Registry::new(store, config.check.clone(), &metrics);
    let state = AppState::new(registry.clone(), accounts.clone(), metrics, &config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = imeidb::server::listen(config.listen)
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let diameter = match config.diameter.listen {
            None => None,
            Some(at) => Some(
                imeidb::diameter::listen(at)
                    .with_context(|| format!("listening for Diameter on {at} (diameter.listen)"))?,
            ),
        };
        state
            .ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let protocols = if tls.is_some() {
            "TLS: h2 and HTTP/1.1"
        } else {
            "HTTP/1.1 and h2c"
        };
        tracing::info!(%addr, open_checks = config.open_checks, "listening ({protocols})");
        // one signal stops both listeners
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stopped_for = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let diameter = match diameter {
            None => None,
            Some(listener) => {
                let node = Arc::new(Node::new(
                    config.diameter.clone(),
                    registry.clone(),
                    &state.metrics,
                    config.server.shutdown_grace,
                ));
                let at = listener
                    .local_addr()
                    .context("reading the Diameter address")?;
                tracing::info!(
                    diameter = %at,
                    origin_host = %config.diameter.origin_host,
                    origin_realm = %config.diameter.origin_realm,
                    peers = config.diameter.peers.peers().len(),
                    peer_certificates = config.diameter.tls.as_ref().is_some_and(|t| t.peer_ca_file.is_some()),
                    "listening (Diameter S13 over {})",
                    if diameter_tls.is_some() { "TLS" } else { "TCP" }
                );
                if config.diameter.tls.as_ref().is_some_and(|t| t.peer_ca_file.is_none()) {
                    tracing::warn!(
                        "diameter.tls has no peer_ca_file: Diameter peers are encrypted but not authenticated by certificate"
                    );
                }
                let claimants = if config.diameter.tls.as_ref().is_some_and(|t| t.peer_ca_file.is_some()) {
                    "any holder of a certificate of diameter.tls.peer_ca_file"
                } else {
                    "anyone"
                };
                for peer in config.diameter.claimable_peers(at) {
                    tracing::warn!(
                        peer = %peer.origin_host,
                        "this Diameter peer has no address: {claimants} who reaches {at} can claim its Origin-Host and hold its connections (set diameter.peers.address)"
                    );
                }
                if config.diameter.peers.peers().is_empty() {
                    tracing::warn!(
                        "the Diameter peer table is empty: every MME is refused (list them under [[diameter.peers]])"
                    );
                }
                Some(tokio::spawn(imeidb::diameter::run(
                    listener,
                    node,
                    diameter_tls,
                    stopped_for(stopped.clone()),
                )))
            }
        };
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        let saver = tokio::spawn(save_last_use_every_minute(accounts.clone()));
        let feed = match config.replication.role {
            Role::Standalone => None,
            Role::Central => Some(tokio::spawn(publisher::run(
                Arc::clone(registry.store()),
                config.replication.clone(),
                ReplicationMetrics::new(&state.metrics),
                stopped_for(stopped.clone()),
            ))),
            Role::Replica => Some(tokio::spawn(replica::run(
                Arc::clone(registry.store()),
                config.replication.clone(),
                ReplicationMetrics::new(&state.metrics),
                state.replica.clone().expect("a replica's state has its status"),
                stopped_for(stopped.clone()),
            ))),
        };
        let scheduled = config.backup.every.map(|every| {
            tokio::spawn(backups_on_schedule(
                registry.clone(),
                config.backup.clone(),
                every,
            ))
        });
        imeidb::server::run(listener, state, &config.server, tls, stopped_for(stopped)).await?;
        if let Some(diameter) = diameter {
            diameter.await.context("the Diameter listener failed")??;
        }
        saver.abort();
        if let Some(scheduled) = scheduled {
            scheduled.abort();
        }
        if let Some(feed) = feed {
            let _ = feed.await;
        }
        anyhow::Ok(())
    })?;
    drop(runtime);
    if let Err(e) = accounts.save_last_use() {
        tracing::warn!(error = %e, "could not save tokens' last use on shutdown");
    }
    registry
        .store()
        .sync()
        .context("syncing the store on shutdown")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Writes tokens' last use to the store once a minute.
async fn save_last_use_every_minute(accounts: Accounts) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        let accounts = accounts.clone();
        match tokio::task::spawn_blocking(move || accounts.save_last_use()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not save tokens' last use"),
            Err(e) => tracing::warn!(error = %e, "saving tokens' last use panicked"),
        }
    }
}

/// Completes on SIGTERM or SIGINT (ctrl-c).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; ctrl-c only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
}

fn import(common: &Common, list: List, file: &Path) -> anyhow::Result<ExitCode> {
    let config = load_config(common, None)?;
    init_logging("warn");
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let metrics = Metrics::new();
    let store = Store::open(&config.data_dir, &config.store, &metrics)
        .with_context(|| format!("opening the store at {}", config.data_dir.display()))?;
    let store = Arc::new(store);
    let accounts = Accounts::open(Arc::clone(&store)).context("loading the accounts")?;
    let registry = Registry::new(store, config.check.clone(), &metrics);
    eprintln!(
        "importing {} into the {list} list at {}",
        file.display(),
        config.data_dir.display()
    );
    let mut bar = ProgressBar::new(size);
    let report = import_csv(
        &registry,
        list,
        std::io::BufReader::with_capacity(1 << 20, input),
        &mut |p| bar.show(p),
    )
    .with_context(|| format!("importing {}", file.display()))?;
    bar.finish();
    let event = Event {
        actor: Actor::Console {
            command: format!("imeidb import --list {list}"),
        },
        action: audit::Action::ListImport,
        target: format!("list/{list}"),
        outcome: Outcome::Done,
        reason: None,
        detail: Some(format!(
            "{} lines, {} added, {} already listed, {} rejected",
            report.lines,
            report.accepted,
            report.already_listed,
            report.rejected_total()
        )),
    };
    accounts
        .record(&event)
        .context("the lines were loaded, but the audit entry of the import could not be written")?;
    print_report(&report, list, started.elapsed());
    Ok(if report.rejected_total() > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn bootstrap(common: &Common, org: &Path) -> anyhow::Result<ExitCode> {
    let config = load_config(common, None)?;
    init_logging("warn");
    let text =
        std::fs::read_to_string(org).with_context(|| format!("reading {}", org.display()))?;
    let form: OrgForm = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid organisation form", org.display()))?;
    let store = Store::open(&config.data_dir, &config.store, &Metrics::new())
        .with_context(|| format!("opening the store at {}", config.data_dir.display()))?;
    let accounts = Accounts::open(Arc::new(store)).context("loading the accounts")?;
    match accounts.bootstrap(form) {
        Ok(made) => {
            let (org, admin) = (&made.org, &made.admin);
            println!(
                "created organisation {} ({}) and its administrator user {} ({})",
                org.id, org.data.legal_name, admin.id, admin.full_name
            );
            println!(
                "one-time code with which {} sets a web password at /clave (valid 72 hours; then sign in at /entrar with {}):",
                admin.full_name, admin.email
            );
            println!("{}", made.password_code);
            // the token last: scripts take it with `tail -1`
            println!(
                "API token of user {} (shown once; the registry keeps only its hash):",
                admin.id
            );
            println!("{}", made.token);
            Ok(ExitCode::SUCCESS)
        }
        Err(AccountsError::Invalid(errors)) => {
            eprintln!("imeidb: error: {} has invalid fields:", org.display());
            for (field, reason) in errors.0 {
                eprintln!("  {field}: {reason}");
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

fn verify_audit(common: &Common) -> anyhow::Result<ExitCode> {
    let config = load_config(common, None)?;
    init_logging("warn");
    let store = Store::open(&config.data_dir, &config.store, &Metrics::new())
        .with_context(|| format!("opening the store at {}", config.data_dir.display()))?;
    match audit::verify(&store) {
        Ok(verified) => {
            println!(
                "audit trail intact: {} entries, head {}",
                verified.entries, verified.head
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            eprintln!("imeidb: audit trail BROKEN: {broken}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Store options for a copy opened only to be proven: a small cache, no fsync.
fn proving_options() -> StoreOptions {
    StoreOptions {
        block_cache_bytes: 16 << 20,
        sync_writes: false,
        ..StoreOptions::default()
    }
}

/// Prints what a restored copy holds beside what its backup recorded; returns whether exact.
fn print_restored(restored: &Restored) -> bool {
    let info = &restored.recorded;
    let taken = imeidb::timefmt::rfc3339(info.taken_at);
    if restored.is_exact() {
        println!("backup {} (taken {taken}): intact", info.id);
        println!("  {}", describe(info));
        true
    } else {
        println!("backup {} (taken {taken}): DIFFERENT", info.id);
        for difference in restored.differences() {
            println!("  {difference}");
        }
        false
    }
}

fn verify_backups(
    dir: &Path,
    id: Option<u32>,
    scratch: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    init_logging("warn");
    let recorded = imeidb::store::backups(dir)
        .with_context(|| format!("reading the backups in {}", dir.display()))?;
    let ids: Vec<u32> = match id {
        Some(id) => vec![id],
        None => recorded.iter().map(|b| b.id).collect(),
    };
    if ids.is_empty() {
        eprintln!("imeidb: {} holds no backup", dir.display());
        return Ok(ExitCode::FAILURE);
    }
    let scratch = scratch.unwrap_or_else(std::env::temp_dir);
    let mut intact = true;
    for id in ids {
        match backups::verify(dir, id, &scratch, &proving_options()) {
            Ok(restored) => intact &= print_restored(&restored),
            Err(e) => {
                intact = false;
                println!("backup {id}: BROKEN: {:#}", anyhow::Error::from(e));
            }
        }
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn restore(from: &Path, id: Option<u32>, data_dir: &Path) -> anyhow::Result<ExitCode> {
    init_logging("warn");
    let restored = backups::restore(from, id, data_dir, &proving_options()).with_context(|| {
        format!(
            "restoring from {} into {}",
            from.display(),
            data_dir.display()
        )
    })?;
    println!(
        "restored backup {} into {}",
        restored.recorded.id,
        data_dir.display()
    );
    Ok(if print_restored(&restored) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Takes a backup every `every` (the `[backup]` schedule), the first one `every` after start.
async fn backups_on_schedule(
    registry: Registry,
    settings: BackupSettings,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (registry, settings) = (registry.clone(), settings.clone());
        let taken =
            tokio::task::spawn_blocking(move || registry.backup(BackupBy::Schedule, &settings))
                .await;
        match taken {
            Ok(Ok(info)) => tracing::info!(backup = info.id, "{}", describe(&info)),
            Ok(Err(e)) => tracing::error!(error = %e, "the scheduled backup failed"),
            Err(e) => tracing::error!(error = %e, "the scheduled backup panicked"),
        }
    }
}

fn print_report(report: &ImportReport, list: List, took: std::time::Duration) {
    let rate = report.lines as f64 / took.as_secs_f64().max(1e-9);
    println!("lines read:      {}", report.lines);
    println!(
        "accepted:        {} (now on the {list} list)",
        report.accepted
    );
    println!(
        "already listed:  {} (left unchanged)",
        report.already_listed
    );
    println!("rejected:        {}", report.rejected_total());
    for (reason, n) in &report.rejected {
        println!("  {reason}: {n}");
    }
    if !report.first_rejections.is_empty() {
        println!("first rejected lines:");
        for r in &report.first_rejections {
            println!("  line {}: {}", r.line, r.reason);
        }
    }
    println!("took {:.2} s ({:.0} lines/s)", took.as_secs_f64(), rate);
}

/// A progress bar on stderr when it is a terminal; silent otherwise (logs, CI).
struct ProgressBar {
    total: u64,
    enabled: bool,
    last_percent: Option<u64>,
}

impl ProgressBar {
    fn new(total: u64) -> ProgressBar {
        ProgressBar {
            total,
            enabled: std::io::stderr().is_terminal(),
            last_percent: None,
        }
    }

    fn show(&mut self, progress: Progress) {
        if !self.enabled {
            return;
        }
        match progress {
            Progress::Reading { bytes } => {
                let percent = (bytes * 100)
                    .checked_div(self.total)
                    .unwrap_or(100)
                    .min(100);
                if self.last_percent != Some(percent) {
                    self.last_percent = Some(percent);
                    let filled = (percent / 2) as usize;
                    eprint!(
                        "\rreading   [{}{}] {percent:>3}%",
                        "#".repeat(filled),
                        " ".repeat(50 - filled)
                    );
                }
            }
            Progress::Checking => eprint!("\nchecking against both lists..."),
            Progress::Writing => eprint!("\nwriting and ingesting table files..."),
        }
    }

    fn finish(&mut self) {
        if self.enabled {
            eprintln!(" done");
        }
    }
}
