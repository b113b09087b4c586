//! Fixture: a zfs-fuse pool with `<pool>/files` (watched, snapshotted) and `<pool>/meta`
//! (catalog, content store, backups), a private bus, the real horace-zfsd serving on it,
//! and the real horace-watcher started and stopped by the test.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use horace_tests::{bin_path, ChildGuard, DbusDaemon, NotifySocket, ZfsPool};
use horace_zfsd::api::{SnapshotInfo, Zfs1Proxy};
use rusqlite::Connection;

pub use horace_tests::eventually;

/// Both daemons over one pool and one bus; torn down in field order on drop.
pub struct Setup {
    /// The watcher while it runs.
    pub watcher: Option<ChildGuard>,
    /// horace-zfsd while it runs.
    pub zfsd_daemon: Option<ChildGuard>,
    /// horace-zfsd's configuration file.
    pub zfsd_toml: PathBuf,
    /// The private bus.
    pub bus: DbusDaemon,
    /// `<pool>/files`, the managed dataset.
    pub dataset: String,
    /// Its mountpoint (the watcher's files_root).
    pub files: PathBuf,
    /// `<pool>/meta`'s mountpoint (the watcher's metadata_dir).
    pub meta: PathBuf,
    /// The watcher's configuration file.
    pub config: PathBuf,
    /// The watcher's query socket.
    pub socket: PathBuf,
    /// The watcher's log (stderr), appended across restarts.
    pub log: PathBuf,
    /// The pool (dropped last).
    pub pool: ZfsPool,
}

impl Setup {
    /// Pool, bus and zfsd; `watcher_toml` is appended to the watcher's configuration
    /// (it must not repeat the `[zfsd]` or `[query]` tables).
    pub fn new(watcher_toml: &str) -> Self {
        horace_tests::require_root("the end-to-end tests");
        let pool = ZfsPool::new(128);
        let (dataset, files) = pool.create_dataset("files");
        let (_, meta) = pool.create_dataset("meta");
        let scratch = pool.scratch().to_path_buf();
        let zfsd_toml = scratch.join("zfsd.toml");
        fs::write(
            &zfsd_toml,
            format!(
                "root = {dataset:?}\nzfs_path = \"/usr/sbin/zfs\"\nallow_uids = [0]\n\
                 command_timeout = 30\nstate_dir = {:?}\n",
                scratch.join("zfsd-state")
            ),
        )
        .unwrap();
        let bus = DbusDaemon::new();
        let socket = scratch.join("query.sock");
        let config = scratch.join("horace.toml");
        fs::write(
            &config,
            format!(
                "files_root = {files:?}\nmetadata_dir = {meta:?}\n{watcher_toml}\n\
                 [query]\nsocket = {socket:?}\n[zfsd]\nbus = {:?}\n",
                bus.address
            ),
        )
        .unwrap();
        let log = scratch.join("watcher.log");
        let mut setup = Self {
            watcher: None,
            zfsd_daemon: None,
            zfsd_toml,
            bus,
            dataset,
            files,
            meta,
            config,
            socket,
            log,
            pool,
        };
        setup.start_zfsd();
        setup
    }

    /// Starts horace-zfsd on the private bus and returns once it reported READY=1.
    pub fn start_zfsd(&mut self) {
        assert!(self.zfsd_daemon.is_none(), "zfsd already running");
        let mut notify = NotifySocket::new();
        let zfsd = ChildGuard::spawn(
            Command::new(bin_path("horace-zfsd"))
                .arg("--config")
                .arg(&self.zfsd_toml)
                .arg("--bus-address")
                .arg(&self.bus.address)
                .env("NOTIFY_SOCKET", notify.path())
                .stdin(Stdio::null())
                .stderr(log_file(&self.pool.scratch().join("zfsd.log"))),
        );
        self.zfsd_daemon = Some(zfsd);
        let ready = notify.wait_for(Duration::from_secs(30), |l| l == "READY=1");
        assert!(ready.is_some(), "horace-zfsd not ready");
    }

