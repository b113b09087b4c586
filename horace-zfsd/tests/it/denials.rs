//! Every denial from the issue, each with its named error and the pool unchanged.

use horace_zfsd::api::ZfsError;

use crate::util::{named, Fixture};

fn hostile(root: &str) -> Vec<String> {
    vec![
        format!("-{root}"),
        format!("{root}/-rf"),
        format!("{root}/../other"),
        format!("{root}/.."),
        format!("{root};reboot"),
        format!("{root}/$(touch /tmp/horace-pwned)"),
        format!("{root}\nx"),
        format!("{root}/{}", "a".repeat(300)),
        format!("{root}@a@b"),
        format!("{root}/'q'"),
        format!("{root}//x"),
        String::new(),
    ]
}

#[tokio::test]
async fn hostile_names_are_invalid_and_change_nothing() {
    let fx = Fixture::new();
    let zfsd = fx.proxy().await;
    let keep = zfsd.create_snapshot(&fx.root, "keep").await.unwrap();
    let before = fx.pool_state();
    for name in hostile(&fx.root) {
        for err in [
            named(zfsd.list_snapshots(&name).await),
            named(zfsd.create_snapshot(&name, "hourly").await),
            named(zfsd.destroy_snapshots(&name, &[], false).await),
            named(zfsd.rollback_serial(&name).await),
        ] {
            assert!(matches!(err, ZfsError::InvalidName(_)), "{name:?}: {err:?}");
        }
    }
    // Snapshot names: dash first, two '@', the same hostile parts after '@'.
    for snap in [
        format!("{}@-x", fx.root),
        format!("{}@a@b", fx.root),
        format!("{}@..", fx.root),
        format!("{}@a;b", fx.root),
        format!("{}@$(id)", fx.root),
        format!("{}@a\nb", fx.root),
        format!("{}@{}", fx.root, "h".repeat(300)),
        format!("-{}@horace_x", fx.root),
    ] {
        let err = named(zfsd.rollback(&snap, true, false).await);
        assert!(matches!(err, ZfsError::InvalidName(_)), "{snap:?}: {err:?}");
        let err = named(zfsd.destroy_snapshots(&fx.root, &[&snap], false).await);
        assert!(matches!(err, ZfsError::InvalidName(_)), "{snap:?}: {err:?}");
    }
    for label in ["Hourly", "a b", "a;b", "a\nb", "", &"x".repeat(33), "$(id)"] {
        let err = named(zfsd.create_snapshot(&fx.root, label).await);
        assert!(
            matches!(err, ZfsError::InvalidName(_)),
            "label {label:?}: {err:?}"
        );
    }
    assert_eq!(fx.pool_state(), before);
    assert_eq!(fx.snapshots(), [keep]);
}

#[tokio::test]
async fn nul_cannot_reach_zfs() {
    let fx = Fixture::new();
    let before = fx.pool_state();
    // D-Bus strings cannot carry NUL: dbus-daemon rejects the message and disconnects
    // the sender, so the daemon never sees it and keeps serving.
    // A fresh connection for each attempt, so one refusal cannot hide the other.
    let r = fx
        .proxy()
        .await
        .create_snapshot(&format!("{}\0x", fx.root), "hourly")
        .await;
    assert!(
        matches!(r, Err(zbus::Error::InputOutput(_))),
        "NUL went through: {r:?}"
    );
    let nul_snap = format!("{}@horace_\0", fx.root);
    let r = fx
        .proxy()
        .await
        .destroy_snapshots(&fx.root, &[&nul_snap], false)
        .await;
    assert!(
        matches!(r, Err(zbus::Error::InputOutput(_))),
        "NUL went through: {r:?}"
    );
    assert_eq!(fx.pool_state(), before);
    let zfsd = fx.proxy().await;
    assert!(
        zfsd.list_snapshots(&fx.root).await.unwrap().is_empty(),
        "daemon still serves"
    );
}

#[tokio::test]
async fn outside_the_root() {
    let fx = Fixture::new();
    let (sibling, _) = fx.pool.create_dataset("files2");
    fx.zfs_snapshot(&format!("{sibling}@horace_2024-01-01T00:00:00Z_hourly"));
    let zfsd = fx.proxy().await;
    let before = fx.pool_state();
    for ds in [
        fx.pool.name.clone(),
        sibling.clone(),
        "otherpool/files".to_string(),
    ] {
        for err in [
            named(zfsd.list_snapshots(&ds).await),
            named(zfsd.create_snapshot(&ds, "hourly").await),
            named(zfsd.rollback_serial(&ds).await),
            named(
                zfsd.destroy_snapshots(&ds, &[&format!("{ds}@horace_x")], false)
                    .await,
            ),
            named(
                zfsd.rollback(
                    &format!("{ds}@horace_2024-01-01T00:00:00Z_hourly"),
                    true,
                    false,
                )
                .await,
            ),
        ] {
            assert!(
                matches!(&err, ZfsError::OutsideRoot(m) if m.contains(&fx.root)),
                "{ds}: {err:?}"
            );
        }
    }
    assert_eq!(fx.pool_state(), before);
}

