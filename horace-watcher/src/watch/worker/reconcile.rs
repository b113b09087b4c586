//! The reconcile scan: at startup, after a queue overflow, a failed watch, an unmount or a
//! rollback; and of one subtree flooded past the queue's bound (`backlog.rs`), which
//! serves the rest of the tree between its chunks. Walks the tree (adding watches before listing each directory), hashes in
//! parallel what differs from the catalog by size, mtime, ctime or inode; the files it did
//! not find are candidates for deletion, settled in `settle.rs` (what was renamed while
//! the scan ran is not among the deleted).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::apply::{commit, Item, TxResult};
use super::settle::Syncs;
use super::{dev_of, threads, Round, Worker};
use crate::catalog::ops;
use crate::now_ns;
use crate::path::{escape, unescape};
use crate::scan::{self, par_map, Compare, Probe};
use crate::status::{ScanReport, Status};
use crate::watch::backlog::Scope;
use crate::watch::map::add_watch_counted;

/// Files probed per parallel round during a scan (and synced into the store with one
/// `syncfs`).
const CHUNK: usize = 1024;
/// Results per transaction: a scan of fewer changed files than this (an overflow
/// reconcile of an ordinary burst) becomes visible at once, with its deletions. Larger
/// scans commit in parts while the next part is hashed.
const TX_ITEMS: usize = 8192;

/// Gives the memory a scan freed back to the system. A scan of a million files holds the
/// walk and the catalog's index (a few hundred MiB at its peak); freed, most of it stays
/// in the allocator's arenas as fragments, and the watcher's resident size stayed above
/// 100 MiB long after (horace-bench figure 7).
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A chunk's copies being synced and moved into the store: its paths and settled probes.
type Settling = std::thread::JoinHandle<(Vec<PathBuf>, Vec<Probe>)>;

fn join_settled(h: Settling) -> (Vec<PathBuf>, Vec<Probe>) {
    h.join().expect("the store's settle thread panicked")
}

/// What a scan hashed so far.
#[derive(Debug, Default)]
struct Tally {
    hashed: u64,
    bytes: u64,
    /// Changed during the scan: left to their events.
    covered: u64,
}

/// A scan transaction queued on the catalog writer.
type PendingTx = tokio::sync::oneshot::Receiver<rusqlite::Result<TxResult>>;

