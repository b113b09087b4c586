-- Catalog schema, version 2: new paths enter the path-substring index from the insert
-- itself (catalog::ops::apply_content), not from a trigger.
--
-- An INSERT that fires a trigger needs a statement savepoint, and FTS5 flushes its pending
-- terms to disk at every savepoint: one tiny index segment per new file, merged over and
-- over. Measured on the initial catalog of 100,000 files, that was a quarter of the
-- writer thread's time (44 µs per new file with the trigger, 19 µs without). The update
-- and delete triggers stay: renames and removals are rare, and keep the index exact.
DROP TRIGGER files_fts_ai;
