//! The life of files under a running watcher, step by step, on a temp directory and on a
//! zfs-fuse dataset; after each step the catalog equals the disk.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use horace_tests::{atomic_write, run_ok, ZfsPool};

use crate::util::{catalog_equals_disk, event_kinds, file_row, Watcher};

fn step(w: &mut Watcher, what: &str) {
    w.barrier();
    eprintln!("step: {what}");
    catalog_equals_disk(&w.files, &w.meta);
}

/// Runs every step on `files` (empty), with `outside` a directory on the same filesystem.
fn lifecycle(files: &Path, meta: &Path, outside: &Path) {
    let mut w = Watcher::start(files, meta);
    step(&mut w, "empty");

    fs::create_dir(files.join("svc")).unwrap();
    // Watched before the write: an in-place write into a directory the watcher is still
    // listing can be read between its open and its write (an empty version first).
    step(&mut w, "mkdir");
    fs::write(files.join("svc/a.txt"), "one").unwrap();
    step(&mut w, "create");
    let (id, status, v) = file_row(meta, "svc/a.txt").unwrap();
    assert_eq!((status.as_str(), v), ("active", 1));

    atomic_write(&files.join("svc/a.txt"), b"two");
    step(&mut w, "atomic save");
    assert_eq!(
        file_row(meta, "svc/a.txt").unwrap(),
        (id, "active".into(), 2)
    );

    fs::write(files.join("svc/a.txt"), "three").unwrap();
    step(&mut w, "overwrite");
    fs::write(files.join("svc/a.txt"), "three").unwrap();
    step(&mut w, "same content again");
    assert_eq!(
        file_row(meta, "svc/a.txt").unwrap(),
        (id, "active".into(), 3),
        "unchanged content makes no version"
    );

    fs::rename(files.join("svc/a.txt"), files.join("svc/b.txt")).unwrap();
    step(&mut w, "rename file");
    assert_eq!(
        file_row(meta, "svc/b.txt").unwrap(),
        (id, "active".into(), 3),
        "rename keeps id and history"
    );
    assert!(file_row(meta, "svc/a.txt").is_none());

    fs::create_dir_all(files.join("n/b/c")).unwrap();
    fs::write(files.join("n/b/c/f"), "x").unwrap();
    step(&mut w, "nested mkdir + write");
    assert!(file_row(meta, "n/b/c/f").is_some());

    let src = outside.join("tree");
    fs::create_dir_all(src.join("d1/d2")).unwrap();
    for i in 0..20 {
        fs::write(src.join(format!("d1/d2/f{i}")), format!("{i}")).unwrap();
    }
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(&src)
            .arg(files.join("copied")),
    );
    step(&mut w, "cp -r");
    assert!(file_row(meta, "copied/d1/d2/f19").is_some());

    fs::create_dir_all(files.join("sp ace")).unwrap();
    fs::write(files.join("sp ace/na me.txt"), "s").unwrap();
    fs::write(files.join("new\nline"), "n").unwrap();
    fs::write(files.join(OsStr::from_bytes(b"bad\xffname")), "b").unwrap();
    fs::write(files.join("back\\slash%_"), "b").unwrap();
    step(&mut w, "odd names");
    assert!(file_row(meta, "bad\\xffname").is_some());
    assert!(file_row(meta, "back\\\\slash%_").is_some());

    std::os::unix::fs::symlink("svc/b.txt", files.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc", files.join("etc-link")).unwrap();
    step(&mut w, "symlinks");
    assert!(file_row(meta, "link").is_none() && file_row(meta, "etc-link/passwd").is_none());

    for n in ["x.tmp", "y~", ".#z", "w.swp", ".horace-q"] {
        fs::write(files.join("svc").join(n), "ignored").unwrap();
    }
    step(&mut w, "ignored names");
    assert!(file_row(meta, "svc/x.tmp").is_none());

    fs::remove_file(files.join("svc/b.txt")).unwrap();
    step(&mut w, "delete");
    assert_eq!(file_row(meta, "svc/b.txt").unwrap().1, "deleted");

    fs::write(files.join("svc/b.txt"), "back").unwrap();
    step(&mut w, "re-create at deleted path");
    assert_eq!(
        file_row(meta, "svc/b.txt").unwrap(),
        (id, "active".into(), 4)
    );
    assert_eq!(
        event_kinds(meta, id),
        [
            "created",
            "modified",
            "modified",
            "renamed",
            "deleted",
            "undeleted"
        ]
    );

    fs::rename(files.join("svc/b.txt"), outside.join("b.txt")).unwrap();
    step(&mut w, "move out of the tree");
    assert_eq!(file_row(meta, "svc/b.txt").unwrap().1, "deleted");

    fs::rename(files.join("copied"), outside.join("copied-out")).unwrap();
    step(&mut w, "move a directory out of the tree");
    assert_eq!(file_row(meta, "copied/d1/d2/f0").unwrap().1, "deleted");
    fs::write(outside.join("copied-out/d1/d2/f0"), "changed outside").unwrap();
    step(&mut w, "changes outside are not seen");

    fs::remove_dir_all(files.join("n")).unwrap();
    step(&mut w, "rm -rf subtree");
    assert_eq!(file_row(meta, "n/b/c/f").unwrap().1, "deleted");

    fs::rename(outside.join("copied-out"), files.join("back-in")).unwrap();
    step(&mut w, "move a directory into the tree");
    assert!(file_row(meta, "back-in/d1/d2/f0").is_some());
    w.stop();
}

#[test]
fn lifecycle_on_a_temp_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (files, meta, outside) = (
        dir.path().join("files"),
        dir.path().join("meta"),
        dir.path().join("outside"),
    );
    fs::create_dir_all(&files).unwrap();
    fs::create_dir_all(&outside).unwrap();
    lifecycle(&files, &meta, &outside);
}

#[test]
fn lifecycle_on_zfs_fuse() {
    horace_tests::require_root("the zfs-fuse test");
    let pool = ZfsPool::new(256);
    // files and outside on one dataset, so moving out of the tree is a rename.
    let (_, mnt) = pool.create_dataset("data");
    let (files, outside) = (mnt.join("files"), mnt.join("outside"));
    fs::create_dir_all(&files).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let meta = pool.scratch().join("meta");
    lifecycle(&files, &meta, &outside);
}