impl Worker {
    /// Brings the catalog in line with the tree, or with one subtree; `reason` goes into
    /// status.
    pub(super) fn reconcile(&mut self, reason: &str, scope: &Scope) {
        let (start, subtree) = match scope {
            Scope::Tree => {
                // It covers every flooded subtree, and its events queue meanwhile.
                self.backlog.clear();
                (std::path::Path::new(""), None)
            }
            Scope::Subtree(key) => (key.as_path(), Some(key.as_path())),
        };
        let cookies_before = self.pending_cookies();
        let t0 = Instant::now();
        let started_ns = now_ns();
        let ctx = self.ctx.clone();
        let st = &ctx.status;
        if reason != "startup" {
            Status::bump(&st.recrawls);
        }
        st.with_detail(|d| {
            d.last_scan = Some(ScanReport {
                reason: reason.into(),
                started_ns,
                ..Default::default()
            })
        });
        self.last_rescan = Instant::now();
        let root = self.ctx.config.files_root.clone();
        let root_ok = root.is_dir() && dev_of(&root) == self.root_dev;
        match subtree {
            None => {
                tracing::info!(reason, "reconcile scan started ({reason})");
                self.root_away = (!root_ok).then(|| dev_of(&root));
            }
            Some(key) => {
                let esc = escape(key);
                tracing::info!(reason, subtree = %esc, "reconcile scan of {esc} started ({reason})");
                if !root_ok {
                    // The whole tree's reconcile (remount) covers it.
                    return;
                }
            }
        }

        // A lean index (path → fingerprint) instead of whole rows: a scan of a million
        // files must not hold a million checksums. Read before the walk (only this loop
        // changes paths and fingerprints in the catalog), so the walk compares each file
        // as it finds it instead of holding the whole tree: entries are taken as they
        // are found; what is left and present was deleted meanwhile.
        let mut index = match self.ctx.readers.with_blocking(ops::scan_index) {
            Ok(Ok(index)) => index,
            other => {
                tracing::error!(result = ?other.map(|r| r.map(|v| v.len())), "cannot read the catalog; scan abandoned");
                return;
            }
        };
        let mut unwatched = false;
        let map = self.map.clone();
        let mut files_seen = 0u64;
        // Each path to look at, and whether the catalog has a row for it (only those are
        // looked up: on a first scan, none).
        let mut todo: Vec<(PathBuf, bool)> = Vec::new();
        // Odd from here until the last file is read: the reader lists again each directory
        // renamed meanwhile (the walk goes by path and misses it under both names).
        self.scan_epoch.fetch_add(1, Ordering::SeqCst);
        let walked = scan::walk_each(
            &root,
            start,
            &self.ignore,
            |d| unwatched |= !add_watch_counted(&map, st, d),
            |rel, fp| {
                files_seen += 1;
                match index.take(&escape(&rel)) {
                    Some(e) if e.present && e.current && e.fp.same_strict(&fp) => {}
                    known => todo.push((rel, known.is_some())),
                }
            },
        );
        if unwatched {
            self.unwatched.store(true, Ordering::Relaxed);
        }
        // Every directory is watched by now (its watch was added before it was listed),
        // and the events from now on wait in the queue until this scan is done: a file
        // that changes while the scan hashes (a service writing during a long first scan)
        // is left to them, so the scan does not catalog half a rewrite. Not when a watch
        // is missing: those changes bring no event.
        let covered_after = (root_ok && !unwatched).then(now_ns);

        let total = todo.len();
        let mut tally = Tally::default();
        let mut done = 0usize;
        let mut last_report = Instant::now();
        let mut items = Vec::new();
        let mut deleted = 0u64;
        let mut candidates = Vec::new();
        // A pipeline of three: while chunk k is hashed and copied, the copies of chunk k-1
        // are synced and moved into the store on another thread, and the catalog writer
        // commits the part before.
        let mut settling: Option<Settling> = None;
        let mut in_flight: Option<PendingTx> = None;
        let mut abandoned = false;
        // A subtree's round serves the rest of the tree between chunks: about a second's
        // worth each (the events' batch size).
        let chunk_len = match subtree {
            None => CHUNK,
            Some(_) => self.batch_limit.clamp(64, CHUNK),
        };
        for chunk in todo.chunks(chunk_len) {
            if let Some(key) = subtree {
                if self.serve_others(key) == Round::Abandon {
                    tracing::info!(subtree = %escape(key), "the whole tree is to be reconciled: scan of {} abandoned", escape(key));
                    abandoned = true;
                    break;
                }
            }
            if crate::hash::stopping() {
                // SIGTERM: what was read is committed below; the next start scans again.
                tracing::info!(
                    done,
                    total,
                    "reconcile scan stopped: the watcher is stopping"
                );
                break;
            }
            let known: Vec<PathBuf> = chunk
                .iter()
                .filter(|(_, known)| *known)
                .map(|(rel, _)| rel.clone())
                .collect();
            let rows = if known.is_empty() {
                Default::default()
            } else {
                self.lookup_rows(known)
            };
            let prober = &self.prober;
            let probes = par_map(chunk, threads(), |(rel, _)| {
                if crate::hash::stopping() {
                    // Not read: the next startup scan does.
                    return (Probe::Changing, None);
                }
                let row = rows.get(rel);
                prober.probe_unsettled(rel, row, Compare::Strict, false, covered_after)
            });
            let settled = settling.take().map(join_settled);
            let paths = chunk.iter().map(|(rel, _)| rel.clone()).collect();
            let prober = self.prober.clone();
            settling = Some(std::thread::spawn(move || (paths, prober.settle(probes))));
            if let Some(settled) = settled {
                self.record(settled, &mut tally, &mut items, &mut candidates);
            }
            if items.len() >= TX_ITEMS {
                deleted += self.finish_scan_tx(in_flight.take());
                in_flight = self.submit_scan_tx(std::mem::take(&mut items));
            }
            done += chunk.len();
            if last_report.elapsed() >= Duration::from_secs(2) {
                last_report = Instant::now();
                let mbs = tally.bytes as f64 / 1e6 / t0.elapsed().as_secs_f64().max(1e-6);
                let line =
                    format!("Scanning ({reason}): {done}/{total} files to check, {mbs:.0} MB/s");
                tracing::info!(reason, done, total, mb_per_s = mbs as u64, "scan progress");
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
            }
        }
        if let Some(settled) = settling.take().map(join_settled) {
            self.record(settled, &mut tally, &mut items, &mut candidates);
        }
        self.scan_epoch.fetch_add(1, Ordering::SeqCst);
        let Tally {
            hashed,
            bytes,
            covered,
        } = tally;
        deleted += self.finish_scan_tx(in_flight.take());
        st.files_hashed.fetch_add(hashed, Ordering::Relaxed);

        deleted += self.finish_scan_tx(self.submit_scan_tx(items));
        if crate::hash::stopping() || abandoned {
            // Not settled: removals wait for a complete scan.
        } else if root_ok {
            // The rows the walk did not reach (in its scope); those of a flooded subtree
            // are that subtree's round's to settle.
            let backlog = self.backlog.clone();
            candidates.extend(
                index
                    .untaken()
                    .filter(|(_, e)| e.present)
                    .filter_map(|(path, _)| unescape(&path))
                    .filter(|p| p.starts_with(start))
                    .filter(|p| !walked.unreadable.iter().any(|u| p.starts_with(u)))
                    .filter(|p| subtree.is_some() || !backlog.covers(p)),
            );
            let syncs = match subtree {
                None => Syncs::Hold,
                Some(_) => Syncs::Pass,
            };
            deleted += self.settle(candidates, syncs);
        } else {
            tracing::error!(root = %root.display(), "files root {} is missing or another filesystem (unmounted?); not marking files deleted", root.display());
        }
        let secs = t0.elapsed().as_secs_f64();
        let report = ScanReport {
            reason: reason.into(),
            started_ns,
            finished_ns: now_ns(),
            files_seen,
            files_hashed: hashed,
            files_deleted: deleted,
        };
        st.with_detail(|d| d.last_scan = Some(report));
        tracing::info!(
            reason,
            files = files_seen,
            dirs = walked.dirs,
            hashed,
            left_to_events = covered,
            deleted,
            secs = format!("{secs:.3}"),
            files_per_s = (hashed as f64 / secs.max(1e-6)) as u64,
            mb_per_s = format!("{:.1}", bytes as f64 / 1e6 / secs.max(1e-6)),
            "reconcile scan finished"
        );
        if subtree.is_none() {
            self.fire_cookies(cookies_before);
        }
        release_freed_memory();
    }

