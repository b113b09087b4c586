//! The rollback journal in `state_dir` (issue 13 item 2): a rollback is recorded durably
//! *before* `zfs rollback` runs, so a zfsd killed while the child runs still reports it
//! when it comes back.
//!
//! Two files:
//!
//! - `rollback.journal`: each dataset's rollback serial (settled) and at most one pending
//!   record (the rollback under way: snapshot and the serial it will settle to). Replaced
//!   whole (temp, fsync, rename, fsync of the directory), so it is always one state or
//!   the next, never half of each.
//! - `rollback.lock`: never replaced. zfsd holds an exclusive `flock` on it while a
//!   rollback runs and hands that open file to the `zfs` child as its stdin, so the lock
//!   lives exactly as long as the child — also when zfsd is killed and the child is
//!   orphaned (it runs in its own process group and finishes on its own). A zfsd that
//!   starts with a pending record waits until it can take the lock: then no `zfs
//!   rollback` of the earlier zfsd is still running, and the rollback is over.
//!
//! A serial is a generation number, not a count: every attempt settles to
//! `max(previous + 1, now in microseconds)`, so it grows with every rollback and a value
//! is never reused even if the state directory is lost and recreated. The watcher only
//! asks whether it changed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

/// The journal file's name in `state_dir`.
pub const JOURNAL_FILE: &str = "rollback.journal";
/// The lock file's name in `state_dir`.
pub const LOCK_FILE: &str = "rollback.lock";
const HEADER: &str = "# horace-zfsd rollback journal (see horace-zfsd(8)); do not edit\n";

/// Why the journal cannot be used; every message names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Creating, reading, writing or locking a file failed.
    #[error("{}: {source}; check the state directory (state_dir)", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The journal does not parse (it is only ever replaced whole, so someone edited it
    /// or the disk is damaged).
    #[error(
        "{} line {line}: {message}; move the file aside to start afresh (the watcher then \
         reconciles once, as after any lost journal)",
        path.display()
    )]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The state directory could be changed by someone other than root.
    #[error("{}: {why}; it must be a directory owned by root and writable by no one else", path.display())]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The lock is held although zfsd runs no rollback (a second zfsd on the same
    /// state directory, or a `zfs rollback` of an earlier one still running).
    #[error("{} is locked: a zfs rollback started earlier still runs; retry when it ends", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

/// The rollback under way (or interrupted): recorded before `zfs rollback` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Full snapshot name rolled back to.
    pub snapshot: String,
    /// The serial its dataset settles to when the attempt is over.
    pub serial: u64,
}

impl Pending {
    /// The dataset of the snapshot.
    pub fn dataset(&self) -> &str {
        self.snapshot.split_once('@').map_or("", |(d, _)| d)
    }
}

/// The journal's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    serials: BTreeMap<String, u64>,
    pending: Option<Pending>,
}

/// `serial<TAB>N<TAB>dataset` and `pending<TAB>N<TAB>snapshot` lines. Names never hold a
/// tab or a newline (the validator allows letters, digits and `_.:- /@`).
fn render(state: &State) -> String {
    let mut out = String::from(HEADER);
    for (ds, n) in &state.serials {
        out.push_str(&format!("serial\t{n}\t{ds}\n"));
    }
    if let Some(p) = &state.pending {
        out.push_str(&format!("pending\t{}\t{}\n", p.serial, p.snapshot));
    }
    out
}

