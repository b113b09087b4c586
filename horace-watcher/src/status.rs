//! Live health figures of the watcher, shared by its tasks and read by the `status` query.
//!
//! Counters are atomics; the rest sits behind one mutex that is held only to copy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use horace_client::StatusReport;

/// Catalog totals that took longer than this to compute (a big catalog: about a second at
/// a million files) are reused while being written…
const FIGURES_SLOW: Duration = Duration::from_millis(50);
/// …for this many times what computing them took, so that a monitor polling `status`
/// during a big scan does not keep a core busy.
const FIGURES_COST_FACTOR: u32 = 20;

/// Shared health state. Each field says who writes it.
#[derive(Debug, Default)]
pub struct Status {
    /// Events and paths waiting to be cataloged (watcher).
    pub queue_depth: AtomicU64,
    /// Lag of the last processed event, event seen → committed, in microseconds (watcher).
    pub event_lag_us: AtomicU64,
    /// Versions cataloged since start (watcher).
    pub versions_cataloged: AtomicU64,
    /// Files hashed since start (watcher).
    pub files_hashed: AtomicU64,
    /// Reconcile scans run because of a queue overflow, failed watch, unmount or rollback
    /// (watcher).
    pub recrawls: AtomicU64,
    /// Queue overflows reported by the kernel (watcher).
    pub overflows: AtomicU64,
    /// Saves pinned without a read lease to say no writer held them (see
    /// `watch::pin::open_for_writing`), confirmed by the events instead (watcher).
    pub lease_fallbacks: AtomicU64,
    /// Watches that could not be added (watcher).
    pub watch_failures: AtomicU64,
    /// Whether the startup scan has finished (watcher).
    pub ready: AtomicBool,
    /// Whether zfsd answered the last call; meaningless while snapshots are off (scheduler).
    pub zfsd_reachable: AtomicBool,
    /// Unix seconds of the last snapshot taken, 0 if none (scheduler).
    pub last_snapshot: AtomicI64,
    /// Everything that is not a counter.
    pub detail: Mutex<StatusDetail>,
    /// The catalog totals of the last `status` answer (query service).
    pub catalog_figures: Mutex<Option<CatalogFigures>>,
}

/// Catalog totals as computed at one time.
#[derive(Debug, Clone)]
pub struct CatalogFigures {
    /// The catalog writer's generation they were computed at (`catalog::Writer::generation`).
    pub generation: u64,
    /// When they were computed.
    pub at: Instant,
    /// How long that took.
    pub took: Duration,
    /// The figures (catalog part of the status report).
    pub figures: StatusReport,
}

/// The non-counter part of [`Status`].
#[derive(Debug, Default, Clone)]
pub struct StatusDetail {
    /// The last reconcile scan (watcher).
    pub last_scan: Option<ScanReport>,
    /// Paths whose cataloging keeps failing: when each was noted last (a count) and the
    /// last cause (watcher retry queue). See [`StatusDetail::recent_failures`].
    pub failures: BTreeMap<String, (u64, String)>,
    /// Counts [`StatusDetail::note_failure`] calls.
    pub failures_noted: u64,
    /// The last snapshot-scheduler error, cleared when a call succeeds (scheduler).
    pub zfsd_error: Option<String>,
    /// Why pruning was refused, e.g. a clock that went backwards (scheduler).
    pub prune_refused: Option<String>,
    /// The last catalog backup, unix seconds (backup task).
    pub last_backup: Option<i64>,
}

impl StatusDetail {
    /// Notes that cataloging `path` (escaped) failed again, for `cause`.
    pub fn note_failure(&mut self, path: String, cause: String) {
        self.failures_noted += 1;
        self.failures.insert(path, (self.failures_noted, cause));
    }

