-- Catalog schema, version 1 (PRAGMA user_version = 1). Later versions are the
-- migrate_v*.sql files (catalog::MIGRATIONS); version 3 replaced the one-column owner,
-- size, created and updated indexes below with covering (column, path, status) ones.
--
-- Paths are stored relative to files_root in the "escaped" form of `crate::path`:
-- valid UTF-8 as is, a backslash as `\\`, every byte of invalid UTF-8 as `\xNN`, so that
-- any Linux file name round-trips through a TEXT column and the wire protocol.
-- Times are unix nanoseconds (INTEGER).

CREATE TABLE files (
    id              INTEGER PRIMARY KEY,
    path            TEXT NOT NULL UNIQUE,
    owner           TEXT NOT NULL,            -- first path component
    purpose         TEXT,
    mime            TEXT,
    size            INTEGER NOT NULL DEFAULT 0,
    mtime_ns        INTEGER NOT NULL DEFAULT 0,
    ctime_ns        INTEGER NOT NULL DEFAULT 0,
    inode           INTEGER NOT NULL DEFAULT 0,
    current_version INTEGER,                  -- versions.version of the content on disk
    status          TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'archived', 'deleted')),
    created_ns      INTEGER NOT NULL,
    updated_ns      INTEGER NOT NULL,
    deleted_ns      INTEGER,
    correlation_id  TEXT,
    extra           TEXT NOT NULL DEFAULT '{}' -- JSON object
);
CREATE INDEX files_owner   ON files(owner);
CREATE INDEX files_status  ON files(status);
CREATE INDEX files_size    ON files(size);
CREATE INDEX files_created ON files(created_ns);
CREATE INDEX files_updated ON files(updated_ns);
CREATE INDEX files_mime    ON files(mime);
CREATE INDEX files_inode   ON files(inode);

-- Every saved version. Keyed by file and number, never by checksum: the same content can
-- be a version of two files, or come back later.
CREATE TABLE versions (
    file_id        INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    version        INTEGER NOT NULL,          -- 1, 2, 3 … per file
    sha256         TEXT NOT NULL,             -- lower-case hex
    size           INTEGER NOT NULL,
    mtime_ns       INTEGER NOT NULL,
    cataloged_ns   INTEGER NOT NULL,
    path           TEXT NOT NULL,             -- the file's path when this version was saved
    restored_from  INTEGER,                   -- version number this one was restored from
    content_stored INTEGER NOT NULL DEFAULT 0, -- 1 while objects/ holds the content
    PRIMARY KEY (file_id, version)
) WITHOUT ROWID;
CREATE INDEX versions_sha256 ON versions(sha256);

-- Rename, delete, restore and undelete history.
CREATE TABLE events (
    id       INTEGER PRIMARY KEY,
    file_id  INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    at_ns    INTEGER NOT NULL,
    kind     TEXT NOT NULL,                   -- created, modified, renamed, deleted, restored, undeleted
    old_path TEXT,
    new_path TEXT,
    version  INTEGER
);
CREATE INDEX events_file ON events(file_id, at_ns);

CREATE TABLE tags (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (file_id, tag)
) WITHOUT ROWID;
CREATE INDEX tags_tag ON tags(tag, file_id);

CREATE TABLE collections (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    created_ns  INTEGER NOT NULL
);

CREATE TABLE collection_members (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    file_id       INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    added_ns      INTEGER NOT NULL,
    PRIMARY KEY (collection_id, file_id)
) WITHOUT ROWID;
CREATE INDEX collection_members_file ON collection_members(file_id);

-- Mirror of horace-zfsd's snapshot list for the managed dataset.
CREATE TABLE snapshots (
    name        TEXT PRIMARY KEY,              -- full name, dataset@snap
    dataset     TEXT NOT NULL,
    creation    INTEGER NOT NULL,              -- unix seconds, from zfs
    used        INTEGER NOT NULL,
    label       TEXT,                          -- hourly, daily, … for horace_ snapshots
    managed     INTEGER NOT NULL               -- 1 for horace_ snapshots
);
CREATE INDEX snapshots_creation ON snapshots(creation);

-- Small key/value state (last scan time, counters that survive restarts).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Path substring search.
CREATE VIRTUAL TABLE files_fts USING fts5(path, content='files', content_rowid='id', tokenize='trigram');
CREATE TRIGGER files_fts_ai AFTER INSERT ON files BEGIN
    INSERT INTO files_fts(rowid, path) VALUES (new.id, new.path);
END;
CREATE TRIGGER files_fts_ad AFTER DELETE ON files BEGIN
    INSERT INTO files_fts(files_fts, rowid, path) VALUES ('delete', old.id, old.path);
END;
CREATE TRIGGER files_fts_au AFTER UPDATE OF path ON files BEGIN
    INSERT INTO files_fts(files_fts, rowid, path) VALUES ('delete', old.id, old.path);
    INSERT INTO files_fts(rowid, path) VALUES (new.id, new.path);
END;
