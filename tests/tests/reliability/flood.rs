//! One owner's flood (issue 12 item 6): a tenant creates ≥ 100k files in one directory as
//! fast as it can while another owner (`nobody`, through `setpriv`) writes a file and runs
//! `horace sync`. Measured: that sync's latency and whether the file is cataloged when it
//! returns, the watcher's peak queue depth and resident size, the size of `status --json`,
//! and how long SIGTERM takes during a flood; after the flood the catalog equals the disk
//! (the flooded directory is reconciled by a scan of that subtree).
//!
//! Size: `HORACE_FLOOD_FILES` (CI default 10,000, the second flood half of it; `scripts/soak.sh`
//! 100,000); the issue's case was 516,000.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use horace_tests::{bin_path, command_as, NOBODY};

use crate::fixture::{knob, sha256_hex, vm_rss_kib, Watcher};

/// How long another owner's sync may take during a flood.
const SYNC_BOUND: Duration = Duration::from_secs(5);
/// How long SIGTERM may take during a flood.
const STOP_BOUND: Duration = Duration::from_secs(10);

/// Creates `n` files named `<prefix><i>` in `dir` as fast as one thread can, until done or
/// `stop`; returns how many it made.
fn flood(dir: &Path, prefix: &str, n: u64, stop: &AtomicBool) -> u64 {
    for i in 0..n {
        if stop.load(Ordering::Relaxed) {
            return i;
        }
        fs::write(dir.join(format!("{prefix}{i:07}")), b"flood\n").unwrap();
    }
    n
}

