//! Looking at files on disk: the ignore rules, the walk of the tree (symlinks never
//! followed), and the probe that turns one path into "unchanged" or new content (copied
//! into the store, hashed, checked for changes while it was read), run in parallel.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::catalog::ops::{NewContent, Row};
use crate::hash::{self, Fingerprint};
use crate::now_ns;
use crate::store::{Objects, TempObject};

mod lane;
pub use lane::Lane;

/// Names of the sync barrier's cookie files (in the root; never cataloged).
pub const COOKIE_PREFIX: &str = ".horace-sync-";
/// Names of restore temp files (never cataloged).
pub const RESTORE_PREFIX: &str = ".horace-restore-";

/// The configured ignore patterns, matched against a file's base name, plus Horace's own
/// temp names and the catalog marker (`crate::guard::MARKER`), which are ignored whatever the configuration says. Clones share the
/// patterns, so a reload ([`Ignore::replace_with`]) reaches every holder.
#[derive(Debug, Clone)]
pub struct Ignore {
    set: Arc<RwLock<GlobSet>>,
}

impl Ignore {
    /// Compiles the patterns (already validated by `Config::check`).
    pub fn new(patterns: &[String]) -> Result<Self, globset::Error> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(Glob::new(p)?);
        }
        Ok(Self {
            set: Arc::new(RwLock::new(b.build()?)),
        })
    }

    /// Makes every clone of `self` use the patterns of `other`.
    pub fn replace_with(&self, other: &Ignore) {
        let new = other.set.read().unwrap_or_else(|e| e.into_inner()).clone();
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = new;
    }

    /// Whether a file with this base name is never cataloged.
    pub fn is_ignored(&self, name: &OsStr) -> bool {
        let b = name.as_bytes();
        b.starts_with(COOKIE_PREFIX.as_bytes())
            || b.starts_with(RESTORE_PREFIX.as_bytes())
            || b.starts_with(crate::guard::MARKER.as_bytes())
            || self
                .set
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_match(Path::new(name))
    }
}

/// How closely a file must match its catalog row to be taken as unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Size, mtime, ctime and inode (the reconcile scan, close-after-write).
    Strict,
    /// Size, mtime and inode (after a rename, which moves the ctime).
    Relaxed,
    /// An attribute change (IN_ATTRIB) alone: compared as `Relaxed`, never read. Samba
    /// sets a new file's attributes before it writes a byte, and an in-place writer's
    /// truncate moves the ctime before its data: a read then would catalog a version
    /// that was never saved. The write's own close-after-write catalogs the content;
    /// a file not matching its row is [`Probe::Covered`].
    Attributes,
    /// Always read the content (a close-after-write).
    Force,
    /// Always read the content, at once and here, even a big file (not handed to the
    /// big-file lane): a restore stores the current content first.
    ForceHere,
}

/// What a probe of one path found.
#[derive(Debug, Clone)]
pub enum Probe {
    /// Same as the catalog row (its content, with fresh stat figures).
    Unchanged(NewContent),
    /// Content read (and stored unless too big).
    Hashed(NewContent),
    /// Nothing at that path now.
    Missing,
    /// A directory, symlink, socket…: not cataloged.
    NotRegular,
    /// The file changed while it was read: look again shortly.
    Changing,
    /// The file changed after the time given to the probe, while its directory was
    /// watched: the inotify events of that change are still queued (a close-after-write
    /// comes when the writer closes it), so they, not this probe, catalog it. Reading it
    /// now could catch a rewrite between its truncate and its write.
    Covered,
    /// Reading failed (permission, I/O): retry with backoff.
    Failed(String),
    /// A big file handed to the big-file lane ([`Lane`]): it is probed again when the
    /// lane has read it.
    InLane,
}

/// The known row's content, when `fp` says the file is still what `known` recorded (by
/// `compare`'s rule) and a checksum is recorded: nothing to read.
fn unchanged(
    known: Option<&Row>,
    compare: Compare,
    fp: Fingerprint,
    mode: Option<u32>,
) -> Option<NewContent> {
    let row = known?;
    let same = match compare {
        Compare::Strict => row.fp.same_strict(&fp),
        Compare::Relaxed | Compare::Attributes => row.fp.same_relaxed(&fp),
        Compare::Force | Compare::ForceHere => false,
    };
    let sha = row.sha256.as_ref().filter(|_| same)?;
    Some(NewContent {
        sha256: sha.clone(),
        fp,
        mime: row.mime.clone().unwrap_or_default(),
        stored: row.content_stored,
        restored_from: None,
        mode,
        stored_bytes: None,
    })
}

