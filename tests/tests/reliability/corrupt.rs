//! The catalog file truncated, its header overwritten, or a page in the middle zeroed:
//! the watcher detects it at start (`quick_check`), moves it aside, restores the newest
//! backup (`VACUUM INTO`) and its startup scan adds what changed since. History from
//! before the backup is kept; the catalog equals the disk.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use crate::fixture::{catalog_kept_aside, open_ro, Watcher};

/// How the catalog file is damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut to half its size (a torn copy, a full disk).
    Truncate,
    /// The first 100 bytes (the SQLite header) overwritten.
    Header,
    /// A page in the middle zeroed.
    MiddlePage,
}

fn damage(db: &std::path::Path, how: Damage) {
    let len = fs::metadata(db).unwrap().len();
    let mut f = fs::OpenOptions::new().write(true).open(db).unwrap();
    match how {
        Damage::Truncate => f.set_len(len / 2).unwrap(),
        Damage::Header => f.write_all(&[0x5a; 100]).unwrap(),
        Damage::MiddlePage => {
            let page = 4096;
            let pages = len / page;
            assert!(
                pages >= 3,
                "catalog too small to damage a middle page ({len} bytes)"
            );
            f.seek(SeekFrom::Start(pages / 2 * page)).unwrap();
            f.write_all(&vec![0u8; page as usize]).unwrap();
        }
    }
    f.sync_all().unwrap();
}

fn versions_count(db: &std::path::Path) -> Option<i64> {
    open_ro(db)
        .query_row("SELECT count(*) FROM versions", [], |r| r.get(0))
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_catalog_is_recovered_from_backup_and_scan() {
    for how in [Damage::Truncate, Damage::Header, Damage::MiddlePage] {
        let dir = horace_tests::shared_tempdir();
        let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
        fs::create_dir_all(files.join("bob")).unwrap();
        fs::create_dir_all(&meta).unwrap();
        let mut w = Watcher::new(
            &files,
            &meta,
            "[catalog]\nbackup_interval = 1\nbackups_keep = 3\n",
        );
        w.start();
        let client = w.client().await;
        // Enough rows that the catalog has pages to damage.
        for i in 0..60 {
            horace_tests::atomic_write(
                &files.join(format!("bob/f{i}.txt")),
                format!("one {i} {how:?}").as_bytes(),
            );
        }
        horace_tests::atomic_write(&files.join("bob/f0.txt"), b"two");
        client.sync().await.unwrap();
        let history = versions_count(&meta.join("catalog.db")).unwrap();
        let backups = meta.join("backups");
        let backed_up = horace_tests::wait_until(Duration::from_secs(60), || {
            fs::read_dir(&backups)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    e.file_name().to_string_lossy().ends_with(".db")
                        && versions_count(&e.path()) == Some(history)
                })
        });
        assert!(
            backed_up,
            "{how:?}: no backup holding {history} versions\n{}",
            w.log()
        );
        drop(client);
        w.stop();
        let db = meta.join("catalog.db");
        damage(&db, how);
        // Changed while the watcher was down: only the scan can know.
        horace_tests::atomic_write(&files.join("bob/f1.txt"), b"changed while down");
        fs::remove_file(files.join("bob/f2.txt")).unwrap();
        w.start();
        let log = w.log();
        assert!(
            log.contains("restored from the newest usable backup"),
            "{how:?}: not recovered\n{log}"
        );
        assert!(
            catalog_kept_aside(&meta, "corrupt"),
            "{how:?}: the damaged file was not kept aside"
        );
        w.assert_consistent(&format!("{how:?}"));
        let after = versions_count(&db).unwrap();
        assert_eq!(
            after,
            history + 1,
            "{how:?}: history before the backup + the change since"
        );
        eprintln!("{how:?}: detected, {history} versions restored from backup, +1 from the scan");
        w.stop();
    }
}
