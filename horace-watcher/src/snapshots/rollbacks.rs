//! Rollbacks the watcher did not hear of (issue 13 item 2). `RolledBack` is a broadcast:
//! it is lost when zfsd dies between the rollback and the signal, or when the watcher is
//! not listening. zfsd therefore keeps a per-dataset rollback serial that changes with
//! every rollback once it is over (`RollbackSerial`); the watcher keeps the last value it
//! acted on in the catalog's `meta` table (`zfsd_rollback_serial:<dataset>`) and, when
//! zfsd reports another, reconciles exactly as after the signal.
//!
//! The value is stored after the reconcile is requested: a watcher that dies in between
//! reconciles anyway at its next start (every start scans).

use rusqlite::OptionalExtension as _;

use crate::Context;

/// The `meta` key prefix; the dataset follows.
pub(crate) const KEY_PREFIX: &str = "zfsd_rollback_serial:";

/// What one reported serial means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed {
    /// The serial acted on last: nothing to do.
    Same,
    /// First sight of a dataset zfsd never rolled back (serial 0): recorded, no reconcile
    /// (the startup scan covers everything before).
    NeverRolledBack,
    /// The serial changed (or is new and not 0): the dataset may have gone back.
    WentBack {
        /// The serial acted on last, if any.
        was: Option<u64>,
        /// The serial zfsd reports now.
        now: u64,
    },
}

/// The decision, as a pure function of the stored and the reported serial.
pub(crate) fn observe(stored: Option<u64>, now: u64) -> Observed {
    match stored {
        Some(s) if s == now => Observed::Same,
        None if now == 0 => Observed::NeverRolledBack,
        was => Observed::WentBack { was, now },
    }
}

/// The serial last acted on for one dataset, cached from `meta`.
pub(crate) struct Tracker {
    key: String,
    /// `None` until read from the catalog.
    stored: Option<Option<u64>>,
}

impl Tracker {
    /// A tracker for `dataset`; reads the catalog at the first [`Tracker::observe`].
    pub(crate) fn new(dataset: &str) -> Self {
        Self {
            key: format!("{KEY_PREFIX}{dataset}"),
            stored: None,
        }
    }

    /// Compares `now` with the serial last acted on and records `now` (the caller
    /// reconciles on [`Observed::WentBack`]).
    pub(crate) async fn observe(&mut self, ctx: &Context, now: u64) -> Observed {
        let stored = match self.stored {
            Some(s) => s,
            None => {
                let key = self.key.clone();
                let read = ctx
                    .writer
                    .exec(move |conn| -> rusqlite::Result<Option<String>> {
                        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                            .optional()
                    })
                    .await;
                match read {
                    Ok(Ok(v)) => v.and_then(|v| v.parse().ok()),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "reading the rollback serial failed");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the rollback serial failed");
                        None
                    }
                }
            }
        };
        let seen = observe(stored, now);
        if seen != Observed::Same {
            self.record(ctx, now).await;
        } else {
            self.stored = Some(stored);
        }
        seen
    }

    /// Stores `now` as acted on (also after a `RolledBack` signal, so the next check
    /// does not reconcile a second time for it).
    pub(crate) async fn record(&mut self, ctx: &Context, now: u64) {
        let key = self.key.clone();
        let written = ctx
            .writer
            .exec(move |conn| {
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2) \
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    rusqlite::params![key, now.to_string()],
                )
            })
            .await;
        match written {
            Ok(Ok(_)) => self.stored = Some(Some(now)),
            // Not cached: the next check compares with the catalog again and at worst
            // reconciles once more.
            Ok(Err(e)) => tracing::warn!(error = %e, "storing the rollback serial failed"),
            Err(e) => tracing::warn!(error = %e, "storing the rollback serial failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        assert_eq!(observe(Some(5), 5), Observed::Same);
        assert_eq!(observe(None, 0), Observed::NeverRolledBack);
        assert_eq!(observe(None, 9), Observed::WentBack { was: None, now: 9 });
        assert_eq!(
            observe(Some(5), 6),
            Observed::WentBack {
                was: Some(5),
                now: 6
            }
        );
        // zfsd lost its state directory: any other value counts, also a smaller one.
        assert_eq!(
            observe(Some(5), 0),
            Observed::WentBack {
                was: Some(5),
                now: 0
            }
        );
    }
}
