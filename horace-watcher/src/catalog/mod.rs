//! The SQLite catalog: opening and migrating it, the one writer, and read-only readers.
//!
//! **Invariant:** only the writer thread writes the catalog. Every component that changes
//! it (cataloging, the query service's metadata calls, the snapshot mirror) sends a job to
//! [`Writer::exec`]; queries use [`Readers`], read-only connections that never block it
//! (WAL mode).

pub mod ops;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

/// Schema migrations, applied in order; `PRAGMA user_version` is how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("migrate_v2_fts_insert.sql"),
    include_str!("migrate_v3_search_indexes.sql"),
    include_str!("migrate_v4_version_mode.sql"),
];

/// The catalog file inside the metadata directory.
pub fn catalog_path(metadata_dir: &Path) -> PathBuf {
    metadata_dir.join("catalog.db")
}

/// Errors of the catalog layer.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// SQLite said no.
    #[error("catalog: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file is not a usable catalog (corrupt, or from a newer Horace).
    #[error("catalog {path} is unusable: {why}")]
    Unusable {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The writer thread is gone (the watcher is shutting down).
    #[error("catalog writer has stopped")]
    WriterGone,
}

/// How long a connection waits for a lock before it reports the catalog busy.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    add_under_any(conn)
}

/// The SQL function `under_any(path, dirs)`: whether `path` lies beneath one of `dirs`, a
/// blob of catalog paths each ended by a NUL byte (no file name holds one). The list is
/// sorted once per statement (SQLite keeps it with the bound parameter), then each row
/// costs one binary search: a caller's hidden directories (`query::sight`) as one test,
/// however many there are.
pub const UNDER_ANY: &str = "under_any";

/// `dirs` as [`UNDER_ANY`] takes them.
pub fn under_any_list<'a>(dirs: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut list = Vec::new();
    for d in dirs {
        list.extend_from_slice(d.as_bytes());
        list.push(0);
    }
    list
}

fn add_under_any(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        UNDER_ANY,
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let dirs = ctx.get_or_create_aux(1, |v| -> rusqlite::Result<Vec<Vec<u8>>> {
                Ok(topmost(v.as_blob()?))
            })?;
            let path = ctx.get_raw(0).as_str()?.as_bytes();
            // With no directory beneath another, only the greatest one sorting at or
            // before the path can be its ancestor.
            let i = dirs.partition_point(|d| d.as_slice() <= path);
            Ok(i > 0 && path.starts_with(&dirs[i - 1]))
        },
    )
}

/// The directories of an [`under_any_list`], each with a trailing `/`, sorted, without
/// those beneath another of them.
fn topmost(list: &[u8]) -> Vec<Vec<u8>> {
    let mut dirs: Vec<Vec<u8>> = list
        .split(|&b| b == 0)
        .filter(|d| !d.is_empty())
        .map(|d| [d, b"/"].concat())
        .collect();
    dirs.sort_unstable();
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(dirs.len());
    for d in dirs {
        if !kept.last().is_some_and(|k| d.starts_with(k)) {
            kept.push(d);
        }
    }
    kept
}

