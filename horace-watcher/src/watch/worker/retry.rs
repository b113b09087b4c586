//! The retry queue: a path whose cataloging failed (permission denied, I/O error) is
//! looked at again with exponential backoff, logged once with its cause, and listed in
//! `status.detail.failures` while it keeps failing; a file that changed while it was read
//! is looked at again shortly, unless it changed again meanwhile: that change brings its
//! own events (a close-after-write when the writer closes it), and reading the file in
//! between could catch a rewrite between its truncate and its write.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Worker;
use crate::path::escape;

/// A path waiting to be looked at again.
pub(super) struct Retry {
    pub attempts: u32,
    pub due: Instant,
    /// For a file that was changing: when that was seen (unix ns). A later mtime is a
    /// later change, covered by its own events.
    pub covered_after: Option<i64>,
    /// Why the last look failed; `None` when the file was changing.
    pub cause: Option<String>,
}

/// Whether a failure's cause is a full metadata filesystem (ENOSPC, EDQUOT, SQLite's
/// "database or disk is full").
pub(super) fn is_store_full(cause: &str) -> bool {
    cause.contains("os error 28")
        || cause.contains("os error 122")
        || cause.contains("database or disk is full")
}

impl Worker {
    /// `rel`'s entry in the retry queue, made if missing.
    fn retry_of(&mut self, rel: &Path) -> &mut Retry {
        self.retries.entry(rel.to_path_buf()).or_insert(Retry {
            attempts: 0,
            due: Instant::now(),
            covered_after: None,
            cause: None,
        })
    }

    pub(super) fn note_failure(&mut self, rel: &Path, why: &str) {
        let r = self.retry_of(rel);
        r.attempts += 1;
        r.covered_after = None;
        r.cause = Some(why.to_string());
        let backoff = Duration::from_millis(500)
            .saturating_mul(1 << r.attempts.min(10))
            .min(Duration::from_secs(300));
        r.due = Instant::now() + backoff;
        if r.attempts == 1 {
            tracing::warn!(path = %rel.display(), cause = why, "cannot catalog {}: {why}; will retry", rel.display());
        } else {
            tracing::debug!(path = %rel.display(), attempts = r.attempts, cause = why, "retry failed");
        }
        if r.attempts >= 3 {
            self.ctx
                .status
                .with_detail(|d| d.note_failure(escape(rel), why.to_string()));
        }
    }

    pub(super) fn note_changing(&mut self, rel: &Path) {
        let r = self.retry_of(rel);
        r.due = Instant::now() + Duration::from_millis(200);
        r.covered_after = Some(crate::now_ns());
        r.cause = None;
    }

    pub(super) fn note_success(&mut self, rel: &Path) {
        if self.retries.remove(rel).is_some() {
            let key = escape(rel);
            self.ctx.status.with_detail(|d| d.failures.remove(&key));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_full_store_is_told_apart_from_other_failures() {
        assert!(super::is_store_full(
            "cannot store content: No space left on device (os error 28)"
        ));
        assert!(super::is_store_full("Disk quota exceeded (os error 122)"));
        assert!(super::is_store_full("catalog: database or disk is full"));
        assert!(!super::is_store_full("Permission denied (os error 13)"));
    }
}
