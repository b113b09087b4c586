//! Snapshot schedule and retention (through horace-zfsd over D-Bus), the catalog's
//! mirror of the snapshot list, rollback handling, restore from snapshots, and catalog
//! backups.

pub mod backup;
mod copy;
mod mirror;
pub mod retention;
mod rollbacks;
mod scheduler;
mod tick;

use std::path::PathBuf;
use std::sync::Arc;

use crate::watch::WatchHandle;
use crate::Context;

/// Finds a readable copy of `version` of `file_id` in a snapshot of the files dataset
/// (`<files_root>/.zfs/snapshot/<snap>/<path>`, OpenZFS only) whose content has the
/// version's hash; the restore path calls it when the content store no longer has the
/// version.
///
/// Looks at the snapshots (from the catalog's mirror) taken while the version was current
/// and the first one after. When none has a readable matching copy (always so on zfs-fuse,
/// which has no `.zfs` directory), returns their full names, oldest first, so an operator
/// can recover the file by hand; an empty list when the version is unknown or no snapshot
/// was taken in that time.
pub async fn find_snapshot_copy(
    ctx: &Context,
    file_id: i64,
    version: i64,
) -> Result<PathBuf, Vec<String>> {
    let dataset = ctx.config.snapshots.dataset.clone();
    let looked_up = ctx
        .readers
        .with(move |conn| -> rusqlite::Result<_> {
            let Some(window) = copy::version_window(conn, file_id, version)? else {
                return Ok(None);
            };
            let snaps = copy::mirrored_snapshots(conn, dataset.as_deref())?;
            Ok(Some((window, snaps)))
        })
        .await;
    let (window, snaps) = match looked_up {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => return Err(Vec::new()),
        Ok(Err(e)) => {
            tracing::warn!(file_id, version, error = %e, "snapshot lookup failed");
            return Err(Vec::new());
        }
        Err(e) => {
            tracing::warn!(file_id, version, error = %e, "snapshot lookup failed");
            return Err(Vec::new());
        }
    };
    let root = ctx.config.files_root.clone();
    tokio::task::spawn_blocking(move || copy::find_in_snapshots(&root, &window, &snaps))
        .await
        .unwrap_or_else(|_| Err(Vec::new()))
}

/// Runs the snapshot scheduler and the catalog backup timer until `ctx.cancel` fires.
///
/// Every tick (at start, then each minute) it asks zfsd for the dataset's snapshots,
/// executes [`retention::plan`] unchanged (creates, then one batched destroy), and mirrors
/// the list into the catalog; it follows zfsd's signals and asks `watch` for a reconcile
/// scan after a rollback, also one it learns of only from zfsd's rollback serial. A
/// failing zfsd never stops cataloging.
pub async fn run(ctx: Arc<Context>, watch: WatchHandle) -> anyhow::Result<()> {
    scheduler::run(ctx, watch).await
}

/// The plan a tick would execute now, without executing it (the dry run the `snapshots`
/// query and CLI can show). Asks zfsd for the current list.
pub async fn dry_run(ctx: &Context) -> Result<retention::Plan, String> {
    scheduler::dry_run(ctx).await
}