fn parse(text: &str) -> Result<State, (usize, String)> {
    let mut state = State::default();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |m: String| (i + 1, m);
        let mut f = line.splitn(3, '\t');
        let (Some(kind), Some(n), Some(name)) = (f.next(), f.next(), f.next()) else {
            return Err(bad(format!("expected 3 tab-separated fields: {line:?}")));
        };
        let n: u64 = n
            .parse()
            .map_err(|_| bad(format!("serial {n:?} is not a number")))?;
        match kind {
            "serial" => {
                crate::api::validate_dataset(name).map_err(|e| bad(e.to_string()))?;
                state.serials.insert(name.to_string(), n);
            }
            "pending" if state.pending.is_none() => {
                crate::api::validate_snapshot(name).map_err(|e| bad(e.to_string()))?;
                state.pending = Some(Pending {
                    snapshot: name.to_string(),
                    serial: n,
                });
            }
            "pending" => return Err(bad("a second pending record".into())),
            other => return Err(bad(format!("unknown record {other:?}"))),
        }
    }
    Ok(state)
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The exclusive lock on `rollback.lock` while a rollback runs; released when this and
/// every copy handed to a child are closed.
#[derive(Debug)]
pub struct Hold(File);

impl Hold {
    /// A copy of the locked file for the `zfs` child's stdin (same open file, same lock).
    pub fn child_stdin(&self) -> io::Result<Stdio> {
        self.0.try_clone().map(Stdio::from)
    }
}

/// The journal of one state directory; one per zfsd.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    state: State,
}

