//! Sync cookies: the files the sync barrier creates in the tenant-writable files root.
//!
//! A tenant may plant anything at any name there, at any moment. So a cookie is created
//! like every file of the watcher's own in the tree ([`crate::store::create_own_file`]:
//! a random name, relative to the root's directory fd, `O_CREAT|O_EXCL|O_NOFOLLOW|
//! O_NONBLOCK`, another name drawn when one is taken), and it is removed only while the
//! name still holds the inode created.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;

use rustix::fs::{AtFlags, FileType, Mode};
use tokio::sync::oneshot;

use crate::scan::COOKIE_PREFIX;
use horace_client::{NotCataloged, SyncReport};

/// A sync (or a scan's barrier) waiting for its cookie's event.
pub(crate) struct PendingSync {
    /// Gets the answer once every event before the cookie is handled.
    pub tx: oneshot::Sender<SyncReport>,
    /// What the reader saw written and not closed when it read the cookie (set by it).
    pub open: Vec<NotCataloged>,
}

/// The pending syncs by cookie number, shared by the handle, the reader and the loop.
pub(crate) type Syncs = Mutex<HashMap<u64, PendingSync>>;

/// A created cookie: the root's fd it was created under, its name and its inode.
pub(super) struct Cookie {
    /// The number the reader reports it by.
    pub n: u64,
    root: OwnedFd,
    name: OsString,
    ino: u64,
}

/// The cookie file name for `n`.
pub(crate) fn name_of(n: u64) -> String {
    format!("{COOKIE_PREFIX}{n:016x}")
}

/// Parses a cookie file name's number; `None` for any other name.
pub(crate) fn number_of(name: &std::ffi::OsStr) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let hex = name.as_bytes().strip_prefix(COOKIE_PREFIX.as_bytes())?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// Creates a cookie in `root` and registers `tx` under its number in `pending` before the
/// file is closed (the reader acts on its CLOSE_WRITE, so the event cannot be missed).
/// Blocking: call off the runtime.
pub(super) fn create(
    root: &Path,
    pending: &Syncs,
    tx: oneshot::Sender<SyncReport>,
) -> io::Result<Cookie> {
    let lock = || pending.lock().unwrap_or_else(|e| e.into_inner());
    let dir = crate::store::open_dir_beneath(root, Path::new(""))?;
    let (fd, n) = crate::store::create_own_file(&dir, name_of, Mode::from_raw_mode(0o600), |n| {
        !lock().contains_key(&n)
    })?;
    let ino = rustix::fs::fstat(&fd)?.st_ino;
    lock().insert(
        n,
        PendingSync {
            tx,
            open: Vec::new(),
        },
    );
    // Closing it is the CLOSE_WRITE the reader waits for.
    drop(fd);
    Ok(Cookie {
        n,
        root: dir,
        name: name_of(n).into(),
        ino,
    })
}

impl Cookie {
    /// Removes the cookie, unless its name now holds something else (a tenant's entry;
    /// leaving it is harmless: cookie names are never cataloged).
    pub(super) fn remove(self) {
        let ours =
            rustix::fs::statat(&self.root, &self.name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                // The inode number alone can be recycled by whatever replaced it.
                let regular = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
                st.st_ino == self.ino && regular
            });
        if ours {
            let _ = rustix::fs::unlinkat(&self.root, &self.name, AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_other_names_are_not_cookies() {
        for n in [0, 1, 0xdead_beef, u64::MAX] {
            assert_eq!(number_of(name_of(n).as_ref()), Some(n));
        }
        for other in [
            ".horace-sync-",
            ".horace-sync-3",
            ".horace-sync-zzzzzzzzzzzzzzzz",
            "x",
        ] {
            assert_eq!(number_of(other.as_ref()), None, "{other}");
        }
    }

    #[test]
    fn a_planted_link_fifo_or_file_is_never_touched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        let pending = Mutex::new(HashMap::new());
        let (tx, _rx) = oneshot::channel();
        let c = create(dir.path(), &pending, tx).unwrap();
        assert!(pending.lock().unwrap().contains_key(&c.n));
        let path = dir.path().join(name_of(c.n));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        // Swapped for a link after creation: removal leaves the link's target alone and
        // does not remove the tenant's entry.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        c.remove();
        assert!(path.symlink_metadata().is_ok());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    }
}
