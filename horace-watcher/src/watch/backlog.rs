//! The bound on the watch loop's queue (issue 12 item 6).
//!
//! The reader turns events into operations as fast as the kernel gives them; the loop
//! catalogs them as fast as it can hash and commit. One tenant creating files without end
//! outruns the loop, and an unbounded queue then delays every other tenant's `sync` (its
//! cookie waits behind the flood) and grows the watcher's memory without limit.
//!
//! So the operations pass a triage thread between the reader and the loop, which counts
//! the operations admitted and not yet committed (`Status::queue_depth`). Past
//! [`BOUND`] the owner (top-level directory) with the most operations admitted lately is
//! *flooded*: from then on its operations are dropped — by the triage as they come, by
//! the loop for those already admitted — and counted, and the loop reconciles that
//! subtree by a scan instead (`worker::reconcile`, scope [`Scope::Subtree`]), in rounds:
//! a round that ends (after a barrier) with nothing dropped while it ran brings the
//! subtree back to events; otherwise another round follows. Between the chunks of a round
//! the loop serves the other owners' operations and syncs, so a flood delays them by one
//! chunk at most; a sync meanwhile lists the flooded subtree as `reconciling`.
//!
//! A rename that crosses the edge of a flooded subtree is not dropped: out of it, the
//! destination becomes a flooded subtree of its own (reconciled the same way: the rows
//! that left may hold files never cataloged); into it, the row moves (one history) and the
//! subtree gets another round.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Msg, Op};
use crate::Context;

/// Operations admitted and not yet committed, at most (what one batch holds).
pub const BOUND: u64 = 4096;
/// How far behind the loop may fall (the oldest operation admitted and not committed)…
pub const LAG_BOUND: Duration = Duration::from_secs(2);
/// …with more than this many operations queued: what a slow disk or a busy machine
/// catalogs in a few seconds is the bound there (debug build, 2 busy cores: ~300 small
/// files/s, so 4,096 would have been 13 s).
const LAG_FLOOR: u64 = 256;

/// What a subtree's reconcile covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole tree (startup, kernel queue overflow, rollback…).
    Tree,
    /// One subtree (relative path), flooded.
    Subtree(PathBuf),
}

/// One flooded subtree.
#[derive(Debug, Default, Clone)]
struct Flood {
    /// Operations dropped since its current round began.
    dropped: u64,
    /// Operations dropped since it was flooded.
    dropped_total: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Operations admitted per owner since the queue was last below half the bound.
    recent: HashMap<OsString, u64>,
    /// The flooded subtrees.
    flooded: BTreeMap<PathBuf, Flood>,
    /// When the operations admitted and not yet committed were read, oldest first, with
    /// how many each time.
    queued: VecDeque<(Instant, u64)>,
    /// When an owner was last flooded: the queue then still holds its operations (the
    /// loop drops them as it takes them), so the next is flooded only a while after.
    last_flood: Option<Instant>,
}

/// The shared view of the bound: the triage admits, the loop sifts what it takes and runs
/// the rounds.
#[derive(Debug, Default)]
pub struct Backlog {
    state: Mutex<State>,
}

/// The owner of `rel`: its first component when below it; `None` for the root's own
/// entries.
fn owner(rel: &Path) -> Option<OsString> {
    let mut c = rel.components();
    match (c.next(), c.next()) {
        (Some(Component::Normal(first)), Some(_)) => Some(first.to_os_string()),
        _ => None,
    }
}

/// The paths an operation is about.
fn paths(op: &Op) -> (&Path, Option<&Path>) {
    match op {
        Op::Check { rel, .. }
        | Op::Saved { rel, .. }
        | Op::Recheck { rel, .. }
        | Op::Remove { rel, .. } => (rel, None),
        Op::Rename { from, to, .. } => (from, Some(to)),
        Op::Cookie(_) => (Path::new(""), None),
    }
}

/// Whether `op` touches `scope` (a path under it, or a rename from or to it).
pub fn touches(op: &Op, scope: &Path) -> bool {
    if matches!(op, Op::Cookie(_)) {
        return false;
    }
    let (a, b) = paths(op);
    a.starts_with(scope) || b.is_some_and(|b| b.starts_with(scope))
}

impl State {
    /// The flooded subtree holding `rel`, if any.
    fn flooded_at(&self, rel: &Path) -> Option<PathBuf> {
        rel.ancestors()
            .find(|a| !a.as_os_str().is_empty() && self.flooded.contains_key(*a))
            .map(Path::to_path_buf)
    }

    fn bump(&mut self, key: &Path) {
        if let Some(f) = self.flooded.get_mut(key) {
            f.dropped += 1;
            f.dropped_total += 1;
        }
    }

