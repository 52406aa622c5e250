-- Answers changed offline on a record that was approved meanwhile: kept as a proposed
-- amendment for a reviewer to accept or reject, never silently applied and never lost.
CREATE TABLE amendments (
    id          INTEGER PRIMARY KEY,
    record_id   TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    username    TEXT    NOT NULL,
    changes     BLOB    NOT NULL,
    heads       TEXT    NOT NULL,
    proposed_at INTEGER NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'accepted', 'rejected')),
    decided_by  TEXT,
    decided_at  INTEGER,
    UNIQUE (record_id, heads)
);
CREATE INDEX amendments_by_record ON amendments (record_id, status);
