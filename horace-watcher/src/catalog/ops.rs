//! The catalog changes the watch loop makes: new content, renames (file and directory
//! prefix), deletes, and which versions keep their content. Every function runs inside the
//! caller's transaction on the writer connection.
//!
//! Paths are escaped text (`crate::path`). "Everything under directory `d`" is the range
//! `d/` < path < `d0` (`0` follows `/` in byte order), never `LIKE`, whose `%` and `_`
//! would match names that merely contain them.

use rusqlite::{params, Connection, OptionalExtension, Row as SqlRow};

use crate::hash::Fingerprint;

/// A file's catalog row with its current version's checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// File id.
    pub id: i64,
    /// Escaped relative path.
    pub path: String,
    /// active, archived or deleted.
    pub status: String,
    /// Size, times and inode when last cataloged.
    pub fp: Fingerprint,
    /// Current version number.
    pub current_version: Option<i64>,
    /// Current version's checksum.
    pub sha256: Option<String>,
    /// Whether the current version's content is in the store.
    pub content_stored: bool,
    /// MIME type.
    pub mime: Option<String>,
}

impl Row {
    /// Whether the row stands for a file present on disk.
    pub fn is_present(&self) -> bool {
        self.status != "deleted"
    }
}

/// New content of a path, ready to become a version.
#[derive(Debug, Clone)]
pub struct NewContent {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// The file's fingerprint when hashed.
    pub fp: Fingerprint,
    /// MIME type.
    pub mime: String,
    /// Whether the store holds the content.
    pub stored: bool,
    /// Set when a restore wrote it.
    pub restored_from: Option<i64>,
    /// The file's permission bits (`st_mode & 0o7777`) when it was looked at, if known:
    /// what a restore over a name holding no regular file gives it.
    pub mode: Option<u32>,
    /// The bytes the content's store object occupies (`st_blocks × 512`), when this look
    /// stored it: what the owner's store budget counts.
    pub stored_bytes: Option<u64>,
}

const ROW_SQL: &str = "SELECT f.id, f.path, f.status, f.size, f.mtime_ns, f.ctime_ns, f.inode, \
     f.current_version, v.sha256, v.content_stored, f.mime FROM files f \
     LEFT JOIN versions v ON v.file_id = f.id AND v.version = f.current_version";

fn to_row(r: &SqlRow<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        path: r.get(1)?,
        status: r.get(2)?,
        fp: Fingerprint {
            size: r.get(3)?,
            mtime_ns: r.get(4)?,
            ctime_ns: r.get(5)?,
            inode: r.get(6)?,
        },
        current_version: r.get(7)?,
        sha256: r.get(8)?,
        content_stored: r.get::<_, Option<i64>>(9)?.unwrap_or(0) != 0,
        mime: r.get(10)?,
    })
}

/// The row at `path`.
pub fn row_by_path(conn: &Connection, path: &str) -> rusqlite::Result<Option<Row>> {
    conn.prepare_cached(&format!("{ROW_SQL} WHERE f.path = ?1"))?
        .query_row([path], to_row)
        .optional()
}

/// The row with `id`.
pub fn row_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<Row>> {
    conn.prepare_cached(&format!("{ROW_SQL} WHERE f.id = ?1"))?
        .query_row([id], to_row)
        .optional()
}

/// Every row (for the reconcile scan).
pub fn all_rows(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare(ROW_SQL)?;
    let rows = stmt.query_map([], to_row)?;
    rows.collect()
}

/// What the reconcile scan needs of a row to skip an unchanged file.
#[derive(Debug, Clone, Copy)]
pub struct IndexEntry {
    /// Size, times and inode when last cataloged.
    pub fp: Fingerprint,
    /// Not deleted.
    pub present: bool,
    /// Has a current version.
    pub current: bool,
}

/// The reconcile scan's index: every row's path and fingerprint (no checksums), sorted
/// by path. A sorted Vec rather than a HashMap: at a million rows it is about 70 MiB less
/// of the scan's peak memory.
pub struct ScanIndex {
    rows: Vec<(Box<str>, IndexEntry)>,
    found: Vec<bool>,
}

impl ScanIndex {
    /// Builds the index from `rows` in any order.
    pub fn new(mut rows: Vec<(Box<str>, IndexEntry)>) -> Self {
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let found = vec![false; rows.len()];
        Self { rows, found }
    }

