//! The files root renamed away and back under the running watcher: no file is marked
//! deleted while the tree is away, and once it is back, writes are cataloged again and
//! the catalog equals the disk. (Unmount/remount on zfs-fuse: see docs/reliability.md.)

use std::fs;
use std::time::Duration;

use horace_tests::atomic_write;

use crate::fixture::Watcher;

/// Count of catalog rows with status deleted.
fn deleted(w: &Watcher) -> i64 {
    w.catalog()
        .query_row(
            "SELECT count(*) FROM files WHERE status = 'deleted'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

async fn sync(w: &Watcher, what: &str) {
    let client = w.client().await;
    let r = tokio::time::timeout(Duration::from_secs(60), client.sync()).await;
    assert!(
        matches!(r, Ok(Ok(()))),
        "{what}: sync {r:?}\n{}",
        crate::fixture::tail(&w.log())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_root_renamed_away_and_back() {
    let dir = horace_tests::shared_tempdir();
    let (files, meta, away) = (
        dir.path().join("files"),
        dir.path().join("meta"),
        dir.path().join("files-away"),
    );
    fs::create_dir_all(files.join("carol")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    for i in 0..20 {
        atomic_write(
            &files.join(format!("carol/{i}.txt")),
            format!("{i}").as_bytes(),
        );
    }
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    sync(&w, "start").await;
    fs::rename(&files, &away).unwrap();
    // Written while the root is elsewhere (the watch follows the directory).
    atomic_write(&away.join("carol/while-away.txt"), b"away");
    fs::remove_file(away.join("carol/3.txt")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        w.is_running(),
        "watcher died when its root moved\n{}",
        w.log()
    );
    fs::rename(&away, &files).unwrap();
    atomic_write(&files.join("carol/after.txt"), b"back");
    sync(&w, "after the root came back").await;
    w.assert_consistent("root renamed away and back");
    assert_eq!(deleted(&w), 1, "only 3.txt is deleted");
    w.stop();
}
