//! kill -9 of the real watcher at random points of a burst of writes, in-place rewrites,
//! renames (files and directories) and deletes, then a restart: the catalog equals the
//! disk, every version committed before the kill is still there, and no version holds
//! content that was never completely written (a half-written file).
//!
//! Rounds: `HORACE_KILL_ROUNDS` (CI default 6; every third round kills during the
//! startup scan instead of during the burst). With `HORACE_KILL_LOAD_THROUGH_RESTART=1`
//! the burst, directory renames included, also goes on through the next startup scan
//! (issue 13 item 1; not yet in CI: see docs/reliability.md). Replay a failure with
//! `HORACE_SEED`.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fixture::{knob, sha256_hex, Rng, Watcher};

/// Every content ever completely written, by sha256.
type Written = Arc<Mutex<BTreeSet<String>>>;

/// One writer's burst over `root` until `stop` is set. Returns the operations done.
fn burst(root: &Path, seed: u64, stop: &AtomicBool, written: &Written) -> u64 {
    let mut rng = Rng::seeded(seed);
    let dirs = ["a", "b", "c/d"];
    for d in dirs {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut ops = 0;
    while !stop.load(Ordering::Relaxed) {
        ops += 1;
        let dir = root.join(dirs[rng.below(3) as usize]);
        let name = format!("f{}.dat", rng.below(40));
        let path = dir.join(&name);
        let content = make_content(&path, ops, rng.below(48 * 1024) as usize);
        match rng.below(10) {
            // Temp + rename into place.
            0..=3 => {
                written.lock().unwrap().insert(sha256_hex(&content));
                let tmp = dir.join(format!("{name}.tmp"));
                fs::write(&tmp, &content).unwrap();
                fs::rename(&tmp, &path).unwrap();
            }
            // In place (its own names, `*.log`): truncate, write in two halves, close.
            4..=5 => {
                written.lock().unwrap().insert(sha256_hex(&content));
                let mut f = fs::File::create(path.with_extension("log")).unwrap();
                let half = content.len() / 2;
                f.write_all(&content[..half]).unwrap();
                f.write_all(&content[half..]).unwrap();
            }
            // Renames keep the class (`*.dat` or `*.log`).
            6 => {
                let ext = if rng.below(2) == 0 { "dat" } else { "log" };
                let to = root
                    .join(dirs[rng.below(3) as usize])
                    .join(format!("f{}.{ext}", rng.below(40)));
                let _ = fs::rename(path.with_extension(ext), &to);
            }
            7 => {
                let ext = if rng.below(2) == 0 { "dat" } else { "log" };
                let _ = fs::remove_file(path.with_extension(ext));
            }
            // A directory rename and back (ids kept, one prefix update each way).
            8 => {
                let (from, to) = (root.join("b"), root.join("b-moved"));
                if fs::rename(&from, &to).is_ok() {
                    fs::rename(&to, &from).unwrap();
                }
            }
            // A subdirectory with its files renamed for good (a later write makes the
            // old name again).
            _ if rng.below(4) == 0 => {
                let sub = dir.join(format!("sub{}", rng.below(3)));
                let _ = fs::rename(&sub, dir.join(format!("moved{ops}")));
            }
            _ => {
                let sub = dir.join(format!("sub{}", rng.below(3)));
                fs::create_dir_all(&sub).unwrap();
                let c = make_content(&sub.join("x"), ops, 100);
                written.lock().unwrap().insert(sha256_hex(&c));
                fs::write(sub.join(format!("x{}.log", rng.below(4))), &c).unwrap();
            }
        }
    }
    ops
}

/// Content unique to (path, n), `len` bytes long.
fn make_content(path: &Path, n: u64, len: usize) -> Vec<u8> {
    let line = format!("{} #{n}\n", path.display());
    line.bytes().cycle().take(len.max(line.len())).collect()
}

/// (file id, version, sha256) of every version.
fn versions(w: &Watcher) -> BTreeSet<(i64, i64, String)> {
    let conn = w.catalog();
    let mut stmt = conn
        .prepare("SELECT file_id, version, sha256 FROM versions")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// (path, sha256) of every version of files of temp+rename writers (`*.dat`) and of
/// in-place writers (`*.log`).
fn versions_with_path(w: &Watcher) -> Vec<(String, String)> {
    crate::fixture::all_versions(&w.catalog())
}

/// Syncs until nothing is missing (a subtree flooded during the startup scan is
/// `reconciling` until its scan ends: see `watch/backlog.rs`); returns how long it took.
fn synced(w: &Watcher, within: Duration) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let r = rt.block_on(async { w.client().await.sync().await });
        match r {
            Ok(report) if report.is_synced() => return t0.elapsed(),
            other => assert!(
                t0.elapsed() < within,
                "not synced after {within:?}: {other:?}\n{}",
                crate::fixture::tail(&w.log())
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kill_nine_during_bursts_loses_nothing() {
    let rounds = knob("HORACE_KILL_ROUNDS", 6);
    let load_through_restart = knob("HORACE_KILL_LOAD_THROUGH_RESTART", 0) == 1;
    let mut rng = Rng::from_env("kill_nine_during_bursts_loses_nothing");
    let dir = horace_tests::shared_tempdir();
    let (files, meta): (PathBuf, PathBuf) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(&files).unwrap();
    fs::create_dir_all(&meta).unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let written: Written = Arc::default();
    let mut total_ops = 0;
    // Through the restart: (round, wrong or missing, extra) of every round that diverged,
    // asserted at the end so that a soak reports them all.
    let mut diverged: Vec<(u64, Vec<String>, Vec<String>)> = Vec::new();
    let mut during_scan_rounds = 0;
    let mut in_place_intermediate = 0;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let seed = rng.next();
        let writer = {
            let (root, stop, written) = (files.clone(), stop.clone(), written.clone());
            std::thread::spawn(move || burst(&root, seed, &stop, &written))
        };
        let kill_at = Duration::from_millis(50 + rng.below(1200));
        let started = Instant::now();
        let during_scan = round % 3 == 2;
        if during_scan {
            // Restart, and kill while the startup scan runs under the burst.
            w.kill9();
            let _notify = w.spawn();
            std::thread::sleep(Duration::from_millis(rng.below(300)));
        } else {
            std::thread::sleep(kill_at);
        }
        let committed = versions(&w);
        w.kill9();
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        if during_scan && load_through_restart {
            // The next startup scan walks a tree whose directories keep moving.
            w.start();
        }
        stop.store(true, Ordering::Relaxed);
        total_ops += writer.join().unwrap();
        eprintln!(
            "round {round}: killed after {:?}{}, {} versions committed",
            started.elapsed(),
            if during_scan {
                " (during startup scan)"
            } else {
                ""
            },
            committed.len()
        );
        if during_scan && load_through_restart {
            let t = synced(&w, Duration::from_secs(120));
            eprintln!("round {round}: caught up {t:?} after the load stopped");
        } else {
            w.start();
        }
        during_scan_rounds += u64::from(during_scan);
        if load_through_restart {
            let (cat, disk) = (w.catalog_active(), w.disk());
            let missing: Vec<String> = disk
                .keys()
                .filter(|k| cat.get(*k) != disk.get(*k))
                .cloned()
                .collect();
            let extra: Vec<String> = cat
                .keys()
                .filter(|k| !disk.contains_key(*k))
                .cloned()
                .collect();
            if !missing.is_empty() || !extra.is_empty() {
                eprintln!("round {round}: DIVERGED: wrong/missing {missing:?}, extra {extra:?}");
                diverged.push((round, missing, extra));
                // Caught up for the next round (a restart scans again).
                w.kill9();
                w.start();
            }
        }
        w.assert_consistent(&format!("round {round}"));
        let after = versions(&w);
        let lost: Vec<_> = committed.difference(&after).collect();
        assert!(
            lost.is_empty(),
            "round {round}: committed versions lost: {lost:?}"
        );
        let written = written.lock().unwrap();
        let half: Vec<_> = versions_with_path(&w)
            .into_iter()
            .filter(|v| !written.contains(&v.1))
            .collect();
        let (logs, dats): (Vec<_>, Vec<_>) = half.iter().partition(|v| v.0.ends_with(".log"));
        assert!(
            dats.is_empty(),
            "round {round}: versions of never-completed content: {dats:?}"
        );
        in_place_intermediate = logs.len();
    }
    eprintln!(
        "in-place writers: {in_place_intermediate} intermediate versions (a rewrite caught \
         between its truncate and its close; never a current version)"
    );
    let files_now = w.disk().len();
    w.stop();
    let missing: usize = diverged.iter().map(|d| d.1.len() + d.2.len()).sum();
    eprintln!(
        "kill -9: {rounds} rounds ({during_scan_rounds} during the startup scan{}), {total_ops} operations, {files_now} files at the end, {missing} wrong/missing/extra after sync in {} rounds",
        if load_through_restart { ", load through the restart" } else { "" },
        diverged.len()
    );
    assert!(
        diverged.is_empty(),
        "rounds where the catalog differed from the disk after sync: {diverged:?}"
    );
}