/// Opens (creating and migrating if needed) the catalog for writing.
///
/// Checks integrity (`PRAGMA quick_check`) so a corrupt file is detected at start.
pub fn open_writer(path: &Path) -> Result<Connection, CatalogError> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(CatalogError::Unusable {
            path: path.into(),
            why: format!("journal_mode is {mode}, not wal"),
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| CatalogError::Unusable {
            path: path.into(),
            why: e.to_string(),
        })?;
    if check != "ok" {
        return Err(CatalogError::Unusable {
            path: path.into(),
            why: format!("quick_check: {check}"),
        });
    }
    migrate(&conn, path)?;
    Ok(conn)
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), CatalogError> {
    let version: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        return Err(CatalogError::Unusable {
            path: path.into(),
            why: format!(
                "schema version {version} is newer than this Horace ({})",
                MIGRATIONS.len()
            ),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        if version > 0 {
            // Rebuilding an index of a big catalog takes seconds: say why start-up waits.
            tracing::info!(from = i, to = i + 1, "migrating the catalog schema");
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Opens a read-only connection to an existing catalog.
pub fn open_reader(path: &Path) -> Result<Connection, CatalogError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    configure(&conn)?;
    Ok(conn)
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to the one writer connection, which lives on its own thread.
///
/// Cheap to clone. Jobs run one at a time, in the order sent.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Job>,
    /// Jobs run so far: changes whenever the catalog may have changed.
    jobs_run: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    /// Starts the writer thread on an opened connection.
    pub fn spawn(conn: Connection) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let jobs_run = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let handle = std::thread::Builder::new()
            .name("catalog-writer".into())
            .spawn(move || {
                let mut conn = conn;
                while let Some(job) = rx.blocking_recv() {
                    job(&mut conn);
                }
                // Channel closed: every handle dropped. Checkpoint so the WAL is folded in.
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
            })
            .expect("spawn catalog writer thread");
        (Self { tx, jobs_run }, handle)
    }

    /// A number that changes whenever the catalog may have changed (jobs run so far).
    pub fn generation(&self) -> u64 {
        self.jobs_run.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Queues `f` on the writer thread; the receiver yields its result.
    fn send<R, F>(&self, f: F) -> Result<oneshot::Receiver<R>, CatalogError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> R + Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        let jobs_run = self.jobs_run.clone();
        self.tx
            .send(Box::new(move |conn| {
                let r = f(conn);
                // Counted before the caller hears back, so that whatever it asks next sees
                // the new generation.
                jobs_run.fetch_add(1, std::sync::atomic::Ordering::Release);
                let _ = done.send(r);
            }))
            .map_err(|_| CatalogError::WriterGone)?;
        Ok(wait)
    }

    /// Runs `f` on the writer connection and returns its result.
    ///
    /// `f` should open its own transaction (`conn.transaction()`) when it writes more than
    /// one statement.
    pub async fn exec<R, F>(&self, f: F) -> Result<R, CatalogError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> R + Send + 'static,
    {
        self.send(f)?.await.map_err(|_| CatalogError::WriterGone)
    }

    /// Queues a job that does nothing and is not counted as a change (the generation stays):
    /// the receiver yields once the writer has come to it. The watchdog's probe.
    pub fn probe(&self) -> Result<oneshot::Receiver<()>, CatalogError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Box::new(move |_| {
                let _ = done.send(());
            }))
            .map_err(|_| CatalogError::WriterGone)?;
        Ok(wait)
    }

    /// Queues `f` on the writer thread without waiting: the receiver yields its result
    /// (`blocking_recv` from synchronous code). A caller can prepare its next job meanwhile.
    pub fn submit<R, F>(&self, f: F) -> Result<oneshot::Receiver<R>, CatalogError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> R + Send + 'static,
    {
        self.send(f)
    }

    /// Like [`Writer::exec`], for synchronous callers (never from an async task).
    pub fn exec_blocking<R, F>(&self, f: F) -> Result<R, CatalogError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> R + Send + 'static,
    {
        self.send(f)?
            .blocking_recv()
            .map_err(|_| CatalogError::WriterGone)
    }
}