#[tokio::test]
async fn destroy_refuses_foreign_missing_held_and_other_datasets_all_or_nothing() {
    let fx = Fixture::new();
    let zfsd = fx.proxy().await;
    let mine = zfsd.create_snapshot(&fx.root, "hourly").await.unwrap();
    let foreign = format!("{}@manual", fx.root);
    fx.zfs_snapshot(&foreign);
    let (child, _) = fx.pool.create_dataset("files/sub");
    let childs = zfsd.create_snapshot(&child, "hourly").await.unwrap();
    let before = fx.pool_state();

    let err = named(
        zfsd.destroy_snapshots(&fx.root, &[&mine, &foreign], false)
            .await,
    );
    assert!(
        matches!(&err, ZfsError::NotManaged(m) if m.contains(&foreign)),
        "{err:?}"
    );
    let err = named(zfsd.destroy_snapshots(&fx.root, &[&foreign], true).await);
    assert!(
        matches!(err, ZfsError::NotManaged(_)),
        "dry run refuses too"
    );

    let missing = format!("{}@horace_2020-01-01T00:00:00Z_gone", fx.root);
    let err = named(
        zfsd.destroy_snapshots(&fx.root, &[&mine, &missing], false)
            .await,
    );
    assert!(
        matches!(&err, ZfsError::NotFound(m) if m.contains(&missing)),
        "{err:?}"
    );

    let err = named(
        zfsd.destroy_snapshots(&fx.root, &[&mine, &childs], false)
            .await,
    );
    assert!(
        matches!(&err, ZfsError::InvalidName(m) if m.contains(&childs)),
        "{err:?}"
    );

    horace_tests::zfs(&["hold", "keep", &mine]);
    let err = named(zfsd.destroy_snapshots(&fx.root, &[&mine], false).await);
    assert!(
        matches!(&err, ZfsError::Busy(m) if m.contains(&mine)),
        "{err:?}"
    );
    horace_tests::zfs(&["release", "keep", &mine]);

    assert_eq!(fx.pool_state(), before, "nothing destroyed");
    // Duplicates collapse; then it works.
    assert_eq!(
        zfsd.destroy_snapshots(&fx.root, &[&mine, &mine], false)
            .await
            .unwrap(),
        [mine]
    );
    assert_eq!(fx.snapshots(), [foreign]);
}

#[tokio::test]
async fn rollback_refusals() {
    let fx = Fixture::new();
    let zfsd = fx.proxy().await;
    let s1 = zfsd.create_snapshot(&fx.root, "one").await.unwrap();
    let s2 = zfsd.create_snapshot(&fx.root, "two").await.unwrap();
    let before = fx.pool_state();
    let err = named(zfsd.rollback(&s1, false, false).await);
    assert!(matches!(err, ZfsError::Busy(_)), "{err:?}");
    let err = named(zfsd.rollback(&s1, false, true).await);
    assert!(
        matches!(err, ZfsError::Busy(_)),
        "a dry run without consent refuses too: {err:?}"
    );
    let err = named(
        zfsd.rollback(
            &format!("{}@horace_2020-01-01T00:00:00Z_x", fx.root),
            true,
            false,
        )
        .await,
    );
    assert!(matches!(err, ZfsError::NotFound(_)), "{err:?}");
    // A newer snapshot Horace did not make is never destroyed by a rollback.
    let foreign = format!("{}@manual", fx.root);
    fx.zfs_snapshot(&foreign);
    let before_foreign = fx.pool_state();
    let err = named(zfsd.rollback(&s2, true, false).await);
    assert!(
        matches!(&err, ZfsError::NotManaged(m) if m.contains(&foreign)),
        "{err:?}"
    );
    assert_eq!(fx.pool_state(), before_foreign);
    horace_tests::zfs(&["destroy", &foreign]);
    assert_eq!(fx.pool_state(), before);
}

#[tokio::test]
async fn wrong_types_and_huge_arrays() {
    let fx = Fixture::new();
    let zfsd = fx.proxy().await;
    let mine = zfsd.create_snapshot(&fx.root, "hourly").await.unwrap();
    let before = fx.pool_state();
    // 1001 names (valid ones) are refused before anything runs.
    let many: Vec<String> = (0..1001)
        .map(|i| format!("{}@horace_n{i}", fx.root))
        .collect();
    let refs: Vec<&str> = many
        .iter()
        .map(String::as_str)
        .chain([mine.as_str()])
        .collect();
    let err = named(zfsd.destroy_snapshots(&fx.root, &refs, false).await);
    assert!(
        matches!(&err, ZfsError::InvalidName(m) if m.contains("at most 1000")),
        "{err:?}"
    );

    // Wrong argument types, through busctl.
    for args in [
        vec!["ListSnapshots", "u", "5"],
        vec!["CreateSnapshot", "s", "x"],
        vec!["DestroySnapshots", "sss", "a", "b", "c"],
        vec!["Rollback", "sbs", "a", "true", "x"],
        vec!["RollbackSerial", "u", "5"],
    ] {
        let mut full = vec![
            "call",
            "org.horace.Zfs1",
            "/org/horace/Zfs1",
            "org.horace.Zfs1",
        ];
        full.extend(args.iter().copied());
        let out = fx.bus.busctl(&full);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Signature mismatch"), "{args:?}: {stderr}");
    }
    let conn = fx.connection().await;
    let r = conn
        .call_method(
            Some("org.horace.Zfs1"),
            "/org/horace/Zfs1",
            Some("org.horace.Zfs1"),
            "ListSnapshots",
            &(5u32,),
        )
        .await;
    // zbus answers a body that does not match the method's signature itself, before the
    // method runs: since zbus 6 with the standard org.freedesktop.DBus.Error.InvalidArgs.
    match r {
        Err(zbus::Error::FDO(e)) if matches!(*e, zbus::fdo::Error::InvalidArgs(ref msg) if msg.contains("Signature mismatch")) =>
            {}
        other => panic!("expected a signature error: {other:?}"),
    }
    assert_eq!(fx.pool_state(), before);
    assert_eq!(fx.snapshots(), [mine]);
}