    /// Stops horace-zfsd (SIGTERM) and waits until its bus name is gone.
    pub fn stop_zfsd(&mut self) {
        let mut z = self.zfsd_daemon.take().expect("zfsd running");
        z.signal(libc::SIGTERM);
        assert!(
            z.wait_timeout(Duration::from_secs(30)).is_some(),
            "zfsd did not stop"
        );
        let gone = horace_tests::wait_until(Duration::from_secs(10), || {
            !self
                .bus
                .busctl(&["status", horace_zfsd::api::BUS_NAME])
                .status
                .success()
        });
        assert!(gone, "zfsd's bus name is still owned");
    }

    /// Appends a `[snapshots]` section for the test dataset to the watcher's config:
    /// `enabled = true`, `dataset`, then the `extra` lines (`key = value\n` each).
    pub fn enable_snapshots(&self, extra: &str) {
        let section = format!(
            "[snapshots]\nenabled = true\ndataset = {:?}\n{extra}",
            self.dataset
        );
        let config = std::fs::read_to_string(&self.config).unwrap() + &section;
        std::fs::write(&self.config, config).unwrap();
    }

    /// Starts the watcher and returns once it reported READY=1 (startup scan done).
    pub fn start_watcher(&mut self) {
        assert!(self.watcher.is_none(), "watcher already running");
        let mut notify = NotifySocket::new();
        let child = ChildGuard::spawn(
            Command::new(bin_path("horace-watcher"))
                .arg("--config")
                .arg(&self.config)
                .env("NOTIFY_SOCKET", notify.path())
                .env("RUST_LOG", "info,horace_watcher=debug")
                .stdin(Stdio::null())
                .stderr(log_file(&self.log)),
        );
        self.watcher = Some(child);
        let ready = notify.wait_for(Duration::from_secs(60), |l| l == "READY=1");
        assert!(
            ready.is_some(),
            "horace-watcher not ready; log:\n{}",
            self.log()
        );
    }

    /// Stops the watcher with SIGTERM and waits for it to exit.
    pub fn stop_watcher(&mut self) {
        let mut w = self.watcher.take().expect("watcher running");
        w.signal(libc::SIGTERM);
        let status = w.wait_timeout(Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| s.success()),
            "watcher did not stop cleanly: {status:?}\n{}",
            self.log()
        );
    }

    /// The watcher's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A query client of the running watcher.
    pub async fn client(&self) -> horace_client::Client {
        horace_client::Client::connect_unix(&self.socket)
            .await
            .expect("connect to the query socket")
    }

    /// A proxy of horace-zfsd, as root.
    pub async fn zfsd(&self) -> Zfs1Proxy<'static> {
        let conn = zbus::connection::Builder::address(self.bus.address.as_str())
            .build()
            .await
            .expect("connect to the private bus");
        Zfs1Proxy::new(&conn).await.expect("proxy")
    }

    /// The dataset's snapshots as the `zfs` CLI lists them.
    pub fn zfs_list(&self) -> Vec<String> {
        self.pool.snapshots(&self.dataset)
    }

    /// A read-only connection to the watcher's catalog.
    pub fn catalog(&self) -> Connection {
        horace_tests::open_catalog_ro(&self.meta.join("catalog.db"))
    }

    /// Active files in the catalog: path → sha256 of the current version.
    pub fn catalog_active(&self) -> BTreeMap<String, String> {
        horace_tests::catalog_active(&self.catalog())
    }

    /// Every version the catalog holds: (path, version, sha256), ordered.
    pub fn catalog_versions(&self) -> Vec<(String, i64, String)> {
        let conn = self.catalog();
        let mut stmt = conn
            .prepare(
                "SELECT f.path, v.version, v.sha256 FROM versions v JOIN files f ON f.id = v.file_id \
                 ORDER BY f.path, v.version",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The catalog's snapshot mirror (full names, by creation).
    pub fn catalog_snapshots(&self) -> Vec<String> {
        let conn = self.catalog();
        let mut stmt = conn
            .prepare("SELECT name FROM snapshots ORDER BY creation, name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Regular files on disk under files_root (ignored names skipped): path → sha256.
    pub fn disk(&self) -> BTreeMap<String, String> {
        horace_tests::disk_files(&self.files)
    }
}

fn log_file(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file")
}

/// Full names of a ListSnapshots answer.
pub fn names(list: &[SnapshotInfo]) -> Vec<String> {
    list.iter().map(|s| s.name.clone()).collect()
}
