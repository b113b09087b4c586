//! The JSON shapes of the MCP tools: the parameters and results of the seeds' section 6
//! (names, defaults and fields as the document gives them) and of the tools Horace adds,
//! with the JSON Schemas (`schemars`) that `tools/list` publishes for both.
//!
//! Only these types cross the MCP boundary; they are converted from the query protocol's
//! types here, never the other way round.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use horace_client::{
    CollectionInfo, DuplicateGroup, FileInfo, FileStatus, FileSummary, NotCataloged, SnapshotEntry,
    StatusReport, VersionInfo,
};

/// A file's lifecycle state, as the document names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// On disk and cataloged.
    Active,
    /// Kept, hidden from default searches (Horace does not move the file).
    Archived,
    /// Gone from disk or marked deleted; its history is kept (Horace removes nothing).
    Deleted,
}

impl From<Status> for FileStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Active => FileStatus::Active,
            Status::Archived => FileStatus::Archived,
            Status::Deleted => FileStatus::Deleted,
        }
    }
}

impl From<FileStatus> for Status {
    fn from(s: FileStatus) -> Self {
        match s {
            FileStatus::Active => Status::Active,
            FileStatus::Archived => Status::Archived,
            FileStatus::Deleted => Status::Deleted,
        }
    }
}

// ---- horace_register_file ----

/// Parameters of `horace_register_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterFileParams {
    /// Absolute path to the file under the container prefix (e.g.
    /// /mnt/irina_storage/files/gates/report_2025.odt), or a path relative to the files root.
    pub file_path: String,
    /// File metadata.
    #[serde(default)]
    pub metadata: RegisterMetadata,
}

/// The metadata `horace_register_file` sets.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterMetadata {
    /// Component or user who created the file (default: the first path component).
    pub owner: Option<String>,
    /// What this file is for.
    pub purpose: Option<String>,
    /// Search tags (added to the file's tags).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Collection to add the file to (created if it does not exist).
    pub collection: Option<String>,
    /// Related conversation or run.
    pub correlation_id: Option<String>,
}

/// Result of `horace_register_file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RegisterFileResult {
    /// Horace's file id (a decimal integer as a string, not a UUID).
    pub file_id: String,
    /// SHA-256 (hex) of the current version.
    pub checksum: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// MIME type, when known.
    pub mime_type: Option<String>,
    /// When the file was first cataloged (RFC 3339, UTC).
    pub registered_at: String,
    /// Current version number.
    pub version: Option<i64>,
    /// Absolute path under the container prefix.
    pub path: String,
}

// ---- horace_search_files ----

/// Sort keys of `horace_search_files`.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// When the file was first cataloged.
    #[default]
    CreatedAt,
    /// When it last changed.
    UpdatedAt,
    /// Its current size.
    Size,
    /// Its path.
    Name,
}

/// Sort order.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    #[default]
    Desc,
}

/// Search filters; every filter given must hold.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFilters {
    /// Match files with ALL of these tags (AND logic).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Filter by owner (component or user).
    pub owner: Option<String>,
    /// First cataloged at or after this time (ISO 8601 / RFC 3339, a date, or unix seconds).
    pub created_after: Option<String>,
    /// First cataloged before this time.
    pub created_before: Option<String>,
    /// MIME type (application/pdf, or image/* for a major type) or extension (.odt).
    pub file_type: Option<String>,
    /// Current size at least this many bytes.
    pub min_size: Option<u64>,
    /// Current size at most this many bytes.
    pub max_size: Option<u64>,
    /// Filter by collection name.
    pub collection: Option<String>,
    /// Lifecycle state (default active).
    pub status: Option<Status>,
    /// Horace addition: a substring of the path relative to the files root.
    pub path_contains: Option<String>,
    /// Horace addition: SHA-256 (hex) of any version's content.
    pub checksum: Option<String>,
}

fn default_limit() -> u32 {
    50
}

