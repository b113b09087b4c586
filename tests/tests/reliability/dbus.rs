//! Every D-Bus method of horace-zfsd called by uids it does not allow, on a private bus
//! with the project's policy: `nobody` is stopped by the bus policy (AccessDenied); a
//! member of group horace passes the policy but not this daemon's allow list
//! (`org.horace.Zfs1.Error.PermissionDenied`, naming the uid and the method). Refusals
//! come before any `zfs` call (the configured root does not even exist), and the daemon
//! keeps serving after each.

use horace_tests::{DbusDaemon, NOBODY};

use crate::fixture::spawn_zfsd;

/// busctl arguments of each method, with plausible arguments.
fn calls(root: &str) -> Vec<Vec<String>> {
    let snap = format!("{root}@horace_2026-01-01T00:00:00Z_hourly");
    [
        vec!["ListSnapshots", "s", root],
        vec!["CreateSnapshot", "ss", root, "hourly"],
        vec!["DestroySnapshots", "sasb", root, "1", &snap, "false"],
        vec!["Rollback", "sbb", &snap, "true", "false"],
        vec!["RollbackSerial", "s", root],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_string).collect())
    .collect()
}

fn call_as(
    bus: &DbusDaemon,
    uid: u32,
    gid: u32,
    groups: &[u32],
    args: &[String],
) -> std::process::Output {
    let mut full: Vec<&str> = vec![
        "call",
        "org.horace.Zfs1",
        "/org/horace/Zfs1",
        "org.horace.Zfs1",
    ];
    full.extend(args.iter().map(String::as_str));
    bus.busctl_as(uid, gid, groups, &full)
}

/// The daemon still answers (a property read as root).
fn still_serving(bus: &DbusDaemon) {
    let out = bus.busctl(&[
        "get-property",
        "org.horace.Zfs1",
        "/org/horace/Zfs1",
        "org.horace.Zfs1",
        "Version",
    ]);
    assert!(out.status.success(), "zfsd stopped serving: {out:?}");
}

#[test]
fn every_method_refuses_disallowed_uids_and_keeps_serving() {
    horace_tests::require_root("setpriv");
    let (huid, hgid) = horace_tests::ensure_horace_user();
    let bus = DbusDaemon::new();
    let root = "hrtnopool/files";
    let (_zfsd, _dir) = spawn_zfsd(&bus, root, &[12345]);
    let mut refusals = 0;
    for args in calls(root) {
        let method = args[0].clone();
        // nobody: the bus policy refuses before zfsd sees the call.
        let out = call_as(&bus, NOBODY.0, NOBODY.1, &[], &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "nobody called {method}");
        assert!(
            err.contains("ccess denied") || err.contains("AccessDenied"),
            "{method}: {err}"
        );
        still_serving(&bus);
        // group horace: the policy lets it through, the per-call uid check refuses.
        let out = call_as(&bus, huid, hgid, &[hgid], &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "uid {huid} called {method}");
        assert!(
            err.contains(&format!("uid {huid} may not call {method}")),
            "{method}: {err}"
        );
        still_serving(&bus);
        refusals += 2;
    }
    // A huge array from a refused caller is refused the same way (no work done first).
    let many: Vec<String> = (0..5000).map(|i| format!("{root}@horace_n{i}")).collect();
    let mut args = vec![
        "DestroySnapshots".to_string(),
        "sasb".into(),
        root.into(),
        many.len().to_string(),
    ];
    args.extend(many);
    args.push("false".into());
    let out = call_as(&bus, huid, hgid, &[hgid], &args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("may not call") || err.contains("at most"),
        "{err}"
    );
    still_serving(&bus);
    eprintln!(
        "D-Bus: {} refusals over 5 methods and 2 uids, daemon kept serving",
        refusals + 1
    );
}
