//! The start-up guard (issue 13 item 3): before anything is cataloged, `metadata_dir` and
//! `files_root` must be the filesystems the catalog belongs to. A dataset that is not
//! mounted leaves an empty directory beneath; cataloging that would mark every file
//! deleted, and a catalog started there would hide the real history.
//!
//! What is checked, in order:
//! - `metadata_dataset` (when set): the mount holding `metadata_dir` is that dataset.
//! - No catalog, backup or store in `metadata_dir`, but the files root carries the
//!   marker [`MARKER`] of a catalog: no new catalog is started (`--accept-new-catalog`).
//! - `[snapshots] dataset` (when set): the mount holding `files_root` is that dataset.
//! - The files root's [`FsIdentity`], recorded in the catalog's `meta` table at the first
//!   start, is the same now (`--accept-new-files-root` records the new one). A catalog
//!   without a recorded identity (made before this check) refuses an empty files root
//!   while it has active files.
//!
//! A refusal is not an error: the watcher waits, polling every [`POLL`], says why in
//! `STATUS=` and the log, keeps systemd's start timeout and watchdog fed, and carries on
//! when the dataset appears — or, with `--no-wait`, exits with the refusal's name.

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _};

use crate::identity::{self, FsIdentity};
use crate::snapshots::backup;
use crate::Config;

/// The marker in the files root naming the catalog that tree is cataloged into (also the
/// prefix of its temp names; never cataloged).
pub const MARKER: &str = ".horace-catalog";

/// How often a waiting watcher looks again.
pub const POLL: Duration = Duration::from_secs(2);

/// `meta` key prefix of the files root's recorded identity.
const FILES_ROOT: &str = "files_root";
/// `meta` key of the catalog's own random id (what the marker names).
const CATALOG_ID: &str = "catalog_id";

/// Why the watcher will not start cataloging yet. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The files root does not exist or cannot be identified.
    #[error("files_root {root} is not there ({why}); waiting for it to be mounted")]
    FilesRootMissing {
        /// The configured root.
        root: PathBuf,
        /// What failed.
        why: String,
    },
    /// The files root is on another filesystem than the one recorded.
    #[error(
        "files_root {root} is not the filesystem cataloged before: {why} (was {was}, is {now}); \
         waiting for it to be mounted (if the tree was really replaced, start once with \
         --accept-new-files-root)"
    )]
    FilesRootChanged {
        /// The configured root.
        root: PathBuf,
        /// What differs.
        why: String,
        /// The recorded filesystem.
        was: String,
        /// The filesystem there now.
        now: String,
    },
    /// No identity recorded yet, and the root is empty while the catalog is not.
    #[error(
        "files_root {root} is empty but the catalog has {active} active files; waiting for \
         the files dataset to be mounted (if the tree was really emptied, start once with \
         --accept-new-files-root)"
    )]
    FilesRootEmpty {
        /// The configured root.
        root: PathBuf,
        /// Active files in the catalog.
        active: i64,
    },
    /// A directory is not on the dataset the configuration names.
    #[error("{what} {dir} is {now}, not ZFS dataset {want} ({key}); waiting for it to be mounted")]
    NotTheDataset {
        /// `files_root` or `metadata_dir`.
        what: &'static str,
        /// The directory.
        dir: PathBuf,
        /// The dataset configured.
        want: String,
        /// What is there instead.
        now: String,
        /// The configuration key that names the dataset.
        key: &'static str,
    },
    /// No catalog here, but the files root was cataloged into one.
    #[error(
        "metadata_dir {dir} holds no catalog, but files_root was cataloged into catalog {marker} \
         ({marker_path}); waiting for the metadata dataset to be mounted (to begin a new catalog \
         instead, start once with --accept-new-catalog)"
    )]
    NoCatalogHere {
        /// The metadata directory.
        dir: PathBuf,
        /// The catalog id the marker names.
        marker: String,
        /// The marker file.
        marker_path: PathBuf,
    },
    /// The catalog here is not the one the files root was cataloged into.
    #[error(
        "metadata_dir {dir} holds catalog {catalog}, but files_root was cataloged into catalog \
         {marker}; waiting for the right metadata dataset to be mounted (to go on with this \
         catalog, start once with --accept-new-catalog)"
    )]
    OtherCatalog {
        /// The metadata directory.
        dir: PathBuf,
        /// This catalog's id.
        catalog: String,
        /// The catalog id the marker names.
        marker: String,
    },
}

impl Refusal {
    /// The refusal's name, for the log and the exit message of `--no-wait`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::FilesRootMissing { .. } => "FilesRootMissing",
            Self::FilesRootChanged { .. } => "FilesRootChanged",
            Self::FilesRootEmpty { .. } => "FilesRootEmpty",
            Self::NotTheDataset { .. } => "NotTheDataset",
            Self::NoCatalogHere { .. } => "NoCatalogHere",
            Self::OtherCatalog { .. } => "OtherCatalog",
        }
    }
}

