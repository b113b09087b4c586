//! Watching the files tree (inotify), the startup reconcile scan, and the loop that turns
//! events into catalog transactions.
//!
//! Three parts: the reader thread ([`reader`]) turns kernel events into [`Op`]s in kernel
//! order; the watch loop thread ([`worker`]) owns cataloging: it batches operations,
//! hashes in parallel, and commits each batch in one transaction; [`WatchHandle`] is how
//! other tasks talk to the loop (sync barrier, register, reconcile, restore, shutdown).
//! Between the reader and the loop, the triage thread ([`backlog`]) keeps the queue
//! bounded: past the bound, one owner's subtree is reconciled by a scan instead.

pub(crate) mod backlog;
mod cookie;
mod displaced;
pub(crate) mod liveness;
pub(crate) mod map;
pub(crate) mod pin;
pub(crate) mod reader;
mod worker;

pub use map::{DirAttrs, WatchedDir};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::oneshot;

use crate::scan::{Compare, Ignore};
use crate::store::{Objects, RestoreError, RestoreOutcome};
use crate::Context;

/// Errors a caller of the watch handle can see.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The watcher is shutting down.
    #[error("the watcher is shutting down")]
    Stopped,
    /// The path cannot be cataloged (missing, not a regular file, unreadable).
    #[error("cannot catalog {path}: {why}")]
    Catalog {
        /// The relative path, escaped.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// The sync barrier's cookie event did not arrive in time.
    #[error("sync barrier timed out")]
    SyncTimeout,
    /// The sync barrier's cookie could not be created (files root unwritable or full).
    #[error("sync barrier failed: {0}")]
    Barrier(String),
}

/// One thing that happened on disk, as the reader saw it (paths relative to the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The file may have new content.
    Check {
        /// The file.
        rel: PathBuf,
        /// How closely it must match its row to count as unchanged.
        compare: Compare,
    },
    /// A completed save (close-after-write, or a file renamed onto the name), pinned by
    /// the reader when it read the event (see [`pin`]): the loop catalogs the pinned
    /// content as a version of its own, in order, even when more saves of the path follow
    /// in the same batch. Without a pin (the budget spent, or not a regular file by then)
    /// the reader sends an [`Op::Check`] instead.
    Saved {
        /// The file.
        rel: PathBuf,
        /// How closely it must match its row to count as unchanged.
        compare: Compare,
        /// The file as it was at the event.
        pin: pin::Pin,
    },
    /// A rename within the tree (both halves seen).
    Rename {
        /// Old path.
        from: PathBuf,
        /// New path.
        to: PathBuf,
        /// Whether a directory moved.
        dir: bool,
    },
    /// Deleted, or moved out of the tree.
    Remove {
        /// The path.
        rel: PathBuf,
        /// Whether a directory went.
        dir: bool,
    },
    /// A cookie file was written (a sync's, or a reconcile scan's own barrier): every
    /// event before it has been read.
    Cookie(u64),
    /// A path found by listing a new directory, or due in the retry queue: a
    /// [`Op::Check`] with `Compare::Strict`, except that a change after `covered_after`
    /// is left to its own events (see `Probe::Covered`).
    Recheck {
        /// The file.
        rel: PathBuf,
        /// Unix ns; `None` to read it whatever its mtime.
        covered_after: Option<i64>,
    },
}

/// Messages to the watch loop.
pub(crate) enum Msg {
    /// Operations in kernel order, and when they were read.
    Events(Vec<Op>, Instant),
    /// Run a reconcile scan; the reason goes into status.
    Reconcile(String),
    /// Reconcile a subtree whose operations were dropped past the queue's bound (see
    /// [`backlog`]), in rounds until it is caught up.
    Subtree(PathBuf),
    /// Catalog a path now.
    Register(PathBuf, oneshot::Sender<Result<i64, WatchError>>),
    /// Restore a version.
    Restore(
        i64,
        i64,
        oneshot::Sender<Result<RestoreOutcome, RestoreError>>,
    ),
    /// Apply the reloadable settings of a new configuration.
    Reload(Box<crate::Config>),
    /// Drain and stop.
    Shutdown,
}

/// The watch loops of this process, for [`reload`].
static LOOPS: Mutex<Vec<Sender<Msg>>> = Mutex::new(Vec::new());

