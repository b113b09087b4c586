//! Catalog-wide answers: duplicates, the snapshot mirror, and status figures.

use std::sync::atomic::Ordering;

use horace_client::{
    DuplicateFile, DuplicateGroup, DuplicatesQuery, DuplicatesResult, ScanInfo, SnapshotEntry,
    StatusReport,
};
use rusqlite::{params, Connection};

use super::search::page_limit;
use super::sql::Res;
use crate::status::Status;

/// How many of the failing paths a status report lists (the last noted).
pub const FAILURES_SHOWN: usize = 20;

/// Nanoseconds in a second: zfs and the scheduler keep whole seconds, the wire carries
/// nanoseconds (docs/api.md, "Times").
pub const NS_PER_SEC: i64 = 1_000_000_000;

/// Most files listed per duplicate group.
pub const MAX_GROUP_FILES: i64 = 1000;

const DUP_GROUPS: &str = "SELECT v.sha256 AS sha, max(v.size) AS one_size, count(*) AS n
    FROM files f JOIN versions v ON v.file_id = f.id AND v.version = f.current_version
    WHERE f.status = 'active' AND v.size >= ?1
    GROUP BY v.sha256 HAVING count(*) > 1";

/// Groups of active files with the same current content, most wasted bytes first.
pub fn duplicates(conn: &Connection, q: &DuplicatesQuery) -> Res<DuplicatesResult> {
    duplicate_page(conn, q.min_size, page_limit(q.limit)?, q.offset)
}

/// One page of [`duplicates`], of any size.
pub fn duplicate_page(
    conn: &Connection,
    min_size: Option<u64>,
    limit: u32,
    offset: u64,
) -> Res<DuplicatesResult> {
    let min = i64::try_from(min_size.unwrap_or(0)).unwrap_or(i64::MAX);
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM ({DUP_GROUPS})"),
        [min],
        |r| r.get(0),
    )?;
    let mut groups = Vec::new();
    if limit > 0 && offset < total as u64 {
        let mut stmt = conn.prepare_cached(&format!(
            "{DUP_GROUPS} ORDER BY one_size * (n - 1) DESC, sha LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = stmt.query_map(params![min, limit, offset as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let heads: Vec<_> = rows.collect::<Result<_, _>>()?;
        let mut files = conn.prepare_cached(
            "SELECT f.id, f.path FROM versions v JOIN files f ON f.id = v.file_id AND f.current_version = v.version
             WHERE v.sha256 = ?1 AND f.status = 'active' ORDER BY f.path LIMIT ?2",
        )?;
        for (sha256, size, n) in heads {
            let list = files.query_map(params![sha256, MAX_GROUP_FILES], |r| {
                Ok(DuplicateFile {
                    id: r.get(0)?,
                    path: r.get(1)?,
                })
            })?;
            groups.push(DuplicateGroup {
                files: list.collect::<Result<_, _>>()?,
                sha256,
                size: size.max(0) as u64,
                count: n as u64,
            });
        }
    }
    Ok(DuplicatesResult {
        total_groups: total as u64,
        groups,
    })
}

/// The snapshot mirror, oldest first.
pub fn snapshots(conn: &Connection) -> Res<Vec<SnapshotEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, dataset, creation, used, label, managed FROM snapshots ORDER BY creation, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SnapshotEntry {
            name: r.get(0)?,
            dataset: r.get(1)?,
            created_ns: r.get::<_, i64>(2)?.saturating_mul(NS_PER_SEC),
            used: r.get::<_, i64>(3)?.max(0) as u64,
            label: r.get(4)?,
            managed: r.get::<_, i64>(5)? != 0,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The catalog's part of the status report.
pub fn catalog_figures(conn: &Connection, r: &mut StatusReport) -> Res<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT status, count(*), coalesce(sum(size), 0) FROM files GROUP BY status",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (status, n, bytes) = row?;
        match status.as_str() {
            "active" => {
                r.files_active = n as u64;
                r.bytes_active = bytes as u64;
            }
            "archived" => r.files_archived = n as u64,
            _ => r.files_deleted += n as u64,
        }
    }
    let (versions, stored): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(content_stored != 0), 0) FROM versions",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    r.versions = versions as u64;
    r.versions_stored = stored as u64;
    r.bytes_stored = conn.query_row(
        "SELECT coalesce(sum(size), 0) FROM (SELECT max(size) AS size FROM versions WHERE content_stored != 0 GROUP BY sha256)",
        [],
        |row| row.get::<_, i64>(0),
    )? as u64;
    r.collections = conn.query_row("SELECT count(*) FROM collections", [], |row| {
        row.get::<_, i64>(0)
    })? as u64;
    r.snapshots = conn.query_row("SELECT count(*) FROM snapshots", [], |row| {
        row.get::<_, i64>(0)
    })? as u64;
    // Horace's own newest snapshot: what "last taken" is after a restart too.
    let newest: Option<i64> = conn.query_row(
        "SELECT max(creation) FROM snapshots WHERE managed != 0",
        [],
        |row| row.get(0),
    )?;
    r.last_snapshot_ns = newest.map(|s| s.saturating_mul(NS_PER_SEC));
    Ok(())
}

