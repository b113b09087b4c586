//! The map from inotify watch descriptors to the directories (relative to the files root)
//! they watch, kept in step with directory renames, moves out and deletes.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use inotify::{WatchDescriptor, Watches};

use super::reader::MASK;
use crate::status::Status;

/// One watch: the directory it stands for, and when it was last added.
struct Entry {
    path: PathBuf,
    wd: WatchDescriptor,
    stamp: u64,
}

#[derive(Default)]
struct Maps {
    /// By watch descriptor id: the one index. Two descriptors can name the same path for
    /// a moment (a directory replaced while its old one is moved out), so everything
    /// that goes by path walks this map.
    by_wd: HashMap<i32, Entry>,
    /// Counts [`WatchMap::add_dir`] calls.
    stamp: u64,
}

/// Which directory (relative to the root) each watch descriptor stands for.
pub struct WatchMap {
    root: PathBuf,
    inner: Mutex<(Watches, Maps)>,
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
    /// syscall so an event of the new watch never finds it unmapped.
    pub fn add_dir(&self, rel: &Path) -> io::Result<()> {
        let mut g = self.lock();
        let (watches, maps) = &mut *g;
        let wd = watches.add(self.root.join(rel), MASK)?;
        maps.stamp += 1;
        let entry = Entry {
            path: rel.to_path_buf(),
            wd: wd.clone(),
            stamp: maps.stamp,
        };
        maps.by_wd.insert(wd.get_watch_descriptor_id(), entry);
        Ok(())
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

    /// The directories watched now (relative to the root).
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.lock()
            .1
            .by_wd
            .values()
            .map(|e| e.path.clone())
            .collect()
    }

    pub(super) fn resolve(&self, wd: i32) -> Option<PathBuf> {
        self.lock().1.by_wd.get(&wd).map(|e| e.path.clone())
    }

    pub(super) fn forget_wd(&self, wd: i32) {
        self.lock().1.by_wd.remove(&wd);
    }

    pub(super) fn rename_prefix(&self, from: &Path, to: &Path) {
        let mut g = self.lock();
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
