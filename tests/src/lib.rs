//! Test harness over real parts: a file-backed zfs-fuse pool, a private `dbus-daemon`
//! whose configuration includes the project's own policy file, a datagram socket that
//! stands in for systemd's `NOTIFY_SOCKET`, and helpers to run the real binaries (also as
//! another uid through `setpriv`).
//!
//! Every resource is owned by a guard whose `Drop` tears it down, so a failing test
//! leaves no pool, mount or process behind. `scripts/test.sh` additionally sweeps
//! leftovers of a killed run and stops the zfs-fuse daemon it started.

mod state;

pub use state::{
    catalog_active, disk_files, disk_files_lenient, eventually, ignored_name, open_catalog_ro,
    sha256_hex,
};

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Prefix of every pool the harness creates; `scripts/test.sh` destroys leftovers by it.
pub const POOL_PREFIX: &str = "hrt";

/// Name of the unprivileged system user and group the project runs the watcher as.
pub const HORACE_USER: &str = "horace";

/// Root of the workspace (to find `packaging/`, `systemd/` and the built binaries).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Path of a binary of the workspace built into the same target directory as the test.
///
/// Integration tests of another crate cannot ask cargo for it, so `scripts/test.sh` runs
/// `cargo build --workspace --bins` first; a missing binary is a clear failure.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// Whether the test runs as root (the ZFS and other-uid tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Panics with a clear message unless the test runs as root.
pub fn require_root(what: &str) {
    assert!(
        is_root(),
        "{what} needs root (zfs-fuse, setpriv): run scripts/test.sh as root"
    );
}

/// Runs a command to completion and returns its output; panics if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command and panics with its stderr unless it succeeds; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    expect_success(cmd, out)
}

/// Panics with `cmd`'s stderr unless `out` (its output) is a success; returns stdout.
fn expect_success(cmd: &Command, out: Output) -> String {
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
///
/// For conditions with no event to wait on (a process exiting, a bus name appearing).
/// Catalog state is awaited with the watcher's sync barrier instead.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory readable by other uids (the denial tests run as `nobody`).
pub fn shared_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("horace-test-")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
    dir
}

/// Makes sure group and user `horace` exist (the D-Bus policy names the group).
pub fn ensure_horace_user() -> (u32, u32) {
    static ONCE: OnceLock<(u32, u32)> = OnceLock::new();
    *ONCE.get_or_init(|| {
        require_root("creating the horace user");
        if lookup_id("-g", HORACE_USER).is_none() {
            let _ = run(Command::new("groupadd").args(["--system", HORACE_USER]));
        }
        if lookup_id("-u", HORACE_USER).is_none() {
            let _ = run(Command::new("useradd").args([
                "--system",
                "--gid",
                HORACE_USER,
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                HORACE_USER,
            ]));
        }
        let uid = lookup_id("-u", HORACE_USER).expect("user horace");
        let gid = lookup_id("-g", HORACE_USER).expect("group horace");
        (uid, gid)
    })
}

fn lookup_id(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// uid and gid of `nobody`: a caller that is neither root nor in group horace.
pub const NOBODY: (u32, u32) = (65534, 65534);

/// A command that runs `program` as `uid`:`gid` with no supplementary groups but
/// `extra_groups`, through `setpriv`.
pub fn command_as(uid: u32, gid: u32, extra_groups: &[u32], program: impl AsRef<Path>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    if extra_groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let groups: Vec<String> = extra_groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", groups.join(",")));
    }
    cmd.arg("--").arg(program.as_ref());
    cmd
}

/// A child process killed (SIGKILL) and reaped when the guard drops.
pub struct ChildGuard {
    /// The running child.
    pub child: Child,
}

