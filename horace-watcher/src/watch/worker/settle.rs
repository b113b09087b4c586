//! The end of a reconcile scan. The walk goes by path while the tree keeps changing, so
//! what it did not find is only a candidate for deletion: a directory renamed while it
//! walked holds files the walk missed under both names (the reader lists it again, see
//! `reader::ListingWindow`, and those listings come as events). So the scan ends with a
//! barrier: a cookie written in the root, with every event before it applied (renames
//! move the candidates' rows). A candidate is then looked at (`lstat`) at its row's
//! current path: a regular file there is checked (unchanged: no history); nothing there
//! is marked deleted only after another barrier shows that no event touched that path or
//! a directory above it meanwhile, else it is looked at again in the next round.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::apply::Item;
use super::{Msg, Worker, MAX_BATCH};
use crate::catalog::ops;
use crate::path::unescape;
use crate::scan::Compare;
use crate::watch::{cookie, Op};

/// Rounds of look-and-barrier before the candidates still disturbed are left to a later
/// scan.
const MAX_ROUNDS: usize = 8;
/// How long a barrier waits for its cookie's event.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a barrier does with the sync cookies it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syncs {
    /// They wait for the end of the scan (a whole tree's: a sync must not return while
    /// it has files left to settle).
    Hold,
    /// They are answered (a flooded subtree's round: the sync lists the subtree as
    /// `reconciling`).
    Pass,
}

/// The paths the operations of a barrier touched.
#[derive(Debug, Default)]
pub(super) struct Touched(HashSet<PathBuf>);

impl Touched {
    fn note(&mut self, op: &Op) {
        match op {
            Op::Check { rel, .. }
            | Op::Saved { rel, .. }
            | Op::Recheck { rel, .. }
            | Op::Remove { rel, .. } => {
                self.0.insert(rel.clone());
            }
            Op::Rename { from, to, .. } => {
                self.0.insert(from.clone());
                self.0.insert(to.clone());
            }
            Op::Cookie(_) => {}
        }
    }

    /// Whether an operation touched `rel` or a directory above it.
    fn disturbs(&self, rel: &Path) -> bool {
        rel.ancestors().any(|a| self.0.contains(a))
    }
}

impl Worker {
    /// Settles a scan's removal candidates (relative paths whose rows the walk did not
    /// reach, or that were not regular files); returns how many files it marked deleted.
    pub(super) fn settle(&mut self, candidates: Vec<PathBuf>, syncs: Syncs) -> u64 {
        let mut ids: Vec<i64> = self
            .lookup_rows(candidates)
            .into_values()
            .filter(|r| r.is_present())
            .map(|r| r.id)
            .collect();
        if self.barrier(syncs).is_none() {
            return self.leave_for_later(ids.len());
        }
        let mut deleted = 0;
        for _ in 0..MAX_ROUNDS {
            if ids.is_empty() {
                return deleted;
            }
            let (present, absent) = self.look_at(std::mem::take(&mut ids));
            if !present.is_empty() {
                let now = Instant::now();
                let checks = present.into_iter().map(|rel| {
                    let op = Op::Check {
                        rel,
                        compare: Compare::Strict,
                    };
                    (op, now)
                });
                self.apply_batch(checks.collect());
            }
            if absent.is_empty() {
                return deleted;
            }
            let Some(touched) = self.barrier(syncs) else {
                return deleted + self.leave_for_later(absent.len());
            };
            let (disturbed, quiet): (Vec<_>, Vec<_>) = absent
                .into_iter()
                .partition(|(_, rel)| touched.disturbs(rel));
            let items = quiet
                .into_iter()
                .map(|(_, rel)| Item::Remove(rel, false))
                .collect();
            deleted += self.finish_scan_tx(self.submit_scan_tx(items));
            ids = disturbed.into_iter().map(|(id, _)| id).collect();
        }
        deleted + self.leave_for_later(ids.len())
    }

    /// Candidates not settled: a later scan looks at them (the loop rescans while
    /// `unwatched` is set).
    fn leave_for_later(&self, n: usize) -> u64 {
        if n > 0 {
            tracing::warn!(
                files = n,
                "files not found by the scan are not marked deleted yet (the tree kept changing); rescanning later"
            );
            self.unwatched.store(true, Ordering::Relaxed);
        }
        0
    }

