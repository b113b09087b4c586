//! The content store (`<metadata_dir>/objects/sha256/ab/cdef…`) and restoring a version.
//! (Owned by the watcher work.)

use crate::watch::WatchHandle;
use crate::Context;

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// No such file or version in the catalog.
    #[error("no version {version} of file {file_id}")]
    NotFound {
        /// The file id.
        file_id: i64,
        /// The version number.
        version: i64,
    },
    /// The content is no longer in the store and no readable snapshot copy matched; the
    /// snapshots taken while that version was current are listed for a manual recovery.
    #[error("content of version {version} was pruned from the store; snapshots that may hold it: {}", if snapshots.is_empty() { "none".to_string() } else { snapshots.join(", ") })]
    ContentPruned {
        /// The version number.
        version: i64,
        /// Snapshots taken while it was current, oldest first.
        snapshots: Vec<String>,
    },
    /// Reading or writing failed.
    #[error("restore failed: {0}")]
    Io(String),
}

/// The result of a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// The file id.
    pub file_id: i64,
    /// The new version the restore created.
    pub new_version: i64,
}

/// Restores `version` of `file_id` over the file on disk: stores the current content
/// first, writes the old content to a temp file in the same directory, fsyncs and
/// renames it over the file; the result is a new version with `restored_from` set.
pub async fn restore_version(
    ctx: &Context,
    watch: &WatchHandle,
    file_id: i64,
    version: i64,
) -> Result<RestoreOutcome, RestoreError> {
    let _ = (ctx, watch);
    Err(RestoreError::NotFound { file_id, version })
}
