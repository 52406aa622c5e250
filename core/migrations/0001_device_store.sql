-- The device store. One row per record holds its whole Automerge document; the columns
-- beside it are an index for lists and for sync. Documents and settings are sealed
-- (XChaCha20-Poly1305, see crypto.rs); index columns hold no personal data.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE templates (
    id      TEXT    NOT NULL,
    version INTEGER NOT NULL,
    body    TEXT    NOT NULL,
    PRIMARY KEY (id, version)
);

CREATE TABLE records (
    id               TEXT PRIMARY KEY,
    template_id      TEXT    NOT NULL,
    template_version INTEGER NOT NULL,
    unit_code        TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    updated_at       INTEGER NOT NULL,
    doc              BLOB    NOT NULL,
    -- heads (JSON list of hex hashes) of the document now, and of what the server has committed;
    -- a record has unsent changes while they differ.
    heads            TEXT    NOT NULL,
    server_heads     TEXT    NOT NULL DEFAULT '[]',
    -- the server's last refusal of this record's changes; they stay here until accepted.
    rejection_code    TEXT,
    rejection_message TEXT
);

CREATE INDEX records_by_template ON records (template_id, state, updated_at);
