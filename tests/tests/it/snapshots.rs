//! Snapshots end to end: the schedule, planned pruning, rollback and catalog recovery,
//! with horace-zfsd and horace-watcher running over a zfs-fuse pool and a private bus.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use horace_tests::atomic_write;
use horace_watcher::config::Config;
use horace_watcher::snapshots::retention::{plan, Label, Policy};

use crate::util::{eventually, names, Setup};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Waits (on the clock) until the wall-clock second changes, so zfsd's second-resolution
/// names of two snapshots with the same label differ.
async fn next_second() {
    let s = unix_now();
    assert!(eventually(Duration::from_secs(3), || async { unix_now() > s }).await);
}

/// Real-time schedule: the dry run (`horace snapshots --plan --json`) taken just before a
/// tick equals the plan computed from zfsd's list beforehand and is exactly what the tick
/// then creates and destroys, never touching foreign or unscheduled snapshots. With zfsd
/// away the dry run is a named error.
#[tokio::test(flavor = "multi_thread")]
async fn pruning_removes_exactly_the_planned_snapshots() {
    let toml = "[snapshots]\nenabled = true\ndataset = \"DS\"\nhourly = 2\ndaily = 1\nweekly = 1\nmonthly = 1\n";
    let mut s = Setup::new("");
    std::fs::write(
        &s.config,
        std::fs::read_to_string(&s.config).unwrap() + &toml.replace("DS", &s.dataset),
    )
    .unwrap();
    let config = Config::load(&s.config).unwrap();
    // Keep the whole test (up to ~2 minutes: a window in the minute, then the tick on the
    // next minute) inside one real hour so the plan cannot change under it.
    let into_hour = unix_now() % 3600;
    if into_hour > 3600 - 180 {
        let wait = 3600 - into_hour + 1;
        assert!(
            eventually(Duration::from_secs(wait as u64 + 5), || async {
                unix_now() % 3600 < 60
            })
            .await
        );
    }
    let zfsd = s.zfsd().await;
    horace_tests::zfs(&["snapshot", &format!("{}@operator-manual", s.dataset)]);
    for _ in 0..3 {
        zfsd.create_snapshot(&s.dataset, "hourly").await.unwrap();
        zfsd.create_snapshot(&s.dataset, "daily").await.unwrap();
        next_second().await;
    }
    zfsd.create_snapshot(&s.dataset, "pre-upgrade")
        .await
        .unwrap();
    let before = zfsd.list_snapshots(&s.dataset).await.unwrap();
    let planned = plan(
        &Policy::from_config(&config.snapshots),
        &s.dataset,
        &before,
        unix_now(),
    );
    assert_eq!(planned.create, [Label::Weekly, Label::Monthly]);
    assert_eq!(
        planned.destroy.len(),
        3,
        "1 of 3 hourlies and 2 of 3 dailies: {planned:?}"
    );
    assert!(planned
        .destroy
        .iter()
        .all(|d| d.ends_with("_hourly") || d.ends_with("_daily")));

    // The watcher starts with zfsd away: its first tick fails, the next is on the minute.
    drop(zfsd);
    s.stop_zfsd();
    s.start_watcher();
    let client = s.client().await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            client.status().await.unwrap().zfsd_error.is_some()
        })
        .await,
        "the first tick did not fail\n{}",
        s.log()
    );
    let away = plan_cli(&s, &["snapshots", "--plan"]);
    assert_eq!(away.status.code(), Some(1), "{away:?}");
    let err = String::from_utf8_lossy(&away.stderr);
    assert!(err.contains("horace-zfsd is unreachable"), "{err}");

    // zfsd back early in a minute; the dry run is taken before the tick on the minute.
    assert!(
        eventually(Duration::from_secs(62), || async {
            (2..40).contains(&(unix_now() % 60))
        })
        .await
    );
    s.start_zfsd();
    let out = plan_cli(&s, &["--json", "snapshots", "--plan"]);
    assert!(out.status.success(), "{out:?}");
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let untouched: BTreeSet<String> = names(&before).into_iter().collect();
    assert_eq!(
        s.zfs_list().into_iter().collect::<BTreeSet<_>>(),
        untouched,
        "a tick ran before the dry run was answered"
    );
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("not a list: {dry}"))
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let (dry_create, dry_destroy) = (strings(&dry["create"]), strings(&dry["destroy"]));
    assert_eq!(dry["dataset"], s.dataset.as_str(), "{dry}");
    assert_eq!(dry_create, ["weekly", "monthly"], "{dry}");
    assert_eq!(dry_destroy, planned.destroy, "{dry}");
    assert!(dry["prune_refused"].is_null(), "{dry}");
    let table = plan_cli(&s, &["snapshots", "--plan"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("2 to create, 3 to destroy"), "{table}");
    for d in &dry_destroy {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("destroy") && l.ends_with(d.as_str())),
            "{table}"
        );
    }

    // The tick then does exactly that.
    let kept: BTreeSet<String> = untouched
        .iter()
        .filter(|n| !dry_destroy.contains(n))
        .cloned()
        .collect();
    let created_labels = || -> Option<BTreeSet<String>> {
        let now: BTreeSet<String> = s.zfs_list().into_iter().collect();
        if !kept.is_subset(&now) || now.len() != kept.len() + dry_create.len() {
            return None;
        }
        Some(
            now.difference(&kept)
                .map(|n| n.rsplit_once('_').unwrap().1.to_string())
                .collect(),
        )
    };
    assert!(
        eventually(Duration::from_secs(90), || async {
            dry_destroy.iter().all(|d| !s.zfs_list().contains(d)) && created_labels().is_some()
        })
        .await,
        "zfs list {:?} is not {kept:?} + {dry_create:?}\n{}",
        s.zfs_list(),
        s.log()
    );
    assert_eq!(
        created_labels().unwrap(),
        dry_create.iter().cloned().collect::<BTreeSet<_>>()
    );
    // The catalog's mirror follows.
    assert!(
        eventually(Duration::from_secs(20), || async {
            s.catalog_snapshots().len() == s.zfs_list().len()
        })
        .await,
        "mirror {:?} vs zfs {:?}",
        s.catalog_snapshots(),
        s.zfs_list()
    );
    let mirror: BTreeSet<String> = s.catalog_snapshots().into_iter().collect();
    assert_eq!(mirror, s.zfs_list().into_iter().collect::<BTreeSet<_>>());
}

