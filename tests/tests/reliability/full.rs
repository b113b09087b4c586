//! The metadata directory full (a 3 MiB tmpfs, then grown to 64 MiB with a remount):
//! cataloging fails loudly (status lists the failures, the log says why), nothing is
//! corrupted, the watcher keeps running, and once space returns every file is cataloged.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::fixture::{eventually, Watcher};

fn mount(args: &[&str], dir: &Path) {
    horace_tests::run_ok(std::process::Command::new("mount").args(args).arg(dir));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_full_fails_loudly_and_resumes() {
    horace_tests::require_root("mount -t tmpfs");
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("erin")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    mount(&["-t", "tmpfs", "-o", "size=3m", "tmpfs"], &meta);
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(meta.clone());
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let client = w.client().await;
    // 60 distinct files of 256 KiB: 15 MiB of content for a 3 MiB store.
    for i in 0..60u32 {
        let body: Vec<u8> = format!("file {i} ")
            .bytes()
            .cycle()
            .take(256 * 1024)
            .collect();
        horace_tests::atomic_write(&files.join(format!("erin/{i}.bin")), &body);
    }
    let loud = eventually(Duration::from_secs(60), || async {
        client.status().await.is_ok_and(|s| !s.failures.is_empty())
    })
    .await;
    assert!(
        loud,
        "no failure reported in status\n{}",
        crate::fixture::tail(&w.log())
    );
    // More fail than status lists: it carries how many and the last few.
    let long = eventually(Duration::from_secs(60), || async {
        client.status().await.is_ok_and(|s| s.failures_total > 20)
    })
    .await;
    let status = client.status().await.unwrap();
    eprintln!(
        "metadata full: {} paths failing, {} listed, e.g. {:?}",
        status.failures_total,
        status.failures.len(),
        status.failures.first()
    );
    assert!(
        long && status.failures.len() == 20,
        "{} failing, {} listed",
        status.failures_total,
        status.failures.len()
    );
    let log = w.log();
    assert!(
        log.contains("No space left") || log.contains("full") || log.contains("ENOSPC"),
        "the log does not say why\n{}",
        crate::fixture::tail(&log)
    );
    assert!(w.is_running(), "watcher died on a full disk\n{log}");
    // `sync` is truthful (issue 14 item 4): it names the files not cataloged, as
    // store_full (or failed, for a cause that does not say full), never "synced".
    let report = client.sync().await.unwrap();
    let full = report
        .missing
        .iter()
        .filter(|m| m.why == horace_client::Missing::StoreFull)
        .count();
    eprintln!(
        "metadata full: sync lists {} not cataloged ({full} store_full), e.g. {:?}",
        report.missing.len(),
        report.missing.first()
    );
    assert!(
        !report.is_synced() && full > 0,
        "sync on a full store: {report:?}"
    );
    let conn = w.catalog();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    crate::fixture::assert_store_sound(&conn, &meta);
    drop(conn);

    // Space returns: everything is cataloged without a restart.
    mount(&["-o", "remount,size=64m"], &meta);
    let resumed = eventually(Duration::from_secs(120), || async {
        w.catalog_active() == w.disk()
    })
    .await;
    assert!(
        resumed,
        "not resumed after space returned\n{}",
        crate::fixture::tail(&w.log())
    );
    let report = client.sync().await.unwrap();
    assert!(report.is_synced(), "space returned, yet: {report:?}");
    w.assert_consistent("after space returned");
    let status = client.status().await.unwrap();
    assert!(
        status.failures.is_empty(),
        "failures remain: {:?}",
        status.failures
    );
    w.stop();
}
