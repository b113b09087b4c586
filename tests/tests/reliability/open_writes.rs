//! Files written while kept open (issue 14 item 4): no close-after-write comes while a
//! database, an NFS server or an SMB server holds a file open. Each is cataloged once
//! `[versions] quiet_period_ms` passes with no write, and until then `sync` says so (the
//! path, `open_for_writing`) instead of "synced"; the CLI exits 9.

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use horace_client::{FileRef, Missing};

use crate::fixture::{sha256_hex, tail, Watcher};

const QUIET_MS: u64 = 1500;

fn setup() -> (tempfile::TempDir, Watcher) {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(&files).unwrap();
    fs::create_dir_all(&meta).unwrap();
    let mut w = Watcher::new(
        &files,
        &meta,
        &format!("[versions]\nquiet_period_ms = {QUIET_MS}\n"),
    );
    w.start();
    (dir, w)
}

fn open_in_report(r: &horace_client::SyncReport, path: &str) -> bool {
    r.missing
        .iter()
        .any(|m| m.path == path && m.why == Missing::OpenForWriting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_kept_open_is_cataloged_when_quiet_and_sync_says_so_until_then() {
    let (_dir, w) = setup();
    let client = w.client().await;
    let path = w.files.join("held open.log");
    let mut f = fs::File::create(&path).unwrap();
    // The create's own close-after-write never comes: this handle stays open.
    f.write_all(b"part one\n").unwrap();
    let r = client.sync().await.unwrap();
    assert!(
        open_in_report(&r, "held open.log"),
        "sync right after a write to an open file: {r:?}"
    );
    // The CLI says the same, and exits 9.
    f.write_all(b"part two\n").unwrap();
    let out = horace_tests::run(
        Command::new(horace_tests::bin_path("horace"))
            .arg("--socket")
            .arg(&w.socket)
            .arg("sync"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(9), "horace sync: {stdout}");
    assert!(
        stdout.contains("open_for_writing") && stdout.contains("held open.log"),
        "{stdout}"
    );
    // Quiet for the period: cataloged without a close.
    let want = sha256_hex(b"part one\npart two\n");
    let caught = horace_tests::wait_until(Duration::from_secs(15), || {
        w.catalog_active().get("held open.log") == Some(&want)
    });
    assert!(caught, "not cataloged while open\n{}", tail(&w.log()));
    let r = client.sync().await.unwrap();
    assert!(r.is_synced(), "quiet and cataloged, yet: {r:?}");
    // Written again, still open: a second version after the next quiet period.
    f.write_all(b"part three\n").unwrap();
    let want = sha256_hex(b"part one\npart two\npart three\n");
    let caught = horace_tests::wait_until(Duration::from_secs(15), || {
        w.catalog_active().get("held open.log") == Some(&want)
    });
    assert!(caught, "second write not cataloged\n{}", tail(&w.log()));
    // The close reads it again: the same content makes no version.
    drop(f);
    let r = client.sync().await.unwrap();
    assert!(r.is_synced(), "{r:?}");
    let versions = client
        .versions(FileRef::Path("held open.log".into()))
        .await
        .unwrap();
    // "part one" alone may be a version too: a sync reads a created file that has not
    // been closed yet (see `RecentCreates`), and it held that for a while.
    let p1 = sha256_hex(b"part one\n");
    let p12 = sha256_hex(b"part one\npart two\n");
    let mut shas: Vec<&str> = versions
        .iter()
        .filter_map(|v| v.sha256.as_deref())
        .collect();
    if shas.first() == Some(&p1.as_str()) {
        shas.remove(0);
    }
    assert_eq!(
        shas,
        [p12.as_str(), want.as_str()],
        "one version per quiet write, none at the close"
    );
    w.assert_consistent("open writer");
}

/// A SQLite database kept open by one connection across 300 commits (python3's sqlite3,
/// rollback journal): cataloged with its content on disk once the commits stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_kept_open_is_cataloged() {
    let (_dir, w) = setup();
    let client = w.client().await;
    let db = w.files.join("app.db");
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1])\n\
                  c.execute('create table t (n integer, s text)')\n\
                  for i in range(300):\n    \
                      c.execute('insert into t values (?, ?)', (i, 'x' * 100))\n    \
                      c.commit()\n\
                  print('done', flush=True)\n\
                  sys.stdin.read()\n";
    let mut py = horace_tests::ChildGuard::spawn(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(py.child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "done");
    let want = sha256_hex(&fs::read(&db).unwrap());
    let caught = horace_tests::wait_until(Duration::from_secs(15), || {
        w.catalog_active().get("app.db") == Some(&want)
    });
    assert!(
        caught,
        "the open database's content is not cataloged\n{}",
        tail(&w.log())
    );
    let r = client.sync().await.unwrap();
    assert!(
        !open_in_report(&r, "app.db"),
        "quiet database still listed: {r:?}"
    );
    assert!(py.is_running(), "the connection stays open throughout");
    drop(py);
}

/// A file truncated and held open (a writer that has not written yet) is never cataloged
/// empty: its earlier content stays current, and `sync` lists it as open for writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_truncated_and_held_open_is_not_cataloged_empty() {
    let (_dir, w) = setup();
    let client = w.client().await;
    let path = w.files.join("report.txt");
    fs::write(&path, b"saved content\n").unwrap();
    client.sync().await.unwrap();
    let held = fs::File::create(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(QUIET_MS * 2 + 500)).await;
    let r = client.sync().await.unwrap();
    assert!(open_in_report(&r, "report.txt"), "{r:?}");
    assert_eq!(
        w.catalog_active().get("report.txt"),
        Some(&sha256_hex(b"saved content\n")),
        "an empty version nobody saved\n{}",
        tail(&w.log())
    );
    drop(held);
    let r = client.sync().await.unwrap();
    assert!(r.is_synced(), "{r:?}");
    // Closed empty: now that is a saved version.
    assert_eq!(w.catalog_active().get("report.txt"), Some(&sha256_hex(b"")));
}
