//! Wire types of the catalog-wide answers: duplicates, snapshots (and the snapshot plan)
//! and status.

use serde::{Deserialize, Serialize};

/// Which duplicate groups to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicatesQuery {
    /// Only contents of at least this many bytes.
    pub min_size: Option<u64>,
    /// Groups per page: default [`super::DEFAULT_LIMIT`], at most [`super::MAX_LIMIT`].
    pub limit: Option<u32>,
    /// Groups to skip.
    pub offset: u64,
}

/// Active files that share one content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateGroup {
    /// The shared SHA-256.
    pub sha256: String,
    /// Size of one copy.
    pub size: u64,
    /// The files, by path; at most 1000 are listed.
    pub files: Vec<DuplicateFile>,
    /// How many files share the content.
    pub count: u64,
}

/// One file of a [`DuplicateGroup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateFile {
    /// Catalog id.
    pub id: i64,
    /// Escaped path relative to the files root.
    pub path: String,
}

/// One page of duplicate groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicatesResult {
    /// How many groups there are in all.
    pub total_groups: u64,
    /// The page.
    pub groups: Vec<DuplicateGroup>,
}

/// One ZFS snapshot of the files dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// Full name, `dataset@snap`.
    pub name: String,
    /// The dataset.
    pub dataset: String,
    /// Creation time, unix nanoseconds (zfs keeps whole seconds).
    pub created_ns: i64,
    /// Bytes used by the snapshot alone.
    pub used: u64,
    /// hourly, daily, … for Horace's own snapshots.
    pub label: Option<String>,
    /// Whether Horace made it (and may prune it).
    pub managed: bool,
}

/// A dry run of the snapshot scheduler: what a tick at [`SnapshotPlan::now_ns`] would do,
/// computed by the same function the tick executes unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPlan {
    /// The files dataset.
    #[serde(default)]
    pub dataset: String,
    /// The time the plan is for, unix nanoseconds (whole seconds).
    #[serde(default)]
    pub now_ns: i64,
    /// Labels to snapshot (`hourly`, `daily`, `weekly`, `monthly`), in creation order.
    #[serde(default)]
    pub create: Vec<String>,
    /// Full names (`dataset@snap`) of the managed snapshots to destroy, in one batch.
    #[serde(default)]
    pub destroy: Vec<String>,
    /// Why pruning is refused (the clock is behind the newest snapshot), if it is.
    #[serde(default)]
    pub prune_refused: Option<String>,
}

/// A path whose cataloging keeps failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathFailure {
    /// Escaped path relative to the files root.
    pub path: String,
    /// The last cause.
    pub cause: String,
}

/// What one reconcile scan did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanInfo {
    /// Why it ran (startup, overflow, watch-failure, rollback, …).
    pub reason: String,
    /// Started (unix ns).
    pub started_ns: i64,
    /// Finished (unix ns), 0 while running.
    pub finished_ns: i64,
    /// Files looked at.
    pub files_seen: u64,
    /// Files hashed.
    pub files_hashed: u64,
    /// Files newly marked deleted.
    pub files_deleted: u64,
}

