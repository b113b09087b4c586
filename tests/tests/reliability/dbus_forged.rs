//! D-Bus calls with a forged sender. A client speaks raw D-Bus to the private bus (the
//! project's policy) from a thread that has dropped to another uid, and sends
//! `ListSnapshots` to `org.horace.Zfs1` with its SENDER header field set to zfsd's own
//! unique name (a root connection, and root is the only allowed uid). dbus-daemon
//! overwrites the field with the real sender, so zfsd judges the real caller: a member of
//! group horace (through the policy) gets `org.horace.Zfs1.Error.PermissionDenied` naming
//! its own uid, `nobody` gets the bus's AccessDenied; root itself is let through. A call
//! with no SENDER field gets one from dbus-daemon too (the same refusal); a call that
//! really has none cannot reach zfsd (see docs/reliability.md).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use horace_tests::{DbusDaemon, NOBODY};

use crate::fixture::spawn_zfsd;

/// Appends `s` as a D-Bus string (`s`/`o`) at 4-byte alignment.
fn put_str(b: &mut Vec<u8>, s: &str) {
    pad(b, 4);
    b.extend_from_slice(&(s.len() as u32).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
    b.push(0);
}

fn pad(b: &mut Vec<u8>, to: usize) {
    while !b.len().is_multiple_of(to) {
        b.push(0);
    }
}

/// A little-endian METHOD_CALL with the given header fields and a body of strings.
fn method_call(serial: u32, fields: &[(u8, char, &str)], body: &[&str]) -> Vec<u8> {
    let mut f = Vec::new();
    for &(code, sig, value) in fields {
        pad(&mut f, 8);
        f.push(code);
        f.extend_from_slice(&[1, sig as u8, 0]);
        if sig == 'g' {
            f.push(value.len() as u8);
            f.extend_from_slice(value.as_bytes());
            f.push(0);
        } else {
            put_str(&mut f, value);
        }
    }
    let mut payload = Vec::new();
    for s in body {
        put_str(&mut payload, s);
    }
    let mut m = vec![b'l', 1, 0, 1];
    m.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    m.extend_from_slice(&serial.to_le_bytes());
    m.extend_from_slice(&(f.len() as u32).to_le_bytes());
    m.extend_from_slice(&f);
    pad(&mut m, 8);
    m.extend_from_slice(&payload);
    m
}

/// Reads one whole message; returns (type, raw bytes).
fn read_message(s: &mut UnixStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 16];
    s.read_exact(&mut head).expect("message header");
    assert_eq!(head[0], b'l', "bus answers little-endian");
    let body = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
    let fields = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;
    let rest = fields.div_ceil(8) * 8 + body;
    let mut all = head.to_vec();
    all.resize(16 + rest, 0);
    s.read_exact(&mut all[16..]).expect("message rest");
    (head[1], all)
}

/// Reads until the next METHOD_RETURN (2) or ERROR (3), skipping signals.
fn read_reply(s: &mut UnixStream) -> (u8, String) {
    loop {
        let (kind, raw) = read_message(s);
        if kind == 2 || kind == 3 {
            return (kind, String::from_utf8_lossy(&raw).into_owned());
        }
    }
}

