//! One file: its info (versions, tags, collections, history) and metadata updates.

use std::path::Path;

use horace_client::{EventInfo, FileInfo, FileStatus, FileUpdate, QueryError, VersionInfo};
use rusqlite::{params, Connection};

use super::sql::{fill_tags, not_found_file, resolve, summary_row, Fail, Res, Target};
use crate::now_ns;

/// Longest tag, purpose, owner, correlation id or collection name, in bytes.
pub const MAX_FIELD_LEN: usize = 4096;
/// Most tags or collections in one update.
pub const MAX_UPDATE_ITEMS: usize = 1000;
/// Most history entries a file_info returns (the most recent).
pub const MAX_EVENTS: usize = 1000;

/// The columns [`version_row`] reads, for `SELECT {VERSION_COLUMNS} FROM versions`.
pub const VERSION_COLUMNS: &str =
    "version, sha256, size, mtime_ns, cataloged_ns, path, restored_from, content_stored, file_id";

/// Reads one version from a row of [`VERSION_COLUMNS`].
pub fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionInfo> {
    Ok(VersionInfo {
        file_id: r.get(8)?,
        version: r.get(0)?,
        sha256: r.get(1)?,
        size: r.get::<_, i64>(2)?.max(0) as u64,
        mtime_ns: r.get(3)?,
        cataloged_ns: r.get(4)?,
        path: r.get(5)?,
        restored_from: r.get(6)?,
        content_stored: r.get::<_, i64>(7)? != 0,
    })
}

