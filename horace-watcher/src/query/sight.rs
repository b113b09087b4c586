//! What a caller may see of the tree (issue 12 item 9): a file's name only if the caller
//! could list every directory on its path, its checksums only if it could also read the
//! file — decided from the owners and modes on disk at the time of the query, as the
//! kernel would decide an `ls` or a `cat` by the same uid.
//!
//! Root, the watcher's own uid, writers and `[query] readers` see everything, and so does
//! every caller with `[query] visibility = "everyone"`. A TCP client proves a token, not an
//! identity: it sees what any uid could (the "other" permission bits).
//!
//! The checks never follow a link: each directory on the path is `fstatat`ed with
//! `AT_SYMLINK_NOFOLLOW` beneath the root's descriptor and must be a directory; a name
//! whose directories cannot be examined (gone, replaced, unreadable to the watcher) is
//! hidden. POSIX ACL entries are not consulted: the mode bits decide (a file shared with a
//! named user through an ACL alone is hidden from that user).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use horace_client::{
    DuplicatesQuery, DuplicatesResult, FileInfo, QueryError, SearchResult, VersionInfo,
};
use rusqlite::Connection;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::search::{self, Built, Hidden};
use super::sql::{not_found_file, Res, Target};
use crate::watch::WatchedDir;

/// Read permission, in the mode's 3-bit class.
const READ: u32 = 4;
/// Search (execute) permission.
const SEARCH: u32 = 1;

/// What one caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sight {
    /// Every name and every checksum.
    Everything,
    /// What these credentials could list and read on disk.
    Permissions(Viewer),
}

/// The credentials the permission bits are tested against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Viewer {
    /// The uid; `None` for a caller with no uid (TCP), which only the "other" bits admit.
    pub uid: Option<u32>,
    /// The primary gid and the supplementary groups `/etc/group` gives the uid's name.
    pub gids: Vec<u32>,
}

impl Viewer {
    /// A local uid with its primary gid and the groups listed for its name in
    /// `/etc/group` (a container's uid that the host does not know has its primary gid
    /// only: SO_PEERCRED does not carry supplementary groups).
    pub fn local(uid: u32, gid: u32) -> Self {
        let mut gids = vec![gid];
        if let Some(name) = user_name(uid) {
            gids.extend(groups_of(&name));
        }
        gids.sort_unstable();
        gids.dedup();
        Self {
            uid: Some(uid),
            gids,
        }
    }

    /// A caller with no uid: only the "other" permission bits admit it.
    pub fn anyone() -> Self {
        Self {
            uid: None,
            gids: Vec::new(),
        }
    }

    /// Whether `mode`, owned by `uid`:`gid`, grants every bit of `want` (a 3-bit class
    /// value) to this viewer: the owner's bits for the owner, else the group's for a
    /// member, else the others' (as the kernel picks exactly one class).
    fn may(&self, uid: u32, gid: u32, mode: u32, want: u32) -> bool {
        let class = if self.uid == Some(uid) {
            mode >> 6
        } else if self.gids.contains(&gid) {
            mode >> 3
        } else {
            mode
        };
        class & want == want
    }
}

fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

fn groups_of(name: &str) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string("/etc/group") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let (gid, members) = (f.get(2)?.parse::<u32>().ok()?, f.get(3)?);
            members.split(',').any(|m| m == name).then_some(gid)
        })
        .collect()
}

/// Permission checks for one request, with the directories already examined remembered.
pub struct Seer {
    root: Option<OwnedFd>,
    viewer: Viewer,
    /// Directory (unescaped, relative) → whether the viewer could list it and every
    /// directory above it.
    open: HashMap<Vec<u8>, bool>,
}

/// `lstat` beneath `root`: (uid, gid, mode bits, file type), or `None`.
fn stat_at(root: &OwnedFd, rel: &[u8]) -> Option<(u32, u32, u32, FileType)> {
    let path: &[u8] = if rel.is_empty() { b"." } else { rel };
    let st = rustix::fs::statat(root, path, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    Some((
        st.st_uid,
        st.st_gid,
        st.st_mode & 0o7777,
        FileType::from_raw_mode(st.st_mode),
    ))
}

/// Number of components of a relative path (`""` has none).
fn depth(rel: &[u8]) -> usize {
    if rel.is_empty() {
        0
    } else {
        1 + rel.iter().filter(|&&b| b == b'/').count()
    }
}

fn parent(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => &rel[..i],
        None => b"",
    }
}