/// The live part of the status report.
pub fn live_figures(s: &Status, snapshots_enabled: bool, r: &mut StatusReport) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    r.version = env!("CARGO_PKG_VERSION").to_string();
    r.queue_depth = get(&s.queue_depth);
    r.event_lag_us = get(&s.event_lag_us);
    r.versions_cataloged = get(&s.versions_cataloged);
    r.files_hashed = get(&s.files_hashed);
    r.recrawls = get(&s.recrawls);
    r.overflows = get(&s.overflows);
    r.lease_fallbacks = get(&s.lease_fallbacks);
    r.watch_failures = get(&s.watch_failures);
    r.ready = s.ready.load(Ordering::Relaxed);
    let (not_stored, recent) = crate::store::budget().refused();
    r.versions_not_stored = not_stored;
    r.not_stored = recent
        .into_iter()
        .map(|(path, cause)| horace_client::PathFailure { path, cause })
        .collect();
    r.snapshots_enabled = snapshots_enabled;
    r.zfsd_reachable = s.zfsd_reachable.load(Ordering::Relaxed);
    // The scheduler's own record since start, or the newest managed snapshot in the
    // mirror (catalog_figures), whichever is later.
    let taken = s.last_snapshot.load(Ordering::Relaxed);
    if taken > 0 {
        let taken = Some(taken.saturating_mul(NS_PER_SEC));
        r.last_snapshot_ns = r.last_snapshot_ns.max(taken);
    }
    s.with_detail(|d| {
        r.last_scan = d.last_scan.clone().map(|l| ScanInfo {
            reason: l.reason,
            started_ns: l.started_ns,
            finished_ns: l.finished_ns,
            files_seen: l.files_seen,
            files_hashed: l.files_hashed,
            files_deleted: l.files_deleted,
        });
        // Not all of a long failure list: how many, and the last few.
        r.failures_total = d.failures.len() as u64;
        r.failures = d.recent_failures(FAILURES_SHOWN);
        r.zfsd_error = d.zfsd_error.clone();
        r.prune_refused = d.prune_refused.clone();
        r.last_backup_ns = d.last_backup.map(|s| s.saturating_mul(NS_PER_SEC));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    #[test]
    fn snapshots_duplicates_and_figures_from_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let conn = catalog::open_writer(&catalog::catalog_path(dir.path())).unwrap();
        conn.execute_batch(
            "INSERT INTO snapshots VALUES ('tank/f@horace_2024-01-02T00:00:00Z_daily', 'tank/f', 200, 10, 'daily', 1);
             INSERT INTO snapshots VALUES ('tank/f@manual', 'tank/f', 100, 5, NULL, 0);
             INSERT INTO files(id, path, owner, size, current_version, status, created_ns, updated_ns) VALUES
               (1, 'a', '', 10, 1, 'active', 1, 1), (2, 'b', '', 10, 1, 'active', 1, 1),
               (3, 'c', '', 10, 1, 'deleted', 1, 1), (4, 'd', '', 99, 2, 'archived', 1, 1);
             INSERT INTO versions(file_id, version, sha256, size, mtime_ns, cataloged_ns, path, content_stored) VALUES
               (1, 1, 'x', 10, 0, 0, 'a', 1), (2, 1, 'x', 10, 0, 0, 'b', 1), (3, 1, 'x', 10, 0, 0, 'c', 1),
               (4, 1, 'y', 50, 0, 0, 'd', 0), (4, 2, 'z', 99, 0, 0, 'd', 1);",
        )
        .unwrap();
        let s = snapshots(&conn).unwrap();
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["tank/f@manual", "tank/f@horace_2024-01-02T00:00:00Z_daily"]
        );
        assert!(s[1].managed && s[1].label.as_deref() == Some("daily") && !s[0].managed);

        let d = duplicates(&conn, &DuplicatesQuery::default()).unwrap();
        assert_eq!(d.total_groups, 1, "the deleted copy does not count");
        assert_eq!((d.groups[0].count, d.groups[0].size), (2, 10));
        assert_eq!(
            d.groups[0]
                .files
                .iter()
                .map(|f| (f.id, f.path.as_str()))
                .collect::<Vec<_>>(),
            [(1, "a"), (2, "b")]
        );
        let page = duplicates(
            &conn,
            &DuplicatesQuery {
                offset: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(page.groups.is_empty() && page.total_groups == 1);
        assert!(duplicates(
            &conn,
            &DuplicatesQuery {
                limit: Some(1001),
                ..Default::default()
            }
        )
        .is_err());

        let mut r = StatusReport::default();
        catalog_figures(&conn, &mut r).unwrap();
        assert_eq!(
            (r.files_active, r.files_archived, r.files_deleted),
            (2, 1, 1)
        );
        assert_eq!((r.versions, r.versions_stored), (5, 4));
        assert_eq!(
            (r.bytes_active, r.bytes_stored, r.snapshots),
            (20, 10 + 99, 2)
        );
    }
}
