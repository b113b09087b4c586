-- Catalog schema, version 4: what a version was on disk besides its content.
--
-- `mode`: the file's permission bits (st_mode & 0o7777) when the version was cataloged,
-- updated while it is current (a chmod); a restore over a name that holds no regular
-- file (absent, or a symlink, whose lstat mode 0777 must never become the file's) gives
-- the file these bits, without world-write. NULL in versions cataloged before: 0644.
--
-- `stored_bytes`: the bytes the version's store object occupies (st_blocks × 512 of the
-- copy: a sparse file counts by its data, not its length), what an owner's store budget
-- counts; NULL before, counted by `size` then.
ALTER TABLE versions ADD COLUMN mode INTEGER;
ALTER TABLE versions ADD COLUMN stored_bytes INTEGER;
