//! What the tests compare: files on disk (path → SHA-256, names the watcher ignores by
//! default skipped) and the active files of a catalog opened read-only; plus an async
//! poll for tests that wait on an async condition.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a base name matches the watcher's default ignore patterns
/// (`horace_watcher::config::DEFAULT_IGNORE`, written out here because this crate's library
/// cannot depend on the watcher; `side_files::the_harness_ignores_what_the_watcher_does`
/// keeps the two equal).
pub fn ignored_name(name: &OsStr) -> bool {
    let n = name.as_bytes();
    let len = n.len();
    // `.*.<suffix>`: a hidden name, then a dot and the suffix, the dot not the first byte.
    let hidden_with = |suffix_ok: &dyn Fn(&[u8]) -> bool, suffix_len: usize| {
        len >= suffix_len + 2
            && n[0] == b'.'
            && n[len - suffix_len - 1] == b'.'
            && suffix_ok(&n[len - suffix_len..])
    };
    let vim_swap = |s: &[u8]| s[0] == b's' && s[1] == b'w' && matches!(s[2], b'a'..=b'o' | b'x');
    let rsync = |s: &[u8]| s.iter().all(u8::is_ascii_alphanumeric);
    n.starts_with(b".horace-")
        || n.starts_with(b".#")
        || n.ends_with(b".tmp")
        || n.ends_with(b"~")
        || n.ends_with(b".swp")
        || (len >= 2 && n[0] == b'#' && n[len - 1] == b'#')
        || hidden_with(&vim_swap, 3)
        || n == b"4913"
        || (n.starts_with(b".~lock.") && n.ends_with(b"#"))
        || n.starts_with(b"~$")
        || (len == 8 && n.iter().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')))
        || hidden_with(&rsync, 6)
        || n.ends_with(b"-wal")
        || n.ends_with(b"-shm")
        || n.ends_with(b"-journal")
}

/// Regular, not ignored files under `root` (symlinks not followed): path relative to
/// `root` (lossy UTF-8) → SHA-256. Panics if a directory, file type or file cannot be
/// read: use it when nothing writes under `root`.
pub fn disk_files(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, true, &mut out);
    out
}

/// Like [`disk_files`], but skips what cannot be read (a file or directory removed
/// while the walk runs).
pub fn disk_files_lenient(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, false, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, strict: bool, out: &mut BTreeMap<String, String>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            assert!(!strict, "read_dir {}: {e}", dir.display());
            return;
        }
    };
    for e in entries.flatten() {
        let ft = match e.file_type() {
            Ok(ft) => ft,
            Err(err) => {
                assert!(!strict, "file type of {}: {err}", e.path().display());
                continue;
            }
        };
        if ft.is_dir() {
            walk(root, &e.path(), strict, out);
        } else if ft.is_file() && !ignored_name(&e.file_name()) {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            match fs::read(e.path()) {
                Ok(bytes) => {
                    out.insert(rel, sha256_hex(&bytes));
                }
                Err(err) => assert!(!strict, "read {}: {err}", e.path().display()),
            }
        }
    }
}

/// Opens a catalog database read-only (panics if it cannot).
pub fn open_catalog_ro(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open catalog read-only")
}

/// Files whose status is `active` in a catalog: path → sha256 of the current version.
pub fn catalog_active(conn: &Connection) -> BTreeMap<String, String> {
    let mut stmt = conn
        .prepare(
            "SELECT f.path, v.sha256 FROM files f \
             JOIN versions v ON v.file_id = f.id AND v.version = f.current_version \
             WHERE f.status = 'active'",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Polls `cond` (async) every 100 ms until it holds or `timeout` passes; whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_of_abc() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ignore_rule() {
        for n in [".horace-x", ".#a", "a.tmp", "a~", "a.swp"] {
            assert!(ignored_name(OsStr::new(n)), "{n}");
        }
        for n in ["a", "horace-x", "a.tmpx", "a.sw", ".hidden"] {
            assert!(!ignored_name(OsStr::new(n)), "{n}");
        }
    }

    #[test]
    fn disk_files_skips_ignored_and_recurses() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/a"), b"abc").unwrap();
        fs::write(d.path().join("b.tmp"), b"x").unwrap();
        std::os::unix::fs::symlink("sub/a", d.path().join("link")).unwrap();
        let want: BTreeMap<String, String> = [("sub/a".to_string(), sha256_hex(b"abc"))].into();
        assert_eq!(disk_files(d.path()), want);
        assert_eq!(disk_files_lenient(d.path()), want);
        assert!(disk_files_lenient(&d.path().join("gone")).is_empty());
    }
}