/// Parameters of `horace_search_files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFilesParams {
    /// Search filters.
    #[serde(default)]
    pub query: SearchFilters,
    /// Max results to return (default 50, at most 1000).
    #[serde(default = "default_limit")]
    #[schemars(range(max = 1000))]
    pub limit: u32,
    /// Pagination offset.
    #[serde(default)]
    pub offset: u64,
    /// Sort key (default created_at).
    #[serde(default)]
    pub sort_by: SortBy,
    /// Sort order (default desc).
    #[serde(default)]
    pub order: Order,
}

/// One file in search results.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileResult {
    /// Horace's file id (a decimal integer as a string).
    pub file_id: String,
    /// Absolute path under the container prefix.
    pub path: String,
    /// Owner.
    pub owner: String,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Current size in bytes.
    pub size: u64,
    /// MIME type, when known.
    pub mime_type: Option<String>,
    /// First cataloged (RFC 3339, UTC).
    pub created_at: String,
    /// Last changed (RFC 3339, UTC).
    pub updated_at: String,
    /// Current version number.
    pub version: Option<i64>,
    /// SHA-256 (hex) of the current version.
    pub checksum: Option<String>,
    /// Lifecycle state.
    pub status: Status,
}

/// Result of `horace_search_files`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchFilesResult {
    /// How many files match in all.
    pub total_count: u64,
    /// This page of them.
    pub results: Vec<FileResult>,
    /// The page size used.
    pub limit: u32,
    /// The offset used.
    pub offset: u64,
}

// ---- horace_get_file_info / horace_list_versions ----

/// Names one file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileParams {
    /// Horace's file id (e.g. "42"), or the file's path (absolute under the container
    /// prefix, or relative to the files root).
    pub file_id: String,
}

/// Parameters of `horace_get_file_info`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetFileInfoParams {
    /// Horace's file id (e.g. "42"), or the file's path.
    pub file_id: String,
    /// Include the version history.
    #[serde(default)]
    pub include_versions: bool,
}

/// One saved version of a file.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionResult {
    /// 1, 2, 3 … per file.
    pub version: i64,
    /// When it was cataloged (RFC 3339, UTC).
    pub timestamp: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 (hex); null when the caller may not read the file (the watcher's
    /// `[query] visibility`).
    pub checksum: Option<String>,
    /// The file's path (under the container prefix) when this version was saved.
    pub path: String,
    /// The version this one restored, if it is a restore.
    pub restored_from_version: Option<i64>,
    /// Whether Horace's content store still holds it (restorable).
    pub content_stored: bool,
}

/// Result of `horace_get_file_info`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileInfoResult {
    /// Horace's file id.
    pub file_id: String,
    /// Absolute path under the container prefix.
    pub path: String,
    /// Owner.
    pub owner: String,
    /// What the file is for.
    pub purpose: Option<String>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Current size in bytes.
    pub size: u64,
    /// MIME type, when known.
    pub mime_type: Option<String>,
    /// First cataloged (RFC 3339, UTC).
    pub created_at: String,
    /// Last changed (RFC 3339, UTC).
    pub updated_at: String,
    /// Current version number.
    pub current_version: Option<i64>,
    /// SHA-256 (hex) of the current version.
    pub checksum: Option<String>,
    /// The first of the file's collections (a file may be in several; see `collections`).
    pub collection: Option<String>,
    /// Every collection the file belongs to, sorted.
    pub collections: Vec<String>,
    /// The caller's correlation id.
    pub correlation_id: Option<String>,
    /// Lifecycle state.
    pub status: Status,
    /// Versions, oldest first (only with include_versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<VersionResult>>,
}

/// Result of `horace_list_versions`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListVersionsResult {
    /// The file as asked for.
    pub file: String,
    /// Versions, oldest first.
    pub versions: Vec<VersionResult>,
}

// ---- collections ----