/// The file's versions, oldest first.
pub fn versions(conn: &Connection, id: i64) -> Res<Vec<VersionInfo>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE file_id = ?1 ORDER BY version"
    ))?;
    let rows = stmt.query_map([id], version_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The file row and its current version's checksum (the summary's columns, as
/// [`summary_row`] reads them, then purpose, correlation id and deletion time).
macro_rules! info_row {
    () => {
        "SELECT f.id, f.path, f.owner, f.mime, f.size, f.status, f.current_version, v.sha256,
            f.created_ns, f.updated_ns, f.purpose, f.correlation_id, f.deleted_ns
         FROM files f LEFT JOIN versions v ON v.file_id = f.id AND v.version = f.current_version"
    };
}
const INFO_BY_ID: &str = concat!(info_row!(), " WHERE f.id = ?1");
const INFO_BY_PATH: &str = concat!(info_row!(), " WHERE f.path = ?1");

/// Everything about one file.
pub fn info(conn: &Connection, id: i64) -> Res<FileInfo> {
    info_of(conn, &Target::Id(id))
}

/// Everything about the file `t` names, or [`QueryError::NotFound`].
///
/// Five indexed reads on cached statements: the file row (with the current version's
/// checksum), tags, collections, the most recent events, and the versions. Run it inside
/// one read transaction (as the query service does) so they describe one moment.
pub fn info_of(conn: &Connection, t: &Target) -> Res<FileInfo> {
    let mut stmt = match t {
        Target::Id(_) => conn.prepare_cached(INFO_BY_ID)?,
        Target::Path(_) => conn.prepare_cached(INFO_BY_PATH)?,
    };
    let mut rows = match t {
        Target::Id(id) => stmt.query([id])?,
        Target::Path(p) => stmt.query([p])?,
    };
    let Some(r) = rows.next()? else {
        return Err(Fail::Query(not_found_file(t)));
    };
    let mut file = summary_row(r)?;
    let (purpose, correlation_id, deleted_ns) = (r.get(10)?, r.get(11)?, r.get(12)?);
    drop(rows);
    drop(stmt);
    let id = file.id;
    fill_tags(conn, std::slice::from_mut(&mut file))?;
    let mut stmt = conn.prepare_cached(
        "SELECT c.name FROM collection_members m JOIN collections c ON c.id = m.collection_id
         WHERE m.file_id = ?1 ORDER BY c.name",
    )?;
    let collections = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT at_ns, kind, old_path, new_path, version FROM events WHERE file_id = ?1
         ORDER BY at_ns DESC, id DESC LIMIT ?2",
    )?;
    let mut events: Vec<EventInfo> = stmt
        .query_map(params![id, MAX_EVENTS as i64], |r| {
            Ok(EventInfo {
                at_ns: r.get(0)?,
                kind: r.get(1)?,
                old_path: r.get(2)?,
                new_path: r.get(3)?,
                version: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    events.reverse();
    Ok(FileInfo {
        file,
        purpose,
        correlation_id,
        deleted_ns,
        versions: versions(conn, id)?,
        collections,
        events,
    })
}

fn check_text(what: &str, s: &str, allow_empty: bool) -> Result<(), QueryError> {
    if s.len() > MAX_FIELD_LEN {
        return Err(QueryError::TooLarge {
            what: what.into(),
            limit: MAX_FIELD_LEN as u64,
        });
    }
    if !allow_empty && s.trim().is_empty() {
        return Err(QueryError::InvalidArgument {
            message: format!("{what} must not be empty"),
        });
    }
    if s.chars().any(char::is_control) {
        return Err(QueryError::InvalidArgument {
            message: format!("{what} {s:?} contains control characters"),
        });
    }
    Ok(())
}

/// Checks a collection name.
pub fn check_name(name: &str) -> Result<(), QueryError> {
    check_text("collection name", name, false)
}

/// Checks an update before it goes to the writer.
pub fn check_update(u: &FileUpdate) -> Result<(), QueryError> {
    for (list, what) in [
        (&u.add_tags, "tag"),
        (&u.remove_tags, "tag"),
        (&u.add_collections, "collection name"),
        (&u.remove_collections, "collection name"),
    ] {
        if list.len() > MAX_UPDATE_ITEMS {
            return Err(QueryError::TooLarge {
                what: format!("{what} list"),
                limit: MAX_UPDATE_ITEMS as u64,
            });
        }
        for s in list {
            check_text(what, s, false)?;
        }
    }
    if let Some(p) = &u.purpose {
        check_text("purpose", p, true)?;
    }
    if let Some(o) = &u.owner {
        check_text("owner", o, false)?;
    }
    if let Some(c) = &u.correlation_id {
        check_text("correlation id", c, true)?;
    }
    Ok(())
}

fn empty_to_null(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Applies an update in one transaction on the writer connection; returns the file id.
pub fn apply_update(
    conn: &mut Connection,
    target: &Target,
    u: &FileUpdate,
    files_root: &Path,
) -> Res<i64> {
    let tx = conn.transaction()?;
    let id = resolve(&tx, target)?;
    let now = now_ns();
    for t in &u.add_tags {
        tx.execute(
            "INSERT OR IGNORE INTO tags(file_id, tag) VALUES (?1, ?2)",
            params![id, t],
        )?;
    }
    for t in &u.remove_tags {
        tx.execute(
            "DELETE FROM tags WHERE file_id = ?1 AND tag = ?2",
            params![id, t],
        )?;
    }
    if let Some(p) = &u.purpose {
        tx.execute(
            "UPDATE files SET purpose = ?2 WHERE id = ?1",
            params![id, empty_to_null(p)],
        )?;
    }
    if let Some(o) = &u.owner {
        tx.execute("UPDATE files SET owner = ?2 WHERE id = ?1", params![id, o])?;
    }
    if let Some(c) = &u.correlation_id {
        tx.execute(
            "UPDATE files SET correlation_id = ?2 WHERE id = ?1",
            params![id, empty_to_null(c)],
        )?;
    }
    for name in &u.add_collections {
        let cid = collection_id(&tx, name)?;
        tx.execute(
            "INSERT OR IGNORE INTO collection_members(collection_id, file_id, added_ns) VALUES (?1, ?2, ?3)",
            params![cid, id, now],
        )?;
    }
    for name in &u.remove_collections {
        let cid = collection_id(&tx, name)?;
        tx.execute(
            "DELETE FROM collection_members WHERE collection_id = ?1 AND file_id = ?2",
            params![cid, id],
        )?;
    }
    if let Some(new) = u.status {
        set_status(&tx, id, new, now, files_root)?;
    }
    tx.commit()?;
    Ok(id)
}

/// The id of a collection, or NotFound.
pub fn collection_id(conn: &Connection, name: &str) -> Res<i64> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT id FROM collections WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()?
    .ok_or_else(|| {
        QueryError::NotFound {
            what: format!("collection {name:?}"),
        }
        .into()
    })
}

fn set_status(conn: &Connection, id: i64, new: FileStatus, now: i64, files_root: &Path) -> Res<()> {
    let (path, old): (String, String) =
        conn.query_row("SELECT path, status FROM files WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let old = FileStatus::parse(&old).unwrap_or(FileStatus::Deleted);
    if old == new {
        return Ok(());
    }
    if old == FileStatus::Deleted {
        let on_disk = crate::path::unescape(&path)
            .map(|rel| files_root.join(rel))
            .and_then(|p| std::fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_file());
        if !on_disk {
            return Err(QueryError::InvalidArgument {
                message: format!(
                    "{path:?} is not on disk, so it cannot become {}; restore a version first",
                    new.as_str()
                ),
            }
            .into());
        }
    }
    let kind = match (old, new) {
        (_, FileStatus::Deleted) => "deleted",
        (FileStatus::Deleted, _) => "undeleted",
        (_, FileStatus::Archived) => "archived",
        _ => "unarchived",
    };
    let deleted_ns = (new == FileStatus::Deleted).then_some(now);
    conn.execute(
        "UPDATE files SET status = ?2, deleted_ns = ?3 WHERE id = ?1",
        params![id, new.as_str(), deleted_ns],
    )?;
    conn.execute(
        "INSERT INTO events(file_id, at_ns, kind, new_path) VALUES (?1, ?2, ?3, ?4)",
        params![id, now, kind, path],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use crate::query::sql::Fail;

    #[test]
    fn updates_apply_in_one_transaction_and_check_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        std::fs::create_dir_all(root.join("svc")).unwrap();
        std::fs::write(root.join("svc/here.txt"), "x").unwrap();
        let mut conn = catalog::open_writer(&catalog::catalog_path(dir.path())).unwrap();
        conn.execute_batch(
            "INSERT INTO files(id, path, owner, status, created_ns, updated_ns, deleted_ns) VALUES
               (1, 'svc/here.txt', 'svc', 'deleted', 1, 1, 5), (2, 'svc/gone.txt', 'svc', 'deleted', 1, 1, 5);
             INSERT INTO collections(id, name, created_ns) VALUES (1, 'c', 1);",
        )
        .unwrap();
        let revive = FileUpdate {
            status: Some(FileStatus::Active),
            ..Default::default()
        };
        assert_eq!(
            apply_update(
                &mut conn,
                &Target::Path("svc/here.txt".into()),
                &revive,
                &root
            )
            .unwrap(),
            1
        );
        let i = info(&conn, 1).unwrap();
        assert_eq!((i.file.status, i.deleted_ns), (FileStatus::Active, None));
        assert_eq!(i.events.last().unwrap().kind, "undeleted");
        // A deleted file that is not on disk cannot become active, and nothing else of the
        // same update is applied.
        let u = FileUpdate {
            add_tags: vec!["t".into()],
            status: Some(FileStatus::Active),
            ..Default::default()
        };
        match apply_update(&mut conn, &Target::Id(2), &u, &root) {
            Err(Fail::Query(QueryError::InvalidArgument { message })) => {
                assert!(message.contains("not on disk"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(info(&conn, 2).unwrap().file.tags.is_empty());
        // Collections must exist; unknown files are NotFound.
        let u = FileUpdate {
            add_collections: vec!["nope".into()],
            ..Default::default()
        };
        assert!(matches!(
            apply_update(&mut conn, &Target::Id(1), &u, &root),
            Err(Fail::Query(QueryError::NotFound { .. }))
        ));
        let u = FileUpdate {
            add_collections: vec!["c".into()],
            ..Default::default()
        };
        assert!(matches!(
            apply_update(&mut conn, &Target::Id(9), &u, &root),
            Err(Fail::Query(QueryError::NotFound { .. }))
        ));
        apply_update(&mut conn, &Target::Id(1), &u, &root).unwrap();
        assert_eq!(info(&conn, 1).unwrap().collections, ["c"]);
    }

    #[test]
    fn info_reads_the_summary_columns_and_names_a_missing_file() {
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let row = words(info_row!());
        let summary = format!(
            "SELECT {}, f.purpose",
            words(crate::query::sql::SUMMARY_COLUMNS)
        );
        assert!(row.starts_with(&summary), "{row}");
        assert!(
            row.ends_with(&words(crate::query::sql::SUMMARY_FROM)),
            "{row}"
        );
        let dir = tempfile::tempdir().unwrap();
        let conn = catalog::open_writer(&catalog::catalog_path(dir.path())).unwrap();
        conn.execute_batch(
            "INSERT INTO files(id, path, owner, status, created_ns, updated_ns, purpose) VALUES
               (7, 'svc/a.txt', 'svc', 'active', 1, 2, 'p');",
        )
        .unwrap();
        let by_path = info_of(&conn, &Target::Path("svc/a.txt".into())).unwrap();
        assert_eq!(
            (by_path.file.id, by_path.purpose.as_deref()),
            (7, Some("p"))
        );
        assert_eq!(by_path.file.path, info(&conn, 7).unwrap().file.path);
        match info_of(&conn, &Target::Path("svc/b.txt".into())) {
            Err(Fail::Query(QueryError::NotFound { what })) => {
                assert_eq!(what, "file \"svc/b.txt\"")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn update_checks_name_the_field() {
        let bad = [
            FileUpdate {
                add_tags: vec![" ".into()],
                ..Default::default()
            },
            FileUpdate {
                add_tags: vec!["a\nb".into()],
                ..Default::default()
            },
            FileUpdate {
                owner: Some(String::new()),
                ..Default::default()
            },
        ];
        for u in bad {
            assert!(
                matches!(check_update(&u), Err(QueryError::InvalidArgument { .. })),
                "{u:?}"
            );
        }
        let big = FileUpdate {
            purpose: Some("p".repeat(MAX_FIELD_LEN + 1)),
            ..Default::default()
        };
        assert!(matches!(
            check_update(&big),
            Err(QueryError::TooLarge { .. })
        ));
        let many = FileUpdate {
            add_tags: vec!["t".into(); MAX_UPDATE_ITEMS + 1],
            ..Default::default()
        };
        assert!(matches!(
            check_update(&many),
            Err(QueryError::TooLarge { .. })
        ));
        assert!(check_update(&FileUpdate {
            purpose: Some(String::new()),
            ..Default::default()
        })
        .is_ok());
    }
}
