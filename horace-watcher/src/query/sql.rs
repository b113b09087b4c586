//! Catalog reads shared by the query handlers: file summaries, tags, resolving a file
//! reference, and the error type that keeps SQLite failures apart from named answers.

use horace_client::{FileStatus, FileSummary, QueryError};
use rusqlite::{Connection, OptionalExtension, Row};

/// A handler failure: a named answer for the caller, or a catalog error (logged, and
/// answered as [`QueryError::Internal`]).
#[derive(Debug)]
pub enum Fail {
    /// Answer this.
    Query(QueryError),
    /// SQLite failed.
    Sql(rusqlite::Error),
}

impl From<QueryError> for Fail {
    fn from(e: QueryError) -> Self {
        Self::Query(e)
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl Fail {
    /// The answer for the caller; a catalog error is logged here.
    pub fn into_query(self) -> QueryError {
        match self {
            Self::Query(e) => e,
            Self::Sql(e) => {
                tracing::error!(error = %e, "catalog query failed");
                QueryError::Internal {
                    message: format!("catalog query failed: {e}"),
                }
            }
        }
    }
}

/// Result of a catalog step.
pub type Res<T> = Result<T, Fail>;

/// A file named by a request, after path normalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// By id.
    Id(i64),
    /// By escaped relative path.
    Path(String),
}

/// The file id a target names, or [`QueryError::NotFound`].
pub fn resolve(conn: &Connection, t: &Target) -> Res<i64> {
    let found = match t {
        Target::Id(id) => conn
            .query_row("SELECT id FROM files WHERE id = ?1", [id], |r| r.get(0))
            .optional()?,
        Target::Path(p) => conn
            .query_row("SELECT id FROM files WHERE path = ?1", [p], |r| r.get(0))
            .optional()?,
    };
    found.ok_or_else(|| Fail::Query(not_found_file(t)))
}

/// The NotFound answer for a target.
pub fn not_found_file(t: &Target) -> QueryError {
    QueryError::NotFound {
        what: match t {
            Target::Id(id) => format!("file #{id}"),
            Target::Path(p) => format!("file {p:?}"),
        },
    }
}

/// Columns of a summary, for `SELECT {SUMMARY_COLUMNS} FROM {SUMMARY_FROM}`.
pub const SUMMARY_COLUMNS: &str =
    "f.id, f.path, f.owner, f.mime, f.size, f.status, f.current_version, v.sha256, f.created_ns, f.updated_ns";
/// The join a summary reads from (the file and its current version).
pub const SUMMARY_FROM: &str =
    "files f LEFT JOIN versions v ON v.file_id = f.id AND v.version = f.current_version";

/// Reads a summary row (tags are filled by [`fill_tags`]).
pub fn summary_row(r: &Row<'_>) -> rusqlite::Result<FileSummary> {
    let status: String = r.get(5)?;
    Ok(FileSummary {
        id: r.get(0)?,
        path: r.get(1)?,
        owner: r.get(2)?,
        mime: r.get(3)?,
        size: r.get::<_, i64>(4)?.max(0) as u64,
        status: FileStatus::parse(&status).unwrap_or(FileStatus::Deleted),
        current_version: r.get(6)?,
        sha256: r.get(7)?,
        created_ns: r.get(8)?,
        updated_ns: r.get(9)?,
        matched_versions: Vec::new(),
        tags: Vec::new(),
    })
}

/// Fills the tags of each summary.
pub fn fill_tags(conn: &Connection, files: &mut [FileSummary]) -> Res<()> {
    let mut stmt = conn.prepare_cached("SELECT tag FROM tags WHERE file_id = ?1 ORDER BY tag")?;
    for f in files {
        f.tags = stmt
            .query_map([f.id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}
