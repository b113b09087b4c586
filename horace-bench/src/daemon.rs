//! Running the real `horace-watcher` binary on a data directory, waiting for its startup
//! scan, and reading a process's memory from /proc.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use horace_client::{Client, StatusReport};
use horace_tests::ChildGuard;

/// A binary built next to this one (`cargo build --bins` puts them side by side).
pub fn sibling_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("exe dir")?.join(name);
    if !path.exists() {
        bail!(
            "{} is not built: build it with the same profile (scripts/bench.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// Whether a start begins a catalog or carries on with the one in its metadata directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catalog {
    /// A new catalog, also over a tree another figure's catalog marked
    /// (`--accept-new-catalog`: the start-up guard would otherwise wait for the "missing"
    /// metadata dataset).
    New,
    /// The catalog already in the metadata directory (a restart).
    Kept,
}

/// A running watcher (killed on drop).
pub struct Watcher {
    /// The process.
    pub child: ChildGuard,
    /// Its query socket.
    pub socket: PathBuf,
    /// When it was spawned.
    pub spawned: Instant,
}

impl Watcher {
    /// Starts the watcher with only the content store off (`max_stored_file_size = 0`):
    /// what cataloging costs without copying versions, to split figure 1's time.
    pub fn start_without_store(files: &Path, meta: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(meta)?;
        let config = meta.join("nostore.toml");
        fs::write(
            &config,
            format!(
                "files_root = {:?}\nmetadata_dir = {:?}\n[versions]\nmax_stored_file_size = 0\n\
                 [snapshots]\nenabled = false\n[query]\nsocket = {:?}\n",
                files.display().to_string(),
                meta.display().to_string(),
                meta.join("query.sock").display().to_string()
            ),
        )?;
        Self::spawn(
            &[
                "--config".as_ref(),
                config.as_os_str(),
                "--accept-new-catalog".as_ref(),
            ],
            meta,
            None,
        )
    }

    /// Starts `horace-watcher --files FILES --metadata META --socket META/query.sock
    /// --no-snapshots` (with `--accept-new-catalog` for [`Catalog::New`]), logging to
    /// `META/watcher.log`.
    pub fn start(files: &Path, meta: &Path, catalog: Catalog) -> anyhow::Result<Self> {
        Self::start_as(files, meta, catalog, None)
    }

    /// [`Watcher::start`] as `user` (uid, gid; through `setpriv`, no other groups, with
    /// `CAP_LEASE` only), as the unit runs it: the metadata directory is given to that user, who must be able to
    /// read the files root.
    pub fn start_as(
        files: &Path,
        meta: &Path,
        catalog: Catalog,
        user: Option<(u32, u32)>,
    ) -> anyhow::Result<Self> {
        fs::create_dir_all(meta)?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(meta, Some(uid), Some(gid))?;
        }
        let socket = meta.join("query.sock");
        let mut args = vec![
            "--files".as_ref(),
            files.as_os_str(),
            "--metadata".as_ref(),
            meta.as_os_str(),
            "--socket".as_ref(),
            socket.as_os_str(),
            "--no-snapshots".as_ref(),
        ];
        if catalog == Catalog::New {
            args.push("--accept-new-catalog".as_ref());
        }
        Self::spawn(&args, meta, user)
    }

    fn spawn(
        args: &[&std::ffi::OsStr],
        meta: &Path,
        user: Option<(u32, u32)>,
    ) -> anyhow::Result<Self> {
        let socket = meta.join("query.sock");
        let _ = fs::remove_file(&socket);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(meta.join("watcher.log"))?;
        let bin = sibling_bin("horace-watcher")?;
        let spawned = Instant::now();
        let mut cmd = match user {
            // As the unit runs it: that user, no other groups, CAP_LEASE its one
            // capability (AmbientCapabilities= in systemd/horace-watcher.service).
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--inh-caps=-all,+lease"])
                    .args(["--ambient-caps=-all,+lease", "--bounding-set=-all,+lease"])
                    .arg("--")
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = ChildGuard::spawn(
            cmd.args(args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log),
        );
        Ok(Self {
            child,
            socket,
            spawned,
        })
    }

    /// The start-up guard's refusal, if the watcher logged one (it then waits, serving
    /// nothing, until the operator acts).
    fn refusal(&self) -> Option<String> {
        let log = self.socket.with_file_name("watcher.log");
        fs::read_to_string(log)
            .ok()?
            .lines()
            .find(|l| l.contains("refusal="))
            .map(str::to_string)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Connects to the query socket, waiting up to `timeout` for it to appear.
    pub async fn client(&mut self, timeout: Duration) -> anyhow::Result<Client> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.child.is_running() {
                bail!("horace-watcher exited early (see watcher.log)");
            }
            if let Some(why) = self.refusal() {
                bail!("horace-watcher's start-up guard refuses to start: {why}");
            }
            if self.socket.exists() {
                if let Ok(c) = Client::connect_unix(&self.socket).await {
                    return Ok(c.with_timeout(Duration::from_secs(600)));
                }
            }
            if Instant::now() >= deadline {
                bail!("horace-watcher's socket did not appear in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls `status` every `every` until the startup scan is done; returns the status
    /// and the wall time from spawn to the first ready answer.
    pub async fn wait_ready(
        &mut self,
        every: Duration,
        timeout: Duration,
    ) -> anyhow::Result<(StatusReport, Duration)> {
        let client = self.client(timeout).await?;
        let deadline = self.spawned + timeout;
        loop {
            let st = client.status().await?;
            if st.ready {
                return Ok((st, self.spawned.elapsed()));
            }
            if Instant::now() >= deadline || !self.child.is_running() {
                bail!("horace-watcher was not ready within {timeout:?}");
            }
            tokio::time::sleep(every).await;
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.child.signal(libc::SIGTERM);
        match self.child.wait_timeout(Duration::from_secs(120)) {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!("horace-watcher exited with {s}"),
            None => bail!("horace-watcher did not stop within 120 s"),
        }
    }
}

/// Peak and current resident memory of `pid` (VmHWM, VmRSS) in KiB.
pub fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmHWM:"), field("VmRSS:")))
}

/// CPU seconds (user + system) `pid` has used, from /proc/<pid>/stat.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / tck
}

/// KiB as MiB text.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Scan time from the watcher's own report of its last scan.
pub fn scan_time(st: &StatusReport) -> Option<Duration> {
    let s = st.last_scan.as_ref()?;
    (s.finished_ns > s.started_ns)
        .then(|| Duration::from_nanos((s.finished_ns - s.started_ns) as u64))
}
