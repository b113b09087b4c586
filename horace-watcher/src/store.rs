//! The content store (`<metadata_dir>/objects/sha256/ab/cdef…`) and restoring a version.
//!
//! Objects are written temp → fsync → rename, named by the SHA-256 of the *copy* (so an
//! object always matches its name even when the source changes while it is copied), and
//! shared by every version with that content. Which versions keep their content is decided
//! by `catalog::ops::prune`; objects no stored version references are removed.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};

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
    /// Reading or writing failed.
    #[error("restore failed: {0}")]
    Io(String),
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
    done: bool,
}

impl Drop for TempObject {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Objects {
    /// The store under `metadata_dir/objects`, created if missing; stale temp files of
    /// an earlier run are removed.
    pub fn open(metadata_dir: &Path) -> io::Result<Self> {
        let root = metadata_dir.join("objects");
        std::fs::create_dir_all(root.join("sha256"))?;
        let _ = std::fs::remove_dir_all(root.join("tmp"));
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self { root })
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
        self.copy_in_file(&File::open(src)?)
    }

    /// Like [`Objects::copy_in`], from a file already opened (beneath the root, without
    /// following symlinks: see [`open_file_beneath`]), hashed and fsynced.
    pub fn copy_in_file(&self, src: &File) -> io::Result<(TempObject, Digested)> {
        let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = TempObject {
            path: self
                .root
                .join("tmp")
                .join(format!("{}-{n}", std::process::id())),
            done: false,
        };
        let mut out = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp.path)?;
        // File to file: std uses copy_file_range (block cloning on OpenZFS).
        io::copy(&mut &*src, &mut out)?;
        out.seek(SeekFrom::Start(0))?;
        let d = hash::digest_reader(&out)?;
        out.sync_all()?;
        Ok((tmp, d))
    }

    /// Moves a batch of temp objects (each fsynced by its probe thread, in parallel) into
    /// place under their names. One result per object, in order. (One `syncfs` per batch
    /// instead of an fsync per object was measured no faster on a busy shared disk, where it
    /// flushes everyone's dirty data, so each object is fsynced as DESIGN §5 says.)
    pub fn commit_all(&self, objs: Vec<(TempObject, String)>) -> Vec<io::Result<()>> {
        objs.into_iter()
            .map(|(tmp, sha)| self.commit(tmp, &sha))
            .collect()
    }

    /// Moves a temp object into place under its name (keeping an existing one).
    pub fn commit(&self, mut tmp: TempObject, sha256: &str) -> io::Result<()> {
        let dest = self.path_of(sha256);
        if dest.is_file() {
            return Ok(());
        }
        let dir = dest.parent().expect("object has a parent");
        std::fs::create_dir_all(dir)?;
        std::fs::rename(&tmp.path, &dest)?;
        tmp.done = true;
        Ok(())
    }

    /// Removes an object (unreferenced content).
    pub fn remove(&self, sha256: &str) {
        match std::fs::remove_file(self.path_of(sha256)) {
            Ok(()) => tracing::debug!(sha256, "object collected"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(sha256, cause = %e, "cannot remove object"),
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

/// Opens `root/rel` for reading without following a symlink in any component (and
/// without blocking on a FIFO), so a directory swapped for a symlink by a hostile writer
/// cannot make the watcher read, catalog and store a file outside the tree.
pub fn open_file_beneath(root: &Path, rel: &Path) -> io::Result<File> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = open_dir_beneath(root, rel.parent().unwrap_or(Path::new("")))?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::openat(
        &dir,
        name,
        flags,
        Mode::empty(),
    )?))
}

/// Writes `content` over `root/rel` atomically: a `.horace-restore-*` temp file in the same
/// directory (opened beneath `root` without following symlinks), fsync, rename. Keeps the
/// old file's permission bits. The temp file must hash to `expected` or nothing is
/// replaced. Returns the new file's fingerprint and the copy's digest.
pub fn write_over(
    root: &Path,
    rel: &Path,
    content: &Path,
    expected: &str,
) -> io::Result<(Fingerprint, Digested)> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = open_dir_beneath(root, rel.parent().unwrap_or(Path::new("")))?;
    let mode = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Mode::from_raw_mode(st.st_mode & 0o7777),
        Err(_) => Mode::from_raw_mode(0o644),
    };
    let tmp_name = format!(
        ".horace-restore-{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&dir, tmp_name.as_str(), flags, mode)?;
    let mut out = File::from(fd);
    let result = (|| {
        rustix::fs::fchmod(&out, mode)?;
        io::copy(&mut File::open(content)?, &mut out)?;
        out.sync_all()?;
        out.seek(SeekFrom::Start(0))?;
        let digest = hash::digest_reader(&out)?;
        if digest.sha256 != expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("content hashes to {}, not {expected}", digest.sha256),
            ));
        }
        rustix::fs::renameat(&dir, tmp_name.as_str(), &dir, name)?;
        rustix::fs::fsync(&dir)?;
        let md = out.metadata()?;
        Ok((Fingerprint::of(&md), digest))
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp_name.as_str(), AtFlags::empty());
    }
    result
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
        let (tmp3, d3) = objects.copy_in_file(&File::open(&src).unwrap()).unwrap();
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
        let sha = hash::digest_file(&content).unwrap().sha256;
        assert!(write_over(&root, Path::new("link/f"), &content, &sha).is_err());
        assert!(write_over(&root, Path::new("real/f"), &content, "00").is_err());
        assert_eq!(std::fs::read_dir(root.join("real")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        let (fp, d) = write_over(&root, Path::new("real/f"), &content, &sha).unwrap();
        assert_eq!(std::fs::read(root.join("real/f")).unwrap(), b"new");
        assert_eq!(fp.size, 3);
        assert_eq!(d.len, 3);
        assert_eq!(std::fs::read_dir(root.join("real")).unwrap().count(), 1);
    }
}
