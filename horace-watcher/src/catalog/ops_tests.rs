//! Unit tests of the catalog operations on a real (temporary) SQLite catalog.

use super::*;
use crate::catalog::open_writer;

fn db() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join("catalog.db")).unwrap();
    (dir, conn)
}

fn content(sha: &str, size: i64) -> NewContent {
    NewContent {
        sha256: sha.into(),
        fp: Fingerprint {
            size,
            mtime_ns: size,
            ctime_ns: size,
            inode: size,
        },
        mime: "text/plain".into(),
        stored: true,
        restored_from: None,
        mode: None,
        stored_bytes: None,
    }
}

fn paths(conn: &Connection) -> Vec<(String, String)> {
    let mut stmt = conn
        .prepare("SELECT path, status FROM files ORDER BY path")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn same_content_makes_no_version_and_delete_revives_history() {
    let (_d, c) = db();
    let (id, v) = apply_content(&c, "a/f", "a", &content("aa", 1), 1).unwrap();
    assert_eq!(v, Some(1));
    assert_eq!(
        apply_content(&c, "a/f", "a", &content("aa", 1), 2).unwrap(),
        (id, None)
    );
    assert_eq!(
        apply_content(&c, "a/f", "a", &content("bb", 2), 3).unwrap(),
        (id, Some(2))
    );
    assert_eq!(mark_deleted(&c, "a/f", 4).unwrap(), Some(id));
    assert_eq!(mark_deleted(&c, "a/f", 4).unwrap(), None);
    assert_eq!(
        apply_content(&c, "a/f", "a", &content("cc", 3), 5).unwrap(),
        (id, Some(3))
    );
    let kinds: Vec<String> = c
        .prepare("SELECT kind FROM events WHERE file_id = ?1 ORDER BY id")
        .unwrap()
        .query_map([id], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(kinds, ["created", "modified", "deleted", "undeleted"]);
}

#[test]
fn dir_rename_moves_only_the_prefix_and_not_lookalikes() {
    let (_d, c) = db();
    for p in ["s/d/x", "s/d/sub/y", "s/d%/z", "s/d_e/w", "s/dd/v", "s/d0"] {
        apply_content(&c, p, "s", &content(p, 1), 1).unwrap();
    }
    let id = row_by_path(&c, "s/d/x").unwrap().unwrap().id;
    assert_eq!(rename_dir(&c, "s/d", "t/e f", 2).unwrap(), 2);
    let got: Vec<String> = paths(&c).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        got,
        [
            "s/d%/z",
            "s/d0",
            "s/d_e/w",
            "s/dd/v",
            "t/e f/sub/y",
            "t/e f/x"
        ]
    );
    assert_eq!(row_by_path(&c, "t/e f/x").unwrap().unwrap().id, id);
    let owner: String = c
        .query_row("SELECT owner FROM files WHERE id = ?1", [id], |r| r.get(0))
        .unwrap();
    assert_eq!(owner, "t");
}

#[test]
fn rename_onto_a_cataloged_path_continues_the_destination() {
    let (_d, c) = db();
    let (a, _) = apply_content(&c, "a", "", &content("aa", 1), 1).unwrap();
    let (b, _) = apply_content(&c, "b", "", &content("bb", 2), 1).unwrap();
    let later = 1 + TEMP_AGE_NS;
    assert_eq!(rename_file(&c, "a", "b", "", later).unwrap(), Some(b));
    let rb = row_by_path(&c, "b").unwrap().unwrap();
    assert_eq!(
        (rb.id, rb.current_version, rb.sha256.as_deref()),
        (b, Some(2), Some("aa"))
    );
    assert_eq!(row_by_id(&c, a).unwrap().unwrap().status, "deleted");
    // A temp cataloged a moment ago with no history of its own (`b.part` written and
    // renamed over `b`) is dropped, its content `b`'s next version.
    let (t, _) = apply_content(&c, "b.part", "", &content("cc", 4), later).unwrap();
    assert_eq!(
        rename_file(&c, "b.part", "b", "", later + 1).unwrap(),
        Some(b)
    );
    assert!(
        row_by_id(&c, t).unwrap().is_none(),
        "the temp's row is dropped"
    );
    let rb = row_by_path(&c, "b").unwrap().unwrap();
    assert_eq!(
        (rb.current_version, rb.sha256.as_deref()),
        (Some(3), Some("cc"))
    );
    let (n, _) = apply_content(&c, "n", "", &content("nn", 3), 1).unwrap();
    assert_eq!(rename_file(&c, "n", "m/n2", "m", 2).unwrap(), Some(n));
    assert_eq!(rename_file(&c, "missing", "x", "", 2).unwrap(), None);
}

#[test]
fn a_rename_onto_its_own_early_twin_keeps_one_history() {
    let (_d, c) = db();
    let events = |id: i64| -> Vec<String> {
        let mut st = c
            .prepare("SELECT kind FROM events WHERE file_id = ?1 ORDER BY id")
            .unwrap();
        st.query_map([id], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // A scan found d/f and e/g at the new names of d2/f and e2/g (same inode and content)
    // before the renames' events came.
    let (f, _) = apply_content(&c, "d/f", "d", &content("ff", 1), 1).unwrap();
    apply_content(&c, "d2/f", "d2", &content("ff", 1), 2).unwrap();
    let (g, _) = apply_content(&c, "e/g", "e", &content("gg", 2), 1).unwrap();
    apply_content(&c, "e2/g", "e2", &content("gg", 2), 2).unwrap();
    assert_eq!(rename_dir(&c, "d", "d2", 3).unwrap(), 1);
    assert_eq!(rename_file(&c, "e/g", "e2/g", "e2", 3).unwrap(), Some(g));
    assert_eq!(row_by_path(&c, "d2/f").unwrap().unwrap().id, f);
    assert_eq!(events(f), ["created", "renamed"]);
    assert_eq!(events(g), ["created", "renamed"]);
    assert_eq!(
        paths(&c),
        [
            ("d2/f".into(), "active".into()),
            ("e2/g".into(), "active".into())
        ]
    );
    // Another file with the same content but its own inode or history is no twin.
    let (h, _) = apply_content(&c, "h", "", &content("ff", 1), 4).unwrap();
    let mut other = content("ff", 1);
    other.fp.inode = 99;
    let (k, _) = apply_content(&c, "k", "", &other, 4).unwrap();
    assert_eq!(
        rename_file(&c, "h", "k", "", 4 + TEMP_AGE_NS).unwrap(),
        Some(k)
    );
    assert_eq!(row_by_id(&c, h).unwrap().unwrap().status, "deleted");
}

#[test]
fn prune_keeps_last_versions_and_young_ones() {
    let (_d, c) = db();
    let day = 86_400_000_000_000i64;
    for (i, sha) in ["s1", "s2", "s3", "s4"].iter().enumerate() {
        apply_content(&c, "f", "", &content(sha, i as i64 + 1), i as i64 * day).unwrap();
    }
    // keep 2, min age 1.5 days at t = 3 days: versions 1 (t=0) is old and beyond keep;
    // version 2 (t=1 day) is old too; versions 3 and 4 are the last two.
    let id = row_by_path(&c, "f").unwrap().unwrap().id;
    let gone = prune(&c, id, 2, day * 3 / 2, 3 * day).unwrap();
    assert_eq!(gone, ["s1", "s2"]);
    // s3 is shared with another file whose version is stored: not unreferenced.
    apply_content(&c, "g", "", &content("s3", 9), 3 * day).unwrap();
    assert_eq!(
        unreferenced(&c, vec!["s3".into(), "s1".into()]).unwrap(),
        ["s1"]
    );
    assert_eq!(stored_shas(&c).unwrap().len(), 2);
}
