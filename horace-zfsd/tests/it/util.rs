//! Fixture: a zfs-fuse pool with the root dataset `<pool>/files`, a private dbus-daemon
//! with the project's policy, and the real horace-zfsd binary serving on it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use horace_tests::{ChildGuard, DbusDaemon, NotifySocket, ZfsPool};
use horace_zfsd::api::{Zfs1Proxy, ZfsError};

/// Path of the daemon under test.
pub fn daemon_bin() -> &'static str {
    env!("CARGO_BIN_EXE_horace-zfsd")
}

/// What differs between fixtures.
pub struct Options {
    /// `allow_uids` as TOML.
    pub allow_uids: String,
    /// `allow_groups` as TOML.
    pub allow_groups: String,
    /// `zfs_path`; `None` for /usr/sbin/zfs.
    pub zfs_path: Option<PathBuf>,
    /// `command_timeout` seconds.
    pub timeout: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            allow_uids: "[0]".into(),
            allow_groups: "[\"horace\"]".into(),
            zfs_path: None,
            timeout: 30,
        }
    }
}

/// Everything one test needs; torn down on drop (daemon, bus, pool).
pub struct Fixture {
    /// The daemon (declared first: dropped before the bus and the pool).
    pub daemon: ChildGuard,
    /// The private bus.
    pub bus: DbusDaemon,
    /// The pool.
    pub pool: ZfsPool,
    /// The configured root, `<pool>/files`.
    pub root: String,
    /// The daemon's NOTIFY_SOCKET.
    pub notify: NotifySocket,
    /// The daemon's configuration file.
    pub config: PathBuf,
}

impl Fixture {
    /// Default configuration: root `<pool>/files`, uid 0 and group horace allowed.
    pub fn new() -> Self {
        Self::with(Options::default())
    }

    /// A fixture with `opts`; returns once the daemon reported READY=1.
    pub fn with(opts: Options) -> Self {
        horace_tests::require_root("horace-zfsd tests");
        horace_tests::ensure_horace_user();
        let pool = ZfsPool::new(64);
        let (root, _) = pool.create_dataset("files");
        let config = pool.scratch().join("zfsd.toml");
        let zfs_path = opts
            .zfs_path
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/zfs"));
        fs::write(
            &config,
            format!(
                "root = {root:?}\nzfs_path = {:?}\nallow_uids = {}\nallow_groups = {}\n\
                 command_timeout = {}\nstate_dir = {:?}\n",
                zfs_path.display().to_string(),
                opts.allow_uids,
                opts.allow_groups,
                opts.timeout,
                pool.scratch().join("zfsd-state")
            ),
        )
        .unwrap();
        let bus = DbusDaemon::new();
        let mut notify = NotifySocket::new();
        let daemon = ChildGuard::spawn(
            Command::new(daemon_bin())
                .arg("--config")
                .arg(&config)
                .arg("--bus-address")
                .arg(&bus.address)
                .env("NOTIFY_SOCKET", notify.path())
                .env("RUST_LOG", "info")
                .stdin(Stdio::null()),
        );
        let ready = notify.wait_for(Duration::from_secs(30), |l| l == "READY=1");
        assert!(ready.is_some(), "horace-zfsd did not report READY=1");
        Self {
            daemon,
            bus,
            pool,
            root,
            notify,
            config,
        }
    }

    /// A zbus connection to the private bus, as the test's own uid (root).
    pub async fn connection(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.bus.address.as_str())
            .build()
            .await
            .expect("connect to the private bus")
    }

    /// A proxy of the daemon over a fresh connection.
    pub async fn proxy(&self) -> Zfs1Proxy<'static> {
        Zfs1Proxy::new(&self.connection().await)
            .await
            .expect("proxy")
    }

    /// The root's snapshots as the zfs CLI sees them.
    pub fn snapshots(&self) -> Vec<String> {
        self.pool.snapshots(&self.root)
    }

    /// Every dataset and snapshot of the pool, for "nothing changed" checks.
    pub fn pool_state(&self) -> String {
        horace_tests::zfs(&[
            "list",
            "-H",
            "-t",
            "all",
            "-o",
            "name",
            "-r",
            &self.pool.name,
        ])
    }

    /// `zfs snapshot NAME` directly (a snapshot Horace did not make).
    pub fn zfs_snapshot(&self, full: &str) {
        horace_tests::zfs(&["snapshot", full]);
    }
}

/// The named error of a failed call (panics on success or a non-Horace error).
pub fn named<T: std::fmt::Debug>(r: zbus::Result<T>) -> ZfsError {
    match r {
        Ok(v) => panic!("call succeeded: {v:?}"),
        Err(e) => ZfsError::from(e),
    }
}

/// Writes an executable `zfs` stand-in script into `dir` and returns its path.
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Whether process `pid` is gone (or a zombie awaiting its reaper).
pub fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}
