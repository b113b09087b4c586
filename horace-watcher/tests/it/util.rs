//! Shared helpers: run the real `horace-watcher` binary on a directory, wait with a
//! barrier, and compare the catalog with the disk.
//!
//! **The barrier.** These tests do not use the query API (built in parallel), so they
//! cannot call `sync`. Instead [`Watcher::barrier`] rewrites one ordinary file,
//! `zz-barrier`, with a new counter value and polls the catalog (read-only) until that
//! file's current version has the new checksum. The watcher processes events in kernel
//! order and commits each batch before the next, so once the barrier's version is in,
//! every change made before it is committed too. The barrier file is a normal cataloged
//! file and so takes part in [`catalog_equals_disk`]. (The in-process tests use the real
//! `WatchHandle::sync`, whose cookie file is never cataloged.)

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use horace_tests::{ignored_name, wait_until, ChildGuard, NotifySocket};
use rusqlite::{Connection, OpenFlags};

pub use horace_tests::{open_catalog_ro as open_catalog, sha256_hex as sha_hex};

/// Held (shared) while a watcher creates its inotify instance, and exclusively by the
/// test that lowers the machine-wide `fs.inotify.max_queued_events` (taken at
/// `inotify_init`): no other test's watcher starts with the lowered limit.
pub static INOTIFY_INIT: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A shared hold of [`INOTIFY_INIT`].
pub fn inotify_init_guard() -> std::sync::RwLockReadGuard<'static, ()> {
    INOTIFY_INIT.read().unwrap_or_else(|e| e.into_inner())
}

/// Name of the barrier file in the files root.
pub const BARRIER: &str = "zz-barrier";

/// A running watcher binary with its log.
pub struct Watcher {
    child: ChildGuard,
    /// The files root.
    pub files: PathBuf,
    /// The metadata directory.
    pub meta: PathBuf,
    log: PathBuf,
    n: u64,
    /// The stand-in for systemd's notify socket.
    pub notify: NotifySocket,
    _scratch: tempfile::TempDir,
}

impl Watcher {
    /// Starts the binary on `files`/`meta` and waits for READY=1.
    pub fn start(files: &Path, meta: &Path) -> Self {
        Self::start_with_env(files, meta, &[])
    }

    /// Like [`Watcher::start`], with extra environment variables.
    pub fn start_with_env(files: &Path, meta: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_cmd(
            Command::new(env!("CARGO_BIN_EXE_horace-watcher")),
            files,
            meta,
            env,
        )
    }

    /// Starts `cmd` (the watcher binary, possibly behind `setpriv`) with the usual flags.
    pub fn start_cmd(cmd: Command, files: &Path, meta: &Path, env: &[(&str, &str)]) -> Self {
        let _init = inotify_init_guard();
        Self::spawn_ready(cmd, files, meta, env)
    }

    /// Like [`Watcher::start`], for the caller that holds [`INOTIFY_INIT`] exclusively.
    pub fn start_holding_inotify_init(files: &Path, meta: &Path) -> Self {
        let cmd = Command::new(env!("CARGO_BIN_EXE_horace-watcher"));
        Self::spawn_ready(cmd, files, meta, &[])
    }

    fn spawn_ready(mut cmd: Command, files: &Path, meta: &Path, env: &[(&str, &str)]) -> Self {
        let scratch = horace_tests::shared_tempdir();
        // The watcher may run as another uid and binds its query socket here.
        fs::set_permissions(
            scratch.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let log = scratch.path().join("watcher.log");
        let mut notify = NotifySocket::new();
        let child = ChildGuard::spawn(
            cmd.arg("--files")
                .arg(files)
                .arg("--metadata")
                .arg(meta)
                .arg("--socket")
                .arg(scratch.path().join("q.sock"))
                .arg("--no-snapshots")
                .env("NOTIFY_SOCKET", notify.path())
                .env("RUST_LOG", "info,horace_watcher::watch=debug")
                .env("NO_COLOR", "1")
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap()),
        );
        let ready = notify.wait_for(Duration::from_secs(120), |l| l == "READY=1");
        let w = Self {
            child,
            files: files.into(),
            meta: meta.into(),
            log,
            n: 0,
            notify,
            _scratch: scratch,
        };
        assert!(
            ready.is_some(),
            "watcher did not become ready; log:\n{}",
            w.log()
        );
        w
    }

