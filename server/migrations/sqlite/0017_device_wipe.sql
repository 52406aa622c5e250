-- Remote wipe: an admin deactivates a device (its unsent changes are taken one last time, then
-- it wipes its store) or reports it stolen (nothing more is taken; it wipes at its next
-- contact). The device confirms the wipe, and the server shows when.
ALTER TABLE devices ADD COLUMN wipe TEXT;
ALTER TABLE devices ADD COLUMN wipe_confirmed_at INTEGER;
