-- A record's snapshot lives apart from its row: an edit rewrites the row (state, heads,
-- values, sequence) without copying the document again (see the SQLite migration 0014).
CREATE TABLE record_snapshots (
    record_id TEXT PRIMARY KEY,
    doc       BYTEA NOT NULL
);
INSERT INTO record_snapshots (record_id, doc) SELECT id, doc FROM records;
ALTER TABLE records DROP COLUMN doc;
