//! Many files at once: the startup scan of a 1,000-file tree, renaming its directory
//! without re-hashing, offline changes caught by the startup scan, and a queue overflow.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::util::{
    catalog_equals_disk, catalog_state, field, file_row, hashed_in_batches, open_catalog,
    scan_lines, Watcher,
};

fn tree(root: &Path, n: usize, size: usize) {
    fs::create_dir_all(root).unwrap();
    for i in 0..n {
        let mut content = vec![(i % 251) as u8; size];
        content[..8].copy_from_slice(&(i as u64).to_le_bytes());
        fs::write(root.join(format!("file-{i:04}.bin")), content).unwrap();
    }
}

#[test]
fn thousand_files_scan_then_directory_rename_without_rehash() {
    let dir = tempfile::tempdir().unwrap();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    tree(&files.join("svc/big"), 1000, 64 * 1024);
    let mut w = Watcher::start(&files, &meta);
    let scan = scan_lines(&w.log()).pop().expect("startup scan line");
    eprintln!("startup scan of 1000 x 64 KiB: {scan}");
    assert_eq!(field(&scan, "hashed"), Some(1000), "{scan}");
    w.barrier();
    catalog_equals_disk(&files, &meta);
    let id = file_row(&meta, "svc/big/file-0500.bin").unwrap().0;
    // Reading and copying 1,000 files produced no event to act on (no IN_OPEN/IN_ACCESS
    // subscribed): after the scan only the barrier file was hashed.
    let before = hashed_in_batches(&w.log());
    assert_eq!(before, 1, "the watcher's own reads made work");

    fs::rename(files.join("svc/big"), files.join("svc/renamed dir")).unwrap();
    w.barrier();
    catalog_equals_disk(&files, &meta);
    let hashed = hashed_in_batches(&w.log()) - before;
    assert_eq!(
        hashed, 1,
        "only the barrier file is hashed after a directory rename"
    );
    assert_eq!(
        file_row(&meta, "svc/renamed dir/file-0500.bin").unwrap(),
        (id, "active".into(), 1)
    );
    let renamed: i64 = open_catalog(&meta.join("catalog.db"))
        .query_row(
            "SELECT count(*) FROM events WHERE kind = 'renamed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(renamed, 1000);

    // A top-level rename changes the owner of every file below.
    fs::rename(files.join("svc"), files.join("other")).unwrap();
    w.barrier();
    catalog_equals_disk(&files, &meta);
    let owner: String = open_catalog(&meta.join("catalog.db"))
        .query_row("SELECT owner FROM files WHERE id = ?1", [id], |r| r.get(0))
        .unwrap();
    assert_eq!(owner, "other");

    // A file rename keeps the id and reads nothing either.
    let before = hashed_in_batches(&w.log());
    fs::rename(
        files.join("other/renamed dir/file-0500.bin"),
        files.join("other/moved.bin"),
    )
    .unwrap();
    w.barrier();
    catalog_equals_disk(&files, &meta);
    assert_eq!(
        hashed_in_batches(&w.log()) - before,
        1,
        "only the barrier file is hashed after a file rename"
    );
    assert_eq!(
        file_row(&meta, "other/moved.bin").unwrap(),
        (id, "active".into(), 1)
    );
    w.stop();
}

#[test]
fn offline_changes_are_caught_and_a_second_start_hashes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(&files).unwrap();
    let mut w = Watcher::start(&files, &meta);
    for n in ["a", "b", "c", "d"] {
        fs::write(files.join(n), n).unwrap();
    }
    w.barrier();
    catalog_equals_disk(&files, &meta);
    w.stop();

    fs::write(files.join("e"), "new offline").unwrap();
    fs::write(files.join("a"), "modified offline").unwrap();
    fs::rename(files.join("b"), files.join("b2")).unwrap();
    fs::remove_file(files.join("c")).unwrap();
    let mut w = Watcher::start(&files, &meta);
    w.barrier();
    catalog_equals_disk(&files, &meta);
    assert_eq!(file_row(&meta, "c").unwrap().1, "deleted");
    assert_eq!(file_row(&meta, "a").unwrap().2, 2);
    w.stop();

    let mut w = Watcher::start_with_env(&files, &meta, &[("WATCHDOG_USEC", "200000")]);
    let status = w
        .notify
        .wait_for(Duration::from_secs(5), |l| l.starts_with("STATUS=Watching"));
    assert_eq!(
        status.as_deref(),
        Some("STATUS=Watching 5 files in 1 directories")
    );
    assert!(
        w.notify
            .wait_for(Duration::from_secs(5), |l| l == "WATCHDOG=1")
            .is_some(),
        "no watchdog ping"
    );
    let log = w.stop();
    let scan = scan_lines(&log).pop().expect("scan line");
    assert_eq!(
        field(&scan, "hashed"),
        Some(0),
        "second start hashed files: {scan}"
    );
    assert_eq!(field(&scan, "files"), Some(5), "{scan}");
}

/// Restores `fs.inotify.max_queued_events` when dropped; meanwhile no other test of this
/// binary starts a watcher ([`crate::util::INOTIFY_INIT`]).
struct QueueLimit(
    String,
    #[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>,
);

impl QueueLimit {
    const PATH: &'static str = "/proc/sys/fs/inotify/max_queued_events";

    fn lower(to: u32) -> Self {
        let alone = crate::util::INOTIFY_INIT
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let old = fs::read_to_string(Self::PATH).unwrap().trim().to_string();
        fs::write(Self::PATH, to.to_string()).unwrap();
        Self(old, alone)
    }
}

impl Drop for QueueLimit {
    fn drop(&mut self) {
        fs::write(Self::PATH, &self.0).expect("restore max_queued_events");
    }
}

#[test]
fn queue_overflow_reconciles_to_the_disk() {
    horace_tests::require_root("lowering fs.inotify.max_queued_events");
    let dir = tempfile::tempdir().unwrap();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(&files).unwrap();
    // The limit is taken when an inotify instance is created, so it is lowered only
    // while the watcher starts (machine-wide, hence as briefly as possible).
    let mut w = {
        let _limit = QueueLimit::lower(16);
        Watcher::start_holding_inotify_init(&files, &meta)
    };
    for d in 0..100 {
        let sub = files.join(format!("d{d:03}"));
        fs::create_dir(&sub).unwrap();
        for i in 0..40 {
            fs::write(sub.join(format!("f{i}")), format!("{d}/{i}")).unwrap();
        }
    }
    for d in (0..100).step_by(3) {
        fs::remove_dir_all(files.join(format!("d{d:03}"))).unwrap();
    }
    w.barrier();
    // The overflow's scan found the barrier file, but it marks files deleted only once
    // they stayed absent across its settle barriers (worker/settle.rs): a moment later.
    let settled = horace_tests::wait_until(Duration::from_secs(60), || {
        catalog_state(&meta).len() == 66 * 40 + 1
    });
    assert!(settled, "removals not settled; log:\n{}", w.log());
    catalog_equals_disk(&files, &meta);
    let log = w.log();
    assert!(
        log.contains("inotify queue overflowed"),
        "no overflow happened; log:\n{log}"
    );
    assert!(scan_lines(&log)
        .iter()
        .any(|l| l.contains("reason=\"overflow\"") || l.contains("reason=overflow")));
    assert_eq!(catalog_state(&meta).len(), 66 * 40 + 1);
    w.stop();
}
