//! Search: a [`SearchQuery`] turned into one parameterized SQL condition (never string
//! concatenation of caller text), a count and one page.

use horace_client::{
    ContentMatch, QueryError, SearchQuery, SortKey, SortOrder, DEFAULT_LIMIT, MAX_LIMIT,
};
use rusqlite::types::Value;

/// Longest filter string (glob, substring, tag, …) in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Most tags in one filter list.
pub const MAX_FILTER_TAGS: usize = 100;

/// A search compiled to SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// `WHERE` condition over `files f`.
    pub cond: String,
    /// Its parameters, in order.
    pub params: Vec<Value>,
    /// `cond` with its id-set filters (tags, collection, substring: `f.id IN (…)`) written
    /// `+f.id IN (…)`, so that they cannot drive the plan and a page can be read by walking
    /// the sort key's index instead; `None` without such a filter. Same parameters.
    pub walk_cond: Option<String>,
    /// The id-set subquery (a column `id`, no duplicates) when it is the only filter and the
    /// status is the default: the count then comes from that set's own index, never
    /// reading a row of `files` (see `page::count`). Same parameters.
    pub id_set: Option<String>,
    /// `ORDER BY` clause.
    pub order: String,
    /// The sort key's columns, path last (it makes the order total).
    pub sort_cols: &'static str,
    /// Descending order.
    pub desc: bool,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
    /// The checksum of a content search (lower case): each file of the page then lists
    /// its versions with that content.
    pub sha256: Option<String>,
    /// The owner the search is limited to, if any: hidden directories of other owners
    /// cannot hold a match ([`leave_out`]).
    pub owner: Option<String>,
}

/// One `AND` term of a search.
struct Term {
    sql: String,
    params: Vec<Value>,
    /// For an id-set filter: the subquery yielding the file ids (a column named `id`).
    set: Option<String>,
}

fn too_large(what: &str, limit: usize) -> QueryError {
    QueryError::TooLarge {
        what: what.into(),
        limit: limit as u64,
    }
}

fn invalid(message: String) -> QueryError {
    QueryError::InvalidArgument { message }
}

/// Checks a page size: default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`].
pub fn page_limit(limit: Option<u32>) -> Result<u32, QueryError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if n > MAX_LIMIT => Err(invalid(format!(
            "limit {n} is over the maximum of {MAX_LIMIT}; page with offset"
        ))),
        Some(n) => Ok(n),
    }
}

fn check_len(what: &str, s: &str) -> Result<(), QueryError> {
    if s.len() > MAX_FILTER_LEN {
        return Err(too_large(what, MAX_FILTER_LEN));
    }
    Ok(())
}

