//! Figure 10: fast saves (issue 14 item 1). Saves 5 ms and 10 ms apart, by rename (a temp
//! name, then a rename onto the document) and in place (truncate, write, close), with two
//! busy-loop processes competing for the CPU; then 8 writers saving 200 files each at
//! increasing total rates. Every save has content of its own, so the catalog's versions
//! tell which saves were cataloged (kept) and whether any version was never saved. The
//! baseline is the same writing with no watcher (writing alone): what the writer achieves
//! on this machine, i.e. the saves there were to catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use horace_tests::ChildGuard;

use crate::daemon::{Catalog, Watcher};
use crate::report::Figure;
use crate::{Params, Size};

/// Names and targets of the figures, for a run that skips them.
pub const NAMES: [(&str, &str); 2] = [
    (
        "10. Fast saves, one file",
        "with two busy processes: saves 5 ms apart ≥ 99 % kept, 10 ms apart 100 %, by rename and in place",
    ),
    (
        "10b. Fast saves, 8 writers × 200 files",
        "no loss up to at least 2,000 saves/s in all",
    ),
];

/// How one save is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `.name.tmp` written, then renamed onto the name.
    Rename,
    /// The name opened with truncate, written, closed.
    InPlace,
}

/// Saves `path` once with `data`.
fn save(path: &Path, mode: Mode, data: &[u8]) -> std::io::Result<()> {
    match mode {
        Mode::Rename => {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let tmp = path.with_file_name(format!(".{name}.tmp"));
            let mut f = fs::File::create(&tmp)?;
            f.write_all(data)?;
            drop(f);
            fs::rename(&tmp, path)
        }
        Mode::InPlace => {
            let mut f = fs::File::create(path)?;
            f.write_all(data)
        }
    }
}

/// The content of save `i` of `tag`: unique, about 1 KiB.
fn content(tag: &str, i: usize) -> Vec<u8> {
    let mut v = format!("{tag} save {i}\n").into_bytes();
    v.resize(1024, b'.');
    v.push(b'\n');
    v
}

/// Two busy loops (`sh -c 'while :; do :; done'`), killed on drop.
fn busy_loops() -> Vec<ChildGuard> {
    (0..2)
        .map(|_| ChildGuard::spawn(Command::new("sh").args(["-c", "while :; do :; done"])))
        .collect()
}

/// `n` saves of one file `interval` apart (on an absolute schedule: a late save is not
/// made up by a shorter gap after it); the checksums written, in order, and the time.
fn saves_of_one(path: &Path, mode: Mode, interval: Duration, n: usize) -> (Vec<String>, Duration) {
    let tag = path.display().to_string();
    let t0 = Instant::now();
    let mut shas = Vec::with_capacity(n);
    for i in 0..n {
        let due = t0 + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let data = content(&tag, i);
        save(path, mode, &data).expect("save");
        shas.push(horace_tests::sha256_hex(&data));
    }
    (shas, t0.elapsed())
}

