//! `STATUS=` says "degraded: …" while the watcher is degraded (issue 16 item 5): zfsd
//! unreachable with snapshots on, paths that keep failing, watches that could not be
//! added, pruning refused, damaged store objects — the phrases of
//! `StatusReport::degradation`, which also makes `horace status` exit 8.

use std::sync::Arc;
use std::time::Duration;

use horace_client::StatusReport;

use crate::Context;

/// How often the degradation is looked at.
const EVERY: Duration = Duration::from_secs(10);

/// The `STATUS=` line for these degradations; `None` when healthy.
pub fn status_line(why: &[String]) -> Option<String> {
    (!why.is_empty()).then(|| format!("degraded: {}", why.join("; ")))
}

/// Keeps `STATUS=` in step with the degradation once the startup scan is done, until the
/// watcher shuts down; each change is logged too.
pub async fn run(ctx: Arc<Context>) {
    let mut shown: Option<String> = None;
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = ctx.cancel.cancelled() => return,
        }
        if !ctx.status.ready.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let mut r = StatusReport::default();
        crate::query::report::live_figures(&ctx.status, ctx.config.snapshots.enabled, &mut r);
        r.damaged_objects = crate::store::Objects::open_existing(&ctx.config.metadata_dir)
            .damaged()
            .len() as u64;
        let line = status_line(&r.degradation());
        if line == shown {
            continue;
        }
        match &line {
            Some(l) => {
                tracing::warn!("{l}");
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(l)]);
            }
            None => {
                tracing::info!("no longer degraded; watching");
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(
                    "Watching (no longer degraded)",
                )]);
            }
        }
        shown = line;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_every_degradation() {
        assert_eq!(status_line(&[]), None);
        let why = [
            "zfsd unreachable (no bus)".to_string(),
            "2 paths failing".into(),
        ];
        assert_eq!(
            status_line(&why).as_deref(),
            Some("degraded: zfsd unreachable (no bus); 2 paths failing")
        );
    }
}
