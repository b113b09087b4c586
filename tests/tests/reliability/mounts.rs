//! Datasets that are not mounted when the watcher starts (issue 13 item 3), on zfs-fuse:
//! the files dataset unmounted under a catalog built on it (nothing may be marked
//! deleted; the watcher waits, says so in `STATUS=`, and carries on once it is mounted),
//! the metadata dataset unmounted (no new catalog on the directory beneath), and a tree
//! really replaced, which only `--accept-new-files-root` takes.

use std::fs;
use std::path::Path;
use std::time::Duration;

use horace_tests::{atomic_write, zfs, zfs_when_not_busy, NotifySocket, ZfsPool};

use crate::fixture::{tail, Watcher};

/// Rows with status deleted.
fn deleted(w: &Watcher) -> i64 {
    w.catalog()
        .query_row(
            "SELECT count(*) FROM files WHERE status = 'deleted'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Writes `n` files in a few directories under `root`.
fn populate(root: &Path, n: usize, tag: &str) {
    for i in 0..n {
        let dir = root.join(format!("owner{}", i % 3));
        fs::create_dir_all(&dir).unwrap();
        atomic_write(
            &dir.join(format!("{tag}-{i}.txt")),
            format!("{tag} {i}").as_bytes(),
        );
    }
}

/// Waits for a `STATUS=` line that says the watcher waits; returns it.
fn waits(w: &Watcher, notify: &mut NotifySocket, what: &str) -> String {
    let line = notify.wait_for(Duration::from_secs(60), |l| {
        l.starts_with("STATUS=") && l.contains("waiting")
    });
    line.unwrap_or_else(|| {
        panic!(
            "{what}: no STATUS= saying it waits; got {:?}\n{}",
            notify.received,
            tail(&w.log())
        )
    })
}

/// Whether READY=1 came.
fn was_ready(notify: &NotifySocket) -> bool {
    notify
        .received
        .iter()
        .flat_map(|m| m.lines())
        .any(|l| l == "READY=1")
}

/// Waits for READY=1 and the query socket after a wait.
fn ready(w: &Watcher, notify: &mut NotifySocket, what: &str) {
    let r = notify.wait_for(Duration::from_secs(120), |l| l == "READY=1");
    assert!(r.is_some(), "{what}: not ready\n{}", tail(&w.log()));
    let up = horace_tests::wait_until(Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&w.socket).is_ok()
    });
    assert!(up, "{what}: query socket not served\n{}", tail(&w.log()));
}

async fn sync(w: &Watcher, what: &str) {
    let client = w.client().await;
    let r = tokio::time::timeout(Duration::from_secs(60), client.sync()).await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "{what}: sync {r:?}\n{}",
        tail(&w.log())
    );
}

/// (a) The catalog was built on the mounted files dataset; the watcher is stopped, the
/// dataset unmounted, the watcher started: it marks nothing deleted and waits, saying
/// why; once the dataset is mounted again it carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmounted_files_dataset_is_waited_for_not_taken_for_empty() {
    let pool = ZfsPool::new(128);
    let (ds, files) = pool.create_dataset("files");
    let meta = pool.scratch().join("meta");
    fs::create_dir_all(&meta).unwrap();
    populate(&files, 60, "a");
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    sync(&w, "first start").await;
    let before = w.catalog_active();
    assert_eq!(before.len(), 60);
    w.stop();

    zfs_when_not_busy(&["unmount", &ds]);
    assert!(
        fs::read_dir(&files).unwrap().next().is_none(),
        "mountpoint empty"
    );
    let mut notify = w.spawn();
    let status = waits(&w, &mut notify, "files dataset unmounted");
    eprintln!("while unmounted: {status}");
    assert!(status.contains("files_root"), "{status}");
    // A few polls of the watcher go by: still nothing written.
    std::thread::sleep(Duration::from_secs(3));
    assert!(w.is_running(), "watcher gave up\n{}", w.log());
    assert!(!was_ready(&notify), "READY=1 over an unmounted dataset");
    assert_eq!(deleted(&w), 0, "files marked deleted\n{}", tail(&w.log()));
    assert_eq!(
        w.catalog_active(),
        before,
        "catalog changed while unmounted"
    );

    zfs(&["mount", &ds]);
    ready(&w, &mut notify, "after zfs mount");
    assert_eq!(
        w.catalog_active(),
        before,
        "catalog unchanged after the mount"
    );
    atomic_write(&files.join("owner0/after.txt"), b"after the mount");
    sync(&w, "after the mount").await;
    w.assert_consistent("files dataset mounted again");
    assert_eq!(deleted(&w), 0);
    w.stop();
}

