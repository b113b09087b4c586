//! kill -9 of the real horace-zfsd while its `zfs rollback` child runs (issue 13 item 2),
//! with the real watcher over a zfs-fuse pool. zfsd runs `zfs` through a wrapper that logs
//! each call and, for `rollback`, waits before exec'ing `/usr/sbin/zfs` (round mode
//! `before`: the kill lands before the real rollback starts) or after it (`after`: the
//! rollback is done, its zfs has not exited). The orphaned child finishes the rollback on
//! its own; the restarted zfsd finds the journal record, waits for the child's lock and
//! reports `RolledBack`. The catalog must then equal the rolled-back disk.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use horace_tests::atomic_write;

use crate::e2e::{eventually, Setup};
use crate::fixture::knob;

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_zfsd_mid_rollback_is_reconciled() {
    let mut s = Setup::new("");
    let scratch = s.pool.scratch().to_path_buf();
    let log = scratch.join("zfs-calls.log");
    let mode = scratch.join("rollback-mode");
    let wrapper = scratch.join("slow-zfs");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> {log}\nif [ \"$1\" = rollback ]; then\n  \
             case \"$(cat {mode})\" in\n    before) sleep 1.5; exec /usr/sbin/zfs \"$@\";;\n    \
             after) /usr/sbin/zfs \"$@\"; rc=$?; sleep 1.5; exit $rc;;\n  esac\nfi\n\
             exec /usr/sbin/zfs \"$@\"\n",
            log = log.display(),
            mode = mode.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.stop_zfsd();
    let toml = std::fs::read_to_string(&s.zfsd_toml).unwrap().replace(
        "\"/usr/sbin/zfs\"",
        &format!("{:?}", wrapper.display().to_string()),
    );
    std::fs::write(&s.zfsd_toml, toml).unwrap();
    s.start_zfsd();
    s.enable_snapshots("");
    s.start_watcher();
    let client = s.client().await;
    let rounds = knob("HORACE_ROLLBACK_ROUNDS", 2);
    let files = knob("HORACE_ROLLBACK_FILES", 200);
    for round in 0..rounds {
        let m = if round % 2 == 0 { "before" } else { "after" };
        std::fs::write(&mode, m).unwrap();
        for d in 0..10 {
            std::fs::create_dir_all(s.files.join(format!("r{round}/d{d}"))).unwrap();
        }
        for i in 0..files {
            atomic_write(
                &s.files.join(format!("r{round}/d{}/keep-{i}.txt", i % 10)),
                format!("round {round} file {i}").as_bytes(),
            );
        }
        client.sync().await.expect("sync");
        let snap = format!("{}@round{round}", s.dataset);
        horace_tests::run_ok(std::process::Command::new("/usr/sbin/zfs").args(["snapshot", &snap]));
        let at_snapshot = s.disk();
        for i in 0..files {
            let keep = s.files.join(format!("r{round}/d{}/keep-{i}.txt", i % 10));
            match i % 3 {
                0 => std::fs::remove_file(&keep).unwrap(),
                1 => atomic_write(&keep, format!("changed after the snapshot {i}").as_bytes()),
                _ => {}
            }
            atomic_write(
                &s.files.join(format!("r{round}/gone-{i}.txt")),
                b"written after the snapshot; the rollback removes it",
            );
        }
        client.sync().await.expect("sync");
        assert_eq!(
            s.catalog_active(),
            s.disk(),
            "round {round}: before the rollback"
        );
        let seen = calls(&log).len();
        let zfsd = s.zfsd().await;
        let target = snap.clone();
        let call = tokio::spawn(async move { zfsd.rollback(&target, true, false).await });
        let deadline = Instant::now() + Duration::from_secs(60);
        while !calls(&log)
            .iter()
            .skip(seen)
            .any(|c| c.starts_with("rollback "))
        {
            assert!(Instant::now() < deadline, "no zfs rollback call");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut z = s.zfsd_daemon.take().expect("zfsd running");
        z.signal(libc::SIGKILL);
        assert!(
            z.wait_timeout(Duration::from_secs(10)).is_some(),
            "zfsd survived kill -9"
        );
        let gone = s.files.join(format!("r{round}/gone-0.txt"));
        let rolled_at_kill = !gone.exists();
        let _ = call.await;
        let t0 = Instant::now();
        s.start_zfsd();
        // The orphaned zfs finishes the rollback on its own.
        let rolled = horace_tests::wait_until(Duration::from_secs(60), || !gone.exists());
        assert!(
            rolled,
            "round {round}: the orphaned zfs rollback never completed"
        );
        assert_eq!(
            s.disk(),
            at_snapshot,
            "round {round}: zfs rolled the files back"
        );
        let equal = eventually(Duration::from_secs(60), || async {
            client.sync().await.is_ok() && s.catalog_active() == s.disk()
        })
        .await;
        let (cat, disk) = (s.catalog_active(), s.disk());
        let extra: Vec<_> = cat
            .keys()
            .filter(|k| !disk.contains_key(*k))
            .take(5)
            .collect();
        assert!(
            equal,
            "round {round} ({m}): catalog != disk after the interrupted rollback; \
             {} cataloged, {} on disk, e.g. extra {extra:?}\n{}",
            cat.len(),
            disk.len(),
            s.log()
        );
        eprintln!(
            "round {round}: zfsd killed during `zfs rollback` (mode {m}, rolled back at the \
             kill: {rolled_at_kill}); catalog = disk ({} files) {:.1} s after zfsd restarted",
            disk.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    s.stop_watcher();
}