    /// The row of `path`, the first time it is asked for (then `None`).
    pub fn take(&mut self, path: &str) -> Option<IndexEntry> {
        let i = self.rows.binary_search_by(|(p, _)| (**p).cmp(path)).ok()?;
        (!std::mem::replace(&mut self.found[i], true)).then(|| self.rows[i].1)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the catalog has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows never taken.
    pub fn untaken(self) -> impl Iterator<Item = (Box<str>, IndexEntry)> {
        self.rows
            .into_iter()
            .zip(self.found)
            .filter(|(_, found)| !found)
            .map(|(row, _)| row)
    }
}

/// Every row's path and fingerprint (the reconcile scan's index).
pub fn scan_index(conn: &Connection) -> rusqlite::Result<ScanIndex> {
    let count: i64 = conn.query_row("SELECT count(*) FROM files", [], |r| r.get(0))?;
    let mut rows = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut stmt = conn.prepare(
        "SELECT path, size, mtime_ns, ctime_ns, inode, status != 'deleted', current_version IS NOT NULL FROM files",
    )?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let fp = Fingerprint {
            size: r.get(1)?,
            mtime_ns: r.get(2)?,
            ctime_ns: r.get(3)?,
            inode: r.get(4)?,
        };
        let path: String = r.get(0)?;
        let entry = IndexEntry {
            fp,
            present: r.get(5)?,
            current: r.get(6)?,
        };
        rows.push((path.into_boxed_str(), entry));
    }
    Ok(ScanIndex::new(rows))
}

#[cfg(test)]
mod scan_index_tests {
    use super::*;

    #[test]
    fn take_answers_each_row_once_and_untaken_is_the_rest() {
        let e = |size| IndexEntry {
            fp: Fingerprint {
                size,
                ..Default::default()
            },
            present: true,
            current: true,
        };
        let rows = ["b/x", "a", "c", "a/b", "b"]
            .iter()
            .enumerate()
            .map(|(i, p)| (Box::from(*p), e(i as i64)))
            .collect();
        let mut index = ScanIndex::new(rows);
        assert_eq!(index.len(), 5);
        assert_eq!(index.take("a/b").unwrap().fp.size, 3);
        assert!(index.take("a/b").is_none(), "once");
        assert!(index.take("zz").is_none() && index.take("").is_none());
        assert_eq!(index.take("b/x").unwrap().fp.size, 0);
        let rest: Vec<Box<str>> = index.untaken().map(|(p, _)| p).collect();
        assert_eq!(rest, [Box::from("a"), Box::from("b"), Box::from("c")]);
    }
}

/// The lower and upper bound of the paths under directory `dir`.
fn under(dir: &str) -> (String, String) {
    (format!("{dir}/"), format!("{dir}0"))
}

fn event(
    conn: &Connection,
    id: i64,
    now: i64,
    kind: &str,
    old: Option<&str>,
    new: Option<&str>,
    v: Option<i64>,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO events (file_id, at_ns, kind, old_path, new_path, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![id, now, kind, old, new, v])?;
    Ok(())
}

