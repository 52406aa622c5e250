-- A download of what came into a device's reach (a move, a grant), under way across pages:
-- the units and templates whose records go whole (JSON arrays), and the sequence up to which
-- the device holds the rest of its scope (NULL: no download under way under this token).
ALTER TABLE device_reach ADD COLUMN fresh_units TEXT;
ALTER TABLE device_reach ADD COLUMN fresh_templates TEXT;
ALTER TABLE device_reach ADD COLUMN rescan_synced BIGINT;
