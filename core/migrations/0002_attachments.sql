-- Photos and files, content-addressed by the SHA-256 of their bytes, sealed like documents.
-- `uploaded` marks what the server has confirmed complete; downloads in progress keep their
-- chunks until the whole file has arrived and matched its hash.
CREATE TABLE attachments (
    sha256       TEXT PRIMARY KEY,
    record_id    TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    uploaded     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX attachments_by_record ON attachments (record_id);

CREATE TABLE download_chunks (
    sha256 TEXT    NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (sha256, offset)
);

-- The attachments each record's document refers to (kept with the record's index columns),
-- so sync finds what to download without opening documents.
CREATE TABLE attachment_refs (
    record_id    TEXT    NOT NULL,
    sha256       TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    PRIMARY KEY (record_id, sha256)
);
