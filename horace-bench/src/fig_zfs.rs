//! Figure 8 and zfsd's memory: horace-zfsd's CreateSnapshot over a private D-Bus against
//! `zfs snapshot` run directly, on a file-backed zfs-fuse pool.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use horace_tests::{ChildGuard, DbusDaemon, NotifySocket, ZfsPool};
use horace_zfsd::api::Zfs1Proxy;

use crate::daemon::{memory_kib, mib, sibling_bin};
use crate::data::{mean, percentile};
use crate::report::{ms, Figure};
use crate::Params;

/// Names of the figures this module makes (for skipping them without root).
pub const NAMES: [(&str, &str); 2] = [
    (
        "8. zfsd CreateSnapshot",
        "≤ 1.2x `zfs snapshot` run directly",
    ),
    ("7b. zfsd memory", "RSS ≤ 15 MiB"),
];

/// Runs figure 8 and zfsd's memory; needs root (zfs-fuse).
pub async fn run(p: &Params, figs: &mut Vec<Figure>) -> anyhow::Result<()> {
    eprintln!("bench: 8. zfs-fuse pool, private bus, horace-zfsd");
    horace_tests::ensure_horace_user();
    let pool = ZfsPool::new(128);
    let (root, _) = pool.create_dataset("files");
    let config = pool.scratch().join("zfsd.toml");
    fs::write(
        &config,
        format!(
            "root = {root:?}\nzfs_path = \"/usr/sbin/zfs\"\nallow_uids = [0]\n\
             allow_groups = [\"horace\"]\ncommand_timeout = 60\nstate_dir = {:?}\n",
            pool.scratch().join("zfsd-state")
        ),
    )?;
    let bus = DbusDaemon::new();
    let mut notify = NotifySocket::new();
    let zfsd = ChildGuard::spawn(
        Command::new(sibling_bin("horace-zfsd")?)
            .arg("--config")
            .arg(&config)
            .arg("--bus-address")
            .arg(&bus.address)
            .env("NOTIFY_SOCKET", notify.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    if notify
        .wait_for(Duration::from_secs(30), |l| l == "READY=1")
        .is_none()
    {
        bail!("horace-zfsd did not report READY=1");
    }
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .build()
        .await
        .context("connect to the private bus")?;
    let proxy = Zfs1Proxy::new(&conn).await?;
    // Warm both paths once (binary in page cache, proxy introspection-free call).
    proxy.create_snapshot(&root, "warm").await?;
    direct(&format!("{root}@warm-direct"))?;

    let (mut dbus, mut zfs) = (Vec::new(), Vec::new());
    for i in 0..p.snapshots {
        // Interleaved, so load on the shared machine hits both sides alike.
        let t = Instant::now();
        proxy.create_snapshot(&root, &format!("b{i}")).await?;
        dbus.push(t.elapsed());
        zfs.push(direct(&format!("{root}@direct-{i}"))?);
    }
    let (hwm, rss) = memory_kib(zfsd.pid())?;
    let (dm, zm) = (mean(&dbus), mean(&zfs));
    let ratio = dm.as_secs_f64() / zm.as_secs_f64();
    let mut f = Figure::new(NAMES[0].0, NAMES[0].1);
    f.value = format!(
        "mean {} (p50 {}) over {}",
        ms(dm),
        ms(percentile(&mut dbus, 50.0)),
        p.snapshots
    );
    f.baseline = format!(
        "`zfs snapshot` directly: mean {} (p50 {})",
        ms(zm),
        ms(percentile(&mut zfs, 50.0))
    );
    f.ratio = format!("{ratio:.2}x");
    f.pass = Some(ratio <= 1.2);
    f.note(format!(
        "zfs-fuse pool {} (file-backed), dataset {root}; CreateSnapshot through zbus on a \
         private dbus-daemon with the project's policy, as root, interleaved with \
         `/usr/sbin/zfs snapshot` spawned directly by the benchmark. zfsd itself validates \
         the names, checks the caller's uid, runs `zfs snapshot` (argv, timeout) and emits \
         SnapshotCreated.",
        pool.name
    ));
    figs.push(f);

    let mut f = Figure::new(NAMES[1].0, NAMES[1].1);
    f.value = format!("VmRSS {}, VmHWM {}", mib(rss), mib(hwm));
    f.baseline = "—".into();
    f.ratio = "—".into();
    f.pass = Some(rss <= 15 * 1024 && hwm <= 15 * 1024);
    f.note(format!(
        "After {} CreateSnapshot calls, from /proc/<pid>/status.",
        p.snapshots + 1
    ));
    figs.push(f);
    drop(proxy);
    drop(conn);
    drop(zfsd);
    drop(bus);
    drop(pool);
    Ok(())
}

fn direct(name: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = Command::new("/usr/sbin/zfs")
        .args(["snapshot", name])
        .output()?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "zfs snapshot {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}
