//! The query protocol: the tarpc service trait and every type that crosses the wire.
//!
//! Only the types in this module derive `Serialize`/`Deserialize`. Paths are the catalog's
//! escaped text form (valid UTF-8 as is, a backslash as `\\`, a byte of invalid UTF-8 as
//! `\xNN`), relative to the files root; requests may also name a file by its absolute path
//! under the container prefix. Times are unix nanoseconds unless a field says otherwise.
//! Fields added after the first release carry `#[serde(default)]`.

use serde::{Deserialize, Serialize};

use crate::error::QueryError;

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
    /// Returns once everything written before the call is in the catalog.
    async fn sync() -> Result<(), QueryError>;
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
    /// SHA-256 (hex) of the current version.
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
}

/// One file in a list of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSummary {
    /// Catalog id.
    pub id: i64,
    /// Escaped path relative to the files root.
    pub path: String,
    /// Owner.
    pub owner: String,
    /// MIME type, when known.
    pub mime: Option<String>,
    /// Current size in bytes.
    pub size: u64,
    /// Status.
    pub status: FileStatus,
    /// Current version number (`None` before the first version is cataloged).
    pub current_version: Option<i64>,
    /// SHA-256 of the current version.
    pub sha256: Option<String>,
    /// First cataloged (unix ns).
    pub created_ns: i64,
    /// Last changed (unix ns).
    pub updated_ns: i64,
    /// Tags, sorted.
    pub tags: Vec<String>,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    /// How many files match in all.
    pub total: u64,
    /// The page (at most `limit`).
    pub files: Vec<FileSummary>,
}

/// One saved version of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// 1, 2, 3 … per file.
    pub version: i64,
    /// SHA-256 (hex).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time on disk (unix ns).
    pub mtime_ns: i64,
    /// When it was cataloged (unix ns).
    pub cataloged_ns: i64,
    /// The file's path when this version was saved.
    pub path: String,
    /// The version this one was restored from, if it is a restore.
    pub restored_from: Option<i64>,
    /// Whether the content store still holds it (restorable without a snapshot).
    pub content_stored: bool,
}

/// One entry of a file's history: created, modified, renamed, deleted, restored, …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    /// When (unix ns).
    pub at_ns: i64,
    /// What happened.
    pub kind: String,
    /// Path before a rename.
    pub old_path: Option<String>,
    /// Path after a rename (or the path at the time).
    pub new_path: Option<String>,
    /// The version involved, if any.
    pub version: Option<i64>,
}

/// Everything about one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// The summary (path, size, status, tags, …).
    pub file: FileSummary,
    /// What the file is for, when someone said.
    pub purpose: Option<String>,
    /// A caller's correlation id (e.g. the job that wrote it).
    pub correlation_id: Option<String>,
    /// When it was marked deleted (unix ns).
    pub deleted_ns: Option<i64>,
    /// Versions, oldest first.
    pub versions: Vec<VersionInfo>,
    /// Names of the collections it belongs to, sorted.
    pub collections: Vec<String>,
    /// History, oldest first (the most recent 1000 entries).
    pub events: Vec<EventInfo>,
}

/// Changes to a file's metadata. Empty lists and `None` change nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileUpdate {
    /// Tags to add.
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
    /// New purpose; `Some("")` clears it.
    pub purpose: Option<String>,
    /// New owner.
    pub owner: Option<String>,
    /// New status. Making a file active again requires it to exist on disk.
    pub status: Option<FileStatus>,
    /// Collections (which must exist) to add the file to.
    pub add_collections: Vec<String>,
    /// Collections to remove the file from.
    pub remove_collections: Vec<String>,
    /// New correlation id; `Some("")` clears it.
    pub correlation_id: Option<String>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreResult {
    /// The file.
    pub file_id: i64,
    /// The version whose content was restored.
    pub restored_from: i64,
    /// The new version the restore created.
    pub new_version: i64,
}

