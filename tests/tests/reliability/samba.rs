//! A real Samba writer (issue 14): `smbd` on a private configuration and a loopback port
//! shares the files root, and `smbclient` puts new files and overwrites some of them, with
//! two busy processes competing for the CPU. Samba's sequence for a new file is CREATE,
//! OPEN, ATTRIB, MODIFY, ATTRIB, CLOSE_WRITE: a watcher that reads at the first ATTRIB
//! catalogs an empty version nobody saved. Each put must give exactly one version, with
//! the content put.
//!
//! Needs root (smbd binds its port and forces the root user); `scripts/setup.sh` installs
//! samba and smbclient. `HORACE_SAMBA_FILES` (default 50) sets how many files are put.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use horace_tests::ChildGuard;

use crate::fixture::{knob, sha256_hex, tail, Rng, Watcher};

/// A private smbd sharing `share` as `[files]` on a loopback port, killed on drop.
struct Smbd {
    _child: ChildGuard,
    port: u16,
    _scratch: tempfile::TempDir,
}

impl Smbd {
    fn start(share: &Path) -> Self {
        let scratch = horace_tests::shared_tempdir();
        let s = scratch.path().to_path_buf();
        let s = s.as_path();
        for d in ["lock", "state", "cache", "pid", "private", "ncalrpc"] {
            fs::create_dir_all(s.join(d)).unwrap();
        }
        let port = 20000 + (std::process::id() % 20000) as u16;
        let conf = s.join("smb.conf");
        fs::write(
            &conf,
            format!(
                "[global]\n\
                 smb ports = {port}\n\
                 interfaces = 127.0.0.1\n\
                 bind interfaces only = yes\n\
                 lock directory = {lock}\n\
                 state directory = {state}\n\
                 cache directory = {cache}\n\
                 pid directory = {pid}\n\
                 private dir = {private}\n\
                 ncalrpc dir = {ncalrpc}\n\
                 log file = {log}\n\
                 disable netbios = yes\n\
                 disable spoolss = yes\n\
                 load printers = no\n\
                 map to guest = Bad User\n\
                 server role = standalone server\n\
                 [files]\n\
                 path = {share}\n\
                 read only = no\n\
                 guest ok = yes\n\
                 guest only = yes\n\
                 force user = root\n",
                lock = s.join("lock").display(),
                state = s.join("state").display(),
                cache = s.join("cache").display(),
                pid = s.join("pid").display(),
                private = s.join("private").display(),
                ncalrpc = s.join("ncalrpc").display(),
                log = s.join("smbd.log").display(),
                share = share.display(),
            ),
        )
        .unwrap();
        let child = ChildGuard::spawn(
            Command::new("/usr/sbin/smbd")
                .arg("--foreground")
                .arg("--no-process-group")
                .arg(format!("--configfile={}", conf.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let smbd = Self {
            _child: child,
            port,
            _scratch: scratch,
        };
        let up = horace_tests::wait_until(Duration::from_secs(30), || {
            smbd.client("ls").status.success()
        });
        assert!(
            up,
            "smbd did not answer on port {port}: {}",
            fs::read_to_string(s.join("smbd.log")).unwrap_or_default()
        );
        smbd
    }

    fn client(&self, commands: &str) -> std::process::Output {
        Command::new("smbclient")
            .args(["//127.0.0.1/files", "-N", "-m", "SMB3", "-p"])
            .arg(self.port.to_string())
            .arg("-c")
            .arg(commands)
            .output()
            .expect("smbclient")
    }

    /// Puts each `(local, remote)` in one smbclient session.
    fn put(&self, files: &[(String, String)]) {
        let cmds: Vec<String> = files
            .iter()
            .map(|(l, r)| format!("put \"{l}\" \"{r}\""))
            .collect();
        let out = self.client(&cmds.join("; "));
        assert!(
            out.status.success(),
            "smbclient put: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Two processes that spin, as the other services of a NAS would.
fn busy_loops() -> Vec<ChildGuard> {
    (0..2)
        .map(|_| {
            ChildGuard::spawn(
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdout(Stdio::null()),
            )
        })
        .collect()
}

/// Every version of every file: path → [(version, sha256, size)].
fn versions(w: &Watcher) -> BTreeMap<String, Vec<(i64, String, i64)>> {
    let conn = w.catalog();
    let mut stmt = conn
        .prepare(
            "SELECT f.path, v.version, v.sha256, v.size FROM versions v \
             JOIN files f ON f.id = v.file_id ORDER BY f.path, v.version",
        )
        .unwrap();
    let mut out: BTreeMap<String, Vec<(i64, String, i64)>> = BTreeMap::new();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    for row in rows {
        let (path, n, sha, size): (String, i64, String, i64) = row.unwrap();
        out.entry(path).or_default().push((n, sha, size));
    }
    out
}

#[test]
fn every_smbclient_put_is_one_version_with_its_content() {
    horace_tests::require_root("smbd");
    if !Path::new("/usr/sbin/smbd").exists() {
        panic!("smbd is not installed: run scripts/setup.sh (apt-get install samba smbclient)");
    }
    let dir = horace_tests::shared_tempdir();
    let (files, meta, src) = (
        dir.path().join("files"),
        dir.path().join("meta"),
        dir.path().join("src"),
    );
    for d in [&files, &meta, &src] {
        fs::create_dir_all(d).unwrap();
    }
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let smbd = Smbd::start(&files);
    let _busy = busy_loops();

    let n = knob("HORACE_SAMBA_FILES", 50) as usize;
    let mut rng = Rng::from_env("samba");
    // What each path should hold, put after put.
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut content = |name: &str, round: u32, rng: &mut Rng| {
        // Sizes from a few bytes to 1 MiB; every tenth file 4 MiB.
        let len = if rng.below(10) == 0 {
            4 << 20
        } else {
            1 + rng.below(1 << 20) as usize
        };
        let mut body = format!("{name} round {round}\n").into_bytes();
        body.resize(len.max(body.len()), b'a' + (round as u8 % 26));
        let local = src.join(format!("{name}.{round}"));
        fs::write(&local, &body).unwrap();
        want.entry(name.to_string())
            .or_default()
            .push(sha256_hex(&body));
        (local.display().to_string(), name.to_string())
    };
    let first: Vec<_> = (0..n)
        .map(|i| content(&format!("doc {i:03}.bin"), 0, &mut rng))
        .collect();
    smbd.put(&first);
    w.sync(3);
    let again: Vec<_> = (0..n)
        .step_by(2)
        .map(|i| content(&format!("doc {i:03}.bin"), 1, &mut rng))
        .collect();
    smbd.put(&again);
    w.sync(3);

    let got = versions(&w);
    let puts: usize = want.values().map(Vec::len).sum();
    let cataloged: usize = got.values().map(Vec::len).sum();
    let empty: Vec<&String> = got
        .iter()
        .filter(|(_, v)| v.iter().any(|(_, _, size)| *size == 0))
        .map(|(p, _)| p)
        .collect();
    let wrong: Vec<&String> = want
        .iter()
        .filter(|(p, shas)| {
            got.get(*p)
                .map(|v| v.iter().map(|(_, s, _)| s).collect::<Vec<_>>())
                != Some(shas.iter().collect())
        })
        .map(|(p, _)| p)
        .collect();
    eprintln!(
        "samba: {puts} puts, {cataloged} versions cataloged, {} files with an empty version, \
         {} files whose versions differ from the puts",
        empty.len(),
        wrong.len()
    );
    assert!(
        empty.is_empty() && wrong.is_empty() && cataloged == puts,
        "{puts} puts, {cataloged} versions; empty versions at {empty:?}; wrong history at \
         {wrong:?}\n{}",
        tail(&w.log())
    );
    w.assert_consistent("after the puts");
}

/// A safe save by a Samba client through names Horace does not ignore: the new content
/// put as `name.part`, the document renamed to `name.bak`, `name.part` renamed onto
/// `name`, `name.bak` deleted, each save in one smbclient session. The document keeps one
/// history, one version per save, `modified` each time, and neither temp name leaves an
/// entry. Before: each save ended the history at a deleted `name.bak` and began a new one
/// from `name.part` (history `created, renamed`).
#[test]
fn a_part_and_bak_save_over_samba_keeps_one_history() {
    horace_tests::require_root("smbd");
    let dir = horace_tests::shared_tempdir();
    let (files, meta, src) = (
        dir.path().join("files"),
        dir.path().join("meta"),
        dir.path().join("src"),
    );
    for d in [&files, &meta, &src] {
        fs::create_dir_all(d).unwrap();
    }
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let smbd = Smbd::start(&files);
    let saves = 4;
    let mut want = Vec::new();
    for round in 0..=saves {
        let body = format!("plan.xlsx save {round}\n").repeat(1 + round * 1000);
        let local = src.join(format!("plan.{round}"));
        fs::write(&local, &body).unwrap();
        want.push(sha256_hex(body.as_bytes()));
        let l = local.display();
        let cmds = if round == 0 {
            format!("put \"{l}\" plan.xlsx")
        } else {
            format!(
                "put \"{l}\" plan.xlsx.part; rename plan.xlsx plan.xlsx.bak; \
                 rename plan.xlsx.part plan.xlsx; del plan.xlsx.bak"
            )
        };
        let out = smbd.client(&cmds);
        assert!(
            out.status.success(),
            "smbclient: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        w.sync(3);
    }
    let got = versions(&w);
    let conn = w.catalog();
    let kinds: Vec<String> = conn
        .prepare(
            "SELECT e.kind FROM events e JOIN files f ON f.id = e.file_id \
             WHERE f.path = 'plan.xlsx' ORDER BY e.at_ns, e.id",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let stray: Vec<&String> = got.keys().filter(|p| *p != "plan.xlsx").collect();
    let shas: Vec<&String> = got
        .get("plan.xlsx")
        .map(|v| v.iter().map(|(_, s, _)| s).collect())
        .unwrap_or_default();
    println!(
        "figure: samba .part/.bak: {} saves, {} versions, {} stray entries {stray:?}, history {kinds:?}",
        want.len(),
        shas.len(),
        stray.len()
    );
    assert!(stray.is_empty(), "temp names cataloged: {stray:?}");
    assert_eq!(
        shas,
        want.iter().collect::<Vec<_>>(),
        "one version per save"
    );
    let mut want_kinds = vec!["created".to_string()];
    want_kinds.extend(std::iter::repeat_n("modified".to_string(), saves));
    assert_eq!(kinds, want_kinds, "one history");
    w.assert_consistent("samba .part/.bak");
}
