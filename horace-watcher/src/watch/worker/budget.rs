//! The owners' store budget (`store::Budget`): limits taken from `[versions]`, usage
//! counted from the catalog at start and every few minutes, off the loop.

use std::collections::HashMap;

use super::Worker;

/// Bytes each owner's stored content occupies, each distinct content once per owner, by
/// the bytes its object occupies (`stored_bytes`; versions cataloged before schema v4:
/// their size).
const USAGE_SQL: &str = "SELECT owner, sum(b) FROM ( \
     SELECT f.owner AS owner, max(coalesce(v.stored_bytes, v.size)) AS b \
     FROM versions v JOIN files f ON f.id = v.file_id \
     WHERE v.content_stored = 1 GROUP BY f.owner, v.sha256) GROUP BY owner";

impl Worker {
    /// Counts the owners' usage again when it is due, on a reader connection off the
    /// loop (a count over every stored version takes a while on a big catalog).
    pub(super) fn recount_store_budget(&self) {
        if !crate::store::budget().recount_due() {
            return;
        }
        let ctx = self.ctx.clone();
        self.rt.spawn(async move {
            let counted = ctx
                .readers
                .with(|c| -> rusqlite::Result<HashMap<String, u64>> {
                    let mut st = c.prepare(USAGE_SQL)?;
                    let rows = st.query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                    })?;
                    rows.collect()
                })
                .await;
            match counted {
                Ok(Ok(used)) => {
                    tracing::debug!(owners = used.len(), "store usage per owner counted");
                    crate::store::budget().recount(used);
                }
                Ok(Err(e)) => tracing::warn!(cause = %e, "cannot count store usage: {e}"),
                Err(e) => tracing::warn!(cause = %e, "cannot count store usage: {e}"),
            }
        });
    }
}
