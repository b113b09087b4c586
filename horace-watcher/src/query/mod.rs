//! The tarpc query service on the Unix socket (and optional TCP with a token).
//! (Owned by the query work.)

use std::sync::Arc;

use crate::watch::WatchHandle;
use crate::Context;

/// Serves queries until `ctx.cancel` fires.
pub async fn serve(ctx: Arc<Context>, watch: WatchHandle) -> anyhow::Result<()> {
    let _ = watch;
    ctx.cancel.cancelled().await;
    Ok(())
}
