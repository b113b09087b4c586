//! How the query service runs a catalog read: inside one read transaction, and — for the
//! point lookups that make up most calls — right on the async worker under a strict budget
//! instead of a hop to the blocking pool.
//!
//! A `file_info` is five indexed lookups, tens of microseconds; handing it to the blocking
//! pool and back cost more than the lookups (two thread wake-ups per call, measured with
//! perf under the figure 6 benchmark). So [`try_inline`] runs such a read on the current
//! thread with SQLite's progress handler armed: past [`INLINE_BUDGET`] the read is
//! interrupted, and so is one that would wait for a lock (busy timeout 0), and the caller
//! runs it again on the blocking pool. The runtime is never held longer than the budget
//! (plus the page reads of one b-tree step).

use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

use super::sql::{Fail, Res};
use crate::catalog;

/// Longest a read may hold an async worker before it moves to the blocking pool.
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);
/// SQLite virtual-machine steps between two looks at the clock while inline.
const PROGRESS_STEPS: i32 = 1000;

/// Runs `f` inside one read transaction, so its statements see one state of the catalog
/// and take the WAL read lock once, not once per statement.
pub fn in_snapshot<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Res<T>) -> Res<T> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let r = f(conn);
    // A read-only transaction: COMMIT only ends it. A connection left inside one (this
    // failing) is not returned to the pool (catalog::Readers).
    let end = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]));
    match (r, end) {
        (Ok(v), Ok(_)) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.into()),
    }
}

/// Runs `f` in a snapshot on the current thread within [`INLINE_BUDGET`]; `None` when it
/// was cut off (too long, or it would have waited for a lock): run it on the blocking
/// pool instead.
pub fn try_inline<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Res<T>) -> Option<Res<T>> {
    let deadline = Instant::now() + INLINE_BUDGET;
    if conn.busy_timeout(Duration::ZERO).is_err() {
        return None;
    }
    let r = {
        let _armed = Progress::arm(conn, &deadline);
        in_snapshot(conn, f)
    };
    let restored = conn.busy_timeout(catalog::BUSY_TIMEOUT);
    match r {
        Err(Fail::Sql(e)) if cut_off(&e) => None,
        r => restored.is_ok().then_some(r),
    }
}

/// SQLite's progress handler, installed while it lives: interrupts the running statement
/// once `deadline` has passed. (Raw FFI: rusqlite's safe wrapper needs its `hooks`
/// feature and boxes a closure per call.)
struct Progress<'a> {
    conn: &'a Connection,
}

impl<'a> Progress<'a> {
    fn arm(conn: &'a Connection, deadline: &'a Instant) -> Self {
        unsafe extern "C" fn past(deadline: *mut std::ffi::c_void) -> std::ffi::c_int {
            // SAFETY: the pointer is the `&Instant` given to `arm`, which outlives the
            // handler (removed in `drop`, before that borrow ends).
            let deadline = unsafe { &*(deadline as *const Instant) };
            std::ffi::c_int::from(Instant::now() > *deadline)
        }
        // SAFETY: the handle is a live connection used on this thread only (we hold
        // `&Connection`, which is not Sync); the user data outlives the registration.
        unsafe {
            rusqlite::ffi::sqlite3_progress_handler(
                conn.handle(),
                PROGRESS_STEPS,
                Some(past),
                deadline as *const Instant as *mut std::ffi::c_void,
            );
        }
        Self { conn }
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `arm`; a null callback removes the handler.
        unsafe {
            rusqlite::ffi::sqlite3_progress_handler(
                self.conn.handle(),
                0,
                None,
                std::ptr::null_mut(),
            );
        }
    }
}

fn cut_off(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::OperationInterrupted | ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog_with_rows(n: i64) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = catalog::catalog_path(dir.path());
        let w = catalog::open_writer(&path).unwrap();
        w.execute_batch("CREATE TABLE t(x INTEGER)").unwrap();
        w.execute(
            "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < ?1)
             INSERT INTO t SELECT x FROM s",
            [n],
        )
        .unwrap();
        (dir, catalog::open_reader(&path).unwrap())
    }

    #[test]
    fn short_reads_run_inline_long_ones_are_cut_off() {
        let (_dir, r) = catalog_with_rows(1000);
        let n = try_inline(&r, |c| {
            Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?)
        });
        assert_eq!(n.unwrap().unwrap(), 1000);
        // A read far past the budget is interrupted and the connection is usable after.
        let slow = try_inline(&r, |c| {
            Ok(c.query_row("SELECT count(*) FROM t a, t b, t c", [], |r| {
                r.get::<_, i64>(0)
            })?)
        });
        assert!(slow.is_none());
        assert!(r.is_autocommit(), "the snapshot was ended");
        let again = try_inline(&r, |c| {
            Ok(c.query_row("SELECT max(x) FROM t", [], |r| r.get::<_, i64>(0))?)
        });
        assert_eq!(again.unwrap().unwrap(), 1000);
    }

    #[test]
    fn a_snapshot_ends_even_when_the_read_fails() {
        let (_dir, r) = catalog_with_rows(3);
        let e = in_snapshot(&r, |c| {
            Ok(c.query_row("SELECT nope FROM t", [], |r| r.get::<_, i64>(0))?)
        });
        assert!(matches!(e, Err(Fail::Sql(_))));
        assert!(r.is_autocommit());
    }
}