/// Runs the real `horace` CLI against the watcher's socket.
fn plan_cli(s: &Setup, args: &[&str]) -> std::process::Output {
    std::process::Command::new(horace_tests::bin_path("horace"))
        .arg("--socket")
        .arg(&s.socket)
        .args(args)
        .output()
        .expect("run horace")
}

/// Test schedule (an "hour" of 2 s): hourlies appear once per hour and are pruned to
/// their count; weekly and monthly are taken once; a foreign snapshot stays.
#[tokio::test(flavor = "multi_thread")]
async fn snapshots_appear_on_schedule_and_are_pruned_to_their_counts() {
    let mut s = Setup::new("");
    s.enable_snapshots("hourly = 3\ndaily = 2\nweekly = 1\nmonthly = 1\ntest_hour_seconds = 2\n");
    let config = Config::load(&s.config).unwrap();
    let policy = Policy::from_config(&config.snapshots);
    let foreign = format!("{}@keep-me", s.dataset);
    horace_tests::zfs(&["snapshot", &foreign]);
    s.start_watcher();
    let zfsd = s.zfsd().await;
    let mut hourlies_seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while hourlies_seen.len() < 7 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {hourlies_seen:?}\n{}",
            s.log()
        );
        let list = zfsd.list_snapshots(&s.dataset).await.unwrap();
        let hourly: Vec<_> = list
            .iter()
            .filter(|i| i.name.ends_with("_hourly"))
            .collect();
        assert!(
            hourly.len() <= 4,
            "hourlies above count + the one just taken: {:?}",
            names(&list)
        );
        let periods: BTreeSet<i64> = hourly
            .iter()
            .map(|i| Label::Hourly.period(policy.calendar_time(i.creation as i64)))
            .collect();
        assert_eq!(
            periods.len(),
            hourly.len(),
            "two hourlies in one hour: {:?}",
            names(&list)
        );
        assert!(
            list.iter().any(|i| i.name == foreign),
            "foreign snapshot gone"
        );
        hourlies_seen.extend(hourly.iter().map(|i| i.name.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let list = zfsd.list_snapshots(&s.dataset).await.unwrap();
    let count = |label: &str| {
        list.iter()
            .filter(|i| i.name.ends_with(&format!("_{label}")))
            .count()
    };
    assert!((3..=4).contains(&count("hourly")), "{:?}", names(&list));
    assert_eq!(count("monthly"), 1, "{:?}", names(&list));
    assert!((1..=2).contains(&count("weekly")), "{:?}", names(&list));
    // Pruned hourlies are really gone from ZFS, not only from the list.
    let on_disk: BTreeSet<String> = s.zfs_list().into_iter().collect();
    let gone: Vec<_> = hourlies_seen
        .iter()
        .filter(|n| !on_disk.contains(*n))
        .collect();
    assert!(gone.len() >= 3, "pruned: {gone:?}");
}

/// A rollback through zfsd is followed by a reconcile: the catalog equals the disk, and
/// the history of the versions the rollback threw away stays in the catalog.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_is_followed_by_a_catalog_that_equals_the_disk() {
    let mut s = Setup::new("");
    s.enable_snapshots("");
    s.start_watcher();
    let client = s.client().await;
    std::fs::create_dir_all(s.files.join("alice")).unwrap();
    atomic_write(&s.files.join("alice/a.txt"), b"a version 1");
    atomic_write(&s.files.join("alice/b.txt"), b"b version 1");
    client.sync().await.unwrap();
    assert_eq!(s.catalog_active(), s.disk());
    let zfsd = s.zfsd().await;
    let snap = zfsd
        .create_snapshot(&s.dataset, "pre-change")
        .await
        .unwrap();
    let at_snapshot = s.disk();

    atomic_write(
        &s.files.join("alice/a.txt"),
        b"a version 2, after the snapshot",
    );
    std::fs::remove_file(s.files.join("alice/b.txt")).unwrap();
    atomic_write(&s.files.join("alice/c.txt"), b"c, born after the snapshot");
    client.sync().await.unwrap();
    assert_eq!(s.catalog_active(), s.disk());
    assert_ne!(
        s.catalog_active(),
        at_snapshot,
        "the test must change something"
    );

    zfsd.rollback(&snap, true, false).await.unwrap();
    assert_eq!(s.disk(), at_snapshot, "zfs rolled the files back");
    let equal = eventually(Duration::from_secs(60), || async {
        s.catalog_active() == s.disk()
    })
    .await;
    assert!(
        equal,
        "catalog {:?} != disk {:?}\n{}",
        s.catalog_active(),
        s.disk(),
        s.log()
    );
    // History of the thrown-away versions is kept.
    let versions = s.catalog_versions();
    let a: Vec<i64> = versions
        .iter()
        .filter(|v| v.0 == "alice/a.txt")
        .map(|v| v.1)
        .collect();
    assert!(a.len() >= 2, "a.txt history lost: {versions:?}");
    assert!(
        versions.iter().any(|v| v.0 == "alice/c.txt"),
        "c.txt history lost: {versions:?}"
    );
}

