//! The metadata directory full (a 16 MiB tmpfs, then grown to 64 MiB with a remount):
//! versions are still cataloged, without their content (issue 12 item 4), `status` says
//! how many and which, `sync` answers synced, nothing is corrupted, the watcher keeps
//! running, and once space returns new content is stored again. Before, every file whose
//! content did not fit failed to be cataloged at all (status listed them as failures,
//! `sync` as `store_full`) until space returned.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::fixture::{eventually, Watcher};

fn mount(args: &[&str], dir: &Path) {
    horace_tests::run_ok(std::process::Command::new("mount").args(args).arg(dir));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_full_catalogs_without_content_and_resumes() {
    horace_tests::require_root("mount -t tmpfs");
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("erin")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    mount(&["-t", "tmpfs", "-o", "size=16m", "tmpfs"], &meta);
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(meta.clone());
    // The store's own limit, not an owner's budget (store_limits.rs has that one): the
    // reserve for the catalog is a quarter of so small a filesystem (4 MiB).
    let mut w = Watcher::new(&files, &meta, "[versions]\nowner_share_percent = 100\n");
    w.start();
    let client = w.client().await;
    // 100 distinct files of 256 KiB: 25 MiB of content for a 16 MiB store.
    for i in 0..100u32 {
        let body: Vec<u8> = format!("file {i} ")
            .bytes()
            .cycle()
            .take(256 * 1024)
            .collect();
        horace_tests::atomic_write(&files.join(format!("erin/{i}.bin")), &body);
    }
    let cataloged = eventually(Duration::from_secs(90), || async {
        w.catalog_active() == w.disk()
    })
    .await;
    assert!(
        cataloged,
        "not every file cataloged on a full store\n{}",
        crate::fixture::tail(&w.log())
    );
    let status = client.status().await.unwrap();
    eprintln!(
        "metadata full: {} versions cataloged without content, {} listed, e.g. {:?}; {} failures",
        status.versions_not_stored,
        status.not_stored.len(),
        status.not_stored.first(),
        status.failures_total
    );
    assert!(
        status.versions_not_stored > 20 && status.not_stored.len() == 20,
        "{} not stored, {} listed",
        status.versions_not_stored,
        status.not_stored.len()
    );
    assert!(
        status.not_stored[0].cause.contains("the store is full")
            && status.not_stored[0].path.starts_with("erin/"),
        "{:?}",
        status.not_stored[0]
    );
    let log = w.log();
    assert!(
        log.contains("content not stored: the store is full"),
        "the log does not say why\n{}",
        crate::fixture::tail(&log)
    );
    assert!(w.is_running(), "watcher died on a full disk\n{log}");
    let report = client.sync().await.unwrap();
    assert!(report.is_synced(), "sync on a full store: {report:?}");
    let human = std::process::Command::new(horace_tests::bin_path("horace"))
        .arg("--socket")
        .arg(&w.socket)
        .arg("status")
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("versions cataloged without content"),
        "horace status does not say so:\n{human}"
    );
    let conn = w.catalog();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    crate::fixture::assert_store_sound(&conn, &meta);

    let unstored: i64 = conn
        .query_row(
            "SELECT count(*) FROM versions WHERE content_stored = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        unstored > 20 && unstored as u64 <= status.versions_not_stored,
        "{unstored} versions without content, {} noted",
        status.versions_not_stored
    );
    drop(conn);

    // Space returns: new content is stored again, without a restart.
    mount(&["-o", "remount,size=64m"], &meta);
    for i in 0..5u32 {
        let body: Vec<u8> = format!("later {i} ")
            .bytes()
            .cycle()
            .take(256 * 1024)
            .collect();
        horace_tests::atomic_write(&files.join(format!("erin/later-{i}.bin")), &body);
    }
    let stored = eventually(Duration::from_secs(60), || async {
        let conn = w.catalog();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM versions WHERE path LIKE 'erin/later-%' AND content_stored = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        n == 5
    })
    .await;
    assert!(
        stored,
        "not stored after space returned\n{}",
        crate::fixture::tail(&w.log())
    );
    let report = client.sync().await.unwrap();
    assert!(report.is_synced(), "space returned, yet: {report:?}");
    w.assert_consistent("after space returned");
    w.stop();
}
