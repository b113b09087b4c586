//! Files taken away from their name, held back for a moment before they count as removed
//! or moved: the first half of a safe save.
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
//! only if nothing (or a directory, a link, …) is there is the removal sent. A deleted
//! file is held the same way: git's checkout unlinks each changed file and creates it
//! anew.
//!
//! The same save through names Horace does not ignore (a Samba client's `name.part` and
//! `name.bak`): the document is renamed to a backup name derived from its own
//! ([`is_backup_name`]: `name.bak`, `name.old`, `name.1`, `stem.bak`, …), the new content
//! arrives at the name, and the backup is deleted. The rename onto the backup name is held
//! ([`Displaced::aside`]), so the catalog keeps the document at its name; when the backup
//! is deleted with a regular file at the name, nothing is sent for the rename or the
//! delete, and the document's row takes the new content as its next version. (The
//! `name.part` renamed over `name` needs no holding: the catalog gives the row at `name`
//! the temp's content and drops the temp's row, see `catalog::ops::adopt`.) A held rename
//! whose backup is neither deleted nor touched within the grace is sent as it was, or, if
//! a new file took the old name meanwhile, the backup is cataloged as a new file
//! (`mv -b`, a backup kept).

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

/// The extensions of backup names (`report.bak` for `report.pdf`), compared without case.
const BACKUP_EXTENSIONS: &[&str] = &["bak", "old", "orig", "backup", "sav"];

/// Whether `to` is a backup name of `from`, in the same directory: `from`'s name with
/// anything appended (`name.bak`, `name.old`, `name.1`, `name-backup`), or `from`'s stem
/// with a backup extension ([`BACKUP_EXTENSIONS`]: `name.bak` for `name.pdf`). A temp
/// name landing (`name.part` onto `name`) is not one.
pub fn is_backup_name(from: &Path, to: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    if from.parent() != to.parent() {
        return false;
    }
    let (Some(f), Some(t)) = (from.file_name(), to.file_name()) else {
        return false;
    };
    let (f, t) = (f.as_bytes(), t.as_bytes());
    if t.len() > f.len() && t.starts_with(f) {
        return true;
    }
    let (Some(fs), Some(ts), Some(ext)) = (from.file_stem(), to.file_stem(), to.extension()) else {
        return false;
    };
    fs == ts
        && BACKUP_EXTENSIONS
            .iter()
            .any(|b| ext.as_bytes().eq_ignore_ascii_case(b.as_bytes()))
}

/// Paths whose file was renamed onto an ignored name or deleted, with when to look at them
/// again; and files renamed to a backup name.
#[derive(Debug, Default)]
pub struct Displaced {
    due: HashMap<PathBuf, Instant>,
    /// Where a file was moved → (where it was, when to send the rename).
    aside: HashMap<PathBuf, (PathBuf, Instant)>,
}