impl Journal {
    /// Creates `dir` (mode 0700) when missing, checks that only root can change it,
    /// creates the lock file and reads the journal.
    pub fn open(dir: &Path) -> Result<Self, JournalError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(dir)(e)),
        }
        let md = fs::symlink_metadata(dir).map_err(io_err(dir))?;
        let unsafe_dir = |why: String| JournalError::Unsafe {
            path: dir.to_path_buf(),
            why,
        };
        if !md.is_dir() {
            return Err(unsafe_dir("not a directory".into()));
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if md.uid() != euid {
            return Err(unsafe_dir(format!("owned by uid {}, not {euid}", md.uid())));
        }
        if md.mode() & 0o022 != 0 {
            return Err(unsafe_dir(format!(
                "mode {:o} lets others write",
                md.mode() & 0o777
            )));
        }
        let journal = Self {
            dir: dir.to_path_buf(),
            state: State::default(),
        };
        journal.open_lock()?;
        let path = journal.path();
        let state = match fs::read_to_string(&path) {
            Ok(text) => parse(&text).map_err(|(line, message)| JournalError::Corrupt {
                path: path.clone(),
                line,
                message,
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(Self { state, ..journal })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    fn open_lock(&self) -> Result<File, JournalError> {
        let path = self.dir.join(LOCK_FILE);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|source| JournalError::Io { path, source })
    }

    /// Takes the lock without waiting: `Ok(None)` while another holder (an orphaned
    /// `zfs rollback`) has it.
    pub fn try_lock(&self) -> Result<Option<Hold>, JournalError> {
        let file = self.open_lock()?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(Hold(file)));
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            source => Err(JournalError::Io {
                path: self.dir.join(LOCK_FILE),
                source,
            }),
        }
    }

    /// The settled rollback serial of `dataset` (0 when zfsd never rolled it back).
    pub fn serial(&self, dataset: &str) -> u64 {
        self.state.serials.get(dataset).copied().unwrap_or(0)
    }

    /// The rollback recorded but not yet settled, if any.
    pub fn pending(&self) -> Option<&Pending> {
        self.state.pending.as_ref()
    }

    /// Records, durably, that a rollback to `snapshot` is about to run, and returns the
    /// lock to hand to its child. Nothing is recorded when the lock is held elsewhere.
    pub fn begin(&mut self, snapshot: &str) -> Result<Hold, JournalError> {
        let hold = self.try_lock()?.ok_or_else(|| JournalError::Locked {
            path: self.dir.join(LOCK_FILE),
        })?;
        let mut next = self.state.clone();
        // A record left by a failed settle is over (we hold the lock): settle it first.
        if let Some(p) = next.pending.take() {
            next.serials.insert(p.dataset().to_string(), p.serial);
        }
        let dataset = snapshot.split_once('@').map_or(snapshot, |(d, _)| d);
        let prev = next.serials.get(dataset).copied().unwrap_or(0);
        next.pending = Some(Pending {
            snapshot: snapshot.to_string(),
            serial: prev.saturating_add(1).max(now_micros()),
        });
        self.write(&next)?;
        self.state = next;
        Ok(hold)
    }

    /// The recorded rollback is over (the child exited, or its lock was free at
    /// recovery): its serial becomes the dataset's, and the record is cleared. Returns
    /// it.
    pub fn settle(&mut self) -> Result<Option<Pending>, JournalError> {
        let mut next = self.state.clone();
        let Some(p) = next.pending.take() else {
            return Ok(None);
        };
        next.serials.insert(p.dataset().to_string(), p.serial);
        self.write(&next)?;
        self.state = next;
        Ok(Some(p))
    }

    /// Replaces the journal with `state`: temp file, fsync, rename, fsync of the
    /// directory (the rename itself must survive a crash too).
    fn write(&self, state: &State) -> Result<(), JournalError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{JOURNAL_FILE}.tmp"));
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| JournalError::Io { path: p, source }
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(render(state).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_dir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        (t, dir)
    }

    #[test]
    fn begin_then_settle_survives_reopen() {
        let (_t, dir) = state_dir();
        let mut j = Journal::open(&dir).unwrap();
        assert_eq!(j.serial("p/f"), 0);
        let hold = j.begin("p/f@horace_x").unwrap();
        // A zfsd killed here: the next one reads the pending record, the lock is held.
        let reopened = Journal::open(&dir).unwrap();
        let p = reopened.pending().cloned().expect("pending recorded");
        assert_eq!((p.dataset(), p.snapshot.as_str()), ("p/f", "p/f@horace_x"));
        assert_eq!(reopened.serial("p/f"), 0, "not settled while it runs");
        assert!(reopened.try_lock().unwrap().is_none(), "lock held");
        drop(hold);
        let mut reopened = reopened;
        assert!(
            reopened.try_lock().unwrap().is_some(),
            "lock free once over"
        );
        assert_eq!(reopened.settle().unwrap(), Some(p.clone()));
        let again = Journal::open(&dir).unwrap();
        assert_eq!(again.pending(), None);
        assert_eq!(again.serial("p/f"), p.serial);
        assert_eq!(again.serial("p/g"), 0);
        // The serial grows with every attempt.
        let mut again = again;
        drop(again.begin("p/f@other").unwrap());
        again.settle().unwrap();
        assert!(again.serial("p/f") > p.serial);
    }

    #[test]
    fn the_lock_follows_the_child_stdin() {
        let (_t, dir) = state_dir();
        let mut j = Journal::open(&dir).unwrap();
        let hold = j.begin("p/f@s").unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("0.3")
            .stdin(hold.child_stdin().unwrap())
            .spawn()
            .unwrap();
        drop(hold); // zfsd gone: the child alone keeps the lock
        assert!(j.try_lock().unwrap().is_none());
        child.wait().unwrap();
        assert!(j.try_lock().unwrap().is_some());
        assert!(j.begin("p/f@t").is_ok(), "a stale record is settled first");
    }

    #[test]
    fn corrupt_and_unsafe_are_named() {
        let (_t, dir) = state_dir();
        Journal::open(&dir).unwrap();
        fs::write(dir.join(JOURNAL_FILE), "serial\tx\tp/f\n").unwrap();
        assert!(matches!(
            Journal::open(&dir),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
        fs::write(dir.join(JOURNAL_FILE), "pending\t1\t-p@x\n").unwrap();
        assert!(matches!(
            Journal::open(&dir),
            Err(JournalError::Corrupt { .. })
        ));
        fs::remove_file(dir.join(JOURNAL_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            Journal::open(&dir),
            Err(JournalError::Unsafe { .. })
        ));
    }

    #[test]
    fn render_parse_round_trip() {
        let mut s = State::default();
        s.serials.insert("tank/my files".into(), 7);
        s.pending = Some(Pending {
            snapshot: "tank/my files@a b".into(),
            serial: 8,
        });
        assert_eq!(parse(&render(&s)), Ok(s));
    }
}
