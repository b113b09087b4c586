//! The watch loop: the one owner of cataloging. It runs the reconcile scans, batches the
//! reader's operations (hash in parallel, then one transaction per batch), keeps the retry
//! queue, answers sync cookies, register and restore, and prunes the content store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use horace_client::{Missing, NotCataloged, SyncReport};
use rusqlite::Connection;

use super::backlog::{self, Backlog, Scope};
use super::map::WatchMap;
use super::{Msg, Op, WatchError};
use crate::catalog::ops::{self, Row};
use crate::config::VersionsConfig;
use crate::path::escape;
use crate::scan::{Compare, Ignore, Prober};
use crate::store::Objects;
use crate::Context;

/// Probe threads: four per core. A probe mostly waits on I/O (copy_file_range into the
/// store, fsync of the object); hashing itself (SHA-NI, ~1 GB/s per core) is bounded by the
/// cores anyway. Measured on 2 cores, 1,000 × 64 KiB on ext4: 2 threads 508 files/s,
/// 8 threads 2,900–4,100 files/s.
fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 4)
        .clamp(2, 16)
}
/// Operations per batch at most.
const MAX_BATCH: usize = 4096;
/// How long a batch of events should take (see `Worker::batch_limit`).
const BATCH_SECS: f64 = 1.0;
/// How long a path that vanished before it was read is looked at again (its rename or
/// delete event is already queued by then).
const CARRY_FOR: Duration = Duration::from_secs(2);
/// How long the loop goes on cataloging what is queued once asked to stop (SIGTERM); the
/// rest is left to the next startup scan (nothing committed is lost).
const DRAIN_FOR: Duration = Duration::from_secs(2);
/// Rescan interval while some directory could not be watched.
const UNWATCHED_RESCAN: Duration = Duration::from_secs(300);
/// WAL size above which the loop forces a checkpoint that truncates the log. Query
/// readers that never pause starve SQLite's automatic (PASSIVE) checkpoints, and the WAL
/// then grows without bound (460 MiB after 120 s of mixed load in the reliability load
/// test, with query latency going up with it).
const WAL_LIMIT: u64 = 64 << 20;

mod apply;
mod budget;
mod lane;
mod reconcile;
mod restore;
mod retry;
mod settle;

pub(super) struct Parts {
    pub ctx: Arc<Context>,
    pub objects: Objects,
    pub map: Arc<WatchMap>,
    pub ignore: Ignore,
    pub rx: Receiver<Msg>,
    pub cookies: Arc<super::cookie::Syncs>,
    pub rt: tokio::runtime::Handle,
    pub unwatched: Arc<AtomicBool>,
    pub reader_stop: Arc<AtomicBool>,
    pub reader_thread: std::thread::JoinHandle<()>,
    pub triage_thread: std::thread::JoinHandle<()>,
    pub backlog: Arc<Backlog>,
    pub scan_epoch: Arc<AtomicU64>,
}

pub(super) struct Worker {
    ctx: Arc<Context>,
    prober: Prober,
    map: Arc<WatchMap>,
    ignore: Ignore,
    rx: Receiver<Msg>,
    cookies: Arc<super::cookie::Syncs>,
    rt: tokio::runtime::Handle,
    unwatched: Arc<AtomicBool>,
    reader_stop: Arc<AtomicBool>,
    reader_thread: Option<std::thread::JoinHandle<()>>,
    triage_thread: Option<std::thread::JoinHandle<()>>,
    /// The queue's bound and the subtrees flooded past it (see `backlog.rs`).
    backlog: Arc<Backlog>,
    retries: BTreeMap<PathBuf, retry::Retry>,
    carry: Vec<(PathBuf, Instant)>,
    root_dev: u64,
    /// While the files root is away (unmounted): the device its path showed then. A
    /// different device at that path later means it was mounted again.
    root_away: Option<u64>,
    last_rescan: Instant,
    /// Operations received from the reader and not yet committed (for queue_depth).
    inflight: u64,
    /// `[versions]` in force (reloadable).
    versions: VersionsConfig,
    /// Odd while a reconcile scan lists and reads the tree (the reader then lists the
    /// destination of every directory rename again; see `reader::ListingWindow`).
    scan_epoch: Arc<AtomicU64>,
    /// Messages taken from `rx` and not handled yet (a scan's barrier applies the events
    /// that follow it first), in order.
    inbox: VecDeque<Msg>,
    /// While stopping: until when what is queued is still cataloged.
    drain_until: Option<Instant>,
    /// Operations left to the next startup scan at the stop.
    left_at_stop: u64,
    /// Operations per batch of events now: about [`BATCH_SECS`] of the last batch's rate
    /// (a sync's cookie waits for the batch being committed).
    pub(super) batch_limit: usize,
}

