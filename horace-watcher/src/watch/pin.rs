//! Saves pinned at the moment their event is read (issue 14 item 1).
//!
//! The watch loop reads a file some time after its close-after-write or moved-to: a batch
//! is committed, the CPU is busy. By then a rename save may have been replaced by the next
//! one (its inode gone) and an in-place save overwritten. So the reader thread, as soon as
//! it reads such an event, opens the file beneath the root (`O_RDONLY|O_NOFOLLOW|
//! O_NONBLOCK`: never a tenant's symlink, never blocking on a FIFO; `fstat` must say
//! regular file) and, for a small file, reads its content at once; the operation carries
//! the pin to the loop, which hashes and stores exactly that.
//!
//! A rename save's inode is never written again, so its open descriptor is exact. An
//! in-place save is read at once while the fingerprint (size, mtime, ctime, inode) stays
//! the same before and after the read; a descriptor held instead is re-checked when the
//! loop reads it, and a change means a later write began (its own close comes): the loop
//! then looks at the path as before.
//!
//! What pins hold is bounded ([`Budget`]): open descriptors (a few thousand, and at most a
//! quarter of `RLIMIT_NOFILE`) and bytes read ahead. Beyond either, the event is handled
//! as before pins existed (a probe of the path by the loop), and counted.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::hash::Fingerprint;

/// Files up to this size are read by the reader at once.
pub const READ_AHEAD_MAX: u64 = 1 << 20;
/// Bytes read ahead and not yet cataloged, at most.
const BYTES_MAX: u64 = 64 << 20;
/// Open descriptors held by pins, at most (and a quarter of the soft `RLIMIT_NOFILE`).
const FDS_MAX: usize = 4096;

/// The bounds on what pins hold, shared by the reader (which takes) and the loop (whose
/// dropping a pin gives back).
#[derive(Debug)]
pub struct Budget {
    fds: AtomicUsize,
    bytes: AtomicU64,
    max_fds: usize,
    max_bytes: u64,
    /// Events handled without a pin because a bound was reached.
    pub fallbacks: AtomicU64,
    warned: AtomicBool,
}

impl Budget {
    /// The default bounds: [`FDS_MAX`] descriptors (fewer under a low `RLIMIT_NOFILE`) and
    /// [`BYTES_MAX`] bytes.
    pub fn new() -> Self {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let max_fds = usize::try_from(soft / 4).unwrap_or(usize::MAX).min(FDS_MAX);
        Self::with(max_fds, BYTES_MAX)
    }

