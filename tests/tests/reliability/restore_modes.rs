//! Issue 12 item 2 (the rest): what a restore leaves on disk. A name that holds a
//! symlink, or nothing, gets the permission bits the version had when it was cataloged
//! (never world-writable), not 0644 and never the link's 0777; the file gets the group of
//! the file it replaces or, with none, of its directory (the watcher here runs as root,
//! so it can give any group; an unprivileged watcher gives only groups it is a member
//! of). A restore into a full files dataset is `RestoreFailed { kind: NoSpace }`, exit 6,
//! with the old file untouched and no temp file left.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use horace_client::{ClientError, FileRef, QueryError, RestoreFailure};
use horace_tests::bin_path;

use crate::fixture::{Mounted, Watcher};

/// A group that is neither root's nor the watcher's: the directory gives it.
const DIR_GID: u32 = 65534;

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_restore_over_a_link_or_nothing_gets_the_versions_mode_and_the_directorys_group() {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("a")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    std::os::unix::fs::chown(files.join("a"), None, Some(DIR_GID)).unwrap();
    let (private, shared) = (files.join("a/private.txt"), files.join("a/shared.txt"));
    fs::write(&private, b"one").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(&shared, b"one").unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o666)).unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(w.client());
    // private.txt: a second version, then a symlink at its name; shared.txt: deleted.
    fs::write(&private, b"two").unwrap();
    rt.block_on(client.sync()).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    fs::write(&elsewhere, b"not the tenant's").unwrap();
    fs::remove_file(&private).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &private).unwrap();
    fs::remove_file(&shared).unwrap();
    rt.block_on(client.sync()).unwrap();

    for (path, want) in [("a/private.txt", 0o640), ("a/shared.txt", 0o664)] {
        let got = rt.block_on(client.restore_version(FileRef::Path(path.into()), 1));
        assert!(got.is_ok(), "{path}: {got:?}\n{}", w.log());
        let p = files.join(path);
        let md = fs::symlink_metadata(&p).unwrap();
        eprintln!(
            "restored {path}: mode {:o} (the version's {want:o}), gid {} (the directory's {DIR_GID})",
            mode_of(&p),
            md.gid()
        );
        assert!(md.is_file(), "{path} is not a regular file");
        assert_eq!(mode_of(&p), want, "{path}: mode");
        assert_eq!(md.gid(), DIR_GID, "{path}: group");
        assert_eq!(fs::read(&p).unwrap(), b"one");
    }
    assert_eq!(fs::read(&elsewhere).unwrap(), b"not the tenant's");

    // A regular file at the name keeps its own bits and group.
    fs::set_permissions(&private, fs::Permissions::from_mode(0o660)).unwrap();
    std::os::unix::fs::chown(&private, None, Some(100)).unwrap();
    rt.block_on(client.sync()).unwrap();
    let got = rt.block_on(client.restore_version(FileRef::Path("a/private.txt".into()), 2));
    assert!(got.is_ok(), "{got:?}");
    assert_eq!(fs::read(&private).unwrap(), b"two");
    assert_eq!(mode_of(&private), 0o660);
    assert_eq!(fs::metadata(&private).unwrap().gid(), 100);

    // The catalog recorded each version's bits.
    let conn = w.catalog();
    let recorded: u32 = conn
        .query_row(
            "SELECT v.mode FROM versions v JOIN files f ON f.id = v.file_id \
             WHERE f.path = 'a/shared.txt' AND v.version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recorded, 0o666);
    // A save read at its close (pinned at the event) records its bits too.
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o604)
            .open(files.join("a/saved.txt"))
            .unwrap();
        f.write_all(b"saved").unwrap();
    }
    rt.block_on(client.sync()).unwrap();
    let recorded: Option<u32> = conn
        .query_row(
            "SELECT v.mode FROM versions v JOIN files f ON f.id = v.file_id \
             WHERE f.path = 'a/saved.txt' AND v.version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recorded, Some(0o604), "{}", w.log());
    w.stop();
}

#[test]
fn a_restore_into_a_full_dataset_is_no_space_and_leaves_the_file() {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(&files).unwrap();
    fs::create_dir_all(&meta).unwrap();
    let _mounted = Mounted::tmpfs(&files, "4m");
    fs::create_dir_all(files.join("a")).unwrap();
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(files.join("a/big.bin"), &big).unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(w.client());
    fs::write(files.join("a/big.bin"), b"small now").unwrap();
    // The dataset filled by another tenant (ignored name: not cataloged meanwhile).
    {
        use std::io::Write;
        let mut filler = fs::File::create(files.join("filler.tmp")).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        while filler.write_all(&chunk).is_ok() {}
        let _ = filler.sync_all();
    }
    rt.block_on(client.sync()).unwrap();
    let got = rt.block_on(client.restore_version(FileRef::Path("a/big.bin".into()), 1));
    match got {
        Err(ClientError::Query(QueryError::RestoreFailed { kind, .. })) => {
            assert_eq!(kind, RestoreFailure::NoSpace, "{}", w.log())
        }
        other => panic!("restore into a full dataset: {other:?}\n{}", w.log()),
    }
    let out = std::process::Command::new(bin_path("horace"))
        .arg("--socket")
        .arg(&w.socket)
        .args(["restore", "a/big.bin", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "restore into a full dataset: exit {:?}: {stderr}",
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert_eq!(fs::read(files.join("a/big.bin")).unwrap(), b"small now");
    let left: Vec<_> = fs::read_dir(files.join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["big.bin"], "a temp file was left behind");
    w.stop();
}