/// Records `c` as the content at `path`: a new file, a new version, or (same checksum as
/// the current version) only fresh stat figures. A deleted row is revived with its history.
/// Returns the file id and the new version number, if one was made.
pub fn apply_content(
    conn: &Connection,
    path: &str,
    owner: &str,
    c: &NewContent,
    now: i64,
) -> rusqlite::Result<(i64, Option<i64>)> {
    let fp = c.fp;
    let Some(row) = row_by_path(conn, path)? else {
        conn.prepare_cached(
            "INSERT INTO files (path, owner, mime, size, mtime_ns, ctime_ns, inode, current_version, status, created_ns, updated_ns) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, 'active', ?8, ?8)",
        )?
        .execute(params![path, owner, c.mime, fp.size, fp.mtime_ns, fp.ctime_ns, fp.inode, now])?;
        let id = conn.last_insert_rowid();
        index_path(conn, id, path)?;
        insert_version(conn, id, 1, path, c, now)?;
        event(conn, id, now, "created", None, Some(path), Some(1))?;
        return Ok((id, Some(1)));
    };
    let revived = !row.is_present();
    if row.sha256.as_deref() == Some(c.sha256.as_str()) && c.restored_from.is_none() {
        conn.prepare_cached(
            "UPDATE files SET size = ?2, mtime_ns = ?3, ctime_ns = ?4, inode = ?5, mime = ?6, \
             status = CASE status WHEN 'deleted' THEN 'active' ELSE status END, deleted_ns = NULL, \
             updated_ns = CASE status WHEN 'deleted' THEN ?7 ELSE updated_ns END WHERE id = ?1",
        )?
        .execute(params![
            row.id,
            fp.size,
            fp.mtime_ns,
            fp.ctime_ns,
            fp.inode,
            c.mime,
            now
        ])?;
        if c.stored && !row.content_stored {
            conn.execute(
                "UPDATE versions SET content_stored = 1, stored_bytes = coalesce(?3, stored_bytes) \
                 WHERE file_id = ?1 AND version = ?2",
                params![row.id, row.current_version, c.stored_bytes.map(|b| b as i64)],
            )?;
        }
        if let Some(mode) = c.mode {
            // A chmod of the current content: the bits a restore gives it from now on.
            conn.prepare_cached(
                "UPDATE versions SET mode = ?3 WHERE file_id = ?1 AND version = ?2 \
                 AND mode IS NOT ?3",
            )?
            .execute(params![row.id, row.current_version, mode])?;
        }
        if revived {
            event(
                conn,
                row.id,
                now,
                "undeleted",
                None,
                Some(path),
                row.current_version,
            )?;
        }
        return Ok((row.id, None));
    }
    let v = row.current_version.unwrap_or(0) + 1;
    insert_version(conn, row.id, v, path, c, now)?;
    conn.prepare_cached(
        "UPDATE files SET size = ?2, mtime_ns = ?3, ctime_ns = ?4, inode = ?5, mime = ?6, current_version = ?7, \
         status = CASE status WHEN 'deleted' THEN 'active' ELSE status END, deleted_ns = NULL, updated_ns = ?8 WHERE id = ?1",
    )?
    .execute(params![row.id, fp.size, fp.mtime_ns, fp.ctime_ns, fp.inode, c.mime, v, now])?;
    let kind = if c.restored_from.is_some() {
        "restored"
    } else if revived {
        "undeleted"
    } else {
        "modified"
    };
    event(conn, row.id, now, kind, None, Some(path), Some(v))?;
    Ok((row.id, Some(v)))
}

/// Adds a new file's path to the path-substring index (files_fts). Done here rather than
/// by a trigger: see migrate_v2_fts_insert.sql. The update and delete triggers keep it
/// exact from then on.
pub fn index_path(conn: &Connection, id: i64, path: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO files_fts(rowid, path) VALUES (?1, ?2)")?
        .execute(params![id, path])?;
    Ok(())
}

fn insert_version(
    conn: &Connection,
    id: i64,
    v: i64,
    path: &str,
    c: &NewContent,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO versions (file_id, version, sha256, size, mtime_ns, cataloged_ns, path, restored_from, content_stored, mode, stored_bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        id,
        v,
        c.sha256,
        c.fp.size,
        c.fp.mtime_ns,
        now,
        path,
        c.restored_from,
        c.stored as i64,
        c.mode,
        c.stored_bytes.filter(|_| c.stored).map(|b| b as i64)
    ])?;
    Ok(())
}

/// Marks the file at `path` deleted (history kept). Returns its id if it was present.
pub fn mark_deleted(conn: &Connection, path: &str, now: i64) -> rusqlite::Result<Option<i64>> {
    let id: Option<i64> = conn
        .prepare_cached("UPDATE files SET status = 'deleted', deleted_ns = ?2, updated_ns = ?2 WHERE path = ?1 AND status != 'deleted' RETURNING id")?
        .query_row(params![path, now], |r| r.get(0))
        .optional()?;
    if let Some(id) = id {
        event(conn, id, now, "deleted", Some(path), None, None)?;
    }
    Ok(id)
}

/// The paths of the present files under directory `dir`.
pub fn present_under(conn: &Connection, dir: &str) -> rusqlite::Result<Vec<String>> {
    let (lo, hi) = under(dir);
    conn.prepare_cached(
        "SELECT path FROM files WHERE path > ?1 AND path < ?2 AND status != 'deleted' ORDER BY path",
    )?
    .query_map(params![lo, hi], |r| r.get(0))?
    .collect()
}

