//! Unit tests of the start-up guard on real temp directories (one filesystem: a different
//! one is simulated by editing the recorded identity; the zfs-fuse cases are in
//! tests/tests/reliability/mounts.rs).

use super::*;

struct Dirs {
    _top: tempfile::TempDir,
    config: Config,
}

fn dirs() -> Dirs {
    let top = tempfile::tempdir().unwrap();
    let (files, meta) = (top.path().join("files"), top.path().join("meta"));
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a.txt"), b"a").unwrap();
    let config = Config::for_dirs(files, meta);
    Dirs { _top: top, config }
}

fn refusal<T>(r: Result<T, Attempt>) -> Refusal {
    match r {
        Err(Attempt::Refused(r)) => r,
        Err(Attempt::Fatal(e)) => panic!("fatal: {e:#}"),
        Ok(_) => panic!("accepted"),
    }
}

fn accepted<T>(r: Result<T, Attempt>) -> T {
    match r {
        Ok(v) => v,
        Err(Attempt::Refused(r)) => panic!("refused: {} {r}", r.name()),
        Err(Attempt::Fatal(e)) => panic!("fatal: {e:#}"),
    }
}

fn add_active_file(conn: &Connection) {
    conn.execute(
        "INSERT INTO files(path, owner, created_ns, updated_ns) VALUES ('x/1', 'x', 1, 1)",
        [],
    )
    .unwrap();
}

#[test]
fn markers_parse_only_when_well_formed() {
    assert_eq!(parse_marker(&marker_text("00ff")).as_deref(), Some("00ff"));
    for bad in ["", "horace-catalog \n", "horace-catalog zz\n", "other 00\n"] {
        assert_eq!(parse_marker(bad), None, "{bad:?}");
    }
    assert_eq!(
        parse_marker(&format!("horace-catalog {}\n", "a".repeat(65))),
        None
    );
}

#[test]
fn a_first_start_records_the_filesystem_and_leaves_a_marker() {
    let d = dirs();
    let conn = accepted(open_metadata(&d.config));
    accepted(check_files_root(&d.config, &conn));
    let id = meta_get(&conn, CATALOG_ID).unwrap().expect("catalog id");
    assert_eq!(read_marker(&d.config.files_root), Some(id.clone()));
    let get = |k: &str| meta_get(&conn, k).ok().flatten();
    let rec = FsIdentity::from_meta(FILES_ROOT, get).expect("identity recorded");
    assert_eq!(
        rec.differs(&FsIdentity::of(&d.config.files_root).unwrap()),
        None
    );
    // The next start takes the same root and keeps the id.
    accepted(check_files_root(&d.config, &conn));
    assert_eq!(meta_get(&conn, CATALOG_ID).unwrap(), Some(id));
}

#[test]
fn another_filesystem_is_refused_until_accepted() {
    let mut d = dirs();
    let conn = accepted(open_metadata(&d.config));
    accepted(check_files_root(&d.config, &conn));
    conn.execute(
        "UPDATE meta SET value = '/elsewhere' WHERE key = 'files_root.path_in_fs'",
        [],
    )
    .unwrap();
    let r = refusal(check_files_root(&d.config, &conn));
    assert_eq!(r.name(), "FilesRootChanged");
    assert!(r.to_string().contains("--accept-new-files-root"), "{r}");
    d.config.start.accept_new_files_root = true;
    accepted(check_files_root(&d.config, &conn));
    d.config.start.accept_new_files_root = false;
    accepted(check_files_root(&d.config, &conn));
}

#[test]
fn without_a_recorded_filesystem_an_empty_root_under_a_full_catalog_is_refused() {
    let mut d = dirs();
    let conn = accepted(open_metadata(&d.config));
    add_active_file(&conn);
    std::fs::remove_file(d.config.files_root.join("a.txt")).unwrap();
    let r = refusal(check_files_root(&d.config, &conn));
    assert_eq!(r.name(), "FilesRootEmpty");
    assert!(r.to_string().contains("1 active files"), "{r}");
    // Not empty: accepted (and recorded from then on).
    std::fs::write(d.config.files_root.join("b.txt"), b"b").unwrap();
    accepted(check_files_root(&d.config, &conn));
    // Once recorded, the same filesystem may be empty: the deletions are real.
    std::fs::remove_file(d.config.files_root.join("b.txt")).unwrap();
    std::fs::remove_file(d.config.files_root.join(MARKER)).unwrap();
    accepted(check_files_root(&d.config, &conn));
    d.config.start.accept_new_files_root = true;
    accepted(check_files_root(&d.config, &conn));
}

