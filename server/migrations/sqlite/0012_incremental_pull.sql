-- Incremental pulls: each appended chunk remembers the change-log sequence of its commit, and
-- each record the sequence its snapshot was written at. A device whose cursor is past the
-- snapshot gets only the chunks after its cursor. Rows from before take their record's
-- current sequence, so they are sent whole once more, never missed.
ALTER TABLE record_chunks ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE record_chunks SET seq = (SELECT r.seq FROM records r WHERE r.id = record_chunks.record_id);
ALTER TABLE records ADD COLUMN snapshot_seq INTEGER NOT NULL DEFAULT 0;
UPDATE records SET snapshot_seq = seq;