impl Seer {
    /// Checks for `viewer` beneath `files_root` (opened once; if it cannot be, nothing is
    /// visible).
    pub fn new(files_root: &Path, viewer: Viewer) -> Self {
        let root = rustix::fs::open(
            files_root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        Self {
            root,
            viewer,
            open: HashMap::new(),
        }
    }

    /// Whether the viewer could list directory `rel` (unescaped; `""` is the root) and
    /// search every directory above it.
    fn dir_open(&mut self, rel: &[u8]) -> bool {
        if let Some(&o) = self.open.get(rel) {
            return o;
        }
        let above = rel.is_empty() || self.dir_open(parent(rel));
        let o = above
            && self
                .root
                .as_ref()
                .and_then(|r| stat_at(r, rel))
                .is_some_and(|(uid, gid, mode, kind)| {
                    kind == FileType::Directory && self.viewer.may(uid, gid, mode, READ | SEARCH)
                });
        self.open.insert(rel.to_vec(), o);
        o
    }

    /// Whether the viewer may see the name `rel` (an escaped catalog path).
    pub fn name_visible(&mut self, rel: &str) -> bool {
        match crate::path::unescape_bytes(rel) {
            Some(bytes) => self.dir_open(parent(&bytes)),
            None => false,
        }
    }

    /// Whether the viewer may see the checksums of `rel` (an escaped catalog path): its
    /// name is visible and a regular file there is readable to it. A file no longer on
    /// disk shows its checksums to nobody but those who see everything.
    pub fn content_visible(&mut self, rel: &str) -> bool {
        let Some(bytes) = crate::path::unescape_bytes(rel) else {
            return false;
        };
        if !self.dir_open(parent(&bytes)) {
            return false;
        }
        self.root
            .as_ref()
            .and_then(|r| stat_at(r, &bytes))
            .is_some_and(|(uid, gid, mode, kind)| {
                kind == FileType::RegularFile && self.viewer.may(uid, gid, mode, READ)
            })
    }

    /// The topmost of `dirs` (the watched directories with the owners and modes the watch
    /// map last saw) the viewer cannot list, as escaped catalog paths: everything beneath
    /// them is hidden ([`Hidden::All`] when the root itself is closed). Decided in memory;
    /// only a directory whose parent is not watched is looked at on disk. A directory that
    /// is not watched is not left out here (each file of a page is checked on disk).
    pub fn hidden_dirs(&mut self, mut dirs: Vec<WatchedDir>) -> Hidden {
        use std::os::unix::ffi::OsStrExt;
        dirs.sort_by_key(|d| depth(d.path.as_os_str().as_bytes()));
        // Directory → whether the viewer could list it and every directory above it.
        let mut open: HashMap<&[u8], bool> = HashMap::with_capacity(dirs.len());
        let mut hidden: Vec<&[u8]> = Vec::new();
        let mut root_open = None;
        for d in &dirs {
            let b = d.path.as_os_str().as_bytes();
            let may_list = d
                .attrs
                .is_some_and(|a| self.viewer.may(a.uid, a.gid, a.mode, READ | SEARCH));
            if b.is_empty() {
                root_open = Some(may_list);
                open.insert(b, may_list);
                continue;
            }
            let up = parent(b);
            let (above, watched_parent) = match open.get(up) {
                Some(&o) => (o, true),
                None if up.is_empty() => {
                    (*root_open.get_or_insert_with(|| self.dir_open(b"")), true)
                }
                None => (self.dir_open(up), false),
            };
            // The topmost closed directories; below a closed parent that is not watched
            // (so not in the list itself) too.
            if (above && !may_list) || (!above && !watched_parent) {
                hidden.push(b);
            }
            open.insert(b, above && may_list);
        }
        if !root_open.unwrap_or_else(|| self.dir_open(b"")) {
            return Hidden::All;
        }
        hidden.sort_unstable();
        Hidden::Under(
            hidden
                .iter()
                .map(|h| crate::path::escape_bytes(h))
                .collect(),
        )
    }
}

/// How long a viewer's hidden directories are reused once the watched directories or
/// their modes have changed (by every connection of that viewer: a `horace search` is a
/// new connection each time). While nothing changed they are reused as they are.
pub const HIDDEN_FOR: Duration = Duration::from_secs(1);

/// Most viewers whose hidden directories are remembered at once.
const HIDDEN_VIEWERS: usize = 256;

/// Per viewer: when its hidden directories were found, from which generation of the
/// watched directories, and what they are.
type HiddenCache = HashMap<Viewer, (Instant, u64, Hidden)>;
static HIDDEN: Mutex<Option<HiddenCache>> = Mutex::new(None);

/// The directories `seer`'s viewer may not see. `generation` is that of the watched
/// directories now; `dirs` lists them (asked for only when the remembered answer is of
/// another generation and older than [`HIDDEN_FOR`]).
pub fn hidden_for(
    seer: &mut Seer,
    generation: u64,
    dirs: impl FnOnce() -> (u64, Vec<WatchedDir>),
) -> Hidden {
    let mut g = HIDDEN.lock().unwrap_or_else(|e| e.into_inner());
    let cache = g.get_or_insert_with(HashMap::new);
    if let Some((at, gen, h)) = cache.get(&seer.viewer) {
        if *gen == generation || at.elapsed() < HIDDEN_FOR {
            return h.clone();
        }
    }
    let (gen, list) = dirs();
    let h = seer.hidden_dirs(list);
    if cache.len() >= HIDDEN_VIEWERS {
        cache.retain(|_, (at, _, _)| at.elapsed() < HIDDEN_FOR);
    }
    if cache.len() < HIDDEN_VIEWERS {
        cache.insert(seer.viewer.clone(), (Instant::now(), gen, h.clone()));
    }
    h
}

/// Most matches of a content search examined for a caller that does not see everything:
/// whether a file holds the content is itself what the caller may not learn, so each
/// match is checked before it counts.
pub const MAX_CONTENT_MATCHES: u32 = 10_000;

/// Most duplicate groups examined for such a caller (most wasted bytes first).
pub const MAX_DUPLICATE_GROUPS: u32 = 10_000;

/// A search as `seer`'s viewer sees it: files beneath `hidden` left out by the SQL, each
/// file of the page checked again (a directory not watched, or changed since the hidden
/// list was made), and checksums of files it cannot read left out. A content search
/// counts only the files whose content the viewer could read.
pub fn search(
    conn: &Connection,
    mut b: Built,
    hidden: &Hidden,
    seer: &mut Seer,
) -> Res<SearchResult> {
    search::leave_out(&mut b, hidden);
    if b.sha256.is_none() {
        let mut r = search::run(conn, &b)?;
        r.files.retain(|f| seer.name_visible(&f.path));
        for f in &mut r.files {
            if !seer.content_visible(&f.path) {
                f.sha256 = None;
            }
        }
        return Ok(r);
    }
    let (offset, limit) = (b.offset, b.limit);
    b.offset = 0;
    b.limit = MAX_CONTENT_MATCHES;
    let all = search::run(conn, &b)?;
    if all.total > u64::from(MAX_CONTENT_MATCHES) {
        return Err(QueryError::TooLarge {
            what: "content search matches (narrow it with owner, path or dates)".into(),
            limit: u64::from(MAX_CONTENT_MATCHES),
        }
        .into());
    }
    let files: Vec<_> = all
        .files
        .into_iter()
        .filter(|f| seer.content_visible(&f.path))
        .collect();
    Ok(SearchResult {
        total: files.len() as u64,
        files: files
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit as usize)
            .collect(),
    })
}

