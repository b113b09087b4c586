//! Wire types about files: search results, versions, history, metadata updates, restores
//! and collections.

use serde::{Deserialize, Serialize};

use super::FileStatus;

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
    /// SHA-256 of the current version; `None` before the first version, or when the
    /// caller may not read the file (the server's `[query] visibility`).
    pub sha256: Option<String>,
    /// First cataloged (unix ns).
    pub created_ns: i64,
    /// Last changed (unix ns).
    pub updated_ns: i64,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// In the answer to a search by `sha256`: the versions of this file with that content,
    /// oldest first (more than one when the content came back). Empty otherwise.
    #[serde(default)]
    pub matched_versions: Vec<VersionInfo>,
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
    /// The file's catalog id.
    pub file_id: i64,
    /// 1, 2, 3 … per file.
    pub version: i64,
    /// SHA-256 (hex); `None` when the caller may not read the file (the server's
    /// `[query] visibility`: docs/security.md).
    pub sha256: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::super::{ContentMatch, SearchQuery};
    use super::*;

    /// JSON written before the content search matched any version (scripts, `--json`
    /// output kept by a caller) still reads: the added fields take their defaults.
    #[test]
    fn json_without_the_content_search_fields_reads_with_defaults() {
        let mut q = serde_json::to_value(SearchQuery {
            sha256: Some("ab".repeat(32)),
            ..Default::default()
        })
        .unwrap();
        q.as_object_mut().unwrap().remove("sha256_match");
        let q: SearchQuery = serde_json::from_value(q).unwrap();
        assert_eq!(q.sha256_match, ContentMatch::AnyVersion);
        let f: FileSummary = serde_json::from_value(serde_json::json!({
            "id": 1, "path": "a", "owner": "", "mime": null, "size": 0, "status": "active",
            "current_version": 1, "sha256": null, "created_ns": 0, "updated_ns": 0, "tags": []
        }))
        .unwrap();
        assert!(f.matched_versions.is_empty());
        assert_eq!(
            serde_json::to_value(ContentMatch::Current).unwrap(),
            serde_json::json!("current")
        );
    }
}
