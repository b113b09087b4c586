//! Running the `zfs` binary: absolute path, argv only (never a shell), a clean
//! environment, a timeout that kills the child's whole process group, and strict parsing
//! of `zfs get -H -p` output (tab-separated; names may contain spaces).
//!
//! Callers pass only names that [`crate::api`] validated and that lie under the root.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tracing::{debug, warn};

use crate::api::ZfsError;

/// Properties read for every listing. `userrefs` (holds) exists on OpenZFS 2.x and on
/// zfs-fuse 0.7; `createtxg` does not exist on zfs-fuse, so order comes from `zfs` itself,
/// which sorts the snapshots of one dataset by creation txg.
const PROPS: &str = "creation,used,userrefs";

/// One snapshot as parsed from `zfs get` (internal; [`crate::api::SnapshotInfo`] is the
/// wire form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Full name `dataset@snap`.
    pub name: String,
    /// Creation, unix seconds.
    pub creation: u64,
    /// Bytes used by the snapshot alone.
    pub used: u64,
    /// Number of user holds (0 when the property is `-`).
    pub holds: u64,
}

/// Parses `zfs get -H -p -d 1 -o name,property,value creation,used,userrefs DATASET`,
/// keeping only `DATASET@…` rows, in the order `zfs` printed them (oldest first).
pub fn parse_get(dataset: &str, out: &str) -> Result<Vec<Snapshot>, String> {
    let prefix = format!("{dataset}@");
    let mut snaps: Vec<Snapshot> = Vec::new();
    let mut seen: Vec<(bool, bool)> = Vec::new();
    for (i, line) in out.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, prop, value] = fields[..] else {
            return Err(format!(
                "line {}: expected 3 tab-separated fields: {line:?}",
                i + 1
            ));
        };
        if !name.starts_with(&prefix) {
            continue; // the dataset itself, or a child dataset
        }
        let idx = match snaps.iter().position(|s| s.name == name) {
            Some(idx) => idx,
            None => {
                snaps.push(Snapshot {
                    name: name.to_string(),
                    creation: 0,
                    used: 0,
                    holds: 0,
                });
                seen.push((false, false));
                snaps.len() - 1
            }
        };
        let num = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("line {}: {prop} is not a number: {value:?}", i + 1))
        };
        match prop {
            "creation" => (snaps[idx].creation, seen[idx].0) = (num()?, true),
            "used" => (snaps[idx].used, seen[idx].1) = (num()?, true),
            "userrefs" if value == "-" => {}
            "userrefs" => snaps[idx].holds = num()?,
            other => return Err(format!("line {}: unexpected property {other:?}", i + 1)),
        }
    }
    if let Some((s, _)) = snaps.iter().zip(&seen).find(|(_, (c, u))| !(c & u)) {
        return Err(format!("no creation or used value for {:?}", s.name));
    }
    Ok(snaps)
}

/// Maps `zfs` stderr to a named error whose message says what to do.
pub fn map_failure(what: &str, stderr: &str) -> ZfsError {
    let msg = stderr.trim().replace('\n', "; ");
    if msg.contains("does not exist") || msg.contains("could not find any snapshots") {
        ZfsError::NotFound(format!("{what}: {msg}; check the name with ListSnapshots"))
    } else if msg.contains("dataset is busy")
        || msg.contains("dependent clones")
        || msg.contains("is held")
        || msg.contains("more recent snapshots")
    {
        ZfsError::Busy(format!(
            "{what}: {msg}; release holds or destroy dependent clones first, then retry"
        ))
    } else {
        ZfsError::ZfsFailed(format!("{what} failed: {msg}"))
    }
}

/// The `zfs` binary and how long it may take.
#[derive(Debug, Clone)]
pub struct Zfs {
    path: PathBuf,
    timeout: Duration,
}

impl Zfs {
    /// A runner for the binary at `path` (absolute) with `timeout` per call.
    pub fn new(path: PathBuf, timeout: Duration) -> Self {
        Self { path, timeout }
    }

    /// Runs `zfs ARGS` with stdin from /dev/null; returns stdout, or the mapped failure.
    async fn run(&self, what: &str, args: &[&str]) -> Result<String, ZfsError> {
        self.run_with(what, args, Stdio::null()).await
    }

    /// [`Zfs::run`] with the child's stdin given: the rollback hands it the journal's
    /// locked file (see `journal`), which the child never reads.
    async fn run_with(&self, what: &str, args: &[&str], stdin: Stdio) -> Result<String, ZfsError> {
        debug!(zfs = %self.path.display(), ?args, "running zfs");
        let mut cmd = tokio::process::Command::new(&self.path);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| {
            ZfsError::ZfsFailed(format!(
                "cannot run {}: {e}; check zfs_path in the configuration",
                self.path.display()
            ))
        })?;
        let pgid = child.id();
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) if out.status.success() => String::from_utf8(out.stdout).map_err(|_| {
                ZfsError::ZfsFailed(format!("{what}: zfs printed output that is not UTF-8"))
            }),
            Ok(Ok(out)) => Err(map_failure(what, &String::from_utf8_lossy(&out.stderr))),
            Ok(Err(e)) => Err(ZfsError::ZfsFailed(format!(
                "{what}: waiting for zfs failed: {e}"
            ))),
            Err(_) => {
                // The child itself was killed when its future dropped; kill what it started.
                if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
                    // SAFETY: kill has no memory-safety preconditions; the group is ours.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
                warn!(
                    what,
                    timeout_s = self.timeout.as_secs(),
                    "zfs timed out and was killed"
                );
                Err(ZfsError::Timeout(format!(
                    "{what}: zfs did not finish within {} s and was killed; check the pool's \
                     health (zpool status) and retry",
                    self.timeout.as_secs()
                )))
            }
        }
    }

    /// Snapshots of `dataset`, oldest first.
    pub async fn list(&self, dataset: &str) -> Result<Vec<Snapshot>, ZfsError> {
        let what = format!("listing snapshots of {dataset}");
        let out = self
            .run(
                &what,
                &[
                    "get",
                    "-H",
                    "-p",
                    "-d",
                    "1",
                    "-o",
                    "name,property,value",
                    PROPS,
                    dataset,
                ],
            )
            .await?;
        parse_get(dataset, &out)
            .map_err(|e| ZfsError::ZfsFailed(format!("{what}: unexpected zfs output: {e}")))
    }

    /// `zfs snapshot FULL`.
    pub async fn snapshot(&self, full: &str) -> Result<(), ZfsError> {
        self.run(&format!("creating {full}"), &["snapshot", full])
            .await
            .map(drop)
    }

    /// `zfs destroy FULL` (one snapshot; zfs-fuse has no `a,b,c` form).
    pub async fn destroy(&self, full: &str) -> Result<(), ZfsError> {
        self.run(&format!("destroying {full}"), &["destroy", full])
            .await
            .map(drop)
    }

    /// `zfs rollback [-r] FULL`, with `stdin` as the child's stdin (the journal's lock,
    /// which must outlive zfsd if zfsd dies while the child runs).
    pub async fn rollback(
        &self,
        full: &str,
        destroy_newer: bool,
        stdin: Stdio,
    ) -> Result<(), ZfsError> {
        let what = format!("rolling back to {full}");
        let args: &[&str] = if destroy_newer {
            &["rollback", "-r", full]
        } else {
            &["rollback", full]
        };
        self.run_with(&what, args, stdin).await.map(drop)
    }
}

#[cfg(test)]
mod tests;