/// A small pool of read-only connections for queries.
#[derive(Clone)]
pub struct Readers {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Readers {
    /// Readers of the catalog at `path` (which must exist: open the writer first).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `f` on a read-only connection on the blocking pool.
    pub async fn with<R, F>(&self, f: F) -> Result<R, CatalogError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> R + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.with_blocking(f))
            .await
            .map_err(|e| CatalogError::Unusable {
                path: self.path.clone(),
                why: format!("reader task: {e}"),
            })?
    }

    /// Runs `f` on a read-only connection on the current thread.
    pub fn with_blocking<R, F>(&self, f: F) -> Result<R, CatalogError>
    where
        F: FnOnce(&Connection) -> R,
    {
        let conn = match self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let r = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // A connection left inside a transaction would pin an old snapshot: drop it.
        if idle.len() < 16 && conn.is_autocommit() {
            idle.push(conn);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_any_finds_the_ancestor_among_many() {
        let conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        // Nested entries, a newline and a backslash escape in names, a sibling that
        // shares a prefix of bytes, and a directory sorting between ancestor and path.
        let dirs = ["a", "a/b", "n\nl", "x\\y", "m/q", "m/p", "zz"];
        let list = under_any_list(dirs);
        let under = |path: &str| -> bool {
            conn.query_row(
                &format!("SELECT {UNDER_ANY}(?1, ?2)"),
                rusqlite::params![path, list],
                |r| r.get(0),
            )
            .unwrap()
        };
        for yes in [
            "a/x",
            "a/b/c",
            "a/zz/deep",
            "n\nl/f",
            "x\\y/f",
            "m/q/r",
            "m/p/s/t",
        ] {
            assert!(under(yes), "{yes}");
        }
        for no in [
            "a", "ab/x", "a0/x", "m/qq/r", "m/o", "m/pp", "n/f", "n", "x\\", "zz", "b",
        ] {
            assert!(!under(no), "{no}");
        }
        let none: bool = conn
            .query_row(
                &format!("SELECT {UNDER_ANY}('a/x', ?1)"),
                [under_any_list([])],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!none);
    }

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = catalog_path(dir.path());
        let conn = open_writer(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        drop(conn);
        open_writer(&path).unwrap();
        let r = open_reader(&path).unwrap();
        let n: i64 = r
            .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        assert!(
            r.execute("DELETE FROM files", []).is_err(),
            "reader must be read-only"
        );
    }

    /// A version 1 catalog holding what `insert` adds, opened (and so migrated) by
    /// `open_writer`, which must bring it to the latest version.
    fn migrated_from_v1(insert: &str) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = catalog_path(dir.path());
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(MIGRATIONS[0]).unwrap();
            old.pragma_update(None, "user_version", 1).unwrap();
            old.execute(insert, []).unwrap();
        }
        let conn = open_writer(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        (dir, conn)
    }

    #[test]
    fn a_version_1_catalog_migrates_and_keeps_its_path_index() {
        let (_dir, conn) = migrated_from_v1(
            "INSERT INTO files(path, owner, created_ns, updated_ns) VALUES ('a/old.txt', 'a', 1, 1)",
        );
        let c = ops::NewContent {
            sha256: "0".repeat(64),
            fp: Default::default(),
            mime: "text/plain".into(),
            stored: false,
            restored_from: None,
            mode: None,
            stored_bytes: None,
        };
        ops::apply_content(&conn, "a/new.txt", "a", &c, 5).unwrap();
        conn.execute(
            "UPDATE files SET path = 'a/renamed.txt' WHERE path = 'a/old.txt'",
            [],
        )
        .unwrap();
        let hits = |q: &str| -> Vec<String> {
            let mut st = conn
                .prepare("SELECT path FROM files WHERE id IN (SELECT rowid FROM files_fts WHERE files_fts MATCH ?1) ORDER BY path")
                .unwrap();
            let rows = st.query_map([q], |r| r.get(0)).unwrap();
            rows.map(Result::unwrap).collect()
        };
        assert_eq!(hits("\"txt\""), ["a/new.txt", "a/renamed.txt"]);
        assert!(hits("\"old\"").is_empty());
        conn.execute("DELETE FROM files WHERE path = 'a/new.txt'", [])
            .unwrap();
        assert_eq!(hits("\"txt\""), ["a/renamed.txt"]);
        let check: rusqlite::Result<()> =
            conn.execute_batch("INSERT INTO files_fts(files_fts) VALUES ('integrity-check')");
        check.unwrap();
    }

    #[test]
    fn a_version_1_catalog_keeps_its_versions_and_gets_mode_and_stored_bytes() {
        let (_dir, conn) = migrated_from_v1(
            "INSERT INTO files(id, path, owner, created_ns, updated_ns, current_version) \
             VALUES (1, 'a/old.txt', 'a', 1, 1, 1)",
        );
        conn.execute(
            "INSERT INTO versions (file_id, version, sha256, size, mtime_ns, cataloged_ns, path, content_stored) \
             VALUES (1, 1, 'h', 3, 1, 1, 'a/old.txt', 1)",
            [],
        )
        .unwrap();
        let old: (Option<u32>, Option<i64>) = conn
            .query_row("SELECT mode, stored_bytes FROM versions", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(old, (None, None), "an old version knows neither");
        // A chmod of the current content records its bits on the current version.
        let c = ops::NewContent {
            sha256: "h".into(),
            fp: Default::default(),
            mime: "text/plain".into(),
            stored: true,
            restored_from: None,
            mode: Some(0o640),
            stored_bytes: None,
        };
        ops::apply_content(&conn, "a/old.txt", "a", &c, 5).unwrap();
        let mode: u32 = conn
            .query_row("SELECT mode FROM versions WHERE version = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn a_version_1_catalog_gets_the_covering_search_indexes() {
        let (_dir, conn) = migrated_from_v1(
            "INSERT INTO files(path, owner, size, created_ns, updated_ns) VALUES ('a/x', 'a', 7, 1, 2)",
        );
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'files' AND sql IS NOT NULL ORDER BY name")
            .unwrap();
        let names: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            names,
            [
                "files_created_path",
                "files_inode",
                "files_mime",
                "files_owner_path",
                "files_size_path",
                "files_status",
                "files_updated_path"
            ]
        );
        // The row is still there, and a range count is answered from the index alone.
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM files f WHERE f.size >= 1 AND f.size <= 9 AND +f.status = 'active'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("COVERING INDEX files_size_path"), "{plan}");
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM files WHERE size = 7 AND path = 'a/x'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn corrupt_file_is_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let path = catalog_path(dir.path());
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        assert!(open_writer(&path).is_err());
    }

    #[tokio::test]
    async fn writer_runs_jobs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = catalog_path(dir.path());
        let (w, h) = Writer::spawn(open_writer(&path).unwrap());
        for i in 0..10 {
            w.exec(move |c| {
                c.execute(
                    "INSERT INTO meta(key, value) VALUES (?1, 'x')",
                    [format!("k{i}")],
                )
            })
            .await
            .unwrap()
            .unwrap();
        }
        let readers = Readers::new(path);
        let n: i64 = readers
            .with(|c| {
                c.query_row("SELECT count(*) FROM meta", [], |r| r.get(0))
                    .unwrap()
            })
            .await
            .unwrap();
        assert_eq!(n, 10);
        drop(w);
        h.join().unwrap();
    }
}
