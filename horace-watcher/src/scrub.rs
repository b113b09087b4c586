//! The store scrub: a background thread re-hashes every stored object at a bounded rate
//! (`[versions] scrub_mib_per_sec`), one pass every `scrub_interval_secs`, and moves an
//! object whose content no longer hashes to its name aside ([`Objects::quarantine`]).
//! `status` counts the damaged objects not healed yet (`damaged_objects`, a degradation),
//! a restore of such a version says `Damaged`, and the next save of the same content
//! heals the object ([`Objects::commit`]). A restore that finds a damaged object does the
//! same at once (the worker's restore).

use std::io::{self, Read};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::hash;
use crate::store::{Objects, Verdict};

/// Reads at most `rate` bytes per second, and stops when `cancel` is set.
struct Paced<'a, R> {
    inner: R,
    rate: u64,
    since: Instant,
    read: u64,
    cancel: &'a CancellationToken,
}

impl<R: Read> Read for Paced<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "shutting down"));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let due = Duration::from_secs_f64(self.read as f64 / self.rate as f64);
        let ahead = due.saturating_sub(self.since.elapsed());
        if !ahead.is_zero() {
            sleep_unless(self.cancel, ahead);
        }
        Ok(n)
    }
}

/// Sleeps for `d`, waking every 100 ms to see whether `cancel` is set.
fn sleep_unless(cancel: &CancellationToken, d: Duration) -> bool {
    let end = Instant::now() + d;
    while !cancel.is_cancelled() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    false
}

/// What one pass found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Objects re-hashed.
    pub checked: u64,
    /// Objects found damaged (and quarantined).
    pub damaged: u64,
}

/// Re-hashes every object once at `mib_per_sec`; stops early when `cancel` is set.
pub fn pass(objects: &Objects, mib_per_sec: u64, cancel: &CancellationToken) -> Pass {
    let rate = mib_per_sec.max(1) << 20;
    let mut out = Pass::default();
    let since = Instant::now();
    let mut read = 0u64;
    for sha in objects.list() {
        if cancel.is_cancelled() {
            break;
        }
        let verdict = objects.verify(&sha, |f| {
            let mut paced = Paced {
                inner: f,
                rate,
                since,
                read,
                cancel,
            };
            let d = hash::digest_reader(&mut paced);
            read = paced.read;
            d
        });
        match verdict {
            Ok(Verdict::Intact) => out.checked += 1,
            Ok(Verdict::Damaged) => {
                out.checked += 1;
                match objects.quarantine(&sha) {
                    Ok(()) => out.damaged += 1,
                    Err(e) => {
                        tracing::warn!(sha256 = %sha, cause = %e, "cannot quarantine damaged object {sha}: {e}")
                    }
                }
            }
            Ok(Verdict::Gone) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
            Err(e) => tracing::warn!(sha256 = %sha, cause = %e, "cannot scrub object {sha}: {e}"),
        }
    }
    out
}

/// Runs a pass every `interval` until `cancel` is set (on a thread of its own: it reads
/// and hashes; the first pass begins one interval after start).
pub fn spawn(
    objects: Objects,
    interval: Duration,
    mib_per_sec: u64,
    cancel: CancellationToken,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("store-scrub".into())
        .spawn(move || {
            while sleep_unless(&cancel, interval) {
                let t0 = Instant::now();
                let p = pass(&objects, mib_per_sec, &cancel);
                tracing::info!(
                    checked = p.checked,
                    damaged = p.damaged,
                    secs = t0.elapsed().as_secs(),
                    "store scrub pass"
                );
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_quarantines_a_damaged_object_and_a_new_copy_heals_it() {
        let d = tempfile::tempdir().unwrap();
        let objects = Objects::open(d.path()).unwrap();
        let src = d.path().join("src");
        std::fs::write(&src, b"precious").unwrap();
        let (tmp, dg) = objects.copy_in(&src).unwrap();
        objects.commit(tmp, &dg.sha256).unwrap();
        std::fs::write(d.path().join("other"), b"other").unwrap();
        let (tmp, other) = objects.copy_in(&d.path().join("other")).unwrap();
        objects.commit(tmp, &other.sha256).unwrap();
        let cancel = CancellationToken::new();
        assert_eq!(
            pass(&objects, 1, &cancel),
            Pass {
                checked: 2,
                damaged: 0
            }
        );
        let obj = objects.path_of(&dg.sha256);
        let mut perms = std::fs::metadata(&obj).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&obj, perms).unwrap();
        std::fs::write(&obj, b"garbage!").unwrap();
        assert_eq!(
            pass(&objects, 1, &cancel),
            Pass {
                checked: 2,
                damaged: 1
            }
        );
        assert!(!objects.contains(&dg.sha256) && objects.is_damaged(&dg.sha256));
        assert_eq!(objects.damaged(), std::slice::from_ref(&dg.sha256));
        // The same content saved again: in place, and no longer listed as damaged.
        let (tmp, again) = objects.copy_in(&src).unwrap();
        objects.commit(tmp, &again.sha256).unwrap();
        assert!(objects.contains(&dg.sha256) && objects.damaged().is_empty());
        assert_eq!(std::fs::read(&obj).unwrap(), b"precious");
        // Cancelled: stops at once.
        cancel.cancel();
        assert_eq!(pass(&objects, 1, &cancel).checked, 0);
    }

    #[test]
    fn an_object_cut_short_is_replaced_by_the_next_copy_without_a_scrub() {
        let d = tempfile::tempdir().unwrap();
        let objects = Objects::open(d.path()).unwrap();
        let src = d.path().join("src");
        std::fs::write(&src, b"precious content").unwrap();
        let (tmp, dg) = objects.copy_in(&src).unwrap();
        objects.commit(tmp, &dg.sha256).unwrap();
        let obj = objects.path_of(&dg.sha256);
        let mut perms = std::fs::metadata(&obj).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&obj, perms).unwrap();
        std::fs::write(&obj, b"preci").unwrap();
        let (tmp, again) = objects.copy_in(&src).unwrap();
        objects.commit(tmp, &again.sha256).unwrap();
        assert_eq!(std::fs::read(&obj).unwrap(), b"precious content");
        // Moved aside, then healed at once by this copy.
        assert!(objects.damaged().is_empty());
    }
}
