//! The query protocol: the tarpc service trait and every type that crosses the wire.
//!
//! Only the types in this module derive `Serialize`/`Deserialize`. Paths are the catalog's
//! escaped text form (valid UTF-8 as is, a backslash as `\\`, a byte of invalid UTF-8 as
//! `\xNN`), relative to the files root; requests may also name a file by its absolute path
//! under the container prefix. Times are unix nanoseconds unless a field says otherwise.
//! Fields added after the first release carry `#[serde(default)]`.

use serde::{Deserialize, Serialize};

use crate::error::QueryError;

mod files;
mod report;
mod sync;

pub use self::files::*;
pub use self::report::*;
pub use self::sync::*;

/// Default page size of [`SearchQuery::limit`] and other paged calls.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size a paged call accepts; more is [`QueryError::InvalidArgument`].
pub const MAX_LIMIT: u32 = 1000;

/// The query service the watcher serves and [`crate::Client`] calls.
#[tarpc::service]
pub trait Horace {
    /// Files matching every filter of `q`, one page of them, and how many match in all.
    async fn search(q: SearchQuery) -> Result<SearchResult, QueryError>;
    /// Everything the catalog knows about one file: versions, tags, collections, history.
    async fn file_info(f: FileRef) -> Result<FileInfo, QueryError>;
    /// The file's versions, oldest first.
    async fn versions(f: FileRef) -> Result<Vec<VersionInfo>, QueryError>;
    /// Writes `version`'s content back over the file; the restore becomes a new version.
    async fn restore_version(f: FileRef, version: i64) -> Result<RestoreResult, QueryError>;
    /// Changes the file's metadata (tags, purpose, owner, status, collections, correlation).
    async fn update_file(f: FileRef, u: FileUpdate) -> Result<FileInfo, QueryError>;
    /// Catalogs `path` now (without waiting for its event) and applies `u`; idempotent.
    async fn register_file(path: String, u: FileUpdate) -> Result<FileInfo, QueryError>;
    /// Creates a named collection.
    async fn collection_create(
        name: String,
        description: Option<String>,
    ) -> Result<CollectionInfo, QueryError>;
    /// Every collection with its member count.
    async fn collection_list() -> Result<Vec<CollectionInfo>, QueryError>;
    /// One page of a collection's members (of any status).
    async fn collection_members(
        name: String,
        limit: Option<u32>,
        offset: u64,
    ) -> Result<SearchResult, QueryError>;
    /// Adds files to a collection; returns how many were not members before.
    async fn collection_add(name: String, files: Vec<FileRef>) -> Result<u64, QueryError>;
    /// Removes files from a collection; returns how many were members.
    async fn collection_remove(name: String, files: Vec<FileRef>) -> Result<u64, QueryError>;
    /// Deletes a collection (its files are untouched).
    async fn collection_delete(name: String) -> Result<(), QueryError>;
    /// Groups of active files whose current content is identical, most wasted bytes first.
    async fn duplicates(q: DuplicatesQuery) -> Result<DuplicatesResult, QueryError>;
    /// The snapshots of the files dataset, oldest first (the watcher's mirror of zfsd).
    async fn snapshots() -> Result<Vec<SnapshotEntry>, QueryError>;
    /// Health and size figures of the watcher and its catalog.
    async fn status() -> Result<StatusReport, QueryError>;
    /// Returns once every event of what was written before the call is handled: the
    /// report lists what of it is still not cataloged, and why (empty: synced).
    async fn sync() -> Result<SyncReport, QueryError>;
    /// What the snapshot scheduler's next tick would create and destroy if it ran now (a
    /// dry run from horace-zfsd's current list; nothing is executed).
    async fn snapshot_plan() -> Result<SnapshotPlan, QueryError>;
}

/// Names one file: by catalog id, or by path (relative to the files root, or absolute
/// under the container prefix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileRef {
    /// The catalog's file id.
    Id(i64),
    /// A path, relative or absolute under the container prefix.
    Path(String),
}

impl FileRef {
    /// A reference from command-line text: `#123` or `id:123` is an id, anything else a
    /// path.
    pub fn parse(s: &str) -> Self {
        let id = s.strip_prefix('#').or_else(|| s.strip_prefix("id:"));
        match id.and_then(|n| n.parse().ok()) {
            Some(n) => Self::Id(n),
            None => Self::Path(s.to_string()),
        }
    }
}

impl std::fmt::Display for FileRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(n) => write!(f, "#{n}"),
            Self::Path(p) => f.write_str(p),
        }
    }
}

/// A file's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// On disk and cataloged.
    Active,
    /// Kept, but hidden from default searches.
    Archived,
    /// Gone from disk (or marked deleted); history kept.
    Deleted,
}

impl FileStatus {
    /// The catalog's text for this status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
            Self::Deleted => "deleted",
        }
    }

    /// Parses the catalog's text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "archived" => Some(Self::Archived),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// What search results are ordered by (ties broken by file id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    /// The path, bytewise.
    #[default]
    Path,
    /// When the file was first cataloged.
    Created,
    /// When it last changed.
    Updated,
    /// Its current size.
    Size,
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// Filters, sort and page of a search. Every filter that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchQuery {
    /// SQLite GLOB over the escaped relative path (`*`, `?`, `[...]`; case-sensitive).
    pub path_glob: Option<String>,
    /// Substring of the escaped relative path (case-insensitive for ASCII).
    pub path_contains: Option<String>,
    /// The owner (by default the first path component).
    pub owner: Option<String>,
    /// The file carries every one of these tags.
    pub tags_all: Vec<String>,
    /// The file carries at least one of these tags.
    pub tags_any: Vec<String>,
    /// The file is a member of this collection.
    pub collection: Option<String>,
    /// MIME type, exact (`text/plain`) or by major type (`image/*`).
    pub mime: Option<String>,
    /// File name extension without the dot (`pdf`; case-insensitive for ASCII).
    pub extension: Option<String>,
    /// Current size at least this many bytes.
    pub min_size: Option<u64>,
    /// Current size at most this many bytes.
    pub max_size: Option<u64>,
    /// First cataloged at or after (unix ns).
    pub created_after: Option<i64>,
    /// First cataloged before (unix ns).
    pub created_before: Option<i64>,
    /// Last changed at or after (unix ns).
    pub updated_after: Option<i64>,
    /// Last changed before (unix ns).
    pub updated_before: Option<i64>,
    /// SHA-256 (hex) of a version's content: by default any version, so an old version's
    /// checksum finds the file; [`SearchQuery::sha256_match`] restricts it to the current
    /// one. Each file found carries the matching versions in
    /// [`FileSummary::matched_versions`].
    pub sha256: Option<String>,
    /// Statuses to include; empty means active only.
    pub statuses: Vec<FileStatus>,
    /// Sort key.
    pub sort: SortKey,
    /// Sort order.
    pub order: SortOrder,
    /// Page size: default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]; 0 returns only the total.
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: u64,
    /// Which versions [`SearchQuery::sha256`] is matched against (added after the first
    /// release, which matched the current version only; issue 14).
    #[serde(default)]
    pub sha256_match: ContentMatch,
}

/// Which versions of a file a content (SHA-256) search looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentMatch {
    /// Any version the catalog holds: every file that ever had the content.
    #[default]
    AnyVersion,
    /// The current version only: the files that have the content now.
    Current,
}