/// The permission bits of `md`, as recorded with a version.
pub fn mode_of(md: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

/// What a probe needs to know about the store.
#[derive(Debug, Clone)]
pub struct Prober {
    /// The files root.
    pub root: PathBuf,
    /// The content store.
    pub objects: Objects,
    /// Files larger than this are hashed but not stored.
    pub max_stored: u64,
    /// Where files of `lane_from` bytes or more are read.
    pub lane: Lane,
    /// `[versions] lane_file_size`.
    pub lane_from: u64,
}

impl Prober {
    /// Looks at `rel`, then settles the copy in the store: see [`Prober::probe_unsettled`]
    /// and [`Prober::settle`].
    pub fn probe(&self, rel: &Path, known: Option<&Row>, compare: Compare) -> Probe {
        self.settle(vec![self.probe_unsettled(rel, known, compare, true, None)])
            .remove(0)
    }

    /// Moves the copies of a batch of probes into the store (one `syncfs` for those not
    /// fsynced yet); a probe whose copy cannot be stored becomes [`Probe::Failed`].
    pub fn settle(&self, probed: Vec<(Probe, Option<(TempObject, String)>)>) -> Vec<Probe> {
        let mut probes = Vec::with_capacity(probed.len());
        let mut pending = Vec::new();
        let mut at = Vec::new();
        for (i, (probe, tmp)) in probed.into_iter().enumerate() {
            if let Some(t) = tmp {
                pending.push(t);
                at.push(i);
            }
            probes.push(probe);
        }
        for (i, r) in at.into_iter().zip(self.objects.commit_all(pending)) {
            match (r, &mut probes[i]) {
                (Ok(()), _) => {}
                // The store filled up: the version is cataloged without its content.
                (Err(e), Probe::Hashed(c)) if crate::store::no_space(&e) => {
                    c.stored = false;
                    c.stored_bytes = None;
                    // (A settle does not know the path: the content is named.)
                    let what = format!("content {}", c.sha256);
                    crate::store::budget().note(what, &self.store_full());
                }
                (Err(e), probe) => *probe = Probe::Failed(format!("cannot store content: {e}")),
            }
        }
        probes
    }

    /// Looks at `rel`: compares it with `known`, else copies it into a temp object (or
    /// hashes it in place when too big) and makes sure it did not change meanwhile. The
    /// copy, if any, is returned with its checksum for [`Prober::settle`]; it is fsynced
    /// now if `fsync` (a batch of one), else with its batch in `settle`.
    ///
    /// With `covered_after` (unix ns; the directory was watched from then on, and the
    /// events from then on are still to be handled), a file whose mtime is later (and not
    /// in the future: a clock set back) is [`Probe::Covered`] and not read: its content
    /// changed since, and that write's events (on this name) catalog it. The ctime is not
    /// the test: a link(2) or unlink(2) of another name of the inode moves it with no
    /// event on this name (git links `tmp_obj_*` to the object's name, then unlinks the
    /// temp name: the object was left uncataloged).
    pub fn probe_unsettled(
        &self,
        rel: &Path,
        known: Option<&Row>,
        compare: Compare,
        fsync: bool,
        covered_after: Option<i64>,
    ) -> (Probe, Option<(TempObject, String)>) {
        let p = |probe: Probe| (probe, None);
        crate::watch::liveness::note_work(1);
        let abs = self.root.join(rel);
        let md = match std::fs::symlink_metadata(&abs) {
            Ok(md) => md,
            Err(e) if gone(&e) => return p(Probe::Missing),
            Err(e) => return p(Probe::Failed(e.to_string())),
        };
        if !md.is_file() {
            return p(Probe::NotRegular);
        }
        let fp = Fingerprint::of(&md);
        let mode = Some(mode_of(&md));
        if let Some(same) = unchanged(known, compare, fp, mode) {
            return p(Probe::Unchanged(same));
        }
        if compare == Compare::Attributes
            || covered_after.is_some_and(|t| fp.mtime_ns > t && fp.mtime_ns <= now_ns())
        {
            return p(Probe::Covered);
        }
        // A sparse file counts by the bytes it occupies, not its length.
        let occupies = {
            use std::os::unix::fs::MetadataExt;
            (md.blocks() * 512).min(md.size())
        };
        // A big file is read by the lane, not here (a restore's own look excepted); it is
        // admitted to the store (and counted to its owner) once, when handed over.
        let lane_bound = fp.size as u64 >= self.lane_from && compare != Compare::ForceHere;
        let (from_lane, (mut store, mut refused)) = match lane_bound {
            true => match self.lane.take(rel, fp) {
                Some((read, store, refused)) => (Some(read), (store, refused)),
                None => {
                    let (store, refused) = self.admit(rel, occupies);
                    self.lane
                        .submit(&self.root, &self.objects, rel, fp, store, refused);
                    return p(Probe::InLane);
                }
            },
            false => (None, self.admit(rel, occupies)),
        };
        // Read through a descriptor opened beneath the root with no symlink followed in
        // any component: a directory on the path swapped for a symlink (after the
        // `symlink_metadata` above) reads as missing, never as a file outside the tree.
        let file = match crate::store::open_file_beneath(&self.root, rel) {
            Ok(f) => f,
            Err(e) if gone(&e) => return p(Probe::Missing),
            Err(e) => return p(Probe::Failed(e.to_string())),
        };
        match file.metadata() {
            Ok(md) if md.is_file() && Fingerprint::of(&md) == fp => {}
            Ok(md) if !md.is_file() => return p(Probe::NotRegular),
            Ok(_) => return p(Probe::Changing),
            Err(e) => return p(Probe::Failed(e.to_string())),
        }
        let read = if let Some(read) = from_lane {
            match read {
                lane::Read::Done(tmp, d) => {
                    // Stored unless the store filled up under the lane's copy.
                    if store && tmp.is_none() {
                        (store, refused) = (false, Some(self.store_full()));
                    }
                    Ok((tmp, d))
                }
                lane::Read::Gone => return p(Probe::Missing),
                lane::Read::Changed => return p(Probe::Changing),
                lane::Read::Failed(why) => return p(Probe::Failed(why)),
            }
        } else if store {
            match self.objects.copy_in_file(&file, fsync) {
                // The store filled up under the copy: hashed, cataloged without content.
                Err(e) if crate::store::no_space(&e) => {
                    (store, refused) = (false, Some(self.store_full()));
                    hash::digest_file(&file, None).map(|d| (None, d))
                }
                r => r.map(|(tmp, d)| (Some(tmp), d)),
            }
        } else {
            hash::digest_file(&file, None).map(|d| (None, d))
        };
        let (tmp, d) = match read {
            Ok(x) => x,
            Err(e) if gone(&e) => return p(Probe::Missing),
            Err(e) if hash::changed(&e) => return p(Probe::Changing),
            Err(e) => return p(Probe::Failed(e.to_string())),
        };
        let after = match std::fs::symlink_metadata(&abs) {
            Ok(md) => Fingerprint::of(&md),
            Err(e) if gone(&e) => return p(Probe::Missing),
            Err(e) => return p(Probe::Failed(e.to_string())),
        };
        let after_fd = file.metadata().map(|md| Fingerprint::of(&md)).ok();
        if after != fp || after_fd != Some(fp) || d.len != fp.size as u64 {
            tracing::debug!(path = %abs.display(), "changed while read; looking again");
            return p(Probe::Changing);
        }
        self.note_refused(rel, refused);
        hashed(rel, fp, mode, store, tmp, d)
    }

    /// Whether content of `occupies` bytes at `rel` is stored: not past
    /// `max_stored`, nor when the store is full or the owner over its budget (the
    /// refusal is returned, to be noted once the version is cataloged).
    fn admit(&self, rel: &Path, occupies: u64) -> (bool, Option<crate::store::NotStored>) {
        if occupies > self.max_stored {
            return (false, None);
        }
        match crate::store::budget().admit(&self.objects, &crate::path::owner_of(rel), occupies) {
            Ok(()) => (true, None),
            Err(why) => (false, Some(why)),
        }
    }

    /// The refusal of a store that reported itself full.
    fn store_full(&self) -> crate::store::NotStored {
        let free = rustix::fs::statvfs(self.objects.root())
            .map_or(0, |st| st.f_bavail.saturating_mul(st.f_frsize));
        crate::store::NotStored::StoreFull { free }
    }

    /// Notes, for `status`, that `rel` is cataloged without its content.
    fn note_refused(&self, rel: &Path, refused: Option<crate::store::NotStored>) {
        if let Some(why) = refused {
            crate::store::budget().note(crate::path::escape(rel), &why);
        }
    }
}

impl Prober {
    /// Like [`Prober::probe_unsettled`], for a save pinned at its event
    /// (`watch::pin`): the content is the pinned one, whatever the path holds now. Content
    /// read by the reader is hashed and stored as it is; a pinned descriptor is read here
    /// and must keep the fingerprint of the event before and after the read, else a later
    /// write began ([`Probe::Changing`]: the caller looks at the path instead).
    pub fn probe_pinned(
        &self,
        rel: &Path,
        pin: &crate::watch::pin::Pinned,
        known: Option<&Row>,
        compare: Compare,
        fsync: bool,
    ) -> (Probe, Option<(TempObject, String)>) {
        use crate::watch::pin::Held;
        use std::io::{Seek, SeekFrom};
        let p = |probe: Probe| (probe, None);
        crate::watch::liveness::note_work(1);
        let fp = pin.fp;
        let mode = Some(pin.mode);
        if let Some(same) = unchanged(known, compare, fp, mode) {
            return p(Probe::Unchanged(same));
        }
        // A big file is read by the big-file lane, by path: as a pinned save whose
        // descriptor changed, the caller looks at the path instead.
        if fp.size as u64 >= self.lane_from && matches!(pin.held, Held::File(_)) {
            return p(Probe::Changing);
        }
        let occupies = match &pin.held {
            Held::File(f) => f.metadata().map_or(fp.size as u64, |md| {
                use std::os::unix::fs::MetadataExt;
                (md.blocks() * 512).min(md.size())
            }),
            Held::Bytes(b) => b.len() as u64,
        };
        let (store, refused) = self.admit(rel, occupies);
        let read = match &pin.held {
            Held::Bytes(b) if store => self
                .objects
                .copy_in_bytes(b, fsync)
                .map(|(tmp, d)| (Some(tmp), d)),
            Held::Bytes(b) => hash::digest_reader(&b[..]).map(|d| (None, d)),
            Held::File(file) => {
                let now = file.metadata().map(|md| Fingerprint::of(&md));
                match now {
                    Ok(now) if now == fp => {}
                    Ok(_) => return p(Probe::Changing),
                    Err(e) => return p(Probe::Failed(e.to_string())),
                }
                let read = (&*file).seek(SeekFrom::Start(0)).and_then(|_| {
                    if store {
                        self.objects
                            .copy_in_file(file, fsync)
                            .map(|(tmp, d)| (Some(tmp), d))
                    } else {
                        hash::digest_file(file, None).map(|d| (None, d))
                    }
                });
                // Open for writing now: not (or no longer) a completed save's content.
                let writing = crate::watch::pin::open_for_writing(file) == Some(true);
                let after = file.metadata().map(|md| Fingerprint::of(&md)).ok();
                match read {
                    Ok((_, ref d)) if writing || after != Some(fp) || d.len != fp.size as u64 => {
                        return p(Probe::Changing)
                    }
                    r => r,
                }
            }
        };
        let (tmp, d) = match read {
            Ok(x) => x,
            // A big file replaced or deleted while read is given up (`hash::digest_file`): the
            // events that replaced it take over.
            Err(e) if gone(&e) => return p(Probe::Missing),
            Err(e) => return p(Probe::Failed(e.to_string())),
        };
        self.note_refused(rel, refused);
        hashed(rel, fp, mode, store, tmp, d)
    }
}

/// A read that kept its fingerprint: the new content, and its temp object (if copied)
/// with its checksum for [`Prober::settle`].
fn hashed(
    rel: &Path,
    fp: Fingerprint,
    mode: Option<u32>,
    stored: bool,
    tmp: Option<TempObject>,
    d: hash::Digested,
) -> (Probe, Option<(TempObject, String)>) {
    let mime = hash::mime_of(rel, &d.prefix, d.len);
    let stored_bytes = tmp.as_ref().map(TempObject::occupies);
    let pending = tmp.map(|t| (t, d.sha256.clone()));
    let probe = Probe::Hashed(NewContent {
        sha256: d.sha256,
        fp,
        mime,
        stored,
        restored_from: None,
        mode,
        stored_bytes,
    });
    (probe, pending)
}

fn gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
    )
}

