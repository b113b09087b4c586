//! The scheduler task: ticks (at start, then every minute on the minute), runs the plan
//! through horace-zfsd over D-Bus, keeps the catalog's mirror of the snapshot list, follows
//! zfsd's signals, and triggers a reconcile scan after a rollback. Catalog backups run on
//! their own timer in the same task.
//!
//! zfsd being away never stops cataloging: the failure is logged once per outage, shown
//! in status, and the next tick tries again. While the bus answers that zfsd is off it
//! (`ServiceUnknown`, `NameHasNoOwner`), the connection and its signal subscriptions are
//! kept, and zfsd taking its name again (`NameOwnerChanged`) brings the rollback check
//! forward (the snapshot plan keeps to the minute). Every tick first compares zfsd's rollback serial with the one last acted on
//! (`rollbacks`), so a rollback whose `RolledBack` was lost is still reconciled.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{self, BoxStream, StreamExt};
use horace_zfsd::api::{parse_managed, SnapshotInfo, Zfs1Proxy, SNAPSHOT_PREFIX};

use super::retention::{Clock, Policy, SystemClock};
use super::rollbacks::{Observed, Tracker};
use super::tick::{tick, SnapshotOps, TickError};
use super::{backup, mirror};
use crate::watch::WatchHandle;
use crate::Context;

/// horace-zfsd through its D-Bus proxy.
struct Zfsd {
    _conn: zbus::Connection,
    proxy: Zfs1Proxy<'static>,
}

/// Errors with which the bus itself says zfsd is not on it right now: the connection is
/// fine and is kept (with its subscriptions) for when zfsd comes back.
const ZFSD_AWAY: [&str; 2] = [
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
];

/// What a failed call says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// zfsd answered with one of its named errors.
    Refused,
    /// The bus answered that zfsd is not on it: keep the connection.
    ZfsdAway,
    /// The connection itself failed: reconnect next tick.
    Transport,
}

fn classify(message: &str) -> Failure {
    if message.starts_with("org.horace.Zfs1.Error.") {
        Failure::Refused
    } else if ZFSD_AWAY.iter().any(|n| message.starts_with(n)) {
        Failure::ZfsdAway
    } else {
        Failure::Transport
    }
}

/// A readable message for a failed call: the D-Bus error name first when there is one
/// (what [`classify`] reads).
fn describe(e: zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            format!("{}: {}", name.as_str(), msg.unwrap_or_default())
        }
        other => other.to_string(),
    }
}

impl Zfsd {
    /// `RollbackSerial(dataset)`.
    async fn rollback_serial(&self, dataset: &str) -> Result<u64, String> {
        self.proxy.rollback_serial(dataset).await.map_err(describe)
    }
}

impl SnapshotOps for Zfsd {
    async fn list(&self, dataset: &str) -> Result<Vec<SnapshotInfo>, String> {
        self.proxy.list_snapshots(dataset).await.map_err(describe)
    }
    async fn create(&self, dataset: &str, label: &str) -> Result<String, String> {
        self.proxy
            .create_snapshot(dataset, label)
            .await
            .map_err(describe)
    }
    async fn destroy(&self, dataset: &str, names: &[String]) -> Result<Vec<String>, String> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.proxy
            .destroy_snapshots(dataset, &names, false)
            .await
            .map_err(describe)
    }
}

/// What zfsd told us between ticks.
enum Signal {
    /// Snapshots were created or destroyed: refresh the mirror.
    Changed,
    /// A dataset was rolled back to this snapshot.
    RolledBack(String),
    /// zfsd took its bus name (again): tick now rather than at the next minute.
    ZfsdBack,
}

async fn connect(bus: Option<&str>) -> Result<(Zfsd, BoxStream<'static, Signal>), String> {
    let conn = match bus {
        Some(addr) => zbus::connection::Builder::address(addr)
            .build()
            .await
            .map_err(describe)?,
        None => zbus::Connection::system().await.map_err(describe)?,
    };
    let proxy = Zfs1Proxy::new(&conn).await.map_err(describe)?;
    let created = proxy
        .receive_snapshot_created()
        .await
        .map_err(describe)?
        .map(|_| Signal::Changed);
    let destroyed = proxy
        .receive_snapshots_destroyed()
        .await
        .map_err(describe)?
        .map(|_| Signal::Changed);
    let rolled = proxy
        .receive_rolled_back()
        .await
        .map_err(describe)?
        .map(|s| match s.args() {
            Ok(a) => Signal::RolledBack(a.snapshot.clone()),
            Err(_) => Signal::RolledBack(String::new()),
        });
    let back = proxy
        .inner()
        .receive_owner_changed()
        .await
        .map_err(describe)?
        .filter_map(|owner| async move { owner.map(|_| Signal::ZfsdBack) });
    let signals = stream::select_all([
        created.boxed(),
        destroyed.boxed(),
        rolled.boxed(),
        back.boxed(),
    ])
    .boxed();
    Ok((Zfsd { _conn: conn, proxy }, signals))
}

