//! The map from inotify watch descriptors to the directories (relative to the files root)
//! they watch, kept in step with directory renames, moves out and deletes, with each
//! directory's owner and mode (what a query's visibility check needs, `query::sight`).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use inotify::{WatchDescriptor, Watches};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use super::reader::MASK;
use crate::status::Status;

/// A watched directory's owner, group and permission bits, as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirAttrs {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

/// A watched directory (relative to the root) and its attributes; `None` when it could
/// not be examined (gone, or no longer a directory beneath the root without links).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedDir {
    pub path: PathBuf,
    pub attrs: Option<DirAttrs>,
}

/// One watch: the directory it stands for, its attributes, and when it was last added.
struct Entry {
    path: PathBuf,
    wd: WatchDescriptor,
    stamp: u64,
    attrs: Option<DirAttrs>,
}

#[derive(Default)]
struct Maps {
    /// By watch descriptor id: the one index. Two descriptors can name the same path for
    /// a moment (a directory replaced while its old one is moved out), so everything
    /// that goes by path walks this map.
    by_wd: HashMap<i32, Entry>,
    /// Counts [`WatchMap::add_dir`] calls.
    stamp: u64,
    /// Counts changes to the set of directories or their attributes.
    generation: u64,
}

/// Which directory (relative to the root) each watch descriptor stands for.
pub struct WatchMap {
    root: PathBuf,
    inner: Mutex<(Watches, Maps)>,
}

impl WatchedDir {
    /// Directory `rel` beneath `root` as the watch map would record it (for callers
    /// without a watch map: tests, the benchmark).
    pub fn examine(root: &Path, rel: &Path) -> Self {
        Self {
            path: rel.to_path_buf(),
            attrs: dir_attrs(root, rel),
        }
    }
}

/// The attributes of directory `rel` beneath `root`, never through a symlink. The root is
/// opened for each look, never kept open: a descriptor held would keep the files
/// dataset busy, and an operator's `zfs unmount` must succeed (issue 13 item 3).
fn dir_attrs(root: &Path, rel: &Path) -> Option<DirAttrs> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let root_fd = rustix::fs::open(root, flags, Mode::empty()).ok()?;
    let fd = if rel.as_os_str().is_empty() {
        root_fd
    } else {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&root_fd, rel, flags, Mode::empty(), resolve) {
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                crate::store::open_dir_beneath(root, rel).ok()?
            }
            r => r.ok()?,
        }
    };
    let st = rustix::fs::fstat(&fd).ok()?;
    (FileType::from_raw_mode(st.st_mode) == FileType::Directory).then_some(DirAttrs {
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode & 0o7777,
    })
}