/// Marks every present file under directory `dir` deleted. Returns how many.
pub fn mark_deleted_under(conn: &Connection, dir: &str, now: i64) -> rusqlite::Result<usize> {
    let (lo, hi) = under(dir);
    conn.execute(
        "INSERT INTO events (file_id, at_ns, kind, old_path) SELECT id, ?3, 'deleted', path FROM files \
         WHERE path > ?1 AND path < ?2 AND status != 'deleted'",
        params![lo, hi, now],
    )?;
    conn.execute(
        "UPDATE files SET status = 'deleted', deleted_ns = ?3, updated_ns = ?3 WHERE path > ?1 AND path < ?2 AND status != 'deleted'",
        params![lo, hi, now],
    )
}

/// Drops `dst` when it is `src` itself cataloged a moment early under its new name: the
/// same inode and content, and no history of its own (one version, a `created` event, no
/// tags or collections). A reconcile scan that walks a directory already renamed finds
/// its files at the new paths before the rename's event moves their rows there; without
/// this the rename would end their history and the twins would start a new one.
/// Returns whether it was dropped (the rename then proceeds as onto a free path).
fn drop_twin(conn: &Connection, src: &Row, dst: &Row) -> rusqlite::Result<bool> {
    let twin = dst.is_present()
        && dst.id != src.id
        && dst.fp.inode == src.fp.inode
        && dst.sha256.is_some()
        && dst.sha256 == src.sha256;
    if !twin {
        return Ok(false);
    }
    if has_own_history(conn, dst.id)? {
        return Ok(false);
    }
    conn.prepare_cached("DELETE FROM files WHERE id = ?1")?
        .execute([dst.id])?;
    Ok(true)
}

/// Whether file `id` has a history of its own: more than one version, an event besides
/// its `created`, tags or collections.
fn has_own_history(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT (SELECT count(*) FROM versions WHERE file_id = ?1) != 1 \
         OR EXISTS (SELECT 1 FROM events WHERE file_id = ?1 AND kind != 'created') \
         OR EXISTS (SELECT 1 FROM tags WHERE file_id = ?1) \
         OR EXISTS (SELECT 1 FROM collection_members WHERE file_id = ?1)",
    )?
    .query_row([id], |r| r.get(0))
}

/// How recently a file renamed over another must have been cataloged, with no history of
/// its own, to be taken for a save's temp name (see [`adopt`]).
const TEMP_AGE_NS: i64 = 10 * 60 * 1_000_000_000;

/// Gives the row at `dst` the current content of `src` (a new version unless equal): a
/// rename onto a path that has its own history continues that one. `src` is then marked
/// deleted, or dropped when it was a save's temp name: cataloged in the last
/// [`TEMP_AGE_NS`] with no history of its own (`name.part` written and renamed over
/// `name`, git's `index.lock` over `index`), whose one version is now `dst`'s newest.
fn adopt(conn: &Connection, src: &Row, dst_path: &str, now: i64) -> rusqlite::Result<()> {
    if let Some(sha) = &src.sha256 {
        let c = NewContent {
            sha256: sha.clone(),
            fp: src.fp,
            mime: src.mime.clone().unwrap_or_default(),
            stored: src.content_stored,
            restored_from: None,
            mode: None,
            stored_bytes: None,
        };
        apply_content(conn, dst_path, "", &c, now)?;
    }
    let created_ns: i64 = conn
        .prepare_cached("SELECT created_ns FROM files WHERE id = ?1")?
        .query_row([src.id], |r| r.get(0))?;
    if src.sha256.is_some()
        && now.saturating_sub(created_ns) < TEMP_AGE_NS
        && !has_own_history(conn, src.id)?
    {
        conn.prepare_cached("DELETE FROM files WHERE id = ?1")?
            .execute([src.id])?;
        return Ok(());
    }
    mark_deleted(conn, &src.path, now)?;
    Ok(())
}

