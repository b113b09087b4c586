//! The inotify side: the thread that reads kernel events, pairs rename halves by cookie,
//! watches and lists new directories, and sends typed operations to the watch loop in
//! kernel order.
//!
//! Uses the `inotify` crate directly rather than `notify` 8: notify's inotify backend
//! always subscribes `IN_OPEN`, so every read by the hasher would queue an event (and the
//! hasher's reads would wake the reader). Here the mask holds only what cataloging needs:
//! close-after-write, moved-from/to, create (directories, hard links, files linked in from
//! an `O_TMPFILE`), delete, attribute change, and modify (a file written while kept open,
//! which no close-after-write reports: see [`OpenWrites`]).

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchMask};

use super::displaced::{Aside, Displaced, Held, DISPLACED_GRACE};
use super::map::{add_watch_counted, WatchMap};
use super::{Msg, Op};
use crate::scan::{self, Compare, Ignore, COOKIE_PREFIX};
use crate::status::Status;
use crate::Context;

/// The events subscribed on every directory. No `IN_OPEN`/`IN_ACCESS`/`IN_CLOSE_NOWRITE`:
/// the watcher's own reads produce no event. `IN_MODIFY` comes once per `write(2)` the
/// reader has not read yet (the kernel merges a repeat of the last queued event), and
/// costs one map update. Symlinks are not followed.
/// Not `IN_EXCL_UNLINK`: an `O_TMPFILE` is a child that was never linked, and its
/// close-after-write is how a file linked in from one is seen complete.
pub const MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::MODIFY)
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::DONT_FOLLOW);

/// The buffer of one read of events.
const READ_BUF: usize = 256 * 1024;

/// How long the first half of a rename waits for its second half.
const PAIR_WAIT: Duration = Duration::from_millis(20);

struct PendingFrom {
    /// Where in the held-back operations the outcome goes (kernel order).
    slot: usize,
    cookie: u32,
    rel: PathBuf,
    dir: bool,
    ignored: bool,
    at: Instant,
    /// The watch map's stamp then (see [`WatchMap::remove_under_before`]).
    stamp: u64,
}

/// Whether a listing of the tree may have missed a directory renamed while it ran.
///
/// A listing goes by path: a directory renamed before the listing reaches it is not
/// listed (nor watched) under either name, and one renamed after it was listed but before
/// its files were read has none of them read. Listings are the reconcile scan (on the
/// watch loop, while [`Reader::scan_epoch`] is odd) and [`Reader::add_tree`] (here). Every
/// rename done during a listing is in the inotify queue by the time the listing ends, so
/// once the queue has been read empty after the last listing ended, the window closes;
/// until then, the destination of each directory rename is listed again.
#[derive(Debug, Default)]
pub struct ListingWindow {
    /// A listing ran since the queue was last read empty.
    open: bool,
    /// The scan epoch when the window last closed.
    epoch: u64,
}

/// The reader thread's state.
pub struct Reader {
    /// The inotify instance.
    pub inotify: Inotify,
    /// Watch descriptors to directories.
    pub map: Arc<WatchMap>,
    /// Ignore rules.
    pub ignore: Ignore,
    /// To the watch loop.
    pub tx: Sender<Msg>,
    /// Set to stop the thread.
    pub stop: Arc<AtomicBool>,
    /// Shared state (status counters, files root).
    pub ctx: Arc<Context>,
    /// Set when a watch could not be added: the loop then rescans periodically.
    pub unwatched: Arc<AtomicBool>,
    /// Files created lately, by inode.
    pub created: RecentCreates,
    /// Odd while the watch loop's reconcile scan lists and reads the tree; bumped at its
    /// start and its end.
    pub scan_epoch: Arc<AtomicU64>,
    /// See [`ListingWindow`].
    pub window: ListingWindow,
    /// Files written and not closed since.
    pub writing: OpenWrites,
    /// The pending syncs: at a sync's cookie the files still open for writing are noted.
    pub syncs: Arc<super::cookie::Syncs>,
    /// Files renamed onto an ignored name, not yet taken as removed (a safe save's first
    /// half; see `displaced.rs`).
    pub displaced: Displaced,
    /// The bounds on pinned saves (see `pin.rs`).
    pub pins: Arc<super::pin::Budget>,
    /// Saves read at their event whose read may have overlapped a later write (see
    /// [`Unconfirmed`]), held back until confirmed.
    pub unconfirmed: Vec<Unconfirmed>,
    /// Files deleted, held back for [`DELETE_GRACE`] (see [`HeldDelete`]).
    pub deleted: Vec<HeldDelete>,
    /// Bytes of events handled so far (the kernel's sizes: see [`event_size`]).
    pub consumed: u64,
    /// Where the events of the last read end, in the same count.
    pub batch_end: u64,
    /// The subtrees flooded past the queue's bound (see `backlog.rs`).
    pub backlog: Arc<super::backlog::Backlog>,
}

