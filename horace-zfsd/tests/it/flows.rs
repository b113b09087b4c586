//! Create, list, destroy and roll back through the bus, checked with the `zfs` CLI, and
//! the signals each emits.

use std::time::Duration;

use futures::StreamExt;
use horace_zfsd::api::{self, ZfsError};

use crate::util::{named, Fixture};

const SIGNAL_WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn create_list_destroy() {
    let fx = Fixture::new();
    let zfsd = fx.proxy().await;
    let mut created = zfsd.receive_snapshot_created().await.unwrap();
    let mut destroyed = zfsd.receive_snapshots_destroyed().await.unwrap();

    let a = zfsd.create_snapshot(&fx.root, "hourly").await.unwrap();
    let (ds, snap) = api::validate_snapshot(&a).unwrap();
    assert_eq!(ds, fx.root);
    let (when, label) = api::parse_managed(snap).expect("a horace_ name");
    assert_eq!(label, "hourly");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!(
        now.as_secs().abs_diff(when) < 60,
        "name carries the UTC time"
    );
    assert_eq!(fx.snapshots(), std::slice::from_ref(&a));
    let sig = tokio::time::timeout(SIGNAL_WAIT, created.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sig.args().unwrap().name, a);

    let b = zfsd.create_snapshot(&fx.root, "daily").await.unwrap();
    let list = zfsd.list_snapshots(&fx.root).await.unwrap();
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [a.as_str(), b.as_str()], "oldest first");
    assert!(list.iter().all(|s| s.creation.abs_diff(when) < 60));
    assert_eq!(fx.snapshots(), names);

    // A child dataset counts as under the root.
    let (child, _) = fx.pool.create_dataset("files/sub");
    let c = zfsd.create_snapshot(&child, "weekly").await.unwrap();
    assert_eq!(fx.pool.snapshots(&child), std::slice::from_ref(&c));
    assert_eq!(
        zfsd.list_snapshots(&fx.root).await.unwrap().len(),
        2,
        "own snapshots only"
    );

    // Dry run destroys nothing.
    let would = zfsd
        .destroy_snapshots(&fx.root, &[&a, &b], true)
        .await
        .unwrap();
    assert_eq!(would, [a.clone(), b.clone()]);
    assert_eq!(fx.snapshots(), [a.clone(), b.clone()]);

    let gone = zfsd
        .destroy_snapshots(&fx.root, &[&a, &b], false)
        .await
        .unwrap();
    assert_eq!(gone, [a.clone(), b.clone()]);
    assert!(fx.snapshots().is_empty());
    let sig = tokio::time::timeout(SIGNAL_WAIT, destroyed.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sig.args().unwrap().names, [a, b]);
    assert_eq!(
        zfsd.destroy_snapshots(&fx.root, &[], false).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn same_second_same_label_is_refused_not_overwritten() {
    let fx = Fixture::new();
    let zfsd = fx.proxy().await;
    // Two creates in the same second give the same name: the second fails, the first stays.
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(zfsd.create_snapshot(&fx.root, "burst").await);
    }
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(!ok.is_empty());
    assert_eq!(fx.snapshots().len(), ok.len());
    for r in results.into_iter().filter(|r| r.is_err()) {
        assert!(matches!(named(r), ZfsError::ZfsFailed(m) if m.contains("exists")));
    }
}

#[tokio::test]
async fn rollback_newest_and_past_newer_with_consent() {
    let fx = Fixture::new();
    let zfsd = fx.proxy().await;
    let file = fx.pool.mountpoint.join("files/data.txt");
    std::fs::write(&file, "one").unwrap();
    let s1 = zfsd.create_snapshot(&fx.root, "one").await.unwrap();
    std::fs::write(&file, "two").unwrap();
    // Distinct names need distinct labels within one second.
    let s2 = zfsd.create_snapshot(&fx.root, "two").await.unwrap();
    std::fs::write(&file, "three").unwrap();

    let mut rolled = zfsd.receive_rolled_back().await.unwrap();
    // Newest: no consent needed, nothing destroyed.
    assert!(zfsd.rollback(&s2, false, false).await.unwrap().is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "two");
    let sig = tokio::time::timeout(SIGNAL_WAIT, rolled.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sig.args().unwrap().snapshot, s2);

    // Past a newer one: refused without consent, pool unchanged.
    let before = fx.pool_state();
    let err = named(zfsd.rollback(&s1, false, false).await);
    assert!(
        matches!(&err, ZfsError::Busy(m) if m.contains(&s2) && m.contains("destroy_newer")),
        "{err:?}"
    );
    assert_eq!(fx.pool_state(), before);
    // Dry run with consent lists what would go, changes nothing.
    assert_eq!(
        zfsd.rollback(&s1, true, true).await.unwrap(),
        std::slice::from_ref(&s2)
    );
    assert_eq!(fx.pool_state(), before);
    // With consent.
    assert_eq!(zfsd.rollback(&s1, true, false).await.unwrap(), [s2]);
    assert_eq!(fx.snapshots(), std::slice::from_ref(&s1));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "one");
    let sig = tokio::time::timeout(SIGNAL_WAIT, rolled.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sig.args().unwrap().snapshot, s1);
}

#[tokio::test]
async fn properties() {
    let fx = Fixture::new();
    let zfsd = fx.proxy().await;
    assert_eq!(zfsd.root().await.unwrap(), fx.root);
    assert_eq!(zfsd.version().await.unwrap(), env!("CARGO_PKG_VERSION"));
}