/// A deleted catalog comes back from its `VACUUM INTO` backup with the versions from
/// before the backup, and the startup scan adds what changed since.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_catalog_is_restored_from_its_backup_with_history() {
    let mut s = Setup::new("[catalog]\nbackup_interval = 1\nbackups_keep = 2\n");
    s.start_watcher();
    let client = s.client().await;
    let file = s.files.join("report.txt");
    atomic_write(&file, b"first");
    client.sync().await.unwrap();
    atomic_write(&file, b"second");
    client.sync().await.unwrap();
    let history = s.catalog_versions();
    assert_eq!(history.len(), 2, "{history:?}");
    // Wait for a backup that already holds both versions.
    let backups = s.meta.join("backups");
    let backed_up = eventually(Duration::from_secs(30), || async {
        std::fs::read_dir(&backups)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("catalog-")
                    && name.ends_with(".db")
                    && rusqlite::Connection::open_with_flags(
                        e.path(),
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                    )
                    .and_then(|c| {
                        c.query_row("SELECT count(*) FROM versions", [], |r| r.get::<_, i64>(0))
                    })
                    .is_ok_and(|n| n == 2)
            })
    })
    .await;
    assert!(backed_up, "no backup with both versions\n{}", s.log());
    drop(client);
    // Counted once stopped: a backup just renamed into place is pruned a moment later.
    s.stop_watcher();
    let kept = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".db"))
        .count();
    assert!(kept <= 2, "backups_keep = 2, found {kept}");

    for side in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(s.meta.join(format!("catalog.db{side}")));
    }
    atomic_write(&file, b"third, written while the watcher was down");
    s.start_watcher();
    assert!(
        s.log().contains("restored from the newest usable backup"),
        "{}",
        s.log()
    );
    let after = s.catalog_versions();
    assert_eq!(after[..2], history[..], "history from before the backup");
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(s.catalog_active(), s.disk());
}

