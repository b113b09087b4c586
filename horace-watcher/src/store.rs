//! The content store (`<metadata_dir>/objects/sha256/ab/cdef…`) and restoring a version.
//!
//! Objects are written temp → fsync → rename, named by the SHA-256 of the *copy* (so an
//! object always matches its name even when the source changes while it is copied), and
//! shared by every version with that content. A batch of copies (a scan chunk, a batch of
//! events) is made durable by one `syncfs` of the store's filesystem before its renames
//! instead of an fsync per object: each fsync is a journal commit and a cache flush (4 ms
//! each on the benchmark machine's ext4, against 0.2–0.4 ms per object for one syncfs per
//! batch), and it dominated the initial catalog. Which versions keep their content is decided
//! by `catalog::ops::prune`; objects no stored version references are removed.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

use crate::hash::{self, Digested, Fingerprint};
use crate::watch::WatchHandle;
use crate::Context;

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// No such file or version in the catalog.
    #[error("no version {version} of file {file_id}")]
    NotFound {
        /// The file id.
        file_id: i64,
        /// The version number.
        version: i64,
    },
    /// The content is no longer in the store and no readable snapshot copy matched; the
    /// snapshots taken while that version was current are listed for a manual recovery.
    #[error("content of version {version} was pruned from the store; snapshots that may hold it: {}", if snapshots.is_empty() { "none".to_string() } else { snapshots.join(", ") })]
    ContentPruned {
        /// The version number.
        version: i64,
        /// Snapshots taken while it was current, oldest first.
        snapshots: Vec<String>,
    },
    /// Writing the file back failed; nothing was replaced.
    #[error("restore of {path} failed: {kind}: {message}")]
    Write {
        /// The file's path, escaped.
        path: String,
        /// Why, by kind.
        kind: horace_client::RestoreFailure,
        /// The system's message.
        message: String,
    },
    /// Reading or writing failed.
    #[error("restore failed: {0}")]
    Io(String),
}

impl RestoreError {
    /// Names a failure of [`write_over`] on `path` by its cause.
    pub fn write(path: String, e: &io::Error) -> Self {
        use horace_client::RestoreFailure as F;
        let kind = match (e.kind(), e.raw_os_error()) {
            (_, Some(libc::EISDIR)) => F::IsDirectory,
            (_, Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) => F::DirectoryMissing,
            (_, Some(libc::ENOSPC | libc::EDQUOT)) => F::NoSpace,
            (_, Some(libc::EACCES | libc::EPERM | libc::EROFS)) => F::PermissionDenied,
            (io::ErrorKind::AlreadyExists, _) => F::Conflict,
            (io::ErrorKind::InvalidData, _) => F::Damaged,
            _ => F::Io,
        };
        Self::Write {
            path,
            kind,
            message: e.to_string(),
        }
    }
}

/// The result of a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// The file id.
    pub file_id: i64,
    /// The new version the restore created.
    pub new_version: i64,
}

/// Restores `version` of `file_id` over the file on disk: stores the current content
/// first, writes the old content to a temp file in the same directory, fsyncs and
/// renames it over the file; the result is a new version with `restored_from` set.
///
/// The work runs on the watch loop, so it is ordered with every event before it.
pub async fn restore_version(
    ctx: &Context,
    watch: &WatchHandle,
    file_id: i64,
    version: i64,
) -> Result<RestoreOutcome, RestoreError> {
    let _ = ctx;
    watch.restore(file_id, version).await
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// The object directory of a metadata dir.
#[derive(Debug, Clone)]
pub struct Objects {
    root: PathBuf,
}

/// A copy waiting in `objects/tmp`; removed on drop unless committed.
#[derive(Debug)]
pub struct TempObject {
    path: PathBuf,
    /// Already fsynced (else [`Objects::commit_all`] syncs the batch).
    synced: bool,
    done: bool,
    /// Bytes the copy occupies (`st_blocks × 512`, holes not counted).
    occupies: u64,
}

impl TempObject {
    /// The bytes the copy occupies on disk (a sparse copy: its data, not its length).
    pub fn occupies(&self) -> u64 {
        self.occupies
    }
}

/// Bytes `f` occupies on disk.
fn occupied(f: &File) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(f.metadata()?.blocks() * 512)
}

