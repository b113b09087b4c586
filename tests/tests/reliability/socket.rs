//! Query socket permissions for other uids (what `horace-client/tests/it/rights.rs` does not
//! cover): the socket file is `0666` as `query::bind_unix` intends (rights come from
//! SO_PEERCRED, not from the file mode), the directory the watcher creates for it is not
//! writable by other uids, so `nobody` can neither remove nor replace the socket; and a
//! `nobody` peer reads through the `horace` CLI but is refused writes.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Output;

use horace_tests::{bin_path, command_as, NOBODY};

use crate::fixture::Watcher;

fn run_as_nobody(program: &str, args: &[&std::ffi::OsStr]) -> Output {
    command_as(NOBODY.0, NOBODY.1, &[], program)
        .args(args)
        .output()
        .expect("run as nobody")
}

fn cli_as_nobody(w: &Watcher, args: &[&str]) -> Output {
    command_as(NOBODY.0, NOBODY.1, &[], bin_path("horace"))
        .arg("--socket")
        .arg(&w.socket)
        .args(args)
        .output()
        .expect("run horace as nobody")
}

#[test]
fn socket_mode_and_directory_keep_other_uids_to_reads() {
    horace_tests::require_root("setpriv");
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("svc")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    fs::write(files.join("svc/a.txt"), b"one").unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    // A socket in a directory that does not exist yet: the watcher creates it.
    let sock = dir.path().join("run/horace/query.sock");
    let text = fs::read_to_string(&w.config).unwrap();
    let text = text.replace(
        &format!("socket = {:?}", w.socket),
        &format!("socket = {sock:?}"),
    );
    fs::write(&w.config, text).unwrap();
    w.socket = sock.clone();
    w.start();

    let md = fs::symlink_metadata(&sock).unwrap();
    let mode = md.permissions().mode() & 0o7777;
    assert_eq!(mode, 0o666, "socket mode {mode:o}");
    // Neither the socket's directory nor its parent may let another uid replace it.
    for d in [
        sock.parent().unwrap(),
        sock.parent().unwrap().parent().unwrap(),
    ] {
        let m = fs::metadata(d).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        assert_eq!(
            mode & 0o022,
            0,
            "{} is {mode:o}: other uids could swap the socket",
            d.display()
        );
        assert_eq!(m.uid(), 0, "{} owned by uid {}", d.display(), m.uid());
    }
    // nobody may not remove, rename over or symlink over the socket.
    let decoy = dir.path().join("decoy.sock");
    let attempts: [(&str, Vec<&std::ffi::OsStr>); 3] = [
        ("rm", vec!["-f".as_ref(), sock.as_os_str()]),
        (
            "ln",
            vec!["-sf".as_ref(), decoy.as_os_str(), sock.as_os_str()],
        ),
        (
            "mv",
            vec!["-f".as_ref(), sock.as_os_str(), decoy.as_os_str()],
        ),
    ];
    for (program, args) in &attempts {
        let out = run_as_nobody(program, args);
        assert!(!out.status.success(), "nobody could {program} the socket");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        fs::symlink_metadata(&sock).unwrap().ino(),
        md.ino(),
        "socket replaced"
    );

    // Reads work for nobody; every write is refused with PermissionDenied (exit 4).
    for args in [&["status"][..], &["search"], &["info", "svc/a.txt"]] {
        let out = cli_as_nobody(&w, args);
        assert!(
            out.status.success(),
            "nobody {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for args in [
        &["tag", "svc/a.txt", "--add", "x"][..],
        &["restore", "svc/a.txt", "1"],
        &["register", "svc/a.txt"],
    ] {
        let out = cli_as_nobody(&w, args);
        assert_eq!(out.status.code(), Some(4), "nobody {args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains("permission denied"), "{args:?}: {err}");
    }
    w.assert_consistent("after the refused writes");
    eprintln!("socket {mode:o}, dirs not group/other-writable; 3 replace attempts and 3 writes refused, 3 reads served");
    w.stop();
}
