//! What [`super::Horace::sync`] answers: whether everything written before the call is
//! cataloged, and if not, what is not and why.

use serde::{Deserialize, Serialize};

/// The answer of `sync`: empty `missing` (and `more` 0) means everything written before
/// the call is cataloged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// What was written before the call and is not cataloged, at most
    /// [`SyncReport::MAX_LISTED`] entries.
    pub missing: Vec<NotCataloged>,
    /// How many more there are beyond `missing`.
    pub more: u64,
}

impl SyncReport {
    /// The most entries one answer lists.
    pub const MAX_LISTED: usize = 1000;

    /// Whether everything written before the call is cataloged.
    pub fn is_synced(&self) -> bool {
        self.missing.is_empty() && self.more == 0
    }
}

/// One path written before a sync and not cataloged when it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotCataloged {
    /// The path (escaped form, relative to the files root); empty when the entry is not
    /// about one path (an unwatched part of the tree).
    pub path: String,
    /// Why.
    pub why: Missing,
    /// The cause in words (the error, how long ago the last write was seen).
    pub detail: String,
}

/// Why a path written before a sync is not cataloged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// Written and still open for writing: cataloged at its close, or after the quiet
    /// period (`[versions] quiet_period_ms`) with no write.
    OpenForWriting,
    /// It changed while it was read; it is read again shortly.
    Changing,
    /// Reading or storing it failed (permission, I/O); retried with backoff.
    Failed,
    /// Its content could not be stored: the metadata filesystem is full.
    StoreFull,
    /// A directory could not be watched (the inotify watch limit): changes there are
    /// found by the periodic rescan, not at once.
    Unwatched,
    /// A big file being read in the watcher's big-file lane (a lane of its own, so it
    /// does not hold up small files): cataloged when that read ends.
    Hashing,
    /// Too many changes at once under this directory (past the watcher's event queue
    /// bound): its events were dropped and it is reconciled by a scan instead; cataloged
    /// when that scan ends.
    Reconciling,
}

impl Missing {
    /// The name used in the CLI and the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::OpenForWriting => "open_for_writing",
            Missing::Changing => "changing",
            Missing::Failed => "failed",
            Missing::StoreFull => "store_full",
            Missing::Unwatched => "unwatched",
            Missing::Hashing => "hashing",
            Missing::Reconciling => "reconciling",
        }
    }
}