/// From a thread running as `uid`:`gid` (only this thread's credentials change): connects,
/// authenticates, says Hello, and calls ListSnapshots with SENDER = `forged`.
fn forged_call(bus_path: &str, uid: u32, gid: u32, forged: &str, dataset: &str) -> (u8, String) {
    let (path, forged, dataset) = (
        bus_path.to_string(),
        forged.to_string(),
        dataset.to_string(),
    );
    std::thread::spawn(move || {
        // Raw syscalls change the calling thread only (glibc's wrappers change them all).
        let groups = [gid];
        // SAFETY: plain syscalls on this thread's credentials; `groups` outlives the call.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setgroups, 1, groups.as_ptr()), 0);
            assert_eq!(libc::syscall(libc::SYS_setresgid, gid, gid, gid), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
        }
        let mut s = UnixStream::connect(&path).expect("connect to the bus");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let hex: String = uid
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .unwrap();
        let mut line = [0u8; 256];
        let n = s.read(&mut line).unwrap();
        let answer = String::from_utf8_lossy(&line[..n]).into_owned();
        assert!(answer.starts_with("OK "), "auth: {answer}");
        s.write_all(b"BEGIN\r\n").unwrap();
        let bus = [
            (1, 'o', "/org/freedesktop/DBus"),
            (2, 's', "org.freedesktop.DBus"),
            (3, 's', "Hello"),
            (6, 's', "org.freedesktop.DBus"),
        ];
        s.write_all(&method_call(1, &bus, &[])).unwrap();
        let (kind, hello) = read_reply(&mut s);
        assert_eq!(kind, 2, "Hello: {hello}");
        let call = [
            (1, 'o', "/org/horace/Zfs1"),
            (2, 's', "org.horace.Zfs1"),
            (3, 's', "ListSnapshots"),
            (6, 's', "org.horace.Zfs1"),
            (7, 's', forged.as_str()),
            (8, 'g', "s"),
        ];
        // An empty `forged` leaves the SENDER field out (an absent sender).
        let call: Vec<_> = call
            .into_iter()
            .filter(|f| f.0 != 7 || !f.2.is_empty())
            .collect();
        s.write_all(&method_call(2, &call, &[dataset.as_str()]))
            .unwrap();
        read_reply(&mut s)
    })
    .join()
    .expect("forging thread")
}

#[test]
fn a_forged_sender_is_judged_by_the_real_caller() {
    horace_tests::require_root("changing a thread's uid");
    let (huid, hgid) = horace_tests::ensure_horace_user();
    let bus = DbusDaemon::new();
    let bus_path = bus.address.strip_prefix("unix:path=").unwrap().to_string();
    let root = "hrtnopool/files";
    let (_zfsd, _dir) = spawn_zfsd(&bus, root, &[0]);
    // zfsd's own unique name: a root connection, the one uid allowed.
    let out = bus.busctl(&[
        "call",
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "GetNameOwner",
        "s",
        "org.horace.Zfs1",
    ]);
    let owner = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("s ")
        .trim_matches('"')
        .to_string();
    assert!(owner.starts_with(":1."), "GetNameOwner: {out:?}");

    // Control: root itself, unforged, gets past the uid check (zfs then fails on the
    // missing dataset, never with PermissionDenied).
    let (kind, reply) = forged_call(&bus_path, 0, 0, &owner, root);
    assert!(!reply.contains("may not call"), "root refused: {reply}");
    eprintln!("root (sender field = {owner}): type {kind}");

    // group horace passes the bus policy; the forged root sender does not help.
    let (kind, reply) = forged_call(&bus_path, huid, hgid, &owner, root);
    assert_eq!(
        kind, 3,
        "uid {huid} with a forged sender got an answer: {reply}"
    );
    assert!(
        reply.contains("org.horace.Zfs1.Error.PermissionDenied")
            && reply.contains(&format!("uid {huid} may not call ListSnapshots")),
        "{reply}"
    );
    // No SENDER field at all: dbus-daemon fills in the real one, the same refusal.
    let (kind, reply) = forged_call(&bus_path, huid, hgid, "", root);
    assert_eq!(
        kind, 3,
        "uid {huid} without a sender got an answer: {reply}"
    );
    assert!(
        reply.contains(&format!("uid {huid} may not call ListSnapshots")),
        "{reply}"
    );
    // nobody is stopped by the bus policy, forged sender or not.
    let (kind, reply) = forged_call(&bus_path, NOBODY.0, NOBODY.1, &owner, root);
    assert_eq!(
        kind, 3,
        "nobody with a forged sender got an answer: {reply}"
    );
    assert!(reply.contains("AccessDenied"), "{reply}");
    // zfsd still serves.
    let out = bus.busctl(&[
        "get-property",
        "org.horace.Zfs1",
        "/org/horace/Zfs1",
        "org.horace.Zfs1",
        "Version",
    ]);
    assert!(out.status.success(), "zfsd stopped serving: {out:?}");
    eprintln!("forged sender {owner}: uid {huid} PermissionDenied (also with no sender field), nobody AccessDenied");
}