/// Renames file `from` to `to`, keeping its id and history. When `to` has a row already,
/// that row continues with the moved content and `from` is marked deleted. Returns the id
/// of the row now at `to`, or `None` when `from` was not cataloged (the caller catalogs
/// `to` as new content).
pub fn rename_file(
    conn: &Connection,
    from: &str,
    to: &str,
    owner: &str,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    let Some(src) = row_by_path(conn, from)?.filter(Row::is_present) else {
        return Ok(None);
    };
    if let Some(dst) = row_by_path(conn, to)? {
        if !drop_twin(conn, &src, &dst)? {
            adopt(conn, &src, to, now)?;
            return Ok(Some(dst.id));
        }
    }
    conn.prepare_cached("UPDATE files SET path = ?2, owner = ?3, updated_ns = ?4 WHERE id = ?1")?
        .execute(params![src.id, to, owner, now])?;
    event(conn, src.id, now, "renamed", Some(from), Some(to), None)?;
    Ok(Some(src.id))
}

/// Renames directory `from` to `to`: one path-prefix update of every present file under
/// it, no re-hash. Rows already at a destination path continue (see [`rename_file`]).
/// Returns how many files moved.
pub fn rename_dir(conn: &Connection, from: &str, to: &str, now: i64) -> rusqlite::Result<usize> {
    let (lo, hi) = under(from);
    let new_path = "?3 || substr(path, length(?4) + 1)";
    let collisions: Vec<(i64, String)> = {
        let mut stmt = conn.prepare(
            "SELECT s.id, d.path FROM files s JOIN files d ON d.path = ?3 || substr(s.path, length(?4) + 1) \
             WHERE s.path > ?1 AND s.path < ?2 AND s.status != 'deleted'",
        )?;
        let rows = stmt.query_map(params![lo, hi, to, from], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (src_id, dst_path) in collisions {
        let (Some(src), Some(dst)) = (row_by_id(conn, src_id)?, row_by_path(conn, &dst_path)?)
        else {
            continue;
        };
        if !drop_twin(conn, &src, &dst)? {
            adopt(conn, &src, &dst_path, now)?;
        }
    }
    conn.execute(
        &format!(
            "INSERT INTO events (file_id, at_ns, kind, old_path, new_path) SELECT id, ?5, 'renamed', path, {new_path} \
             FROM files WHERE path > ?1 AND path < ?2 AND status != 'deleted'"
        ),
        params![lo, hi, to, from, now],
    )?;
    conn.execute(
        &format!(
            "UPDATE files SET path = {new_path}, \
             owner = CASE WHEN instr({new_path}, '/') > 0 THEN substr({new_path}, 1, instr({new_path}, '/') - 1) ELSE '' END, \
             updated_ns = ?5 WHERE path > ?1 AND path < ?2 AND status != 'deleted'"
        ),
        params![lo, hi, to, from, now],
    )
}

/// Drops the stored content of versions of `file_id` that are neither among the last
/// `keep` nor younger than `min_age_ns`. Returns the checksums no stored version
/// references any more (their objects can go).
pub fn prune(
    conn: &Connection,
    file_id: i64,
    keep: u32,
    min_age_ns: i64,
    now: i64,
) -> rusqlite::Result<Vec<String>> {
    let shas: Vec<String> = {
        let mut stmt = conn.prepare_cached(
            "UPDATE versions SET content_stored = 0 WHERE file_id = ?1 AND content_stored = 1 AND cataloged_ns < ?2 \
             AND version <= (SELECT max(version) FROM versions WHERE file_id = ?1) - ?3 RETURNING sha256",
        )?;
        let rows = stmt.query_map(params![file_id, now - min_age_ns, keep.max(1)], |r| {
            r.get(0)
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    unreferenced(conn, shas)
}

/// Those of `shas` that no version with stored content references.
pub fn unreferenced(conn: &Connection, mut shas: Vec<String>) -> rusqlite::Result<Vec<String>> {
    shas.sort();
    shas.dedup();
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM versions WHERE sha256 = ?1 AND content_stored = 1)",
    )?;
    let mut out = Vec::new();
    for sha in shas {
        if !stmt.query_row([&sha], |r| r.get::<_, bool>(0))? {
            out.push(sha);
        }
    }
    Ok(out)
}

/// Every checksum whose content some version keeps.
pub fn stored_shas(conn: &Connection) -> rusqlite::Result<std::collections::HashSet<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT sha256 FROM versions WHERE content_stored = 1")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