/// A save the reader pinned (and read) at its event, not yet known to have been read before
/// any later write of the file began. A later write's first event (`IN_MODIFY`, which a
/// truncate also brings) is queued when it begins, so once every event queued by the end
/// of the pin's read has been handled with none for the path, the pin holds the saved
/// content; a write event for the path before then takes the pin back (the content may
/// be the later write's, even an empty file between its truncate and its data), and the
/// later write's own close catalogs what it saves.
#[derive(Debug)]
pub struct Unconfirmed {
    /// Where in the held-back operations the save is.
    slot: usize,
    rel: PathBuf,
    /// Where in the stream of events (bytes, see [`Reader::consumed`]) the events queued
    /// by the end of the pin's read end: a write event of the path before it takes the
    /// pin back.
    horizon: u64,
    /// And not before this.
    until: Instant,
}

/// A tracked file deleted: its removal waits in its slot (keeping kernel order) for
/// [`DELETE_GRACE`], and is not sent if a regular file holds the name by then: git's
/// checkout unlinks each changed file and creates it anew at once, which is the file's
/// next version (`modified`), not `deleted` + `undeleted`.
#[derive(Debug)]
pub struct HeldDelete {
    /// Where in the held-back operations the removal goes.
    slot: usize,
    rel: PathBuf,
    until: Instant,
}

/// How long a deleted file's removal waits for a new file at its name. git creates it
/// microseconds after the unlink; the operations after a delete wait this long.
const DELETE_GRACE: Duration = Duration::from_millis(30);

/// The same for a pin that read an empty file (see [`Reader::saved`]).
const EMPTY_CONFIRM_GRACE: Duration = Duration::from_millis(50);

/// How long a pin that may have overlapped a later write waits for that write's events
/// (a truncate shortens the file, then its event is queued).
const CONFIRM_GRACE: Duration = Duration::from_millis(5);

/// Files written (`IN_MODIFY`) and not closed since, by path: a database, or a file an NFS
/// or SMB server keeps open, gets no close-after-write for as long as it is open. Each is
/// read once `quiet` has passed since its last write (a read of a file still being written
/// is `Probe::Changing` and looked at again), and a sync meanwhile lists it as open for
/// writing. Renames and removals move or drop the entries.
pub struct OpenWrites {
    /// Path → (first write seen, last write seen), since the last close or quiet read.
    by_path: HashMap<PathBuf, (Instant, Instant)>,
    /// How long with no write before a file open for writing is read; zero: never.
    quiet: Duration,
    /// Whether the cap was hit (logged once).
    full: bool,
}

impl OpenWrites {
    /// How many are tracked at once; writes to more are left to their close.
    const CAP: usize = 65_536;

    /// Tracking that reads a file after `quiet` with no write (never if zero).
    pub fn new(quiet: Duration) -> Self {
        Self {
            by_path: HashMap::new(),
            quiet,
            full: false,
        }
    }

    fn note(&mut self, rel: PathBuf, now: Instant) {
        if let Some(e) = self.by_path.get_mut(&rel) {
            e.1 = now;
        } else if self.by_path.len() < Self::CAP {
            self.by_path.insert(rel, (now, now));
        } else if !self.full {
            self.full = true;
            tracing::warn!(
                cap = Self::CAP,
                "too many files open for writing at once; the rest are cataloged at their close"
            );
        }
    }

    fn closed(&mut self, rel: &Path) {
        if !self.by_path.is_empty() {
            self.by_path.remove(rel);
        }
    }

    fn removed_under(&mut self, dir: &Path) {
        self.by_path.retain(|p, _| !p.starts_with(dir));
    }

    fn renamed(&mut self, from: &Path, to: &Path, dir: bool) {
        if self.by_path.is_empty() {
            return;
        }
        if !dir {
            if let Some(e) = self.by_path.remove(from) {
                self.by_path.insert(to.to_path_buf(), e);
            }
            return;
        }
        let moved: Vec<PathBuf> = self
            .by_path
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for p in moved {
            if let (Some(e), Ok(rest)) = (self.by_path.remove(&p), p.strip_prefix(from)) {
                self.by_path.insert(to.join(rest), e);
            }
        }
    }

    /// The files quiet for the period by `now`, forgotten (their next write notes them
    /// again).
    fn quiet_by(&mut self, now: Instant) -> Vec<PathBuf> {
        if self.quiet.is_zero() || self.by_path.is_empty() {
            return Vec::new();
        }
        let quiet = self.quiet;
        let due: Vec<PathBuf> = self
            .by_path
            .iter()
            .filter(|(_, (_, last))| now.saturating_duration_since(*last) >= quiet)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &due {
            self.by_path.remove(p);
        }
        due
    }

