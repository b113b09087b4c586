//! Real writers of a NAS against the real watcher binary (issue 14): rsync updating files
//! (plain, through its `.name.XXXXXX` temp names, and `--inplace`), git switching
//! branches (it unlinks each changed file and creates it anew), and nfs-ganesha, the user
//! space NFS server, which keeps every file it wrote open (no close-after-write until it
//! stops): those are cataloged after the quiet period, and `sync` lists them meanwhile.
//!
//! Each scenario prints a `figure:` line (written, cataloged, lost, never saved, stray
//! entries) before its assertions; docs/reliability.md has the figures and the command.
//! Needs root; `scripts/setup.sh` installs rsync, git, nfs-ganesha(-vfs), rpcbind and
//! libnfs-utils (`nfs-cp`: this kernel has no NFS client, `mount -t nfs` fails with
//! ENODEV).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use horace_client::Missing;
use horace_tests::ChildGuard;

use crate::fixture::{sha256_hex, tail, Rng, Watcher};

/// What the catalog holds: every row (path → status), and per path its versions
/// (sha256, the path recorded with the version) and its event kinds, oldest first.
struct Seen {
    rows: BTreeMap<String, String>,
    versions: BTreeMap<String, Vec<(String, String)>>,
    events: BTreeMap<String, Vec<String>>,
}

impl Seen {
    fn of(w: &Watcher) -> Self {
        let conn = w.catalog();
        let rows = conn
            .prepare("SELECT path, status FROM files")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut versions: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut stmt = conn
            .prepare(
                "SELECT f.path, v.sha256, v.path FROM versions v JOIN files f ON f.id = v.file_id \
                 ORDER BY f.path, v.version",
            )
            .unwrap();
        for row in stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
        {
            let (path, sha, vpath): (String, String, String) = row.unwrap();
            versions.entry(path).or_default().push((sha, vpath));
        }
        let mut events: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut stmt = conn
            .prepare(
                "SELECT f.path, e.kind FROM events e JOIN files f ON f.id = e.file_id \
                 ORDER BY f.path, e.at_ns, e.id",
            )
            .unwrap();
        for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap() {
            let (path, kind): (String, String) = row.unwrap();
            events.entry(path).or_default().push(kind);
        }
        Self {
            rows,
            versions,
            events,
        }
    }
}

/// The saves of each document, path → checksums in order (a save of the content the path
/// already holds is no new version, so repeats in a row are not listed twice).
#[derive(Default)]
struct Saves(BTreeMap<String, Vec<String>>);

impl Saves {
    fn note(&mut self, path: &str, bytes: &[u8]) {
        let sha = sha256_hex(bytes);
        let list = self.0.entry(path.to_string()).or_default();
        if list.last() != Some(&sha) {
            list.push(sha);
        }
    }
}

/// Written, cataloged, lost and never-saved versions, and the rows that are no document.
struct Figure {
    written: usize,
    cataloged: usize,
    lost: usize,
    never_saved: usize,
    stray: Vec<String>,
    /// Documents whose versions are not exactly their saves, in order.
    wrong: Vec<String>,
}

impl Figure {
    /// `foreign(path)`: rows that belong to neither the documents nor strays (a git
    /// repository's own `.git/` files).
    fn of(seen: &Seen, saves: &Saves, foreign: impl Fn(&str) -> bool) -> Self {
        let mut f = Figure {
            written: 0,
            cataloged: 0,
            lost: 0,
            never_saved: 0,
            stray: Vec::new(),
            wrong: Vec::new(),
        };
        for (path, want) in &saves.0 {
            let got: Vec<&String> = seen
                .versions
                .get(path)
                .map(|v| v.iter().map(|(s, _)| s).collect())
                .unwrap_or_default();
            f.written += want.len();
            let kept = want.iter().filter(|s| got.contains(s)).count();
            f.cataloged += kept;
            f.lost += want.len() - kept;
            f.never_saved += got.iter().filter(|s| !want.contains(s)).count();
            if got != want.iter().collect::<Vec<_>>() {
                f.wrong.push(path.clone());
            }
        }
        f.stray = seen
            .rows
            .keys()
            .filter(|p| !saves.0.contains_key(*p) && !foreign(p))
            .cloned()
            .collect();
        f
    }

    fn print(&self, what: &str) {
        println!(
            "figure: {what}: {} written, {} cataloged, {} lost, {} never saved; {} stray entries {:?}",
            self.written,
            self.cataloged,
            self.lost,
            self.never_saved,
            self.stray.len(),
            self.stray
        );
    }

    fn assert_exact(&self, what: &str, w: &Watcher) {
        assert!(
            self.lost == 0
                && self.never_saved == 0
                && self.stray.is_empty()
                && self.wrong.is_empty(),
            "{what}: {} lost, {} never saved, stray {:?}, versions differ from the saves at {:?}\n{}",
            self.lost,
            self.never_saved,
            self.stray,
            self.wrong,
            tail(&w.log())
        );
    }
}