    /// The current path of each present row of `ids`, split into regular files there and
    /// the rest (nothing, or not a regular file), the latter with their ids.
    fn look_at(&self, ids: Vec<i64>) -> (Vec<PathBuf>, Vec<(i64, PathBuf)>) {
        let rows = self.ctx.readers.with_blocking(move |c| {
            ids.into_iter()
                .filter_map(|id| ops::row_by_id(c, id).ok().flatten())
                .filter(|r| r.is_present())
                .collect::<Vec<_>>()
        });
        let (mut present, mut absent) = (Vec::new(), Vec::new());
        for row in rows.unwrap_or_default() {
            let Some(rel) = unescape(&row.path) else {
                continue;
            };
            match std::fs::symlink_metadata(self.prober.root.join(&rel)) {
                Ok(md) if md.is_file() => present.push(rel),
                Ok(_) => absent.push((row.id, rel)),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
                    ) =>
                {
                    absent.push((row.id, rel))
                }
                // The probe reports it and the retry queue looks again.
                Err(_) => present.push(rel),
            }
        }
        (present, absent)
    }

    /// Writes a barrier cookie in the root and applies every event up to its own; returns
    /// the paths those events touched, or `None` when it did not come in time or a
    /// reconcile was asked for meanwhile (events may be lost: nothing is concluded).
    /// Other messages wait in the inbox, in order, ahead of what follows.
    pub(super) fn barrier(&mut self, syncs: Syncs) -> Option<Touched> {
        // A cookie like a sync's (random name, never through anything a tenant planted),
        // registered with the syncs' so that the numbers stay apart.
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let cookie = match cookie::create(&self.prober.root, &self.cookies, tx) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot create the scan's barrier cookie: {e}");
                return None;
            }
        };
        let n = cookie.n;
        let deadline = Instant::now() + BARRIER_TIMEOUT;
        let mut touched = Touched::default();
        let mut deferred = Vec::new();
        let mut batch = Vec::new();
        let mut reconcile = false;
        let arrived = loop {
            let msg = match self.inbox.pop_front() {
                Some(m) => m,
                None => {
                    if !batch.is_empty() {
                        self.apply_batch(std::mem::take(&mut batch));
                    }
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(wait) {
                        Ok(m) => m,
                        Err(_) => break false,
                    }
                }
            };
            match msg {
                Msg::Events(v, at) => {
                    let v = self.take_ops(v);
                    // A sync's cookie waits for the end of the scan (its `sync` must not
                    // return while the scan has files left to settle): it goes back to
                    // the inbox, in its place among the messages that follow.
                    let (held, v): (Vec<Op>, Vec<Op>) = v.into_iter().partition(|o| {
                        syncs == Syncs::Hold && matches!(o, Op::Cookie(m) if *m != n)
                    });
                    if !held.is_empty() {
                        deferred.push(Msg::Events(held, at));
                    }
                    self.inflight += v.len() as u64;
                    let hit = v.contains(&Op::Cookie(n));
                    for op in &v {
                        touched.note(op);
                    }
                    batch.extend(v.into_iter().map(|o| (o, at)));
                    if hit || batch.len() >= MAX_BATCH {
                        self.apply_batch(std::mem::take(&mut batch));
                    }
                    if hit {
                        break true;
                    }
                }
                other => {
                    reconcile |= matches!(other, Msg::Reconcile(_));
                    deferred.push(other);
                }
            }
        };
        self.apply_batch(batch);
        self.cookies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&n);
        cookie.remove();
        for m in deferred.into_iter().rev() {
            self.inbox.push_front(m);
        }
        if !arrived {
            tracing::warn!(
                secs = BARRIER_TIMEOUT.as_secs(),
                "the scan's barrier cookie did not come back"
            );
        }
        (arrived && !reconcile).then_some(touched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_covers_the_path_and_the_directories_above() {
        let mut t = Touched::default();
        t.note(&Op::Rename {
            from: "a/b".into(),
            to: "c".into(),
            dir: true,
        });
        t.note(&Op::Check {
            rel: "x/y.txt".into(),
            compare: Compare::Strict,
        });
        assert!(t.disturbs(Path::new("a/b/f")));
        assert!(t.disturbs(Path::new("c/d/e")));
        assert!(t.disturbs(Path::new("x/y.txt")));
        assert!(!t.disturbs(Path::new("a/bb/f")));
        assert!(!t.disturbs(Path::new("a/f")));
        assert!(!t.disturbs(Path::new("x/y.txt.old")));
    }
}
