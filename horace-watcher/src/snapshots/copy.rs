//! Finding a version's content in a snapshot when the content store no longer has it.
//!
//! A version was current from its `cataloged_ns` until the next version's (or the file's
//! deletion, or now). Every snapshot taken in that window holds it, and so may the first
//! one after (cataloging lags the write by a moment). Where the dataset's
//! `.zfs/snapshot/<snap>/` directory is readable (OpenZFS), the copy is read from there;
//! zfs-fuse has no `.zfs` directory, so there the snapshots are only named for an operator.

use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// Where and when a version lived, as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionWindow {
    /// The escaped relative path the version was saved under.
    pub path: String,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Unix seconds it became current (rounded down).
    pub from_s: i64,
    /// Unix seconds it stopped being current (rounded up), `None` while still current.
    pub until_s: Option<i64>,
}

/// Reads the window of `version` of `file_id`; `None` when the catalog has no such version.
pub(crate) fn version_window(
    conn: &Connection,
    file_id: i64,
    version: i64,
) -> rusqlite::Result<Option<VersionWindow>> {
    let row = conn
        .query_row(
            "SELECT v.path, v.sha256, v.cataloged_ns, \
                    (SELECT min(n.cataloged_ns) FROM versions n \
                      WHERE n.file_id = v.file_id AND n.version > v.version), \
                    CASE WHEN f.status = 'deleted' THEN f.deleted_ns END \
             FROM versions v JOIN files f ON f.id = v.file_id \
             WHERE v.file_id = ?1 AND v.version = ?2",
            [file_id, version],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            },
        )
        .optional()?;
    Ok(row.map(
        |(path, sha256, from_ns, next_ns, deleted_ns)| VersionWindow {
            path,
            sha256,
            from_s: from_ns.div_euclid(1_000_000_000),
            until_s: next_ns
                .or(deleted_ns)
                .map(|ns| (ns + 999_999_999).div_euclid(1_000_000_000)),
        },
    ))
}

/// The mirror's snapshots of `dataset` (all datasets when `None`), oldest first, as
/// (full name, creation).
pub(crate) fn mirrored_snapshots(
    conn: &Connection,
    dataset: Option<&str>,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT name, creation FROM snapshots WHERE ?1 IS NULL OR dataset = ?1 \
         ORDER BY creation, name",
    )?;
    let rows = stmt.query_map([dataset], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The snapshots that may hold a version current over `[from_s, until_s]`: those created
/// in the window and the first one after it; oldest first. `snaps` is sorted by creation.
pub(crate) fn candidates(
    snaps: &[(String, i64)],
    from_s: i64,
    until_s: Option<i64>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, creation) in snaps {
        if *creation < from_s {
            continue;
        }
        match until_s {
            Some(until) if *creation > until => {
                out.push(name.clone());
                break;
            }
            _ => out.push(name.clone()),
        }
    }
    out
}

/// The copy of `rel` inside snapshot `full_name` of the dataset mounted at `files_root`.
pub(crate) fn snapshot_path(files_root: &Path, full_name: &str, rel: &Path) -> Option<PathBuf> {
    let (_, snap) = full_name.split_once('@')?;
    Some(
        files_root
            .join(".zfs")
            .join("snapshot")
            .join(snap)
            .join(rel),
    )
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The first candidate snapshot whose copy of the version's path is readable and has the
/// version's hash; else the candidates' names, oldest first.
pub(crate) fn find_in_snapshots(
    files_root: &Path,
    window: &VersionWindow,
    snaps: &[(String, i64)],
) -> Result<PathBuf, Vec<String>> {
    let names = candidates(snaps, window.from_s, window.until_s);
    let Some(rel) = crate::path::unescape(&window.path) else {
        return Err(names);
    };
    for name in &names {
        let Some(copy) = snapshot_path(files_root, name, &rel) else {
            continue;
        };
        match sha256_of(&copy) {
            Ok(h) if h == window.sha256 => return Ok(copy),
            Ok(_) => tracing::debug!(snapshot = %name, "snapshot copy has another hash"),
            Err(e) => tracing::debug!(snapshot = %name, error = %e, "no readable snapshot copy"),
        }
    }
    Err(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snaps() -> Vec<(String, i64)> {
        [
            ("p/f@a", 100),
            ("p/f@b", 200),
            ("p/f@c", 300),
            ("p/f@d", 400),
        ]
        .iter()
        .map(|(n, c)| (n.to_string(), *c))
        .collect()
    }

    #[test]
    fn candidates_cover_the_window_and_the_first_after() {
        assert_eq!(candidates(&snaps(), 150, Some(250)), ["p/f@b", "p/f@c"]);
        assert_eq!(
            candidates(&snaps(), 200, Some(300)),
            ["p/f@b", "p/f@c", "p/f@d"]
        );
        assert_eq!(candidates(&snaps(), 150, None), ["p/f@b", "p/f@c", "p/f@d"]);
        assert_eq!(candidates(&snaps(), 500, None), Vec::<String>::new());
        assert_eq!(candidates(&snaps(), 10, Some(50)), ["p/f@a"]);
    }

    /// A fake `.zfs/snapshot` tree on a plain directory: this checks the lookup logic,
    /// not OpenZFS.
    #[test]
    fn finds_the_copy_with_the_right_hash() {
        let root = tempfile::tempdir().unwrap();
        let rel = Path::new("alice/doc.txt");
        for (snap, body) in [("b", "other"), ("c", "wanted")] {
            let p = root.path().join(".zfs/snapshot").join(snap).join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let wanted: String = Sha256::digest(b"wanted")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let window = VersionWindow {
            path: "alice/doc.txt".into(),
            sha256: wanted,
            from_s: 150,
            until_s: Some(350),
        };
        let got = find_in_snapshots(root.path(), &window, &snaps()).unwrap();
        assert_eq!(got, root.path().join(".zfs/snapshot/c/alice/doc.txt"));

        let gone = VersionWindow {
            sha256: "00".repeat(32),
            ..window
        };
        assert_eq!(
            find_in_snapshots(root.path(), &gone, &snaps()).unwrap_err(),
            ["p/f@b", "p/f@c", "p/f@d"]
        );
    }

    #[test]
    fn window_comes_from_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::catalog::open_writer(&crate::catalog::catalog_path(dir.path())).unwrap();
        conn.execute_batch(
            "INSERT INTO files(id, path, owner, created_ns, updated_ns, status, deleted_ns) \
               VALUES (1, 'a/x', 'a', 0, 0, 'deleted', 9000000001);
             INSERT INTO versions VALUES (1, 1, 'h1', 1, 0, 1500000000, 'a/x', NULL, 0, NULL, NULL);
             INSERT INTO versions VALUES (1, 2, 'h2', 1, 0, 4000000000, 'a/x', NULL, 0, NULL, NULL);",
        )
        .unwrap();
        let w1 = version_window(&conn, 1, 1).unwrap().unwrap();
        assert_eq!(
            (w1.from_s, w1.until_s, w1.sha256.as_str()),
            (1, Some(4), "h1")
        );
        let w2 = version_window(&conn, 1, 2).unwrap().unwrap();
        assert_eq!((w2.from_s, w2.until_s), (4, Some(10)));
        assert!(version_window(&conn, 1, 3).unwrap().is_none());
    }
}
