//! The reconcile scan: at startup, after a queue overflow, a failed watch, an unmount or a
//! rollback. Walks the tree (adding watches before listing each directory), hashes in
//! parallel what differs from the catalog by size, mtime, ctime or inode, and marks files
//! that are gone deleted.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::apply::{commit, Item};
use super::{dev_of, now_ns, threads, Worker};
use crate::catalog::ops;
use crate::path::{escape, unescape};
use crate::scan::{self, par_map, Compare, Probe};
use crate::status::{ScanReport, Status};
use crate::watch::map::add_watch_counted;

/// Files probed per parallel round during a scan.
const CHUNK: usize = 256;
/// Results per transaction: a scan of fewer changed files than this (every overflow
/// reconcile of an ordinary burst) becomes visible at once, with its deletions.
const TX_ITEMS: usize = 20_000;

impl Worker {
    /// Brings the catalog in line with the tree; `reason` goes into status.
    pub(super) fn reconcile(&mut self, reason: &str) {
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
        tracing::info!(reason, "reconcile scan started");
        let root = self.ctx.config.files_root.clone();
        let root_ok = root.is_dir() && dev_of(&root) == self.root_dev;
        self.root_away = (!root_ok).then(|| dev_of(&root));

        let mut unwatched = false;
        let map = self.map.clone();
        let walked = scan::walk(&root, std::path::Path::new(""), &self.ignore, |d| {
            unwatched |= !add_watch_counted(&map, st, d);
        });
        if unwatched {
            self.unwatched.store(true, Ordering::Relaxed);
        }
        // A lean index (path → fingerprint) instead of whole rows: a scan of a million
        // files must not hold a million checksums. Entries are removed as the walk finds
        // them; what is left and present was deleted meanwhile.
        let mut index = match self.ctx.readers.with_blocking(ops::scan_index) {
            Ok(Ok(index)) => index,
            other => {
                tracing::error!(result = ?other.map(|r| r.map(|v| v.len())), "cannot read the catalog; scan abandoned");
                return;
            }
        };
        let files_seen = walked.files.len() as u64;
        let mut todo: Vec<PathBuf> = Vec::new();
        for (rel, fp) in walked.files {
            match index.remove(&escape(&rel)) {
                Some(e) if e.present && e.current && e.fp.same_strict(&fp) => {}
                _ => todo.push(rel),
            }
        }

        let total = todo.len();
        let (mut hashed, mut bytes, mut done) = (0u64, 0u64, 0usize);
        let mut last_report = Instant::now();
        let mut items = Vec::new();
        let mut deleted = 0u64;
        for chunk in todo.chunks(CHUNK) {
            let rows = self.lookup_rows(chunk.to_vec());
            let prober = &self.prober;
            let probes = par_map(chunk, threads(), |rel| {
                prober.probe_unsettled(rel, rows.get(rel), Compare::Strict)
            });
            let probes = prober.settle(probes);
            for (rel, probe) in chunk.iter().zip(probes) {
                match &probe {
                    Probe::Hashed(c) => {
                        hashed += 1;
                        bytes += c.fp.size as u64;
                        self.note_success(rel);
                    }
                    Probe::Unchanged(_) | Probe::NotRegular | Probe::Missing => {
                        self.note_success(rel)
                    }
                    Probe::Changing => self.note_changing(rel),
                    Probe::Failed(why) => self.note_failure(rel, why),
                }
                items.push(Item::Check(rel.clone(), probe));
            }
            if items.len() >= TX_ITEMS {
                deleted += self.commit_scan(std::mem::take(&mut items));
            }
            done += chunk.len();
            if last_report.elapsed() >= Duration::from_secs(2) {
                last_report = Instant::now();
                let mbs = bytes as f64 / 1e6 / t0.elapsed().as_secs_f64().max(1e-6);
                let line =
                    format!("Scanning ({reason}): {done}/{total} files to check, {mbs:.0} MB/s");
                tracing::info!(reason, done, total, mb_per_s = mbs as u64, "scan progress");
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&line)]);
            }
        }
        st.files_hashed.fetch_add(hashed, Ordering::Relaxed);

        if root_ok {
            items.extend(
                index
                    .into_iter()
                    .filter(|(_, e)| e.present)
                    .filter_map(|(path, _)| unescape(&path))
                    .filter(|p| !walked.unreadable.iter().any(|u| p.starts_with(u)))
                    .map(|p| Item::Remove(p, false)),
            );
        } else {
            tracing::error!(root = %root.display(), "files root is missing or another filesystem (unmounted?); not marking files deleted");
        }
        deleted += self.commit_scan(items);
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
            deleted,
            secs = format!("{secs:.3}"),
            files_per_s = (hashed as f64 / secs.max(1e-6)) as u64,
            mb_per_s = format!("{:.1}", bytes as f64 / 1e6 / secs.max(1e-6)),
            "reconcile scan finished"
        );
        self.fire_cookies(cookies_before);
    }

    /// Commits scan results in one transaction; returns how many files were marked deleted.
    fn commit_scan(&self, items: Vec<Item>) -> u64 {
        if items.is_empty() {
            return 0;
        }
        let keep = self.versions.keep;
        let min_age_ns = self.min_age_ns();
        match self
            .ctx
            .writer
            .exec_blocking(move |c| commit(c, &items, keep, min_age_ns))
        {
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