impl WatchMap {
    /// An empty map for watches of `root`.
    pub fn new(watches: Watches, root: PathBuf) -> Self {
        Self {
            root,
            inner: Mutex::new((watches, Maps::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Watches, Maps)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or refreshes) the watch of directory `rel`. The lock is held across the
    /// syscall so an event of the new watch never finds it unmapped, and across the look
    /// at the directory's attributes, taken after the watch exists: a later change of
    /// them is an event of the watch ([`WatchMap::refresh_attrs`]), and the last look
    /// taken is the last one stored.
    pub fn add_dir(&self, rel: &Path) -> io::Result<()> {
        let mut g = self.lock();
        let (watches, maps) = &mut *g;
        let wd = watches.add(self.root.join(rel), MASK)?;
        maps.stamp += 1;
        maps.generation += 1;
        let entry = Entry {
            path: rel.to_path_buf(),
            wd: wd.clone(),
            stamp: maps.stamp,
            attrs: dir_attrs(&self.root, rel),
        };
        maps.by_wd.insert(wd.get_watch_descriptor_id(), entry);
        Ok(())
    }

    /// Looks again at the attributes of the directory watch `wd` stands for (its own
    /// `IN_ATTRIB`: a chmod, chown or ACL change of the directory).
    pub(super) fn refresh_attrs(&self, wd: i32) {
        let mut g = self.lock();
        let maps = &mut g.1;
        if let Some(e) = maps.by_wd.get_mut(&wd) {
            let attrs = dir_attrs(&self.root, &e.path);
            if attrs != e.attrs {
                e.attrs = attrs;
                maps.generation += 1;
            }
        }
    }

    /// Changes whenever a directory is added, removed or renamed, or its attributes
    /// change: an answer computed from [`WatchMap::watched`] holds while this is the same.
    pub fn generation(&self) -> u64 {
        self.lock().1.generation
    }

    /// The directories watched now, with their attributes, and the generation they are of.
    pub fn watched(&self) -> (u64, Vec<WatchedDir>) {
        let g = self.lock();
        let dirs =
            g.1.by_wd
                .values()
                .map(|e| WatchedDir {
                    path: e.path.clone(),
                    attrs: e.attrs,
                })
                .collect();
        (g.1.generation, dirs)
    }

    /// The number of [`WatchMap::add_dir`] calls so far: watches added or refreshed after
    /// this have a greater stamp (see [`WatchMap::remove_under_before`]).
    pub(super) fn stamp(&self) -> u64 {
        self.lock().1.stamp
    }

    /// Number of directories watched.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.lock().1.by_wd.len()
    }

    pub(super) fn resolve(&self, wd: i32) -> Option<PathBuf> {
        self.lock().1.by_wd.get(&wd).map(|e| e.path.clone())
    }

    pub(super) fn forget_wd(&self, wd: i32) {
        let mut g = self.lock();
        g.1.by_wd.remove(&wd);
        g.1.generation += 1;
    }

    pub(super) fn rename_prefix(&self, from: &Path, to: &Path) {
        let mut g = self.lock();
        g.1.generation += 1;
        for e in g.1.by_wd.values_mut() {
            if let Ok(rest) = e.path.strip_prefix(from) {
                e.path = to.join(rest);
            }
        }
    }

    /// Stops watching `rel` and everything below (deleted).
    pub(super) fn remove_under(&self, rel: &Path) {
        self.remove_under_before(rel, u64::MAX);
    }

    /// Stops watching `rel` and everything below (moved out of the tree), except the
    /// watches added or refreshed after `stamp`: a directory moved out and back in at
    /// once is listed and watched again (as moved in) before its move out is known (no
    /// partner came), and keeps those watches.
    pub(super) fn remove_under_before(&self, rel: &Path, stamp: u64) {
        let mut g = self.lock();
        let (watches, maps) = &mut *g;
        let gone: Vec<i32> = maps
            .by_wd
            .iter()
            .filter(|(_, e)| e.path.starts_with(rel) && e.stamp <= stamp)
            .map(|(id, _)| *id)
            .collect();
        maps.generation += 1;
        for id in gone {
            if let Some(e) = maps.by_wd.remove(&id) {
                let _ = watches.remove(e.wd);
            }
        }
    }
}

/// Adds the watch of `dir`, counting and logging a failure (e.g. the watch limit).
pub fn add_watch_counted(map: &WatchMap, status: &Status, dir: &Path) -> bool {
    match map.add_dir(dir) {
        Ok(()) => true,
        Err(e)
            if e.raw_os_error() == Some(libc::ENOENT)
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            true
        }
        Err(e) => {
            Status::bump(&status.watch_failures);
            let cause = if e.raw_os_error() == Some(libc::ENOSPC) {
                "the inotify watch limit is reached: raise the sysctl \
                 fs.inotify.max_user_watches (one watch per directory)"
                    .to_string()
            } else {
                e.to_string()
            };
            tracing::error!(
                dir = %dir.display(),
                cause,
                "cannot watch directory {}: {cause}; it will be rescanned periodically",
                crate::path::escape(dir)
            );
            false
        }
    }
}