    /// What a sync reports of them now.
    fn report(&self, now: Instant) -> Vec<horace_client::NotCataloged> {
        self.by_path
            .iter()
            .map(|(p, (first, last))| horace_client::NotCataloged {
                path: crate::path::escape(p),
                why: horace_client::Missing::OpenForWriting,
                detail: format!(
                    "written and not closed (first write {} ms ago, last {} ms ago); cataloged \
                     at its close or {} ms after its last write",
                    now.saturating_duration_since(*first).as_millis(),
                    now.saturating_duration_since(*last).as_millis(),
                    self.quiet.as_millis()
                ),
            })
            .collect()
    }
}

/// How long a created file waits for its close-after-write before it is looked at anyway
/// (a link whose other name was already removed when the create was read: maildir's
/// `link(tmp/x, new/x); unlink(tmp/x)`).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The files created lately (one link each when seen).
///
/// By inode: a file written through `O_TMPFILE` and linked into the tree (`linkat`)
/// appears by a create event under its name, but its close-after-write comes under the
/// name `#<inode>`. By path, until its close (or delete, or move) is seen: a create with
/// no close is a link whose first name went before the create was read, and is looked at
/// after [`CLOSE_GRACE`], as a file that changed since would be left to its own events.
#[derive(Default)]
pub struct RecentCreates {
    by_ino: HashMap<u64, PathBuf>,
    order: VecDeque<u64>,
    /// Path → (look at it then, unix ns when the create was read).
    unclosed: HashMap<PathBuf, (Instant, i64)>,
}

impl RecentCreates {
    /// How many are remembered (the close follows the link at once in practice).
    const CAP: usize = 4096;

    fn note(&mut self, ino: u64, rel: PathBuf) {
        if self.unclosed.len() < Self::CAP {
            let due = Instant::now() + CLOSE_GRACE;
            self.unclosed.insert(rel.clone(), (due, crate::now_ns()));
        }
        if self.by_ino.insert(ino, rel).is_none() {
            self.order.push_back(ino);
            if self.order.len() > Self::CAP {
                if let Some(old) = self.order.pop_front() {
                    self.by_ino.remove(&old);
                }
            }
        }
    }

    /// `rel` was closed after writing, deleted or moved away: nothing to wait for.
    fn settled(&mut self, rel: &Path) {
        if !self.unclosed.is_empty() {
            self.unclosed.remove(rel);
        }
    }

    /// The creates whose grace ran out by `now`, with when each was read; forgotten.
    fn overdue(&mut self, now: Instant) -> Vec<(PathBuf, i64)> {
        if self.unclosed.is_empty() {
            return Vec::new();
        }
        let due: Vec<PathBuf> = self
            .unclosed
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(p, _)| p.clone())
            .collect();
        due.into_iter()
            .filter_map(|p| self.unclosed.remove(&p).map(|(_, ns)| (p, ns)))
            .collect()
    }

    /// The path created for `name` when it is an `O_TMPFILE`'s `#<inode>`.
    fn linked_tmpfile(&mut self, name: &OsStr) -> Option<PathBuf> {
        if !is_tmpfile_name(name) {
            return None;
        }
        let ino: u64 = std::str::from_utf8(&name.as_bytes()[1..])
            .ok()?
            .parse()
            .ok()?;
        self.by_ino.remove(&ino)
    }
}