impl Drop for TempObject {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What re-hashing a stored object found ([`Objects::verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its content hashes to its name.
    Intact,
    /// Its content no longer hashes to its name.
    Damaged,
    /// It is gone (collected meanwhile).
    Gone,
}

impl Objects {
    /// The store under `metadata_dir/objects`, created if missing; stale temp files of
    /// an earlier run are removed.
    pub fn open(metadata_dir: &Path) -> io::Result<Self> {
        let root = metadata_dir.join("objects");
        std::fs::create_dir_all(root.join("sha256"))?;
        let _ = std::fs::remove_dir_all(root.join("tmp"));
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("damaged"))?;
        Ok(Self { root })
    }

    /// The store under `metadata_dir/objects` as it is, for reading (nothing created or
    /// removed, unlike [`Objects::open`]).
    pub fn open_existing(metadata_dir: &Path) -> Self {
        Self {
            root: metadata_dir.join("objects"),
        }
    }

    /// Moves a damaged object (its content no longer hashes to its name) aside to
    /// `objects/damaged/<sha256>`, kept for inspection. Its name in the store is then
    /// free, so the next copy of that content anyone saves heals it ([`Objects::commit`]).
    pub fn quarantine(&self, sha256: &str) -> io::Result<()> {
        std::fs::rename(self.path_of(sha256), self.root.join("damaged").join(sha256))?;
        tracing::error!(
            sha256,
            "store object damaged (its content does not hash to its name); moved to objects/damaged, healed when that content is saved again"
        );
        Ok(())
    }

    /// Whether the object was found damaged and not healed since.
    pub fn is_damaged(&self, sha256: &str) -> bool {
        self.root.join("damaged").join(sha256).is_file()
    }

    /// The damaged objects not healed yet, by checksum.
    pub fn damaged(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("damaged"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Re-hashes one object through `read` (a paced reader over the file).
    pub fn verify(
        &self,
        sha256: &str,
        read: impl FnOnce(File) -> io::Result<Digested>,
    ) -> io::Result<Verdict> {
        match File::open(self.path_of(sha256)) {
            Ok(f) => Ok(if read(f)?.sha256 == sha256 {
                Verdict::Intact
            } else {
                Verdict::Damaged
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Verdict::Gone),
            Err(e) => Err(e),
        }
    }

    /// The store's directory (`metadata_dir/objects`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object with `sha256` lives.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        let (a, b) = sha256.split_at(2.min(sha256.len()));
        self.root.join("sha256").join(a).join(b)
    }

    /// Whether the object is present.
    pub fn contains(&self, sha256: &str) -> bool {
        self.path_of(sha256).is_file()
    }

    /// Copies `src` into a temp object (copy_file_range, so block cloning makes it cheap),
    /// hashes the copy and fsyncs it. The caller re-checks the source's fingerprint.
    pub fn copy_in(&self, src: &Path) -> io::Result<(TempObject, Digested)> {
        self.copy_in_file(&File::open(src)?, true)
    }

    /// Like [`Objects::copy_in`], from a file already opened (beneath the root, without
    /// following symlinks: see [`open_file_beneath`]), and hashed. The copy is fsynced now
    /// when `fsync` is set, else by [`Objects::commit_all`] with the rest of its batch.
    pub fn copy_in_file(&self, src: &File, fsync: bool) -> io::Result<(TempObject, Digested)> {
        let (mut tmp, mut out) = self.temp(fsync)?;
        let d = if on_zfs(src) {
            // File to file: std uses copy_file_range, which OpenZFS turns into block
            // cloning; then the copy is read back and hashed.
            io::copy(&mut &*src, &mut out)?;
            // (copy_file_range clones the blocks without reading them: nothing to abandon.)
            // Its holes are hashed without being read (`hash::digest_file`).
            hash::digest_file(&out, None)?
        } else {
            // Elsewhere copy_file_range is a page-by-page copy in the kernel, and reading
            // the copy back a second pass: hash each block as it is read and write that
            // very block, so the object matches its checksum by construction. Only the
            // data is read and written; holes stay holes.
            hash::digest_file(src, Some(&mut out))?
        };
        if fsync {
            out.sync_all()?;
        }
        tmp.occupies = occupied(&out)?;
        Ok((tmp, d))
    }

    /// Like [`Objects::copy_in_file`], from content already read (a save the reader read
    /// at its event: `watch::pin`): hashed and written with one pass.
    pub fn copy_in_bytes(&self, bytes: &[u8], fsync: bool) -> io::Result<(TempObject, Digested)> {
        let (mut tmp, mut out) = self.temp(fsync)?;
        let d = hash::digest_copy(bytes, &mut out)?;
        if fsync {
            out.sync_all()?;
        }
        tmp.occupies = occupied(&out)?;
        Ok((tmp, d))
    }

    /// A new temp object, open for reading and writing.
    fn temp(&self, fsync: bool) -> io::Result<(TempObject, File)> {
        let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = TempObject {
            path: self
                .root
                .join("tmp")
                .join(format!("{}-{n}", std::process::id())),
            synced: fsync,
            done: false,
            occupies: 0,
        };
        let out = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp.path)?;
        Ok((tmp, out))
    }

    /// Moves a batch of temp objects into place under their names: copies not yet fsynced
    /// are made durable first by one `syncfs` of the store's filesystem (or, where that
    /// cannot be trusted, fsynced one by one in [`Objects::commit`]). One result per
    /// object, in order.
    pub fn commit_all(&self, objs: Vec<(TempObject, String)>) -> Vec<io::Result<()>> {
        let synced = if objs.iter().any(|(t, _)| !t.synced) {
            match self.sync_filesystem() {
                Ok(synced) => synced,
                Err(e) => {
                    return objs
                        .into_iter()
                        .map(|_| Err(io::Error::new(e.kind(), format!("syncfs: {e}"))))
                        .collect()
                }
            }
        } else {
            false
        };
        objs.into_iter()
            .map(|(mut tmp, sha)| {
                tmp.synced |= synced;
                self.commit(tmp, &sha)
            })
            .collect()
    }

    /// Makes everything written to the store's filesystem durable with one `syncfs`.
    /// Returns false, syncing nothing, on FUSE: it passes syncfs on only where the server
    /// implements it (zfs-fuse does not, and the call then succeeds doing nothing).
    fn sync_filesystem(&self) -> io::Result<bool> {
        let t0 = std::time::Instant::now();
        let dir = rustix::fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if fs_type(&dir) == FUSE_SUPER_MAGIC {
            return Ok(false);
        }
        rustix::fs::syncfs(&dir)?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "store synced");
        Ok(true)
    }

    /// Moves a temp object into place under its name (keeping an existing one: same name,
    /// same content).
    pub fn commit(&self, mut tmp: TempObject, sha256: &str) -> io::Result<()> {
        if !tmp.synced {
            File::open(&tmp.path)?.sync_all()?;
            tmp.synced = true;
        }
        let dest = self.path_of(sha256);
        let moved = match rename_noreplace(&tmp.path, &dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dest.parent().expect("object has a parent"))?;
                rename_noreplace(&tmp.path, &dest)
            }
            r => r,
        };
        match moved {
            Ok(()) => {
                tmp.done = true;
                let damaged = self.root.join("damaged").join(sha256);
                if std::fs::remove_file(&damaged).is_ok() {
                    tracing::info!(
                        sha256,
                        "damaged store object healed: the same content was saved again"
                    );
                }
                Ok(())
            }
            // Already stored; the temp copy is removed on drop. A stored object of another
            // length than this copy of its content is damaged (cut short, or grown): it is
            // moved aside and this copy takes its place. Same-length damage is the scrub's.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let len = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.len());
                if len(&dest)? != len(&tmp.path)? {
                    self.quarantine(sha256)?;
                    return self.commit(tmp, sha256);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Removes an object (unreferenced content).
    pub fn remove(&self, sha256: &str) {
        match std::fs::remove_file(self.path_of(sha256)) {
            Ok(()) => tracing::debug!(sha256, "object collected"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(sha256, cause = %e, "cannot remove object {sha256}: {e}"),
        }
    }

    /// Every object present, by checksum.
    pub fn list(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(self.root.join("sha256")) else {
            return out;
        };
        for d in dirs.flatten() {
            let a = d.file_name().to_string_lossy().into_owned();
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                out.push(format!("{a}{}", f.file_name().to_string_lossy()));
            }
        }
        out
    }
}

/// Why a version's content was not stored; the version is cataloged all the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStored {
    /// The metadata filesystem is down to the free space kept for the catalog
    /// (`[versions] store_reserve_mib`), or full.
    StoreFull {
        /// Bytes free on the metadata filesystem.
        free: u64,
    },
    /// The owner's stored content reached its share of the metadata filesystem
    /// (`[versions] owner_share_percent`).
    OverBudget {
        /// The owner (escaped top-level directory).
        owner: String,
        /// Bytes its stored content occupies.
        used: u64,
        /// Its budget, bytes.
        budget: u64,
    },
}

impl std::fmt::Display for NotStored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotStored::StoreFull { free } => write!(
                f,
                "content not stored: the store is full ({free} bytes free on the metadata \
                 filesystem, at or below the free space kept for the catalog)"
            ),
            NotStored::OverBudget {
                owner,
                used,
                budget,
            } => write!(
                f,
                "content not stored: owner {owner:?} is over its store budget ({used} of \
                 {budget} bytes)"
            ),
        }
    }
}

/// How many of the last content refusals `status` lists.
pub const NOT_STORED_LISTED: usize = 20;

/// What the store may still take: the free space it leaves the catalog, and each owner's
/// share; and which versions were cataloged without content, for `status`. One per
/// process, like the store ([`budget`]).
#[derive(Debug, Default)]
pub struct Budget {
    /// `(owner_share_percent, store_reserve_mib)`, from `[versions]`.
    limits: std::sync::Mutex<(u8, u64)>,
    /// Bytes each owner's stored content occupies: the catalog's count at the last
    /// [`Budget::recount`], plus what was stored since (prunes count at the next one).
    used: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// When the last recount was asked for.
    recounted: std::sync::Mutex<Option<std::time::Instant>>,
    /// Versions cataloged without content since start, and the last few (path, why),
    /// newest last.
    refused: std::sync::Mutex<(u64, std::collections::VecDeque<(String, String)>)>,
}

/// The process's [`Budget`].
pub fn budget() -> &'static Budget {
    static BUDGET: std::sync::OnceLock<Budget> = std::sync::OnceLock::new();
    BUDGET.get_or_init(|| {
        let b = Budget::default();
        b.configure(&crate::config::VersionsConfig::default());
        b
    })
}

/// How often the owners' usage is counted again from the catalog.
const RECOUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

impl Budget {
    /// Takes the limits of `[versions]` (at start and on reload).
    pub fn configure(&self, v: &crate::config::VersionsConfig) {
        *lock(&self.limits) = (v.owner_share_percent, v.store_reserve_mib);
    }

    /// Whether a recount is due (then it is taken as done: one caller counts).
    pub fn recount_due(&self) -> bool {
        let mut at = lock(&self.recounted);
        let due = at.is_none_or(|t| t.elapsed() >= RECOUNT_EVERY);
        if due {
            *at = Some(std::time::Instant::now());
        }
        due
    }

    /// Replaces the owners' usage with the catalog's count.
    pub fn recount(&self, used: std::collections::HashMap<String, u64>) {
        *lock(&self.used) = used;
    }

    /// Whether `bytes` more of `owner`'s content may go into the store under `objects`;
    /// if so they are counted to the owner at once (parallel probes see each other).
    pub fn admit(&self, objects: &Objects, owner: &str, bytes: u64) -> Result<(), NotStored> {
        let (share, reserve_mib) = *lock(&self.limits);
        // Unknown figures (statvfs failing) refuse nothing: the write itself will tell.
        let Ok(st) = rustix::fs::statvfs(&objects.root) else {
            return Ok(());
        };
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        // At most a quarter of the filesystem (a small one would keep nothing).
        let reserve = reserve_mib.saturating_mul(1 << 20).min(total / 4);
        if free < reserve.saturating_add(bytes) {
            return Err(NotStored::StoreFull { free });
        }
        let mut used = lock(&self.used);
        let mine = used.entry(owner.to_string()).or_default();
        if share < 100 {
            let budget = total / 100 * u64::from(share);
            if mine.saturating_add(bytes) > budget {
                return Err(NotStored::OverBudget {
                    owner: owner.to_string(),
                    used: *mine,
                    budget,
                });
            }
        }
        *mine += bytes;
        Ok(())
    }

    /// Notes that `path` (escaped) was cataloged without its content, and why.
    pub fn note(&self, path: String, why: &NotStored) {
        let mut r = lock(&self.refused);
        // The first and every thousandth: a full store refuses every file.
        if r.0.is_multiple_of(1000) {
            tracing::warn!(path, cause = %why, refused = r.0 + 1, "{path}: cataloged, {why}");
        } else {
            tracing::debug!(path, cause = %why, "{path}: cataloged, {why}");
        }
        r.0 += 1;
        if r.1.len() == NOT_STORED_LISTED {
            r.1.pop_front();
        }
        r.1.push_back((path, why.to_string()));
    }

    /// How many versions were cataloged without content since start, and the last few
    /// (newest first).
    pub fn refused(&self) -> (u64, Vec<(String, String)>) {
        let r = lock(&self.refused);
        (r.0, r.1.iter().rev().cloned().collect())
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `e` says the filesystem is full (ENOSPC, EDQUOT).
pub fn no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Opens directory `rel_dir` under `root` without following a symlink in any component,
/// so a link swapped in by a hostile writer cannot redirect a restore outside the tree.
pub fn open_dir_beneath(root: &Path, rel_dir: &Path) -> io::Result<OwnedFd> {
    let dir_flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(root, dir_flags, Mode::empty())?;
    for comp in rel_dir.components() {
        let Component::Normal(name) = comp else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path component is not a plain name",
            ));
        };
        fd = rustix::fs::openat(&fd, name, dir_flags | OFlags::NOFOLLOW, Mode::empty())?;
    }
    Ok(fd)
}

/// `statfs` type of OpenZFS (where copy_file_range clones blocks instead of copying).
const ZFS_SUPER_MAGIC: i64 = 0x2fc1_2fc1;
/// `statfs` type of every FUSE filesystem (zfs-fuse among them).
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// The `statfs` type of the filesystem `fd` is on (0 if unknown).
fn fs_type(fd: impl std::os::fd::AsFd) -> i64 {
    // f_type's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::fstatfs(fd).map_or(0, |s| s.f_type as i64)
}

/// Whether `f` is on OpenZFS.
fn on_zfs(f: &File) -> bool {
    fs_type(f) == ZFS_SUPER_MAGIC
}

/// Renames `from` to `to` unless `to` exists (`AlreadyExists` then). Falls back to a
/// check and a plain rename on filesystems without `RENAME_NOREPLACE`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let cwd = rustix::fs::CWD;
    match rustix::fs::renameat_with(cwd, from, cwd, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS) => {
            if to.is_file() {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            std::fs::rename(from, to)
        }
        r => r.map_err(io::Error::from),
    }
}

/// Opens `root/rel` for reading without following a symlink in any component (and
/// without blocking on a FIFO), so a directory swapped for a symlink by a hostile writer
/// cannot make the watcher read, catalog and store a file outside the tree. One
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has it (5.6+), else
/// one `openat(O_NOFOLLOW)` per component.
pub fn open_file_beneath(root: &Path, rel: &Path) -> io::Result<File> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        let root_fd = rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&root_fd, rel, flags, Mode::empty(), resolve) {
            Err(Errno::NOSYS | Errno::PERM) => {}
            r => return Ok(File::from(r?)),
        }
    }
    let dir = open_dir_beneath(root, rel.parent().unwrap_or(Path::new("")))?;
    Ok(File::from(rustix::fs::openat(
        &dir,
        name,
        flags,
        Mode::empty(),
    )?))
}

/// Writes `content` over `root/rel` atomically: a `.horace-restore-*` temp file in the same
/// directory (opened beneath `root` without following symlinks), fsync, rename. The file
/// keeps the old file's permission bits and group; a name that holds no regular file
/// gets the bits `recorded` (the version's, from the catalog) and the directory's group
/// (see [`restore_mode`] and [`restore_group`]). The copy must hash to `expected` or
/// nothing is replaced. Returns the new file's fingerprint, mode and the copy's digest.
pub fn write_over(
    root: &Path,
    rel: &Path,
    content: &Path,
    expected: &str,
    recorded: Option<u32>,
) -> io::Result<(Fingerprint, u32, Digested)> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = open_dir_beneath(root, rel.parent().unwrap_or(Path::new("")))?;
    let old = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .filter(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
    let mode = restore_mode(old.as_ref(), recorded);
    let (fd, n) = create_own_file(&dir, restore_temp_name, mode, |_| true)?;
    let tmp_name = restore_temp_name(n);
    let mut out = File::from(fd);
    let result = (|| {
        restore_group(&out, &dir, old.as_ref(), rel)?;
        // After the chown, which may clear bits; the umask does not apply to fchmod.
        rustix::fs::fchmod(&out, mode)?;
        // Hashed as it is copied, holes kept (a sparse version comes back sparse, not as
        // its length in zeros).
        let digest = hash::digest_file(&File::open(content)?, Some(&mut out))?;
        out.sync_all()?;
        if digest.sha256 != expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("content hashes to {}, not {expected}", digest.sha256),
            ));
        }
        rustix::fs::renameat(&dir, tmp_name.as_str(), &dir, name)?;
        rustix::fs::fsync(&dir)?;
        let md = out.metadata()?;
        Ok((Fingerprint::of(&md), crate::scan::mode_of(&md), digest))
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp_name.as_str(), AtFlags::empty());
    }
    result
}

/// The mode a restored file gets: the permission bits of the regular file it replaces
/// (`old`); when the name holds no regular file (absent, or a symlink, whose lstat mode
/// is 0777 and must never become the file's), the bits the version had when it was
/// cataloged (`recorded`) without world-write, else `0644`. Never setuid or setgid.
fn restore_mode(old: Option<&rustix::fs::Stat>, recorded: Option<u32>) -> Mode {
    match (old, recorded) {
        (Some(st), _) => Mode::from_raw_mode(st.st_mode & 0o1777),
        (None, Some(bits)) => Mode::from_raw_mode(bits & 0o1775),
        (None, None) => Mode::from_raw_mode(0o644),
    }
}

/// Gives the restore's temp file `out` the group of the file it replaces (`old`), or,
/// with none, of its directory `dir` (what a setgid directory gives a new file): a
/// tenant's group-writable layout then keeps its write access whoever owns the file.
/// The watcher runs unprivileged, so it can give only a group it is a member of: where
/// it cannot (`EPERM`), the file keeps the group the kernel gave it (the watcher's, or a
/// setgid directory's), and the restore goes on. The owner is always the watcher's user.
fn restore_group(
    out: &File,
    dir: &OwnedFd,
    old: Option<&rustix::fs::Stat>,
    rel: &Path,
) -> io::Result<()> {
    let want = match old {
        Some(st) => st.st_gid,
        None => rustix::fs::fstat(dir)?.st_gid,
    };
    if rustix::fs::fstat(out)?.st_gid == want {
        return Ok(());
    }
    let gid = rustix::fs::Gid::from_raw(want);
    match rustix::fs::fchown(out, None, Some(gid)) {
        Ok(()) => Ok(()),
        Err(Errno::PERM) => {
            tracing::debug!(
                path = %crate::path::escape(rel),
                gid = want,
                "restored file keeps the watcher's group: it is not a member of group {want}"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// How many random names [`create_own_file`] draws before giving up (a collision with a
/// planted name is a 2⁻⁶⁴ event per planted name; only a broken random source gets here).
const OWN_FILE_ATTEMPTS: usize = 16;

/// Creates a file of the watcher's own (a restore temp, a sync cookie) in `dir`, a
/// directory fd in the tenant-writable tree, under `name_of(n)` for a random `n`, with
/// `O_CREAT|O_EXCL|O_NOFOLLOW|O_NONBLOCK`: whatever a tenant planted at a name (link,
/// FIFO, directory, file) makes it draw another, never write through or block. A number
/// `claim` refuses is drawn again too. Returns the open file and its number.
pub fn create_own_file(
    dir: &OwnedFd,
    name_of: impl Fn(u64) -> String,
    mode: Mode,
    mut claim: impl FnMut(u64) -> bool,
) -> io::Result<(OwnedFd, u64)> {
    let flags = OFlags::CREATE
        | OFlags::EXCL
        | OFlags::RDWR
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::CLOEXEC;
    for _ in 0..OWN_FILE_ATTEMPTS {
        let n = crate::random_u64()?;
        if !claim(n) {
            continue;
        }
        let name = name_of(n);
        match rustix::fs::openat(dir, name.as_str(), flags, mode) {
            Ok(fd) => return Ok((fd, n)),
            Err(Errno::EXIST) => tracing::warn!(
                name = %crate::path::escape(Path::new(&name)),
                "something was planted at a name of the watcher's own; drawing another"
            ),
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{OWN_FILE_ATTEMPTS} names in a row were taken"),
    ))
}

/// The name of restore temp `n`.
fn restore_temp_name(n: u64) -> String {
    format!(".horace-restore-{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_in_hashes_the_copy_and_commits_once() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(&dir.path().join("meta")).unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"abc").unwrap();
        let (tmp, d) = objects.copy_in(&src).unwrap();
        let (tmp3, d3) = objects
            .copy_in_file(&File::open(&src).unwrap(), false)
            .unwrap();
        assert_eq!(d3.sha256, d.sha256);
        assert!(objects.commit_all(vec![(tmp3, d3.sha256.clone())])[0].is_ok());
        assert!(objects.contains(&d.sha256));
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        objects.commit(tmp, &d.sha256).unwrap();
        assert_eq!(std::fs::read(objects.path_of(&d.sha256)).unwrap(), b"abc");
        let (tmp2, d2) = objects.copy_in(&src).unwrap();
        objects.commit(tmp2, &d2.sha256).unwrap();
        assert_eq!(objects.list(), vec![d.sha256.clone()]);
        assert_eq!(
            std::fs::read_dir(dir.path().join("meta/objects/tmp"))
                .unwrap()
                .count(),
            0
        );
        objects.remove(&d.sha256);
        assert!(!objects.contains(&d.sha256));
    }

    #[test]
    fn write_over_refuses_symlinked_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let content = dir.path().join("c");
        std::fs::write(&content, b"new").unwrap();
        let sha = hash::digest_path(&content).unwrap().sha256;
        assert!(write_over(&root, Path::new("link/f"), &content, &sha, None).is_err());
        assert!(write_over(&root, Path::new("real/f"), &content, "00", None).is_err());
        assert_eq!(std::fs::read_dir(root.join("real")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        let (fp, _, d) = write_over(&root, Path::new("real/f"), &content, &sha, None).unwrap();
        assert_eq!(std::fs::read(root.join("real/f")).unwrap(), b"new");
        assert_eq!(fp.size, 3);
        assert_eq!(d.len, 3);
        assert_eq!(std::fs::read_dir(root.join("real")).unwrap().count(), 1);
    }

    #[test]
    fn a_restore_over_a_symlink_is_not_world_writable_and_keeps_a_file_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, root.join("f")).unwrap();
        let content = dir.path().join("c");
        std::fs::write(&content, b"new").unwrap();
        let sha = hash::digest_path(&content).unwrap().sha256;
        write_over(&root, Path::new("f"), &content, &sha, None).unwrap();
        let md = std::fs::symlink_metadata(root.join("f")).unwrap();
        assert!(md.is_file(), "the link itself was replaced");
        assert_eq!(md.permissions().mode() & 0o7777, 0o644);
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        // A regular file keeps its bits (here group-writable).
        std::fs::set_permissions(root.join("f"), std::fs::Permissions::from_mode(0o660)).unwrap();
        write_over(&root, Path::new("f"), &content, &sha, None).unwrap();
        let mode = std::fs::metadata(root.join("f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o660);
        // Only the file and the link target's directory: no temp left behind.
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
    }
}