    /// Explicit bounds (tests).
    pub fn with(max_fds: usize, max_bytes: u64) -> Self {
        Self {
            fds: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            max_fds,
            max_bytes,
            fallbacks: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    fn take_fd(&self) -> bool {
        self.fds
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_fds).then_some(n + 1)
            })
            .is_ok()
    }

    fn take_bytes(&self, n: u64) -> bool {
        self.bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b + n <= self.max_bytes).then_some(b + n)
            })
            .is_ok()
    }

    fn fell_back(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_fds = self.max_fds,
                max_bytes = self.max_bytes,
                "too many saves waiting to be cataloged: further ones are read by path when \
                 their turn comes (a save replaced before then is not cataloged)"
            );
        }
    }

    /// Descriptors held now.
    #[cfg(test)]
    pub fn fds(&self) -> usize {
        self.fds.load(Ordering::Relaxed)
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

/// What a pin holds of the file.
#[derive(Debug)]
pub enum Held {
    /// The whole content, read by the reader while the fingerprint did not change.
    Bytes(Vec<u8>),
    /// The open file, read by the loop.
    File(File),
}

/// One pinned save: the file's fingerprint when its event was read, and its content or
/// its open descriptor.
#[derive(Debug)]
pub struct Pinned {
    /// The fingerprint (`fstat` of the pinned descriptor) at the event.
    pub fp: Fingerprint,
    /// The permission bits then (a restore over a link or a missing name gives them back).
    pub mode: u32,
    /// The content or the descriptor.
    pub held: Held,
    budget: Arc<Budget>,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        match &self.held {
            Held::Bytes(b) => {
                self.budget
                    .bytes
                    .fetch_sub(b.capacity() as u64, Ordering::AcqRel);
            }
            Held::File(_) => {
                self.budget.fds.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// A pinned save as an operation carries it: shared, compared by identity.
#[derive(Debug, Clone)]
pub struct Pin(pub Arc<Pinned>);

impl PartialEq for Pin {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Pin {}

/// What [`take`] got.
#[derive(Debug)]
pub enum Taken {
    /// The save, pinned. `confirmed`: read while nobody had the file open for writing (a
    /// read lease could be taken; the closing writer, whose close is reported before its
    /// write access is dropped, is waited for), so the content is a completed save's;
    /// otherwise (a lease is not permitted) the reader waits for the events that would
    /// show a later write began (`reader.rs`, `Unconfirmed`).
    Pinned {
        /// The pin.
        pin: Pin,
        /// Whether the content is known to be a completed save's.
        confirmed: bool,
    },
    /// Someone kept the file open for writing for as long as the reader waited
    /// ([`WRITERS_WAIT`]): a later write began (what the file holds may be that write's
    /// truncate, or its first part), or a writer (a file server's other handle) keeps it
    /// open: what it holds now is not known to be a save. The loop looks at the path.
    Writing,
    /// The file changed while it was read: a later write began (its own close, or the
    /// quiet period of a file kept open, catalogs what it saves). Nothing to catalog now:
    /// a look at the path could land between that write's truncate and its data.
    Changed,
    /// Not pinned: not a regular file, vanished, or the budget is spent (counted). The
    /// loop looks at the path, as without pins.
    NotPinned,
}

/// Pins `rel` (relative to `root`) now. Errors other than a vanished file are left to the
/// loop's probe of the path, which reports them.
pub fn take(root: &Path, rel: &Path, budget: &Arc<Budget>) -> Taken {
    let Ok(file) = crate::store::open_file_beneath(root, rel) else {
        return Taken::NotPinned;
    };
    let Ok(md) = file.metadata() else {
        return Taken::NotPinned;
    };
    if !md.is_file() {
        return Taken::NotPinned;
    }
    let fp = Fingerprint::of(&md);
    let mode = crate::scan::mode_of(&md);
    let size = md.len();
    let pinned = |held, confirmed| Taken::Pinned {
        pin: Pin(Arc::new(Pinned {
            fp,
            mode,
            held,
            budget: budget.clone(),
        })),
        confirmed,
    };
    if size <= READ_AHEAD_MAX && budget.take_bytes(size + 1) {
        let read = read_stable(&file, size, fp);
        let reserved = size + 1;
        let give_back = |cap: u64| {
            // The budget counts what the buffer holds.
            if cap > reserved {
                budget.bytes.fetch_add(cap - reserved, Ordering::AcqRel);
            } else {
                budget.bytes.fetch_sub(reserved - cap, Ordering::AcqRel);
            }
        };
        return match read {
            ReadOutcome::Stable(bytes, writers) => {
                give_back(bytes.capacity() as u64);
                if writers == Some(true) {
                    drop(Pinned {
                        fp,
                        mode,
                        held: Held::Bytes(bytes),
                        budget: budget.clone(),
                    });
                    return Taken::Writing;
                }
                pinned(Held::Bytes(bytes), writers == Some(false))
            }
            ReadOutcome::Changed => {
                give_back(0);
                Taken::Changed
            }
        };
    }
    if budget.take_fd() {
        return pinned(Held::File(file), false);
    }
    budget.fell_back();
    Taken::NotPinned
}

/// How long the reader waits for the writers of a file whose close it read to drop their
/// write access.
const WRITERS_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// What [`read_stable`] read.
enum ReadOutcome {
    /// The whole content, the fingerprint the same before and after; and whether anyone
    /// had the file open for writing then (`None`: not known, see [`open_for_writing`]).
    Stable(Vec<u8>, Option<bool>),
    /// The file changed during the read.
    Changed,
}

/// The whole content of `file`, if it is `size` bytes and its fingerprint is `fp` before
/// and after the read; between the read and the last look, whether it is open for writing.
fn read_stable(file: &File, size: u64, fp: Fingerprint) -> ReadOutcome {
    let mut bytes = Vec::with_capacity(size as usize + 1);
    // One byte more than the size: a file that grew reads longer.
    if file.take(size + 1).read_to_end(&mut bytes).is_err() {
        return ReadOutcome::Changed;
    }
    // The closing writer drops its write access a moment after its close is reported:
    // wait for that, as long as the file does not change (a later writer would change it
    // when it writes).
    let deadline = std::time::Instant::now() + WRITERS_WAIT;
    let mut writers = open_for_writing(file);
    while writers == Some(true) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_micros(200));
        if file.metadata().ok().map(|m| Fingerprint::of(&m)) != Some(fp) {
            return ReadOutcome::Changed;
        }
        writers = open_for_writing(file);
    }
    let after = file.metadata().ok().map(|m| Fingerprint::of(&m));
    if bytes.len() as u64 == size && after == Some(fp) {
        ReadOutcome::Stable(bytes, writers)
    } else {
        ReadOutcome::Changed
    }
}

/// Whether anyone has `file` open for writing now, as the kernel says by refusing a read
/// lease (`F_SETLEASE`, `EAGAIN`); a lease taken is given back at once. `None` when a
/// lease is not permitted (only the file's owner, or a holder of `CAP_LEASE`, may take
/// one). A writer that opens the file in the microseconds the lease is held waits for its
/// release; the lease-break signal (`SIGIO`) is ignored by the watcher.
pub fn open_for_writing(file: &File) -> Option<bool> {
    use std::os::fd::AsRawFd;
    // Not on FUSE (zfs-fuse in the tests): its server knows nothing of leases, and a
    // writer made to wait there waits on a userspace process.
    // f_type's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    if rustix::fs::fstatfs(file).is_ok_and(|s| s.f_type as i64 == FUSE_SUPER_MAGIC) {
        return None;
    }
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments.
    let r = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK as libc::c_int) };
    if r == 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK as libc::c_int) };
        return Some(false);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Some(true),
        _ => None,
    }
}

