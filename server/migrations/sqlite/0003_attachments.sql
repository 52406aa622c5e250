-- Attachments arrive in chunks; `complete` once every byte is there and matches the hash.
CREATE TABLE attachments (
    sha256       TEXT PRIMARY KEY,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    complete     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);

CREATE TABLE attachment_chunks (
    sha256 TEXT    NOT NULL REFERENCES attachments (sha256),
    offset INTEGER NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (sha256, offset)
);

-- Which records reference which attachments: downloads are allowed only in the caller's scope.
CREATE TABLE record_attachments (
    record_id TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    PRIMARY KEY (record_id, sha256)
);
CREATE INDEX record_attachments_by_sha ON record_attachments (sha256);