/// Applies the reloadable settings of `config` — ignore patterns and `[versions]` — to every
/// running watch loop (SIGHUP). Other keys need a restart. Returns how many loops got it.
pub fn reload(config: &crate::Config) -> Result<usize, globset::Error> {
    Ignore::new(&config.ignore_patterns())?;
    let mut loops = LOOPS.lock().unwrap_or_else(|e| e.into_inner());
    loops.retain(|tx| tx.send(Msg::Reload(Box::new(config.clone()))).is_ok());
    Ok(loops.len())
}

struct Shared {
    ctx: Arc<Context>,
    tx: Sender<Msg>,
    cookies: Arc<cookie::Syncs>,
    done: tokio::sync::watch::Receiver<bool>,
    map: Arc<map::WatchMap>,
    /// The watchdog task (it holds the context: awaited at shutdown).
    watchdog: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Handle other tasks use to talk to the watch loop. Cheap to clone.
#[derive(Clone)]
pub struct WatchHandle {
    inner: Arc<Shared>,
}

/// How long a sync barrier waits for its cookie.
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

impl WatchHandle {
    /// Returns once every event of what was written before the call is handled: a cookie
    /// file `.horace-sync-<random>` is created in the root and its event awaited (events
    /// are processed in order, so every earlier one is committed); then it is removed.
    /// The report lists what written before is still not cataloged, and why: files open
    /// for writing and not yet quiet (the reader's view at the cookie), and the retry
    /// queue and unwatched directories (the loop's view once the cookie is committed).
    ///
    /// The root is tenant-writable, so the cookie is created relative to the root's fd
    /// with `O_CREAT|O_EXCL|O_NOFOLLOW|O_NONBLOCK` under a name nobody can predict: a
    /// link, FIFO, directory or file planted at a name makes it pick another one; it never
    /// truncates, follows or blocks on anything a tenant put there.
    pub async fn sync(&self) -> Result<horace_client::SyncReport, WatchError> {
        let s = &self.inner;
        if *s.done.borrow() {
            return Err(WatchError::Stopped);
        }
        let (tx, rx) = oneshot::channel();
        let root = s.ctx.config.files_root.clone();
        let cookies = s.cookies.clone();
        let created = tokio::task::spawn_blocking(move || cookie::create(&root, &cookies, tx))
            .await
            .map_err(|e| WatchError::Barrier(format!("cookie task failed: {e}")))?;
        let cookie = created.map_err(|e| {
            WatchError::Barrier(format!(
                "cannot create a sync cookie in {}: {e}",
                crate::path::escape(&s.ctx.config.files_root)
            ))
        })?;
        let result = match tokio::time::timeout(SYNC_TIMEOUT, rx).await {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(_)) => Err(WatchError::Stopped),
            Err(_) => Err(WatchError::SyncTimeout),
        };
        s.cookies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&cookie.n);
        let _ = tokio::task::spawn_blocking(move || cookie.remove()).await;
        result
    }

    /// The directories watched now (relative to the root) with their owners and modes,
    /// and the generation of that list: what a query's visibility check examines to leave
    /// out whole subtrees (`query::sight`).
    pub fn watched_dirs(&self) -> (u64, Vec<map::WatchedDir>) {
        self.inner.map.watched()
    }

    /// The generation of [`WatchHandle::watched_dirs`] now (cheap: no list is made).
    pub fn watched_generation(&self) -> u64 {
        self.inner.map.generation()
    }

    /// Catalogs `rel` (relative to files_root) now and returns its file id.
    pub async fn register(&self, rel: PathBuf) -> Result<i64, WatchError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Register(rel, tx))
            .map_err(|_| WatchError::Stopped)?;
        rx.await.map_err(|_| WatchError::Stopped)?
    }

    /// Asks for a reconcile scan (e.g. after a rollback); `reason` goes into status.
    pub fn request_reconcile(&self, reason: &str) {
        let _ = self.inner.tx.send(Msg::Reconcile(reason.to_string()));
    }

    /// Restores a version through the loop (see [`crate::store::restore_version`]).
    pub(crate) async fn restore(
        &self,
        file_id: i64,
        version: i64,
    ) -> Result<RestoreOutcome, RestoreError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || RestoreError::Io("the watcher is shutting down".into());
        self.inner
            .tx
            .send(Msg::Restore(file_id, version, tx))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Drains the queue and stops the watch loop; returns when it has stopped.
    pub async fn shutdown(&self) {
        let _ = self.inner.tx.send(Msg::Shutdown);
        let mut done = self.inner.done.clone();
        let _ = done.wait_for(|d| *d).await;
        // It holds the context: make sure it has let go.
        let watchdog = self
            .inner
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(w) = watchdog {
            w.abort();
            let _ = w.await;
        }
    }
}