/// Time until the next tick: ticks fall on multiples of a minute of schedule time.
fn until_next_tick(policy: &Policy) -> Duration {
    let period_ms = (policy.hour_seconds * 1000 / 60).max(250) as u128;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    Duration::from_millis((period_ms - now_ms % period_ms) as u64)
}

/// Health bookkeeping: log a failure once per outage, and the recovery.
#[derive(Default)]
struct Health {
    failing: bool,
    prune_refused: bool,
}

impl Health {
    fn ok(&mut self, ctx: &Context) {
        ctx.status.zfsd_reachable.store(true, Ordering::Relaxed);
        ctx.status.with_detail(|d| d.zfsd_error = None);
        if std::mem::take(&mut self.failing) {
            tracing::info!("horace-zfsd answers again; snapshots resume");
        }
    }

    fn failed(&mut self, ctx: &Context, what: &str, message: &str) {
        let reached = message.starts_with("org.horace.Zfs1.Error.");
        ctx.status.zfsd_reachable.store(reached, Ordering::Relaxed);
        ctx.status
            .with_detail(|d| d.zfsd_error = Some(format!("{what}: {message}")));
        tracing::debug!(what, error = %message, "snapshot tick failed");
        if !std::mem::replace(&mut self.failing, true) {
            tracing::warn!(
                what,
                error = %message,
                "snapshots are paused: horace-zfsd failed (cataloging goes on; retrying every tick)"
            );
        }
    }

    fn prune(&mut self, ctx: &Context, refused: Option<&str>) {
        ctx.status
            .with_detail(|d| d.prune_refused = refused.map(str::to_string));
        match refused {
            Some(why) if !self.prune_refused => {
                tracing::warn!(reason = %why, "pruning refused: {why}")
            }
            None if self.prune_refused => tracing::info!("pruning resumed"),
            _ => {}
        }
        self.prune_refused = refused.is_some();
    }
}

/// Runs the scheduler (when snapshots are enabled) and the backup timer until cancelled.
pub(crate) async fn run(ctx: Arc<Context>, watch: WatchHandle) -> anyhow::Result<()> {
    let snap = &ctx.config.snapshots;
    let dataset = snap.dataset.clone().filter(|_| snap.enabled);
    let policy = Policy::from_config(snap);
    if dataset.is_some() && snap.test_hour_seconds.is_some() {
        tracing::warn!(
            hour_seconds = policy.hour_seconds,
            "snapshots.test_hour_seconds is set: test schedule"
        );
    }
    let bus = ctx.config.zfsd.bus.clone();
    let mut zfsd: Option<Zfsd> = None;
    let mut signals: BoxStream<'static, Signal> = stream::pending().boxed();
    let mut health = Health::default();
    let mut next_tick = tokio::time::Instant::now();
    let mut next_backup = backup::first_due(&ctx.config).map(tokio::time::Instant::from_std);
    let mut mirrored: Option<Vec<SnapshotInfo>> = None;
    let mut serial = Tracker::new(dataset.as_deref().unwrap_or_default());

    loop {
        let backup_at = next_backup
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
        tokio::select! {
            () = ctx.cancel.cancelled() => return Ok(()),
            () = tokio::time::sleep_until(next_tick), if dataset.is_some() => {
                let ds = dataset.as_deref().unwrap_or_default();
                if zfsd.is_none() {
                    match connect(bus.as_deref()).await {
                        Ok((z, s)) => (zfsd, signals) = (Some(z), s),
                        Err(e) => health.failed(&ctx, "connect", &e),
                    }
                }
                if let Some(z) = &zfsd {
                    check_rollbacks(&ctx, z, ds, &mut serial, &watch).await;
                    let result = tick(z, &policy, ds, SystemClock.now()).await;
                    match result {
                        Ok(out) => {
                            health.ok(&ctx);
                            let refused = out.plan.prune_refused.clone().or_else(|| {
                                (!out.refused.is_empty()).then(|| out.refused.join("; "))
                            });
                            health.prune(&ctx, refused.as_deref());
                            for name in &out.created {
                                tracing::info!(snapshot = %name, "snapshot taken: {name}");
                            }
                            if !out.destroyed.is_empty() {
                                tracing::info!(
                                    count = out.destroyed.len(),
                                    names = ?out.destroyed,
                                    "snapshots pruned: {}",
                                    out.destroyed.join(", ")
                                );
                            }
                            refresh(&ctx, ds, out.snapshots, &mut mirrored).await;
                        }
                        Err(TickError { stage, message, created }) => {
                            health.failed(&ctx, stage, &message);
                            match classify(&message) {
                                // Reconnect next tick.
                                Failure::Transport => {
                                    (zfsd, signals) = (None, stream::pending().boxed());
                                }
                                // Keep listening: NameOwnerChanged says when zfsd is back.
                                Failure::ZfsdAway => {}
                                Failure::Refused if !created.is_empty() => {
                                    resync(&ctx, z, ds, &mut mirrored).await;
                                }
                                Failure::Refused => {}
                            }
                        }
                    }
                }
                next_tick = tokio::time::Instant::now() + until_next_tick(&policy);
            }
            Some(sig) = signals.next() => {
                let ds = dataset.as_deref().unwrap_or_default();
                // zfsd back: a rollback it settled at its start is reconciled now; the
                // snapshot plan waits for the tick on the minute, as `--plan` says.
                if let Signal::ZfsdBack = sig {
                    tracing::info!("horace-zfsd is on the bus; checking for a rollback not acted on");
                    if let Some(z) = &zfsd {
                        check_rollbacks(&ctx, z, ds, &mut serial, &watch).await;
                        resync(&ctx, z, ds, &mut mirrored).await;
                    }
                    continue;
                }
                if let Signal::RolledBack(snapshot) = &sig {
                    if snapshot.split_once('@').is_none_or(|(d, _)| d == ds) {
                        tracing::info!(%snapshot, "dataset rolled back to {snapshot}; reconciling the catalog with the disk");
                        watch.request_reconcile("rollback");
                        // Acted on: the serial this rollback settled to needs no second
                        // reconcile at the next tick.
                        if let Some(z) = &zfsd {
                            if let Ok(now) = z.rollback_serial(ds).await {
                                serial.record(&ctx, now).await;
                            }
                        }
                    }
                }
                if let Some(z) = &zfsd {
                    resync(&ctx, z, ds, &mut mirrored).await;
                }
            }
            () = tokio::time::sleep_until(backup_at), if next_backup.is_some() => {
                match backup::backup_now(&ctx).await {
                    Ok(path) => tracing::info!(path = %path.display(), "catalog backed up to {}", path.display()),
                    Err(e) => tracing::warn!(error = %e, "catalog backup failed ({e}); will retry"),
                }
                next_backup = ctx.config.catalog.interval().map(|i| tokio::time::Instant::now() + i);
            }
        }
    }
}

