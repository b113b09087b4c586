//! kill -9 of the real horace-zfsd in the middle of a CreateSnapshot and of a
//! DestroySnapshots, with the real watcher scheduling snapshots against it (one schedule
//! "hour" = 2 s, one of each kept, so every tick creates and destroys). zfsd runs `zfs`
//! through a wrapper that logs the call and, for `snapshot` and `destroy`, waits 400 ms
//! before exec'ing `/usr/sbin/zfs`, so the kill lands while the call is under way (the
//! orphaned `zfs` then completes on its own: zfsd starts it in its own process group, so
//! zfsd dies without ever announcing its result). While zfsd is down the watcher keeps cataloging; when it returns the watcher
//! recovers; at the end every snapshot is a well-formed `horace_<ts>_<label>` or the
//! foreign one made before, and the catalog's mirror equals zfsd's list.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use horace_tests::atomic_write;

use crate::e2e::{eventually, names, Setup};

const LABELS: [&str; 4] = ["hourly", "daily", "weekly", "monthly"];

/// `horace_YYYY-MM-DDTHH:MM:SSZ_<label>` with a schedule label.
fn well_formed(snap: &str) -> bool {
    let Some(rest) = snap.strip_prefix("horace_") else {
        return false;
    };
    let Some((ts, label)) = rest.rsplit_once('_') else {
        return false;
    };
    let shape = "dddd-dd-ddTdd:dd:ddZ";
    ts.len() == shape.len()
        && ts.chars().zip(shape.chars()).all(|(c, s)| match s {
            'd' => c.is_ascii_digit(),
            s => c == s,
        })
        && LABELS.contains(&label)
}

/// Lines of the wrapper's call log.
fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits for a new `zfs <verb> …` call after the first `seen` lines, then kills zfsd with
/// SIGKILL while the wrapper still holds the call; returns the call.
fn kill_during(s: &mut Setup, log: &Path, verb: &str, seen: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let call = loop {
        if let Some(c) = calls(log)
            .into_iter()
            .skip(seen)
            .find(|c| c.starts_with(&format!("{verb} ")))
        {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "no `zfs {verb}` call\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut z = s.zfsd_daemon.take().expect("zfsd running");
    z.signal(libc::SIGKILL);
    assert!(
        z.wait_timeout(Duration::from_secs(10)).is_some(),
        "zfsd survived kill -9"
    );
    call
}

async fn zfsd_reachable(s: &Setup, want: bool) -> bool {
    let client = s.client().await;
    eventually(Duration::from_secs(30), || async {
        client
            .status()
            .await
            .is_ok_and(|st| st.zfsd_reachable == want)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_zfsd_mid_create_and_mid_destroy_loses_nothing() {
    let mut s = Setup::new("");
    let scratch = s.pool.scratch().to_path_buf();
    let log = scratch.join("zfs-calls.log");
    let wrapper = scratch.join("slow-zfs");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\ncase \"$1\" in snapshot|destroy) sleep 0.4;; esac\nexec /usr/sbin/zfs \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.stop_zfsd();
    let toml = std::fs::read_to_string(&s.zfsd_toml).unwrap();
    let toml = toml.replace(
        "\"/usr/sbin/zfs\"",
        &format!("{:?}", wrapper.display().to_string()),
    );
    std::fs::write(&s.zfsd_toml, toml).unwrap();
    let foreign = format!("{}@before-horace", s.dataset);
    horace_tests::run_ok(std::process::Command::new("/usr/sbin/zfs").args(["snapshot", &foreign]));
    s.start_zfsd();
    s.enable_snapshots("hourly = 1\ndaily = 1\nweekly = 1\nmonthly = 1\ntest_hour_seconds = 2\n");
    s.start_watcher();
    let client = s.client().await;
    let mut written = 0;
    for verb in ["snapshot", "destroy"] {
        let seen = calls(&log).len();
        let call = kill_during(&mut s, &log, verb, seen);
        // Evidence that the kill landed mid-call: the snapshot named by the call is not
        // yet created (or not yet destroyed) right after the kill.
        let target = call.split(' ').next_back().unwrap_or_default().to_string();
        let exists = s.zfs_list().contains(&target);
        let mid = (verb == "snapshot") != exists;
        eprintln!("killed zfsd during `zfs {call}` (mid-call: {mid})");
        // zfsd is down: cataloging goes on.
        for _ in 0..5 {
            written += 1;
            atomic_write(
                &s.files.join(format!("while-down-{written}.txt")),
                format!("written while zfsd is down, {written}").as_bytes(),
            );
        }
        client.sync().await.expect("sync with zfsd down");
        assert_eq!(s.catalog_active(), s.disk(), "cataloging with zfsd down");
        assert!(
            zfsd_reachable(&s, false).await,
            "status never showed zfsd away"
        );
        // zfsd returns: the watcher sees it and snapshots resume.
        let before = calls(&log).len();
        s.start_zfsd();
        assert!(
            zfsd_reachable(&s, true).await,
            "zfsd not reachable again\n{}",
            s.log()
        );
        let resumed = eventually(Duration::from_secs(30), || async {
            calls(&log)
                .iter()
                .skip(before)
                .any(|c| c.starts_with("snapshot "))
        })
        .await;
        assert!(resumed, "no snapshot after zfsd returned\n{}", s.log());
    }
    // Every snapshot is well formed or foreign, and the mirror equals zfsd's list (read
    // while no tick is changing them: the same list before and after).
    let zfsd = s.zfsd().await;
    let last = std::cell::RefCell::new((Vec::new(), Vec::new()));
    let settled = eventually(Duration::from_secs(30), || async {
        let mut a = names(&zfsd.list_snapshots(&s.dataset).await.unwrap_or_default());
        let mut mirror = s.catalog_snapshots();
        let mut b = names(&zfsd.list_snapshots(&s.dataset).await.unwrap_or_default());
        a.sort();
        b.sort();
        mirror.sort();
        let ok = a == b && a == mirror;
        *last.borrow_mut() = (a, mirror);
        ok
    })
    .await;
    let last = last.into_inner();
    assert!(settled, "mirror {:?} != zfsd {:?}", last.1, last.0);
    let listed = s.zfs_list();
    for snap in &listed {
        let short = snap.rsplit_once('@').map_or("", |(_, n)| n);
        assert!(
            snap == &foreign || well_formed(short),
            "half-named or stray snapshot {snap}: {listed:?}"
        );
    }
    assert!(
        listed.contains(&foreign),
        "the foreign snapshot was touched"
    );
    assert_eq!(s.catalog_active(), s.disk());
    eprintln!(
        "zfsd killed twice (mid-create, mid-destroy); {written} files cataloged while down; \
         snapshots at the end {listed:?} (mirror = zfsd list); {} zfs calls",
        calls(&log).len()
    );
    s.stop_watcher();
}

#[test]
fn the_name_check_rejects_half_names() {
    assert!(well_formed("horace_2026-11-22T01:02:03Z_hourly"));
    for bad in [
        "horace_2026-11-22T01:02:03Z_",
        "horace_2026-11-22T01:02:03Z_yearly",
        "horace_2026-11-22T01:02_hourly",
        "horace_",
        "before-horace",
        "horace_2026-11-22T01:02:03Zhourly",
    ] {
        assert!(!well_formed(bad), "{bad}");
    }
}