/// Whether `name` has the form the kernel gives an `O_TMPFILE`: `#` and the inode number.
fn is_tmpfile_name(name: &OsStr) -> bool {
    name.as_bytes()
        .strip_prefix(b"#")
        .is_some_and(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
}

impl Reader {
    /// Reads events until `stop` is set.
    ///
    /// Operations are held back while a moved-from waits for its moved-to, so a move out
    /// of the tree (known only when no partner comes) keeps its place in kernel order.
    pub fn run(mut self) {
        let mut buf = vec![0u8; READ_BUF];
        super::pin::ignore_lease_breaks();
        let mut pending: Vec<PendingFrom> = Vec::new();
        let mut ops: Vec<Option<Op>> = Vec::new();
        let fd = self.inotify.as_raw_fd();
        while !self.stop.load(Ordering::Relaxed) {
            let first_due = self
                .unconfirmed
                .iter()
                .map(|u| u.until)
                .chain(self.deleted.iter().map(|d| d.until))
                .min();
            let timeout = if let Some(until) = first_due {
                until.saturating_duration_since(Instant::now())
            } else if pending.is_empty() {
                Duration::from_millis(200)
            } else {
                PAIR_WAIT
            };
            // Loaded before the queue is found empty below: a scan that ended by then
            // queued all its renames before.
            let epoch = self.scan_epoch.load(Ordering::SeqCst);
            if epoch != self.window.epoch || epoch % 2 == 1 {
                self.window.open = true;
            }
            // Every event queued before this instant has been read (a rename's second
            // half is queued right after its first).
            let seen_until;
            if poll_in(fd, timeout) {
                seen_until = Instant::now();
                match self.inotify.read_events(&mut buf) {
                    Ok(events) => {
                        let events: Vec<_> = events.map(|e| e.to_owned()).collect();
                        self.batch_end = self.consumed + events.iter().map(event_size).sum::<u64>();
                        for ev in events {
                            let size = event_size(&ev);
                            self.handle(ev, &mut ops, &mut pending);
                            self.consumed += size;
                        }
                        let consumed = self.consumed;
                        self.unconfirmed
                            .retain(|u| u.horizon > consumed || seen_until < u.until);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        tracing::error!(cause = %e, "reading inotify events failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            } else {
                seen_until = Instant::now();
                // The queue was empty: every write begun before then has been seen.
                self.unconfirmed.retain(|u| seen_until < u.until);
            }
            if self.window.open && epoch.is_multiple_of(2) && !poll_in(fd, Duration::ZERO) {
                self.window = ListingWindow { open: false, epoch };
            }
            // A moved-from is taken as a move out of the tree only once a read that began
            // PAIR_WAIT after it brought no partner (handling a batch can take longer
            // than PAIR_WAIT when it lists new directories).
            let (stale, keep): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|p| seen_until.saturating_duration_since(p.at) >= PAIR_WAIT);
            pending = keep;
            for p in stale {
                self.moved_out(p, &mut ops);
            }
            self.unclosed_creates(&mut ops, Instant::now());
            self.displaced_due(&mut ops, Instant::now());
            for rel in self.writing.quiet_by(Instant::now()) {
                // An empty version only if the file was closed empty: one truncated and
                // held open is a writer that has not written yet (kept, and reported).
                if self.lstat(&rel).is_ok_and(|md| md.len() == 0) {
                    self.writing.note(rel, Instant::now());
                    continue;
                }
                ops.push(Some(Op::Check {
                    rel,
                    compare: Compare::Force,
                }));
            }
            self.deletes_due(&mut ops, Instant::now());
            // Everything before the first operation still held back goes now.
            let held = pending
                .iter()
                .map(|p| p.slot)
                .chain(self.unconfirmed.iter().map(|u| u.slot))
                .chain(self.deleted.iter().map(|d| d.slot))
                .min()
                .unwrap_or(ops.len());
            self.send(&mut ops, held);
            for p in &mut pending {
                p.slot -= held;
            }
            for u in &mut self.unconfirmed {
                u.slot -= held;
            }
            for d in &mut self.deleted {
                d.slot -= held;
            }
        }
    }

    /// Whether a listing may have missed renames (see [`ListingWindow`]).
    fn unsettled(&self) -> bool {
        let epoch = self.scan_epoch.load(Ordering::SeqCst);
        self.window.open || epoch != self.window.epoch || epoch % 2 == 1
    }

    /// Sends the first `upto` operations to the loop.
    fn send(&self, ops: &mut Vec<Option<Op>>, upto: usize) {
        let ops: Vec<Op> = ops.drain(..upto).flatten().collect();
        if ops.is_empty() {
            return;
        }
        self.ctx
            .status
            .queue_depth
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Events(ops, Instant::now()));
    }

    /// Sends what is held back and then a reconcile request (pending moves are resolved as
    /// moves out; the reconcile corrects any wrong guess).
    fn reconcile(
        &mut self,
        ops: &mut Vec<Option<Op>>,
        pending: &mut Vec<PendingFrom>,
        reason: &str,
    ) {
        for p in std::mem::take(pending) {
            self.moved_out(p, ops);
        }
        // Held removals and renames go as they are (the reconcile corrects a wrong one).
        self.deletes_due(ops, Instant::now() + DELETE_GRACE);
        self.displaced_due(ops, Instant::now() + DISPLACED_GRACE);
        // Events were lost: the reconcile reads what the unconfirmed saves left.
        for u in std::mem::take(&mut self.unconfirmed) {
            ops[u.slot] = None;
        }
        self.send(ops, ops.len());
        let _ = self.tx.send(Msg::Reconcile(reason.into()));
    }

    fn handle(
        &mut self,
        ev: inotify::EventOwned,
        ops: &mut Vec<Option<Op>>,
        pending: &mut Vec<PendingFrom>,
    ) {
        let m = ev.mask;
        if m.contains(EventMask::Q_OVERFLOW) {
            tracing::warn!("inotify queue overflowed; reconciling");
            Status::bump(&self.ctx.status.overflows);
            self.reconcile(ops, pending, "overflow");
            return;
        }
        let wd = ev.wd.get_watch_descriptor_id();
        if m.contains(EventMask::UNMOUNT) {
            tracing::error!("the files tree was unmounted; reconciling");
            self.reconcile(ops, pending, "unmount");
            return;
        }
        if m.contains(EventMask::IGNORED) {
            if self
                .map
                .resolve(wd)
                .is_some_and(|p| p.as_os_str().is_empty())
            {
                tracing::error!("the watch of the files root went away; reconciling");
                self.reconcile(ops, pending, "watch-failure");
            }
            self.map.forget_wd(wd);
            return;
        }
        if ev.name.is_none() && m.contains(EventMask::ATTRIB) {
            // The watched directory's own owner or mode changed: what queries may see.
            self.map.refresh_attrs(wd);
            return;
        }
        let (Some(dir), Some(name)) = (self.map.resolve(wd), ev.name) else {
            return;
        };
        let rel = dir.join(&name);
        let is_dir = m.contains(EventMask::ISDIR);
        if dir.as_os_str().is_empty() && name.as_bytes().starts_with(COOKIE_PREFIX.as_bytes()) {
            if m.contains(EventMask::CLOSE_WRITE) {
                if let Some(n) = super::cookie::number_of(&name) {
                    // A sync covers what was written before it: the creates still in
                    // their grace period are looked at now, ahead of the cookie, and so
                    // are the files renamed onto ignored names (a save that was under
                    // way has put its new file at the name by now).
                    self.unclosed_creates(ops, Instant::now() + CLOSE_GRACE);
                    self.deletes_due(ops, Instant::now() + DELETE_GRACE);
                    self.displaced_due(ops, Instant::now() + DISPLACED_GRACE);
                    let open = self.writing.report(Instant::now());
                    if let Some(p) = self
                        .syncs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(&n)
                    {
                        p.open = open;
                    }
                    ops.push(Some(Op::Cookie(n)));
                }
            }
            return;
        }
        let ignored = !is_dir && self.ignore.is_ignored(&name);
        // A file moved aside by a held rename (see `displaced.rs`) is written, moved or
        // replaced: the rename is settled first, in kernel order. Its attribute changes
        // wait for that (Samba sets them on the backup it is about to delete).
        if !is_dir && self.displaced.is_aside(&rel) {
            if m.intersects(EventMask::CLOSE_WRITE | EventMask::MOVED_FROM | EventMask::MOVED_TO) {
                if let Some(a) = self.displaced.take_aside(&rel) {
                    self.aside_settled(a, ops);
                }
            } else if m.contains(EventMask::ATTRIB) {
                return;
            }
        }
        if m.contains(EventMask::CREATE) {
            if is_dir {
                self.add_tree(&rel, ops);
            } else if !ignored {
                self.created_file(rel, ops);
            }
        } else if m.contains(EventMask::CLOSE_WRITE) {
            // Always read: on a filesystem with coarse timestamps a same-size rewrite
            // leaves the fingerprint unchanged.
            if !ignored {
                let rel = match self.created.linked_tmpfile(&name) {
                    Some(linked) => linked,
                    // An `O_TMPFILE` never linked in (scratch space): nothing to catalog.
                    None if is_tmpfile_name(&name) && self.lstat(&rel).is_err() => return,
                    None => rel,
                };
                self.created.settled(&rel);
                self.writing.closed(&rel);
                let op = self.saved(rel, Compare::Force, ops);
                ops.push(op);
            }
        } else if m.contains(EventMask::MODIFY) {
            if !is_dir && !ignored {
                self.take_back(&rel, ops);
                self.writing.note(rel, Instant::now());
            }
        } else if m.contains(EventMask::ATTRIB) {
            if !is_dir && !ignored {
                ops.push(Some(Op::Check {
                    rel,
                    compare: Compare::Attributes,
                }));
            }
        } else if m.contains(EventMask::DELETE) {
            if is_dir {
                self.map.remove_under(&rel);
                self.writing.removed_under(&rel);
                for a in self.displaced.gone_under(&rel) {
                    self.aside_gone(a, ops);
                }
                ops.push(Some(Op::Remove { rel, dir: true }));
            } else {
                self.created.settled(&rel);
                self.writing.closed(&rel);
                match self.displaced.take_aside(&rel) {
                    Some(a) => self.aside_gone(a, ops),
                    None if !ignored => {
                        ops.push(None);
                        self.deleted.push(HeldDelete {
                            slot: ops.len() - 1,
                            rel,
                            until: Instant::now() + DELETE_GRACE,
                        });
                    }
                    None => {}
                }
            }
        } else if m.contains(EventMask::MOVED_FROM) {
            if !is_dir {
                // Its new name is read at the move (or it left the tree).
                self.created.settled(&rel);
            }
            ops.push(None);
            let slot = ops.len() - 1;
            pending.push(PendingFrom {
                slot,
                cookie: ev.cookie,
                rel,
                dir: is_dir,
                ignored,
                at: Instant::now(),
                stamp: self.map.stamp(),
            });
        } else if m.contains(EventMask::MOVED_TO) {
            match pending.iter().position(|p| p.cookie == ev.cookie) {
                Some(i) => {
                    let from = pending.remove(i);
                    self.paired(from, rel, is_dir, ignored, ops);
                }
                None if is_dir => self.add_tree(&rel, ops),
                None if !ignored => {
                    let op = self.saved(rel, Compare::Strict, ops);
                    ops.push(op);
                }
                None => {}
            }
        }
    }

    /// Queues a look at each created file whose grace period ends by `by` with no close,
    /// if it has content (an empty one is a writer that has not started: its close will
    /// come).
    fn unclosed_creates(&mut self, ops: &mut Vec<Option<Op>>, by: Instant) {
        for (rel, read_ns) in self.created.overdue(by) {
            if self
                .lstat(&rel)
                .is_ok_and(|md| md.is_file() && md.len() > 0)
            {
                ops.push(Some(Op::Recheck {
                    rel,
                    covered_after: Some(read_ns),
                }));
            }
        }
    }

    /// Sends the removal of each file renamed onto an ignored name whose grace ends by
    /// `by`, unless a regular file holds its name again: then a safe save replaced it,
    /// and the events that put the new file there catalog it as the same file's next
    /// version (`modified`, not `deleted` + `undeleted`).
    /// The same for files deleted, and the held renames due (see [`Reader::aside_settled`]).
    fn displaced_due(&mut self, ops: &mut Vec<Option<Op>>, by: Instant) {
        for a in self.displaced.aside_overdue(by) {
            self.aside_settled(a, ops);
        }
        for rel in self.displaced.overdue(by) {
            if !self.lstat(&rel).is_ok_and(|md| md.is_file()) {
                ops.push(Some(Op::Remove { rel, dir: false }));
            }
        }
    }

    /// Fills the slot of each held delete due by `by`: the removal, unless a regular file
    /// holds the name again (see [`HeldDelete`]).
    fn deletes_due(&mut self, ops: &mut [Option<Op>], by: Instant) {
        if self.deleted.is_empty() {
            return;
        }
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deleted)
            .into_iter()
            .partition(|d| d.until <= by);
        self.deleted = keep;
        for d in due {
            if !self.lstat(&d.rel).is_ok_and(|md| md.is_file()) {
                ops[d.slot] = Some(Op::Remove {
                    rel: d.rel,
                    dir: false,
                });
            }
        }
    }

    /// A file at `rel` is gone (renamed onto an ignored name, or its backup deleted):
    /// held back for a new file at the name (see `displaced.rs`).
    fn hold_removal(&mut self, rel: PathBuf, ops: &mut Vec<Option<Op>>) {
        if self.displaced.note(rel.clone(), Instant::now()) == Held::RemoveNow {
            ops.push(Some(Op::Remove { rel, dir: false }));
        }
    }

    /// A held rename whose backup was neither deleted within the grace nor left alone:
    /// sent as the rename it was, unless a regular file holds the old name by now (the
    /// document's row has taken that file's content): then the moved file is a new one
    /// at its name (`mv -b`, a backup kept).
    fn aside_settled(&mut self, a: Aside, ops: &mut Vec<Option<Op>>) {
        if self.lstat(&a.from).is_ok_and(|md| md.is_file()) {
            ops.push(Some(Op::Check {
                rel: a.to,
                compare: Compare::Strict,
            }));
        } else {
            ops.push(Some(Op::Rename {
                from: a.from,
                to: a.to,
                dir: false,
            }));
        }
    }

    /// The file a held rename moved is gone: if a regular file holds the old name, that
    /// was a safe save (the document's row, never moved, has the new content: nothing to
    /// send); otherwise the document was moved and then deleted.
    fn aside_gone(&mut self, a: Aside, ops: &mut Vec<Option<Op>>) {
        if !self.lstat(&a.from).is_ok_and(|md| md.is_file()) {
            self.hold_removal(a.from, ops);
        }
    }

    /// The operation of a completed save of `rel` (a close-after-write, or a file renamed
    /// onto the name): pinned now, so the loop catalogs what was saved even if the path
    /// holds a later save by the time it looks (see `pin.rs`).
    ///
    /// A pin read while nobody had the file open for writing holds a completed save's
    /// content and goes as it is. Otherwise (a lease is not permitted: see
    /// `pin::open_for_writing`) it is [`Unconfirmed`] until the events queued by the end
    /// of its read are handled (the rest of this read's events and what the kernel holds
    /// queued then, `FIONREAD`) and [`CONFIRM_GRACE`] has passed (a truncate shortens the
    /// file before its event is queued); so is the look at the path sent when there is no
    /// pin (also when someone keeps the file open for writing).
    fn saved(&mut self, rel: PathBuf, compare: Compare, ops: &[Option<Op>]) -> Option<Op> {
        use super::pin::Taken;
        // A flooded subtree's operations are dropped and its scan reads the files: no
        // pin (each costs an open, a read and up to 20 ms of waiting for the writer).
        if self.backlog.covers(&rel) {
            return Some(Op::Check { rel, compare });
        }
        let (op, confirmed) = match super::pin::take(&self.ctx.config.files_root, &rel, &self.pins)
        {
            Taken::Pinned { pin, confirmed } => {
                let op = Op::Saved {
                    rel: rel.clone(),
                    compare,
                    pin,
                };
                (op, confirmed)
            }
            // Someone holds it open for writing (a later write, or a server's other
            // handle): no pin; the loop looks at the path, as without pins.
            // A later write began during the read: its close catalogs it.
            Taken::Changed => {
                tracing::debug!(path = %rel.display(), "changed while pinned; left to the next write's close");
                return None;
            }
            Taken::Writing | Taken::NotPinned => (
                Op::Check {
                    rel: rel.clone(),
                    compare,
                },
                false,
            ),
        };
        if confirmed {
            return Some(op);
        }
        // An empty file read with no lease may be a later write's truncate whose event is
        // not queued yet (the writer preempted in between, on a loaded machine): it waits
        // longer for that event.
        let grace = match &op {
            Op::Saved { pin, .. } => {
                Status::bump(&self.ctx.status.lease_fallbacks);
                if pin.0.fp.size == 0 {
                    EMPTY_CONFIRM_GRACE
                } else {
                    CONFIRM_GRACE
                }
            }
            _ => CONFIRM_GRACE,
        };
        let Some(queued) = queued_bytes(self.inotify.as_raw_fd()) else {
            return Some(Op::Check { rel, compare });
        };
        self.unconfirmed.push(Unconfirmed {
            slot: ops.len(),
            rel,
            horizon: self.batch_end + queued,
            until: Instant::now() + grace,
        });
        Some(op)
    }

    /// A write of `rel` began: a pin of it not yet confirmed may hold that write's
    /// content rather than the save's, and is dropped (the write's close catalogs it).
    fn take_back(&mut self, rel: &Path, ops: &mut [Option<Op>]) {
        if self.unconfirmed.is_empty() {
            return;
        }
        let at = self.consumed;
        self.unconfirmed.retain(|u| {
            if u.rel != rel || u.horizon <= at {
                return true;
            }
            tracing::debug!(path = %rel.display(), "a write began before the save was read; left to its close");
            ops[u.slot] = None;
            false
        });
    }

    /// `rel`'s own metadata (a symlink is not followed).
    fn lstat(&self, rel: &Path) -> io::Result<std::fs::Metadata> {
        std::fs::symlink_metadata(self.ctx.config.files_root.join(rel))
    }

    /// A file appeared. A new name for an existing file (`ln`, `cp -al`,
    /// `rsync --link-dest`) brings no close-after-write: its content is all there now, so
    /// it is read at once. A file created by open(2) (one link) is read at its close, and
    /// so is one linked in from an `O_TMPFILE` (remembered by inode for that close).
    fn created_file(&mut self, rel: PathBuf, ops: &mut Vec<Option<Op>>) {
        use std::os::unix::fs::MetadataExt;
        let Ok(md) = self.lstat(&rel) else {
            return;
        };
        if !md.is_file() {
            return;
        }
        if md.nlink() > 1 {
            ops.push(Some(Op::Check {
                rel,
                compare: Compare::Strict,
            }));
        } else {
            self.created.note(md.ino(), rel);
        }
    }

    fn paired(
        &mut self,
        from: PendingFrom,
        to: PathBuf,
        is_dir: bool,
        ignored: bool,
        ops: &mut Vec<Option<Op>>,
    ) {
        self.writing.renamed(&from.rel, &to, is_dir);
        if ignored && !is_dir {
            self.writing.closed(&to);
        }
        if is_dir {
            self.map.rename_prefix(&from.rel, &to);
            self.displaced.rename_prefix(&from.rel, &to);
            let relist = self.unsettled();
            ops.push(Some(Op::Rename {
                from: from.rel,
                to: to.clone(),
                dir: true,
            }));
            // Renamed while a listing ran: what it missed under either name is listed
            // (and watched) now.
            if relist {
                tracing::debug!(dir = %to.display(), "directory renamed during a listing; listing it again");
                self.add_tree(&to, ops);
            }
            return;
        }
        match (from.ignored, ignored) {
            // Held back if renamed to a backup name: a safe save through names not ignored
            // (`name` → `name.bak`, new content at `name`, `name.bak` deleted).
            (false, false) => {
                if self
                    .displaced
                    .aside(from.rel.clone(), to.clone(), Instant::now())
                    == Held::RemoveNow
                {
                    ops.push(Some(Op::Rename {
                        from: from.rel,
                        to,
                        dir: false,
                    }));
                }
            }
            (true, false) => {
                let op = self.saved(to, Compare::Strict, ops);
                ops.push(op);
            }
            // Held back: a safe save puts a new file at the name at once.
            (false, true) => self.hold_removal(from.rel, ops),
            (true, true) => {}
        }
    }

    fn moved_out(&mut self, p: PendingFrom, ops: &mut Vec<Option<Op>>) {
        if p.dir {
            self.map.remove_under_before(&p.rel, p.stamp);
            self.writing.removed_under(&p.rel);
            for a in self.displaced.gone_under(&p.rel) {
                self.aside_gone(a, ops);
            }
        } else {
            self.writing.closed(&p.rel);
        }
        if !p.ignored {
            ops[p.slot] = Some(Op::Remove {
                rel: p.rel,
                dir: p.dir,
            });
        }
    }

    /// A directory appeared (created or moved in): watch it and everything below, then
    /// list it, so files written before the watch existed are not missed. A file that
    /// changes after the listing is left to the events of that change (a writer still
    /// filling it is read at its close, not half-way).
    fn add_tree(&mut self, rel: &Path, ops: &mut Vec<Option<Op>>) {
        self.window.open = true;
        let status = &self.ctx.status;
        let mut watched = true;
        let walked = scan::walk(&self.ctx.config.files_root, rel, &self.ignore, |d| {
            if !add_watch_counted(&self.map, status, d) {
                self.unwatched.store(true, Ordering::Relaxed);
                watched = false;
            }
        });
        let covered_after = watched.then(crate::now_ns);
        for (f, _) in walked.files {
            ops.push(Some(Op::Recheck {
                rel: f,
                covered_after,
            }));
        }
    }
}

/// How many bytes of events are queued on the inotify `fd` (`FIONREAD`), counted as
/// [`event_size`] counts them.
fn queued_bytes(fd: i32) -> Option<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    (r >= 0).then(|| n.max(0) as u64)
}

