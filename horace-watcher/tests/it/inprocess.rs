//! The watch handle in-process (as the query service uses it): the `sync` cookie barrier,
//! `register`, and restoring versions from the content store.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use horace_watcher::catalog::{self, Readers, Writer};
use horace_watcher::store::{restore_version, RestoreError};
use horace_watcher::watch::{self, WatchError, WatchHandle};
use horace_watcher::{Config, Context};
use tokio_util::sync::CancellationToken;

use crate::util::{catalog_equals_disk, event_kinds, file_row, open_catalog, sha_hex};

struct Running {
    ctx: Arc<Context>,
    watch: WatchHandle,
    _dir: tempfile::TempDir,
    files: PathBuf,
    meta: PathBuf,
}

/// Starts the watch loop and waits until its startup scan is done (as a service's
/// clients wait for READY=1).
async fn start(tweak: impl FnOnce(&mut Config)) -> Running {
    let r = launch(tweak, |_| {}).await;
    let mut waited = 0;
    while !r.ctx.status.ready.load(Ordering::Relaxed) {
        assert!(waited < 3000, "the startup scan never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    r
}

/// Starts the watch loop on a tree `seed` fills first; returns while the startup scan
/// runs.
#[allow(clippy::await_holding_lock)] // a test-only gate; see util::INOTIFY_INIT
async fn launch(tweak: impl FnOnce(&mut Config), seed: impl FnOnce(&Path)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(&files).unwrap();
    fs::create_dir_all(&meta).unwrap();
    seed(&files);
    let mut config = Config::for_dirs(&files, &meta);
    tweak(&mut config);
    let db = catalog::catalog_path(&meta);
    let (writer, _thread) = Writer::spawn(catalog::open_writer(&db).unwrap());
    let ctx = Arc::new(Context {
        config,
        writer,
        readers: Readers::new(db),
        status: Default::default(),
        cancel: CancellationToken::new(),
    });
    // Held until `watch::start` returns: it creates the inotify instance.
    let (watch, _task) = {
        let _init = crate::util::inotify_init_guard();
        watch::start(ctx.clone()).await.unwrap()
    };
    Running {
        ctx,
        watch,
        _dir: dir,
        files,
        meta,
    }
}

fn versions(meta: &Path, id: i64) -> Vec<(i64, String, Option<i64>, bool)> {
    let conn = open_catalog(&meta.join("catalog.db"));
    let mut stmt = conn
        .prepare("SELECT version, sha256, restored_from, content_stored FROM versions WHERE file_id = ?1 ORDER BY version")
        .unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The checksum of the current version of `path`, if cataloged.
fn current_sha(meta: &Path, path: &str) -> Option<String> {
    open_catalog(&meta.join("catalog.db"))
        .query_row(
            "SELECT v.sha256 FROM files f JOIN versions v
             ON v.file_id = f.id AND v.version = f.current_version WHERE f.path = ?1",
            [path],
            |r| r.get(0),
        )
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_waits_for_earlier_writes_and_leaves_no_trace() {
    let r = start(|_| {}).await;
    for i in 0..50 {
        fs::write(r.files.join(format!("f{i}")), format!("{i}")).unwrap();
    }
    r.watch.sync().await.unwrap();
    catalog_equals_disk(&r.files, &r.meta);
    assert_eq!(file_row(&r.meta, "f49").unwrap().2, 1);
    r.watch.sync().await.unwrap();
    let cookies: i64 = open_catalog(&r.meta.join("catalog.db"))
        .query_row(
            "SELECT count(*) FROM files WHERE path LIKE '.horace-sync-%'",
            [],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(cookies, 0, "cookies never enter the catalog");
    assert!(fs::read_dir(&r.files)
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().starts_with(".horace")));
    assert!(r.ctx.status.ready.load(Ordering::Relaxed));
    r.watch.shutdown().await;
    assert!(matches!(r.watch.sync().await, Err(WatchError::Stopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_catalogs_now_and_is_idempotent() {
    let r = start(|_| {}).await;
    fs::create_dir_all(r.files.join("svc")).unwrap();
    // Watched before the in-place write (see lifecycle's "mkdir" step).
    r.watch.sync().await.unwrap();
    fs::write(r.files.join("svc/r.txt"), "now").unwrap();
    let id = r.watch.register(PathBuf::from("svc/r.txt")).await.unwrap();
    assert_eq!(
        r.watch.register(PathBuf::from("svc/r.txt")).await.unwrap(),
        id
    );
    assert_eq!(
        file_row(&r.meta, "svc/r.txt").unwrap(),
        (id, "active".into(), 1)
    );
    for bad in ["svc/missing", "svc", "../etc/passwd", "svc/x.tmp"] {
        assert!(
            matches!(
                r.watch.register(PathBuf::from(bad)).await,
                Err(WatchError::Catalog { .. })
            ),
            "{bad}"
        );
    }
    r.watch.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_gives_old_bytes_as_a_new_version_and_is_itself_restorable() {
    let r = start(|_| {}).await;
    let path = r.files.join("doc.txt");
    let contents = ["first version\n", "second version\n", "third version\n"];
    for c in contents {
        fs::write(&path, c).unwrap();
        r.watch.sync().await.unwrap();
    }
    let id = file_row(&r.meta, "doc.txt").unwrap().0;
    assert_eq!(versions(&r.meta, id).len(), 3);

    let out = restore_version(&r.ctx, &r.watch, id, 1).await.unwrap();
    assert_eq!((out.file_id, out.new_version), (id, 4));
    assert_eq!(fs::read_to_string(&path).unwrap(), contents[0]);
    r.watch.sync().await.unwrap();
    let v = versions(&r.meta, id);
    assert_eq!(
        v.len(),
        4,
        "the restore's own rename makes no extra version: {v:?}"
    );
    assert_eq!(v[3], (4, sha_hex(contents[0].as_bytes()), Some(1), true));
    catalog_equals_disk(&r.files, &r.meta);

    // The replaced content (version 3) is itself restorable.
    let out = restore_version(&r.ctx, &r.watch, id, 3).await.unwrap();
    assert_eq!(out.new_version, 5);
    assert_eq!(fs::read_to_string(&path).unwrap(), contents[2]);
    r.watch.sync().await.unwrap();
    catalog_equals_disk(&r.files, &r.meta);
    assert_eq!(
        event_kinds(&r.meta, id),
        ["created", "modified", "modified", "restored", "restored"]
    );
    assert!(
        fs::read_dir(&r.files).unwrap().count() == 1,
        "no temp file left behind"
    );

    assert!(matches!(
        restore_version(&r.ctx, &r.watch, id, 99).await,
        Err(RestoreError::NotFound { .. })
    ));
    assert!(matches!(
        restore_version(&r.ctx, &r.watch, 999, 1).await,
        Err(RestoreError::NotFound { .. })
    ));
    r.watch.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_content_and_restore_reports_it() {
    let r = start(|c| {
        c.versions.keep = 2;
        c.versions.min_age_days = 0;
    })
    .await;
    let path = r.files.join("p.txt");
    for i in 0..4 {
        let content = format!("content {i}");
        fs::write(&path, &content).unwrap();
        r.watch.sync().await.unwrap();
        // `sync` fires once the close-write is handled, but a probe that saw the file
        // still settling is looked at again ~200 ms later; under load that retry could
        // read the next in-place rewrite between its truncate and its write (an extra,
        // empty version). Wait until this content is the current version before the next
        // rewrite, so the test is deterministic.
        let want = sha_hex(content.as_bytes());
        let mut waited = 0;
        while current_sha(&r.meta, "p.txt").as_deref() != Some(want.as_str()) {
            assert!(waited < 300, "version {i} never cataloged");
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += 1;
        }
    }
    let id = file_row(&r.meta, "p.txt").unwrap().0;
    let stored: Vec<bool> = versions(&r.meta, id).into_iter().map(|v| v.3).collect();
    assert_eq!(stored, [false, false, true, true]);
    let objects = fs::read_dir(r.meta.join("objects/sha256"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .count();
    assert_eq!(objects, 2, "unreferenced objects are collected");
    match restore_version(&r.ctx, &r.watch, id, 1).await {
        Err(RestoreError::ContentPruned { version: 1, .. }) => {}
        other => panic!("expected ContentPruned, got {other:?}"),
    }
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "content 3",
        "a failed restore changes nothing"
    );
    catalog_equals_disk(&r.files, &r.meta);
    r.watch.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_files_are_cataloged_without_content() {
    let r = start(|c| c.versions.max_stored_file_size = 1000).await;
    fs::write(r.files.join("big.bin"), vec![7u8; 5000]).unwrap();
    fs::write(r.files.join("small.bin"), vec![7u8; 10]).unwrap();
    r.watch.sync().await.unwrap();
    catalog_equals_disk(&r.files, &r.meta);
    let big = file_row(&r.meta, "big.bin").unwrap().0;
    assert!(!versions(&r.meta, big)[0].3);
    r.watch.shutdown().await;
}

/// A file rewritten while the startup scan is hashing is left to its close-after-write:
/// the scan must not catalog it between the truncate and the write (an empty version
/// nobody saved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_during_the_scan_is_cataloged_from_its_close_not_half_done() {
    let seed = |files: &Path| {
        // The walk lists the root's files before sub/: the scan's threads (at most 16)
        // hash these sparse files (not stored: over the size limit) first, and reach
        // sub/doc.txt long after the walk ended.
        for i in 0..64 {
            let f = fs::File::create(files.join(format!("{i}.img"))).unwrap();
            f.set_len(4 << 20).unwrap();
        }
        fs::create_dir(files.join("sub")).unwrap();
        fs::write(files.join("sub/doc.txt"), "old").unwrap();
    };
    let r = launch(|c| c.versions.max_stored_file_size = 1000, seed).await;
    let mut waited = 0;
    while r.ctx.status.detail().last_scan.is_none() {
        assert!(waited < 3000, "the startup scan never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
        waited += 1;
    }
    // The walk of 66 directory entries is over long before this; the hashing of 256 MiB
    // (about 3 s in a debug build) is not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let doc = r.files.join("sub/doc.txt");
    let mut writer = fs::File::create(&doc).unwrap();
    let hashing = !r.ctx.status.ready.load(Ordering::Relaxed);
    let mut waited = 0;
    while !r.ctx.status.ready.load(Ordering::Relaxed) {
        assert!(waited < 3000, "the startup scan never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    std::io::Write::write_all(&mut writer, b"new").unwrap();
    drop(writer);
    r.watch.sync().await.unwrap();
    catalog_equals_disk(&r.files, &r.meta);
    let id = file_row(&r.meta, "sub/doc.txt").unwrap().0;
    let shas: Vec<String> = versions(&r.meta, id).into_iter().map(|v| v.1).collect();
    assert!(
        !shas.contains(&sha_hex(b"")),
        "a half-done rewrite was cataloged: {shas:?}"
    );
    assert_eq!(shas.last(), Some(&sha_hex(b"new")));
    assert!(shas.len() <= 2, "{shas:?}");
    assert!(
        hashing,
        "the scan ended before the rewrite began: the test proves nothing"
    );
    r.watch.shutdown().await;
}

/// A hard link made in the tree (`ln`, `cp -al`, `rsync --link-dest`) has no
/// close-after-write of its own: the create event catalogs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_link_is_cataloged_at_its_creation() {
    let r = start(|_| {}).await;
    fs::write(r.files.join("a.txt"), "shared").unwrap();
    fs::write(r.files.join("publish.tmp"), "published").unwrap();
    r.watch.sync().await.unwrap();
    fs::create_dir(r.files.join("backup")).unwrap();
    r.watch.sync().await.unwrap();
    fs::hard_link(r.files.join("a.txt"), r.files.join("backup/a.txt")).unwrap();
    // Publishing by link: the temp name is ignored, the final one is not.
    fs::hard_link(r.files.join("publish.tmp"), r.files.join("final.txt")).unwrap();
    r.watch.sync().await.unwrap();
    fs::remove_file(r.files.join("publish.tmp")).unwrap();
    r.watch.sync().await.unwrap();
    catalog_equals_disk(&r.files, &r.meta);
    let id = file_row(&r.meta, "backup/a.txt").unwrap().0;
    assert_eq!(versions(&r.meta, id)[0].1, sha_hex(b"shared"));
    assert!(file_row(&r.meta, "final.txt").is_some());
    r.watch.shutdown().await;
}

/// An unnamed file (`O_TMPFILE`, with `flags`) in directory `dir`, open for writing.
fn o_tmpfile(dir: &Path, flags: i32) -> fs::File {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let dir = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: a plain open(2) of a NUL-terminated path; the descriptor is owned below.
    let fd = unsafe { libc::open(dir.as_ptr(), libc::O_TMPFILE | flags, 0o644) };
    assert!(fd >= 0, "O_TMPFILE: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a fresh descriptor nothing else owns.
    fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Gives the unnamed `file` the name `to` (`linkat` through /proc/self/fd).
fn link_in(file: &fs::File, to: &Path) {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap();
    let to = CString::new(to.as_os_str().as_bytes()).unwrap();
    // SAFETY: both paths are NUL-terminated C strings that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    assert_eq!(rc, 0, "linkat: {}", std::io::Error::last_os_error());
}

/// A file written through `O_TMPFILE` and linked into the tree (`linkat`, the atomic
/// create of systemd and others): its create event names it, its close-after-write comes
/// as `#<inode>`. It is cataloged with what it holds at that close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_linked_in_from_o_tmpfile_is_cataloged_at_its_close() {
    let r = start(|_| {}).await;
    fs::create_dir(r.files.join("out")).unwrap();
    r.watch.sync().await.unwrap();
    let mut file = o_tmpfile(&r.files, libc::O_WRONLY);
    std::io::Write::write_all(&mut file, b"written unnamed, ").unwrap();
    link_in(&file, &r.files.join("out/report.txt"));
    std::io::Write::write_all(&mut file, b"finished after the link").unwrap();
    drop(file);
    // Scratch space never linked in: its close names a file that does not exist.
    let mut scratch = o_tmpfile(&r.files, libc::O_RDWR);
    std::io::Write::write_all(&mut scratch, b"scratch").unwrap();
    drop(scratch);
    r.watch.sync().await.unwrap();
    catalog_equals_disk(&r.files, &r.meta);
    let id = file_row(&r.meta, "out/report.txt").expect("cataloged").0;
    let shas: Vec<String> = versions(&r.meta, id).into_iter().map(|v| v.1).collect();
    assert_eq!(shas, [sha_hex(b"written unnamed, finished after the link")]);
    r.watch.shutdown().await;
}

/// A create that no close follows is looked at after a grace period: maildir's
/// `link(tmp/x, new/x); unlink(tmp/x)` when the link count is back to one before the
/// create is read, and (made deterministic here) a file linked in from an `O_TMPFILE`
/// whose descriptor stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_without_a_close_is_cataloged_after_a_grace_period() {
    let r = start(|_| {}).await;
    for d in ["tmp", "new", "out"] {
        fs::create_dir(r.files.join(d)).unwrap();
    }
    r.watch.sync().await.unwrap();
    // Maildir delivery: which way the race goes does not matter, the mail is cataloged.
    for i in 0..20 {
        let (tmp, new) = (format!("tmp/m{i}"), format!("new/m{i}"));
        fs::write(r.files.join(&tmp), format!("mail {i}")).unwrap();
        fs::hard_link(r.files.join(&tmp), r.files.join(&new)).unwrap();
        fs::remove_file(r.files.join(&tmp)).unwrap();
    }
    // Linked in from an O_TMPFILE that is not closed yet: looked at after the grace
    // period with no sync, ...
    let mut held = o_tmpfile(&r.files, libc::O_WRONLY);
    std::io::Write::write_all(&mut held, b"complete before the link").unwrap();
    link_in(&held, &r.files.join("out/held.txt"));
    let mut waited = 0;
    while file_row(&r.meta, "out/held.txt").is_none() {
        assert!(waited < 100, "the held O_TMPFILE link was never cataloged");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    // ... or at once by a sync, which covers what was written before it.
    let mut synced = o_tmpfile(&r.files, libc::O_WRONLY);
    std::io::Write::write_all(&mut synced, b"linked just before a sync").unwrap();
    link_in(&synced, &r.files.join("out/synced.txt"));
    r.watch.sync().await.unwrap();
    assert!(
        file_row(&r.meta, "out/synced.txt").is_some(),
        "sync covers it"
    );
    drop(synced);
    drop(held);
    r.watch.sync().await.unwrap();
    catalog_equals_disk(&r.files, &r.meta);
    let id = file_row(&r.meta, "out/held.txt").unwrap().0;
    assert_eq!(versions(&r.meta, id).len(), 1, "its close adds no version");
    for i in 0..20 {
        let (id, status, _) = file_row(&r.meta, &format!("new/m{i}")).unwrap();
        assert_eq!(status, "active");
        assert_eq!(
            versions(&r.meta, id)[0].1,
            sha_hex(format!("mail {i}").as_bytes())
        );
    }
    r.watch.shutdown().await;
}
