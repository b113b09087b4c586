//! Restoring a version on the watch loop, so it is ordered with every event before it:
//! store the current content first, then write the old content over the file (temp file
//! in the same directory, fsync, rename) and record it as a new version.

use std::path::Path;
use std::time::Instant;

use super::Worker;
use crate::catalog::ops::{self, NewContent};
use crate::hash;
use crate::now_ns;
use crate::path::{escape, owner_of, unescape};
use crate::scan::Compare;
use crate::store::{self, RestoreError, RestoreOutcome};
use crate::watch::Op;

fn io_err(e: impl std::fmt::Display) -> RestoreError {
    RestoreError::Io(e.to_string())
}

impl Worker {
    pub(super) fn restore(
        &mut self,
        file_id: i64,
        version: i64,
    ) -> Result<RestoreOutcome, RestoreError> {
        let looked_up = self
            .ctx
            .readers
            .with_blocking(move |c| -> rusqlite::Result<_> {
                let row = ops::row_by_id(c, file_id)?;
                let ver = c
                    .query_row(
                        "SELECT sha256, content_stored, mode FROM versions WHERE file_id = ?1 AND version = ?2",
                        [file_id, version],
                        |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, bool>(1)?,
                                r.get::<_, Option<u32>>(2)?,
                            ))
                        },
                    )
                    .ok();
                Ok((row, ver))
            })
            .map_err(io_err)?
            .map_err(io_err)?;
        let (Some(row), Some((sha, stored, recorded_mode))) = looked_up else {
            return Err(RestoreError::NotFound { file_id, version });
        };
        let rel = unescape(&row.path)
            .ok_or_else(|| io_err(format!("malformed catalog path {}", row.path)))?;
        let root = self.ctx.config.files_root.clone();

        // The current content first, so this restore can itself be undone.
        if std::fs::symlink_metadata(root.join(&rel)).is_ok_and(|m| m.is_file()) {
            let out = self.apply_batch(vec![(
                Op::Check {
                    rel: rel.clone(),
                    compare: Compare::ForceHere,
                },
                Instant::now(),
            )]);
            if let Some(why) = out.problems.get(&rel) {
                return Err(io_err(format!(
                    "cannot store the current content first: {why}"
                )));
            }
        }

        let objects = self.prober.objects.clone();
        if !(stored && objects.contains(&sha)) {
            let ctx = self.ctx.clone();
            let found = self.rt.block_on(async move {
                crate::snapshots::find_snapshot_copy(&ctx, file_id, version).await
            });
            let copy = match found {
                Ok(copy) => copy,
                // Stored once, found damaged since, and in no snapshot: say so.
                Err(_) if stored && objects.is_damaged(&sha) => {
                    return Err(RestoreError::Write {
                        path: row.path.clone(),
                        kind: horace_client::RestoreFailure::Damaged,
                        message: "the stored content is damaged (moved to objects/damaged) and \
                                  no snapshot holds it; it heals when that content is saved again"
                            .into(),
                    })
                }
                Err(snapshots) => return Err(RestoreError::ContentPruned { version, snapshots }),
            };
            let (tmp, d) = objects.copy_in(&copy).map_err(io_err)?;
            if d.sha256 != sha {
                return Err(RestoreError::ContentPruned {
                    version,
                    snapshots: Vec::new(),
                });
            }
            objects.commit(tmp, &sha).map_err(io_err)?;
        }
        let object = objects.path_of(&sha);
        let (fp, mode, d) =
            store::write_over(&root, &rel, &object, &sha, recorded_mode).map_err(|e| {
                // The object does not hash to its name: quarantined now, not only by the scrub.
                if e.kind() == std::io::ErrorKind::InvalidData {
                    let _ = objects.quarantine(&sha);
                }
                RestoreError::write(row.path.clone(), &e)
            })?;
        let c = NewContent {
            sha256: sha,
            fp,
            mime: hash::mime_of(&rel, &d.prefix, d.len),
            stored: true,
            restored_from: Some(version),
            mode: Some(mode),
            stored_bytes: std::fs::metadata(&object).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.blocks() * 512
            }),
        };
        let (path, owner) = (escape(&rel), owner_of(&rel));
        let recorded = self
            .ctx
            .writer
            .exec_blocking(move |conn| -> rusqlite::Result<_> {
                let tx = conn.transaction()?;
                let r = ops::apply_content(&tx, &path, &owner, &c, now_ns())?;
                tx.commit()?;
                Ok(r)
            })
            .map_err(io_err)?
            .map_err(io_err)?;
        let new_version = recorded
            .1
            .ok_or_else(|| io_err("no version was recorded"))?;
        tracing::info!(file_id, version, new_version, path = %Path::new(&rel).display(),
            "version {version} of {} restored as version {new_version}", Path::new(&rel).display());
        Ok(RestoreOutcome {
            file_id: recorded.0,
            new_version,
        })
    }
}