/// Reconciles when zfsd's rollback serial differs from the one last acted on: a rollback
/// happened whose `RolledBack` the watcher did not act on (zfsd died mid-rollback, or the
/// signal came while the watcher was away). A failure is left to the tick that follows,
/// which reports zfsd's health.
async fn check_rollbacks(
    ctx: &Context,
    z: &Zfsd,
    dataset: &str,
    serial: &mut Tracker,
    watch: &WatchHandle,
) {
    let now = match z.rollback_serial(dataset).await {
        Ok(now) => now,
        Err(e) => {
            tracing::debug!(error = %e, "RollbackSerial failed");
            return;
        }
    };
    if let Observed::WentBack { was, now } = serial.observe(ctx, now).await {
        tracing::info!(
            dataset,
            was = ?was,
            now,
            "horace-zfsd reports a rollback not acted on; reconciling the catalog with the disk"
        );
        watch.request_reconcile("rollback");
    }
}

/// Lists again and refreshes the mirror (after a signal or a partly failed tick).
async fn resync(ctx: &Context, z: &Zfsd, dataset: &str, mirrored: &mut Option<Vec<SnapshotInfo>>) {
    match z.list(dataset).await {
        Ok(list) => refresh(ctx, dataset, list, mirrored).await,
        Err(e) => tracing::debug!(error = %e, "listing snapshots after a signal failed"),
    }
}

/// Writes `list` into the catalog's mirror unless it is what the mirror already holds.
async fn refresh(
    ctx: &Context,
    dataset: &str,
    list: Vec<SnapshotInfo>,
    mirrored: &mut Option<Vec<SnapshotInfo>>,
) {
    let newest_managed = list
        .iter()
        .filter(|s| {
            s.name.split_once('@').is_some_and(|(_, snap)| {
                snap.starts_with(SNAPSHOT_PREFIX) && parse_managed(snap).is_some()
            })
        })
        .map(|s| s.creation)
        .max();
    if let Some(c) = newest_managed {
        ctx.status
            .last_snapshot
            .store(i64::try_from(c).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
    if mirrored.as_ref() == Some(&list) {
        return;
    }
    match mirror::replace(ctx, dataset, list.clone()).await {
        Ok(()) => *mirrored = Some(list),
        Err(e) => tracing::warn!(error = %e, "updating the snapshot mirror failed: {e}"),
    }
}

/// The plan for now from zfsd's current list, executing nothing.
pub(crate) async fn dry_run(ctx: &Context) -> Result<super::retention::Plan, String> {
    let snap = &ctx.config.snapshots;
    let dataset = snap
        .dataset
        .as_deref()
        .filter(|_| snap.enabled)
        .ok_or("snapshots are off")?;
    let (z, _) = connect(ctx.config.zfsd.bus.as_deref()).await?;
    let list = z.list(dataset).await?;
    Ok(super::retention::plan(
        &Policy::from_config(snap),
        dataset,
        &list,
        SystemClock.now(),
    ))
}