/// Escapes `%`, `_` and `\` for `LIKE … ESCAPE '\'`.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Compiles a query; invalid arguments are named errors.
pub fn build(q: &SearchQuery) -> Result<Built, QueryError> {
    let limit = page_limit(q.limit)?;
    let mut terms: Vec<Term> = Vec::new();
    let mut push = |c: &str, p: Vec<Value>| {
        terms.push(Term {
            sql: c.to_string(),
            params: p,
            set: None,
        })
    };
    let mut id_sets: Vec<Term> = Vec::new();
    let mut push_set = |sub: String, p: Vec<Value>| {
        id_sets.push(Term {
            sql: format!("f.id IN ({sub})"),
            params: p,
            set: Some(sub),
        })
    };
    if let Some(g) = &q.path_glob {
        check_len("path glob", g)?;
        push("f.path GLOB ?", vec![Value::Text(g.clone())]);
    }
    if let Some(s) = &q.path_contains {
        check_len("path substring", s)?;
        if s.chars().count() >= 3 {
            // The trigram index answers a quoted phrase as a case-insensitive substring.
            let phrase = format!("\"{}\"", s.replace('"', "\"\""));
            push_set(
                "SELECT rowid AS id FROM files_fts WHERE files_fts MATCH ?".into(),
                vec![Value::Text(phrase)],
            );
        } else if !s.is_empty() {
            push(
                "instr(lower(f.path), lower(?)) > 0",
                vec![Value::Text(s.clone())],
            );
        }
    }
    if let Some(o) = &q.owner {
        check_len("owner", o)?;
        push("f.owner = ?", vec![Value::Text(o.clone())]);
    }
    for (list, what) in [(&q.tags_all, "tags_all"), (&q.tags_any, "tags_any")] {
        if list.len() > MAX_FILTER_TAGS {
            return Err(too_large(what, MAX_FILTER_TAGS));
        }
        for t in list {
            check_len("tag", t)?;
        }
    }
    if !q.tags_all.is_empty() {
        let mut tags = q.tags_all.clone();
        tags.sort();
        tags.dedup();
        let marks = vec!["?"; tags.len()].join(", ");
        let n = tags.len() as i64;
        let mut p: Vec<Value> = tags.into_iter().map(Value::Text).collect();
        p.push(Value::Integer(n));
        push_set(
            format!("SELECT file_id AS id FROM tags WHERE tag IN ({marks}) GROUP BY file_id HAVING count(*) = ?"),
            p,
        );
    }
    if !q.tags_any.is_empty() {
        let mut tags = q.tags_any.clone();
        tags.sort();
        tags.dedup();
        let marks = vec!["?"; tags.len()].join(", ");
        // A file has each tag once: one tag's ids need no DISTINCT (which costs a temp
        // b-tree); several tags' may repeat.
        let distinct = if tags.len() > 1 { "DISTINCT " } else { "" };
        push_set(
            format!("SELECT {distinct}file_id AS id FROM tags WHERE tag IN ({marks})"),
            tags.into_iter().map(Value::Text).collect(),
        );
    }
    if let Some(c) = &q.collection {
        check_len("collection", c)?;
        push_set(
            "SELECT m.file_id AS id FROM collection_members m JOIN collections c ON c.id = m.collection_id WHERE c.name = ?".into(),
            vec![Value::Text(c.clone())],
        );
    }
    if let Some(m) = &q.mime {
        check_len("mime", m)?;
        if let Some(major) = m.strip_suffix("/*") {
            // A range on the index: "image/" <= mime < "image0" ('0' follows '/').
            push(
                "(f.mime >= ? AND f.mime < ?)",
                vec![
                    Value::Text(format!("{major}/")),
                    Value::Text(format!("{major}0")),
                ],
            );
        } else {
            push("f.mime = ?", vec![Value::Text(m.clone())]);
        }
    }
    if let Some(e) = &q.extension {
        check_len("extension", e)?;
        let e = e.strip_prefix('.').unwrap_or(e);
        if e.is_empty() || e.contains('/') {
            return Err(invalid(format!(
                "extension {e:?} must be a non-empty name without '/'"
            )));
        }
        push(
            "f.path LIKE ? ESCAPE '\\'",
            vec![Value::Text(format!("%.{}", like_escape(e)))],
        );
    }
    if let (Some(lo), Some(hi)) = (q.min_size, q.max_size) {
        if lo > hi {
            return Err(invalid(format!(
                "min_size {lo} is greater than max_size {hi}"
            )));
        }
    }
    if let Some(n) = q.min_size {
        push("f.size >= ?", vec![Value::Integer(clamp(n))]);
    }
    if let Some(n) = q.max_size {
        push("f.size <= ?", vec![Value::Integer(clamp(n))]);
    }
    for (v, c) in [
        (q.created_after, "f.created_ns >= ?"),
        (q.created_before, "f.created_ns < ?"),
        (q.updated_after, "f.updated_ns >= ?"),
        (q.updated_before, "f.updated_ns < ?"),
    ] {
        if let Some(t) = v {
            push(c, vec![Value::Integer(t)]);
        }
    }
    let sha256 = match &q.sha256 {
        Some(h) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Err(invalid(format!("sha256 {h:?} is not 64 hex digits")));
        }
        Some(h) => Some(h.to_ascii_lowercase()),
        None => None,
    };
    if let Some(h) = &sha256 {
        // Both from the versions_sha256 index. Any version is the default (issue 14): a
        // user holding an old copy is looking for the file it was a version of.
        let sql = match q.sha256_match {
            ContentMatch::AnyVersion => {
                "f.id IN (SELECT file_id FROM versions WHERE sha256 = ?)"
            }
            ContentMatch::Current => {
                "(f.id, f.current_version) IN (SELECT file_id, version FROM versions WHERE sha256 = ?)"
            }
        };
        push(sql, vec![Value::Text(h.clone())]);
    }
    // Most files are active, so the status index rarely narrows a search; `+f.status`
    // keeps the planner from picking it over the sort key's or another filter's index.
    // A search of archived/deleted files only (usually few) may use it.
    if q.statuses.is_empty() {
        push("+f.status = 'active'", vec![]);
    } else {
        let mut st: Vec<&str> = q.statuses.iter().map(|s| s.as_str()).collect();
        st.sort();
        st.dedup();
        let marks = vec!["?"; st.len()].join(", ");
        let column = if st.contains(&"active") {
            "+f.status"
        } else {
            "f.status"
        };
        push(
            &format!("{column} IN ({marks})"),
            st.into_iter().map(|s| Value::Text(s.into())).collect(),
        );
    }
    let sort_cols = match q.sort {
        SortKey::Path => "f.path",
        SortKey::Created => "f.created_ns, f.path",
        SortKey::Updated => "f.updated_ns, f.path",
        SortKey::Size => "f.size, f.path",
    };
    let dir = match q.order {
        SortOrder::Asc => "ASC",
        SortOrder::Desc => "DESC",
    };
    let id_set = match (&id_sets[..], terms.len(), q.statuses.is_empty()) {
        ([only], 1, true) => only.set.clone(),
        _ => None,
    };
    let walk_cond = (!id_sets.is_empty()).then(|| {
        let sets = id_sets.iter().map(|t| format!("+{}", t.sql));
        let rest = terms.iter().map(|t| t.sql.clone());
        sets.chain(rest).collect::<Vec<_>>().join(" AND ")
    });
    let all: Vec<Term> = id_sets.into_iter().chain(terms).collect();
    Ok(Built {
        cond: all
            .iter()
            .map(|t| t.sql.as_str())
            .collect::<Vec<_>>()
            .join(" AND "),
        params: all.into_iter().flat_map(|t| t.params).collect(),
        walk_cond,
        id_set,
        // Ties are broken by path (unique), so each sort key's index (key, path, status)
        // serves the whole order.
        order: sort_cols
            .split(", ")
            .map(|c| format!("{c} {dir}"))
            .collect::<Vec<_>>()
            .join(", "),
        sort_cols,
        desc: q.order == SortOrder::Desc,
        limit,
        offset: q.offset,
        sha256,
        owner: q.owner.clone(),
    })
}