/// Health and size figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Version of the watcher.
    pub version: String,
    /// Active files.
    pub files_active: u64,
    /// Archived files.
    pub files_archived: u64,
    /// Deleted files (history kept).
    pub files_deleted: u64,
    /// Versions cataloged in all.
    pub versions: u64,
    /// Versions whose content the store holds.
    pub versions_stored: u64,
    /// Sum of the current sizes of active files.
    pub bytes_active: u64,
    /// Bytes held by the content store (distinct contents).
    pub bytes_stored: u64,
    /// Collections.
    pub collections: u64,
    /// Events and paths waiting to be cataloged.
    pub queue_depth: u64,
    /// Lag of the last processed event, seen → committed, microseconds.
    pub event_lag_us: u64,
    /// Versions cataloged since start.
    pub versions_cataloged: u64,
    /// Files hashed since start.
    pub files_hashed: u64,
    /// Reconcile scans forced by overflow, failed watch, rollback, …
    pub recrawls: u64,
    /// Kernel queue overflows.
    pub overflows: u64,
    /// Saves pinned without a read lease (the watcher's user may not take one, or the file
    /// was too big to read at once): confirmed by the inotify events that follow instead.
    #[serde(default)]
    pub lease_fallbacks: u64,
    /// Watches that could not be added.
    pub watch_failures: u64,
    /// Whether the startup scan has finished.
    pub ready: bool,
    /// The last reconcile scan.
    pub last_scan: Option<ScanInfo>,
    /// Paths whose cataloging keeps failing, with the last cause: the last few noted
    /// (newest first, at most 20); `failures_total` says how many there are.
    pub failures: Vec<PathFailure>,
    /// How many paths keep failing (`failures` lists the last few of them).
    #[serde(default)]
    pub failures_total: u64,
    /// Whether snapshots are scheduled at all.
    pub snapshots_enabled: bool,
    /// Whether zfsd answered the last call (meaningful only with snapshots enabled).
    pub zfsd_reachable: bool,
    /// The last snapshot-scheduler error.
    pub zfsd_error: Option<String>,
    /// When the last snapshot was taken, unix nanoseconds; `None` if none was (since
    /// the watcher started: the scheduler's own record).
    pub last_snapshot_ns: Option<i64>,
    /// Why pruning was refused, if it was.
    pub prune_refused: Option<String>,
    /// When the last catalog backup was made, unix nanoseconds; `None` if none was.
    pub last_backup_ns: Option<i64>,
    /// Snapshots in the catalog's mirror.
    pub snapshots: u64,
    /// Why the content store keeps objects the catalog does not know: the catalog was
    /// recovered (moved aside, restored from a backup, or started empty). `None` normally.
    pub collection_held: Option<String>,
    /// Store objects found damaged (content not hashing to its name) and not healed yet:
    /// moved to `objects/damaged`; the next save of that content heals each.
    #[serde(default)]
    pub damaged_objects: u64,
    /// Versions cataloged since start without their content, because the store was full
    /// (the metadata filesystem down to `[versions] store_reserve_mib`) or their owner
    /// over its budget (`owner_share_percent`); `not_stored` lists the last few.
    #[serde(default)]
    pub versions_not_stored: u64,
    /// The last few versions cataloged without content (newest first, at most 20): the
    /// path and why.
    #[serde(default)]
    pub not_stored: Vec<PathFailure>,
}

impl StatusReport {
    /// What makes the watcher degraded, one phrase each, empty when healthy: snapshots
    /// enabled while zfsd does not answer, paths that keep failing, watches that could not
    /// be added, pruning refused. `horace status` exits 8 and `STATUS=` says
    /// "degraded: …" when it is not empty.
    pub fn degradation(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.snapshots_enabled && !self.zfsd_reachable {
            why.push(match &self.zfsd_error {
                Some(e) => format!("zfsd unreachable ({e})"),
                None => "zfsd unreachable".to_owned(),
            });
        }
        if self.failures_total > 0 {
            why.push(format!("{} paths failing", self.failures_total));
        }
        if self.watch_failures > 0 {
            why.push(format!("{} watches failed", self.watch_failures));
        }
        if let Some(r) = &self.prune_refused {
            why.push(format!("pruning refused ({r})"));
        }
        if self.damaged_objects > 0 {
            why.push(format!("{} store objects damaged", self.damaged_objects));
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> StatusReport {
        serde_json::from_value(serde_json::json!({
            "version": "0", "files_active": 0, "files_archived": 0, "files_deleted": 0,
            "versions": 0, "versions_stored": 0, "bytes_active": 0, "bytes_stored": 0,
            "collections": 0, "queue_depth": 0, "event_lag_us": 0, "versions_cataloged": 0,
            "files_hashed": 0, "recrawls": 0, "overflows": 0, "watch_failures": 0,
            "ready": true, "last_scan": null, "failures": [], "failures_total": 0,
            "snapshots_enabled": true, "zfsd_reachable": true, "zfsd_error": null,
            "last_snapshot_ns": null, "prune_refused": null, "last_backup_ns": null, "snapshots": 0,
            "collection_held": null
        }))
        .unwrap()
    }

    #[test]
    fn degradation_names_zfsd_unreachable_only_with_snapshots_enabled() {
        let mut s = healthy();
        assert!(s.degradation().is_empty());
        s.zfsd_reachable = false;
        s.zfsd_error = Some("no bus".into());
        assert_eq!(s.degradation(), ["zfsd unreachable (no bus)"]);
        s.snapshots_enabled = false;
        assert!(s.degradation().is_empty());
        s.failures_total = 2;
        assert_eq!(s.degradation(), ["2 paths failing"]);
    }
}
