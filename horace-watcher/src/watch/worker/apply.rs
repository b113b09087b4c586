//! One batch: resolve where each checked file is at the end of the batch, probe those
//! paths in parallel, then apply every operation in order in one transaction.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use rusqlite::Connection;

use super::{threads, Outcome, Worker, BATCH_SECS, CARRY_FOR, MAX_BATCH};
use crate::catalog::ops;
use crate::now_ns;
use crate::path::{escape, owner_of, unescape};
use crate::scan::{par_map, Compare, Probe};
use crate::watch::Op;

/// An operation ready for the transaction.
#[derive(Debug)]
pub(super) enum Item {
    /// Apply the probe of a path.
    Check(PathBuf, Probe),
    /// A rename.
    Rename(PathBuf, PathBuf, bool),
    /// A delete or move out.
    Remove(PathBuf, bool),
    /// A sync cookie.
    Cookie(u64),
}

/// What a transaction did.
#[derive(Debug, Default)]
pub(super) struct TxResult {
    pub versions: u64,
    pub deleted: u64,
    pub cookies: Vec<u64>,
    pub unreferenced: Vec<String>,
}

/// Applies `items` in order in one transaction, then prunes the content of the files that
/// got a new version.
pub(super) fn commit(
    conn: &mut Connection,
    items: &[Item],
    keep: u32,
    min_age_ns: i64,
) -> rusqlite::Result<TxResult> {
    let now = now_ns();
    // Immediate: the write lock is taken first, so another writer holding it (a
    // maintenance tool) is waited for (busy timeout) instead of failing the batch when a
    // deferred transaction's read turns into a write.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut r = TxResult::default();
    let mut touched = HashSet::new();
    for item in items {
        match item {
            Item::Check(p, Probe::Hashed(c) | Probe::Unchanged(c)) => {
                let (id, v) = ops::apply_content(&tx, &escape(p), &owner_of(p), c, now)?;
                if let Some(v) = v {
                    r.versions += 1;
                    // Pruning keeps the last `keep` versions: nothing to do below that.
                    if v > i64::from(keep.max(1)) {
                        touched.insert(id);
                    }
                }
            }
            Item::Check(p, Probe::NotRegular) => {
                r.deleted += ops::mark_deleted(&tx, &escape(p), now)?.is_some() as u64;
            }
            Item::Check(..) => {}
            Item::Rename(from, to, false) => {
                ops::rename_file(&tx, &escape(from), &escape(to), &owner_of(to), now)?;
            }
            Item::Rename(from, to, true) => {
                ops::rename_dir(&tx, &escape(from), &escape(to), now)?;
            }
            Item::Remove(p, false) => {
                r.deleted += ops::mark_deleted(&tx, &escape(p), now)?.is_some() as u64
            }
            Item::Remove(p, true) => {
                r.deleted += ops::mark_deleted_under(&tx, &escape(p), now)? as u64
            }
            Item::Cookie(n) => r.cookies.push(*n),
        }
    }
    for id in touched {
        r.unreferenced
            .extend(ops::prune(&tx, id, keep, min_age_ns, now)?);
    }
    tx.commit()?;
    Ok(r)
}

/// Where `p`, checked at position `i`, is after the renames that follow it in the batch.
fn final_path(p: &Path, i: usize, renames: &[(usize, PathBuf, PathBuf, bool)]) -> PathBuf {
    let mut cur = p.to_path_buf();
    for (j, from, to, dir) in renames {
        if *j <= i {
            continue;
        }
        if cur == *from {
            cur = to.clone();
        } else if *dir {
            if let Ok(rest) = cur.strip_prefix(from) {
                cur = to.join(rest);
            }
        }
    }
    cur
}

/// One path to probe in a batch.
struct Job {
    /// The strongest comparison asked for.
    compare: Compare,
    /// The checked paths that end up at this one.
    origins: Vec<PathBuf>,
    /// See [`Op::Recheck`]: `None` when any of them must be read.
    covered_after: Option<i64>,
}