#[test]
fn a_missing_root_waits() {
    let d = dirs();
    let conn = accepted(open_metadata(&d.config));
    std::fs::remove_dir_all(&d.config.files_root).unwrap();
    assert_eq!(
        refusal(check_files_root(&d.config, &conn)).name(),
        "FilesRootMissing"
    );
}

#[test]
fn no_new_catalog_where_the_files_root_names_one() {
    let mut d = dirs();
    let conn = accepted(open_metadata(&d.config));
    accepted(check_files_root(&d.config, &conn));
    drop(conn);
    // The metadata directory is now another, empty one (its dataset not mounted).
    d.config.metadata_dir = d.config.metadata_dir.with_file_name("meta-beneath");
    let r = refusal(open_metadata(&d.config));
    assert_eq!(r.name(), "NoCatalogHere");
    assert!(!d.config.metadata_dir.exists(), "nothing created");
    d.config.start.accept_new_catalog = true;
    let conn = accepted(open_metadata(&d.config));
    accepted(check_files_root(&d.config, &conn));
    let new_id = meta_get(&conn, CATALOG_ID).unwrap().unwrap();
    assert_eq!(read_marker(&d.config.files_root), Some(new_id));
}

#[test]
fn a_catalog_the_marker_does_not_name_is_refused() {
    let mut d = dirs();
    let conn = accepted(open_metadata(&d.config));
    accepted(check_files_root(&d.config, &conn));
    write_marker(&d.config.files_root, "0123456789abcdef").unwrap();
    let r = refusal(check_files_root(&d.config, &conn));
    assert_eq!(r.name(), "OtherCatalog");
    d.config.start.accept_new_catalog = true;
    accepted(check_files_root(&d.config, &conn));
    let id = meta_get(&conn, CATALOG_ID).unwrap();
    assert_eq!(read_marker(&d.config.files_root), id);
}

#[test]
fn a_recovered_catalog_takes_the_markers_id() {
    let d = dirs();
    let conn = accepted(open_metadata(&d.config));
    accepted(check_files_root(&d.config, &conn));
    let id = meta_get(&conn, CATALOG_ID).unwrap();
    conn.execute("DELETE FROM meta", []).unwrap();
    accepted(check_files_root(&d.config, &conn));
    assert_eq!(meta_get(&conn, CATALOG_ID).unwrap(), id);
}

#[test]
fn a_named_dataset_that_is_not_there_is_refused() {
    let mut d = dirs();
    d.config.metadata_dataset = Some("tank/meta".into());
    let r = refusal(open_metadata(&d.config));
    assert_eq!(r.name(), "NotTheDataset");
    assert!(r.to_string().contains("metadata_dataset"), "{r}");
    d.config.metadata_dataset = None;
    let conn = accepted(open_metadata(&d.config));
    d.config.snapshots.dataset = Some("tank/files".into());
    let r = refusal(check_files_root(&d.config, &conn));
    assert!(r.to_string().contains("snapshots.dataset"), "{r}");
}

#[test]
fn a_planted_marker_that_is_not_a_file_is_ignored() {
    let d = dirs();
    std::fs::create_dir(d.config.files_root.join(MARKER)).unwrap();
    assert_eq!(read_marker(&d.config.files_root), None);
    let conn = accepted(open_metadata(&d.config));
    // Writing the marker fails (a directory is in the way): logged, start goes on.
    accepted(check_files_root(&d.config, &conn));
    let link = d.config.files_root.with_file_name("files2");
    std::fs::create_dir_all(&link).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", link.join(MARKER)).unwrap();
    assert_eq!(read_marker(&link), None);
}