impl ChildGuard {
    /// Spawns `cmd` and guards the child.
    pub fn spawn(cmd: &mut Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        Self { child }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the child.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits up to `timeout` for the child to exit and returns its status.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// zfs-fuse
// ---------------------------------------------------------------------------------------

static ZFS_LOCK: Mutex<()> = Mutex::new(());
static POOL_SEQ: AtomicU32 = AtomicU32::new(0);

fn zfs_fuse_running() -> bool {
    Command::new("/usr/sbin/zpool")
        .arg("list")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts the zfs-fuse daemon unless it runs already (it serves every pool of the
/// machine; `scripts/test.sh` stops it again when it started it).
pub fn ensure_zfs_fuse() {
    require_root("zfs-fuse");
    let _g = ZFS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !zfs_fuse_running() {
        assert!(
            Path::new("/usr/sbin/zfs-fuse").exists(),
            "zfs-fuse is not installed: apt-get install zfs-fuse (scripts/test.sh does)"
        );
        let _ = fs::remove_file("/run/horace-tests-zfs-fuse.pid");
        run_ok(Command::new("/usr/sbin/zfs-fuse").args([
            "--no-kstat-mount",
            "--pidfile",
            "/run/horace-tests-zfs-fuse.pid",
        ]));
    }
    let up = wait_until(Duration::from_secs(20), || {
        Command::new("zpool")
            .arg("list")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(up, "zfs-fuse did not come up");
}

/// Runs `zfs ARGS` and returns stdout, panicking on failure.
pub fn zfs(args: &[&str]) -> String {
    run_ok(Command::new("/usr/sbin/zfs").args(args))
}

/// Runs `zfs ARGS` like [`zfs`], retrying for up to 30 s while zfs answers "busy".
///
/// zfs-fuse holds a dataset busy for a moment after it was created or touched (a clone
/// made a second ago cannot always be destroyed yet); an operator would try again, so
/// the test does too instead of failing on the timing.
pub fn zfs_when_not_busy(args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut cmd = Command::new("/usr/sbin/zfs");
    cmd.args(args);
    loop {
        let out = run(&mut cmd);
        let busy = String::from_utf8_lossy(&out.stderr).contains("busy");
        if out.status.success() || !busy || Instant::now() > deadline {
            return expect_success(&cmd, out);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A file-backed zfs-fuse pool, destroyed (with its image) on drop.
pub struct ZfsPool {
    /// Pool name, `hrt<pid>x<n>`.
    pub name: String,
    /// Where the pool's root dataset is mounted.
    pub mountpoint: PathBuf,
    dir: tempfile::TempDir,
}

impl ZfsPool {
    /// Creates a pool of `size_mb` MiB (zfs-fuse wants at least 64) on a sparse file.
    pub fn new(size_mb: u64) -> Self {
        ensure_zfs_fuse();
        let dir = shared_tempdir();
        let name = format!(
            "{POOL_PREFIX}{}x{}",
            std::process::id(),
            POOL_SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let img = dir.path().join("pool.img");
        let f = fs::File::create(&img).expect("create pool image");
        f.set_len(size_mb.max(64) * 1024 * 1024)
            .expect("size pool image");
        let mountpoint = dir.path().join("mnt");
        {
            let _g = ZFS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            run_ok(
                Command::new("/usr/sbin/zpool")
                    .arg("create")
                    .arg("-m")
                    .arg(&mountpoint)
                    .arg(&name)
                    .arg(&img),
            );
        }
        fs::set_permissions(&mountpoint, fs::Permissions::from_mode(0o755)).ok();
        Self {
            name,
            mountpoint,
            dir,
        }
    }

    /// Creates dataset `<pool>/<rel>` and returns (full name, mountpoint).
    pub fn create_dataset(&self, rel: &str) -> (String, PathBuf) {
        let full = format!("{}/{rel}", self.name);
        zfs(&["create", &full]);
        let mp = self.mountpoint.join(rel);
        fs::set_permissions(&mp, fs::Permissions::from_mode(0o755)).ok();
        (full, mp)
    }

    /// Names of the snapshots of `dataset`, oldest first, as the `zfs` CLI reports them.
    pub fn snapshots(&self, dataset: &str) -> Vec<String> {
        let out = zfs(&[
            "list", "-H", "-t", "snapshot", "-o", "name", "-s", "creation", "-r", dataset,
        ]);
        out.lines()
            .filter(|l| l.starts_with(&format!("{dataset}@")))
            .map(|l| l.to_string())
            .collect()
    }

    /// The directory that holds the pool image (scratch space for the test).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ZfsPool {
    fn drop(&mut self) {
        let _g = ZFS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // zfs-fuse's destroy can be busy for a moment right after use.
        for _ in 0..30 {
            let ok = Command::new("/usr/sbin/zpool")
                .args(["destroy", "-f", &self.name])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("warning: could not destroy test pool {}", self.name);
    }
}

// ---------------------------------------------------------------------------------------
// D-Bus
// ---------------------------------------------------------------------------------------

/// The project's D-Bus policy for horace-zfsd, as packaging installs it.
pub fn policy_file() -> PathBuf {
    workspace_root().join("packaging/dbus/org.horace.Zfs1.conf")
}

/// A private `dbus-daemon` with the system bus's default policy and the project's own
/// policy file included, so the policy itself is under test. Killed on drop.
pub struct DbusDaemon {
    /// Address to pass to `--bus-address` / `busctl --address=`.
    pub address: String,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl DbusDaemon {
    /// Starts the bus and waits until it accepts connections.
    pub fn new() -> Self {
        let dir = shared_tempdir();
        let socket = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        let policy = policy_file();
        assert!(policy.exists(), "missing {}", policy.display());
        fs::write(&config, bus_config(&socket, &policy)).expect("write bus config");
        let child = ChildGuard::spawn(
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", config.display()))
                .arg("--nofork")
                .arg("--nopidfile")
                .stdout(Stdio::null()),
        );
        let address = format!("unix:path={}", socket.display());
        let up = wait_until(Duration::from_secs(10), || socket.exists());
        assert!(up, "dbus-daemon did not create {}", socket.display());
        Self {
            address,
            _child: child,
            _dir: dir,
        }
    }

    /// `busctl --address=<bus> ARGS`, as root.
    pub fn busctl(&self, args: &[&str]) -> Output {
        run(Command::new("busctl")
            .arg(format!("--address={}", self.address))
            .args(args))
    }

    /// `busctl --address=<bus> ARGS` as another uid/gid.
    pub fn busctl_as(&self, uid: u32, gid: u32, groups: &[u32], args: &[&str]) -> Output {
        run(command_as(uid, gid, groups, "/usr/bin/busctl")
            .arg(format!("--address={}", self.address))
            .args(args))
    }

    /// Waits until `name` has an owner on the bus.
    pub fn wait_for_name(&self, name: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.busctl(&["status", name]).status.success())
    }
}

impl Default for DbusDaemon {
    fn default() -> Self {
        Self::new()
    }
}

/// The private bus configuration shared with the demo and the package check.
const BUS_CONFIG_TEMPLATE: &str = include_str!("../../scripts/private-bus.conf.in");

fn bus_config(socket: &Path, policy: &Path) -> String {
    BUS_CONFIG_TEMPLATE
        .replace("@SOCKET@", &socket.display().to_string())
        .replace("@POLICY@", &policy.display().to_string())
}

// ---------------------------------------------------------------------------------------
// sd-notify
// ---------------------------------------------------------------------------------------

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`: pass [`NotifySocket::path`]
/// in the daemon's environment and read what it reports.
pub struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
    /// Every message received so far, in order.
    pub received: Vec<String>,
}

impl NotifySocket {
    /// Binds a fresh socket in a temporary directory readable by other uids.
    pub fn new() -> Self {
        let dir = shared_tempdir();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).ok();
        Self {
            sock,
            path,
            _dir: dir,
            received: Vec::new(),
        }
    }

    /// The socket's path, for `NOTIFY_SOCKET=`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads messages until one has a line for which `pred` holds, or `timeout` passes.
    /// Returns that line.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(l) = self
            .received
            .iter()
            .flat_map(|m| m.lines())
            .find(|l| pred(l))
        {
            return Some(l.to_string());
        }
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            let Ok(n) = self.sock.recv(&mut buf) else {
                if Instant::now() >= deadline {
                    return None;
                }
                continue;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.lines().find(|l| pred(l)).map(str::to_string);
            self.received.push(msg);
            if hit.is_some() {
                return hit;
            }
        }
    }
}

impl Default for NotifySocket {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes `contents` to `path` the way services save files: a temp file in the same
/// directory, then a rename into place.
pub fn atomic_write(path: &Path, contents: &[u8]) {
    let dir = path.parent().expect("parent");
    let tmp = dir.join(format!(
        ".horace-test-{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .replace('/', "_")
    ));
    let mut f = fs::File::create(&tmp).expect("create temp");
    f.write_all(contents).expect("write temp");
    f.sync_all().ok();
    drop(f);
    fs::rename(&tmp, path).expect("rename into place");
}