/// Parameters of `horace_create_collection`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollectionParams {
    /// Collection name (unique).
    pub name: String,
    /// What this collection contains (set at creation; an existing collection keeps its own).
    pub description: Option<String>,
    /// Files to add (Horace file ids or paths).
    #[serde(default)]
    pub file_ids: Vec<String>,
    /// Additional collection metadata: accepted, not stored by Horace.
    #[allow(dead_code)] // the document's parameter; Horace has nowhere to keep it
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A collection.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CollectionResult {
    /// Horace's collection id.
    pub collection_id: String,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// How many files it holds.
    pub file_count: u64,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
}

/// Result of `horace_create_collection`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreateCollectionResult {
    /// Horace's collection id.
    pub collection_id: String,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// How many files it holds now.
    pub file_count: u64,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// Whether this call created it (false: it existed and was updated).
    pub created: bool,
    /// How many of `file_ids` were not members before.
    pub files_added: u64,
}

/// Parameters of `horace_list_collections`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListCollectionsParams {
    /// Max collections to return (default 50, at most 1000).
    #[serde(default = "default_limit")]
    #[schemars(range(max = 1000))]
    pub limit: u32,
    /// Pagination offset.
    #[serde(default)]
    pub offset: u64,
}

/// Result of `horace_list_collections`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListCollectionsResult {
    /// How many collections there are in all.
    pub total_count: u64,
    /// This page of them, by name.
    pub collections: Vec<CollectionResult>,
}

// ---- horace_update_file ----

/// The metadata `horace_update_file` changes; fields left out are unchanged.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMetadata {
    /// The file's tags become exactly these.
    pub tags: Option<Vec<String>>,
    /// What the file is for ("" clears it).
    pub purpose: Option<String>,
    /// Lifecycle state. Horace never moves or removes the file: archived hides it from
    /// default searches, deleted marks it deleted with its history kept.
    pub status: Option<Status>,
    /// Collection to add the file to (created if it does not exist).
    pub collection: Option<String>,
    /// Horace addition: a new owner.
    pub owner: Option<String>,
    /// Horace addition: a new correlation id ("" clears it).
    pub correlation_id: Option<String>,
}

/// Parameters of `horace_update_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFileParams {
    /// Horace's file id (e.g. "42"), or the file's path.
    pub file_id: String,
    /// Metadata fields to update.
    #[serde(default)]
    pub metadata: UpdateMetadata,
    /// If true, re-read the file now and create a version if its checksum changed.
    #[serde(default)]
    pub check_for_changes: bool,
}

/// Result of `horace_update_file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UpdateFileResult {
    /// Horace's file id.
    pub file_id: String,
    /// The metadata fields that were given.
    pub updated_fields: Vec<String>,
    /// Whether check_for_changes created a new version.
    pub version_created: bool,
    /// Current version number.
    pub current_version: Option<i64>,
}

// ---- horace_restore_version ----

/// Parameters of `horace_restore_version`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreVersionParams {
    /// Horace's file id (e.g. "42"), or the file's path.
    pub file_id: String,
    /// Version number to restore.
    #[schemars(range(min = 1))]
    pub version: i64,
}

/// Result of `horace_restore_version`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RestoreVersionResult {
    /// Horace's file id.
    pub file_id: String,
    /// The version whose content was written back.
    pub restored_to_version: i64,
    /// The new version the restore created (the state before it stays a version too).
    pub new_version_created: i64,
    /// Absolute path of the restored file under the container prefix.
    pub current_path: String,
}

// ---- Horace's additions ----

/// Parameters of `horace_find_duplicates`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindDuplicatesParams {
    /// Only contents of at least this many bytes.
    pub min_size: Option<u64>,
    /// Groups to return (default 50, at most 1000).
    #[serde(default = "default_limit")]
    #[schemars(range(max = 1000))]
    pub limit: u32,
    /// Groups to skip.
    #[serde(default)]
    pub offset: u64,
}

/// A file in a duplicate group.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DuplicateFile {
    /// Horace's file id.
    pub file_id: String,
    /// Absolute path under the container prefix.
    pub path: String,
}

/// Active files sharing one content.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DuplicateGroupResult {
    /// The shared SHA-256.
    pub checksum: String,
    /// Size of one copy.
    pub size: u64,
    /// How many files share it.
    pub count: u64,
    /// Bytes taken by the copies beyond the first.
    pub wasted_bytes: u64,
    /// The files, by path (at most 1000).
    pub files: Vec<DuplicateFile>,
}