/// `statfs` type of every FUSE filesystem.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// Makes the lease-break signal harmless (see [`open_for_writing`]); its default action
/// ends the process.
pub fn ignore_lease_breaks() {
    // SAFETY: setting a signal's disposition to SIG_IGN.
    unsafe {
        libc::signal(libc::SIGIO, libc::SIG_IGN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_hold_the_content_of_the_moment_and_stay_within_the_budget() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join("small"), "one").unwrap();
        std::fs::write(root.join("big"), vec![7u8; READ_AHEAD_MAX as usize + 1]).unwrap();
        std::os::unix::fs::symlink("small", root.join("link")).unwrap();
        std::fs::create_dir(root.join("dir")).unwrap();
        let budget = Arc::new(Budget::with(1, 1 << 20));
        let pin = |rel: &str| match take(root, Path::new(rel), &budget) {
            Taken::Pinned { pin, .. } => Some(pin),
            _ => None,
        };
        let small = pin("small").expect("pinned");
        // Replaced after the pin: the pin keeps what was saved.
        std::fs::write(root.join("small"), "two").unwrap();
        assert!(matches!(&small.0.held, Held::Bytes(b) if b == b"one"));
        let big = pin("big").expect("pinned");
        assert!(matches!(big.0.held, Held::File(_)));
        assert_eq!(budget.fds(), 1);
        // The one descriptor is held: the next big file falls back, and is counted.
        std::fs::write(root.join("big2"), vec![7u8; READ_AHEAD_MAX as usize + 1]).unwrap();
        assert!(pin("big2").is_none());
        assert_eq!(budget.fallbacks.load(Ordering::Relaxed), 1);
        drop(big);
        assert_eq!(budget.fds(), 0);
        assert!(pin("big2").is_some());
        // Never a symlink, a directory, or a missing file.
        assert!(pin("link").is_none());
        assert!(pin("dir").is_none());
        assert!(pin("gone").is_none());
        // Open for writing: not known to be a completed save (a lease tells, where
        // permitted: the file's owner, as here).
        let held = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("small"))
            .unwrap();
        ignore_lease_breaks();
        assert!(matches!(
            take(root, Path::new("small"), &budget),
            Taken::Writing
        ));
        drop(held);
        assert!(matches!(
            take(root, Path::new("small"), &budget),
            Taken::Pinned {
                confirmed: true,
                ..
            }
        ));
        drop(small);
        assert_eq!(budget.bytes.load(Ordering::Relaxed), 0, "bytes given back");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_never_pinned_and_never_blocks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let budget = Arc::new(Budget::new());
        assert!(matches!(
            take(d.path(), Path::new("fifo"), &budget),
            Taken::NotPinned
        ));
    }
}
