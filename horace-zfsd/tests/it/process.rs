//! The daemon as a process: READY=1 and clean SIGTERM exit, capabilities dropped (also
//! for its `zfs` children), a hung `zfs` killed at the timeout while the daemon keeps
//! serving, refusal to start as non-root, a taken name, a bad config.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use horace_tests::{ChildGuard, NOBODY};
use horace_zfsd::api::ZfsError;

use crate::util::{daemon_bin, named, process_gone, write_script, Fixture, Options};

const ONLY_SYS_ADMIN: &str = "0000000000200000";
const NONE: &str = "0000000000000000";

fn caps_of(status: &str) -> Vec<(String, String)> {
    status
        .lines()
        .filter(|l| l.starts_with("Cap"))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn assert_only_sys_admin(status: &str, who: &str) {
    for (k, v) in caps_of(status) {
        let want = if matches!(k.as_str(), "CapInh" | "CapAmb") {
            NONE
        } else {
            ONLY_SYS_ADMIN
        };
        assert_eq!(v, want, "{who}: {k}");
    }
}

#[tokio::test]
async fn hung_zfs_is_killed_at_the_timeout_and_the_daemon_keeps_serving() {
    let dir = horace_tests::shared_tempdir();
    let d = dir.path().display();
    // A stand-in for zfs that records its capabilities, hangs (in a grandchild too) while
    // the file `hang` exists, and otherwise runs the real zfs.
    let script = write_script(
        dir.path(),
        "zfs",
        &format!(
            "#!/bin/sh\ngrep ^Cap /proc/self/status > {d}/caps\n\
             if [ -e {d}/hang ]; then\n  echo $$ > {d}/sh.pid\n  sleep 1000 &\n  \
             echo $! > {d}/sleep.pid\n  wait\nfi\nexec /usr/sbin/zfs \"$@\"\n"
        ),
    );
    let fx = Fixture::with(Options {
        zfs_path: Some(script),
        timeout: 2,
        ..Options::default()
    });
    let zfsd = fx.proxy().await;
    let s1 = zfsd.create_snapshot(&fx.root, "hourly").await.unwrap();
    assert_only_sys_admin(
        &fs::read_to_string(dir.path().join("caps")).unwrap(),
        "zfs child",
    );

    fs::write(dir.path().join("hang"), "").unwrap();
    let t0 = Instant::now();
    let err = named(zfsd.list_snapshots(&fx.root).await);
    let took = t0.elapsed();
    assert!(
        matches!(&err, ZfsError::Timeout(m) if m.contains("within 2 s")),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    for f in ["sh.pid", "sleep.pid"] {
        let pid: u32 = fs::read_to_string(dir.path().join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = horace_tests::wait_until(Duration::from_secs(5), || process_gone(pid));
        assert!(gone, "{f} {pid} survived the timeout");
    }
    // Reads run side by side; mutating calls run one at a time (each waits for the lock,
    // then times out and releases it).
    let t0 = Instant::now();
    let (a, b) = tokio::join!(zfsd.list_snapshots(&fx.root), zfsd.list_snapshots(&fx.root));
    assert!(matches!(named(a), ZfsError::Timeout(_)) && matches!(named(b), ZfsError::Timeout(_)));
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "reads overlap: {:?}",
        t0.elapsed()
    );
    let t0 = Instant::now();
    let (a, b) = tokio::join!(
        zfsd.create_snapshot(&fx.root, "daily"),
        zfsd.create_snapshot(&fx.root, "weekly")
    );
    assert!(matches!(named(a), ZfsError::Timeout(_)) && matches!(named(b), ZfsError::Timeout(_)));
    assert!(
        t0.elapsed() >= Duration::from_secs(4),
        "writes serialized: {:?}",
        t0.elapsed()
    );

    fs::remove_file(dir.path().join("hang")).unwrap();
    let list = zfsd.list_snapshots(&fx.root).await.unwrap();
    assert_eq!(
        list.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        fx.snapshots()
    );
    assert!(fx.snapshots().contains(&s1));
    let mut fx = fx;
    assert!(fx.daemon.is_running());
}

#[tokio::test]
async fn ready_capabilities_and_clean_sigterm() {
    let mut fx = Fixture::new();
    let pid = fx.daemon.pid();
    let tasks: Vec<_> = fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .collect();
    assert!(tasks.len() > 1, "the runtime's threads exist");
    for t in tasks {
        let status = fs::read_to_string(t.path().join("status")).unwrap();
        assert_only_sys_admin(
            &status,
            &format!("thread {}", t.file_name().to_string_lossy()),
        );
    }
    fx.daemon.signal(libc::SIGTERM);
    let status = fx
        .daemon
        .wait_timeout(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(fx
        .notify
        .wait_for(Duration::from_secs(1), |l| l == "STOPPING=1")
        .is_some());
    let gone = fx.bus.busctl(&["status", horace_zfsd::api::BUS_NAME]);
    assert!(!gone.status.success(), "the name is released");
}

#[tokio::test]
async fn a_second_daemon_cannot_take_the_name() {
    let fx = Fixture::new();
    let out = horace_tests::run(
        Command::new(daemon_bin())
            .arg("--config")
            .arg(&fx.config)
            .arg("--bus-address")
            .arg(&fx.bus.address),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already owned"), "{stderr}");
    // The first one still serves.
    assert!(fx
        .proxy()
        .await
        .list_snapshots(&fx.root)
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn refuses_to_start_as_non_root() {
    horace_tests::require_root("setpriv");
    let dir = horace_tests::shared_tempdir();
    let config = dir.path().join("zfsd.toml");
    fs::write(&config, "root = \"tank/files\"\n").unwrap();
    fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = horace_tests::run(
        horace_tests::command_as(NOBODY.0, NOBODY.1, &[], daemon_bin())
            .arg("--config")
            .arg(&config),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must run as root"), "{stderr}");
    assert!(stderr.contains("--test-allow-non-root"), "{stderr}");
}

#[test]
fn bad_config_names_key_and_line() {
    let dir = horace_tests::shared_tempdir();
    let config = dir.path().join("zfsd.toml");
    fs::write(
        &config,
        "root = \"tank/files\"\nzfs_path = \"/usr/sbin/zfs\"\nallow_user = [0]\n",
    )
    .unwrap();
    let mut child = ChildGuard::spawn(
        Command::new(daemon_bin())
            .arg("--config")
            .arg(&config)
            .arg("--bus-address")
            .arg("unix:path=/nonexistent")
            .stderr(std::process::Stdio::piped()),
    );
    let status = child.wait_timeout(Duration::from_secs(10)).expect("exits");
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("line 3") && stderr.contains("allow_user"),
        "{stderr}"
    );
}