/// A held rename of `from` to `to` (see [`Displaced::aside`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aside {
    /// Where the file was.
    pub from: PathBuf,
    /// Where it went.
    pub to: PathBuf,
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
    /// The file at `from` was renamed to `to` (neither ignored) at `now`: held if `to` is
    /// a backup name of `from` ([`is_backup_name`]) and not too many are held.
    pub fn aside(&mut self, from: PathBuf, to: PathBuf, now: Instant) -> Held {
        if !is_backup_name(&from, &to) || (self.aside.len() >= CAP && !self.aside.contains_key(&to))
        {
            return Held::RemoveNow;
        }
        self.aside.insert(to, (from, now + DISPLACED_GRACE));
        Held::Deferred
    }

    /// Whether a held rename put a file at `to`.
    pub fn is_aside(&self, to: &Path) -> bool {
        !self.aside.is_empty() && self.aside.contains_key(to)
    }

    /// The held rename that put a file at `to`, forgotten.
    pub fn take_aside(&mut self, to: &Path) -> Option<Aside> {
        if self.aside.is_empty() {
            return None;
        }
        self.aside.remove(to).map(|(from, _)| Aside {
            from,
            to: to.to_path_buf(),
        })
    }

    /// The held renames due by `by`, forgotten.
    pub fn aside_overdue(&mut self, by: Instant) -> Vec<Aside> {
        if self.aside.is_empty() {
            return Vec::new();
        }
        let due: Vec<PathBuf> = self
            .aside
            .iter()
            .filter(|(_, (_, at))| *at <= by)
            .map(|(to, _)| to.clone())
            .collect();
        due.iter().filter_map(|to| self.take_aside(to)).collect()
    }

    /// The held renames whose file went with directory `dir` (deleted or moved out),
    /// forgotten; and the held removals beneath it, which the directory's own removal
    /// covers.
    pub fn gone_under(&mut self, dir: &Path) -> Vec<Aside> {
        self.due.retain(|p, _| !p.starts_with(dir));
        if self.aside.is_empty() {
            return Vec::new();
        }
        let gone: Vec<PathBuf> = self
            .aside
            .keys()
            .filter(|to| to.starts_with(dir))
            .cloned()
            .collect();
        gone.iter().filter_map(|to| self.take_aside(to)).collect()
    }

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
        move_keys(&mut self.due, from, to);
        move_keys(&mut self.aside, from, to);
        for (was, _) in self.aside.values_mut() {
            if let Ok(rest) = was.strip_prefix(from) {
                *was = to.join(rest);
            }
        }
    }
}

/// Moves the keys of `map` beneath `from` to beneath `to`.
fn move_keys<V>(map: &mut HashMap<PathBuf, V>, from: &Path, to: &Path) {
    if map.is_empty() {
        return;
    }
    let moved: Vec<PathBuf> = map
        .keys()
        .filter(|p| p.starts_with(from))
        .cloned()
        .collect();
    for p in moved {
        if let Some(v) = map.remove(&p) {
            let rest = p.strip_prefix(from).expect("filtered by prefix");
            map.insert(to.join(rest), v);
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
    fn a_document_renamed_to_a_backup_name_is_held_and_a_temp_landing_is_not() {
        let t0 = Instant::now();
        let mut d = Displaced::default();
        assert_eq!(
            d.aside("doc".into(), "doc.bak".into(), t0),
            Held::Deferred,
            "renamed to a backup name: held"
        );
        assert_eq!(
            d.aside("doc.part".into(), "doc".into(), t0),
            Held::RemoveNow,
            "a temp name landing: sent at once"
        );
        d.rename_prefix(Path::new(""), Path::new("share"));
        assert!(d.aside_overdue(t0).is_empty(), "not before the grace");
        assert_eq!(
            d.aside_overdue(t0 + DISPLACED_GRACE),
            [Aside {
                from: "share/doc".into(),
                to: "share/doc.bak".into()
            }]
        );
        d.aside("x/a".into(), "x/a.bak".into(), t0);
        d.note("x/c".into(), t0);
        assert_eq!(d.gone_under(Path::new("x")).len(), 1);
        assert!(
            d.overdue(t0 + DISPLACED_GRACE).is_empty(),
            "covered by the directory"
        );
        assert!(d.take_aside(Path::new("x/a.bak")).is_none());
    }

    #[test]
    fn backup_names() {
        let yes = |f: &str, t: &str| is_backup_name(Path::new(f), Path::new(t));
        for (f, t) in [
            ("a/report.pdf", "a/report.pdf.bak"),
            ("report.pdf", "report.bak"),
            ("report.pdf", "report.OLD"),
            ("notes", "notes.1"),
            ("notes", "notes-backup"),
            ("Makefile", "Makefile.orig"),
        ] {
            assert!(yes(f, t), "{f} -> {t}");
        }
        for (f, t) in [
            ("report.pdf.part", "report.pdf"),
            ("a/report.pdf", "b/report.pdf.bak"),
            ("report.pdf", "report.pdf"),
            ("report.pdf", "summary.bak"),
            ("report.pdf", "report.txt"),
            ("draft", "final"),
        ] {
            assert!(!yes(f, t), "{f} -> {t}");
        }
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