/// A named set of files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// Catalog id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// When it was created (unix ns).
    pub created_ns: i64,
    /// How many files it holds.
    pub members: u64,
}

/// Which duplicate groups to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicatesQuery {
    /// Only contents of at least this many bytes.
    pub min_size: Option<u64>,
    /// Groups per page: default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`].
    pub limit: Option<u32>,
    /// Groups to skip.
    pub offset: u64,
}

/// Active files that share one content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateGroup {
    /// The shared SHA-256.
    pub sha256: String,
    /// Size of one copy.
    pub size: u64,
    /// The files (id and path), by path; at most 1000 are listed.
    pub files: Vec<(i64, String)>,
    /// How many files share the content.
    pub count: u64,
}

/// One page of duplicate groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicatesResult {
    /// How many groups there are in all.
    pub total_groups: u64,
    /// The page.
    pub groups: Vec<DuplicateGroup>,
}

/// One ZFS snapshot of the files dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// Full name, `dataset@snap`.
    pub name: String,
    /// The dataset.
    pub dataset: String,
    /// Creation time, unix seconds (from zfs).
    pub creation: i64,
    /// Bytes used by the snapshot alone.
    pub used: u64,
    /// hourly, daily, … for Horace's own snapshots.
    pub label: Option<String>,
    /// Whether Horace made it (and may prune it).
    pub managed: bool,
}

/// What one reconcile scan did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanInfo {
    /// Why it ran (startup, overflow, watch-failure, rollback, …).
    pub reason: String,
    /// Started (unix ns).
    pub started_ns: i64,
    /// Finished (unix ns), 0 while running.
    pub finished_ns: i64,
    /// Files looked at.
    pub files_seen: u64,
    /// Files hashed.
    pub files_hashed: u64,
    /// Files newly marked deleted.
    pub files_deleted: u64,
}

/// Health and size figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Version of the watcher.
    pub version: String,
    /// Active files.
    pub files_active: u64,
    /// Archived files.
    pub files_archived: u64,
    /// Deleted files (history kept).
    pub files_deleted: u64,
    /// Versions cataloged in all.
    pub versions: u64,
    /// Versions whose content the store holds.
    pub versions_stored: u64,
    /// Sum of the current sizes of active files.
    pub bytes_active: u64,
    /// Bytes held by the content store (distinct contents).
    pub bytes_stored: u64,
    /// Collections.
    pub collections: u64,
    /// Events and paths waiting to be cataloged.
    pub queue_depth: u64,
    /// Lag of the last processed event, seen → committed, microseconds.
    pub event_lag_us: u64,
    /// Versions cataloged since start.
    pub versions_cataloged: u64,
    /// Files hashed since start.
    pub files_hashed: u64,
    /// Reconcile scans forced by overflow, failed watch, rollback, …
    pub recrawls: u64,
    /// Kernel queue overflows.
    pub overflows: u64,
    /// Watches that could not be added.
    pub watch_failures: u64,
    /// Whether the startup scan has finished.
    pub ready: bool,
    /// The last reconcile scan.
    pub last_scan: Option<ScanInfo>,
    /// Paths whose cataloging keeps failing, with the last cause.
    pub failures: Vec<(String, String)>,
    /// Whether snapshots are scheduled at all.
    pub snapshots_enabled: bool,
    /// Whether zfsd answered the last call (meaningful only with snapshots enabled).
    pub zfsd_reachable: bool,
    /// The last snapshot-scheduler error.
    pub zfsd_error: Option<String>,
    /// Unix seconds of the last snapshot taken, 0 if none.
    pub last_snapshot: i64,
    /// Why pruning was refused, if it was.
    pub prune_refused: Option<String>,
    /// Unix seconds of the last catalog backup.
    pub last_backup: Option<i64>,
    /// Snapshots in the catalog's mirror.
    pub snapshots: u64,
}