/// Runs `f` over `items` on `threads` threads; results in input order.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut Option<R>>> =
        out.iter_mut().map(std::sync::Mutex::new).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                **slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    drop(slots);
    out.into_iter()
        .map(|r| r.expect("every item mapped"))
        .collect()
}

/// What a walk of the tree found.
#[derive(Debug, Default)]
pub struct Walked {
    /// Regular, not ignored files: relative path and fingerprint.
    pub files: Vec<(PathBuf, Fingerprint)>,
    /// Directories listed.
    pub dirs: u64,
    /// Directories that could not be listed (their files must not be marked deleted).
    pub unreadable: Vec<PathBuf>,
}

/// Walks the tree under `root` without following symlinks. `before_list` runs for each
/// directory before it is listed (the watcher adds its inotify watch there, so nothing
/// created while the walk runs is missed).
pub fn walk(root: &Path, start: &Path, ignore: &Ignore, before_list: impl FnMut(&Path)) -> Walked {
    let mut files = Vec::new();
    let mut w = walk_each(root, start, ignore, before_list, |rel, fp| {
        files.push((rel, fp))
    });
    w.files = files;
    w
}

/// Like [`walk`], handing each file to `on_file` as it is found instead of collecting
/// them (`files` stays empty): a scan of a million files compares as it goes.
pub fn walk_each(
    root: &Path,
    start: &Path,
    ignore: &Ignore,
    mut before_list: impl FnMut(&Path),
    mut on_file: impl FnMut(PathBuf, Fingerprint),
) -> Walked {
    let mut w = Walked::default();
    let mut stack = vec![start.to_path_buf()];
    while let Some(dir) = stack.pop() {
        before_list(&dir);
        crate::watch::liveness::note_work(1);
        let rd = match std::fs::read_dir(root.join(&dir)) {
            Ok(rd) => rd,
            Err(e) => {
                if !gone(&e) {
                    tracing::warn!(
                        dir = %dir.display(),
                        cause = %e,
                        "cannot list directory {}: {e}",
                        crate::path::escape(&dir)
                    );
                    w.unreadable.push(dir);
                }
                continue;
            }
        };
        w.dirs += 1;
        for entry in rd.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let rel = dir.join(entry.file_name());
            if ft.is_dir() {
                stack.push(rel);
            } else if ft.is_file() && !ignore.is_ignored(&entry.file_name()) {
                if let Ok(md) = std::fs::symlink_metadata(entry.path()) {
                    on_file(rel, Fingerprint::of(&md));
                }
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules() {
        let ig = Ignore::new(&crate::config::default_ignore()).unwrap();
        for n in [
            "a.tmp",
            "a~",
            ".#a",
            ".a.swp",
            ".horace-x",
            ".horace-sync-3",
        ] {
            assert!(ig.is_ignored(OsStr::new(n)), "{n}");
        }
        for n in ["a.txt", "tmp", "a.tmp.txt"] {
            assert!(!ig.is_ignored(OsStr::new(n)), "{n}");
        }
        let none = Ignore::new(&[]).unwrap();
        assert!(none.is_ignored(OsStr::new(".horace-sync-1")));
        assert!(none.is_ignored(OsStr::new(".horace-restore-1")));
        assert!(!none.is_ignored(OsStr::new("a.tmp")));
        let shared = none.clone();
        none.replace_with(&Ignore::new(&["*.tmp".to_string()]).unwrap());
        assert!(
            shared.is_ignored(OsStr::new("a.tmp")),
            "clones see a reload"
        );
    }

    #[test]
    fn walk_skips_symlinks_and_ignored_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), "x").unwrap();
        std::fs::write(d.path().join("a/x.tmp"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("b/f", d.path().join("a/lf")).unwrap();
        let mut seen_dirs = Vec::new();
        let w = walk(
            d.path(),
            Path::new(""),
            &Ignore::new(&crate::config::default_ignore()).unwrap(),
            |p| seen_dirs.push(p.to_path_buf()),
        );
        assert_eq!(
            w.files.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            [PathBuf::from("a/b/f")]
        );
        assert_eq!(w.dirs, 3);
        assert_eq!(seen_dirs.len(), 3);
    }

    #[test]
    fn probe_detects_unchanged_and_stores_content() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("f.txt"), "hello").unwrap();
        let p = Prober {
            root: root.clone(),
            objects: Objects::open(&d.path().join("m")).unwrap(),
            max_stored: 3,
            lane: Lane::default(),
            lane_from: u64::MAX,
        };
        let Probe::Hashed(c) = p.probe(Path::new("f.txt"), None, Compare::Strict) else {
            panic!()
        };
        assert!(!c.stored, "bigger than max_stored");
        assert_eq!(c.mime, "text/plain");
        let p = Prober {
            max_stored: 1 << 20,
            ..p
        };
        let Probe::Hashed(c) = p.probe(Path::new("f.txt"), None, Compare::Strict) else {
            panic!()
        };
        assert!(c.stored && p.objects.contains(&c.sha256));
        let row = Row {
            id: 1,
            path: "f.txt".into(),
            status: "active".into(),
            fp: c.fp,
            current_version: Some(1),
            sha256: Some(c.sha256.clone()),
            content_stored: true,
            mime: None,
        };
        assert!(matches!(
            p.probe(Path::new("f.txt"), Some(&row), Compare::Strict),
            Probe::Unchanged(_)
        ));
        assert!(matches!(
            p.probe(Path::new("nope"), None, Compare::Strict),
            Probe::Missing
        ));
        assert!(matches!(
            p.probe(Path::new(""), None, Compare::Strict),
            Probe::NotRegular
        ));
        assert_eq!(par_map(&[1, 2, 3, 4, 5], 2, |x| x * 2), [2, 4, 6, 8, 10]);
    }

    #[test]
    fn a_change_after_covered_after_is_left_to_its_events() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), "x").unwrap();
        let mtime = Fingerprint::of(&std::fs::metadata(d.path().join("f")).unwrap()).mtime_ns;
        let p = Prober {
            root: d.path().to_path_buf(),
            objects: Objects::open(&d.path().join("m")).unwrap(),
            max_stored: 1 << 20,
            lane: Lane::default(),
            lane_from: u64::MAX,
        };
        let probe = |after| {
            p.probe_unsettled(Path::new("f"), None, Compare::Strict, true, after)
                .0
        };
        assert!(matches!(probe(Some(mtime - 1)), Probe::Covered));
        assert!(matches!(probe(Some(mtime)), Probe::Hashed(_)), "not later");
        assert!(matches!(probe(None), Probe::Hashed(_)));
    }

    /// git's object write: the content is complete under a temp name, linked to its
    /// final name, then the temp name unlinked. The unlink moves the inode's ctime with no
    /// event on the final name, so a recheck of the final name must still read it.
    #[test]
    fn a_link_count_change_after_covered_after_is_still_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("tmp_obj_x"), "blob").unwrap();
        std::fs::hard_link(d.path().join("tmp_obj_x"), d.path().join("obj")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let listed = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::remove_file(d.path().join("tmp_obj_x")).unwrap();
        let md = std::fs::metadata(d.path().join("obj")).unwrap();
        assert!(
            Fingerprint::of(&md).ctime_ns > listed,
            "the unlink moved the ctime"
        );
        let p = Prober {
            root: d.path().to_path_buf(),
            objects: Objects::open(&d.path().join("m")).unwrap(),
            max_stored: 1 << 20,
            lane: Lane::default(),
            lane_from: u64::MAX,
        };
        let probe = p.probe_unsettled(Path::new("obj"), None, Compare::Strict, true, Some(listed));
        assert!(matches!(probe.0, Probe::Hashed(_)), "{:?}", probe.0);
    }

    #[test]
    fn an_attribute_change_never_reads_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), "").unwrap();
        let p = Prober {
            root: d.path().to_path_buf(),
            objects: Objects::open(&d.path().join("m")).unwrap(),
            max_stored: 1 << 20,
            lane: Lane::default(),
            lane_from: u64::MAX,
        };
        // A new file (Samba's first ATTRIB comes before its data): not read.
        assert!(matches!(
            p.probe(Path::new("f"), None, Compare::Attributes),
            Probe::Covered
        ));
        let Probe::Hashed(c) = p.probe(Path::new("f"), None, Compare::Strict) else {
            panic!()
        };
        let row = Row {
            id: 1,
            path: "f".into(),
            status: "active".into(),
            fp: c.fp,
            current_version: Some(1),
            sha256: Some(c.sha256.clone()),
            content_stored: true,
            mime: None,
        };
        // A chmod of a cataloged file: unchanged, with the fresh ctime.
        std::fs::set_permissions(d.path().join("f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert!(matches!(
            p.probe(Path::new("f"), Some(&row), Compare::Attributes),
            Probe::Unchanged(_)
        ));
        // An in-place rewrite whose truncate is seen as an attribute change: its
        // close-after-write will read it, this does not.
        std::fs::write(d.path().join("f"), "new content").unwrap();
        assert!(matches!(
            p.probe(Path::new("f"), Some(&row), Compare::Attributes),
            Probe::Covered
        ));
    }
}
