//! The big-file lane: a file of at least `[versions] lane_file_size` bytes is read (hashed, copied into
//! the store) by one thread of its own, not by the batch's probe threads, so a 1 TiB file
//! (or a sparse one, whose holes are hashed as zeros: minutes of SHA-256) never holds up
//! the cataloging of the small files written after it. The probe of such a path answers
//! [`super::Probe::InLane`] at once and hands the file to the lane; when the lane is done
//! the path is probed again (the watch loop looks for finished paths at every tick) and
//! the probe takes the lane's result if the file still has the fingerprint it was read
//! with. A file deleted or replaced while the lane reads it, or written to, is given up
//! within [`crate::hash`]'s check interval; SIGTERM stops the read the same way.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::hash::{self, Digested, Fingerprint};
use crate::store::{NotStored, Objects, TempObject};

/// How long a finished read waits for its probe.
const KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// What the lane's read of one file gave.
#[derive(Debug)]
pub(crate) enum Read {
    /// Read with this fingerprint before and after: the copy (if stored) and the digest.
    Done(Option<TempObject>, Digested),
    /// Deleted or replaced while it was read.
    Gone,
    /// Written to while it was read (or not the fingerprint asked for).
    Changed,
    /// Reading failed.
    Failed(String),
}

/// A file for the lane.
#[derive(Debug, Clone)]
struct Job {
    rel: PathBuf,
    fp: Fingerprint,
    /// Whether the content goes into the store, else why not (if refused).
    store: bool,
    refused: Option<NotStored>,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Job>,
    busy: Option<Job>,
    /// Finished reads, with when they finished.
    done: HashMap<PathBuf, (Job, Read, std::time::Instant)>,
    /// Paths finished and not yet handed back to the loop (see [`Lane::finished`]).
    fresh: Vec<PathBuf>,
    started: bool,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    wake: Condvar,
}

/// The lane (cheap to clone: every clone is the same lane). Its thread starts with the
/// first file.
#[derive(Debug, Clone, Default)]
pub struct Lane {
    inner: Arc<Inner>,
}

impl Lane {
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lane's result for `rel` read with fingerprint `fp`, taken (once), with the
    /// store decision it was read with. A result for another fingerprint is dropped (the
    /// file changed since).
    pub(crate) fn take(
        &self,
        rel: &Path,
        fp: Fingerprint,
    ) -> Option<(Read, bool, Option<NotStored>)> {
        let mut st = self.state();
        match st.done.remove(rel) {
            Some((job, read, _)) if job.fp == fp => Some((read, job.store, job.refused)),
            _ => None,
        }
    }

    /// Hands `rel` (fingerprint `fp`) to the lane, unless it is queued or being read
    /// with that fingerprint already; a queued job of an older fingerprint is replaced.
    pub(crate) fn submit(
        &self,
        root: &Path,
        objects: &Objects,
        rel: &Path,
        fp: Fingerprint,
        store: bool,
        refused: Option<NotStored>,
    ) {
        let mut st = self.state();
        if st.busy.as_ref().is_some_and(|j| j.rel == rel && j.fp == fp) {
            return;
        }
        st.queue.retain(|j| j.rel != rel);
        st.queue.push_back(Job {
            rel: rel.to_path_buf(),
            fp,
            store,
            refused,
        });
        if !st.started {
            st.started = true;
            let (lane, root, objects) = (self.clone(), root.to_path_buf(), objects.clone());
            let spawned = std::thread::Builder::new()
                .name("big-file-lane".into())
                .spawn(move || lane.run(&root, &objects));
            if let Err(e) = spawned {
                st.started = false;
                tracing::error!(cause = %e, "cannot start the big-file lane: {e}");
            }
        }
        self.inner.wake.notify_one();
    }

    /// The paths the lane finished since the last call: to be probed again. A result
    /// no probe took within [`KEPT_FOR`] (its file went meanwhile) is dropped with its
    /// temp copy.
    pub fn finished(&self) -> Vec<PathBuf> {
        let mut st = self.state();
        st.done.retain(|_, (_, _, at)| at.elapsed() < KEPT_FOR);
        std::mem::take(&mut st.fresh)
    }

    /// Whether `rel` is queued or being read.
    pub fn holds(&self, rel: &Path) -> bool {
        let st = self.state();
        st.busy.as_ref().is_some_and(|j| j.rel == rel) || st.queue.iter().any(|j| j.rel == rel)
    }

    fn run(&self, root: &Path, objects: &Objects) {
        loop {
            let job = {
                let mut st = self.state();
                loop {
                    if hash::stopping() {
                        return;
                    }
                    if let Some(job) = st.queue.pop_front() {
                        st.busy = Some(job.clone());
                        break job;
                    }
                    st = self
                        .inner
                        .wake
                        .wait_timeout(st, std::time::Duration::from_millis(500))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            };
            let t0 = std::time::Instant::now();
            let read = read(root, objects, &job);
            tracing::info!(
                path = %crate::path::escape(&job.rel),
                bytes = job.fp.size,
                secs = t0.elapsed().as_secs(),
                outcome = ?std::mem::discriminant(&read),
                "big-file lane: {} read ({} bytes, {:.1} s)",
                crate::path::escape(&job.rel),
                job.fp.size,
                t0.elapsed().as_secs_f64()
            );
            let mut st = self.state();
            st.busy = None;
            st.fresh.push(job.rel.clone());
            st.done
                .insert(job.rel.clone(), (job, read, std::time::Instant::now()));
        }
    }
}

/// Reads one job's file: opened beneath the root without following links, the
/// fingerprint checked before and after (by descriptor and by path).
fn read(root: &Path, objects: &Objects, job: &Job) -> Read {
    let gone = |e: &std::io::Error| super::gone(e);
    let file = match crate::store::open_file_beneath(root, &job.rel) {
        Ok(f) => f,
        Err(e) if gone(&e) => return Read::Gone,
        Err(e) => return Read::Failed(e.to_string()),
    };
    match file.metadata() {
        Ok(md) if md.is_file() && Fingerprint::of(&md) == job.fp => {}
        Ok(_) => return Read::Changed,
        Err(e) => return Read::Failed(e.to_string()),
    }
    let read = match job.store {
        true => match objects.copy_in_file(&file, true) {
            // The store filled up: hashed only (the probe notes it cataloged without content).
            Err(e) if crate::store::no_space(&e) => {
                hash::digest_file(&file, None).map(|d| (None, d))
            }
            r => r.map(|(t, d)| (Some(t), d)),
        },
        false => hash::digest_file(&file, None).map(|d| (None, d)),
    };
    let (tmp, d) = match read {
        Ok(x) => x,
        Err(e) if gone(&e) => return Read::Gone,
        Err(e) if hash::changed(&e) => return Read::Changed,
        Err(e) => return Read::Failed(e.to_string()),
    };
    let after = file.metadata().map(|md| Fingerprint::of(&md)).ok();
    if after != Some(job.fp) || d.len != job.fp.size as u64 {
        return Read::Changed;
    }
    Read::Done(tmp, d)
}
