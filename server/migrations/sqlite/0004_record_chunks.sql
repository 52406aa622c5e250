-- Compaction: each commit appends the record's new changes here instead of rewriting the
-- whole document; every 32 chunks they are folded into `records.doc` (full history kept).
CREATE TABLE record_chunks (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    data      BLOB NOT NULL
);
CREATE INDEX record_chunks_by_record ON record_chunks (record_id, id);