fn stronger(a: Compare, b: Compare) -> Compare {
    match (a, b) {
        (Compare::ForceHere, _) | (_, Compare::ForceHere) => Compare::ForceHere,
        (Compare::Force, _) | (_, Compare::Force) => Compare::Force,
        (Compare::Strict, _) | (_, Compare::Strict) => Compare::Strict,
        (Compare::Relaxed, _) | (_, Compare::Relaxed) => Compare::Relaxed,
        _ => Compare::Attributes,
    }
}

impl Worker {
    /// Directory operations as the files beneath them. The events of a batch are read
    /// some time after they happened, and a probe goes by path:
    ///
    /// - A file probed at a directory's old name after the directory was renamed (its
    ///   rename not read yet) read whatever held that name by then. So with a directory
    ///   rename, each cataloged file beneath is checked at its new path (`Strict`: a stat
    ///   when it is unchanged).
    /// - A directory that left the tree (moved out: an rmdir leaves nothing beneath to
    ///   remove) and whose name holds a directory again by now, typically the same one
    ///   moved back in, does not make its files deleted: each cataloged file beneath is
    ///   checked where it is (unchanged: no history) and only those not there are
    ///   removed. Not when a directory is renamed onto that name later in the batch.
    fn expand_dir_ops(&self, batch: Vec<(Op, Instant)>) -> Vec<(Op, Instant)> {
        if !batch.iter().any(|(o, _)| {
            matches!(
                o,
                Op::Rename { dir: true, .. } | Op::Remove { dir: true, .. }
            )
        }) {
            return batch;
        }
        let back = |i: usize, rel: &Path| {
            let renamed_onto = batch[i + 1..].iter().any(|(o, _)| {
                matches!(o, Op::Rename { to, .. } if rel.starts_with(to) || to.starts_with(rel))
            });
            !renamed_onto
                && std::fs::symlink_metadata(self.prober.root.join(rel)).is_ok_and(|m| m.is_dir())
        };
        let expand: Vec<bool> = batch
            .iter()
            .enumerate()
            .map(|(i, (o, _))| match o {
                Op::Rename { dir: true, .. } => true,
                Op::Remove { rel, dir: true } => back(i, rel),
                _ => false,
            })
            .collect();
        let present_under = |rel: &Path| {
            let dir = escape(rel);
            self.ctx
                .readers
                .with_blocking(move |c| ops::present_under(c, &dir))
                .ok()
                .and_then(Result::ok)
                .map(|v| v.iter().filter_map(|p| unescape(p)).collect::<Vec<_>>())
        };
        let mut out = Vec::with_capacity(batch.len());
        for ((op, at), expand) in batch.into_iter().zip(expand) {
            if !expand {
                out.push((op, at));
                continue;
            }
            match &op {
                Op::Rename { from, to, .. } => {
                    // Checked under the old name ahead of the rename: the probe goes to
                    // where the rename takes it (`final_path`), against the row there now.
                    for rel in present_under(from).unwrap_or_default() {
                        let compare = Compare::Strict;
                        out.push((Op::Check { rel, compare }, at));
                    }
                    let to = to.clone();
                    out.push((op, at));
                    // And what the directory holds now that has no row yet: a file whose
                    // check went by its old name in an earlier batch (written just before
                    // the rename, read after it) found nothing there, or a newcomer, and
                    // its row was never made (kill -9 soak with the load through the
                    // restart: 3 files under just-renamed subdirectories). A file changed
                    // since this listing is left to its own events.
                    let listed_ns = crate::now_ns();
                    let walked = crate::scan::walk(&self.prober.root, &to, &self.ignore, |_| {});
                    for (rel, _) in walked.files {
                        let op = Op::Recheck {
                            rel,
                            covered_after: Some(listed_ns),
                        };
                        out.push((op, at));
                    }
                }
                Op::Remove { rel, .. } => {
                    let Some(beneath) = present_under(rel) else {
                        out.push((op, at));
                        continue;
                    };
                    for path in beneath {
                        let regular = std::fs::symlink_metadata(self.prober.root.join(&path))
                            .is_ok_and(|m| m.is_file());
                        let op = if regular {
                            Op::Check {
                                rel: path,
                                compare: Compare::Strict,
                            }
                        } else {
                            Op::Remove {
                                rel: path,
                                dir: false,
                            }
                        };
                        out.push((op, at));
                    }
                }
                _ => out.push((op, at)),
            }
        }
        out
    }