/// As `nobody`: writes `content` to `path`, then runs `horace sync`; returns how long the
/// sync took and its output.
fn write_and_sync_as_nobody(w: &Watcher, path: &Path, content: &str) -> (Duration, String) {
    let out = command_as(NOBODY.0, NOBODY.1, &[], "sh")
        .arg("-c")
        .arg(r#"printf %s "$1" > "$2""#)
        .arg("sh")
        .arg(content)
        .arg(path)
        .output()
        .expect("write as nobody");
    assert!(out.status.success(), "write as nobody: {out:?}");
    let t0 = Instant::now();
    let out = command_as(NOBODY.0, NOBODY.1, &[], bin_path("horace"))
        .arg("--socket")
        .arg(&w.socket)
        .arg("--timeout")
        .arg("120")
        .arg("sync")
        .output()
        .expect("horace sync as nobody");
    let took = t0.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (took, text)
}

/// `horace --json status` as root: its size in bytes and the text.
fn status_json(w: &Watcher) -> (usize, String) {
    let out = std::process::Command::new(bin_path("horace"))
        .arg("--socket")
        .arg(&w.socket)
        .arg("--json")
        .arg("status")
        .output()
        .expect("horace status");
    (
        out.stdout.len(),
        String::from_utf8_lossy(&out.stdout).into(),
    )
}

/// Samples the watcher's queue depth (status) and resident size until `stop`.
struct Sampler {
    peak_queue: Arc<AtomicU64>,
    peak_rss_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(w: &Watcher) -> Self {
        let (peak_queue, peak_rss_kib, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (q, r, s, socket, pid) = (
            peak_queue.clone(),
            peak_rss_kib.clone(),
            stop.clone(),
            w.socket.clone(),
            w.pid(),
        );
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            while !s.load(Ordering::Relaxed) {
                r.fetch_max(vm_rss_kib(pid), Ordering::Relaxed);
                let depth = rt.block_on(async {
                    let c = horace_client::Client::connect_unix(&socket).await.ok()?;
                    c.status().await.ok().map(|st| st.queue_depth)
                });
                if let Some(d) = depth {
                    q.fetch_max(d, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            peak_queue,
            peak_rss_kib,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns (peak queue depth, peak RSS in KiB).
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.peak_queue.load(Ordering::Relaxed),
            self.peak_rss_kib.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn one_owners_flood_does_not_hold_up_another_owners_sync() {
    horace_tests::require_root("setpriv");
    let n = knob("HORACE_FLOOD_FILES", 10_000);
    let dir = horace_tests::shared_tempdir();
    let (files, meta): (PathBuf, PathBuf) = (dir.path().join("files"), dir.path().join("meta"));
    let (flooded, other) = (files.join("flooder"), files.join("quiet"));
    fs::create_dir_all(&flooded).unwrap();
    fs::create_dir_all(&other).unwrap();
    fs::create_dir_all(&meta).unwrap();
    // `quiet` belongs to nobody, who writes there.
    std::os::unix::fs::chown(&other, Some(NOBODY.0), Some(NOBODY.1)).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(other.join("before.txt"), b"before").unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();

    let sampler = Sampler::start(&w);
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let writer = {
        let (d, s) = (flooded.clone(), stop.clone());
        std::thread::spawn(move || flood(&d, "f", n, &s))
    };
    // Let the flood get going, then the other owner writes and syncs, three times.
    std::thread::sleep(Duration::from_millis(1500));
    let mut syncs = Vec::new();
    for k in 0..3 {
        let path = other.join(format!("note-{k}.txt"));
        let content = format!("note {k} during the flood");
        let (took, out) = write_and_sync_as_nobody(&w, &path, &content);
        let rel = format!("quiet/note-{k}.txt");
        let cataloged =
            w.catalog_active().get(&rel).cloned() == Some(sha256_hex(content.as_bytes()));
        eprintln!(
            "flood: sync {k} by nobody took {took:?} ({:?} into the flood); {rel} cataloged: {cataloged}; {}",
            t0.elapsed(),
            out.trim()
        );
        syncs.push((took, cataloged, out));
        std::thread::sleep(Duration::from_millis(500));
    }
    let (json_bytes, json) = status_json(&w);
    let made = writer.join().unwrap();
    let flood_secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "flood: {made} files created in {flood_secs:.1} s; status --json {json_bytes} bytes during it"
    );

    // After the flood the catalog equals the disk (the flooded subtree reconciled).
    let caught_up = horace_tests::wait_until(Duration::from_secs(300), || {
        w.catalog_active().len() == w.disk().len()
    });
    let settle_secs = t0.elapsed().as_secs_f64() - flood_secs;
    let (peak_queue, peak_rss) = sampler.finish();
    eprintln!(
        "flood: caught up {caught_up} {settle_secs:.1} s after the flood ended; peak queue depth {peak_queue}, peak RSS {} MiB",
        peak_rss / 1024
    );

    for line in w.log().lines().filter(|l| {
        l.contains("reconcile scan finished")
            || l.contains("caught up")
            || l.contains("past its bound")
    }) {
        eprintln!("flood: watcher: {}", line.get(..300).unwrap_or(line));
    }

    // SIGTERM during a second flood (new names).
    let stop2 = Arc::new(AtomicBool::new(false));
    let writer = {
        let (d, s) = (flooded.clone(), stop2.clone());
        std::thread::spawn(move || flood(&d, "g", n / 2, &s))
    };
    std::thread::sleep(Duration::from_millis(1500));
    let committed = w.catalog_active().len();
    let mut child = w.child.take().expect("running");
    let t_term = Instant::now();
    child.signal(libc::SIGTERM);
    let exit = child.wait_timeout(Duration::from_secs(60));
    let stop_took = t_term.elapsed();
    drop(child);
    stop2.store(true, Ordering::Relaxed);
    let made2 = writer.join().unwrap();
    eprintln!(
        "flood: SIGTERM 1.5 s into a second flood: {exit:?} after {stop_took:?} ({made2} files made, {committed} cataloged before)"
    );
    eprintln!(
        "flood: {n} files; other owner's syncs {:?}; peak queue {peak_queue}; peak RSS {} MiB; status {json_bytes} B; SIGTERM {stop_took:?}",
        syncs.iter().map(|s| s.0).collect::<Vec<_>>(),
        peak_rss / 1024
    );

    for (k, (took, cataloged, out)) in syncs.iter().enumerate() {
        assert!(
            *took < SYNC_BOUND,
            "another owner's sync {k} took {took:?} during the flood: {out}"
        );
        assert!(
            *cataloged,
            "note {k} not cataloged when its owner's sync returned: {out}"
        );
    }
    assert!(
        json_bytes < 64 * 1024,
        "status is {json_bytes} bytes during a flood: {}",
        &json[..json.len().min(2000)]
    );
    assert!(caught_up, "not caught up 300 s after the flood");
    assert!(
        peak_queue <= 20_000,
        "queue depth reached {peak_queue} during the flood"
    );
    assert!(
        exit.is_some_and(|s| s.success()) && stop_took < STOP_BOUND,
        "SIGTERM during a flood: {exit:?} after {stop_took:?}\n{}",
        crate::fixture::tail(&w.log())
    );
    w.start();
    w.sync(4);
    assert!(w.catalog_active().len() >= committed);
    w.assert_consistent("after the restart");
    w.stop();
}
