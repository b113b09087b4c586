//! The served interface (busctl introspect, the packaged XML) and both authorization
//! layers: the bus policy and the daemon's uid check.

use std::path::PathBuf;

use horace_tests::NOBODY;
use horace_zfsd::api::{ZfsError, BUS_NAME, INTERFACE, OBJECT_PATH};

use crate::util::{named, Fixture, Options};

fn packaged_xml() -> PathBuf {
    horace_tests::workspace_root().join("packaging/dbus/org.horace.Zfs1.xml")
}

/// The `<interface name="org.horace.Zfs1">` element, whitespace collapsed.
fn interface_element(xml: &str) -> String {
    let start = xml
        .find(&format!("<interface name=\"{INTERFACE}\">"))
        .expect("interface element");
    let end = start + xml[start..].find("</interface>").expect("end of interface") + 12;
    let collapsed: Vec<&str> = xml[start..end].split_whitespace().collect();
    collapsed.join(" ").replace("> <", "><")
}

#[tokio::test]
async fn busctl_introspect_shows_the_whole_interface_and_matches_the_packaged_xml() {
    let fx = Fixture::new();
    // As nobody: introspection and properties are open to anyone.
    let out = fx.bus.busctl_as(
        NOBODY.0,
        NOBODY.1,
        &[],
        &["introspect", BUS_NAME, OBJECT_PATH],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (member, kind, sig) in [
        (".CreateSnapshot", "method", "ss"),
        (".DestroySnapshots", "method", "sasb"),
        (".ListSnapshots", "method", "s"),
        (".Rollback", "method", "sbb"),
        (".RollbackSerial", "method", "s"),
        (".Root", "property", "s"),
        (".Version", "property", "s"),
        (".RolledBack", "signal", "s"),
        (".SnapshotCreated", "signal", "s"),
        (".SnapshotsDestroyed", "signal", "as"),
    ] {
        let line = text.lines().find(|l| l.starts_with(&format!("{member} ")));
        let line = line.unwrap_or_else(|| panic!("{member} missing from:\n{text}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((cols[1], cols[2]), (kind, sig), "{line}");
    }
    let returns = |m: &str| {
        text.lines()
            .find(|l| l.starts_with(m))
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_string()
    };
    assert_eq!(returns(".ListSnapshots "), "a(stt)");
    assert_eq!(returns(".DestroySnapshots "), "as");
    assert_eq!(returns(".Rollback "), "as");
    assert_eq!(returns(".RollbackSerial "), "t");
    assert_eq!(returns(".CreateSnapshot "), "s");
    println!("{text}");

    let conn = fx.connection().await;
    let served = zbus::fdo::IntrospectableProxy::builder(&conn)
        .destination(BUS_NAME)
        .path(OBJECT_PATH)
        .build()
        .await
        .unwrap()
        .introspect()
        .await
        .unwrap();
    let path = packaged_xml();
    if std::env::var_os("HORACE_BLESS_XML").is_some() {
        let element = &served[served
            .find("  <interface name=\"org.horace.Zfs1\">")
            .unwrap()..];
        let element = &element[..element.find("</interface>").unwrap() + 12];
        let doc = format!(
            "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
             \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n\
             <!-- Generated from what horace-zfsd serves (HORACE_BLESS_XML=1 cargo test -p \
             horace-zfsd busctl_introspect); a test fails when they differ. -->\n\
             <node>\n{element}\n</node>\n"
        );
        std::fs::write(&path, doc).unwrap();
    }
    let packaged = std::fs::read_to_string(&path).expect("packaging/dbus/org.horace.Zfs1.xml");
    assert_eq!(
        interface_element(&packaged),
        interface_element(&served),
        "the packaged XML drifted from the daemon: regenerate with HORACE_BLESS_XML=1"
    );
    // Properties are readable by anyone.
    let out = fx.bus.busctl_as(
        NOBODY.0,
        NOBODY.1,
        &[],
        &["get-property", BUS_NAME, OBJECT_PATH, INTERFACE, "Root"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("s \"{}\"", fx.root)
    );
}

fn call_list_as(fx: &Fixture, uid: u32, gid: u32, groups: &[u32]) -> std::process::Output {
    fx.bus.busctl_as(
        uid,
        gid,
        groups,
        &[
            "call",
            BUS_NAME,
            OBJECT_PATH,
            INTERFACE,
            "ListSnapshots",
            "s",
            &fx.root,
        ],
    )
}

fn call_create_as(fx: &Fixture, uid: u32, gid: u32) -> std::process::Output {
    fx.bus.busctl_as(
        uid,
        gid,
        &[],
        &[
            "call",
            BUS_NAME,
            OBJECT_PATH,
            INTERFACE,
            "CreateSnapshot",
            "ss",
            &fx.root,
            "hourly",
        ],
    )
}

fn call_serial_as(fx: &Fixture, uid: u32, gid: u32) -> std::process::Output {
    fx.bus.busctl_as(
        uid,
        gid,
        &[],
        &[
            "call",
            BUS_NAME,
            OBJECT_PATH,
            INTERFACE,
            "RollbackSerial",
            "s",
            &fx.root,
        ],
    )
}

#[tokio::test]
async fn bus_policy_refuses_other_uids_and_lets_group_horace_through() {
    let fx = Fixture::new();
    let (huid, hgid) = horace_tests::ensure_horace_user();
    let before = fx.pool_state();
    for out in [
        call_list_as(&fx, NOBODY.0, NOBODY.1, &[]),
        call_create_as(&fx, NOBODY.0, NOBODY.1),
        call_serial_as(&fx, NOBODY.0, NOBODY.1),
    ] {
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("ccess denied") || stderr.contains("AccessDenied"),
            "{stderr}"
        );
    }
    // nobody may not take the name either.
    let out = fx.bus.busctl_as(
        NOBODY.0,
        NOBODY.1,
        &[],
        &[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            "su",
            BUS_NAME,
            "4",
        ],
    );
    assert!(!out.status.success(), "nobody owned the name");
    assert_eq!(fx.pool_state(), before);
    // A member of group horace passes both layers (allow_groups = ["horace"]).
    let out = call_create_as(&fx, huid, hgid);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fx.snapshots().len(), 1);
    let out = call_serial_as(&fx, huid, hgid);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "t 0",
        "{out:?}"
    );
    let out = call_list_as(&fx, huid, hgid, &[hgid]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("a(stt) 1 "),
        "{out:?}"
    );
}

#[tokio::test]
async fn uid_check_refuses_callers_the_policy_lets_through() {
    // The policy lets root and group horace call; this daemon allows neither.
    let (_, hgid) = horace_tests::ensure_horace_user();
    let fx = Fixture::with(Options {
        allow_uids: "[12345]".into(),
        allow_groups: format!("[{}]", hgid + 100_000),
        ..Options::default()
    });
    let (huid, hgid) = horace_tests::ensure_horace_user();
    let before = fx.pool_state();
    let out = call_create_as(&fx, huid, hgid);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("uid {huid} may not call CreateSnapshot")),
        "{stderr}"
    );
    // Root is not special either.
    let zfsd = fx.proxy().await;
    let err = named(zfsd.create_snapshot(&fx.root, "hourly").await);
    assert!(
        matches!(&err, ZfsError::PermissionDenied(m) if m.contains("uid 0")),
        "{err:?}"
    );
    let err = named(zfsd.list_snapshots(&fx.root).await);
    assert!(matches!(err, ZfsError::PermissionDenied(_)), "{err:?}");
    let err = named(zfsd.rollback_serial(&fx.root).await);
    assert!(
        matches!(&err, ZfsError::PermissionDenied(m) if m.contains("RollbackSerial")),
        "{err:?}"
    );
    assert_eq!(fx.pool_state(), before);
}
