//! The `org.horace.Zfs1` object: every method authorizes the caller, validates every
//! name against the grammar and the root, then runs `zfs`; mutating operations run one at
//! a time. A failed call is logged and answered with a named error, never fatal.
//!
//! A rollback is recorded in the journal before `zfs rollback` runs and settled when it
//! ends; [`Recovery`] settles and reports one that an earlier zfsd did not live to.

use std::sync::{Arc, Mutex as SyncMutex, MutexGuard as SyncGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::{error, info, instrument, warn};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use crate::api::{self, SnapshotInfo, ZfsError, OBJECT_PATH};
use crate::auth::{self, Allow};
use crate::config::Config;
use crate::journal::{Journal, Pending};
use crate::zfs::{Snapshot, Zfs};

/// How often recovery tries the lock an orphaned `zfs rollback` holds. Polled rather
/// than a blocking flock in a thread, so a SIGTERM during the wait is not held up.
const RECOVERY_POLL: Duration = Duration::from_millis(100);

/// State of the served object.
pub struct Service {
    config: Arc<Config>,
    allow: Allow,
    zfs: Zfs,
    mutating: Arc<Mutex<()>>,
    journal: Arc<SyncMutex<Journal>>,
}

impl Service {
    /// A service for `config`, with group names already resolved into `allow` and the
    /// journal of its `state_dir` opened.
    pub fn new(config: Arc<Config>, allow: Allow, journal: Journal) -> Self {
        let zfs = Zfs::new(config.zfs_path.clone(), config.command_timeout);
        Self {
            config,
            allow,
            zfs,
            mutating: Arc::new(Mutex::new(())),
            journal: Arc::new(SyncMutex::new(journal)),
        }
    }

    /// When the journal holds a rollback an earlier zfsd did not settle: the recovery
    /// to run once the bus name is ours. It holds the mutating lock from now on, so no
    /// call can start a `zfs` command before the interrupted rollback is over.
    pub fn recovery(&self) -> Option<Recovery> {
        let pending = self.journal().pending().cloned()?;
        let guard = Arc::clone(&self.mutating)
            .try_lock_owned()
            .expect("nothing runs before the service is served");
        Some(Recovery {
            pending,
            journal: Arc::clone(&self.journal),
            _mutating: guard,
        })
    }

    fn journal(&self) -> SyncGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validates `dataset` and checks it lies at or under a configured root.
    fn check_dataset(&self, dataset: &str) -> Result<(), ZfsError> {
        api::validate_dataset(dataset)?;
        if self.config.root_of(dataset).is_none() {
            return Err(ZfsError::OutsideRoot(format!(
                "{dataset:?} is not {} or under it; Horace only manages datasets under its root",
                self.config.roots.join(" or ")
            )));
        }
        Ok(())
    }

    async fn list(&self, dataset: &str) -> Result<Vec<Snapshot>, ZfsError> {
        self.zfs.list(dataset).await
    }
}

fn find<'a>(snaps: &'a [Snapshot], name: &str) -> Result<&'a Snapshot, ZfsError> {
    snaps.iter().find(|s| s.name == name).ok_or_else(|| {
        ZfsError::NotFound(format!(
            "snapshot {name:?} does not exist; check ListSnapshots"
        ))
    })
}

fn check_managed(full: &str, snap: &str) -> Result<(), ZfsError> {
    if snap.starts_with(api::SNAPSHOT_PREFIX) {
        Ok(())
    } else {
        Err(ZfsError::NotManaged(format!(
            "{full:?} was not made by Horace (no {:?} prefix) and is left alone; destroy it \
             with the zfs command if you mean to",
            api::SNAPSHOT_PREFIX
        )))
    }
}

fn check_not_held(s: &Snapshot) -> Result<(), ZfsError> {
    if s.holds == 0 {
        Ok(())
    } else {
        Err(ZfsError::Busy(format!(
            "{:?} has {} user hold(s); release them (zfs holds / zfs release) first",
            s.name, s.holds
        )))
    }
}

#[zbus::interface(name = "org.horace.Zfs1")]
impl Service {
    /// Snapshots of a dataset at or under the root, oldest first: (name, creation unix s,
    /// used bytes).
    #[instrument(skip(self, hdr, conn))]
    async fn list_snapshots(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        dataset: &str,
    ) -> Result<Vec<SnapshotInfo>, ZfsError> {
        auth::authorize(conn, &hdr, &self.allow, "ListSnapshots").await?;
        self.check_dataset(dataset)?;
        let snaps = self.list(dataset).await?;
        Ok(snaps
            .into_iter()
            .map(|s| SnapshotInfo {
                name: s.name,
                creation: s.creation,
                used: s.used,
            })
            .collect())
    }

