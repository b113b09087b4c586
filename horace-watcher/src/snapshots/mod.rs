//! Snapshot schedule and retention (through horace-zfsd over D-Bus), the catalog's
//! mirror of the snapshot list, rollback handling, and catalog backups.
//! (Owned by the snapshot work.)

pub mod backup;

use std::sync::Arc;

use crate::watch::WatchHandle;
use crate::Context;

/// Runs the snapshot scheduler and the catalog backup timer until `ctx.cancel` fires.
pub async fn run(ctx: Arc<Context>, watch: WatchHandle) -> anyhow::Result<()> {
    let _ = watch;
    ctx.cancel.cancelled().await;
    Ok(())
}