    /// Everything the watcher logged so far (ANSI colours stripped).
    pub fn log(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits until every change made before the call is committed (see the module doc).
    pub fn barrier(&mut self) {
        self.n += 1;
        let content = format!("barrier {}\n", self.n);
        fs::write(self.files.join(BARRIER), &content).unwrap();
        let want = sha_hex(content.as_bytes());
        let db = self.meta.join("catalog.db");
        let ok = wait_until(Duration::from_secs(120), || {
            current_sha(&db, BARRIER).as_deref() == Some(want.as_str())
        });
        assert!(ok, "barrier {} not reached; log:\n{}", self.n, self.log());
    }

    /// Sends a signal to the watcher.
    pub fn signal(&self, sig: i32) {
        self.child.signal(sig);
    }

    /// Stops the watcher with SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> String {
        self.child.signal(libc::SIGTERM);
        let status = self.child.wait_timeout(Duration::from_secs(60));
        let log = self.log();
        assert!(
            status.is_some_and(|s| s.success()),
            "watcher did not stop cleanly: {status:?}\n{log}"
        );
        log
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The current checksum of the present file at (escaped) `path`.
pub fn current_sha(db: &Path, path: &str) -> Option<String> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row(
        "SELECT v.sha256 FROM files f JOIN versions v ON v.file_id = f.id AND v.version = f.current_version \
         WHERE f.path = ?1 AND f.status != 'deleted'",
        [path],
        |r| r.get(0),
    )
    .ok()
}

/// A file's (id, status, current version), by escaped path.
pub fn file_row(meta: &Path, path: &str) -> Option<(i64, String, i64)> {
    open_catalog(&meta.join("catalog.db"))
        .query_row(
            "SELECT id, status, current_version FROM files WHERE path = ?1",
            [path],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ok()
}

/// The kinds of a file's events, oldest first.
pub fn event_kinds(meta: &Path, id: i64) -> Vec<String> {
    let conn = open_catalog(&meta.join("catalog.db"));
    let mut stmt = conn
        .prepare("SELECT kind FROM events WHERE file_id = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([id], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Every regular, not ignored file under `root` (symlinks not followed): escaped path →
/// SHA-256 of its content.
pub fn disk_state(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(root.join(&dir)).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            let rel = dir.join(e.file_name());
            if ft.is_dir() {
                stack.push(rel);
            } else if ft.is_file() && !ignored_name(&e.file_name()) {
                let content = fs::read(e.path()).unwrap();
                out.insert(horace_watcher::path::escape(&rel), sha_hex(&content));
            }
        }
    }
    out
}

/// Every present file in the catalog: escaped path → current checksum.
pub fn catalog_state(meta: &Path) -> BTreeMap<String, String> {
    let conn = open_catalog(&meta.join("catalog.db"));
    let mut stmt = conn
        .prepare(
            "SELECT f.path, v.sha256 FROM files f JOIN versions v ON v.file_id = f.id AND v.version = f.current_version \
             WHERE f.status != 'deleted'",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Asserts that the catalog lists exactly the files on disk with their checksums, and
/// that every stored object's content matches its name.
pub fn catalog_equals_disk(files: &Path, meta: &Path) {
    let disk = disk_state(files);
    let cat = catalog_state(meta);
    if disk != cat {
        let only_disk: Vec<_> = disk
            .iter()
            .filter(|(k, v)| cat.get(*k) != Some(v))
            .collect();
        let only_cat: Vec<_> = cat
            .iter()
            .filter(|(k, v)| disk.get(*k) != Some(v))
            .collect();
        panic!("catalog differs from disk\n only/other on disk: {only_disk:?}\n only/other in catalog: {only_cat:?}");
    }
    let conn = open_catalog(&meta.join("catalog.db"));
    let mut stmt = conn
        .prepare("SELECT DISTINCT sha256 FROM versions WHERE content_stored = 1")
        .unwrap();
    let stored: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for sha in stored {
        let obj = meta.join("objects/sha256").join(&sha[..2]).join(&sha[2..]);
        let content = fs::read(&obj).unwrap_or_else(|e| panic!("object {sha} missing: {e}"));
        assert_eq!(
            sha_hex(&content),
            sha,
            "object content does not match its name"
        );
    }
}

/// Sum of `hashed=N` over the watch loop's "batch committed" log lines in `log`.
pub fn hashed_in_batches(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("batch committed"))
        .filter_map(|l| field(l, "hashed"))
        .sum()
}

/// The value of `name=N` in a log line.
pub fn field(line: &str, name: &str) -> Option<u64> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The "reconcile scan finished" lines of a log.
pub fn scan_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("reconcile scan finished"))
        .map(str::to_string)
        .collect()
}
