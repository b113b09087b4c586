//! Directories renamed while a reconcile scan walks (issue 13 items 1 and 4): with a
//! catalog in place and the watcher stopped, many new directories of files are created;
//! the watcher starts and every directory is renamed while its startup scan runs. After
//! READY and `sync` the catalog equals the disk, files written into the renamed
//! directories afterwards are cataloged (they are watched), and no file that was never
//! deleted has a `deleted` event. A second start renames the cataloged directories again
//! during the scan: some away and back (A→B→A), some out of the tree and back in, some
//! to a new name, and some get a new subdirectory created and removed.
//!
//! Size: `HORACE_SCAN_RENAME_DIRS` × `HORACE_SCAN_RENAME_FILES` (default 100 × 50).

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use horace_tests::{atomic_write, NotifySocket};

use crate::fixture::{knob, synced as sync, tail, Watcher};

/// How many startup or other scans the watcher logged as started so far.
fn scans_started(w: &Watcher) -> usize {
    w.log().matches("reconcile scan started").count()
}

/// Spawns the watcher and returns once its startup scan has started.
fn spawn_until_scanning(w: &mut Watcher) -> NotifySocket {
    let before = scans_started(w);
    let notify = w.spawn();
    let started = horace_tests::wait_until(Duration::from_secs(60), || scans_started(w) > before);
    assert!(started, "no startup scan\n{}", tail(&w.log()));
    notify
}

/// Waits for READY=1 and the query socket.
fn wait_ready(w: &Watcher, notify: &mut NotifySocket) {
    let ready = notify.wait_for(Duration::from_secs(300), |l| l == "READY=1");
    assert!(ready.is_some(), "watcher not ready\n{}", tail(&w.log()));
    let up = horace_tests::wait_until(Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&w.socket).is_ok()
    });
    assert!(up, "query socket not served\n{}", tail(&w.log()));
}

/// Files on disk the catalog does not have with their content, and catalog rows with no
/// file on disk; panics naming a few of each.
fn assert_equal(w: &Watcher, what: &str) {
    let (cat, disk) = (w.catalog_active(), w.disk());
    let missing: Vec<&String> = disk
        .keys()
        .filter(|k| cat.get(*k) != disk.get(*k))
        .collect();
    let extra: Vec<&String> = cat.keys().filter(|k| !disk.contains_key(*k)).collect();
    eprintln!(
        "{what}: {} of {} files missing or wrong in the catalog, {} extra rows",
        missing.len(),
        disk.len(),
        extra.len()
    );
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: catalog != disk: {} of {} files missing or wrong (e.g. {:?}), {} extra (e.g. {:?})\n{}",
        missing.len(),
        disk.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
        tail(&w.log())
    );
}