/// Result of `horace_find_duplicates`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FindDuplicatesResult {
    /// How many groups there are in all.
    pub total_count: u64,
    /// This page, most wasted bytes first.
    pub groups: Vec<DuplicateGroupResult>,
}

/// Parameters of the tools that take none.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// A ZFS snapshot of the files dataset.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SnapshotResult {
    /// Full name, dataset@snap.
    pub name: String,
    /// When it was taken (RFC 3339, UTC).
    pub created_at: String,
    /// Bytes used by the snapshot alone.
    pub used: u64,
    /// hourly, daily, weekly, monthly for Horace's own snapshots.
    pub label: Option<String>,
    /// Whether Horace made it (and may prune it).
    pub managed: bool,
}

/// Result of `horace_list_snapshots`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListSnapshotsResult {
    /// Snapshots, oldest first.
    pub snapshots: Vec<SnapshotResult>,
}

/// Result of `horace_get_status`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusResult {
    /// Version of the watcher.
    pub version: String,
    /// Whether the startup scan has finished.
    pub ready: bool,
    /// What makes the watcher degraded, one phrase each; empty when healthy.
    pub degraded: Vec<String>,
    /// Active files.
    pub files_active: u64,
    /// Archived files.
    pub files_archived: u64,
    /// Deleted files (history kept).
    pub files_deleted: u64,
    /// Versions cataloged in all.
    pub versions: u64,
    /// Sum of the current sizes of active files.
    pub bytes_active: u64,
    /// Bytes held by the content store.
    pub bytes_stored: u64,
    /// Collections.
    pub collections: u64,
    /// Events and paths waiting to be cataloged.
    pub queue_depth: u64,
    /// Snapshots of the files dataset.
    pub snapshots: u64,
    /// When the last snapshot was taken (RFC 3339, UTC), if any.
    pub last_snapshot_at: Option<String>,
    /// Paths whose cataloging keeps failing.
    pub failures_total: u64,
    /// Store objects found damaged and not healed yet.
    pub damaged_objects: u64,
}

/// One path written before a sync and not cataloged yet.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NotCatalogedResult {
    /// Absolute path under the container prefix ("" when not about one path).
    pub path: String,
    /// open_for_writing, changing, failed, store_full, unwatched or hashing.
    pub why: String,
    /// The cause in words.
    pub detail: String,
}

/// Result of `horace_sync`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SyncResult {
    /// Whether everything written before the call is cataloged.
    pub synced: bool,
    /// What is not, and why (at most 1000 entries).
    pub missing: Vec<NotCatalogedResult>,
    /// How many more there are beyond `missing`.
    pub more: u64,
}

// ---- conversions ----