/// A snapshot an operator cloned cannot be destroyed: pruning goes on around it, status
/// names it with zfs's reason, and once the clone is gone the next tick prunes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cloned_snapshot_is_kept_and_reported_and_the_rest_is_pruned() {
    let mut s = Setup::new("");
    s.enable_snapshots("hourly = 2\ndaily = 0\nweekly = 0\nmonthly = 0\ntest_hour_seconds = 2\n");
    s.start_watcher();
    let client = s.client().await;
    let hourlies = || -> Vec<String> {
        s.zfs_list()
            .into_iter()
            .filter(|n| n.ends_with("_hourly"))
            .collect()
    };
    assert!(eventually(Duration::from_secs(30), || async { !hourlies().is_empty() }).await);
    let pinned = hourlies()[0].clone();
    let clone = format!("{}-clone", s.dataset);
    // Not mounted: zfs-fuse keeps a fresh mount busy for a while.
    horace_tests::zfs(&["clone", "-o", "mountpoint=none", &pinned, &clone]);

    // Hours pass: the cloned snapshot stays and is reported, newer ones come and go.
    let seen = std::sync::Mutex::new(BTreeSet::new());
    let reported = eventually(Duration::from_secs(60), || async {
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.extend(hourlies());
            seen.len()
        };
        let refused = client.status().await.unwrap().prune_refused;
        n >= 5 && refused.is_some_and(|r| r.contains(&pinned) && r.contains("clone"))
    })
    .await;
    let seen = seen.into_inner().unwrap();
    let list = hourlies();
    assert!(reported, "seen {seen:?}, now {list:?}\n{}", s.log());
    assert!(list.contains(&pinned), "{list:?}");
    assert!(list.len() <= 4, "pruning went on around it: {list:?}");

    horace_tests::zfs_when_not_busy(&["destroy", &clone]);
    let pruned = eventually(Duration::from_secs(30), || async {
        !hourlies().contains(&pinned) && client.status().await.unwrap().prune_refused.is_none()
    })
    .await;
    assert!(pruned, "{:?}\n{}", hourlies(), s.log());
}