/// One attempt's outcome when it is not a go.
enum Attempt {
    /// Wait and look again.
    Refused(Refusal),
    /// Stop: a real error (the catalog cannot be opened, the directory not created).
    Fatal(anyhow::Error),
}

impl From<Refusal> for Attempt {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

fn fatal(e: impl Into<anyhow::Error>) -> Attempt {
    Attempt::Fatal(e.into())
}

/// Waits until `metadata_dir` and `files_root` are the ones expected, then returns the
/// opened catalog; `None` when `shutdown` came first. With `--no-wait` a refusal is
/// returned as the error instead ([`Refusal`], downcast it for its name).
pub async fn open<F: Future<Output = ()>>(
    config: &Config,
    mut shutdown: Pin<&mut F>,
) -> anyhow::Result<Option<Connection>> {
    let Some(conn) = wait(config, shutdown.as_mut(), || open_metadata(config)).await? else {
        return Ok(None);
    };
    let accepted = wait(config, shutdown.as_mut(), || {
        check_files_root(config, &conn)
    })
    .await?;
    Ok(accepted.map(|()| conn))
}

/// Runs `attempt` until it goes, reporting each refusal while waiting.
async fn wait<T, F: Future<Output = ()>>(
    config: &Config,
    mut shutdown: Pin<&mut F>,
    mut attempt: impl FnMut() -> Result<T, Attempt>,
) -> anyhow::Result<Option<T>> {
    let mut last: Option<String> = None;
    loop {
        let refusal = match attempt() {
            Ok(v) => {
                if last.is_some() {
                    tracing::info!("the awaited filesystem is there; carrying on");
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Status("starting")]);
                }
                return Ok(Some(v));
            }
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Refused(r)) => r,
        };
        let msg = refusal.to_string();
        if config.start.no_wait {
            tracing::error!(refusal = refusal.name(), "{msg} (--no-wait: exiting)");
            return Err(refusal.into());
        }
        if last.as_deref() != Some(msg.as_str()) {
            tracing::error!(refusal = refusal.name(), "{msg}");
            last = Some(msg.clone());
        }
        let status = format!("waiting: {}: {msg}", refusal.name());
        let extend = (POLL * 5).as_micros() as u32;
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Status(&status),
            sd_notify::NotifyState::ExtendTimeoutUsec(extend),
            sd_notify::NotifyState::Watchdog,
        ]);
        tokio::select! {
            () = shutdown.as_mut() => return Ok(None),
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Whether `dir` shows any sign of a catalog: the file, a backup, or the content store.
fn has_catalog(dir: &Path) -> bool {
    crate::catalog::catalog_path(dir).exists()
        || !backup::list_backups(&backup::backups_dir(dir)).is_empty()
        || dir.join("objects").exists()
}

/// `dir` must be on ZFS dataset `want`.
fn check_dataset(
    what: &'static str,
    dir: &Path,
    want: &str,
    key: &'static str,
) -> Result<FsIdentity, Refusal> {
    let refuse = |now: String| Refusal::NotTheDataset {
        what,
        dir: dir.into(),
        want: want.into(),
        now,
        key,
    };
    let id = FsIdentity::of(dir).map_err(|e| refuse(format!("not there ({e})")))?;
    if id.dataset() == Some(want) {
        Ok(id)
    } else {
        Err(refuse(format!("on {}", id.describe())))
    }
}

/// Phase one: the metadata directory, then the catalog opened (or recovered) in it.
fn open_metadata(config: &Config) -> Result<Connection, Attempt> {
    let dir = &config.metadata_dir;
    if let Some(want) = &config.metadata_dataset {
        check_dataset("metadata_dir", dir, want, "metadata_dataset")?;
    }
    if !has_catalog(dir) && !config.start.accept_new_catalog {
        if let Some(marker) = read_marker(&config.files_root) {
            return Err(Refusal::NoCatalogHere {
                dir: dir.clone(),
                marker,
                marker_path: config.files_root.join(MARKER),
            }
            .into());
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        fatal(
            anyhow::Error::new(e)
                .context(format!("failed to create metadata dir {}", dir.display())),
        )
    })?;
    backup::open_or_recover(config)
        .map_err(|e| fatal(anyhow::Error::new(e).context("failed to open the catalog")))
}

fn meta_get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

/// Phase two: the files root is the filesystem the catalog recorded; records it (and
/// the marker) when it is accepted.
fn check_files_root(config: &Config, conn: &Connection) -> Result<(), Attempt> {
    let root = &config.files_root;
    let missing = |why: String| Refusal::FilesRootMissing {
        root: root.clone(),
        why,
    };
    match std::fs::metadata(root) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => return Err(missing("not a directory".into()).into()),
        Err(e) => return Err(missing(e.to_string()).into()),
    }
    let now = match &config.snapshots.dataset {
        Some(want) => check_dataset("files_root", root, want, "snapshots.dataset")?,
        None => FsIdentity::of(root)
            .map_err(|e| missing(format!("cannot tell which filesystem it is on: {e}")))?,
    };
    let get = |k: &str| meta_get(conn, k).ok().flatten();
    let recorded = FsIdentity::from_meta(FILES_ROOT, get);
    let marker = read_marker(root);
    let existing_id = meta_get(conn, CATALOG_ID).map_err(fatal)?;
    let accept = &config.start;
    if let (Some(m), Some(c)) = (&marker, &existing_id) {
        if m != c && !accept.accept_new_catalog && !accept.accept_new_files_root {
            return Err(Refusal::OtherCatalog {
                dir: config.metadata_dir.clone(),
                catalog: c.clone(),
                marker: m.clone(),
            }
            .into());
        }
    }
    if accept.accept_new_files_root {
        if recorded
            .as_ref()
            .is_some_and(|was| was.differs(&now).is_some())
        {
            tracing::warn!(
                now = %now.describe(),
                was = %recorded.as_ref().map(FsIdentity::describe).unwrap_or_default(),
                "--accept-new-files-root: taking the files root as the new tree; files not on it \
                 will be marked deleted"
            );
        }
    } else if let Some(was) = &recorded {
        if let Some(why) = was.differs(&now) {
            return Err(Refusal::FilesRootChanged {
                root: root.clone(),
                why,
                was: was.describe(),
                now: now.describe(),
            }
            .into());
        }
    } else {
        let active: i64 = conn
            .query_row(
                "SELECT count(*) FROM files WHERE status = 'active'",
                [],
                |r| r.get(0),
            )
            .map_err(fatal)?;
        let empty = identity::is_empty_dir(root).map_err(|e| missing(e.to_string()))?;
        if active > 0 && empty {
            return Err(Refusal::FilesRootEmpty {
                root: root.clone(),
                active,
            }
            .into());
        }
    }
    // Accepted. A catalog without an id takes the marker's (it was recovered, or made
    // before ids), unless the operator asked for a new catalog.
    let id = match existing_id {
        Some(id) => id,
        None => match (&marker, accept.accept_new_catalog) {
            (Some(m), false) => m.clone(),
            _ => format!(
                "{:016x}{:016x}",
                crate::random_u64().map_err(fatal)?,
                crate::random_u64().map_err(fatal)?
            ),
        },
    };
    record(conn, &id, &now).map_err(fatal)?;
    if recorded.is_none() {
        tracing::info!(
            files_root = %root.display(),
            on = %now.describe(),
            "recorded the files root's filesystem: {} on {}",
            root.display(),
            now.describe()
        );
    }
    if marker.as_deref() != Some(id.as_str()) {
        if let Err(e) = write_marker(root, &id) {
            tracing::warn!(
                path = %root.join(MARKER).display(),
                error = %e,
                "cannot write the catalog marker {}: {e}; an unmounted metadata dataset will not be recognised",
                root.join(MARKER).display()
            );
        }
    }
    Ok(())
}