/// Unix nanoseconds as RFC 3339 UTC (seconds precision unless there is a fraction).
pub fn time_ns(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Renders catalog paths (relative to the files root) as the container sees them.
#[derive(Debug, Clone)]
pub struct Paths {
    prefix: String,
}

impl Paths {
    /// Paths under `prefix` (e.g. /mnt/irina_storage/files).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// The absolute form of a relative catalog path.
    pub fn abs(&self, rel: &str) -> String {
        if rel.is_empty() {
            return String::new();
        }
        format!("{}/{rel}", self.prefix)
    }

    /// A file summary as a search result.
    pub fn file(&self, f: &FileSummary) -> FileResult {
        FileResult {
            file_id: f.id.to_string(),
            path: self.abs(&f.path),
            owner: f.owner.clone(),
            tags: f.tags.clone(),
            size: f.size,
            mime_type: f.mime.clone(),
            created_at: time_ns(f.created_ns),
            updated_at: time_ns(f.updated_ns),
            version: f.current_version,
            checksum: f.sha256.clone(),
            status: f.status.into(),
        }
    }

    /// A version.
    pub fn version(&self, v: &VersionInfo) -> VersionResult {
        VersionResult {
            version: v.version,
            timestamp: time_ns(v.cataloged_ns),
            size: v.size,
            checksum: v.sha256.clone(),
            path: self.abs(&v.path),
            restored_from_version: v.restored_from,
            content_stored: v.content_stored,
        }
    }

    /// A file's details.
    pub fn info(&self, i: &FileInfo, include_versions: bool) -> FileInfoResult {
        let f = &i.file;
        FileInfoResult {
            file_id: f.id.to_string(),
            path: self.abs(&f.path),
            owner: f.owner.clone(),
            purpose: i.purpose.clone(),
            tags: f.tags.clone(),
            size: f.size,
            mime_type: f.mime.clone(),
            created_at: time_ns(f.created_ns),
            updated_at: time_ns(f.updated_ns),
            current_version: f.current_version,
            checksum: f.sha256.clone(),
            collection: i.collections.first().cloned(),
            collections: i.collections.clone(),
            correlation_id: i.correlation_id.clone(),
            status: f.status.into(),
            versions: include_versions
                .then(|| i.versions.iter().map(|v| self.version(v)).collect()),
        }
    }

    /// A duplicate group.
    pub fn duplicates(&self, g: &DuplicateGroup) -> DuplicateGroupResult {
        DuplicateGroupResult {
            checksum: g.sha256.clone(),
            size: g.size,
            count: g.count,
            wasted_bytes: g.size.saturating_mul(g.count.saturating_sub(1)),
            files: g
                .files
                .iter()
                .map(|f| DuplicateFile {
                    file_id: f.id.to_string(),
                    path: self.abs(&f.path),
                })
                .collect(),
        }
    }

    /// A path not cataloged at a sync.
    pub fn not_cataloged(&self, n: &NotCataloged) -> NotCatalogedResult {
        NotCatalogedResult {
            path: self.abs(&n.path),
            why: n.why.as_str().to_owned(),
            detail: n.detail.clone(),
        }
    }
}

/// A collection.
pub fn collection(c: &CollectionInfo) -> CollectionResult {
    CollectionResult {
        collection_id: c.id.to_string(),
        name: c.name.clone(),
        description: c.description.clone(),
        file_count: c.members,
        created_at: time_ns(c.created_ns),
    }
}

/// A snapshot.
pub fn snapshot(s: &SnapshotEntry) -> SnapshotResult {
    SnapshotResult {
        name: s.name.clone(),
        created_at: time_ns(s.created_ns),
        used: s.used,
        label: s.label.clone(),
        managed: s.managed,
    }
}

/// The status report.
pub fn status(s: &StatusReport) -> StatusResult {
    StatusResult {
        version: s.version.clone(),
        ready: s.ready,
        degraded: s.degradation(),
        files_active: s.files_active,
        files_archived: s.files_archived,
        files_deleted: s.files_deleted,
        versions: s.versions,
        bytes_active: s.bytes_active,
        bytes_stored: s.bytes_stored,
        collections: s.collections,
        queue_depth: s.queue_depth,
        snapshots: s.snapshots,
        last_snapshot_at: s.last_snapshot_ns.map(time_ns),
        failures_total: s.failures_total,
        damaged_objects: s.damaged_objects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time_ns(1_759_694_400_000_000_000), "2025-10-05T20:00:00Z");
        assert_eq!(time_ns(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn search_defaults_are_the_documents() {
        let p: SearchFilesParams = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!((p.limit, p.offset), (50, 0));
        assert!(matches!(p.sort_by, SortBy::CreatedAt));
        assert!(matches!(p.order, Order::Desc));
        assert!(
            serde_json::from_value::<SearchFilesParams>(serde_json::json!({"limt": 3})).is_err()
        );
    }

    #[test]
    fn paths_are_under_the_prefix() {
        let p = Paths::new("/mnt/irina_storage/files/");
        assert_eq!(p.abs("gates/a.odt"), "/mnt/irina_storage/files/gates/a.odt");
        assert_eq!(p.abs(""), "");
    }
}
