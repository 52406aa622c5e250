-- Compaction: an edit appends its changes here (a few hundred bytes) instead of rewriting the
-- whole document; every FOLD_AFTER chunks they are folded into `records.doc`, which keeps the
-- full history (Automerge's saved format), so nothing a peer may still need is lost.
CREATE TABLE record_chunks (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    data      BLOB NOT NULL
);
CREATE INDEX record_chunks_by_record ON record_chunks (record_id, id);
