//! The loop's side of the big-file lane (`scan::Lane`): a path handed to the lane waits
//! in the retry queue (listed by `sync` as `hashing`), and is probed again as soon as the
//! lane has read it.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{retry::Retry, Worker};

/// How a path waiting for the lane is told apart in the retry queue.
pub(super) const IN_LANE: &str = "a big file, being read in the big-file lane";

/// Whether a retry's cause is a wait for the lane.
pub(super) fn is_in_lane(cause: &str) -> bool {
    cause.starts_with(IN_LANE)
}

/// How long a path waits for the lane before it is looked at anyway (the lane says when
/// it is done; this is only a backstop).
const BACKSTOP: Duration = Duration::from_secs(3600);

impl Worker {
    /// `rel` was handed to the lane: it waits in the retry queue until the lane is done.
    pub(super) fn note_in_lane(&mut self, rel: &Path) {
        let size = std::fs::symlink_metadata(self.prober.root.join(rel)).map_or(0, |m| m.len());
        self.retries.insert(
            rel.to_path_buf(),
            Retry {
                attempts: 0,
                due: Instant::now() + BACKSTOP,
                covered_after: None,
                cause: Some(format!(
                    "{IN_LANE} ({size} bytes); cataloged when that read ends"
                )),
            },
        );
    }

    /// Makes the paths the lane finished due now.
    pub(super) fn wake_lane_finished(&mut self) {
        let now = Instant::now();
        for rel in self.prober.lane.finished() {
            let r = self.retries.entry(rel).or_insert(Retry {
                attempts: 0,
                due: now,
                covered_after: None,
                cause: None,
            });
            r.due = now;
        }
    }
}
