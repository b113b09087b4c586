//! horace-watcher: catalogs every saved version of every file under a directory tree,
//! keeps the content of recent versions, schedules ZFS snapshots through horace-zfsd,
//! and serves queries to containers.
//!
//! Entry point: [`run`]. The binary (`main.rs`) only parses flags, sets up logging,
//! loads the config and calls it.

pub mod catalog;
pub mod config;
pub mod guard;
pub mod hash;
pub mod health;
pub mod identity;
pub mod path;
pub mod query;
pub mod scan;
pub mod scrub;
pub mod snapshots;
pub mod status;
pub mod store;
pub mod watch;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Now, unix nanoseconds (the clock of file timestamps and of the catalog's times).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// 64 random bits from the kernel (names in the tenant-writable tree nobody can predict).
pub(crate) fn random_u64() -> std::io::Result<u64> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        got += rustix::rand::getrandom(&mut buf[got..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(u64::from_ne_bytes(buf))
}

/// What every task of the watcher shares: configuration, the catalog's one writer and its
/// readers, health figures, and the shutdown signal.
pub struct Context {
    /// The configuration in force.
    pub config: Config,
    /// The one writer of the catalog.
    pub writer: catalog::Writer,
    /// Read-only catalog connections for queries.
    pub readers: catalog::Readers,
    /// Live health figures.
    pub status: status::Status,
    /// Cancelled when the watcher shuts down.
    pub cancel: CancellationToken,
}

/// Runs the watcher until `shutdown` completes, then stops cleanly: the queue is drained,
/// the query socket removed, and the catalog closed.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    let db = catalog::catalog_path(&config.metadata_dir);
    // Nothing is cataloged until metadata_dir and files_root are the filesystems the
    // catalog belongs to; until then the watcher waits (or, with --no-wait, exits).
    let Some(conn) = guard::open(&config, shutdown.as_mut()).await? else {
        tracing::info!("shut down while waiting for the files root or the metadata directory");
        return Ok(());
    };
    let (writer, writer_thread) = catalog::Writer::spawn(conn);
    let ctx = Arc::new(Context {
        readers: catalog::Readers::new(db),
        writer,
        status: status::Status::default(),
        cancel: CancellationToken::new(),
        config,
    });

    // The query socket exists before READY=1 (sent once the startup scan is done).
    let listeners = query::bind(&ctx)
        .await
        .context("failed to start the query service")?;
    // Watch first, then scan: nothing written during the startup scan is lost.
    let (watch, watch_task) = watch::start(ctx.clone())
        .await
        .context("failed to start watching")?;
    let mut query_task = tokio::spawn(query::serve(ctx.clone(), watch.clone(), listeners));
    let snapshot_task = tokio::spawn(snapshots::run(ctx.clone(), watch.clone()));
    // STATUS= "degraded: …" while it is (health.rs).
    let health_task = tokio::spawn(health::run(ctx.clone()));
    if let Some(every) = ctx.config.versions.scrub_interval() {
        // The store as the worker opened it (`Objects::open` would empty its tmp/ under
        // the copies in flight).
        scrub::spawn(
            store::Objects::open_existing(&ctx.config.metadata_dir),
            every,
            ctx.config.versions.scrub_mib_per_sec,
            ctx.cancel.clone(),
        )
        .context("failed to start the store scrub")?;
    }

    let mut query_done = None;
    tokio::select! {
        () = shutdown.as_mut() => tracing::info!("shutting down"),
        r = watch_task => tracing::error!(result = ?r, "watch task ended"),
        // The query service ends early only when its listener fails: that fails the run.
        r = &mut query_task => query_done = Some(r),
    }
    ctx.cancel.cancel();
    hash::stop_reading();
    let mut query_failed = None;
    match query_done.take() {
        Some(r) => query_failed = r.map_err(anyhow::Error::from).and_then(|r| r).err(),
        None => match query_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => query_failed = Some(e),
            Err(e) => tracing::error!(task = "query", error = %e, "task panicked"),
        },
    }
    match snapshot_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(task = "snapshots", error = %format!("{e:#}"), "task failed"),
        Err(e) => tracing::error!(task = "snapshots", error = %e, "task panicked"),
    }
    let _ = health_task.await;
    watch.shutdown().await;
    drop(watch);
    let writer_gone = Arc::try_unwrap(ctx).map(|c| drop(c.writer)).is_ok();
    if writer_gone {
        let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    }
    match query_failed {
        Some(e) => Err(e.context("the query service failed")),
        None => Ok(()),
    }
}