/// Asserts each document is active, each of its versions carries its own path, and its
/// history is `created` then `modified` only (no `deleted` + `undeleted`, no rename from
/// a temp name).
fn assert_one_history(what: &str, seen: &Seen, saves: &Saves) {
    for path in saves.0.keys() {
        assert_eq!(
            seen.rows.get(path).map(String::as_str),
            Some("active"),
            "{what}: {path}"
        );
        let vpaths: Vec<&String> = seen.versions[path].iter().map(|(_, p)| p).collect();
        assert!(
            vpaths.iter().all(|p| *p == path),
            "{what}: {path}'s versions were saved at {vpaths:?}"
        );
        let kinds = &seen.events[path];
        assert!(
            kinds.first().map(String::as_str) == Some("created")
                && kinds[1..].iter().all(|k| k == "modified"),
            "{what}: {path}'s history is {kinds:?}"
        );
    }
}

fn setup(extra: &str) -> (tempfile::TempDir, Watcher) {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(&files).unwrap();
    fs::create_dir_all(&meta).unwrap();
    let mut w = Watcher::new(&files, &meta, extra);
    w.start();
    (dir, w)
}

fn need(bin: &str, what: &str) {
    horace_tests::require_root(what);
    assert!(
        Path::new(bin).exists() || which(bin),
        "{bin} is not installed: run scripts/setup.sh"
    );
}

fn which(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A document body of `len` bytes that names its path and round.
fn body(path: &str, round: u32, len: usize) -> Vec<u8> {
    let mut b = format!("{path} round {round}\n").into_bytes();
    b.resize(len.max(b.len()), b'a' + (round % 26) as u8);
    b
}

/// rsync updating a tree three times: new files, then every file updated through rsync's
/// temp names (`.name.XXXXXX`, renamed onto the name), then again `--inplace`. Before:
/// each update left a deleted `.name.XXXXXX` entry holding the new content and version
/// 1's path was the temp name (issue 14).
#[test]
fn rsync_updates_keep_one_history_per_path() {
    need("rsync", "rsync");
    let (dir, w) = setup("");
    let src = dir.path().join("src");
    let mut rng = Rng::from_env("rsync");
    let names: Vec<String> = (0..24)
        .map(|i| match i % 3 {
            0 => format!("doc {i:02}.txt"),
            1 => format!("sub/report-{i:02}.odt"),
            _ => format!("sub/deep/data.{i:02}"),
        })
        .collect();
    let mut saves = Saves::default();
    for (round, flags) in [(0, &[][..]), (1, &[][..]), (2, &["--inplace"][..])] {
        for (i, name) in names.iter().enumerate() {
            // A few bytes to 512 KiB; two files of 3 MiB (rsync writes them in pieces).
            let len = if i % 11 == 0 {
                3 << 20
            } else {
                1 + rng.below(512 << 10) as usize
            };
            let b = body(name, round, len);
            let p = src.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, &b).unwrap();
            saves.note(name, &b);
        }
        let out = Command::new("rsync")
            .args(["-a", "--ignore-times"])
            .args(flags)
            .arg(format!("{}/", src.display()))
            .arg(format!("{}/", w.files.display()))
            .output()
            .expect("rsync");
        assert!(
            out.status.success(),
            "rsync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        w.sync(3);
    }
    let seen = Seen::of(&w);
    let fig = Figure::of(&seen, &saves, |_| false);
    fig.print("rsync (new, update, --inplace)");
    fig.assert_exact("rsync", &w);
    assert_one_history("rsync", &seen, &saves);
    w.assert_consistent("rsync");
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// git switching branches in a work tree on the share: each checkout unlinks every
/// changed file and creates it anew (and removes or adds the files only one branch has).
/// Each work-tree file's versions are the contents it had, in order, in one history.
#[test]
fn git_checkout_keeps_each_files_history() {
    need("git", "git");
    let (_dir, w) = setup("");
    let repo = w.files.join("proj");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let names: Vec<String> = (0..16)
        .map(|i| {
            if i % 2 == 0 {
                format!("src/mod{i:02}.rs")
            } else {
                format!("doc{i:02}.md")
            }
        })
        .collect();
    let write = |name: &str, round: u32, len: usize| {
        let b = body(name, round, len);
        let p = repo.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, &b).unwrap();
        b
    };
    // Branch main: every file; branch topic: half of them changed (some to a different
    // size, some to the same size), one removed, one added.
    let mut main = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        main.insert(n.clone(), write(n, 0, 100 + i * 997));
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "main"]);
    w.sync(3);
    git(&repo, &["checkout", "-q", "-b", "topic"]);
    let mut topic = main.clone();
    for (i, n) in names.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        let len = if i % 4 == 1 {
            100 + i * 997
        } else {
            50 + i * 3001
        };
        topic.insert(n.clone(), write(n, 1, len));
    }
    fs::remove_file(repo.join(&names[0])).unwrap();
    topic.remove(&names[0]);
    topic.insert("src/new.rs".into(), write("src/new.rs", 1, 4321));
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "topic"]);
    w.sync(3);
    let mut states = vec![main.clone(), topic.clone()];
    for (branch, state) in [("main", &main), ("topic", &topic), ("main", &main)] {
        git(&repo, &["checkout", "-q", branch]);
        w.sync(3);
        states.push(state.clone());
    }
    // Each path's saves: its content in each state it was present in.
    let mut saves = Saves::default();
    for state in &states {
        for (n, b) in state {
            saves.note(&format!("proj/{n}"), b);
        }
    }
    let seen = Seen::of(&w);
    let fig = Figure::of(&seen, &saves, |p| p.starts_with("proj/.git/"));
    fig.print("git checkout (main, topic, main, topic, main)");
    fig.assert_exact("git checkout", &w);
    // The files both branches have: one history each, `modified` at each change.
    let mut both = Saves::default();
    for (n, want) in &saves.0 {
        if n != "proj/src/new.rs" && n != &format!("proj/{}", names[0]) {
            both.0.insert(n.clone(), want.clone());
        }
    }
    assert_one_history("git checkout", &seen, &both);
    w.assert_consistent("git checkout");
}