    /// Creates dataset@horace_YYYY-MM-DDTHH:MM:SSZ_label (UTC) and returns its full name.
    #[instrument(skip(self, hdr, conn, emitter))]
    async fn create_snapshot(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        dataset: &str,
        label: &str,
    ) -> Result<String, ZfsError> {
        auth::authorize(conn, &hdr, &self.allow, "CreateSnapshot").await?;
        self.check_dataset(dataset)?;
        api::validate_label(label)?;
        let full = format!("{dataset}@{}", api::snapshot_name(label, SystemTime::now()));
        api::validate_snapshot(&full)?;
        let _one = self.mutating.lock().await;
        self.zfs.snapshot(&full).await?;
        info!(snapshot = %full, "snapshot created: {full}");
        if let Err(e) = Self::snapshot_created(&emitter, &full).await {
            warn!(cause = %e, "cannot emit SnapshotCreated: {e}");
        }
        Ok(full)
    }

    /// Destroys horace_ snapshots of one dataset, given by full name, all or none; with
    /// dry_run only reports what would go. Returns the destroyed (or would-be) names.
    #[instrument(skip(self, hdr, conn, emitter, names), fields(count = names.len()))]
    async fn destroy_snapshots(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        dataset: &str,
        names: Vec<String>,
        dry_run: bool,
    ) -> Result<Vec<String>, ZfsError> {
        auth::authorize(conn, &hdr, &self.allow, "DestroySnapshots").await?;
        if names.len() > api::MAX_DESTROY_BATCH {
            return Err(ZfsError::InvalidName(format!(
                "{} names in one call; pass at most {} and call again for the rest",
                names.len(),
                api::MAX_DESTROY_BATCH
            )));
        }
        self.check_dataset(dataset)?;
        let mut wanted: Vec<String> = Vec::with_capacity(names.len());
        for full in &names {
            let (ds, snap) = api::validate_snapshot(full)?;
            if ds != dataset {
                return Err(ZfsError::InvalidName(format!(
                    "{full:?} is not a snapshot of {dataset:?}; pass snapshots of that dataset only"
                )));
            }
            check_managed(full, snap)?;
            if !wanted.contains(full) {
                wanted.push(full.clone());
            }
        }
        let _one = self.mutating.lock().await;
        let snaps = self.list(dataset).await?;
        for full in &wanted {
            check_not_held(find(&snaps, full)?)?;
        }
        if dry_run || wanted.is_empty() {
            return Ok(wanted);
        }
        let mut done = Vec::with_capacity(wanted.len());
        let mut failure = None;
        for full in &wanted {
            match self.zfs.destroy(full).await {
                Ok(()) => done.push(full.clone()),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !done.is_empty() {
            info!(
                count = done.len(),
                "snapshots destroyed: {}",
                done.join(", ")
            );
            if let Err(e) = Self::snapshots_destroyed(&emitter, &done).await {
                warn!(cause = %e, "cannot emit SnapshotsDestroyed: {e}");
            }
        }
        match failure {
            None => Ok(done),
            // Only a check zfs-fuse cannot make up front (dependent clones) gets here.
            Some(e) if done.is_empty() => Err(e),
            Some(e) => Err(ZfsError::ZfsFailed(format!(
                "{e}; already destroyed before the failure: {}",
                done.join(", ")
            ))),
        }
    }

    /// Rolls a dataset back to one of its snapshots. A non-newest snapshot needs
    /// destroy_newer (then the newer ones, all made by Horace, are destroyed). Returns the
    /// snapshots destroyed (or, with dry_run, that would be).
    #[instrument(skip(self, hdr, conn, emitter))]
    async fn rollback(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
        snapshot: &str,
        destroy_newer: bool,
        dry_run: bool,
    ) -> Result<Vec<String>, ZfsError> {
        auth::authorize(conn, &hdr, &self.allow, "Rollback").await?;
        let (dataset, _) = api::validate_snapshot(snapshot)?;
        self.check_dataset(dataset)?;
        let _one = self.mutating.lock().await;
        let snaps = self.list(dataset).await?;
        let target = find(&snaps, snapshot)?;
        let pos = snaps
            .iter()
            .position(|s| s.name == target.name)
            .unwrap_or(0);
        let newer = &snaps[pos + 1..];
        let newer_names: Vec<String> = newer.iter().map(|s| s.name.clone()).collect();
        if !newer.is_empty() && !destroy_newer {
            return Err(ZfsError::Busy(format!(
                "{} newer snapshot(s) exist ({}); pass destroy_newer=true to destroy them and \
                 roll back",
                newer.len(),
                newer_names.join(", ")
            )));
        }
        for s in newer {
            let snap = s.name.split_once('@').map_or("", |(_, s)| s);
            check_managed(&s.name, snap)?;
            check_not_held(s)?;
        }
        if dry_run {
            return Ok(newer_names);
        }
        // Recorded durably before zfs runs: if zfsd dies while the child runs, the next
        // zfsd finds the record and reports the rollback (see `Recovery`).
        let hold = self.journal().begin(snapshot).map_err(|e| {
            ZfsError::ZfsFailed(format!(
                "cannot record the rollback before running it, so nothing was rolled back: {e}"
            ))
        })?;
        let stdin = hold
            .child_stdin()
            .map_err(|e| ZfsError::ZfsFailed(format!("cannot pass the journal lock to zfs: {e}")));
        let result = match stdin {
            Ok(stdin) => self.zfs.rollback(snapshot, !newer.is_empty(), stdin).await,
            Err(e) => Err(e),
        };
        // Settled whatever the outcome: a failed or timed-out attempt may have changed
        // the dataset too, and the watcher reconciling once for nothing is harmless.
        if let Err(e) = self.journal().settle() {
            error!(cause = %e, "cannot settle the rollback in the journal; the next start reports it again");
        }
        drop(hold);
        result?;
        info!(
            snapshot,
            destroyed = newer_names.len(),
            "rolled back to {snapshot}{}",
            if newer_names.is_empty() {
                String::new()
            } else {
                format!(", destroying {}", newer_names.join(", "))
            }
        );
        if let Err(e) = Self::rolled_back(&emitter, snapshot).await {
            warn!(cause = %e, "cannot emit RolledBack: {e}");
        }
        if !newer_names.is_empty() {
            if let Err(e) = Self::snapshots_destroyed(&emitter, &newer_names).await {
                warn!(cause = %e, "cannot emit SnapshotsDestroyed: {e}");
            }
        }
        Ok(newer_names)
    }

    /// The rollback serial of a dataset at or under the root: a number that grows with
    /// every rollback of it through zfsd once that rollback is over (0: never). Lets a
    /// client that missed `RolledBack` (zfsd died mid-rollback, or the client was away)
    /// tell that the dataset went back. Reads the journal only; runs no `zfs`.
    #[instrument(skip(self, hdr, conn))]
    async fn rollback_serial(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        dataset: &str,
    ) -> Result<u64, ZfsError> {
        auth::authorize(conn, &hdr, &self.allow, "RollbackSerial").await?;
        self.check_dataset(dataset)?;
        Ok(self.journal().serial(dataset))
    }

    /// The configured root dataset(s), comma separated.
    #[zbus(property(emits_changed_signal = "const"))]
    fn root(&self) -> String {
        self.config.roots.join(",")
    }

    /// The daemon's version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    /// A snapshot was created (full name).
    #[zbus(signal)]
    async fn snapshot_created(emitter: &SignalEmitter<'_>, name: &str) -> zbus::Result<()>;

    /// Snapshots were destroyed (full names).
    #[zbus(signal)]
    async fn snapshots_destroyed(emitter: &SignalEmitter<'_>, names: &[String])
        -> zbus::Result<()>;

    /// A dataset was rolled back to this snapshot (full name).
    #[zbus(signal)]
    async fn rolled_back(emitter: &SignalEmitter<'_>, snapshot: &str) -> zbus::Result<()>;
}

/// The settling of a rollback an earlier zfsd recorded but did not live to report.
pub struct Recovery {
    pending: Pending,
    journal: Arc<SyncMutex<Journal>>,
    _mutating: OwnedMutexGuard<()>,
}

impl Recovery {
    /// Waits until no `zfs rollback` of the earlier zfsd runs (its lock is free), settles
    /// the record (the serial changes), then emits `RolledBack`: the dataset may have
    /// gone back, and a reconcile the watcher did not need costs nothing. Releases the
    /// mutating lock when done.
    pub async fn run(self, conn: zbus::Connection) {
        let snapshot = self.pending.snapshot.clone();
        let lock = |j: &Arc<SyncMutex<Journal>>| {
            let g = j.lock().unwrap_or_else(|e| e.into_inner());
            g.try_lock()
        };
        let mut waited = false;
        let hold = loop {
            match lock(&self.journal) {
                Ok(Some(hold)) => break Some(hold),
                Ok(None) => {
                    if !std::mem::replace(&mut waited, true) {
                        info!(%snapshot, "an interrupted rollback to {snapshot}: its zfs still runs; waiting for it to end");
                    }
                    tokio::time::sleep(RECOVERY_POLL).await;
                }
                Err(e) => {
                    // Report anyway: a rollback may have happened, and silence is worse.
                    error!(cause = %e, "cannot take the rollback lock; reporting the rollback without waiting");
                    break None;
                }
            }
        };
        let settled = self
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .settle();
        if let Err(e) = settled {
            error!(cause = %e, "cannot settle the interrupted rollback; the next start reports it again");
        }
        drop(hold);
        info!(%snapshot, "reporting the rollback to {snapshot} an earlier horace-zfsd did not finish reporting");
        match SignalEmitter::new(&conn, OBJECT_PATH) {
            Ok(emitter) => {
                if let Err(e) = Service::rolled_back(&emitter, &snapshot).await {
                    warn!(cause = %e, "cannot emit RolledBack: {e}");
                }
            }
            Err(e) => warn!(cause = %e, "cannot emit RolledBack"),
        }
    }
}
