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
        matches!(r, Ok(Ok(_))),
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
    // Back well within the 2 s a probe that found a path missing keeps looking.
    std::thread::sleep(Duration::from_millis(100));
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

/// Runs `mount`/`umount` with `args`; returns whether it succeeded.
fn mount_cmd(program: &str, args: &[&std::path::Path]) -> bool {
    horace_tests::run(std::process::Command::new(program).args(args))
        .status
        .success()
}

/// The files root is its own filesystem (an ext4 image on a loop device): unmounted
/// under the running watcher (nothing is marked deleted), then mounted again and written
/// to (cataloged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_root_unmounted_and_remounted() {
    horace_tests::require_root("mount -o loop");
    let dir = horace_tests::shared_tempdir();
    let (img, files, meta) = (
        dir.path().join("fs.img"),
        dir.path().join("files"),
        dir.path().join("meta"),
    );
    fs::create_dir_all(&files).unwrap();
    fs::create_dir_all(&meta).unwrap();
    fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    horace_tests::run_ok(
        std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&img),
    );
    let mount = || {
        mount_cmd(
            "mount",
            &[
                std::path::Path::new("-o"),
                std::path::Path::new("loop"),
                &img,
                &files,
            ],
        )
    };
    assert!(mount(), "mount -o loop failed");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(files.clone());
    for i in 0..20 {
        atomic_write(&files.join(format!("{i}.txt")), format!("{i}").as_bytes());
    }
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    sync(&w, "start").await;
    let before = w.catalog_active();
    assert_eq!(before.len(), 20);
    let mut unmounted = false;
    for _ in 0..20 {
        if mount_cmd("umount", &[&files]) {
            unmounted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(unmounted, "umount kept failing");
    let noticed =
        horace_tests::wait_until(Duration::from_secs(20), || w.log().contains("unmounted"));
    assert!(noticed, "unmount not noticed\n{}", w.log());
    // Let the reconcile of the unmount finish: the status reports it.
    let client = w.client().await;
    let scanned = crate::fixture::eventually(Duration::from_secs(20), || async {
        client
            .status()
            .await
            .is_ok_and(|s| s.last_scan.is_some_and(|l| l.reason != "startup"))
    })
    .await;
    assert!(scanned, "no reconcile after the unmount\n{}", w.log());
    assert_eq!(
        deleted(&w),
        0,
        "files marked deleted while unmounted\n{}",
        w.log()
    );
    assert_eq!(w.catalog_active(), before);
    assert!(w.is_running());
    assert!(mount(), "remount failed");
    atomic_write(&files.join("after-remount.txt"), b"remounted");
    fs::remove_file(files.join("3.txt")).unwrap();
    let cataloged = crate::fixture::eventually(Duration::from_secs(30), || async {
        w.catalog_active().contains_key("after-remount.txt")
    })
    .await;
    assert!(
        cataloged,
        "a write after the remount was not cataloged\n{}",
        crate::fixture::tail(&w.log())
    );
    sync(&w, "after the remount").await;
    w.assert_consistent("unmounted and remounted");
    w.stop();
}