/// Stores the catalog id and the files root's identity in `meta`, in one transaction.
fn record(conn: &Connection, id: &str, now: &FsIdentity) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    let mut rows = now.to_meta(FILES_ROOT);
    rows.push((CATALOG_ID.into(), id.into()));
    for (k, v) in rows {
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [k, v],
        )?;
    }
    tx.commit()
}

/// The first line of the marker: `horace-catalog <id>`.
fn marker_text(id: &str) -> String {
    format!("horace-catalog {id}\n")
}

/// The catalog id the files root's marker names, if there is a readable one. The root
/// is tenant-writable: opened beneath it without following links or blocking, only a
/// small regular file counts.
pub fn read_marker(root: &Path) -> Option<String> {
    let f = match crate::store::open_file_beneath(root, Path::new(MARKER)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(
                path = %root.join(MARKER).display(),
                error = %e,
                "catalog marker {} unreadable ({e}); ignored",
                root.join(MARKER).display()
            );
            return None;
        }
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return None;
    }
    let mut text = String::new();
    f.take(256).read_to_string(&mut text).ok()?;
    parse_marker(&text)
}

/// Parses a marker's text.
pub fn parse_marker(text: &str) -> Option<String> {
    let id = text.lines().next()?.strip_prefix("horace-catalog ")?.trim();
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| id.to_string())
}

/// Writes the marker: a temp file of the watcher's own in the root, fsync, rename.
fn write_marker(root: &Path, id: &str) -> std::io::Result<()> {
    let dir = crate::store::open_dir_beneath(root, Path::new(""))?;
    let name_of = |n: u64| format!("{MARKER}-{n:016x}");
    let mode = rustix::fs::Mode::from_raw_mode(0o644);
    let (fd, n) = crate::store::create_own_file(&dir, name_of, mode, |_| true)?;
    let tmp = name_of(n);
    let mut f = std::fs::File::from(fd);
    let r = (|| {
        f.write_all(marker_text(id).as_bytes())?;
        f.sync_all()?;
        rustix::fs::renameat(&dir, tmp.as_str(), &dir, MARKER)?;
        rustix::fs::fsync(&dir)?;
        Ok(())
    })();
    if r.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), rustix::fs::AtFlags::empty());
    }
    r
}

#[cfg(test)]
mod tests;