/// (b) The metadata directory is a dataset, unmounted at start: the catalog's marker in
/// the files root says a catalog exists, so no new one is created on the directory
/// beneath; once the dataset is mounted the watcher carries on with its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmounted_metadata_dataset_gets_no_new_catalog() {
    let pool = ZfsPool::new(128);
    let (_, files) = pool.create_dataset("files");
    let (meta_ds, meta) = pool.create_dataset("meta");
    populate(&files, 30, "b");
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    sync(&w, "first start").await;
    let before = w.catalog_active();
    assert_eq!(before.len(), 30);
    w.stop();

    zfs_when_not_busy(&["unmount", &meta_ds]);
    assert!(
        fs::read_dir(&meta).unwrap().next().is_none(),
        "mountpoint empty"
    );
    let mut notify = w.spawn();
    let status = waits(&w, &mut notify, "metadata dataset unmounted");
    eprintln!("while unmounted: {status}");
    assert!(status.contains("metadata_dir"), "{status}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(w.is_running(), "watcher gave up\n{}", w.log());
    assert!(!was_ready(&notify), "READY=1 without the metadata dataset");
    let beneath: Vec<_> = fs::read_dir(&meta).unwrap().flatten().collect();
    assert!(
        beneath.is_empty(),
        "written beneath the unmounted dataset: {beneath:?}"
    );

    zfs(&["mount", &meta_ds]);
    ready(&w, &mut notify, "after zfs mount");
    assert_eq!(w.catalog_active(), before, "history kept");
    sync(&w, "after the mount").await;
    w.assert_consistent("metadata dataset mounted again");
    w.stop();
}

/// (c) The files tree is really replaced (another dataset mounted at files_root): the
/// watcher refuses it (waits; with `--no-wait` exits with a named error) until it is
/// started with `--accept-new-files-root`, which takes the new tree; the next start
/// needs no flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_files_root_takes_a_replaced_tree() {
    let pool = ZfsPool::new(128);
    let (old_ds, files) = pool.create_dataset("files");
    let (new_ds, new_mp) = pool.create_dataset("files2");
    let meta = pool.scratch().join("meta");
    fs::create_dir_all(&meta).unwrap();
    populate(&files, 20, "old");
    populate(&new_mp, 15, "new");
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    sync(&w, "first start").await;
    assert_eq!(w.catalog_active().len(), 20);
    w.stop();

    zfs_when_not_busy(&["unmount", &old_ds]);
    zfs(&["set", &format!("mountpoint={}", files.display()), &new_ds]);
    let mounted = horace_tests::wait_until(Duration::from_secs(20), || {
        files.join("owner0/new-0.txt").exists()
    });
    if !mounted {
        zfs(&["mount", &new_ds]);
    }
    assert!(
        files.join("owner0/new-0.txt").exists(),
        "files2 at files_root"
    );

    // Without the flag: it waits.
    let mut notify = w.spawn();
    let status = waits(&w, &mut notify, "replaced tree");
    eprintln!("replaced tree: {status}");
    assert_eq!(deleted(&w), 0);
    w.stop();

    // Told not to wait: a named error and a distinct exit status.
    w.args = vec!["--no-wait".into()];
    let _notify = w.spawn();
    let mut child = w.child.take().unwrap();
    let st = child
        .wait_timeout(Duration::from_secs(60))
        .expect("--no-wait exits");
    assert_eq!(st.code(), Some(3), "exit status\n{}", tail(&w.log()));
    assert!(
        w.log().contains("FilesRootChanged"),
        "named error\n{}",
        tail(&w.log())
    );
    assert_eq!(deleted(&w), 0);

    // The operator says the tree was replaced.
    w.args = vec!["--accept-new-files-root".into()];
    w.start();
    sync(&w, "accepted").await;
    w.assert_consistent("replaced tree accepted");
    assert_eq!(deleted(&w), 20, "the old tree's files are deleted");
    w.stop();
    w.args.clear();
    w.start();
    w.assert_consistent("next start without the flag");
    w.stop();
}
