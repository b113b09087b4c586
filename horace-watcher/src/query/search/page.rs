//! Running a compiled search: the exact total, then one page of ids chosen by the cheaper
//! of two plans, then the summaries of just those files.
//!
//! A filter on an indexed column is answered from its covering index (column, path,
//! status): the count and the page's ids never read a row of `files`. An id-set filter
//! (tags, collection, substring) has no such index. Alone, it is counted from its own
//! index, the status tested against the inactive part of the status index. For the page,
//! testing the status and sorting by path would read the row of every match (a random
//! read each, ~2 µs warm); when the matches are many, the page is cheaper found by walking
//! the sort key's index in order and testing each entry against the set (~0.1 µs an
//! entry), which stops after one page. The walk is bounded: it covers only the first
//! `budget` index entries, and if the page is not complete there (matches clustered late
//! in the order) the row-reading plan runs.

use horace_client::{FileSummary, SearchResult};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};

use super::Built;
use crate::query::files::{version_row, VERSION_COLUMNS};
use crate::query::sql::{fill_tags, summary_row, Res, SUMMARY_COLUMNS, SUMMARY_FROM};

/// Index entries walked for the cost of one random row read (measured on a 1,000,000-file
/// catalog, warm: a tag's 5,000 row reads ~9 ms; a 40,000-entry walk testing the same tag
/// ~7 ms). The walk is tried only when its whole budget costs no more than reading every
/// match's row, so a walk that fails at most doubles the cost.
const WALK_STEPS_PER_ROW_READ: u128 = 10;
/// The walk covers this many times the entries an even spread of matches would need.
const WALK_SLACK: u128 = 4;

/// Runs a compiled search: the total and one page.
pub fn run(conn: &Connection, b: &Built) -> Res<SearchResult> {
    // One snapshot for the count and the page (a reader may be handed a connection that
    // is already in a transaction; then that one is the snapshot).
    let tx = if conn.is_autocommit() {
        Some(conn.unchecked_transaction()?)
    } else {
        None
    };
    let total = count(conn, b)?;
    let mut files = Vec::new();
    if b.limit > 0 && b.offset < total {
        let ids = match walk(conn, b, total)? {
            Some(ids) => ids,
            None => page_ids(conn, b, &b.cond, None)?,
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM {SUMMARY_FROM} WHERE f.id = ?1"
        ))?;
        for id in ids {
            files.push(stmt.query_row([id], summary_row)?);
        }
        fill_tags(conn, &mut files)?;
        if let Some(sha) = &b.sha256 {
            fill_matched_versions(conn, sha, &mut files)?;
        }
    }
    if let Some(tx) = tx {
        tx.commit()?;
    }
    Ok(SearchResult { total, files })
}

/// Gives each file of a content search's page its versions with content `sha`: which
/// version to restore, or whether the content is still stored.
fn fill_matched_versions(conn: &Connection, sha: &str, files: &mut [FileSummary]) -> Res<()> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE sha256 = ?1 AND file_id = ?2 ORDER BY version"
    ))?;
    for f in files {
        let rows = stmt.query_map(rusqlite::params![sha, f.id], version_row)?;
        f.matched_versions = rows.collect::<Result<_, _>>()?;
    }
    Ok(())
}

/// Inactive files up to which a set's count tests the status against the list of all of
/// them (built once, ~0.1 µs a file) rather than probing the status index for each member
/// (~0.4 µs a member).
const FEW_INACTIVE: i64 = 10_000;

/// Inactive files, up to `?1`. INDEXED BY (here and in the counts below): statistics
/// (ANALYZE) taken when every file was active would make the planner scan the whole
/// status index rather than seek its inactive part.
pub(super) const COUNT_INACTIVE: &str = "SELECT count(*) FROM (SELECT 1 FROM files \
     INDEXED BY files_status WHERE status IN ('archived', 'deleted') LIMIT ?1)";

/// The exact number of matches.
fn count(conn: &Connection, b: &Built) -> Res<u64> {
    let sql = match &b.id_set {
        None => format!("SELECT count(*) FROM files f WHERE {}", b.cond),
        Some(set) => {
            // The status CHECK allows three values: active is "neither archived nor
            // deleted", which the small inactive part of the status index answers.
            let inactive: i64 = conn
                .prepare_cached(COUNT_INACTIVE)?
                .query_row([FEW_INACTIVE], |r| r.get(0))?;
            if inactive < FEW_INACTIVE {
                format!(
                    "SELECT count(*) FROM ({set}) s WHERE s.id NOT IN (SELECT id FROM files \
                     INDEXED BY files_status WHERE status IN ('archived', 'deleted'))"
                )
            } else {
                format!(
                    "SELECT count(*) FROM ({set}) s WHERE NOT EXISTS (SELECT 1 FROM files x \
                     INDEXED BY files_status WHERE x.status IN ('archived', 'deleted') AND x.id = s.id)"
                )
            }
        }
    };
    let n: i64 = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(b.params.iter()), |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// The ids of the page, in order; with `bound`, only among index entries up to it.
fn page_ids(conn: &Connection, b: &Built, cond: &str, bound: Option<Vec<Value>>) -> Res<Vec<i64>> {
    let (range, extra) = match bound {
        Some(v) => {
            let marks = vec!["?"; v.len()].join(", ");
            let op = if b.desc { ">=" } else { "<=" };
            (format!(" AND ({}) {op} ({marks})", b.sort_cols), v)
        }
        None => (String::new(), Vec::new()),
    };
    let sql = format!(
        "SELECT f.id FROM files f WHERE {cond}{range} ORDER BY {} LIMIT {} OFFSET {}",
        b.order, b.limit, b.offset
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let ids = stmt
        .query_map(params_from_iter(b.params.iter().chain(extra.iter())), |r| {
            r.get(0)
        })?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// The page by a bounded walk of the sort key's index, when the matches are many enough
/// for it to be the cheaper plan and the page lies within the walk; else `None`.
pub(super) fn walk(conn: &Connection, b: &Built, total: u64) -> Res<Option<Vec<i64>>> {
    let Some(walk_cond) = &b.walk_cond else {
        return Ok(None);
    };
    let wanted = u128::from(b.offset) + u128::from(b.limit);
    if u128::from(total) < wanted {
        return Ok(None); // a short last page: only the whole set can show where it ends
    }
    // At least the number of rows (the index's length), and read from the index in O(log n).
    let rows: Option<i64> = conn
        .prepare_cached("SELECT max(id) FROM files")?
        .query_row([], |r| r.get(0))?;
    let rows = rows.unwrap_or(0).max(0) as u128;
    let total = u128::from(total);
    let budget = WALK_SLACK * wanted * rows / total;
    if budget > WALK_STEPS_PER_ROW_READ * total {
        return Ok(None);
    }
    // The sort key of the index entry `budget` places along the order.
    let n = b.sort_cols.split(", ").count();
    let bound: Option<Vec<Value>> = conn
        .prepare_cached(&format!(
            "SELECT {} FROM files f ORDER BY {} LIMIT 1 OFFSET ?1",
            b.sort_cols, b.order
        ))?
        .query_row([budget as i64], |r| {
            (0..n).map(|i| r.get::<_, Value>(i)).collect()
        })
        .optional()?;
    let whole = bound.is_none();
    let ids = page_ids(conn, b, walk_cond, bound)?;
    // Exact when the page is full (every later entry sorts after it) or the walk covered
    // the whole index.
    Ok((whole || ids.len() == b.limit as usize).then_some(ids))
}