/// The size of an event in the kernel's queue (and in `read(2)`): the fixed header and the
/// name with its NUL, padded to a multiple of the header's size (`inotify_user.c`,
/// `round_event_name_len`).
fn event_size(ev: &inotify::EventOwned) -> u64 {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    let name = ev
        .name
        .as_ref()
        .map_or(0, |n| (n.len() + 1).next_multiple_of(HEADER));
    (HEADER + name) as u64
}

/// Whether `fd` becomes readable within `timeout`.
fn poll_in(fd: i32, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    n > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_writes_follow_renames_and_are_read_once_quiet() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = OpenWrites::new(ms(100));
        w.note("d/a".into(), t0);
        w.note("d/b".into(), t0);
        w.note("c".into(), t0);
        w.note("gone".into(), t0);
        // A later write keeps `c` from being quiet.
        w.note("c".into(), t0 + ms(80));
        w.renamed(Path::new("d"), Path::new("e"), true);
        w.renamed(Path::new("e/b"), Path::new("f"), false);
        w.closed(Path::new("gone"));
        let mut listed: Vec<String> = w.report(t0).into_iter().map(|m| m.path).collect();
        listed.sort();
        assert_eq!(listed, ["c", "e/a", "f"]);
        let mut quiet = w.quiet_by(t0 + ms(100));
        quiet.sort();
        assert_eq!(quiet, [PathBuf::from("e/a"), PathBuf::from("f")]);
        // Read once: forgotten until the next write.
        assert!(w.quiet_by(t0 + ms(150)).is_empty());
        assert_eq!(w.quiet_by(t0 + ms(180)), [PathBuf::from("c")]);
        w.note("x/y".into(), t0);
        w.removed_under(Path::new("x"));
        assert!(w.report(t0).is_empty());
        // Zero: never read before the close.
        let mut never = OpenWrites::new(Duration::ZERO);
        never.note("z".into(), t0);
        assert!(never.quiet_by(t0 + Duration::from_secs(3600)).is_empty());
        assert_eq!(never.report(t0).len(), 1);
    }
}
