//! Watching the files tree (inotify through `notify`), the startup reconcile scan, and
//! the queue that turns events into catalog transactions. (Owned by the watcher work.)

use std::path::PathBuf;
use std::sync::Arc;

use crate::Context;

/// Errors a caller of the watch handle can see.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The watcher is shutting down.
    #[error("the watcher is shutting down")]
    Stopped,
    /// The path cannot be cataloged (missing, not a regular file, unreadable).
    #[error("cannot catalog {path}: {why}")]
    Catalog {
        /// The relative path, escaped.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// The sync barrier's cookie event did not arrive in time.
    #[error("sync barrier timed out")]
    SyncTimeout,
}

/// Handle other tasks use to talk to the watch loop. Cheap to clone.
#[derive(Clone)]
pub struct WatchHandle {
    _ctx: Arc<Context>,
}

impl WatchHandle {
    /// Returns once everything written before the call is in the catalog (a cookie file
    /// is written and its event awaited).
    pub async fn sync(&self) -> Result<(), WatchError> {
        Err(WatchError::Stopped)
    }

    /// Catalogs `rel` (relative to files_root) now and returns its file id.
    pub async fn register(&self, rel: PathBuf) -> Result<i64, WatchError> {
        Err(WatchError::Catalog { path: crate::path::escape(&rel), why: "not yet".into() })
    }

    /// Asks for a reconcile scan (e.g. after a rollback); `reason` goes into status.
    pub fn request_reconcile(&self, reason: &str) {
        let _ = reason;
    }

    /// Drains the queue and stops the watch loop.
    pub async fn shutdown(&self) {}
}

/// Adds the watches, starts the startup reconcile scan, and returns the handle and the
/// task running the loop (it ends only on shutdown or a fatal error).
pub async fn start(ctx: Arc<Context>) -> anyhow::Result<(WatchHandle, tokio::task::JoinHandle<()>)> {
    let task = tokio::spawn({
        let ctx = ctx.clone();
        async move { ctx.cancel.cancelled().await }
    });
    Ok((WatchHandle { _ctx: ctx }, task))
}