/// Adds the watches, starts the startup reconcile scan, and returns the handle and the
/// task running the loop (it ends only on shutdown or a fatal error).
pub async fn start(
    ctx: Arc<Context>,
) -> anyhow::Result<(WatchHandle, tokio::task::JoinHandle<()>)> {
    let root = ctx.config.files_root.clone();
    anyhow::ensure!(
        root.is_dir(),
        "files_root {} is not a directory",
        root.display()
    );
    let ignore = Ignore::new(&ctx.config.ignore_patterns()).context("invalid ignore pattern")?;
    let objects =
        Objects::open(&ctx.config.metadata_dir).context("failed to open the content store")?;
    let inotify = inotify::Inotify::init().context("failed to initialise inotify")?;
    let map = Arc::new(map::WatchMap::new(inotify.watches(), root.clone()));
    map.add_dir(std::path::Path::new(""))
        .with_context(|| format!("failed to watch {}", root.display()))?;

    let (tx, rx) = std::sync::mpsc::channel();
    // The reader's operations pass the triage on their way to the loop.
    let (reader_tx, reader_rx) = std::sync::mpsc::channel();
    let backlog = Arc::new(backlog::Backlog::default());
    let triage_thread = {
        let (tx, backlog, ctx) = (tx.clone(), backlog.clone(), ctx.clone());
        std::thread::Builder::new()
            .name("queue-triage".into())
            .spawn(move || backlog::triage(reader_rx, tx, backlog, ctx))?
    };
    LOOPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(tx.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let unwatched = Arc::new(AtomicBool::new(false));
    let scan_epoch = Arc::new(AtomicU64::new(0));
    let cookies: Arc<cookie::Syncs> = Arc::new(Mutex::new(HashMap::new()));
    let reader = reader::Reader {
        inotify,
        map: map.clone(),
        ignore: ignore.clone(),
        tx: reader_tx,
        stop: stop.clone(),
        ctx: ctx.clone(),
        unwatched: unwatched.clone(),
        created: Default::default(),
        scan_epoch: scan_epoch.clone(),
        window: Default::default(),
        writing: reader::OpenWrites::new(Duration::from_millis(
            ctx.config.versions.quiet_period_ms,
        )),
        syncs: cookies.clone(),
        displaced: Default::default(),
        pins: Arc::new(pin::Budget::new()),
        unconfirmed: Vec::new(),
        deleted: Vec::new(),
        consumed: 0,
        batch_end: 0,
        backlog: backlog.clone(),
    };
    let reader_thread = std::thread::Builder::new()
        .name("inotify-reader".into())
        .spawn(move || reader.run())?;

    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let worker = worker::Worker::new(worker::Parts {
        ctx: ctx.clone(),
        objects,
        map: map.clone(),
        ignore,
        rx,
        cookies: cookies.clone(),
        rt: tokio::runtime::Handle::current(),
        unwatched,
        reader_stop: stop,
        reader_thread,
        triage_thread,
        backlog,
        scan_epoch: scan_epoch.clone(),
    });
    std::thread::Builder::new()
        .name("watch-loop".into())
        .spawn(move || {
            // Signals the end even if the loop panics.
            struct Done(tokio::sync::watch::Sender<bool>);
            impl Drop for Done {
                fn drop(&mut self) {
                    let _ = self.0.send(true);
                }
            }
            let _done = Done(done_tx);
            worker.run();
        })?;

    let mut done = done_rx.clone();
    let task = tokio::spawn(async move {
        let _ = done.wait_for(|d| *d).await;
    });
    // WATCHDOG=1 only while the loop and the writer make progress (liveness.rs).
    let probes = liveness::Live {
        ctx: ctx.clone(),
        tx: tx.clone(),
        cookies: cookies.clone(),
        scan_epoch,
        loop_probe: None,
        writer_probe: None,
    };
    let watchdog = tokio::spawn(liveness::run(probes, ctx.cancel.clone()));
    let handle = WatchHandle {
        inner: Arc::new(Shared {
            ctx,
            tx,
            cookies,
            done: done_rx,
            watchdog: Mutex::new(Some(watchdog)),
            map,
        }),
    };
    Ok((handle, task))
}
