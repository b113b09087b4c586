//! The catalog's mirror of zfsd's snapshot list (table `snapshots`), which the
//! `snapshots` query and the restore-from-snapshot lookup read.

use horace_zfsd::api::{parse_managed, SnapshotInfo};
use rusqlite::Connection;

use crate::catalog::CatalogError;
use crate::Context;

/// Replaces the mirrored list of `dataset`'s snapshots with `list`, in one transaction.
pub(crate) fn write(
    conn: &mut Connection,
    dataset: &str,
    list: &[SnapshotInfo],
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM snapshots WHERE dataset = ?1", [dataset])?;
    {
        let mut insert = tx.prepare(
            "INSERT OR REPLACE INTO snapshots(name, dataset, creation, used, label, managed) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for s in list {
            let Some((ds, snap)) = s.name.split_once('@') else {
                continue;
            };
            if ds != dataset {
                continue;
            }
            let label = parse_managed(snap).map(|(_, l)| l);
            insert.execute(rusqlite::params![
                s.name,
                dataset,
                i64::try_from(s.creation).unwrap_or(i64::MAX),
                i64::try_from(s.used).unwrap_or(i64::MAX),
                label,
                label.is_some(),
            ])?;
        }
    }
    tx.commit()
}

/// [`write`] through the catalog's one writer.
pub(crate) async fn replace(
    ctx: &Context,
    dataset: &str,
    list: Vec<SnapshotInfo>,
) -> Result<(), CatalogError> {
    let dataset = dataset.to_string();
    ctx.writer
        .exec(move |conn| write(conn, &dataset, &list))
        .await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_holds_exactly_the_dataset_list() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn =
            crate::catalog::open_writer(&crate::catalog::catalog_path(dir.path())).unwrap();
        let s = |n: &str, c: u64| SnapshotInfo {
            name: n.into(),
            creation: c,
            used: 7,
        };
        let first = [
            s("p/f@horace_2026-01-01T00:00:00Z_hourly", 10),
            s("p/f@manual", 5),
            s("p/g@x", 1),
        ];
        write(&mut conn, "p/f", &first).unwrap();
        write(&mut conn, "p/f", &first[..1]).unwrap();
        let rows: Vec<(String, i64, Option<String>, bool)> = conn
            .prepare("SELECT name, creation, label, managed FROM snapshots ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [(
                "p/f@horace_2026-01-01T00:00:00Z_hourly".to_string(),
                10,
                Some("hourly".into()),
                true
            )]
        );
        write(&mut conn, "p/f", &first[1..2]).unwrap();
        let managed: i64 = conn
            .query_row("SELECT managed FROM snapshots", [], |r| r.get(0))
            .unwrap();
        assert_eq!(managed, 0);
    }
}
