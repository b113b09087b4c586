//! Awkward writers: one that never closes its file (until it is killed), one that appends
//! a line every 100 ms (`HORACE_APPEND_SECS`, 10 s in CI, 60 s in the soak), and a
//! same-size rewrite that keeps the mtime (as a coarse mtime tick would), live and while
//! the watcher is down. Each ends up cataloged with the right content.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use horace_client::{FileRef, FileUpdate};

use crate::fixture::{knob, sha256_hex, Watcher};

fn setup() -> (tempfile::TempDir, Watcher) {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(&files).unwrap();
    fs::create_dir_all(&meta).unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    (dir, w)
}

fn current(w: &Watcher, path: &str) -> Option<String> {
    w.catalog_active().get(path).cloned()
}

/// A process (`cat`) holds the file open for writing and never closes it: `register_file`
/// catalogs what is there now (the quiet period would, a few seconds later: see
/// `open_writes.rs`); killing the writer closes the file and the final content is
/// cataloged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_never_closes() {
    let (_dir, w) = setup();
    let client = w.client().await;
    let path = w.files.join("open.log");
    let out = fs::File::create(&path).unwrap();
    let mut cat = horace_tests::ChildGuard::spawn(
        Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(Stdio::null()),
    );
    let mut stdin = cat.child.stdin.take().unwrap();
    stdin.write_all(b"first part\n").unwrap();
    stdin.flush().unwrap();
    assert!(horace_tests::wait_until(Duration::from_secs(10), || {
        fs::read(&path).is_ok_and(|b| b == b"first part\n")
    }));
    // Our File::create handle was closed right away (an empty close-write); the
    // content written through `cat` since then is not yet a completed write.
    client.sync().await.unwrap();
    let reg = client
        .register_file("open.log", FileUpdate::default())
        .await
        .unwrap();
    let v = reg.versions.last().expect("registered version");
    assert_eq!(
        v.sha256.as_deref(),
        Some(sha256_hex(b"first part\n").as_str()),
        "register catalogs what is there now"
    );
    stdin.write_all(b"second part\n").unwrap();
    stdin.flush().unwrap();
    assert!(horace_tests::wait_until(Duration::from_secs(10), || {
        fs::metadata(&path).is_ok_and(|m| m.len() == 23)
    }));
    // The writer dies without closing: the kernel closes the file (a close-write).
    cat.signal(libc::SIGKILL);
    cat.wait_timeout(Duration::from_secs(10))
        .expect("cat killed");
    client.sync().await.unwrap();
    let want = sha256_hex(b"first part\nsecond part\n");
    let ok = horace_tests::wait_until(Duration::from_secs(10), || {
        current(&w, "open.log").as_deref() == Some(want.as_str())
    });
    assert!(
        ok,
        "final content not cataloged: {:?}\n{}",
        current(&w, "open.log"),
        w.log()
    );
    w.assert_consistent("never-closing writer");
}

/// An appender: open(O_APPEND), one line, close, every 100 ms. Every version is a
/// prefix of the final content (never torn) and the last one is the final content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appender_every_100ms() {
    let secs = knob("HORACE_APPEND_SECS", 10);
    let (_dir, w) = setup();
    let client = w.client().await;
    let path = w.files.join("append.log");
    let mut all = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0;
    while Instant::now() < end {
        let line = format!("line {n} at {:?}\n", Instant::now());
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(&path)
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
        drop(f);
        all.extend_from_slice(line.as_bytes());
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.sync().await.unwrap();
    assert_eq!(
        current(&w, "append.log"),
        Some(sha256_hex(&all)),
        "{}",
        w.log()
    );
    let prefixes: std::collections::BTreeSet<String> = (1..=all.len())
        .filter(|&i| all[i - 1] == b'\n')
        .map(|i| sha256_hex(&all[..i]))
        .collect();
    let versions = client
        .versions(FileRef::Path("append.log".into()))
        .await
        .unwrap();
    for v in &versions {
        assert!(
            v.sha256.as_ref().is_some_and(|s| prefixes.contains(s)),
            "version {} is not a whole-line prefix",
            v.version
        );
    }
    eprintln!(
        "appender: {n} appends over {secs} s, {} versions, all whole-line prefixes",
        versions.len()
    );
    w.assert_consistent("appender");
}

/// Rewrites `path` in place with `bytes` (same size) and puts the old mtime back.
fn rewrite_same_size_same_mtime(path: &std::path::Path, bytes: &[u8]) {
    let before = fs::metadata(path).unwrap().modified().unwrap();
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
    f.set_modified(before).unwrap();
    drop(f);
    assert_eq!(fs::metadata(path).unwrap().modified().unwrap(), before);
}

/// Same size, same mtime, same inode: live (the close-write is hashed) and while the
/// watcher is down (the startup scan sees the changed ctime).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_size_rewrite_in_the_same_mtime_tick() {
    let (_dir, mut w) = setup();
    let path = w.files.join("tick.bin");
    {
        let client = w.client().await;
        fs::write(&path, b"AAAAAAAA").unwrap();
        client.sync().await.unwrap();
        assert_eq!(current(&w, "tick.bin"), Some(sha256_hex(b"AAAAAAAA")));
        rewrite_same_size_same_mtime(&path, b"BBBBBBBB");
        client.sync().await.unwrap();
        assert_eq!(
            current(&w, "tick.bin"),
            Some(sha256_hex(b"BBBBBBBB")),
            "live"
        );
    }
    w.stop();
    rewrite_same_size_same_mtime(&path, b"CCCCCCCC");
    w.start();
    assert_eq!(
        current(&w, "tick.bin"),
        Some(sha256_hex(b"CCCCCCCC")),
        "offline\n{}",
        w.log()
    );
    w.assert_consistent("same-size rewrite");
}
