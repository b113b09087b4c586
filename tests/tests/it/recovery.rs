//! Snapshots when things go wrong: zfsd away, and a version whose content the store has
//! pruned (zfs-fuse has no `.zfs/snapshot`, so the snapshots that hold it are named).

use std::time::Duration;

use horace_client::{ClientError, FileRef, QueryError};
use horace_tests::atomic_write;

use crate::util::{eventually, Setup};

/// zfsd away: cataloging goes on, the failure is logged once and shown in status, and
/// the snapshots are taken when zfsd returns.
#[tokio::test(flavor = "multi_thread")]
async fn zfsd_away_pauses_snapshots_not_cataloging() {
    let mut s = Setup::new("");
    s.enable_snapshots("test_hour_seconds = 2\n");
    s.stop_zfsd();
    s.start_watcher();
    let client = s.client().await;
    atomic_write(&s.files.join("notes.txt"), b"written while zfsd is away");
    client.sync().await.unwrap();
    assert_eq!(s.catalog_active(), s.disk(), "cataloging goes on");

    // Several failed ticks (one debug line each), one warning.
    let failed_ticks = || s.log().matches("snapshot tick failed").count();
    assert!(
        eventually(Duration::from_secs(30), || async { failed_ticks() >= 5 }).await,
        "{}",
        s.log()
    );
    assert_eq!(
        s.log().matches("snapshots are paused").count(),
        1,
        "{}",
        s.log()
    );
    let status = client.status().await.unwrap();
    assert!(!status.zfsd_reachable);
    assert!(status
        .zfsd_error
        .is_some_and(|e| e.contains("connect") || e.contains("ServiceUnknown")));
    assert!(s.zfs_list().is_empty());

    s.start_zfsd();
    let taken = eventually(Duration::from_secs(30), || async {
        let list = s.zfs_list();
        ["hourly", "daily", "weekly", "monthly"]
            .iter()
            .all(|l| list.iter().any(|n| n.ends_with(&format!("_{l}"))))
    })
    .await;
    assert!(
        taken,
        "no snapshots after zfsd returned: {:?}\n{}",
        s.zfs_list(),
        s.log()
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            client
                .status()
                .await
                .is_ok_and(|st| st.zfsd_reachable && st.zfsd_error.is_none())
        })
        .await
    );
    assert_eq!(s.log().matches("answers again").count(), 1, "{}", s.log());
}

/// A version pruned from the content store cannot be read from a snapshot on zfs-fuse;
/// the restore names exactly the snapshots taken while it was current.
#[tokio::test(flavor = "multi_thread")]
async fn a_pruned_version_names_the_snapshots_that_hold_it() {
    let mut s = Setup::new("[versions]\nkeep = 1\nmin_age_days = 0\n");
    s.enable_snapshots("");
    s.start_watcher();
    // The start-up tick's snapshots come first, in an earlier second than version 1.
    assert!(
        eventually(Duration::from_secs(30), || async {
            s.zfs_list().len() == 4
        })
        .await
    );
    let second =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let next_second = || async {
        let now = second(std::time::SystemTime::now());
        assert!(
            eventually(Duration::from_secs(3), || async {
                second(std::time::SystemTime::now()) > now
            })
            .await
        );
    };
    next_second().await;
    let client = s.client().await;
    let file = s.files.join("plan.txt");
    atomic_write(&file, b"version 1");
    client.sync().await.unwrap();
    next_second().await;
    let held = s
        .zfsd()
        .await
        .create_snapshot(&s.dataset, "holds-v1")
        .await
        .unwrap();
    next_second().await;
    atomic_write(&file, b"version 2");
    client.sync().await.unwrap();
    // The mirror follows zfsd's SnapshotCreated signal.
    assert!(
        eventually(Duration::from_secs(20), || async {
            s.catalog_snapshots().contains(&held)
        })
        .await,
        "{:?}",
        s.catalog_snapshots()
    );
    let err = client
        .restore_version(FileRef::Path("plan.txt".into()), 1)
        .await
        .unwrap_err();
    match err {
        ClientError::Query(QueryError::ContentPruned { version, snapshots }) => {
            assert_eq!(version, 1);
            assert_eq!(snapshots, [held]);
        }
        other => panic!("expected ContentPruned, got {other:?}\n{}", s.log()),
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"version 2",
        "a failed restore changes nothing"
    );
}
