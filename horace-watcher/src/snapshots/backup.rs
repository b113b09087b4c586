//! Catalog backups with `VACUUM INTO` (`<metadata_dir>/backups/catalog-<UTC>.db`), and
//! recovery of a corrupt or missing catalog at start.
//!
//! A backup is written under a temporary name, synced and renamed, so a half-written file
//! is never taken for a backup. Recovery moves a corrupt catalog aside
//! (`catalog.db.corrupt-<UTC>`), restores the newest backup that opens and passes
//! `quick_check`, and leaves the rest to the watcher's startup reconcile scan.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Connection, ErrorCode};

use crate::catalog::{self, CatalogError};
use crate::{Config, Context};

/// The backup directory inside the metadata directory.
pub fn backups_dir(metadata_dir: &Path) -> PathBuf {
    metadata_dir.join("backups")
}

fn utc_stamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// The backups in `dir`, newest first (their names sort by time).
pub fn list_backups(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("catalog-") && n.ends_with(".db"))
        })
        .collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

/// Writes a backup of the catalog open on `conn` into `dir` and returns its path.
pub(crate) fn vacuum_into(conn: &Connection, dir: &Path) -> Result<PathBuf, CatalogError> {
    let io = |e: std::io::Error| CatalogError::Unusable {
        path: dir.into(),
        why: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let stamp = utc_stamp();
    let tmp = dir.join(format!(".catalog-{stamp}.db.tmp"));
    let done = dir.join(format!("catalog-{stamp}.db"));
    let _ = std::fs::remove_file(&tmp);
    conn.execute("VACUUM INTO ?1", [tmp.to_string_lossy()])?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, &done).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    Ok(done)
}

/// Deletes all but the newest `keep` (at least one) backups in `dir`; returns the deleted.
pub fn prune_backups(dir: &Path, keep: u32) -> Vec<PathBuf> {
    let old: Vec<PathBuf> = list_backups(dir)
        .into_iter()
        .skip(keep.max(1) as usize)
        .collect();
    old.into_iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .collect()
}

/// Backs the catalog up now (through the writer), then prunes old backups.
pub(crate) async fn backup_now(ctx: &Context) -> Result<PathBuf, CatalogError> {
    let dir = backups_dir(&ctx.config.metadata_dir);
    let path = {
        let dir = dir.clone();
        ctx.writer
            .exec(move |conn| vacuum_into(conn, &dir))
            .await??
    };
    let keep = ctx.config.catalog.backups_keep;
    let _ = tokio::task::spawn_blocking(move || prune_backups(&dir, keep)).await;
    ctx.status
        .with_detail(|d| d.last_backup = Some(chrono::Utc::now().timestamp()));
    Ok(path)
}

/// When the first backup is due: one interval after the newest existing backup, or now.
pub(crate) fn first_due(config: &Config) -> Option<Instant> {
    let interval = config.catalog.interval()?;
    let newest = list_backups(&backups_dir(&config.metadata_dir))
        .into_iter()
        .next();
    let age = newest
        .and_then(|p| std::fs::metadata(p).ok()?.modified().ok())
        .and_then(|m| SystemTime::now().duration_since(m).ok());
    Some(Instant::now() + age.map_or(Duration::ZERO, |a| interval.saturating_sub(a)))
}

/// Whether an open failure means the file itself is damaged (and may be moved aside),
/// rather than e.g. locked, unreadable, or from a newer Horace.
fn is_corrupt(e: &CatalogError) -> bool {
    match e {
        CatalogError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
            matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
        }
        CatalogError::Unusable { why, .. } => {
            why.starts_with("quick_check")
                || why.contains("malformed")
                || why.contains("not a database")
        }
        _ => false,
    }
}

/// Renames `path` and its `-wal`/`-shm` files to `<name><suffix>…`, if they exist.
fn move_aside(path: &Path, suffix: &str) -> std::io::Result<()> {
    for side in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{side}", path.display()));
        if from.exists() {
            std::fs::rename(&from, format!("{}{suffix}{side}", path.display()))?;
        }
    }
    Ok(())
}

/// Copies `backup` into place at `path` once it has opened and passed `quick_check`.
fn restore_from(backup: &Path, path: &Path) -> Result<Connection, CatalogError> {
    let io = |e: std::io::Error| CatalogError::Unusable {
        path: path.into(),
        why: e.to_string(),
    };
    let tmp = PathBuf::from(format!("{}.restoring", path.display()));
    move_aside(&tmp, ".old").ok();
    std::fs::copy(backup, &tmp).map_err(io)?;
    let checked = catalog::open_writer(&tmp);
    drop(checked?);
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    catalog::open_writer(path)
}

