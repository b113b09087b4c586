//! Files renamed onto an ignored name, held back for a moment before they count as
//! removed: the first half of a safe save.
//!
//! Excel, Word, vim (`backupcopy=no`) and emacs save by renaming the document out of the
//! way onto a name Horace ignores (`A1B2C3D4`, `~WRL0001.tmp`, `name~`), putting the new
//! content at the document's name (a rename from their own ignored temp name, or a new
//! file written there), and deleting the old one. Taken event by event, that is a removal
//! of the document followed by a new file at its name: the catalog recorded `deleted` and
//! then `undeleted` at every save. Held back here, the rename onto the ignored name is
//! looked at again after [`DISPLACED_GRACE`] (or at the next `sync` cookie): if a regular
//! file holds the name by then, the document was replaced, and the new content's own
//! events (a check of the name) make it a version of the same file, recorded `modified`;
//! only if nothing (or a directory, a link, …) is there is the removal sent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a file renamed onto an ignored name waits for a new file at its name. The
/// writers above put the new file there within milliseconds; a second leaves room for a
/// loaded machine without making a real move onto an ignored name linger.
pub const DISPLACED_GRACE: Duration = Duration::from_secs(1);

/// Most paths held back at once; beyond it a rename onto an ignored name is a removal at
/// once, as before (a burst of such renames is not a save pattern).
const CAP: usize = 4096;

/// Paths whose file was renamed onto an ignored name, with when to look at them again.
#[derive(Debug, Default)]
pub struct Displaced {
    due: HashMap<PathBuf, Instant>,
}

/// What to do with a path whose file was renamed onto an ignored name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Held back; [`Displaced::overdue`] hands it back later.
    Deferred,
    /// Too many held back: remove it now.
    RemoveNow,
}

impl Displaced {
    /// `rel` was renamed onto an ignored name at `now`.
    pub fn note(&mut self, rel: PathBuf, now: Instant) -> Held {
        if self.due.len() >= CAP && !self.due.contains_key(&rel) {
            return Held::RemoveNow;
        }
        self.due.insert(rel, now + DISPLACED_GRACE);
        Held::Deferred
    }

    /// The paths due by `by`, forgotten.
    pub fn overdue(&mut self, by: Instant) -> Vec<PathBuf> {
        if self.due.is_empty() {
            return Vec::new();
        }
        let due: Vec<PathBuf> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= by)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &due {
            self.due.remove(p);
        }
        due
    }

    /// A directory was renamed: the paths held back beneath it follow, so the look comes
    /// at the name the file's row has by then.
    pub fn rename_prefix(&mut self, from: &Path, to: &Path) {
        if self.due.is_empty() {
            return;
        }
        let moved: Vec<PathBuf> = self
            .due
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for p in moved {
            if let Some(at) = self.due.remove(&p) {
                let rest = p.strip_prefix(from).expect("filtered by prefix");
                self.due.insert(to.join(rest), at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_until_the_grace_ends_and_follows_directory_renames() {
        let t0 = Instant::now();
        let mut d = Displaced::default();
        assert_eq!(d.note("a/doc.xlsx".into(), t0), Held::Deferred);
        assert_eq!(d.note("ab/doc".into(), t0), Held::Deferred);
        assert!(d.overdue(t0).is_empty(), "not before the grace");
        d.rename_prefix(Path::new("a"), Path::new("c/a"));
        let mut due = d.overdue(t0 + DISPLACED_GRACE);
        due.sort();
        // By component: `ab` is not beneath `a`.
        assert_eq!(
            due,
            [PathBuf::from("ab/doc"), PathBuf::from("c/a/doc.xlsx")]
        );
        assert!(d.overdue(t0 + DISPLACED_GRACE * 2).is_empty(), "once");
    }

    #[test]
    fn a_full_list_removes_at_once() {
        let t0 = Instant::now();
        let mut d = Displaced::default();
        for i in 0..CAP {
            assert_eq!(d.note(PathBuf::from(i.to_string()), t0), Held::Deferred);
        }
        assert_eq!(d.note("one more".into(), t0), Held::RemoveNow);
        assert_eq!(d.note("0".into(), t0), Held::Deferred, "already held");
    }
}