fn dev_of(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map(|m| m.dev()).unwrap_or(0)
}

impl Worker {
    pub(super) fn new(p: Parts) -> Self {
        let root = p.ctx.config.files_root.clone();
        let prober = Prober {
            root: root.clone(),
            objects: p.objects,
            max_stored: p.ctx.config.versions.max_stored_file_size,
            lane: crate::scan::Lane::default(),
            lane_from: p.ctx.config.versions.lane_file_size,
        };
        crate::store::budget().configure(&p.ctx.config.versions);
        Self {
            prober,
            map: p.map,
            ignore: p.ignore,
            rx: p.rx,
            cookies: p.cookies,
            rt: p.rt,
            unwatched: p.unwatched,
            reader_stop: p.reader_stop,
            reader_thread: Some(p.reader_thread),
            triage_thread: Some(p.triage_thread),
            backlog: p.backlog,
            retries: BTreeMap::new(),
            carry: Vec::new(),
            root_dev: dev_of(&root),
            root_away: None,
            last_rescan: Instant::now(),
            inflight: 0,
            versions: p.ctx.config.versions.clone(),
            scan_epoch: p.scan_epoch,
            inbox: VecDeque::new(),
            drain_until: None,
            left_at_stop: 0,
            batch_limit: MAX_BATCH,
            ctx: p.ctx,
        }
    }

