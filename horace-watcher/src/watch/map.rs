//! The map from inotify watch descriptors to the directories (relative to the files root)
//! they watch, kept in step with directory renames, moves out and deletes.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use inotify::{WatchDescriptor, Watches};

use super::reader::MASK;
use crate::status::Status;

#[derive(Default)]
struct Maps {
    by_wd: HashMap<i32, PathBuf>,
    by_path: HashMap<PathBuf, WatchDescriptor>,
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
        let id = wd.get_watch_descriptor_id();
        if let Some(old) = maps.by_wd.insert(id, rel.to_path_buf()) {
            if old != rel {
                maps.by_path.remove(&old);
            }
        }
        maps.by_path.insert(rel.to_path_buf(), wd);
        Ok(())
    }

    /// Number of directories watched.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.lock().1.by_wd.len()
    }

    pub(super) fn resolve(&self, wd: i32) -> Option<PathBuf> {
        self.lock().1.by_wd.get(&wd).cloned()
    }

    pub(super) fn forget_wd(&self, wd: i32) {
        let mut g = self.lock();
        if let Some(p) = g.1.by_wd.remove(&wd) {
            if g.1
                .by_path
                .get(&p)
                .is_some_and(|w| w.get_watch_descriptor_id() == wd)
            {
                g.1.by_path.remove(&p);
            }
        }
    }

    pub(super) fn rename_prefix(&self, from: &Path, to: &Path) {
        let mut g = self.lock();
        let maps = &mut g.1;
        let moved: Vec<PathBuf> = maps
            .by_path
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for old in moved {
            let new = to.join(old.strip_prefix(from).expect("prefix"));
            let wd = maps.by_path.remove(&old).expect("present");
            maps.by_wd.insert(wd.get_watch_descriptor_id(), new.clone());
            maps.by_path.insert(new, wd);
        }
    }

    /// Stops watching `rel` and everything below (moved out of the tree or deleted).
    pub(super) fn remove_under(&self, rel: &Path) {
        let mut g = self.lock();
        let (watches, maps) = &mut *g;
        let gone: Vec<PathBuf> = maps
            .by_path
            .keys()
            .filter(|p| p.starts_with(rel))
            .cloned()
            .collect();
        for p in gone {
            if let Some(wd) = maps.by_path.remove(&p) {
                maps.by_wd.remove(&wd.get_watch_descriptor_id());
                let _ = watches.remove(wd);
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
            tracing::error!(dir = %dir.display(), cause, "cannot watch directory; it will be rescanned periodically");
            false
        }
    }
}
