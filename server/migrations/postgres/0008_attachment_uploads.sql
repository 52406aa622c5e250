-- Who uploaded what. A record may refer only to an attachment its pusher uploaded whole, and
-- an upload's status tells a user only about their own upload. Each user's chunks wait in
-- upload_chunks until the whole matches its hash; then the content joins attachment_chunks
-- (once per hash) and the user's upload is complete.
CREATE TABLE attachment_uploads (
    sha256       TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         BIGINT NOT NULL,
    complete     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (sha256, username)
);

CREATE TABLE upload_chunks (
    sha256   TEXT    NOT NULL,
    username TEXT    NOT NULL,
    "offset" BIGINT NOT NULL,
    data     BYTEA    NOT NULL,
    PRIMARY KEY (sha256, username, "offset")
);

-- Uploads before this migration were not kept per user: their uploaders are unknown, so no
-- new reference can be made to them without uploading again. Half-done ones are dropped.
DELETE FROM attachment_chunks WHERE sha256 IN (SELECT sha256 FROM attachments WHERE complete = 0);
DELETE FROM attachments WHERE complete = 0;