/// The directories a caller's searches leave out (its visibility, `query::sight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hidden {
    /// The files root itself: nothing is visible.
    All,
    /// Everything beneath these (escaped) directories.
    Under(Vec<String>),
}

/// Adds the caller's hidden directories to a compiled search: one test of the path,
/// `NOT under_any(path, dirs)` (`catalog::UNDER_ANY`: a binary search in the sorted list),
/// so the count and the page leave out everything beneath them; the path comes from the
/// index the other filters chose, never a reason to walk the path index. A search of one
/// owner tests only the hidden directories of that owner (the first component of a path
/// is its owner), and none at all if the owner's own directory is hidden. With a test
/// added, the id-set count shortcut is off.
pub fn leave_out(b: &mut Built, hidden: &Hidden) {
    let (sql, params) = match hidden {
        Hidden::All => ("0".to_string(), Vec::new()),
        Hidden::Under(dirs) => {
            let of_owner = |d: &&String| match &b.owner {
                None => true,
                Some(o) => d.split('/').next() == Some(o.as_str()),
            };
            let dirs: Vec<&str> = dirs.iter().filter(of_owner).map(String::as_str).collect();
            if dirs.is_empty() {
                return;
            }
            if b.owner.is_some() && dirs.iter().any(|d| !d.contains('/')) {
                ("0".to_string(), Vec::new())
            } else {
                (
                    format!("NOT {}(f.path, ?)", crate::catalog::UNDER_ANY),
                    vec![Value::Blob(crate::catalog::under_any_list(dirs))],
                )
            }
        }
    };
    b.cond = format!("{} AND {sql}", b.cond);
    if let Some(w) = &mut b.walk_cond {
        *w = format!("{w} AND {sql}");
    }
    b.id_set = None;
    b.params.extend(params);
}

pub use page::run;

mod page;

#[cfg(test)]
mod tests;