/// Opens the catalog; when it is corrupt or missing, restores the newest backup (a
/// reconcile scan then brings it up to date) or starts empty, and logs which.
pub fn open_or_recover(config: &Config) -> Result<Connection, CatalogError> {
    let path = catalog::catalog_path(&config.metadata_dir);
    let existed = path.exists();
    let io = |e: std::io::Error| CatalogError::Unusable {
        path: path.clone(),
        why: e.to_string(),
    };
    if existed {
        // SQLite takes a 0-byte (or header-short) file for a new, empty database: that is
        // a catalog someone truncated, never one to carry on with.
        let len = std::fs::metadata(&path).map_err(io)?.len();
        let (damage, why) = if len < SQLITE_HEADER_LEN {
            ("truncated", format!("{len} bytes"))
        } else {
            match catalog::open_writer(&path) {
                Ok(conn) => return Ok(conn),
                Err(e) if is_corrupt(&e) => ("corrupt", e.to_string()),
                Err(e) => return Err(e),
            }
        };
        let aside = format!(".{damage}-{}", utc_stamp());
        tracing::error!(path = %path.display(), error = %why, moved_to = %format!("{}{aside}", path.display()), "the catalog is {damage}; moving it aside");
        move_aside(&path, &aside).map_err(io)?;
        hold_collection(
            config,
            &format!("catalog.db was {damage} ({why}; moved aside as catalog.db{aside})"),
        )?;
    } else {
        // A WAL left behind by a lost catalog must not be applied to a new one.
        move_aside(&path, &format!(".orphan-{}", utc_stamp())).map_err(io)?;
        if config.metadata_dir.join("objects").exists() {
            hold_collection(
                config,
                "catalog.db was missing while the content store holds objects",
            )?;
        }
    }
    let backups = list_backups(&backups_dir(&config.metadata_dir));
    for b in &backups {
        match restore_from(b, &path) {
            Ok(conn) => {
                tracing::warn!(
                    backup = %b.display(),
                    "catalog {} restored from the newest usable backup; the startup scan catalogs \
                     what changed since (intermediate versions after the backup are not known)",
                    if existed { "was corrupt and is" } else { "was missing and is" }
                );
                return Ok(conn);
            }
            Err(e) => {
                tracing::warn!(backup = %b.display(), error = %e, "backup unusable; trying an older one")
            }
        }
    }
    let first_run = !existed && backups.is_empty() && !config.metadata_dir.join("objects").exists();
    if first_run {
        tracing::info!(path = %path.display(), "creating a new catalog at {}", path.display());
    } else {
        tracing::warn!(
            path = %path.display(),
            "no usable catalog backup: starting an empty catalog; history before now is lost, \
             the startup scan catalogs what is on disk"
        );
    }
    catalog::open_writer(&path)
}

/// SQLite's file header: a database file is never shorter.
const SQLITE_HEADER_LEN: u64 = 100;

/// The marker that holds the content store's garbage collection after a catalog recovery.
pub fn collection_hold_path(metadata_dir: &Path) -> PathBuf {
    metadata_dir.join("collection-held")
}

/// Why garbage collection of the content store is held, if it is: the catalog was
/// recovered (from a backup, or empty), so it may know less history than the store holds
/// objects. The objects are kept until the operator removes the marker (docs/reliability.md).
pub fn collection_held(metadata_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(collection_hold_path(metadata_dir)).ok()?;
    Some(text.trim().to_string())
}