    /// The `n` failures noted last, newest first: a flood of failing files makes a long
    /// list, and status carries its length and these, not all of it.
    pub fn recent_failures(&self, n: usize) -> Vec<horace_client::PathFailure> {
        let mut all: Vec<(&String, &(u64, String))> = self.failures.iter().collect();
        if all.len() > n {
            all.select_nth_unstable_by_key(n, |(_, (seq, _))| std::cmp::Reverse(*seq));
            all.truncate(n);
        }
        all.sort_unstable_by_key(|(_, (seq, _))| std::cmp::Reverse(*seq));
        all.into_iter()
            .map(|(p, (_, cause))| horace_client::PathFailure {
                path: p.clone(),
                cause: cause.clone(),
            })
            .collect()
    }
}

/// What one reconcile scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Why it ran: "startup", "overflow", "watch-failure", "unmount", "rollback", "restore".
    pub reason: String,
    /// Unix nanoseconds when it started.
    pub started_ns: i64,
    /// Unix nanoseconds when it finished (0 while running).
    pub finished_ns: i64,
    /// Files looked at.
    pub files_seen: u64,
    /// Files hashed (the rest were unchanged by size, mtime, ctime and inode).
    pub files_hashed: u64,
    /// Files newly marked deleted.
    pub files_deleted: u64,
}

impl Status {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `f` with the detail locked.
    pub fn with_detail<R>(&self, f: impl FnOnce(&mut StatusDetail) -> R) -> R {
        f(&mut self.detail.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of the detail.
    pub fn detail(&self) -> StatusDetail {
        self.with_detail(|d| d.clone())
    }

    /// The catalog totals computed last, if still right: nothing was written since
    /// (`generation` is the writer's), or they were slow to compute and are younger than 20
    /// times that (so totals of a big catalog lag by up to that while it is written).
    pub fn fresh_catalog_figures(&self, generation: u64) -> Option<StatusReport> {
        let cached = self
            .catalog_figures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let c = cached.as_ref()?;
        let fresh = c.generation == generation
            || (c.took > FIGURES_SLOW && c.at.elapsed() < c.took * FIGURES_COST_FACTOR);
        fresh.then(|| c.figures.clone())
    }

    /// Keeps catalog totals for [`Status::fresh_catalog_figures`].
    pub fn keep_catalog_figures(&self, figures: CatalogFigures) {
        *self
            .catalog_figures
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(figures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_figures_are_reused_while_fresh() {
        let s = Status::default();
        assert!(s.fresh_catalog_figures(0).is_none());
        let keep = |generation, ago: u64, took: u64| {
            s.keep_catalog_figures(CatalogFigures {
                generation,
                at: Instant::now() - Duration::from_millis(ago),
                took: Duration::from_millis(took),
                figures: StatusReport {
                    files_active: 7,
                    ..Default::default()
                },
            })
        };
        keep(3, 60_000, 1);
        assert_eq!(s.fresh_catalog_figures(3).map(|r| r.files_active), Some(7));
        assert!(s.fresh_catalog_figures(4).is_none(), "written since, cheap");
        keep(3, 3_000, 1_000);
        assert!(
            s.fresh_catalog_figures(4).is_some(),
            "slow: reused for 20 s"
        );
        keep(3, 25_000, 1_000);
        assert!(s.fresh_catalog_figures(4).is_none(), "slow, but too old");
    }
}

#[cfg(test)]
mod failure_tests {
    use super::*;

    #[test]
    fn recent_failures_are_the_last_noted_newest_first() {
        let mut d = StatusDetail::default();
        for i in 0..100 {
            d.note_failure(format!("p{i:03}"), format!("cause {i}"));
        }
        // Noted again: it is the newest now.
        d.note_failure("p007".into(), "again".into());
        let r: Vec<(String, String)> = d
            .recent_failures(3)
            .into_iter()
            .map(|f| (f.path, f.cause))
            .collect();
        assert_eq!(
            r,
            [
                ("p007".to_string(), "again".to_string()),
                ("p099".into(), "cause 99".into()),
                ("p098".into(), "cause 98".into()),
            ]
        );
        assert_eq!(d.failures.len(), 100);
        assert_eq!(d.recent_failures(1000).len(), 100);
    }
}