/// A file's info as the viewer sees it: not found if its name is hidden (the same answer
/// as for no such file), without checksums if it cannot read it.
pub fn file_info(mut info: FileInfo, t: &Target, seer: &mut Seer) -> Res<FileInfo> {
    if !seer.name_visible(&info.file.path) {
        return Err(not_found_file(t).into());
    }
    if !seer.content_visible(&info.file.path) {
        info.file.sha256 = None;
        hide_checksums(&mut info.versions);
    }
    Ok(info)
}

/// A file's versions as the viewer sees them (see [`file_info`]).
pub fn versions(
    mut list: Vec<VersionInfo>,
    path: &str,
    t: &Target,
    seer: &mut Seer,
) -> Res<Vec<VersionInfo>> {
    if !seer.name_visible(path) {
        return Err(not_found_file(t).into());
    }
    if !seer.content_visible(path) {
        hide_checksums(&mut list);
    }
    Ok(list)
}

fn hide_checksums(list: &mut [VersionInfo]) {
    for v in list {
        v.sha256 = None;
    }
}

/// Duplicates as the viewer sees them: a group counts only the files whose content it
/// could read, and only groups with two of them are shown (that two unreadable files are
/// equal, or that an unreadable file equals one of the viewer's, is what it may not learn).
pub fn duplicates(
    conn: &Connection,
    q: &DuplicatesQuery,
    seer: &mut Seer,
) -> Res<DuplicatesResult> {
    let limit = search::page_limit(q.limit)? as usize;
    let all = super::report::duplicate_page(conn, q.min_size, MAX_DUPLICATE_GROUPS, 0)?;
    let mut groups: Vec<_> = all
        .groups
        .into_iter()
        .filter_map(|mut g| {
            g.files.retain(|f| seer.content_visible(&f.path));
            g.count = g.files.len() as u64;
            (g.count > 1).then_some(g)
        })
        .collect();
    groups.sort_by(|a, b| {
        (b.size * (b.count - 1))
            .cmp(&(a.size * (a.count - 1)))
            .then_with(|| a.sha256.cmp(&b.sha256))
    });
    Ok(DuplicatesResult {
        total_groups: groups.len() as u64,
        groups: groups
            .into_iter()
            .skip(usize::try_from(q.offset).unwrap_or(usize::MAX))
            .take(limit)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_picks_one_class() {
        let v = Viewer {
            uid: Some(1000),
            gids: vec![100],
        };
        // Owner bits apply to the owner even when others have more.
        assert!(!v.may(1000, 5, 0o077, READ));
        assert!(v.may(1000, 5, 0o400, READ));
        assert!(v.may(7, 100, 0o040, READ));
        assert!(!v.may(7, 100, 0o704, READ));
        assert!(v.may(7, 8, 0o004, READ));
        assert!(!v.may(7, 8, 0o770, READ));
        assert!(Viewer::anyone().may(0, 0, 0o005, READ | SEARCH));
        assert!(!Viewer::anyone().may(0, 0, 0o004, READ | SEARCH));
    }

    #[test]
    fn names_and_checksums_follow_the_modes_on_disk() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["open", "closed", "closed/inner", "noread"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        std::fs::write(root.join("open/public.txt"), "p").unwrap();
        std::fs::write(root.join("open/private.txt"), "s").unwrap();
        std::fs::write(root.join("closed/inner/x.txt"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("open"), root.join("link")).unwrap();
        let mode = |p: &str, m: u32| {
            std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(m)).unwrap()
        };
        mode("open", 0o755);
        mode("open/public.txt", 0o644);
        mode("open/private.txt", 0o600);
        mode("closed", 0o700);
        mode("closed/inner", 0o755);
        mode("noread", 0o711);
        // A uid that owns none of it (the files belong to whoever runs the test).
        let me = rustix::process::geteuid().as_raw();
        let other = if me == 4242 { 4243 } else { 4242 };
        let mut s = Seer::new(
            root,
            Viewer {
                uid: Some(other),
                gids: vec![other],
            },
        );
        assert!(s.name_visible("open/public.txt"));
        assert!(s.content_visible("open/public.txt"));
        assert!(s.name_visible("open/private.txt"));
        assert!(!s.content_visible("open/private.txt"));
        assert!(!s.name_visible("closed/inner/x.txt"));
        assert!(
            !s.name_visible("noread/y.txt"),
            "search without read is not a listing"
        );
        assert!(
            !s.name_visible("link/public.txt"),
            "a link is never followed"
        );
        assert!(!s.content_visible("open/gone.txt"));
        let dirs = ["", "open", "closed", "closed/inner", "noread", "link"]
            .iter()
            .map(|d| WatchedDir::examine(root, Path::new(d)))
            .collect();
        assert_eq!(
            s.hidden_dirs(dirs),
            Hidden::Under(vec!["closed".into(), "link".into(), "noread".into()])
        );
        // The owner sees its own private file.
        let mut own = Seer::new(root, Viewer::local(me, 0));
        if me != 0 {
            assert!(own.content_visible("open/private.txt"));
        }
        mode("closed", 0o755);
    }
}