/// Writes the hold marker (durably: a crash right after must not let the next run collect).
fn hold_collection(config: &Config, why: &str) -> Result<(), CatalogError> {
    let path = collection_hold_path(&config.metadata_dir);
    let text = format!(
        "{why}, at {}: objects the catalog does not know are kept; remove this file to let the \
         store collect them\n",
        utc_stamp()
    );
    let io = |e: std::io::Error| CatalogError::Unusable {
        path: path.clone(),
        why: format!("cannot write the collection hold: {e}"),
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io)?;
    tracing::warn!(marker = %path.display(), "{}", text.trim());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        Config::for_dirs("/nonexistent-files-root", dir)
    }

    fn insert_file(conn: &Connection, path: &str) {
        conn.execute(
            "INSERT INTO files(path, owner, created_ns, updated_ns) VALUES (?1, '', 1, 1)",
            [path],
        )
        .unwrap();
    }

    fn paths(conn: &Connection) -> Vec<String> {
        let mut s = conn
            .prepare("SELECT path FROM files ORDER BY path")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn backups_rotate_and_a_corrupt_catalog_is_restored_from_the_newest() {
        let md = tempfile::tempdir().unwrap();
        let cfg = config(md.path());
        let conn = open_or_recover(&cfg).unwrap();
        let dir = backups_dir(md.path());
        for name in ["a", "b", "c"] {
            insert_file(&conn, name);
            vacuum_into(&conn, &dir).unwrap();
            std::thread::sleep(Duration::from_millis(5)); // distinct millisecond stamps
        }
        assert_eq!(list_backups(&dir).len(), 3);
        assert_eq!(prune_backups(&dir, 2).len(), 1);
        assert_eq!(list_backups(&dir).len(), 2);
        insert_file(&conn, "d");
        drop(conn);

        let path = catalog::catalog_path(md.path());
        std::fs::write(&path, vec![0x42; 64 * 1024]).unwrap();
        let conn = open_or_recover(&cfg).unwrap();
        assert_eq!(
            paths(&conn),
            ["a", "b", "c"],
            "history up to the newest backup"
        );
        let aside = std::fs::read_dir(md.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("catalog.db.corrupt-")
            })
            .count();
        assert!(aside >= 1, "corrupt file kept for inspection");
    }

    #[test]
    fn a_missing_catalog_skips_a_damaged_newest_backup() {
        let md = tempfile::tempdir().unwrap();
        let cfg = config(md.path());
        let conn = open_or_recover(&cfg).unwrap();
        insert_file(&conn, "kept");
        let dir = backups_dir(md.path());
        vacuum_into(&conn, &dir).unwrap();
        drop(conn);
        std::fs::write(dir.join("catalog-99991231T000000.000Z.db"), b"garbage").unwrap();
        let path = catalog::catalog_path(md.path());
        std::fs::remove_file(&path).unwrap();
        let conn = open_or_recover(&cfg).unwrap();
        assert_eq!(paths(&conn), ["kept"]);
    }

    #[test]
    fn an_emptied_catalog_is_moved_aside_restored_and_holds_collection() {
        let md = tempfile::tempdir().unwrap();
        let cfg = config(md.path());
        let conn = open_or_recover(&cfg).unwrap();
        assert_eq!(
            collection_held(md.path()),
            None,
            "a first run holds nothing"
        );
        insert_file(&conn, "history");
        vacuum_into(&conn, &backups_dir(md.path())).unwrap();
        drop(conn);
        let path = catalog::catalog_path(md.path());
        for len in [0, 37] {
            std::fs::write(&path, vec![0; len]).unwrap();
            let conn = open_or_recover(&cfg).unwrap();
            assert_eq!(paths(&conn), ["history"], "{len} bytes");
            let why = collection_held(md.path()).expect("collection held");
            assert!(why.contains(&format!("{len} bytes")), "{why}");
        }
        let kept = std::fs::read_dir(md.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".truncated-"))
            .count();
        assert!(kept >= 1, "the truncated catalog is kept");
    }

    #[test]
    fn without_a_backup_a_corrupt_catalog_starts_empty() {
        let md = tempfile::tempdir().unwrap();
        let cfg = config(md.path());
        let path = catalog::catalog_path(md.path());
        std::fs::write(&path, vec![0x42; 8192]).unwrap();
        let conn = open_or_recover(&cfg).unwrap();
        assert!(paths(&conn).is_empty());
    }

    #[test]
    fn first_backup_is_due_one_interval_after_the_newest() {
        let md = tempfile::tempdir().unwrap();
        let mut cfg = config(md.path());
        cfg.catalog.backup_interval = 3600;
        let now = Instant::now();
        assert!(first_due(&cfg).unwrap() <= now + Duration::from_secs(1));
        let conn = open_or_recover(&cfg).unwrap();
        vacuum_into(&conn, &backups_dir(md.path())).unwrap();
        assert!(first_due(&cfg).unwrap() > now + Duration::from_secs(3500));
        cfg.catalog.backup_interval = 0;
        assert!(first_due(&cfg).is_none());
    }
}