/// `deleted` events: path → how many.
fn deleted_events(w: &Watcher) -> BTreeMap<String, i64> {
    let conn = w.catalog();
    let mut stmt = conn
        .prepare(
            "SELECT coalesce(old_path, ''), count(*) FROM events WHERE kind = 'deleted' \
             GROUP BY old_path",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every event of the file(s) that ever had `path`: (file id, kind, old, new).
fn history(w: &Watcher, path: &str) -> Vec<(i64, String, Option<String>, Option<String>)> {
    let conn = w.catalog();
    let mut stmt = conn
        .prepare(
            "SELECT file_id, kind, old_path, new_path FROM events WHERE file_id IN \
             (SELECT file_id FROM events WHERE old_path = ?1 OR new_path = ?1) ORDER BY id",
        )
        .unwrap();
    stmt.query_map([path], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Writes one new file into each directory of `dirs` (and a new subdirectory with a
/// file), syncs, and asserts all are cataloged: the directories are watched.
async fn assert_watched(w: &Watcher, dirs: &[String], what: &str) {
    for d in dirs {
        atomic_write(
            &w.files.join(d).join("late.txt"),
            format!("late {d}").as_bytes(),
        );
        fs::create_dir_all(w.files.join(d).join("late-sub")).unwrap();
        atomic_write(
            &w.files.join(d).join("late-sub/x.txt"),
            format!("sub {d}").as_bytes(),
        );
    }
    sync(w, what).await;
    let cat = w.catalog_active();
    let unwatched: Vec<&String> = dirs
        .iter()
        .filter(|d| {
            !cat.contains_key(&format!("{d}/late.txt"))
                || !cat.contains_key(&format!("{d}/late-sub/x.txt"))
        })
        .collect();
    assert!(
        unwatched.is_empty(),
        "{what}: {} of {} renamed directories not watched (e.g. {:?})\n{}",
        unwatched.len(),
        dirs.len(),
        &unwatched[..unwatched.len().min(5)],
        tail(&w.log())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirs_renamed_during_a_scan_are_cataloged_and_watched() {
    let (n, m) = (
        knob("HORACE_SCAN_RENAME_DIRS", 100) as usize,
        knob("HORACE_SCAN_RENAME_FILES", 50) as usize,
    );
    let dir = horace_tests::shared_tempdir();
    let (files, meta, outside) = (
        dir.path().join("files"),
        dir.path().join("meta"),
        dir.path().join("outside"),
    );
    fs::create_dir_all(files.join("base")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    fs::create_dir_all(&outside).unwrap();
    for i in 0..10 {
        atomic_write(
            &files.join(format!("base/{i}.txt")),
            format!("{i}").as_bytes(),
        );
    }
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    sync(&w, "start").await;
    w.stop();

    // Round 1: new directories, every one renamed while the startup scan runs.
    for i in 0..n {
        let d = files.join(format!("d{i:03}"));
        fs::create_dir(&d).unwrap();
        for j in 0..m {
            fs::write(d.join(format!("f{j:02}.txt")), format!("d{i:03}/f{j:02}\n")).unwrap();
        }
    }
    let t0 = Instant::now();
    let mut notify = spawn_until_scanning(&mut w);
    for i in 0..n {
        fs::rename(
            files.join(format!("d{i:03}")),
            files.join(format!("r{i:03}")),
        )
        .unwrap();
    }
    let renamed_in = t0.elapsed();
    wait_ready(&w, &mut notify);
    sync(&w, "round 1").await;
    eprintln!(
        "round 1: {n} × {m} files, renamed within {renamed_in:?} of the start, ready + sync after {:?}",
        t0.elapsed()
    );
    assert_equal(
        &w,
        "round 1 (new directories renamed during the startup scan)",
    );
    let dirs: Vec<String> = (0..n).map(|i| format!("r{i:03}")).collect();
    assert_watched(&w, &dirs, "round 1").await;
    w.stop();

    // Round 2: the cataloged directories renamed during the scan: a quarter to a new
    // name, a quarter away and back, a quarter out of the tree and back in, and a quarter
    // given a subdirectory that is created and removed again.
    let t0 = Instant::now();
    let mut notify = spawn_until_scanning(&mut w);
    let mut dirs = Vec::new();
    for i in 0..n {
        let (r, t) = (
            files.join(format!("r{i:03}")),
            files.join(format!("t{i:03}")),
        );
        match i % 4 {
            0 => {
                fs::rename(&r, &t).unwrap();
                dirs.push(format!("t{i:03}"));
                continue;
            }
            1 => {
                fs::rename(&r, &t).unwrap();
                fs::rename(&t, &r).unwrap();
            }
            2 => {
                let o = outside.join(format!("r{i:03}"));
                fs::rename(&r, &o).unwrap();
                fs::rename(&o, &r).unwrap();
            }
            _ => {
                let s = r.join("brief");
                fs::create_dir(&s).unwrap();
                fs::write(s.join("x.txt"), "brief").unwrap();
                fs::remove_file(s.join("x.txt")).unwrap();
                fs::remove_dir(&s).unwrap();
            }
        }
        dirs.push(format!("r{i:03}"));
    }
    let renamed_in = t0.elapsed();
    wait_ready(&w, &mut notify);
    sync(&w, "round 2").await;
    eprintln!(
        "round 2: renamed within {renamed_in:?} of the start, ready + sync after {:?}",
        t0.elapsed()
    );
    assert_equal(
        &w,
        "round 2 (cataloged directories renamed during the startup scan)",
    );
    assert_watched(&w, &dirs, "round 2").await;
    w.assert_consistent("round 2");

    // No file that stayed was ever deleted. The brief subdirectory's file really was
    // created and removed: a directory rename checks what its destination holds (see
    // `worker/apply.rs`), so it may be cataloged and then deleted — true history.
    let mut phantom = deleted_events(&w);
    phantom.retain(|p, _| !p.contains("/brief/"));
    assert!(
        phantom.is_empty(),
        "`deleted` events for files never deleted: {} paths (e.g. {:?}); history of the first: {:?}\n{}",
        phantom.len(),
        phantom.iter().take(5).collect::<Vec<_>>(),
        phantom.keys().next().map(|p| history(&w, p)),
        tail(&w.log())
    );
    w.stop();
}