/// 8 writers, each saving its 200 files in turn (`rounds` times each) at `rate` saves/s in
/// all, by rename; every checksum written, and the time.
fn many_writers(dir: &Path, rate: u64, rounds: usize) -> (BTreeSet<String>, Duration) {
    const WRITERS: usize = 8;
    const FILES: usize = 200;
    let interval = Duration::from_secs_f64(WRITERS as f64 / rate as f64);
    let t0 = Instant::now();
    let written = std::thread::scope(|s| {
        let hs: Vec<_> = (0..WRITERS)
            .map(|w| {
                let d = dir.join(format!("w{w}"));
                s.spawn(move || {
                    fs::create_dir_all(&d).expect("writer dir");
                    let mut out = Vec::new();
                    for i in 0..FILES * rounds {
                        let due = t0 + interval * i as u32;
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let path = d.join(format!("f{}", i % FILES));
                        let data = content(&path.display().to_string(), i / FILES);
                        save(&path, Mode::Rename, &data).expect("save");
                        out.push(horace_tests::sha256_hex(&data));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("writer"))
            .collect::<BTreeSet<_>>()
    });
    (written, t0.elapsed())
}

/// Every version cataloged under `prefix` (relative path prefix): path → checksums.
fn versions_under(meta: &Path, prefix: &str) -> BTreeMap<String, Vec<String>> {
    let conn = horace_tests::open_catalog_ro(&meta.join("catalog.db"));
    let mut stmt = conn
        .prepare(
            "SELECT f.path, v.sha256 FROM versions v JOIN files f ON f.id = v.file_id \
             WHERE f.path LIKE ?1 ORDER BY f.path, v.version",
        )
        .expect("query");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let rows = stmt
        .query_map([format!("{prefix}%")], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .expect("rows");
    for (p, sha) in rows.flatten() {
        out.entry(p).or_default().push(sha);
    }
    out
}

/// Kept, of written; and versions that no save wrote.
fn tally(written: &BTreeSet<String>, cataloged: &[String]) -> (usize, usize) {
    let kept = cataloged.iter().filter(|s| written.contains(*s)).count();
    (kept, cataloged.len() - kept)
}

fn pct(kept: usize, of: usize) -> f64 {
    100.0 * kept as f64 / of.max(1) as f64
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs figures 10 and 10b.
pub async fn run(
    p: &Params,
    size: Size,
    work: &Path,
    figs: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let root = work.join("fastsave");
    let (files, meta, alone) = (root.join("files"), root.join("meta"), root.join("alone"));
    fs::create_dir_all(&files)?;
    fs::create_dir_all(&alone)?;
    let (n, rounds, rates): (usize, usize, &[u64]) = match size {
        Size::Tiny => (40, 1, &[1_000]),
        Size::Small => (400, 5, &[500, 1_000, 2_000, 4_000]),
        Size::Full => (1_000, 20, &[500, 1_000, 2_000, 3_000, 4_000]),
    };
    let _ = p;
    // As the unit runs it: user horace with CAP_LEASE, its one capability (the saves are
    // root's files, so only the capability lets it take a read lease). Not root: the
    // bench's own user, which may lease only its own files.
    let user = horace_tests::is_root().then(horace_tests::ensure_horace_user);
    if let Some((uid, gid)) = user {
        use std::os::unix::fs::PermissionsExt;
        for d in [work, root.as_path(), files.as_path()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
        }
        // The watcher writes its sync cookies in the files root; the saves (as root, in
        // directories of root's) stay root's files.
        std::os::unix::fs::chown(&files, Some(uid), Some(gid))?;
    }
    let mut w = Watcher::start_as(&files, &meta, Catalog::New, user)?;
    let (_, _) = w
        .wait_ready(Duration::from_millis(50), Duration::from_secs(120))
        .await?;
    let client = w.client(Duration::from_secs(30)).await?;
    let load_before = loadavg();
    let busy = busy_loops();

    let mut f = Figure::new(NAMES[0].0, NAMES[0].1);
    let mut rows = Vec::new();
    let mut pass = true;
    for (mode, ms) in [
        (Mode::Rename, 5),
        (Mode::InPlace, 5),
        (Mode::Rename, 10),
        (Mode::InPlace, 10),
    ] {
        let name = format!(
            "{}-{ms}ms",
            if mode == Mode::Rename {
                "rename"
            } else {
                "inplace"
            }
        );
        let interval = Duration::from_millis(ms);
        let (_, alone_took) = saves_of_one(&alone.join(&name), mode, interval, n);
        let (written, took) = saves_of_one(&files.join(&name), mode, interval, n);
        client.sync().await?;
        let cataloged = versions_under(&meta, &name)
            .remove(&name)
            .unwrap_or_default();
        let set: BTreeSet<String> = written.iter().cloned().collect();
        let (kept, never) = tally(&set, &cataloged);
        let share = pct(kept, written.len());
        pass &= never == 0 && share >= if ms == 5 { 99.0 } else { 100.0 };
        rows.push(format!(
            "{} {ms} ms: {kept} of {} kept ({share:.1} %), {never} never saved; writing alone {:.2} s, with the watcher {:.2} s",
            if mode == Mode::Rename { "by rename" } else { "in place" },
            written.len(),
            alone_took.as_secs_f64(),
            took.as_secs_f64()
        ));
    }
    f.value = rows.join("; ");
    f.baseline =
        format!("writing alone (no watcher): the same {n} saves per case, times as listed");
    f.ratio = "kept = cataloged versions holding a written save / saves written".into();
    f.pass = Some(pass);
    f.note(
        "Two `sh -c 'while :; do :; done'` loops run throughout; saves on an absolute schedule \
         from one thread; each save has its own content (about 1 KiB), so a version either is \
         a save or was never saved. Counted from the catalog after a `sync`.",
    );
    let fallbacks = client.status().await?.lease_fallbacks;
    f.note(format!(
        "Watcher run as {}; saves pinned without a read lease (status lease_fallbacks): \
         {fallbacks}. Load average before the busy loops: {load_before}; after this figure: {}.",
        match user {
            Some((uid, _)) => {
                format!("user horace (uid {uid}) with CAP_LEASE only, as the unit runs it")
            }
            None => "the bench's own user".to_string(),
        },
        loadavg()
    ));
    figs.push(f);

    let mut f = Figure::new(NAMES[1].0, NAMES[1].1);
    let mut rows = Vec::new();
    let mut pass = true;
    for &rate in rates {
        let name = format!("many-{rate}");
        let (_, alone_took) = many_writers(&alone.join(&name), rate, rounds);
        let (written, took) = many_writers(&files.join(&name), rate, rounds);
        client.sync().await?;
        let cataloged: Vec<String> = versions_under(&meta, &format!("{name}/"))
            .into_values()
            .flatten()
            .collect();
        let (kept, never) = tally(&written, &cataloged);
        let share = pct(kept, written.len());
        let achieved = written.len() as f64 / took.as_secs_f64();
        if rate <= 2_000 {
            pass &= never == 0 && kept == written.len();
        }
        rows.push(format!(
            "{rate}/s asked ({achieved:.0}/s achieved, alone {:.0}/s): {kept} of {} kept ({share:.1} %), {never} never saved",
            written.len() as f64 / alone_took.as_secs_f64(),
            written.len()
        ));
    }
    f.value = rows.join("; ");
    f.baseline = "writing alone (no watcher): the rate the 8 writers achieve, as listed".into();
    f.ratio = "kept = cataloged versions holding a written save / saves written".into();
    f.pass = Some(pass);
    f.note(format!(
        "8 threads, each saving its 200 files in turn by rename, {rounds} rounds per rate, \
         with the two busy loops still running."
    ));
    figs.push(f);
    drop(busy);
    drop(client);
    w.stop()?;
    Ok(())
}