/// rpcbind (ganesha registers its programs with it and will not start without it) and a
/// private nfs-ganesha exporting `export` over NFSv3/v4 on loopback ports; both killed on
/// drop (rpcbind only if this started it).
struct Ganesha {
    _rpcbind: Option<ChildGuard>,
    child: ChildGuard,
    nfs_port: u16,
    mnt_port: u16,
    export: PathBuf,
    log: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Ganesha {
    fn start(export: &Path) -> Self {
        let rpcbind = (!rpcbind_answers()).then(|| {
            let g = ChildGuard::spawn(
                Command::new("rpcbind")
                    .args(["-f", "-w"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            );
            assert!(
                horace_tests::wait_until(Duration::from_secs(10), rpcbind_answers),
                "rpcbind did not answer"
            );
            g
        });
        let scratch = horace_tests::shared_tempdir();
        let s = scratch.path();
        let nfs_port = 30000 + (std::process::id() % 15000) as u16;
        let mnt_port = nfs_port + 15000;
        let conf = s.join("ganesha.conf");
        fs::write(
            &conf,
            format!(
                "NFS_CORE_PARAM {{\n NFS_Port = {nfs_port};\n MNT_Port = {mnt_port};\n \
                 Bind_addr = 127.0.0.1;\n Protocols = 3, 4;\n Enable_NLM = false;\n \
                 Enable_RQUOTA = false;\n Enable_UDP = false;\n}}\n\
                 NFSV4 {{ Graceless = true; }}\n\
                 NFS_KRB5 {{ Active_krb5 = false; }}\n\
                 EXPORT {{\n Export_Id = 1;\n Path = {export};\n Pseudo = /files;\n \
                 Access_Type = RW;\n Squash = No_Root_Squash;\n SecType = sys;\n \
                 Protocols = 3, 4;\n Transports = TCP;\n FSAL {{ Name = VFS; }}\n}}\n",
                export = export.display()
            ),
        )
        .unwrap();
        let log = s.join("ganesha.log");
        let child = ChildGuard::spawn(
            Command::new("ganesha.nfsd")
                .arg("-F")
                .arg("-f")
                .arg(&conf)
                .arg("-L")
                .arg(&log)
                .arg("-p")
                .arg(s.join("ganesha.pid"))
                .args(["-N", "NIV_EVENT"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let mut g = Self {
            _rpcbind: rpcbind,
            child,
            nfs_port,
            mnt_port,
            export: export.into(),
            log,
            _scratch: scratch,
        };
        let up = horace_tests::wait_until(Duration::from_secs(60), || {
            g.child.is_running()
                && Command::new("nfs-ls")
                    .arg(g.url(""))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
        assert!(
            up,
            "nfs-ganesha did not serve {}: {}",
            g.url(""),
            tail(&fs::read_to_string(&g.log).unwrap_or_default())
        );
        g
    }

    /// The NFSv3 URL of `rel` in the export (libnfs finds no ports through rpcbind for a
    /// private instance: they are given).
    fn url(&self, rel: &str) -> String {
        format!(
            "nfs://127.0.0.1{}/{rel}?nfsport={}&mountport={}",
            self.export.display(),
            self.nfs_port,
            self.mnt_port
        )
    }

    /// Copies `local` to `rel` through the server.
    fn put(&self, local: &Path, rel: &str) {
        let out = Command::new("nfs-cp")
            .arg(local)
            .arg(self.url(rel))
            .output()
            .expect("nfs-cp");
        assert!(
            out.status.success(),
            "nfs-cp {rel}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// How many files under the export the server holds open.
    fn open_files(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.child.pid()))
            .map(|d| {
                d.flatten()
                    .filter(|e| fs::read_link(e.path()).is_ok_and(|t| t.starts_with(&self.export)))
                    .count()
            })
            .unwrap_or(0)
    }
}

fn rpcbind_answers() -> bool {
    Command::new("rpcinfo")
        .args(["-p", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const GANESHA_QUIET_MS: u64 = 1500;

/// Files written through nfs-ganesha (NFSv3, `nfs-cp`), which keeps them open: no
/// close-after-write comes. Right after the writes `sync` lists every file not yet
/// cataloged (open for writing) rather than "synced"; after the quiet period each is
/// cataloged with the content written, never empty, while the server still holds it
/// open. Before (issue 14): 0 of 10 cataloged while ganesha ran, and `sync` said
/// "synced".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_written_through_nfs_ganesha_are_cataloged_and_sync_tells_the_truth() {
    need("ganesha.nfsd", "nfs-ganesha");
    need("nfs-cp", "nfs-cp (libnfs-utils)");
    let (dir, w) = setup(&format!(
        "[versions]\nquiet_period_ms = {GANESHA_QUIET_MS}\n"
    ));
    let client = w.client().await;
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let nfs = Ganesha::start(&w.files);
    let mut rng = Rng::from_env("ganesha");
    let mut saves = Saves::default();
    let mut truthful = 0;
    for round in 0..2u32 {
        // Ten new files, then five more while the server still holds the first ten (nfs-cp
        // creates exclusively: it cannot overwrite, and libnfs-utils has no rm).
        let names: Vec<String> = (0..10)
            .filter(|i| round == 0 || i % 2 == 0)
            .map(|i| format!("nfs doc {round}-{i:02}.bin"))
            .collect();
        for name in &names {
            let len = 1 + rng.below(2 << 20) as usize;
            let b = body(name, round, len);
            let local = src.join(format!("{name}.{round}"));
            fs::write(&local, &b).unwrap();
            nfs.put(&local, name);
            saves.note(name, &b);
        }
        // Truthful meanwhile: whatever is not cataloged with its content is listed.
        let report = client.sync().await.unwrap();
        let active = w.catalog_active();
        let open = nfs.open_files();
        let unlisted: Vec<&String> = names
            .iter()
            .filter(|n| active.get(*n) != saves.0[*n].last())
            .filter(|n| {
                !report
                    .missing
                    .iter()
                    .any(|m| &m.path == *n && m.why == Missing::OpenForWriting)
            })
            .collect();
        let missing = names
            .iter()
            .filter(|n| active.get(*n) != saves.0[*n].last())
            .count();
        println!(
            "ganesha round {round}: {} written, server holds {open} open, sync lists {} \
             ({missing} not cataloged yet)",
            names.len(),
            report.missing.len()
        );
        assert!(
            unlisted.is_empty(),
            "sync did not list what it had not cataloged: {unlisted:?}; report {report:?}"
        );
        if missing > 0 {
            truthful += 1;
            assert!(!report.is_synced(), "{missing} missing, yet synced");
        }
        // After the quiet period, each is cataloged without a close.
        let caught = horace_tests::wait_until(Duration::from_secs(30), || {
            let a = w.catalog_active();
            names.iter().all(|n| a.get(n) == saves.0[n].last())
        });
        assert!(
            caught,
            "round {round}: not cataloged after the quiet period\n{}",
            tail(&w.log())
        );
        let r = client.sync().await.unwrap();
        assert!(r.is_synced(), "round {round}: all cataloged, yet {r:?}");
    }
    let open = nfs.open_files();
    let seen = Seen::of(&w);
    let fig = Figure::of(&seen, &saves, |_| false);
    fig.print(&format!(
        "nfs-ganesha (nfs-cp, 10 + 5 new files, held open by the server at the end: {open}; \
         sync listed the uncataloged in {truthful} of 2 rounds)"
    ));
    fig.assert_exact("nfs-ganesha", &w);
    assert!(
        open > 0,
        "the server closed its files: the no-close path was not exercised"
    );
    let empty = seen
        .versions
        .values()
        .flatten()
        .filter(|(s, _)| *s == sha256_hex(b""))
        .count();
    assert_eq!(empty, 0, "empty versions");
    drop(nfs);
    client.sync().await.unwrap();
    w.assert_consistent("nfs-ganesha");
}