    /// Drops the operations of flooded subtrees from `ops`; returns the subtrees flooded
    /// by a rename out of one, and how many were dropped.
    fn sift<T>(
        &mut self,
        ops: &mut Vec<T>,
        op_of: impl Fn(&mut T) -> &mut Op,
    ) -> (Vec<PathBuf>, u64) {
        if self.flooded.is_empty() {
            return (Vec::new(), 0);
        }
        let mut new = Vec::new();
        let before = ops.len();
        ops.retain_mut(|item| {
            let op = op_of(item);
            if matches!(op, Op::Cookie(_)) {
                return true;
            }
            let (a, b) = paths(op);
            let fa = self.flooded_at(a);
            let fb = b.and_then(|b| self.flooded_at(b));
            match (fa, fb, b) {
                (None, None, _) | (None, Some(_), None) => true,
                // Within flooded subtrees: the scan finds it.
                (Some(k), _, None) | (Some(k), Some(_), Some(_)) => {
                    self.bump(&k);
                    false
                }
                // A file out of a flooded subtree: read at its new name (the row left
                // at the old one is the subtree's scan's to settle).
                (Some(k), None, Some(to)) if matches!(op, Op::Rename { dir: false, .. }) => {
                    let to = to.to_path_buf();
                    self.bump(&k);
                    *op = Op::Check {
                        rel: to,
                        compare: crate::scan::Compare::Strict,
                    };
                    true
                }
                // A directory out of one: the rows (if any) move; what it holds is
                // reconciled like the subtree.
                (Some(k), None, Some(to)) => {
                    let to = to.to_path_buf();
                    self.bump(&k);
                    if !self.flooded.contains_key(&to) {
                        self.flooded.insert(to.clone(), Flood::default());
                        new.push(to);
                    }
                    true
                }
                // Into one: the row moves; the subtree gets another round.
                (None, Some(k), Some(_)) => {
                    self.bump(&k);
                    true
                }
            }
        });
        (new, (before - ops.len()) as u64)
    }
}

impl Backlog {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the operations of flooded subtrees from `ops` (the loop, for those admitted
    /// before their subtree was flooded); returns the subtrees newly flooded and how many
    /// were dropped.
    pub fn sift<T>(
        &self,
        ops: &mut Vec<T>,
        op_of: impl Fn(&mut T) -> &mut Op,
    ) -> (Vec<PathBuf>, u64) {
        self.state().sift(ops, op_of)
    }

    /// `n` operations admitted earliest were committed or dropped by the loop.
    pub fn committed(&self, mut n: u64) {
        let mut st = self.state();
        while n > 0 {
            let Some(front) = st.queued.front_mut() else {
                return;
            };
            if front.1 > n {
                front.1 -= n;
                return;
            }
            n -= front.1;
            st.queued.pop_front();
        }
    }

    /// The triage of one message of operations: drops those of flooded subtrees, counts
    /// the rest by owner, and floods the busiest owner when the queue (`depth`, the
    /// admitted ones included) is past [`BOUND`], or the loop is more than [`LAG_BOUND`]
    /// behind. Returns the subtrees newly flooded and how many were dropped.
    fn admit(&self, ops: &mut Vec<Op>, depth: u64, at: Instant) -> (Vec<PathBuf>, u64) {
        let mut st = self.state();
        let (mut new, mut dropped) = st.sift(ops, |o| o);
        for op in ops.iter() {
            if let Some(o) = owner(paths(op).0) {
                *st.recent.entry(o).or_default() += 1;
            }
        }
        let depth = depth.saturating_sub(dropped);
        let oldest = st.queued.front().map(|(t, _)| *t);
        let lag = oldest
            .max(st.last_flood)
            .map_or(Duration::ZERO, |t| at.saturating_duration_since(t));
        let since_flood = st
            .last_flood
            .map_or(Duration::MAX, |t| at.saturating_duration_since(t));
        let busiest = st
            .recent
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(o, n)| (PathBuf::from(o), *n));
        if depth < LAG_FLOOR / 2 {
            st.recent.clear();
            st.queued.clear();
        } else if since_flood > LAG_BOUND
            && (depth > BOUND || (depth > LAG_FLOOR && lag > LAG_BOUND))
        {
            // Behind for the lag: only an owner with a good part of the queue (a few
            // files of a quiet owner are not what holds it up).
            let by_lag = depth <= BOUND;
            let busiest = busiest.filter(|(_, n)| !by_lag || *n >= LAG_FLOOR / 2);
            if let Some((key, _)) = busiest {
                st.last_flood = Some(at);
                st.recent.remove(key.as_os_str());
                if !st.flooded.contains_key(&key) {
                    tracing::warn!(
                        subtree = %key.display(),
                        depth,
                        lag_ms = lag.as_millis() as u64,
                        "event queue past its bound ({depth} operations, the oldest {} ms old; at most {BOUND} or {} s): {} is reconciled by a scan instead of by its events",
                        lag.as_millis(),
                        LAG_BOUND.as_secs(),
                        crate::path::escape(&key)
                    );
                    st.flooded.insert(key.clone(), Flood::default());
                    new.push(key);
                }
                let (more, n) = st.sift(ops, |o| o);
                new.extend(more);
                dropped += n;
            }
        }
        if !ops.is_empty() {
            st.queued.push_back((at, ops.len() as u64));
        }
        (new, dropped)
    }

    /// Whether `key` is (still) flooded.
    pub fn is_flooded(&self, key: &Path) -> bool {
        self.state().flooded.contains_key(key)
    }

