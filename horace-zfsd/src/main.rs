//! horace-zfsd: parse flags, drop capabilities, start logging, load the config, serve
//! until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Parser;
use horace_zfsd::{config, privs};
use tokio::signal::unix::{signal, SignalKind};

/// Horace's privileged ZFS service on D-Bus (org.horace.Zfs1).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// D-Bus address to serve on instead of the system bus.
    #[arg(long)]
    bus_address: Option<String>,
    /// Allow running as a non-root user: for tests against zfs-fuse only.
    #[arg(long)]
    test_allow_non_root: bool,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("horace-zfsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !privs::is_root() && !args.test_allow_non_root {
        bail!("must run as root (it runs zfs with CAP_SYS_ADMIN); --test-allow-non-root is for tests against zfs-fuse only");
    }
    // Before any thread exists: capability sets are per thread.
    let dropped = privs::drop_capabilities();
    horace_zfsd::init_logging();
    match dropped {
        Ok(()) => tracing::info!("capabilities reduced to CAP_SYS_ADMIN"),
        Err(e) if args.test_allow_non_root => {
            tracing::warn!(cause = %e, "cannot drop capabilities")
        }
        Err(e) => bail!("failed to drop capabilities: {e}"),
    }
    let config = config::load(&args.config)
        .with_context(|| format!("bad configuration {}", args.config.display()))?;
    let rt = tokio::runtime::Runtime::new().context("failed to start the runtime")?;
    rt.block_on(async {
        // Installed before READY=1 is sent, so an early SIGTERM is never fatal.
        let mut term = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
        let shutdown = async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        };
        horace_zfsd::run(config, args.bus_address.as_deref(), shutdown).await
    })
}