    /// Notes the probes of a settled chunk (retry queue, tally) and queues them as items;
    /// a path that is not a regular file now becomes a removal candidate.
    fn record(
        &mut self,
        (paths, probes): (Vec<PathBuf>, Vec<Probe>),
        tally: &mut Tally,
        items: &mut Vec<Item>,
        candidates: &mut Vec<PathBuf>,
    ) {
        for (rel, probe) in paths.into_iter().zip(probes) {
            match &probe {
                Probe::Hashed(c) => {
                    tally.hashed += 1;
                    tally.bytes += c.fp.size as u64;
                    self.note_success(&rel);
                }
                Probe::Covered => {
                    tally.covered += 1;
                    self.note_success(&rel);
                }
                Probe::NotRegular => {
                    self.note_success(&rel);
                    candidates.push(rel);
                    continue;
                }
                Probe::Unchanged(_) | Probe::Missing => self.note_success(&rel),
                Probe::Changing => self.note_changing(&rel),
                Probe::InLane => self.note_in_lane(&rel),
                Probe::Failed(why) => self.note_failure(&rel, why),
            }
            items.push(Item::Check(rel, probe));
        }
    }

    /// Queues scan results as one transaction on the catalog writer.
    pub(super) fn submit_scan_tx(&self, items: Vec<Item>) -> Option<PendingTx> {
        if items.is_empty() {
            return None;
        }
        let keep = self.versions.keep;
        let min_age_ns = self.min_age_ns();
        match self
            .ctx
            .writer
            .submit(move |c| commit(c, &items, keep, min_age_ns))
        {
            Ok(rx) => Some(rx),
            Err(e) => {
                tracing::error!(cause = %e, "scan transaction not queued: {e}");
                None
            }
        }
    }

    /// Waits for a queued scan transaction; returns how many files it marked deleted.
    pub(super) fn finish_scan_tx(&self, pending: Option<PendingTx>) -> u64 {
        let Some(rx) = pending else { return 0 };
        match rx.blocking_recv() {
            Ok(Ok(tx)) => {
                self.ctx
                    .status
                    .versions_cataloged
                    .fetch_add(tx.versions, Ordering::Relaxed);
                for sha in &tx.unreferenced {
                    self.prober.objects.remove(sha);
                }
                tx.deleted
            }
            other => {
                tracing::error!(result = ?other.map(|r| r.map(|t| t.versions)), "scan transaction failed");
                0
            }
        }
    }
}