    /// The flooded subtrees containing `rel` or below it (a scan's candidates there are
    /// left to the subtree's own round).
    pub fn covers(&self, rel: &Path) -> bool {
        self.state().flooded_at(rel).is_some()
    }

    /// A round of `key` begins: nothing dropped yet.
    pub fn round_begins(&self, key: &Path) {
        if let Some(f) = self.state().flooded.get_mut(key) {
            f.dropped = 0;
        }
    }

    /// A round of `key` ended after a barrier: if nothing was dropped while it ran, the
    /// subtree is caught up and back to its events (returns true).
    pub fn round_ends(&self, key: &Path) -> bool {
        let mut st = self.state();
        match st.flooded.get(key) {
            Some(f) if f.dropped == 0 => {
                st.flooded.remove(key);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Every flooded subtree with the operations dropped since it was flooded (a sync's
    /// report).
    pub fn flooded(&self) -> Vec<(PathBuf, u64)> {
        self.state()
            .flooded
            .iter()
            .map(|(k, f)| (k.clone(), f.dropped_total))
            .collect()
    }

    /// Forgets every flooded subtree (a reconcile of the whole tree covers them).
    pub fn clear(&self) {
        let mut st = self.state();
        st.flooded.clear();
        st.recent.clear();
    }
}

/// The triage thread: forwards the reader's messages to the loop, operations through
/// [`Backlog::admit`]; a newly flooded subtree becomes a [`Msg::Subtree`] after the
/// message that flooded it. Ends when the reader's side closes.
pub fn triage(rx: Receiver<Msg>, tx: Sender<Msg>, backlog: Arc<Backlog>, ctx: Arc<Context>) {
    let status = &ctx.status;
    for msg in rx {
        let msg = match msg {
            Msg::Events(mut ops, at) => {
                let depth = status.queue_depth.load(Ordering::Relaxed);
                let (new, dropped) = backlog.admit(&mut ops, depth, at);
                if dropped > 0 {
                    let _ = status.queue_depth.fetch_update(
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                        |d| Some(d.saturating_sub(dropped)),
                    );
                }
                if !ops.is_empty() && tx.send(Msg::Events(ops, at)).is_err() {
                    return;
                }
                for key in new {
                    if tx.send(Msg::Subtree(key)).is_err() {
                        return;
                    }
                }
                continue;
            }
            other => other,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Compare;

    fn check(p: &str) -> Op {
        Op::Check {
            rel: p.into(),
            compare: Compare::Strict,
        }
    }

    fn rename(from: &str, to: &str, dir: bool) -> Op {
        Op::Rename {
            from: from.into(),
            to: to.into(),
            dir,
        }
    }

    #[test]
    fn the_busiest_owner_is_flooded_past_the_bound_and_its_operations_dropped() {
        let b = Backlog::default();
        let mut ops: Vec<Op> = (0..100).map(|i| check(&format!("a/f{i}"))).collect();
        ops.push(check("b/x"));
        ops.push(Op::Cookie(7));
        let t = Instant::now();
        let (new, dropped) = b.admit(&mut ops, 10, t);
        assert!(new.is_empty() && dropped == 0 && ops.len() == 102);
        let mut more: Vec<Op> = (0..50).map(|i| check(&format!("a/g{i}"))).collect();
        more.push(check("b/y"));
        let (new, dropped) = b.admit(&mut more, BOUND + 1, t);
        assert_eq!(new, [PathBuf::from("a")]);
        assert_eq!(dropped, 50);
        assert_eq!(more, [check("b/y")]);
        // The loop drops what was admitted before; a cookie always passes.
        let (_, n) = b.sift(&mut ops, |o| o);
        assert_eq!(n, 100);
        assert_eq!(ops, [check("b/x"), Op::Cookie(7)]);
        assert!(b.covers(Path::new("a/f1")) && !b.covers(Path::new("ab/f1")));
        assert_eq!(b.flooded(), [(PathBuf::from("a"), 150)]);
    }

    #[test]
    fn renames_across_the_edge_are_kept_and_a_round_with_drops_is_not_the_last() {
        let b = Backlog::default();
        b.state().flooded.insert("a".into(), Flood::default());
        b.round_begins(Path::new("a"));
        let mut ops = vec![
            rename("a/d", "b/e", true),
            rename("c/x", "a/x", false),
            rename("a/p", "a/q", false),
        ];
        let (new, dropped) = b.sift(&mut ops, |o| o);
        assert_eq!(new, [PathBuf::from("b/e")]);
        assert_eq!(dropped, 1);
        assert_eq!(
            ops,
            [rename("a/d", "b/e", true), rename("c/x", "a/x", false)]
        );
        assert!(!b.round_ends(Path::new("a")), "three dropped or moved");
        b.round_begins(Path::new("a"));
        assert!(b.round_ends(Path::new("a")));
        assert!(!b.is_flooded(Path::new("a")));
        assert!(b.is_flooded(Path::new("b/e")));
        b.clear();
        assert!(b.flooded().is_empty());
    }
}