    /// Runs the startup scan, then the loop until a shutdown message.
    pub(super) fn run(mut self) {
        self.recount_store_budget();
        self.reconcile("startup", &Scope::Tree);
        self.collect_garbage();
        self.ctx.status.ready.store(true, Ordering::Relaxed);
        let files = self
            .ctx
            .readers
            .with_blocking(|c| {
                c.query_row(
                    "SELECT count(*) FROM files WHERE status != 'deleted'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0)
            })
            .unwrap_or(0);
        let line = format!("Watching {} files in {} directories", files, self.map.len());
        tracing::info!(files = files, dirs = self.map.len(), "caught up; watching");
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&line),
        ]);
        loop {
            let timeout = self
                .next_due()
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let mut msgs: Vec<Msg> = self.inbox.drain(..).collect();
            if msgs.is_empty() {
                match self.rx.recv_timeout(timeout) {
                    Ok(m) => msgs.push(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            while msgs.len() < 256 {
                match self.rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
            if self.process(msgs) {
                // Drain what is queued (bounded: see `backlog.rs`), then stop.
                self.drain_until = Some(Instant::now() + DRAIN_FOR);
                self.stop_reading();
                let mut rest: Vec<Msg> = self.inbox.drain(..).collect();
                rest.extend(self.rx.try_iter());
                self.process(rest);
                if self.left_at_stop > 0 {
                    tracing::info!(
                        ops = self.left_at_stop,
                        "stopping: {} queued operations left to the next startup scan",
                        self.left_at_stop
                    );
                }
                break;
            }
        }
        self.stop_reading();
        // Waiting sync calls learn that the watcher stopped.
        self.cookies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        tracing::info!("watch loop stopped");
    }

    /// Stops the reader and then the triage (which ends once the reader's side closes):
    /// every operation read is in the loop's channel after.
    fn stop_reading(&mut self) {
        self.reader_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.reader_thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.triage_thread.take() {
            let _ = t.join();
        }
    }

    /// The operations of one message as the loop takes them: those of flooded subtrees
    /// dropped (and taken off the queue depth); a subtree flooded by a rename out of
    /// another gets its round after what is queued now.
    pub(super) fn take_ops(&mut self, mut v: Vec<Op>) -> Vec<Op> {
        self.sift_queued(&mut v, |o| o);
        v
    }

    /// Drops the operations of flooded subtrees from `items`; returns how many.
    fn sift_queued<T>(&mut self, items: &mut Vec<T>, op_of: impl Fn(&mut T) -> &mut Op) -> u64 {
        let (new, dropped) = self.backlog.sift(items, op_of);
        if dropped > 0 {
            let _ = self.ctx.status.queue_depth.fetch_update(
                Ordering::Relaxed,
                Ordering::Relaxed,
                |d| Some(d.saturating_sub(dropped)),
            );
            self.backlog.committed(dropped);
        }
        self.inbox.extend(new.into_iter().map(Msg::Subtree));
        dropped
    }

    /// One round of a flooded subtree: a scan of it, then a barrier; caught up when
    /// nothing of it was dropped meanwhile, else another round after what is queued.
    fn flood_round(&mut self, key: PathBuf) {
        if crate::hash::stopping() || !self.backlog.is_flooded(&key) {
            return;
        }
        self.backlog.round_begins(&key);
        self.reconcile("queue-bound", &Scope::Subtree(key.clone()));
        if crate::hash::stopping() {
            return;
        }
        let barrier = self.barrier(settle::Syncs::Pass).is_some();
        if barrier && self.backlog.round_ends(&key) {
            tracing::info!(subtree = %key.display(), "flooded subtree {} caught up; back to its events", escape(&key));
        } else {
            self.inbox.push_back(Msg::Subtree(key));
        }
    }

    /// Between the chunks of a subtree's round: applies what waits for the rest of the
    /// tree (answering its syncs and registers), up to a batch, and stops at the first
    /// message that touches `scope` or is something else (those wait for the round's end,
    /// in order). Returns [`Round::Abandon`] when a reconcile of the whole tree waits
    /// (events were lost: it covers the subtree).
    pub(super) fn serve_others(&mut self, scope: &Path) -> Round {
        let mut batch = Vec::new();
        let mut later = Vec::new();
        while batch.len() < self.batch_limit {
            let msg = match self.inbox.pop_front() {
                Some(m) => m,
                None => match self.rx.try_recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            match msg {
                Msg::Events(v, at) => {
                    let v = self.take_ops(v);
                    if v.iter().any(|op| backlog::touches(op, scope)) {
                        self.inbox.push_front(Msg::Events(v, at));
                        break;
                    }
                    self.inflight += v.len() as u64;
                    batch.extend(v.into_iter().map(|o| (o, at)));
                }
                // Another flooded subtree: its turn comes after this round.
                Msg::Subtree(k) => later.push(Msg::Subtree(k)),
                Msg::Register(rel, reply) if !rel.starts_with(scope) => {
                    if !batch.is_empty() {
                        self.apply_batch(std::mem::take(&mut batch));
                    }
                    let _ = reply.send(self.register(&rel));
                }
                other => {
                    let abandon = matches!(other, Msg::Reconcile(_));
                    self.inbox.push_front(other);
                    if abandon {
                        self.inbox.extend(later);
                        self.apply_batch(batch);
                        return Round::Abandon;
                    }
                    break;
                }
            }
        }
        self.inbox.extend(later);
        if !batch.is_empty() {
            self.apply_batch(batch);
        }
        Round::GoOn
    }

    /// Handles messages in order; returns whether a shutdown was asked for.
    fn process(&mut self, msgs: Vec<Msg>) -> bool {
        let mut ops: Vec<(Op, Instant)> = Vec::new();
        let mut shutdown = false;
        // One reconcile covers every earlier request: run only the last one.
        let last_reconcile = msgs.iter().rposition(|m| matches!(m, Msg::Reconcile(_)));
        let mut msgs = msgs.into_iter().enumerate();
        while let Some((i, m)) = msgs.next() {
            match m {
                Msg::Reconcile(reason) if Some(i) != last_reconcile => {
                    tracing::debug!(reason, "reconcile request folded into a later one");
                }
                Msg::Events(v, _) if self.drain_until.is_some_and(|d| Instant::now() >= d) => {
                    self.left_at_stop += v.len() as u64;
                }
                Msg::Events(v, at) => {
                    let v = self.take_ops(v);
                    self.inflight += v.len() as u64;
                    ops.extend(v.into_iter().map(|o| (o, at)));
                    // Smaller batches while stopping: the drain's deadline is looked at
                    // between them.
                    let limit = if self.drain_until.is_some() {
                        MAX_BATCH / 8
                    } else {
                        self.batch_limit
                    };
                    while ops.len() >= limit {
                        let rest = ops.split_off(limit);
                        let waiting = rest.len() as u64;
                        self.inflight = self.inflight.saturating_sub(waiting);
                        self.apply_batch(std::mem::replace(&mut ops, rest));
                        self.inflight += waiting;
                        // What waits may be of a subtree flooded meanwhile.
                        let dropped = self.sift_queued(&mut ops, |(o, _)| o);
                        self.inflight = self.inflight.saturating_sub(dropped);
                    }
                }
                other => {
                    self.apply_batch(std::mem::take(&mut ops));
                    match other {
                        Msg::Reconcile(reason) => {
                            // Later messages go first to the inbox: the scan's barrier
                            // applies the events among them in order.
                            let rest: Vec<Msg> = msgs.by_ref().map(|(_, m)| m).collect();
                            for m in rest.into_iter().rev() {
                                self.inbox.push_front(m);
                            }
                            self.reconcile(&reason, &Scope::Tree);
                        }
                        Msg::Subtree(key) => {
                            // As above: what follows is served between its chunks.
                            let rest: Vec<Msg> = msgs.by_ref().map(|(_, m)| m).collect();
                            for m in rest.into_iter().rev() {
                                self.inbox.push_front(m);
                            }
                            self.flood_round(key);
                        }
                        Msg::Register(rel, reply) => {
                            let _ = reply.send(self.register(&rel));
                        }
                        Msg::Restore(id, v, reply) => {
                            let _ = reply.send(self.restore(id, v));
                        }
                        Msg::Reload(config) => self.reload(&config),
                        Msg::Shutdown => shutdown = true,
                        Msg::Events(..) => unreachable!("handled above"),
                    }
                }
            }
        }
        self.wake_lane_finished();
        let now = Instant::now();
        let due = self.retries.iter().filter(|(_, r)| r.due <= now);
        ops.extend(due.map(|(p, r)| {
            let op = Op::Recheck {
                rel: p.clone(),
                covered_after: r.covered_after,
            };
            (op, now)
        }));
        self.apply_batch(ops);
        // After an unmount nothing reports the remount (the watches went with the old
        // mount): look once per loop tick, and reconcile (re-adding the watches) when the
        // root's path shows another device again.
        if let Some(away_dev) = self.root_away {
            let root = &self.ctx.config.files_root;
            if root.is_dir() && dev_of(root) != away_dev {
                tracing::warn!(root = %root.display(), "the files root {} is back; reconciling", root.display());
                self.reconcile("remount", &Scope::Tree);
            }
        }
        self.bound_wal();
        self.recount_store_budget();
        if self.unwatched.load(Ordering::Relaxed) && self.last_rescan.elapsed() >= UNWATCHED_RESCAN
        {
            self.unwatched.store(false, Ordering::Relaxed);
            self.reconcile("watch-failure", &Scope::Tree);
        }
        shutdown
    }

    /// Truncates the WAL when it outgrew [`WAL_LIMIT`]: `wal_checkpoint(TRUNCATE)` waits
    /// (busy timeout) for the readers still on the old log, new readers read the database.
    fn bound_wal(&self) {
        let mut wal = crate::catalog::catalog_path(&self.ctx.config.metadata_dir).into_os_string();
        wal.push("-wal");
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if size <= WAL_LIMIT {
            return;
        }
        let r = self.ctx.writer.exec_blocking(|c| {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
        });
        match r {
            Ok(Ok((0, _, _))) => tracing::info!(
                wal_bytes = size,
                "WAL over its limit: checkpointed and truncated"
            ),
            Ok(Ok((_, log, done))) => tracing::warn!(
                wal_bytes = size,
                frames = log,
                checkpointed = done,
                "WAL over its limit and readers kept it busy; trying again next tick"
            ),
            Ok(Err(e)) => {
                tracing::warn!(wal_bytes = size, cause = %e, "WAL checkpoint failed: {e}")
            }
            Err(e) => tracing::warn!(cause = %e, "WAL checkpoint: writer gone: {e}"),
        }
    }

    /// Applies the reloadable settings (ignore patterns, `[versions]`).
    fn reload(&mut self, config: &crate::Config) {
        match Ignore::new(&config.ignore_patterns()) {
            Ok(ignore) => self.ignore.replace_with(&ignore),
            Err(e) => {
                tracing::error!(cause = %e, "reload: invalid ignore pattern ({e}); keeping the old settings");
                return;
            }
        }
        self.versions = config.versions.clone();
        self.prober.max_stored = config.versions.max_stored_file_size;
        self.prober.lane_from = config.versions.lane_file_size;
        crate::store::budget().configure(&config.versions);
        tracing::info!(ignore = ?config.ignore_patterns(), versions = ?config.versions, "configuration reloaded (ignore patterns and versions)");
    }

    /// How long a version's content is kept at least, in ns.
    fn min_age_ns(&self) -> i64 {
        i64::from(self.versions.min_age_days) * 86_400 * 1_000_000_000
    }

    fn next_due(&self) -> Instant {
        let mut next = Instant::now() + Duration::from_secs(1);
        for r in self.retries.values() {
            next = next.min(r.due);
        }
        if !self.carry.is_empty() {
            next = next.min(Instant::now() + Duration::from_millis(100));
        }
        next
    }

    fn register(&mut self, rel: &Path) -> Result<i64, WatchError> {
        let esc = escape(rel);
        let bad = |why: &str| WatchError::Catalog {
            path: esc.clone(),
            why: why.to_string(),
        };
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(bad("not a plain relative path"));
        }
        if rel.file_name().is_some_and(|n| self.ignore.is_ignored(n)) {
            return Err(bad("the name matches an ignore pattern"));
        }
        let outcome = self.apply_batch(vec![(
            Op::Check {
                rel: rel.to_path_buf(),
                compare: Compare::Strict,
            },
            Instant::now(),
        )]);
        if let Some(why) = outcome.problems.get(rel) {
            return Err(bad(why));
        }
        let key = esc.clone();
        let row = self
            .ctx
            .readers
            .with_blocking(move |c| ops::row_by_path(c, &key))
            .map_err(|e| bad(&e.to_string()))?;
        match row {
            Ok(Some(r)) if r.is_present() => Ok(r.id),
            Ok(_) => Err(bad("not a regular file in the tree")),
            Err(e) => Err(bad(&e.to_string())),
        }
    }

    /// Fires every pending sync cookie (after a reconcile, which covered everything
    /// written before it started).
    /// Answers the syncs of these cookies: what the reader saw open for writing at the
    /// cookie, and what the loop has not cataloged now.
    fn fire_cookies(&self, ids: impl IntoIterator<Item = u64>) {
        let mut map = self.cookies.lock().unwrap_or_else(|e| e.into_inner());
        let mut mine: Option<Vec<NotCataloged>> = None;
        for n in ids {
            if let Some(p) = map.remove(&n) {
                let mine = mine.get_or_insert_with(|| self.not_cataloged());
                let mut all = p.open;
                // A path open for writing may also be waiting for a retry: listed once.
                let open: std::collections::HashSet<String> =
                    all.iter().map(|m| m.path.clone()).collect();
                all.extend(mine.iter().filter(|m| !open.contains(&m.path)).cloned());
                let _ = p.tx.send(report_of(all));
            }
        }
    }

    /// What the loop knows is not cataloged: the retry queue (failed reads, with their
    /// cause; files that changed while read) and directories it could not watch.
    fn not_cataloged(&self) -> Vec<NotCataloged> {
        let mut out: Vec<NotCataloged> = self
            .retries
            .iter()
            .map(|(rel, r)| {
                let (why, detail) = match &r.cause {
                    Some(c) if retry::is_store_full(c) => (Missing::StoreFull, c.clone()),
                    Some(c) if lane::is_in_lane(c) => (Missing::Hashing, c.clone()),
                    Some(c) => (Missing::Failed, c.clone()),
                    None => (
                        Missing::Changing,
                        "changed while it was read; read again shortly".to_string(),
                    ),
                };
                NotCataloged {
                    path: crate::path::escape(rel),
                    why,
                    detail,
                }
            })
            .collect();
        for (key, dropped) in self.backlog.flooded() {
            out.push(NotCataloged {
                path: escape(&key),
                why: Missing::Reconciling,
                detail: format!(
                    "too many changes at once: past the event queue's bound ({} operations) \
                     its {dropped} events were dropped and the directory is reconciled by a \
                     scan instead; cataloged when that scan ends",
                    backlog::BOUND
                ),
            });
        }
        if self.unwatched.load(Ordering::Relaxed) {
            out.push(NotCataloged {
                path: String::new(),
                why: Missing::Unwatched,
                detail: format!(
                    "a directory could not be watched (inotify watch limit, \
                     fs.inotify.max_user_watches): changes there are found by the rescan \
                     every {} s",
                    UNWATCHED_RESCAN.as_secs()
                ),
            });
        }
        out
    }

    fn pending_cookies(&self) -> Vec<u64> {
        self.cookies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Removes objects no stored version references (also those of an earlier run) —
    /// unless a catalog recovery holds collection: a recovered catalog may know less
    /// history than the store has objects, and those are kept.
    fn collect_garbage(&self) {
        let held = crate::snapshots::backup::collection_held(&self.ctx.config.metadata_dir);
        if let Some(why) = held {
            tracing::debug!(%why, "store collection held");
            return;
        }
        let Ok(Ok(stored)) = self.ctx.readers.with_blocking(ops::stored_shas) else {
            return;
        };
        let mut n = 0;
        for sha in self.prober.objects.list() {
            if !stored.contains(&sha) {
                self.prober.objects.remove(&sha);
                n += 1;
            }
        }
        if n > 0 {
            tracing::info!(objects = n, "{n} unreferenced objects collected");
        }
    }

    fn lookup_rows(&self, paths: Vec<PathBuf>) -> HashMap<PathBuf, Row> {
        let r = self.ctx.readers.with_blocking(move |c: &Connection| {
            let mut out = HashMap::new();
            for p in paths {
                if let Ok(Some(row)) = ops::row_by_path(c, &escape(&p)) {
                    out.insert(p, row);
                }
            }
            out
        });
        r.unwrap_or_default()
    }
}

/// Whether a subtree's round goes on after serving the rest of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Round {
    /// Next chunk.
    GoOn,
    /// A reconcile of the whole tree waits: stop here.
    Abandon,
}

/// What one committed batch did.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// Paths whose cataloging failed, with the cause.
    pub problems: HashMap<PathBuf, String>,
}

/// A sync's report from its list, capped at [`SyncReport::MAX_LISTED`].
fn report_of(mut missing: Vec<NotCataloged>) -> SyncReport {
    let more = missing.len().saturating_sub(SyncReport::MAX_LISTED) as u64;
    missing.truncate(SyncReport::MAX_LISTED);
    SyncReport { missing, more }
}
