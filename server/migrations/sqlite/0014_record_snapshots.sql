-- A record's snapshot lives apart from its row. An edit rewrites the row (state, heads,
-- values, sequence), and SQLite rewrites every column of a row it updates: with the snapshot
-- in the row, each edit copied the whole document again, however long its history.
CREATE TABLE record_snapshots (
    record_id TEXT PRIMARY KEY,
    doc       BLOB NOT NULL
);
INSERT INTO record_snapshots (record_id, doc) SELECT id, doc FROM records;
ALTER TABLE records DROP COLUMN doc;
