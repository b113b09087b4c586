//! Collections: named sets of files (create, list, members, add, remove, delete).

use horace_client::{CollectionInfo, QueryError};
use rusqlite::{params, Connection, OptionalExtension};

use super::files::collection_id;
use super::sql::{resolve, Res, Target};
use crate::now_ns;

const INFO_SQL: &str = "SELECT c.id, c.name, c.description, c.created_ns,
    (SELECT count(*) FROM collection_members m WHERE m.collection_id = c.id) FROM collections c";

fn info_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CollectionInfo> {
    Ok(CollectionInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        created_ns: r.get(3)?,
        members: r.get::<_, i64>(4)? as u64,
    })
}

/// One collection.
pub fn get(conn: &Connection, name: &str) -> Res<CollectionInfo> {
    conn.query_row(&format!("{INFO_SQL} WHERE c.name = ?1"), [name], info_row)
        .optional()?
        .ok_or_else(|| {
            QueryError::NotFound {
                what: format!("collection {name:?}"),
            }
            .into()
        })
}

/// Every collection, by name.
pub fn list(conn: &Connection) -> Res<Vec<CollectionInfo>> {
    let mut stmt = conn.prepare_cached(&format!("{INFO_SQL} ORDER BY c.name"))?;
    let rows = stmt.query_map([], info_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Creates a collection; an existing name is InvalidArgument.
pub fn create(conn: &mut Connection, name: &str, description: Option<&str>) -> Res<CollectionInfo> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM collections WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?;
    if exists {
        return Err(QueryError::InvalidArgument {
            message: format!("collection {name:?} already exists"),
        }
        .into());
    }
    conn.execute(
        "INSERT INTO collections(name, description, created_ns) VALUES (?1, ?2, ?3)",
        params![name, description, now_ns()],
    )?;
    get(conn, name)
}

/// Adds (or with `add == false` removes) files; returns how many memberships changed.
pub fn change(conn: &mut Connection, name: &str, files: &[Target], add: bool) -> Res<u64> {
    let tx = conn.transaction()?;
    let cid = collection_id(&tx, name)?;
    let now = now_ns();
    let mut changed = 0;
    for t in files {
        let id = resolve(&tx, t)?;
        changed += if add {
            tx.execute(
                "INSERT OR IGNORE INTO collection_members(collection_id, file_id, added_ns) VALUES (?1, ?2, ?3)",
                params![cid, id, now],
            )?
        } else {
            tx.execute(
                "DELETE FROM collection_members WHERE collection_id = ?1 AND file_id = ?2",
                params![cid, id],
            )?
        } as u64;
    }
    tx.commit()?;
    Ok(changed)
}

/// Deletes a collection; a missing one is NotFound.
pub fn delete(conn: &mut Connection, name: &str) -> Res<()> {
    if conn.execute("DELETE FROM collections WHERE name = ?1", [name])? == 0 {
        return Err(QueryError::NotFound {
            what: format!("collection {name:?}"),
        }
        .into());
    }
    Ok(())
}
