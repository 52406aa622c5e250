-- Device tokens expire; a device refreshes its token while it is valid, or signs in again.
ALTER TABLE devices ADD COLUMN token_expires_at INTEGER NOT NULL DEFAULT 0;