    /// Probes and commits one batch of operations (plus paths carried over from the last
    /// one); fires the cookies it contains once committed.
    pub(super) fn apply_batch(&mut self, batch: Vec<(Op, Instant)>) -> Outcome {
        let mut outcome = Outcome::default();
        let started = Instant::now();
        let since: HashMap<PathBuf, Instant> = self.carry.drain(..).collect();
        if batch.is_empty() && since.is_empty() {
            return outcome;
        }
        let last_seen = batch.last().map(|(_, at)| *at);
        let batch = self.expand_dir_ops(batch);
        let mut list: Vec<Op> = since
            .keys()
            .map(|p| Op::Check {
                rel: p.clone(),
                compare: Compare::Strict,
            })
            .collect();
        for (op, _) in batch {
            if let Op::Rename {
                from,
                to,
                dir: false,
            } = op
            {
                list.push(Op::Rename {
                    from,
                    to: to.clone(),
                    dir: false,
                });
                list.push(Op::Check {
                    rel: to,
                    compare: Compare::Relaxed,
                });
            } else {
                list.push(op);
            }
        }
        // Every row a probe may compare with (for the check that follows a file rename,
        // the row being renamed, so a rename re-reads nothing).
        let alias: HashMap<PathBuf, PathBuf> = list
            .iter()
            .filter_map(|o| match o {
                Op::Rename {
                    from,
                    to,
                    dir: false,
                } => Some((to.clone(), from.clone())),
                _ => None,
            })
            .collect();
        let wanted: Vec<PathBuf> = list
            .iter()
            .filter_map(|o| match o {
                Op::Check { rel, .. } | Op::Saved { rel, .. } | Op::Recheck { rel, .. } => {
                    Some(rel)
                }
                _ => None,
            })
            .flat_map(|p| [Some(p), alias.get(p)])
            .flatten()
            .cloned()
            .collect();
        let rows = self.lookup_rows(wanted);
        let row_of = |p: &PathBuf| {
            rows.get(p)
                .or_else(|| alias.get(p).and_then(|a| rows.get(a)))
        };
        let prober = &self.prober;
        let checks = list
            .iter()
            .filter(|o| matches!(o, Op::Check { .. } | Op::Saved { .. } | Op::Recheck { .. }))
            .count();
        // A single file is fsynced on its own; a batch is synced at once in `settle`.
        let fsync_each = checks == 1;

        // Pinned saves first, each its own version: the content the reader pinned at the
        // event, whatever the path holds now. One whose descriptor shows a later write
        // began is looked at by path, as without a pin; one that cannot be read goes to
        // the retry queue.
        let saved: Vec<usize> = (0..list.len())
            .filter(|&i| matches!(list[i], Op::Saved { .. }))
            .collect();
        // Stopping (SIGTERM): what is not read yet is left to the next startup scan.
        let pinned_probes = par_map(&saved, threads(), |&i| match &list[i] {
            _ if crate::hash::stopping() => (Probe::Changing, None),
            Op::Saved { rel, compare, pin } => {
                prober.probe_pinned(rel, &pin.0, row_of(rel), *compare, fsync_each)
            }
            _ => unreachable!("only saves"),
        });
        let mut pinned: HashMap<usize, (Probe, Option<(crate::store::TempObject, String)>)> =
            HashMap::new();
        for (i, probe) in saved.into_iter().zip(pinned_probes) {
            if matches!(probe.0, Probe::Changing) {
                if let Op::Saved { rel, compare, .. } = &list[i] {
                    tracing::debug!(path = %rel.display(), "pinned save changed since; looking at the path");
                    list[i] = Op::Check {
                        rel: rel.clone(),
                        compare: *compare,
                    };
                }
            } else {
                pinned.insert(i, probe);
            }
        }

        let renames: Vec<(usize, PathBuf, PathBuf, bool)> = list
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Op::Rename { from, to, dir } => Some((i, from.clone(), to.clone(), *dir)),
                _ => None,
            })
            .collect();
        // Where the last pinned save of each path is: a look at the path before it is
        // left out (the saves after it hold what the path held then, in order); one after
        // it reads what came later.
        let mut last_saved: HashMap<PathBuf, usize> = HashMap::new();
        for &i in pinned.keys() {
            if let Op::Saved { rel, .. } = &list[i] {
                let e = last_saved.entry(final_path(rel, i, &renames)).or_insert(i);
                *e = (*e).max(i);
            }
        }
        // Each final path is probed once, with the strongest comparison asked for, against
        // the row of the first checked path that has one.
        // A path only rechecked from the retry queue may be left to its events (see
        // `Probe::Covered`); one an event asks about is read.
        let mut jobs: HashMap<PathBuf, Job> = HashMap::new();
        let mut finals: Vec<Option<PathBuf>> = Vec::with_capacity(list.len());
        for (i, op) in list.iter().enumerate() {
            let (rel, compare, covered_after) = match op {
                // A file whose last read failed (no permission) is read again at its
                // attribute change: a chmod is how an owner lets the watcher in.
                Op::Check {
                    rel,
                    compare: Compare::Attributes,
                } if self.retries.contains_key(rel) => (rel, Compare::Relaxed, None),
                Op::Check { rel, compare } => (rel, *compare, None),
                Op::Recheck { rel, covered_after } => (rel, Compare::Strict, *covered_after),
                _ => {
                    finals.push(None);
                    continue;
                }
            };
            let f = final_path(rel, i, &renames);
            if last_saved.get(&f).is_some_and(|&s| s > i) {
                finals.push(None);
                continue;
            }
            let e = jobs.entry(f.clone()).or_insert(Job {
                compare,
                origins: Vec::new(),
                covered_after,
            });
            e.compare = stronger(e.compare, compare);
            // Both must allow it; the later time leaves less to the events.
            e.covered_after = e.covered_after.zip(covered_after).map(|(a, b)| a.max(b));
            e.origins.push(rel.clone());
            finals.push(Some(f));
        }
        let jobs: Vec<(PathBuf, Job)> = jobs.into_iter().collect();
        let probes = par_map(&jobs, threads(), |(f, job)| {
            if crate::hash::stopping() {
                return (Probe::Changing, None);
            }
            let row = job.origins.iter().find_map(row_of);
            prober.probe_unsettled(f, row, job.compare, fsync_each, job.covered_after)
        });
        // One settle (one syncfs) for the pinned saves and the paths.
        let pinned_at: Vec<usize> = pinned.keys().copied().collect();
        let mut all: Vec<_> = pinned_at
            .iter()
            .map(|i| pinned.remove(i).expect("pinned probe"))
            .collect();
        all.extend(probes);
        let mut probes = prober.settle(all);
        let n_pinned = pinned_at.len();
        let pinned: HashMap<usize, Probe> = pinned_at
            .into_iter()
            .zip(probes.drain(..n_pinned))
            .collect();
        let hashed = probes
            .iter()
            .chain(pinned.values())
            .filter(|p| matches!(p, Probe::Hashed(_)))
            .count() as u64;
        let results: HashMap<PathBuf, (Probe, Vec<PathBuf>)> = jobs
            .into_iter()
            .zip(probes)
            .map(|((f, job), probe)| (f, (probe, job.origins)))
            .collect();

        let mut items = Vec::with_capacity(list.len());
        let mut pinned_ok: Vec<PathBuf> = Vec::new();
        let mut pinned_failed: Vec<(PathBuf, String)> = Vec::new();
        for (i, (op, f)) in list.into_iter().zip(finals).enumerate() {
            items.push(match op {
                Op::Saved { rel, .. } => {
                    let probe = pinned.get(&i).cloned().unwrap_or(Probe::Missing);
                    match &probe {
                        Probe::Hashed(_) | Probe::Unchanged(_) => pinned_ok.push(rel.clone()),
                        Probe::Failed(why) => pinned_failed.push((rel.clone(), why.clone())),
                        _ => {}
                    }
                    Item::Check(rel, probe)
                }
                Op::Check { rel, .. } | Op::Recheck { rel, .. } => {
                    // Left out: a pinned save of the path follows.
                    let Some(f) = f else { continue };
                    let probe = results
                        .get(&f)
                        .map(|r| r.0.clone())
                        .unwrap_or(Probe::Missing);
                    Item::Check(rel, probe)
                }
                Op::Rename { from, to, dir } => Item::Rename(from, to, dir),
                Op::Remove { rel, dir } => Item::Remove(rel, dir),
                Op::Cookie(n) => Item::Cookie(n),
            });
        }
        let keep = self.versions.keep;
        let min_age_ns = self.min_age_ns();
        let items = std::sync::Arc::new(items);
        let shared = items.clone();
        let committed = self
            .ctx
            .writer
            .exec_blocking(move |c| commit(c, &shared, keep, min_age_ns));
        let tx = match committed {
            Ok(Ok(tx)) => tx,
            Ok(Err(e)) => {
                tracing::error!(cause = %e, "catalog transaction failed ({e}); the batch will be retried");
                // Pinned saves too: read again by path (what pins existed for is lost).
                for f in results.into_keys().chain(pinned_ok) {
                    self.note_failure(&f, &format!("catalog: {e}"));
                }
                return outcome;
            }
            Err(e) => {
                tracing::error!(cause = %e, "catalog writer is gone: {e}");
                return outcome;
            }
        };
        for sha in &tx.unreferenced {
            self.prober.objects.remove(sha);
        }
        for rel in pinned_ok {
            self.note_success(&rel);
        }
        for (rel, why) in pinned_failed {
            self.note_failure(&rel, &why);
        }
        let now = Instant::now();
        for (f, (probe, origins)) in results {
            let why = match probe {
                Probe::Hashed(_) | Probe::Unchanged(_) | Probe::Covered => {
                    self.note_success(&f);
                    continue;
                }
                Probe::NotRegular => {
                    self.note_success(&f);
                    "not a regular file".to_string()
                }
                Probe::Missing => {
                    let first = origins.iter().filter_map(|p| since.get(p)).min().copied();
                    let first = first.unwrap_or(now);
                    if now - first < CARRY_FOR {
                        self.carry.push((f.clone(), first));
                    }
                    self.note_success(&f);
                    "no such file".to_string()
                }
                Probe::Changing => {
                    self.note_changing(&f);
                    continue;
                }
                Probe::InLane => {
                    self.note_in_lane(&f);
                    continue;
                }
                Probe::Failed(why) => {
                    self.note_failure(&f, &why);
                    why
                }
            };
            for p in origins {
                outcome.problems.insert(p, why.clone());
            }
        }
        let st = &self.ctx.status;
        let done = std::mem::take(&mut self.inflight);
        self.backlog.committed(done);
        // The next batch of events: about BATCH_SECS at this one's rate.
        if items.len() >= 64 {
            let rate = items.len() as f64 / started.elapsed().as_secs_f64().max(1e-3);
            self.batch_limit = ((rate * BATCH_SECS) as usize).clamp(128, MAX_BATCH);
        }
        let _ = st
            .queue_depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_sub(done))
            });
        st.versions_cataloged
            .fetch_add(tx.versions, Ordering::Relaxed);
        st.files_hashed.fetch_add(hashed, Ordering::Relaxed);
        if let Some(at) = last_seen {
            st.event_lag_us
                .store(at.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        tracing::debug!(
            ops = items.len(),
            hashed,
            versions = tx.versions,
            deleted = tx.deleted,
            "batch committed"
        );
        self.fire_cookies(tx.cookies);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_path_follows_later_renames_only() {
        let r = vec![
            (1, PathBuf::from("a"), PathBuf::from("b"), true),
            (3, PathBuf::from("b/x"), PathBuf::from("c"), false),
        ];
        assert_eq!(final_path(Path::new("a/x"), 0, &r), PathBuf::from("c"));
        assert_eq!(final_path(Path::new("a/y"), 0, &r), PathBuf::from("b/y"));
        assert_eq!(final_path(Path::new("a/x"), 2, &r), PathBuf::from("a/x"));
        assert_eq!(final_path(Path::new("ab/x"), 0, &r), PathBuf::from("ab/x"));
        assert_eq!(stronger(Compare::Relaxed, Compare::Strict), Compare::Strict);
        assert_eq!(
            stronger(Compare::Attributes, Compare::Relaxed),
            Compare::Relaxed
        );
        assert_eq!(
            stronger(Compare::Attributes, Compare::Force),
            Compare::Force
        );
        assert_eq!(
            stronger(Compare::Attributes, Compare::Attributes),
            Compare::Attributes
        );
    }
}
