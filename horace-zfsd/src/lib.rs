//! horace-zfsd: the privileged half of Horace.
//!
//! `api` is all a client needs (bus names, the proxy, wire types, name validation) and
//! depends on zbus and serde only. The daemon itself is behind the `daemon` feature:
//! [`run`] serves `org.horace.Zfs1` until `shutdown` completes; `main` is a thin shell.

pub mod api;

#[cfg(feature = "daemon")]
pub mod auth;
#[cfg(feature = "daemon")]
pub mod config;
#[cfg(feature = "daemon")]
pub mod journal;
#[cfg(feature = "daemon")]
pub mod privs;
#[cfg(feature = "daemon")]
pub mod service;
#[cfg(feature = "daemon")]
pub mod zfs;

#[cfg(feature = "daemon")]
pub use daemon::{init_logging, run};

#[cfg(feature = "daemon")]
mod daemon {
    use std::future::Future;
    use std::io::IsTerminal as _;
    use std::path::Path;
    use std::sync::Arc;

    use anyhow::{anyhow, Context as _};
    use tracing::info;
    use tracing_subscriber::prelude::*;

    use crate::api::{BUS_NAME, OBJECT_PATH};
    use crate::auth::Allow;
    use crate::config::Config;
    use crate::journal::Journal;
    use crate::service::Service;

    /// Logs to journald when there is a journal, else to stderr, coloured only when stderr is a
    /// terminal (`RUST_LOG` filters).
    pub fn init_logging() {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let journald = Path::new("/run/systemd/journal/socket")
            .exists()
            .then(tracing_journald::layer)
            .and_then(Result::ok);
        let registry = tracing_subscriber::registry().with(filter);
        match journald {
            Some(layer) => registry.with(layer).init(),
            None => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(std::io::stderr().is_terminal())
                        .with_writer(std::io::stderr),
                )
                .init(),
        }
    }

    /// Connects to the system bus (or `bus_address`), serves the object, owns the name,
    /// reports READY=1 to systemd, and serves until `shutdown` completes.
    pub async fn run(
        config: Config,
        bus_address: Option<&str>,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let allow =
            Allow::resolve(&config.allow_uids, &config.allow_groups).map_err(|e| anyhow!(e))?;
        let roots = config.roots.join(",");
        let journal = Journal::open(&config.state_dir)
            .context("failed to open the rollback journal (state_dir)")?;
        let service = Service::new(Arc::new(config), allow, journal);
        // Taken before serving, so no call runs zfs ahead of an interrupted rollback.
        let recovery = service.recovery();
        // zbus 6's Builder defers address errors to build(): parse first, to name them.
        let address = match bus_address {
            Some(addr) => addr
                .parse::<zbus::Address>()
                .with_context(|| format!("bad bus address {addr:?}"))?,
            None => zbus::Address::system().context("failed to find the system bus")?,
        };
        let builder = zbus::connection::Builder::address(address);
        let conn = builder
            .serve_at(OBJECT_PATH, service)
            .name(BUS_NAME)
            // zbus's defaults would let a second daemon take the name over silently.
            .allow_name_replacements(false)
            .replace_existing_names(false)
            .build()
            .await
            .map_err(|e| match e {
                zbus::Error::NameTaken => anyhow!(
                    "{BUS_NAME} is already owned on this bus: is another horace-zfsd running?"
                ),
                e => anyhow!(e).context(format!(
                    "failed to connect and own {BUS_NAME} (is the D-Bus policy installed and \
                     are we root?)"
                )),
            })?;
        info!(roots = %roots, bus = bus_address.unwrap_or("system"), "serving {BUS_NAME}");
        // After the name is ours, so the RolledBack it emits has a sender clients follow.
        if let Some(recovery) = recovery {
            tokio::spawn(recovery.run(conn.clone()));
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        shutdown.await;
        info!("shutting down");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        drop(conn);
        Ok(())
    }
}
