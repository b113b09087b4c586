//! `horace-watcher`: parses flags, sets up logging, loads the config and handles signals;
//! everything else is `horace_watcher::run`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use horace_watcher::config::{Config, DEFAULT_CONFIG};
use horace_watcher::guard::Refusal;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::prelude::*;

/// Catalogs every saved version of every file under a directory tree.
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    /// Configuration file [default: /etc/horace/horace.toml; optional with --files and --metadata].
    #[arg(long)]
    config: Option<PathBuf>,
    /// The tree to catalog (overrides files_root).
    #[arg(long)]
    files: Option<PathBuf>,
    /// Where the catalog and contents live (overrides metadata_dir).
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// Query socket (overrides query.socket).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// D-Bus address of horace-zfsd (overrides zfsd.bus).
    #[arg(long)]
    zfsd_bus: Option<String>,
    /// Take no snapshots.
    #[arg(long)]
    no_snapshots: bool,
    /// The files root really is a new tree (another dataset, a restored copy): record its
    /// filesystem instead of waiting for the one cataloged before.
    #[arg(long)]
    accept_new_files_root: bool,
    /// Begin a new catalog in metadata_dir although the files root was cataloged into
    /// another one (or go on with the catalog there).
    #[arg(long)]
    accept_new_catalog: bool,
    /// When files_root or metadata_dir is not the filesystem expected, exit with status 3
    /// and the refusal's name instead of waiting for it to be mounted.
    #[arg(long)]
    no_wait: bool,
    /// Load and check the configuration, print what is wrong (key and line) and exit: 0 when
    /// it is good, 4 when not (`ExecReload=` runs this before SIGHUP).
    #[arg(long)]
    check_config: bool,
}

/// A configuration that cannot be loaded or is invalid (exit status [`EXIT_BAD_CONFIG`]).
#[derive(Debug)]
struct BadConfig(String);

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadConfig {}

fn load(args: &Args) -> anyhow::Result<Config> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let mut config = if args.config.is_some()
        || path.exists()
        || args.files.is_none()
        || args.metadata.is_none()
    {
        Config::load(&path).with_context(|| {
            format!(
                "failed to load {} (or pass --files and --metadata)",
                path.display()
            )
        })?
    } else {
        Config::for_dirs("/", "/")
    };
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if let Some(f) = &args.files {
        config.files_root = abs(f);
    }
    if let Some(m) = &args.metadata {
        config.metadata_dir = abs(m);
    }
    if let Some(s) = &args.socket {
        config.query.socket = abs(s);
    }
    if let Some(b) = &args.zfsd_bus {
        config.zfsd.bus = Some(b.clone());
    }
    config.snapshots.enabled &= !args.no_snapshots;
    config.start = horace_watcher::config::StartOptions {
        accept_new_files_root: args.accept_new_files_root,
        accept_new_catalog: args.accept_new_catalog,
        no_wait: args.no_wait,
    };
    config.check().context("invalid configuration")?;
    Ok(config)
}

fn init_logging() {
    // tarpc logs every request's life cycle at INFO; the query service logs its own outcome.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tarpc=warn".into());
    let journald = Path::new("/run/systemd/journal/socket")
        .exists()
        .then(tracing_journald::layer)
        .and_then(Result::ok);
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(j) => registry.with(j).init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

/// Exit status of a start refused with `--no-wait` (files_root or metadata_dir not the
/// filesystem expected).
const EXIT_REFUSED: u8 = 3;
/// Exit status of a configuration that cannot be loaded or is invalid: restarting would
/// not fix it (`RestartPreventExitStatus=` in the unit).
const EXIT_BAD_CONFIG: u8 = 4;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("horace-watcher: failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(watch()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<Refusal>() {
            Some(r) => {
                eprintln!("horace-watcher: refused to start: {}: {r}", r.name());
                ExitCode::from(EXIT_REFUSED)
            }
            None if e.is::<BadConfig>() => {
                eprintln!("horace-watcher: bad configuration: {e}");
                ExitCode::from(EXIT_BAD_CONFIG)
            }
            None => {
                eprintln!("Error: {e:?}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn watch() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging();
    let config = load(&args).map_err(|e| BadConfig(format!("{e:#}")))?;
    if args.check_config {
        println!("configuration ok");
        return Ok(());
    }
    if !config.snapshots.enabled {
        tracing::warn!("snapshots are off: only the catalog and the content store protect files");
    }
    let (mut term, mut int, mut hup) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
        signal(SignalKind::hangup())?,
    );
    // SIGHUP re-reads the config: ignore patterns and [versions] apply at once, other keys
    // at the next start; a bad file changes nothing.
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match load(&args).map(|c| horace_watcher::watch::reload(&c)) {
                Ok(Ok(_)) => tracing::info!(
                    "configuration re-read; other keys than ignore and [versions] apply at restart"
                ),
                Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "configuration reload failed, keeping the old one: {e}"
                ),
                Err(e) => {
                    let e = format!("{e:#}");
                    tracing::error!(
                        error = %e,
                        "configuration reload failed, keeping the old one: {e}"
                    )
                }
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    horace_watcher::run(config, shutdown).await
}
